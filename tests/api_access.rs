//! Who may do what through the API, tried as clients would over HTTP against the running
//! platform: tokens (missing, tampered, expired, revoked), the built-in roles against every
//! route, tenants kept apart, department data scopes, lockout, refresh rotation, the policy as
//! Casbin CSV, and the audit log.

use iot_core::auth::TokenKeys;
use iot_core::auth::mfa::TotpEnrollment;
use iot_core::auth::token::{AUDIENCE, AccessClaims, ISSUER};
use iot_e2e::{
    ADMIN_PASSWORD, Api, Device, Error, TestResult, USER_PASSWORD, air_product, device_token,
    eventually, start_platform, tenant_admin, tenant_user,
};
use iot_local::platform::Running;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PASSWORD: &str = USER_PASSWORD;
const WAIT: Duration = Duration::from_secs(15);

/// Creates a user of `acme` with roles (and a department) and logs them in.
async fn user(
    running: &Running,
    admin: &Api,
    id: &str,
    roles: &[&str],
    department: Option<&str>,
) -> Result<Api, Error> {
    tenant_user(running, admin, "acme", id, roles, department).await
}

/// Every route, with the built-in roles that may call it: `a`dmin, `o`perator, `v`iewer.
/// Ids name nothing, so an allowed call answers 404 or 422 and changes nothing.
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/v1/devices", "aov"),
    ("POST", "/v1/devices", "ao"),
    ("POST", "/v1/devices/import", "ao"),
    ("GET", "/v1/devices/nope", "aov"),
    ("PUT", "/v1/devices/nope", "ao"),
    ("DELETE", "/v1/devices/nope", "ao"),
    ("GET", "/v1/devices/nope/telemetry", "aov"),
    ("GET", "/v1/devices/nope/latest", "aov"),
    ("GET", "/v1/devices/nope/aggregate", "aov"),
    ("GET", "/v1/devices/nope/presence", "aov"),
    ("POST", "/v1/devices/nope/token", "ao"),
    ("POST", "/v1/devices/nope/export", "aov"),
    ("GET", "/v1/exports/nope", "aov"),
    ("GET", "/v1/exports/nope/download", "aov"),
    ("DELETE", "/v1/devices/nope/token", "ao"),
    ("POST", "/v1/devices/nope/certificate", "ao"),
    ("DELETE", "/v1/devices/nope/certificate", "ao"),
    ("GET", "/v1/devices/nope/shadow", "aov"),
    ("PUT", "/v1/devices/nope/shadow/desired", "ao"),
    ("POST", "/v1/devices/nope/commands", "ao"),
    ("GET", "/v1/products", "aov"),
    ("POST", "/v1/products", "ao"),
    ("GET", "/v1/products/nope", "aov"),
    ("PUT", "/v1/products/nope", "ao"),
    ("DELETE", "/v1/products/nope", "ao"),
    ("PUT", "/v1/products/nope/script", "ao"),
    ("POST", "/v1/products/nope/dry-run", "ao"),
    ("GET", "/v1/products/nope/rules", "aov"),
    ("POST", "/v1/products/nope/rules", "ao"),
    ("GET", "/v1/products/nope/rules/r", "aov"),
    ("PUT", "/v1/products/nope/rules/r", "ao"),
    ("DELETE", "/v1/products/nope/rules/r", "ao"),
    ("GET", "/v1/alarms", "aov"),
    ("GET", "/v1/alarms/nope", "aov"),
    ("POST", "/v1/alarms/nope/acknowledge", "ao"),
    ("POST", "/v1/alarms/nope/clear", "ao"),
    ("GET", "/v1/stat-jobs", "aov"),
    ("POST", "/v1/stat-jobs", "ao"),
    ("GET", "/v1/stat-jobs/nope", "aov"),
    ("PUT", "/v1/stat-jobs/nope", "ao"),
    ("DELETE", "/v1/stat-jobs/nope", "ao"),
    ("POST", "/v1/stat-jobs/nope/run", "ao"),
    ("GET", "/v1/stat-jobs/nope/results?device=x", "aov"),
    ("GET", "/v1/templates", "ao"),
    ("POST", "/v1/templates", "ao"),
    ("GET", "/v1/templates/nope", "ao"),
    ("PUT", "/v1/templates/nope", "ao"),
    ("DELETE", "/v1/templates/nope", "ao"),
    ("GET", "/v1/channels", "ao"),
    ("POST", "/v1/channels", "ao"),
    ("GET", "/v1/channels/nope", "ao"),
    ("PUT", "/v1/channels/nope", "ao"),
    ("DELETE", "/v1/channels/nope", "ao"),
    ("GET", "/v1/notification-routes", "ao"),
    ("POST", "/v1/notification-routes", "ao"),
    ("GET", "/v1/notification-routes/nope", "ao"),
    ("PUT", "/v1/notification-routes/nope", "ao"),
    ("DELETE", "/v1/notification-routes/nope", "ao"),
    ("GET", "/v1/users", "a"),
    ("POST", "/v1/users", "a"),
    ("GET", "/v1/users/nope", "a"),
    ("PUT", "/v1/users/nope", "a"),
    ("DELETE", "/v1/users/nope", "a"),
    ("PUT", "/v1/users/nope/password", "a"),
    ("GET", "/v1/users/admin/messages", "a"),
    ("POST", "/v1/users/admin/messages/nope/read", "a"),
    ("GET", "/v1/roles", "a"),
    ("GET", "/v1/roles/nope", "a"),
    ("PUT", "/v1/roles/nope", "a"),
    ("DELETE", "/v1/roles/nope", "a"),
    ("GET", "/v1/policy", "a"),
    ("PUT", "/v1/policy", "a"),
    ("GET", "/v1/departments", "aov"),
    ("POST", "/v1/departments", "a"),
    ("GET", "/v1/departments/nope", "aov"),
    ("PUT", "/v1/departments/nope", "a"),
    ("DELETE", "/v1/departments/nope", "a"),
    ("GET", "/v1/audit", "a"),
    ("GET", "/v1/settings", "a"),
    ("PUT", "/v1/settings", "a"),
    ("DELETE", "/v1/users/nope/mfa", "a"),
    ("POST", "/v1/auth/mfa/confirm", "aov"),
    ("POST", "/v1/auth/mfa/disable", "aov"),
    ("GET", "/v1/auth/me", "aov"),
    ("PUT", "/v1/auth/password", "aov"),
    // The platform operator's (the platform tenant's administrators; tests/tenants.rs holds
    // that other tenants never reach them).
    ("GET", "/v1/app-credentials", "a"),
    ("POST", "/v1/app-credentials", "a"),
    ("DELETE", "/v1/app-credentials/nope", "a"),
    ("GET", "/v1/platform/tenants", "a"),
    ("POST", "/v1/platform/tenants", "a"),
    ("GET", "/v1/platform/tenants/nope", "a"),
    ("PUT", "/v1/platform/tenants/nope", "a"),
    ("DELETE", "/v1/platform/tenants/nope", "a"),
    ("POST", "/v1/platform/tenants/nope/suspend", "a"),
    ("POST", "/v1/platform/tenants/nope/resume", "a"),
    // One's own inbox, whatever the roles ({me} is the caller).
    ("GET", "/v1/users/{me}/messages", "aov"),
    ("POST", "/v1/users/{me}/messages/nope/read", "aov"),
];

