//! The department tree, and the audit log query.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use iot_core::auth::{AuditEntry, DepartmentTree};
use iot_core::model::Department;
use iot_core::repo::AuditFilter;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{
    PageParams, Tenant, body_as, check_id, decode_cursor, page, parse_time, store_page,
};
use crate::openapi::Page;

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(audit))
}

#[utoipa::path(
    get, path = "/v1/departments", tag = "departments",
    params(PageParams),
    responses((status = 200, description = "The tenant's departments", body = Page<Department>))
)]
async fn list(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<Department>>> {
    let items = state.catalog.departments(&tenant).await?;
    page(items, &paging?.0, |d| d.id.clone())
}

async fn department_of(state: &ApiState, tenant: &str, id: &str) -> ApiResult<Department> {
    state
        .catalog
        .department(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("department {id:?}")))
}

#[utoipa::path(
    get, path = "/v1/departments/{id}", tag = "departments",
    responses((status = 200, description = "The department", body = Department))
)]
async fn read(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Department>> {
    Ok(Json(department_of(&state, &tenant, &id).await?))
}

/// Checks the name and the parent: it must exist and must not be the department or below it.
async fn check(state: &ApiState, department: &Department) -> ApiResult<()> {
    check_id("id", &department.id)?;
    if department.name.trim().is_empty() {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/name",
            "must not be empty",
        ));
    }
    if let Some(parent) = &department.parent_id {
        let all = state.catalog.departments(&department.tenant_id).await?;
        let tree = DepartmentTree::new(&all);
        if !tree.contains(parent) {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/parent_id",
                format!("department {parent:?} does not exist"),
            ));
        }
        if tree.would_cycle(&department.id, parent) {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/parent_id",
                format!("{parent:?} is {:?} itself or below it", department.id),
            ));
        }
    }
    Ok(())
}

#[utoipa::path(
    post, path = "/v1/departments", tag = "departments",
    request_body = Department,
    responses((status = 201, description = "Created", body = Department))
)]
async fn create(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Department>)> {
    let department: Department = body_as(body?.0, &tenant, None)?;
    check(&state, &department).await?;
    if state
        .catalog
        .department(&tenant, &department.id)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(format!(
            "department {:?} exists already",
            department.id
        )));
    }
    state.catalog.put_department(&department).await?;
    Ok((StatusCode::CREATED, Json(department)))
}

#[utoipa::path(
    put, path = "/v1/departments/{id}", tag = "departments",
    request_body = Department,
    responses((status = 200, description = "Saved", body = Department))
)]
async fn update(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Department>> {
    department_of(&state, &tenant, &id).await?;
    let department: Department = body_as(body?.0, &tenant, Some(("id", &id)))?;
    check(&state, &department).await?;
    state.catalog.put_department(&department).await?;
    Ok(Json(department))
}

/// Only an empty department goes: no sub-departments, users or devices.
#[utoipa::path(
    delete, path = "/v1/departments/{id}", tag = "departments",
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    department_of(&state, &tenant, &id).await?;
    let departments = state.catalog.departments(&tenant).await?;
    if let Some(child) = departments
        .iter()
        .find(|d| d.parent_id.as_deref() == Some(&id))
    {
        return Err(ApiError::conflict(format!(
            "department {id:?} has sub-department {:?}; move or delete it first",
            child.id
        )));
    }
    let users = state.catalog.users(&tenant).await?;
    if let Some(user) = users
        .iter()
        .find(|u| u.department_id.as_deref() == Some(&id))
    {
        return Err(ApiError::conflict(format!(
            "user {:?} belongs to department {id:?}; move them first",
            user.id
        )));
    }
    let devices = state.catalog.devices(&tenant, None).await?;
    if let Some(device) = devices.iter().find(|d| d.department_id == id) {
        return Err(ApiError::conflict(format!(
            "device {:?} belongs to department {id:?}; move it first",
            device.uid
        )));
    }
    state.catalog.delete_department(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// Entries by this user.
    actor: Option<String>,
    /// Entries whose path starts with this, e.g. `/v1/devices`.
    path: Option<String>,
    /// Entries at or after this time: epoch milliseconds or RFC 3339.
    from: Option<String>,
    /// Entries before this time: epoch milliseconds or RFC 3339.
    to: Option<String>,
    /// Entries per page: 1 to 500, 50 if absent.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// `next` of the previous page.
    cursor: Option<String>,
}

/// Audit entries, newest first, a page at a time: pass `next` back as `cursor`.
#[utoipa::path(
    get, path = "/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, description = "Audit entries, newest first", body = Page<AuditEntry>))
)]
async fn audit(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    query: Result<Query<AuditParams>, QueryRejection>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let params = query?.0;
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "/limit",
            "must be between 1 and 500",
        ));
    }
    let filter = AuditFilter {
        actor: params.actor,
        path_prefix: params.path,
        from: params
            .from
            .as_deref()
            .map(|t| parse_time("from", t))
            .transpose()?,
        to: params
            .to
            .as_deref()
            .map(|t| parse_time("to", t))
            .transpose()?,
        limit,
        cursor: decode_cursor(params.cursor.as_deref())?,
    };
    let listed = state.catalog.audit(&tenant, &filter).await?;
    Ok(store_page(listed))
}
