//! Statistics jobs: made, run over a window of what devices sent, their results read back.

use crate::{NOW, TestResult, admin, api, call, fleet};
use iot_core::time::HOUR;
use serde_json::json;

#[tokio::test]
async fn a_statistics_job_runs_over_its_window_and_its_results_are_read_back() -> TestResult {
    let (router, token) = api().await?;
    let device = format!("Device {}", fleet(&router, &token).await?);
    // Two readings inside the hour before the run, one after it.
    for (offset_s, temp) in [(60, 20.0), (120, 30.0), (3_700, 90.0)] {
        let reading = json!({ "ts": NOW / 1000 + offset_s, "temp": temp, "hum": 40, "co2": 600 });
        let (status, receipt) =
            call(&router, "POST", "/v1/ingest", Some(&device), Some(reading)).await?;
        assert_eq!(status, 200, "{receipt}");
    }
    let job = |cron: &str| {
        json!({ "id": "avg-temp", "name": "Average temperature", "cron": cron,
                "lead_ms": HOUR, "signals": ["temperature"],
                "devices": { "type": "product", "product_id": "air" },
                "script": "#{ avg: avg(series.temperature), n: count(series.temperature) }" })
    };
    let (status, problem) = admin(
        &router,
        &token,
        "POST",
        "/v1/stat-jobs",
        Some(job("every hour")),
    )
    .await?;
    assert_eq!(status, 422, "{problem}");
    let (status, created) = admin(
        &router,
        &token,
        "POST",
        "/v1/stat-jobs",
        Some(job("0 * * * *")),
    )
    .await?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["enabled"], true, "{created}");

    let run_at = NOW + HOUR;
    let run = json!({ "at": run_at.to_string() });
    let (status, run) = admin(
        &router,
        &token,
        "POST",
        "/v1/stat-jobs/avg-temp/run",
        Some(run),
    )
    .await?;
    assert_eq!(status, 200, "{run}");
    assert_eq!(
        run["window"],
        json!({ "start": NOW, "end": run_at }),
        "{run}"
    );
    assert_eq!(run["failures"], json!([]), "{run}");
    let values = &run["results"][0]["values"];
    assert_eq!(
        (values["avg"].as_f64(), values["n"].as_f64()),
        (Some(25.0), Some(2.0)),
        "{run}"
    );

    let window = format!("from={NOW}&to={}", run_at + HOUR);
    let path = format!("/v1/stat-jobs/avg-temp/results?device=air-1&{window}");
    let (status, results) = admin(&router, &token, "GET", &path, None).await?;
    assert_eq!(status, 200, "{results}");
    let items = results["items"].as_array().ok_or("no items")?;
    assert_eq!(items.len(), 1, "{results}");
    assert_eq!(items[0]["values"], *values, "{results}");
    let (status, problem) = admin(
        &router,
        &token,
        "GET",
        "/v1/stat-jobs/avg-temp/results",
        None,
    )
    .await?;
    assert_eq!(status, 400, "the device is required: {problem}");

    let (status, _) = admin(&router, &token, "DELETE", "/v1/stat-jobs/avg-temp", None).await?;
    assert_eq!(status, 204);
    let (status, _) = admin(&router, &token, "GET", "/v1/stat-jobs/avg-temp", None).await?;
    assert_eq!(status, 404);
    Ok(())
}