async fn call(api: &Api, method: &str, path: &str) -> Result<(u16, Value), Error> {
    let body = json!({});
    match method {
        "GET" => api.get(path).await,
        "POST" => api.post(path, &body).await,
        "PUT" => api.put(path, &body).await,
        "DELETE" => api.delete(path).await,
        other => Err(format!("no method {other}").into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_reaches_exactly_its_routes_and_nobody_reaches_any_without_a_token() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    let operator = user(&running, &admin, "otto", &["operator"], None).await?;
    admin
        .create("/v1/departments", &json!({ "id": "hq", "name": "HQ" }))
        .await?;
    let viewer = user(&running, &admin, "vic", &["viewer"], Some("hq")).await?;
    let nobody = Api::anonymous(running.http_addr);
    let mut wrong = Vec::new();
    for &(method, path, roles) in ROUTES {
        for (letter, name, api) in [
            ('a', "admin", &admin),
            ('o', "otto", &operator),
            ('v', "vic", &viewer),
        ] {
            let path = path.replace("{me}", name);
            let (status, body) = call(api, method, &path).await?;
            let allowed = roles.contains(letter);
            let ok = if allowed {
                status != 401 && status != 403 && status < 500
            } else {
                status == 403
            };
            if !ok {
                wrong.push(format!("{name} {method} {path}: {status} {body}"));
            }
        }
        let (status, _) = call(&nobody, method, &path.replace("{me}", "admin")).await?;
        if status != 401 {
            wrong.push(format!("anonymous {method} {path}: {status}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "unexpected answers:\n{}",
        wrong.join("\n")
    );
    // Health and login are open.
    assert_eq!(nobody.get("/health").await?.0, 200);

    // The OpenAPI document describes exactly these routes, and the open ones.
    let (status, document) = nobody.get("/openapi.json").await?;
    assert_eq!(status, 200);
    let mut documented = std::collections::BTreeSet::new();
    for (template, item) in document["paths"].as_object().ok_or("no paths")? {
        for method in item.as_object().ok_or("no operations")?.keys() {
            documented.insert((method.to_uppercase(), template.clone()));
        }
    }
    let mut matrix: std::collections::BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|&(method, path, _)| {
            let path = path.split('?').next().unwrap_or(path);
            documented
                .iter()
                .find(|(m, template)| m == method && same_route(template, path))
                .cloned()
                .ok_or_else(|| format!("{method} {path} is not in the OpenAPI document"))
        })
        .collect::<Result<_, String>>()?;
    // Open routes, and self-service ones the session tests cover.
    for (method, path) in [
        ("GET", "/health"),
        ("POST", "/v1/auth/login"),
        ("POST", "/v1/auth/refresh"),
        ("POST", "/v1/auth/mfa/verify"),
        ("POST", "/v1/auth/oidc"),
        ("POST", "/v1/ingest"),
        ("POST", "/v1/auth/logout"),
        ("POST", "/v1/auth/mfa/enroll"),
    ] {
        matrix.insert((method.into(), path.into()));
    }
    assert_eq!(matrix, documented);
    running.shutdown().await;
    Ok(())
}

/// Whether `path` is an instance of the OpenAPI path `template` (`/v1/devices/{uid}`).
fn same_route(template: &str, path: &str) -> bool {
    let (template, path): (Vec<&str>, Vec<&str>) =
        (template.split('/').collect(), path.split('/').collect());
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}')))
}

/// A token signed with the platform's own key, as the platform would, but with chosen claims.
fn forge(dir: &std::path::Path, claims: &AccessClaims) -> Result<String, Error> {
    let ring = std::fs::read_to_string(dir.join("signing.key"))?;
    let key = ring.split_whitespace().next().ok_or("an empty key ring")?;
    Ok(TokenKeys::from_secret(key.as_bytes())?.sign(claims)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_expired_and_revoked_tokens_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    assert_eq!(admin.get("/v1/devices").await?.0, 200);
    let token = admin.token().ok_or("no token")?.to_owned();

    // The payload changed (another tenant), the signature kept.
    let parts: Vec<&str> = token.split('.').collect();
    let payload =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1])?;
    let mut claims: AccessClaims = serde_json::from_slice(&payload)?;
    let mut forged = claims.clone();
    forged.tid = "other".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&forged)?
        ),
        parts[2]
    );
    let (status, problem) = admin.with_token(&tampered).get("/v1/devices").await?;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("not valid"),
        "{problem}"
    );
    // Signed by another key.
    let other_key = TokenKeys::from_secret(&[1u8; 32])?;
    let (status, _) = admin
        .with_token(&other_key.sign(&claims)?)
        .get("/v1/devices")
        .await?;
    assert_eq!(status, 401);
    // Expired: the right key and session, a past expiry.
    claims.exp = claims.iat - 1;
    let (status, problem) = admin
        .with_token(&forge(dir.path(), &claims)?)
        .get("/v1/devices")
        .await?;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{problem}"
    );
    // A session that does not exist, with a valid signature.
    let ghost = AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sid: "no-such-session".into(),
        exp: claims.iat + 600,
        ..claims.clone()
    };
    let (status, _) = admin
        .with_token(&forge(dir.path(), &ghost)?)
        .get("/v1/devices")
        .await?;
    assert_eq!(status, 401);

    // Logout ends the access token at once.
    assert_eq!(admin.post("/v1/auth/logout", &json!({})).await?.0, 204);
    let (status, problem) = admin.get("/v1/devices").await?;
    assert_eq!(status, 401, "{problem}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_lock_after_failures_and_refresh_tokens_rotate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let nobody = Api::anonymous(running.http_addr);
    let login =
        |password: &str| json!({ "tenant": "acme", "username": "admin", "password": password });
    for _ in 0..4 {
        let (status, problem) = nobody.post("/v1/auth/login", &login("wrong")).await?;
        assert_eq!(status, 401, "{problem}");
    }
    let (status, problem) = nobody.post("/v1/auth/login", &login("wrong")).await?;
    assert_eq!(status, 423, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("locked until")
    );
    let (status, _) = nobody
        .post("/v1/auth/login", &login(ADMIN_PASSWORD))
        .await?;
    assert_eq!(status, 423, "the right password waits out the lock too");
    // An unknown user answers as a wrong password does.
    let (status, problem) = nobody
        .post(
            "/v1/auth/login",
            &json!({ "tenant": "acme", "username": "ghost", "password": "x" }),
        )
        .await?;
    assert_eq!(
        (status, problem["detail"].clone()),
        (401, json!("the user name or the password is wrong"))
    );

    // Another account is not affected; its refresh token works once.
    running
        .auth
        .bootstrap_tenant("beta", "root", ADMIN_PASSWORD)
        .await?;
    let (status, first) = nobody
        .post(
            "/v1/auth/login",
            &json!({ "tenant": "beta", "username": "root", "password": ADMIN_PASSWORD }),
        )
        .await?;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["token_type"], "Bearer");
    let refresh = |token: &Value| json!({ "refresh_token": token });
    let (status, second) = nobody
        .post("/v1/auth/refresh", &refresh(&first["refresh_token"]))
        .await?;
    assert_eq!(status, 200, "{second}");
    let signed_in = nobody.with_token(second["access_token"].as_str().unwrap_or_default());
    let (status, me) = signed_in.get("/v1/auth/me").await?;
    assert_eq!((status, me["id"].as_str()), (200, Some("root")), "{me}");
    // The first refresh token again: the session ends for whoever holds it.
    let (status, _) = nobody
        .post("/v1/auth/refresh", &refresh(&first["refresh_token"]))
        .await?;
    assert_eq!(status, 401);
    assert_eq!(signed_in.get("/v1/auth/me").await?.0, 401);
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_reads_or_changes_another_tenants_data() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let acme = Api::new(running.http_addr).await?;
    acme.create("/v1/departments", &json!({ "id": "hq", "name": "HQ" }))
        .await?;
    air_product(&acme).await?;
    acme.create(
        "/v1/devices",
        &json!({ "uid": "air-1", "identification_code": "SN-1", "product_id": "air", "department_id": "hq" }),
    )
    .await?;
    acme.create(
        "/v1/stat-jobs",
        &json!({ "id": "avg", "name": "avg", "cron": "0 * * * *", "lead_ms": 3_600_000,
                 "signals": ["temperature"], "devices": { "type": "product", "product_id": "air" },
                 "script": "#{ n: count(series.temperature) }", "enabled": true }),
    )
    .await?;
    acme.create(
        "/v1/templates",
        &json!({ "id": "t", "name": "t", "subject": "", "body": "${alarm_id}" }),
    )
    .await?;
    user(&running, &acme, "alice", &["viewer"], Some("hq")).await?;

    let other = tenant_admin(&running, "other").await?;
    for path in [
        "/v1/devices/air-1",
        "/v1/devices/air-1/telemetry",
        "/v1/devices/air-1/latest",
        "/v1/products/air",
        "/v1/products/air/rules",
        "/v1/stat-jobs/avg",
        "/v1/stat-jobs/avg/results?device=air-1",
        "/v1/templates/t",
        "/v1/departments/hq",
        "/v1/users/alice",
    ] {
        let (status, body) = other.get(path).await?;
        assert_eq!(status, 404, "GET {path}: {body}");
    }
    for (path, body) in [
        (
            "/v1/devices/air-1",
            json!({ "identification_code": "X", "product_id": "air", "department_id": "hq" }),
        ),
        ("/v1/products/air", json!({ "name": "mine now" })),
        ("/v1/departments/hq", json!({ "name": "mine now" })),
        ("/v1/users/alice", json!({ "name": "mine now" })),
        (
            "/v1/users/alice/password",
            json!({ "password": "taken over now" }),
        ),
        (
            "/v1/templates/t",
            json!({ "name": "t", "subject": "", "body": "x" }),
        ),
    ] {
        let (status, answer) = other.put(path, &body).await?;
        assert_eq!(status, 404, "PUT {path}: {answer}");
    }
    for path in [
        "/v1/devices/air-1",
        "/v1/products/air",
        "/v1/stat-jobs/avg",
        "/v1/users/alice",
    ] {
        assert_eq!(other.delete(path).await?.0, 404, "DELETE {path}");
    }
    for path in [
        "/v1/devices",
        "/v1/products",
        "/v1/stat-jobs",
        "/v1/templates",
        "/v1/departments",
        "/v1/alarms",
        "/v1/audit",
    ] {
        let (status, list) = other.get(path).await?;
        assert_eq!(status, 200, "{path}: {list}");
        let ids: Vec<&Value> = list["items"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let leaked = ids.iter().any(|item| item.to_string().contains("acme"));
        assert!(!leaked, "{path} shows acme's data: {list}");
    }
    // Their own policy cannot reach into acme.
    let (status, problem) = other
        .put_text(
            "/v1/policy",
            "p, admin, other, /v1/*, *\ng, admin, admin, other\np, admin, acme, /v1/*, *\n",
        )
        .await?;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("line 3"),
        "{problem}"
    );
    // acme's user cannot log in to another tenant.
    let (status, _) = Api::anonymous(running.http_addr)
        .post(
            "/v1/auth/login",
            &json!({ "tenant": "other", "username": "alice", "password": PASSWORD }),
        )
        .await?;
    assert_eq!(status, 401);
    // And acme's data is untouched.
    assert_eq!(
        acme.get("/v1/devices/air-1").await?.1["department_id"],
        "hq"
    );
    assert_eq!(acme.get("/v1/users/alice").await?.1["name"], "alice");
    running.shutdown().await;
    Ok(())
}

