//! Who may use the embedded broker. Devices with their own credential: the client id and the
//! user name are the device's uid, the password its device token (`POST
//! /v1/devices/{uid}/token`, whole or the part after the uid); or, on the TLS listener, the
//! client id is the uid and the device's registered certificate the credential. And a
//! tenant's applications: user name `app@{id}` and the password of an application credential
//! (`POST /v1/app-credentials`), client id the user name, or it and `:` and a suffix.

use async_trait::async_trait;
use rumqttc::{ConnectReturnCode, Login};

use crate::broker::{CommitError, DeviceSessions, Identity};
use crate::pipeline::Services;
use iot_core::model::{APP_USERNAME_PREFIX, app_credential_id};
use iot_core::topics::split_device_token;
use iot_core::usecase::{
    DeviceAuthError, verify_application, verify_device, verify_device_certificate,
};

#[async_trait]
impl DeviceSessions for Services {
    async fn authenticate(
        &self,
        client_id: &str,
        login: Option<&Login>,
        certificate: Option<&str>,
    ) -> Result<Identity, ConnectReturnCode> {
        if client_id.is_empty() {
            return Err(ConnectReturnCode::BadClientId);
        }
        let device = |by_certificate| {
            move |tenant| Identity::Device {
                uid: client_id.to_owned(),
                tenant,
                by_certificate,
            }
        };
        let verified = match (certificate, login) {
            // The certificate is the credential: the client id must be its device's uid.
            (Some(certificate), _) => {
                verify_device_certificate(&self.catalog, client_id, certificate)
                    .await
                    .map(device(true))
            }
            (None, None) => return Err(ConnectReturnCode::NotAuthorized),
            (None, Some(login)) if login.username.starts_with(APP_USERNAME_PREFIX) => {
                // An application's client ids start with its user name, which no uid does.
                let Some(id) = app_credential_id(&login.username, client_id) else {
                    return Err(ConnectReturnCode::BadClientId);
                };
                verify_application(&self.catalog, id, &login.password)
                    .await
                    .map(|tenant| Identity::Application {
                        id: id.to_owned(),
                        tenant,
                    })
            }
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
                verify_device(&self.catalog, client_id, secret)
                    .await
                    .map(device(false))
            }
        };
        match verified {
            Ok(identity) => Ok(identity),
            Err(DeviceAuthError::Refused) => Err(ConnectReturnCode::BadUserNamePassword),
            Err(e @ DeviceAuthError::Tenant(_)) => {
                tracing::info!(client = client_id, reason = %e, "connection refused");
                Err(ConnectReturnCode::NotAuthorized)
            }
            Err(DeviceAuthError::Store(e)) => {
                tracing::warn!(error = %e, "checking a credential failed");
                Err(ConnectReturnCode::ServiceUnavailable)
            }
        }
    }

    async fn commit(&self, topic: String, payload: bytes::Bytes) -> Result<(), CommitError> {
        self.handle(topic, payload)
            .await
            .map_err(|e| CommitError(Box::new(e)))
    }
}
