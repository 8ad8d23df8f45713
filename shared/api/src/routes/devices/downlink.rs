//! What the platform sends a device: desired configuration through its shadow, and commands.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;

use super::{device_of, gateway_error};
use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::Caller;
use utoipa::ToSchema;

pub(super) fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(read_shadow))
        .routes(routes!(set_desired))
        .routes(routes!(send_command))
}

/// The device shadow: `state.desired` (what the platform asks for) and `state.reported`
/// (what the device says), as AWS IoT Core keeps it.
#[utoipa::path(
    get, path = "/v1/devices/{uid}/shadow", tag = "devices",
    responses((status = 200, description = "The shadow document; `{\"state\": {}}` if nothing was set", body = Object))
)]
async fn read_shadow(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<Json<Value>> {
    device_of(&state, &caller, &uid).await?;
    let shadow = state
        .gateway
        .shadow(&uid)
        .await
        .map_err(|e| gateway_error(&uid, e))?;
    Ok(Json(shadow.unwrap_or_else(|| json!({ "state": {} }))))
}

/// Sets desired configuration: the keys given are merged into `state.desired` (`null`
/// removes one), and the device hears the change on `$aws/things/{uid}/shadow/update/delta`.
#[utoipa::path(
    put, path = "/v1/devices/{uid}/shadow/desired", tag = "devices",
    request_body(content = Object, description = "The desired keys, e.g. `{\"interval_s\": 30}`"),
    responses((status = 200, description = "The shadow after the change", body = Object))
)]
async fn set_desired(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let desired = body?.0;
    if !desired.is_object() {
        return Err(ApiError::bad_request(
            "the body must be a JSON object of desired keys, e.g. {\"interval_s\": 30}",
        ));
    }
    check_downlink_size("a shadow update", &desired)?;
    device_of(&state, &caller, &uid).await?;
    let shadow = state
        .gateway
        .set_desired(&uid, &desired)
        .await
        .map_err(|e| gateway_error(&uid, e))?;
    Ok(Json(shadow))
}

/// Largest command or shadow update, as AWS IoT Core's shadow document limit (8 KiB).
const MAX_DOWNLINK_BYTES: usize = 8 * 1024;

fn check_downlink_size(what: &str, body: &Value) -> ApiResult<()> {
    if body.to_string().len() > MAX_DOWNLINK_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} holds at most {MAX_DOWNLINK_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// What was sent to the device.
#[derive(Serialize, ToSchema)]
struct SentCommand {
    /// Also in the payload as `command_id`, so the device can answer about it.
    command_id: String,
    /// The MQTT topic it was published on.
    topic: String,
}

/// Sends a command to the device on `things/{uid}/down/command`, with a `command_id` added;
/// a device that is offline misses it (use the shadow for state that must arrive).
#[utoipa::path(
    post, path = "/v1/devices/{uid}/commands", tag = "devices",
    request_body(content = Object, description = "The command, e.g. `{\"name\": \"reboot\"}`"),
    responses((status = 202, description = "Published", body = SentCommand))
)]
async fn send_command(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<SentCommand>)> {
    let Value::Object(mut command) = body?.0 else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object, e.g. {\"name\": \"reboot\"}",
        ));
    };
    let command_id = iot_core::auth::secret::random_id();
    command.insert("command_id".into(), Value::String(command_id.clone()));
    let command = Value::Object(command);
    check_downlink_size("a command", &command)?;
    device_of(&state, &caller, &uid).await?;
    state
        .gateway
        .send_command(&uid, &command)
        .await
        .map_err(|e| gateway_error(&uid, e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SentCommand {
            command_id,
            topic: iot_core::topics::command_topic(&uid),
        }),
    ))
}
