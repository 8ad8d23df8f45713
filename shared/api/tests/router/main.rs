//! The API router on its own: driven with tower's `oneshot` over the core's in-memory ports,
//! with no server, broker or database. A small in-memory pipeline stands behind
//! `POST /v1/ingest` (the core's ingest, its alarm service on what ingest queued, then the
//! notify service with the in-system notifier on what alarms published), so a device's
//! reading reaches the alarm routes and the users' inboxes. `tests/` at the workspace root keeps the true
//! end-to-end runs. One module per part of the API.

mod access;
mod alarms;
mod audit;
mod devices;
mod firmware;
mod notify;
mod products;
mod stats;
mod telemetry;
mod users;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use iot_api::device_ingest::{DeviceIngest, IngestReceipt, SubmitError};
use iot_api::{ApiState, app};
use iot_core::alarm::{AlarmEvaluator, AlarmTransition};
use iot_core::auth::{AuthService, AuthSettings, TokenKeys};
use iot_core::notify::ChannelTargets;
use iot_core::parse::Parser;
use iot_core::ports::ManualClock;
use iot_core::ports::memory::{
    MemoryBlobs, MemoryEventBus, MemoryGateway, MemoryMetaStore, MemoryQueue, MemoryScheduler,
    MemoryTelemetry,
};
use iot_core::repo::Catalog;
use iot_core::stats::StatsEngine;
use iot_core::usecase::{
    ALARM_EVENTS_TOPIC, AlarmRequest, AlarmService, InboundMessage, InboxNotifier, Ingest,
    IngestOutcome, NotifyService, OtaService, StatsService,
};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub const NOW: i64 = 1_795_435_200_000;
pub const PASSWORD: &str = "admin password 1";
const SCRIPT: &str = include_str!("../../../../examples/products/json-sensor.rhai");

/// Ingest as the platform does it, the alarm service on what it queued, then notification
/// of what the alarms published, at once.
struct InMemoryPipeline {
    ingest: Ingest,
    queue: Arc<MemoryQueue>,
    alarms: Arc<AlarmService>,
    bus: Arc<MemoryEventBus>,
    notify: NotifyService,
}

#[async_trait]
impl DeviceIngest for InMemoryPipeline {
    async fn submit(&self, message: InboundMessage) -> Result<IngestReceipt, SubmitError> {
        let receipt = match self.ingest.ingest(&message).await? {
            IngestOutcome::Stored { records, .. } => IngestReceipt::Stored { records },
            IngestOutcome::DeadLettered { reason, .. } => IngestReceipt::Rejected { reason },
        };
        for queued in self.queue.drain() {
            let request: AlarmRequest = serde_json::from_str(&queued.body)?;
            self.alarms
                .evaluate(&request)
                .await
                .map_err(|e| SubmitError::Queue(e.to_string()))?;
        }
        for event in self.bus.drain() {
            assert_eq!(event.topic, ALARM_EVENTS_TOPIC);
            let transition: AlarmTransition = serde_json::from_str(&event.body)?;
            self.notify
                .notify(&transition)
                .await
                .map_err(|e| SubmitError::Queue(e.to_string()))?;
        }
        Ok(receipt)
    }
}

