//! Devices created from CSV, row by row.

use axum::Json;
use axum::extract::State;
use iot_core::model::Device;
use serde::Serialize;
use std::sync::Arc;

use super::create_new;
use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::Caller;
use utoipa::ToSchema;

pub(super) fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new().routes(routes!(import_csv))
}

/// Most rows one import takes.
const MAX_IMPORT_ROWS: usize = 5_000;

/// Creates devices from CSV with a header line naming the columns `uid`,
/// `identification_code`, `product_id`, `department_id` and optionally `name`. Each row is
/// created or refused on its own; the answer lists what was created and why the others were
/// refused, by line number.
#[utoipa::path(
    post, path = "/v1/devices/import", tag = "devices",
    request_body(content = String, content_type = "text/csv", description = "A header line, then one device per line"),
    responses((status = 200, description = "What was created, and why other lines were refused", body = ImportReport))
)]
async fn import_csv(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: axum::body::Bytes,
) -> ApiResult<Json<ImportReport>> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the body must be UTF-8 CSV"))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(ApiError::unprocessable(
            "the CSV is empty; the first line names the columns: uid,identification_code,product_id,department_id,name",
        ));
    };
    let columns: Vec<String> = header.split(',').map(|c| c.trim().to_lowercase()).collect();
    let column = |name: &str| columns.iter().position(|c| c == name);
    let required = ["uid", "identification_code", "product_id", "department_id"];
    if let Some(missing) = required.iter().find(|c| column(c).is_none()) {
        return Err(ApiError::unprocessable(format!(
            "the header has no {missing:?} column; it needs {}",
            required.join(", ")
        )));
    }
    let rows: Vec<(usize, &str)> = lines.collect();
    if rows.len() > MAX_IMPORT_ROWS {
        return Err(ApiError::unprocessable(format!(
            "{} rows; at most {MAX_IMPORT_ROWS} per import",
            rows.len()
        )));
    }
    let mut created = Vec::new();
    let mut refused = Vec::new();
    for (index, line) in rows {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |name: &str| {
            column(name)
                .and_then(|i| fields.get(i))
                .map(|f| f.trim_matches('"').to_owned())
                .unwrap_or_default()
        };
        let mut device = Device {
            uid: get("uid"),
            identification_code: get("identification_code"),
            tenant_id: caller.tenant.clone(),
            product_id: get("product_id"),
            department_id: get("department_id"),
            name: get("name"),
            data_since: 0,
            gateway_uid: None,
        };
        let outcome = create_new(&state, &caller, &mut device).await;
        match outcome {
            Ok(()) => created.push(device.uid),
            Err(e) => refused.push(RefusedRow {
                line: index + 1,
                uid: device.uid,
                detail: e.detail,
            }),
        }
    }
    Ok(Json(ImportReport { created, refused }))
}

#[derive(Serialize, ToSchema)]
struct ImportReport {
    /// The uids of the devices created.
    created: Vec<String>,
    refused: Vec<RefusedRow>,
}

#[derive(Serialize, ToSchema)]
struct RefusedRow {
    /// The line of the CSV, counting the header as 1.
    line: usize,
    uid: String,
    /// Why the row was refused.
    detail: String,
}
