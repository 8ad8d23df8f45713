//! The job document a device receives: the same on AWS IoT Jobs and on one machine.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{FirmwarePackage, Rollout};

/// What a device's OTA client reads from `execution.jobDocument`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobDocument {
    /// Always `firmware_update`.
    pub operation: String,
    pub rollout_id: String,
    pub package_id: String,
    pub version: String,
    pub size: u64,
    /// Lower-case hex; the device checks the downloaded image against it before installing.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Where to download the image. On AWS a presigned S3 URL IoT Jobs makes fresh for each
    /// delivery; on one machine a signed link of the local API, minted at each delivery too.
    pub url: String,
}

impl JobDocument {
    pub fn new(rollout: &Rollout, package: &FirmwarePackage, url: String) -> Self {
        Self {
            operation: "firmware_update".into(),
            rollout_id: rollout.id.clone(),
            package_id: package.id.clone(),
            version: package.version.clone(),
            size: package.size,
            sha256: package.sha256.clone(),
            signature: package.signature.clone(),
            url,
        }
    }
}

/// The job id of a tenant's rollout, unique across tenants in one account (AWS job ids are
/// per account, 64 characters of `[a-zA-Z0-9_-]`): the rollout id and a digest of the pair.
pub fn job_id(tenant: &str, rollout: &str) -> String {
    let digest = Sha256::digest(format!("{tenant}\0{rollout}").as_bytes());
    format!("{rollout}-{}", &hex::encode(digest)[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_differ_by_tenant_and_fit_aws() {
        let a = job_id("acme", "spring-release");
        assert_ne!(a, job_id("rival", "spring-release"));
        assert!(a.starts_with("spring-release-"));
        let longest = job_id("acme", &"r".repeat(48));
        assert!(longest.len() <= 64, "{}", longest.len());
        assert!(
            longest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
