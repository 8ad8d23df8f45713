//! The embedded MQTT 3.1.1 broker. Device telemetry (`things/{uid}/up/...`) and shadow reports
//! (`$aws/things/{uid}/shadow/update`) go through the platform *before* the broker answers PUBACK, so a QoS 1 message is acknowledged only
//! once it is committed; a restart loses nothing that was acknowledged. Other topics (and
//! telemetry, after ingest) are forwarded to matching subscribers at QoS 0.
//!
//! Like AWS IoT Core, QoS 2 and retained messages are not supported. The packet codec is
//! rumqttc's; see `docs/architecture.md` for why this is not rumqttd.
//!
//! Every client signs in as a device (client id and user name its uid, password its device
//! token; or, on the TLS listener, its client certificate alone) and uses only its own
//! topics, as the AWS IoT device policy allows: a publish elsewhere closes the connection, a
//! subscription elsewhere is refused in its SUBACK. Or it signs in with an application
//! credential: it may subscribe with wildcards, receives only its tenant's devices' messages,
//! and a publish closes the connection.

use bytes::BytesMut;
use iot_core::topics::{
    SHADOW_UPDATE_FILTER, TELEMETRY_FILTER, device_may_publish, device_may_subscribe,
};
use rumqttc::{
    ConnAck, ConnectReturnCode, Login, Packet, PubAck, Publish, QoS, SubAck, SubscribeReasonCode,
    UnsubAck, matches, valid_filter, valid_topic,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Who a session acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A device: its own topics only.
    Device {
        uid: String,
        tenant: String,
        /// Signed in by its certificate rather than its token.
        by_certificate: bool,
    },
    /// An application credential: reads its tenant's devices' messages, publishes nothing.
    Application { id: String, tenant: String },
}

impl Identity {
    fn may_subscribe(&self, filter: &str) -> bool {
        match self {
            Identity::Device { uid, .. } => device_may_subscribe(uid, filter),
            Identity::Application { .. } => true,
        }
    }

    fn may_publish(&self, topic: &str) -> bool {
        match self {
            Identity::Device { uid, .. } => device_may_publish(uid, topic),
            Identity::Application { .. } => false,
        }
    }

    /// Whether a message of a device of `tenant` may reach this session.
    fn may_receive(&self, tenant: &str) -> bool {
        match self {
            // A device's filters name its own topics, whose messages are its tenant's.
            Identity::Device { .. } => true,
            Identity::Application { tenant: own, .. } => own == tenant,
        }
    }

    pub fn tenant(&self) -> &str {
        match self {
            Identity::Device { tenant, .. } | Identity::Application { tenant, .. } => tenant,
        }
    }
}

/// What the broker asks of the platform: who a client is, and committing a device message
/// before it is acknowledged.
#[async_trait::async_trait]
pub trait DeviceSessions: Send + Sync {
    /// Checks a CONNECT's credentials (the id of the TLS client certificate, if the client
    /// presented one the device CA signed); answers who the session acts as.
    async fn authenticate(
        &self,
        client_id: &str,
        login: Option<&Login>,
        certificate: Option<&str>,
    ) -> Result<Identity, ConnectReturnCode>;

    /// Commits a device message. `Err` means "not committed": the broker closes the
    /// connection without PUBACK, so the device sends it again.
    async fn commit(&self, topic: String, payload: bytes::Bytes) -> Result<(), CommitError>;
}

/// Why a device message was not committed (a store or queue that failed); the device resends.
#[derive(Debug, thiserror::Error)]
#[error("not committed: {0}")]
pub struct CommitError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

struct Subscriber {
    identity: Identity,
    filters: Vec<String>,
    outbox: mpsc::Sender<Publish>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    sessions: HashMap<u64, (String, Subscriber)>,
    /// Client id -> session, to take over a duplicate client id (MQTT 3.1.1, 3.1.4-2).
    by_client: HashMap<String, (u64, watch::Sender<bool>)>,
}

#[derive(Clone)]
pub struct Broker {
    registry: Arc<Mutex<Registry>>,
    sessions: Arc<dyn DeviceSessions>,
    max_payload: usize,
}

impl Broker {
    pub fn new(sessions: Arc<dyn DeviceSessions>, max_payload: usize) -> Self {
        Self {
            registry: Arc::new(Mutex::new(Registry::default())),
            sessions,
            max_payload,
        }
    }

