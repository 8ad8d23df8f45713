//! Creates the tables as `template.yaml` declares them, for tests on an emulator and for
//! accounts set up by hand. On AWS the SAM template owns them.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

use super::INDEX_NAME;
use crate::error::describe;

fn attribute(name: &str) -> Result<AttributeDefinition, String> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| e.to_string())
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, String> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| e.to_string())
}

/// A pay-per-request table keyed by the strings `pk` and `sk`.
fn keyed_table(
    client: &Client,
    table: &str,
) -> Result<aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder, String> {
    Ok(client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?))
}

/// The metadata table: `pk`/`sk` strings, index `gsi1` on `gsi1pk`/`gsi1sk`, TTL on `ttl`.
pub async fn create_meta_table(client: &Client, table: &str) -> Result<(), String> {
    let index = GlobalSecondaryIndex::builder()
        .index_name(INDEX_NAME)
        .key_schema(key("gsi1pk", KeyType::Hash)?)
        .key_schema(key("gsi1sk", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| e.to_string())?;
    keyed_table(client, table)?
        .attribute_definitions(attribute("gsi1pk")?)
        .attribute_definitions(attribute("gsi1sk")?)
        .global_secondary_indexes(index)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    enable_ttl(client, table).await
}

/// The telemetry table: `pk`/`sk` strings, TTL on `ttl`.
pub async fn create_telemetry_table(client: &Client, table: &str) -> Result<(), String> {
    keyed_table(client, table)?
        .send()
        .await
        .map_err(|e| describe(&e))?;
    enable_ttl(client, table).await
}

async fn enable_ttl(client: &Client, table: &str) -> Result<(), String> {
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("ttl")
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map_err(|e| describe(&e))?;
    Ok(())
}

pub async fn delete_table(client: &Client, table: &str) -> Result<(), String> {
    client
        .delete_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    Ok(())
}
