//! `iot-api`: the platform's HTTP API as one axum [`Router`], so the API Lambda and `iot-local`
//! serve the very same routes. Handlers are thin: they read input, call the core, and map errors
//! to problem details ([`error`]).
//!
//! Beside a message's flow: devices may enter it through `POST /v1/ingest` ([`device_ingest`]);
//! operators read what it stored and act on its alarms.

pub mod audit;
mod described;
pub mod device_ingest;
pub mod error;
mod guard;
mod input;
pub mod jwks;
pub mod openapi;
mod request_context;
mod routes;

use axum::Router;
use iot_core::auth::AuthService;
use iot_core::notify::ChannelTargets;
use iot_core::outbound::OutboundPolicy;
use iot_core::parse::Parser;
use iot_core::ports::{BlobStore, Clock, DeviceGateway, Scheduler, TelemetryStore};
use iot_core::repo::Catalog;
use iot_core::time::Millis;
use iot_core::usecase::{AlarmService, OtaService, StatsService};
use std::sync::Arc;

pub use input::{Caller, Tenant};

/// What the handlers need, built once by the binary that serves the router.
pub struct ApiState {
    pub catalog: Catalog,
    pub telemetry: Arc<dyn TelemetryStore>,
    pub alarms: Arc<AlarmService>,
    pub stats: Arc<StatsService>,
    pub scheduler: Arc<dyn Scheduler>,
    pub parser: Parser,
    pub clock: Arc<dyn Clock>,
    pub auth: Arc<AuthService>,
    /// Where telemetry exports are written (the exports bucket, or the data directory).
    pub exports: Arc<dyn BlobStore>,
    /// Device certificates, commands and shadows (AWS IoT Core, or the local broker).
    pub gateway: Arc<dyn DeviceGateway>,
    /// Firmware packages and rollouts, over the firmware store and the gateway's jobs.
    pub ota: Arc<OtaService>,
    /// Where `POST /v1/ingest` hands device messages.
    pub device_ingest: Arc<dyn device_ingest::DeviceIngest>,
    /// The tenant of logins that name none.
    pub default_tenant: String,
    /// How long audit entries are kept.
    pub audit_retention_ms: Millis,
    /// The SNS topics and endpoints channels may name.
    pub channel_targets: ChannelTargets,
    /// Where webhook channels may point besides public addresses.
    pub outbound: OutboundPolicy,
}

/// The API's routes, all under `/v1` but `/health`. Every `/v1` route but login and refresh
/// needs an access token, and every change is audited.
pub fn app(state: Arc<ApiState>) -> Router {
    routes::router(state)
}