    /// Accepts connections until `shutdown` turns true; then stops accepting, lets each
    /// connection finish the message in hand, and returns.
    /// With `tls`, every connection is TLS and presents a client certificate of the device CA.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let this = Arc::new(self);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let broker = this.clone();
                        let stop = shutdown.clone();
                        let tls = tls.clone();
                        connections.spawn(async move {
                            let Some(tls) = tls else {
                                return broker.connection(stream, peer, None, stop).await;
                            };
                            let handshake = tokio::time::timeout(Duration::from_secs(10), tls.accept(stream));
                            match handshake.await {
                                Ok(Ok(stream)) => {
                                    let certificate = stream
                                        .get_ref()
                                        .1
                                        .peer_certificates()
                                        .and_then(|chain| chain.first())
                                        .map(|der| crate::mqtt_tls::certificate_id(der));
                                    broker.connection(stream, peer, certificate, stop).await;
                                }
                                Ok(Err(e)) => {
                                    metrics::counter!(crate::counters::MQTT_CONNECTS_REFUSED).increment(1);
                                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                                }
                                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting an MQTT connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = shutdown.changed() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        while connections.join_next().await.is_some() {}
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
        self: Arc<Self>,
        mut stream: S,
        peer: SocketAddr,
        certificate: Option<String>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut buf = BytesMut::with_capacity(4096);
        let mut out = BytesMut::with_capacity(256);
        // CONNECT first, within 10 s.
        let connect = match tokio::time::timeout(
            Duration::from_secs(10),
            read_packet(&mut stream, &mut buf, self.max_payload),
        )
        .await
        {
            Ok(Ok(Some(Packet::Connect(connect)))) => connect,
            Ok(Ok(Some(other))) => {
                tracing::debug!(%peer, ?other, "first packet was not CONNECT");
                return;
            }
            _ => return,
        };
        let client_id = connect.client_id.clone();
        let identity = match self
            .sessions
            .authenticate(&client_id, connect.login.as_ref(), certificate.as_deref())
            .await
        {
            Ok(identity) => identity,
            Err(code) => {
                metrics::counter!(crate::counters::MQTT_CONNECTS_REFUSED).increment(1);
                tracing::info!(%peer, client = %connect.client_id, ?code, "MQTT connection refused");
                let refusal = Packet::ConnAck(ConnAck::new(code, false));
                let _ = write_packet(&mut stream, &mut out, &refusal).await;
                return;
            }
        };
        let (outbox_tx, mut outbox) = mpsc::channel::<Publish>(1024);
        let (kick_tx, mut kicked) = watch::channel(false);
        let session = {
            let mut registry = self.lock();
            registry.next_id += 1;
            let id = registry.next_id;
            registry.sessions.insert(
                id,
                (
                    client_id.clone(),
                    Subscriber {
                        identity: identity.clone(),
                        filters: Vec::new(),
                        outbox: outbox_tx,
                    },
                ),
            );
            if let Some((_, old)) = registry.by_client.insert(client_id.clone(), (id, kick_tx)) {
                let _ = old.send(true);
            }
            id
        };
        let ack = Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false));
        if write_packet(&mut stream, &mut out, &ack).await.is_err() {
            self.forget(session, &client_id);
            return;
        }
        tracing::debug!(%peer, client = %client_id, "MQTT client connected");
        // A silent client is dropped after 1.5 keep-alive periods.
        let idle = match connect.keep_alive {
            0 => Duration::from_secs(24 * 3600),
            s => Duration::from_millis(u64::from(s) * 1500),
        };
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = kicked.changed() => break,
                Some(publish) = outbox.recv() => {
                    if write_packet(&mut stream, &mut out, &Packet::Publish(publish)).await.is_err() {
                        break;
                    }
                }
                packet = tokio::time::timeout(idle, read_packet(&mut stream, &mut buf, self.max_payload)) => {
                    let packet = match packet {
                        Ok(Ok(Some(p))) => p,
                        Ok(Ok(None)) => break,
                        Ok(Err(e)) => {
                            tracing::debug!(client = %client_id, error = %e, "closing the connection");
                            break;
                        }
                        Err(_) => {
                            tracing::debug!(client = %client_id, "keep-alive expired");
                            break;
                        }
                    };
                    match self.on_packet(session, &client_id, &identity, packet).await {
                        Ok(Some(reply)) => {
                            if write_packet(&mut stream, &mut out, &reply).await.is_err() {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(()) => break,
                    }
                }
            }
        }
        self.forget(session, &client_id);
        tracing::debug!(client = %client_id, "MQTT client disconnected");
    }

