//! Notification templates, channels and routes, and in-system messages.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use iot_core::notify::{
    Channel, ChannelKind, InboxMessage, NotificationRoute, NotificationTemplate, validate_template,
};
use iot_core::ports::StoreError;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{
    PageParams, Tenant, body_as, check_id, decode_cursor, page, page_limit, store_page,
};
use crate::openapi::Page;
use utoipa::IntoParams;

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(read_template, update_template, remove_template))
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(read_channel, update_channel, remove_channel))
        .routes(routes!(list_routes, create_route))
        .routes(routes!(read_route, update_route, remove_route))
        .routes(routes!(messages))
        .routes(routes!(mark_read))
}

async fn delete(
    state: &ApiState,
    tenant: &str,
    kind: &str,
    label: &str,
    id: &str,
) -> ApiResult<StatusCode> {
    state
        .catalog
        .delete_entity(tenant, kind, id)
        .await
        .map_err(|e| match e {
            StoreError::ConditionFailed(_) => ApiError::not_found(format!("{label} {id:?}")),
            e => e.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- templates

async fn template_of(state: &ApiState, tenant: &str, id: &str) -> ApiResult<NotificationTemplate> {
    state
        .catalog
        .template(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("template {id:?}")))
}

fn check_template(template: &NotificationTemplate) -> ApiResult<()> {
    check_id("id", &template.id)?;
    validate_template(template, None).map_err(|e| ApiError::unprocessable(e.to_string()))
}

#[utoipa::path(
    get, path = "/v1/templates", tag = "notifications", params(PageParams),
    responses((status = 200, description = "The tenant's templates", body = Page<NotificationTemplate>))
)]
async fn list_templates(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<NotificationTemplate>>> {
    let items = state.catalog.templates(&tenant).await?;
    page(items, &paging?.0, |d| d.id.clone())
}

#[utoipa::path(
    post, path = "/v1/templates", tag = "notifications", request_body = NotificationTemplate,
    responses((status = 201, description = "Created", body = NotificationTemplate))
)]
async fn create_template(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<NotificationTemplate>)> {
    let template: NotificationTemplate = body_as(body?.0, &tenant, None)?;
    check_template(&template)?;
    if state
        .catalog
        .template(&tenant, &template.id)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(format!(
            "template {:?} exists already",
            template.id
        )));
    }
    state.catalog.put_template(&template).await?;
    Ok((StatusCode::CREATED, Json(template)))
}

#[utoipa::path(
    get, path = "/v1/templates/{id}", tag = "notifications",
    responses((status = 200, description = "The template", body = NotificationTemplate))
)]
async fn read_template(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<NotificationTemplate>> {
    Ok(Json(template_of(&state, &tenant, &id).await?))
}

#[utoipa::path(
    put, path = "/v1/templates/{id}", tag = "notifications", request_body = NotificationTemplate,
    responses((status = 200, description = "Saved", body = NotificationTemplate))
)]
async fn update_template(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<NotificationTemplate>> {
    template_of(&state, &tenant, &id).await?;
    let template: NotificationTemplate = body_as(body?.0, &tenant, Some(("id", &id)))?;
    check_template(&template)?;
    // Routes that send this template to a generic webhook need it to stay valid JSON.
    for route in state
        .catalog
        .routes(&tenant)
        .await?
        .iter()
        .filter(|r| r.template_id == id)
    {
        if let Some(channel) = state.catalog.channel(&tenant, &route.channel_id).await? {
            validate_template(&template, Some(&channel.kind)).map_err(|e| {
                ApiError::unprocessable(format!(
                    "route {:?} sends this template to channel {:?}: {e}",
                    route.id, channel.id
                ))
            })?;
        }
    }
    state.catalog.put_template(&template).await?;
    Ok(Json(template))
}

#[utoipa::path(
    delete, path = "/v1/templates/{id}", tag = "notifications",
    responses((status = 204, description = "Deleted"))
)]
async fn remove_template(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete(&state, &tenant, "TEMPLATE", "template", &id).await
}

// ---- channels

async fn channel_of(state: &ApiState, tenant: &str, id: &str) -> ApiResult<Channel> {
    state
        .catalog
        .channel(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("channel {id:?}")))
}

fn check_channel(state: &ApiState, channel: &Channel) -> ApiResult<()> {
    check_id("id", &channel.id)?;
    state
        .channel_targets
        .check(&channel.tenant_id, &channel.kind)
        .map_err(|e| {
            ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, e.pointer(), e.to_string())
        })?;
    // Names are checked again at every delivery, as they resolve.
    if let ChannelKind::Webhook { url, .. } = &channel.kind
        && let Err(e) = state.outbound.check_url(url)
    {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/kind/url",
            format!("must be an http(s) URL of a public address: {e}"),
        ));
    }
    Ok(())
}

#[utoipa::path(
    get, path = "/v1/channels", tag = "notifications", params(PageParams),
    responses((status = 200, description = "The tenant's channels", body = Page<Channel>))
)]
async fn list_channels(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<Channel>>> {
    let items = state.catalog.channels(&tenant).await?;
    page(items, &paging?.0, |d| d.id.clone())
}

#[utoipa::path(
    post, path = "/v1/channels", tag = "notifications", request_body = Channel,
    responses((status = 201, description = "Created", body = Channel))
)]
async fn create_channel(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Channel>)> {
    let channel: Channel = body_as(body?.0, &tenant, None)?;
    check_channel(&state, &channel)?;
    if state.catalog.channel(&tenant, &channel.id).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "channel {:?} exists already",
            channel.id
        )));
    }
    state.catalog.put_channel(&channel).await?;
    Ok((StatusCode::CREATED, Json(channel)))
}

