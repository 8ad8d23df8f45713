//! Statistics jobs (scheduled on save), a manual run, and results.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use iot_core::ports::{ScheduleTarget, StoreError};
use iot_core::stats::StatJob;
use iot_core::time::DAY;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

use super::devices::device_of;
use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::input::{Caller, PageParams, Tenant, body_as, check_id, page, parse_time};

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/stat-jobs", get(list).post(create))
        .route("/v1/stat-jobs/{id}", get(read).put(update).delete(remove))
        .route("/v1/stat-jobs/{id}/run", post(run_now))
        .route("/v1/stat-jobs/{id}/results", get(results))
}

/// The schedule's name: one per job, unique across tenants.
fn schedule_name(tenant: &str, id: &str) -> String {
    format!("stats.{tenant}.{id}")
}

async fn job_of(state: &ApiState, tenant: &str, id: &str) -> ApiResult<StatJob> {
    state
        .catalog
        .stat_job(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("statistics job {id:?}")))
}

async fn save(state: &ApiState, job: &StatJob) -> ApiResult<()> {
    check_id("id", &job.id)?;
    state.stats.check(job)?;
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

async fn list(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let items = state.catalog.stat_jobs(&tenant).await?;
    page(items, &paging?.0, |d| d.id.clone())
}

async fn create(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<StatJob>)> {
    let job: StatJob = body_as(body?.0, &tenant, None)?;
    if state.catalog.stat_job(&tenant, &job.id).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "statistics job {:?} exists already",
            job.id
        )));
    }
    save(&state, &job).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

async fn read(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<StatJob>> {
    Ok(Json(job_of(&state, &tenant, &id).await?))
}

async fn update(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<StatJob>> {
    job_of(&state, &tenant, &id).await?;
    let job: StatJob = body_as(body?.0, &tenant, Some(("id", &id)))?;
    save(&state, &job).await?;
    Ok(Json(job))
}

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

#[derive(Deserialize, Default)]
struct RunBody {
    /// The run time the window ends at (epoch ms or RFC 3339); default now.
    at: Option<String>,
}

/// Runs a job now, as its schedule would.
async fn run_now(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: Option<Json<RunBody>>,
) -> ApiResult<Json<Value>> {
    let at = match body.and_then(|b| b.0.at) {
        Some(text) => parse_time("at", &text)?,
        None => state.clock.now_ms(),
    };
    let run = state.stats.run(&tenant, &id, at).await?;
    let failures: Vec<Value> = run
        .failures
        .iter()
        .map(|(device, error)| json!({ "device_uid": device, "error": error }))
        .collect();
    Ok(Json(
        json!({ "window": run.window, "results": run.results, "failures": failures }),
    ))
}

#[derive(Deserialize)]
struct ResultParams {
    device: String,
    from: Option<String>,
    to: Option<String>,
}

async fn results(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    query: Result<Query<ResultParams>, QueryRejection>,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let params = query?.0;
    let tenant = caller.tenant.clone();
    job_of(&state, &tenant, &id).await?;
    device_of(&state, &caller, &params.device).await?;
    let to = match &params.to {
        Some(t) => parse_time("to", t)?,
        None => state.clock.now_ms(),
    };
    let from = match &params.from {
        Some(t) => parse_time("from", t)?,
        None => to - 7 * DAY,
    };
    let results: Vec<_> = state
        .catalog
        .stat_results(&id, &params.device, from, to)
        .await?
        .into_iter()
        .filter(|r| r.tenant_id == tenant)
        .collect();
    page(results, &paging?.0, |r| r.window.end.to_string())
}
