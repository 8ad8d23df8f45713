//! Over-the-air firmware updates: packages, rollouts and each device's execution of one.
//!
//! A package is a firmware image of one product, ready once the platform has checked the
//! uploaded bytes against the size and SHA-256 it was declared with. A rollout sends a ready
//! package to a set of devices at a rate, with abort rules and an in-progress timeout, the
//! way AWS IoT Jobs runs a job: on AWS it is one, and on one machine [`engine`] applies the
//! same rules, so a device's OTA client works against both.

mod document;
pub mod engine;
mod execution;
pub mod jobs_api;
mod package;
mod rollout;

pub use document::{JobDocument, job_id};
pub use execution::{Execution, ExecutionStatus, ExecutionUpdateError, HistoryEntry};
pub use package::{FirmwarePackage, PackageError, PackageStatus, firmware_key};
pub use rollout::{
    AbortRule, ExponentialRate, FailureKind, Rollout, RolloutCounts, RolloutError, RolloutRate,
    RolloutStatus, RolloutTarget,
};

/// What a device holds after a rollout: the version it last reported installing.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceFirmware {
    pub device_uid: String,
    pub version: String,
    /// The rollout that installed it.
    pub rollout_id: String,
    pub updated_at: crate::time::Millis,
}
