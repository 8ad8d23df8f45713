//! The alarm engine: graded bands, debounce, deadband, acknowledgement and joint rules.

use iot_core::alarm::{
    AlarmError, AlarmEvaluator, AlarmRule, Band, CompiledRules, Condition, Debounce,
    DeviceAlarmState, Direction, Level, RuleError, TransitionKind,
};
use iot_core::model::{Datum, Record};
use iot_core::script::{ScriptError, ScriptLimit};

use Level::*;
use TransitionKind::*;

const T0: i64 = 1_795_000_000_000;

fn temperature_rule(deadband: f64, debounce: Debounce) -> AlarmRule {
    AlarmRule {
        id: "hot".into(),
        tenant_id: "t1".into(),
        product_id: "p1".into(),
        name: "Too hot".into(),
        enabled: true,
        condition: Condition::Threshold {
            signal: "temperature".into(),
            direction: Direction::Above,
            bands: vec![
                Band {
                    level: Critical,
                    threshold: 40.0,
                },
                Band {
                    level: Warning,
                    threshold: 30.0,
                },
                Band {
                    level: Major,
                    threshold: 35.0,
                },
            ],
            deadband,
        },
        debounce,
    }
}

fn joint_rule(script: &str, window: usize) -> AlarmRule {
    AlarmRule {
        id: "muggy".into(),
        tenant_id: "t1".into(),
        product_id: "p1".into(),
        name: "Hot and humid".into(),
        enabled: true,
        condition: Condition::Joint {
            signals: vec!["temperature".into(), "humidity".into()],
            window,
            script: script.into(),
            level: Major,
        },
        debounce: Debounce::default(),
    }
}

fn record(device: &str, time: i64, data: &[(&str, f64)]) -> Record {
    Record {
        time,
        device_uid: device.into(),
        identification_code: String::new(),
        data: data.iter().map(|(n, v)| Datum::new(*n, *v)).collect(),
        nc: String::new(),
    }
}

struct Harness {
    evaluator: AlarmEvaluator,
    rules: CompiledRules,
    state: DeviceAlarmState,
    time: i64,
}

impl Harness {
    fn new(rules: &[AlarmRule]) -> Result<Self, RuleError> {
        let evaluator = AlarmEvaluator::default();
        let rules = evaluator.compile(rules)?;
        Ok(Self {
            evaluator,
            rules,
            state: DeviceAlarmState::new("dev-1"),
            time: T0,
        })
    }

    /// Feeds one sample per second; returns the transitions as (kind, level).
    fn feed(&mut self, data: &[(&str, f64)]) -> Vec<(TransitionKind, Option<Level>)> {
        self.time += 1_000;
        let evaluation = self.evaluator.evaluate(
            &self.rules,
            &mut self.state,
            &record("dev-1", self.time, data),
        );
        assert!(evaluation.failures.is_empty(), "{:?}", evaluation.failures);
        evaluation
            .transitions
            .iter()
            .map(|t| (t.kind, t.level))
            .collect()
    }

    fn temperatures(&mut self, values: &[f64]) -> Vec<(TransitionKind, Option<Level>)> {
        values
            .iter()
            .flat_map(|v| self.feed(&[("temperature", *v)]))
            .collect()
    }
}

#[test]
fn graded_bands_raise_escalate_de_escalate_and_clear() -> Result<(), RuleError> {
    let mut h = Harness::new(&[temperature_rule(2.0, Debounce::default())])?;
    assert_eq!(h.temperatures(&[25.0]), []);
    assert_eq!(h.temperatures(&[31.0]), [(Raised, Some(Warning))]);
    assert_eq!(h.temperatures(&[36.0]), [(Escalated, Some(Major))]);
    assert_eq!(h.temperatures(&[41.0]), [(Escalated, Some(Critical))]);
    // Within the deadband below 40, critical holds.
    assert_eq!(h.temperatures(&[38.5, 38.0]), []);
    assert_eq!(h.temperatures(&[37.9]), [(DeEscalated, Some(Major))]);
    assert_eq!(h.temperatures(&[20.0]), [(Cleared, None)]);
    Ok(())
}

