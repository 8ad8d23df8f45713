//! `iot-functions`: the platform's Lambda handlers. Each takes the event shape AWS delivers
//! (an IoT rule's output, an SQS batch, an SNS envelope, an EventBridge Scheduler input, an
//! API Gateway request), calls a core use case on the AWS adapters, and answers in the shape
//! AWS expects (partial batch failures for SQS). The binaries in `functions/*` are thin: they
//! build one handler from the environment at cold start and run it.
//!
//! Handlers take their configuration as a value, so tests build them against the emulator
//! with the same code the binaries run.

pub mod alarm;
pub mod api;
pub mod backup;
pub mod env;
pub mod ingest;
pub mod notify;
pub mod stats;
pub mod stores;

pub use aws_lambda_events::event::sqs::SqsEvent;
pub use lambda_runtime::Error;
pub use serde_json::Value;

/// The SDK configuration, once per process: region and credentials from the Lambda
/// environment, with the platform's retries and timeouts.
pub async fn sdk_config() -> aws_config::SdkConfig {
    iot_aws::config::load(&iot_aws::config::CallPolicy::default()).await
}

/// Logs as the function's configuration asks: JSON or text (`AWS_LAMBDA_LOG_FORMAT`) at its
/// level (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`), with the request id on each line.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}
