//! How the smoke test's device sends: the way a deployed stack's devices do.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::Duration;

use crate::SmokeError;
use crate::api::Api;

/// The path a message takes into the platform.
#[derive(Clone, Debug)]
pub enum Via {
    /// AWS IoT Core's data endpoint (`https://<id>-ats.iot.<region>.amazonaws.com`), signed
    /// with the caller's AWS credentials; the stack's topic rule takes it from there.
    IotData { endpoint: String },
    /// `POST /v1/ingest` with the device's token.
    Http,
    /// MQTT to `host:port` with the device's token as its password (the embedded broker, or
    /// Mosquitto configured by `iot-local mosquitto-config`).
    Mqtt { host: String, port: u16 },
}

/// A device the smoke test made, ready to send.
pub struct Sender {
    via: Via,
    uid: String,
    token: String,
    iot_data: Option<aws_sdk_iotdataplane::Client>,
}

impl Sender {
    pub async fn new(via: Via, uid: &str, token: &str) -> Self {
        let iot_data = match &via {
            Via::IotData { endpoint } => {
                let sdk = iot_aws::config::load(&iot_aws::config::CallPolicy::default()).await;
                let config = aws_sdk_iotdataplane::config::Builder::from(&sdk)
                    .endpoint_url(endpoint)
                    .build();
                Some(aws_sdk_iotdataplane::Client::from_conf(config))
            }
            _ => None,
        };
        Self {
            via,
            uid: uid.to_owned(),
            token: token.to_owned(),
            iot_data,
        }
    }

    /// Sends `payload` on the device's telemetry topic; returns once the platform took it
    /// (HTTP answer, PUBACK, or the data endpoint's answer).
    pub async fn send(&self, api: &Api, payload: &str) -> Result<(), SmokeError> {
        let topic = format!("things/{}/up/telemetry", self.uid);
        match &self.via {
            Via::Http => api.ingest(&self.token, payload.as_bytes()).await,
            Via::IotData { .. } => {
                let client = self
                    .iot_data
                    .as_ref()
                    .ok_or(SmokeError::Publish("no IoT data client".into()))?;
                client
                    .publish()
                    .topic(&topic)
                    .qos(1)
                    .payload(payload.as_bytes().to_vec().into())
                    .send()
                    .await
                    .map_err(|e| SmokeError::Publish(iot_aws::error::describe(&e)))?;
                Ok(())
            }
            Via::Mqtt { host, port } => self.send_mqtt(host, *port, &topic, payload).await,
        }
    }

    async fn send_mqtt(
        &self,
        host: &str,
        port: u16,
        topic: &str,
        payload: &str,
    ) -> Result<(), SmokeError> {
        let mut options = MqttOptions::new(&self.uid, host, port);
        options.set_credentials(&self.uid, &self.token);
        let (client, mut events) = AsyncClient::new(options, 4);
        client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .map_err(|e| SmokeError::Publish(e.to_string()))?;
        let acknowledged = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                    Ok(Event::Incoming(Packet::ConnAck(ack)))
                        if ack.code != rumqttc::ConnectReturnCode::Success =>
                    {
                        return Err(SmokeError::Publish(format!("CONNACK {:?}", ack.code)));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(SmokeError::Publish(e.to_string())),
                }
            }
        })
        .await
        .map_err(|_| SmokeError::Timeout {
            what: "the broker's PUBACK".into(),
            seconds: 10,
        })?;
        let _ = client.disconnect().await;
        acknowledged
    }
}
