//! The telemetry routes over what a device sent: latest, range, aggregate.

use crate::{NOW, TestResult, admin, api, call, fleet};
use serde_json::json;

#[tokio::test]
async fn what_a_device_sent_is_read_back_latest_by_range_and_aggregated() -> TestResult {
    let (router, token) = api().await?;
    let device = fleet(&router, &token).await?;
    let device = format!("Device {device}");
    for (offset_s, temp) in [(0, 20.0), (10, 22.0), (70, 30.0)] {
        let reading = json!({ "ts": NOW / 1000 + offset_s, "temp": temp, "hum": 40, "co2": 600 });
        let (status, receipt) =
            call(&router, "POST", "/v1/ingest", Some(&device), Some(reading)).await?;
        assert_eq!(status, 200, "{receipt}");
    }
    let (status, latest) = admin(
        &router,
        &token,
        "GET",
        "/v1/devices/air-1/latest?signals=temperature",
        None,
    )
    .await?;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["signals"]["temperature"]["value"], 30.0, "{latest}");

    let window = format!("from={NOW}&to={}", NOW + 120_000);
    let range = format!("/v1/devices/air-1/telemetry?signal=temperature&{window}");
    let (status, points) = admin(&router, &token, "GET", &range, None).await?;
    assert_eq!(status, 200, "{points}");
    let values: Vec<f64> = points["points"]
        .as_array()
        .ok_or("no points")?
        .iter()
        .filter_map(|p| p["value"].as_f64())
        .collect();
    assert_eq!(values, [20.0, 22.0, 30.0]);

    let aggregate =
        format!("/v1/devices/air-1/aggregate?signal=temperature&bucket_ms=60000&{window}");
    let (status, buckets) = admin(&router, &token, "GET", &aggregate, None).await?;
    assert_eq!(status, 200, "{buckets}");
    let buckets = buckets["buckets"].as_array().ok_or("no buckets")?;
    assert_eq!(buckets.len(), 2, "{buckets:?}");
    assert_eq!(
        (buckets[0]["count"].as_u64(), buckets[0]["avg"].as_f64()),
        (Some(2), Some(21.0))
    );

    let backwards = format!("/v1/devices/air-1/telemetry?from={}&to={NOW}", NOW + 1);
    let (status, problem) = admin(&router, &token, "GET", &backwards, None).await?;
    assert_eq!(status, 400, "{problem}");
    Ok(())
}
