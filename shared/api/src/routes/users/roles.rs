//! Roles: each one's permissions, read and replaced by name.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use iot_core::auth::delegation::holds;
use iot_core::auth::{Permission, Policy};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::{change_policy, policy_of, roles_in};
use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{Caller, PageParams, check_id, page};
use crate::openapi::Page;
use crate::routes::user_rights::check_holds_role;
use utoipa::ToSchema;

pub(super) fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(list_roles))
        .routes(routes!(read_role, put_role, delete_role))
}

#[derive(Serialize, ToSchema)]
struct RoleView {
    name: String,
    permissions: Vec<RulePermission>,
    /// Users (and roles) that have this role.
    members: Vec<String>,
}

fn role_view(policy: &Policy, tenant: &str, name: &str) -> RoleView {
    let permissions = policy
        .permissions
        .iter()
        .filter(|p| p.sub == name && p.dom == tenant)
        .map(|p| RulePermission {
            object: p.obj.clone(),
            action: p.act.clone(),
        })
        .collect();
    let members = policy
        .groupings
        .iter()
        .filter(|g| g.role == name && g.dom == tenant)
        .map(|g| g.user.clone())
        .collect();
    RoleView {
        name: name.to_owned(),
        permissions,
        members,
    }
}

#[utoipa::path(
    get, path = "/v1/roles", tag = "roles",
    params(PageParams),
    responses((status = 200, description = "The tenant's roles", body = Page<RoleView>))
)]
async fn list_roles(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<RoleView>>> {
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    let items: Vec<RoleView> = roles_in(&policy)
        .iter()
        .map(|r| role_view(&policy, &caller.tenant, r))
        .collect();
    page(items, &paging?.0, |r| r.name.clone())
}

#[utoipa::path(
    get, path = "/v1/roles/{name}", tag = "roles",
    responses((status = 200, description = "The role's permissions and members", body = RoleView))
)]
async fn read_role(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<RoleView>> {
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    if !roles_in(&policy).contains(&name) {
        return Err(ApiError::not_found(format!("role {name:?}")));
    }
    Ok(Json(role_view(&policy, &caller.tenant, &name)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    permissions: Vec<RulePermission>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RulePermission {
    /// An API path pattern (`/v1/devices/*`, `/v1/devices/:uid`) or a data scope
    /// (`department:*`, `department:{id}`).
    object: String,
    /// An HTTP method, `*`, or alternatives `(GET)|(POST)`.
    action: String,
}

/// Creates or replaces a role's permissions.
#[utoipa::path(
    put, path = "/v1/roles/{name}", tag = "roles",
    request_body = RoleBody,
    responses((status = 200, description = "Created or replaced", body = RoleView))
)]
async fn put_role(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    body: Result<Json<RoleBody>, JsonRejection>,
) -> ApiResult<Json<RoleView>> {
    let body = body?.0;
    check_id("name", &name)?;
    if body.permissions.is_empty() {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/permissions",
            "a role needs at least one permission; DELETE the role to remove it",
        ));
    }
    for (i, p) in body.permissions.iter().enumerate() {
        if !(p.object.starts_with('/') || p.object.starts_with("department:")) {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("/permissions/{i}/object"),
                "must be an API path pattern such as /v1/devices/* or department:{id}",
            ));
        }
        if p.action.trim().is_empty() {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("/permissions/{i}/action"),
                "must be an HTTP method, * or (GET)|(POST)",
            ));
        }
    }
    let wanted: Vec<Permission> = body
        .permissions
        .iter()
        .map(|p| Permission {
            sub: name.clone(),
            dom: caller.tenant.clone(),
            obj: p.object.clone(),
            act: p.action.clone(),
        })
        .collect();
    if let Some(i) = wanted.iter().position(|p| !holds(&caller, p)) {
        return Err(ApiError::field(
            StatusCode::FORBIDDEN,
            &format!("/permissions/{i}"),
            "you do not hold this right yourself, so you cannot grant it",
        ));
    }
    check_holds_role(&state, &caller, &name).await?;
    let (current, _) = policy_of(&state, &caller.tenant).await?;
    if !roles_in(&current).contains(&name)
        && state.catalog.user(&caller.tenant, &name).await?.is_some()
    {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/name",
            format!("{name:?} is a user's login; name the role otherwise"),
        ));
    }
    let policy = change_policy(&state, &caller, |policy| {
        policy
            .permissions
            .retain(|p| !(p.sub == name && p.dom == caller.tenant));
        policy.permissions.extend(wanted.iter().cloned());
        Ok(())
    })
    .await?;
    Ok(Json(role_view(&policy, &caller.tenant, &name)))
}

#[utoipa::path(
    delete, path = "/v1/roles/{name}", tag = "roles",
    responses((status = 204, description = "Deleted, and taken from its members"))
)]
async fn delete_role(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    if !roles_in(&policy).contains(&name) {
        return Err(ApiError::not_found(format!("role {name:?}")));
    }
    check_holds_role(&state, &caller, &name).await?;
    change_policy(&state, &caller, |policy| {
        policy.permissions.retain(|p| p.sub != name);
        policy.groupings.retain(|g| g.role != name);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
