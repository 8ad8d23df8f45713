//! Configuration: built-in defaults, then a TOML file, then `IOT_LOCAL_*` environment
//! variables, then command-line flags. `iot-local print-config` prints the commented defaults.

use iot_core::outbound::{OutboundError, OutboundPolicy};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The default configuration file, with what each key does.
pub const DEFAULT_CONFIG: &str = r#"# iot-local configuration.
# Precedence: these defaults < this file (--config) < IOT_LOCAL_* variables < flags.

# Where the SQLite database, dead letters and exports live.
data_dir = ".iot-local"          # IOT_LOCAL_DATA_DIR, --data-dir
# The tenant the platform starts with (and of logins that name none).
tenant = "demo"                  # IOT_LOCAL_TENANT

[mqtt]
# The address the embedded broker listens on; beyond loopback, devices elsewhere should use
# the TLS listener (the plain one warns at start).
bind = "127.0.0.1"               # IOT_LOCAL_MQTT_BIND
# Its plain listener's port (0 picks a free port).
port = 1883                      # IOT_LOCAL_MQTT_PORT, --mqtt-port
# Devices with a certificate of the device CA (POST /v1/devices/{uid}/certificate) connect
# over TLS here, signed in by the certificate alone (0 picks a free port).
tls_port = 8883                  # IOT_LOCAL_MQTT_TLS_PORT
# Use an external broker instead, e.g. "mqtt://127.0.0.1:1883" for Mosquitto.
url = ""                         # IOT_LOCAL_MQTT_URL, --mqtt-url
# Client id of the ingest subscription on an external broker (a persistent session).
client_id = "iot-local-ingest"   # IOT_LOCAL_MQTT_CLIENT_ID
# Largest accepted payload, in bytes.
max_payload = 262144             # IOT_LOCAL_MQTT_MAX_PAYLOAD

[http]
# The API and /metrics listen on 127.0.0.1 at this port (0 picks a free port).
port = 8080                      # IOT_LOCAL_HTTP_PORT, --http-port
# How devices reach this API, for the firmware download links of OTA jobs; empty: this
# machine's loopback address and the port above.
public_url = ""                  # IOT_LOCAL_HTTP_PUBLIC_URL

[pipeline]
# How long an edited product script or alarm rule may take to apply, in ms.
cache_ttl_ms = 2000              # IOT_LOCAL_PIPELINE_CACHE_TTL_MS
# Timeout of a webhook call, in ms.
webhook_timeout_ms = 10000       # IOT_LOCAL_PIPELINE_WEBHOOK_TIMEOUT_MS
# Webhooks and identity providers must be on public addresses; these comma-separated ranges
# are allowed besides, for receivers on your own network (e.g. "127.0.0.1, 192.168.1.0/24").
outbound_allow = ""              # IOT_LOCAL_PIPELINE_OUTBOUND_ALLOW
# How often telemetry past each tenant's retention quota is deleted, in seconds.
retention_sweep_s = 3600         # IOT_LOCAL_PIPELINE_RETENTION_SWEEP_S
# How often firmware rollouts advance (release devices at their rate, time out, abort), in ms.
ota_tick_ms = 1000               # IOT_LOCAL_PIPELINE_OTA_TICK_MS

[auth]
# The tenant's first administrator, created on the first start.
admin_user = "admin"             # IOT_LOCAL_AUTH_ADMIN_USER
# Their first password. Empty: a random one is generated, printed once and kept in
# <data_dir>/admin-password (readable by you only). Change it after logging in.
admin_password = ""              # IOT_LOCAL_AUTH_ADMIN_PASSWORD
# Lifetime of access tokens and of refresh tokens (sessions), in seconds.
access_ttl_s = 900               # IOT_LOCAL_AUTH_ACCESS_TTL_S
refresh_ttl_s = 2592000          # IOT_LOCAL_AUTH_REFRESH_TTL_S
# How long audit entries are kept, in days.
audit_retention_days = 365       # IOT_LOCAL_AUTH_AUDIT_RETENTION_DAYS

[log]
# A tracing filter: error, warn, info, debug, or per module ("info,iot_core=debug").
level = "info"                   # IOT_LOCAL_LOG_LEVEL (RUST_LOG wins if set)
"#;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub tenant: String,
    pub mqtt: MqttConfig,
    pub http: HttpConfig,
    pub pipeline: PipelineConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    pub bind: String,
    pub port: u16,
    pub tls_port: u16,
    pub url: String,
    pub client_id: String,
    pub max_payload: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub port: u16,
    pub public_url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub cache_ttl_ms: i64,
    pub webhook_timeout_ms: u64,
    pub outbound_allow: String,
    pub retention_sweep_s: u64,
    pub ota_tick_ms: u64,
}

