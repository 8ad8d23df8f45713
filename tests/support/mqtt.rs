//! A raw MQTT client for broker tests: what a CONNECT or SUBSCRIBE is answered, and what a
//! subscriber receives.

use crate::Error;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet,
    SubscribeReasonCode,
};
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// What the broker answers a CONNECT: `Ok` with the client's event loop, or the refusal.
pub async fn connect_as(
    broker: SocketAddr,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> Result<Result<(AsyncClient, EventLoop), ConnectReturnCode>, Error> {
    let mut options = MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let (client, mut events) = AsyncClient::new(options, 16);
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(Ok(())),
                Err(ConnectionError::ConnectionRefused(code)) => return Ok(Err(code)),
                Err(e) => return Err(format!("no CONNACK: {e}")),
                Ok(_) => {}
            }
        }
    })
    .await??;
    Ok(answer.map(|()| (client, events)))
}

/// The next SUBACK's return codes, or `None` when the connection ends first.
pub async fn next_suback(
    events: &mut EventLoop,
) -> Result<Option<Vec<SubscribeReasonCode>>, Error> {
    Ok(tokio::time::timeout(WAIT, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(ack))) => return Some(ack.return_codes),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
    .await?)
}

/// The topics of the messages that arrive within `quiet` of each other (the last one
/// `quiet` before returning), and whether the connection ended.
pub async fn received_topics(events: &mut EventLoop, quiet: Duration) -> (Vec<String>, bool) {
    let mut topics = Vec::new();
    loop {
        match tokio::time::timeout(quiet, events.poll()).await {
            Err(_) => return (topics, false),
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => topics.push(p.topic),
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return (topics, true),
        }
    }
}

/// Waits for the connection to end or for a PUBACK, whichever first: `true` if it ended.
pub async fn ended_without_puback(events: &mut EventLoop) -> Result<bool, Error> {
    Ok(tokio::time::timeout(WAIT, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return false,
                Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await?)
}

/// A raw MQTT session over TLS, for listeners that sign devices in by their certificate.
pub struct TlsSession {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    buf: bytes::BytesMut,
}

impl TlsSession {
    /// Connects to `addr` trusting `ca_pem`, with a client certificate and key if given, and
    /// sends CONNECT as `client_id`: the session, or the CONNACK's refusal or why there was
    /// none (a handshake the server refused, a closed connection).
    pub async fn connect(
        addr: SocketAddr,
        ca_pem: &str,
        client: Option<(&str, &str)>,
        client_id: &str,
    ) -> Result<Result<Self, String>, Error> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        use tokio::io::AsyncWriteExt;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes())?)?;
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder.with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes())?],
                PrivateKeyDer::from_pem_slice(key.as_bytes())?,
            )?,
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = ServerName::IpAddress(addr.ip().into());
        let stream = match connector.connect(name, tcp).await {
            Ok(stream) => stream,
            Err(e) => return Ok(Err(format!("handshake: {e}"))),
        };
        let mut session = Self {
            stream,
            buf: bytes::BytesMut::new(),
        };
        let mut out = bytes::BytesMut::new();
        Packet::Connect(rumqttc::Connect::new(client_id)).write(&mut out, usize::MAX)?;
        if let Err(e) = session.stream.write_all(&out).await {
            return Ok(Err(format!("write: {e}")));
        }
        Ok(match session.next_packet().await? {
            Ok(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => Ok(session),
            Ok(Packet::ConnAck(ack)) => Err(format!("refused: {:?}", ack.code)),
            Ok(other) => Err(format!("not a CONNACK: {other:?}")),
            Err(why) => Err(why),
        })
    }

    /// Publishes at QoS 1: whether the PUBACK came before the connection ended.
    pub async fn publish(&mut self, topic: &str, payload: &str) -> Result<bool, Error> {
        use tokio::io::AsyncWriteExt;
        let mut publish = rumqttc::Publish::new(topic, rumqttc::QoS::AtLeastOnce, payload);
        publish.pkid = 1;
        let mut out = bytes::BytesMut::new();
        Packet::Publish(publish).write(&mut out, usize::MAX)?;
        if self.stream.write_all(&out).await.is_err() {
            return Ok(false);
        }
        Ok(matches!(self.next_packet().await?, Ok(Packet::PubAck(_))))
    }

    /// The next packet from the server, or why none came.
    async fn next_packet(&mut self) -> Result<Result<Packet, String>, Error> {
        use tokio::io::AsyncReadExt;
        Ok(tokio::time::timeout(WAIT, async {
            loop {
                match Packet::read(&mut self.buf, 1 << 16) {
                    Ok(packet) => return Ok(packet),
                    Err(rumqttc::Error::InsufficientBytes(_)) => {}
                    Err(e) => return Err(e.to_string()),
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) => return Err("closed".to_owned()),
                    Ok(_) => {}
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
        })
        .await?)
    }
}
