//! `iot-embedded`: the platform's ports on one machine, without AWS.
//!
//! - [`sqlite`]: metadata and telemetry in one SQLite database (WAL, migrations).
//! - [`blobs`]: files under a directory.
//! - [`notify`]: webhooks, the console, and a router by channel kind.

pub mod blobs;
pub mod notify;
pub mod sqlite;
