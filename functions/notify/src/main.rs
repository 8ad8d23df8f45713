//! Notify: alarm events from the notify queue, delivered through every matching channel.

use iot_functions::SqsEvent;
use iot_functions::notify::{NotifyConfig, NotifyFunction};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    iot_functions::init_tracing();
    let metrics = &iot_functions::Metrics::init("notify");
    let config = NotifyConfig::from_env()?;
    let function = &NotifyFunction::new(&iot_functions::sdk_config().await, &config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        let answer = function.handle(event.payload).await;
        metrics.flush();
        answer
    }))
    .await
}
