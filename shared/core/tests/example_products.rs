//! The example product scripts in `examples/products/` decode what their headers promise.

use iot_core::model::{Device, ParserScript, Product, SignalDef, SignalKind, Value};
use iot_core::parse::{ParseError, ParseInput, ParseOutcome, Parser};
use iot_core::script::ScriptError;

const JSON_SENSOR: &str = include_str!("../../../examples/products/json-sensor.rhai");
const BINARY_SENSOR: &str = include_str!("../../../examples/products/env-sensor-binary.rhai");
const RECEIVED_AT: i64 = 1_795_000_000_000;

fn product(source: &str, signals: Vec<SignalDef>) -> Product {
    Product {
        id: "p1".into(),
        tenant_id: "t1".into(),
        name: "sensor".into(),
        script: Some(ParserScript {
            source: source.into(),
            version: 1,
        }),
        signals,
    }
}

fn device() -> Device {
    Device {
        uid: "env-0001".into(),
        identification_code: "A84041000181".into(),
        tenant_id: "t1".into(),
        product_id: "p1".into(),
        department_id: "d1".into(),
        name: "Lobby".into(),
        data_since: 0,
        gateway_uid: None,
    }
}

fn parse(product: &Product, payload: &[u8]) -> Result<ParseOutcome, ParseError> {
    let parser: Parser = Parser::default();
    let prepared = parser.prepare(product)?;
    let device = device();
    parser.parse(
        &prepared,
        &ParseInput {
            payload,
            topic: "things/env-0001/up/telemetry",
            device: &device,
            received_at: RECEIVED_AT,
        },
    )
}

fn number(outcome: &ParseOutcome, name: &str) -> Option<f64> {
    outcome.records[0].get(name).and_then(Value::as_f64)
}

#[test]
fn json_sensor_decodes_its_three_signals() -> Result<(), ParseError> {
    let payload = br#"{"ts": 1795000123, "temp": 21.5, "hum": 40.2, "co2": 612, "fw": "2.1.0"}"#;
    let outcome = parse(&product(JSON_SENSOR, vec![]), payload)?;
    assert_eq!(outcome.records.len(), 1);
    let record = &outcome.records[0];
    assert_eq!(record.time, 1_795_000_123_000);
    assert_eq!(record.device_uid, "env-0001");
    assert_eq!(record.identification_code, "A84041000181");
    assert_eq!(number(&outcome, "temperature"), Some(21.5));
    assert_eq!(number(&outcome, "humidity"), Some(40.2));
    assert_eq!(number(&outcome, "co2"), Some(612.0));
    assert_eq!(record.data.len(), 3, "fw is metadata, not a signal");
    assert_eq!(record.nc, std::str::from_utf8(payload).unwrap_or_default());
    Ok(())
}

#[test]
fn json_sensor_without_ts_uses_the_receive_time() -> Result<(), ParseError> {
    let outcome = parse(
        &product(JSON_SENSOR, vec![]),
        br#"{"temp": 1, "hum": 2, "co2": 3}"#,
    )?;
    assert_eq!(outcome.records[0].time, RECEIVED_AT);
    Ok(())
}

#[test]
fn json_sensor_rejects_non_json_with_the_script_line() {
    let err = parse(&product(JSON_SENSOR, vec![]), b"\x00\x01").unwrap_err();
    match err {
        ParseError::Script(ScriptError::Runtime { message, at }) => {
            assert_eq!(message, "payload is not JSON");
            assert_eq!(at.line, Some(9));
        }
        other => panic!("expected a runtime error, got {other:?}"),
    }
}

#[test]
fn json_sensor_values_are_checked_against_signal_ranges() -> Result<(), ParseError> {
    let signals = vec![
        SignalDef::number("temperature")
            .with_unit("°C")
            .with_range(-40.0, 85.0),
        SignalDef::number("humidity")
            .with_unit("%")
            .with_range(0.0, 100.0),
        SignalDef::number("co2")
            .with_unit("ppm")
            .with_range(0.0, 10_000.0),
    ];
    let outcome = parse(
        &product(JSON_SENSOR, signals),
        br#"{"temp": 21.5, "hum": 140, "co2": 612}"#,
    )?;
    assert_eq!(number(&outcome, "humidity"), None);
    assert_eq!(number(&outcome, "temperature"), Some(21.5));
    assert_eq!(outcome.warnings.len(), 1);
    assert_eq!(outcome.warnings[0].signal, "humidity");
    assert!(
        outcome.warnings[0]
            .reason
            .contains("outside the valid range [0, 100]")
    );
    Ok(())
}

#[test]
fn binary_sensor_decodes_every_field() -> Result<(), ParseError> {
    let frame = hex::decode("0108342d0bb8a40000002a2d").unwrap_or_default();
    let outcome = parse(&product(BINARY_SENSOR, vec![]), &frame)?;
    let record = &outcome.records[0];
    assert_eq!(number(&outcome, "temperature"), Some(21.0));
    assert_eq!(number(&outcome, "humidity"), Some(45.0));
    assert_eq!(number(&outcome, "battery_mv"), Some(3000.0));
    assert_eq!(record.get("low_battery"), Some(&Value::Bool(false)));
    assert_eq!(record.get("sensor_fault"), Some(&Value::Bool(false)));
    assert_eq!(record.get("tamper"), Some(&Value::Bool(true)));
    assert_eq!(number(&outcome, "signal_quality"), Some(10.0));
    assert_eq!(number(&outcome, "frame_counter"), Some(42.0));
    assert_eq!(record.nc, "hex:0108342d0bb8a40000002a2d");
    Ok(())
}

#[test]
fn binary_sensor_decodes_negative_temperatures() -> Result<(), ParseError> {
    // -12.34 °C = -1234 = 0xfb2e; checksum recomputed for the changed bytes.
    let mut frame = hex::decode("01fb2e2d0bb8a40000002a00").unwrap_or_default();
    frame[11] = frame[..11].iter().fold(0, |acc, b| acc ^ b);
    let outcome = parse(&product(BINARY_SENSOR, vec![]), &frame)?;
    assert_eq!(number(&outcome, "temperature"), Some(-12.34));
    Ok(())
}

#[test]
fn binary_sensor_rejects_short_frames_and_bad_checksums() {
    let short = parse(&product(BINARY_SENSOR, vec![]), &[1, 2, 3]).unwrap_err();
    assert!(
        short
            .to_string()
            .contains("expected a 12-byte frame, got 3 bytes"),
        "{short}"
    );

    let corrupt = hex::decode("0108342d0bb8a40000002aff").unwrap_or_default();
    let err = parse(&product(BINARY_SENSOR, vec![]), &corrupt).unwrap_err();
    assert!(
        err.to_string()
            .contains("checksum mismatch: computed 45, frame says 255"),
        "{err}"
    );
}

#[test]
fn binary_sensor_signal_kinds_are_enforced() -> Result<(), ParseError> {
    let signals = vec![
        SignalDef::number("temperature"),
        SignalDef {
            kind: SignalKind::Bool,
            ..SignalDef::number("tamper")
        },
    ];
    let frame = hex::decode("0108342d0bb8a40000002a2d").unwrap_or_default();
    let outcome = parse(&product(BINARY_SENSOR, signals), &frame)?;
    let names: Vec<&str> = outcome.records[0]
        .data
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["tamper", "temperature"]);
    // The six undefined signals are reported, not silently lost.
    assert_eq!(outcome.warnings.len(), 6);
    Ok(())
}
