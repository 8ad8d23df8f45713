//! Applies a product's rules to a device's records.

use rhai::{Array, Dynamic, Map, Scope};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::state::Change;
use super::{
    AlarmRule, AlarmTransition, Band, Condition, DeviceAlarmState, Direction, Level, RuleError,
    Sample,
};
use crate::model::{Record, Value};
use crate::script::{CompiledScript, Sandbox, ScriptError, value_to_dynamic};

/// Evaluates rules; holds the sandbox joint-rule scripts run in.
#[derive(Clone, Debug, Default)]
pub struct AlarmEvaluator {
    sandbox: Arc<Sandbox>,
}

/// A product's rules, validated and with their scripts compiled.
#[derive(Clone, Debug, Default)]
pub struct CompiledRules {
    rules: Vec<CompiledRule>,
    /// Per signal, the most values any joint rule looks back on.
    window_sizes: BTreeMap<String, usize>,
}

#[derive(Clone, Debug)]
struct CompiledRule {
    rule: AlarmRule,
    script: Option<CompiledScript>,
}

impl CompiledRules {
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The outcome of evaluating records: the transitions to publish, and rules that failed (a
/// failing joint script never stops the other rules).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    pub transitions: Vec<AlarmTransition>,
    pub failures: Vec<RuleFailure>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuleFailure {
    pub rule_id: String,
    pub error: ScriptError,
}

impl AlarmEvaluator {
    pub fn new(sandbox: Arc<Sandbox>) -> Self {
        Self { sandbox }
    }

    /// Validates rules and compiles joint-rule scripts; use it when saving a rule, too.
    pub fn compile(&self, rules: &[AlarmRule]) -> Result<CompiledRules, RuleError> {
        let mut compiled = CompiledRules::default();
        for rule in rules {
            rule.validate()?;
            let script = match &rule.condition {
                Condition::Joint {
                    signals,
                    window,
                    script,
                    ..
                } => {
                    for signal in signals {
                        let size = compiled.window_sizes.entry(signal.clone()).or_default();
                        *size = (*size).max(*window);
                    }
                    Some(
                        self.sandbox
                            .compile(script)
                            .map_err(|source| RuleError::Script {
                                rule: rule.id.clone(),
                                source,
                            })?,
                    )
                }
                Condition::Threshold { .. } => None,
            };
            compiled.rules.push(CompiledRule {
                rule: rule.clone(),
                script,
            });
        }
        Ok(compiled)
    }

    /// Evaluates one record of the device against every enabled rule, updating `state`.
    /// Records older than the latest evaluated one are skipped (stored, but not re-evaluated).
    pub fn evaluate(
        &self,
        rules: &CompiledRules,
        state: &mut DeviceAlarmState,
        record: &Record,
    ) -> Evaluation {
        let mut evaluation = Evaluation::default();
        if state.last_time.is_some_and(|last| record.time < last) {
            return evaluation;
        }
        state.last_time = Some(record.time);
        remember_window_values(&rules.window_sizes, &mut state.windows, record);

        for compiled in rules.rules.iter().filter(|c| c.rule.enabled) {
            let rule = &compiled.rule;
            let (target, cause) = match (&rule.condition, &compiled.script) {
                (
                    Condition::Threshold {
                        signal,
                        direction,
                        bands,
                        deadband,
                    },
                    _,
                ) => {
                    let Some(value) = record.get(signal) else {
                        continue;
                    };
                    let Some(number) = value.as_f64() else {
                        continue;
                    };
                    let current = state.rules.get(&rule.id).and_then(|r| r.level());
                    let target = threshold_level(*direction, bands, *deadband, number, current);
                    (target, Some((signal.as_str(), value)))
                }
                (
                    Condition::Joint {
                        signals,
                        window,
                        level,
                        ..
                    },
                    Some(script),
                ) => {
                    if !signals.iter().any(|s| record.get(s).is_some()) {
                        continue;
                    }
                    match self.joint_level(script, signals, *window, *level, &state.windows, record)
                    {
                        Ok(target) => (target, None),
                        Err(error) => {
                            evaluation.failures.push(RuleFailure {
                                rule_id: rule.id.clone(),
                                error,
                            });
                            continue;
                        }
                    }
                }
                (Condition::Joint { .. }, None) => continue,
            };
            let rule_state = match state.rules.get_mut(&rule.id) {
                Some(s) => s,
                None => state.rules.entry(rule.id.clone()).or_default(),
            };
            if let Some(change) = rule_state.step(
                &record.device_uid,
                &rule.id,
                target,
                record.time,
                rule.debounce,
            ) {
                evaluation
                    .transitions
                    .push(transition(rule, record, change, cause));
            }
        }
        evaluation
    }

    fn joint_level(
        &self,
        script: &CompiledScript,
        signals: &[String],
        window: usize,
        level: Level,
        windows: &BTreeMap<String, VecDeque<Sample>>,
        record: &Record,
    ) -> Result<Option<Level>, ScriptError> {
        let mut values = Map::new();
        let mut latest = Map::new();
        for signal in signals {
            let samples = windows.get(signal);
            let array: Array = samples
                .map(|w| {
                    w.iter()
                        .skip(w.len().saturating_sub(window))
                        .map(|s| value_to_dynamic(&s.value))
                        .collect()
                })
                .unwrap_or_default();
            let last = array.last().cloned().unwrap_or(Dynamic::UNIT);
            values.insert(signal.as_str().into(), array.into());
            latest.insert(signal.as_str().into(), last);
        }
        let mut scope = Scope::with_capacity(4);
        scope.push_constant("window", values);
        scope.push_constant("latest", latest);
        scope.push_constant("device_uid", record.device_uid.clone());
        scope.push_constant("time", record.time);
        let result = self.sandbox.run(script, &mut scope)?;
        if result.is_unit() {
            return Ok(None);
        }
        if let Ok(b) = result.as_bool() {
            return Ok(b.then_some(level));
        }
        if result.is_string() {
            return result
                .to_string()
                .parse::<Level>()
                .map(Some)
                .map_err(ScriptError::Output);
        }
        Err(ScriptError::output(format!(
            "a joint rule returns true/false, a level name or (), not {}",
            result.type_name()
        )))
    }
}

/// The highest band the value reaches. Bands at or below the current level are held until the
/// value goes back past their threshold by the deadband (hysteresis).
fn threshold_level(
    direction: Direction,
    bands: &[Band],
    deadband: f64,
    value: f64,
    current: Option<Level>,
) -> Option<Level> {
    bands
        .iter()
        .filter(|band| {
            let held = current.is_some_and(|c| band.level <= c);
            let slack = if held { deadband } else { 0.0 };
            match direction {
                Direction::Above => value >= band.threshold - slack,
                Direction::Below => value <= band.threshold + slack,
            }
        })
        .map(|band| band.level)
        .max()
}

fn remember_window_values(
    sizes: &BTreeMap<String, usize>,
    windows: &mut BTreeMap<String, VecDeque<Sample>>,
    record: &Record,
) {
    for (signal, size) in sizes {
        let Some(value) = record.get(signal) else {
            continue;
        };
        let window = match windows.get_mut(signal) {
            Some(w) => w,
            None => windows.entry(signal.clone()).or_default(),
        };
        window.push_back(Sample {
            time: record.time,
            value: value.clone(),
        });
        while window.len() > *size {
            window.pop_front();
        }
    }
}

fn transition(
    rule: &AlarmRule,
    record: &Record,
    change: Change,
    cause: Option<(&str, &Value)>,
) -> AlarmTransition {
    let (signal, value) = cause.map(|(s, v)| (s.to_owned(), v.clone())).unzip();
    AlarmTransition {
        alarm_id: change.alarm_id,
        kind: change.kind,
        tenant_id: rule.tenant_id.clone(),
        device_uid: record.device_uid.clone(),
        rule_id: rule.id.clone(),
        rule_name: rule.name.clone(),
        level: change.level,
        previous_level: change.previous,
        time: record.time,
        signal,
        value,
        by: None,
    }
}
