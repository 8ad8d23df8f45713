//! Every route of the OpenAPI document against each built-in role, and without a token.

use super::*;

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
    ("GET", "/v1/firmware", "aov"),
    ("POST", "/v1/firmware", "ao"),
    ("GET", "/v1/firmware/nope", "aov"),
    ("DELETE", "/v1/firmware/nope", "ao"),
    ("POST", "/v1/firmware/nope/check", "ao"),
    ("PUT", "/v1/firmware/nope/content", "ao"),
    ("GET", "/v1/rollouts", "aov"),
    ("POST", "/v1/rollouts", "ao"),
    ("GET", "/v1/rollouts/nope", "aov"),
    ("POST", "/v1/rollouts/nope/cancel", "ao"),
    ("GET", "/v1/rollouts/nope/executions", "aov"),
    ("GET", "/v1/devices/nope/firmware", "aov"),
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
        // Its token is the grant; tests/ota_local.rs downloads through it.
        ("GET", "/v1/firmware-downloads/{token}"),
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
