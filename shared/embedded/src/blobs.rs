//! [`BlobStore`] on the local file system: one file per key under a root directory.

use async_trait::async_trait;
use iot_core::ports::{BlobError, BlobStore, check_key};
use std::path::{Component, Path, PathBuf};

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
