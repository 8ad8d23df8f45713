//! A rollout: one ready package sent to a set of devices, at a rate, with abort rules and a
//! timeout, as an AWS IoT job is configured.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::ExecutionStatus;
use crate::time::Millis;

/// Which devices a rollout is for, all within the caller's tenant and departments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RolloutTarget {
    /// A named group of devices.
    Devices {
        uids: Vec<String>,
    },
    Department {
        department_id: String,
    },
    /// Every device of the package's product.
    Product,
}

/// At most `max_per_minute` devices are told of the job each minute; with `exponential`, the
/// rate starts at `base_per_minute` and is multiplied by `increment_factor` each time another
/// `every_succeeded` devices have succeeded, up to `max_per_minute`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolloutRate {
    pub max_per_minute: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential: Option<ExponentialRate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExponentialRate {
    pub base_per_minute: u32,
    pub increment_factor: f64,
    pub every_succeeded: u32,
}

impl Default for RolloutRate {
    fn default() -> Self {
        Self {
            max_per_minute: 1000,
            exponential: None,
        }
    }
}

/// Which outcomes an abort rule counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureKind {
    Failed,
    Rejected,
    TimedOut,
    /// Failed, rejected and timed out together.
    All,
}

impl FailureKind {
    pub fn counts(self, status: ExecutionStatus) -> bool {
        use ExecutionStatus as S;
        match self {
            Self::Failed => status == S::Failed,
            Self::Rejected => status == S::Rejected,
            Self::TimedOut => status == S::TimedOut,
            Self::All => matches!(status, S::Failed | S::Rejected | S::TimedOut),
        }
    }
}

/// Cancel the rollout when `failure` reaches `threshold_percent` of the finished executions,
/// once at least `min_executions` have finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AbortRule {
    pub failure: FailureKind,
    pub threshold_percent: f64,
    pub min_executions: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    /// Waiting for its start time.
    Scheduled,
    InProgress,
    /// Every execution has ended.
    Completed,
    /// Cancelled by a user.
    Canceled,
    /// Cancelled by an abort rule.
    Aborted,
}

impl RolloutStatus {
    pub fn is_over(self) -> bool {
        matches!(self, Self::Completed | Self::Canceled | Self::Aborted)
    }
}

/// Executions by status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolloutCounts {
    pub queued: u32,
    pub in_progress: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub rejected: u32,
    pub timed_out: u32,
    pub canceled: u32,
    pub removed: u32,
}

impl RolloutCounts {
    pub fn of<'a>(statuses: impl IntoIterator<Item = &'a ExecutionStatus>) -> Self {
        let mut counts = Self::default();
        for status in statuses {
            *counts.slot(*status) += 1;
        }
        counts
    }

    fn slot(&mut self, status: ExecutionStatus) -> &mut u32 {
        use ExecutionStatus as S;
        match status {
            S::Queued => &mut self.queued,
            S::InProgress => &mut self.in_progress,
            S::Succeeded => &mut self.succeeded,
            S::Failed => &mut self.failed,
            S::Rejected => &mut self.rejected,
            S::TimedOut => &mut self.timed_out,
            S::Canceled => &mut self.canceled,
            S::Removed => &mut self.removed,
        }
    }

    /// Executions that reached an outcome of the device's (or its timeout).
    pub fn finished(&self) -> u32 {
        self.succeeded + self.failed + self.rejected + self.timed_out
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rollout {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_-]{1,48}$"))]
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub package_id: String,
    /// The package's version, copied when the rollout starts.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub version: String,
    pub target: RolloutTarget,
    #[serde(default)]
    pub rate: RolloutRate,
    #[serde(default)]
    pub abort: Vec<AbortRule>,
    /// An execution in progress for longer than this times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress_timeout_minutes: Option<u32>,
    /// Epoch ms; devices are told of the job from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<Millis>,
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub status: RolloutStatus,
    /// Why an abort rule cancelled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub reason: Option<String>,
    /// Devices of the target already on this version, not sent the job.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub skipped: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub created_at: Millis,
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub ended_at: Option<Millis>,
}

#[derive(Clone, Debug, Error, PartialEq)]
pub enum RolloutError {
    #[error("max_per_minute must be between 1 and 1000")]
    Rate,
    #[error(
        "exponential needs base_per_minute 1 to max_per_minute, increment_factor 1.1 to 5 and every_succeeded 1 or more"
    )]
    Exponential,
    #[error(
        "abort rule {0}: threshold_percent must be above 0 and at most 100, min_executions 1 or more"
    )]
    Abort(usize),
    #[error("in_progress_timeout_minutes must be between 1 and 10080 (7 days)")]
    Timeout,
    #[error("id must be 1 to 48 letters, digits, `-` or `_`")]
    Id,
}

impl RolloutError {
    pub fn pointer(&self) -> String {
        match self {
            Self::Rate => "/rate/max_per_minute".into(),
            Self::Exponential => "/rate/exponential".into(),
            Self::Abort(i) => format!("/abort/{i}"),
            Self::Timeout => "/in_progress_timeout_minutes".into(),
            Self::Id => "/id".into(),
        }
    }
}

