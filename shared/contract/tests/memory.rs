//! The contract on the in-memory adapters (the core's test doubles).

use iot_contract::Guard;
use iot_core::ports::memory::{MemoryBlobs, MemoryMetaStore, MemoryTelemetry};
use iot_core::ports::{BlobStore, ManualClock, MetaStore, TelemetryStore};
use std::sync::Arc;

type Setup<T> = Result<(Arc<T>, Guard), Box<dyn std::error::Error + Send + Sync>>;

async fn meta_store(clock: Arc<ManualClock>) -> Setup<dyn MetaStore> {
    Ok((Arc::new(MemoryMetaStore::with_clock(clock)), Box::new(())))
}

async fn telemetry_store() -> Setup<dyn TelemetryStore> {
    Ok((Arc::new(MemoryTelemetry::default()), Box::new(())))
}

async fn blob_store() -> Setup<dyn BlobStore> {
    Ok((Arc::new(MemoryBlobs::default()), Box::new(())))
}

iot_contract::suite!();
