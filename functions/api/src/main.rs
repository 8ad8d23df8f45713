//! API: API Gateway's HTTP API, served by the platform's axum router.

use iot_functions::api::{ApiConfig, router};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    iot_functions::init_tracing();
    let metrics = iot_functions::Metrics::init("api");
    let config = ApiConfig::from_env()?;
    let app = router(&iot_functions::sdk_config().await, &config)
        .await?
        .layer(axum::middleware::map_response(
            move |response: axum::response::Response| async move {
                metrics.flush();
                response
            },
        ));
    lambda_http::run(app).await
}
