//! [`BlobStore`] on the local file system: one file per key under a root directory.

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use iot_core::ports::{BlobDigest, BlobError, BlobStore, DigestWriter, check_key};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use tokio::io::AsyncWriteExt;

pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Uses (and creates) `root`.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self {
            root: root.canonicalize()?,
        })
    }

    /// The file of a key; keys are relative `a/b/c` paths without `.` or `..` segments.
    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        check_key(key)?;
        let relative = Path::new(key);
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(BlobError::InvalidKey(key.to_owned()));
        }
        Ok(self.root.join(relative))
    }
}

fn io(e: std::io::Error) -> BlobError {
    BlobError::Unavailable(e.to_string())
}

#[async_trait]
impl BlobStore for FsBlobStore {
    /// Written to a temporary file and renamed, so a reader never sees half a blob.
    async fn put(&self, key: &str, bytes: Vec<u8>, _content_type: &str) -> Result<(), BlobError> {
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
        tokio::fs::write(&temporary, bytes).await.map_err(io)?;
        tokio::fs::rename(&temporary, &path).await.map_err(io)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// Keys under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            let mut pending = vec![root.clone()];
            while let Some(dir) = pending.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io(e)),
                };
                for entry in entries {
                    let path = entry.map_err(io)?.path();
                    if path.is_dir() {
                        pending.push(path);
                    } else if let Ok(relative) = path.strip_prefix(&root) {
                        let key = relative.to_string_lossy().replace('\\', "/");
                        if key.starts_with(&prefix) && !key.contains(".tmp-") {
                            keys.push(key);
                        }
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
        .map_err(|e| BlobError::Unavailable(e.to_string()))?
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    /// Chunk by chunk into a temporary file, renamed when complete.
    async fn put_stream(
        &self,
        key: &str,
        mut chunks: BoxStream<'_, Result<Vec<u8>, BlobError>>,
        _content_type: &str,
    ) -> Result<u64, BlobError> {
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let temporary =
            path.with_extension(format!("tmp-{}-{}", std::process::id(), fastrand::u64(..)));
        let written = async {
            let mut file = tokio::fs::File::create(&temporary).await.map_err(io)?;
            let mut size = 0u64;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk?;
                file.write_all(&chunk).await.map_err(io)?;
                size += chunk.len() as u64;
            }
            file.sync_all().await.map_err(io)?;
            Ok::<u64, BlobError>(size)
        }
        .await;
        match written {
            Ok(size) => {
                tokio::fs::rename(&temporary, &path).await.map_err(io)?;
                Ok(size)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&temporary).await;
                Err(e)
            }
        }
    }

    /// A megabyte at a time.
    async fn get_stream(
        &self,
        key: &str,
    ) -> Result<Option<BoxStream<'static, Result<Vec<u8>, BlobError>>>, BlobError> {
        use tokio::io::AsyncReadExt;
        let file = match tokio::fs::File::open(self.path(key)?).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let chunks = futures_util::stream::unfold(Some(file), |file| async move {
            let mut file = file?;
            let mut buffer = vec![0u8; 1 << 20];
            match file.read(&mut buffer).await {
                Ok(0) => None,
                Ok(n) => {
                    buffer.truncate(n);
                    Some((Ok(buffer), Some(file)))
                }
                Err(e) => Some((Err(io(e)), None)),
            }
        });
        Ok(Some(chunks.boxed()))
    }

    /// Read and hashed a megabyte at a time.
    async fn digest(&self, key: &str) -> Result<Option<BlobDigest>, BlobError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || {
            let mut file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io(e)),
            };
            let mut digest = DigestWriter::default();
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buffer).map_err(io)?;
                if n == 0 {
                    return Ok(Some(digest.finish()));
                }
                digest.update(&buffer[..n]);
            }
        })
        .await
        .map_err(|e| BlobError::Unavailable(e.to_string()))?
    }

    /// A `file://` URL: on one machine the file itself is the download (no expiry).
    async fn download_url(&self, key: &str, _expires_in_secs: u64) -> Result<String, BlobError> {
        Ok(format!("file://{}", self.path(key)?.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_round_trip_list_and_delete() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = FsBlobStore::new(dir.path().join("blobs"))?;
        store
            .put(
                "dead-letters/2026-11-22/m1.json",
                b"{}".to_vec(),
                "application/json",
            )
            .await?;
        store
            .put(
                "dead-letters/2026-11-23/m2.json",
                b"[]".to_vec(),
                "application/json",
            )
            .await?;
        store
            .put("firmware/v1.bin", vec![0, 1, 2], "application/octet-stream")
            .await?;
        assert_eq!(store.get("firmware/v1.bin").await?, Some(vec![0, 1, 2]));
        assert_eq!(store.get("firmware/v2.bin").await?, None);
        assert_eq!(
            store.list("dead-letters/").await?,
            [
                "dead-letters/2026-11-22/m1.json",
                "dead-letters/2026-11-23/m2.json"
            ]
        );
        assert_eq!(store.list("").await?.len(), 3);
        assert_eq!(
            store.digest("firmware/v1.bin").await?,
            Some(BlobDigest::of(&[0, 1, 2]))
        );
        let chunks = futures_util::stream::iter([Ok(vec![3u8, 4]), Ok(vec![5])]).boxed();
        let size = store
            .put_stream("firmware/v3.bin", chunks, "application/octet-stream")
            .await?;
        assert_eq!(size, 3);
        assert_eq!(store.get("firmware/v3.bin").await?, Some(vec![3, 4, 5]));
        use futures_util::TryStreamExt;
        let streamed: Vec<Vec<u8>> = store
            .get_stream("firmware/v3.bin")
            .await?
            .ok_or("no stream")?
            .try_collect()
            .await?;
        assert_eq!(streamed.concat(), [3, 4, 5]);
        assert!(store.get_stream("firmware/none.bin").await?.is_none());
        let broken = futures_util::stream::iter([
            Ok(vec![9u8]),
            Err(BlobError::Unavailable("client went away".into())),
        ])
        .boxed();
        assert!(
            store
                .put_stream("firmware/v4.bin", broken, "x")
                .await
                .is_err()
        );
        assert_eq!(store.get("firmware/v4.bin").await?, None, "no half blob");
        store.delete("firmware/v1.bin").await?;
        store.delete("firmware/v1.bin").await?;
        assert_eq!(store.get("firmware/v1.bin").await?, None);
        assert!(
            store
                .download_url("dead-letters/2026-11-22/m1.json", 60)
                .await?
                .starts_with("file:///")
        );
        Ok(())
    }

    #[tokio::test]
    async fn keys_cannot_leave_the_root() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = FsBlobStore::new(dir.path())?;
        for key in [
            "",
            "../escape",
            "/etc/passwd",
            "a/../../b",
            "a/./b",
            "dir/",
            "a//b",
            "a\\b",
        ] {
            let result = store.put(key, vec![1], "x").await;
            assert!(
                matches!(result, Err(BlobError::InvalidKey(_))),
                "{key:?}: {result:?}"
            );
        }
        Ok(())
    }
}
