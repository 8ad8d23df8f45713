//! Alarm: evaluation requests from the alarm queue; transitions to the alarm-events topic.

use iot_functions::SqsEvent;
use iot_functions::alarm::{AlarmConfig, AlarmFunction};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    iot_functions::init_tracing();
    let metrics = &iot_functions::Metrics::init("alarm");
    let config = AlarmConfig::from_env()?;
    let function = &AlarmFunction::new(&iot_functions::sdk_config().await, &config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        let answer = function.handle(event.payload).await;
        metrics.flush();
        answer
    }))
    .await
}
