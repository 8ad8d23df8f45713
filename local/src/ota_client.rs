//! A device's OTA client, as the simulator runs it: the AWS IoT Jobs MQTT API over the
//! device's connection (the same topics and messages on AWS), a download from the job
//! document's URL, the SHA-256 checked before "installing", and a report of the outcome.
//! `fail` of the devices report FAILED, to try abort rules.

use rumqttc::{AsyncClient, QoS};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the simulated fleet's OTA clients did.
#[derive(Debug, Default)]
pub struct OtaCounters {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
}

#[derive(Clone)]
pub struct OtaClient {
    uid: String,
    client: AsyncClient,
    http: reqwest::Client,
    /// This device reports FAILED after downloading (it is among the failing fraction).
    fails: bool,
    counters: Arc<OtaCounters>,
}

impl OtaClient {
    pub fn new(uid: &str, client: AsyncClient, fails: bool, counters: Arc<OtaCounters>) -> Self {
        Self {
            uid: uid.to_owned(),
            client,
            http: reqwest::Client::new(),
            fails,
            counters,
        }
    }

    fn topic(&self, rest: &str) -> String {
        format!("$aws/things/{}/jobs/{rest}", self.uid)
    }

    /// After each connect: hear what is next, and ask for it at once (a device back from
    /// offline finds its pending job this way).
    pub fn on_connect(&self) {
        for rest in [
            "notify-next",
            "start-next/accepted",
            "+/update/accepted",
            "+/update/rejected",
        ] {
            let _ = self
                .client
                .try_subscribe(self.topic(rest), QoS::AtLeastOnce);
        }
        self.start_next();
    }

    fn start_next(&self) {
        let body = json!({ "clientToken": self.uid }).to_string();
        let _ = self
            .client
            .try_publish(self.topic("start-next"), QoS::AtLeastOnce, false, body);
    }

    /// A message on one of the jobs topics; others are not the client's.
    pub fn on_message(&self, topic: &str, payload: &[u8]) {
        let Ok(message) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        if topic == self.topic("notify-next") {
            if message.get("execution").is_some() {
                self.start_next();
            }
        } else if topic == self.topic("start-next/accepted") {
            if let Some(execution) = message.get("execution").cloned() {
                let me = self.clone();
                tokio::spawn(async move { me.install(execution).await });
            }
        } else if topic.ends_with("/update/rejected") {
            tracing::warn!(device = %self.uid, answer = %message, "a jobs update was refused");
        }
    }

    async fn install(&self, execution: Value) {
        let (Some(job), Some(document)) =
            (execution["jobId"].as_str(), execution.get("jobDocument"))
        else {
            return;
        };
        let outcome = self.download(document).await;
        let (status, reason) = match outcome {
            Ok(()) if self.fails => ("FAILED", "the simulated install failed".to_owned()),
            Ok(()) => ("SUCCEEDED", "installed".to_owned()),
            Err(why) => ("FAILED", why),
        };
        let counter = if status == "SUCCEEDED" {
            &self.counters.succeeded
        } else {
            &self.counters.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let update = json!({ "status": status, "clientToken": self.uid,
                             "statusDetails": { "reason": reason,
                                                "version": document["version"] } });
        let _ = self
            .client
            .publish(
                self.topic(&format!("{job}/update")),
                QoS::AtLeastOnce,
                false,
                update.to_string(),
            )
            .await;
    }

    /// Downloads the image and checks its size and SHA-256 against the document.
    async fn download(&self, document: &Value) -> Result<(), String> {
        let url = document["url"].as_str().ok_or("the document has no url")?;
        let response = self
            .http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("download failed: {e}"))?;
        let image = response
            .bytes()
            .await
            .map_err(|e| format!("download broke off: {e}"))?;
        let digest = hex::encode(Sha256::digest(&image));
        if Some(digest.as_str()) != document["sha256"].as_str() {
            return Err(format!(
                "the image's SHA-256 is {digest}, not the document's"
            ));
        }
        if Some(image.len() as u64) != document["size"].as_u64() {
            return Err(format!(
                "the image has {} bytes, not the document's",
                image.len()
            ));
        }
        Ok(())
    }
}
