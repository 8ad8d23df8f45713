//! The contract on the one-machine adapters: SQLite and the file system.

use iot_contract::Guard;
use iot_core::ports::{BlobStore, ManualClock, MetaStore, TelemetryStore};
use iot_embedded::blobs::FsBlobStore;
use iot_embedded::sqlite::{Database, SqliteMetaStore, SqliteTelemetry};
use std::sync::Arc;

type Setup<T> = Result<(Arc<T>, Guard), Box<dyn std::error::Error + Send + Sync>>;

async fn meta_store(clock: Arc<ManualClock>) -> Setup<dyn MetaStore> {
    let store = SqliteMetaStore::with_clock(Database::in_memory()?, clock);
    Ok((Arc::new(store), Box::new(())))
}

async fn telemetry_store() -> Setup<dyn TelemetryStore> {
    Ok((
        Arc::new(SqliteTelemetry::new(Database::in_memory()?)),
        Box::new(()),
    ))
}

async fn blob_store() -> Setup<dyn BlobStore> {
    let dir = tempfile::tempdir()?;
    let store = FsBlobStore::new(dir.path())?;
    Ok((Arc::new(store), Box::new(dir)))
}

iot_contract::suite!();
