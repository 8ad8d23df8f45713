//! The contract on the in-memory adapters (the core's test doubles).

use iot_contract::Guard;
use iot_contract::messaging::TakeAll;
use iot_core::ports::memory::{
    MemoryBlobs, MemoryMetaStore, MemoryQueue, MemoryScheduler, MemoryTelemetry,
};
use iot_core::ports::{BlobStore, ManualClock, MessageQueue, MetaStore, Scheduler, TelemetryStore};
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

async fn queue() -> Result<
    (Arc<dyn MessageQueue>, TakeAll<'static>, Guard),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let queue = Arc::new(MemoryQueue::default());
    let inbox = queue.clone();
    let take_all: TakeAll<'static> = Box::new(move || {
        let inbox = inbox.clone();
        Box::pin(async move { Ok(inbox.drain()) })
    });
    Ok((queue, take_all, Box::new(())))
}

async fn scheduler() -> Setup<dyn Scheduler> {
    Ok((Arc::new(MemoryScheduler::default()), Box::new(())))
}

iot_contract::suite!();
