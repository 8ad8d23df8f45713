//! The product routes: scripts tried on a sample before devices send it, and rules.

use crate::{TestResult, admin, api, fleet};
use serde_json::json;

#[tokio::test]
async fn a_dry_run_shows_the_records_a_payload_makes_and_stores_nothing() -> TestResult {
    let (router, token) = api().await?;
    fleet(&router, &token).await?;
    let sample = json!({ "payload": r#"{"ts": 1795435200, "temp": 21.5, "hum": 40, "co2": 600}"# });
    let (status, run) = admin(
        &router,
        &token,
        "POST",
        "/v1/products/air/dry-run",
        Some(sample),
    )
    .await?;
    assert_eq!(status, 200, "{run}");
    let data = run["records"][0]["data"].as_array().ok_or("no data")?;
    assert!(
        data.contains(&json!({ "name": "temperature", "value": 21.5 })),
        "{run}"
    );
    assert_eq!(data.len(), 3, "temperature, humidity and co2: {run}");
    assert_eq!(run["records"][0]["time"], 1_795_435_200_000_i64, "{run}");

    let garbage = json!({ "payload": "not JSON at all" });
    let (status, problem) = admin(
        &router,
        &token,
        "POST",
        "/v1/products/air/dry-run",
        Some(garbage),
    )
    .await?;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem.to_string().contains("not JSON"),
        "the script's own words: {problem}"
    );
    let (status, latest) = admin(&router, &token, "GET", "/v1/devices/air-1/latest", None).await?;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(
        latest["signals"],
        json!({}),
        "a dry run stores nothing: {latest}"
    );
    Ok(())
}

#[tokio::test]
async fn a_rule_is_read_changed_and_refused_when_it_names_nothing() -> TestResult {
    let (router, token) = api().await?;
    fleet(&router, &token).await?;
    let (status, rule) = admin(&router, &token, "GET", "/v1/products/air/rules/hot", None).await?;
    assert_eq!(status, 200, "{rule}");
    assert_eq!(rule["condition"]["bands"][0]["threshold"], 40.0, "{rule}");
    let mut changed = rule.clone();
    changed["condition"]["bands"][0]["threshold"] = json!(45);
    let (status, answer) = admin(
        &router,
        &token,
        "PUT",
        "/v1/products/air/rules/hot",
        Some(changed),
    )
    .await?;
    assert_eq!(status, 200, "{answer}");
    let (_, rule) = admin(&router, &token, "GET", "/v1/products/air/rules/hot", None).await?;
    assert_eq!(rule["condition"]["bands"][0]["threshold"], 45.0, "{rule}");
    let empty = json!({ "id": "empty", "name": "No bands", "enabled": true, "condition": {
        "type": "threshold", "signal": "temperature", "direction": "above", "bands": [] } });
    let (status, problem) = admin(
        &router,
        &token,
        "POST",
        "/v1/products/air/rules",
        Some(empty),
    )
    .await?;
    assert!((400..500).contains(&status), "{status} {problem}");
    Ok(())
}
