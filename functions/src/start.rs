//! Why a function could not start. A cold start that fails is an init error: Lambda logs
//! these words and tries again in a fresh environment, so each one names what to fix.

use iot_core::auth::AuthError;
use iot_core::auth::TokenError;
use iot_core::ports::StoreError;
use thiserror::Error;

use crate::env::EnvError;

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(transparent)]
    Telemetry(#[from] iot_aws::timestream::DiscoveryError),
    #[error("reading secret {arn}: {reason}")]
    Secret { arn: String, reason: String },
    #[error("secret {0} has no string value; put the key ring there as text")]
    EmptySecret(String),
    #[error("the signing or sealing keys: {0}")]
    Keys(#[from] TokenError),
    #[error("the metadata table: {0}")]
    Store(#[from] StoreError),
    #[error("creating the first administrator: {0}")]
    Bootstrap(#[source] AuthError),
}
