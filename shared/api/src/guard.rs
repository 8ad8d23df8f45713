//! The guard in front of every route but health, login and refresh: a valid access token, a
//! live session, and a policy that allows the method on the path.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use iot_core::auth::Principal;
use std::sync::Arc;

use crate::ApiState;
use crate::error::ApiError;
use crate::input::Caller;
use crate::request_context::{Actor, AuthMemo};

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// What every signed-in user may do whatever their roles: their own session and password,
/// and their own in-system messages.
fn is_self_service(principal: &Principal, path: &str) -> bool {
    path.starts_with("/v1/auth/")
        || path
            .strip_prefix("/v1/users/")
            .and_then(|rest| rest.strip_prefix(principal.user.as_str()))
            .is_some_and(|rest| rest == "/messages" || rest.starts_with("/messages/"))
}

/// The platform operator's routes: tenants and their quotas.
fn is_platform_route(path: &str) -> bool {
    path == "/v1/platform" || path.starts_with("/v1/platform/")
}

pub async fn require_auth(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer(request.headers()) else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this route needs an access token: log in at /v1/auth/login and send `Authorization: Bearer <access_token>`",
        )
        .into_response();
    };
    let memo = request.extensions().get::<AuthMemo>().cloned();
    let principal = match memo.as_ref().and_then(|m| m.get(token)) {
        Some(principal) => principal,
        None => match state.auth.authenticate(token).await {
            Ok(p) => {
                let principal = Arc::new(p);
                if let Some(memo) = &memo {
                    memo.set(token, principal.clone());
                }
                principal
            }
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    let actor = Actor {
        tenant: principal.tenant.clone(),
        user: principal.user.clone(),
    };
    let path = request.uri().path().to_owned();
    let method = request.method().as_str().to_owned();
    let mut response = if principal.needs_mfa_enrollment && !path.starts_with("/v1/auth/") {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "your tenant requires multi-factor authentication: enroll with POST /v1/auth/mfa/enroll \
             and /v1/auth/mfa/confirm, then log in again",
        )
        .into_response()
    } else if is_platform_route(&path) && principal.tenant != state.default_tenant {
        // Another tenant's policy (an administrator's `/v1/*`, say) never reaches them.
        ApiError::new(
            StatusCode::FORBIDDEN,
            "the platform routes are for the platform's own operators",
        )
        .into_response()
    } else if is_self_service(&principal, &path) || principal.can(&path, &method) {
        let acting = match method.as_str() {
            "GET" | "HEAD" => principal,
            _ => Arc::new(principal.acting(&method)),
        };
        request.extensions_mut().insert(Caller(acting));
        next.run(request).await
    } else {
        let roles: Vec<String> = principal.roles().into_iter().collect();
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "your roles ({}) do not allow {method} {path}; ask an administrator",
                if roles.is_empty() {
                    "none".to_owned()
                } else {
                    roles.join(", ")
                }
            ),
        )
        .into_response()
    };
    response.extensions_mut().insert(actor);
    response
}
