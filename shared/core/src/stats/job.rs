use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::model::Value;
use crate::time::Millis;

/// A statistics job. See `docs/scripts.md` for what the script sees and returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatJob {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.-]{1,128}$"))]
    pub id: String,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub name: String,
    /// Five-field CRON (`0 * * * *`) or EventBridge `cron(...)`, in UTC.
    pub cron: String,
    /// How far back from the scheduled time the window starts.
    pub lead_ms: Millis,
    /// The signals the script reads.
    pub signals: Vec<String>,
    pub devices: DeviceScope,
    pub script: String,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

/// Which devices a job computes for: one result per device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceScope {
    Product { product_id: String },
    Devices { uids: Vec<String> },
}

/// A closed time window `[start, end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Window {
    pub start: Millis,
    pub end: Millis,
}

impl Window {
    /// The window of a run scheduled at `scheduled`: `[scheduled - lead, scheduled]`.
    pub fn ending_at(scheduled: Millis, lead: Millis) -> Self {
        Self {
            start: scheduled.saturating_sub(lead),
            end: scheduled,
        }
    }

    pub fn contains(&self, time: Millis) -> bool {
        (self.start..=self.end).contains(&time)
    }
}

/// What one run computed for one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatResult {
    pub job_id: String,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub device_uid: String,
    pub window: Window,
    pub values: BTreeMap<String, Value>,
    pub computed_at: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::HOUR;

    #[test]
    fn window_ends_at_the_scheduled_time_and_includes_both_ends() {
        let window = Window::ending_at(10 * HOUR, HOUR);
        assert_eq!(
            window,
            Window {
                start: 9 * HOUR,
                end: 10 * HOUR
            }
        );
        assert!(window.contains(9 * HOUR) && window.contains(10 * HOUR));
        assert!(!window.contains(10 * HOUR + 1));
    }
}
