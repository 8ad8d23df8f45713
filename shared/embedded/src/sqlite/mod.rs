//! SQLite storage: one database file holds the metadata items (the same single-table keys as
//! DynamoDB, see `iot_core::repo`) and the telemetry points.
//!
//! rusqlite is synchronous, so every call runs on tokio's blocking pool behind one connection
//! mutex (SQLite serialises writers anyway). WAL lets readers in other processes (a SQL shell,
//! a backup) work while the platform writes; `synchronous = FULL` makes a commit durable before
//! the message that caused it is acknowledged.

mod database;
mod meta;
mod queue;
mod telemetry;

pub use database::{Database, DatabaseError};
pub use meta::SqliteMetaStore;
pub use queue::{QueueBus, Received, SqliteQueue, SqliteScheduler, StoredSchedule};
pub use telemetry::SqliteTelemetry;
