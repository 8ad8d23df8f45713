//! [`MessageQueue`] and [`Scheduler`]: what a sender and a scheduler owner can rely on.

use iot_core::ports::{MessageQueue, QueueMessage, ScheduleTarget, Scheduler, SchedulerError};
use std::future::Future;
use std::pin::Pin;

use crate::{Outcome, ensure, same};

/// Takes every message now on the queue (each backend's own receive side: the port has none).
pub type TakeAll<'a> = Box<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Vec<QueueMessage>, String>> + Send + 'a>>
        + Send
        + Sync
        + 'a,
>;

pub async fn sent_messages_arrive_once_each(
    queue: &dyn MessageQueue,
    take_all: TakeAll<'_>,
) -> Outcome {
    queue.send(Vec::new()).await?;
    let mut sent: Vec<QueueMessage> = (0..25)
        .map(|i| QueueMessage {
            id: format!("m{i:02}"),
            body: format!("{{\"n\":{i},\"text\":\"grüße ☃\"}}"),
        })
        .collect();
    sent.push(QueueMessage {
        id: "large".into(),
        body: "x".repeat(200 * 1024),
    });
    queue.send(sent.clone()).await?;
    let mut received = take_all().await?;
    received.sort_by(|a, b| a.id.cmp(&b.id));
    sent.sort_by(|a, b| a.id.cmp(&b.id));
    same(received.len(), sent.len(), "every message arrives once")?;
    ensure(received == sent, "ids and bodies arrive unchanged")?;
    same(take_all().await?.len(), 0, "nothing arrives twice")
}

pub async fn schedules_are_validated_replaced_and_deleted(scheduler: &dyn Scheduler) -> Outcome {
    let target = ScheduleTarget {
        tenant_id: "acme".into(),
        job_id: "daily".into(),
    };
    scheduler.upsert("acme-daily", "0 2 * * *", &target).await?;
    scheduler
        .upsert("acme-daily", "30 3 * * *", &target)
        .await?;
    for bad in ["61 * * * *", "every day", ""] {
        ensure(
            matches!(
                scheduler.upsert("acme-bad", bad, &target).await,
                Err(SchedulerError::Invalid(_))
            ),
            format!("CRON {bad:?} must be refused as invalid"),
        )?;
    }
    scheduler.delete("acme-daily").await?;
    scheduler.delete("acme-daily").await?;
    scheduler.delete("never-existed").await?;
    Ok(())
}
