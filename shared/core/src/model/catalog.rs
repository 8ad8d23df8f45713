//! Departments, products and devices: the metadata the engines need.

use serde::{Deserialize, Serialize};

use super::Value;
use crate::time::Millis;

/// A node of a tenant's department tree; data permissions follow the subtree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Department {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.-]{1,128}$"))]
    pub id: String,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub name: String,
    pub parent_id: Option<String>,
}

/// A device type. It owns the parser script and the signal definitions of its devices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Product {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.-]{1,128}$"))]
    pub id: String,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub name: String,
    /// Without a script, flat JSON payloads are mapped natively (see [`crate::parse::native`]).
    #[serde(default)]
    pub script: Option<ParserScript>,
    #[serde(default)]
    pub signals: Vec<SignalDef>,
}

impl Product {
    pub fn signal(&self, name: &str) -> Option<&SignalDef> {
        self.signals.iter().find(|s| s.name == name)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParserScript {
    /// rhai source; see `docs/scripts.md` for what a parser script sees and returns.
    pub source: String,
    /// Bumped on every save, so caches and audit entries can tell versions apart.
    #[serde(default)]
    pub version: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignalDef {
    pub name: String,
    pub kind: SignalKind,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub range: Option<ValidRange>,
}

impl SignalDef {
    pub fn number(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind: SignalKind::Number,
            unit: None,
            range: None,
        }
    }

    pub fn with_unit(mut self, unit: &str) -> Self {
        self.unit = Some(unit.to_owned());
        self
    }

    pub fn with_range(mut self, min: f64, max: f64) -> Self {
        self.range = Some(ValidRange {
            min: Some(min),
            max: Some(max),
        });
        self
    }

    /// Checks a parsed value against this definition and coerces what is unambiguous
    /// (a numeric string for a number signal, 0/1 for a bool signal).
    pub fn check(&self, value: Value) -> Result<Value, String> {
        let value = match (self.kind, value) {
            (SignalKind::Number, Value::Number(n)) => Value::Number(n),
            (SignalKind::Number, Value::Text(t)) => match t.trim().parse::<f64>() {
                Ok(n) => Value::Number(n),
                Err(_) => return Err(format!("expected a number, got text {t:?}")),
            },
            (SignalKind::Bool, Value::Bool(b)) => Value::Bool(b),
            (SignalKind::Bool, Value::Number(n)) if n == 0.0 || n == 1.0 => Value::Bool(n == 1.0),
            (SignalKind::Text, v) => Value::Text(v.to_string()),
            (kind, v) => {
                return Err(format!(
                    "expected {}, got {} {v}",
                    kind.name(),
                    v.kind_name()
                ));
            }
        };
        if let (Some(range), Value::Number(n)) = (&self.range, &value) {
            if !n.is_finite() {
                return Err(format!("{n} is not a finite number"));
            }
            if range.min.is_some_and(|min| *n < min) || range.max.is_some_and(|max| *n > max) {
                return Err(format!("{n} is outside the valid range {range}"));
            }
        }
        Ok(value)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Number,
    Bool,
    Text,
}

impl SignalKind {
    pub fn name(self) -> &'static str {
        match self {
            SignalKind::Number => "number",
            SignalKind::Bool => "bool",
            SignalKind::Text => "text",
        }
    }
}

/// Inclusive bounds; a value outside them is physically impossible for the sensor.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidRange {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl std::fmt::Display for ValidRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bound = |b: Option<f64>| b.map_or_else(|| "..".to_owned(), |v| v.to_string());
        write!(f, "[{}, {}]", bound(self.min), bound(self.max))
    }
}

/// A physical device. `uid` is its identity on the platform (the AWS IoT thing name);
/// `identification_code` is what is printed on it (serial number, IMEI, MAC).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.-]{1,128}$"))]
    pub uid: String,
    pub identification_code: String,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub product_id: String,
    pub department_id: String,
    #[serde(default)]
    pub name: String,
    /// Data of this uid timed before this (telemetry, alarms, results) belongs to an earlier
    /// device of the uid and is never shown as this one's: 0 for a uid never used before, else
    /// when the earlier device was deleted.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub data_since: Millis,
    /// The gateway that reports for this device, if one does. A device's records come from
    /// itself or from this gateway only, as a gateway's come only for its own sub-devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.-]{1,128}$"))]
    pub gateway_uid: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_signal_coerces_numeric_text_and_rejects_words() {
        let def = SignalDef::number("t");
        assert_eq!(def.check(Value::from("21.5")), Ok(Value::Number(21.5)));
        assert!(def.check(Value::from("warm")).is_err());
    }

    #[test]
    fn range_is_inclusive_and_reported() {
        let def = SignalDef::number("humidity").with_range(0.0, 100.0);
        assert_eq!(def.check(Value::Number(100.0)), Ok(Value::Number(100.0)));
        let err = def.check(Value::Number(101.0)).unwrap_err();
        assert_eq!(err, "101 is outside the valid range [0, 100]");
    }

    #[test]
    fn bool_signal_accepts_zero_and_one() {
        let def = SignalDef {
            kind: SignalKind::Bool,
            ..SignalDef::number("door")
        };
        assert_eq!(def.check(Value::Number(1.0)), Ok(Value::Bool(true)));
        assert!(def.check(Value::Number(2.0)).is_err());
    }
}
