//! SQLite-specific behaviour. What every adapter must do is checked by the contract suite in
//! `shared/contract`, which runs on SQLite too.

use iot_core::model::{Datum, Record, Value};
use iot_core::ports::TelemetryStore;
use iot_embedded::sqlite::{Database, SqliteTelemetry};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn record(device: &str, time: i64, data: Vec<Datum>) -> Record {
    Record {
        time,
        device_uid: device.into(),
        identification_code: String::new(),
        data,
        nc: String::new(),
    }
}

#[tokio::test]
async fn rewriting_a_point_replaces_it_and_data_survives_a_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("iot.db");
    {
        let store = SqliteTelemetry::new(Database::open(&path)?);
        store
            .write(&[record("d1", 1_000, vec![Datum::new("t", 1.0)])])
            .await?;
        store
            .write(&[record("d1", 1_000, vec![Datum::new("t", 2.0)])])
            .await?;
    }
    let reopened = SqliteTelemetry::new(Database::open(&path)?);
    let points = reopened.latest("d1", &["t".into()]).await?;
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].value, Value::Number(2.0));
    Ok(())
}
