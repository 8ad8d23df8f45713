//! An application credential: how a tenant's own services (dashboards, rule engines, bridges)
//! read its devices' messages from the embedded broker. Unlike a device, an application may
//! subscribe with wildcards (`things/+/up/#`, `#`), but it only ever receives its own
//! tenant's devices' messages and may publish nothing.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// The MQTT user name of an application credential is this prefix and its id; its client ids
/// are that user name, optionally followed by `:` and a suffix of the application's choosing.
/// Device uids never contain `@` (nor `:`), so no application takes over a device's session;
/// and `@`, unlike `:`, may stand in a Mosquitto password file's user name.
pub const APP_USERNAME_PREFIX: &str = "app@";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCredential {
    /// Random, given by the platform.
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// The SHA-256 of the secret, which is shown once.
    pub digest: String,
    /// The secret as a broker password file keeps it (`auth::secret::broker_password_hash`).
    pub broker_hash: String,
    pub created_at: Millis,
    /// The user who made it.
    pub created_by: String,
}

impl AppCredential {
    /// The MQTT user name (`app@{id}`).
    pub fn username(&self) -> String {
        format!("{APP_USERNAME_PREFIX}{}", self.id)
    }
}

/// The credential id a CONNECT names, if its user name is an application's and its client id
/// is that user name or starts with it and `:`.
pub fn app_credential_id<'a>(username: &'a str, client_id: &str) -> Option<&'a str> {
    let id = username.strip_prefix(APP_USERNAME_PREFIX)?;
    if id.is_empty() || id.contains(':') {
        return None;
    }
    let rest = client_id.strip_prefix(username)?;
    (rest.is_empty() || rest.starts_with(':')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_application_connects_under_its_own_client_ids_only() {
        assert_eq!(app_credential_id("app@k1", "app@k1"), Some("k1"));
        assert_eq!(app_credential_id("app@k1", "app@k1:worker-2"), Some("k1"));
        for (username, client) in [
            ("app@k1", "app@k10"),
            ("app@k1", "air-1"),
            ("app@k1", "app@k2"),
            ("app@", "app@"),
            ("app@k1:x", "app@k1:x"),
            ("air-1", "air-1"),
        ] {
            assert_eq!(
                app_credential_id(username, client),
                None,
                "{username} {client}"
            );
        }
    }
}
