//! Users, roles and the tenant's policy (Casbin policy CSV in and out).

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use iot_core::auth::{
    AuthError, Credential, Grouping, Permission, Policy, Principal, TenantSettings, User, password,
};
use iot_core::ports::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::input::{Caller, PageParams, check_id, page};

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/users", get(list_users).post(create_user))
        .route(
            "/v1/users/{id}",
            get(read_user).put(update_user).delete(delete_user),
        )
        .route("/v1/users/{id}/password", put(reset_password))
        .route("/v1/users/{id}/mfa", axum::routing::delete(reset_mfa))
        .route("/v1/settings", get(read_settings).put(put_settings))
        .route("/v1/roles", get(list_roles))
        .route(
            "/v1/roles/{name}",
            get(read_role).put(put_role).delete(delete_role),
        )
        .route("/v1/policy", get(export_policy).put(import_policy))
}

// ---- the policy, read and changed as one versioned item

async fn policy_of(state: &ApiState, tenant: &str) -> ApiResult<(Policy, Option<u64>)> {
    Ok(match state.catalog.policy(tenant).await? {
        Some(v) => (v.value, Some(v.version)),
        None => (Policy::default(), None),
    })
}

/// Applies `change` to the tenant's policy and saves it, retrying if another change won a race.
/// A change that would take away the caller's own right to edit the policy is refused.
async fn change_policy<F>(state: &ApiState, caller: &Principal, mut change: F) -> ApiResult<Policy>
where
    F: FnMut(&mut Policy) -> ApiResult<()>,
{
    state
        .catalog
        .update_policy(&caller.tenant, |policy| {
            change(policy)?;
            if policy.enforce(&caller.user, &caller.tenant, "/v1/policy", "PUT") {
                Ok(())
            } else {
                Err(ApiError::unprocessable(
                    "this change would take away your own right to change the policy; \
                     keep a role that allows PUT /v1/policy",
                ))
            }
        })
        .await?
        .ok_or_else(|| ApiError::conflict("the policy kept changing; retry"))
}

fn roles_in(policy: &Policy) -> BTreeSet<String> {
    policy.permissions.iter().map(|p| p.sub.clone()).collect()
}

// ---- users

fn view(user: &User, policy: &Policy) -> Value {
    json!({
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "department_id": user.department_id,
        "disabled": user.disabled,
        "created_at": user.created_at,
        "roles": policy.roles_of(&user.id, &user.tenant_id),
    })
}

async fn list_users(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    let users = state.catalog.users(&caller.tenant).await?;
    let items: Vec<Value> = users.iter().map(|u| view(u, &policy)).collect();
    page(items, &paging?.0, |u| {
        u["id"].as_str().unwrap_or_default().to_owned()
    })
}

async fn user_of(state: &ApiState, tenant: &str, id: &str) -> ApiResult<User> {
    state
        .catalog
        .user(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id:?}")))
}

async fn read_user(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = user_of(&state, &caller.tenant, &id).await?;
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    Ok(Json(view(&user, &policy)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    id: Option<String>,
    #[serde(default)]
    name: String,
    email: Option<String>,
    department_id: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    disabled: bool,
    /// Only on create; later through `PUT /v1/users/{id}/password`.
    password: Option<String>,
}

async fn check_user_body(state: &ApiState, tenant: &str, body: &UserBody) -> ApiResult<()> {
    if let Some(dept) = &body.department_id
        && state.catalog.department(tenant, dept).await?.is_none()
    {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/department_id",
            format!("department {dept:?} does not exist"),
        ));
    }
    if let Some(email) = &body.email
        && !email.contains('@')
    {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/email",
            format!("{email:?} is not an e-mail address"),
        ));
    }
    let (policy, _) = policy_of(state, tenant).await?;
    let known = roles_in(&policy);
    for (i, role) in body.roles.iter().enumerate() {
        if !known.contains(role) {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("/roles/{i}"),
                format!(
                    "role {role:?} does not exist; the roles are {}",
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn set_roles(policy: &mut Policy, tenant: &str, user: &str, roles: &[String]) {
    policy
        .groupings
        .retain(|g| !(g.user == user && g.dom == tenant));
    policy.groupings.extend(roles.iter().map(|role| Grouping {
        user: user.to_owned(),
        role: role.clone(),
        dom: tenant.to_owned(),
    }));
}

async fn create_user(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<UserBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body = body?.0;
    let Some(id) = body.id.clone() else {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/id",
            "name the user's login",
        ));
    };
    check_id("id", &id)?;
    check_user_body(&state, &caller.tenant, &body).await?;
    let Some(new_password) = &body.password else {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/password",
            "give the user a first password",
        ));
    };
    password::check_strength(new_password)
        .map_err(|why| ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "/password", why))?;
    let user = User {
        id: id.clone(),
        tenant_id: caller.tenant.clone(),
        name: body.name.clone(),
        email: body.email.clone(),
        department_id: body.department_id.clone(),
        disabled: body.disabled,
        created_at: state.clock.now_ms(),
    };
    let credential = Credential {
        password_hash: Some(password::hash_password(new_password).map_err(ApiError::internal)?),
        ..Credential::default()
    };
    state
        .catalog
        .create_user(&user, &credential)
        .await
        .map_err(|e| match e {
            StoreError::ConditionFailed(_) | StoreError::TransactionCancelled(_) => {
                ApiError::field(
                    StatusCode::CONFLICT,
                    "/id",
                    format!("user {id:?} exists already"),
                )
            }
            e => e.into(),
        })?;
    let policy = change_policy(&state, &caller, |p| {
        set_roles(p, &caller.tenant, &id, &body.roles);
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view(&user, &policy))))
}

