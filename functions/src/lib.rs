//! `iot-functions`: the platform's Lambda handlers. Each takes the event shape AWS delivers
//! (an IoT rule's output, an SQS batch, an SNS envelope, an EventBridge Scheduler input, an
//! API Gateway request), calls a core use case on the AWS adapters, and answers in the shape
//! AWS expects (partial batch failures for SQS). The binaries in `functions/*` are thin: they
//! build one handler from the environment at cold start and run it.
//!
//! In a message's flow: [`ingest`], then [`alarm`], then [`notify`], one function each, joined
//! by SQS and SNS; [`api`], [`stats`] and [`backup`] stand beside it.
//!
//! Handlers take their configuration as a value, so tests build them against the emulator
//! with the same code the binaries run.

pub mod alarm;
pub mod api;
pub mod backup;
pub mod device_gateway;
pub mod env;
pub mod ingest;
pub mod notify;
pub mod start;
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

/// The core's counters and histograms (the `metrics` facade) as CloudWatch Embedded Metric
/// Format: one JSON document on stdout per invocation, which CloudWatch Logs turns into metrics
/// in the `IotPlatform` namespace, by function.
#[derive(Clone, Copy)]
pub struct Metrics(Option<&'static metrics_cloudwatch_embedded::Collector>);

impl Metrics {
    /// Installs the process's metrics recorder (once; a second call gets an inert handle).
    pub fn init(function: &'static str) -> Self {
        let collector = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace("IotPlatform")
            .with_dimension("function", function)
            .init();
        if let Err(e) = &collector {
            tracing::warn!(error = %e, "metrics are off");
        }
        Self(collector.ok())
    }

    /// Writes what was counted since the last flush, and starts counting afresh.
    pub fn flush_to(&self, writer: impl std::io::Write) {
        if let Some(collector) = self.0
            && let Err(e) = collector.flush(writer)
        {
            tracing::warn!(error = %e, "could not write the metrics");
        }
    }

    /// [`Self::flush_to`] stdout, where Lambda's log capture picks it up.
    pub fn flush(&self) {
        self.flush_to(std::io::stdout().lock());
    }
}

/// Logs as the function's configuration asks: JSON or text (`AWS_LAMBDA_LOG_FORMAT`) at its
/// level (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`), with the request id on each line.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}