/// `{"ts": ..., "temp": ...}` with a time of its own.
fn reading(temperature: f64, ts: i64) -> String {
    format!(r#"{{"ts": {ts}, "temp": {temperature}, "hum": 40, "co2": 600}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_see_the_data_of_their_department_subtree_only() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    for (id, parent) in [
        ("hq", None),
        ("north", Some("hq")),
        ("plant-1", Some("north")),
        ("south", Some("hq")),
    ] {
        admin
            .create(
                "/v1/departments",
                &json!({ "id": id, "name": id, "parent_id": parent }),
            )
            .await?;
    }
    // No loops in the tree.
    let (status, problem) = admin
        .put(
            "/v1/departments/north",
            &json!({ "name": "north", "parent_id": "plant-1" }),
        )
        .await?;
    assert_eq!(status, 422, "{problem}");
    air_product(&admin).await?;
    admin
        .create(
            "/v1/products/air/rules",
            &json!({ "id": "hot", "name": "Too hot", "enabled": true,
                "condition": { "type": "threshold", "signal": "temperature", "direction": "above",
                    "bands": [ { "level": "critical", "threshold": 40 } ], "deadband": 1 },
                "debounce": { "samples": 1, "for_ms": 0 } }),
        )
        .await?;
    for (uid, dept) in [("n-1", "plant-1"), ("s-1", "south")] {
        admin
            .create(
                "/v1/devices",
                &json!({ "uid": uid, "identification_code": uid, "product_id": "air", "department_id": dept }),
            )
            .await?;
    }
    let broker = running.mqtt_addr.ok_or("no embedded broker")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    for uid in ["n-1", "s-1"] {
        let mut device = Device::sign_in(broker, &admin, uid).await?;
        device.publish(reading(45.0, now)).await?;
    }
    eventually("both alarms", WAIT, || async {
        let (_, alarms) = admin.get("/v1/alarms").await?;
        Ok((alarms["items"].as_array().map(Vec::len) == Some(2)).then_some(()))
    })
    .await?;

    let nora = user(&running, &admin, "nora", &["operator"], Some("north")).await?;
    let (_, me) = nora.get("/v1/auth/me").await?;
    assert_eq!(me["data_scope"], json!(["north", "plant-1"]), "{me}");
    let (_, devices) = nora.get("/v1/devices").await?;
    let uids: Vec<&str> = devices["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["uid"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(uids, ["n-1"], "{devices}");
    // Paging skips what the scope hides: one device per page, and it is hers.
    let paged: Vec<Value> = nora
        .all_pages("/v1/devices", 1)
        .await?
        .iter()
        .map(|d| d["uid"].clone())
        .collect();
    assert_eq!(paged, ["n-1"]);
    assert_eq!(nora.get("/v1/devices/n-1/latest").await?.0, 200);
    for path in [
        "/v1/devices/s-1",
        "/v1/devices/s-1/latest",
        "/v1/devices/s-1/telemetry",
    ] {
        assert_eq!(nora.get(path).await?.0, 404, "{path}");
    }
    let (_, alarms) = nora.get("/v1/alarms").await?;
    let seen: Vec<&str> = alarms["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["device_uid"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(seen, ["n-1"], "{alarms}");
    // Alarms page with a cursor, as every list does.
    let (_, first) = admin.get("/v1/alarms?limit=1").await?;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(1), "{first}");
    let cursor = first["next"].as_str().ok_or("no next cursor")?;
    let (_, second) = admin
        .get(&format!("/v1/alarms?limit=1&cursor={cursor}"))
        .await?;
    assert_eq!(
        second["items"].as_array().map(Vec::len),
        Some(1),
        "{second}"
    );
    assert_ne!(
        first["items"][0]["alarm_id"],
        second["items"][0]["alarm_id"]
    );
    if let Some(cursor) = second["next"].as_str() {
        let (_, third) = admin
            .get(&format!("/v1/alarms?limit=1&cursor={cursor}"))
            .await?;
        assert_eq!(third["items"], json!([]), "{third}");
    }
    let (_, all) = admin.get("/v1/alarms?device=s-1").await?;
    let south_alarm = all["items"][0]["alarm_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, _) = nora
        .post(&format!("/v1/alarms/{south_alarm}/acknowledge"), &json!({}))
        .await?;
    assert_eq!(
        status, 404,
        "an alarm outside the scope is not there for her"
    );
    // Nor can she put a device into a department she does not manage.
    let (status, problem) = nora
        .post(
            "/v1/devices",
            &json!({ "uid": "s-2", "identification_code": "s-2", "product_id": "air", "department_id": "south" }),
        )
        .await?;
    assert_eq!(status, 403, "{problem}");
    let (status, problem) = nora
        .put(
            "/v1/devices/n-1",
            &json!({ "identification_code": "n-1", "product_id": "air", "department_id": "south" }),
        )
        .await?;
    assert_eq!(status, 403, "{problem}");

    // A role can grant more: department:south, by the role API.
    let (status, role) = admin
        .put(
            "/v1/roles/south-reader",
            &json!({ "permissions": [ { "object": "department:south", "action": "GET" } ] }),
        )
        .await?;
    assert_eq!(status, 200, "{role}");
    admin
        .put(
            "/v1/users/nora",
            &json!({ "name": "Nora", "department_id": "north", "roles": ["operator", "south-reader"] }),
        )
        .await?;
    assert_eq!(nora.get("/v1/devices/s-1").await?.0, 200);
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_round_trips_as_casbin_csv_and_cannot_lock_out_its_editor() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    user(&running, &admin, "otto", &["operator"], None).await?;
    let (status, csv) = admin.get_text("/v1/policy").await?;
    assert_eq!(status, 200);
    assert!(csv.contains("p, admin, acme, /v1/*, *\n"), "{csv}");
    assert!(csv.contains("g, otto, operator, acme\n"), "{csv}");

    // Add a role that may only read alarms, and give it to otto instead of operator.
    let edited = csv.replace("g, otto, operator, acme\n", "g, otto, alarm-reader, acme\n")
        + "p, alarm-reader, acme, /v1/alarms*, GET\n";
    let (status, summary) = admin.put_text("/v1/policy", &edited).await?;
    assert_eq!(status, 200, "{summary}");
    let otto = Api::login(running.http_addr, "acme", "otto", PASSWORD).await?;
    assert_eq!(otto.get("/v1/alarms").await?.0, 200);
    assert_eq!(otto.get("/v1/devices").await?.0, 403);
    let (_, roles) = admin.get("/v1/roles/alarm-reader").await?;
    assert_eq!(roles["members"], json!(["otto"]), "{roles}");
    let (_, exported) = admin.get_text("/v1/policy").await?;
    assert!(
        exported.contains("p, alarm-reader, acme, /v1/alarms*, GET"),
        "{exported}"
    );

    // Administrators cannot disable themselves or reset their own TOTP through the admin
    // routes (that ended their own session); their token keeps working.
    let (status, problem) = admin
        .put(
            "/v1/users/admin",
            &json!({ "name": "admin", "roles": ["admin"], "disabled": true }),
        )
        .await?;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/disabled", "{problem}");
    let (status, problem) = admin.delete("/v1/users/admin/mfa").await?;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(admin.get("/v1/auth/me").await?.0, 200);

    // A policy that takes the editor's own right away is refused, and so is nonsense.
    let (status, problem) = admin
        .put_text(
            "/v1/policy",
            "p, viewer, acme, /v1/*, GET\ng, admin, viewer, acme\n",
        )
        .await?;
    assert_eq!(status, 422, "{problem}");
    let (status, problem) = admin.put_text("/v1/policy", "p, admin, acme\n").await?;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("line 1"),
        "{problem}"
    );
    let (status, problem) = admin
        .put_text(
            "/v1/policy",
            "p, admin, acme, /v1/*, *\ng, admin, admin, acme\ng, mallory, admin, acme\n",
        )
        .await?;
    assert_eq!(status, 422, "an unknown user: {problem}");
    assert_eq!(
        admin.get("/v1/users").await?.0,
        200,
        "the admin still is one"
    );
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_audited_with_who_what_when_where_and_before_after() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    admin
        .create(
            "/v1/departments",
            &json!({ "id": "hq", "name": "Head office" }),
        )
        .await?;
    admin
        .put("/v1/departments/hq", &json!({ "name": "Headquarters" }))
        .await?;
    admin
        .create(
            "/v1/users",
            &json!({ "id": "bob", "password": "bob's first password", "roles": ["viewer"] }),
        )
        .await?;
    let bob = Api::login(running.http_addr, "acme", "bob", "bob's first password").await?;
    // A refused change is recorded too, and a failed login.
    assert_eq!(
        bob.post("/v1/departments", &json!({ "id": "x", "name": "x" }))
            .await?
            .0,
        403
    );
    let (status, _) = Api::anonymous(running.http_addr)
        .post(
            "/v1/auth/login",
            &json!({ "tenant": "acme", "username": "bob", "password": "guess" }),
        )
        .await?;
    assert_eq!(status, 401);
    admin.delete("/v1/departments/hq").await?;
    // Reads are not audited.
    admin.get("/v1/departments").await?;

    let (status, page) = admin.get("/v1/audit?path=/v1/departments").await?;
    assert_eq!(status, 200, "{page}");
    let entries = page["items"].as_array().ok_or("no items")?;
    let summary: Vec<(String, String, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or_default().to_owned(),
                e["method"].as_str().unwrap_or_default().to_owned(),
                e["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let expected = [
        ("admin", "DELETE", 204),
        ("bob", "POST", 403),
        ("admin", "PUT", 200),
        ("admin", "POST", 201),
    ];
    let expected: Vec<(String, String, u64)> = expected
        .iter()
        .map(|(a, m, s)| (a.to_string(), m.to_string(), *s))
        .collect();
    assert_eq!(summary, expected, "newest first: {page}");
    let put = &entries[2];
    assert_eq!(put["before"]["name"], "Head office", "{put}");
    assert_eq!(put["after"]["name"], "Headquarters", "{put}");
    assert_eq!(put["source"], "127.0.0.1", "{put}");
    assert!(put["at"].as_i64().unwrap_or_default() >= started, "{put}");
    let delete = &entries[0];
    assert_eq!(
        (delete["before"]["name"].clone(), delete["after"].clone()),
        (json!("Headquarters"), Value::Null)
    );
    assert!(
        entries[1]["after"]["refused"]
            .as_str()
            .unwrap_or_default()
            .contains("viewer")
    );

    // The failed login, under the name it tried; the user's password never shows.
    let (_, logins) = admin.get("/v1/audit?path=/v1/auth/login&actor=bob").await?;
    assert_eq!(logins["items"][0]["status"], 401, "{logins}");
    let (_, created) = admin.get("/v1/audit?path=/v1/users&actor=admin").await?;
    assert!(
        !created.to_string().contains("bob's first password"),
        "{created}"
    );
    assert_eq!(created["items"][0]["after"]["id"], "bob", "{created}");

    // Paging: one at a time, no repeats, to the end.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit?path=/v1/departments&limit=1&cursor={c}"),
            None => "/v1/audit?path=/v1/departments&limit=1".to_owned(),
        };
        let (_, page) = admin.get(&path).await?;
        seen.extend(
            page["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e["id"].clone()),
        );
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(seen.len() <= entries.len(), "paging does not end");
    }
    let ids: Vec<Value> = entries.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(seen, ids);
    running.shutdown().await;
    Ok(())
}

/// The code an authenticator app with this secret shows now.
fn app_code(secret: &str) -> String {
    let app = TotpEnrollment {
        secret: secret.to_owned(),
        confirmed: true,
        last_step: 0,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    app.code_at(now)
}

/// The TOTP seed of an acme user as the database keeps it.
async fn sealed_seed(running: &Running, user: &str) -> Result<String, Error> {
    Ok(running
        .services
        .catalog
        .credential("acme", user)
        .await?
        .and_then(|c| c.value.totp)
        .ok_or("no enrollment")?
        .secret)
}

/// The `kid` header of a token.
fn kid(token: &str) -> Result<String, Error> {
    Ok(jsonwebtoken::decode_header(token)?
        .kid
        .ok_or("a token without kid")?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_sign_anew_without_signing_anyone_out() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    let bob = user(&running, &admin, "bob", &["viewer"], None).await?;
    let (_, enrollment) = bob.post("/v1/auth/mfa/enroll", &json!({})).await?;
    let secret = enrollment["secret"].as_str().ok_or("no secret")?.to_owned();
    let (status, confirmed) = bob
        .post(
            "/v1/auth/mfa/confirm",
            &json!({ "code": app_code(&secret) }),
        )
        .await?;
    assert_eq!(status, 200, "{confirmed}");
    let sealed_before = sealed_seed(&running, "bob").await?;
    let old_token = admin.token().ok_or("no token")?.to_owned();
    running.shutdown().await;

    iot_local::secrets::rotate_keys(dir.path())?;
    let running = start_platform(dir.path(), None).await?;
    // A token of the old key still opens the API; a new login is signed by the new key.
    let old_admin = Api::anonymous(running.http_addr).with_token(&old_token);
    assert_eq!(old_admin.get("/v1/devices").await?.0, 200);
    let fresh = Api::new(running.http_addr).await?;
    assert_ne!(kid(fresh.token().unwrap_or_default())?, kid(&old_token)?);
    // Bob's seed, sealed under the old sealing key, still checks his code (the next step's,
    // as the confirming one is spent) and is sealed again under the new key.
    let anonymous = Api::anonymous(running.http_addr);
    let (_, step) = anonymous
        .post(
            "/v1/auth/login",
            &json!({ "tenant": "acme", "username": "bob", "password": iot_e2e::USER_PASSWORD }),
        )
        .await?;
    let next_step = TotpEnrollment {
        secret: secret.clone(),
        confirmed: true,
        last_step: 0,
    }
    .code_at(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64
            + 30_000,
    );
    let (status, tokens) = anonymous
        .post(
            "/v1/auth/mfa/verify",
            &json!({ "mfa_token": step["mfa_token"], "code": next_step }),
        )
        .await?;
    assert_eq!(status, 200, "{tokens}");
    let sealed_after = sealed_seed(&running, "bob").await?;
    assert_ne!(
        sealed_after, sealed_before,
        "sealed again under the new key"
    );
    running.shutdown().await;

    // Two rotations later the first key has left the ring: its tokens are refused.
    iot_local::secrets::rotate_keys(dir.path())?;
    iot_local::secrets::rotate_keys(dir.path())?;
    let running = start_platform(dir.path(), None).await?;
    let old_admin = Api::anonymous(running.http_addr).with_token(&old_token);
    let (status, problem) = old_admin.get("/v1/devices").await?;
    assert_eq!(status, 401, "{problem}");
    running.shutdown().await;
    Ok(())
}

/// Enrolls the signed-in user in TOTP and logs them in again with a code.
async fn enroll_and_log_in(api: &Api, user: &str, password: &str) -> Result<Api, Error> {
    let (_, enrollment) = api.post("/v1/auth/mfa/enroll", &json!({})).await?;
    let secret = enrollment["secret"].as_str().ok_or("no secret")?;
    let (status, confirmed) = api
        .post("/v1/auth/mfa/confirm", &json!({ "code": app_code(secret) }))
        .await?;
    assert_eq!(status, 200, "{confirmed}");
    let (_, step) = api
        .post(
            "/v1/auth/login",
            &json!({ "tenant": "acme", "username": user, "password": password }),
        )
        .await?;
    // The confirming code is spent; a recovery code stands in for the next one.
    let (status, tokens) = api
        .post(
            "/v1/auth/mfa/verify",
            &json!({ "mfa_token": step["mfa_token"], "code": confirmed["recovery_codes"][0] }),
        )
        .await?;
    assert_eq!(status, 200, "{tokens}");
    Ok(api.with_token(tokens["access_token"].as_str().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_enrollment_login_recovery_and_a_tenant_that_requires_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    let bob = user(&running, &admin, "bob", &["viewer"], None).await?;
    let nobody = Api::anonymous(running.http_addr);

    // Requiring MFA needs the administrator's own login to have had a second factor.
    let (status, problem) = admin
        .put("/v1/settings", &json!({ "require_mfa": true }))
        .await?;
    assert_eq!(status, 422, "{problem}");
    let admin = enroll_and_log_in(&admin, "admin", iot_e2e::ADMIN_PASSWORD).await?;
    let (status, settings) = admin
        .put("/v1/settings", &json!({ "require_mfa": true }))
        .await?;
    assert_eq!(status, 200, "{settings}");

    // The tenant requires MFA: bob's password-only login opens only his own auth routes.
    let (status, problem) = bob.get("/v1/devices").await?;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("/v1/auth/mfa/enroll")
    );
    assert_eq!(bob.get("/v1/auth/me").await?.0, 200);

    // Enroll: a secret for the app, then a code from it to confirm.
    let (status, enrollment) = bob.post("/v1/auth/mfa/enroll", &json!({})).await?;
    assert_eq!(status, 200, "{enrollment}");
    let secret = enrollment["secret"].as_str().ok_or("no secret")?.to_owned();
    assert!(
        enrollment["otpauth_url"]
            .as_str()
            .unwrap_or_default()
            .starts_with("otpauth://totp/")
    );
    // The database keeps the secret sealed, not as the app got it.
    let stored = running
        .services
        .catalog
        .credential("acme", "bob")
        .await?
        .ok_or("no credential")?;
    let sealed = stored.value.totp.ok_or("no enrollment")?.secret;
    assert!(
        sealed.starts_with("v2:") && !sealed.contains(&secret),
        "{sealed}"
    );
    let (status, problem) = bob
        .post("/v1/auth/mfa/confirm", &json!({ "code": "123456" }))
        .await?;
    assert_eq!(status, 401, "a wrong code: {problem}");
    let (status, confirmed) = bob
        .post(
            "/v1/auth/mfa/confirm",
            &json!({ "code": app_code(&secret) }),
        )
        .await?;
    assert_eq!(status, 200, "{confirmed}");
    let recovery: Vec<String> = serde_json::from_value(confirmed["recovery_codes"].clone())?;
    assert_eq!(recovery.len(), 10);

    // Now a login asks for the second factor.
    let credentials = json!({ "tenant": "acme", "username": "bob", "password": PASSWORD });
    let (status, step) = nobody.post("/v1/auth/login", &credentials).await?;
    assert_eq!(
        (status, step["mfa_required"].clone()),
        (200, json!(true)),
        "{step}"
    );
    assert!(step.get("access_token").is_none(), "{step}");
    let mfa_token = step["mfa_token"].as_str().unwrap_or_default();
    // The intermediate token opens nothing.
    assert_eq!(
        nobody.with_token(mfa_token).get("/v1/auth/me").await?.0,
        401
    );
    let (status, problem) = nobody
        .post(
            "/v1/auth/mfa/verify",
            &json!({ "mfa_token": mfa_token, "code": "000000" }),
        )
        .await?;
    assert_eq!(status, 401, "{problem}");
    // The code that confirmed was used; recovery codes work, each once.
    let (status, tokens) = nobody
        .post(
            "/v1/auth/mfa/verify",
            &json!({ "mfa_token": mfa_token, "code": recovery[0] }),
        )
        .await?;
    assert_eq!(status, 200, "{tokens}");
    let bob = nobody.with_token(tokens["access_token"].as_str().unwrap_or_default());
    assert_eq!(
        bob.get("/v1/devices").await?.0,
        200,
        "a second factor satisfies the tenant"
    );
    let (status, _) = nobody
        .post(
            "/v1/auth/mfa/verify",
            &json!({ "mfa_token": mfa_token, "code": recovery[0] }),
        )
        .await?;
    assert_eq!(status, 401);

    // Neither the secret nor the recovery codes are in the audit log.
    let (status, audit) = admin.get("/v1/audit?actor=bob").await?;
    assert_eq!(status, 200, "{audit}");
    assert!(!audit.to_string().contains(&secret), "{audit}");
    assert!(!audit.to_string().contains(&recovery[1]), "{audit}");

    // A lost phone: the administrator turns bob's MFA off, and his sessions end.
    let (status, answer) = admin.delete("/v1/users/bob/mfa").await?;
    assert_eq!(status, 204, "{answer}");
    assert_eq!(bob.get("/v1/auth/me").await?.0, 401);
    let (_, again) = nobody.post("/v1/auth/login", &credentials).await?;
    assert!(again["access_token"].is_string(), "{again}");
    running.shutdown().await;
    Ok(())
}

/// A stand-in OpenID Connect provider: an EC P-256 key of its own, its JWKS served over HTTP on
/// 127.0.0.1, and ID tokens it signs.
struct IdentityProvider {
    url: String,
    kid: String,
    key: jsonwebtoken::EncodingKey,
    keys: Arc<Mutex<jsonwebtoken::jwk::JwkSet>>,
}

fn ec_key(kid: &str) -> Result<(jsonwebtoken::EncodingKey, jsonwebtoken::jwk::Jwk), Error> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .map_err(|e| format!("key generation: {e}"))?;
    let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256)?;
    jwk.common.key_id = Some(kid.to_owned());
    Ok((key, jwk))
}

impl IdentityProvider {
    async fn start() -> Result<Self, Error> {
        let (key, jwk) = ec_key("key-1")?;
        let keys = Arc::new(Mutex::new(jsonwebtoken::jwk::JwkSet { keys: vec![jwk] }));
        let served = keys.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let set = served
                    .lock()
                    .map(|s| s.clone())
                    .unwrap_or(jsonwebtoken::jwk::JwkSet { keys: vec![] });
                async move { axum::Json(set) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            kid: "key-1".into(),
            key,
            keys,
        })
    }

    /// Replaces the published keys with a new one, as a provider's key rotation does.
    fn rotate(&mut self) -> Result<(), Error> {
        let (key, jwk) = ec_key("key-2")?;
        *self.keys.lock().map_err(|_| "poisoned")? = jsonwebtoken::jwk::JwkSet { keys: vec![jwk] };
        self.key = key;
        self.kid = "key-2".into();
        Ok(())
    }

    fn settings(&self, auto_create: bool) -> Value {
        json!({ "oidc": {
            "issuer": format!("{}/", self.url), "client_id": "iot-web",
            "jwks_uri": format!("{}/jwks", self.url), "username_claim": "email",
            "auto_create": auto_create, "default_roles": ["viewer"]
        } })
    }

    fn id_token(&self, claims: Value) -> Result<String, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let mut all = json!({
            "iss": format!("{}/", self.url), "aud": "iot-web", "sub": "idp-123",
            "iat": now, "exp": now + 300
        });
        if let (Some(base), Some(extra)) = (all.as_object_mut(), claims.as_object()) {
            base.extend(extra.clone());
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &all, &self.key)?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_accepts_the_providers_id_tokens_only() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    let nobody = Api::anonymous(running.http_addr);
    let mut idp = IdentityProvider::start().await?;
    let sso = |token: String| json!({ "tenant": "acme", "id_token": token });

    // Not set up yet.
    let token = idp.id_token(json!({ "email": "carol" }))?;
    assert_eq!(
        nobody.post("/v1/auth/oidc", &sso(token.clone())).await?.0,
        400
    );
    let (status, answer) = admin.put("/v1/settings", &idp.settings(false)).await?;
    assert_eq!(status, 200, "{answer}");
    // A user the administrator has not linked is not let in, even with a matching name.
    let (status, problem) = nobody.post("/v1/auth/oidc", &sso(token.clone())).await?;
    assert_eq!(status, 403, "{problem}");
    admin
        .create(
            "/v1/users",
            &json!({ "id": "carol", "password": PASSWORD, "roles": ["operator"] }),
        )
        .await?;
    let token = idp.id_token(json!({ "email": "carol" }))?;
    let (status, problem) = nobody.post("/v1/auth/oidc", &sso(token)).await?;
    assert_eq!(status, 403, "a matching name is no link: {problem}");
    let (status, linked) = admin
        .put(
            "/v1/users/carol",
            &json!({ "roles": ["operator"], "sso_subject": "idp-123" }),
        )
        .await?;
    assert_eq!(status, 200, "{linked}");
    let token = idp.id_token(json!({ "email": "someone-else" }))?;
    let (status, tokens) = nobody.post("/v1/auth/oidc", &sso(token.clone())).await?;
    assert_eq!(status, 200, "{tokens}");
    // An ID token works once.
    let (status, problem) = nobody.post("/v1/auth/oidc", &sso(token)).await?;
    assert_eq!(status, 401, "a replayed ID token: {problem}");
    let carol = nobody.with_token(tokens["access_token"].as_str().unwrap_or_default());
    let (_, me) = carol.get("/v1/auth/me").await?;
    assert_eq!(
        (me["id"].as_str(), me["roles"].clone()),
        (Some("carol"), json!(["operator"]))
    );

    // Tokens the provider did not issue for us.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    for (why, claims) in [
        (
            "another audience",
            json!({ "email": "carol", "aud": "someone-else" }),
        ),
        (
            "another issuer",
            json!({ "email": "carol", "iss": "https://evil.example/" }),
        ),
        ("expired", json!({ "email": "carol", "exp": now - 3600 })),
    ] {
        let (status, problem) = nobody
            .post("/v1/auth/oidc", &sso(idp.id_token(claims)?))
            .await?;
        assert_eq!(status, 401, "{why}: {problem}");
    }
    let (forger_key, _) = ec_key("key-1")?;
    let forged = IdentityProvider {
        key: forger_key,
        ..IdentityProvider::start().await?
    };
    let forged = IdentityProvider {
        url: idp.url.clone(),
        ..forged
    };
    let (status, _) = nobody
        .post(
            "/v1/auth/oidc",
            &sso(forged.id_token(json!({ "email": "carol" }))?),
        )
        .await?;
    assert_eq!(status, 401, "signed by a key the provider does not publish");
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "iss": format!("{}/", idp.url), "aud": "iot-web", "sub": "x", "email": "carol", "exp": now + 300 }),
        &jsonwebtoken::EncodingKey::from_secret(b"a shared secret nobody should accept"),
    )?;
    let (status, problem) = nobody.post("/v1/auth/oidc", &sso(hs256)).await?;
    assert_eq!(status, 401, "{problem}");

    // The provider rotates its key: the new one is fetched when a token names it.
    idp.rotate()?;
    let (status, answer) = nobody
        .post(
            "/v1/auth/oidc",
            &sso(idp.id_token(json!({ "email": "carol" }))?),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");

    // With auto_create, a first sign-in creates the user with the default roles, named by a
    // verified e-mail address only, and never takes over a local user of that name.
    admin.put("/v1/settings", &idp.settings(true)).await?;
    for (why, claims, expected) in [
        (
            "an unverified address",
            json!({ "sub": "idp-456", "email": "Dave@Example.com", "email_verified": false }),
            401,
        ),
        (
            "a local user's name",
            json!({ "sub": "idp-789", "email": "admin", "email_verified": true }),
            403,
        ),
    ] {
        let (status, problem) = nobody
            .post("/v1/auth/oidc", &sso(idp.id_token(claims)?))
            .await?;
        assert_eq!(status, expected, "{why}: {problem}");
    }
    let (status, tokens) = nobody
        .post(
            "/v1/auth/oidc",
            &sso(idp.id_token(
                json!({ "sub": "idp-456", "email": "Dave@Example.com", "email_verified": true, "name": "Dave" }),
            )?),
        )
        .await?;
    assert_eq!(status, 200, "{tokens}");
    let dave = nobody.with_token(tokens["access_token"].as_str().unwrap_or_default());
    assert_eq!(dave.get("/v1/devices").await?.0, 200);
    assert_eq!(dave.post("/v1/devices", &json!({})).await?.0, 403);
    let (_, user) = admin.get("/v1/users/dave_example.com").await?;
    assert_eq!(
        (user["name"].as_str(), user["roles"].clone()),
        (Some("Dave"), json!(["viewer"])),
        "{user}"
    );
    // The tenant's TOTP applies to single sign-on unless it trusts the provider's `amr`.
    let (_, enrollment) = dave.post("/v1/auth/mfa/enroll", &json!({})).await?;
    let secret = enrollment["secret"].as_str().ok_or("no secret")?;
    let (status, confirmed) = dave
        .post("/v1/auth/mfa/confirm", &json!({ "code": app_code(secret) }))
        .await?;
    assert_eq!(status, 200, "{confirmed}");
    let token = |amr: Value| {
        idp.id_token(json!({ "sub": "idp-456", "email": "Dave@Example.com", "email_verified": true, "amr": amr }))
    };
    let (status, step) = nobody
        .post("/v1/auth/oidc", &sso(token(json!(["pwd", "mfa"]))?))
        .await?;
    assert_eq!(
        (status, &step["mfa_required"]),
        (200, &json!(true)),
        "{step}"
    );
    let (status, tokens) = nobody
        .post(
            "/v1/auth/mfa/verify",
            &json!({ "mfa_token": step["mfa_token"], "code": confirmed["recovery_codes"][0] }),
        )
        .await?;
    assert_eq!(status, 200, "{tokens}");
    let mut trusting = idp.settings(true);
    trusting["oidc"]["trust_amr"] = json!(true);
    admin.put("/v1/settings", &trusting).await?;
    let (status, tokens) = nobody
        .post("/v1/auth/oidc", &sso(token(json!(["pwd", "mfa"]))?))
        .await?;
    assert!(
        status == 200 && tokens["access_token"].is_string(),
        "{tokens}"
    );
    let (status, step) = nobody
        .post("/v1/auth/oidc", &sso(token(json!(["pwd"]))?))
        .await?;
    assert_eq!(
        (status, &step["mfa_required"]),
        (200, &json!(true)),
        "{step}"
    );

    // Insecure provider settings are refused.
    let (status, _) = admin
        .put("/v1/settings", &json!({ "oidc": { "issuer": "http://idp.example/", "client_id": "x", "jwks_uri": "http://idp.example/jwks" } }))
        .await?;
    assert_eq!(status, 422);
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_without_mqtt_post_over_http_with_their_own_token() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    air_product(&admin).await?;
    for uid in ["air-1", "air-2"] {
        admin
            .create(
                "/v1/devices",
                &json!({ "uid": uid, "identification_code": uid, "product_id": "air", "department_id": "hq" }),
            )
            .await?;
    }
    let (status, issued) = admin.post("/v1/devices/air-1/token", &json!({})).await?;
    assert_eq!(status, 201, "{issued}");
    let token = issued["device_token"]
        .as_str()
        .ok_or("no token")?
        .to_owned();
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/ingest", running.http_addr);
    let post = |auth: String, body: String| {
        client
            .post(&url)
            .header("authorization", auth)
            .body(body)
            .send()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let good = format!(r#"{{"ts": {now}, "temp": 22.5, "hum": 40, "co2": 600}}"#);

    let response = post(format!("Device {token}"), good.clone()).await?;
    assert_eq!(response.status().as_u16(), 200);
    let receipt: Value = response.json().await?;
    assert_eq!(receipt, json!({ "status": "stored", "records": 1 }));
    let (_, latest) = admin.get("/v1/devices/air-1/latest").await?;
    assert_eq!(latest["signals"]["temperature"]["value"], 22.5, "{latest}");

    // What the script refuses is kept with the reason, as over MQTT.
    let response = post(format!("Device {token}"), "not json".into()).await?;
    assert_eq!(response.status().as_u16(), 422);
    let receipt: Value = response.json().await?;
    assert_eq!(receipt["status"], "rejected", "{receipt}");

    // A wrong secret, another device's name with this secret, a user's token: refused.
    let (_, secret) = token.split_once('.').ok_or("token shape")?;
    for auth in [
        format!("Device air-1.{}x", secret),
        format!("Device air-2.{secret}"),
        format!("Bearer {}", admin.token().unwrap_or_default()),
        String::new(),
    ] {
        let response = post(auth.clone(), good.clone()).await?;
        assert_eq!(response.status().as_u16(), 401, "{auth}");
    }
    // More devices at once from CSV: each row on its own, refusals by line.
    let (status, imported) = admin
        .put_text_as(
            "POST",
            "/v1/devices/import",
            "uid,identification_code,product_id,department_id,name\n\
             air-3,SN-3,air,hq,Lab 3\n\
             air-4,SN-4,nope,hq,Lab 4\n\
             air-1,SN-9,air,hq,again\n\
             bad uid,SN-5,air,hq,x\n",
        )
        .await?;
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported["created"], json!(["air-3"]), "{imported}");
    let lines: Vec<u64> = imported["refused"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["line"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(lines, [3, 4, 5], "{imported}");
    assert_eq!(admin.get("/v1/devices/air-3").await?.1["name"], "Lab 3");

    // Lists come a page at a time: `limit`, and `next` as the following page's `cursor`.
    let uids: Vec<Value> = admin
        .all_pages("/v1/devices", 2)
        .await?
        .iter()
        .map(|d| d["uid"].clone())
        .collect();
    assert_eq!(uids, ["air-1", "air-2", "air-3"]);
    assert_eq!(admin.get("/v1/devices?limit=0").await?.0, 400);
    assert_eq!(admin.get("/v1/devices?cursor=not-ours").await?.0, 400);

    // The data exported as CSV and JSON files, downloaded through the API.
    admin
        .create("/v1/departments", &json!({ "id": "hq", "name": "HQ" }))
        .await?;
    let viewer = user(&running, &admin, "vic", &["viewer"], Some("hq")).await?;
    let (status, csv_export) = viewer
        .post(
            "/v1/devices/air-1/export",
            &json!({ "format": "csv", "signals": ["temperature"] }),
        )
        .await?;
    assert_eq!(status, 201, "{csv_export}");
    assert_eq!(csv_export["points"], 1, "{csv_export}");
    let (status, csv) = viewer
        .get_text(csv_export["download_url"].as_str().unwrap_or_default())
        .await?;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "time,time_ms,signal,value");
    assert!(lines[1].ends_with(",temperature,22.5"), "{csv}");
    let (_, json_export) = viewer
        .post("/v1/devices/air-1/export", &json!({ "format": "json" }))
        .await?;
    let (_, rows) = viewer
        .get(json_export["download_url"].as_str().unwrap_or_default())
        .await?;
    assert_eq!(rows.as_array().map(Vec::len), Some(3), "{rows}");
    // Nobody else's.
    let id = csv_export["id"].as_str().unwrap_or_default();
    let other = tenant_admin(&running, "other").await?;
    assert_eq!(
        other.get(&format!("/v1/exports/{id}/download")).await?.0,
        404
    );
    assert_eq!(
        Api::anonymous(running.http_addr)
            .get(&format!("/v1/exports/{id}/download"))
            .await?
            .0,
        401
    );
    let (status, problem) = viewer
        .post("/v1/devices/air-1/export", &json!({ "format": "xml" }))
        .await?;
    assert_eq!(status, 422, "{problem}");

    // Revoked, it stops working.
    assert_eq!(admin.delete("/v1/devices/air-1/token").await?.0, 204);
    assert_eq!(
        post(format!("Device {token}"), good)
            .await?
            .status()
            .as_u16(),
        401
    );
    running.shutdown().await;
    Ok(())
}

/// An MQTT client that collects what it receives on `filters`.
async fn listen(
    addr: std::net::SocketAddr,
    client_id: &str,
    token: &str,
    filters: &[&str],
) -> Result<
    (
        rumqttc::AsyncClient,
        tokio::sync::mpsc::Receiver<(String, Value)>,
    ),
    Error,
> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    options.set_credentials(client_id, token);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let (subscribed_tx, mut subscribed) = tokio::sync::mpsc::channel(1);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    // The connection lives as long as its event loop task, which keeps the client.
    let keep = client.clone();
    tokio::spawn(async move {
        let _client = keep;
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    let _ = subscribed_tx.send(()).await;
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let body = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if tx.send((p.topic, body)).await.is_err() {
                        return;
                    }
                }
                _ => {}
            }
        }
    });
    for filter in filters {
        client.subscribe(*filter, QoS::AtLeastOnce).await?;
        tokio::time::timeout(WAIT, subscribed.recv())
            .await
            .map_err(|_| "no SUBACK")?;
    }
    Ok((client, rx))
}

