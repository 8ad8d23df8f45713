//! `iot-api`: the platform's HTTP API as one axum [`Router`], so the API Lambda and `iot-local`
//! serve the very same routes. Handlers are thin: they read input, call the core, and map errors
//! to problem details ([`error`]).

pub mod error;
mod input;
mod routes;

use axum::Router;
use iot_core::parse::Parser;
use iot_core::ports::{Clock, Scheduler, TelemetryStore};
use iot_core::repo::Catalog;
use iot_core::usecase::{AlarmService, StatsService};
use std::sync::Arc;

pub use input::Tenant;

/// What the handlers need, built once by the binary that serves the router.
pub struct ApiState {
    pub catalog: Catalog,
    pub telemetry: Arc<dyn TelemetryStore>,
    pub alarms: Arc<AlarmService>,
    pub stats: Arc<StatsService>,
    pub scheduler: Arc<dyn Scheduler>,
    pub parser: Parser,
    pub clock: Arc<dyn Clock>,
    /// The tenant of requests that name none.
    pub default_tenant: String,
}

/// The API's routes, all under `/v1` but `/health`.
pub fn app(state: Arc<ApiState>) -> Router {
    routes::router().with_state(state)
}
