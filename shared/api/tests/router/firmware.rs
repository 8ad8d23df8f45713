//! Firmware packages and rollouts: declared, uploaded, checked, rolled out, cancelled.

use crate::{TestResult, admin, api, call_raw, fleet};
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const IMAGE: &[u8] = b"firmware image 2.0.0";

fn declared(id: &str) -> Value {
    json!({ "id": id, "product_id": "air", "version": "2.0.0", "notes": "fixes the fan",
            "size": IMAGE.len(), "sha256": hex::encode(Sha256::digest(IMAGE)) })
}

/// `PUT`s bytes to a route with the token, as the upload URL of one machine is called.
async fn put_bytes(
    router: &axum::Router,
    token: &str,
    path: &str,
    bytes: &[u8],
) -> Result<(u16, Value), Box<dyn std::error::Error>> {
    let request = Request::builder()
        .method("PUT")
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/octet-stream")
        .body(Body::from(bytes.to_vec()))?;
    let response = router.clone().oneshot(request).await?;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

#[tokio::test]
async fn a_package_is_ready_only_when_its_upload_matches_what_was_declared() -> TestResult {
    let (router, token) = api().await?;
    fleet(&router, &token).await?;
    let mut bad = declared("fw-2");
    bad["sha256"] = json!("abc");
    let (status, problem) = admin(&router, &token, "POST", "/v1/firmware", Some(bad)).await?;
    assert_eq!(
        (status, &problem["errors"][0]["pointer"]),
        (422, &json!("/sha256")),
        "{problem}"
    );
    let mut other = declared("fw-2");
    other["product_id"] = json!("nope");
    let (status, problem) = admin(&router, &token, "POST", "/v1/firmware", Some(other)).await?;
    assert_eq!(
        (status, &problem["errors"][0]["pointer"]),
        (422, &json!("/product_id")),
        "{problem}"
    );

    let (status, created) = admin(
        &router,
        &token,
        "POST",
        "/v1/firmware",
        Some(declared("fw-2")),
    )
    .await?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["package"]["status"], "awaiting_upload", "{created}");
    let url = created["upload"]["url"].as_str().ok_or("no upload url")?;
    assert_eq!(
        url, "/v1/firmware/fw-2/content",
        "one machine uploads through the API"
    );
    let (status, _) = admin(
        &router,
        &token,
        "POST",
        "/v1/firmware",
        Some(declared("fw-2")),
    )
    .await?;
    assert_eq!(status, 409, "an id is taken once");
    let (status, problem) = admin(&router, &token, "POST", "/v1/firmware/fw-2/check", None).await?;
    assert_eq!(status, 409, "nothing uploaded yet: {problem}");

    let (status, problem) = put_bytes(&router, &token, url, b"firmware image 2.0.1").await?;
    assert_eq!(
        (status, &problem["errors"][0]["pointer"]),
        (422, &json!("/sha256")),
        "{problem}"
    );
    let (_, package) = admin(&router, &token, "GET", "/v1/firmware/fw-2", None).await?;
    assert_eq!(package["status"], "rejected", "{package}");
    assert!(
        package["rejection"]
            .as_str()
            .is_some_and(|r| r.contains("SHA-256")),
        "{package}"
    );
    let (status, problem) = put_bytes(&router, &token, url, b"short").await?;
    assert_eq!(
        (status, &problem["errors"][0]["pointer"]),
        (422, &json!("/size")),
        "{problem}"
    );

    let (status, ready) = put_bytes(&router, &token, url, IMAGE).await?;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready", "{ready}");
    let (status, _) = put_bytes(&router, &token, url, b"another image!!!!!!!").await?;
    assert_eq!(status, 409, "a ready image never changes");
    let (status, listed) = admin(&router, &token, "GET", "/v1/firmware?product=air", None).await?;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let (status, _) = admin(&router, &token, "DELETE", "/v1/firmware/fw-2", None).await?;
    assert_eq!(status, 204);
    let (status, _) = admin(&router, &token, "GET", "/v1/firmware/fw-2", None).await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn a_rollout_sends_a_ready_package_to_its_target_and_is_cancelled() -> TestResult {
    let (router, token) = api().await?;
    fleet(&router, &token).await?;
    let (status, _) = admin(
        &router,
        &token,
        "POST",
        "/v1/firmware",
        Some(declared("fw-2")),
    )
    .await?;
    assert_eq!(status, 201);
    let rollout = json!({ "id": "spring", "package_id": "fw-2", "target": { "type": "product" },
                          "rate": { "max_per_minute": 5 },
                          "abort": [{ "failure": "ALL", "threshold_percent": 30, "min_executions": 10 }],
                          "in_progress_timeout_minutes": 30 });
    let (status, problem) = admin(
        &router,
        &token,
        "POST",
        "/v1/rollouts",
        Some(rollout.clone()),
    )
    .await?;
    assert_eq!(status, 422, "the package is not ready: {problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/package_id", "{problem}");
    let (status, _) = put_bytes(&router, &token, "/v1/firmware/fw-2/content", IMAGE).await?;
    assert_eq!(status, 200);

    for (field, value, pointer) in [
        (
            "rate",
            json!({ "max_per_minute": 0 }),
            "/rate/max_per_minute",
        ),
        (
            "in_progress_timeout_minutes",
            json!(20_000),
            "/in_progress_timeout_minutes",
        ),
        (
            "target",
            json!({ "type": "devices", "uids": ["ghost"] }),
            "/target/uids",
        ),
        (
            "target",
            json!({ "type": "department", "department_id": "ghost" }),
            "/target/department_id",
        ),
    ] {
        let mut bad = rollout.clone();
        bad[field] = value;
        let (status, problem) = admin(&router, &token, "POST", "/v1/rollouts", Some(bad)).await?;
        assert_eq!(
            (status, problem["errors"][0]["pointer"].as_str()),
            (422, Some(pointer)),
            "{problem}"
        );
    }

    // Jobs reach devices with an identity on the device side.
    let (status, problem) = admin(
        &router,
        &token,
        "POST",
        "/v1/rollouts",
        Some(rollout.clone()),
    )
    .await?;
    assert_eq!(
        (status, problem["errors"][0]["pointer"].as_str()),
        (422, Some("/target/uids")),
        "{problem}"
    );
    let (status, _) = admin(
        &router,
        &token,
        "POST",
        "/v1/devices/air-1/certificate",
        None,
    )
    .await?;
    assert_eq!(status, 201);
    let (status, started) = admin(
        &router,
        &token,
        "POST",
        "/v1/rollouts",
        Some(rollout.clone()),
    )
    .await?;
    assert_eq!(
        status, 201,
        "the refused start left nothing behind: {started}"
    );
    assert_eq!(
        (
            &started["status"],
            &started["version"],
            &started["counts"]["queued"]
        ),
        (&json!("in_progress"), &json!("2.0.0"), &json!(1)),
        "{started}"
    );
    let (status, _) = admin(&router, &token, "POST", "/v1/rollouts", Some(rollout)).await?;
    assert_eq!(status, 409, "a rollout id is taken once");
    let (status, problem) = admin(&router, &token, "DELETE", "/v1/firmware/fw-2", None).await?;
    assert_eq!(status, 409, "a rollout uses it: {problem}");

    let (status, executions) = admin(
        &router,
        &token,
        "GET",
        "/v1/rollouts/spring/executions",
        None,
    )
    .await?;
    assert_eq!(status, 200, "{executions}");
    assert_eq!(
        executions["items"][0]["device_uid"], "air-1",
        "{executions}"
    );
    assert_eq!(executions["items"][0]["status"], "QUEUED", "{executions}");
    let (status, firmware) =
        admin(&router, &token, "GET", "/v1/devices/air-1/firmware", None).await?;
    assert_eq!(status, 200, "{firmware}");
    assert_eq!(
        (
            &firmware["installed"],
            firmware["executions"].as_array().map(Vec::len)
        ),
        (&Value::Null, Some(1))
    );

    let (status, cancelled) =
        admin(&router, &token, "POST", "/v1/rollouts/spring/cancel", None).await?;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "canceled", "{cancelled}");
    let (_, after) = admin(&router, &token, "GET", "/v1/rollouts/spring", None).await?;
    assert_eq!(after["counts"]["canceled"], 1, "{after}");
    let (status, _) = admin(&router, &token, "POST", "/v1/rollouts/spring/cancel", None).await?;
    assert_eq!(status, 409, "over already");
    let (status, _) = call_raw(
        &router,
        "DELETE",
        "/v1/firmware/fw-2",
        Some(&format!("Bearer {token}")),
        None,
    )
    .await?;
    assert_eq!(status, 204, "no rollout uses it now");
    Ok(())
}
