//! RFC 4028 session timers, the rules without the clock: reading `Session-Expires`, `Min-SE`
//! and `Supported: timer`, choosing the interval and the refresher as the UAS of an INVITE (or
//! of a refresh) and as the UAC of ours, and the headers that say what was chosen. The shard
//! (`shard/refresh.rs`) keeps one [`SessionTimer`] per leg and acts on it.

use std::time::{Duration, Instant};

use sip_proto::message::Headers;
use sip_proto::text::push_decimal;

/// Session-timer settings (`sip.session_expires_s`, `sip.min_se_s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// The interval stirgate asks for on its own INVITEs and grants a caller that asks for
    /// none or for more (`None`: stirgate asks for no session timer, but still honours one the
    /// peer asks for).
    pub expires: Option<u32>,
    /// The smallest interval stirgate accepts (422 below it); RFC 4028 §5 puts the floor at 90.
    pub min_se: u32,
}

impl Default for SessionTimerConfig {
    /// 1800 s as RFC 4028 §4 recommends, and its 90 s floor.
    fn default() -> Self {
        Self {
            expires: Some(1800),
            min_se: 90,
        }
    }
}

/// Who refreshes, in the terms of the request that set it up (RFC 4028 §4 `refresher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The sender of the request.
    Uac,
    /// The receiver of the request.
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Self::Uac => "uac",
            Self::Uas => "uas",
        }
    }
}

/// A parsed `Session-Expires` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// delta-seconds.
    pub delta: u32,
    /// The `refresher` parameter, if present.
    pub refresher: Option<Refresher>,
}

/// A `Session-Expires` that is not a positive number of seconds (answered 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Session-Expires is not a number of seconds")]
pub struct BadSessionExpires;

/// The value of `Session-Expires` (or its compact form `x`): `None` when absent.
pub fn session_expires(headers: &Headers) -> Result<Option<SessionExpires>, BadSessionExpires> {
    let Some(value) = headers.get("Session-Expires").or_else(|| headers.get("x")) else {
        return Ok(None);
    };
    let mut parts = value.split(';');
    let delta = parts
        .next()
        .and_then(|d| d.trim().parse::<u32>().ok())
        .filter(|d| *d > 0)
        .ok_or(BadSessionExpires)?;
    let refresher = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("refresher"))
        .and_then(|(_, v)| match v.trim().to_ascii_lowercase().as_str() {
            "uac" => Some(Refresher::Uac),
            "uas" => Some(Refresher::Uas),
            _ => None,
        });
    Ok(Some(SessionExpires { delta, refresher }))
}

/// The `Min-SE` value (parameters ignored), `None` when absent or unreadable.
pub fn min_se(headers: &Headers) -> Option<u32> {
    headers
        .get("Min-SE")
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.trim().parse().ok())
}

/// True when `Supported` or `Require` lists `timer` (the peer knows RFC 4028).
pub fn supports_timer(headers: &Headers) -> bool {
    ["Supported", "Require"].iter().any(|name| {
        headers
            .get_list(name)
            .any(|t| t.trim().eq_ignore_ascii_case("timer"))
    })
}

/// True when `Allow` lists `UPDATE`: refreshes can then go by UPDATE (no SDP round).
pub fn allows_update(headers: &Headers) -> bool {
    headers
        .get_list("Allow")
        .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"))
}

/// What stirgate decides as the UAS of an INVITE or refresh (RFC 4028 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasChoice {
    /// The interval asked for is below our minimum: 422 with `Min-SE: min_se`.
    TooSmall {
        /// Our minimum.
        min_se: u32,
    },
    /// A session timer runs on this leg.
    Timer(Agreed),
    /// No session timer (neither side asked for one).
    None,
}

/// An agreed session timer on one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The session interval in seconds.
    pub interval: u32,
    /// True when stirgate refreshes; false when the peer does.
    pub we_refresh: bool,
    /// The peer said it supports timers (`Require: timer` may be sent to it).
    pub peer_supports: bool,
}

