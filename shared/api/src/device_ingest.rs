//! HTTP ingest for devices that cannot speak MQTT: `POST /v1/ingest` with a device token. The
//! message takes the path an MQTT message takes (the local pipeline, or the ingest queue the
//! IoT rule feeds on AWS), so parsing, storage, alarms and dead letters are the same.

use async_trait::async_trait;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iot_core::auth::secret::random_id;
use iot_core::topics::split_device_token;
use iot_core::usecase::{DeviceAuthError, InboundMessage, verify_device};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::ApiError;
use crate::input::check_id;

/// Largest accepted body, as for MQTT payloads.
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// What became of a message handed in over HTTP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum IngestReceipt {
    /// Parsed and stored (the local platform answers after the commit).
    Stored { records: usize },
    /// Queued for the ingest function (on AWS); parsing happens there.
    Queued { message_id: String },
    /// The product's script refused it; it is kept as a dead letter with the reason.
    Rejected { reason: String },
}

/// Where HTTP-ingested messages go.
#[async_trait]
pub trait DeviceIngest: Send + Sync {
    /// `Err` when the message was not committed: the request answers 503 and the device
    /// sends it again.
    async fn submit(&self, message: InboundMessage) -> Result<IngestReceipt, SubmitError>;
}

/// Why an HTTP message was not committed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Parsing and storing it failed on the platform's side (one machine).
    #[error(transparent)]
    Ingest(#[from] iot_core::usecase::IngestError),
    /// The ingest queue did not take it (AWS); the SDK's error, described.
    #[error("queueing the message: {0}")]
    Queue(String),
    #[error("encoding the message: {0}")]
    Encode(#[from] serde_json::Error),
}

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new().routes(routes!(ingest))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct IngestParams {
    /// The last topic level, as a device would publish to `things/{uid}/up/{channel}`.
    channel: Option<String>,
}

fn device_token(headers: &HeaderMap) -> Option<(&str, &str)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Device ")
        .or_else(|| value.strip_prefix("Bearer "))?;
    split_device_token(token)
}

fn refused() -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "send the device token as `Authorization: Device <token>`; get one from POST /v1/devices/{uid}/token",
    )
    .into_response()
}

/// A device's message, as it would publish it over MQTT; the body is the raw payload.
#[utoipa::path(
    post, path = "/v1/ingest", tag = "devices", security(("device_token" = [])), params(IngestParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The raw payload, at most 256 KiB"),
    responses(
        (status = 200, description = "Parsed and stored (one machine)", body = IngestReceipt),
        (status = 202, description = "Queued for the ingest function (AWS)", body = IngestReceipt),
        (status = 422, description = "The product's script refused it; it is kept with the reason", body = IngestReceipt),
    )
)]
async fn ingest(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<IngestParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((uid, secret)) = device_token(&headers) else {
        return refused();
    };
    match verify_device(&state.catalog, uid, secret).await {
        Ok(_) => {}
        Err(DeviceAuthError::Refused) => return refused(),
        Err(e @ DeviceAuthError::Tenant(_)) => {
            return ApiError::new(StatusCode::FORBIDDEN, e.to_string()).into_response();
        }
        Err(DeviceAuthError::Store(e)) => return ApiError::from(e).into_response(),
    }
    let channel = match query {
        Ok(Query(p)) => p.channel.unwrap_or_else(|| "telemetry".into()),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Err(e) = check_id("channel", &channel) {
        return e.into_response();
    }
    if body.len() > MAX_PAYLOAD {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the payload has {} bytes; at most {MAX_PAYLOAD}",
                body.len()
            ),
        )
        .into_response();
    }
    let message = InboundMessage {
        message_id: random_id(),
        topic: iot_core::topics::uplink_topic(uid, &channel),
        payload: body.to_vec(),
        received_at: state.clock.now_ms(),
    };
    match state.device_ingest.submit(message).await {
        Ok(receipt @ IngestReceipt::Stored { .. }) => {
            (StatusCode::OK, Json(receipt)).into_response()
        }
        Ok(receipt @ IngestReceipt::Queued { .. }) => {
            (StatusCode::ACCEPTED, Json(receipt)).into_response()
        }
        Ok(receipt @ IngestReceipt::Rejected { .. }) => {
            (StatusCode::UNPROCESSABLE_ENTITY, Json(receipt)).into_response()
        }
        Err(e) => ApiError::unavailable(e).into_response(),
    }
}
