//! Starting and stopping the platform: data dir, database, broker (embedded or external),
//! workers, statistics timer and the HTTP API.

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use iot_api::ApiState;
use iot_api::audit::ClientAddr;
use iot_api::jwks::HttpJwks;
use iot_core::auth::token::key_ring;
use iot_core::auth::{AuthService, AuthSettings, TokenKeys};
use iot_core::notify::ChannelTargets;
use iot_core::parse::Parser;
use iot_core::time::{DAY, SECOND};
use iot_core::topics::{SHADOW_UPDATE_FILTER, TELEMETRY_FILTER, uplink_device};
use iot_core::usecase::{DeviceJobs, OtaService};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::Config;
use crate::gateway::{DeviceCa, DeviceLink, LocalGateway};
use crate::ota_jobs::{LocalJobs, SignedLinks, ota_timer};
use crate::pipeline::{self, Services};
use crate::secrets;

#[derive(Debug, Error)]
pub enum StartError {
    #[error("the data directory {path} is not usable: {reason}")]
    DataDir { path: String, reason: String },
    #[error("cannot open the platform's stores: {0}")]
    Services(#[source] Box<crate::error::LocalError>),
    #[error(
        "{what} port {port} on {host} is in use or not allowed ({reason}); choose another with {flag}"
    )]
    Port {
        what: &'static str,
        host: IpAddr,
        port: u16,
        flag: &'static str,
        reason: String,
    },
    #[error("cannot reach the MQTT broker at {url}: {reason}")]
    Broker { url: String, reason: String },
    #[error("the MQTT URL {0:?} is invalid: use mqtt://host:port")]
    BrokerUrl(String),
    #[error("cannot set up authentication: {0}")]
    Auth(String),
    #[error("cannot read the platform's secrets: {0}")]
    Secrets(#[source] Box<crate::error::LocalError>),
    #[error("cannot set up {0}")]
    DeviceCa(#[source] Box<crate::error::LocalError>),
    #[error("mqtt.bind {0:?} is not an IP address, e.g. 127.0.0.1 or 0.0.0.0")]
    BindAddress(String),
}

impl StartError {
    fn secrets(e: crate::error::LocalError) -> Self {
        Self::Secrets(Box::new(e))
    }
}

/// A running platform; [`Running::shutdown`] stops it cleanly.
pub struct Running {
    pub http_addr: SocketAddr,
    /// The embedded broker's address (`None` with an external broker).
    pub mqtt_addr: Option<SocketAddr>,
    /// Its TLS listener, for devices with a certificate of the device CA.
    pub mqtts_addr: Option<SocketAddr>,
    pub services: Arc<Services>,
    pub auth: Arc<AuthService>,
    /// The first administrator's login, and their password if it was generated at this start
    /// (it is shown once; it stays in `<data_dir>/admin-password`).
    pub admin_user: String,
    pub generated_admin_password: Option<String>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops accepting, finishes the messages in hand, and waits for every task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until a task ends on its own (it should not), then shuts down.
    pub async fn wait_for_signal(self) {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing the messages in hand");
        self.shutdown().await;
        tracing::info!("stopped");
    }
}

/// The process-wide Prometheus recorder (a process has one).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Fails only if another recorder is installed; then ours just stays empty.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

fn prepare_data_dir(path: &PathBuf) -> Result<(), StartError> {
    let err = |reason: String| StartError::DataDir {
        path: path.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(path).map_err(|e| err(e.to_string()))?;
    let probe = path.join(".write-test");
    std::fs::write(&probe, b"ok").map_err(|e| err(format!("cannot write in it: {e}")))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

async fn bind(
    port: u16,
    what: &'static str,
    flag: &'static str,
) -> Result<TcpListener, StartError> {
    bind_on(IpAddr::V4(Ipv4Addr::LOCALHOST), port, what, flag).await
}

async fn bind_on(
    host: IpAddr,
    port: u16,
    what: &'static str,
    flag: &'static str,
) -> Result<TcpListener, StartError> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| StartError::Port {
            what,
            host,
            port,
            flag,
            reason: e.to_string(),
        })
}

/// The audit log's "from where": the peer address of the connection.
async fn client_addr(mut request: axum::extract::Request) -> axum::extract::Request {
    if let Some(ConnectInfo(addr)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let addr = ClientAddr(addr.ip().to_string());
        request.extensions_mut().insert(addr);
    }
    request
}

/// The token service on the data directory's signing key, and the tenant's first
/// administrator on the first start.
async fn build_auth(
    config: &Config,
    services: &Services,
) -> Result<(Arc<AuthService>, Option<String>), StartError> {
    let signing = secrets::signing_keys(&config.data_dir).map_err(StartError::secrets)?;
    let sealing = secrets::sealing_keys(&config.data_dir).map_err(StartError::secrets)?;
    let keys = TokenKeys::new(&key_ring(&signing), &key_ring(&sealing))
        .map_err(|e| StartError::Auth(e.to_string()))?;
    let settings = AuthSettings {
        access_ttl_ms: config.auth.access_ttl_s.max(1) * SECOND,
        refresh_ttl_ms: config.auth.refresh_ttl_s.max(1) * SECOND,
        ..AuthSettings::default()
    };
    let jwks = HttpJwks::new(Duration::from_secs(5), services.outbound.clone());
    let auth = Arc::new(
        AuthService::new(
            services.catalog.clone(),
            services.clock.clone(),
            keys,
            settings,
        )
        .with_jwks(Arc::new(jwks)),
    );
    let (password, generated) =
        secrets::admin_password(&config.data_dir, &config.auth.admin_password)
            .map_err(StartError::secrets)?;
    let created = auth
        .bootstrap_tenant(&config.tenant, &config.auth.admin_user, &password)
        .await
        .map_err(|e| StartError::Auth(format!("creating the first administrator: {e}")))?;
    Ok((auth, (created && generated).then_some(password)))
}

pub async fn start(config: &Config) -> Result<Running, StartError> {
    let data_dir = config.data_dir.clone();
    prepare_data_dir(&data_dir)?;
    let prometheus = prometheus().clone();
    let services = Arc::new(
        Services::build(config, &data_dir).map_err(|e| StartError::Services(Box::new(e)))?,
    );
    let http = bind(config.http.port, "the HTTP", "--http-port").await?;
    let http_addr = http.local_addr().map_err(|e| StartError::Port {
        what: "the HTTP",
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: config.http.port,
        flag: "--http-port",
        reason: e.to_string(),
    })?;
    let (shutdown, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();

    let ca = DeviceCa::load_or_create(&data_dir).map_err(|e| StartError::DeviceCa(Box::new(e)))?;
    let (mqtt_addr, mqtts_addr, link) = if config.mqtt.url.is_empty() {
        let host: IpAddr = config
            .mqtt
            .bind
            .parse()
            .map_err(|_| StartError::BindAddress(config.mqtt.bind.clone()))?;
        if !host.is_loopback() {
            tracing::warn!(
                %host,
                "the plain MQTT listener is reachable beyond this machine, and device tokens cross \
                 the network unencrypted: let devices elsewhere use the TLS listener (mqtt.tls_port)"
            );
        }
        let listener = bind_on(host, config.mqtt.port, "the MQTT", "--mqtt-port").await?;
        let addr = listener.local_addr().ok();
        let tls_listener =
            bind_on(host, config.mqtt.tls_port, "the MQTT TLS", "mqtt.tls_port").await?;
        let tls_addr = tls_listener.local_addr().ok();
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        if !host.is_unspecified() && !host.is_loopback() {
            names.push(host.to_string());
        }
        let acceptor = crate::mqtt_tls::acceptor(&ca, &names)
            .map_err(|e| StartError::DeviceCa(Box::new(e)))?;
        let broker = Broker::new(services.clone(), config.mqtt.max_payload);
        let link = DeviceLink::Embedded(broker.downlink());
        tasks.spawn(
            broker
                .clone()
                .serve(tls_listener, Some(acceptor), stop.clone()),
        );
        tasks.spawn(broker.serve(listener, None, stop.clone()));
        (addr, tls_addr, link)
    } else {
        let subscriber = connect_external(config, services.clone()).await?;
        let link = DeviceLink::External(subscriber.client.clone());
        tasks.spawn(subscriber.run(stop.clone()));
        (None, None, link)
    };
    // Where a device with a certificate connects: the TLS listener, or the external broker.
    let endpoint = match mqtts_addr {
        Some(addr) => format!("mqtts://{addr}"),
        None => config.mqtt.url.clone(),
    };
    let gateway = Arc::new(LocalGateway::new(
        services.catalog.clone(),
        link,
        ca,
        endpoint,
    ));
    // Firmware images in the same directory as dead letters and exports, under `firmware/`.
    let ota = Arc::new(OtaService::new(
        services.catalog.clone(),
        services.dead_letters.clone(),
        gateway.clone(),
        services.clock.clone(),
    ));

    tasks.spawn(pipeline::alarm_worker(services.clone(), stop.clone()));
    tasks.spawn(pipeline::notify_worker(services.clone(), stop.clone()));
    tasks.spawn(pipeline::stats_timer(services.clone(), stop.clone()));
    tasks.spawn(pipeline::retention_timer(
        services.clone(),
        Duration::from_secs(config.pipeline.retention_sweep_s.max(1)),
        stop.clone(),
    ));

    let (auth, generated_admin_password) = build_auth(config, &services).await?;
    let download_base = if config.http.public_url.is_empty() {
        format!("http://{http_addr}")
    } else {
        config.http.public_url.trim_end_matches('/').to_owned()
    };
    let jobs = Arc::new(LocalJobs {
        jobs: DeviceJobs::new(
            ota.clone(),
            services.catalog.clone(),
            services.clock.clone(),
            Arc::new(SignedLinks {
                auth: auth.clone(),
                base: download_base,
            }),
        ),
        ota: ota.clone(),
        gateway: gateway.clone(),
    });
    let _ = services.jobs.set(jobs.clone());
    tasks.spawn(ota_timer(
        jobs,
        services.clock.clone(),
        Duration::from_millis(config.pipeline.ota_tick_ms.max(10)),
        stop.clone(),
    ));
    let api = Arc::new(ApiState {
        catalog: services.catalog.clone(),
        telemetry: services.telemetry.clone(),
        alarms: services.alarms.clone(),
        stats: services.stats.clone(),
        scheduler: services.scheduler.clone(),
        parser: Parser::default(),
        clock: services.clock.clone(),
        auth: auth.clone(),
        device_ingest: Arc::new(pipeline::LocalDeviceIngest(services.clone())),
        // The same directory as dead letters, under `exports/`.
        exports: services.dead_letters.clone(),
        gateway,
        ota,
        default_tenant: config.tenant.clone(),
        audit_retention_ms: config.auth.audit_retention_days.max(1) * DAY,
        channel_targets: ChannelTargets::local(),
        outbound: services.outbound.clone(),
    });
    let app = iot_api::app(api)
        .merge(Router::new().route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
        ))
        .layer(axum::middleware::map_request(client_addr));
    let mut http_stop = stop.clone();
    tasks.spawn(async move {
        let served = axum::serve(
            http,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|stop| *stop).await;
        })
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the HTTP server failed");
        }
    });
    Ok(Running {
        http_addr,
        mqtt_addr,
        mqtts_addr,
        services,
        auth,
        admin_user: config.auth.admin_user.clone(),
        generated_admin_password,
        shutdown,
        tasks,
    })
}

