//! Devices and what is kept under their uid: the identification-code pointer, presence, the
//! HTTP token, the shadow, and the mark of a deleted uid.

use super::{
    Catalog, certificate_key, code_key, device_key, devices_query, from_item, presence_key,
    retired_key, shadow_key, state_key, tenant_pk, to_json, token_key,
};
use crate::model::{Device, Presence, ShadowSection, merge_shadow};
use crate::ports::{Condition, Item, Key, StoreError, Write};
use crate::time::Millis;

impl Catalog {
    pub async fn device(&self, uid: &str) -> Result<Option<Device>, StoreError> {
        self.get(device_key(uid)).await
    }

    /// Creates or updates a device and its identification-code pointer, atomically; a code
    /// already used by another device of the tenant is refused.
    pub async fn put_device(&self, device: &Device) -> Result<(), StoreError> {
        let previous = self.device(&device.uid).await?;
        self.write_device(device, previous, Condition::Always).await
    }

    /// Creates a device; refused (`TransactionCancelled`) if its uid or code is taken, even by
    /// a concurrent creator.
    pub async fn create_device(&self, device: &Device) -> Result<(), StoreError> {
        self.write_device(device, None, Condition::NotExists).await
    }

    async fn write_device(
        &self,
        device: &Device,
        previous: Option<Device>,
        condition: Condition,
    ) -> Result<(), StoreError> {
        let mut item = Item::new(device_key(&device.uid), to_json(device)?);
        item.index = Some(Key::new(
            format!("{}#DEVICES", tenant_pk(&device.tenant_id)),
            format!("{}#{}", device.product_id, device.uid),
        ));
        let pointer = Item::new(
            code_key(&device.tenant_id, &device.identification_code),
            serde_json::json!({ "uid": device.uid }),
        );
        let mut writes = vec![Write::Put { item, condition }];
        match &previous {
            Some(p)
                if p.identification_code == device.identification_code
                    && p.tenant_id == device.tenant_id => {}
            _ => {
                writes.push(Write::Put {
                    item: pointer,
                    condition: Condition::NotExists,
                });
                if let Some(p) = previous {
                    writes.push(Write::Delete {
                        key: code_key(&p.tenant_id, &p.identification_code),
                        condition: Condition::Always,
                    });
                }
            }
        }
        self.store.transact(writes).await
    }

    /// When the last device of `uid` was deleted, if one was.
    pub async fn uid_retired_at(&self, uid: &str) -> Result<Option<Millis>, StoreError> {
        Ok(self
            .store
            .get(&retired_key(uid))
            .await?
            .and_then(|item| item.data.get("deleted_at")?.as_i64()))
    }

