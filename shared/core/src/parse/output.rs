//! What a parser script returns, turned into records.
//!
//! A script returns one of:
//! - `()`: nothing to record (a heartbeat, an ack);
//! - a map of signals, `#{ temperature: 21.5, door: true }`, with an optional `time`;
//! - a record map, `#{ time, device_uid, identification_code, data }`, where `data` is a map of
//!   signals or an array of `#{ name, value }`;
//! - an array of either, for payloads that carry several readings or several devices (gateways).

use rhai::{Dynamic, Map};

use super::ParseInput;
use super::native::number_to_millis;
use crate::model::{Datum, Record};
use crate::script::{ScriptError, dynamic_to_value};
use crate::time::{Millis, parse_rfc3339};

const RECORD_FIELDS: &str = "time, device_uid, identification_code, data";

pub(super) fn records_from_output(
    output: Dynamic,
    input: &ParseInput<'_>,
    nc: &str,
) -> Result<Vec<Record>, ScriptError> {
    if output.is_unit() {
        return Ok(Vec::new());
    }
    if output.is_map() {
        let map = output.cast::<Map>();
        return Ok(vec![record_from_map(map, input, nc)?]);
    }
    if output.is_array() {
        return output
            .cast::<rhai::Array>()
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item.try_cast::<Map>() {
                Some(map) => record_from_map(map, input, nc),
                None => Err(ScriptError::output(format!(
                    "element {i} of the returned array is not a map"
                ))),
            })
            .collect();
    }
    Err(ScriptError::output(format!(
        "a parser script returns a map of signals, a record map, an array of them, or (), not {}",
        output.type_name()
    )))
}

fn record_from_map(mut map: Map, input: &ParseInput<'_>, nc: &str) -> Result<Record, ScriptError> {
    let time = match map.remove("time") {
        Some(t) if !t.is_unit() => to_millis(&t)?,
        _ => input.received_at,
    };
    let data = match map.remove("data") {
        // A record map: only the record fields are allowed beside `data`.
        Some(data) => {
            let device_uid = take_text(&mut map, "device_uid")?;
            let identification_code = take_text(&mut map, "identification_code")?;
            if let Some(extra) = map.keys().next() {
                return Err(ScriptError::output(format!(
                    "unknown record field {extra:?}; a record map has {RECORD_FIELDS}"
                )));
            }
            let (device_uid, identification_code) =
                identify(input, device_uid, identification_code);
            return Ok(Record {
                time,
                device_uid,
                identification_code,
                data: data_from(data)?,
                nc: nc.to_owned(),
            });
        }
        // A map of signals.
        None => signals_from_map(map)?,
    };
    Ok(Record {
        time,
        device_uid: input.device.uid.clone(),
        identification_code: input.device.identification_code.clone(),
        data,
        nc: nc.to_owned(),
    })
}

/// Which device a record is for. A gateway script names sub-devices by uid or by identification
/// code; a code alone leaves the uid empty for the ingest use case to resolve.
fn identify(input: &ParseInput<'_>, uid: Option<String>, code: Option<String>) -> (String, String) {
    let device = input.device;
    match (uid, code) {
        (None, None) => (device.uid.clone(), device.identification_code.clone()),
        (Some(uid), code) if uid == device.uid => (
            uid,
            code.unwrap_or_else(|| device.identification_code.clone()),
        ),
        (None, Some(code)) if code == device.identification_code => (device.uid.clone(), code),
        (uid, code) => (uid.unwrap_or_default(), code.unwrap_or_default()),
    }
}

fn data_from(data: Dynamic) -> Result<Vec<Datum>, ScriptError> {
    if data.is_map() {
        return signals_from_map(data.cast::<Map>());
    }
    if data.is_array() {
        return data
            .cast::<rhai::Array>()
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let Some(mut entry) = item.try_cast::<Map>() else {
                    return Some(Err(ScriptError::output(format!(
                        "data[{i}] must be #{{ name, value }}"
                    ))));
                };
                let name = match entry.remove("name").map(|n| n.into_string()) {
                    Some(Ok(name)) => name,
                    _ => {
                        return Some(Err(ScriptError::output(format!(
                            "data[{i}] has no string `name`"
                        ))));
                    }
                };
                let value = entry.remove("value").unwrap_or(Dynamic::UNIT);
                datum(name, &value).transpose()
            })
            .collect();
    }
    Err(ScriptError::output(format!(
        "`data` must be a map of signals or an array of #{{ name, value }}, not {}",
        data.type_name()
    )))
}

fn signals_from_map(map: Map) -> Result<Vec<Datum>, ScriptError> {
    map.into_iter()
        .filter_map(|(name, value)| datum(name.into(), &value).transpose())
        .collect()
}

fn datum(name: String, value: &Dynamic) -> Result<Option<Datum>, ScriptError> {
    match dynamic_to_value(value) {
        Ok(Some(value)) => Ok(Some(Datum { name, value })),
        Ok(None) => Ok(None),
        Err(reason) => Err(ScriptError::output(format!("signal {name:?}: {reason}"))),
    }
}

fn take_text(map: &mut Map, field: &str) -> Result<Option<String>, ScriptError> {
    match map.remove(field) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) if v.is_string() => Ok(Some(v.to_string())),
        Some(v) if v.is_string() || v.is_int() => Ok(Some(v.to_string())),
        Some(v) => Err(ScriptError::output(format!(
            "`{field}` must be a string, not {}",
            v.type_name()
        ))),
    }
}

fn to_millis(time: &Dynamic) -> Result<Millis, ScriptError> {
    let millis = if let Ok(i) = time.as_int() {
        number_to_millis(i as f64)
    } else if let Ok(f) = time.as_float() {
        number_to_millis(f)
    } else if time.is_string() {
        parse_rfc3339(&time.to_string())
    } else {
        None
    };
    millis.ok_or_else(|| {
        ScriptError::output(format!(
            "`time` must be epoch milliseconds, epoch seconds or RFC 3339 text, got {time}"
        ))
    })
}
