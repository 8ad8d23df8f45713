use async_trait::async_trait;
use thiserror::Error;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum BlobError {
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
}

/// Refuses keys every store must refuse: keys are relative `a/b/c` paths with no empty, `.` or
/// `..` segment and no backslash, so they mean the same in S3 and in a directory.
pub fn check_key(key: &str) -> Result<(), BlobError> {
    let plain = key.split('/').all(|segment| {
        !segment.is_empty() && segment != "." && segment != ".." && !segment.contains('\\')
    });
    if plain {
        Ok(())
    } else {
        Err(BlobError::InvalidKey(key.to_owned()))
    }
}

/// Files: firmware images, exports, raw dead letters (S3, or a directory).
#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), BlobError>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError>;
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError>;
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    /// A URL a client can download the blob from for `expires_in_secs`.
    async fn download_url(&self, key: &str, expires_in_secs: u64) -> Result<String, BlobError>;
}
