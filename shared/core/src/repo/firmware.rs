//! Firmware packages, rollouts, their executions and what each device runs.
//!
//! An execution lives in its device's partition (a device's jobs are one query, for the jobs
//! API) and in the index under its rollout (a rollout's progress is one query). It is written
//! on the condition that nobody changed it since it was read, as a device's `expectedVersion`.

use super::{Catalog, tenant_pk, to_json};
use crate::ota::{DeviceFirmware, Execution, FirmwarePackage, Rollout, job_id};
use crate::ports::{Condition, Item, Key, Query, StoreError, Write};

fn package_key(tenant: &str, id: &str) -> Key {
    Key::new(tenant_pk(tenant), format!("FIRMWARE#{id}"))
}

fn rollout_key(tenant: &str, id: &str) -> Key {
    Key::new(tenant_pk(tenant), format!("ROLLOUT#{id}"))
}

fn execution_key(device: &str, rollout: &str) -> Key {
    Key::new(format!("DEVICE#{device}"), format!("JOB#{rollout}"))
}

pub(super) fn job_key(job: &str) -> Key {
    Key::new(format!("JOB#{job}"), "JOB")
}

pub(super) fn executions_pk(tenant: &str, rollout: &str) -> String {
    format!("TENANT#{tenant}#ROLLOUT#{rollout}")
}

/// A rollout not over is listed in the index under `ROLLOUTS#ACTIVE`, for the engine of the
/// platform that runs jobs itself: its timer reads the active ones, not every tenant's.
fn rollout_item(rollout: &Rollout) -> Result<Item, StoreError> {
    let mut item = Item::new(
        rollout_key(&rollout.tenant_id, &rollout.id),
        to_json(rollout)?,
    );
    if !rollout.status.is_over() {
        item.index = Some(Key::new(
            ACTIVE_ROLLOUTS,
            format!("{}#{}", rollout.tenant_id, rollout.id),
        ));
    }
    Ok(item)
}

const ACTIVE_ROLLOUTS: &str = "ROLLOUTS#ACTIVE";

fn execution_item(execution: &Execution) -> Result<Item, StoreError> {
    let mut item = Item::new(
        execution_key(&execution.device_uid, &execution.rollout_id),
        to_json(execution)?,
    );
    item.version = execution.version_number;
    item.index = Some(Key::new(
        executions_pk(&execution.tenant_id, &execution.rollout_id),
        execution.device_uid.clone(),
    ));
    Ok(item)
}

impl Catalog {
    pub async fn package(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<FirmwarePackage>, StoreError> {
        self.get(package_key(tenant, id)).await
    }

    pub async fn put_package(&self, package: &FirmwarePackage) -> Result<(), StoreError> {
        self.put(package_key(&package.tenant_id, &package.id), package)
            .await
    }

    /// Only if no package of that id exists.
    pub async fn create_package(&self, package: &FirmwarePackage) -> Result<(), StoreError> {
        let item = Item::new(
            package_key(&package.tenant_id, &package.id),
            to_json(package)?,
        );
        self.store.put(item, Condition::NotExists).await
    }

    pub async fn packages(&self, tenant: &str) -> Result<Vec<FirmwarePackage>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), "FIRMWARE#"))
            .await
    }

    pub async fn rollout(&self, tenant: &str, id: &str) -> Result<Option<Rollout>, StoreError> {
        self.get(rollout_key(tenant, id)).await
    }

    pub async fn put_rollout(&self, rollout: &Rollout) -> Result<(), StoreError> {
        self.store
            .put(rollout_item(rollout)?, Condition::Always)
            .await
    }

    /// Every tenant's rollouts that are not over.
    pub async fn active_rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        self.list(Query::index(ACTIVE_ROLLOUTS)).await
    }

    pub async fn rollouts(&self, tenant: &str) -> Result<Vec<Rollout>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), "ROLLOUT#"))
            .await
    }

    /// A new rollout and its queued executions; fails if the rollout id is taken. Written in
    /// transactions of up to 100 items, the rollout last, so a rollout that exists has all
    /// its executions (a failed start leaves executions a retry overwrites).
    pub async fn create_rollout(
        &self,
        rollout: &Rollout,
        executions: &[Execution],
    ) -> Result<(), StoreError> {
        if self
            .rollout(&rollout.tenant_id, &rollout.id)
            .await?
            .is_some()
        {
            return Err(StoreError::ConditionFailed(rollout_key(
                &rollout.tenant_id,
                &rollout.id,
            )));
        }
        for chunk in executions.chunks(100) {
            let writes = chunk
                .iter()
                .map(|e| {
                    Ok(Write::Put {
                        item: execution_item(e)?,
                        condition: Condition::Always,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            self.store.transact(writes).await?;
        }
        let pointer = serde_json::json!({ "tenant": rollout.tenant_id, "rollout": rollout.id });
        let job = job_id(&rollout.tenant_id, &rollout.id);
        self.store
            .put(Item::new(job_key(&job), pointer), Condition::Always)
            .await?;
        self.store
            .put(rollout_item(rollout)?, Condition::NotExists)
            .await
    }

    /// The tenant and rollout of an IoT job id (events name the job only).
    pub async fn rollout_of_job(&self, job: &str) -> Result<Option<(String, String)>, StoreError> {
        let pointer: Option<serde_json::Value> = self.get(job_key(job)).await?;
        Ok(pointer.and_then(|p| {
            Some((
                p["tenant"].as_str()?.to_owned(),
                p["rollout"].as_str()?.to_owned(),
            ))
        }))
    }

    /// Deletes a rollout that never started, with its executions.
    pub async fn delete_rollout(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        for execution in self.executions(tenant, id).await? {
            self.store
                .delete(&execution_key(&execution.device_uid, id), Condition::Always)
                .await?;
        }
        self.store
            .delete(&rollout_key(tenant, id), Condition::Always)
            .await
    }

    pub async fn execution(
        &self,
        device: &str,
        rollout: &str,
    ) -> Result<Option<Execution>, StoreError> {
        self.get(execution_key(device, rollout)).await
    }

    /// Saves a changed execution if it is still at `read_version`, the version it was read at.
    pub async fn update_execution(
        &self,
        execution: &Execution,
        read_version: u64,
    ) -> Result<(), StoreError> {
        self.store
            .put(execution_item(execution)?, Condition::Version(read_version))
            .await
    }

    /// A rollout's executions, by device uid.
    pub async fn executions(
        &self,
        tenant: &str,
        rollout: &str,
    ) -> Result<Vec<Execution>, StoreError> {
        self.list(Query::index(executions_pk(tenant, rollout)))
            .await
    }

    /// A device's executions of every rollout, oldest rollout id first.
    pub async fn device_executions(&self, device: &str) -> Result<Vec<Execution>, StoreError> {
        self.list(Query::prefix(format!("DEVICE#{device}"), "JOB#"))
            .await
    }

    pub async fn device_firmware(
        &self,
        device: &str,
    ) -> Result<Option<DeviceFirmware>, StoreError> {
        self.get(Key::new(format!("DEVICE#{device}"), "FIRMWARE"))
            .await
    }

    pub async fn put_device_firmware(&self, firmware: &DeviceFirmware) -> Result<(), StoreError> {
        self.put(
            Key::new(format!("DEVICE#{}", firmware.device_uid), "FIRMWARE"),
            firmware,
        )
        .await
    }
}
