//! The tenant's whole policy as Casbin CSV, out and in.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use iot_core::auth::Policy;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::{change_policy, policy_of, roles_in};
use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::Caller;
use crate::routes::user_rights::check_policy_change;
use utoipa::ToSchema;

pub(super) fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new().routes(routes!(export_policy, import_policy))
}

#[utoipa::path(
    get, path = "/v1/policy", tag = "roles",
    responses((status = 200, description = "The tenant's policy as Casbin CSV: `p, role, tenant, object, action` and `g, user, role, tenant` lines", body = String, content_type = "text/csv"))
)]
async fn export_policy(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
) -> ApiResult<Response> {
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    let mut response = policy.to_csv().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    Ok(response)
}

/// Replaces the tenant's whole policy with a Casbin policy CSV. Every line must be in the
/// caller's tenant: a tenant cannot grant anything elsewhere.
#[utoipa::path(
    put, path = "/v1/policy", tag = "roles",
    request_body(content = String, content_type = "text/csv", description = "A Casbin policy CSV, every line in the caller's tenant"),
    responses((status = 200, description = "Replaced", body = PolicyCounts))
)]
async fn import_policy(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Bytes,
) -> ApiResult<Json<PolicyCounts>> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the body must be UTF-8 text (a Casbin policy CSV)"))?;
    let imported = Policy::from_csv_for(text, &caller.tenant)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let users: BTreeSet<String> = state
        .catalog
        .users(&caller.tenant)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    let roles = roles_in(&imported);
    if let Some(g) = imported
        .groupings
        .iter()
        .find(|g| !users.contains(&g.user) && !roles.contains(&g.user))
    {
        return Err(ApiError::unprocessable(format!(
            "g line for {:?}: no such user or role in the tenant",
            g.user
        )));
    }
    let (current, _) = policy_of(&state, &caller.tenant).await?;
    check_policy_change(&caller, &current, &imported)?;
    let policy = change_policy(&state, &caller, |p| {
        *p = imported.clone();
        Ok(())
    })
    .await?;
    Ok(Json(PolicyCounts {
        permissions: policy.permissions.len(),
        groupings: policy.groupings.len(),
    }))
}

/// How many lines the imported policy has, of each kind.
#[derive(Serialize, ToSchema)]
struct PolicyCounts {
    permissions: usize,
    groupings: usize,
}
