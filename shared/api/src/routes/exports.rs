//! Telemetry export: a device's points over a window, as CSV or JSON, written to a file the
//! caller downloads through `GET /v1/exports/{id}/download` (a redirect to a presigned S3 URL
//! on AWS, the file itself on one machine).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use iot_core::auth::secret::random_id;
use iot_core::model::Value as SignalValue;
use iot_core::ports::{Point, RangeQuery};
use iot_core::stats::Window;
use iot_core::time::{DAY, HOUR, Millis, to_rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

use super::devices::device_of;
use super::fleet_limits::readable_range;
use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{Caller, parse_time};
use utoipa::ToSchema;

/// Most points one export holds; narrow the window or the signals for more.
pub const MAX_EXPORT_POINTS: usize = 100_000;
/// How long an export file is kept and its record listed.
const KEEP_FOR: Millis = 7 * DAY;
/// How long a presigned download URL works.
const URL_SECONDS: u64 = 300;

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(export))
        .routes(routes!(read))
        .routes(routes!(download))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Format {
    Csv,
    Json,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

/// What is stored about an export (the file itself is in the blob store).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportRecord {
    id: String,
    tenant_id: String,
    device_uid: String,
    format: Format,
    from: Millis,
    to: Millis,
    points: usize,
    blob_key: String,
    created_by: String,
    created_at: Millis,
    expires_at: Millis,
}

impl ExportRecord {
    fn view(&self) -> ExportView {
        ExportView {
            id: self.id.clone(),
            device_uid: self.device_uid.clone(),
            format: self.format,
            from: self.from,
            to: self.to,
            points: self.points,
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            download_url: format!("/v1/exports/{}/download", self.id),
        }
    }
}

/// An export as the API shows it; times are epoch ms.
#[derive(Serialize, ToSchema)]
struct ExportView {
    id: String,
    device_uid: String,
    format: Format,
    from: Millis,
    to: Millis,
    points: usize,
    created_by: String,
    created_at: Millis,
    /// The file and this record are deleted after this.
    expires_at: Millis,
    /// Where to download the file, with the same access token.
    download_url: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ExportBody {
    format: Format,
    /// Signal names; all signals if empty.
    #[serde(default)]
    signals: Vec<String>,
    /// Epoch ms or RFC 3339; default: a day before `to`.
    from: Option<String>,
    /// Epoch ms or RFC 3339; default: now.
    to: Option<String>,
}

/// A CSV cell. Text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR
/// first) gets a leading `'`, so a device's text value cannot become a formula in the
/// operator's spreadsheet.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn render(points: &[Point], format: Format) -> ApiResult<Vec<u8>> {
    Ok(match format {
        Format::Csv => {
            let mut out = String::from("time,time_ms,signal,value\n");
            for p in points {
                let value = match &p.value {
                    SignalValue::Text(t) => csv_field(t),
                    other => other.to_string(),
                };
                out.push_str(&format!(
                    "{},{},{},{value}\n",
                    to_rfc3339(p.time),
                    p.time,
                    csv_field(&p.signal)
                ));
            }
            out.into_bytes()
        }
        Format::Json => {
            let rows: Vec<Value> = points
                .iter()
                .map(|p| json!({ "time": p.time, "signal": p.signal, "value": p.value }))
                .collect();
            serde_json::to_vec(&rows).map_err(ApiError::internal)?
        }
    })
}

#[utoipa::path(
    post, path = "/v1/devices/{uid}/export", tag = "telemetry",
    request_body = ExportBody,
    responses((status = 201, description = "The export file is written; download it at `download_url`", body = ExportView))
)]
async fn export(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
    body: Result<Json<ExportBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<ExportView>)> {
    let body = body?.0;
    let device = device_of(&state, &caller, &uid).await?;
    let now = state.clock.now_ms();
    let to = body
        .to
        .as_deref()
        .map(|t| parse_time("to", t))
        .transpose()?
        .unwrap_or(now);
    let from = body
        .from
        .as_deref()
        .map(|t| parse_time("from", t))
        .transpose()?
        .unwrap_or(to - DAY);
    if from > to {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "/from",
            "must not be after `to`",
        ));
    }
    let window = Window {
        start: from,
        end: to,
    };
    let points = readable_range(
        &state,
        &device,
        RangeQuery {
            device_uid: uid.clone(),
            signals: body.signals.clone(),
            window,
            limit: Some(MAX_EXPORT_POINTS + 1),
            descending: false,
        },
    )
    .await?;
    if points.len() > MAX_EXPORT_POINTS {
        return Err(ApiError::unprocessable(format!(
            "more than {MAX_EXPORT_POINTS} points; narrow the window (e.g. {} hours) or the signals",
            ((to - from) / HOUR / 2).max(1)
        )));
    }
    let id = random_id();
    let blob_key = format!("exports/{}/{id}.{}", caller.tenant, body.format.extension());
    let bytes = render(&points, body.format)?;
    state
        .exports
        .put(&blob_key, bytes, body.format.content_type())
        .await
        .map_err(ApiError::unavailable)?;
    let record = ExportRecord {
        id,
        tenant_id: caller.tenant.clone(),
        device_uid: uid,
        format: body.format,
        from,
        to,
        points: points.len(),
        blob_key,
        created_by: caller.user.clone(),
        created_at: now,
        expires_at: now + KEEP_FOR,
    };
    state
        .catalog
        .put_export(&caller.tenant, &record.id, &record, record.expires_at)
        .await?;
    Ok((StatusCode::CREATED, Json(record.view())))
}

/// The export if it is the caller's tenant's and its device is in their scope.
async fn record_of(
    state: &ApiState,
    caller: &iot_core::auth::Principal,
    id: &str,
) -> ApiResult<ExportRecord> {
    let record: ExportRecord = state
        .catalog
        .export(&caller.tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("export {id:?}")))?;
    device_of(state, caller, &record.device_uid)
        .await
        .map_err(|_| ApiError::not_found(format!("export {id:?}")))?;
    Ok(record)
}

#[utoipa::path(
    get, path = "/v1/exports/{id}", tag = "telemetry",
    responses((status = 200, description = "The export", body = ExportView))
)]
async fn read(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ExportView>> {
    Ok(Json(record_of(&state, &caller, &id).await?.view()))
}

#[utoipa::path(
    get, path = "/v1/exports/{id}/download", tag = "telemetry",
    responses(
        (status = 200, description = "The file (on one machine)", content((String = "text/csv"), (Object = "application/json"))),
        (status = 307, description = "A redirect to a presigned URL, valid 5 minutes (on AWS)"),
    )
)]
async fn download(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let record = record_of(&state, &caller, &id).await?;
    let url = state
        .exports
        .download_url(&record.blob_key, URL_SECONDS)
        .await
        .map_err(ApiError::unavailable)?;
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Redirect::temporary(&url).into_response());
    }
    let bytes = state
        .exports
        .get(&record.blob_key)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::not_found(format!("the file of export {id:?} (expired?)")))?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(record.format.content_type()),
    );
    if let Ok(disposition) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-{}.{}\"",
        record.device_uid,
        record.id,
        record.format.extension()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_cells_never_start_a_formula() {
        assert_eq!(csv_field("eco"), "eco");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for formula in ["+1", "-1+2", "@SUM(A1)", "\tx"] {
            assert!(csv_field(formula).starts_with('\''), "{formula}");
        }
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
