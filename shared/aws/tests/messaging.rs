//! SQS, SNS and S3 specifics against the AWS emulator on 127.0.0.1 (started by the test
//! command): batching limits and refusals, SNS-to-SQS fan-out with attribute filters, and
//! presigned uploads.

mod support;

use iot_aws::testing::create_queue;
use iot_aws::testing::drain;
use iot_aws::testing::{emulator_config, unique_name};
use iot_aws::{S3BlobStore, SnsBus, SqsQueue};
use iot_core::ports::{BlobStore, BusEvent, EventBus, MessageQueue, QueueError, QueueMessage};
use std::collections::{BTreeMap, HashMap};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test]
async fn a_batch_is_sent_in_chunks_and_refusals_are_reported_by_id() -> TestResult {
    let config = emulator_config().await?;
    let client = aws_sdk_sqs::Client::new(&config);
    let (url, _) = create_queue(&client, "q").await?;
    let sqs = SqsQueue::new(client.clone(), &url);

    let messages: Vec<QueueMessage> = (0..23)
        .map(|i| QueueMessage {
            id: format!("m{i:02}"),
            body: format!("{{\"n\":{i}}}"),
        })
        .collect();
    sqs.send(messages).await?;
    let mut received = drain(&client, &url).await?;
    received.sort();
    assert_eq!(received.len(), 23);
    assert_eq!(received[7], ("m07".to_owned(), "{\"n\":7}".to_owned()));

    // A body over SQS's size limit is refused; the others in its batch still go.
    let result = sqs
        .send(vec![
            QueueMessage {
                id: "small".into(),
                body: "ok".into(),
            },
            QueueMessage {
                id: "huge".into(),
                body: "x".repeat(1024 * 1024 + 1),
            },
        ])
        .await;
    match result {
        Err(QueueError::Partial(refused)) => {
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert_eq!(refused[0].0, "huge");
        }
        Err(QueueError::Unavailable(why)) => {
            // Some emulators refuse the whole request instead of the one entry.
            assert!(
                why.to_lowercase().contains("length") || why.contains("size"),
                "{why}"
            );
        }
        Ok(()) => panic!("a message over the size limit must not pass silently"),
    }
    Ok(())
}

#[tokio::test]
async fn sns_fans_out_to_subscribed_queues_filtered_by_attributes() -> TestResult {
    let config = emulator_config().await?;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic = iot_aws::testing::create_topic(&sns, "alarm-events").await?;
    let (url, arn) = create_queue(&sqs, "q").await?;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&arn)
        .attributes("RawMessageDelivery", "true")
        .attributes("FilterPolicy", r#"{"tenant_id": ["acme"]}"#)
        .send()
        .await?;

    let bus = SnsBus::new(sns, HashMap::from([("alarm-events".to_owned(), topic)]));
    for tenant in ["acme", "globex", "acme"] {
        bus.publish(BusEvent {
            topic: "alarm-events".into(),
            body: format!("{{\"tenant\":\"{tenant}\"}}"),
            attributes: BTreeMap::from([
                ("tenant_id".to_owned(), tenant.to_owned()),
                ("level".to_owned(), "major".to_owned()),
            ]),
        })
        .await?;
    }
    let bodies: Vec<String> = drain(&sqs, &url)
        .await?
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert_eq!(bodies, ["{\"tenant\":\"acme\"}", "{\"tenant\":\"acme\"}"]);

    let unknown = bus
        .publish(BusEvent {
            topic: "nowhere".into(),
            body: String::new(),
            attributes: BTreeMap::new(),
        })
        .await;
    assert!(matches!(unknown, Err(QueueError::Unavailable(_))));
    Ok(())
}

