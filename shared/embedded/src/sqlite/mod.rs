//! SQLite storage: one database file holds the metadata items (the same single-table keys as
//! DynamoDB, see `iot_core::repo`) and the telemetry points.
//!
//! rusqlite is synchronous: writes go to one writer thread that commits them in groups, reads
//! to reader connections on tokio's blocking pool (see [`Database`]). WAL lets readers (ours, a
//! SQL shell, a backup) work while the platform writes; `synchronous = FULL` makes a commit
//! durable before the message that caused it is acknowledged.

mod bus;
mod database;
mod meta;
mod queue;
mod scheduler;
mod telemetry;

pub use bus::QueueBus;
pub use database::{Database, DatabaseError};
pub use meta::SqliteMetaStore;
pub use queue::{Consumer, Received, SqliteQueue};
pub use scheduler::{SqliteScheduler, StoredSchedule};
pub use telemetry::SqliteTelemetry;
