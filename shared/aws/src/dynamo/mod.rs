//! DynamoDB: the metadata table and the time-series telemetry table.

mod meta;
pub mod provision;
mod telemetry;
pub mod value;

pub use meta::{DynamoMetaStore, INDEX_NAME};
pub use telemetry::{DynamoTelemetry, MAX_RANGE_DAYS};
