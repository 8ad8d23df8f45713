//! Errors as RFC 9457 problem details, with a message that says what to fix.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iot_core::auth::AuthError;
use iot_core::ports::{SchedulerError, StoreError, TelemetryError};
use iot_core::usecase::{AlarmServiceError, OtaError, StatsServiceError};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer to the offending field, e.g. `/signals/0/kind`.
    pub pointer: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} does not exist"))
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// Well-formed but refused: an invalid script, rule, template or reference.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    pub fn field(status: StatusCode, pointer: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self {
            status,
            detail: format!("{pointer}: {detail}"),
            errors: vec![FieldError {
                pointer: pointer.to_owned(),
                detail,
            }],
        }
    }

    /// A failure of ours: logged in full, answered without internals.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the server log has the details",
        )
    }

    pub fn unavailable(error: impl std::fmt::Display) -> Self {
        tracing::warn!(%error, "a backing service is unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "a backing service is unavailable; retry later",
        )
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            errors: &self.errors,
        };
        let mut response = (self.status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        // RFC 9110: a 401 names the scheme that would be accepted.
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"iot-platform\""),
            );
        }
        response
    }
}

/// Sign-in and session errors, the one mapping every route uses (the guard included).
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status = match e {
            AuthError::Store(store) => return store.into(),
            AuthError::Hashing(_) => return ApiError::internal(e),
            AuthError::WeakPassword(_) => {
                return ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "/password",
                    e.to_string(),
                );
            }
            AuthError::InvalidCode => {
                return ApiError::field(StatusCode::UNAUTHORIZED, "/code", e.to_string());
            }
            AuthError::Token(_)
            | AuthError::SessionEnded
            | AuthError::InvalidRefresh
            | AuthError::InvalidCredentials
            | AuthError::Sso(_) => StatusCode::UNAUTHORIZED,
            AuthError::SsoUnknownUser(_)
            | AuthError::SsoNotLinked(_)
            | AuthError::Disabled
            | AuthError::Tenant(_) => StatusCode::FORBIDDEN,
            AuthError::SsoNotConfigured => StatusCode::BAD_REQUEST,
            AuthError::Locked(_) => StatusCode::LOCKED,
            AuthError::Contended | AuthError::MfaState(_) => StatusCode::CONFLICT,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ConditionFailed(_) | StoreError::TransactionCancelled(_) => {
                ApiError::conflict(format!("{e}; it changed or exists already"))
            }
            StoreError::Invalid(why) => ApiError::bad_request(why),
            StoreError::Unavailable(_) => ApiError::unavailable(e),
            StoreError::Corrupt { .. } => ApiError::internal(e),
        }
    }
}

impl From<TelemetryError> for ApiError {
    fn from(e: TelemetryError) -> Self {
        match e {
            TelemetryError::Invalid(why) => ApiError::bad_request(why),
            TelemetryError::Unavailable(_) => ApiError::unavailable(e),
        }
    }
}

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::Invalid(why) => {
                ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "/cron", why)
            }
            SchedulerError::Unavailable(_) => ApiError::unavailable(e),
        }
    }
}

impl From<AlarmServiceError> for ApiError {
    fn from(e: AlarmServiceError) -> Self {
        match e {
            AlarmServiceError::Store(e) => e.into(),
            AlarmServiceError::UnknownDevice(_) | AlarmServiceError::UnknownRule { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            AlarmServiceError::Alarm(_) => ApiError::conflict(e.to_string()),
            AlarmServiceError::Contended(_) | AlarmServiceError::Publish(_) => {
                ApiError::unavailable(e)
            }
            AlarmServiceError::Rule(_) => ApiError::unprocessable(e.to_string()),
        }
    }
}

impl From<StatsServiceError> for ApiError {
    fn from(e: StatsServiceError) -> Self {
        match e {
            StatsServiceError::UnknownJob(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            StatsServiceError::Job(_) => ApiError::unprocessable(e.to_string()),
            StatsServiceError::UnknownDevice(_) => ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/devices/uids",
                e.to_string(),
            ),
            StatsServiceError::Store(e) => e.into(),
            StatsServiceError::Telemetry(e) => e.into(),
        }
    }
}

impl From<OtaError> for ApiError {
    fn from(e: OtaError) -> Self {
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        match e {
            OtaError::Store(e) => e.into(),
            OtaError::Blob(_) | OtaError::Gateway(_) | OtaError::Link(_) => {
                ApiError::unavailable(e)
            }
            OtaError::NoPackage(_) | OtaError::NoRollout(_) | OtaError::NoExecution { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            OtaError::Package(ref why) => {
                ApiError::field(unprocessable, why.pointer(), e.to_string())
            }
            OtaError::Rollout(ref why) => {
                ApiError::field(unprocessable, &why.pointer(), e.to_string())
            }
            OtaError::NotUploaded(_)
            | OtaError::RolloutExists(_)
            | OtaError::RolloutOver { .. }
            | OtaError::Update(_)
            | OtaError::Conflict => ApiError::conflict(e.to_string()),
            OtaError::PackageNotReady { .. } => {
                ApiError::field(unprocessable, "/package_id", e.to_string())
            }
            OtaError::UnknownDevice(_)
            | OtaError::OtherProduct { .. }
            | OtaError::NoIdentity(_) => {
                ApiError::field(unprocessable, "/target/uids", e.to_string())
            }
            OtaError::UnknownDepartment(_) => {
                ApiError::field(unprocessable, "/target/department_id", e.to_string())
            }
            OtaError::EmptyTarget(_) => ApiError::field(unprocessable, "/target", e.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::new(e.status(), e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
