//! Who may call what.

use crate::{TestResult, admin, api, call, fleet, login};
use serde_json::json;

#[tokio::test]
async fn every_v1_route_but_sign_in_wants_a_token() -> TestResult {
    let (router, _) = api().await?;
    for (method, path) in [
        ("GET", "/v1/devices"),
        ("POST", "/v1/devices"),
        ("GET", "/v1/alarms"),
        ("GET", "/v1/platform/tenants"),
    ] {
        let (status, problem) = call(&router, method, path, None, None).await?;
        assert_eq!(status, 401, "{method} {path}: {problem}");
        let (status, _) = call(&router, method, path, Some("Bearer forged"), None).await?;
        assert_eq!(status, 401, "{method} {path} with a forged token");
    }
    Ok(())
}

/// A viewer reads and changes nothing; a user of one department sees that department's
/// devices only.
#[tokio::test]
async fn roles_and_departments_bound_what_a_user_reaches() -> TestResult {
    let (router, token) = api().await?;
    fleet(&router, &token).await?;
    for (path, body) in [
        ("/v1/departments", json!({ "id": "plant", "name": "Plant" })),
        (
            "/v1/devices",
            json!({ "uid": "air-2", "identification_code": "SN-2", "product_id": "air",
                    "department_id": "plant" }),
        ),
        (
            "/v1/users",
            json!({ "id": "vera", "name": "Vera", "password": "a viewer password",
                    "roles": ["viewer"], "department_id": "plant" }),
        ),
    ] {
        let (status, answer) = admin(&router, &token, "POST", path, Some(body)).await?;
        assert_eq!(status, 201, "{path}: {answer}");
    }
    let viewer = format!(
        "Bearer {}",
        login(&router, "vera", "a viewer password").await?
    );

    let (status, devices) = call(&router, "GET", "/v1/devices", Some(&viewer), None).await?;
    assert_eq!(status, 200, "{devices}");
    let uids: Vec<&str> = devices["items"]
        .as_array()
        .ok_or("no items")?
        .iter()
        .filter_map(|d| d["uid"].as_str())
        .collect();
    assert_eq!(uids, ["air-2"], "only the plant's device");
    let (status, _) = call(&router, "GET", "/v1/devices/air-1", Some(&viewer), None).await?;
    assert_eq!(
        status, 404,
        "another department's device is not there for her"
    );
    let body = json!({ "uid": "air-3", "identification_code": "SN-3", "product_id": "air",
                       "department_id": "plant" });
    let (status, problem) = call(&router, "POST", "/v1/devices", Some(&viewer), Some(body)).await?;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"].as_str().is_some(),
        "a 403 says why: {problem}"
    );
    Ok(())
}
