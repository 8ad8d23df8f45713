//! Who a request acts as: the user, their roles' policy, and which departments' data they see.

use super::department::DepartmentTree;
use super::policy::{Policy, action_match};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Which departments' data a user may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataScope {
    All,
    Departments(BTreeSet<String>),
}

impl DataScope {
    pub fn allows(&self, department: &str) -> bool {
        match self {
            DataScope::All => true,
            DataScope::Departments(set) => set.contains(department),
        }
    }
}

/// The authenticated caller of one request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub tenant: String,
    pub user: String,
    pub session: String,
    pub department: Option<String>,
    pub policy: Arc<Policy>,
    /// The departments whose data this request may touch: for reads at first, narrowed to
    /// the request's method by [`Principal::acting`].
    pub scope: DataScope,
    pub departments: Arc<DepartmentTree>,
    /// The tenant requires a second factor and this login had none: only the user's own
    /// `/v1/auth/*` routes (to enroll) answer.
    pub needs_mfa_enrollment: bool,
    /// This login used a second factor (TOTP, or an SSO provider's own).
    pub second_factor: bool,
}

impl Principal {
    /// Whether the tenant's policy lets this user do `action` (an HTTP method) on `object`
    /// (a request path).
    pub fn can(&self, object: &str, action: &str) -> bool {
        self.policy
            .user_may(&self.user, &self.tenant, object, action)
    }

    pub fn roles(&self) -> BTreeSet<String> {
        self.policy.roles_of(&self.user, &self.tenant)
    }

    /// The caller for one request of `action` (an HTTP method): `department:south, GET` lets
    /// them read south's data, not change it.
    pub fn acting(&self, action: &str) -> Principal {
        Principal {
            scope: data_scope(
                &self.policy,
                &self.tenant,
                &self.user,
                self.department.as_deref(),
                &self.departments,
                action,
            ),
            ..self.clone()
        }
    }
}

/// The data scope of `user` for `action`: their department subtree, plus the subtree of every
/// `department:{id}` object their roles grant for that action, or everything with
/// `department:*`.
pub fn data_scope(
    policy: &Policy,
    tenant: &str,
    user: &str,
    department: Option<&str>,
    tree: &DepartmentTree,
    action: &str,
) -> DataScope {
    let mut set = department.map(|d| tree.subtree(d)).unwrap_or_default();
    for p in policy
        .user_permissions(user, tenant)
        .filter(|p| action_match(action, &p.act))
    {
        match p.obj.strip_prefix("department:") {
            Some("*") => return DataScope::All,
            Some(id) => set.extend(tree.subtree(id)),
            None => {}
        }
    }
    DataScope::Departments(set)
}
