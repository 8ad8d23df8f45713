//! Helpers of the end-to-end tests: the platform on free ports, an HTTP client for the API, a
//! device over MQTT, a webhook receiver, and a real Mosquitto.

pub mod aws;
pub mod mqtt;

use axum::Router;
use axum::routing::post;
use iot_local::config::Config;
use iot_local::platform::{self, Running};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub type TestResult = Result<(), Error>;
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The first administrator's password in tests.
pub const ADMIN_PASSWORD: &str = "test admin password";

/// Starts the platform on free ports, on the embedded broker or on `mqtt_url`.
pub async fn start_platform(data_dir: &Path, mqtt_url: Option<&str>) -> Result<Running, Error> {
    start_platform_with(data_dir, mqtt_url, |_| {}).await
}

/// [`start_platform`] with the test's own changes to the configuration.
pub async fn start_platform_with(
    data_dir: &Path,
    mqtt_url: Option<&str>,
    change: impl FnOnce(&mut Config),
) -> Result<Running, Error> {
    // Logs show with a failing test (RUST_LOG=debug for more).
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        tenant: "acme".into(),
        ..Config::default()
    };
    config.http.port = 0;
    config.mqtt.port = 0;
    config.mqtt.tls_port = 0;
    config.pipeline.cache_ttl_ms = 0;
    // The tests' webhook receivers and identity providers listen on loopback.
    config.pipeline.outbound_allow = "127.0.0.1".into();
    config.auth.admin_password = ADMIN_PASSWORD.into();
    if let Some(url) = mqtt_url {
        config.mqtt.url = url.to_owned();
        config.mqtt.client_id = format!("iot-local-{}", std::process::id());
    }
    change(&mut config);
    Ok(platform::start(&config).await?)
}

/// The administrator of another tenant of the running platform, created if needed.
pub async fn tenant_admin(running: &Running, tenant: &str) -> Result<Api, Error> {
    running
        .auth
        .bootstrap_tenant(tenant, "admin", ADMIN_PASSWORD)
        .await?;
    Api::login(running.http_addr, tenant, "admin", ADMIN_PASSWORD).await
}

/// The JSON sensor's parser script of `examples/products`.
pub const JSON_SENSOR: &str = include_str!("../../examples/products/json-sensor.rhai");

/// Creates the product `air`, whose devices send JSON.
pub async fn air_product(admin: &Api) -> Result<(), Error> {
    admin
        .create(
            "/v1/products",
            &serde_json::json!({ "id": "air", "name": "Air", "script": { "source": JSON_SENSOR } }),
        )
        .await?;
    Ok(())
}

/// The password of users the tests create.
pub const USER_PASSWORD: &str = "a user password";

/// Creates a user of `tenant` with roles (and a department) through `admin`, and logs them in.
pub async fn tenant_user(
    running: &Running,
    admin: &Api,
    tenant: &str,
    id: &str,
    roles: &[&str],
    department: Option<&str>,
) -> Result<Api, Error> {
    admin
        .create(
            "/v1/users",
            &serde_json::json!({ "id": id, "name": id, "password": USER_PASSWORD,
                                 "roles": roles, "department_id": department }),
        )
        .await?;
    Api::login(running.http_addr, tenant, id, USER_PASSWORD).await
}

/// Retries `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, Error>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The HTTP API of a running platform, as one signed-in user (or nobody).
pub struct Api {
    base: String,
    client: reqwest::Client,
    token: Option<String>,
}

