//! One device's execution of a rollout, with the statuses and rules of AWS IoT Jobs.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

use crate::time::Millis;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Queued,
    InProgress,
    Succeeded,
    Failed,
    Rejected,
    TimedOut,
    Canceled,
    Removed,
}

impl ExecutionStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::InProgress)
    }

    /// What a device may report.
    pub fn device_may_set(self) -> bool {
        matches!(
            self,
            Self::InProgress | Self::Succeeded | Self::Failed | Self::Rejected
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryEntry {
    pub status: ExecutionStatus,
    pub at: Millis,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Execution {
    pub rollout_id: String,
    pub tenant_id: String,
    pub device_uid: String,
    pub status: ExecutionStatus,
    pub queued_at: Millis,
    /// When the device was told of the job (on one machine, as the rate allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Millis>,
    pub updated_at: Millis,
    /// Counts updates, for a device's `expectedVersion`.
    pub version_number: u64,
    #[serde(default)]
    pub status_details: BTreeMap<String, String>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ExecutionUpdateError {
    #[error("a device may report IN_PROGRESS, SUCCEEDED, FAILED or REJECTED, not {0:?}")]
    NotADeviceStatus(ExecutionStatus),
    #[error("the execution is {0:?} already and cannot change")]
    Terminal(ExecutionStatus),
    #[error("expected version {expected}, but the execution is at version {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
}

impl ExecutionUpdateError {
    /// The AWS IoT Jobs error code a device receives on `.../rejected`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotADeviceStatus(_) => "InvalidRequest",
            Self::Terminal(_) => "InvalidStateTransition",
            Self::VersionMismatch { .. } => "VersionMismatch",
        }
    }
}

impl Execution {
    pub fn queued(rollout_id: &str, tenant_id: &str, device_uid: &str, now: Millis) -> Self {
        Self {
            rollout_id: rollout_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            device_uid: device_uid.to_owned(),
            status: ExecutionStatus::Queued,
            queued_at: now,
            released_at: None,
            started_at: None,
            updated_at: now,
            version_number: 1,
            status_details: BTreeMap::new(),
            history: vec![HistoryEntry {
                status: ExecutionStatus::Queued,
                at: now,
                details: BTreeMap::new(),
            }],
        }
    }

    /// Its device may now be told of it (the rate allowed it); a device's view only, so the
    /// version a device compares stays.
    pub fn release(&mut self, at: Millis) {
        self.released_at.get_or_insert(at);
    }

    /// Waiting for or running on its device, and told to it.
    pub fn is_pending(&self) -> bool {
        !self.status.is_terminal() && self.released_at.is_some()
    }

    /// A device's report.
    pub fn device_update(
        &mut self,
        status: ExecutionStatus,
        details: BTreeMap<String, String>,
        expected_version: Option<u64>,
        now: Millis,
    ) -> Result<(), ExecutionUpdateError> {
        if !status.device_may_set() {
            return Err(ExecutionUpdateError::NotADeviceStatus(status));
        }
        if self.status.is_terminal() {
            return Err(ExecutionUpdateError::Terminal(self.status));
        }
        if let Some(expected) = expected_version
            && expected != self.version_number
        {
            return Err(ExecutionUpdateError::VersionMismatch {
                expected,
                actual: self.version_number,
            });
        }
        self.set(status, details, now);
        Ok(())
    }

    /// A change of the platform's (timeout, cancel) or one read from AWS IoT's events, which
    /// are facts already: no rule refuses them, and a repeat changes nothing.
    pub fn record(
        &mut self,
        status: ExecutionStatus,
        details: BTreeMap<String, String>,
        at: Millis,
    ) {
        if self.status == status || self.status.is_terminal() {
            return;
        }
        self.set(status, details, at);
    }

    fn set(&mut self, status: ExecutionStatus, details: BTreeMap<String, String>, at: Millis) {
        if status == ExecutionStatus::InProgress && self.started_at.is_none() {
            self.started_at = Some(at);
        }
        self.released_at.get_or_insert(at);
        self.status = status;
        self.updated_at = at;
        self.version_number += 1;
        if !details.is_empty() {
            self.status_details.clone_from(&details);
        }
        self.history.push(HistoryEntry {
            status,
            at,
            details,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecutionStatus as S;

    #[test]
    fn a_device_moves_its_execution_forward_and_never_out_of_an_end() {
        let mut e = Execution::queued("r1", "acme", "pump-1", 0);
        let step = BTreeMap::from([("step".to_owned(), "download".to_owned())]);
        assert_eq!(e.device_update(S::InProgress, step, Some(1), 10), Ok(()));
        assert_eq!((e.version_number, e.started_at), (2, Some(10)));
        assert_eq!(
            e.device_update(S::Succeeded, BTreeMap::new(), Some(1), 20),
            Err(ExecutionUpdateError::VersionMismatch {
                expected: 1,
                actual: 2
            })
        );
        assert_eq!(
            e.device_update(S::TimedOut, BTreeMap::new(), None, 20)
                .unwrap_err()
                .code(),
            "InvalidRequest"
        );
        assert_eq!(
            e.device_update(S::Succeeded, BTreeMap::new(), None, 30),
            Ok(())
        );
        assert_eq!(
            e.device_update(S::Failed, BTreeMap::new(), None, 40),
            Err(ExecutionUpdateError::Terminal(S::Succeeded))
        );
        let statuses: Vec<S> = e.history.iter().map(|h| h.status).collect();
        assert_eq!(statuses, [S::Queued, S::InProgress, S::Succeeded]);
        assert_eq!(e.status_details["step"], "download", "kept until replaced");
    }

    #[test]
    fn recorded_events_are_idempotent_and_end_nothing_twice() {
        let mut e = Execution::queued("r1", "acme", "pump-1", 0);
        e.record(S::Failed, BTreeMap::new(), 5);
        e.record(S::Failed, BTreeMap::new(), 6);
        e.record(S::Canceled, BTreeMap::new(), 7);
        assert_eq!((e.status, e.history.len(), e.updated_at), (S::Failed, 2, 5));
    }
}
