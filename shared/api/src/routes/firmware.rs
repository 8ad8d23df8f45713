//! Firmware packages: declared, uploaded (straight to S3 on AWS, through this API on one
//! machine), checked against their declared size and SHA-256, listed and deleted.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use futures_util::{StreamExt, TryStreamExt};
use iot_core::ota::{FirmwarePackage, PackageStatus, firmware_key};
use iot_core::ports::BlobError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{Caller, PageParams, Tenant, check_id, page};
use crate::openapi::Page;

/// How long an upload URL lasts.
const UPLOAD_SECONDS: u64 = 3_600;
const IMAGE_TYPE: &str = "application/octet-stream";

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, remove))
        .routes(routes!(check))
        // An image is as large as it is: no body limit of ours on its upload.
        .merge(
            ApiRouter::new()
                .routes(routes!(upload))
                .route_layer(DefaultBodyLimit::disable()),
        )
}

/// The download links of job documents on one machine, which carry their own grant.
pub fn public_routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new().routes(routes!(download))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PackageBody {
    id: String,
    product_id: String,
    version: String,
    #[serde(default)]
    notes: String,
    /// Bytes.
    size: u64,
    /// Hex SHA-256 of the image.
    sha256: String,
    /// A vendor signature handed to devices with the job, as given.
    signature: Option<String>,
}

/// Where to send the image's bytes.
#[derive(Serialize, ToSchema)]
struct UploadTarget {
    method: &'static str,
    /// A presigned S3 URL (AWS), or this API's upload route, to call with the access token
    /// (one machine).
    url: String,
    headers: BTreeMap<&'static str, &'static str>,
    expires_in_s: u64,
}

#[derive(Serialize, ToSchema)]
struct PackageCreated {
    package: FirmwarePackage,
    upload: UploadTarget,
}

async fn package_of(state: &ApiState, tenant: &str, id: &str) -> ApiResult<FirmwarePackage> {
    Ok(state.ota.package(tenant, id).await?)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only this product's packages.
    product: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/firmware", tag = "firmware", params(ListParams, PageParams),
    responses((status = 200, description = "The tenant's firmware packages", body = Page<FirmwarePackage>))
)]
async fn list(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    filter: Result<Query<ListParams>, QueryRejection>,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<FirmwarePackage>>> {
    let product = filter?.0.product;
    let items = state
        .catalog
        .packages(&tenant)
        .await?
        .into_iter()
        .filter(|p| {
            product
                .as_ref()
                .is_none_or(|wanted| &p.product_id == wanted)
        })
        .collect();
    page(items, &paging?.0, |p| p.id.clone())
}

/// Declares a package; answers where to upload its image. It becomes `ready` once the
/// upload is checked (`POST /v1/firmware/{id}/check`; on one machine the upload route checks
/// it itself).
#[utoipa::path(
    post, path = "/v1/firmware", tag = "firmware", request_body = PackageBody,
    responses((status = 201, description = "Declared, awaiting its upload", body = PackageCreated))
)]
async fn create(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<PackageBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<PackageCreated>)> {
    let body = body?.0;
    check_id("id", &body.id)?;
    let tenant = caller.tenant.clone();
    if state
        .catalog
        .product(&tenant, &body.product_id)
        .await?
        .is_none()
    {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/product_id",
            format!("product {:?} does not exist", body.product_id),
        ));
    }
    let mut package = FirmwarePackage {
        id: body.id,
        tenant_id: tenant.clone(),
        product_id: body.product_id,
        version: body.version,
        notes: body.notes,
        size: body.size,
        sha256: body.sha256,
        signature: body.signature,
        status: PackageStatus::AwaitingUpload,
        rejection: None,
        created_at: state.clock.now_ms(),
        created_by: caller.user.clone(),
    };
    package.check_declared().map_err(|e| {
        ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, e.pointer(), e.to_string())
    })?;
    state
        .catalog
        .create_package(&package)
        .await
        .map_err(|e| match e {
            iot_core::ports::StoreError::ConditionFailed(_) => {
                ApiError::conflict(format!("firmware package {:?} exists already", package.id))
            }
            e => e.into(),
        })?;
    let key = firmware_key(&tenant, &package.id);
    let url = state
        .ota
        .firmware_store()
        .upload_url(&key, IMAGE_TYPE, UPLOAD_SECONDS)
        .await
        .map_err(ApiError::unavailable)?
        .unwrap_or_else(|| format!("/v1/firmware/{}/content", package.id));
    let upload = UploadTarget {
        method: "PUT",
        url,
        headers: BTreeMap::from([("content-type", IMAGE_TYPE)]),
        expires_in_s: UPLOAD_SECONDS,
    };
    Ok((
        StatusCode::CREATED,
        Json(PackageCreated { package, upload }),
    ))
}