    fn forget(&self, session: u64, client_id: &str) {
        let mut registry = self.lock();
        registry.sessions.remove(&session);
        if registry
            .by_client
            .get(client_id)
            .is_some_and(|(id, _)| *id == session)
        {
            registry.by_client.remove(client_id);
        }
    }

    /// Handles one packet; `Err` closes the connection.
    async fn on_packet(
        &self,
        session: u64,
        client_id: &str,
        identity: &Identity,
        packet: Packet,
    ) -> Result<Option<Packet>, ()> {
        match packet {
            Packet::Publish(publish) => self.on_publish(client_id, identity, publish).await,
            Packet::Subscribe(subscribe) => {
                let mut codes = Vec::with_capacity(subscribe.filters.len());
                let mut registry = self.lock();
                for filter in subscribe.filters {
                    if valid_filter(&filter.path) && identity.may_subscribe(&filter.path) {
                        if let Some((_, sub)) = registry.sessions.get_mut(&session)
                            && !sub.filters.contains(&filter.path)
                        {
                            sub.filters.push(filter.path);
                        }
                        codes.push(SubscribeReasonCode::Success(QoS::AtMostOnce));
                    } else {
                        tracing::info!(client = %client_id, filter = %filter.path, "subscription refused");
                        codes.push(SubscribeReasonCode::Failure);
                    }
                }
                Ok(Some(Packet::SubAck(SubAck::new(subscribe.pkid, codes))))
            }
            Packet::Unsubscribe(unsubscribe) => {
                if let Some((_, sub)) = self.lock().sessions.get_mut(&session) {
                    sub.filters.retain(|f| !unsubscribe.topics.contains(f));
                }
                Ok(Some(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid))))
            }
            Packet::PingReq => Ok(Some(Packet::PingResp)),
            Packet::PubAck(_) => Ok(None),
            Packet::Disconnect => Err(()),
            other => {
                tracing::debug!(client = %client_id, ?other, "unsupported packet; closing");
                Err(())
            }
        }
    }

    async fn on_publish(
        &self,
        client_id: &str,
        identity: &Identity,
        publish: Publish,
    ) -> Result<Option<Packet>, ()> {
        if publish.qos == QoS::ExactlyOnce {
            tracing::warn!(client = %client_id, "QoS 2 is not supported (nor by AWS IoT Core); closing");
            return Err(());
        }
        if !valid_topic(&publish.topic) {
            tracing::warn!(client = %client_id, topic = %publish.topic, "invalid topic; closing");
            return Err(());
        }
        // As AWS IoT Core does with a publish its policy denies: the connection closes.
        if !identity.may_publish(&publish.topic) {
            metrics::counter!(crate::counters::MQTT_PUBLISHES_REFUSED).increment(1);
            tracing::warn!(client = %client_id, topic = %publish.topic, "publish outside the client's own topics; closing");
            return Err(());
        }
        if (matches(&publish.topic, TELEMETRY_FILTER)
            || topic_matches(&publish.topic, SHADOW_UPDATE_FILTER)
            || iot_core::topics::jobs_request(&publish.topic).is_some())
            && let Err(error) = self
                .sessions
                .commit(publish.topic.clone(), publish.payload.clone())
                .await
        {
            // Not committed: no PUBACK; the device resends after reconnecting.
            tracing::warn!(client = %client_id, %error, "ingest failed; closing without PUBACK");
            return Err(());
        }
        forward(&self.registry, identity.tenant(), &publish);
        Ok(match publish.qos {
            QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(publish.pkid))),
            _ => None,
        })
    }

    /// A handle for the platform's own messages to devices (commands, shadow deltas).
    pub fn downlink(&self) -> Downlink {
        Downlink {
            registry: self.registry.clone(),
        }
    }
}