#[tokio::test]
async fn presigned_urls_upload_and_download() -> TestResult {
    let config = emulator_config().await?;
    let client = iot_aws::s3::client(&config);
    let bucket = unique_name("firmware");
    client.create_bucket().bucket(&bucket).send().await?;
    let store = S3BlobStore::new(client, &bucket);

    let upload = store
        .upload_url("firmware/p1/2.0.0.bin", "application/octet-stream", 300)
        .await?
        .ok_or("S3 gives upload URLs")?;
    assert!(
        upload.starts_with(&iot_aws::testing::endpoint()?),
        "{upload}"
    );
    assert!(
        upload.contains(&format!("/{bucket}/")),
        "path-style on an emulator: {upload}"
    );
    let http = reqwest::Client::new();
    let put = http
        .put(&upload)
        .header("content-type", "application/octet-stream")
        .body(vec![1u8, 2, 3])
        .send()
        .await?;
    assert!(put.status().is_success(), "{}", put.status());
    assert_eq!(
        store.get("firmware/p1/2.0.0.bin").await?,
        Some(vec![1, 2, 3])
    );
    assert_eq!(
        store.digest("firmware/p1/2.0.0.bin").await?,
        Some(iot_core::ports::BlobDigest::of(&[1, 2, 3])),
        "hashed as it streams"
    );
    assert_eq!(store.digest("firmware/p1/none.bin").await?, None);

    let download = store.download_url("firmware/p1/2.0.0.bin", 300).await?;
    assert!(download.contains("X-Amz-Signature"), "{download}");
    let bytes = http.get(&download).send().await?.bytes().await?;
    assert_eq!(bytes.as_ref(), [1, 2, 3]);
    Ok(())
}

fn delivery(kind: iot_core::notify::ChannelKind) -> iot_core::notify::Delivery {
    iot_core::notify::Delivery {
        channel: iot_core::notify::Channel {
            id: "c1".into(),
            tenant_id: "acme".into(),
            name: "on-call".into(),
            kind,
        },
        subject: "Critical: boiler 7 over temperature\n(95.2 °C)".into(),
        body: "Boiler 7 reads 95.2 °C, above the critical band (90 °C).".into(),
        webhook_body: None,
        key: "d1:hot:1:raised:c1".into(),
    }
}

#[tokio::test]
async fn sns_channels_send_email_sms_and_push() -> TestResult {
    use iot_core::notify::ChannelKind;
    use iot_core::ports::{DeliveryError, Notifier};
    let config = emulator_config().await?;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let notifier = iot_aws::SnsNotifier::new(sns.clone());

    // E-mail: a topic the addresses subscribe to; an SQS subscriber stands in for the mailbox.
    let topic = iot_aws::testing::create_topic(&sns, "email").await?;
    let (url, queue_arn) = create_queue(&sqs, "mailbox").await?;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await?;
    notifier
        .deliver(&delivery(ChannelKind::Email { topic_arn: topic }))
        .await?;
    let received = drain(&sqs, &url).await?;
    assert_eq!(received.len(), 1);
    let envelope: serde_json::Value = serde_json::from_str(&received[0].1)?;
    assert_eq!(
        envelope["Subject"],
        "Critical: boiler 7 over temperature (95.2 °C)"
    );
    assert_eq!(
        envelope["Message"],
        "Boiler 7 reads 95.2 °C, above the critical band (90 °C)."
    );

    // SMS: each number; a malformed number is a permanent failure, not retried.
    notifier
        .deliver(&delivery(ChannelKind::Sms {
            phone_numbers: vec!["+15555550100".into(), "+15555550101".into()],
        }))
        .await?;
    let bad = notifier
        .deliver(&delivery(ChannelKind::Sms {
            phone_numbers: vec!["not a number".into()],
        }))
        .await;
    assert!(matches!(bad, Err(DeliveryError::Permanent(_))), "{bad:?}");

    // Push: each platform endpoint; a disabled endpoint is permanent.
    let app = sns
        .create_platform_application()
        .name(unique_name("app"))
        .platform("GCM")
        .attributes("PlatformCredential", "server-key")
        .send()
        .await?
        .platform_application_arn()
        .unwrap_or_default()
        .to_owned();
    let endpoint = sns
        .create_platform_endpoint()
        .platform_application_arn(&app)
        .token("device-token-1")
        .send()
        .await?
        .endpoint_arn()
        .unwrap_or_default()
        .to_owned();
    let push = delivery(ChannelKind::Push {
        endpoint_arns: vec![endpoint.clone()],
    });
    notifier.deliver(&push).await?;
    sns.set_endpoint_attributes()
        .endpoint_arn(&endpoint)
        .attributes("Enabled", "false")
        .send()
        .await?;
    let disabled = notifier.deliver(&push).await;
    assert!(
        matches!(disabled, Err(DeliveryError::Permanent(_))),
        "{disabled:?}"
    );
    Ok(())
}
