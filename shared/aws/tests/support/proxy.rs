//! A proxy between the SDK and the AWS emulator on 127.0.0.1 that injects faults: cut
//! connections (the emulator "stops"), throttling answers, or one canned answer (a service
//! error in its real wire shape). The emulator behind it keeps its state.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use iot_aws::testing::endpoint;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Faults {
    /// Cut every connection (the emulator is "stopped").
    pub down: AtomicBool,
    /// Answer this many more requests with a throttling error.
    pub throttle: AtomicU32,
    pub throttled: AtomicU32,
    pub forwarded: AtomicU32,
    /// The next request whose `x-amz-target` contains the first string gets this status and
    /// JSON body instead of reaching the emulator.
    pub answer_once: Mutex<Option<(String, u16, String)>>,
    /// Every forwarded request: method, path and query, body.
    pub recorded: Mutex<Vec<(String, String, Vec<u8>)>>,
    /// How many matching requests reach the emulator before the canned answer is given.
    pub pass_before_answer: AtomicU32,
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
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        return response;
    }
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let canned = {
        let mut answer = faults.answer_once.lock().unwrap_or_else(|p| p.into_inner());
        match answer.as_ref() {
            Some((wanted, _, _)) if target.contains(wanted.as_str()) => {
                let passed = faults
                    .pass_before_answer
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if passed { None } else { answer.take() }
            }
            _ => None,
        }
    };
    if let Some((_, status, body)) = canned {
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        response.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        return response;
    }
    faults.forwarded.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::new(Body::empty());
    };
    faults
        .recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((
            parts.method.to_string(),
            parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned(),
            body.to_vec(),
        ));
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
pub async fn proxy() -> Result<(String, Arc<Faults>), Box<dyn std::error::Error + Send + Sync>> {
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
