//! Backup: scheduled exports of the metadata tables to S3.

use iot_functions::Value;
use iot_functions::backup::{BackupConfig, BackupFunction};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    iot_functions::init_tracing();
    let metrics = &iot_functions::Metrics::init("backup");
    let config = BackupConfig::from_env()?;
    let function = &BackupFunction::new(&iot_functions::sdk_config().await, config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let answer = function.handle(event.payload).await;
        metrics.flush();
        answer
    }))
    .await
}
