//! The domain model: who owns what, and the uniform record every payload becomes.

mod app_credential;
mod catalog;
mod presence;
mod record;
mod shadow;
mod tenant;

pub use app_credential::{APP_USERNAME_PREFIX, AppCredential, app_credential_id};
pub use catalog::{Department, Device, ParserScript, Product, SignalDef, SignalKind, ValidRange};
pub use presence::Presence;
pub use record::{Datum, Record, Value, raw_payload_text};
pub use shadow::{ShadowSection, merge_shadow, shadow_delta};
pub use tenant::{Quotas, Tenant, TenantRefused, TenantStatus, check_tenant_id, uid_prefix};
