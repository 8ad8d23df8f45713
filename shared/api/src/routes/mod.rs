mod alarms;
mod devices;
mod notify;
mod products;
mod stats;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::ApiState;

pub fn router() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/health", get(health))
        .merge(products::routes())
        .merge(devices::routes())
        .merge(alarms::routes())
        .merge(stats::routes())
        .merge(notify::routes())
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
