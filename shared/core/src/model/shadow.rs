//! Device shadows as AWS IoT Core keeps them: `{"state": {"desired": {...}, "reported":
//! {...}}, "version": n}`. The platform keeps them itself on one machine; these are the rules
//! both sides follow, so device firmware sees the same behaviour.

use serde_json::{Map, Value, json};

/// Which half of the shadow an update writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShadowSection {
    /// What the platform asks the device to be.
    Desired,
    /// What the device says it is.
    Reported,
}

impl ShadowSection {
    fn key(self) -> &'static str {
        match self {
            ShadowSection::Desired => "desired",
            ShadowSection::Reported => "reported",
        }
    }
}

/// Merges `changes` (a JSON object) into one section of `shadow` as IoT Core does: keys are
/// set, `null` removes a key, nested objects merge; then bumps the version and returns it.
/// `None` if `changes` is not an object.
pub fn merge_shadow(shadow: &mut Value, section: ShadowSection, changes: &Value) -> Option<u64> {
    let changes = changes.as_object()?;
    if !shadow.is_object() {
        *shadow = json!({});
    }
    let state = &mut shadow["state"];
    if !state.is_object() {
        *state = json!({});
    }
    let target = &mut state[section.key()];
    if !target.is_object() {
        *target = json!({});
    }
    if let Some(target) = target.as_object_mut() {
        merge(target, changes);
    }
    let version = shadow["version"].as_u64().unwrap_or(0) + 1;
    shadow["version"] = json!(version);
    Some(version)
}

fn merge(target: &mut Map<String, Value>, changes: &Map<String, Value>) {
    for (key, value) in changes {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Some(slot) = slot.as_object_mut() {
                    merge(slot, inner);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// The desired keys whose values differ from what is reported: what IoT Core publishes on
/// `$aws/things/{uid}/shadow/update/delta` (`None` when there is no difference).
pub fn shadow_delta(shadow: &Value) -> Option<Value> {
    let desired = shadow["state"]["desired"].as_object()?;
    let reported = shadow["state"]["reported"].as_object();
    let delta: Map<String, Value> = desired
        .iter()
        .filter(|(key, value)| reported.and_then(|r| r.get(*key)) != Some(value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    (!delta.is_empty()).then_some(Value::Object(delta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_merge_remove_with_null_and_bump_the_version() {
        let mut shadow = Value::Null;
        let changes = json!({ "interval_s": 30, "led": { "on": true, "color": "red" } });
        assert_eq!(
            merge_shadow(&mut shadow, ShadowSection::Desired, &changes),
            Some(1)
        );
        let changes = json!({ "interval_s": null, "led": { "color": "blue" } });
        assert_eq!(
            merge_shadow(&mut shadow, ShadowSection::Desired, &changes),
            Some(2)
        );
        assert_eq!(
            shadow["state"]["desired"],
            json!({ "led": { "on": true, "color": "blue" } })
        );
        assert_eq!(
            merge_shadow(&mut shadow, ShadowSection::Reported, &json!([1])),
            None
        );
    }

    #[test]
    fn the_delta_is_what_the_device_has_not_reported_yet() {
        let mut shadow = Value::Null;
        merge_shadow(
            &mut shadow,
            ShadowSection::Desired,
            &json!({ "interval_s": 30, "mode": "eco" }),
        );
        assert_eq!(
            shadow_delta(&shadow),
            Some(json!({ "interval_s": 30, "mode": "eco" }))
        );
        merge_shadow(
            &mut shadow,
            ShadowSection::Reported,
            &json!({ "mode": "eco" }),
        );
        assert_eq!(shadow_delta(&shadow), Some(json!({ "interval_s": 30 })));
        merge_shadow(
            &mut shadow,
            ShadowSection::Reported,
            &json!({ "interval_s": 30 }),
        );
        assert_eq!(shadow_delta(&shadow), None);
    }
}
