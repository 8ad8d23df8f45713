//! Device certificates the platform issues itself (one machine; on AWS, IoT Core keeps the
//! registry), and the ones it revoked, from which a revocation list for an external broker
//! is made.
//!
//! | entity | pk | sk |
//! |---|---|---|
//! | device certificate | `DEVICE#{uid}` | `CERTIFICATE` |
//! | revoked certificate | `REVOKED_CERTS` | `{certificate id}` |

use serde::{Deserialize, Serialize};

use super::{Catalog, to_json};
use crate::ports::{Condition, Item, Key, Query, StoreError, Write};
use crate::time::Millis;

const REVOKED_PK: &str = "REVOKED_CERTS";

pub(super) fn certificate_key(uid: &str) -> Key {
    Key::new(format!("DEVICE#{uid}"), "CERTIFICATE")
}

/// The certificate a device signs in with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCertificate {
    /// The SHA-256 of its DER, in hex.
    pub certificate_id: String,
    /// Its serial number in hex; absent for certificates issued before serials were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

/// A certificate that signs nobody in any more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedCertificate {
    pub uid: String,
    pub certificate_id: String,
    pub serial: String,
    pub revoked_at: Millis,
}

impl Catalog {
    /// The id of the device's certificate.
    pub async fn device_certificate(&self, uid: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .issued_certificate(uid)
            .await?
            .map(|issued| issued.certificate_id))
    }

    pub async fn issued_certificate(
        &self,
        uid: &str,
    ) -> Result<Option<IssuedCertificate>, StoreError> {
        self.get(certificate_key(uid)).await
    }

    /// Records the device's certificate; fails if it has one.
    pub async fn create_device_certificate(
        &self,
        uid: &str,
        issued: &IssuedCertificate,
    ) -> Result<(), StoreError> {
        self.store
            .put(
                Item::new(certificate_key(uid), to_json(issued)?),
                Condition::NotExists,
            )
            .await
    }

    /// Removes the device's certificate and, where its serial is known, lists it as revoked,
    /// in one transaction. `ConditionFailed` if the device has none.
    pub async fn revoke_device_certificate(
        &self,
        uid: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let key = certificate_key(uid);
        let Some(issued) = self.issued_certificate(uid).await? else {
            return Err(StoreError::ConditionFailed(key));
        };
        let mut writes = vec![Write::Delete {
            key,
            condition: Condition::Exists,
        }];
        if let Some(serial) = issued.serial {
            let revoked = RevokedCertificate {
                uid: uid.to_owned(),
                certificate_id: issued.certificate_id.clone(),
                serial,
                revoked_at: now,
            };
            writes.push(Write::Put {
                item: Item::new(
                    Key::new(REVOKED_PK, issued.certificate_id),
                    to_json(&revoked)?,
                ),
                condition: Condition::Always,
            });
        }
        self.store.transact(writes).await
    }

    /// Every certificate revoked so far (they stay listed: a revoked certificate never expires
    /// before the list would).
    pub async fn revoked_certificates(&self) -> Result<Vec<RevokedCertificate>, StoreError> {
        self.list(Query::partition(REVOKED_PK)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::MemoryMetaStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_revoked_certificate_is_listed_with_its_serial() -> Result<(), StoreError> {
        let catalog = Catalog::new(Arc::new(MemoryMetaStore::default()));
        let first = IssuedCertificate {
            certificate_id: "c1".into(),
            serial: Some("0a".into()),
        };
        catalog.create_device_certificate("d-1", &first).await?;
        assert!(
            catalog
                .create_device_certificate("d-1", &first)
                .await
                .is_err(),
            "one certificate at a time"
        );
        assert_eq!(
            catalog.device_certificate("d-1").await?.as_deref(),
            Some("c1")
        );
        catalog.revoke_device_certificate("d-1", 5).await?;
        assert_eq!(catalog.device_certificate("d-1").await?, None);
        assert!(matches!(
            catalog.revoke_device_certificate("d-1", 6).await,
            Err(StoreError::ConditionFailed(_))
        ));
        // One issued before serials were kept is removed, and cannot be listed.
        let old = IssuedCertificate {
            certificate_id: "c0".into(),
            serial: None,
        };
        catalog.create_device_certificate("d-2", &old).await?;
        catalog.revoke_device_certificate("d-2", 7).await?;
        assert_eq!(
            catalog.revoked_certificates().await?,
            [RevokedCertificate {
                uid: "d-1".into(),
                certificate_id: "c1".into(),
                serial: "0a".into(),
                revoked_at: 5
            }]
        );
        Ok(())
    }
}
