//! JSON to DynamoDB attribute values and back. Entities are stored as native maps, so they read
//! well in the console and in table exports.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

pub fn to_attr(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(items) => AttributeValue::L(items.iter().map(to_attr).collect()),
        Value::Object(map) => {
            AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect())
        }
    }
}

/// The JSON of an attribute value; sets and binaries (which we never write) are refused.
pub fn from_attr(attr: &AttributeValue) -> Result<Value, String> {
    Ok(match attr {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::N(n) => Value::Number(number(n)?),
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::L(items) => {
            Value::Array(items.iter().map(from_attr).collect::<Result<_, _>>()?)
        }
        AttributeValue::M(map) => Value::Object(from_map(map)?),
        other => return Err(format!("unexpected attribute type {other:?}")),
    })
}

pub fn from_map(map: &HashMap<String, AttributeValue>) -> Result<Map<String, Value>, String> {
    map.iter()
        .map(|(k, v)| Ok((k.clone(), from_attr(v)?)))
        .collect()
}

/// DynamoDB numbers are decimal text; integers stay integers.
fn number(text: &str) -> Result<Number, String> {
    if let Ok(i) = text.parse::<i64>() {
        return Ok(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Ok(u.into());
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .ok_or_else(|| format!("number {text:?} out of range"))
}

pub fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

pub fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

/// A string attribute of an item.
pub fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// A numeric attribute of an item.
pub fn get_n<T: std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    name: &str,
) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_attribute_values() -> Result<(), String> {
        let value = json!({
            "s": "text", "empty": "", "i": -42, "big": u64::MAX, "f": 21.5, "whole_float": 2.0,
            "b": true, "null": null, "list": [1, "two", [3.5], {"k": false}], "map": {}
        });
        assert_eq!(from_attr(&to_attr(&value))?, value);
        Ok(())
    }

    #[test]
    fn sets_are_refused_not_misread() {
        assert!(from_attr(&AttributeValue::Ss(vec!["a".into()])).is_err());
    }
}
