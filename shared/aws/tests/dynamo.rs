//! DynamoDB specifics against the AWS emulator: idempotency claims under concurrent
//! deliveries, and the shape of stored items (readable maps, TTL attributes).

use iot_aws::DynamoMetaStore;
use iot_aws::dynamo::provision;
use iot_aws::testing::{emulator_config, unique_name};
use iot_core::idempotency::{Handled, Idempotency, IdempotencyError};
use iot_core::ports::{Condition, Item, Key, MetaStore, SystemClock};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn store()
-> Result<(DynamoMetaStore, aws_sdk_dynamodb::Client), Box<dyn std::error::Error + Send + Sync>> {
    let config = emulator_config().await?;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("meta");
    provision::create_meta_table(&client, &table).await?;
    Ok((DynamoMetaStore::new(client.clone(), table), client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_of_one_message_run_it_once() -> TestResult {
    let (store, _) = store().await?;
    let idempotency = Idempotency::new(Arc::new(store), Arc::new(SystemClock));
    let runs = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (idempotency, runs) = (idempotency.clone(), runs.clone());
        tasks.push(tokio::spawn(async move {
            idempotency
                .run("msg-1", || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    Ok::<_, String>(())
                })
                .await
        }));
    }
    let mut done = 0;
    for task in tasks {
        match task.await? {
            Ok(Handled::Done(())) => done += 1,
            Ok(Handled::AlreadyDone) | Err(IdempotencyError::InProgress(_)) => {}
            Err(e) => return Err(e.to_string().into()),
        }
    }
    assert_eq!((done, runs.load(Ordering::SeqCst)), (1, 1));
    let again = idempotency
        .run("msg-1", || async { Ok::<_, String>(()) })
        .await?;
    assert_eq!(again, Handled::AlreadyDone);
    Ok(())
}

#[tokio::test]
async fn items_are_native_maps_with_a_ttl_in_seconds() -> TestResult {
    let (store, client) = store().await?;
    let mut item = Item::new(
        Key::new("TENANT#t", "DEVICE#d1"),
        serde_json::json!({"name": "Pump 1", "tags": ["a"], "limits": {"max": 80.5}}),
    );
    item.index = Some(Key::new("TENANT#t#DEVICES", "d1"));
    item.expires_at = Some(1_795_737_597_123);
    store.put(item, Condition::NotExists).await?;

    let raw = client
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("TENANT#t".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("DEVICE#d1".into()),
        )
        .send()
        .await?;
    let attrs = raw.item().ok_or("stored item not found")?;
    let data = attrs
        .get("data")
        .and_then(|d| d.as_m().ok())
        .ok_or("data is a map")?;
    assert_eq!(
        data.get("name")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("Pump 1")
    );
    assert_eq!(
        attrs
            .get("ttl")
            .and_then(|v| v.as_n().ok())
            .map(String::as_str),
        Some("1795737598")
    );
    assert_eq!(
        attrs
            .get("gsi1pk")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("TENANT#t#DEVICES")
    );
    Ok(())
}

/// A tenant's retention quota shortens the points' TTL below the table's; it never lengthens it.
#[tokio::test]
async fn telemetry_points_expire_after_the_shorter_of_table_and_tenant_retention() -> TestResult {
    use iot_aws::DynamoTelemetry;
    use iot_core::model::{Datum, Record};
    use iot_core::ports::TelemetryStore;
    use std::time::Duration;

    let config = emulator_config().await?;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("telemetry");
    provision::create_telemetry_table(&client, &table).await?;
    let store = DynamoTelemetry::new(
        client.clone(),
        table.clone(),
        Some(Duration::from_secs(90 * 86_400)),
    );
    // 2026-11-26T00:00:00Z
    let time = 1_795_651_200_000;
    let record = |uid: &str| Record {
        time,
        device_uid: uid.into(),
        identification_code: String::new(),
        data: vec![Datum::new("t", 1.0)],
        nc: String::new(),
    };
    const DAY: i64 = 86_400_000;
    store
        .write_retained(&[record("acme_p1")], Some(7 * DAY))
        .await?;
    store
        .write_retained(&[record("big_p1")], Some(400 * DAY))
        .await?;
    store.write(&[record("own_p1")]).await?;
    let ttl = |uid: &'static str| {
        let (client, table) = (client.clone(), table.clone());
        async move {
            let raw = client
                .get_item()
                .table_name(table)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("P#{uid}#t#2026-11-26")),
                )
                .key(
                    "sk",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("{time:015}")),
                )
                .send()
                .await?;
            let ttl = raw
                .item()
                .and_then(|item| item.get("ttl"))
                .and_then(|v| v.as_n().ok())
                .ok_or("the point has a ttl")?
                .parse::<i64>()?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(ttl)
        }
    };
    let seconds = time / 1000;
    assert_eq!(ttl("acme_p1").await?, seconds + 7 * 86_400);
    assert_eq!(ttl("big_p1").await?, seconds + 90 * 86_400);
    assert_eq!(ttl("own_p1").await?, seconds + 90 * 86_400);
    Ok(())
}
