//! The API function: API Gateway's HTTP API hands every request to the same axum router
//! `iot-local` serves.

use aws_config::SdkConfig;
use axum::Router;
use iot_api::ApiState;
use iot_aws::EventBridgeScheduler;
use iot_core::alarm::AlarmEvaluator;
use iot_core::parse::Parser;
use iot_core::ports::{Clock, SystemClock};
use iot_core::repo::Catalog;
use iot_core::stats::StatsEngine;
use iot_core::usecase::{AlarmService, StatsService};
use std::sync::Arc;

use crate::alarm::alarm_bus;
use crate::env::{self, EnvError};
use crate::stores::{TelemetryBackend, meta_store};

/// The IAM actions this function uses (`template.yaml` grants exactly these; a test compares).
pub const IAM_ACTIONS: &[&str] = &[
    // every entity: read, list (table and index), write, delete (transactions are authorised
    // per item as put and delete)
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    // telemetry queries (Timestream backend)
    "timestream:Select",
    "timestream:DescribeEndpoints",
    // acknowledged and cleared alarms
    "sns:Publish",
    // statistics jobs as schedules, which run as the scheduler role
    "scheduler:CreateSchedule",
    "scheduler:UpdateSchedule",
    "scheduler:DeleteSchedule",
    "iam:PassRole",
];

#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub meta_table: String,
    pub telemetry: TelemetryBackend,
    /// Acknowledging or clearing an alarm publishes the transition, as evaluation does.
    pub alarm_events_topic_arn: String,
    /// Statistics jobs become schedules in this group, invoking the stats function through
    /// the scheduler's role.
    pub schedule_group: String,
    pub stats_function_arn: String,
    pub scheduler_role_arn: String,
    pub default_tenant: String,
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, EnvError> {
        Ok(Self {
            meta_table: env::required("META_TABLE")?,
            telemetry: TelemetryBackend::from_env()?,
            alarm_events_topic_arn: env::required("ALARM_EVENTS_TOPIC_ARN")?,
            schedule_group: env::required("SCHEDULE_GROUP")?,
            stats_function_arn: env::required("STATS_FUNCTION_ARN")?,
            scheduler_role_arn: env::required("SCHEDULER_ROLE_ARN")?,
            default_tenant: env::optional("DEFAULT_TENANT").unwrap_or_else(|| "default".into()),
        })
    }
}

/// The API's router on the AWS adapters.
pub async fn router(sdk: &SdkConfig, config: &ApiConfig) -> Result<Router, String> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let catalog = Catalog::new(meta_store(sdk, &config.meta_table));
    let telemetry = config.telemetry.build(sdk).await?;
    let alarms = AlarmService::new(
        catalog.clone(),
        Arc::new(alarm_bus(sdk, &config.alarm_events_topic_arn)),
        clock.clone(),
        AlarmEvaluator::default(),
    );
    let stats = StatsService::new(
        catalog.clone(),
        telemetry.clone(),
        clock.clone(),
        StatsEngine::default(),
    );
    let scheduler = EventBridgeScheduler::new(
        aws_sdk_scheduler::Client::new(sdk),
        &config.schedule_group,
        &config.stats_function_arn,
        &config.scheduler_role_arn,
    );
    Ok(iot_api::app(Arc::new(ApiState {
        catalog,
        telemetry,
        alarms: Arc::new(alarms),
        stats: Arc::new(stats),
        scheduler: Arc::new(scheduler),
        parser: Parser::default(),
        clock,
        default_tenant: config.default_tenant.clone(),
    })))
}
