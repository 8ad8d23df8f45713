//! Login, refresh, logout, who am I, and changing one's own password.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use iot_core::auth::{DataScope, Principal};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::ApiState;
use crate::audit::Actor;
use crate::error::{ApiError, ApiResult};
use crate::guard::auth_error;
use crate::input::{Caller, check_id};

/// Routes anyone may call.
pub fn public_routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/mfa/verify", post(verify_mfa))
        .route("/v1/auth/oidc", post(sso_login))
}

/// Routes for any signed-in user.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/me", get(me))
        .route("/v1/auth/password", put(change_password))
        .route("/v1/auth/mfa/enroll", post(enroll_mfa))
        .route("/v1/auth/mfa/confirm", post(confirm_mfa))
        .route("/v1/auth/mfa/disable", post(disable_mfa))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    /// The tenant; the server's default tenant if absent.
    tenant: Option<String>,
    username: String,
    password: String,
}

async fn login(
    State(state): State<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Response, Response> {
    let body = body.map_err(rejected)?.0;
    let tenant = body.tenant.unwrap_or_else(|| state.default_tenant.clone());
    check_id("tenant", &tenant)
        .and_then(|()| check_id("username", &body.username))
        .map_err(IntoResponse::into_response)?;
    let client = user_agent(&headers);
    let result = state
        .auth
        .login(&tenant, &body.username, &body.password, client.as_deref())
        .await;
    let mut response = match result {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e) => auth_error(e),
    };
    // Every attempt is audited under the name it gave.
    response.extensions_mut().insert(Actor {
        tenant,
        user: body.username,
    });
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(state): State<Arc<ApiState>>,
    body: Result<Json<RefreshBody>, JsonRejection>,
) -> Result<Response, Response> {
    let body = body.map_err(rejected)?.0;
    let tokens = state
        .auth
        .refresh(&body.refresh_token)
        .await
        .map_err(auth_error)?;
    Ok(Json(tokens).into_response())
}

async fn logout(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
) -> Result<Response, Response> {
    state
        .auth
        .logout(&caller.session)
        .await
        .map_err(auth_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn me(State(state): State<Arc<ApiState>>, Caller(caller): Caller) -> ApiResult<Json<Value>> {
    let user = state
        .catalog
        .user(&caller.tenant, &caller.user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {:?}", caller.user)))?;
    let scope = match &caller.scope {
        DataScope::All => json!("all"),
        DataScope::Departments(set) => json!(set),
    };
    Ok(Json(json!({
        "tenant": caller.tenant,
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "department_id": user.department_id,
        "roles": caller.roles(),
        "data_scope": scope,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Needs the current password; ends the user's other sessions.
async fn change_password(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<PasswordChange>, JsonRejection>,
) -> Result<Response, Response> {
    let body = body.map_err(rejected)?.0;
    require_password(&state, &caller, &body.current_password).await?;
    match state
        .auth
        .set_password(
            &caller.tenant,
            &caller.user,
            &body.new_password,
            Some(&caller.session),
        )
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(iot_core::auth::AuthError::WeakPassword(why)) => {
            Err(
                ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "/new_password", why)
                    .into_response(),
            )
        }
        Err(e) => Err(auth_error(e)),
    }
}

/// A body that is not the expected JSON, as a problem response.
fn rejected(e: JsonRejection) -> Response {
    ApiError::from(e).into_response()
}

/// Changes to one's own sign-in need the current password again.
async fn require_password(
    state: &ApiState,
    caller: &Principal,
    password: &str,
) -> Result<(), Response> {
    match state
        .auth
        .check_password(&caller.tenant, &caller.user, password)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::field(
            StatusCode::FORBIDDEN,
            "/current_password",
            "is not your current password",
        )
        .into_response()),
        Err(e) => Err(auth_error(e)),
    }
}

fn user_agent(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(200).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MfaVerifyBody {
    mfa_token: String,
    /// The current code of the authenticator app, or a recovery code.
    code: String,
}

/// The second step of a login with TOTP.
async fn verify_mfa(
    State(state): State<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    body: Result<Json<MfaVerifyBody>, JsonRejection>,
) -> Result<Response, Response> {
    let body = body.map_err(rejected)?.0;
    let answer = state
        .auth
        .verify_mfa(&body.mfa_token, &body.code, user_agent(&headers).as_deref())
        .await
        .map_err(auth_error)?;
    Ok(Json(answer).into_response())
}

/// Starts enrollment: the secret and the `otpauth://` URL for the authenticator app.
async fn enroll_mfa(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
) -> Result<Response, Response> {
    let answer = state
        .auth
        .enroll_mfa(&caller.tenant, &caller.user)
        .await
        .map_err(auth_error)?;
    Ok(Json(answer).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

/// Confirms enrollment with a code from the app; answers the recovery codes, shown once.
async fn confirm_mfa(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<CodeBody>, JsonRejection>,
) -> Result<Response, Response> {
    let body = body.map_err(rejected)?.0;
    let codes = state
        .auth
        .confirm_mfa(&caller.tenant, &caller.user, &body.code)
        .await
        .map_err(auth_error)?;
    Ok(Json(json!({
        "recovery_codes": codes,
        "detail": "keep these codes somewhere safe: each one replaces a code from your app once",
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
}

/// Turns one's own TOTP off; needs the password.
async fn disable_mfa(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<PasswordBody>, JsonRejection>,
) -> Result<Response, Response> {
    let body = body.map_err(rejected)?.0;
    require_password(&state, &caller, &body.current_password).await?;
    state
        .auth
        .disable_mfa(&caller.tenant, &caller.user)
        .await
        .map_err(auth_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SsoBody {
    /// The tenant; the server's default tenant if absent.
    tenant: Option<String>,
    /// The ID token the tenant's OpenID Connect provider issued.
    id_token: String,
}

/// Single sign-on: an ID token of the tenant's provider for the platform's tokens.
async fn sso_login(
    State(state): State<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    body: Result<Json<SsoBody>, JsonRejection>,
) -> Result<Response, Response> {
    let body = body.map_err(rejected)?.0;
    let tenant = body.tenant.unwrap_or_else(|| state.default_tenant.clone());
    if let Err(e) = check_id("tenant", &tenant) {
        return Err(e.into_response());
    }
    let result = state
        .auth
        .sso_login(&tenant, &body.id_token, user_agent(&headers).as_deref())
        .await;
    let mut response = match result {
        Ok(tokens) => Json(tokens).into_response(),
        Err(e) => auth_error(e),
    };
    response.extensions_mut().insert(Actor {
        tenant,
        user: "(sso)".into(),
    });
    Ok(response)
}
