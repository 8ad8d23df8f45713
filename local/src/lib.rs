//! `iot-local`: the whole platform on one machine, without AWS. The binary's commands are
//! thin; everything is here so the end-to-end tests start the platform in-process.
//!
//! In a message's flow: [`broker`] reads the PUBLISH, `sessions` commits it through
//! [`pipeline::Services::handle`] before the PUBACK, and [`drain`] runs the alarm and notify
//! workers on the durable queues.

pub mod bench;
pub mod broker;
pub mod config;
pub mod counters;
pub mod demo;
pub mod drain;
pub mod error;
pub mod gateway;
pub mod mosquitto;
mod mqtt_tls;
pub mod ota_client;
pub mod ota_jobs;
pub mod pipeline;
pub mod platform;
pub mod secrets;
mod sessions;
pub mod sim;
