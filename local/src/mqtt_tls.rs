//! The embedded broker's TLS listener: devices present a client certificate of the device CA
//! (the one `POST /v1/devices/{uid}/certificate` issues), and the certificate alone signs
//! them in, as on AWS IoT Core.

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

use crate::error::LocalError;
use crate::gateway::DeviceCa;

/// The acceptor: a server certificate of the device CA for `names`, and client certificates
/// required and checked against the same CA.
pub fn acceptor(ca: &DeviceCa, names: &[String]) -> Result<TlsAcceptor, LocalError> {
    const PART: &str = "the MQTT TLS listener";
    let mut roots = RootCertStore::empty();
    let ca_der =
        CertificateDer::from_pem_slice(ca.pem().as_bytes()).map_err(LocalError::part(PART))?;
    roots.add(ca_der).map_err(LocalError::part(PART))?;
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .map_err(LocalError::part(PART))?;
    let (cert_pem, key_pem) = ca.issue_server(names).map_err(LocalError::part(PART))?;
    let chain =
        vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(LocalError::part(PART))?];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(LocalError::part(PART))?;
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(LocalError::part(PART))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A client certificate's id: the SHA-256 of its DER, in hex, as the platform names it.
pub fn certificate_id(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}
