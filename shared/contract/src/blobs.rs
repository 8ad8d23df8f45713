//! [`BlobStore`]: put, get, list, delete, download URLs, and key rules.

use iot_core::ports::{BlobError, BlobStore};

use crate::{Outcome, ensure, same};

pub async fn blobs_round_trip_list_and_delete(store: &dyn BlobStore) -> Outcome {
    let firmware = vec![0u8, 1, 2, 255];
    store
        .put(
            "firmware/p1/1.0.0.bin",
            firmware.clone(),
            "application/octet-stream",
        )
        .await?;
    store
        .put("firmware/p1/1.1.0.bin", vec![7], "application/octet-stream")
        .await?;
    store
        .put("exports/t/e.csv", b"a,b\n".to_vec(), "text/csv")
        .await?;
    same(
        store.get("firmware/p1/1.0.0.bin").await?,
        Some(firmware),
        "bytes round trip",
    )?;
    same(
        store.get("firmware/p1/none.bin").await?,
        None,
        "a missing blob",
    )?;
    same(
        store.list("firmware/").await?,
        vec![
            "firmware/p1/1.0.0.bin".to_owned(),
            "firmware/p1/1.1.0.bin".into(),
        ],
        "list by prefix, sorted",
    )?;
    let url = store.download_url("exports/t/e.csv", 300).await?;
    ensure(
        url.contains("exports/t/e.csv"),
        format!("the URL names the blob: {url}"),
    )?;
    store.delete("firmware/p1/1.0.0.bin").await?;
    same(store.get("firmware/p1/1.0.0.bin").await?, None, "deleted")?;
    same(store.list("firmware/").await?.len(), 1, "one left")
}

pub async fn keys_that_could_escape_are_refused(store: &dyn BlobStore) -> Outcome {
    for key in ["../x", "a/../../x", "", "a//b", "./a", "a\\b"] {
        ensure(
            matches!(
                store.put(key, vec![1], "text/plain").await,
                Err(BlobError::InvalidKey(_))
            ),
            format!("key {key:?} must be refused"),
        )?;
    }
    Ok(())
}
