//! Devices and their telemetry (range, latest, aggregates).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use iot_core::auth::Principal;
use iot_core::model::Device;
use iot_core::model::Value as SignalValue;
use iot_core::ports::{
    AggregateQuery, Bucket, DeviceCredentials, GatewayError, RangeQuery, SessionCredential,
    StoreError,
};
use iot_core::stats::Window;
use iot_core::time::{HOUR, MINUTE, Millis};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::fleet_limits::{admit_new_device, clamp_window, readable_range, readable_since};
use super::products::product_of;
use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{
    Caller, PageParams, body_as, check_id, decode_cursor, list, page_limit, parse_time, store_page,
};
use crate::openapi::Page;
use utoipa::{IntoParams, ToSchema};

/// Most points one range request returns.
const MAX_POINTS: usize = 10_000;
/// Most signals one query names.
const MAX_SIGNALS: usize = 100;

fn check_signals(signals: &[String]) -> ApiResult<()> {
    if signals.len() > MAX_SIGNALS {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "/signals",
            format!("{} signals; at most {MAX_SIGNALS} per query", signals.len()),
        ));
    }
    Ok(())
}

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(list_devices, create))
        .routes(routes!(import_csv))
        .routes(routes!(read, update, remove))
        .routes(routes!(range))
        .routes(routes!(latest))
        .routes(routes!(aggregate))
        .routes(routes!(presence))
        .routes(routes!(issue_token, revoke_token))
        .routes(routes!(issue_certificate, revoke_certificate))
        .routes(routes!(read_shadow))
        .routes(routes!(set_desired))
        .routes(routes!(send_command))
}

/// The device if it exists in the caller's tenant and data scope; other tenants' devices, and
/// devices of departments the caller may not see, are "not found".
pub(crate) async fn device_of(
    state: &ApiState,
    caller: &Principal,
    uid: &str,
) -> ApiResult<Device> {
    state
        .catalog
        .device(uid)
        .await?
        .filter(|d| d.tenant_id == caller.tenant && caller.scope.allows(&d.department_id))
        .ok_or_else(|| ApiError::not_found(format!("device {uid:?}")))
}

