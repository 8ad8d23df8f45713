//! [`Scheduler`] on EventBridge Scheduler: one schedule per statistics job, in the platform's
//! schedule group, firing the stats function with the job as input. CRON expressions are
//! checked and converted by the core (EventBridge does not validate them helpfully, and
//! emulators not at all).

use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, Target};
use iot_core::ports::{ScheduleTarget, Scheduler, SchedulerError};
use iot_core::stats::Schedule;

use crate::LazyClient;
use crate::error::{code, describe};

/// EventBridge Scheduler replaces this placeholder in the input with the time the run was
/// scheduled for, so the window a run covers does not drift with invocation delays.
pub const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";

/// What the stats function receives: the job, and when the run was scheduled for.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ScheduledInput<T> {
    #[serde(flatten)]
    pub target: T,
    /// RFC 3339 once EventBridge has filled it in; absent when invoked by hand.
    #[serde(default)]
    pub scheduled_at: String,
}

#[derive(Clone)]
pub struct EventBridgeScheduler {
    client: LazyClient<Client>,
    /// The schedule group (one per stage), so IAM can scope the API function to it.
    group: String,
    /// The stats function's ARN, and the role EventBridge Scheduler assumes to invoke it.
    target_arn: String,
    role_arn: String,
}

impl EventBridgeScheduler {
    pub fn new(
        client: impl Into<LazyClient<Client>>,
        group: impl Into<String>,
        target_arn: impl Into<String>,
        role_arn: impl Into<String>,
    ) -> Self {
        Self {
            client: client.into(),
            group: group.into(),
            target_arn: target_arn.into(),
            role_arn: role_arn.into(),
        }
    }

    fn parts(
        &self,
        cron: &str,
        target: &ScheduleTarget,
    ) -> Result<(String, FlexibleTimeWindow, Target), SchedulerError> {
        let invalid = |e: String| SchedulerError::Invalid(e);
        let expression = Schedule::parse(cron)
            .and_then(|s| s.to_eventbridge())
            .map_err(|e| invalid(e.to_string()))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        let input = serde_json::to_string(&ScheduledInput {
            target,
            scheduled_at: SCHEDULED_TIME.to_owned(),
        })
        .map_err(|e| invalid(e.to_string()))?;
        let target = Target::builder()
            .arn(&self.target_arn)
            .role_arn(&self.role_arn)
            .input(input)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok((expression, window, target))
    }
}

fn unavailable<E, R>(error: &aws_sdk_scheduler::error::SdkError<E, R>) -> SchedulerError
where
    E: std::error::Error + aws_sdk_scheduler::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match code(error) {
        Some("ValidationException") => SchedulerError::Invalid(describe(error)),
        _ => SchedulerError::Unavailable(describe(error)),
    }
}

#[async_trait]
impl Scheduler for EventBridgeScheduler {
    async fn upsert(
        &self,
        name: &str,
        cron: &str,
        target: &ScheduleTarget,
    ) -> Result<(), SchedulerError> {
        let (expression, window, target) = self.parts(cron, target)?;
        let updated = self
            .client
            .get()
            .update_schedule()
            .name(name)
            .group_name(&self.group)
            .schedule_expression(&expression)
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window.clone())
            .target(target.clone())
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => {
                match self
                    .client
                    .get()
                    .create_schedule()
                    .name(name)
                    .group_name(&self.group)
                    .schedule_expression(expression)
                    .schedule_expression_timezone("UTC")
                    .flexible_time_window(window)
                    .target(target)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) => Err(unavailable(&e)),
                }
            }
            Err(e) => Err(unavailable(&e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), SchedulerError> {
        match self
            .client
            .get()
            .delete_schedule()
            .name(name)
            .group_name(&self.group)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(unavailable(&e)),
        }
    }
}
