//! The stats function: one EventBridge Scheduler schedule per statistics job invokes it with
//! the job and the time the run was scheduled for; the core computes over the window
//! `[scheduled time - lead, scheduled time]` and stores the results.

use aws_config::SdkConfig;
use iot_aws::ScheduledInput;
use iot_core::ports::{Clock, ScheduleTarget, SystemClock};
use iot_core::repo::Catalog;
use iot_core::stats::StatsEngine;
use iot_core::time::parse_rfc3339;
use iot_core::usecase::StatsService;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::env::{self, EnvError};
use crate::stores::{TelemetryBackend, meta_store};

/// The IAM actions this function uses (`template.yaml` grants exactly these; a test compares).
pub const IAM_ACTIONS: &[&str] = &[
    // the job, the product's devices (index query), the results
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    // telemetry windows (Timestream backend; the DynamoDB one is a query)
    "timestream:Select",
    "timestream:DescribeEndpoints",
];

#[derive(Clone, Debug)]
pub struct StatsConfig {
    pub meta_table: String,
    pub telemetry: TelemetryBackend,
}

impl StatsConfig {
    pub fn from_env() -> Result<Self, EnvError> {
        Ok(Self {
            meta_table: env::required("META_TABLE")?,
            telemetry: TelemetryBackend::from_env()?,
        })
    }
}

/// What a job's schedule sends: the job, and the time the run was scheduled for.
pub type StatsInput = ScheduledInput<ScheduleTarget>;

pub struct StatsFunction {
    service: StatsService,
    clock: Arc<dyn Clock>,
}

impl StatsFunction {
    pub async fn new(
        sdk: &SdkConfig,
        config: &StatsConfig,
    ) -> Result<Self, crate::start::StartError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let service = StatsService::new(
            Catalog::new(meta_store(&dynamodb, &config.meta_table)),
            config.telemetry.build(sdk, &dynamodb).await?,
            clock.clone(),
            StatsEngine::default(),
        );
        Ok(Self { service, clock })
    }

    /// Runs the job. An unknown job or a broken script is an error (the schedule's retry
    /// policy and dead-letter queue keep the invocation); per-device failures are reported.
    pub async fn handle(&self, input: StatsInput) -> Result<Value, crate::Error> {
        // Without EventBridge's scheduled time (a manual invocation), the run is for now.
        let scheduled_at =
            parse_rfc3339(&input.scheduled_at).unwrap_or_else(|| self.clock.now_ms());
        let run = self
            .service
            .run(&input.target.tenant_id, &input.target.job_id, scheduled_at)
            .await?;
        Ok(json!({
            "job_id": input.target.job_id,
            "window": run.window,
            "results": run.results.len(),
            "failures": run.failures,
        }))
    }
}
