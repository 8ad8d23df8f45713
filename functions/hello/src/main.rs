//! Hello world, built like the platform's functions: the yardstick their cold starts are
//! measured against (`scripts/bench-cold-start`).

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, lambda_runtime::Error>(json!({ "hello": event.payload }))
    }))
    .await
}
