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