#[test]
fn a_steady_abnormal_value_notifies_once() -> Result<(), RuleError> {
    let mut h = Harness::new(&[temperature_rule(0.0, Debounce::default())])?;
    assert_eq!(
        h.temperatures(&[31.0, 32.0, 33.0, 31.0, 34.9]),
        [(Raised, Some(Warning))]
    );
    Ok(())
}

#[test]
fn deadband_stops_flapping_at_a_threshold() -> Result<(), RuleError> {
    let mut flappy = Harness::new(&[temperature_rule(0.0, Debounce::default())])?;
    assert_eq!(flappy.temperatures(&[30.1, 29.9, 30.1, 29.9]).len(), 4);

    let mut steady = Harness::new(&[temperature_rule(1.0, Debounce::default())])?;
    assert_eq!(
        steady.temperatures(&[30.1, 29.9, 30.1, 29.9, 29.2]),
        [(Raised, Some(Warning))]
    );
    assert_eq!(steady.temperatures(&[28.9]), [(Cleared, None)]);
    Ok(())
}

#[test]
fn n_consecutive_samples_are_needed_to_raise() -> Result<(), RuleError> {
    let debounce = Debounce {
        samples: 3,
        for_ms: 0,
    };
    let mut h = Harness::new(&[temperature_rule(0.0, debounce)])?;
    assert_eq!(
        h.temperatures(&[31.0, 31.0, 29.0]),
        [],
        "a normal sample resets the count"
    );
    assert_eq!(h.temperatures(&[31.0, 36.0]), []);
    // The third abnormal sample raises at the lowest level held throughout the run.
    assert_eq!(h.temperatures(&[41.0]), [(Raised, Some(Warning))]);
    Ok(())
}

#[test]
fn condition_must_hold_for_at_least_t() -> Result<(), RuleError> {
    let debounce = Debounce {
        samples: 1,
        for_ms: 60_000,
    };
    let mut h = Harness::new(&[temperature_rule(0.0, debounce)])?;
    let mut raised_after = None;
    for second in 0..120 {
        if !h.temperatures(&[31.0]).is_empty() {
            raised_after = Some(second);
            break;
        }
    }
    assert_eq!(raised_after, Some(60));
    Ok(())
}

#[test]
fn below_direction_bands() -> Result<(), RuleError> {
    let rule = AlarmRule {
        condition: Condition::Threshold {
            signal: "battery".into(),
            direction: Direction::Below,
            bands: vec![
                Band {
                    level: Warning,
                    threshold: 3.3,
                },
                Band {
                    level: Critical,
                    threshold: 3.0,
                },
            ],
            deadband: 0.05,
        },
        ..temperature_rule(0.0, Debounce::default())
    };
    let mut h = Harness::new(&[rule])?;
    let battery = |h: &mut Harness, v: f64| h.feed(&[("battery", v)]);
    assert_eq!(battery(&mut h, 3.6), []);
    assert_eq!(battery(&mut h, 3.25), [(Raised, Some(Warning))]);
    assert_eq!(battery(&mut h, 2.9), [(Escalated, Some(Critical))]);
    assert_eq!(battery(&mut h, 3.04), []);
    assert_eq!(battery(&mut h, 3.4), [(Cleared, None)]);
    Ok(())
}

