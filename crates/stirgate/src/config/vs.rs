//! `[vs]`: the ATIS-1000082 REST verification service (see [`crate::vs`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::ConfigError;
use crate::admin_access::AccessRule;

/// `[vs]`
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawVs {
    /// `vs.listen`: HOST:PORT of the REST STI-VS; empty: off.
    pub listen: String,
    /// `vs.token`: bearer token every request must carry; empty: none (loopback only).
    pub token: String,
    /// `vs.allow`: CIDRs / IPs that may connect; empty allows every source.
    pub allow: Vec<String>,
    /// `vs.max_connections`: connections served at once (an SBC keeps a pool open).
    pub max_connections: usize,
    /// `vs.signing_key`: PEM P-256 key enabling `POST /stir/v1/signing` (labs only); empty: off.
    pub signing_key: String,
    /// `vs.signing_x5u`: the certificate URL written into signed PASSporTs.
    pub signing_x5u: String,
}

impl Default for RawVs {
    fn default() -> Self {
        Self {
            listen: String::new(),
            token: String::new(),
            allow: Vec::new(),
            max_connections: 256,
            signing_key: String::new(),
            signing_x5u: String::new(),
        }
    }
}

impl std::fmt::Debug for RawVs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `check-config` prints the raw values: never the token itself.
        let token = if self.token.is_empty() { "" } else { "<set>" };
        f.debug_struct("RawVs")
            .field("listen", &self.listen)
            .field("token", &token)
            .field("allow", &self.allow)
            .field("max_connections", &self.max_connections)
            .field("signing_key", &self.signing_key)
            .field("signing_x5u", &self.signing_x5u)
            .finish()
    }
}

/// The validated `[vs]` table: present only when `vs.listen` is set.
#[derive(Debug, Clone)]
pub struct VsConfig {
    /// Where the service listens.
    pub listen: SocketAddr,
    /// Who may use it.
    pub access: AccessRule,
    /// Connections served at once.
    pub max_connections: usize,
    /// The lab signer (`vs.signing_key`, `vs.signing_x5u`), when configured.
    pub signer: Option<Signer>,
}

/// The key and certificate URL of `POST /stir/v1/signing`.
#[derive(Debug, Clone)]
pub struct Signer {
    /// The P-256 key.
    pub key: Arc<stir::sign::SigningKey>,
    /// The certificate URL (PASSporT `x5u`, Identity `info`).
    pub x5u: String,
}

impl RawVs {
    /// Validates the table (the key file is read here, so `check-config` finds a bad one).
    pub(super) fn validate(&self, errors: &mut Vec<ConfigError>) -> Option<VsConfig> {
        let (listen, access) =
            super::access::listener("vs", &self.listen, &self.token, &self.allow, errors);
        if !(1..=65_536).contains(&self.max_connections) {
            errors.push(ConfigError::new(
                "vs.max_connections",
                format!("{} is not between 1 and 65536", self.max_connections),
            ));
        }
        let signer = self.signer(errors);
        Some(VsConfig {
            listen: listen?,
            access,
            max_connections: self.max_connections,
            signer,
        })
    }

    fn signer(&self, errors: &mut Vec<ConfigError>) -> Option<Signer> {
        if self.signing_key.is_empty() {
            if !self.signing_x5u.is_empty() {
                errors.push(ConfigError::new(
                    "vs.signing_x5u",
                    "set only with vs.signing_key (the key that signs under it)",
                ));
            }
            return None;
        }
        let path = PathBuf::from(&self.signing_key);
        let key = match std::fs::read(&path) {
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
            Ok(pem) => stir::sign::SigningKey::from_pem(&pem)
                .map_err(|e| format!("{}: {e}", path.display())),
        };
        let key = match key {
            Ok(key) => Some(Arc::new(key)),
            Err(reason) => {
                errors.push(ConfigError::new("vs.signing_key", reason));
                None
            }
        };
        if !self.signing_x5u.starts_with("https://") && !self.signing_x5u.starts_with("http://") {
            errors.push(ConfigError::new(
                "vs.signing_x5u",
                format!(
                    "`{}` is not an http(s) URL (the certificate of vs.signing_key)",
                    self.signing_x5u
                ),
            ));
            return None;
        }
        Some(Signer {
            key: key?,
            x5u: self.signing_x5u.clone(),
        })
    }
}