async fn next(
    rx: &mut tokio::sync::mpsc::Receiver<(String, Value)>,
) -> Result<(String, Value), Error> {
    Ok(tokio::time::timeout(WAIT, rx.recv())
        .await
        .map_err(|_| "nothing arrived")?
        .ok_or("the subscriber ended")?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_provisioned_configured_and_commanded_through_the_api() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let mqtt = running.mqtt_addr.ok_or("no embedded broker")?;
    let mqtts = running.mqtts_addr.ok_or("no embedded TLS listener")?;
    let admin = Api::new(running.http_addr).await?;
    air_product(&admin).await?;

    // Created with provisioning: the certificate and key come back once.
    let device = json!({ "uid": "air-1", "identification_code": "SN-1", "product_id": "air", "department_id": "hq" });
    let (status, created) = admin.post("/v1/devices?provision=true", &device).await?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["uid"], "air-1");
    let credentials = &created["credentials"];
    assert!(
        credentials["certificate_pem"]
            .as_str()
            .unwrap_or_default()
            .starts_with("-----BEGIN CERTIFICATE-----"),
        "{created}"
    );
    assert!(
        credentials["private_key_pem"]
            .as_str()
            .unwrap_or_default()
            .starts_with("-----BEGIN PRIVATE KEY-----"),
        "{created}"
    );
    assert_eq!(credentials["endpoint"], format!("mqtts://{mqtts}"));
    assert!(dir.path().join("device-ca.pem").exists());
    let (_, read) = admin.get("/v1/devices/air-1").await?;
    assert!(read.get("credentials").is_none(), "{read}");
    let (status, problem) = admin
        .post("/v1/devices/air-1/certificate", &json!({}))
        .await?;
    assert_eq!(status, 409, "{problem}");

    // Desired configuration: merged into the shadow, and the delta published to the device.
    let token = device_token(&admin, "air-1").await?;
    let (device_client, mut heard) = listen(
        mqtt,
        "air-1",
        &token,
        &[
            "things/air-1/down/#",
            "$aws/things/air-1/shadow/update/delta",
        ],
    )
    .await?;
    let (status, shadow) = admin
        .put(
            "/v1/devices/air-1/shadow/desired",
            &json!({ "interval_s": 30, "mode": "eco" }),
        )
        .await?;
    assert_eq!(status, 200, "{shadow}");
    assert_eq!(
        shadow["state"]["desired"],
        json!({ "interval_s": 30, "mode": "eco" })
    );
    let (topic, delta) = next(&mut heard).await?;
    assert_eq!(topic, "$aws/things/air-1/shadow/update/delta");
    assert_eq!(
        delta["state"],
        json!({ "interval_s": 30, "mode": "eco" }),
        "{delta}"
    );
    let (_, shadow) = admin
        .put(
            "/v1/devices/air-1/shadow/desired",
            &json!({ "interval_s": null }),
        )
        .await?;
    assert_eq!(
        shadow["state"]["desired"],
        json!({ "mode": "eco" }),
        "{shadow}"
    );
    assert_eq!(shadow["version"], 2, "{shadow}");
    next(&mut heard).await?;
    let (_, read) = admin.get("/v1/devices/air-1/shadow").await?;
    assert_eq!(read, shadow);
    let (status, _) = admin
        .put("/v1/devices/air-1/shadow/desired", &json!([1]))
        .await?;
    assert_eq!(status, 400);

    // The device reports its state as on AWS; the delta is then only what it lacks.
    device_client
        .publish(
            "$aws/things/air-1/shadow/update",
            rumqttc::QoS::AtLeastOnce,
            false,
            json!({ "state": { "reported": { "mode": "eco", "fw": "1.2" } } }).to_string(),
        )
        .await?;
    eventually("the reported state", WAIT, || async {
        let (_, shadow) = admin.get("/v1/devices/air-1/shadow").await?;
        Ok((shadow["state"]["reported"] == json!({ "mode": "eco", "fw": "1.2" })).then_some(()))
    })
    .await?;
    admin
        .put(
            "/v1/devices/air-1/shadow/desired",
            &json!({ "mode": "eco", "interval_s": 60 }),
        )
        .await?;
    let (_, delta) = next(&mut heard).await?;
    assert_eq!(delta["state"], json!({ "interval_s": 60 }), "{delta}");
    // A report that is not a shadow document is counted and dropped; the state stays.
    device_client
        .publish(
            "$aws/things/air-1/shadow/update",
            rumqttc::QoS::AtLeastOnce,
            false,
            "not json",
        )
        .await?;
    eventually("the rejected report counted", WAIT, || async {
        let metrics = admin.metrics().await?;
        Ok((iot_e2e::counter(&metrics, "shadow_updates_rejected_total") >= 1.0).then_some(()))
    })
    .await?;
    let (_, shadow) = admin.get("/v1/devices/air-1/shadow").await?;
    assert_eq!(shadow["state"]["reported"]["fw"], "1.2", "{shadow}");

    // A command reaches the device with its id.
    let (status, sent) = admin
        .post(
            "/v1/devices/air-1/commands",
            &json!({ "name": "reboot", "delay_s": 5 }),
        )
        .await?;
    assert_eq!(status, 202, "{sent}");
    let (topic, command) = next(&mut heard).await?;
    assert_eq!(topic, "things/air-1/down/command");
    assert_eq!(command["name"], "reboot");
    assert_eq!(command["command_id"], sent["command_id"]);
    let viewer = user(&running, &admin, "vic", &["viewer"], None).await?;
    let (status, _) = viewer
        .post("/v1/devices/air-1/commands", &json!({ "name": "reboot" }))
        .await?;
    assert_eq!(status, 403);

    // Revoked, then provisioned again with a new certificate; deleting the device revokes too.
    assert_eq!(admin.delete("/v1/devices/air-1/certificate").await?.0, 204);
    // Without a certificate, as on AWS without a thing, nothing can be sent to it.
    let (status, problem) = admin
        .post("/v1/devices/air-1/commands", &json!({ "name": "reboot" }))
        .await?;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(admin.delete("/v1/devices/air-1/certificate").await?.0, 404);
    let (status, again) = admin
        .post("/v1/devices/air-1/certificate", &json!({}))
        .await?;
    assert_eq!(status, 201, "{again}");
    assert_ne!(again["certificate_id"], credentials["certificate_id"]);
    assert_eq!(admin.delete("/v1/devices/air-1").await?.0, 204);
    admin.create("/v1/devices", &device).await?;
    let (status, _) = admin
        .post("/v1/devices/air-1/certificate", &json!({}))
        .await?;
    assert_eq!(status, 201);
    running.shutdown().await;
    Ok(())
}
