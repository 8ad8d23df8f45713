//! Scheduled statistics. A job is a CRON expression, a lead time, the signals it reads and a
//! calculation script. At each scheduled time `t` it reads the window `[t - lead, t]` of every
//! device in scope and stores what the script returns.

mod engine;
mod job;
mod schedule;

pub use engine::{CompiledJob, Series, StatsEngine, StatsError};
pub use job::{DeviceScope, StatJob, StatResult, Window};
pub use schedule::{Schedule, ScheduleError};
