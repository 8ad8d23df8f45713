//! `iot-embedded`: the platform's ports on one machine, without AWS.
//!
//! In a message's flow on one machine: its records land in `sqlite::SqliteTelemetry`, its alarm
//! requests and transitions wait in `sqlite::SqliteQueue`, and dead letters are files in [`blobs`].
//!
//! - [`sqlite`]: metadata and telemetry in one SQLite database (WAL, migrations).
//! - [`blobs`]: files under a directory.

pub mod blobs;
pub mod sqlite;
