//! The contract on the AWS adapters, against a real AWS emulator on 127.0.0.1 (moto server,
//! started by the test command; LocalStack when `LOCALSTACK_ENDPOINT` is set). Each test makes
//! its own tables and bucket, so tests run in parallel on one emulator.

use iot_aws::dynamo::provision;
use iot_aws::testing::{emulator_config, unique_name};
use iot_aws::{DynamoMetaStore, DynamoTelemetry, EventBridgeScheduler, S3BlobStore, SqsQueue};
use iot_contract::Guard;
use iot_contract::messaging::TakeAll;
use iot_core::ports::{BlobStore, ManualClock, MetaStore, TelemetryStore};
use iot_core::ports::{MessageQueue, QueueMessage, Scheduler};
use std::sync::Arc;
use std::time::Duration;

type Setup<T> = Result<(Arc<T>, Guard), Box<dyn std::error::Error + Send + Sync>>;

async fn meta_store(clock: Arc<ManualClock>) -> Setup<dyn MetaStore> {
    let config = emulator_config().await?;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("meta");
    provision::create_meta_table(&client, &table).await?;
    Ok((
        Arc::new(DynamoMetaStore::with_clock(client, table, clock)),
        Box::new(()),
    ))
}

async fn telemetry_store() -> Setup<dyn TelemetryStore> {
    let config = emulator_config().await?;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("telemetry");
    provision::create_telemetry_table(&client, &table).await?;
    let retention = Some(Duration::from_secs(90 * 86_400));
    Ok((
        Arc::new(DynamoTelemetry::new(client, table, retention)),
        Box::new(()),
    ))
}

async fn blob_store() -> Setup<dyn BlobStore> {
    let config = emulator_config().await?;
    let client = iot_aws::s3::client(&config);
    let bucket = unique_name("blobs");
    client.create_bucket().bucket(&bucket).send().await?;
    Ok((Arc::new(S3BlobStore::new(client, bucket)), Box::new(())))
}

async fn queue() -> Result<
    (Arc<dyn MessageQueue>, TakeAll<'static>, Guard),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let config = emulator_config().await?;
    let client = aws_sdk_sqs::Client::new(&config);
    let (url, _) = iot_aws::testing::create_queue(&client, "contract").await?;
    let (inbox, inbox_url) = (client.clone(), url.clone());
    let take_all: TakeAll<'static> = Box::new(move || {
        let (client, url) = (inbox.clone(), inbox_url.clone());
        Box::pin(async move {
            let all = iot_aws::testing::drain(&client, &url).await?;
            Ok(all
                .into_iter()
                .map(|(id, body)| QueueMessage { id, body })
                .collect())
        })
    });
    Ok((Arc::new(SqsQueue::new(client, url)), take_all, Box::new(())))
}

async fn scheduler() -> Setup<dyn Scheduler> {
    let config = emulator_config().await?;
    let client = aws_sdk_scheduler::Client::new(&config);
    let group = unique_name("stats");
    client.create_schedule_group().name(&group).send().await?;
    Ok((
        Arc::new(EventBridgeScheduler::new(
            client,
            group,
            "arn:aws:lambda:us-east-1:123456789012:function:iot-dev-stats",
            "arn:aws:iam::123456789012:role/iot-dev-scheduler",
        )),
        Box::new(()),
    ))
}

iot_contract::suite!();
