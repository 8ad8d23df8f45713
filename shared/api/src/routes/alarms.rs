//! Alarms: list with filters, read, acknowledge and clear.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use iot_core::alarm::{AlarmRecord, AlarmStatus, AlarmTransition, parse_alarm_id};
use iot_core::auth::{DataScope, Principal};
use iot_core::repo::AlarmFilter;
use iot_core::usecase::OperatorAction;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::devices::device_of;
use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{Caller, decode_cursor, page_limit, store_page};
use crate::openapi::Page;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read))
        .routes(routes!(acknowledge))
        .routes(routes!(clear))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only this device's alarms.
    device: Option<String>,
    /// `active`, `acknowledged`, `cleared`, or `open` (active or acknowledged).
    status: Option<String>,
    /// Alarms per page: 1 to 1000, 100 if absent.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/alarms", tag = "alarms",
    params(ListParams),
    responses((status = 200, description = "Alarms, newest first", body = Page<AlarmRecord>))
)]
async fn list(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    query: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<Json<Page<AlarmRecord>>> {
    let params = query?.0;
    let limit = page_limit(params.limit)?;
    let mut filter = AlarmFilter {
        device_uid: params.device,
        limit: Some(limit),
        ..AlarmFilter::default()
    };
    match params.status.as_deref() {
        None => {}
        Some("open") => filter.open_only = true,
        Some(text) => {
            filter.status = Some(AlarmStatus::parse(text).ok_or_else(|| {
                ApiError::field(
                    StatusCode::BAD_REQUEST,
                    "/status",
                    format!("{text:?}: use active, acknowledged, cleared or open"),
                )
            })?);
        }
    }
    // With a department scope, only alarms of the devices the caller may see.
    let visible: Option<BTreeSet<String>> = match &caller.scope {
        DataScope::All => None,
        DataScope::Departments(_) => Some(
            state
                .catalog
                .devices(&caller.tenant, None)
                .await?
                .into_iter()
                .filter(|d| caller.scope.allows(&d.department_id))
                .map(|d| d.uid)
                .collect(),
        ),
    };
    // Asked for one device: not the alarms of an earlier device of its uid.
    let since = match &filter.device_uid {
        Some(uid) => state.catalog.device(uid).await?.map_or(0, |d| d.data_since),
        None => 0,
    };
    let listed = state
        .catalog
        .alarms_page(
            &caller.tenant,
            &filter,
            decode_cursor(params.cursor.as_deref())?,
            limit,
            |a| a.raised_at >= since && visible.as_ref().is_none_or(|v| v.contains(&a.device_uid)),
        )
        .await?;
    Ok(store_page(listed))
}

/// The alarm if it exists in the tenant and its device is in the caller's data scope.
async fn record_of(state: &ApiState, caller: &Principal, id: &str) -> ApiResult<AlarmRecord> {
    let record = state
        .catalog
        .alarm(&caller.tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("alarm {id:?}")))?;
    // An alarm raised before the device's data begins is an earlier device's.
    device_of(state, caller, &record.device_uid)
        .await
        .ok()
        .filter(|device| record.raised_at >= device.data_since)
        .ok_or_else(|| ApiError::not_found(format!("alarm {id:?}")))?;
    Ok(record)
}

#[utoipa::path(
    get, path = "/v1/alarms/{id}", tag = "alarms",
    responses((status = 200, description = "The alarm", body = AlarmRecord))
)]
async fn read(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AlarmRecord>> {
    Ok(Json(record_of(&state, &caller, &id).await?))
}

#[derive(Deserialize, Default, ToSchema)]
struct ActionBody {
    /// A note on why; who acts is the caller.
    note: Option<String>,
}

/// The alarm must exist in the caller's scope and still be open.
async fn open_alarm(state: &ApiState, caller: &Principal, id: &str) -> ApiResult<(String, String)> {
    let record = record_of(state, caller, id).await?;
    if record.status == AlarmStatus::Cleared {
        return Err(ApiError::conflict(format!(
            "alarm {id:?} is cleared already"
        )));
    }
    let (device, rule, _) =
        parse_alarm_id(id).ok_or_else(|| ApiError::not_found(format!("alarm {id:?}")))?;
    Ok((device.to_owned(), rule.to_owned()))
}

/// The body is optional: `{"note": "..."}`. The actor recorded is the caller, never a name
/// the body gives.
fn actor(caller: &Principal, body: &Bytes) -> ApiResult<String> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        let body: ActionBody = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be {{\"note\": \"text\"}} or empty: {e}"
            ))
        })?;
        if let Some(note) = body.note.filter(|n| !n.trim().is_empty()) {
            return Ok(format!("{} ({note})", caller.user));
        }
    }
    Ok(caller.user.clone())
}

#[utoipa::path(
    post, path = "/v1/alarms/{id}/acknowledge", tag = "alarms",
    request_body(content = Option<ActionBody>, description = "Optional: a note on why"),
    responses((status = 200, description = "Acknowledged: notifications stop, the alarm stays open until cleared", body = AlarmTransition))
)]
async fn acknowledge(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<AlarmTransition>> {
    act(&state, &caller, &id, &body, OperatorAction::Acknowledge).await
}

#[utoipa::path(
    post, path = "/v1/alarms/{id}/clear", tag = "alarms",
    request_body(content = Option<ActionBody>, description = "Optional: a note on why"),
    responses((status = 200, description = "Cleared by hand", body = AlarmTransition))
)]
async fn clear(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<AlarmTransition>> {
    act(&state, &caller, &id, &body, OperatorAction::Clear).await
}

/// Both routes: the caller's open alarm, the action, and the caller (with the body's note) as
/// who did it.
async fn act(
    state: &ApiState,
    caller: &Principal,
    id: &str,
    body: &Bytes,
    action: OperatorAction,
) -> ApiResult<Json<AlarmTransition>> {
    let by = actor(caller, body)?;
    let (device, rule) = open_alarm(state, caller, id).await?;
    Ok(Json(
        state
            .alarms
            .act(action, &caller.tenant, &device, &rule, &by)
            .await?,
    ))
}
