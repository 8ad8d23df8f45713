//! Application credentials: read-only MQTT sign-ins for a tenant's own services, which may
//! subscribe with wildcards and receive the tenant's devices' messages only (see
//! `iot_core::model::AppCredential`). The secret is shown once.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use iot_core::auth::DataScope;
use iot_core::auth::secret::{broker_password_hash, digest, random_id, random_token};
use iot_core::model::AppCredential;
use iot_core::ports::SessionCredential;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{Caller, PageParams, decode_cursor, page_limit, store_page};
use crate::openapi::Page;

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(remove))
}

/// Most credentials a tenant may hold.
const MAX_PER_TENANT: usize = 100;

/// An application credential as the API shows it: never its secret.
#[derive(Serialize, ToSchema)]
struct AppCredentialView {
    id: String,
    name: String,
    /// The MQTT user name; the client id is it, or it and `:` and a suffix.
    username: String,
    created_at: i64,
    created_by: String,
}

impl From<AppCredential> for AppCredentialView {
    fn from(c: AppCredential) -> Self {
        Self {
            username: c.username(),
            id: c.id,
            name: c.name,
            created_at: c.created_at,
            created_by: c.created_by,
        }
    }
}

/// A credential reads every device of the tenant, so only a caller who may see them all
/// makes or removes one.
fn check_whole_tenant(scope: &DataScope) -> Result<(), ApiError> {
    match scope {
        DataScope::All => Ok(()),
        DataScope::Departments(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "an application credential reads every device of the tenant; only a user whose data scope is the whole tenant may make or remove one",
        )),
    }
}

#[utoipa::path(
    get, path = "/v1/app-credentials", tag = "devices",
    params(PageParams),
    responses((status = 200, description = "The tenant's application credentials, by id", body = Page<AppCredentialView>))
)]
async fn list(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<AppCredentialView>>> {
    let paging = paging?.0;
    let (items, next) = state
        .catalog
        .app_credentials_page(
            &caller.tenant,
            decode_cursor(paging.cursor.as_deref())?,
            page_limit(paging.limit)?,
        )
        .await?;
    Ok(store_page((
        items.into_iter().map(Into::into).collect(),
        next,
    )))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewAppCredential {
    /// What the credential is for (a dashboard, a bridge).
    name: String,
}

#[derive(Serialize, ToSchema)]
struct IssuedAppCredential {
    #[serde(flatten)]
    credential: AppCredentialView,
    /// The MQTT password, shown once.
    password: String,
    detail: &'static str,
}

#[utoipa::path(
    post, path = "/v1/app-credentials", tag = "devices",
    request_body = NewAppCredential,
    responses((status = 201, description = "Created; the password is shown once", body = IssuedAppCredential))
)]
async fn create(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<NewAppCredential>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<IssuedAppCredential>)> {
    let body = body?.0;
    check_whole_tenant(&caller.scope)?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/name",
            "must be 1 to 200 characters",
        ));
    }
    let (held, _) = state
        .catalog
        .app_credentials_page(&caller.tenant, None, MAX_PER_TENANT)
        .await?;
    if held.len() >= MAX_PER_TENANT {
        return Err(ApiError::conflict(format!(
            "the tenant holds {MAX_PER_TENANT} application credentials already; delete one first"
        )));
    }
    let password = random_token(32);
    let credential = AppCredential {
        id: random_id(),
        tenant_id: caller.tenant.clone(),
        name: name.to_owned(),
        digest: digest(&password),
        broker_hash: broker_password_hash(&password),
        created_at: state.clock.now_ms(),
        created_by: caller.user.clone(),
    };
    state.catalog.create_app_credential(&credential).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedAppCredential {
            credential: credential.into(),
            password,
            detail: "shown once: sign in to the broker with this user name and password; subscriptions may use wildcards and receive this tenant's devices' messages only, and publishing is refused",
        }),
    ))
}

#[utoipa::path(
    delete, path = "/v1/app-credentials/{id}", tag = "devices",
    responses((status = 204, description = "Deleted; new sign-ins with it are refused"))
)]
async fn remove(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    check_whole_tenant(&caller.scope)?;
    if state
        .catalog
        .delete_app_credential(&caller.tenant, &id)
        .await?
    {
        let credential = SessionCredential::Application(id.clone());
        if let Err(e) = state.gateway.end_sessions(&credential).await {
            tracing::warn!(credential = %id, error = %e, "live sessions of a deleted credential not ended");
        }
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "application credential {id:?}"
        )))
    }
}
