//! [`DeviceGateway`] on one machine: X.509 device certificates issued by a device CA kept in
//! the data directory, commands and shadow deltas published on the platform's MQTT broker on
//! the topics AWS IoT Core uses, and the shadow kept in the metadata store (devices report
//! their state on `$aws/things/{uid}/shadow/update`, see [`iot_core::topics`]).
//!
//! The embedded broker's TLS listener signs devices in by these certificates; Mosquitto's does
//! with the files `iot-local mosquitto-config --tls-port` writes, the revocation list among
//! them.

use async_trait::async_trait;
use iot_core::model::{Device, ShadowSection, shadow_delta};
use iot_core::ota::Rollout;
use iot_core::ports::{
    Clock, DeviceCredentials, DeviceGateway, GatewayError, RolloutJob, SessionCredential,
    StoreError, SystemClock,
};
use iot_core::repo::Catalog;
use iot_core::repo::{IssuedCertificate, RevokedCertificate};
use iot_core::time::Millis;
use iot_core::topics::{command_topic, shadow_delta_topic};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, RevocationReason, RevokedCertParams, SerialNumber,
};
use rumqttc::{AsyncClient, QoS};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;

use crate::broker::{Downlink, Identity};
use crate::error::LocalError;

/// Where the platform's own messages to devices go.
#[derive(Clone)]
pub enum DeviceLink {
    /// The embedded broker's subscribers.
    Embedded(Downlink),
    /// An external broker, through the platform's connection (QoS 1).
    External(AsyncClient),
}

impl DeviceLink {
    /// Ends the selected live sessions on the embedded broker. An external broker keeps its
    /// connections until they reconnect against the regenerated password file.
    fn end_sessions(&self, whose: impl Fn(&Identity) -> bool) -> usize {
        match self {
            DeviceLink::Embedded(downlink) => downlink.end_sessions(whose),
            DeviceLink::External(_) => 0,
        }
    }

    /// Publishes to a device of `tenant` (whose applications may read it too).
    async fn publish(
        &self,
        tenant: &str,
        topic: String,
        payload: Vec<u8>,
    ) -> Result<(), GatewayError> {
        match self {
            DeviceLink::Embedded(downlink) => {
                let reached = downlink.publish(tenant, &topic, payload);
                tracing::debug!(%topic, reached, "published to devices");
                Ok(())
            }
            DeviceLink::External(client) => client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .map_err(|e| GatewayError::Unavailable(format!("the MQTT broker: {e}"))),
        }
    }
}

/// The device CA: its key signs device certificates.
pub struct DeviceCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate devices and the TLS listener trust.
    pem: String,
}

const CA_NAME: &str = "iot-local device CA";

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

