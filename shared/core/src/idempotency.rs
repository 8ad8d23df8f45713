//! Idempotent handling of redelivered messages, in the spirit of Powertools for AWS Lambda's
//! idempotency utility (which has no Rust version), on the [`MetaStore`] port: a conditional put
//! claims a key while the work runs (with an expiry, so a crashed handler does not block the key
//! for ever), and a completed record with a time to live makes later deliveries no-ops.

use std::future::Future;
use std::sync::Arc;

use crate::ports::{Clock, Condition, Item, Key, MetaStore, StoreError};
use crate::time::Millis;

#[derive(Clone)]
pub struct Idempotency {
    store: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
    /// How long a claim blocks other deliveries; longer than the handler can run.
    pub in_progress_for: Millis,
    /// How long a completed key is remembered; longer than the queue can redeliver.
    pub completed_for: Millis,
}

/// What became of a delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled<T> {
    /// This delivery did the work.
    Done(T),
    /// An earlier delivery completed it.
    AlreadyDone,
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError<E> {
    /// Another delivery of the same key is being handled right now: retry later.
    #[error("{0:?} is being handled by another delivery")]
    InProgress(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The work failed; the claim was released so a retry can run it again.
    #[error("{0}")]
    Failed(E),
}

const COMPLETED: &str = "completed";
const IN_PROGRESS: &str = "in_progress";

fn key_of(key: &str) -> Key {
    Key::new(format!("IDEMPOTENCY#{key}"), "STATUS")
}

impl Idempotency {
    pub fn new(store: Arc<dyn MetaStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            in_progress_for: 5 * 60_000,
            completed_for: 24 * 3_600_000,
        }
    }

    fn status(&self, status: &str, key: &str, expires_at: Millis) -> Item {
        let mut item = Item::new(key_of(key), serde_json::json!({ "status": status }));
        item.expires_at = Some(expires_at);
        item
    }

    /// Runs `work` unless a delivery with the same key completed it already.
    pub async fn run<T, E, F, Fut>(
        &self,
        key: &str,
        work: F,
    ) -> Result<Handled<T>, IdempotencyError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let now = self.clock.now_ms();
        let claim = self.status(IN_PROGRESS, key, now + self.in_progress_for);
        match self.store.put(claim, Condition::NotExists).await {
            Ok(()) => {}
            Err(StoreError::ConditionFailed(_)) => {
                let current = self.store.get(&key_of(key)).await?;
                return match current.as_ref().and_then(|i| i.data["status"].as_str()) {
                    Some(COMPLETED) => Ok(Handled::AlreadyDone),
                    _ => Err(IdempotencyError::InProgress(key.to_owned())),
                };
            }
            Err(e) => return Err(e.into()),
        }
        match work().await {
            Ok(value) => {
                let done = self.status(COMPLETED, key, self.clock.now_ms() + self.completed_for);
                self.store.put(done, Condition::Always).await?;
                Ok(Handled::Done(value))
            }
            Err(e) => {
                self.store.delete(&key_of(key), Condition::Always).await?;
                Err(IdempotencyError::Failed(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ManualClock;
    use crate::ports::memory::MemoryMetaStore;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn setup() -> (Idempotency, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(1_000));
        let store = Arc::new(MemoryMetaStore::with_clock(clock.clone()));
        (Idempotency::new(store, clock.clone()), clock)
    }

    #[tokio::test]
    async fn a_redelivery_does_not_run_the_work_again() -> Result<(), Box<dyn std::error::Error>> {
        let (idempotency, clock) = setup();
        let runs = AtomicU32::new(0);
        let work = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(7)
        };
        assert_eq!(idempotency.run("m1", work).await?, Handled::Done(7));
        assert_eq!(idempotency.run("m1", work).await?, Handled::AlreadyDone);
        assert_eq!(idempotency.run("m2", work).await?, Handled::Done(7));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // Past the completed record's time to live, the key is new again.
        clock.advance(idempotency.completed_for + 1);
        assert_eq!(idempotency.run("m1", work).await?, Handled::Done(7));
        Ok(())
    }

    #[tokio::test]
    async fn a_failure_releases_the_claim_and_a_crash_expires()
    -> Result<(), Box<dyn std::error::Error>> {
        let (idempotency, clock) = setup();
        let failed = idempotency
            .run("m1", || async { Err::<(), _>("boom".to_owned()) })
            .await;
        assert!(matches!(failed, Err(IdempotencyError::Failed(ref e)) if e == "boom"));
        assert_eq!(
            idempotency
                .run("m1", || async { Ok::<_, String>(1) })
                .await?,
            Handled::Done(1)
        );

        // A handler that died mid-work leaves a claim: others are told to retry until it expires.
        let now = clock.now_ms();
        idempotency
            .store
            .put(
                idempotency.status(IN_PROGRESS, "m2", now + idempotency.in_progress_for),
                Condition::Always,
            )
            .await?;
        let blocked = idempotency.run("m2", || async { Ok::<_, String>(2) }).await;
        assert!(matches!(blocked, Err(IdempotencyError::InProgress(_))));
        clock.advance(idempotency.in_progress_for);
        assert_eq!(
            idempotency
                .run("m2", || async { Ok::<_, String>(2) })
                .await?,
            Handled::Done(2)
        );
        Ok(())
    }
}
