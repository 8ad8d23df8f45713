//! `iot-core`: the domain, the engines and the use cases of the IoT platform.
//!
//! In a message's flow: [`usecase::Ingest`] parses and stores it, [`usecase::AlarmService`]
//! evaluates its alarm requests, and [`usecase::NotifyService`] delivers the transitions; each
//! is called by an adapter's loop (`iot-local`) or a Lambda handler (`iot-functions`).
//!
//! This crate knows no AWS, no SQLite and no HTTP server. Everything outside the process is reached
//! through the traits in [`ports`]; adapters live in other crates (`iot-aws`, `iot-embedded`).
//!
//! - [`model`]: tenants, products, devices and the uniform [`model::Record`].
//! - [`script`]: the sandboxed rhai engine every user script runs in.
//! - [`parse`]: payload to records, by product script or native JSON mapping.
//! - [`alarm`]: graded threshold bands, joint rules and the alarm state machine.
//! - [`stats`]: scheduled statistics (CRON, lead time, calculation script).
//! - [`ota`]: firmware packages, rollouts and their executions, with the rules of AWS IoT Jobs.
//! - [`template`] and [`notify`]: `${var}` templates and notification channels.
//! - [`auth`]: passwords, tokens, sessions, RBAC with domains, departments, audit entries.
//! - [`usecase`]: ingest, alarm evaluation, notification, statistics run, dry-run.

pub mod alarm;
pub mod auth;
pub mod counters;
pub mod idempotency;
pub mod model;
pub mod notify;
pub mod ota;
pub mod outbound;
pub mod parse;
pub mod ports;
pub mod repo;
pub mod script;
pub mod stats;
pub mod template;
pub mod time;
pub mod topics;
pub mod usecase;
