//! Alarms: list with filters, read, acknowledge and clear.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use iot_core::alarm::{AlarmRecord, AlarmStatus, AlarmTransition, parse_alarm_id};
use iot_core::repo::AlarmFilter;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::input::Tenant;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/alarms", get(list))
        .route("/v1/alarms/{id}", get(read))
        .route("/v1/alarms/{id}/acknowledge", post(acknowledge))
        .route("/v1/alarms/{id}/clear", post(clear))
}

#[derive(Deserialize)]
struct ListParams {
    device: Option<String>,
    /// `active`, `acknowledged`, `cleared`, or `open` (active or acknowledged).
    status: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    query: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let params = query?.0;
    let mut filter = AlarmFilter {
        device_uid: params.device,
        limit: Some(params.limit.unwrap_or(100).min(1_000)),
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
    let alarms = state.catalog.alarms(&tenant, &filter).await?;
    Ok(Json(json!({ "items": alarms })))
}

async fn record_of(state: &ApiState, tenant: &str, id: &str) -> ApiResult<AlarmRecord> {
    state
        .catalog
        .alarm(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("alarm {id:?}")))
}

async fn read(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<AlarmRecord>> {
    Ok(Json(record_of(&state, &tenant, &id).await?))
}

#[derive(Deserialize, Default)]
struct ActionBody {
    /// Who acts; until users exist, a name the caller gives.
    by: Option<String>,
}

/// The alarm must exist in the tenant and still be open.
async fn open_alarm(state: &ApiState, tenant: &str, id: &str) -> ApiResult<(String, String)> {
    let record = record_of(state, tenant, id).await?;
    if record.status == AlarmStatus::Cleared {
        return Err(ApiError::conflict(format!(
            "alarm {id:?} is cleared already"
        )));
    }
    let (device, rule, _) =
        parse_alarm_id(id).ok_or_else(|| ApiError::not_found(format!("alarm {id:?}")))?;
    Ok((device.to_owned(), rule.to_owned()))
}

/// The body is optional: `{"by": "alice"}`.
fn actor(body: &Bytes) -> ApiResult<String> {
    let by = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<ActionBody>(body)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the body must be {{\"by\": \"name\"}} or empty: {e}"
                ))
            })?
            .by
    };
    Ok(by
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "api".to_owned()))
}

async fn acknowledge(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<AlarmTransition>> {
    let by = actor(&body)?;
    let (device, rule) = open_alarm(&state, &tenant, &id).await?;
    Ok(Json(
        state
            .alarms
            .acknowledge(&tenant, &device, &rule, &by)
            .await?,
    ))
}

async fn clear(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<AlarmTransition>> {
    let by = actor(&body)?;
    let (device, rule) = open_alarm(&state, &tenant, &id).await?;
    Ok(Json(
        state.alarms.clear(&tenant, &device, &rule, &by).await?,
    ))
}
