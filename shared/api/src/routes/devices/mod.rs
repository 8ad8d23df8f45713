//! Devices: their records (list, create, read, update, delete, presence) here; CSV import,
//! credentials, downlink and telemetry in the modules below.

mod downlink;
mod identity;
mod import;
mod telemetry;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use iot_core::auth::Principal;
use iot_core::model::Device;
use iot_core::ports::{DeviceCredentials, GatewayError, StoreError};
use iot_core::time::Millis;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

use super::fleet_limits::admit_new_device;
use super::products::product_of;
use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{Caller, PageParams, body_as, check_id, decode_cursor, page_limit, store_page};
use crate::openapi::Page;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(list_devices, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(presence))
        .merge(import::routes())
        .merge(identity::routes())
        .merge(downlink::routes())
        .merge(telemetry::routes())
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
