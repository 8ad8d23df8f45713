//! Alarm state of one device: per rule the active alarm and any pending change, plus the recent
//! values joint rules look back on. One small document per device, so evaluation is one read
//! and one conditional write.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use thiserror::Error;

use super::{AlarmRule, Debounce, Level};
use crate::model::Value;
use crate::time::Millis;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceAlarmState {
    pub device_uid: String,
    /// Optimistic-concurrency version: stores write only if it has not changed since the read.
    #[serde(default)]
    pub version: u64,
    /// Time of the latest record evaluated; older records are not evaluated again.
    #[serde(default)]
    pub last_time: Option<Millis>,
    #[serde(default)]
    pub rules: BTreeMap<String, RuleState>,
    #[serde(default)]
    pub windows: BTreeMap<String, VecDeque<Sample>>,
    /// Transitions saved with the state but not yet published (a transactional outbox: state
    /// and events cannot disagree, whatever fails in between).
    #[serde(default)]
    pub outbox: Vec<AlarmTransition>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    #[serde(rename = "t")]
    pub time: Millis,
    #[serde(rename = "v")]
    pub value: Value,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    #[serde(default)]
    pub active: Option<ActiveAlarm>,
    #[serde(default)]
    pub pending: Option<Pending>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlarm {
    /// `{device}:{rule}:{raised_at}`: the same input raises the same id, so replays are idempotent.
    pub id: String,
    pub level: Level,
    pub raised_at: Millis,
    pub updated_at: Millis,
    #[serde(default)]
    pub acknowledged: Option<Acknowledgement>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub by: String,
    pub at: Millis,
}

/// An abnormal condition that has not yet held long enough to raise or escalate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The lowest level reached throughout the run: the level it would raise at.
    pub level: Level,
    pub since: Millis,
    pub samples: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    Raised,
    Escalated,
    DeEscalated,
    Acknowledged,
    Cleared,
}

impl TransitionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Raised => "raised",
            TransitionKind::Escalated => "escalated",
            TransitionKind::DeEscalated => "de_escalated",
            TransitionKind::Acknowledged => "acknowledged",
            TransitionKind::Cleared => "cleared",
        }
    }
}

/// A change of an alarm's state: the only thing that is published and notified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmTransition {
    pub alarm_id: String,
    pub kind: TransitionKind,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub device_uid: String,
    pub rule_id: String,
    pub rule_name: String,
    /// The level after the change (`None` once cleared).
    pub level: Option<Level>,
    pub previous_level: Option<Level>,
    pub time: Millis,
    /// The signal and value that caused it (for threshold rules).
    #[serde(default)]
    pub signal: Option<String>,
    #[serde(default)]
    pub value: Option<Value>,
    /// Who acknowledged, or cleared by hand.
    #[serde(default)]
    pub by: Option<String>,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AlarmError {
    #[error("no active alarm for rule {rule_id:?} on device {device_uid:?}")]
    NotActive { device_uid: String, rule_id: String },
    #[error("alarm {alarm_id} was already acknowledged by {by}")]
    AlreadyAcknowledged { alarm_id: String, by: String },
}

/// What one sample did to a rule's state.
pub(super) struct Change {
    pub kind: TransitionKind,
    pub alarm_id: String,
    pub level: Option<Level>,
    pub previous: Option<Level>,
}

impl RuleState {
    pub fn level(&self) -> Option<Level> {
        self.active.as_ref().map(|a| a.level)
    }

