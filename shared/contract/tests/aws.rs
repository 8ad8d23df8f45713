//! The contract on the AWS adapters, against a real AWS emulator on 127.0.0.1 (moto server,
//! started by the test command; LocalStack when `LOCALSTACK_ENDPOINT` is set). Each test makes
//! its own tables and bucket, so tests run in parallel on one emulator.

use iot_aws::dynamo::provision;
use iot_aws::testing::{emulator_config, unique_name};
use iot_aws::{DynamoMetaStore, DynamoTelemetry, S3BlobStore};
use iot_contract::Guard;
use iot_core::ports::{BlobStore, ManualClock, MetaStore, TelemetryStore};
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

iot_contract::suite!();