/// The ingest subscription on an external broker: a persistent session (clean session off)
/// at QoS 1 with manual acknowledgements, so a message is acknowledged only after it is
/// committed, and the broker keeps what arrives while the platform is down.
struct ExternalSubscriber {
    client: AsyncClient,
    eventloop: rumqttc::EventLoop,
    services: Arc<Services>,
}

fn parse_mqtt_url(url: &str) -> Option<(String, u16)> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))?;
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((rest.to_owned(), 1883)),
    }
}

async fn connect_external(
    config: &Config,
    services: Arc<Services>,
) -> Result<ExternalSubscriber, StartError> {
    let url = &config.mqtt.url;
    let (host, port) = parse_mqtt_url(url).ok_or_else(|| StartError::BrokerUrl(url.clone()))?;
    let mut options = MqttOptions::new(&config.mqtt.client_id, host, port);
    // Signed in as `mosquitto-config` set the broker up, if it did.
    if let Some(password) =
        crate::mosquitto::platform_password(&config.data_dir).map_err(StartError::secrets)?
    {
        options.set_credentials(crate::mosquitto::PLATFORM_USER, password);
    }
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(
            config.mqtt.max_payload + 1024,
            config.mqtt.max_payload + 1024,
        );
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    // Fail fast and clearly if the broker is not there.
    let connected = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await;
    let broker_err = |reason: String| StartError::Broker {
        url: url.clone(),
        reason,
    };
    match connected {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => return Err(broker_err(reason)),
        Err(_) => return Err(broker_err("no answer within 5 s".into())),
    }
    for filter in platform_filters() {
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| broker_err(e.to_string()))?;
    }
    tracing::info!(%url, "subscribed to telemetry, shadow reports and jobs requests on the external broker");
    Ok(ExternalSubscriber {
        client,
        eventloop,
        services,
    })
}