impl PipelineConfig {
    /// Where webhooks and identity providers may be.
    pub fn outbound_policy(&self) -> Result<OutboundPolicy, OutboundError> {
        OutboundPolicy::from_list(&self.outbound_allow)
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub admin_user: String,
    pub admin_password: String,
    pub access_ttl_s: i64,
    pub refresh_ttl_s: i64,
    pub audit_retention_days: i64,
}

/// Without the password, so a logged config never shows it.
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("admin_user", &self.admin_user)
            .field("access_ttl_s", &self.access_ttl_s)
            .field("refresh_ttl_s", &self.refresh_ttl_s)
            .field("audit_retention_days", &self.audit_retention_days)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the config file {path} is invalid: {message}")]
    Invalid { path: String, message: String },
    #[error("environment variable {name}={value:?} is invalid: {message}")]
    Env {
        name: String,
        value: String,
        message: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        match toml::from_str(DEFAULT_CONFIG) {
            Ok(config) => config,
            // The defaults are a constant checked by a test.
            Err(e) => unreachable!("DEFAULT_CONFIG is invalid: {e}"),
        }
    }
}

impl Config {
    /// Defaults, overlaid by `file` (if given) and by `IOT_LOCAL_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut merged: toml::Table =
            toml::from_str(DEFAULT_CONFIG).map_err(|e| ConfigError::Invalid {
                path: "(defaults)".into(),
                message: e.to_string(),
            })?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let overlay: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            merge(&mut merged, overlay);
        }
        for (name, value) in env {
            let Some(key) = name.strip_prefix("IOT_LOCAL_") else {
                continue;
            };
            apply_env(&mut merged, &name, key, &value)?;
        }
        let path = file.map_or("(defaults)".to_owned(), |p| p.display().to_string());
        toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid {
                path,
                message: e.to_string(),
            })
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `IOT_LOCAL_MQTT_PORT=1884` sets `mqtt.port`; the value's type follows the default's.
fn apply_env(
    config: &mut toml::Table,
    name: &str,
    key: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let err = |message: String| ConfigError::Env {
        name: name.to_owned(),
        value: value.to_owned(),
        message,
    };
    let key = key.to_ascii_lowercase();
    let (table, field) = match key.split_once('_') {
        Some((section, rest)) if config.get(section).is_some_and(toml::Value::is_table) => {
            let Some(toml::Value::Table(table)) = config.get_mut(section) else {
                return Err(err("not a section".into()));
            };
            (table, rest.to_owned())
        }
        _ => (&mut *config, key.clone()),
    };
    let Some(current) = table.get(&field) else {
        return Err(err("no such setting; see `iot-local print-config`".into()));
    };
    let parsed = match current {
        toml::Value::Integer(_) => toml::Value::Integer(
            value
                .parse()
                .map_err(|_| err("expected a whole number".into()))?,
        ),
        toml::Value::Boolean(_) => toml::Value::Boolean(
            value
                .parse()
                .map_err(|_| err("expected true or false".into()))?,
        ),
        _ => toml::Value::String(value.to_owned()),
    };
    table.insert(field, parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_defaults_are_the_defaults() {
        let config = Config::default();
        assert_eq!(config.mqtt.port, 1883);
        assert_eq!(config.http.port, 8080);
        assert_eq!(config.data_dir, PathBuf::from(".iot-local"));
    }

    #[test]
    fn file_then_environment_override_the_defaults() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("iot.toml");
        std::fs::write(&file, "tenant = \"acme\"\n[http]\nport = 9000\n")?;
        let env = [
            ("IOT_LOCAL_HTTP_PORT".to_owned(), "9100".to_owned()),
            (
                "IOT_LOCAL_MQTT_URL".to_owned(),
                "mqtt://127.0.0.1:1884".to_owned(),
            ),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let config = Config::load(Some(&file), env)?;
        assert_eq!(config.tenant, "acme");
        assert_eq!(config.http.port, 9100);
        assert_eq!(config.mqtt.url, "mqtt://127.0.0.1:1884");
        assert_eq!(config.mqtt.port, 1883);
        Ok(())
    }

    #[test]
    fn bad_settings_say_what_is_wrong() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("iot.toml");
        std::fs::write(&file, "[http]\nprot = 9000\n")?;
        let err = Config::load(Some(&file), [])
            .err()
            .ok_or("accepted a typo")?;
        assert!(err.to_string().contains("prot"), "{err}");

        let env = [("IOT_LOCAL_HTTP_PORT".to_owned(), "eighty".to_owned())];
        let err = Config::load(None, env).err().ok_or("accepted a bad port")?;
        assert!(err.to_string().contains("IOT_LOCAL_HTTP_PORT"), "{err}");

        let env = [("IOT_LOCAL_NOPE".to_owned(), "1".to_owned())];
        assert!(Config::load(None, env).is_err());
        let missing = dir.path().join("missing.toml");
        assert!(matches!(
            Config::load(Some(&missing), []),
            Err(ConfigError::Read { .. })
        ));
        Ok(())
    }
}