/// Chooses the session timer for a request stirgate answers (RFC 4028 §9): an interval below
/// our minimum is refused with 422 when the peer supports timers (raised to the minimum when
/// it does not: it could not retry); a longer one than ours is reduced to ours, never below
/// the request's `Min-SE`. The refresher the request names is kept; left open, or when the
/// peer does not support timers, stirgate refreshes. A request without `Session-Expires` gets
/// our interval with stirgate as refresher (the peer need not know RFC 4028 for that).
pub fn negotiate_uas(request: &Headers, cfg: &SessionTimerConfig) -> UasChoice {
    let supports = supports_timer(request);
    let floor = cfg.min_se.max(min_se(request).unwrap_or(0));
    let asked = session_expires(request).ok().flatten();
    let (interval, refresher) = match asked {
        Some(se) if se.delta < cfg.min_se && supports => {
            return UasChoice::TooSmall { min_se: cfg.min_se }
        }
        Some(se) => {
            let wanted = cfg.expires.map_or(se.delta, |ours| se.delta.min(ours));
            let refresher = if supports {
                se.refresher.unwrap_or(Refresher::Uas)
            } else {
                Refresher::Uas
            };
            (wanted.max(floor), refresher)
        }
        None => match cfg.expires {
            Some(ours) => (ours.max(floor), Refresher::Uas),
            None => return UasChoice::None,
        },
    };
    UasChoice::Timer(Agreed {
        interval,
        we_refresh: refresher == Refresher::Uas,
        peer_supports: supports,
    })
}

/// Reads the 2xx to a request stirgate sent (RFC 4028 §7.2): the interval and refresher the
/// answerer chose. `None` when the 2xx has no `Session-Expires` (no session timer on that leg).
/// A missing `refresher` leaves the refreshing to us.
pub fn negotiate_uac(response: &Headers) -> Option<Agreed> {
    let se = session_expires(response).ok().flatten()?;
    Some(Agreed {
        interval: se.delta,
        we_refresh: se.refresher != Some(Refresher::Uas),
        peer_supports: supports_timer(response),
    })
}

/// The headers of a 2xx that grants `agreed` (stirgate is the UAS of the request).
pub fn response_headers(agreed: &Agreed) -> Vec<(&'static str, String)> {
    let refresher = if agreed.we_refresh {
        Refresher::Uas
    } else {
        Refresher::Uac
    };
    let mut out = vec![
        (
            "Session-Expires",
            session_expires_text(agreed.interval, refresher),
        ),
        ("Supported", "timer".to_owned()),
    ];
    // §9: Require: timer is a MUST with refresher=uac; a peer that never said it supports
    // timers must not be asked to require them.
    if agreed.peer_supports {
        out.push(("Require", "timer".to_owned()));
    }
    out
}

/// A `Session-Expires` value, `interval;refresher=uac|uas`, written without the formatting
/// machinery (one goes with every answered call).
fn session_expires_text(interval: u32, refresher: Refresher) -> String {
    let mut text = String::with_capacity(24);
    push_decimal(&mut text, interval.into());
    text.push_str(";refresher=");
    text.push_str(refresher.as_str());
    text
}

/// The headers of a request stirgate sends inside a leg with a session timer (its own refresh
/// or a relayed re-INVITE/UPDATE): the interval and who refreshes, in this request's terms.
pub fn request_headers(timer: &SessionTimer, min_se: u32) -> Vec<(&'static str, String)> {
    let refresher = if timer.we_refresh {
        Refresher::Uac
    } else {
        Refresher::Uas
    };
    vec![
        (
            "Session-Expires",
            session_expires_text(timer.interval, refresher),
        ),
        ("Min-SE", min_se.min(timer.interval).to_string()),
        ("Supported", "timer".to_owned()),
    ]
}

/// The session timer of one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// The session interval in seconds.
    pub interval: u32,
    /// True when stirgate refreshes this leg.
    pub we_refresh: bool,
    /// Refresh by UPDATE (the peer's Allow lists it); else by re-INVITE.
    pub by_update: bool,
    /// When the session expires unless refreshed.
    pub expires_at: Instant,
    /// The next instant the shard looks at this leg (refresh, retry or expiry).
    pub due: Instant,
    /// A refresh of ours is in flight.
    pub refreshing: bool,
}

impl SessionTimer {
    /// A timer refreshed at `now` with `agreed`.
    pub fn start(now: Instant, agreed: &Agreed, by_update: bool) -> Self {
        let mut timer = Self {
            interval: agreed.interval,
            we_refresh: agreed.we_refresh,
            by_update,
            expires_at: now,
            due: now,
            refreshing: false,
        };
        timer.refreshed(now, agreed);
        timer
    }