/// A device may only be put in a department the caller's data scope covers.
fn check_department(caller: &Principal, device: &Device) -> ApiResult<()> {
    if caller.scope.allows(&device.department_id) {
        Ok(())
    } else {
        Err(ApiError::field(
            StatusCode::FORBIDDEN,
            "/department_id",
            format!(
                "department {:?} is outside the departments you manage",
                device.department_id
            ),
        ))
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeviceFilter {
    /// Only devices of this product.
    product: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/devices", tag = "devices",
    params(DeviceFilter, PageParams),
    responses((status = 200, description = "The devices the caller may see", body = Page<Device>))
)]
async fn list_devices(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    query: Result<Query<DeviceFilter>, QueryRejection>,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<Device>>> {
    let (filter, paging) = (query?.0, paging?.0);
    let listed = state
        .catalog
        .devices_page(
            &caller.tenant,
            filter.product.as_deref(),
            decode_cursor(paging.cursor.as_deref())?,
            page_limit(paging.limit)?,
            |d| caller.scope.allows(&d.department_id),
        )
        .await?;
    Ok(store_page(listed))
}

/// Checks and stores a device: a new one only if its uid is free (`new`), else over the one
/// stored.
async fn save(state: &ApiState, device: &Device, new: bool) -> ApiResult<()> {
    check_id("uid", &device.uid)?;
    if device.uid == "import" {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/uid",
            "\"import\" names the CSV import route (/v1/devices/import); choose another uid",
        ));
    }
    if device.identification_code.trim().is_empty() {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/identification_code",
            "must not be empty",
        ));
    }
    product_of(state, &device.tenant_id, &device.product_id)
        .await
        .map_err(|_| {
            ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/product_id",
                format!("product {:?} does not exist", device.product_id),
            )
        })?;
    let written = if new {
        state.catalog.create_device(device).await
    } else {
        state.catalog.put_device(device).await
    };
    match written {
        Ok(()) => Ok(()),
        Err(StoreError::ConditionFailed(_) | StoreError::TransactionCancelled(_)) => {
            // A creator that lost the race for the uid learns it as if it had checked first.
            if new && state.catalog.device(&device.uid).await?.is_some() {
                Err(uid_taken(device))
            } else {
                Err(ApiError::field(
                    StatusCode::CONFLICT,
                    "/identification_code",
                    format!("{:?} is used by another device", device.identification_code),
                ))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// A uid in use is told alike whoever has it: a tenant never learns that another holds a uid
/// (and managed tenants cannot even name one).
fn uid_taken(device: &Device) -> ApiError {
    ApiError::field(
        StatusCode::CONFLICT,
        "/uid",
        format!("uid {:?} is not available; choose another", device.uid),
    )
}

/// A device's gateway must be another device the caller can see.
async fn check_gateway(state: &ApiState, caller: &Principal, device: &Device) -> ApiResult<()> {
    let Some(gateway) = &device.gateway_uid else {
        return Ok(());
    };
    if gateway == &device.uid || device_of(state, caller, gateway).await.is_err() {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/gateway_uid",
            format!("{gateway:?} is not another of your devices"),
        ));
    }
    Ok(())
}

/// Creates a device after the tenant's namespace and quota checks.
async fn create_new(state: &ApiState, caller: &Principal, device: &mut Device) -> ApiResult<()> {
    check_department(caller, device)?;
    check_gateway(state, caller, device).await?;
    admit_new_device(state, device).await?;
    if state.catalog.device(&device.uid).await?.is_some() {
        return Err(uid_taken(device));
    }
    save(state, device, true).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CreateParams {
    /// Also issue the device's certificate and key, returned once in `credentials`.
    provision: Option<bool>,
}

/// A created device, with its credentials if it was provisioned.
#[derive(Serialize, ToSchema)]
struct CreatedDevice {
    #[serde(flatten)]
    device: Device,
    /// Shown once: the platform keeps no copy of the private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials: Option<DeviceCredentials>,
}

#[utoipa::path(
    post, path = "/v1/devices", tag = "devices",
    params(CreateParams), request_body = Device,
    responses((status = 201, description = "Created (and provisioned, with `?provision=true`)", body = CreatedDevice))
)]
async fn create(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    query: Result<Query<CreateParams>, QueryRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<CreatedDevice>)> {
    let provision = query?.0.provision.unwrap_or(false);
    let mut device: Device = body_as(body?.0, &caller.tenant, None)?;
    create_new(&state, &caller, &mut device).await?;
    let credentials = if provision {
        Some(
            state
                .gateway
                .register(&device)
                .await
                .map_err(|e| gateway_error(&device.uid, e))?,
        )
    } else {
        None
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedDevice {
            device,
            credentials,
        }),
    ))
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

