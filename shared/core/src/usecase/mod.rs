//! Use cases: what each function does, written against ports only.

mod alarm;
mod cache;
mod device_auth;
mod dry_run;
mod inbox;
mod ingest;
mod notify;
mod ota;
mod ota_jobs;
mod ota_recorder;
mod retention;
mod stats;
mod tenant_gate;
mod tenants;

pub use alarm::{
    ALARM_EVENTS_TOPIC, ALARM_REQUESTS_QUEUE, AlarmOutcome, AlarmRequest, AlarmService,
    AlarmServiceError, OperatorAction,
};
pub use cache::TtlCache;
pub use device_auth::{
    DeviceAuthError, verify_application, verify_device, verify_device_certificate,
};
pub use dry_run::{DryRun, dry_run};
pub use inbox::InboxNotifier;
pub use ingest::{InboundMessage, Ingest, IngestError, IngestOutcome};
pub use notify::{NotifyOutcome, NotifyService, NotifyServiceError};
pub use ota::{Advanced, OtaError, OtaService, RolloutProgress};
pub use ota_jobs::{DeviceJobs, DownloadLinks, JobsMessage};
pub use retention::{EXPIRY_BATCH, RetentionError, expire_all, expire_telemetry};
pub use stats::{StatsRun, StatsService, StatsServiceError};
pub use tenant_gate::{GateRefused, TenantGate};
pub use tenants::{NewTenant, Purged, TenantError, TenantPorts, TenantService};
