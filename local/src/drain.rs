//! The loop behind each durable queue on one machine: messages are taken as soon as there is
//! room, each device's in queue order, different devices concurrently, and handled ones are
//! deleted in batches while the next are running.
//!
//! An earlier loop took a batch, handled it, deleted it and only then took the next: a new
//! message waited for the slowest device of the batch in hand, which was most of the
//! publish-to-notification p99 (see docs/benchmarks.md).

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use iot_embedded::sqlite::{Consumer, SqliteQueue};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// How long a received message stays hidden while it is handled.
const VISIBILITY: Duration = Duration::from_secs(30);

/// Most messages received and not yet handled: the bound on concurrency and on what a crash
/// hands back to the queue after [`VISIBILITY`].
const IN_HAND: usize = 64;

/// How often an idle loop looks at the queue without being woken (retries whose back-off
/// ended, messages left by a crash).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Back-off before a failed message is tried again: 1 s, 2 s, 4 s ... up to a minute.
fn backoff(receive_count: u32) -> Duration {
    Duration::from_secs(1u64 << receive_count.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// A received message: its receipt, how often it was received, and its decoded body.
struct Taken<T, E> {
    seq: i64,
    receive_count: u32,
    message: Result<T, E>,
}

/// A handled message: which device's lane it frees, and whether it succeeded.
struct Handled<E> {
    device: String,
    seq: i64,
    receive_count: u32,
    result: Result<(), E>,
}

/// Runs `handle` on one message.
async fn run<T, E, Fut>(
    handle: impl FnOnce(T) -> Fut,
    device: String,
    taken: Taken<T, E>,
) -> Handled<E>
where
    Fut: Future<Output = Result<(), E>>,
{
    let result = match taken.message {
        Ok(message) => handle(message).await,
        Err(e) => Err(e),
    };
    Handled {
        device,
        seq: taken.seq,
        receive_count: taken.receive_count,
        result,
    }
}

/// Awaits the future in `slot`, if there is one; never resolves otherwise.
async fn in_slot<F: Future + Unpin>(slot: &mut Option<F>) -> F::Output {
    match slot {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Takes messages from `queue`, decodes each once and hands it to `handle`: one device's
/// messages one after the other in queue order, different devices concurrently (so their
/// writes share commits). Deletes what succeeded, delays what failed (an undecodable message
/// too, so it ends in the dead-letter queue). When `shutdown` turns true it stops taking
/// messages, finishes those in hand, deletes them and returns.
pub async fn drain_queue<T, E, F, Fut>(
    queue: SqliteQueue,
    mut shutdown: watch::Receiver<bool>,
    decode: fn(&str) -> Result<T, E>,
    device: fn(&T) -> &str,
    handle: F,
) where
    E: std::fmt::Display,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let consumer: Consumer = loop {
        match queue.consumer().await {
            Ok(consumer) => break consumer,
            Err(e) => {
                tracing::error!(queue = queue.name(), error = %e, "cannot read the queue");
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    // Devices with a message running, and their messages waiting behind it, in queue order.
    let mut lanes: HashMap<String, VecDeque<Taken<T, E>>> = HashMap::new();
    let mut running = FuturesUnordered::new();
    let mut in_hand = 0usize;
    let mut handled: Vec<i64> = Vec::new();
    let mut receiving = None;
    // How many messages the take in `receiving` asked for.
    let mut asked = 0;
    let mut deleting = None;
    // False after a receive that found fewer messages than asked for, until a producer wakes us.
    let mut maybe_more = true;
    loop {
        let stopping = *shutdown.borrow();
        if !stopping && maybe_more && receiving.is_none() && in_hand < IN_HAND {
            asked = IN_HAND - in_hand;
            receiving = Some(Box::pin(consumer.take(asked, VISIBILITY)));
        }
        if deleting.is_none() && !handled.is_empty() {
            deleting = Some(Box::pin(consumer.delete(std::mem::take(&mut handled))));
        }
        if stopping && in_hand == 0 && receiving.is_none() && deleting.is_none() {
            return;
        }
        tokio::select! {
            received = in_slot(&mut receiving) => {
                receiving = None;
                let batch = match received {
                    Ok(batch) => batch,
                    Err(e) => {
                        tracing::error!(queue = queue.name(), error = %e, "cannot read the queue");
                        maybe_more = false;
                        continue;
                    }
                };
                maybe_more = batch.len() == asked;
                for received in batch {
                    let message = decode(&received.body);
                    let uid = message.as_ref().map_or("", device).to_owned();
                    let taken = Taken { seq: received.seq, receive_count: received.receive_count, message };
                    in_hand += 1;
                    match lanes.get_mut(&uid) {
                        Some(waiting) => waiting.push_back(taken),
                        None => {
                            lanes.insert(uid.clone(), VecDeque::new());
                            running.push(run(&handle, uid, taken));
                        }
                    }
                }
            }
            Some(done) = running.next(), if !running.is_empty() => {
                in_hand -= 1;
                match done.result {
                    Ok(()) => handled.push(done.seq),
                    Err(error) => {
                        tracing::warn!(queue = queue.name(), %error, attempt = done.receive_count, "will retry");
                        if let Err(e) = consumer.retry_after(done.seq, done.receive_count, backoff(done.receive_count)).await {
                            tracing::error!(error = %e, "cannot delay the message");
                        }
                    }
                }
                match lanes.get_mut(&done.device).and_then(VecDeque::pop_front) {
                    Some(next) => running.push(run(&handle, done.device, next)),
                    None => {
                        lanes.remove(&done.device);
                    }
                }
            }
            deleted = in_slot(&mut deleting) => {
                deleting = None;
                if let Err(e) = deleted {
                    tracing::error!(queue = queue.name(), error = %e, "cannot delete handled messages; they will run again");
                }
            }
            _ = queue.wait(IDLE_POLL), if !maybe_more && !stopping => maybe_more = true,
            _ = shutdown.changed(), if !stopping => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iot_core::ports::{ManualClock, MessageQueue, QueueMessage};
    use iot_embedded::sqlite::Database;
    use std::sync::{Arc, Mutex};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Bodies are `device:n`.
    fn decode(body: &str) -> Result<(String, u32), String> {
        let (device, n) = body.split_once(':').ok_or("no colon")?;
        Ok((device.to_owned(), n.parse().map_err(|_| "not a number")?))
    }

    fn device(message: &(String, u32)) -> &str {
        &message.0
    }

    async fn send(queue: &SqliteQueue, bodies: &[&str]) -> TestResult {
        let messages = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| QueueMessage {
                id: format!("m{i}"),
                body: (*body).to_owned(),
            })
            .collect();
        queue.send(messages).await?;
        Ok(())
    }

    fn queue() -> Result<SqliteQueue, Box<dyn std::error::Error>> {
        let clock = Arc::new(ManualClock::new(1_000));
        Ok(SqliteQueue::new(Database::in_memory()?, "q", clock))
    }

    #[tokio::test]
    async fn each_device_in_order_devices_concurrently_then_deleted() -> TestResult {
        let queue = queue()?;
        send(&queue, &["a:1", "b:1", "a:2", "b:2", "a:3", "c:1"]).await?;
        let (stop, stopped) = watch::channel(false);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let active = Arc::new(Mutex::new((0usize, 0usize))); // (now, most at once)
        let worker = {
            let (queue, seen, active) = (queue.clone(), seen.clone(), active.clone());
            tokio::spawn(drain_queue(queue, stopped, decode, device, move |m| {
                let (seen, active) = (seen.clone(), active.clone());
                async move {
                    {
                        let mut a = active.lock().map_err(|e| e.to_string())?;
                        a.0 += 1;
                        a.1 = a.1.max(a.0);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    seen.lock().map_err(|e| e.to_string())?.push(m);
                    active.lock().map_err(|e| e.to_string())?.0 -= 1;
                    Ok(())
                }
            }))
        };
        for _ in 0..200 {
            if queue.depth().await? == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true)?;
        worker.await?;
        assert_eq!(queue.depth().await?, 0, "handled messages are deleted");
        let seen = seen.lock().map_err(|e| e.to_string())?.clone();
        assert_eq!(seen.len(), 6);
        for d in ["a", "b", "c"] {
            let order: Vec<u32> = seen.iter().filter(|m| m.0 == d).map(|m| m.1).collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, sorted, "device {d} in queue order");
        }
        let most = active.lock().map_err(|e| e.to_string())?.1;
        assert_eq!(
            most, 3,
            "the three devices ran at once, never two of one device"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_message_sent_while_others_run_starts_without_waiting_for_them() -> TestResult {
        let queue = queue()?;
        send(&queue, &["slow:1"]).await?;
        let (stop, stopped) = watch::channel(false);
        let (release, released) = watch::channel(false);
        let (fast_done, mut fast_seen) = tokio::sync::mpsc::unbounded_channel();
        let worker = tokio::spawn(drain_queue(
            queue.clone(),
            stopped,
            decode,
            device,
            move |m: (String, u32)| {
                let (mut released, fast_done) = (released.clone(), fast_done.clone());
                async move {
                    if m.0 == "slow" {
                        released.wait_for(|r| *r).await.map_err(|e| e.to_string())?;
                    } else {
                        fast_done.send(m).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                }
            },
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        send(&queue, &["fast:1"]).await?;
        let fast = tokio::time::timeout(Duration::from_secs(5), fast_seen.recv()).await?;
        assert_eq!(fast, Some(("fast".to_owned(), 1)));
        release.send(true)?;
        stop.send(true)?;
        worker.await?;
        assert_eq!(queue.depth().await?, 0);
        Ok(())
    }

    #[tokio::test]
    async fn failed_and_undecodable_messages_stay_for_a_retry() -> TestResult {
        let queue = queue()?;
        send(&queue, &["a:1", "garbage", "a:2"]).await?;
        let (stop, stopped) = watch::channel(false);
        let handled = Arc::new(Mutex::new(Vec::new()));
        let worker = {
            let handled = handled.clone();
            tokio::spawn(drain_queue(
                queue.clone(),
                stopped,
                decode,
                device,
                move |m| {
                    let handled = handled.clone();
                    async move {
                        handled.lock().map_err(|e| e.to_string())?.push(m.1);
                        if m.1 == 2 {
                            Err("refused".to_owned())
                        } else {
                            Ok(())
                        }
                    }
                },
            ))
        };
        for _ in 0..200 {
            if handled.lock().map_err(|e| e.to_string())?.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true)?;
        worker.await?;
        assert_eq!(*handled.lock().map_err(|e| e.to_string())?, vec![1, 2]);
        // "a:1" is deleted; the refused one and the undecodable one wait for their back-off.
        assert_eq!(queue.depth().await?, 2);
        Ok(())
    }
}
