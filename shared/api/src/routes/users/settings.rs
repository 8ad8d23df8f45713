//! The tenant's sign-in settings (MFA required, OpenID Connect).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use iot_core::auth::TenantSettings;
use std::sync::Arc;

use super::{policy_of, roles_in};
use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::Caller;

pub(super) fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new().routes(routes!(read_settings, put_settings))
}

#[utoipa::path(
    get, path = "/v1/settings", tag = "settings",
    responses((status = 200, description = "The tenant's sign-in settings", body = TenantSettings))
)]
async fn read_settings(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
) -> ApiResult<Json<TenantSettings>> {
    Ok(Json(state.catalog.settings(&caller.tenant).await?))
}

#[utoipa::path(
    put, path = "/v1/settings", tag = "settings", request_body = TenantSettings,
    responses((status = 200, description = "Saved", body = TenantSettings))
)]
async fn put_settings(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<TenantSettings>, JsonRejection>,
) -> ApiResult<Json<TenantSettings>> {
    let settings = body?.0;
    if settings.require_mfa && !caller.second_factor {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/require_mfa",
            "log in with a second factor yourself first (POST /v1/auth/mfa/enroll), \
             or you would lock yourself out",
        ));
    }
    if let Some(provider) = &settings.oidc {
        provider
            .check()
            .map_err(|why| ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "/oidc", why))?;
        let (policy, _) = policy_of(&state, &caller.tenant).await?;
        let known = roles_in(&policy);
        if let Some(role) = provider.default_roles.iter().find(|r| !known.contains(*r)) {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/oidc/default_roles",
                format!("role {role:?} does not exist"),
            ));
        }
    }
    state
        .catalog
        .put_settings(&caller.tenant, &settings)
        .await?;
    Ok(Json(settings))
}
