//! Who a caller is and what they may do: passwords, tokens and sessions, the Casbin-style
//! policy, departments and data scopes, and the audit entry type.

pub mod delegation;
mod department;
mod download_link;
pub mod mfa;
pub mod oidc;
pub mod password;
pub mod policy;
mod principal;
mod second_factor;
pub mod secret;
mod service;
mod sessions;
mod sign_in;
mod sso;
mod throttle;
pub mod token;
mod user;

pub use department::DepartmentTree;
pub use download_link::{DOWNLOAD_AUDIENCE, DownloadGrant};
pub use policy::{Grouping, Permission, Policy, PolicyError};
pub use principal::{DataScope, Principal, data_scope};
pub use second_factor::MfaEnrollment;
pub use service::{AuthError, AuthService, AuthSettings, LoginOutcome, Tokens};
pub use token::{TokenError, TokenKeys};
pub use user::{
    AuditEntry, Credential, Session, TenantSettings, User, default_policy, is_secret_field, redact,
};
