//! Runs calculation scripts over a window of telemetry.

use rhai::{Array, Dynamic, Map, Scope};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

use super::{Schedule, ScheduleError, StatJob, Window};
use crate::model::Value;
use crate::script::{
    CompiledScript, Limits, Sandbox, ScriptError, dynamic_to_value, value_to_dynamic,
};
use crate::time::Millis;

/// The values of each signal in a window, oldest first.
pub type Series = BTreeMap<String, Vec<(Millis, Value)>>;

#[derive(Clone, Debug, Error, PartialEq)]
pub enum StatsError {
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error("statistics job {job:?}: {source}")]
    Script {
        job: String,
        #[source]
        source: ScriptError,
    },
    #[error("statistics job {job:?}: {message}")]
    Invalid { job: String, message: String },
}

/// Compiles and runs statistics jobs. Its sandbox allows larger arrays than parsers do, since a
/// window can hold many samples.
#[derive(Clone, Debug)]
pub struct StatsEngine {
    sandbox: Arc<Sandbox>,
}

impl Default for StatsEngine {
    fn default() -> Self {
        Self::new(Arc::new(Sandbox::new(Self::limits())))
    }
}

#[derive(Clone, Debug)]
pub struct CompiledJob {
    pub job: StatJob,
    pub schedule: Schedule,
    script: CompiledScript,
}

impl StatsEngine {
    pub fn new(sandbox: Arc<Sandbox>) -> Self {
        Self { sandbox }
    }

    /// Limits for calculation scripts: a window of up to a million samples, seconds of CPU.
    pub fn limits() -> Limits {
        Limits {
            max_operations: 5_000_000,
            max_array_size: 1_000_000,
            max_time: Duration::from_secs(5),
            ..Limits::default()
        }
    }

    /// Validates the job (CRON, lead, signals) and compiles its script; use it when saving.
    pub fn compile(&self, job: &StatJob) -> Result<CompiledJob, StatsError> {
        let invalid = |message: &str| StatsError::Invalid {
            job: job.id.clone(),
            message: message.to_owned(),
        };
        let schedule = Schedule::parse(&job.cron)?;
        if job.lead_ms <= 0 {
            return Err(invalid(
                "lead_ms must be > 0: the window is [scheduled time - lead, scheduled time]",
            ));
        }
        if job.signals.is_empty() {
            return Err(invalid("a job needs at least one signal"));
        }
        let script = self
            .sandbox
            .compile(&job.script)
            .map_err(|source| StatsError::Script {
                job: job.id.clone(),
                source,
            })?;
        Ok(CompiledJob {
            job: job.clone(),
            schedule,
            script,
        })
    }

    /// Runs the script for one device. The script sees `series` (signal -> values), `times`
    /// (signal -> epoch ms), `window` (`#{ start, end }`) and `device_uid`. It returns a map of
    /// named results (`()` entries are left out) or a single value, stored as `value`.
    pub fn run(
        &self,
        job: &CompiledJob,
        device_uid: &str,
        window: Window,
        series: &Series,
    ) -> Result<BTreeMap<String, Value>, StatsError> {
        let mut values = Map::new();
        let mut times = Map::new();
        for signal in &job.job.signals {
            let points = series.get(signal).map(Vec::as_slice).unwrap_or_default();
            let v: Array = points.iter().map(|(_, v)| value_to_dynamic(v)).collect();
            let t: Array = points.iter().map(|(t, _)| Dynamic::from_int(*t)).collect();
            values.insert(signal.as_str().into(), v.into());
            times.insert(signal.as_str().into(), t.into());
        }
        let mut window_map = Map::new();
        window_map.insert("start".into(), Dynamic::from_int(window.start));
        window_map.insert("end".into(), Dynamic::from_int(window.end));

        let mut scope = Scope::with_capacity(4);
        scope.push_constant("series", values);
        scope.push_constant("times", times);
        scope.push_constant("window", window_map);
        scope.push_constant("device_uid", device_uid.to_owned());
        let script_error = |source| StatsError::Script {
            job: job.job.id.clone(),
            source,
        };
        let output = self
            .sandbox
            .run(&job.script, &mut scope)
            .map_err(script_error)?;
        results_from(output).map_err(|m| script_error(ScriptError::Output(m)))
    }
}

