//! TLS settings for `tls:` listeners and for outbound `sips:` / `;transport=tls` connections
//! (RFC 3261 §26.2, RFC 5630): rustls with the ring provider, through tokio-rustls.
//!
//! The server side presents one certificate chain and key from files. The client side verifies
//! the peer's certificate against the system roots (what an operator expects for a public PBX or
//! carrier) or, when configured, only against one CA file (a private PKI, and the tests).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// TLS settings as configured (paths are read by [`TlsSettings::build`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain presented by `tls:` listeners (leaf first).
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate.
    pub key: Option<PathBuf>,
    /// PEM file of CA certificates that outbound TLS trusts instead of the system roots.
    pub ca: Option<PathBuf>,
}

/// A TLS setting that cannot be used, with the file concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// Which setting (`cert`, `key`, `ca`, `roots`).
    pub what: &'static str,
    /// Why.
    pub reason: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.reason)
    }
}

impl std::error::Error for TlsError {}

fn err(what: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError {
        what,
        reason: reason.into(),
    }
}

/// Ready-to-use acceptor (when a certificate is configured) and connector.
#[derive(Clone)]
pub struct Tls {
    /// Accepts inbound TLS on `tls:` listeners; None when no certificate is configured.
    pub acceptor: Option<TlsAcceptor>,
    /// Opens outbound TLS connections.
    pub connector: TlsConnector,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("server", &self.acceptor.is_some())
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path)
        .map_err(|e| err(what, format!("cannot read {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(what, format!("{}: bad PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(err(
            what,
            format!("{} holds no CERTIFICATE block", path.display()),
        ));
    }
    Ok(certs)
}

impl TlsSettings {
    /// Reads the files and builds the rustls configurations. Errors name the setting and file.
    pub fn build(&self) -> Result<Tls, TlsError> {
        let acceptor = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(TlsAcceptor::from(Arc::new(server_config(cert, key)?))),
            (None, None) => None,
            (Some(_), None) => return Err(err("key", "a certificate is set but no key")),
            (None, Some(_)) => return Err(err("cert", "a key is set but no certificate")),
        };
        let connector = TlsConnector::from(Arc::new(client_config(self.ca.as_deref())?));
        Ok(Tls {
            acceptor,
            connector,
        })
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let chain = read_certs("cert", cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        err(
            "key",
            format!("{}: no usable private key: {e}", key.display()),
        )
    })?;
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err("cert", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            err(
                "key",
                format!("{} does not fit {}: {e}", key.display(), cert.display()),
            )
        })
}

fn client_config(ca: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in read_certs("ca", path)? {
                roots
                    .add(cert)
                    .map_err(|e| err("ca", format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system store can hold certificates rustls refuses (old encodings); skip those
                // rather than refusing to start.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(err(
                    "roots",
                    "no system root certificates found; install ca-certificates or set a CA file",
                ));
            }
        }
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err("ca", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The name a `sips:` target's certificate must carry: the host of the URI (RFC 5922 §7.2: the
/// domain the request was sent to), an IP address when the URI names one.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| err("target", format!("`{host}` is not a TLS server name: {e}")))
}
