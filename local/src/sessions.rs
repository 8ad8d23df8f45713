//! Who may use the embedded broker: devices with their own credential. The client id and the
//! user name are the device's uid, the password its device token (`POST
//! /v1/devices/{uid}/token`, whole or the part after the uid); or, on the TLS listener, the
//! client id is the uid and the device's registered certificate the credential.

use async_trait::async_trait;
use rumqttc::{ConnectReturnCode, Login};

use crate::broker::DeviceSessions;
use crate::pipeline::Services;
use iot_core::topics::split_device_token;
use iot_core::usecase::{DeviceAuthError, verify_device, verify_device_certificate};

#[async_trait]
impl DeviceSessions for Services {
    async fn authenticate(
        &self,
        client_id: &str,
        login: Option<&Login>,
        certificate: Option<&str>,
    ) -> Result<String, ConnectReturnCode> {
        if client_id.is_empty() {
            return Err(ConnectReturnCode::BadClientId);
        }
        let verified = match (certificate, login) {
            // The certificate is the credential: the client id must be its device's uid.
            (Some(certificate), _) => {
                verify_device_certificate(&self.catalog, client_id, certificate).await
            }
            (None, None) => return Err(ConnectReturnCode::NotAuthorized),
            (None, Some(login)) => {
                // One identity per client id: nobody takes over a device's session but the
                // device.
                if login.username != client_id {
                    return Err(ConnectReturnCode::BadClientId);
                }
                let secret = match split_device_token(&login.password) {
                    Some((uid, secret)) if uid == client_id => secret,
                    _ => login.password.as_str(),
                };
                verify_device(&self.catalog, client_id, secret).await
            }
        };
        match verified {
            Ok(()) => Ok(client_id.to_owned()),
            Err(DeviceAuthError::Refused) => Err(ConnectReturnCode::BadUserNamePassword),
            Err(e @ DeviceAuthError::Tenant(_)) => {
                tracing::info!(device = client_id, reason = %e, "connection refused");
                Err(ConnectReturnCode::NotAuthorized)
            }
            Err(DeviceAuthError::Store(e)) => {
                tracing::warn!(error = %e, "checking a device credential failed");
                Err(ConnectReturnCode::ServiceUnavailable)
            }
        }
    }

    async fn commit(&self, topic: String, payload: bytes::Bytes) -> Result<(), String> {
        self.handle(topic, payload).await
    }
}
