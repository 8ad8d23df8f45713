//! Alarms: graded threshold bands per signal, joint rules over several signals, and a state
//! machine that raises, escalates, de-escalates, acknowledges and clears without storms.
//!
//! Semantics (see `docs/alarms.md`):
//! - A threshold rule has ordered bands (`warning` at 30, `major` at 35, `critical` at 40). The
//!   target level of a sample is the highest band it reaches.
//! - Raising and escalating need the condition to hold for `debounce.samples` consecutive
//!   samples **and** for at least `debounce.for_ms`. De-escalating and clearing happen on the
//!   first sample past the deadband, so a value hovering at a threshold does not flap.
//! - One active alarm per device and rule; only state changes produce transitions, and only
//!   transitions are notified.

mod evaluator;
mod record;
mod rule;
mod state;

pub use evaluator::{AlarmEvaluator, CompiledRules, Evaluation, RuleFailure};
pub use record::{AlarmRecord, AlarmStatus, parse_alarm_id};
pub use rule::{AlarmRule, Band, Condition, Debounce, Direction, Level, RuleError};
pub use state::{
    Acknowledgement, ActiveAlarm, AlarmError, AlarmTransition, DeviceAlarmState, Pending,
    RuleState, Sample, TransitionKind,
};
