//! Who may do what through the API, tried as clients would over HTTP against the running
//! platform: tokens (missing, tampered, expired, revoked), the built-in roles against every
//! route, tenants kept apart, department data scopes, lockout, refresh rotation, the policy as
//! Casbin CSV, and the audit log.

mod devices;
mod policy_audit;
mod route_matrix;
mod second_factor;
mod sso;
mod tenancy;
mod tokens;

use iot_core::auth::TokenKeys;
use iot_core::auth::mfa::TotpEnrollment;
use iot_core::auth::token::{AUDIENCE, AccessClaims, ISSUER};
use iot_local::platform::Running;
use iot_tests::{
    ADMIN_PASSWORD, Api, Device, Error, TestResult, USER_PASSWORD, air_product, device_token,
    eventually, start_platform, tenant_admin, tenant_user,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PASSWORD: &str = USER_PASSWORD;
const WAIT: Duration = Duration::from_secs(15);

/// Creates a user of `acme` with roles (and a department) and logs them in.
async fn user(
    running: &Running,
    admin: &Api,
    id: &str,
    roles: &[&str],
    department: Option<&str>,
) -> Result<Api, Error> {
    tenant_user(running, admin, "acme", id, roles, department).await
}

/// The code an authenticator app with this secret shows now.
fn app_code(secret: &str) -> String {
    let app = TotpEnrollment {
        secret: secret.to_owned(),
        confirmed: true,
        last_step: 0,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    app.code_at(now)
}