/// The router over memory ports, and an access token of `acme`'s first administrator.
pub async fn api() -> Result<(Router, String), Box<dyn std::error::Error>> {
    let clock = Arc::new(ManualClock::new(NOW));
    let catalog = Catalog::new(Arc::new(MemoryMetaStore::with_clock(clock.clone())));
    let telemetry = Arc::new(MemoryTelemetry::default());
    let bus = Arc::new(MemoryEventBus::default());
    let alarms = Arc::new(AlarmService::new(
        catalog.clone(),
        bus.clone(),
        clock.clone(),
        AlarmEvaluator::default(),
    ));
    let queue = Arc::new(MemoryQueue::default());
    let ingest = Ingest::new(
        catalog.clone(),
        telemetry.clone(),
        queue.clone(),
        Arc::new(MemoryBlobs::default()),
        clock.clone(),
        Parser::default(),
    );
    let auth = Arc::new(AuthService::new(
        catalog.clone(),
        clock.clone(),
        TokenKeys::from_secret(&[7u8; 32])?,
        AuthSettings::default(),
    ));
    auth.bootstrap_tenant("acme", "admin", PASSWORD).await?;
    let notify = NotifyService::new(
        catalog.clone(),
        Arc::new(InboxNotifier::new(catalog.clone(), clock.clone())),
        clock.clone(),
    );
    let gateway = Arc::new(MemoryGateway::default());
    let ota = Arc::new(OtaService::new(
        catalog.clone(),
        Arc::new(MemoryBlobs::default()),
        gateway.clone(),
        clock.clone(),
    ));
    let state = ApiState {
        catalog: catalog.clone(),
        telemetry: telemetry.clone(),
        alarms: alarms.clone(),
        stats: Arc::new(StatsService::new(
            catalog.clone(),
            telemetry,
            clock.clone(),
            StatsEngine::default(),
        )),
        scheduler: Arc::new(MemoryScheduler::default()),
        parser: Parser::default(),
        clock,
        auth,
        exports: Arc::new(MemoryBlobs::default()),
        gateway,
        ota,
        device_ingest: Arc::new(InMemoryPipeline {
            ingest,
            queue,
            alarms,
            bus,
            notify,
        }),
        default_tenant: "acme".into(),
        audit_retention_ms: 365 * iot_core::time::DAY,
        channel_targets: ChannelTargets {
            sns_arn_prefix: "arn:aws:sns:local:000000000000:".into(),
            name_prefix: "iot-test-".into(),
        },
        outbound: Default::default(),
    };
    let router = app(Arc::new(state));
    let token = login(&router, "admin", PASSWORD).await?;
    Ok((router, token))
}

/// Signs in: the access token, or the answer's status and body as the error.
pub async fn login(
    router: &Router,
    username: &str,
    password: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let body = json!({ "username": username, "password": password });
    let (status, tokens) = call(router, "POST", "/v1/auth/login", None, Some(body)).await?;
    match tokens["access_token"].as_str() {
        Some(token) if status == 200 => Ok(token.to_owned()),
        _ => Err(format!("sign-in of {username}: {status} {tokens}").into()),
    }
}

/// One request through the router: the status and the JSON answer (`null` if none).
pub async fn call(
    router: &Router,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), Box<dyn std::error::Error>> {
    let (status, bytes) = call_raw(router, method, path, authorization, body).await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// One request through the router: the status and the answer's bytes.
pub async fn call_raw(
    router: &Router,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Vec<u8>), Box<dyn std::error::Error>> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = router.clone().oneshot(request.body(body)?).await?;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok((status, bytes.to_vec()))
}

/// An administrator's request.
pub async fn admin(
    router: &Router,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), Box<dyn std::error::Error>> {
    call(router, method, path, Some(&format!("Bearer {token}")), body).await
}

/// Department `hq`, product `air` with the rule `hot` (above 40), device `air-1`, and its
/// HTTP token.
pub async fn fleet(router: &Router, token: &str) -> Result<String, Box<dyn std::error::Error>> {
    for (path, body) in [
        ("/v1/departments", json!({ "id": "hq", "name": "HQ" })),
        (
            "/v1/products",
            json!({ "id": "air", "name": "Air", "script": { "source": SCRIPT } }),
        ),
        (
            "/v1/products/air/rules",
            json!({ "id": "hot", "name": "Too hot", "enabled": true, "condition": {
                "type": "threshold", "signal": "temperature", "direction": "above",
                "bands": [{ "level": "critical", "threshold": 40 }], "deadband": 1 } }),
        ),
        (
            "/v1/devices",
            json!({ "uid": "air-1", "identification_code": "SN-1", "product_id": "air",
                    "department_id": "hq" }),
        ),
    ] {
        let (status, answer) = admin(router, token, "POST", path, Some(body)).await?;
        assert!(status == 201 || status == 200, "{path}: {status} {answer}");
    }
    let (status, issued) = admin(router, token, "POST", "/v1/devices/air-1/token", None).await?;
    assert_eq!(status, 201, "{issued}");
    Ok(issued["device_token"]
        .as_str()
        .ok_or("no token")?
        .to_owned())
}
