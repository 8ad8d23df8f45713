//! Ports: what the core needs from the outside world, as traits. Adapters implement them on AWS
//! (`iot-aws`) and on one machine (`iot-embedded`); [`memory`] has in-memory versions for tests.
//! Use cases take the narrowest port they need.

mod blob;
mod clock;
mod gateway;
pub mod memory;
mod messaging;
mod meta;
mod notifier;
mod scheduler;
mod telemetry;

pub use blob::{BlobDigest, BlobError, BlobStore, DigestWriter, check_key};
pub use clock::{Clock, ManualClock, SystemClock};
pub use gateway::{DeviceCredentials, DeviceGateway, GatewayError, RolloutJob, SessionCredential};
pub use messaging::{BusEvent, EventBus, MessageQueue, QueueError, QueueMessage};
pub use meta::{
    Condition, Item, Key, MAX_TRANSACTION_WRITES, MetaStore, Page, Query, SortKey, StoreError,
    Write, check_transaction,
};
pub use notifier::{DeliveryError, Notifier};
pub use scheduler::{ScheduleTarget, Scheduler, SchedulerError, schedule_name};
pub use telemetry::{
    AggregateQuery, Bucket, Point, RangeQuery, Rejected, TelemetryError, TelemetryStore,
    WriteReport, aggregate, order_points, points_of,
};
