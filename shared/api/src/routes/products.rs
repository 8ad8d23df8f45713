//! Products, their parser scripts (with dry-run) and their alarm rules.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use iot_core::alarm::{AlarmEvaluator, AlarmRule};
use iot_core::model::Record;
use iot_core::model::{ParserScript, Product};
use iot_core::parse::ParseWarning;
use iot_core::usecase::dry_run;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{PageParams, Tenant, body_as, check_id, page};
use crate::openapi::Page;
use utoipa::ToSchema;

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(set_script))
        .routes(routes!(try_payload))
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(read_rule, update_rule, remove_rule))
}

pub(crate) async fn product_of(state: &ApiState, tenant: &str, id: &str) -> ApiResult<Product> {
    state
        .catalog
        .product(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("product {id:?}")))
}

/// A product is saved only if its script compiles.
fn check_product(state: &ApiState, product: &Product) -> ApiResult<()> {
    check_id("id", &product.id)?;
    state.parser.prepare(product).map_err(|e| {
        ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/script/source",
            e.to_string(),
        )
    })?;
    Ok(())
}

#[utoipa::path(
    get, path = "/v1/products", tag = "products",
    params(PageParams),
    responses((status = 200, description = "The tenant's products", body = Page<Product>))
)]
async fn list(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<Product>>> {
    let products = state.catalog.products(&tenant).await?;
    page(products, &paging?.0, |p| p.id.clone())
}

#[utoipa::path(
    post, path = "/v1/products", tag = "products",
    request_body = Product,
    responses((status = 201, description = "Created", body = Product))
)]
async fn create(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    let mut product: Product = body_as(body?.0, &tenant, None)?;
    if let Some(script) = &mut product.script {
        script.version = 1;
    }
    check_product(&state, &product)?;
    if state.catalog.product(&tenant, &product.id).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "product {:?} exists already; PUT /v1/products/{} to change it",
            product.id, product.id
        )));
    }
    state.catalog.put_product(&product).await?;
    Ok((StatusCode::CREATED, Json(product)))
}

#[utoipa::path(
    get, path = "/v1/products/{id}", tag = "products",
    responses((status = 200, description = "The product", body = Product))
)]
async fn read(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Product>> {
    Ok(Json(product_of(&state, &tenant, &id).await?))
}

#[utoipa::path(
    put, path = "/v1/products/{id}", tag = "products",
    request_body = Product,
    responses((status = 200, description = "Saved; the script version is bumped if its source changed", body = Product))
)]
async fn update(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Product>> {
    let mut product: Product = body_as(body?.0, &tenant, Some(("id", &id)))?;
    let previous = product_of(&state, &tenant, &id).await?;
    let previous_version = previous.script.as_ref().map_or(0, |s| s.version);
    if let Some(script) = &mut product.script {
        let changed = previous
            .script
            .as_ref()
            .is_none_or(|p| p.source != script.source);
        script.version = previous_version + u32::from(changed);
    }
    check_product(&state, &product)?;
    state.catalog.put_product(&product).await?;
    Ok(Json(product))
}

#[utoipa::path(
    delete, path = "/v1/products/{id}", tag = "products",
    responses((status = 204, description = "Deleted, with its rules"))
)]
async fn remove(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    product_of(&state, &tenant, &id).await?;
    let devices = state.catalog.devices(&tenant, Some(&id)).await?;
    if !devices.is_empty() {
        return Err(ApiError::conflict(format!(
            "product {id:?} still has {} device(s); delete or move them first",
            devices.len()
        )));
    }
    for rule in state.catalog.rules(&tenant, &id).await? {
        state
            .catalog
            .delete_entity(&tenant, "RULE", &format!("{id}#{}", rule.id))
            .await?;
    }
    state.catalog.delete_entity(&tenant, "PRODUCT", &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
struct ScriptBody {
    source: String,
}

/// Replaces the parser script; refused with the line and column if it does not compile.
#[utoipa::path(
    put, path = "/v1/products/{id}/script", tag = "products",
    request_body = ScriptBody,
    responses((status = 200, description = "Saved as the next script version", body = Product))
)]
async fn set_script(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: Result<Json<ScriptBody>, JsonRejection>,
) -> ApiResult<Json<Product>> {
    let source = body?.0.source;
    let mut product = product_of(&state, &tenant, &id).await?;
    let version = product.script.as_ref().map_or(0, |s| s.version) + 1;
    product.script = Some(ParserScript { source, version });
    check_product(&state, &product)?;
    state.catalog.put_product(&product).await?;
    Ok(Json(product))
}

