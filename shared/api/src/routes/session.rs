//! Login, refresh, logout, who am I, and changing one's own password.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use iot_core::auth::{DataScope, LoginOutcome, MfaEnrollment, Principal, Tokens};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::ApiState;
use crate::audit::ClientAddr;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{Caller, check_id};
use crate::openapi::Problem;
use crate::request_context::Actor;
use utoipa::ToSchema;

/// Routes anyone may call.
pub fn public_routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(verify_mfa))
        .routes(routes!(sso_login))
}

/// Routes for any signed-in user.
pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(enroll_mfa))
        .routes(routes!(confirm_mfa))
        .routes(routes!(disable_mfa))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    /// The tenant; the server's default tenant if absent.
    tenant: Option<String>,
    username: String,
    password: String,
}

#[utoipa::path(
    post, path = "/v1/auth/login", tag = "auth",
    security(()),
    request_body = LoginBody,
    responses(
        (status = 200, description = "Tokens, or `{mfa_required, mfa_token}` when the user has TOTP", body = LoginOutcome),
        (status = 401, description = "Wrong user name or password", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "Locked after repeated failures; try again later", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn login(
    State(state): State<Arc<ApiState>>,
    addr: Option<Extension<ClientAddr>>,
    headers: axum::http::HeaderMap,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> ApiResult<Response> {
    let body = body?.0;
    let tenant = body.tenant.unwrap_or_else(|| state.default_tenant.clone());
    check_id("tenant", &tenant).and_then(|()| check_id("username", &body.username))?;
    let client = user_agent(&headers);
    let result = state
        .auth
        .login(
            &tenant,
            &body.username,
            &body.password,
            client.as_deref(),
            addr.as_ref().map(|Extension(ClientAddr(a))| a.as_str()),
        )
        .await;
    let mut response = match result {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    // Every attempt is audited under the name it gave.
    response.extensions_mut().insert(Actor {
        tenant,
        user: body.username,
    });
    Ok(response)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

#[utoipa::path(
    post, path = "/v1/auth/refresh", tag = "auth",
    security(()),
    request_body = RefreshBody,
    responses((status = 200, description = "New tokens; the refresh token given is used up", body = Tokens))
)]
async fn refresh(
    State(state): State<Arc<ApiState>>,
    body: Result<Json<RefreshBody>, JsonRejection>,
) -> ApiResult<Response> {
    let body = body?.0;
    let tokens = state.auth.refresh(&body.refresh_token).await?;
    Ok(Json(tokens).into_response())
}

#[utoipa::path(
    post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "The session has ended"))
)]
async fn logout(State(state): State<Arc<ApiState>>, Caller(caller): Caller) -> ApiResult<Response> {
    state.auth.logout(&caller.session).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Who is signed in.
#[derive(Serialize, ToSchema)]
struct MeView {
    tenant: String,
    id: String,
    name: String,
    email: Option<String>,
    department_id: Option<String>,
    roles: std::collections::BTreeSet<String>,
    /// `"all"`, or the ids of the departments whose devices the caller sees.
    data_scope: Value,
}

#[utoipa::path(
    get, path = "/v1/auth/me", tag = "auth",
    responses((status = 200, description = "Who the caller is", body = MeView))
)]
async fn me(State(state): State<Arc<ApiState>>, Caller(caller): Caller) -> ApiResult<Json<MeView>> {
    let user = state
        .catalog
        .user(&caller.tenant, &caller.user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {:?}", caller.user)))?;
    let scope = match &caller.scope {
        DataScope::All => json!("all"),
        DataScope::Departments(set) => json!(set),
    };
    Ok(Json(MeView {
        roles: caller.roles(),
        tenant: caller.tenant.clone(),
        id: user.id,
        name: user.name,
        email: user.email,
        department_id: user.department_id,
        data_scope: scope,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Needs the current password; ends the user's other sessions.
#[utoipa::path(
    put, path = "/v1/auth/password", tag = "auth",
    request_body = PasswordChange,
    responses((status = 204, description = "Changed; the caller's other sessions end"))
)]
async fn change_password(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<PasswordChange>, JsonRejection>,
) -> ApiResult<Response> {
    let body = body?.0;
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
        Err(iot_core::auth::AuthError::WeakPassword(why)) => Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/new_password",
            why,
        )),
        Err(e) => Err(e.into()),
    }
}

