//! Firmware updates: checking an uploaded package, starting and cancelling rollouts, and
//! recording what devices report, wherever the jobs run (AWS IoT Jobs or the local engine).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use thiserror::Error;

use crate::model::Device;
use crate::ota::{
    DeviceFirmware, Execution, ExecutionStatus, ExecutionUpdateError, FirmwarePackage,
    PackageError, PackageStatus, Rollout, RolloutCounts, RolloutError, RolloutStatus,
    RolloutTarget, engine, firmware_key,
};
use crate::ports::{
    BlobError, BlobStore, Clock, DeviceGateway, GatewayError, RolloutJob, StoreError,
};
use crate::repo::Catalog;
use crate::time::Millis;

#[derive(Debug, Error)]
pub enum OtaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("firmware package {0:?} does not exist")]
    NoPackage(String),
    #[error("nothing is uploaded for firmware package {0:?} yet")]
    NotUploaded(String),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("firmware package {id:?} is {status:?}, not ready: upload its image and check it")]
    PackageNotReady { id: String, status: PackageStatus },
    #[error(transparent)]
    Rollout(#[from] RolloutError),
    #[error("rollout {0:?} exists already")]
    RolloutExists(String),
    #[error("rollout {0:?} does not exist")]
    NoRollout(String),
    #[error("rollout {id:?} is {status:?} already")]
    RolloutOver { id: String, status: RolloutStatus },
    /// Absent, another tenant's, or out of the caller's departments: the same answer.
    #[error("device {0:?} does not exist")]
    UnknownDevice(String),
    #[error("device {uid:?} is a {product:?}, not a {wanted:?}: the package is for that product")]
    OtherProduct {
        uid: String,
        product: String,
        wanted: String,
    },
    #[error(
        "device {0:?} has no certificate, so it cannot take jobs: provision it (POST /v1/devices/{0}/certificate) or leave it out"
    )]
    NoIdentity(String),
    #[error("a download link could not be made: {0}")]
    Link(String),
    #[error("department {0:?} does not exist")]
    UnknownDepartment(String),
    #[error(
        "the target has no device that needs version {0}: every one is on it already, or it has none"
    )]
    EmptyTarget(String),
    #[error("device {device:?} has no job {rollout:?}")]
    NoExecution { device: String, rollout: String },
    #[error(transparent)]
    Update(#[from] ExecutionUpdateError),
    #[error("the execution changed while it was being updated; read it and try again")]
    Conflict,
}

/// What [`OtaService::advance`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Advanced {
    /// Devices whose next pending execution changed.
    pub notify: Vec<String>,
    /// Rollouts an abort rule cancelled.
    pub aborted: Vec<Rollout>,
}

/// A rollout with its executions counted by status.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutProgress {
    pub rollout: Rollout,
    pub counts: RolloutCounts,
}

pub struct OtaService {
    catalog: Catalog,
    firmware: Arc<dyn BlobStore>,
    gateway: Arc<dyn DeviceGateway>,
    clock: Arc<dyn Clock>,
}