#[test]
fn acknowledgement_lifecycle() -> Result<(), Box<dyn std::error::Error>> {
    let rule = temperature_rule(0.0, Debounce::default());
    let mut h = Harness::new(std::slice::from_ref(&rule))?;
    let err = h.state.acknowledge("t1", &rule, "alice", T0).unwrap_err();
    assert!(matches!(err, AlarmError::NotActive { .. }));

    h.temperatures(&[31.0]);
    let ack = h.state.acknowledge("t1", &rule, "alice", T0 + 5_000)?;
    assert_eq!(
        (ack.kind, ack.level, ack.by.as_deref()),
        (Acknowledged, Some(Warning), Some("alice"))
    );
    let again = h
        .state
        .acknowledge("t1", &rule, "bob", T0 + 6_000)
        .unwrap_err();
    assert_eq!(
        again.to_string(),
        format!("alarm {} was already acknowledged by alice", ack.alarm_id)
    );

    // Still active and quiet while unchanged; escalation asks for attention again.
    assert_eq!(h.temperatures(&[32.0]), []);
    assert_eq!(h.temperatures(&[36.0]), [(Escalated, Some(Major))]);
    assert_eq!(
        h.state.active("hot").and_then(|a| a.acknowledged.clone()),
        None
    );
    h.state.acknowledge("t1", &rule, "bob", T0 + 9_000)?;
    assert_eq!(h.temperatures(&[10.0]), [(Cleared, None)]);
    assert!(h.state.active("hot").is_none());
    Ok(())
}

#[test]
fn alarm_ids_are_stable_across_replays_and_separate_per_device() -> Result<(), RuleError> {
    let evaluator = AlarmEvaluator::default();
    let rules = evaluator.compile(&[temperature_rule(0.0, Debounce::default())])?;
    let hot = |device: &str| record(device, T0, &[("temperature", 31.0)]);
    let first = evaluator.evaluate(&rules, &mut DeviceAlarmState::new("a"), &hot("a"));
    let replay = evaluator.evaluate(&rules, &mut DeviceAlarmState::new("a"), &hot("a"));
    let other = evaluator.evaluate(&rules, &mut DeviceAlarmState::new("b"), &hot("b"));
    assert_eq!(first.transitions[0].alarm_id, "a:hot:1795000000000");
    assert_eq!(first.transitions, replay.transitions);
    assert_eq!(other.transitions[0].device_uid, "b");
    assert_eq!(first.transitions[0].signal.as_deref(), Some("temperature"));
    Ok(())
}

#[test]
fn records_older_than_the_last_evaluated_are_skipped() -> Result<(), RuleError> {
    let evaluator = AlarmEvaluator::default();
    let rules = evaluator.compile(&[temperature_rule(0.0, Debounce::default())])?;
    let mut state = DeviceAlarmState::new("dev-1");
    evaluator.evaluate(
        &rules,
        &mut state,
        &record("dev-1", T0 + 10, &[("temperature", 20.0)]),
    );
    let late = evaluator.evaluate(
        &rules,
        &mut state,
        &record("dev-1", T0, &[("temperature", 50.0)]),
    );
    assert!(late.transitions.is_empty());
    Ok(())
}

#[test]
fn disabled_rules_are_not_evaluated() -> Result<(), RuleError> {
    let rule = AlarmRule {
        enabled: false,
        ..temperature_rule(0.0, Debounce::default())
    };
    let mut h = Harness::new(&[rule])?;
    assert_eq!(h.temperatures(&[99.0]), []);
    Ok(())
}

#[test]
fn joint_rule_sees_the_last_n_values_of_each_signal() -> Result<(), RuleError> {
    let script = "avg(window.temperature) > 30 && latest.humidity > 80";
    let mut h = Harness::new(&[joint_rule(script, 3)])?;
    assert_eq!(
        h.feed(&[("temperature", 40.0), ("humidity", 85.0)]),
        [(Raised, Some(Major))]
    );
    assert_eq!(
        h.feed(&[("temperature", 22.0), ("humidity", 85.0)]),
        [],
        "avg of 40, 22 is 31"
    );
    assert_eq!(
        h.feed(&[("temperature", 20.0)]),
        [(Cleared, None)],
        "avg of 40, 22, 20 is 27.3"
    );
    assert_eq!(h.state.windows["temperature"].len(), 3);
    assert_eq!(
        h.feed(&[("temperature", 45.0)]),
        [],
        "avg of 22, 20, 45 is 29: the 40 left the window"
    );
    assert_eq!(
        h.feed(&[("temperature", 55.0)]),
        [(Raised, Some(Major))],
        "avg of 20, 45, 55 is 40"
    );
    Ok(())
}

