mod alarms;
mod departments;
mod devices;
mod exports;
mod notify;
mod products;
mod session;
mod stats;
mod users;

use axum::routing::get;
use axum::{Json, Router, middleware};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::ApiState;
use crate::audit::{self, AuditLayer};
use crate::guard;

/// Every route; all but health, login and refresh behind the guard, and every change audited.
pub fn router(state: Arc<ApiState>) -> Router {
    let protected = Router::new()
        .merge(session::routes())
        .merge(users::routes())
        .merge(departments::routes())
        .merge(products::routes())
        .merge(devices::routes())
        .merge(exports::routes())
        .merge(alarms::routes())
        .merge(stats::routes())
        .merge(notify::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_auth,
        ));
    let routed = Router::new()
        .route("/health", get(health))
        .merge(session::public_routes())
        .merge(crate::device_ingest::routes())
        .merge(protected)
        .with_state(state.clone());
    let layer = AuditLayer {
        state,
        router: routed.clone(),
    };
    routed.layer(middleware::from_fn_with_state(layer, audit::record))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