#[utoipa::path(
    get, path = "/v1/channels/{id}", tag = "notifications",
    responses((status = 200, description = "The channel", body = Channel))
)]
async fn read_channel(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Channel>> {
    Ok(Json(channel_of(&state, &tenant, &id).await?))
}

#[utoipa::path(
    put, path = "/v1/channels/{id}", tag = "notifications", request_body = Channel,
    responses((status = 200, description = "Saved", body = Channel))
)]
async fn update_channel(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Channel>> {
    channel_of(&state, &tenant, &id).await?;
    let channel: Channel = body_as(body?.0, &tenant, Some(("id", &id)))?;
    check_channel(&state, &channel)?;
    state.catalog.put_channel(&channel).await?;
    Ok(Json(channel))
}

#[utoipa::path(
    delete, path = "/v1/channels/{id}", tag = "notifications",
    responses((status = 204, description = "Deleted"))
)]
async fn remove_channel(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete(&state, &tenant, "CHANNEL", "channel", &id).await
}

// ---- routes

async fn route_of(state: &ApiState, tenant: &str, id: &str) -> ApiResult<NotificationRoute> {
    state
        .catalog
        .routes(tenant)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::not_found(format!("notification route {id:?}")))
}

/// A route must name an existing template and channel, and the template must suit the channel.
async fn check_route(state: &ApiState, route: &NotificationRoute) -> ApiResult<()> {
    check_id("id", &route.id)?;
    let tenant = &route.tenant_id;
    let template = state
        .catalog
        .template(tenant, &route.template_id)
        .await?
        .ok_or_else(|| {
            ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/template_id",
                format!("template {:?} does not exist", route.template_id),
            )
        })?;
    let channel = state
        .catalog
        .channel(tenant, &route.channel_id)
        .await?
        .ok_or_else(|| {
            ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/channel_id",
                format!("channel {:?} does not exist", route.channel_id),
            )
        })?;
    validate_template(&template, Some(&channel.kind))
        .map_err(|e| ApiError::unprocessable(e.to_string()))
}

#[utoipa::path(
    get, path = "/v1/notification-routes", tag = "notifications", params(PageParams),
    responses((status = 200, description = "The tenant's notification routes", body = Page<NotificationRoute>))
)]
async fn list_routes(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<NotificationRoute>>> {
    let items = state.catalog.routes(&tenant).await?;
    page(items, &paging?.0, |d| d.id.clone())
}

#[utoipa::path(
    post, path = "/v1/notification-routes", tag = "notifications", request_body = NotificationRoute,
    responses((status = 201, description = "Created", body = NotificationRoute))
)]
async fn create_route(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<NotificationRoute>)> {
    let route: NotificationRoute = body_as(body?.0, &tenant, None)?;
    check_route(&state, &route).await?;
    if route_of(&state, &tenant, &route.id).await.is_ok() {
        return Err(ApiError::conflict(format!(
            "notification route {:?} exists already",
            route.id
        )));
    }
    state.catalog.put_route(&route).await?;
    Ok((StatusCode::CREATED, Json(route)))
}

#[utoipa::path(
    get, path = "/v1/notification-routes/{id}", tag = "notifications",
    responses((status = 200, description = "The notification route", body = NotificationRoute))
)]
async fn read_route(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<NotificationRoute>> {
    Ok(Json(route_of(&state, &tenant, &id).await?))
}

#[utoipa::path(
    put, path = "/v1/notification-routes/{id}", tag = "notifications", request_body = NotificationRoute,
    responses((status = 200, description = "Saved", body = NotificationRoute))
)]
async fn update_route(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<NotificationRoute>> {
    route_of(&state, &tenant, &id).await?;
    let route: NotificationRoute = body_as(body?.0, &tenant, Some(("id", &id)))?;
    check_route(&state, &route).await?;
    state.catalog.put_route(&route).await?;
    Ok(Json(route))
}

#[utoipa::path(
    delete, path = "/v1/notification-routes/{id}", tag = "notifications",
    responses((status = 204, description = "Deleted"))
)]
async fn remove_route(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete(&state, &tenant, "ROUTE", "notification route", &id).await
}

// ---- in-system messages

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MessageParams {
    /// Only messages not read yet.
    unread: Option<bool>,
}

#[utoipa::path(
    get, path = "/v1/users/{user}/messages", tag = "messages", params(MessageParams, PageParams),
    responses((status = 200, description = "The user's in-system messages, newest first", body = Page<InboxMessage>))
)]
async fn messages(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path(user): Path<String>,
    query: Result<Query<MessageParams>, QueryRejection>,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<InboxMessage>>> {
    let (unread_only, paging) = (query?.0.unread.unwrap_or(false), paging?.0);
    let listed = state
        .catalog
        .messages_page(
            &tenant,
            &user,
            unread_only,
            decode_cursor(paging.cursor.as_deref())?,
            page_limit(paging.limit)?,
        )
        .await?;
    Ok(store_page(listed))
}

#[utoipa::path(
    post, path = "/v1/users/{user}/messages/{id}/read", tag = "messages",
    responses((status = 200, description = "Marked read", body = InboxMessage))
)]
async fn mark_read(
    State(state): State<Arc<ApiState>>,
    Tenant(tenant): Tenant,
    Path((user, id)): Path<(String, String)>,
) -> ApiResult<Json<InboxMessage>> {
    let mut message = state
        .catalog
        .message(&tenant, &user, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message {id:?}")))?;
    if message.read_at.is_none() {
        message.read_at = Some(state.clock.now_ms());
        state.catalog.put_message(&message).await?;
    }
    Ok(Json(message))
}
