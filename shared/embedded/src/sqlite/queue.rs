//! Durable queues in SQLite, with SQS semantics: a received message stays hidden for a
//! visibility timeout and comes back unless it is deleted; after `max_receives` it moves to the
//! queue's dead-letter queue (`{name}-dlq`). Producers wake waiting consumers, so latency is
//! not bound to a poll interval.

use async_trait::async_trait;
use iot_core::ports::{Clock, MessageQueue, QueueError, QueueMessage};
use iot_core::time::Millis;
use rusqlite::params;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

use super::Database;

/// A message taken from a queue; delete it once handled.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    /// Receipt for [`SqliteQueue::delete`].
    pub seq: i64,
    pub message_id: String,
    pub body: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
    pub enqueued_at: Millis,
}

#[derive(Clone)]
pub struct SqliteQueue {
    db: Database,
    name: Arc<str>,
    pub(super) clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    max_receives: u32,
}

impl SqliteQueue {
    pub fn new(db: Database, name: &str, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            name: name.into(),
            clock,
            wake: Arc::new(Notify::new()),
            max_receives: 5,
        }
    }

    /// How many receives a message gets before it moves to the dead-letter queue.
    pub fn with_max_receives(mut self, max_receives: u32) -> Self {
        self.max_receives = max_receives.max(1);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dead_letter_name(&self) -> String {
        format!("{}-dlq", self.name)
    }

    /// This process's consumer of the queue (see [`Consumer`]); make one per queue.
    pub async fn consumer(&self) -> Result<Consumer, QueueError> {
        let fresh_after = self
            .db
            .read(|c| c.query_row("SELECT COALESCE(MAX(seq), 0) FROM queue", [], |r| r.get(0)))
            .await
            .map_err(unavailable)?;
        Ok(Consumer {
            queue: self.clone(),
            fresh_after,
            in_hand: Arc::default(),
        })
    }

    /// Takes up to `max` visible messages, oldest first, hiding them for `visibility`.
    /// Messages received `max_receives` times already move to the dead-letter queue instead.
    pub async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        let name = self.name.clone();
        let dlq = self.dead_letter_name();
        let now = self.clock.now_ms();
        let hidden_until = now + visibility.as_millis() as Millis;
        let max_receives = self.max_receives;
        self.db
            .run(move |c| {
                let tx = c.savepoint()?;
                tx.execute(
                    "UPDATE queue SET queue = ?1, visible_at = ?3, receive_count = 0
                     WHERE queue = ?2 AND visible_at <= ?3 AND receive_count >= ?4",
                    params![dlq, &*name, now, max_receives],
                )?;
                let mut taken = Vec::new();
                {
                    let mut select = tx.prepare_cached(
                        "SELECT seq, message_id, body, receive_count, enqueued_at FROM queue
                         WHERE queue = ?1 AND visible_at <= ?2 ORDER BY seq LIMIT ?3",
                    )?;
                    let rows =
                        select.query_map(params![&*name, now, max as i64], |r| received(r, 1))?;
                    for row in rows {
                        taken.push(row?);
                    }
                    let mut hide = tx.prepare_cached(
                        "UPDATE queue SET visible_at = ?2, receive_count = receive_count + 1
                         WHERE seq = ?1",
                    )?;
                    for message in &taken {
                        hide.execute(params![message.seq, hidden_until])?;
                    }
                }
                tx.commit()?;
                Ok(taken)
            })
            .await
            .map_err(unavailable)
    }

    /// Deletes handled messages.
    pub async fn delete(&self, seqs: Vec<i64>) -> Result<(), QueueError> {
        if seqs.is_empty() {
            return Ok(());
        }
        self.db
            .run(move |c| {
                let tx = c.savepoint()?;
                {
                    let mut delete = tx.prepare_cached("DELETE FROM queue WHERE seq = ?1")?;
                    for seq in seqs {
                        delete.execute([seq])?;
                    }
                }
                tx.commit()
            })
            .await
            .map_err(unavailable)
    }

    /// Makes a received message visible again after `delay` (a retry with back-off).
    pub async fn retry_after(&self, seq: i64, delay: Duration) -> Result<(), QueueError> {
        let visible_at = self.clock.now_ms() + delay.as_millis() as Millis;
        self.db
            .run(move |c| {
                c.execute(
                    "UPDATE queue SET visible_at = ?2 WHERE seq = ?1",
                    params![seq, visible_at],
                )
                .map(|_| ())
            })
            .await
            .map_err(unavailable)?;
        self.wake.notify_one();
        Ok(())
    }

    /// Waits until a producer sends or `timeout` passes.
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }

    /// Messages in the queue, visible or not.
    pub async fn depth(&self) -> Result<usize, QueueError> {
        count(&self.db, self.name.to_string()).await
    }

    /// Messages in the dead-letter queue.
    pub async fn dead_letters(&self) -> Result<Vec<Received>, QueueError> {
        let dlq = self.dead_letter_name();
        self.db
            .run(move |c| {
                let mut select = c.prepare(
                    "SELECT seq, message_id, body, receive_count, enqueued_at FROM queue
                     WHERE queue = ?1 ORDER BY seq",
                )?;
                let rows = select.query_map([dlq], |r| received(r, 0))?;
                rows.collect()
            })
            .await
            .map_err(unavailable)
    }
}