#[utoipa::path(
    get, path = "/v1/devices/{uid}", tag = "devices",
    responses((status = 200, description = "The device", body = Device))
)]
async fn read(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<Json<Device>> {
    Ok(Json(device_of(&state, &caller, &uid).await?))
}

/// Whether the device is connected, as the broker last said (`online: null` when it never said).
#[utoipa::path(
    get, path = "/v1/devices/{uid}/presence", tag = "devices",
    responses((status = 200, description = "Connected or not, as the broker last said", body = PresenceView))
)]
async fn presence(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<Json<PresenceView>> {
    device_of(&state, &caller, &uid).await?;
    Ok(Json(match state.catalog.presence(&uid).await? {
        Some(p) => PresenceView {
            online: Some(p.online),
            since: Some(p.since),
            reason: p.reason,
        },
        None => PresenceView {
            online: None,
            since: None,
            reason: None,
        },
    }))
}

#[derive(Serialize, ToSchema)]
struct PresenceView {
    /// `null` when the broker never said.
    online: Option<bool>,
    /// When the broker saw the change, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<Millis>,
    /// Why the device went offline, as the broker tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[utoipa::path(
    put, path = "/v1/devices/{uid}", tag = "devices",
    request_body = Device,
    responses((status = 200, description = "Saved", body = Device))
)]
async fn update(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Device>> {
    let stored = device_of(&state, &caller, &uid).await?;
    let mut device: Device = body_as(body?.0, &caller.tenant, Some(("uid", &uid)))?;
    device.data_since = stored.data_since;
    check_department(&caller, &device)?;
    check_gateway(&state, &caller, &device).await?;
    save(&state, &device, false).await?;
    Ok(Json(device))
}

#[utoipa::path(
    delete, path = "/v1/devices/{uid}", tag = "devices",
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<StatusCode> {
    let device = device_of(&state, &caller, &uid).await?;
    // Its certificate is revoked first, so a deleted device cannot connect.
    match state.gateway.deregister(&uid).await {
        Ok(()) | Err(GatewayError::UnknownDevice(_)) => {}
        Err(e) => return Err(gateway_error(&uid, e)),
    }
    state
        .catalog
        .delete_device(&device, state.clock.now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Maps the device side's errors: not provisioned, provisioned already, unreachable.
fn gateway_error(uid: &str, e: GatewayError) -> ApiError {
    match e {
        GatewayError::UnknownDevice(_) => ApiError::conflict(format!(
            "device {uid:?} is not provisioned; POST /v1/devices/{uid}/certificate first"
        )),
        GatewayError::AlreadyRegistered(_) => ApiError::conflict(format!(
            "device {uid:?} has a certificate already; DELETE /v1/devices/{uid}/certificate to revoke it first"
        )),
        GatewayError::Unavailable(_) => ApiError::unavailable(e),
    }
}

/// Provisions the device: a certificate and private key, returned once, and (on AWS) its
/// IoT thing with the device policy attached.
#[utoipa::path(
    post, path = "/v1/devices/{uid}/certificate", tag = "devices",
    responses((status = 201, description = "The credentials, shown once", body = DeviceCredentials))
)]
async fn issue_certificate(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<(StatusCode, Json<DeviceCredentials>)> {
    let device = device_of(&state, &caller, &uid).await?;
    let credentials = state
        .gateway
        .register(&device)
        .await
        .map_err(|e| gateway_error(&uid, e))?;
    Ok((StatusCode::CREATED, Json(credentials)))
}

/// Revokes the device's certificate (and on AWS deletes its thing); provision it again to
/// give it new credentials.
#[utoipa::path(
    delete, path = "/v1/devices/{uid}/certificate", tag = "devices",
    responses((status = 204, description = "Revoked"))
)]
async fn revoke_certificate(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<StatusCode> {
    device_of(&state, &caller, &uid).await?;
    state.gateway.deregister(&uid).await.map_err(|e| match e {
        GatewayError::UnknownDevice(_) => {
            ApiError::not_found(format!("a certificate of device {uid:?}"))
        }
        e => gateway_error(&uid, e),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// The device shadow: `state.desired` (what the platform asks for) and `state.reported`
/// (what the device says), as AWS IoT Core keeps it.
#[utoipa::path(
    get, path = "/v1/devices/{uid}/shadow", tag = "devices",
    responses((status = 200, description = "The shadow document; `{\"state\": {}}` if nothing was set", body = Object))
)]
async fn read_shadow(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<Json<Value>> {
    device_of(&state, &caller, &uid).await?;
    let shadow = state
        .gateway
        .shadow(&uid)
        .await
        .map_err(|e| gateway_error(&uid, e))?;
    Ok(Json(shadow.unwrap_or_else(|| json!({ "state": {} }))))
}

/// Sets desired configuration: the keys given are merged into `state.desired` (`null`
/// removes one), and the device hears the change on `$aws/things/{uid}/shadow/update/delta`.
#[utoipa::path(
    put, path = "/v1/devices/{uid}/shadow/desired", tag = "devices",
    request_body(content = Object, description = "The desired keys, e.g. `{\"interval_s\": 30}`"),
    responses((status = 200, description = "The shadow after the change", body = Object))
)]
async fn set_desired(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let desired = body?.0;
    if !desired.is_object() {
        return Err(ApiError::bad_request(
            "the body must be a JSON object of desired keys, e.g. {\"interval_s\": 30}",
        ));
    }
    check_downlink_size("a shadow update", &desired)?;
    device_of(&state, &caller, &uid).await?;
    let shadow = state
        .gateway
        .set_desired(&uid, &desired)
        .await
        .map_err(|e| gateway_error(&uid, e))?;
    Ok(Json(shadow))
}

/// Largest command or shadow update, as AWS IoT Core's shadow document limit (8 KiB).
const MAX_DOWNLINK_BYTES: usize = 8 * 1024;

fn check_downlink_size(what: &str, body: &Value) -> ApiResult<()> {
    if body.to_string().len() > MAX_DOWNLINK_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} holds at most {MAX_DOWNLINK_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// What was sent to the device.
#[derive(Serialize, ToSchema)]
struct SentCommand {
    /// Also in the payload as `command_id`, so the device can answer about it.
    command_id: String,
    /// The MQTT topic it was published on.
    topic: String,
}

/// Sends a command to the device on `things/{uid}/down/command`, with a `command_id` added;
/// a device that is offline misses it (use the shadow for state that must arrive).
#[utoipa::path(
    post, path = "/v1/devices/{uid}/commands", tag = "devices",
    request_body(content = Object, description = "The command, e.g. `{\"name\": \"reboot\"}`"),
    responses((status = 202, description = "Published", body = SentCommand))
)]
async fn send_command(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<SentCommand>)> {
    let Value::Object(mut command) = body?.0 else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object, e.g. {\"name\": \"reboot\"}",
        ));
    };
    let command_id = iot_core::auth::secret::random_id();
    command.insert("command_id".into(), Value::String(command_id.clone()));
    let command = Value::Object(command);
    check_downlink_size("a command", &command)?;
    device_of(&state, &caller, &uid).await?;
    state
        .gateway
        .send_command(&uid, &command)
        .await
        .map_err(|e| gateway_error(&uid, e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SentCommand {
            command_id,
            topic: iot_core::topics::command_topic(&uid),
        }),
    ))
}