    /// The SHA-256 of the device's HTTP ingest token, if it has one.
    pub async fn device_token(&self, uid: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .get(&token_key(uid))
            .await?
            .and_then(|item| item.data.get("digest")?.as_str().map(str::to_owned)))
    }

    /// Keeps a device token as its SHA-256 `digest` (what HTTP ingest and the embedded
    /// broker check) and `broker_hash` (`auth::secret::broker_password_hash` of the password
    /// the device gives an external broker, for its password file).
    pub async fn put_device_token(
        &self,
        uid: &str,
        digest: &str,
        broker_hash: &str,
    ) -> Result<(), StoreError> {
        self.put(
            token_key(uid),
            &serde_json::json!({ "digest": digest, "broker_hash": broker_hash }),
        )
        .await
    }

    /// The broker password-file hash of the device's token, if it has one.
    pub async fn device_broker_hash(&self, uid: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .get(&token_key(uid))
            .await?
            .and_then(|item| item.data.get("broker_hash")?.as_str().map(str::to_owned)))
    }

    pub async fn delete_device_token(&self, uid: &str) -> Result<(), StoreError> {
        self.store.delete(&token_key(uid), Condition::Always).await
    }

    /// The device's shadow document, where the platform keeps it (one machine).
    pub async fn device_shadow(&self, uid: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.get(shadow_key(uid)).await
    }

    /// Merges `changes` into one section of the device's shadow (see
    /// [`crate::model::merge_shadow`]) and saves it, reading it again if another update won the
    /// race. Answers the shadow as saved; `Invalid` if `changes` is not an object.
    pub async fn update_device_shadow(
        &self,
        uid: &str,
        section: ShadowSection,
        changes: &serde_json::Value,
    ) -> Result<serde_json::Value, StoreError> {
        for _ in 0..5 {
            let stored = self
                .get_versioned::<serde_json::Value>(shadow_key(uid))
                .await?;
            let version = stored.as_ref().map(|v| v.version);
            let mut shadow = stored.map(|v| v.value).unwrap_or_default();
            merge_shadow(&mut shadow, section, changes).ok_or_else(|| {
                StoreError::Invalid("a shadow update is a JSON object of keys".into())
            })?;
            match self.put_versioned(shadow_key(uid), &shadow, version).await {
                Ok(()) => return Ok(shadow),
                Err(StoreError::ConditionFailed(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::ConditionFailed(shadow_key(uid)))
    }

    pub async fn presence(&self, uid: &str) -> Result<Option<Presence>, StoreError> {
        self.get(presence_key(uid)).await
    }

    /// Records a connect or disconnect unless a newer one is recorded already. Returns whether
    /// it was recorded.
    pub async fn record_presence(
        &self,
        uid: &str,
        presence: &Presence,
    ) -> Result<bool, StoreError> {
        for _ in 0..5 {
            let current = self.store.get(&presence_key(uid)).await?;
            let condition = match &current {
                Some(item) => {
                    let recorded: Presence = from_item(item.clone())?;
                    if !presence.supersedes(&recorded) {
                        return Ok(false);
                    }
                    Condition::Version(item.version)
                }
                None => Condition::NotExists,
            };
            let mut item = Item::new(presence_key(uid), to_json(presence)?);
            item.version = current.map_or(1, |i| i.version + 1);
            match self.store.put(item, condition).await {
                Err(StoreError::ConditionFailed(_)) => continue,
                other => return other.map(|()| true),
            }
        }
        Err(StoreError::Unavailable(format!(
            "the presence of device {uid:?} kept changing; retry"
        )))
    }

    pub async fn device_by_code(
        &self,
        tenant: &str,
        code: &str,
    ) -> Result<Option<Device>, StoreError> {
        let pointer: Option<serde_json::Value> = self.get(code_key(tenant, code)).await?;
        match pointer.as_ref().and_then(|p| p["uid"].as_str()) {
            Some(uid) => self.device(uid).await,
            None => Ok(None),
        }
    }

    /// Devices of a tenant, optionally of one product.
    pub async fn devices(
        &self,
        tenant: &str,
        product: Option<&str>,
    ) -> Result<Vec<Device>, StoreError> {
        self.list(devices_query(tenant, product)).await
    }

    /// A page of the tenant's devices (of one product, if given) that `visible` accepts, in
    /// the order of [`Self::devices`], from `cursor` on; and the next page's cursor.
    pub async fn devices_page(
        &self,
        tenant: &str,
        product: Option<&str>,
        cursor: Option<String>,
        limit: usize,
        visible: impl Fn(&Device) -> bool,
    ) -> Result<(Vec<Device>, Option<String>), StoreError> {
        let mut query = devices_query(tenant, product);
        query.cursor = cursor;
        self.page_where(query, limit, visible).await
    }

    /// Deletes a device, its identification-code pointer, its alarm state and its presence.
    /// Deletes a device and everything kept under its uid but its data, and leaves a mark of
    /// when, so a device created later under the uid starts with none of it.
    pub async fn delete_device(&self, device: &Device, at: Millis) -> Result<(), StoreError> {
        let uid = &device.uid;
        let mut writes = vec![
            Write::Delete {
                key: device_key(uid),
                condition: Condition::Exists,
            },
            Write::Put {
                item: Item::new(retired_key(uid), serde_json::json!({ "deleted_at": at })),
                condition: Condition::Always,
            },
        ];
        writes.extend(
            [
                code_key(&device.tenant_id, &device.identification_code),
                state_key(uid),
                presence_key(uid),
                token_key(uid),
                certificate_key(uid),
                shadow_key(uid),
                // Its executions stay, as their rollouts' history; a later device of the
                // uid ignores them by its `data_since`.
                Key::new(format!("DEVICE#{uid}"), "FIRMWARE"),
            ]
            .into_iter()
            .map(|key| Write::Delete {
                key,
                condition: Condition::Always,
            }),
        );
        self.store.transact(writes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::MemoryMetaStore;
    use std::sync::Arc;

    fn presence(online: bool, since: Millis) -> Presence {
        Presence {
            online,
            since,
            reason: (!online).then(|| "CONNECTION_LOST".to_owned()),
        }
    }

    #[tokio::test]
    async fn presence_only_moves_forward() -> Result<(), StoreError> {
        let catalog = Catalog::new(Arc::new(MemoryMetaStore::default()));
        assert_eq!(catalog.presence("d1").await?, None);
        assert!(catalog.record_presence("d1", &presence(true, 100)).await?);
        assert!(catalog.record_presence("d1", &presence(false, 300)).await?);
        // A connect that happened before the disconnect arrives late: ignored.
        assert!(!catalog.record_presence("d1", &presence(true, 200)).await?);
        assert_eq!(catalog.presence("d1").await?, Some(presence(false, 300)));
        assert!(catalog.record_presence("d1", &presence(true, 400)).await?);
        assert_eq!(catalog.presence("d1").await?, Some(presence(true, 400)));
        Ok(())
    }
}