impl Api {
    /// Nobody signed in.
    pub fn anonymous(addr: SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            token: None,
        }
    }

    /// The tenant's administrator of the test platform (`acme`).
    pub async fn new(addr: SocketAddr) -> Result<Self, Error> {
        Self::login(addr, "acme", "admin", ADMIN_PASSWORD).await
    }

    /// Logs in and keeps the access token.
    pub async fn login(
        addr: SocketAddr,
        tenant: &str,
        user: &str,
        password: &str,
    ) -> Result<Self, Error> {
        let anonymous = Self::anonymous(addr);
        let (status, tokens) = anonymous
            .post(
                "/v1/auth/login",
                &serde_json::json!({ "tenant": tenant, "username": user, "password": password }),
            )
            .await?;
        if status != 200 {
            return Err(format!("login of {user}@{tenant} answered {status}: {tokens}").into());
        }
        let token = tokens["access_token"]
            .as_str()
            .ok_or("the login answer has no access_token")?;
        Ok(anonymous.with_token(token))
    }

    /// The same API with another bearer token (valid or not).
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            base: self.base.clone(),
            client: self.client.clone(),
            token: Some(token.to_owned()),
        }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), Error> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value), Error> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Every item of a list, read `limit` at a time by following each page's `next` cursor;
    /// fails on a page that is not 200 or holds more than `limit` items.
    pub async fn all_pages(&self, path: &str, limit: usize) -> Result<Vec<Value>, Error> {
        let join = if path.contains('?') { '&' } else { '?' };
        let first = format!("{path}{join}limit={limit}");
        let mut url = first.clone();
        let mut items = Vec::new();
        loop {
            let (status, page) = self.get(&url).await?;
            if status != 200 {
                return Err(format!("GET {url}: {status} {page}").into());
            }
            let batch = page["items"].as_array().cloned().unwrap_or_default();
            if batch.len() > limit {
                return Err(format!("GET {url}: more than {limit} items: {page}").into());
            }
            items.extend(batch);
            match page["next"].as_str() {
                Some(next) => url = format!("{first}&cursor={next}"),
                None => return Ok(items),
            }
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), Error> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<(u16, Value), Error> {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<(u16, Value), Error> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// A GET whose answer is text (the policy CSV).
    pub async fn get_text(&self, path: &str) -> Result<(u16, String), Error> {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// A PUT of a text body (the policy CSV); the answer as JSON.
    pub async fn put_text(&self, path: &str, text: &str) -> Result<(u16, Value), Error> {
        self.put_text_as("PUT", path, text).await
    }

    /// A text body (CSV) with any method; the answer as JSON.
    pub async fn put_text_as(
        &self,
        method: &str,
        path: &str,
        text: &str,
    ) -> Result<(u16, Value), Error> {
        self.send_raw(method, path, "text/csv", text.as_bytes().to_vec())
            .await
    }

    /// A PUT of raw bytes (a firmware image); the answer as JSON.
    pub async fn put_bytes(&self, path: &str, bytes: &[u8]) -> Result<(u16, Value), Error> {
        self.send_raw("PUT", path, "application/octet-stream", bytes.to_vec())
            .await
    }

    /// A body of `content_type` with any method; the answer as JSON, or as text if not JSON.
    async fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Value), Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// POSTs and expects 201 Created.
    pub async fn create(&self, path: &str, body: &Value) -> Result<Value, Error> {
        let (status, answer) = self.post(path, body).await?;
        if status != 201 {
            return Err(format!("POST {path} answered {status}: {answer}").into());
        }
        Ok(answer)
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> Result<String, Error> {
        Ok(self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?)
    }
}

/// The value of a counter in Prometheus text (0 if absent).
pub fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .filter(|(key, _)| *key == name)
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}

/// A device connected over MQTT that publishes at QoS 1 and waits for each PUBACK.
pub struct Device {
    client: AsyncClient,
    acks: mpsc::Receiver<u16>,
    topic: String,
}

/// A new device token of `uid`, issued through the API as an operator would.
pub async fn device_token(api: &Api, uid: &str) -> Result<String, Error> {
    let issued = api
        .create(&format!("/v1/devices/{uid}/token"), &serde_json::json!({}))
        .await?;
    Ok(issued["device_token"]
        .as_str()
        .ok_or("no device_token")?
        .to_owned())
}

impl Device {
    /// Connects as the device `uid` with a new token `api` issues for it (the embedded broker
    /// signs every device in).
    pub async fn sign_in(addr: SocketAddr, api: &Api, uid: &str) -> Result<Self, Error> {
        let token = device_token(api, uid).await?;
        Self::connect_with(addr, uid, Some(&token)).await
    }

    /// Connects without credentials (a broker that asks for none).
    pub async fn connect(addr: SocketAddr, uid: &str) -> Result<Self, Error> {
        Self::connect_with(addr, uid, None).await
    }

    pub async fn connect_with(
        addr: SocketAddr,
        uid: &str,
        token: Option<&str>,
    ) -> Result<Self, Error> {
        let mut options = MqttOptions::new(uid, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        if let Some(token) = token {
            options.set_credentials(uid, token);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let (tx, acks) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if tx.send(ack.pkid).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Ok(Self {
            client,
            acks,
            topic: format!("things/{uid}/up/telemetry"),
        })
    }

    /// Publishes and returns once the broker acknowledged (the platform committed it).
    pub async fn publish(&mut self, payload: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.client
            .publish(&self.topic, QoS::AtLeastOnce, false, payload.into())
            .await?;
        tokio::time::timeout(Duration::from_secs(10), self.acks.recv())
            .await
            .map_err(|_| "no PUBACK within 10 s")?
            .ok_or("the connection ended")?;
        Ok(())
    }
}

/// An HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it.
pub struct WebhookReceiver {
    pub url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl WebhookReceiver {
    pub async fn start() -> Result<Self, Error> {
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = bodies.clone();
        let app = Router::new().route(
            "/hook",
            post(move |body: String| {
                let sink = sink.clone();
                async move {
                    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
                    sink.lock().unwrap_or_else(|p| p.into_inner()).push(value);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, bodies })
    }

    pub fn received(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A real Mosquitto on 127.0.0.1 (Debian's package; the test command installs it).
pub struct Mosquitto {
    pub port: u16,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn binary() -> Result<PathBuf, Error> {
        if let Ok(path) = std::env::var("MOSQUITTO") {
            return Ok(path.into());
        }
        for candidate in [
            "/usr/sbin/mosquitto",
            "/usr/local/sbin/mosquitto",
            "/usr/bin/mosquitto",
        ] {
            if Path::new(candidate).exists() {
                return Ok(candidate.into());
            }
        }
        Err("mosquitto is not installed: run ./scripts/test, which installs it, or apt-get install mosquitto".into())
    }

    /// A broker that lets anyone in, for tests of the platform rather than of the broker.
    pub async fn start() -> Result<Self, Error> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nmax_queued_messages 100000\n"
            ),
        )?;
        Self::launch(dir, &config, port).await
    }

    /// A broker on `config`, which listens on 127.0.0.1:`port`.
    pub async fn with_config(config: &Path, port: u16) -> Result<Self, Error> {
        Self::launch(tempfile::tempdir()?, config, port).await
    }

    /// Sends SIGHUP: Mosquitto reads its password file and ACL again.
    pub fn reload(&self) -> Result<(), Error> {
        let pid = self.child.id().ok_or("mosquitto has exited")?;
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()?;
        if !status.success() {
            return Err("kill -HUP failed".into());
        }
        Ok(())
    }

    async fn launch(dir: tempfile::TempDir, config: &Path, port: u16) -> Result<Self, Error> {
        let log = std::fs::File::create(dir.path().join("mosquitto.log"))?;
        let child = tokio::process::Command::new(Self::binary()?)
            .arg("-c")
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let broker = Self {
            port,
            child,
            _dir: dir,
        };
        eventually(
            "mosquitto to listen",
            Duration::from_secs(10),
            || async move {
                Ok(tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                    .await
                    .ok()
                    .map(|_| ()))
            },
        )
        .await?;
        Ok(broker)
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
