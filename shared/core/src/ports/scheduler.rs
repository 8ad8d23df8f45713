use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What a schedule fires: a statistics job run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleTarget {
    pub tenant_id: String,
    pub job_id: String,
}

/// The schedule of a statistics job: one per job, unique across tenants.
pub fn schedule_name(tenant: &str, job: &str) -> String {
    format!("stats.{tenant}.{job}")
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SchedulerError {
    #[error("invalid schedule: {0}")]
    Invalid(String),
    #[error("scheduler unavailable: {0}")]
    Unavailable(String),
}

/// Recurring triggers (EventBridge Scheduler, or an in-process timer).
#[async_trait]
pub trait Scheduler: Send + Sync {
    /// Creates or replaces the schedule named `name`.
    async fn upsert(
        &self,
        name: &str,
        cron: &str,
        target: &ScheduleTarget,
    ) -> Result<(), SchedulerError>;
    async fn delete(&self, name: &str) -> Result<(), SchedulerError>;
}
