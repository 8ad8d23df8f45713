//! EventBridge Scheduler against the AWS emulator: create, update, delete, and the target input
//! the stats function receives. (moto stores schedules but never fires them, nor checks CRON:
//! the core converts and checks the expression before it is sent, tested here by a refusal.)

use iot_aws::EventBridgeScheduler;
use iot_aws::scheduler::{SCHEDULED_TIME, ScheduledInput};
use iot_aws::testing::{emulator_config, unique_name};
use iot_core::ports::{ScheduleTarget, Scheduler, SchedulerError};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test]
async fn schedules_are_created_updated_and_deleted() -> TestResult {
    let config = emulator_config().await?;
    let client = aws_sdk_scheduler::Client::new(&config);
    let group = unique_name("iot-dev-stats");
    client.create_schedule_group().name(&group).send().await?;
    let scheduler = EventBridgeScheduler::new(
        client.clone(),
        &group,
        "arn:aws:lambda:us-east-1:123456789012:function:iot-dev-stats",
        "arn:aws:iam::123456789012:role/iot-dev-scheduler",
    );
    let target = ScheduleTarget {
        tenant_id: "acme".into(),
        job_id: "daily-energy".into(),
    };

    scheduler
        .upsert("acme-daily-energy", "0 2 * * *", &target)
        .await?;
    let stored = client
        .get_schedule()
        .name("acme-daily-energy")
        .group_name(&group)
        .send()
        .await?;
    assert_eq!(stored.schedule_expression(), Some("cron(0 2 * * ? *)"));
    assert_eq!(stored.schedule_expression_timezone(), Some("UTC"));
    let input: ScheduledInput<ScheduleTarget> =
        serde_json::from_str(stored.target().and_then(|t| t.input()).unwrap_or_default())?;
    assert_eq!(input.target, target);
    assert_eq!(input.scheduled_at, SCHEDULED_TIME);

    scheduler
        .upsert("acme-daily-energy", "*/15 * * * *", &target)
        .await?;
    let stored = client
        .get_schedule()
        .name("acme-daily-energy")
        .group_name(&group)
        .send()
        .await?;
    assert_eq!(stored.schedule_expression(), Some("cron(*/15 * * * ? *)"));

    assert!(matches!(
        scheduler.upsert("bad", "61 * * * *", &target).await,
        Err(SchedulerError::Invalid(_))
    ));

    scheduler.delete("acme-daily-energy").await?;
    assert!(
        client
            .get_schedule()
            .name("acme-daily-energy")
            .group_name(&group)
            .send()
            .await
            .is_err(),
        "deleted"
    );
    scheduler.delete("acme-daily-energy").await?;
    Ok(())
}
