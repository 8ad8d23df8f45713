//! The alarm as users list it: one record per alarm id, kept current by its transitions.

use serde::{Deserialize, Serialize};

use super::{AlarmTransition, Level, TransitionKind};
use crate::model::Value;
use crate::time::Millis;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlarmStatus {
    Active,
    Acknowledged,
    Cleared,
}

impl AlarmStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmStatus::Active => "active",
            AlarmStatus::Acknowledged => "acknowledged",
            AlarmStatus::Cleared => "cleared",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(AlarmStatus::Active),
            "acknowledged" => Some(AlarmStatus::Acknowledged),
            "cleared" => Some(AlarmStatus::Cleared),
            _ => None,
        }
    }

    /// Active or acknowledged: the condition has not cleared yet.
    pub fn is_open(self) -> bool {
        self != AlarmStatus::Cleared
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmRecord {
    pub alarm_id: String,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub device_uid: String,
    pub rule_id: String,
    pub rule_name: String,
    pub status: AlarmStatus,
    /// The current level; the last level once cleared.
    pub level: Level,
    /// The highest level the alarm reached.
    pub peak_level: Level,
    pub raised_at: Millis,
    pub updated_at: Millis,
    #[serde(default)]
    pub signal: Option<String>,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub acknowledged_by: Option<String>,
    #[serde(default)]
    pub acknowledged_at: Option<Millis>,
    #[serde(default)]
    pub cleared_at: Option<Millis>,
    /// Who cleared it by hand; `None` when the condition cleared.
    #[serde(default)]
    pub cleared_by: Option<String>,
}

impl AlarmRecord {
    /// The record a `raised` transition opens.
    pub fn raised(t: &AlarmTransition) -> Self {
        let level = t.level.unwrap_or(Level::Info);
        Self {
            alarm_id: t.alarm_id.clone(),
            tenant_id: t.tenant_id.clone(),
            device_uid: t.device_uid.clone(),
            rule_id: t.rule_id.clone(),
            rule_name: t.rule_name.clone(),
            status: AlarmStatus::Active,
            level,
            peak_level: level,
            raised_at: t.time,
            updated_at: t.time,
            signal: t.signal.clone(),
            value: t.value.clone(),
            acknowledged_by: None,
            acknowledged_at: None,
            cleared_at: None,
            cleared_by: None,
        }
    }

    /// Applies a later transition of the same alarm.
    pub fn apply(&mut self, t: &AlarmTransition) {
        self.updated_at = self.updated_at.max(t.time);
        if t.signal.is_some() {
            self.signal = t.signal.clone();
            self.value = t.value.clone();
        }
        match t.kind {
            TransitionKind::Raised => {}
            TransitionKind::Escalated | TransitionKind::DeEscalated => {
                if let Some(level) = t.level {
                    self.level = level;
                    self.peak_level = self.peak_level.max(level);
                }
                if t.kind == TransitionKind::Escalated {
                    // An escalation needs a new acknowledgement (see the state machine).
                    self.status = AlarmStatus::Active;
                    self.acknowledged_by = None;
                    self.acknowledged_at = None;
                }
            }
            TransitionKind::Acknowledged => {
                self.status = AlarmStatus::Acknowledged;
                self.acknowledged_by = t.by.clone();
                self.acknowledged_at = Some(t.time);
            }
            TransitionKind::Cleared => {
                self.status = AlarmStatus::Cleared;
                self.cleared_at = Some(t.time);
                self.cleared_by = t.by.clone();
            }
        }
    }
}

/// Splits an alarm id (`{device}:{rule}:{raised_at}`) into its parts.
pub fn parse_alarm_id(alarm_id: &str) -> Option<(&str, &str, Millis)> {
    let mut parts = alarm_id.rsplitn(3, ':');
    let raised_at = parts.next()?.parse().ok()?;
    let rule = parts.next()?;
    let device = parts.next()?;
    (!rule.is_empty() && !device.is_empty()).then_some((device, rule, raised_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(kind: TransitionKind, level: Option<Level>, time: Millis) -> AlarmTransition {
        AlarmTransition {
            alarm_id: "dev-1:hot:1000".into(),
            kind,
            tenant_id: "t".into(),
            device_uid: "dev-1".into(),
            rule_id: "hot".into(),
            rule_name: "Hot".into(),
            level,
            previous_level: None,
            time,
            signal: Some("temp".into()),
            value: Some(Value::Number(41.0)),
            by: (kind == TransitionKind::Acknowledged).then(|| "ops".into()),
        }
    }

    #[test]
    fn a_record_follows_its_lifecycle() {
        let mut record = AlarmRecord::raised(&transition(
            TransitionKind::Raised,
            Some(Level::Warning),
            1_000,
        ));
        record.apply(&transition(
            TransitionKind::Acknowledged,
            Some(Level::Warning),
            2_000,
        ));
        assert_eq!(record.status, AlarmStatus::Acknowledged);
        assert_eq!(record.acknowledged_by.as_deref(), Some("ops"));
        record.apply(&transition(
            TransitionKind::Escalated,
            Some(Level::Critical),
            3_000,
        ));
        assert_eq!(record.status, AlarmStatus::Active, "escalation re-opens");
        assert_eq!(record.acknowledged_by, None);
        record.apply(&transition(
            TransitionKind::DeEscalated,
            Some(Level::Major),
            4_000,
        ));
        assert_eq!(
            (record.level, record.peak_level),
            (Level::Major, Level::Critical)
        );
        record.apply(&transition(TransitionKind::Cleared, None, 5_000));
        assert_eq!(record.status, AlarmStatus::Cleared);
        assert_eq!((record.cleared_at, record.updated_at), (Some(5_000), 5_000));
        assert_eq!(
            record.level,
            Level::Major,
            "a cleared record keeps its last level"
        );
    }

    #[test]
    fn alarm_ids_split_from_the_right() {
        assert_eq!(parse_alarm_id("dev:1:hot:42"), Some(("dev:1", "hot", 42)));
        assert_eq!(parse_alarm_id("dev:hot:x"), None);
        assert_eq!(parse_alarm_id(":hot:1"), None);
        assert_eq!(parse_alarm_id("hot:1"), None);
    }
}
