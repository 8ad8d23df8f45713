//! The uniform record: the contract between parsing and everything after it.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::time::Millis;

/// One reading of one device at one time. On the wire (JSON) the field names are exactly
/// `time`, `device_uid`, `identification_code`, `data` and `nc`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Record {
    /// Milliseconds since the Unix epoch, UTC (see [`crate::time`]).
    pub time: Millis,
    pub device_uid: String,
    pub identification_code: String,
    /// The signals of this reading, in the order the parser produced them.
    pub data: Vec<Datum>,
    /// The raw payload ("non-converted"): UTF-8 text as is, other bytes as `hex:` + lowercase hex.
    pub nc: String,
}

impl Record {
    /// The value of a signal in this record, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.data.iter().find(|d| d.name == name).map(|d| &d.value)
    }
}

/// A named value of a record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Datum {
    pub name: String,
    pub value: Value,
}

impl Datum {
    pub fn new(name: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A typed signal value. On the wire it is a plain JSON number, boolean or string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl Value {
    /// The numeric view used by thresholds and statistics: booleans count as 0 and 1,
    /// text that is not a number has no numeric view.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Text(t) => t.trim().parse().ok(),
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::Text(_) => "text",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(t) => f.write_str(t),
        }
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Number(n as f64)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<&str> for Value {
    fn from(t: &str) -> Self {
        Value::Text(t.to_owned())
    }
}
impl From<String> for Value {
    fn from(t: String) -> Self {
        Value::Text(t)
    }
}

/// The `nc` form of a raw payload: the text itself when it is UTF-8, else `hex:` + lowercase hex
/// (hex is what device engineers read in their tools).
pub fn raw_payload_text(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) => text.to_owned(),
        Err(_) => format!("hex:{}", hex::encode(payload)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_uses_the_wire_field_names() -> Result<(), serde_json::Error> {
        let record = Record {
            time: 1_700_000_000_000,
            device_uid: "dev-1".into(),
            identification_code: "SN001".into(),
            data: vec![Datum::new("temperature", 21.5), Datum::new("door", true)],
            nc: r#"{"t":21.5}"#.into(),
        };
        let json = serde_json::to_value(&record)?;
        assert_eq!(
            json,
            serde_json::json!({
                "time": 1_700_000_000_000_i64,
                "device_uid": "dev-1",
                "identification_code": "SN001",
                "data": [{"name": "temperature", "value": 21.5}, {"name": "door", "value": true}],
                "nc": "{\"t\":21.5}"
            })
        );
        let back: Record = serde_json::from_value(json)?;
        assert_eq!(back, record);
        Ok(())
    }

    #[test]
    fn binary_payload_is_kept_as_hex() {
        assert_eq!(raw_payload_text(&[0xff, 0x00, 0x10]), "hex:ff0010");
        assert_eq!(raw_payload_text(b"abc"), "abc");
    }

    #[test]
    fn numeric_view_of_values() {
        assert_eq!(Value::Bool(true).as_f64(), Some(1.0));
        assert_eq!(Value::from(" 2.5 ").as_f64(), Some(2.5));
        assert_eq!(Value::from("open").as_f64(), None);
    }
}
