//! The backup function: on a schedule, exports each metadata table to S3 with DynamoDB's
//! point-in-time export (no read capacity used, no table scan). Restore is `aws dynamodb
//! import-table` from the export (see the README).

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::ExportFormat;
use serde_json::{Value, json};

use crate::env::{self, EnvError};

/// The IAM actions this function uses (`template.yaml` grants exactly these; a test compares).
/// DynamoDB writes the export to S3 with the caller's permissions, hence the S3 actions.
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:ExportTableToPointInTime",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:PutObjectAcl",
];

#[derive(Clone, Debug)]
pub struct BackupConfig {
    /// ARNs of the tables to export (point-in-time recovery must be on).
    pub table_arns: Vec<String>,
    pub bucket: String,
    /// Key prefix in the bucket; each run writes under `{prefix}{table}/{date}/`.
    pub prefix: String,
}

impl BackupConfig {
    pub fn from_env() -> Result<Self, EnvError> {
        let table_arns: Vec<String> = env::required("TABLE_ARNS")?
            .split(',')
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        Ok(Self {
            table_arns,
            bucket: env::required("EXPORT_BUCKET")?,
            prefix: env::optional("EXPORT_PREFIX").unwrap_or_else(|| "dynamodb/".into()),
        })
    }
}

pub struct BackupFunction {
    client: aws_sdk_dynamodb::Client,
    config: BackupConfig,
}

#[derive(Debug, thiserror::Error)]
#[error("exporting {table}: {reason}")]
pub struct BackupError {
    table: String,
    reason: String,
}

impl BackupFunction {
    pub fn new(sdk: &SdkConfig, config: BackupConfig) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(sdk),
            config,
        }
    }

    /// Starts one export per table (they run in the background inside DynamoDB) and answers
    /// with their ARNs. The run's time names the folder, so exports never overwrite each other.
    pub async fn handle(&self, _event: Value) -> Result<Value, crate::Error> {
        let day = chrono::Utc::now().format("%Y-%m-%dT%H%MZ").to_string();
        let mut exports = Vec::new();
        for arn in &self.config.table_arns {
            let table = arn.rsplit('/').next().unwrap_or(arn);
            let prefix = format!("{}{table}/{day}", self.config.prefix);
            let started = self
                .client
                .export_table_to_point_in_time()
                .table_arn(arn)
                .s3_bucket(&self.config.bucket)
                .s3_prefix(&prefix)
                .export_format(ExportFormat::DynamodbJson)
                .send()
                .await
                .map_err(|e| BackupError {
                    table: table.to_owned(),
                    reason: iot_aws::error::describe(&e),
                })?;
            let export_arn = started
                .export_description()
                .and_then(|d| d.export_arn())
                .unwrap_or_default()
                .to_owned();
            tracing::info!(table, %export_arn, %prefix, "export started");
            exports.push(json!({ "table": table, "export_arn": export_arn, "prefix": prefix }));
        }
        Ok(json!({ "exports": exports }))
    }
}