/// Forwards a message of a device of `tenant` to matching subscribers at QoS 0; a subscriber
/// too slow to keep up loses messages rather than stalling publishers. Answers how many
/// subscribers it reached.
fn forward(registry: &Mutex<Registry>, tenant: &str, publish: &Publish) -> usize {
    let registry = registry.lock().unwrap_or_else(|p| p.into_inner());
    let mut reached = 0;
    for (client, sub) in registry.sessions.values() {
        if sub.identity.may_receive(tenant)
            && sub.filters.iter().any(|f| topic_matches(&publish.topic, f))
        {
            let mut copy = Publish::new(publish.topic.clone(), QoS::AtMostOnce, Vec::new());
            copy.payload = publish.payload.clone();
            if sub.outbox.try_send(copy).is_ok() {
                reached += 1;
            } else {
                metrics::counter!(crate::counters::MQTT_FORWARD_DROPPED).increment(1);
                tracing::debug!(%client, "subscriber is slow; message dropped");
            }
        }
    }
    reached
}

/// Whether `topic` matches `filter`. Topics starting with `$` (the shadow topics) match only
/// filters that name their first level (MQTT 3.1.1, 4.7.2); rumqttc's `matches` never
/// matches them at all.
fn topic_matches(topic: &str, filter: &str) -> bool {
    if !topic.starts_with('$') {
        return matches(topic, filter);
    }
    match (topic.split_once('/'), filter.split_once('/')) {
        (Some((first, rest)), Some((filter_first, filter_rest))) => {
            first == filter_first && matches(rest, filter_rest)
        }
        _ => topic == filter,
    }
}

/// Publishes the platform's messages to the embedded broker's subscribers.
#[derive(Clone)]
pub struct Downlink {
    registry: Arc<Mutex<Registry>>,
}

impl Downlink {
    /// Ends every live session whose identity `whose` selects (a suspended tenant, a deleted
    /// device); answers how many. Signing in again is refused by the platform from then on.
    pub fn end_sessions(&self, whose: impl Fn(&Identity) -> bool) -> usize {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut ended = 0;
        for (session, (client, subscriber)) in &registry.sessions {
            if !whose(&subscriber.identity) {
                continue;
            }
            if let Some((_, kick)) = registry
                .by_client
                .get(client)
                .filter(|(id, _)| id == session)
            {
                let _ = kick.send(true);
                ended += 1;
            }
        }
        ended
    }

    /// Sends a message to a device of `tenant` to the clients subscribed now (QoS 0, as the
    /// broker forwards); answers how many.
    pub fn publish(&self, tenant: &str, topic: &str, payload: Vec<u8>) -> usize {
        forward(
            &self.registry,
            tenant,
            &Publish::new(topic, QoS::AtMostOnce, payload),
        )
    }
}

/// Why a connection ends: the peer sent what MQTT does not allow, or the socket failed.
#[derive(Debug, thiserror::Error)]
enum WireError {
    #[error("malformed packet: {0}")]
    Malformed(rumqttc::Error),
    #[error("cannot encode a packet: {0}")]
    Encode(rumqttc::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    max_payload: usize,
) -> Result<Option<Packet>, WireError> {
    loop {
        match Packet::read(buf, max_payload) {
            Ok(packet) => return Ok(Some(packet)),
            Err(rumqttc::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(WireError::Malformed(e)),
        }
        buf.reserve(4096);
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

async fn write_packet<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut BytesMut,
    packet: &Packet,
) -> Result<(), WireError> {
    out.clear();
    packet.write(out, usize::MAX).map_err(WireError::Encode)?;
    Ok(stream.write_all(out).await?)
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn dollar_topics_match_only_filters_that_name_their_first_level() {
        let delta = "$aws/things/a/shadow/update/delta";
        assert!(topic_matches(delta, delta));
        assert!(topic_matches(delta, "$aws/things/a/shadow/#"));
        assert!(topic_matches(delta, "$aws/things/+/shadow/update/delta"));
        assert!(!topic_matches(delta, "#"));
        assert!(!topic_matches(delta, "+/things/a/shadow/update/delta"));
        assert!(!topic_matches(delta, "$aws/things/b/shadow/#"));
        assert!(topic_matches("things/a/down/command", "things/a/down/#"));
        assert!(!topic_matches("things/a/down/command", "things/b/down/#"));
    }
}