    /// Moves toward `target` (the level the latest sample calls for, `None` = normal).
    /// Increases wait for the debounce; decreases apply at once (the deadband already held them).
    pub(super) fn step(
        &mut self,
        device_uid: &str,
        rule_id: &str,
        target: Option<Level>,
        time: Millis,
        debounce: Debounce,
    ) -> Option<Change> {
        let current = self.level();
        if target <= current {
            self.pending = None;
            if target == current {
                return None;
            }
            let active = self.active.as_mut()?;
            let previous = Some(active.level);
            let alarm_id = active.id.clone();
            return Some(match target {
                None => {
                    self.active = None;
                    Change {
                        kind: TransitionKind::Cleared,
                        alarm_id,
                        level: None,
                        previous,
                    }
                }
                Some(level) => {
                    active.level = level;
                    active.updated_at = time;
                    Change {
                        kind: TransitionKind::DeEscalated,
                        alarm_id,
                        level: target,
                        previous,
                    }
                }
            });
        }
        // target > current, so target is Some.
        let target = target?;
        let pending = match self.pending.as_mut() {
            Some(p) => {
                p.samples += 1;
                p.level = p.level.min(target);
                p
            }
            None => self.pending.insert(Pending {
                level: target,
                since: time,
                samples: 1,
            }),
        };
        if pending.samples < debounce.samples || time - pending.since < debounce.for_ms {
            return None;
        }
        let level = pending.level;
        self.pending = None;
        Some(match self.active.as_mut() {
            None => {
                let id = format!("{device_uid}:{rule_id}:{time}");
                self.active = Some(ActiveAlarm {
                    id: id.clone(),
                    level,
                    raised_at: time,
                    updated_at: time,
                    acknowledged: None,
                });
                Change {
                    kind: TransitionKind::Raised,
                    alarm_id: id,
                    level: Some(level),
                    previous: None,
                }
            }
            Some(active) => {
                let previous = Some(active.level);
                active.level = level;
                active.updated_at = time;
                // A more severe alarm needs attention again.
                active.acknowledged = None;
                Change {
                    kind: TransitionKind::Escalated,
                    alarm_id: active.id.clone(),
                    level: Some(level),
                    previous,
                }
            }
        })
    }
}

impl DeviceAlarmState {
    pub fn new(device_uid: impl Into<String>) -> Self {
        Self {
            device_uid: device_uid.into(),
            ..Self::default()
        }
    }

    /// The active alarm of a rule, if any.
    pub fn active(&self, rule_id: &str) -> Option<&ActiveAlarm> {
        self.rules.get(rule_id).and_then(|r| r.active.as_ref())
    }

    /// Acknowledges the active alarm of a rule. It stays active (and notified on escalation)
    /// until its condition clears.
    pub fn acknowledge(
        &mut self,
        tenant_id: &str,
        rule: &AlarmRule,
        by: &str,
        at: Millis,
    ) -> Result<AlarmTransition, AlarmError> {
        let not_active = || AlarmError::NotActive {
            device_uid: self.device_uid.clone(),
            rule_id: rule.id.clone(),
        };
        let active = self
            .rules
            .get_mut(&rule.id)
            .and_then(|r| r.active.as_mut())
            .ok_or_else(not_active)?;
        if let Some(ack) = &active.acknowledged {
            return Err(AlarmError::AlreadyAcknowledged {
                alarm_id: active.id.clone(),
                by: ack.by.clone(),
            });
        }
        active.acknowledged = Some(Acknowledgement {
            by: by.to_owned(),
            at,
        });
        Ok(AlarmTransition {
            alarm_id: active.id.clone(),
            kind: TransitionKind::Acknowledged,
            tenant_id: tenant_id.to_owned(),
            device_uid: self.device_uid.clone(),
            rule_id: rule.id.clone(),
            rule_name: rule.name.clone(),
            level: Some(active.level),
            previous_level: Some(active.level),
            time: at,
            signal: None,
            value: None,
            by: Some(by.to_owned()),
        })
    }

    /// Clears the active alarm of `rule` by hand (an operator's decision). If the condition
    /// still holds, the rule raises a new alarm after its debounce.
    pub fn clear(
        &mut self,
        tenant_id: &str,
        rule: &AlarmRule,
        by: &str,
        at: Millis,
    ) -> Result<AlarmTransition, AlarmError> {
        let rule_state = self.rules.get_mut(&rule.id);
        let Some(active) = rule_state.and_then(|r| {
            r.pending = None;
            r.active.take()
        }) else {
            return Err(AlarmError::NotActive {
                device_uid: self.device_uid.clone(),
                rule_id: rule.id.clone(),
            });
        };
        Ok(AlarmTransition {
            alarm_id: active.id,
            kind: TransitionKind::Cleared,
            tenant_id: tenant_id.to_owned(),
            device_uid: self.device_uid.clone(),
            rule_id: rule.id.clone(),
            rule_name: rule.name.clone(),
            level: None,
            previous_level: Some(active.level),
            time: at,
            signal: None,
            value: None,
            by: Some(by.to_owned()),
        })
    }
}
