mod alarms;
mod app_credentials;
mod departments;
mod devices;
mod exports;
mod firmware;
mod fleet_limits;
mod notify;
mod products;
mod rollouts;
mod session;
mod stats;
mod tenants;
mod user_rights;
mod users;

use axum::http::header;
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

use crate::ApiState;
use crate::audit::{self, AuditLayer};
use crate::described::{ApiRouter, routes};
use crate::guard;
use crate::openapi;

/// Every route; all but health, the OpenAPI document, sign-in and device ingest behind the
/// guard, and every change audited.
pub fn router(state: Arc<ApiState>) -> Router {
    let protected = ApiRouter::new()
        .merge(session::routes())
        .merge(users::routes())
        .merge(departments::routes())
        .merge(products::routes())
        .merge(devices::routes())
        .merge(exports::routes())
        .merge(alarms::routes())
        .merge(stats::routes())
        .merge(firmware::routes())
        .merge(rollouts::routes())
        .merge(notify::routes())
        .merge(tenants::routes())
        .merge(app_credentials::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_auth,
        ));
    let (routed, description) = ApiRouter::new()
        .routes(routes!(health))
        .merge(session::public_routes())
        .merge(firmware::public_routes())
        .merge(crate::device_ingest::routes())
        .merge(protected)
        .into_parts();
    // Described and serialised on the first request for it, not at every cold start.
    let description = Arc::new(description);
    let document: Arc<OnceLock<String>> = Arc::default();
    let routed = routed
        .route(
            "/openapi.json",
            get(move || {
                let json = document
                    .get_or_init(|| {
                        openapi::finish(description.build())
                            .to_json()
                            .unwrap_or_default()
                    })
                    .clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], json) }
            }),
        )
        .with_state(state.clone());
    let layer = AuditLayer {
        state,
        router: routed.clone(),
    };
    routed.layer(middleware::from_fn_with_state(layer, audit::record))
}

/// Whether the API is up, and its version.
#[utoipa::path(get, path = "/health", tag = "health", security(()),
    responses((status = 200, description = "Up", body = Object)))]
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