async fn update_user(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Result<Json<UserBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let body = body?.0;
    let current = user_of(&state, &caller.tenant, &id).await?;
    if body.id.as_ref().is_some_and(|given| given != &id) {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "/id",
            "differs from the path; a login cannot be renamed",
        ));
    }
    if body.password.is_some() {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "/password",
            "set passwords through PUT /v1/users/{id}/password",
        ));
    }
    check_user_body(&state, &caller.tenant, &body).await?;
    let user = User {
        name: body.name.clone(),
        email: body.email.clone(),
        department_id: body.department_id.clone(),
        disabled: body.disabled,
        ..current
    };
    state.catalog.update_user(&user).await?;
    let policy = change_policy(&state, &caller, |p| {
        set_roles(p, &caller.tenant, &id, &body.roles);
        Ok(())
    })
    .await?;
    if user.disabled {
        state
            .auth
            .end_sessions(&caller.tenant, &id, None)
            .await
            .map_err(auth_api_error)?;
    }
    Ok(Json(view(&user, &policy)))
}

async fn delete_user(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    user_of(&state, &caller.tenant, &id).await?;
    if id == caller.user {
        return Err(ApiError::conflict("you cannot delete yourself"));
    }
    change_policy(&state, &caller, |p| {
        set_roles(p, &caller.tenant, &id, &[]);
        Ok(())
    })
    .await?;
    state.catalog.delete_user(&caller.tenant, &id).await?;
    state
        .auth
        .end_sessions(&caller.tenant, &id, None)
        .await
        .map_err(auth_api_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordReset {
    password: String,
}

/// An administrator sets a user's password; the user's sessions end.
async fn reset_password(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Result<Json<PasswordReset>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let body = body?.0;
    user_of(&state, &caller.tenant, &id).await?;
    let keep = (id == caller.user).then_some(caller.session.as_str());
    match state
        .auth
        .set_password(&caller.tenant, &id, &body.password, keep)
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(AuthError::WeakPassword(why)) => Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/password",
            why,
        )),
        Err(e) => Err(auth_api_error(e)),
    }
}

/// An administrator turns a user's TOTP off (a lost phone); the user's sessions end.
async fn reset_mfa(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    user_of(&state, &caller.tenant, &id).await?;
    state
        .auth
        .disable_mfa(&caller.tenant, &id)
        .await
        .map_err(auth_api_error)?;
    state
        .auth
        .end_sessions(&caller.tenant, &id, None)
        .await
        .map_err(auth_api_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn read_settings(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
) -> ApiResult<Json<TenantSettings>> {
    Ok(Json(state.catalog.settings(&caller.tenant).await?))
}

async fn put_settings(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<TenantSettings>, JsonRejection>,
) -> ApiResult<Json<TenantSettings>> {
    let settings = body?.0;
    if settings.require_mfa && !caller.second_factor {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/require_mfa",
            "log in with a second factor yourself first (POST /v1/auth/mfa/enroll), \
             or you would lock yourself out",
        ));
    }
    if let Some(provider) = &settings.oidc {
        provider
            .check()
            .map_err(|why| ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "/oidc", why))?;
        let (policy, _) = policy_of(&state, &caller.tenant).await?;
        let known = roles_in(&policy);
        if let Some(role) = provider.default_roles.iter().find(|r| !known.contains(*r)) {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/oidc/default_roles",
                format!("role {role:?} does not exist"),
            ));
        }
    }
    state
        .catalog
        .put_settings(&caller.tenant, &settings)
        .await?;
    Ok(Json(settings))
}

