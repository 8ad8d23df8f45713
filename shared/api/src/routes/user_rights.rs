//! Who may hand out what: nobody grants a right they do not hold, or acts on a user, or changes
//! a role, holding one they do not; and nobody takes away their own right to change the policy.

use axum::http::StatusCode;
use iot_core::auth::delegation::{first_uncovered, first_uncovered_by_user, holds};
use iot_core::auth::{Policy, Principal, User};

use super::users::policy_of;
use crate::ApiState;
use crate::error::{ApiError, ApiResult};

/// Refuses a policy that would take away the caller's own right to change it, if they have it.
pub(super) fn keeps_policy_right(policy: &Policy, caller: &Principal) -> ApiResult<()> {
    if !caller.can("/v1/policy", "PUT")
        || policy.user_may(&caller.user, &caller.tenant, "/v1/policy", "PUT")
    {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "this change would take away your own right to change the policy; \
             keep a role that allows PUT /v1/policy",
        ))
    }
}

/// Refuses giving roles that grant more than the caller holds.
pub(super) fn check_grants(caller: &Principal, policy: &Policy, roles: &[String]) -> ApiResult<()> {
    for (i, role) in roles.iter().enumerate() {
        if let Some(p) = first_uncovered(caller, policy, role) {
            return Err(ApiError::field(
                StatusCode::FORBIDDEN,
                &format!("/roles/{i}"),
                format!(
                    "role {role:?} grants {} {}, which you do not hold; only someone who holds it may give it",
                    p.act, p.obj
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses acting on a user (roles, password, second factor, deletion) who holds a right the
/// caller does not, or whose department is outside the caller's.
pub(super) fn check_may_act_on(caller: &Principal, policy: &Policy, user: &User) -> ApiResult<()> {
    if let Some(p) = first_uncovered_by_user(caller, policy, &user.id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "user {:?} holds {} {}, which you do not; ask someone who holds it",
                user.id, p.act, p.obj
            ),
        ));
    }
    check_department_in_scope(caller, user.department_id.as_deref())
}

/// A user may only be placed in, or acted on in, a department the caller's scope covers.
pub(super) fn check_department_in_scope(
    caller: &Principal,
    department: Option<&str>,
) -> ApiResult<()> {
    match department {
        Some(d) if !caller.scope.allows(d) => Err(ApiError::field(
            StatusCode::FORBIDDEN,
            "/department_id",
            format!("department {d:?} is outside the departments you manage"),
        )),
        _ => Ok(()),
    }
}

/// Refuses changing a role the caller does not wholly hold (changing it changes its members).
pub(super) async fn check_holds_role(
    state: &ApiState,
    caller: &Principal,
    role: &str,
) -> ApiResult<()> {
    let (policy, _) = policy_of(state, &caller.tenant).await?;
    match first_uncovered(caller, &policy, role) {
        None => Ok(()),
        Some(p) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "role {role:?} grants {} {}, which you do not hold; only someone who holds it may change it",
                p.act, p.obj
            ),
        )),
    }
}

/// A whole-policy import may add only rights the caller holds, give only roles the caller
/// wholly holds, and take roles only from users and roles the caller wholly holds.
pub(super) fn check_policy_change(
    caller: &Principal,
    current: &Policy,
    imported: &Policy,
) -> ApiResult<()> {
    let refuse = |what: String| ApiError::new(StatusCode::FORBIDDEN, what);
    for p in imported
        .permissions
        .iter()
        .filter(|p| !current.permissions.contains(p))
    {
        if !holds(caller, p) {
            return Err(refuse(format!(
                "p, {}, {}, {}, {}: you do not hold this right yourself, so you cannot grant it",
                p.sub, p.dom, p.obj, p.act
            )));
        }
    }
    for p in current
        .permissions
        .iter()
        .filter(|p| !imported.permissions.contains(p))
    {
        if first_uncovered(caller, current, &p.sub).is_some() {
            return Err(refuse(format!(
                "p, {}, {}, {}, {}: {:?} holds rights you do not, so you cannot change it",
                p.sub, p.dom, p.obj, p.act, p.sub
            )));
        }
    }
    for g in imported
        .groupings
        .iter()
        .filter(|g| !current.groupings.contains(g))
    {
        if let Some(p) = first_uncovered(caller, imported, &g.role) {
            return Err(refuse(format!(
                "g, {}, {}, {}: role {:?} grants {} {}, which you do not hold",
                g.user, g.role, g.dom, g.role, p.act, p.obj
            )));
        }
    }
    for g in current
        .groupings
        .iter()
        .filter(|g| !imported.groupings.contains(g))
    {
        if first_uncovered_by_user(caller, current, &g.user).is_some() {
            return Err(refuse(format!(
                "g, {}, {}, {}: {:?} holds rights you do not, so you cannot change their roles",
                g.user, g.role, g.dom, g.user
            )));
        }
    }
    Ok(())
}
