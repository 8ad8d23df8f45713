//! `iot-aws`: the platform's ports on AWS, with the AWS SDK for Rust. Clients are built once per
//! process from [`config::load`]; `AWS_ENDPOINT_URL` points them at an emulator in tests.
//!
//! In a message's flow on AWS: records into DynamoDB or Timestream, alarm requests onto SQS,
//! transitions onto SNS, dead letters into S3.

pub mod batch;
pub mod config;
pub mod dynamo;
pub mod error;
pub mod iot;
pub mod lazy;
pub mod s3;
pub mod scheduler;
pub mod sns;
pub mod sns_notify;
pub mod sqs;
pub mod testing;
pub mod timestream;

pub use dynamo::{DynamoMetaStore, DynamoTelemetry};
pub use iot::{IotGateway, IotSettings};
pub use lazy::LazyClient;
pub use s3::S3BlobStore;
pub use scheduler::{EventBridgeScheduler, ScheduledInput};
pub use sns::SnsBus;
pub use sns_notify::SnsNotifier;
pub use sqs::SqsQueue;
pub use timestream::TimestreamTelemetry;