impl DeviceCa {
    /// Loads `device-ca.key` from the data directory, or makes the CA on the first start
    /// (the key readable by the owner only, the certificate beside it as `device-ca.pem`).
    pub fn load_or_create(data_dir: &Path) -> Result<Self, LocalError> {
        const PART: &str = "the device CA";
        let key_path = data_dir.join("device-ca.key");
        let cert_path = data_dir.join("device-ca.pem");
        let key = match std::fs::read_to_string(&key_path) {
            Ok(pem) => KeyPair::from_pem(&pem).map_err(LocalError::part(PART))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
                    .map_err(LocalError::part(PART))?;
                let certificate = ca_params()
                    .and_then(|p| p.self_signed(&key))
                    .map_err(LocalError::part(PART))?;
                crate::secrets::write_private(&key_path, &key.serialize_pem())
                    .map_err(LocalError::file(&key_path))?;
                std::fs::write(&cert_path, certificate.pem())
                    .map_err(LocalError::file(&cert_path))?;
                key
            }
            Err(e) => return Err(LocalError::file(&key_path)(e)),
        };
        let pem = std::fs::read_to_string(&cert_path).map_err(LocalError::file(&cert_path))?;
        let params = ca_params().map_err(LocalError::part(PART))?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            pem,
        })
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate for the TLS listener, for `names` (host names or IP addresses),
    /// and its key, both PEM.
    pub fn issue_server(&self, names: &[String]) -> Result<(String, String), rcgen::Error> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let certificate = params.signed_by(&key, &self.issuer)?;
        Ok((certificate.pem(), key.serialize_pem()))
    }

    /// A new key pair and a client certificate for the device (CN = its uid): the record of
    /// it (its id, the SHA-256 of its DER in hex as AWS IoT names certificates, and its
    /// serial), the certificate and the key.
    fn issue(&self, uid: &str) -> Result<(IssuedCertificate, String, String), rcgen::Error> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        // Unique because the key is: 20 bytes of its hash, positive (RFC 5280, 4.1.2.2).
        let mut serial = Sha256::digest(rcgen::PublicKeyData::der_bytes(&key))[..20].to_vec();
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, uid);
        params.distinguished_name = name;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        // As AWS IoT's certificates (rcgen's default would be the year 4096).
        params.not_after = rcgen::date_time_ymd(2049, 12, 31);
        let certificate = params.signed_by(&key, &self.issuer)?;
        let issued = IssuedCertificate {
            certificate_id: hex::encode(Sha256::digest(certificate.der())),
            serial: Some(hex::encode(&serial)),
        };
        Ok((issued, certificate.pem(), key.serialize_pem()))
    }

    /// A revocation list (PEM) signed by the CA, valid from `now` for [`CRL_VALIDITY_DAYS`]:
    /// `revoked` for good, `held` (a suspended tenant's) until a later list leaves them out.
    pub fn revocation_list(
        &self,
        revoked: &[RevokedCertificate],
        held: &[String],
        now: Millis,
    ) -> Result<String, CrlError> {
        let at = |ms: Millis| {
            time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        };
        let serial = |hex_serial: &str| {
            hex::decode(hex_serial)
                .map(|bytes| SerialNumber::from_slice(&bytes))
                .map_err(|_| CrlError::Serial(hex_serial.to_owned()))
        };
        let revoked_certs = revoked
            .iter()
            .map(|c| {
                (
                    c.serial.as_str(),
                    c.revoked_at,
                    RevocationReason::Superseded,
                )
            })
            .chain(
                held.iter()
                    .map(|s| (s.as_str(), now, RevocationReason::CertificateHold)),
            )
            .map(|(hex_serial, when, reason)| {
                Ok(RevokedCertParams {
                    serial_number: serial(hex_serial)?,
                    revocation_time: at(when),
                    reason_code: Some(reason),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CrlError>>()?;
        let this_update = at(now);
        let list = CertificateRevocationListParams {
            this_update,
            next_update: this_update + time::Duration::days(CRL_VALIDITY_DAYS),
            // Increasing with time, as RFC 5280 asks of the CRL number.
            crl_number: SerialNumber::from(u64::try_from(now).unwrap_or_default()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(list.signed_by(&self.issuer)?.pem()?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error("a stored certificate serial is not hex: {0:?}")]
    Serial(String),
    #[error("signing the revocation list: {0}")]
    Sign(#[from] rcgen::Error),
}

/// How long a revocation list written by `mosquitto-config` is valid: a broker refuses every
/// certificate once its list has expired, so the files must be written again before then.
pub const CRL_VALIDITY_DAYS: i64 = 365;

pub struct LocalGateway {
    catalog: Catalog,
    link: DeviceLink,
    ca: DeviceCa,
    /// Where devices connect, as the credentials tell them.
    endpoint: String,
}

fn store_error(e: StoreError) -> GatewayError {
    GatewayError::Unavailable(e.to_string())
}

impl LocalGateway {
    pub fn new(catalog: Catalog, link: DeviceLink, ca: DeviceCa, endpoint: String) -> Self {
        Self {
            catalog,
            link,
            ca,
            endpoint,
        }
    }

    /// Publishes to a device of `tenant` (jobs answers and notices).
    pub(crate) async fn publish_to(
        &self,
        tenant: &str,
        topic: String,
        payload: Vec<u8>,
    ) -> Result<(), GatewayError> {
        self.link.publish(tenant, topic, payload).await
    }

    /// As on AWS, where a device without a thing has no shadow and cannot be sent anything:
    /// the device must have been provisioned.
    /// The tenant of a registered device (one with a certificate).
    async fn known(&self, uid: &str) -> Result<String, GatewayError> {
        let unknown = || GatewayError::UnknownDevice(uid.to_owned());
        self.catalog
            .device_certificate(uid)
            .await
            .map_err(store_error)?
            .ok_or_else(unknown)?;
        let device = self.catalog.device(uid).await.map_err(store_error)?;
        Ok(device.ok_or_else(unknown)?.tenant_id)
    }
}

#[async_trait]
impl DeviceGateway for LocalGateway {
    async fn register(&self, device: &Device) -> Result<DeviceCredentials, GatewayError> {
        let (issued, certificate_pem, private_key_pem) = self
            .ca
            .issue(&device.uid)
            .map_err(|e| GatewayError::Unavailable(format!("issuing a certificate: {e}")))?;
        let certificate_id = issued.certificate_id.clone();
        self.catalog
            .create_device_certificate(&device.uid, &issued)
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed(_) => {
                    GatewayError::AlreadyRegistered(device.uid.clone())
                }
                e => store_error(e),
            })?;
        tracing::info!(device = %device.uid, certificate = %certificate_id, "device certificate issued");
        Ok(DeviceCredentials {
            certificate_id,
            certificate_pem,
            private_key_pem,
            endpoint: self.endpoint.clone(),
        })
    }

    async fn deregister(&self, device_uid: &str) -> Result<(), GatewayError> {
        self.catalog
            .revoke_device_certificate(device_uid, SystemClock.now_ms())
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed(_) => GatewayError::UnknownDevice(device_uid.into()),
                e => store_error(e),
            })?;
        self.link
            .end_sessions(|who| matches!(who, Identity::Device { uid, .. } if uid == device_uid));
        Ok(())
    }

    /// Sign-ins are refused by the tenant's record (see `sessions.rs`); here the live
    /// sessions end.
    async fn set_tenant_access(&self, tenant: &str, allowed: bool) -> Result<(), GatewayError> {
        if !allowed {
            let ended = self.link.end_sessions(|who| who.tenant() == tenant);
            tracing::info!(%tenant, ended, "suspended tenant's sessions ended");
        }
        Ok(())
    }

    async fn end_sessions(&self, credential: &SessionCredential) -> Result<(), GatewayError> {
        let ended = self.link.end_sessions(|who| match (credential, who) {
            (
                SessionCredential::DeviceToken(device),
                Identity::Device {
                    uid,
                    by_certificate: false,
                    ..
                },
            ) => uid == device,
            (SessionCredential::Application(credential), Identity::Application { id, .. }) => {
                id == credential
            }
            _ => false,
        });
        tracing::info!(
            ?credential,
            ended,
            "sessions of a withdrawn credential ended"
        );
        Ok(())
    }

    async fn send_command(&self, device_uid: &str, command: &Value) -> Result<(), GatewayError> {
        let tenant = self.known(device_uid).await?;
        self.link
            .publish(
                &tenant,
                command_topic(device_uid),
                command.to_string().into_bytes(),
            )
            .await
    }

    /// Merges `desired` into the shadow (a `null` removes a key, as on AWS), and publishes
    /// what the device has not reported yet as the delta, as IoT Core does.
    async fn set_desired(&self, device_uid: &str, desired: &Value) -> Result<Value, GatewayError> {
        let tenant = self.known(device_uid).await?;
        let shadow = self
            .catalog
            .update_device_shadow(device_uid, ShadowSection::Desired, desired)
            .await
            .map_err(store_error)?;
        if let Some(delta) = shadow_delta(&shadow) {
            let message = json!({ "state": delta, "version": shadow["version"] });
            self.link
                .publish(
                    &tenant,
                    shadow_delta_topic(device_uid),
                    message.to_string().into_bytes(),
                )
                .await?;
        }
        Ok(shadow)
    }

    async fn shadow(&self, device_uid: &str) -> Result<Option<Value>, GatewayError> {
        self.known(device_uid).await?;
        self.catalog
            .device_shadow(device_uid)
            .await
            .map_err(store_error)
    }

    /// The platform's OTA engine runs the rollout from the store (see `ota_jobs.rs`).
    async fn start_rollout(&self, _job: &RolloutJob<'_>) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn cancel_rollout(&self, _rollout: &Rollout, _force: bool) -> Result<(), GatewayError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_and_signs_device_certificates() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let ca = DeviceCa::load_or_create(dir.path())?;
        let ca_pem = std::fs::read_to_string(dir.path().join("device-ca.pem"))?;
        let (issued, certificate, key) = ca.issue("dev-1")?;
        assert_eq!(issued.certificate_id.len(), 64);
        let serial = issued.serial.clone().unwrap_or_default();
        assert_eq!(serial.len(), 40, "20 bytes: {serial}");
        let (other, _, _) = ca.issue("dev-1")?;
        assert_ne!(other.serial, issued.serial, "a serial per certificate");
        let list = ca.revocation_list(
            &[RevokedCertificate {
                uid: "dev-1".into(),
                certificate_id: issued.certificate_id.clone(),
                serial,
                revoked_at: 1_795_435_200_000,
            }],
            &[other.serial.unwrap_or_default()],
            1_795_435_200_000,
        )?;
        assert!(list.starts_with("-----BEGIN X509 CRL-----"), "{list}");
        let bad = ca.revocation_list(&[], &["not hex".into()], 0);
        assert!(matches!(bad, Err(CrlError::Serial(_))));
        assert!(certificate.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        // A second start reuses the CA; the key stays private.
        DeviceCa::load_or_create(dir.path())?;
        let again = std::fs::read_to_string(dir.path().join("device-ca.pem"))?;
        assert_eq!(ca_pem, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("device-ca.key"))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        Ok(())
    }
}