#[test]
fn joint_rule_may_choose_the_level() -> Result<(), RuleError> {
    let script = r#"
        let t = latest.temperature;
        if t == () { return (); }
        if t > 50 { "critical" } else if t > 35 { "minor" } else { false }
    "#;
    let mut h = Harness::new(&[joint_rule(script, 1)])?;
    assert_eq!(h.feed(&[("temperature", 36.0)]), [(Raised, Some(Minor))]);
    assert_eq!(
        h.feed(&[("temperature", 60.0)]),
        [(Escalated, Some(Critical))]
    );
    assert_eq!(h.feed(&[("temperature", 0.0)]), [(Cleared, None)]);
    Ok(())
}

#[test]
fn a_failing_joint_rule_does_not_stop_the_others() -> Result<(), RuleError> {
    let evaluator = AlarmEvaluator::default();
    let rules = evaluator.compile(&[
        joint_rule("loop {}", 2),
        AlarmRule {
            id: "bad-output".into(),
            ..joint_rule("42", 2)
        },
        temperature_rule(0.0, Debounce::default()),
    ])?;
    let mut state = DeviceAlarmState::new("dev-1");
    let evaluation = evaluator.evaluate(
        &rules,
        &mut state,
        &record("dev-1", T0, &[("temperature", 31.0)]),
    );
    assert_eq!(evaluation.transitions.len(), 1);
    assert_eq!(evaluation.failures.len(), 2);
    assert!(matches!(
        evaluation.failures[0].error,
        ScriptError::Limit {
            limit: ScriptLimit::Operations,
            ..
        }
    ));
    assert!(matches!(
        evaluation.failures[1].error,
        ScriptError::Output(_)
    ));
    Ok(())
}

#[test]
fn invalid_rules_are_refused_at_save_time() {
    let evaluator = AlarmEvaluator::default();
    let mut misordered = temperature_rule(0.0, Debounce::default());
    if let Condition::Threshold { bands, .. } = &mut misordered.condition {
        bands[0].threshold = 20.0; // critical below warning
    }
    let mut duplicate = temperature_rule(0.0, Debounce::default());
    if let Condition::Threshold { bands, .. } = &mut duplicate.condition {
        bands[0].level = Warning;
    }
    let cases = [
        (
            misordered,
            "bands must get more severe as the value goes up",
        ),
        (duplicate, "level warning has two bands"),
        (
            temperature_rule(-1.0, Debounce::default()),
            "deadband must be a finite number >= 0",
        ),
        (
            temperature_rule(
                0.0,
                Debounce {
                    samples: 0,
                    for_ms: 0,
                },
            ),
            "debounce needs samples >= 1",
        ),
        (joint_rule("true", 0), "window must be 1..=1000 values"),
        (joint_rule("let = ;", 2), "script does not compile"),
    ];
    for (rule, expected) in cases {
        let err = evaluator.compile(&[rule]).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn rules_round_trip_through_json() -> Result<(), serde_json::Error> {
    let json = serde_json::json!({
        "id": "hot", "tenant_id": "t1", "product_id": "p1", "name": "Too hot",
        "condition": {"type": "threshold", "signal": "temperature", "direction": "above",
                      "bands": [{"level": "warning", "threshold": 30}], "deadband": 0.5},
        "debounce": {"samples": 2, "for_ms": 10000}
    });
    let rule: AlarmRule = serde_json::from_value(json)?;
    assert!(rule.enabled);
    assert_eq!(
        rule.debounce,
        Debounce {
            samples: 2,
            for_ms: 10_000
        }
    );
    assert_eq!(
        serde_json::from_value::<AlarmRule>(serde_json::to_value(&rule)?)?,
        rule
    );
    Ok(())
}
