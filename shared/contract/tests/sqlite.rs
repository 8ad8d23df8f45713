//! The contract on the one-machine adapters: SQLite and the file system.

use iot_contract::Guard;
use iot_contract::messaging::TakeAll;
use iot_core::ports::{BlobStore, ManualClock, MetaStore, TelemetryStore};
use iot_core::ports::{MessageQueue, QueueMessage, Scheduler, SystemClock};
use iot_embedded::blobs::FsBlobStore;
use iot_embedded::sqlite::{
    Database, SqliteMetaStore, SqliteQueue, SqliteScheduler, SqliteTelemetry,
};
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

async fn queue() -> Result<
    (Arc<dyn MessageQueue>, TakeAll<'static>, Guard),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let queue = SqliteQueue::new(Database::in_memory()?, "contract", Arc::new(SystemClock));
    let inbox = queue.clone();
    let take_all: TakeAll<'static> = Box::new(move || {
        let inbox = inbox.clone();
        Box::pin(async move {
            let mut all = Vec::new();
            loop {
                let batch = inbox
                    .receive(10, std::time::Duration::from_secs(30))
                    .await
                    .map_err(|e| e.to_string())?;
                if batch.is_empty() {
                    return Ok(all);
                }
                let seqs = batch.iter().map(|m| m.seq).collect();
                all.extend(batch.into_iter().map(|m| QueueMessage {
                    id: m.message_id,
                    body: m.body,
                }));
                inbox.delete(seqs).await.map_err(|e| e.to_string())?;
            }
        })
    });
    Ok((Arc::new(queue), take_all, Box::new(())))
}

async fn scheduler() -> Setup<dyn Scheduler> {
    Ok((
        Arc::new(SqliteScheduler::new(Database::in_memory()?)),
        Box::new(()),
    ))
}

iot_contract::suite!();