    /// The session was refreshed at `now` (a 2xx to a refresh either way) with `agreed`.
    pub fn refreshed(&mut self, now: Instant, agreed: &Agreed) {
        self.interval = agreed.interval.max(1);
        self.we_refresh = agreed.we_refresh;
        self.refreshing = false;
        let interval = Duration::from_secs(u64::from(self.interval));
        self.expires_at = now + interval;
        // §10: the refresher at half the interval; the other side sends BYE this long before
        // the expiry: the smaller of 32 s and a third of the interval.
        self.due = if self.we_refresh {
            now + interval / 2
        } else {
            self.bye_at()
        };
    }

    /// When the side that does not refresh ends the session (RFC 4028 §10).
    pub fn bye_at(&self) -> Instant {
        let interval = Duration::from_secs(u64::from(self.interval));
        self.expires_at - (interval / 3).min(Duration::from_secs(32))
    }

    /// The agreement as it stands (for a refresh that changes nothing).
    pub fn agreed(&self, peer_supports: bool) -> Agreed {
        Agreed {
            interval: self.interval,
            we_refresh: self.we_refresh,
            peer_supports,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in lines {
            h.push(*n, *v);
        }
        h
    }

    const CFG: SessionTimerConfig = SessionTimerConfig {
        expires: Some(1800),
        min_se: 90,
    };

    #[test]
    fn too_small_is_422_only_for_peers_that_support_timers() {
        let asked = headers(&[("Session-Expires", "30"), ("Supported", "timer")]);
        assert_eq!(
            negotiate_uas(&asked, &CFG),
            UasChoice::TooSmall { min_se: 90 }
        );
        // A peer that cannot retry gets our minimum, and we refresh.
        let proxy_added = headers(&[("Session-Expires", "30;refresher=uac")]);
        assert_eq!(
            negotiate_uas(&proxy_added, &CFG),
            UasChoice::Timer(Agreed {
                interval: 90,
                we_refresh: true,
                peer_supports: false
            })
        );
    }

    #[test]
    fn the_refresher_the_request_names_is_kept_and_longer_intervals_reduced() {
        let uac = headers(&[("x", "7200;refresher=uac"), ("Supported", "100rel, timer")]);
        let UasChoice::Timer(agreed) = negotiate_uas(&uac, &CFG) else {
            panic!("timer expected");
        };
        assert_eq!(agreed.interval, 1800);
        assert!(!agreed.we_refresh);
        let out = response_headers(&agreed);
        assert!(out.contains(&("Session-Expires", "1800;refresher=uac".to_owned())));
        assert!(out.contains(&("Require", "timer".to_owned())));
        // The request's Min-SE is a floor for our reduction.
        let min = headers(&[
            ("Session-Expires", "4000"),
            ("Min-SE", "3000"),
            ("Supported", "timer"),
        ]);
        let UasChoice::Timer(agreed) = negotiate_uas(&min, &CFG) else {
            panic!("timer expected");
        };
        assert_eq!(agreed.interval, 3000);
        assert!(agreed.we_refresh, "left open: we refresh");
    }

    #[test]
    fn a_request_without_timers_gets_ours_and_no_require() {
        let twilio = headers(&[("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")]);
        let UasChoice::Timer(agreed) = negotiate_uas(&twilio, &CFG) else {
            panic!("timer expected");
        };
        assert!(agreed.we_refresh);
        assert!(!response_headers(&agreed)
            .iter()
            .any(|(n, _)| *n == "Require"));
        assert!(!allows_update(&twilio));
        let off = SessionTimerConfig {
            expires: None,
            min_se: 90,
        };
        assert_eq!(negotiate_uas(&twilio, &off), UasChoice::None);
    }

    #[test]
    // One base instant; the timer only adds to it.
    #[allow(clippy::disallowed_methods)]
    fn uac_reads_the_answer_and_times_follow_section_10() {
        assert_eq!(negotiate_uac(&headers(&[])), None);
        let agreed = negotiate_uac(&headers(&[("Session-Expires", "90;refresher=uas")])).unwrap();
        assert!(!agreed.we_refresh);
        let now = Instant::now();
        let timer = SessionTimer::start(now, &agreed, false);
        assert_eq!(timer.due, now + Duration::from_secs(60), "90 - min(32, 30)");
        let ours = negotiate_uac(&headers(&[("Session-Expires", "600")])).unwrap();
        let timer = SessionTimer::start(now, &ours, true);
        assert_eq!(timer.due, now + Duration::from_secs(300));
        assert_eq!(timer.bye_at(), now + Duration::from_secs(568));
        assert!(session_expires(&headers(&[("Session-Expires", "soon")])).is_err());
    }
}
