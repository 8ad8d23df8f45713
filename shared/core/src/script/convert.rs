//! Conversions between script values and platform values.

use rhai::Dynamic;

use crate::model::Value;

/// A script value as a signal value: numbers, booleans and strings map directly; `()` is absent.
pub fn dynamic_to_value(value: &Dynamic) -> Result<Option<Value>, String> {
    if value.is_unit() {
        return Ok(None);
    }
    if let Ok(f) = value.as_float() {
        return Ok(Some(Value::Number(f)));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Some(Value::Number(i as f64)));
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Some(Value::Bool(b)));
    }
    if value.is_string() {
        return Ok(Some(Value::Text(value.to_string())));
    }
    if let Ok(c) = value.as_char() {
        return Ok(Some(Value::Text(c.to_string())));
    }
    Err(format!(
        "a signal value must be a number, bool or string, not {}",
        value.type_name()
    ))
}

/// A signal value as a script value.
pub fn value_to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Number(n) => Dynamic::from_float(*n),
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Text(t) => Dynamic::from(t.clone()),
    }
}