#[utoipa::path(
    get, path = "/v1/firmware/{id}", tag = "firmware",
    responses((status = 200, description = "The package", body = FirmwarePackage))
)]
async fn read(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<FirmwarePackage>> {
    Ok(Json(package_of(&state, &tenant, &id).await?))
}

/// Deletes the package and its image; refused while a rollout that is not over uses it.
#[utoipa::path(
    delete, path = "/v1/firmware/{id}", tag = "firmware",
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.ota.delete_package(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reads the uploaded image back: `ready` if it has the declared size and SHA-256, else
/// `rejected` (422, saying which differs).
#[utoipa::path(
    post, path = "/v1/firmware/{id}/check", tag = "firmware",
    responses((status = 200, description = "Ready", body = FirmwarePackage))
)]
async fn check(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<FirmwarePackage>> {
    Ok(Json(state.ota.check_package(&tenant, &id).await?))
}

/// The image's bytes, streamed to the firmware store and checked at once (the route of one
/// machine; on AWS upload to the presigned URL instead, which has no 6 MB limit).
#[utoipa::path(
    put, path = "/v1/firmware/{id}/content", tag = "firmware",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "Stored and ready", body = FirmwarePackage))
)]
async fn upload(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<FirmwarePackage>> {
    let package = package_of(&state, &tenant, &id).await?;
    if package.status == PackageStatus::Ready {
        return Err(ApiError::conflict(format!(
            "firmware package {id:?} is ready; its image cannot change (declare a new package)"
        )));
    }
    let chunks = body
        .into_data_stream()
        .map_ok(|bytes| bytes.to_vec())
        .map_err(|e| BlobError::Unavailable(format!("the upload broke off: {e}")))
        .boxed();
    state
        .ota
        .firmware_store()
        .put_stream(&firmware_key(&tenant, &id), chunks, IMAGE_TYPE)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(state.ota.check_package(&tenant, &id).await?))
}

/// A firmware image by the link of a job document (one machine; on AWS the link is a
/// presigned S3 URL). The link is the grant: a signed token for one package, valid an hour
/// from the delivery that minted it.
#[utoipa::path(
    get, path = "/v1/firmware-downloads/{token}", tag = "firmware", security(()),
    responses(
        (status = 200, description = "The image", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 403, description = "The link is not valid, or has expired: ask for the job again"),
    )
)]
async fn download(
    State(state): State<Arc<ApiState>>,
    Path(token): Path<String>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let grant = state.auth.verify_download(&token).map_err(|e| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the download link is not valid ({e}); ask for the job again for a new one"),
        )
    })?;
    let package = package_of(&state, &grant.tenant, &grant.package_id).await?;
    let chunks = state
        .ota
        .firmware_store()
        .get_stream(&firmware_key(&grant.tenant, &package.id))
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::not_found(format!("the image of {:?}", package.id)))?;
    tracing::info!(tenant = %grant.tenant, package = %package.id, device = %grant.device_uid, "firmware download");
    let body = Body::from_stream(chunks.map_ok(axum::body::Bytes::from));
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, IMAGE_TYPE.to_owned()),
            (axum::http::header::CONTENT_LENGTH, package.size.to_string()),
        ],
        body,
    )
        .into_response())
}
