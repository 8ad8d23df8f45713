//! The tenant boundary over the whole API, generated from the OpenAPI document: for every
//! route, another tenant's administrator calls it on tenant `globex`'s own resources; nothing
//! of globex's shows in any answer, nothing of it changes (read back as its owner), and no
//! route answers with a server error. A route added without an entry here fails the test.

use iot_local::platform::Running;
use iot_tests::{Api, Error, JSON_SENSOR, TestResult, device_token, eventually, start_platform};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
/// In every name and text globex gives its resources: it must never reach another tenant.
const SECRET: &str = "GX-SECRET";
const PASSWORD: &str = "managed tenant password";

/// Routes outside the tenant boundary this test holds, and why.
const OUTSIDE: &[(&str, &str)] = &[
    ("/health", "open"),
    ("/v1/auth/", "the caller's own session; tests/api_access.rs"),
    (
        "/v1/ingest",
        "a device's own credential; tests/boundaries.rs",
    ),
    ("/v1/platform/", "the platform operator's; tests/tenants.rs"),
];

/// globex's resource for a path parameter, by the segment before it.
fn resource(ids: &BTreeMap<&str, String>, before: &str, param: &str) -> Option<String> {
    let key = match (before, param) {
        ("devices", "{uid}") => "device",
        ("products", "{id}") => "product",
        ("rules", "{rule}") => "rule",
        ("alarms", "{id}") => "alarm",
        ("stat-jobs", "{id}") => "job",
        ("templates", "{id}") => "template",
        ("channels", "{id}") => "channel",
        ("notification-routes", "{id}") => "route",
        ("users", "{id}") => "user",
        ("users", "{user}") => "admin",
        ("messages", "{id}") => "message",
        ("roles", "{name}") => "role",
        ("departments", "{id}") => "department",
        ("exports", "{id}") => "export",
        ("app-credentials", "{id}") => "app_credential",
        ("firmware", "{id}") => "firmware",
        ("rollouts", "{id}") => "rollout",
        // A link's token is its own grant: the attacker can only guess one.
        ("firmware-downloads", "{token}") => "download",
        _ => return None,
    };
    ids.get(key).cloned()
}

/// The route's path on globex's resources, with the query it needs.
fn concrete(ids: &BTreeMap<&str, String>, template: &str) -> Result<String, Error> {
    let segments: Vec<&str> = template.split('/').collect();
    let mut path = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        if segment.starts_with('{') {
            let before = if i > 0 { segments[i - 1] } else { "" };
            path.push(resource(ids, before, segment).ok_or_else(|| {
                format!(
                    "{template}: no entry for {segment} after {before:?}; add one to resource()"
                )
            })?);
        } else {
            path.push((*segment).to_owned());
        }
    }
    let mut path = path.join("/");
    if template.ends_with("/results") {
        path.push_str(&format!("?device={}", ids["device"]));
    } else if template.ends_with("/aggregate") {
        path.push_str("?signal=temperature");
    }
    Ok(path)
}

/// A body that gets past validation to the lookup where a route needs one.
fn body_for(ids: &BTreeMap<&str, String>, method: &str, template: &str) -> Value {
    match (method, template) {
        ("PUT", "/v1/devices/{uid}") => json!({ "uid": ids["device"], "identification_code": "X",
            "product_id": "air", "department_id": "ops", "name": "taken" }),
        ("PUT", "/v1/devices/{uid}/shadow/desired") => json!({ "interval_s": 1 }),
        ("POST", "/v1/devices/{uid}/commands") => json!({ "name": "reboot" }),
        ("POST", "/v1/devices/{uid}/export") => json!({ "format": "json" }),
        ("PUT", "/v1/users/{id}/password") => json!({ "password": "a taken over password" }),
        ("PUT", "/v1/users/{id}") => json!({ "roles": [] }),
        ("POST", "/v1/alarms/{id}/acknowledge") | ("POST", "/v1/alarms/{id}/clear") => {
            json!({ "note": "taken" })
        }
        _ => json!({}),
    }
}

async fn call(api: &Api, method: &str, path: &str, body: &Value) -> Result<(u16, String), Error> {
    let (status, answer) = match method {
        "GET" => api.get(path).await?,
        "POST" => api.post(path, body).await?,
        "PUT" => api.put(path, body).await?,
        "DELETE" => api.delete(path).await?,
        other => return Err(format!("no method {other}").into()),
    };
    Ok((status, answer.to_string()))
}