/// Changes to one's own sign-in need the current password again.
async fn require_password(state: &ApiState, caller: &Principal, password: &str) -> ApiResult<()> {
    match state
        .auth
        // Counted per session: whoever holds it gets five guesses.
        .check_password(
            &caller.tenant,
            &caller.user,
            password,
            Some(&format!("session {}", caller.session)),
        )
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::field(
            StatusCode::FORBIDDEN,
            "/current_password",
            "is not your current password",
        )),
        Err(e) => Err(e.into()),
    }
}

fn user_agent(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(200).collect())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MfaVerifyBody {
    mfa_token: String,
    /// The current code of the authenticator app, or a recovery code.
    code: String,
}

/// The second step of a login with TOTP.
#[utoipa::path(
    post, path = "/v1/auth/mfa/verify", tag = "auth",
    security(()),
    request_body = MfaVerifyBody,
    responses((status = 200, description = "Tokens", body = Tokens))
)]
async fn verify_mfa(
    State(state): State<Arc<ApiState>>,
    addr: Option<Extension<ClientAddr>>,
    headers: axum::http::HeaderMap,
    body: Result<Json<MfaVerifyBody>, JsonRejection>,
) -> ApiResult<Response> {
    let body = body?.0;
    let answer = state
        .auth
        .verify_mfa(
            &body.mfa_token,
            &body.code,
            user_agent(&headers).as_deref(),
            addr.as_ref().map(|Extension(ClientAddr(a))| a.as_str()),
        )
        .await?;
    Ok(Json(answer).into_response())
}

/// Starts enrollment: the secret and the `otpauth://` URL for the authenticator app.
#[utoipa::path(
    post, path = "/v1/auth/mfa/enroll", tag = "auth",
    responses((status = 200, description = "The secret for the authenticator app", body = MfaEnrollment))
)]
async fn enroll_mfa(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
) -> ApiResult<Response> {
    let answer = state.auth.enroll_mfa(&caller.tenant, &caller.user).await?;
    Ok(Json(answer).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

/// Confirms enrollment with a code from the app; answers the recovery codes, shown once.
#[utoipa::path(
    post, path = "/v1/auth/mfa/confirm", tag = "auth",
    request_body = CodeBody,
    responses((status = 200, description = "TOTP is on; the recovery codes are shown once", body = RecoveryCodes))
)]
async fn confirm_mfa(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<CodeBody>, JsonRejection>,
) -> ApiResult<Response> {
    let body = body?.0;
    let codes = state
        .auth
        .confirm_mfa(&caller.tenant, &caller.user, &body.code)
        .await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
        detail: "keep these codes somewhere safe: each one replaces a code from your app once",
    })
    .into_response())
}

#[derive(Serialize, ToSchema)]
struct RecoveryCodes {
    recovery_codes: Vec<String>,
    detail: &'static str,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
}

/// Turns one's own TOTP off; needs the password.
#[utoipa::path(
    post, path = "/v1/auth/mfa/disable", tag = "auth",
    request_body = PasswordBody,
    responses((status = 204, description = "TOTP is off"))
)]
async fn disable_mfa(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<PasswordBody>, JsonRejection>,
) -> ApiResult<Response> {
    let body = body?.0;
    require_password(&state, &caller, &body.current_password).await?;
    state.auth.disable_mfa(&caller.tenant, &caller.user).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SsoBody {
    /// The tenant; the server's default tenant if absent.
    tenant: Option<String>,
    /// The ID token the tenant's OpenID Connect provider issued.
    id_token: String,
}

/// Single sign-on: an ID token of the tenant's provider for the platform's tokens.
#[utoipa::path(
    post, path = "/v1/auth/oidc", tag = "auth",
    security(()),
    request_body = SsoBody,
    responses((status = 200, description = "Tokens; or, for a user with TOTP whose provider the tenant does not trust for a second factor, an `mfa_token` for /v1/auth/mfa/verify", body = LoginOutcome))
)]
async fn sso_login(
    State(state): State<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    body: Result<Json<SsoBody>, JsonRejection>,
) -> ApiResult<Response> {
    let body = body?.0;
    let tenant = body.tenant.unwrap_or_else(|| state.default_tenant.clone());
    check_id("tenant", &tenant)?;
    let result = state
        .auth
        .sso_login(&tenant, &body.id_token, user_agent(&headers).as_deref())
        .await;
    let mut response = match result {
        Ok(tokens) => Json(tokens).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    response.extensions_mut().insert(Actor {
        tenant,
        user: "(sso)".into(),
    });
    Ok(response)
}
