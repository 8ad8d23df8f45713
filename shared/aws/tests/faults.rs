//! Faults between the adapters and AWS, injected by a proxy between the SDK and the emulator
//! on 127.0.0.1: the emulator "stops" (connections are cut mid-response) in the middle of an
//! SQS batch, and throttling answers that the SDK must retry. The emulator behind the proxy
//! keeps its state, so what was and was not written can be checked after the fault.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use iot_aws::batch;
use iot_aws::config::{CallPolicy, load_for_endpoint};
use iot_aws::dynamo::provision;
use iot_aws::testing::{emulator_config, endpoint, unique_name};
use iot_aws::{DynamoMetaStore, SqsQueue};
use iot_core::idempotency::Idempotency;
use iot_core::ports::{
    Condition, Item, Key, MessageQueue, MetaStore, QueueMessage, StoreError, SystemClock,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[derive(Default)]
struct Faults {
    /// Cut every connection (the emulator is "stopped").
    down: AtomicBool,
    /// Answer this many more requests with a throttling error.
    throttle: AtomicU32,
    throttled: AtomicU32,
    forwarded: AtomicU32,
}

struct Proxy {
    faults: Arc<Faults>,
    upstream: String,
    http: reqwest::Client,
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let faults = &proxy.faults;
    if faults.down.load(Ordering::SeqCst) {
        // A body that fails makes the server drop the connection: the client sees a transport
        // error, as when the emulator process dies.
        let broken = futures_util::stream::once(async {
            Err::<Bytes, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "down",
            ))
        });
        return Response::new(Body::from_stream(broken));
    }
    if faults
        .throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        faults.throttled.fetch_add(1, Ordering::SeqCst);
        let mut response = Response::new(Body::from(
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
        ));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response.headers_mut().insert(
            "content-type",
            axum::http::HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        return response;
    }
    faults.forwarded.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::new(Body::empty());
    };
    let url = format!(
        "{}{}",
        proxy.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            headers.insert(name, value.clone());
        }
    }
    let upstream = proxy
        .http
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    match upstream {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        Err(e) => {
            let mut response = Response::new(Body::from(e.to_string()));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

/// Starts the proxy in front of the emulator; returns its URL and the fault switches.
async fn proxy() -> Result<(String, Arc<Faults>), Box<dyn std::error::Error + Send + Sync>> {
    let faults = Arc::new(Faults::default());
    let state = Arc::new(Proxy {
        faults: faults.clone(),
        upstream: endpoint()?,
        http: reqwest::Client::new(),
    });
    let app = Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, faults))
}

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

/// The bodies on a queue, read around the proxy.
async fn bodies_on(
    client: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let mut bodies = Vec::new();
    loop {
        let output = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await?;
        if output.messages().is_empty() {
            bodies.sort();
            return Ok(bodies);
        }
        for m in output.messages() {
            bodies.push(m.body().unwrap_or_default().to_owned());
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await?;
        }
    }
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
    let queue_url = sqs
        .create_queue()
        .queue_name(unique_name("alarm-requests"))
        .send()
        .await?
        .queue_url()
        .unwrap_or_default()
        .to_owned();

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
