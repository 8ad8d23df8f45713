//! Stores several functions share: the metadata table and the telemetry backend the stack was
//! deployed with.

use aws_config::SdkConfig;
use iot_aws::{DynamoMetaStore, DynamoTelemetry, TimestreamTelemetry};
use iot_core::ports::TelemetryStore;
use std::sync::Arc;
use std::time::Duration;

use crate::env::{self, EnvError};

/// Where telemetry lives: the template's `TelemetryBackend` parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TelemetryBackend {
    /// A DynamoDB time-series table; items expire after `retention_days` (0: never).
    DynamoDb {
        table: String,
        retention_days: u32,
    },
    Timestream {
        database: String,
        table: String,
    },
}

impl TelemetryBackend {
    /// `TELEMETRY_BACKEND` (`dynamodb` or `timestream`) with `TELEMETRY_TABLE` and
    /// `RETENTION_DAYS`, or `TIMESTREAM_DATABASE` and `TIMESTREAM_TABLE`.
    pub fn from_env() -> Result<Self, EnvError> {
        match env::required("TELEMETRY_BACKEND")?.as_str() {
            "dynamodb" => Ok(Self::DynamoDb {
                table: env::required("TELEMETRY_TABLE")?,
                retention_days: env::parsed("RETENTION_DAYS", 0)?,
            }),
            "timestream" => Ok(Self::Timestream {
                database: env::required("TIMESTREAM_DATABASE")?,
                table: env::required("TIMESTREAM_TABLE")?,
            }),
            other => Err(EnvError::Invalid {
                name: "TELEMETRY_BACKEND",
                value: other.to_owned(),
                reason: "use dynamodb or timestream".into(),
            }),
        }
    }

    /// The store; the DynamoDB backend uses `dynamodb`, the client the metadata store has.
    pub async fn build(
        &self,
        sdk: &SdkConfig,
        dynamodb: &aws_sdk_dynamodb::Client,
    ) -> Result<Arc<dyn TelemetryStore>, iot_aws::timestream::DiscoveryError> {
        Ok(match self {
            Self::DynamoDb {
                table,
                retention_days,
            } => Arc::new(DynamoTelemetry::new(
                dynamodb.clone(),
                table,
                (*retention_days > 0)
                    .then(|| Duration::from_secs(u64::from(*retention_days) * 86_400)),
            )),
            Self::Timestream { database, table } => {
                let (write, query) = iot_aws::timestream::clients(sdk).await?;
                Arc::new(TimestreamTelemetry::new(write, query, database, table))
            }
        })
    }
}

/// The metadata table. A function builds one DynamoDB client and shares it (clients are
/// cheap to clone, and each one built costs cold start time).
pub fn meta_store(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Arc<DynamoMetaStore> {
    Arc::new(DynamoMetaStore::new(dynamodb.clone(), table))
}
