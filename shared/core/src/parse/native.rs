//! The native mapping, for products without a parser script: a flat JSON object whose fields are
//! signals. `{"temperature": 21.5, "door": true, "ts": 1795000000000}` becomes one record.
//!
//! - With signal definitions, only the defined fields are taken (other fields are metadata).
//! - Without, every number, boolean and string field is a signal; `null` is skipped.
//! - `time`, `ts` or `timestamp` (epoch milliseconds, epoch seconds, or RFC 3339 text) set the
//!   record time; otherwise it is the time the message was received.

use serde_json::Value as Json;

use super::{ParseError, ParseInput};
use crate::model::{Datum, Record, SignalDef, Value, raw_payload_text};
use crate::time::{Millis, parse_rfc3339};

const TIME_FIELDS: [&str; 3] = ["time", "ts", "timestamp"];

/// Epoch numbers below this are taken as seconds (10^11 ms is 1973; 10^11 s is the year 5138).
const SECONDS_BELOW: f64 = 1e11;

pub fn map_flat_json(
    signals: &[SignalDef],
    input: &ParseInput<'_>,
) -> Result<Vec<Record>, ParseError> {
    let object = match serde_json::from_slice::<Json>(input.payload) {
        Ok(Json::Object(object)) => object,
        Ok(other) => {
            return Err(ParseError::Payload(format!(
                "a product without a parser script takes a flat JSON object, got a JSON {}",
                json_kind(&other)
            )));
        }
        Err(e) => {
            return Err(ParseError::Payload(format!(
                "a product without a parser script takes a flat JSON object, but the payload is not JSON: {e}"
            )));
        }
    };
    let mut time = input.received_at;
    let mut data = Vec::with_capacity(object.len());
    for (name, value) in object {
        if TIME_FIELDS.contains(&name.as_str()) {
            time = epoch_millis(&value).ok_or_else(|| {
                ParseError::Payload(format!(
                    "field {name:?} must be epoch milliseconds, epoch seconds or RFC 3339 text, got {value}"
                ))
            })?;
            continue;
        }
        if !signals.is_empty() && !signals.iter().any(|s| s.name == name) {
            continue;
        }
        let value = match value {
            Json::Number(n) => n.as_f64().map(Value::Number),
            Json::Bool(b) => Some(Value::Bool(b)),
            Json::String(s) => Some(Value::Text(s)),
            Json::Null | Json::Array(_) | Json::Object(_) => None,
        };
        if let Some(value) = value {
            data.push(Datum { name, value });
        }
    }
    Ok(vec![Record {
        time,
        device_uid: input.device.uid.clone(),
        identification_code: input.device.identification_code.clone(),
        data,
        nc: raw_payload_text(input.payload),
    }])
}

/// A JSON time as epoch milliseconds (see the module docs for the accepted forms).
pub fn epoch_millis(value: &Json) -> Option<Millis> {
    match value {
        Json::Number(n) => n.as_f64().and_then(number_to_millis),
        Json::String(s) => parse_rfc3339(s),
        _ => None,
    }
}

pub(crate) fn number_to_millis(n: f64) -> Option<Millis> {
    if !n.is_finite() || !(0.0..=1e16).contains(&n) {
        return None;
    }
    Some(if n < SECONDS_BELOW {
        (n * 1000.0).round()
    } else {
        n.round()
    } as Millis)
}

fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Device;

    fn device() -> Device {
        Device {
            uid: "dev-1".into(),
            identification_code: "SN-1".into(),
            tenant_id: "t1".into(),
            product_id: "p1".into(),
            department_id: "d1".into(),
            name: String::new(),
            data_since: 0,
            gateway_uid: None,
        }
    }

    fn map(signals: &[SignalDef], payload: &str) -> Result<Vec<Record>, ParseError> {
        let device = device();
        let input = ParseInput {
            payload: payload.as_bytes(),
            topic: "things/dev-1/up/telemetry",
            device: &device,
            received_at: 1_000_000_000_000,
        };
        map_flat_json(signals, &input)
    }

    #[test]
    fn flat_fields_become_signals_and_ts_the_time() -> Result<(), ParseError> {
        let records = map(
            &[],
            r#"{"temperature": 21.5, "door": true, "mode": "eco", "x": null, "ts": 1795000000}"#,
        )?;
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert_eq!(record.time, 1_795_000_000_000);
        assert_eq!(record.device_uid, "dev-1");
        assert_eq!(record.identification_code, "SN-1");
        assert_eq!(record.get("temperature"), Some(&Value::Number(21.5)));
        assert_eq!(record.get("door"), Some(&Value::Bool(true)));
        assert_eq!(record.get("mode"), Some(&Value::from("eco")));
        assert_eq!(record.get("x"), None);
        Ok(())
    }

    #[test]
    fn defined_signals_select_fields_and_time_defaults_to_receipt() -> Result<(), ParseError> {
        let records = map(
            &[SignalDef::number("temperature")],
            r#"{"temperature": 3, "firmware": "1.2"}"#,
        )?;
        assert_eq!(records[0].data, vec![Datum::new("temperature", 3.0)]);
        assert_eq!(records[0].time, 1_000_000_000_000);
        Ok(())
    }

    #[test]
    fn non_object_payloads_are_rejected_with_a_reason() {
        let err = map(&[], "[1, 2]").unwrap_err().to_string();
        assert!(err.contains("got a JSON array"), "{err}");
        let err = map(&[], "\u{1}garbage").unwrap_err().to_string();
        assert!(err.contains("not JSON"), "{err}");
    }

    #[test]
    fn bad_time_field_is_rejected() {
        let err = map(&[], r#"{"time": "soon", "t": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"time\" must be epoch"), "{err}");
    }

    #[test]
    fn epoch_forms() {
        assert_eq!(number_to_millis(1_795_000_000.5), Some(1_795_000_000_500));
        assert_eq!(
            number_to_millis(1_795_000_000_123.0),
            Some(1_795_000_000_123)
        );
        assert_eq!(number_to_millis(-1.0), None);
        assert_eq!(number_to_millis(f64::NAN), None);
    }
}