impl Rollout {
    /// The limits AWS IoT Jobs sets, so a rollout accepted here is accepted there.
    pub fn check(&self) -> Result<(), RolloutError> {
        let id_ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.id.is_empty() || self.id.len() > 48 || !self.id.chars().all(id_ok) {
            return Err(RolloutError::Id);
        }
        let max = self.rate.max_per_minute;
        if !(1..=1000).contains(&max) {
            return Err(RolloutError::Rate);
        }
        if let Some(e) = &self.rate.exponential
            && !((1..=max).contains(&e.base_per_minute)
                && (1.1..=5.0).contains(&e.increment_factor)
                && e.every_succeeded >= 1)
        {
            return Err(RolloutError::Exponential);
        }
        for (i, rule) in self.abort.iter().enumerate() {
            if !(rule.threshold_percent > 0.0 && rule.threshold_percent <= 100.0)
                || rule.min_executions == 0
            {
                return Err(RolloutError::Abort(i));
            }
        }
        if let Some(minutes) = self.in_progress_timeout_minutes
            && !(1..=10_080).contains(&minutes)
        {
            return Err(RolloutError::Timeout);
        }
        Ok(())
    }

    /// The rate now, given how many executions have succeeded.
    pub fn rate_per_minute(&self, succeeded: u32) -> u32 {
        let max = self.rate.max_per_minute;
        let Some(e) = &self.rate.exponential else {
            return max;
        };
        let steps = (succeeded / e.every_succeeded.max(1)).min(64) as i32;
        let rate = f64::from(e.base_per_minute) * e.increment_factor.powi(steps);
        (rate.floor() as u32).clamp(1, max)
    }

    /// The first abort rule the counts break, in words.
    pub fn broken_abort_rule(&self, counts: &RolloutCounts) -> Option<String> {
        let finished = counts.finished();
        self.abort.iter().find_map(|rule| {
            if finished < rule.min_executions {
                return None;
            }
            let failures: u32 = [
                (ExecutionStatus::Failed, counts.failed),
                (ExecutionStatus::Rejected, counts.rejected),
                (ExecutionStatus::TimedOut, counts.timed_out),
            ]
            .iter()
            .filter(|(status, _)| rule.failure.counts(*status))
            .map(|(_, n)| n)
            .sum();
            let percent = f64::from(failures) * 100.0 / f64::from(finished);
            (percent >= rule.threshold_percent).then(|| {
                format!(
                    "{failures} of {finished} finished executions ({percent:.0} %) are {:?}, at or above the abort threshold of {} %",
                    rule.failure, rule.threshold_percent
                )
            })
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rollout() -> Rollout {
        Rollout {
            id: "r1".into(),
            tenant_id: "acme".into(),
            package_id: "fw-2".into(),
            version: "2.0.0".into(),
            target: RolloutTarget::Product,
            rate: RolloutRate::default(),
            abort: vec![],
            in_progress_timeout_minutes: None,
            start_at: None,
            status: RolloutStatus::InProgress,
            reason: None,
            skipped: vec![],
            created_at: 0,
            created_by: "admin".into(),
            ended_at: None,
        }
    }

    #[test]
    fn limits_are_those_of_aws_iot_jobs() {
        assert_eq!(rollout().check(), Ok(()));
        let mut fast = rollout();
        fast.rate.max_per_minute = 1001;
        assert_eq!(fast.check(), Err(RolloutError::Rate));
        let mut slow_start = rollout();
        slow_start.rate.exponential = Some(ExponentialRate {
            base_per_minute: 5,
            increment_factor: 1.0,
            every_succeeded: 5,
        });
        assert_eq!(slow_start.check(), Err(RolloutError::Exponential));
        let mut rule = rollout();
        rule.abort.push(AbortRule {
            failure: FailureKind::All,
            threshold_percent: 0.0,
            min_executions: 1,
        });
        assert_eq!(rule.check().unwrap_err().pointer(), "/abort/0");
        let mut long = rollout();
        long.in_progress_timeout_minutes = Some(10_081);
        assert_eq!(long.check(), Err(RolloutError::Timeout));
    }

    #[test]
    fn an_exponential_rate_grows_with_successes_up_to_its_maximum() {
        let mut r = rollout();
        r.rate = RolloutRate {
            max_per_minute: 40,
            exponential: Some(ExponentialRate {
                base_per_minute: 5,
                increment_factor: 2.0,
                every_succeeded: 10,
            }),
        };
        assert_eq!(r.rate_per_minute(0), 5);
        assert_eq!(r.rate_per_minute(9), 5);
        assert_eq!(r.rate_per_minute(10), 10);
        assert_eq!(r.rate_per_minute(25), 20);
        assert_eq!(r.rate_per_minute(1000), 40);
    }

    #[test]
    fn an_abort_rule_waits_for_its_minimum_then_compares_the_share() {
        let mut r = rollout();
        r.abort.push(AbortRule {
            failure: FailureKind::All,
            threshold_percent: 30.0,
            min_executions: 10,
        });
        let counts = |succeeded, failed, timed_out| RolloutCounts {
            succeeded,
            failed,
            timed_out,
            ..RolloutCounts::default()
        };
        assert_eq!(
            r.broken_abort_rule(&counts(0, 5, 0)),
            None,
            "5 < 10 finished"
        );
        assert_eq!(r.broken_abort_rule(&counts(8, 2, 1)), None, "27 %");
        assert!(r.broken_abort_rule(&counts(7, 2, 1)).is_some(), "30 %");
    }
}
