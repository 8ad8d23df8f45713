//! The audit log: every request that changes something (POST, PUT, PATCH, DELETE) by a known
//! actor is recorded with who, what, when, from where, and the resource before and after.
//!
//! "Before" is what a GET of the same path answered just before the change, through the same
//! router and with the caller's own token, so it shows exactly what that caller could see.
//! "After" is the response body. Secret fields are redacted in both.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use iot_core::auth::{AuditEntry, redact, secret::random_id};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

use crate::ApiState;
use crate::request_context::{Actor, AuthMemo};

/// The client's address as the server saw it, set by the binary that serves the router (the
/// peer address in `iot-local`, the API Gateway request context on Lambda).
#[derive(Clone, Debug)]
pub struct ClientAddr(pub String);

/// The most of a before or after summary kept, in bytes of JSON.
const MAX_SUMMARY_BYTES: usize = 8 * 1024;

#[derive(Clone)]
pub struct AuditLayer {
    pub state: Arc<ApiState>,
    /// The router itself, to read the "before" of a resource.
    pub router: Router,
}

fn source(request: &Request) -> String {
    if let Some(ClientAddr(addr)) = request.extensions().get::<ClientAddr>() {
        return addr.clone();
    }
    "unknown".into()
}

fn summary(value: Value) -> Value {
    let value = redact(&value);
    let size = value.to_string().len();
    if size > MAX_SUMMARY_BYTES {
        serde_json::json!({ "truncated": true, "bytes": size })
    } else {
        value
    }
}

async fn before(
    router: &Router,
    uri: Uri,
    authorization: Option<HeaderValue>,
    memo: AuthMemo,
) -> Value {
    let mut get = Request::get(uri).extension(memo);
    if let Some(auth) = authorization {
        get = get.header(header::AUTHORIZATION, auth);
    }
    let Ok(get) = get.body(Body::empty()) else {
        return Value::Null;
    };
    match router.clone().oneshot(get).await {
        Ok(response) if response.status().is_success() => {
            axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null)
        }
        _ => Value::Null,
    }
}

pub async fn record(State(layer): State<AuditLayer>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if !matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let from = source(&request);
    let memo = AuthMemo::default();
    request.extensions_mut().insert(memo.clone());
    let before = if method == Method::POST {
        Value::Null
    } else {
        let uri = request.uri().clone();
        let authorization = request.headers().get(header::AUTHORIZATION).cloned();
        before(&layer.router, uri, authorization, memo).await
    };
    let response = next.run(request).await;
    let Some(actor) = response.extensions().get::<Actor>().cloned() else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "could not read a response to audit it");
            return Response::from_parts(parts, Body::empty());
        }
    };
    let status = parts.status;
    let after = if status.is_success() && method != Method::DELETE {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    } else if !status.is_success() {
        // What was refused and why.
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|p| p.get("detail").cloned())
            .map(|d| serde_json::json!({ "refused": d }))
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let now = layer.state.clock.now_ms();
    let entry = AuditEntry {
        id: random_id(),
        tenant_id: actor.tenant,
        at: now,
        actor: actor.user,
        source: from,
        method: method.to_string(),
        path,
        status: status.as_u16(),
        before: summary(before),
        after: summary(after),
    };
    if let Err(e) = layer
        .state
        .catalog
        .put_audit(&entry, now + layer.state.audit_retention_ms)
        .await
    {
        metrics::counter!("iot_audit_write_failed_total").increment(1);
        tracing::error!(error = %e, path = %entry.path, actor = %entry.actor, "an audit entry was not stored");
    }
    Response::from_parts(parts, Body::from(bytes))
}
