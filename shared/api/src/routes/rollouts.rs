//! Rollouts: a ready package sent to devices with a rate, abort rules and a timeout; their
//! progress, each device's execution and history, cancel; and what firmware a device runs.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use iot_core::auth::Principal;
use iot_core::ota::{
    AbortRule, DeviceFirmware, Execution, ExecutionStatus, Rollout, RolloutCounts, RolloutRate,
    RolloutStatus, RolloutTarget,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

use super::devices::device_of;
use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{Caller, PageParams, Tenant, page, parse_time};
use crate::openapi::Page;

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read))
        .routes(routes!(cancel))
        .routes(routes!(executions))
        .routes(routes!(device_firmware))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RolloutBody {
    /// 1 to 48 letters, digits, `-` or `_`.
    id: String,
    package_id: String,
    target: RolloutTarget,
    #[serde(default)]
    rate: RolloutRate,
    #[serde(default)]
    abort: Vec<AbortRule>,
    in_progress_timeout_minutes: Option<u32>,
    /// Epoch ms or RFC 3339; devices are told from then on.
    #[schema(value_type = Option<String>)]
    start_at: Option<Value>,
}

/// A rollout and its executions by status.
#[derive(Serialize, ToSchema)]
struct RolloutView {
    #[serde(flatten)]
    rollout: Rollout,
    counts: RolloutCounts,
}

#[utoipa::path(
    get, path = "/v1/rollouts", tag = "firmware", params(PageParams),
    responses((status = 200, description = "The tenant's rollouts", body = Page<Rollout>))
)]
async fn list(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<Rollout>>> {
    let items = state.catalog.rollouts(&tenant).await?;
    page(items, &paging?.0, |r| r.id.clone())
}

/// Starts a rollout of a ready package to the target's devices the caller may reach; those
/// already on its version are skipped (listed in `skipped`).
#[utoipa::path(
    post, path = "/v1/rollouts", tag = "firmware", request_body = RolloutBody,
    responses((status = 201, description = "Started (or scheduled)", body = RolloutView))
)]
async fn create(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<RolloutBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<RolloutView>)> {
    let body = body?.0;
    let start_at = match &body.start_at {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_i64().map(|ms| ms.to_string()),
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/start_at",
                "give epoch ms or an RFC 3339 time",
            ));
        }
    }
    .map(|text| parse_time("start_at", &text))
    .transpose()?;
    let rollout = Rollout {
        id: body.id,
        tenant_id: caller.tenant.clone(),
        package_id: body.package_id,
        version: String::new(),
        target: body.target,
        rate: body.rate,
        abort: body.abort,
        in_progress_timeout_minutes: body.in_progress_timeout_minutes,
        start_at,
        status: RolloutStatus::Scheduled,
        reason: None,
        skipped: Vec::new(),
        created_at: 0,
        created_by: caller.user.clone(),
        ended_at: None,
    };
    let visible = |d: &iot_core::model::Device| caller.scope.allows(&d.department_id);
    let rollout = state.ota.start_rollout(rollout, &visible).await?;
    let progress = state.ota.progress(&caller.tenant, &rollout.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(RolloutView {
            rollout: progress.rollout,
            counts: progress.counts,
        }),
    ))
}

#[utoipa::path(
    get, path = "/v1/rollouts/{id}", tag = "firmware",
    responses((status = 200, description = "The rollout and its progress", body = RolloutView))
)]
async fn read(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<RolloutView>> {
    let progress = state.ota.progress(&tenant, &id).await?;
    Ok(Json(RolloutView {
        rollout: progress.rollout,
        counts: progress.counts,
    }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    /// Cancel executions in progress too (the device is told; what it does is its own).
    #[serde(default)]
    force: bool,
}

/// The uids of the tenant's devices the caller's departments cover, read in one listing
/// rather than a device at a time.
async fn reachable(state: &ApiState, caller: &Principal) -> ApiResult<HashSet<String>> {
    Ok(state
        .catalog
        .devices(&caller.tenant, None)
        .await?
        .into_iter()
        .filter(|d| caller.scope.allows(&d.department_id))
        .map(|d| d.uid)
        .collect())
}

/// A caller scoped to departments cancels only a rollout whose devices are all theirs.
async fn check_reach(state: &ApiState, caller: &Principal, id: &str) -> ApiResult<()> {
    let reachable = reachable(state, caller).await?;
    let executions = state.catalog.executions(&caller.tenant, id).await?;
    if executions
        .iter()
        .any(|e| !reachable.contains(&e.device_uid))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "rollout {id:?} reaches devices outside the departments you manage; ask someone who manages them all"
            ),
        ));
    }
    Ok(())
}

#[utoipa::path(
    post, path = "/v1/rollouts/{id}/cancel", tag = "firmware",
    request_body(content = Option<CancelBody>, description = "Optional: force"),
    responses((status = 200, description = "Cancelled", body = Rollout))
)]
async fn cancel(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Rollout>> {
    let force = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        serde_json::from_slice::<CancelBody>(&body)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the body must be {{\"force\": true}} or empty: {e}"
                ))
            })?
            .force
    };
    state.ota.rollout(&caller.tenant, &id).await?;
    check_reach(&state, &caller, &id).await?;
    Ok(Json(
        state
            .ota
            .cancel(&caller.tenant, &id, force, &caller.user)
            .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ExecutionParams {
    /// Only executions in this status, e.g. `FAILED`.
    status: Option<ExecutionStatus>,
}

/// Each device's execution, with its history, by device uid; a caller scoped to departments
/// sees their devices' only.
#[utoipa::path(
    get, path = "/v1/rollouts/{id}/executions", tag = "firmware",
    params(ExecutionParams, PageParams),
    responses((status = 200, description = "The executions", body = Page<Execution>))
)]
async fn executions(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    filter: Result<Query<ExecutionParams>, QueryRejection>,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<Execution>>> {
    let status = filter?.0.status;
    state.ota.rollout(&caller.tenant, &id).await?;
    let reachable = reachable(&state, &caller).await?;
    let items = state
        .catalog
        .executions(&caller.tenant, &id)
        .await?
        .into_iter()
        .filter(|e| status.is_none_or(|s| s == e.status) && reachable.contains(&e.device_uid))
        .collect();
    page(items, &paging?.0, |e| e.device_uid.clone())
}

/// What a device runs and its jobs.
#[derive(Serialize, ToSchema)]
struct DeviceFirmwareView {
    /// The version it last reported installing through a rollout; `null` if none.
    installed: Option<DeviceFirmware>,
    /// Its executions of every rollout since it was registered, with their history.
    executions: Vec<Execution>,
}

#[utoipa::path(
    get, path = "/v1/devices/{uid}/firmware", tag = "firmware",
    responses((status = 200, description = "The device's firmware and jobs", body = DeviceFirmwareView))
)]
async fn device_firmware(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<Json<DeviceFirmwareView>> {
    let device = device_of(&state, &caller, &uid).await?;
    let installed = state.catalog.device_firmware(&uid).await?;
    let executions = state
        .catalog
        .device_executions(&uid)
        .await?
        .into_iter()
        .filter(|e| e.tenant_id == device.tenant_id && e.queued_at >= device.data_since)
        .collect();
    Ok(Json(DeviceFirmwareView {
        installed,
        executions,
    }))
}
