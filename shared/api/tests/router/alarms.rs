//! The alarm routes: list, acknowledge, clear.

use crate::{NOW, TestResult, admin, api, call, fleet};
use serde_json::json;

#[tokio::test]
async fn a_devices_reading_raises_an_alarm_that_is_acknowledged_then_cleared() -> TestResult {
    let (router, token) = api().await?;
    let device = fleet(&router, &token).await?;
    let (status, receipt) = call(
        &router,
        "POST",
        "/v1/ingest",
        Some(&format!("Device {device}")),
        Some(json!({ "ts": NOW / 1000, "temp": 45.0, "hum": 40, "co2": 600 })),
    )
    .await?;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["records"], 1, "{receipt}");

    let (status, open) = admin(&router, &token, "GET", "/v1/alarms?status=open", None).await?;
    assert_eq!(status, 200, "{open}");
    let id = open["items"][0]["alarm_id"]
        .as_str()
        .ok_or("no open alarm")?
        .to_owned();
    assert_eq!(open["items"][0]["level"], "critical", "{open}");

    let path = |action: &str| format!("/v1/alarms/{id}/{action}");
    let note = json!({ "note": "on it" });
    let (status, acked) = admin(&router, &token, "POST", &path("acknowledge"), Some(note)).await?;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["kind"], "acknowledged", "{acked}");
    assert_eq!(acked["by"], "admin (on it)", "{acked}");
    let (status, cleared) = admin(&router, &token, "POST", &path("clear"), None).await?;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["kind"], "cleared", "{cleared}");
    // A cleared alarm takes neither action again.
    for action in ["acknowledge", "clear"] {
        let (status, problem) = admin(&router, &token, "POST", &path(action), None).await?;
        assert_eq!(status, 409, "{action}: {problem}");
    }
    let (status, _) = admin(&router, &token, "POST", "/v1/alarms/nope/clear", None).await?;
    assert_eq!(status, 404);
    Ok(())
}
