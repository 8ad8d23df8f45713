//! Stats: one statistics job per invocation, from its EventBridge Scheduler schedule.

use iot_functions::stats::{StatsConfig, StatsFunction, StatsInput};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    iot_functions::init_tracing();
    let metrics = &iot_functions::Metrics::init("stats");
    let config = StatsConfig::from_env()?;
    let function = &StatsFunction::new(&iot_functions::sdk_config().await, &config).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<StatsInput>| async move {
        let answer = function.handle(event.payload).await;
        metrics.flush();
        answer
    }))
    .await
}
