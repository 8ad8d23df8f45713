//! `iot-embedded`: the platform's ports on one machine, without AWS.
//!
//! - [`sqlite`]: metadata and telemetry in one SQLite database (WAL, migrations).

pub mod sqlite;