/// What the platform takes from an external broker: telemetry, shadow reports and jobs
/// requests.
fn platform_filters() -> impl Iterator<Item = &'static str> {
    [TELEMETRY_FILTER, SHADOW_UPDATE_FILTER]
        .into_iter()
        .chain(iot_core::topics::JOBS_REQUEST_FILTERS)
}

/// Messages from the external broker handled at once (across devices).
const IN_FLIGHT: usize = 128;

impl ExternalSubscriber {
    /// Polls the connection; a second task handles the messages, up to [`IN_FLIGHT`] at once
    /// across devices but one at a time per device (so alarms see each device's readings in
    /// order), and acknowledges them in arrival order after each is committed (MQTT requires
    /// PUBACKs in PUBLISH order).
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        use futures_util::StreamExt;
        let (tx, rx) = mpsc::channel::<rumqttc::Publish>(1024);
        let client = self.client.clone();
        let services = self.services.clone();
        let lanes: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
            Arc::default();
        let worker = tokio::spawn(async move {
            let handled = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|publish| (publish, rx))
            })
            .map(|publish| {
                let (services, lanes) = (services.clone(), lanes.clone());
                async move {
                    let device = uplink_device(&publish.topic).unwrap_or_default().to_owned();
                    let lane = lanes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(device.clone())
                        .or_default()
                        .clone();
                    let turn = lane.lock().await;
                    let mut delay = Duration::from_millis(100);
                    while let Err(error) = services
                        .handle(publish.topic.clone(), publish.payload.clone())
                        .await
                    {
                        tracing::warn!(%error, "ingest failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                    drop(turn);
                    // Forget idle lanes so the map does not grow with every device ever seen.
                    let mut all = lanes.lock().unwrap_or_else(|p| p.into_inner());
                    if Arc::strong_count(&lane) == 2 {
                        all.remove(&device);
                    }
                    publish
                }
            })
            .buffered(IN_FLIGHT);
            futures_util::pin_mut!(handled);
            while let Some(publish) = handled.next().await {
                if let Err(e) = client.ack(&publish).await {
                    tracing::warn!(error = %e, "acknowledging failed; the broker will resend");
                }
            }
        });
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                event = self.eventloop.poll() => match event {
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if tx.send(publish).await.is_err() {
                            break;
                        }
                    }
                    Ok(Event::Incoming(Packet::ConnAck(ack))) if !ack.session_present => {
                        for filter in platform_filters() {
                            let _ = self.client.try_subscribe(filter, QoS::AtLeastOnce);
                        }
                    }
                    Ok(event) => tracing::trace!(?event, "mqtt"),
                    Err(e) => {
                        tracing::warn!(error = %e, "MQTT connection lost; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
            }
        }
        // Finish what was received while the connection keeps sending the acks.
        drop(tx);
        let mut worker = worker;
        loop {
            tokio::select! {
                _ = &mut worker => break,
                event = self.eventloop.poll() => if event.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                },
            }
        }
        let _ = self.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.eventloop.poll().await.is_ok() {}
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_urls_parse() {
        assert_eq!(
            parse_mqtt_url("mqtt://127.0.0.1:1884"),
            Some(("127.0.0.1".into(), 1884))
        );
        assert_eq!(
            parse_mqtt_url("tcp://broker"),
            Some(("broker".into(), 1883))
        );
        assert_eq!(parse_mqtt_url("http://x:1"), None);
        assert_eq!(parse_mqtt_url("mqtt://x:port"), None);
    }
}
