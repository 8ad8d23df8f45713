//! Users, their credentials and sessions, audit entries, and the roles every tenant starts with.

use serde::{Deserialize, Serialize};

use super::mfa::TotpEnrollment;
use super::policy::{Grouping, Permission, Policy};
use crate::time::Millis;

/// A person who uses the API. What they may do comes from the tenant's policy (`g` lines).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// The login name, unique in the tenant.
    pub id: String,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// Data permissions follow this department's subtree.
    #[serde(default)]
    pub department_id: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub created_at: Millis,
    /// The `sub` of the tenant's identity provider this user signs in as: single sign-on
    /// reaches a user only through this explicit link, never by a matching name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso_subject: Option<String>,
}

/// The secret side of a user, stored apart so no listing ever carries it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    /// argon2id PHC string; `None` for users who only sign in through SSO.
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub failed_logins: u32,
    #[serde(default)]
    pub locked_until: Option<Millis>,
    /// TOTP, once enrolled.
    #[serde(default)]
    pub totp: Option<TotpEnrollment>,
    /// SHA-256 of the unused recovery codes.
    #[serde(default)]
    pub recovery_digests: Vec<String>,
}

impl Credential {
    pub fn has_mfa(&self) -> bool {
        self.totp.as_ref().is_some_and(|t| t.confirmed)
    }
}

/// Tenant-wide settings an administrator changes through the API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Every user must enroll TOTP; until they do, only their own `/v1/auth/*` routes answer.
    #[serde(default)]
    pub require_mfa: bool,
    /// Sign-in through the tenant's OpenID Connect provider, if set.
    #[serde(default)]
    pub oidc: Option<super::oidc::OidcProvider>,
}

/// A login: what refresh tokens rotate and logout ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub created_at: Millis,
    /// When the refresh token stops working; the stored item expires then too.
    pub expires_at: Millis,
    /// SHA-256 of the current refresh secret.
    pub refresh_digest: String,
    /// SHA-256 of the secret it replaced: presenting that one again means the token was
    /// copied, and the session is ended (refresh-token reuse detection).
    #[serde(default)]
    pub previous_digest: Option<String>,
    #[serde(default)]
    pub client: Option<String>,
    /// How the user proved who they are (`pwd`, `otp`, `sso`), carried into every access token.
    #[serde(default)]
    pub amr: Vec<String>,
}

/// One change made through the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: String,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub at: Millis,
    /// The user, or `-` when the request was not authenticated (a login attempt).
    pub actor: String,
    /// Where the request came from: the client address as the server saw it.
    pub source: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The resource before the change (`null` when it did not exist), secrets removed.
    #[serde(default)]
    pub before: serde_json::Value,
    /// The resource after the change (`null` when deleted or refused), secrets removed.
    #[serde(default)]
    pub after: serde_json::Value,
}

/// The built-in roles, in the tenant's domain.
///
/// - `admin`: every route and every department's data.
/// - `operator`: runs the fleet: devices, products, rules, alarms, statistics, notifications,
///   firmware and rollouts;
///   reads departments; data of their own department subtree.
/// - `viewer`: reads devices, telemetry, products, alarms, statistics, firmware, rollouts and
///   departments of their
///   own department subtree.
pub fn default_policy(tenant: &str) -> Policy {
    let p = |sub: &str, obj: &str, act: &str| Permission {
        sub: sub.into(),
        dom: tenant.into(),
        obj: obj.into(),
        act: act.into(),
    };
    let mut permissions = vec![p("admin", "/v1/*", "*"), p("admin", "department:*", "*")];
    for obj in [
        "/v1/devices*",
        "/v1/products*",
        "/v1/alarms*",
        "/v1/stat-jobs*",
        "/v1/templates*",
        "/v1/channels*",
        "/v1/notification-routes*",
        "/v1/firmware*",
        "/v1/rollouts*",
    ] {
        permissions.push(p("operator", obj, "*"));
    }
    permissions.push(p("operator", "/v1/departments*", "GET"));
    permissions.push(p("operator", "/v1/exports/*", "GET"));
    // Exporting telemetry is reading it.
    permissions.push(p("viewer", "/v1/devices/*/export", "POST"));
    permissions.push(p("viewer", "/v1/exports/*", "GET"));
    for obj in [
        "/v1/devices*",
        "/v1/products*",
        "/v1/alarms*",
        "/v1/stat-jobs*",
        "/v1/departments*",
        "/v1/firmware*",
        "/v1/rollouts*",
    ] {
        permissions.push(p("viewer", obj, "GET"));
    }
    let mut policy = Policy {
        permissions,
        groupings: Vec::<Grouping>::new(),
    };
    policy.normalize();
    policy
}

/// Keys whose values never leave the server in audit entries or logs.
pub fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "private_key",
        "signing_key",
        "recovery",
        "otpauth",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// A copy of `value` with every secret field replaced by `"***"`.
pub fn redact(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_field(k) {
                        Value::String("***".into())
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn built_in_roles_grant_what_their_docs_say() {
        let mut policy = default_policy("t");
        for (user, role) in [("ann", "admin"), ("otto", "operator"), ("vic", "viewer")] {
            policy.groupings.push(Grouping {
                user: user.into(),
                role: role.into(),
                dom: "t".into(),
            });
        }
        let e = |u: &str, obj: &str, act: &str| policy.enforce(u, "t", obj, act);
        assert!(e("ann", "/v1/users", "POST"));
        assert!(e("ann", "department:*", "GET"));
        assert!(e("otto", "/v1/devices/d1", "PUT"));
        assert!(e("otto", "/v1/alarms/a1/acknowledge", "POST"));
        assert!(!e("otto", "/v1/users", "POST"));
        assert!(!e("otto", "/v1/audit", "GET"));
        assert!(!e("otto", "/v1/departments", "POST"));
        assert!(e("vic", "/v1/devices/d1/telemetry", "GET"));
        assert!(!e("vic", "/v1/devices/d1", "DELETE"));
        assert!(!e("vic", "/v1/templates", "GET"));
        assert!(!e("vic", "department:*", "GET"));
        // Nothing in another tenant.
        assert!(!policy.enforce("ann", "u", "/v1/devices", "GET"));
    }

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let v = json!({"id": "u1", "password": "p", "nested": [{"refresh_token": "r", "ok": 1}]});
        assert_eq!(
            redact(&v),
            json!({"id": "u1", "password": "***", "nested": [{"refresh_token": "***", "ok": 1}]})
        );
    }
}
