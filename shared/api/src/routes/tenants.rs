//! The platform operator's routes: tenants, their first administrators, quotas and status.
//! Only callers of the platform's own tenant reach them (the guard sees to it), and then only
//! as that tenant's policy allows.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use iot_core::auth::AuthError;
use iot_core::model::{Quotas, Tenant};
use iot_core::usecase::{NewTenant, TenantError, TenantPorts, TenantService};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{PageParams, check_id, decode_cursor, page_limit, store_page};
use crate::openapi::Page;

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(suspend))
        .routes(routes!(resume))
}

fn service(state: &ApiState) -> TenantService {
    TenantService::new(
        state.catalog.clone(),
        state.clock.clone(),
        TenantPorts {
            gateway: state.gateway.clone(),
            telemetry: state.telemetry.clone(),
            scheduler: state.scheduler.clone(),
            exports: state.exports.clone(),
        },
        state.default_tenant.clone(),
    )
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::InvalidId(_) => {
                ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "/id", e.to_string())
            }
            TenantError::Taken(_) | TenantError::Contended(_) | TenantError::Deleted(_) => {
                ApiError::conflict(e.to_string())
            }
            TenantError::Unknown(id) => ApiError::not_found(format!("tenant {id:?}")),
            TenantError::Platform(_) => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
            TenantError::Admin(AuthError::WeakPassword(_)) => ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/admin_password",
                e.to_string(),
            ),
            TenantError::Admin(AuthError::Store(e)) => e.into(),
            TenantError::Admin(_) => ApiError::internal(e),
            TenantError::Gateway(e) => ApiError::unavailable(e),
            TenantError::Telemetry(e) => ApiError::unavailable(e),
            TenantError::Scheduler(e) => ApiError::unavailable(e),
            TenantError::Exports(e) => ApiError::unavailable(e),
            TenantError::Store(e) => e.into(),
        }
    }
}

#[utoipa::path(
    get, path = "/v1/platform/tenants", tag = "platform",
    params(PageParams),
    responses((status = 200, description = "The managed tenants, by id", body = Page<Tenant>))
)]
async fn list(
    State(state): State<Arc<ApiState>>,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<Tenant>>> {
    let paging = paging?.0;
    let listed = state
        .catalog
        .tenants_page(
            decode_cursor(paging.cursor.as_deref())?,
            page_limit(paging.limit)?,
        )
        .await?;
    Ok(store_page(listed))
}

/// A tenant to create and its first administrator.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")]
    id: String,
    name: String,
    #[serde(default)]
    quotas: Quotas,
    /// The login name of the tenant's first administrator.
    admin_user: String,
    admin_password: String,
}

#[utoipa::path(
    post, path = "/v1/platform/tenants", tag = "platform",
    request_body = CreateTenant,
    responses((status = 201, description = "Created, with its built-in roles and first administrator", body = Tenant))
)]
async fn create(
    State(state): State<Arc<ApiState>>,
    body: Result<Json<CreateTenant>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    let body = body?.0;
    check_id("admin_user", &body.admin_user)?;
    if body.name.trim().is_empty() {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/name",
            "must not be empty",
        ));
    }
    let tenant = service(&state)
        .create(
            &state.auth,
            NewTenant {
                id: body.id,
                name: body.name,
                quotas: body.quotas,
                admin_user: body.admin_user,
                admin_password: body.admin_password,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

#[utoipa::path(
    get, path = "/v1/platform/tenants/{id}", tag = "platform",
    responses((status = 200, description = "The tenant", body = Tenant))
)]
async fn read(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Tenant>> {
    Ok(Json(service(&state).get(&id).await?))
}

/// What an operator may change of a tenant.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TenantChange {
    name: Option<String>,
    /// Replaces the quotas; a field left out is unlimited.
    #[serde(default)]
    quotas: Quotas,
}

#[utoipa::path(
    put, path = "/v1/platform/tenants/{id}", tag = "platform",
    request_body = TenantChange,
    responses((status = 200, description = "Saved", body = Tenant))
)]
async fn update(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Result<Json<TenantChange>, JsonRejection>,
) -> ApiResult<Json<Tenant>> {
    let body = body?.0;
    Ok(Json(
        service(&state).update(&id, body.name, body.quotas).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Suspension {
    /// Told to the tenant's users when they are refused.
    reason: String,
}

#[utoipa::path(
    post, path = "/v1/platform/tenants/{id}/suspend", tag = "platform",
    request_body = Suspension,
    responses((status = 200, description = "Suspended: its users and devices are refused with the reason", body = Tenant))
)]
async fn suspend(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Result<Json<Suspension>, JsonRejection>,
) -> ApiResult<Json<Tenant>> {
    let reason = body?.0.reason;
    if reason.trim().is_empty() || reason.len() > 500 {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/reason",
            "say why, in 1 to 500 characters",
        ));
    }
    Ok(Json(service(&state).suspend(&id, reason).await?))
}

#[utoipa::path(
    post, path = "/v1/platform/tenants/{id}/resume", tag = "platform",
    responses((status = 200, description = "Active again", body = Tenant))
)]
async fn resume(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Tenant>> {
    Ok(Json(service(&state).resume(&id).await?))
}

#[derive(Serialize, ToSchema)]
struct Deleted {
    /// The devices removed with the tenant.
    devices_deleted: usize,
    /// Catalog items removed: users, roles, products, rules, notification settings, alarms,
    /// statistics jobs and results, application credentials.
    items_deleted: usize,
    /// Telemetry points deleted; absent where the store's retention expires them instead
    /// (DynamoDB's TTL, Timestream).
    #[serde(skip_serializing_if = "Option::is_none")]
    points_deleted: Option<u64>,
    /// Telemetry export files removed.
    exports_deleted: usize,
}

#[utoipa::path(
    delete, path = "/v1/platform/tenants/{id}", tag = "platform",
    responses((status = 200, description = "Deleted: everything of the tenant is refused, its devices removed; the id is not given out again", body = Deleted))
)]
async fn remove(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    let purged = service(&state).delete(&id).await?;
    Ok(Json(Deleted {
        devices_deleted: purged.devices,
        items_deleted: purged.items,
        points_deleted: purged.points,
        exports_deleted: purged.exports,
    }))
}