/// The one consumer of a queue in this process, for a loop that handles what it takes before
/// it stops. Unlike [`SqliteQueue::receive`], taking a message sent while this consumer exists
/// writes nothing: it is read on a reader connection and remembered here as in hand until it
/// is deleted or delayed. The commit that hid it was one more serial commit per queue hop, and
/// a quarter of the writer's pages.
///
/// A message that may have been in hand when a process stopped (one that was there when this
/// consumer was made, or was received before) is counted and hidden, as `receive` does, before
/// it is handed out. So a message that brings the process down ends in the dead-letter queue
/// after `max_receives` tries, as with SQS.
#[derive(Clone)]
pub struct Consumer {
    queue: SqliteQueue,
    /// The newest message when the consumer was made; later ones were sent in its lifetime.
    fresh_after: i64,
    in_hand: Arc<std::sync::Mutex<HashSet<i64>>>,
}

impl Consumer {
    fn in_hand(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.in_hand.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes up to `max` visible messages, oldest first, that are not in hand already.
    pub async fn take(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        let q = &self.queue;
        // Read before the query: a message let go since (deleted, or delayed) was let go after
        // its commit, so the query cannot see it visible.
        let exclude: HashSet<i64> = self.in_hand().clone();
        let (name, now) = (q.name.clone(), q.clock.now_ms());
        let limit = (max + exclude.len()) as i64;
        let visible =
            q.db.read(move |c| {
                let mut select = c.prepare_cached(
                    "SELECT seq, message_id, body, receive_count, enqueued_at FROM queue
                     WHERE queue = ?1 AND visible_at <= ?2 ORDER BY seq LIMIT ?3",
                )?;
                let rows = select.query_map(params![&*name, now, limit], |r| received(r, 1))?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(unavailable)?;
        let (exhausted, mut taken): (Vec<Received>, Vec<Received>) = visible
            .into_iter()
            .filter(|m| !exclude.contains(&m.seq))
            .partition(|m| m.receive_count > q.max_receives);
        taken.truncate(max);
        let recovered: Vec<i64> = taken
            .iter()
            .filter(|m| m.seq <= self.fresh_after || m.receive_count > 1)
            .map(|m| m.seq)
            .collect();
        let dead: Vec<i64> = exhausted.iter().map(|m| m.seq).collect();
        if !recovered.is_empty() || !dead.is_empty() {
            let (dlq, hidden_until) =
                (q.dead_letter_name(), now + visibility.as_millis() as Millis);
            q.db.run(move |c| {
                let tx = c.savepoint()?;
                {
                    let mut hide = tx.prepare_cached(
                        "UPDATE queue SET visible_at = ?2, receive_count = receive_count + 1
                         WHERE seq = ?1",
                    )?;
                    for seq in recovered {
                        hide.execute(params![seq, hidden_until])?;
                    }
                    let mut to_dlq = tx.prepare_cached(
                        "UPDATE queue SET queue = ?2, visible_at = ?3, receive_count = 0
                         WHERE seq = ?1",
                    )?;
                    for seq in dead {
                        to_dlq.execute(params![seq, dlq, now])?;
                    }
                }
                tx.commit()
            })
            .await
            .map_err(unavailable)?;
        }
        self.in_hand().extend(taken.iter().map(|m| m.seq));
        Ok(taken)
    }

    /// Deletes handled messages.
    pub async fn delete(&self, seqs: Vec<i64>) -> Result<(), QueueError> {
        let result = self.queue.delete(seqs.clone()).await;
        self.let_go(&seqs);
        result
    }

    /// Makes a message visible again after `delay`, counting the receive it had
    /// (`receive_count` as taken).
    pub async fn retry_after(
        &self,
        seq: i64,
        receive_count: u32,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let visible_at = self.queue.clock.now_ms() + delay.as_millis() as Millis;
        let result = self
            .queue
            .db
            .run(move |c| {
                c.execute(
                    "UPDATE queue SET visible_at = ?2, receive_count = MAX(receive_count, ?3)
                     WHERE seq = ?1",
                    params![seq, visible_at, receive_count],
                )
                .map(|_| ())
            })
            .await
            .map_err(unavailable);
        self.let_go(&[seq]);
        result
    }

    fn let_go(&self, seqs: &[i64]) {
        let mut in_hand = self.in_hand();
        for seq in seqs {
            in_hand.remove(seq);
        }
    }
}

async fn count(db: &Database, queue: String) -> Result<usize, QueueError> {
    db.run(move |c| {
        c.query_row(
            "SELECT count(*) FROM queue WHERE queue = ?1",
            [queue],
            |r| r.get::<_, i64>(0),
        )
    })
    .await
    .map(|n| n as usize)
    .map_err(unavailable)
}

/// A row of `seq, message_id, body, receive_count, enqueued_at`, with `receiving` (1 when the
/// row is being received, 0 when it is only looked at) added to its stored receive count.
fn received(r: &rusqlite::Row, receiving: u32) -> rusqlite::Result<Received> {
    Ok(Received {
        seq: r.get(0)?,
        message_id: r.get(1)?,
        body: r.get(2)?,
        receive_count: r.get::<_, u32>(3)? + receiving,
        enqueued_at: r.get(4)?,
    })
}

fn unavailable(e: rusqlite::Error) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

#[async_trait]
impl MessageQueue for SqliteQueue {
    async fn send(&self, messages: Vec<QueueMessage>) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let name = self.name.clone();
        let now = self.clock.now_ms();
        self.db
            .run(move |c| {
                let tx = c.savepoint()?;
                {
                    let mut insert = tx.prepare_cached(
                        "INSERT INTO queue (queue, message_id, body, enqueued_at, visible_at)
                         VALUES (?1, ?2, ?3, ?4, ?4)",
                    )?;
                    for m in &messages {
                        insert.execute(params![&*name, m.id, m.body, now])?;
                    }
                }
                tx.commit()
            })
            .await
            .map_err(unavailable)?;
        self.wake.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iot_core::ports::ManualClock;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn message(id: &str) -> QueueMessage {
        QueueMessage {
            id: id.into(),
            body: format!("body of {id}"),
        }
    }

    fn queue() -> Result<(SqliteQueue, Arc<ManualClock>), Box<dyn std::error::Error>> {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let db = Database::in_memory()?;
        Ok((SqliteQueue::new(db, "work", clock.clone()), clock))
    }

    const HIDE: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn received_messages_are_hidden_until_deleted_or_timed_out() -> TestResult {
        let (queue, clock) = queue()?;
        queue.send(vec![message("a"), message("b")]).await?;
        let first = queue.receive(1, HIDE).await?;
        assert_eq!(first[0].message_id, "a");
        let second = queue.receive(10, HIDE).await?;
        assert_eq!(second.len(), 1, "a is hidden");
        assert_eq!(second[0].message_id, "b");
        queue.delete(vec![second[0].seq]).await?;
        assert!(queue.receive(10, HIDE).await?.is_empty());

        clock.advance(31_000);
        let again = queue.receive(10, HIDE).await?;
        assert_eq!(again.len(), 1, "a comes back after the visibility timeout");
        assert_eq!(
            (again[0].message_id.as_str(), again[0].receive_count),
            ("a", 2)
        );
        assert_eq!(queue.depth().await?, 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_consumer_hands_out_each_message_once_until_it_lets_go() -> TestResult {
        let (queue, clock) = queue()?;
        let consumer = queue.consumer().await?;
        queue.send(vec![message("a"), message("b")]).await?;
        let first = consumer.take(1, HIDE).await?;
        assert_eq!(first[0].message_id, "a");
        let second = consumer.take(10, HIDE).await?;
        assert_eq!(second.len(), 1, "a is in hand");
        assert_eq!(
            (second[0].message_id.as_str(), second[0].receive_count),
            ("b", 1)
        );
        assert!(consumer.take(10, HIDE).await?.is_empty());

        consumer.delete(vec![first[0].seq]).await?;
        consumer
            .retry_after(
                second[0].seq,
                second[0].receive_count,
                Duration::from_secs(2),
            )
            .await?;
        assert!(
            consumer.take(10, HIDE).await?.is_empty(),
            "a is gone, b delayed"
        );
        clock.advance(2_000);
        let again = consumer.take(10, HIDE).await?;
        assert_eq!(
            (again[0].message_id.as_str(), again[0].receive_count),
            ("b", 2),
            "the delayed receive counted"
        );
        assert_eq!(queue.depth().await?, 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_message_in_hand_when_the_process_stops_counts_its_receives() -> TestResult {
        let (queue, clock) = queue()?;
        let queue = queue.with_max_receives(2);
        // Each consumer stands for one run of the process, which stops with "poison" in hand.
        let first_run = queue.consumer().await?;
        queue.send(vec![message("poison")]).await?;
        assert_eq!(first_run.take(10, HIDE).await?[0].receive_count, 1);
        for expected_count in [1, 2] {
            let run = queue.consumer().await?;
            let taken = run.take(10, HIDE).await?;
            assert_eq!(taken[0].receive_count, expected_count);
            // Hidden for the visibility timeout, as SQS would hide it.
            assert!(queue.consumer().await?.take(10, HIDE).await?.is_empty());
            clock.advance(31_000);
        }
        assert!(queue.consumer().await?.take(10, HIDE).await?.is_empty());
        let dead = queue.dead_letters().await?;
        assert_eq!(
            dead.len(),
            1,
            "moved to the dead-letter queue after two counted receives"
        );
        assert_eq!(dead[0].body, "body of poison");
        Ok(())
    }

    #[tokio::test]
    async fn a_poison_message_ends_in_the_dead_letter_queue() -> TestResult {
        let (queue, clock) = queue()?;
        let queue = queue.with_max_receives(2);
        queue.send(vec![message("poison"), message("ok")]).await?;
        for _ in 0..2 {
            let got = queue.receive(10, HIDE).await?;
            assert!(got.iter().any(|m| m.message_id == "poison"));
            let ok: Vec<i64> = got
                .iter()
                .filter(|m| m.message_id == "ok")
                .map(|m| m.seq)
                .collect();
            queue.delete(ok).await?;
            clock.advance(31_000);
        }
        assert!(queue.receive(10, HIDE).await?.is_empty());
        let dead = queue.dead_letters().await?;
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].body, "body of poison");
        Ok(())
    }

    #[tokio::test]
    async fn messages_survive_reopening_the_database() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("q.db");
        let clock = Arc::new(ManualClock::new(0));
        SqliteQueue::new(Database::open(&path)?, "work", clock.clone())
            .send(vec![message("kept")])
            .await?;
        let reopened = SqliteQueue::new(Database::open(&path)?, "work", clock);
        assert_eq!(reopened.receive(10, HIDE).await?[0].message_id, "kept");
        Ok(())
    }
}
