//! Request input: the caller and tenant, bodies into core types, ids, times.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use iot_core::auth::Principal;
use iot_core::time::{Millis, parse_rfc3339};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use std::sync::Arc;

use crate::error::ApiError;
use crate::openapi::Page;

/// The authenticated caller of a request, put there by the guard (`crate::guard`).
#[derive(Clone)]
pub struct Caller(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "log in first"))
    }
}

/// The tenant a request acts for: always the caller's own, from their token.
pub struct Tenant(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(caller) = Caller::from_request_parts(parts, state).await?;
        Ok(Tenant(caller.tenant.clone()))
    }
}

/// Ids appear in keys, MQTT topics and alarm ids: letters, digits, `_`, `-` and `.`.
pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            &format!("/{field}"),
            format!("{id:?} is not a valid id: use 1 to 128 letters, digits, '_', '-' or '.'"),
        ))
    }
}

/// Reads a body into a core type, setting the fields the server owns (tenant, path id).
pub fn body_as<T: DeserializeOwned>(
    mut body: Json,
    tenant: &str,
    id: Option<(&str, &str)>,
) -> Result<T, ApiError> {
    let Some(object) = body.as_object_mut() else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    object.insert("tenant_id".into(), Json::String(tenant.to_owned()));
    if let Some((field, value)) = id {
        match object.get(field).and_then(Json::as_str) {
            Some(given) if given != value => {
                return Err(ApiError::field(
                    StatusCode::BAD_REQUEST,
                    &format!("/{field}"),
                    format!("is {given:?} but the path says {value:?}"),
                ));
            }
            _ => {
                object.insert(field.into(), Json::String(value.to_owned()));
            }
        }
    }
    serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the body does not match the expected shape: {e}"),
        )
    })
}

/// Latest time a query may name (the end of year 9999), so that window arithmetic on times
/// from clients can never overflow.
const MAX_TIME: Millis = 253_402_300_799_999;

/// A time given as epoch milliseconds or RFC 3339, between year 0 and year 9999.
pub fn parse_time(field: &str, text: &str) -> Result<Millis, ApiError> {
    text.parse::<Millis>()
        .ok()
        .or_else(|| parse_rfc3339(text))
        .filter(|t| (-MAX_TIME..=MAX_TIME).contains(t))
        .ok_or_else(|| {
            ApiError::field(
                StatusCode::BAD_REQUEST,
                &format!("/{field}"),
                format!(
                    "{text:?} is neither epoch milliseconds nor an RFC 3339 time between years 0 and 9999"
                ),
            )
        })
}

/// Splits a comma-separated list, dropping empty entries.
pub fn list(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Page cursors go out as URL-safe base64, so clients can put them in a query string as they
/// are; what is inside is the store's business.
pub fn encode_cursor(cursor: Option<String>) -> Option<String> {
    use base64::Engine;
    cursor.map(|c| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c))
}

pub fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    use base64::Engine;
    cursor
        .map(|c| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    ApiError::field(
                        StatusCode::BAD_REQUEST,
                        "/cursor",
                        "is not a cursor this API gave out; pass `next` from the previous page as it is",
                    )
                })
        })
        .transpose()
}

/// `?limit=&cursor=` of a list route.
#[derive(serde::Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page: 1 to 1000, 100 if absent.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `next` of the previous page, as it was given.
    pub cursor: Option<String>,
}

/// Items per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1_000;

/// A list's `limit`: [`DEFAULT_PAGE`] if absent, refused outside 1 to [`MAX_PAGE`].
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "/limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ))
    }
}

/// One page of `items` (in their order) as `{items, next}`: `next` is the cursor of the
/// following page, `null` on the last. The cursor names the last item returned (by `key`).
pub fn page<T>(
    items: Vec<T>,
    params: &PageParams,
    key: impl Fn(&T) -> String,
) -> Result<axum::Json<Page<T>>, ApiError> {
    let limit = page_limit(params.limit)?;
    let start = match decode_cursor(params.cursor.as_deref())? {
        None => 0,
        Some(after) => {
            items
                .iter()
                .position(|item| key(item) == after)
                .ok_or_else(|| {
                    ApiError::field(
                        StatusCode::BAD_REQUEST,
                        "/cursor",
                        "the item this cursor points after is gone; list again from the start",
                    )
                })?
                + 1
        }
    };
    let rest = items.len().saturating_sub(start);
    let items: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let next = if rest > limit {
        items.last().map(&key)
    } else {
        None
    };
    Ok(store_page((items, next)))
}

/// A page as the store cut it (the items and the store's cursor of the next page), answered
/// as `{items, next}` with the cursor made URL-safe.
pub fn store_page<T>((items, next): (Vec<T>, Option<String>)) -> axum::Json<Page<T>> {
    axum::Json(Page {
        items,
        next: encode_cursor(next),
    })
}
