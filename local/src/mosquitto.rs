//! What Mosquitto needs to hold devices and applications to the embedded broker's rules
//! (`iot-local mosquitto-config`): a password file and an ACL written from the catalog, and a
//! configuration that uses them.
//!
//! - A device signs in with its uid as user name and its device token as password, and reads
//!   and writes its own `things/{uid}/#` and `$aws/things/{uid}/#` only; the client id is forced
//!   to the user name, so nobody takes over another identity's session.
//! - With a TLS port, a device may instead present its certificate of the device CA: its
//!   common name (the uid) is its user name, and a revocation list holds back the certificates
//!   revoked or replaced, and those of suspended tenants' devices.
//! - An application credential (`app@{id}`) reads its tenant's devices' topics and writes none.
//!   Mosquitto grants every subscription, wildcards too, and delivers what the ACL lets it read.
//! - The platform signs in as [`PLATFORM_USER`] with a password made here and kept in the data
//!   directory: it reads telemetry and shadow reports and writes commands and shadow deltas.
//!
//! Only hashes are stored (`broker_password_hash`, made when a token or credential is issued),
//! so the files are written without any secret. Run the command again after devices, tokens or
//! credentials change and send Mosquitto `SIGHUP`: it reloads both files.

use iot_core::auth::secret::{broker_password_hash, random_token};
use iot_core::ports::StoreError;
use iot_core::ports::{Clock, SystemClock};
use iot_core::repo::{Catalog, IssuedCertificate};
use std::fmt::Write as _;
use std::path::Path;

use crate::error::LocalError;

/// The platform's own user on the external broker.
pub const PLATFORM_USER: &str = "iot-platform";
const PLATFORM_PASSWORD: &str = "mosquitto-platform.password";

/// The platform's password on the external broker, if `mosquitto-config` made one.
pub fn platform_password(data_dir: &Path) -> Result<Option<String>, LocalError> {
    let path = data_dir.join(PLATFORM_PASSWORD);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LocalError::file(&path)(e)),
    }
}

fn platform_password_or_create(data_dir: &Path) -> Result<String, LocalError> {
    if let Some(password) = platform_password(data_dir)? {
        return Ok(password);
    }
    let password = random_token(32);
    let path = data_dir.join(PLATFORM_PASSWORD);
    crate::secrets::write_private(&path, &format!("{password}\n"))
        .map_err(LocalError::file(&path))?;
    Ok(password)
}

/// Where Mosquitto listens: a port for devices and applications that sign in with a password
/// and, if given, a TLS port for devices that sign in with their certificate.
#[derive(Clone, Debug)]
pub struct Listen {
    pub bind: String,
    pub port: u16,
    pub tls_port: Option<u16>,
}

/// The password file and the ACL, and what they hold.
#[derive(Debug, Default)]
pub struct BrokerFiles {
    pub passwords: String,
    pub acl: String,
    /// Devices with a token or a certificate, each with its own ACL block.
    pub devices: usize,
    pub applications: usize,
    /// The serials (hex) of certificates held back while their tenant is suspended.
    pub held: Vec<String>,
}

