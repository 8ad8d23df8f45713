//! What every adapter of a port must do, as async checks over `dyn` ports. The tests in
//! `tests/` run each check against every backend (in memory, SQLite, and AWS on an emulator),
//! so the adapters cannot drift apart. A check returns an error describing the first
//! difference.
//!
//! Not in a message's flow: these checks keep each step's adapters alike on every backend.

pub use iot_core;

pub mod blobs;
pub mod messaging;
pub mod meta;
pub mod telemetry;

pub type Outcome = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Fails the check with a message when `condition` is false.
fn ensure(condition: bool, message: impl Into<String>) -> Outcome {
    if condition {
        Ok(())
    } else {
        Err(message.into().into())
    }
}

/// Fails the check unless `left == right`.
fn same<T: PartialEq + std::fmt::Debug>(left: T, right: T, what: &str) -> Outcome {
    ensure(
        left == right,
        format!("{what}: got {left:?}, expected {right:?}"),
    )
}

/// Whatever keeps a backend alive for the length of a test (a temporary directory, a table to
/// delete); dropped at the end.
pub type Guard = Box<dyn std::any::Any + Send>;

/// Generates one `#[tokio::test]` per check. The invoking test file defines:
/// `async fn meta_store(clock: Arc<ManualClock>) -> Result<(Arc<dyn MetaStore>, Guard), _>`,
/// `async fn telemetry_store() -> Result<(Arc<dyn TelemetryStore>, Guard), _>` and
/// `async fn blob_store() -> Result<(Arc<dyn BlobStore>, Guard), _>`,
/// `async fn queue() -> Result<(Arc<dyn MessageQueue>, TakeAll<'static>, Guard), _>` and
/// `async fn scheduler() -> Result<(Arc<dyn Scheduler>, Guard), _>`.
#[macro_export]
macro_rules! suite {
    () => {
        $crate::suite!(@meta conditional_writes_follow_the_version, queries_page_in_both_directions,
            the_index_lists_items_by_their_index_key, transactions_are_all_or_nothing);
        $crate::suite!(@telemetry range_latest_and_aggregates, rewriting_a_point_replaces_it,
            expiry_deletes_old_points_under_one_prefix);
        $crate::suite!(@blobs blobs_round_trip_list_and_delete, keys_that_could_escape_are_refused);

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn sent_messages_arrive_once_each() -> $crate::Outcome {
            let (queue, take_all, _guard) = queue().await?;
            $crate::messaging::sent_messages_arrive_once_each(queue.as_ref(), take_all).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn schedules_are_validated_replaced_and_deleted() -> $crate::Outcome {
            let (scheduler, _guard) = scheduler().await?;
            $crate::messaging::schedules_are_validated_replaced_and_deleted(scheduler.as_ref()).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn expired_items_are_absent() -> $crate::Outcome {
            let clock = std::sync::Arc::new($crate::iot_core::ports::ManualClock::new(1_795_737_597_000));
            let (store, _guard) = meta_store(clock.clone()).await?;
            $crate::meta::expired_items_are_absent(store.as_ref(), &clock).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_catalog_runs_on_it() -> $crate::Outcome {
            let clock = std::sync::Arc::new($crate::iot_core::ports::ManualClock::new(1_795_737_597_000));
            let (store, _guard) = meta_store(clock).await?;
            $crate::meta::the_catalog_runs_on_it(store).await
        }
    };
    (@meta $($check:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() -> $crate::Outcome {
            let clock = std::sync::Arc::new($crate::iot_core::ports::ManualClock::new(1_795_737_597_000));
            let (store, _guard) = meta_store(clock).await?;
            $crate::meta::$check(store.as_ref()).await
        }
    )*};
    (@telemetry $($check:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() -> $crate::Outcome {
            let (store, _guard) = telemetry_store().await?;
            $crate::telemetry::$check(store.as_ref()).await
        }
    )*};
    (@blobs $($check:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() -> $crate::Outcome {
            let (store, _guard) = blob_store().await?;
            $crate::blobs::$check(store.as_ref()).await
        }
    )*};
}