/// A new HTTP ingest token for the device, shown once; it replaces any earlier one.
#[utoipa::path(
    post, path = "/v1/devices/{uid}/token", tag = "devices",
    responses((status = 201, description = "The new token, shown once", body = DeviceToken))
)]
async fn issue_token(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<(StatusCode, Json<DeviceToken>)> {
    device_of(&state, &caller, &uid).await?;
    let secret = iot_core::auth::secret::random_token(32);
    let token = format!("{uid}.{secret}");
    state
        .catalog
        .put_device_token(
            &uid,
            &iot_core::auth::secret::digest(&secret),
            &iot_core::auth::secret::broker_password_hash(&token),
        )
        .await?;
    end_token_sessions(&state, &uid).await;
    Ok((
        StatusCode::CREATED,
        Json(DeviceToken {
            device_token: token,
            detail: "shown once: the device sends it as `Authorization: Device <device_token>` to POST /v1/ingest, or as its MQTT password with its uid as client id and user name",
        }),
    ))
}

#[derive(Serialize, ToSchema)]
struct DeviceToken {
    device_token: String,
    detail: &'static str,
}

#[utoipa::path(
    delete, path = "/v1/devices/{uid}/token", tag = "devices",
    responses((status = 204, description = "Revoked"))
)]
async fn revoke_token(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
) -> ApiResult<StatusCode> {
    device_of(&state, &caller, &uid).await?;
    state.catalog.delete_device_token(&uid).await?;
    end_token_sessions(&state, &uid).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Sessions opened with the device's earlier token end with it (the embedded broker).
async fn end_token_sessions(state: &ApiState, uid: &str) {
    let credential = SessionCredential::DeviceToken(uid.to_owned());
    if let Err(e) = state.gateway.end_sessions(&credential).await {
        // The token is gone already: the broker refuses it at the next sign-in.
        tracing::warn!(device = uid, error = %e, "live sessions of a withdrawn token not ended");
    }
}

// ---- telemetry

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RangeParams {
    /// Comma-separated signal names; all signals if absent.
    signals: Option<String>,
    /// One signal: the one to aggregate, or one more to read.
    signal: Option<String>,
    /// Epoch ms or RFC 3339; default: an hour before `to`.
    from: Option<String>,
    /// Epoch ms or RFC 3339; default: now.
    to: Option<String>,
    /// Most points (1000 if absent; at most 10000).
    limit: Option<usize>,
    /// `asc` (default) or `desc`.
    order: Option<String>,
    /// Bucket width for aggregates, in ms (default one minute).
    bucket_ms: Option<Millis>,
}

impl RangeParams {
    fn window(&self, now: Millis) -> ApiResult<Window> {
        let end = match &self.to {
            Some(t) => parse_time("to", t)?,
            None => now,
        };
        let start = match &self.from {
            Some(t) => parse_time("from", t)?,
            None => end - HOUR,
        };
        if start > end {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "/from",
                "must not be after `to`",
            ));
        }
        Ok(Window { start, end })
    }
}

