use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sha2::{Digest, Sha256};
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

    /// A URL a client can PUT the blob's bytes to for `expires_in_secs`, so large uploads
    /// bypass the API (S3). `None`: the store has no such URL, and uploads go through the
    /// API's own route into [`Self::put_stream`] (one machine).
    async fn upload_url(
        &self,
        key: &str,
        content_type: &str,
        expires_in_secs: u64,
    ) -> Result<Option<String>, BlobError> {
        let _ = (key, content_type, expires_in_secs);
        Ok(None)
    }

    /// Writes a blob from chunks as they come; returns its size. Stores that can should not
    /// hold the whole blob in memory (firmware of a gigabyte).
    async fn put_stream(
        &self,
        key: &str,
        mut chunks: BoxStream<'_, Result<Vec<u8>, BlobError>>,
        content_type: &str,
    ) -> Result<u64, BlobError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = chunks.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        let size = bytes.len() as u64;
        self.put(key, bytes, content_type).await?;
        Ok(size)
    }

    /// The blob's bytes in chunks, `None` if absent. Stores that can should not hold the
    /// whole blob in memory.
    async fn get_stream(
        &self,
        key: &str,
    ) -> Result<Option<BoxStream<'static, Result<Vec<u8>, BlobError>>>, BlobError> {
        Ok(self
            .get(key)
            .await?
            .map(|bytes| futures_util::stream::once(async move { Ok(bytes) }).boxed()))
    }

    /// The blob's size and SHA-256, `None` if absent. Stores that can should hash it as it
    /// streams rather than holding it whole.
    async fn digest(&self, key: &str) -> Result<Option<BlobDigest>, BlobError> {
        Ok(self.get(key).await?.map(|bytes| BlobDigest::of(&bytes)))
    }
}

/// A blob's size and lower-case hex SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobDigest {
    pub size: u64,
    pub sha256: String,
}

impl BlobDigest {
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        }
    }
}

/// Hashes a blob chunk by chunk, for stores that stream it.
#[derive(Default)]
pub struct DigestWriter {
    hasher: Sha256,
    size: u64,
}

impl DigestWriter {
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
    }

    pub fn finish(self) -> BlobDigest {
        BlobDigest {
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        }
    }
}
