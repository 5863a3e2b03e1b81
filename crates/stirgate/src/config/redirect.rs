//! `[redirect]`: the SIP redirect mode's listeners (see [`crate::redirect`]).

use ::sip::ListenAddr;
use serde::Deserialize;

use super::ConfigError;

/// `[redirect]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedirect {
    /// `redirect.listen`: `udp:HOST:PORT` / `tcp:HOST:PORT` listeners on which every INVITE is
    /// answered with a 302 carrying the verdict (or the rejection); empty: off.
    pub listen: Vec<String>,
}

impl RawRedirect {
    /// Validates the listeners; none may share an address and transport with `sip.listen`.
    pub(super) fn validate(
        &self,
        sip_listen: &[ListenAddr],
        errors: &mut Vec<ConfigError>,
    ) -> Vec<ListenAddr> {
        let mut listen = Vec::new();
        for entry in &self.listen {
            match entry.parse::<ListenAddr>() {
                Ok(ListenAddr::Tls(_)) => errors.push(ConfigError::new(
                    "redirect.listen",
                    format!("`{entry}`: the redirect mode listens on udp: and tcp: only"),
                )),
                Ok(l) if sip_listen.contains(&l) => errors.push(ConfigError::new(
                    "redirect.listen",
                    format!("`{entry}` is also in sip.listen; give the redirect mode its own port"),
                )),
                Ok(l) => listen.push(l),
                Err(reason) => errors.push(ConfigError::new("redirect.listen", reason)),
            }
        }
        listen
    }
}
