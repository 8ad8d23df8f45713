//! Statistics jobs (scheduled on save), a manual run, and results.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use iot_core::auth::Principal;
use iot_core::ports::{ScheduleTarget, StoreError, schedule_name};
use iot_core::stats::{StatJob, StatResult, Window};
use iot_core::time::DAY;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

use super::devices::device_of;
use super::fleet_limits::readable_since;
use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{
    Caller, PageParams, Tenant, body_as, check_id, decode_cursor, page, page_limit, parse_time,
    store_page,
};
use crate::openapi::Page;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(run_now))
        .routes(routes!(results))
}

async fn job_of(state: &ApiState, tenant: &str, id: &str) -> ApiResult<StatJob> {
    state
        .catalog
        .stat_job(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("statistics job {id:?}")))
}

async fn save(state: &ApiState, caller: &Principal, job: &StatJob) -> ApiResult<()> {
    check_id("id", &job.id)?;
    // A scoped caller names only devices they may see (the same answer as an absent one).
    state
        .stats
        .check_where(job, |d| caller.scope.allows(&d.department_id))
        .await?;
    state.catalog.put_stat_job(job).await?;
    let name = schedule_name(&job.tenant_id, &job.id);
    if job.enabled {
        let target = ScheduleTarget {
            tenant_id: job.tenant_id.clone(),
            job_id: job.id.clone(),
        };
        state.scheduler.upsert(&name, &job.cron, &target).await?;
    } else {
        state.scheduler.delete(&name).await?;
    }
    Ok(())
}

#[utoipa::path(
    get, path = "/v1/stat-jobs", tag = "statistics",
    params(PageParams),
    responses((status = 200, description = "The tenant's statistics jobs", body = Page<StatJob>))
)]
async fn list(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<StatJob>>> {
    let items = state.catalog.stat_jobs(&tenant).await?;
    page(items, &paging?.0, |d| d.id.clone())
}

#[utoipa::path(
    post, path = "/v1/stat-jobs", tag = "statistics",
    request_body = StatJob,
    responses((status = 201, description = "Created and scheduled (if enabled)", body = StatJob))
)]
async fn create(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<StatJob>)> {
    let tenant = caller.tenant.clone();
    let job: StatJob = body_as(body?.0, &tenant, None)?;
    if state.catalog.stat_job(&tenant, &job.id).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "statistics job {:?} exists already",
            job.id
        )));
    }
    save(&state, &caller, &job).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

#[utoipa::path(
    get, path = "/v1/stat-jobs/{id}", tag = "statistics",
    responses((status = 200, description = "The job", body = StatJob))
)]
async fn read(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<StatJob>> {
    Ok(Json(job_of(&state, &tenant, &id).await?))
}

#[utoipa::path(
    put, path = "/v1/stat-jobs/{id}", tag = "statistics",
    request_body = StatJob,
    responses((status = 200, description = "Saved and rescheduled", body = StatJob))
)]
async fn update(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<StatJob>> {
    let tenant = caller.tenant.clone();
    job_of(&state, &tenant, &id).await?;
    let job: StatJob = body_as(body?.0, &tenant, Some(("id", &id)))?;
    save(&state, &caller, &job).await?;
    Ok(Json(job))
}

#[utoipa::path(
    delete, path = "/v1/stat-jobs/{id}", tag = "statistics",
    responses((status = 204, description = "Deleted and unscheduled"))
)]
async fn remove(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    job_of(&state, &tenant, &id).await?;
    state.scheduler.delete(&schedule_name(&tenant, &id)).await?;
    state
        .catalog
        .delete_entity(&tenant, "STATJOB", &id)
        .await
        .map_err(|e| match e {
            StoreError::ConditionFailed(_) => ApiError::not_found(format!("statistics job {id:?}")),
            e => e.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default, ToSchema)]
struct RunBody {
    /// The run time the window ends at (epoch ms or RFC 3339); default now.
    at: Option<String>,
}

/// Runs a job now, as its schedule would.
#[utoipa::path(
    post, path = "/v1/stat-jobs/{id}/run", tag = "statistics",
    request_body(content = Option<RunBody>, description = "Optional: the run time"),
    responses((status = 200, description = "The run's window, results and per-device failures", body = RunView))
)]
async fn run_now(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Result<Option<Json<RunBody>>, JsonRejection>,
) -> ApiResult<Json<RunView>> {
    let at = match body?.and_then(|b| b.0.at) {
        Some(text) => parse_time("at", &text)?,
        None => state.clock.now_ms(),
    };
    // A scoped caller runs the job for the devices of their departments only.
    let run = state
        .stats
        .run_where(&caller.tenant, &id, at, |d| {
            caller.scope.allows(&d.department_id)
        })
        .await?;
    let failures = run
        .failures
        .into_iter()
        .map(|(device_uid, error)| RunFailure { device_uid, error })
        .collect();
    Ok(Json(RunView {
        window: run.window,
        results: run.results,
        failures,
    }))
}

#[derive(Serialize, ToSchema)]
struct RunView {
    /// `[run time - lead, run time]`; `null` if the job is disabled.
    window: Option<Window>,
    results: Vec<StatResult>,
    failures: Vec<RunFailure>,
}

#[derive(Serialize, ToSchema)]
struct RunFailure {
    device_uid: String,
    /// Why its result could not be computed.
    error: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ResultParams {
    /// The device whose results to read.
    device: String,
    /// Windows ending at or after this: epoch ms or RFC 3339; default a week before `to`.
    from: Option<String>,
    /// Windows ending at or before this; default now.
    to: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/stat-jobs/{id}/results", tag = "statistics",
    params(ResultParams, PageParams),
    responses((status = 200, description = "Stored results of one device, oldest first", body = Page<StatResult>))
)]
async fn results(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    query: Result<Query<ResultParams>, QueryRejection>,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<StatResult>>> {
    let params = query?.0;
    let tenant = caller.tenant.clone();
    job_of(&state, &tenant, &id).await?;
    let device = device_of(&state, &caller, &params.device).await?;
    let since = readable_since(&state, &device).await?;
    let to = match &params.to {
        Some(t) => parse_time("to", t)?,
        None => state.clock.now_ms(),
    };
    let from = match &params.from {
        Some(t) => parse_time("from", t)?,
        None => to - 7 * DAY,
    };
    let paging = paging?.0;
    let listed = state
        .catalog
        .stat_results_page(
            &tenant,
            &id,
            &params.device,
            (from, to),
            decode_cursor(paging.cursor.as_deref())?,
            page_limit(paging.limit)?,
            // Not the results of an earlier device of the uid, nor beyond retention.
            |r| r.tenant_id == tenant && r.window.start >= since,
        )
        .await?;
    Ok(store_page(listed))
}
