//! Ingest: device messages from the telemetry rule (SQS batch or direct) and presence events.

use iot_functions::Value;
use iot_functions::ingest::{IngestConfig, IngestFunction};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    iot_functions::init_tracing();
    let metrics = &iot_functions::Metrics::init("ingest");
    let config = IngestConfig::from_env()?;
    let function = &IngestFunction::new(&iot_functions::sdk_config().await, &config).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let answer = function.handle(event.payload).await;
        metrics.flush();
        answer
    }))
    .await
}