fn results_from(output: Dynamic) -> Result<BTreeMap<String, Value>, String> {
    if output.is_map() {
        let mut results = BTreeMap::new();
        for (name, value) in output.cast::<Map>() {
            if let Some(value) =
                dynamic_to_value(&value).map_err(|e| format!("result {name:?}: {e}"))?
            {
                results.insert(name.to_string(), value);
            }
        }
        return Ok(results);
    }
    Ok(dynamic_to_value(&output)?
        .map(|v| BTreeMap::from([("value".to_owned(), v)]))
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::DeviceScope;
    use crate::time::HOUR;

    fn job(script: &str) -> StatJob {
        StatJob {
            id: "daily".into(),
            tenant_id: "t1".into(),
            name: "Daily energy".into(),
            cron: "0 0 * * *".into(),
            lead_ms: 24 * HOUR,
            signals: vec!["energy_kwh".into(), "power_w".into()],
            devices: DeviceScope::Product {
                product_id: "meter".into(),
            },
            script: script.into(),
            enabled: true,
        }
    }

    fn series() -> Series {
        BTreeMap::from([
            (
                "energy_kwh".to_owned(),
                vec![
                    (1, Value::Number(1200.0)),
                    (2, Value::Number(1210.5)),
                    (3, Value::Number(1224.0)),
                ],
            ),
            (
                "power_w".to_owned(),
                vec![
                    (1, Value::Number(500.0)),
                    (2, Value::Number(1500.0)),
                    (3, Value::Number(1000.0)),
                ],
            ),
        ])
    }

    #[test]
    fn script_computes_named_results_with_the_helpers() -> Result<(), StatsError> {
        let engine = StatsEngine::default();
        let compiled = engine.compile(&job(r#"#{
                consumed: delta(series.energy_kwh),
                peak: max(series.power_w),
                mean: avg(series.power_w),
                p50: percentile(series.power_w, 50),
                samples: count(series.power_w),
                first_at: times.power_w[0],
                hours: (window.end - window.start) / 3600000,
                nothing: (),
            }"#))?;
        let window = Window::ending_at(48 * HOUR, 24 * HOUR);
        let results = engine.run(&compiled, "m-1", window, &series())?;
        let get = |k: &str| results.get(k).and_then(Value::as_f64);
        assert_eq!(get("consumed"), Some(24.0));
        assert_eq!(get("peak"), Some(1500.0));
        assert_eq!(get("mean"), Some(1000.0));
        assert_eq!(get("p50"), Some(1000.0));
        assert_eq!(get("samples"), Some(3.0));
        assert_eq!(get("first_at"), Some(1.0));
        assert_eq!(get("hours"), Some(24.0));
        assert!(!results.contains_key("nothing"));
        Ok(())
    }

    #[test]
    fn single_value_is_stored_as_value_and_empty_series_are_unit() -> Result<(), StatsError> {
        let engine = StatsEngine::default();
        let compiled = engine.compile(&job("avg(series.power_w)"))?;
        let results = engine.run(
            &compiled,
            "m-1",
            Window::ending_at(HOUR, HOUR),
            &Series::new(),
        )?;
        assert!(
            results.is_empty(),
            "avg of nothing is (), which stores nothing"
        );
        let results = engine.run(&compiled, "m-1", Window::ending_at(HOUR, HOUR), &series())?;
        assert_eq!(results.get("value"), Some(&Value::Number(1000.0)));
        Ok(())
    }

    #[test]
    fn invalid_jobs_are_refused_at_save_time() {
        let engine = StatsEngine::default();
        let bad_cron = StatJob {
            cron: "every hour".into(),
            ..job("1")
        };
        let no_lead = StatJob {
            lead_ms: 0,
            ..job("1")
        };
        for (job, expected) in [
            (bad_cron, "invalid CRON expression"),
            (no_lead, "lead_ms must be > 0"),
            (job("let = 1"), "script does not compile"),
        ] {
            let err = engine.compile(&job).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn failing_script_is_an_error_not_a_panic() -> Result<(), StatsError> {
        let engine = StatsEngine::default();
        let compiled = engine.compile(&job("throw \"no data\""))?;
        let err = engine
            .run(&compiled, "m-1", Window::ending_at(HOUR, HOUR), &series())
            .unwrap_err();
        assert!(err.to_string().contains("no data"), "{err}");
        let compiled = engine.compile(&job("#{ a: [1] }"))?;
        let err = engine
            .run(&compiled, "m-1", Window::ending_at(HOUR, HOUR), &series())
            .unwrap_err();
        assert!(err.to_string().contains("result \"a\""), "{err}");
        Ok(())
    }
}