/// A managed tenant and its administrator, signed in.
async fn tenant(running: &Running, operator: &Api, id: &str, admin: &str) -> Result<Api, Error> {
    let (status, answer) = operator
        .post(
            "/v1/platform/tenants",
            &json!({ "id": id, "name": id, "admin_user": admin, "admin_password": PASSWORD }),
        )
        .await?;
    if status != 201 {
        return Err(format!("creating {id}: {status} {answer}").into());
    }
    Api::login(running.http_addr, id, admin, PASSWORD).await
}

/// Gives globex one of everything, each carrying [`SECRET`]; returns their ids.
async fn furnish(globex: &Api) -> Result<BTreeMap<&'static str, String>, Error> {
    let secret = |what: &str| format!("{SECRET} {what}");
    globex
        .create(
            "/v1/departments",
            &json!({ "id": "gx-ops", "name": secret("ops") }),
        )
        .await?;
    globex
        .create(
            "/v1/products",
            &json!({ "id": "gx-air", "name": secret("air"), "script": { "source": JSON_SENSOR } }),
        )
        .await?;
    globex
        .create(
            "/v1/products/gx-air/rules",
            &json!({ "id": "gx-hot", "name": secret("hot"), "enabled": true,
                     "condition": { "type": "threshold", "signal": "temperature", "direction": "above",
                                    "bands": [{ "level": "warning", "threshold": 30 }], "deadband": 1 } }),
        )
        .await?;
    globex
        .create(
            "/v1/devices",
            &json!({ "uid": "globex_r-1", "identification_code": "GX-1", "product_id": "gx-air",
                     "department_id": "gx-ops", "name": secret("pump") }),
        )
        .await?;
    globex
        .create(
            "/v1/users",
            &json!({ "id": "gx-user", "name": secret("user"), "password": PASSWORD, "roles": ["viewer"] }),
        )
        .await?;
    let (status, answer) = globex
        .put(
            "/v1/roles/gx-role",
            &json!({ "permissions": [{ "object": "/v1/devices*", "action": "GET" }] }),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    globex
        .create(
            "/v1/templates",
            &json!({ "id": "gx-tpl", "name": secret("template"), "subject": "", "body": secret("${value}") }),
        )
        .await?;
    globex
        .create(
            "/v1/channels",
            &json!({ "id": "gx-ch", "name": secret("inbox"), "kind": { "type": "in_system", "user_ids": ["gina"] } }),
        )
        .await?;
    globex
        .create(
            "/v1/notification-routes",
            &json!({ "id": "gx-route", "rule_ids": [], "min_level": "warning", "events": [],
                     "template_id": "gx-tpl", "channel_id": "gx-ch" }),
        )
        .await?;
    globex
        .create(
            "/v1/stat-jobs",
            &json!({ "id": "gx-avg", "name": secret("average"), "cron": "0 0 1 1 *", "lead_ms": 3_600_000,
                     "signals": ["temperature"], "devices": { "type": "product", "product_id": "gx-air" },
                     "script": "#{ n: count(series.temperature) }", "enabled": true }),
        )
        .await?;
    let image = b"globex firmware 9.9.9";
    globex
        .create(
            "/v1/firmware",
            &json!({ "id": "gx-fw", "product_id": "gx-air", "version": "9.9.9", "notes": secret("firmware"),
                     "size": image.len(), "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(image)) }),
        )
        .await?;
    let (status, answer) = globex
        .put_bytes("/v1/firmware/gx-fw/content", image)
        .await?;
    assert_eq!(status, 200, "{answer}");
    // Scheduled a year ahead of now, so the engine's timer changes nothing between the
    // snapshots.
    let a_year_ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis()
        + 365 * 24 * 3_600_000;
    globex
        .create(
            "/v1/rollouts",
            &json!({ "id": "gx-rollout", "package_id": "gx-fw", "target": { "type": "product" },
                     "start_at": a_year_ahead as i64 }),
        )
        .await?;
    let credential = globex
        .create(
            "/v1/app-credentials",
            &json!({ "name": secret("dashboard") }),
        )
        .await?;
    Ok(BTreeMap::from([
        (
            "app_credential",
            credential["id"]
                .as_str()
                .ok_or("no credential id")?
                .to_owned(),
        ),
        ("device", "globex_r-1".to_owned()),
        ("product", "gx-air".into()),
        ("rule", "gx-hot".into()),
        ("job", "gx-avg".into()),
        ("template", "gx-tpl".into()),
        ("channel", "gx-ch".into()),
        ("route", "gx-route".into()),
        ("user", "gx-user".into()),
        ("admin", "gina".into()),
        ("role", "gx-role".into()),
        ("department", "gx-ops".into()),
        ("firmware", "gx-fw".into()),
        ("rollout", "gx-rollout".into()),
        ("download", "forged-link-token".into()),
    ]))
}

/// What globex's administrator reads on every GET route: the state nobody else may change.
async fn snapshot(
    globex: &Api,
    routes: &[(String, String)],
    ids: &BTreeMap<&str, String>,
) -> Result<BTreeMap<String, String>, Error> {
    let mut seen = BTreeMap::new();
    for (method, template) in routes {
        // The audit log grows with these very reads; presence is the device's own.
        if method != "GET" || template == "/v1/audit" || template.ends_with("/presence") {
            continue;
        }
        let path = concrete(ids, template)?;
        let (status, answer) = call(globex, "GET", &path, &Value::Null).await?;
        seen.insert(path, format!("{status} {answer}"));
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_lets_one_tenant_reach_anothers_resources() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let operator = Api::new(running.http_addr).await?;
    let globex = tenant(&running, &operator, "globex", "gina").await?;
    let initech = tenant(&running, &operator, "initech", "ivan").await?;
    let mut ids = furnish(&globex).await?;
    device_side(&running, &globex, &mut ids).await?;
    let routes = described_routes(&running).await?;
    attack(&initech, &globex, routes, &ids, SECRET).await?;
    running.shutdown().await;
    Ok(())
}

/// Calls every route as `attacker` on the owner's resources (reads, then changes, then
/// deletions); fails if an answer shows `secret`, a device-side id is found, a route answers
/// with a server error, or anything the owner reads changed.
async fn attack(
    attacker: &Api,
    owner: &Api,
    mut routes: Vec<(String, String)>,
    ids: &BTreeMap<&str, String>,
    secret: &str,
) -> TestResult {
    let before = snapshot(owner, &routes, ids).await?;
    let order = |m: &str| {
        ["GET", "PUT", "POST", "DELETE"]
            .iter()
            .position(|x| *x == m)
    };
    routes.sort_by_key(|(m, t)| (order(m), t.clone()));
    let mut wrong = Vec::new();
    for (method, template) in &routes {
        let path = concrete(ids, template)?;
        let (status, answer) =
            call(attacker, method, &path, &body_for(ids, method, template)).await?;
        // Ids of one namespace for all tenants (devices, alarms, exports, messages) must not
        // be found.
        let global = [
            "{uid}",
            "alarms/{id}",
            "exports/{id}",
            "messages/{id}",
            "/results",
        ]
        .iter()
        .any(|g| template.contains(g));
        // No answer that works names the owner's device.
        let named = status < 300 && answer.contains(&ids["device"]);
        if status >= 500
            || answer.contains(secret)
            || named
            || (global && !matches!(status, 403 | 404))
        {
            wrong.push(format!("{method} {path}: {status} {answer}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "reached what is not theirs:\n{}",
        wrong.join("\n")
    );
    let after = snapshot(owner, &routes, ids).await?;
    for (path, was) in &before {
        assert_eq!(after.get(path), Some(was), "{path} changed");
    }
    Ok(())
}

/// Every described route but those outside the boundaries these tests hold.
async fn described_routes(running: &Running) -> Result<Vec<(String, String)>, Error> {
    let (_, document) = Api::anonymous(running.http_addr)
        .get("/openapi.json")
        .await?;
    let mut routes = Vec::new();
    for (template, item) in document["paths"].as_object().ok_or("no paths")? {
        if OUTSIDE
            .iter()
            .any(|(prefix, _)| template.starts_with(prefix))
        {
            continue;
        }
        for method in item.as_object().ok_or("no operations")?.keys() {
            routes.push((method.to_uppercase(), template.clone()));
        }
    }
    assert!(routes.len() > 80, "only {} routes described", routes.len());
    Ok(routes)
}

/// An alarm of globex's device, its in-system message and an export, made the way users make
/// them; their ids join `ids`.
async fn device_side(
    running: &Running,
    globex: &Api,
    ids: &mut BTreeMap<&'static str, String>,
) -> TestResult {
    let token = device_token(globex, "globex_r-1").await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let answer = reqwest::Client::new()
        .post(format!("http://{}/v1/ingest", running.http_addr))
        .header("authorization", format!("Device {token}"))
        .body(format!(
            r#"{{"ts": {}, "temp": 45, "hum": 40, "co2": 600}}"#,
            now.as_secs()
        ))
        .send()
        .await?;
    assert_eq!(answer.status().as_u16(), 200);
    let alarm = eventually("globex's alarm", WAIT, || async {
        let (_, alarms) = globex.get("/v1/alarms").await?;
        Ok(alarms["items"][0]["alarm_id"].as_str().map(str::to_owned))
    })
    .await?;
    let message = eventually("gina's message", WAIT, || async {
        let (_, inbox) = globex.get("/v1/users/gina/messages").await?;
        Ok(inbox["items"][0]["id"].as_str().map(str::to_owned))
    })
    .await?;
    let export = globex
        .create(
            "/v1/devices/globex_r-1/export",
            &json!({ "format": "json" }),
        )
        .await?;
    ids.insert("alarm", alarm);
    ids.insert("message", message);
    ids.insert(
        "export",
        export["id"].as_str().ok_or("no export id")?.to_owned(),
    );

    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_lets_a_department_scoped_operator_reach_other_departments_devices() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let operator = Api::new(running.http_addr).await?;
    let globex = tenant(&running, &operator, "globex", "gina").await?;
    let mut ids = furnish(&globex).await?;
    device_side(&running, &globex, &mut ids).await?;
    globex
        .create(
            "/v1/departments",
            &json!({ "id": "gx-north", "name": "north" }),
        )
        .await?;
    globex
        .create(
            "/v1/users",
            &json!({ "id": "otto", "password": PASSWORD, "roles": ["operator"], "department_id": "gx-north" }),
        )
        .await?;
    let otto = Api::login(running.http_addr, "globex", "otto", PASSWORD).await?;
    // What follows a device's department: the device, its data, alarms, exports, results.
    let device_side = |t: &str| {
        t.contains("{uid}")
            || t.starts_with("/v1/alarms")
            || t.starts_with("/v1/exports")
            || t == "/v1/devices"
            || t.ends_with("/results")
            || t.ends_with("/run")
    };
    let routes: Vec<(String, String)> = described_routes(&running)
        .await?
        .into_iter()
        .filter(|(_, t)| device_side(t))
        .collect();
    assert!(
        routes.len() > 20,
        "only {} device-side routes",
        routes.len()
    );
    attack(&otto, &globex, routes, &ids, "GX-SECRET pump").await?;
    running.shutdown().await;
    Ok(())
}

/// Deleting a tenant leaves nothing of it in the database but its record (its id is never
/// given out again), the retirement marks of its uids and its audit log: no configuration,
/// user, session, alarm, message, result, credential, telemetry point, schedule or export of
/// globex's remains, while another tenant's stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenant_leaves_nothing_behind_but_its_record_and_audit() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let operator = Api::new(running.http_addr).await?;
    let globex = tenant(&running, &operator, "globex", "gina").await?;
    let initech = tenant(&running, &operator, "initech", "ivan").await?;
    initech
        .create(
            "/v1/departments",
            &json!({ "id": "in-ops", "name": "initech ops" }),
        )
        .await?;
    let mut ids = furnish(&globex).await?;
    device_side(&running, &globex, &mut ids).await?;

    let (status, deleted) = operator.delete("/v1/platform/tenants/globex").await?;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["devices_deleted"], 1, "{deleted}");
    assert_eq!(deleted["points_deleted"], 3, "three signals: {deleted}");
    assert_eq!(deleted["exports_deleted"], 1, "{deleted}");
    assert!(
        deleted["items_deleted"].as_u64().unwrap_or_default() > 10,
        "{deleted}"
    );
    running.shutdown().await;

    let db = rusqlite::Connection::open(dir.path().join("iot.db"))?;
    let mut left = db.prepare(
        "SELECT pk || ' ' || sk FROM items
         WHERE (pk GLOB 'TENANT#globex*' OR ipk GLOB 'TENANT#globex*' OR data LIKE ?1)
           AND pk <> 'TENANT#globex#AUDIT' AND NOT (pk = 'TENANT#globex' AND sk = 'TENANT')",
    )?;
    let left: Vec<String> = left
        .query_map([format!("%{SECRET}%")], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    assert!(left.is_empty(), "left behind: {left:?}");
    let count = |sql: &str| db.query_row(sql, [], |row| row.get::<_, i64>(0));
    assert_eq!(
        count("SELECT count(*) FROM telemetry WHERE device_uid GLOB 'globex_*'")?,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM schedules WHERE tenant_id = 'globex'")?,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM items WHERE pk = 'TENANT#globex' AND sk = 'TENANT'")?,
        1,
        "the record stays, so the id is never reused"
    );
    assert_eq!(
        count("SELECT count(*) FROM items WHERE pk = 'DEVICE#globex_r-1' AND sk = 'RETIRED'")?,
        1
    );
    assert!(count("SELECT count(*) FROM items WHERE pk = 'TENANT#initech'")? > 1);
    let exports = dir.path().join("blobs").join("exports").join("globex");
    let files = std::fs::read_dir(&exports).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files, 0, "{exports:?}");
    Ok(())
}