fn auth_api_error(e: AuthError) -> ApiError {
    match e {
        AuthError::Store(e) => e.into(),
        e => ApiError::internal(e),
    }
}

// ---- roles

fn role_view(policy: &Policy, tenant: &str, name: &str) -> Value {
    let permissions: Vec<Value> = policy
        .permissions
        .iter()
        .filter(|p| p.sub == name && p.dom == tenant)
        .map(|p| json!({ "object": p.obj, "action": p.act }))
        .collect();
    let members: Vec<&str> = policy
        .groupings
        .iter()
        .filter(|g| g.role == name && g.dom == tenant)
        .map(|g| g.user.as_str())
        .collect();
    json!({ "name": name, "permissions": permissions, "members": members })
}

async fn list_roles(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    let items: Vec<Value> = roles_in(&policy)
        .iter()
        .map(|r| role_view(&policy, &caller.tenant, r))
        .collect();
    page(items, &paging?.0, |r| {
        r["name"].as_str().unwrap_or_default().to_owned()
    })
}

async fn read_role(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    if !roles_in(&policy).contains(&name) {
        return Err(ApiError::not_found(format!("role {name:?}")));
    }
    Ok(Json(role_view(&policy, &caller.tenant, &name)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    permissions: Vec<RulePermission>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulePermission {
    /// An API path pattern (`/v1/devices/*`, `/v1/devices/:uid`) or a data scope
    /// (`department:*`, `department:{id}`).
    object: String,
    /// An HTTP method, `*`, or alternatives `(GET)|(POST)`.
    action: String,
}

/// Creates or replaces a role's permissions.
async fn put_role(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    body: Result<Json<RoleBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let body = body?.0;
    check_id("name", &name)?;
    if body.permissions.is_empty() {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/permissions",
            "a role needs at least one permission; DELETE the role to remove it",
        ));
    }
    for (i, p) in body.permissions.iter().enumerate() {
        if !(p.object.starts_with('/') || p.object.starts_with("department:")) {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("/permissions/{i}/object"),
                "must be an API path pattern such as /v1/devices/* or department:{id}",
            ));
        }
        if p.action.trim().is_empty() {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("/permissions/{i}/action"),
                "must be an HTTP method, * or (GET)|(POST)",
            ));
        }
    }
    let policy = change_policy(&state, &caller, |policy| {
        policy
            .permissions
            .retain(|p| !(p.sub == name && p.dom == caller.tenant));
        policy
            .permissions
            .extend(body.permissions.iter().map(|p| Permission {
                sub: name.clone(),
                dom: caller.tenant.clone(),
                obj: p.object.clone(),
                act: p.action.clone(),
            }));
        Ok(())
    })
    .await?;
    Ok(Json(role_view(&policy, &caller.tenant, &name)))
}

async fn delete_role(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    if !roles_in(&policy).contains(&name) {
        return Err(ApiError::not_found(format!("role {name:?}")));
    }
    change_policy(&state, &caller, |policy| {
        policy.permissions.retain(|p| p.sub != name);
        policy.groupings.retain(|g| g.role != name);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- the policy as Casbin CSV

async fn export_policy(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
) -> ApiResult<Response> {
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    let mut response = policy.to_csv().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    Ok(response)
}

/// Replaces the tenant's whole policy with a Casbin policy CSV. Every line must be in the
/// caller's tenant: a tenant cannot grant anything elsewhere.
async fn import_policy(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the body must be UTF-8 text (a Casbin policy CSV)"))?;
    let imported = Policy::from_csv_for(text, &caller.tenant)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let users: BTreeSet<String> = state
        .catalog
        .users(&caller.tenant)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    let roles = roles_in(&imported);
    if let Some(g) = imported
        .groupings
        .iter()
        .find(|g| !users.contains(&g.user) && !roles.contains(&g.user))
    {
        return Err(ApiError::unprocessable(format!(
            "g line for {:?}: no such user or role in the tenant",
            g.user
        )));
    }
    let policy = change_policy(&state, &caller, |p| {
        *p = imported.clone();
        Ok(())
    })
    .await?;
    Ok(Json(json!({
        "permissions": policy.permissions.len(),
        "groupings": policy.groupings.len(),
    })))
}