/// Both files for the devices and application credentials of `tenants`; the certificates of
/// `suspended` tenants' devices are listed as held.
pub async fn broker_files(
    catalog: &Catalog,
    tenants: &[String],
    suspended: &[String],
    platform_hash: &str,
) -> Result<BrokerFiles, StoreError> {
    let mut files = BrokerFiles::default();
    let _ = writeln!(files.passwords, "{PLATFORM_USER}:{platform_hash}");
    let _ = writeln!(
        files.acl,
        "# Written by iot-local mosquitto-config: run it again after devices or credentials change.\n\n\
         user {PLATFORM_USER}\ntopic read things/+/up/#\ntopic read $aws/things/+/shadow/update\n\
         topic write things/+/down/#\ntopic write $aws/things/+/shadow/update/delta\n\
         topic read $aws/things/+/jobs/get\ntopic read $aws/things/+/jobs/start-next\n\
         topic read $aws/things/+/jobs/+/get\ntopic read $aws/things/+/jobs/+/update\n\
         topic write $aws/things/+/jobs/#\n"
    );
    for tenant in tenants {
        let devices = catalog.devices(tenant, None).await?;
        for device in &devices {
            let uid = &device.uid;
            let hash = catalog.device_broker_hash(uid).await?;
            if hash.is_none() && catalog.device_certificate(uid).await?.is_none() {
                continue;
            }
            if let Some(hash) = hash {
                let _ = writeln!(files.passwords, "{uid}:{hash}");
            }
            let _ = writeln!(
                files.acl,
                "user {uid}\ntopic readwrite things/{uid}/#\ntopic readwrite $aws/things/{uid}/#\n"
            );
            files.devices += 1;
        }
        let mut cursor = None;
        loop {
            let (credentials, next) = catalog.app_credentials_page(tenant, cursor, 100).await?;
            for credential in credentials {
                let user = credential.username();
                let _ = writeln!(files.passwords, "{user}:{}", credential.broker_hash);
                let _ = writeln!(files.acl, "user {user}");
                for device in &devices {
                    let uid = &device.uid;
                    let _ = writeln!(
                        files.acl,
                        "topic read things/{uid}/#\ntopic read $aws/things/{uid}/#"
                    );
                }
                files.acl.push('\n');
                files.applications += 1;
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    for tenant in suspended {
        for device in catalog.devices(tenant, None).await? {
            if let Some(IssuedCertificate {
                serial: Some(serial),
                ..
            }) = catalog.issued_certificate(&device.uid).await?
            {
                files.held.push(serial);
            }
        }
    }
    Ok(files)
}

/// A Mosquitto configuration listening as `listen` says with the files in `dir`. The files
/// are readable by their owner only, so Mosquitto runs as the user who wrote them: started as
/// root, it would otherwise switch to the `mosquitto` user, so for root it is told to stay.
pub fn mosquitto_conf(dir: &Path, listen: &Listen, as_root: bool) -> String {
    let user = if as_root { "user root\n" } else { "" };
    let (bind, port) = (&listen.bind, listen.port);
    let tls = listen.tls_port.map_or_else(String::new, |tls_port| {
        let file = |name: &str| dir.join(name).display().to_string();
        format!(
            "\n# Devices with a certificate of the device CA; its common name is the user name.\n\
             listener {tls_port} {bind}\n\
             cafile {ca}\n\
             certfile {cert}\n\
             keyfile {key}\n\
             crlfile {crl}\n\
             require_certificate true\n\
             use_identity_as_username true\n\
             use_username_as_clientid true\n",
            ca = file(CA_FILE),
            cert = file(SERVER_CERT_FILE),
            key = file(SERVER_KEY_FILE),
            crl = file(CRL_FILE),
        )
    });
    format!(
        "# Written by iot-local mosquitto-config. Devices sign in with their uid and device token,\n\
         # applications with their credential; nobody anonymously. After running the command\n\
         # again, `kill -HUP` Mosquitto to reload the password file and the ACL.\n\
         {user}per_listener_settings false\n\
         allow_anonymous false\n\
         password_file {passwords}\n\
         acl_file {acl}\n\
         listener {port} {bind}\n\
         use_username_as_clientid true\n{tls}",
        passwords = dir.join("passwords").display(),
        acl = dir.join("acl").display(),
    )
}

const CA_FILE: &str = "device-ca.pem";
const SERVER_CERT_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server.key";
const CRL_FILE: &str = "crl.pem";

/// The TLS listener's files: the device CA's certificate, a server certificate it signs for
/// the names devices reach Mosquitto by, and the revocation list.
async fn tls_files(
    catalog: &Catalog,
    data_dir: &Path,
    bind: &str,
    held: &[String],
) -> Result<Vec<(&'static str, String)>, LocalError> {
    let ca = crate::gateway::DeviceCa::load_or_create(data_dir)?;
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let loopback_or_any = bind
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    if !loopback_or_any && bind != "localhost" {
        names.push(bind.to_owned());
    }
    let (cert, key) = ca
        .issue_server(&names)
        .map_err(LocalError::part("the server certificate"))?;
    let revoked = catalog.revoked_certificates().await?;
    let crl = ca
        .revocation_list(&revoked, held, SystemClock.now_ms())
        .map_err(LocalError::part("the revocation list"))?;
    Ok(vec![
        (CA_FILE, ca.pem().to_owned()),
        (SERVER_CERT_FILE, cert),
        (SERVER_KEY_FILE, key),
        (CRL_FILE, crl),
    ])
}

/// Writes `passwords`, `acl` and `mosquitto.conf` into `out` from the platform in `data_dir`
/// (each file replaced whole, so a reload never reads half of one).
pub async fn write_config(
    catalog: &Catalog,
    data_dir: &Path,
    tenants: &[String],
    suspended: &[String],
    out: &Path,
    listen: &Listen,
) -> Result<BrokerFiles, LocalError> {
    std::fs::create_dir_all(out).map_err(LocalError::file(out))?;
    let platform = platform_password_or_create(data_dir)?;
    let files = broker_files(
        catalog,
        tenants,
        suspended,
        &broker_password_hash(&platform),
    )
    .await?;
    let out = std::fs::canonicalize(out).map_err(LocalError::file(out))?;
    let mut written = match listen.tls_port {
        Some(_) => tls_files(catalog, data_dir, &listen.bind, &files.held).await?,
        None => Vec::new(),
    };
    written.extend([
        ("passwords", files.passwords.clone()),
        ("acl", files.acl.clone()),
        (
            "mosquitto.conf",
            mosquitto_conf(&out, listen, owned_by_root(&out)),
        ),
    ]);
    for (name, text) in &written {
        let path = out.join(name);
        let next = out.join(format!(".{name}.next"));
        let _ = std::fs::remove_file(&next);
        crate::secrets::write_private(&next, text)
            .and_then(|()| std::fs::rename(&next, &path))
            .map_err(LocalError::file(&path))?;
    }
    Ok(files)
}

/// [`write_config`] for the platform `config` describes: its own tenant and every active
/// managed tenant, the suspended ones' certificates held (so run it again after suspending or
/// resuming one). The platform may be running meanwhile.
pub async fn from_platform(
    config: &crate::config::Config,
    out: &Path,
    listen: &Listen,
) -> Result<BrokerFiles, LocalError> {
    let path = config.data_dir.join("iot.db");
    if !path.exists() {
        return Err(LocalError::Invalid(format!(
            "{} does not exist: start the platform once (`iot-local up`) first",
            path.display()
        )));
    }
    let db = iot_embedded::sqlite::Database::open(&path)?;
    let catalog = Catalog::new(std::sync::Arc::new(
        iot_embedded::sqlite::SqliteMetaStore::new(db),
    ));
    let mut tenants = vec![config.tenant.clone()];
    let mut suspended = Vec::new();
    let managed = catalog.tenants().await?;
    // A suspended or deleted tenant's devices and applications sign in nowhere.
    for tenant in managed.into_iter().filter(|t| t.id != config.tenant) {
        match tenant.status {
            iot_core::model::TenantStatus::Active => tenants.push(tenant.id),
            iot_core::model::TenantStatus::Suspended => suspended.push(tenant.id),
            iot_core::model::TenantStatus::Deleted => {}
        }
    }
    write_config(
        &catalog,
        &config.data_dir,
        &tenants,
        &suspended,
        out,
        listen,
    )
    .await
}

#[cfg(unix)]
fn owned_by_root(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).is_ok_and(|m| m.uid() == 0)
}

#[cfg(not(unix))]
fn owned_by_root(_: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use iot_core::model::{AppCredential, Device};
    use iot_core::ports::memory::MemoryMetaStore;
    use std::sync::Arc;

    fn device(uid: &str, tenant: &str) -> Device {
        serde_json::from_value(serde_json::json!({
            "uid": uid, "tenant_id": tenant, "identification_code": uid, "product_id": "air",
            "department_id": "ops", "name": uid
        }))
        .expect("a device")
    }

    #[tokio::test]
    async fn each_identity_gets_its_own_topics_and_applications_their_tenants()
    -> Result<(), StoreError> {
        let catalog = Catalog::new(Arc::new(MemoryMetaStore::default()));
        for (uid, tenant) in [("a-1", "acme"), ("a-2", "acme"), ("g-1", "globex")] {
            catalog.put_device(&device(uid, tenant)).await?;
        }
        catalog.put_device(&device("a-3", "acme")).await?;
        catalog.put_device(&device("s-1", "soylent")).await?;
        for (uid, serial) in [("a-3", "0a03"), ("s-1", "0b01")] {
            let issued = IssuedCertificate {
                certificate_id: format!("id-{uid}"),
                serial: Some(serial.into()),
            };
            catalog.create_device_certificate(uid, &issued).await?;
        }
        catalog.put_device_token("a-1", "d", "$7$hash-a1").await?;
        catalog.put_device_token("g-1", "d", "$7$hash-g1").await?;
        catalog
            .create_app_credential(&AppCredential {
                id: "k1".into(),
                tenant_id: "acme".into(),
                name: "dash".into(),
                digest: "d".into(),
                broker_hash: "$7$hash-app".into(),
                created_at: 1,
                created_by: "admin".into(),
            })
            .await?;
        let files = broker_files(
            &catalog,
            &["acme".into(), "globex".into()],
            &["soylent".into()],
            "$7$p",
        )
        .await?;
        assert_eq!(
            files.passwords,
            "iot-platform:$7$p\na-1:$7$hash-a1\napp@k1:$7$hash-app\ng-1:$7$hash-g1\n"
        );
        assert_eq!((files.devices, files.applications), (3, 1));
        // a-3 signs in by certificate only: its topics, and no password.
        assert!(files.acl.contains(
            "user a-3\ntopic readwrite things/a-3/#\ntopic readwrite $aws/things/a-3/#\n"
        ));
        // The suspended tenant's device is nowhere but in the held certificates.
        assert_eq!(files.held, ["0b01"]);
        assert!(!files.acl.contains("s-1") && !files.passwords.contains("s-1"));
        // a-2 has no token: no password, no ACL block of its own, but the application reads it.
        assert!(files.acl.contains(
            "user a-1\ntopic readwrite things/a-1/#\ntopic readwrite $aws/things/a-1/#\n"
        ));
        assert!(!files.acl.contains("user a-2"));
        let app = files.acl.split("user app@k1\n").nth(1).unwrap_or_default();
        let app = app.split("\n\n").next().unwrap_or_default();
        assert_eq!(
            app,
            "topic read things/a-1/#\ntopic read $aws/things/a-1/#\ntopic read things/a-2/#\ntopic read $aws/things/a-2/#\ntopic read things/a-3/#\ntopic read $aws/things/a-3/#"
        );
        assert!(!files.acl.contains("topic write things/g-1") && !files.acl.contains("pattern"));
        Ok(())
    }
}
