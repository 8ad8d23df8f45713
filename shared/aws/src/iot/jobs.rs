//! A rollout as an AWS IoT job: its rate, abort rules and timeout are the job's own, and the
//! job document's URL is a placeholder IoT Jobs presigns at each delivery with the stack's
//! presign role, so a rollout of days never hands out an expired link.

use aws_sdk_iot::types::{
    AbortAction, AbortConfig, AbortCriteria, ExponentialRolloutRate, JobExecutionFailureType,
    JobExecutionsRolloutConfig, PresignedUrlConfig, RateIncreaseCriteria, SchedulingConfig,
    TargetSelection, TimeoutConfig,
};
use iot_core::ota::{FailureKind, JobDocument, Rollout, RolloutStatus, firmware_key, job_id};
use iot_core::ports::{GatewayError, RolloutJob};

use super::{IotGateway, unavailable};
use crate::error::code;

/// CreateJob takes up to this many targets; a larger rollout targets a thing group of its own.
const DIRECT_TARGETS: usize = 100;
/// How long each presigned download link lives (the most IoT Jobs allows).
const PRESIGNED_SECONDS: i64 = 3_600;

fn failure_type(kind: FailureKind) -> JobExecutionFailureType {
    match kind {
        FailureKind::Failed => JobExecutionFailureType::Failed,
        FailureKind::Rejected => JobExecutionFailureType::Rejected,
        FailureKind::TimedOut => JobExecutionFailureType::TimedOut,
        FailureKind::All => JobExecutionFailureType::All,
    }
}

fn build_error(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Unavailable(format!("job settings: {e}"))
}

fn rollout_config(rollout: &Rollout) -> JobExecutionsRolloutConfig {
    let mut config = JobExecutionsRolloutConfig::builder()
        .maximum_per_minute(rollout.rate.max_per_minute as i32);
    if let Some(e) = &rollout.rate.exponential {
        config = config.exponential_rate(
            ExponentialRolloutRate::builder()
                .base_rate_per_minute(e.base_per_minute as i32)
                .increment_factor(e.increment_factor)
                .rate_increase_criteria(
                    RateIncreaseCriteria::builder()
                        .number_of_succeeded_things(e.every_succeeded as i32)
                        .build(),
                )
                .build()
                .unwrap_or_else(|_| unreachable!("every required field is set")),
        );
    }
    config.build()
}

fn abort_config(rollout: &Rollout) -> Result<Option<AbortConfig>, GatewayError> {
    if rollout.abort.is_empty() {
        return Ok(None);
    }
    let mut config = AbortConfig::builder();
    for rule in &rollout.abort {
        config = config.criteria_list(
            AbortCriteria::builder()
                .failure_type(failure_type(rule.failure))
                .action(AbortAction::Cancel)
                .threshold_percentage(rule.threshold_percent)
                .min_number_of_executed_things(rule.min_executions as i32)
                .build()
                .map_err(build_error)?,
        );
    }
    config.build().map(Some).map_err(build_error)
}

/// `YYYY-MM-DDTHH:MM` in UTC, the form IoT Jobs schedules take.
fn schedule_time(at: iot_core::time::Millis) -> String {
    iot_core::time::to_rfc3339(at)[..16].to_owned()
}

impl IotGateway {
    pub(super) async fn create_rollout_job(
        &self,
        job: &RolloutJob<'_>,
    ) -> Result<(), GatewayError> {
        let rollout = job.rollout;
        let tenant = &rollout.tenant_id;
        let id = job_id(tenant, &rollout.id);
        let targets = if job.devices.len() <= DIRECT_TARGETS {
            let mut arns = Vec::with_capacity(job.devices.len());
            for uid in job.devices {
                arns.push(self.thing_arn(uid).await?);
            }
            arns
        } else {
            vec![self.rollout_group(&id, job.devices).await?]
        };
        let url = format!(
            "${{aws:iot:s3-presigned-url:https://s3.amazonaws.com/{}/{}}}",
            self.settings.firmware_bucket,
            firmware_key(tenant, &job.package.id)
        );
        let document = JobDocument::new(rollout, job.package, url);
        let document = serde_json::to_string(&document).map_err(build_error)?;
        let mut request = self
            .iot
            .create_job()
            .job_id(&id)
            .set_targets(Some(targets))
            .target_selection(TargetSelection::Snapshot)
            .document(document)
            .description(format!(
                "rollout {} of firmware {} for tenant {tenant}",
                rollout.id, rollout.version
            ))
            .presigned_url_config(
                PresignedUrlConfig::builder()
                    .role_arn(&self.settings.job_presign_role_arn)
                    .expires_in_sec(PRESIGNED_SECONDS)
                    .build(),
            )
            .job_executions_rollout_config(rollout_config(rollout))
            .set_abort_config(abort_config(rollout)?);
        if let Some(minutes) = rollout.in_progress_timeout_minutes {
            request = request.timeout_config(
                TimeoutConfig::builder()
                    .in_progress_timeout_in_minutes(i64::from(minutes))
                    .build(),
            );
        }
        if let Some(at) = rollout
            .start_at
            .filter(|_| rollout.status == RolloutStatus::Scheduled)
        {
            request = request.scheduling_config(
                SchedulingConfig::builder()
                    .start_time(schedule_time(at))
                    .build(),
            );
        }
        request.send().await.map_err(|e| match code(&e) {
            Some("ResourceAlreadyExistsException") => {
                GatewayError::Unavailable(format!("job {id} already exists"))
            }
            _ => unavailable(&e),
        })?;
        Ok(())
    }

    /// A static thing group holding the rollout's things, for rollouts past the direct limit.
    async fn rollout_group(
        &self,
        job_id: &str,
        devices: &[String],
    ) -> Result<String, GatewayError> {
        let name = format!("{}rollout-{job_id}", self.settings.thing_group_prefix);
        let group = self
            .iot
            .create_thing_group()
            .thing_group_name(&name)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        for chunk in devices.chunks(16) {
            let adds = chunk.iter().map(|uid| {
                self.iot
                    .add_thing_to_thing_group()
                    .thing_group_name(&name)
                    .thing_name(uid)
                    .send()
            });
            for added in futures_util::future::join_all(adds).await {
                added.map_err(|e| unavailable(&e))?;
            }
        }
        Ok(group.thing_group_arn().unwrap_or_default().to_owned())
    }

    pub(super) async fn cancel_rollout_job(
        &self,
        rollout: &Rollout,
        force: bool,
    ) -> Result<(), GatewayError> {
        let id = job_id(&rollout.tenant_id, &rollout.id);
        match self.iot.cancel_job().job_id(&id).force(force).send().await {
            Ok(_) => Ok(()),
            // Ended already (completed, or cancelled by its abort rules).
            Err(e) if code(&e) == Some("InvalidRequestException") => Ok(()),
            Err(e) => Err(unavailable(&e)),
        }
    }
}
