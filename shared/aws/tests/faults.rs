//! Faults between the adapters and AWS, injected by a proxy between the SDK and the emulator
//! on 127.0.0.1: the emulator "stops" (connections are cut mid-response) in the middle of an
//! SQS batch, and throttling answers that the SDK must retry. The emulator behind the proxy
//! keeps its state, so what was and was not written can be checked after the fault.

mod support;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use iot_aws::batch;
use iot_aws::config::{CallPolicy, load_for_endpoint};
use iot_aws::dynamo::provision;
use iot_aws::testing::{emulator_config, unique_name};
use iot_aws::{DynamoMetaStore, SqsQueue};
use iot_core::idempotency::Idempotency;
use iot_core::ports::{
    Condition, Item, Key, MessageQueue, MetaStore, QueueMessage, StoreError, SystemClock,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use support::proxy::proxy;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn quick_failures() -> CallPolicy {
    CallPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(10),
        ..CallPolicy::default()
    }
}

fn event(ids: std::ops::Range<u32>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = ids
        .map(|i| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("msg-{i}"));
            m.body = Some(format!("reading {i}"));
            m
        })
        .collect();
    event
}

/// The bodies on a queue, read around the proxy, sorted.
async fn bodies_on(
    client: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let mut bodies: Vec<String> = iot_aws::testing::drain(client, url)
        .await?
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    bodies.sort();
    Ok(bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_stopping_mid_batch_fails_only_the_unwritten_and_a_retry_adds_no_duplicates()
-> TestResult {
    let direct = emulator_config().await?;
    let (proxy_url, faults) = proxy().await?;
    let through_proxy = load_for_endpoint(&quick_failures(), &proxy_url).await;

    let dynamo = aws_sdk_dynamodb::Client::new(&direct);
    let table = unique_name("meta");
    provision::create_meta_table(&dynamo, &table).await?;
    let sqs = aws_sdk_sqs::Client::new(&direct);
    let (queue_url, _) = iot_aws::testing::create_queue(&sqs, "alarm-requests").await?;

    // The handler, as an SQS-driven function runs it: idempotent by message id, forwarding each
    // message to the next queue. Both go through the proxy.
    let store = DynamoMetaStore::new(aws_sdk_dynamodb::Client::new(&through_proxy), &table);
    let idempotency = Idempotency::new(Arc::new(store), Arc::new(SystemClock));
    let next = SqsQueue::new(aws_sdk_sqs::Client::new(&through_proxy), &queue_url);
    let handled = AtomicU32::new(0);
    let handler = |message: SqsMessage| {
        let (idempotency, next, faults, handled) = (&idempotency, &next, &faults, &handled);
        async move {
            let id = message.message_id.clone().unwrap_or_default();
            let body = message.body.clone().unwrap_or_default();
            idempotency
                .run(&id, || async {
                    next.send(vec![QueueMessage {
                        id: id.clone(),
                        body,
                    }])
                    .await
                })
                .await
                .map_err(|e| e.to_string())?;
            // The emulator stops after the fifth message of the batch is done.
            if handled.fetch_add(1, Ordering::SeqCst) == 4 {
                faults.down.store(true, Ordering::SeqCst);
            }
            Ok::<_, String>(())
        }
    };

    let response = batch::process(event(0..10), handler).await?;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed,
        ["msg-5", "msg-6", "msg-7", "msg-8", "msg-9"],
        "only the unwritten fail"
    );
    let expected =
        |ids: std::ops::Range<u32>| ids.map(|i| format!("reading {i}")).collect::<Vec<_>>();
    assert_eq!(
        bodies_on(&sqs, &queue_url).await?,
        expected(0..5),
        "written before the stop"
    );

    // The emulator is back; SQS redelivers (here the whole batch, the worst case).
    faults.down.store(false, Ordering::SeqCst);
    let response = batch::process(event(0..10), handler).await?;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        bodies_on(&sqs, &queue_url).await?,
        expected(5..10),
        "the rest, and no duplicates"
    );
    Ok(())
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_surfaces() -> TestResult {
    let direct = emulator_config().await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&direct);
    let table = unique_name("meta");
    provision::create_meta_table(&dynamo, &table).await?;
    let (proxy_url, faults) = proxy().await?;
    let policy = CallPolicy {
        initial_backoff: Duration::from_millis(10),
        ..CallPolicy::default()
    };
    let through_proxy = load_for_endpoint(&policy, &proxy_url).await;
    let store = DynamoMetaStore::new(aws_sdk_dynamodb::Client::new(&through_proxy), &table);
    let item = || Item::new(Key::new("a", "1"), serde_json::json!({"n": 1}));

    faults.throttle.store(3, Ordering::SeqCst);
    store.put(item(), Condition::NotExists).await?;
    assert_eq!(faults.throttled.load(Ordering::SeqCst), 3);
    assert!(store.get(&Key::new("a", "1")).await?.is_some());

    // More throttling than the retry budget: the error surfaces, and names the cause.
    faults.throttle.store(100, Ordering::SeqCst);
    match store.put(item(), Condition::Always).await {
        Err(StoreError::Unavailable(why)) => assert!(why.contains("Throttling"), "{why}"),
        other => panic!("expected the throttling to surface, got {other:?}"),
    }
    assert_eq!(
        faults.throttled.load(Ordering::SeqCst),
        3 + policy.max_attempts,
        "one call, max_attempts tries"
    );
    Ok(())
}