impl OtaService {
    pub fn new(
        catalog: Catalog,
        firmware: Arc<dyn BlobStore>,
        gateway: Arc<dyn DeviceGateway>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            catalog,
            firmware,
            gateway,
            clock,
        }
    }

    /// Only what records statuses ([`Self::record`], [`Self::job_event`]): for the function
    /// that reads IoT Core's job events, which never stores images nor starts jobs.
    pub fn recorder(catalog: Catalog, clock: Arc<dyn Clock>) -> Self {
        Self::new(
            catalog,
            Arc::new(super::ota_recorder::NoImages),
            Arc::new(super::ota_recorder::NoJobs),
            clock,
        )
    }

    /// An IoT Core job event: the rollout completed, or was cancelled (by a user, recorded
    /// already; otherwise by its abort rules). Answers the rollout if this changed it.
    pub async fn job_event(
        &self,
        job: &str,
        operation: &str,
        at: Millis,
    ) -> Result<Option<Rollout>, OtaError> {
        let Some((tenant, id)) = self.catalog.rollout_of_job(job).await? else {
            return Ok(None);
        };
        let mut rollout = self.rollout(&tenant, &id).await?;
        if rollout.status.is_over() {
            return Ok(None);
        }
        match operation {
            "completed" => rollout.status = RolloutStatus::Completed,
            "canceled" => {
                rollout.status = RolloutStatus::Aborted;
                rollout.reason = Some("cancelled by its abort rules (AWS IoT Jobs)".into());
            }
            _ => return Ok(None),
        }
        rollout.ended_at = Some(at);
        self.catalog.put_rollout(&rollout).await?;
        Ok(Some(rollout))
    }

    /// A job execution event of IoT Core: `job` of the thing `device`.
    pub async fn job_execution_event(
        &self,
        job: &str,
        device: &str,
        status: ExecutionStatus,
        details: BTreeMap<String, String>,
        at: Millis,
    ) -> Result<Option<Execution>, OtaError> {
        let Some((_, rollout)) = self.catalog.rollout_of_job(job).await? else {
            return Ok(None);
        };
        match self.record(device, &rollout, status, details, at).await {
            Ok(execution) => Ok(Some(execution)),
            Err(OtaError::NoExecution { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn firmware_store(&self) -> &Arc<dyn BlobStore> {
        &self.firmware
    }

    pub async fn package(&self, tenant: &str, id: &str) -> Result<FirmwarePackage, OtaError> {
        self.catalog
            .package(tenant, id)
            .await?
            .ok_or_else(|| OtaError::NoPackage(id.to_owned()))
    }

    /// Reads the uploaded image back and marks the package ready, or rejected with why: the
    /// verdict is saved either way, and a mismatch is also the error.
    pub async fn check_package(&self, tenant: &str, id: &str) -> Result<FirmwarePackage, OtaError> {
        let mut package = self.package(tenant, id).await?;
        let digest = self
            .firmware
            .digest(&firmware_key(tenant, id))
            .await?
            .ok_or_else(|| OtaError::NotUploaded(id.to_owned()))?;
        let verdict = package.check_upload(digest.size, &digest.sha256);
        self.catalog.put_package(&package).await?;
        verdict?;
        Ok(package)
    }

    /// Deletes a package and its image, unless a rollout that is not over uses it.
    pub async fn delete_package(&self, tenant: &str, id: &str) -> Result<(), OtaError> {
        self.package(tenant, id).await?;
        if let Some(rollout) = self
            .catalog
            .rollouts(tenant)
            .await?
            .into_iter()
            .find(|r| r.package_id == id && !r.status.is_over())
        {
            return Err(OtaError::RolloutOver {
                id: rollout.id,
                status: rollout.status,
            });
        }
        self.firmware.delete(&firmware_key(tenant, id)).await?;
        self.catalog.delete_entity(tenant, "FIRMWARE", id).await?;
        Ok(())
    }

    /// The devices a target names, of the package's product, that `visible` lets the caller
    /// reach; devices already on the package's version are returned apart.
    async fn targets(
        &self,
        tenant: &str,
        package: &FirmwarePackage,
        target: &RolloutTarget,
        visible: &(dyn Fn(&Device) -> bool + Sync),
    ) -> Result<Vec<Device>, OtaError> {
        let product = &package.product_id;
        let devices: Vec<Device> = match target {
            RolloutTarget::Devices { uids } => {
                let mut out = Vec::with_capacity(uids.len());
                for uid in uids.iter().collect::<BTreeSet<_>>() {
                    let device = self
                        .catalog
                        .device(uid)
                        .await?
                        .filter(|d| d.tenant_id == tenant && visible(d))
                        .ok_or_else(|| OtaError::UnknownDevice(uid.clone()))?;
                    if &device.product_id != product {
                        return Err(OtaError::OtherProduct {
                            uid: uid.clone(),
                            product: device.product_id,
                            wanted: product.clone(),
                        });
                    }
                    out.push(device);
                }
                out
            }
            RolloutTarget::Department { department_id } => {
                let in_department: Vec<Device> = self
                    .catalog
                    .devices(tenant, Some(product))
                    .await?
                    .into_iter()
                    .filter(|d| &d.department_id == department_id)
                    .collect();
                let known = self
                    .catalog
                    .department(tenant, department_id)
                    .await?
                    .is_some();
                if !known || in_department.iter().any(|d| !visible(d)) {
                    return Err(OtaError::UnknownDepartment(department_id.clone()));
                }
                in_department
            }
            RolloutTarget::Product => self
                .catalog
                .devices(tenant, Some(product))
                .await?
                .into_iter()
                .filter(|d| visible(d))
                .collect(),
        };
        Ok(devices)
    }

    /// Starts a rollout of a ready package to the devices of its target that the caller may
    /// reach and that are not on its version already.
    pub async fn start_rollout(
        &self,
        mut rollout: Rollout,
        visible: &(dyn Fn(&Device) -> bool + Sync),
    ) -> Result<Rollout, OtaError> {
        rollout.check()?;
        let tenant = rollout.tenant_id.clone();
        let package = self.package(&tenant, &rollout.package_id).await?;
        if package.status != PackageStatus::Ready {
            return Err(OtaError::PackageNotReady {
                id: package.id,
                status: package.status,
            });
        }
        if self.catalog.rollout(&tenant, &rollout.id).await?.is_some() {
            return Err(OtaError::RolloutExists(rollout.id));
        }
        let now = self.clock.now_ms();
        let mut devices = Vec::new();
        let mut skipped = Vec::new();
        for device in self
            .targets(&tenant, &package, &rollout.target, visible)
            .await?
        {
            let current = self.catalog.device_firmware(&device.uid).await?;
            if current.is_some_and(|f| f.version == package.version) {
                skipped.push(device.uid);
            } else {
                devices.push(device.uid);
            }
        }
        if devices.is_empty() {
            return Err(OtaError::EmptyTarget(package.version));
        }
        rollout.version = package.version.clone();
        rollout.skipped = skipped;
        rollout.status = if rollout.start_at.is_some_and(|at| at > now) {
            RolloutStatus::Scheduled
        } else {
            RolloutStatus::InProgress
        };
        rollout.reason = None;
        rollout.created_at = now;
        rollout.ended_at = None;
        let executions: Vec<Execution> = devices
            .iter()
            .map(|uid| Execution::queued(&rollout.id, &tenant, uid, now))
            .collect();
        self.catalog
            .create_rollout(&rollout, &executions)
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed(_) => OtaError::RolloutExists(rollout.id.clone()),
                e => e.into(),
            })?;
        let job = RolloutJob {
            rollout: &rollout,
            package: &package,
            devices: &devices,
        };
        if let Err(e) = self.gateway.start_rollout(&job).await {
            // Nothing reached a device: the rollout is taken back, so it can be fixed and
            // started again under its id.
            self.catalog.delete_rollout(&tenant, &rollout.id).await?;
            return Err(match e {
                GatewayError::UnknownDevice(uid) => OtaError::NoIdentity(uid),
                e => e.into(),
            });
        }
        Ok(rollout)
    }

    pub async fn rollout(&self, tenant: &str, id: &str) -> Result<Rollout, OtaError> {
        self.catalog
            .rollout(tenant, id)
            .await?
            .ok_or_else(|| OtaError::NoRollout(id.to_owned()))
    }

    pub async fn progress(&self, tenant: &str, id: &str) -> Result<RolloutProgress, OtaError> {
        let rollout = self.rollout(tenant, id).await?;
        let executions = self.catalog.executions(tenant, id).await?;
        let counts = RolloutCounts::of(executions.iter().map(|e| &e.status));
        Ok(RolloutProgress { rollout, counts })
    }

    /// A user cancels a rollout: queued executions end, and with `force` those in progress.
    pub async fn cancel(
        &self,
        tenant: &str,
        id: &str,
        force: bool,
        by: &str,
    ) -> Result<Rollout, OtaError> {
        let mut rollout = self.rollout(tenant, id).await?;
        if rollout.status.is_over() {
            return Err(OtaError::RolloutOver {
                id: rollout.id,
                status: rollout.status,
            });
        }
        let now = self.clock.now_ms();
        self.gateway.cancel_rollout(&rollout, force).await?;
        self.end_executions(&rollout, force, now).await?;
        rollout.status = RolloutStatus::Canceled;
        rollout.reason = Some(format!("cancelled by {by}"));
        rollout.ended_at = Some(now);
        self.catalog.put_rollout(&rollout).await?;
        Ok(rollout)
    }

    /// Cancels the queued executions of a rollout (and those in progress, with `force`).
    pub async fn end_executions(
        &self,
        rollout: &Rollout,
        force: bool,
        at: Millis,
    ) -> Result<(), OtaError> {
        for execution in self
            .catalog
            .executions(&rollout.tenant_id, &rollout.id)
            .await?
        {
            let ends = execution.status == ExecutionStatus::Queued
                || (force && execution.status == ExecutionStatus::InProgress);
            if ends {
                self.record(
                    &execution.device_uid,
                    &rollout.id,
                    ExecutionStatus::Canceled,
                    BTreeMap::new(),
                    at,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// A status the platform learned (an AWS IoT job execution event, a timeout, a cancel):
    /// recorded unless the execution has ended already. A success sets the device's version.
    pub async fn record(
        &self,
        device: &str,
        rollout: &str,
        status: ExecutionStatus,
        details: BTreeMap<String, String>,
        at: Millis,
    ) -> Result<Execution, OtaError> {
        self.change(device, rollout, |e| {
            e.record(status, details.clone(), at);
            Ok(())
        })
        .await
    }

    /// A device's own report (the jobs MQTT API on one machine), under the device rules.
    pub async fn device_update(
        &self,
        device: &str,
        rollout: &str,
        status: ExecutionStatus,
        details: BTreeMap<String, String>,
        expected_version: Option<u64>,
    ) -> Result<Execution, OtaError> {
        let now = self.clock.now_ms();
        self.change(device, rollout, |e| {
            e.device_update(status, details.clone(), expected_version, now)
        })
        .await
    }

    async fn change(
        &self,
        device: &str,
        rollout: &str,
        apply: impl Fn(&mut Execution) -> Result<(), ExecutionUpdateError>,
    ) -> Result<Execution, OtaError> {
        for _ in 0..5 {
            let mut execution =
                self.catalog
                    .execution(device, rollout)
                    .await?
                    .ok_or_else(|| OtaError::NoExecution {
                        device: device.to_owned(),
                        rollout: rollout.to_owned(),
                    })?;
            let read_version = execution.version_number;
            apply(&mut execution)?;
            if execution.version_number == read_version {
                return Ok(execution);
            }
            match self
                .catalog
                .update_execution(&execution, read_version)
                .await
            {
                Ok(()) => {}
                Err(StoreError::ConditionFailed(_)) => continue,
                Err(e) => return Err(e.into()),
            }
            if execution.status == ExecutionStatus::Succeeded {
                self.installed(&execution).await?;
            }
            return Ok(execution);
        }
        Err(OtaError::Conflict)
    }

    /// Applies the jobs rules to every active rollout at `now`, where the platform runs jobs
    /// itself: starts what is due, releases devices at the rate, times out stalled
    /// executions, aborts on a broken rule, completes what has ended. Answers the devices
    /// whose next pending execution changed (to tell them), and the rollouts it aborted.
    pub async fn advance(&self, now: Millis) -> Result<Advanced, OtaError> {
        let mut advanced = Advanced::default();
        for mut rollout in self.catalog.active_rollouts().await? {
            let (tenant, id) = (rollout.tenant_id.clone(), rollout.id.clone());
            let executions = self.catalog.executions(&tenant, &id).await?;
            let plan = engine::plan(&rollout, &executions, now);
            let mut changed = plan.start;
            if plan.start {
                rollout.status = RolloutStatus::InProgress;
            }
            for uid in &plan.time_out {
                self.record(uid, &id, ExecutionStatus::TimedOut, BTreeMap::new(), now)
                    .await?;
                advanced.notify.push(uid.clone());
            }
            if let Some(reason) = plan.abort {
                let pending: Vec<String> = executions
                    .iter()
                    .filter(|e| e.is_pending() && e.status == ExecutionStatus::Queued)
                    .map(|e| e.device_uid.clone())
                    .collect();
                self.end_executions(&rollout, false, now).await?;
                advanced.notify.extend(pending);
                rollout.status = RolloutStatus::Aborted;
                rollout.reason = Some(reason);
                rollout.ended_at = Some(now);
                advanced.aborted.push(rollout.clone());
                changed = true;
            } else if plan.complete {
                rollout.status = RolloutStatus::Completed;
                rollout.ended_at = Some(now);
                changed = true;
            }
            // Executions not yet released are as read above: no device can see them to change
            // them, and timeouts only touch those in progress.
            for mut execution in executions
                .into_iter()
                .filter(|e| plan.release.contains(&e.device_uid))
            {
                let version = execution.version_number;
                execution.release(now);
                self.catalog.update_execution(&execution, version).await?;
                advanced.notify.push(execution.device_uid);
            }
            if changed {
                self.catalog.put_rollout(&rollout).await?;
            }
        }
        Ok(advanced)
    }

    async fn installed(&self, execution: &Execution) -> Result<(), OtaError> {
        let rollout = self
            .rollout(&execution.tenant_id, &execution.rollout_id)
            .await?;
        self.catalog
            .put_device_firmware(&DeviceFirmware {
                device_uid: execution.device_uid.clone(),
                version: rollout.version,
                rollout_id: rollout.id,
                updated_at: execution.updated_at,
            })
            .await?;
        Ok(())
    }
}
