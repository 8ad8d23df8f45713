//! Users, and the policy helpers every change of rights goes through; the tenant's settings,
//! roles and the policy as Casbin CSV in the modules below.

mod policy_csv;
mod roles;
mod settings;

use super::user_rights::{
    check_department_in_scope, check_grants, check_may_act_on, keeps_policy_right,
};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use iot_core::auth::{AuthError, Credential, Grouping, Policy, Principal, User, password};
use iot_core::ports::StoreError;
use iot_core::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{Caller, PageParams, check_id, page};
use crate::openapi::Page;
use utoipa::ToSchema;

pub fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(read_user, update_user, delete_user))
        .routes(routes!(reset_password))
        .routes(routes!(reset_mfa))
        .merge(settings::routes())
        .merge(roles::routes())
        .merge(policy_csv::routes())
}

// ---- the policy, read and changed as one versioned item

pub(super) async fn policy_of(state: &ApiState, tenant: &str) -> ApiResult<(Policy, Option<u64>)> {
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
            keeps_policy_right(policy, caller)
        })
        .await?
        .ok_or_else(|| ApiError::conflict("the policy kept changing; retry"))
}

/// Saves a user and their roles in one transaction, so both or neither are changed: a new user
/// with `credential`, else an update. Retries if the policy changed meanwhile.
async fn save_user_and_roles(
    state: &ApiState,
    caller: &Principal,
    user: &User,
    credential: Option<&Credential>,
    roles: &[String],
) -> ApiResult<Policy> {
    for _ in 0..3 {
        let (mut policy, version) = policy_of(state, &caller.tenant).await?;
        set_roles(&mut policy, &caller.tenant, &user.id, roles);
        policy.normalize();
        keeps_policy_right(&policy, caller)?;
        match state
            .catalog
            .save_user_with_policy(user, credential, &policy, version)
            .await
        {
            Ok(()) => return Ok(policy),
            Err(StoreError::ConditionFailed(_) | StoreError::TransactionCancelled(_)) => {
                let exists = state
                    .catalog
                    .user(&caller.tenant, &user.id)
                    .await?
                    .is_some();
                match (credential.is_some(), exists) {
                    (true, true) => {
                        return Err(ApiError::field(
                            StatusCode::CONFLICT,
                            "/id",
                            format!("user {:?} exists already", user.id),
                        ));
                    }
                    (false, false) => {
                        return Err(ApiError::not_found(format!("user {:?}", user.id)));
                    }
                    // The policy changed meanwhile: read it again.
                    _ => continue,
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict("the policy kept changing; retry"))
}

fn roles_in(policy: &Policy) -> BTreeSet<String> {
    policy.permissions.iter().map(|p| p.sub.clone()).collect()
}

/// A user as the API shows them: never a credential.
#[derive(Serialize, ToSchema)]
struct UserView {
    /// The login.
    id: String,
    name: String,
    email: Option<String>,
    department_id: Option<String>,
    disabled: bool,
    /// Epoch ms.
    created_at: Millis,
    roles: BTreeSet<String>,
    /// The identity provider's subject this user signs in as, if linked.
    sso_subject: Option<String>,
}

fn view(user: &User, policy: &Policy) -> UserView {
    UserView {
        id: user.id.clone(),
        name: user.name.clone(),
        email: user.email.clone(),
        department_id: user.department_id.clone(),
        disabled: user.disabled,
        created_at: user.created_at,
        roles: policy.roles_of(&user.id, &user.tenant_id),
        sso_subject: user.sso_subject.clone(),
    }
}

#[utoipa::path(
    get, path = "/v1/users", tag = "users",
    params(PageParams),
    responses((status = 200, description = "The tenant's users", body = Page<UserView>))
)]
async fn list_users(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    paging: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Page<UserView>>> {
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    let users = state.catalog.users(&caller.tenant).await?;
    let items: Vec<UserView> = users.iter().map(|u| view(u, &policy)).collect();
    page(items, &paging?.0, |u| u.id.clone())
}

async fn user_of(state: &ApiState, tenant: &str, id: &str) -> ApiResult<User> {
    state
        .catalog
        .user(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id:?}")))
}

#[utoipa::path(
    get, path = "/v1/users/{id}", tag = "users",
    responses((status = 200, description = "The user and their roles", body = UserView))
)]
async fn read_user(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    let user = user_of(&state, &caller.tenant, &id).await?;
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    Ok(Json(view(&user, &policy)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserBody {
    /// The login: required on create, and if given on update it must be the path's.
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
    /// Links the user to the `sub` the tenant's identity provider gives them: single sign-on
    /// reaches a user only through this link.
    sso_subject: Option<String>,
}

/// One identity-provider subject signs in as one user.
async fn check_sso_subject(
    state: &ApiState,
    tenant: &str,
    id: &str,
    body: &UserBody,
) -> ApiResult<()> {
    let Some(subject) = &body.sso_subject else {
        return Ok(());
    };
    if subject.trim().is_empty() || subject.len() > 255 {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/sso_subject",
            "the provider's subject (its `sub` claim), 1 to 255 characters",
        ));
    }
    let users = state.catalog.users(tenant).await?;
    if let Some(other) = users
        .iter()
        .find(|u| u.id != id && u.sso_subject.as_ref() == Some(subject))
    {
        return Err(ApiError::field(
            StatusCode::CONFLICT,
            "/sso_subject",
            format!("user {:?} is linked to this subject already", other.id),
        ));
    }
    Ok(())
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

#[utoipa::path(
    post, path = "/v1/users", tag = "users",
    request_body = UserBody,
    responses((status = 201, description = "Created", body = UserView))
)]
async fn create_user(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    body: Result<Json<UserBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
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
    check_sso_subject(&state, &caller.tenant, &id, &body).await?;
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    // Roles may have roles by the same `g` lines as users: a login named like a role would
    // hand its roles to every member of that role.
    if roles_in(&policy).contains(&id) {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/id",
            format!("{id:?} names a role; choose another login"),
        ));
    }
    check_grants(&caller, &policy, &body.roles)?;
    check_department_in_scope(&caller, body.department_id.as_deref())?;
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
        sso_subject: body.sso_subject.clone(),
    };
    let credential = Credential {
        password_hash: Some(password::hash_password(new_password).map_err(ApiError::internal)?),
        ..Credential::default()
    };
    let policy =
        save_user_and_roles(&state, &caller, &user, Some(&credential), &body.roles).await?;
    Ok((StatusCode::CREATED, Json(view(&user, &policy))))
}