#[derive(Deserialize, ToSchema)]
struct DryRunBody {
    /// The payload as text; or `payload_base64`, or `payload_hex`, for binary frames.
    payload: Option<String>,
    payload_base64: Option<String>,
    payload_hex: Option<String>,
    /// Try an unsaved script instead of the product's.
    script: Option<String>,
    device_uid: Option<String>,
    topic: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct DryRunResult {
    ok: bool,
    /// The records the payload would be stored as.
    records: Vec<Record>,
    /// Values the parser dropped, and why.
    warnings: Vec<ParseWarning>,
}

/// Runs a payload through the product's parser (or a draft script) without storing anything.
#[utoipa::path(
    post, path = "/v1/products/{id}/dry-run", tag = "products",
    request_body = DryRunBody,
    responses((status = 200, description = "What the parser made of the payload; nothing is stored", body = DryRunResult))
)]
async fn try_payload(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: Result<Json<DryRunBody>, JsonRejection>,
) -> ApiResult<Json<DryRunResult>> {
    let body = body?.0;
    let payload = match (&body.payload, &body.payload_base64, &body.payload_hex) {
        (Some(text), None, None) => text.as_bytes().to_vec(),
        (None, Some(b64), None) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| {
                ApiError::field(StatusCode::BAD_REQUEST, "/payload_base64", e.to_string())
            })?,
        (None, None, Some(hex)) => decode_hex(hex).ok_or_else(|| {
            ApiError::field(
                StatusCode::BAD_REQUEST,
                "/payload_hex",
                "not an even number of hex digits",
            )
        })?,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of payload, payload_base64 or payload_hex",
            ));
        }
    };
    let mut product = product_of(&state, &tenant, &id).await?;
    if let Some(source) = body.script {
        product.script = Some(ParserScript { source, version: 0 });
    }
    let device = match &body.device_uid {
        Some(uid) => Some(
            state
                .catalog
                .device(uid)
                .await?
                .filter(|d| d.tenant_id == tenant)
                .ok_or_else(|| ApiError::not_found(format!("device {uid:?}")))?,
        ),
        None => None,
    };
    let topic = body.topic.unwrap_or_else(|| {
        let uid = device.as_ref().map_or("dry-run", |d| d.uid.as_str());
        iot_core::topics::uplink_topic(uid, "telemetry")
    });
    match dry_run(
        &state.parser,
        &product,
        device.as_ref(),
        &topic,
        &payload,
        state.clock.now_ms(),
    ) {
        Ok(run) => Ok(Json(DryRunResult {
            ok: true,
            records: run.records,
            warnings: run.warnings,
        })),
        Err(e) => Err(ApiError::unprocessable(format!("{}: {e}", e.kind()))),
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

// ---- alarm rules

fn check_rule(rule: &AlarmRule) -> ApiResult<()> {
    check_id("id", &rule.id)?;
    rule.validate()
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    AlarmEvaluator::default()
        .compile(std::slice::from_ref(rule))
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok(())
}

#[utoipa::path(
    get, path = "/v1/products/{id}/rules", tag = "rules", params(PageParams),
    responses((status = 200, description = "The product's alarm rules", body = Page<AlarmRule>))
)]
async fn list_rules(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<AlarmRule>>> {
    product_of(&state, &tenant, &id).await?;
    let rules = state.catalog.rules(&tenant, &id).await?;
    page(rules, &paging?.0, |r| r.id.clone())
}

#[utoipa::path(
    post, path = "/v1/products/{id}/rules", tag = "rules", request_body = AlarmRule,
    responses((status = 201, description = "Created", body = AlarmRule))
)]
async fn create_rule(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<AlarmRule>)> {
    product_of(&state, &tenant, &id).await?;
    let rule: AlarmRule = body_as(body?.0, &tenant, Some(("product_id", &id)))?;
    check_rule(&rule)?;
    if state.catalog.rule(&tenant, &id, &rule.id).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "rule {:?} exists already",
            rule.id
        )));
    }
    state.catalog.put_rule(&rule).await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

#[utoipa::path(
    get, path = "/v1/products/{id}/rules/{rule}", tag = "rules",
    responses((status = 200, description = "The rule", body = AlarmRule))
)]
async fn read_rule(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path((id, rule)): Path<(String, String)>,
) -> ApiResult<Json<AlarmRule>> {
    state
        .catalog
        .rule(&tenant, &id, &rule)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("rule {rule:?} of product {id:?}")))
}

#[utoipa::path(
    put, path = "/v1/products/{id}/rules/{rule}", tag = "rules", request_body = AlarmRule,
    responses((status = 200, description = "Saved", body = AlarmRule))
)]
async fn update_rule(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path((id, rule)): Path<(String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<AlarmRule>> {
    product_of(&state, &tenant, &id).await?;
    let mut body = body?.0;
    if let Some(object) = body.as_object_mut() {
        object.insert("product_id".into(), Value::String(id.clone()));
    }
    let rule: AlarmRule = body_as(body, &tenant, Some(("id", &rule)))?;
    check_rule(&rule)?;
    state.catalog.put_rule(&rule).await?;
    Ok(Json(rule))
}

#[utoipa::path(
    delete, path = "/v1/products/{id}/rules/{rule}", tag = "rules",
    responses((status = 204, description = "Deleted"))
)]
async fn remove_rule(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path((id, rule)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .catalog
        .delete_entity(&tenant, "RULE", &format!("{id}#{rule}"))
        .await
        .map_err(|e| match e {
            iot_core::ports::StoreError::ConditionFailed(_) => {
                ApiError::not_found(format!("rule {rule:?} of product {id:?}"))
            }
            e => e.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}
