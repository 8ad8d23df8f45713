//! A firmware package: declared first, ready only once its uploaded bytes match.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::time::Millis;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PackageStatus {
    /// Declared; its bytes are not uploaded or not checked yet.
    AwaitingUpload,
    /// The uploaded object has the declared size and SHA-256.
    Ready,
    /// The uploaded object differs; see `rejection`. Upload again and check again.
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FirmwarePackage {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.-]{1,128}$"))]
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub product_id: String,
    /// The version the device reports once it runs this image, e.g. `2.1.0`.
    pub version: String,
    #[serde(default)]
    pub notes: String,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the image.
    pub sha256: String,
    /// A vendor signature handed to devices as given (the platform does not check it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub status: PackageStatus,
    /// Why the upload was refused, when `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub rejection: Option<String>,
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub created_at: Millis,
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub created_by: String,
}

/// Where a package's image is kept in the firmware store.
pub fn firmware_key(tenant: &str, package_id: &str) -> String {
    format!("firmware/{tenant}/{package_id}.bin")
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PackageError {
    #[error("sha256 must be 64 hex digits")]
    BadDigest,
    #[error("size must be at least one byte")]
    Empty,
    #[error("version must be 1 to 64 characters of letters, digits, `.`, `-`, `+` or `_`")]
    BadVersion,
    #[error("the upload has {actual} bytes; the package declares {declared}")]
    SizeDiffers { declared: u64, actual: u64 },
    #[error("the upload's SHA-256 is {actual}; the package declares {declared}")]
    DigestDiffers { declared: String, actual: String },
}

impl PackageError {
    /// The request field the error is about.
    pub fn pointer(&self) -> &'static str {
        match self {
            Self::BadDigest | Self::DigestDiffers { .. } => "/sha256",
            Self::Empty | Self::SizeDiffers { .. } => "/size",
            Self::BadVersion => "/version",
        }
    }
}

impl FirmwarePackage {
    /// Checks what a client declared, and normalises the digest to lower case.
    pub fn check_declared(&mut self) -> Result<(), PackageError> {
        self.sha256 = self.sha256.to_ascii_lowercase();
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PackageError::BadDigest);
        }
        if self.size == 0 {
            return Err(PackageError::Empty);
        }
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_');
        if self.version.is_empty() || self.version.len() > 64 || !self.version.chars().all(plain) {
            return Err(PackageError::BadVersion);
        }
        Ok(())
    }

    /// Ready if the uploaded object is what was declared; rejected, with why, if not.
    pub fn check_upload(&mut self, size: u64, sha256: &str) -> Result<(), PackageError> {
        let verdict = if size != self.size {
            Err(PackageError::SizeDiffers {
                declared: self.size,
                actual: size,
            })
        } else if !sha256.eq_ignore_ascii_case(&self.sha256) {
            Err(PackageError::DigestDiffers {
                declared: self.sha256.clone(),
                actual: sha256.to_ascii_lowercase(),
            })
        } else {
            Ok(())
        };
        match &verdict {
            Ok(()) => {
                self.status = PackageStatus::Ready;
                self.rejection = None;
            }
            Err(e) => {
                self.status = PackageStatus::Rejected;
                self.rejection = Some(e.to_string());
            }
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package() -> FirmwarePackage {
        FirmwarePackage {
            id: "fw-2".into(),
            tenant_id: "acme".into(),
            product_id: "pump".into(),
            version: "2.0.0".into(),
            notes: String::new(),
            size: 3,
            sha256: "AB".repeat(32),
            signature: None,
            status: PackageStatus::AwaitingUpload,
            rejection: None,
            created_at: 0,
            created_by: "admin".into(),
        }
    }

    #[test]
    fn a_declared_package_needs_a_digest_a_size_and_a_plain_version() {
        let mut ok = package();
        assert_eq!(ok.check_declared(), Ok(()));
        assert_eq!(ok.sha256, "ab".repeat(32), "normalised to lower case");
        let mut short = package();
        short.sha256 = "ab".into();
        assert_eq!(short.check_declared(), Err(PackageError::BadDigest));
        let mut empty = package();
        empty.size = 0;
        assert_eq!(empty.check_declared(), Err(PackageError::Empty));
        let mut spaced = package();
        spaced.version = "2 0".into();
        assert_eq!(spaced.check_declared(), Err(PackageError::BadVersion));
    }

    #[test]
    fn only_the_declared_bytes_make_a_package_ready() {
        let mut fw = package();
        fw.check_declared().unwrap();
        let err = fw.check_upload(4, &"ab".repeat(32)).unwrap_err();
        assert_eq!(err.pointer(), "/size");
        assert_eq!(fw.status, PackageStatus::Rejected);
        assert!(fw.check_upload(3, &"cd".repeat(32)).is_err());
        assert_eq!(fw.status, PackageStatus::Rejected);
        assert_eq!(fw.check_upload(3, &"AB".repeat(32)), Ok(()));
        assert_eq!((fw.status, fw.rejection), (PackageStatus::Ready, None));
    }
}
