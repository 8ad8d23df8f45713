use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

use crate::time::Millis;

/// Alarm severity, ordered from least to most severe (the X.733 scale).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warning,
    Minor,
    Major,
    Critical,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Info,
        Level::Warning,
        Level::Minor,
        Level::Major,
        Level::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Minor => "minor",
            Level::Major => "major",
            Level::Critical => "critical",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown level {s:?}; levels are info, warning, minor, major, critical")
            })
    }
}

/// An alarm rule of a product; it applies to every device of the product.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmRule {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.-]{1,128}$"))]
    pub id: String,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub product_id: String,
    pub name: String,
    #[serde(default = "enabled")]
    pub enabled: bool,
    pub condition: Condition,
    #[serde(default)]
    pub debounce: Debounce,
}

fn enabled() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Condition {
    /// Graded bands on one signal.
    Threshold {
        signal: String,
        direction: Direction,
        bands: Vec<Band>,
        /// How far back past a band's threshold the value must go to leave that band.
        #[serde(default)]
        deadband: f64,
    },
    /// A script over the last `window` values of several signals. It returns `true` (raise at
    /// `level`), a level name (raise at that level), or `false` / `()` (normal).
    Joint {
        signals: Vec<String>,
        window: usize,
        script: String,
        #[serde(default = "default_joint_level")]
        level: Level,
    },
}

fn default_joint_level() -> Level {
    Level::Warning
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The band is reached when the value is at or above the threshold.
    Above,
    /// The band is reached when the value is at or below the threshold.
    Below,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Band {
    pub level: Level,
    pub threshold: f64,
}

/// How long an abnormal condition must hold before it raises or escalates an alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Debounce {
    /// Consecutive samples, at least 1.
    #[serde(default = "one")]
    pub samples: u32,
    /// Milliseconds between the first and the latest of those samples.
    #[serde(default)]
    pub for_ms: Millis,
}

fn one() -> u32 {
    1
}

impl Default for Debounce {
    fn default() -> Self {
        Self {
            samples: 1,
            for_ms: 0,
        }
    }
}

/// Why a rule cannot be saved.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum RuleError {
    #[error("rule {rule:?}: {message}")]
    Invalid { rule: String, message: String },
    #[error("rule {rule:?}: {source}")]
    Script {
        rule: String,
        #[source]
        source: crate::script::ScriptError,
    },
}

/// Most values a joint rule may look back on per signal.
pub const MAX_WINDOW: usize = 1_000;

impl AlarmRule {
    /// Checks everything but the script (which [`super::AlarmEvaluator::compile`] compiles).
    pub fn validate(&self) -> Result<(), RuleError> {
        let invalid = |message: String| RuleError::Invalid {
            rule: self.id.clone(),
            message,
        };
        if self.debounce.samples == 0 || self.debounce.for_ms < 0 {
            return Err(invalid(
                "debounce needs samples >= 1 and for_ms >= 0".into(),
            ));
        }
        match &self.condition {
            Condition::Threshold {
                signal,
                direction,
                bands,
                deadband,
            } => {
                if signal.trim().is_empty() {
                    return Err(invalid("a threshold rule needs a signal".into()));
                }
                if bands.is_empty() {
                    return Err(invalid("a threshold rule needs at least one band".into()));
                }
                if !deadband.is_finite() || *deadband < 0.0 {
                    return Err(invalid(format!(
                        "deadband must be a finite number >= 0, got {deadband}"
                    )));
                }
                if let Some(b) = bands.iter().find(|b| !b.threshold.is_finite()) {
                    return Err(invalid(format!(
                        "band {} has a non-finite threshold",
                        b.level
                    )));
                }
                let mut sorted = bands.clone();
                sorted.sort_by_key(|b| b.level);
                for pair in sorted.windows(2) {
                    let (lower, higher) = (pair[0], pair[1]);
                    if lower.level == higher.level {
                        return Err(invalid(format!("level {} has two bands", lower.level)));
                    }
                    let ordered = match direction {
                        Direction::Above => higher.threshold > lower.threshold,
                        Direction::Below => higher.threshold < lower.threshold,
                    };
                    if !ordered {
                        return Err(invalid(format!(
                            "bands must get more severe as the value goes {}: {} at {} vs {} at {}",
                            match direction {
                                Direction::Above => "up",
                                Direction::Below => "down",
                            },
                            lower.level,
                            lower.threshold,
                            higher.level,
                            higher.threshold
                        )));
                    }
                }
            }
            Condition::Joint {
                signals, window, ..
            } => {
                if signals.is_empty() {
                    return Err(invalid("a joint rule needs at least one signal".into()));
                }
                if *window == 0 || *window > MAX_WINDOW {
                    return Err(invalid(format!(
                        "window must be 1..={MAX_WINDOW} values, got {window}"
                    )));
                }
            }
        }
        Ok(())
    }
}
