//! `iot-embedded`: the platform's ports on one machine, without AWS.
//!
//! - [`sqlite`]: metadata and telemetry in one SQLite database (WAL, migrations).
//! - [`blobs`]: files under a directory.

pub mod blobs;
pub mod sqlite;
