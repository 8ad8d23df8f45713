//! A device's credentials: its X.509 certificate (on AWS IoT Core or the device CA) and its
//! HTTP and MQTT token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use iot_core::ports::{DeviceCredentials, GatewayError, SessionCredential};
use serde::Serialize;
use std::sync::Arc;

use super::{device_of, gateway_error};
use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::Caller;
use utoipa::ToSchema;

pub(super) fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(issue_token, revoke_token))
        .routes(routes!(issue_certificate, revoke_certificate))
}

/// Provisions the device: a certificate and private key, returned once, and (on AWS) its
/// IoT thing with the device policy attached.
#[utoipa::path(
    post, path = "/v1/devices/{uid}/certificate", tag = "devices",
    responses((status = 201, description = "The credentials, shown once", body = DeviceCredentials))
)]
async fn issue_certificate(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<(StatusCode, Json<DeviceCredentials>)> {
    let device = device_of(&state, &caller, &uid).await?;
    let credentials = state
        .gateway
        .register(&device)
        .await
        .map_err(|e| gateway_error(&uid, e))?;
    Ok((StatusCode::CREATED, Json(credentials)))
}

/// Revokes the device's certificate (and on AWS deletes its thing); provision it again to
/// give it new credentials.
#[utoipa::path(
    delete, path = "/v1/devices/{uid}/certificate", tag = "devices",
    responses((status = 204, description = "Revoked"))
)]
async fn revoke_certificate(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<StatusCode> {
    device_of(&state, &caller, &uid).await?;
    state.gateway.deregister(&uid).await.map_err(|e| match e {
        GatewayError::UnknownDevice(_) => {
            ApiError::not_found(format!("a certificate of device {uid:?}"))
        }
        e => gateway_error(&uid, e),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new HTTP ingest token for the device, shown once; it replaces any earlier one.
#[utoipa::path(
    post, path = "/v1/devices/{uid}/token", tag = "devices",
    responses((status = 201, description = "The new token, shown once", body = DeviceToken))
)]
async fn issue_token(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<(StatusCode, Json<DeviceToken>)> {
    device_of(&state, &caller, &uid).await?;
    let secret = iot_core::auth::secret::random_token(32);
    let token = format!("{uid}.{secret}");
    state
        .catalog
        .put_device_token(
            &uid,
            &iot_core::auth::secret::digest(&secret),
            &iot_core::auth::secret::broker_password_hash(&token),
        )
        .await?;
    end_token_sessions(&state, &uid).await;
    Ok((
        StatusCode::CREATED,
        Json(DeviceToken {
            device_token: token,
            detail: "shown once: the device sends it as `Authorization: Device <device_token>` to POST /v1/ingest, or as its MQTT password with its uid as client id and user name",
        }),
    ))
}

#[derive(Serialize, ToSchema)]
struct DeviceToken {
    device_token: String,
    detail: &'static str,
}

#[utoipa::path(
    delete, path = "/v1/devices/{uid}/token", tag = "devices",
    responses((status = 204, description = "Revoked"))
)]
async fn revoke_token(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<StatusCode> {
    device_of(&state, &caller, &uid).await?;
    state.catalog.delete_device_token(&uid).await?;
    end_token_sessions(&state, &uid).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Sessions opened with the device's earlier token end with it (the embedded broker).
async fn end_token_sessions(state: &ApiState, uid: &str) {
    let credential = SessionCredential::DeviceToken(uid.to_owned());
    if let Err(e) = state.gateway.end_sessions(&credential).await {
        // The token is gone already: the broker refuses it at the next sign-in.
        tracing::warn!(device = uid, error = %e, "live sessions of a withdrawn token not ended");
    }
}