#[utoipa::path(
    get, path = "/v1/devices/{uid}/telemetry", tag = "telemetry",
    params(RangeParams),
    responses((status = 200, description = "Points in the window", body = RangeView))
)]
async fn range(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
    query: Result<Query<RangeParams>, QueryRejection>,
) -> ApiResult<Json<RangeView>> {
    let params = query?.0;
    let device = device_of(&state, &caller, &uid).await?;
    let descending = match params.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "/order",
                format!("{other:?}: use asc or desc"),
            ));
        }
    };
    let mut signals = list(params.signals.as_deref());
    signals.extend(params.signal.clone());
    check_signals(&signals)?;
    let window = params.window(state.clock.now_ms())?;
    let points = readable_range(
        &state,
        &device,
        RangeQuery {
            device_uid: uid.clone(),
            signals,
            window,
            limit: Some(params.limit.unwrap_or(1_000).min(MAX_POINTS)),
            descending,
        },
    )
    .await?;
    let points = points
        .into_iter()
        .map(|p| PointView {
            time: p.time,
            signal: p.signal,
            value: p.value,
        })
        .collect();
    Ok(Json(RangeView {
        device_uid: uid,
        points,
    }))
}

#[derive(Serialize, ToSchema)]
struct RangeView {
    device_uid: String,
    points: Vec<PointView>,
}

#[derive(Serialize, ToSchema)]
struct PointView {
    /// Epoch ms.
    time: Millis,
    signal: String,
    value: SignalValue,
}

#[derive(Serialize, ToSchema)]
struct LatestView {
    device_uid: String,
    /// By signal name.
    signals: BTreeMap<String, TimedValue>,
}

#[derive(Serialize, ToSchema)]
struct TimedValue {
    /// Epoch ms.
    time: Millis,
    value: SignalValue,
}

#[derive(Serialize, ToSchema)]
struct AggregateView {
    device_uid: String,
    signal: String,
    bucket_ms: Millis,
    buckets: Vec<Bucket>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LatestParams {
    /// Comma-separated signal names; all signals if absent.
    signals: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/devices/{uid}/latest", tag = "telemetry",
    params(LatestParams),
    responses((status = 200, description = "The latest value of each signal", body = LatestView))
)]
async fn latest(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
    query: Result<Query<LatestParams>, QueryRejection>,
) -> ApiResult<Json<LatestView>> {
    let params = query?.0;
    let device = device_of(&state, &caller, &uid).await?;
    let since = readable_since(&state, &device).await?;
    let points = state
        .telemetry
        .latest(&uid, &{
            let signals = list(params.signals.as_deref());
            check_signals(&signals)?;
            signals
        })
        .await?;
    let signals = points
        .into_iter()
        .filter(|p| p.time >= since)
        .map(|p| {
            (
                p.signal,
                TimedValue {
                    time: p.time,
                    value: p.value,
                },
            )
        })
        .collect();
    Ok(Json(LatestView {
        device_uid: uid,
        signals,
    }))
}

#[utoipa::path(
    get, path = "/v1/devices/{uid}/aggregate", tag = "telemetry",
    params(RangeParams),
    responses((status = 200, description = "Per-bucket count, min, max, sum, average, first and last", body = AggregateView))
)]
async fn aggregate(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
    query: Result<Query<RangeParams>, QueryRejection>,
) -> ApiResult<Json<AggregateView>> {
    let params = query?.0;
    let device = device_of(&state, &caller, &uid).await?;
    let Some(signal) = params.signal.clone() else {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "/signal",
            "name the signal to aggregate",
        ));
    };
    let window = params.window(state.clock.now_ms())?;
    let bucket_ms = params.bucket_ms.unwrap_or(MINUTE);
    if bucket_ms <= 0 || (window.end - window.start) / bucket_ms > MAX_POINTS as Millis {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "/bucket_ms",
            format!("must be > 0 and give at most {MAX_POINTS} buckets over the window"),
        ));
    }
    let buckets = match clamp_window(window, readable_since(&state, &device).await?) {
        None => Vec::new(),
        Some(window) => {
            state
                .telemetry
                .aggregate(&AggregateQuery {
                    device_uid: uid.clone(),
                    signal: signal.clone(),
                    window,
                    bucket_ms,
                })
                .await?
        }
    };
    Ok(Json(AggregateView {
        device_uid: uid,
        signal,
        bucket_ms,
        buckets,
    }))
}