#[utoipa::path(
    put, path = "/v1/users/{id}", tag = "users",
    request_body = UserBody,
    responses((status = 200, description = "Saved; a disabled user's sessions end", body = UserView))
)]
async fn update_user(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Result<Json<UserBody>, JsonRejection>,
) -> ApiResult<Json<UserView>> {
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
    if body.disabled && id == caller.user {
        return Err(ApiError::field(
            StatusCode::CONFLICT,
            "/disabled",
            "you cannot disable yourself; another administrator can",
        ));
    }
    check_user_body(&state, &caller.tenant, &body).await?;
    check_sso_subject(&state, &caller.tenant, &id, &body).await?;
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    check_may_act_on(&caller, &policy, &current)?;
    check_grants(&caller, &policy, &body.roles)?;
    check_department_in_scope(&caller, body.department_id.as_deref())?;
    let user = User {
        name: body.name.clone(),
        email: body.email.clone(),
        department_id: body.department_id.clone(),
        disabled: body.disabled,
        sso_subject: body.sso_subject.clone(),
        ..current
    };
    let policy = save_user_and_roles(&state, &caller, &user, None, &body.roles).await?;
    if user.disabled {
        state.auth.end_sessions(&caller.tenant, &id, None).await?;
    }
    Ok(Json(view(&user, &policy)))
}

#[utoipa::path(
    delete, path = "/v1/users/{id}", tag = "users",
    responses((status = 204, description = "Deleted; their sessions end"))
)]
async fn delete_user(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user = user_of(&state, &caller.tenant, &id).await?;
    if id == caller.user {
        return Err(ApiError::conflict("you cannot delete yourself"));
    }
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    check_may_act_on(&caller, &policy, &user)?;
    change_policy(&state, &caller, |p| {
        set_roles(p, &caller.tenant, &id, &[]);
        Ok(())
    })
    .await?;
    state.catalog.delete_user(&caller.tenant, &id).await?;
    state.auth.end_sessions(&caller.tenant, &id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordReset {
    password: String,
}

/// An administrator sets a user's password; the user's sessions end.
#[utoipa::path(
    put, path = "/v1/users/{id}/password", tag = "users",
    request_body = PasswordReset,
    responses((status = 204, description = "Set; the user's sessions end"))
)]
async fn reset_password(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Result<Json<PasswordReset>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let body = body?.0;
    let user = user_of(&state, &caller.tenant, &id).await?;
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    check_may_act_on(&caller, &policy, &user)?;
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
        Err(e) => Err(e.into()),
    }
}

/// An administrator turns a user's TOTP off (a lost phone); the user's sessions end.
#[utoipa::path(
    delete, path = "/v1/users/{id}/mfa", tag = "users",
    responses((status = 204, description = "TOTP off; the user's sessions end"))
)]
async fn reset_mfa(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user = user_of(&state, &caller.tenant, &id).await?;
    if id == caller.user {
        return Err(ApiError::conflict(
            "this resets another user's TOTP; turn your own off with POST /v1/auth/mfa/disable",
        ));
    }
    let (policy, _) = policy_of(&state, &caller.tenant).await?;
    check_may_act_on(&caller, &policy, &user)?;
    state.auth.disable_mfa(&caller.tenant, &id).await?;
    state.auth.end_sessions(&caller.tenant, &id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
