//! The telemetry routes over what a device sent: latest, range, aggregate, export.

use crate::{NOW, TestResult, admin, api, call, call_raw, fleet};
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

#[tokio::test]
async fn an_export_writes_the_chosen_signals_as_csv_to_download() -> TestResult {
    let (router, token) = api().await?;
    let device = format!("Device {}", fleet(&router, &token).await?);
    for (offset_s, temp) in [(0, 20.5), (10, 22.0)] {
        let reading = json!({ "ts": NOW / 1000 + offset_s, "temp": temp, "hum": 40, "co2": 600 });
        let (status, receipt) =
            call(&router, "POST", "/v1/ingest", Some(&device), Some(reading)).await?;
        assert_eq!(status, 200, "{receipt}");
    }
    let body = json!({ "format": "csv", "signals": ["temperature"],
                       "from": NOW.to_string(), "to": (NOW + 60_000).to_string() });
    let (status, export) = admin(
        &router,
        &token,
        "POST",
        "/v1/devices/air-1/export",
        Some(body),
    )
    .await?;
    assert_eq!(status, 201, "{export}");
    assert_eq!(export["points"], 2, "{export}");
    let url = export["download_url"].as_str().ok_or("no download_url")?;
    let (status, csv) =
        call_raw(&router, "GET", url, Some(&format!("Bearer {token}")), None).await?;
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv)?;
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "time,time_ms,signal,value", "{csv}");
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows[1].ends_with(&format!(",{NOW},temperature,20.5")),
        "{csv}"
    );
    let (status, _) = call_raw(&router, "GET", url, None, None).await?;
    assert_eq!(status, 401, "the download needs the token too");
    let bad = json!({ "format": "xlsx" });
    let (status, problem) = admin(
        &router,
        &token,
        "POST",
        "/v1/devices/air-1/export",
        Some(bad),
    )
    .await?;
    assert_eq!(status, 422, "{problem}");
    Ok(())
}
