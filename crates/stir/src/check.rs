//! The pure, synchronous check: Identity header values + certificates + `now` → [`Verdict`].
//!
//! ```text
//!  identity values ──parse──▶ Parsed ──needed_x5us()──▶ (caller obtains chains)
//!                                │                              │
//!                                └──────── Checker::check ◀─────┘──▶ Verdict
//! ```
//!
//! No I/O and no clock: the caller passes `now` and a [`ChainSource`]. The async
//! `Verifier` (feature `fetch`) and tests use the same code.
//!
//! **One clock per verification.** Every time rule of one verification — iat freshness of the
//! SHAKEN and `div` PASSporTs, the validity period of every certificate of every chain, and
//! the lifetime of the replay record — is judged against the same instant,
//! [`VerifyRequest::now`], taken once by the caller (the engine reads the system clock once
//! per call; `stirgate verify --now` fixes it). [`Freshness`] holds the rules: an iat may be
//! up to `clock_skew` in the future and exactly up to `max_age` in the past (the skew does not
//! widen the past: a PASSporT 61 s old fails a 60 s rule, as Twilio counts), and a
//! certificate is accepted from `clock_skew` before its notBefore.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cert::{self, TrustAnchors, ValidatedChain};
use crate::config::Config;
use crate::identity::{self, IdentityHeader};
use crate::passport::Passport;
use crate::rcd::{RcdClaims, RcdPlan};
use crate::replay::{ReplayCache, ReplayKey, ReplayPolicy};
use crate::tn;
use crate::tnauth::TnEntry;
use crate::verdict::{Attest, Diversion, Reason, Verdict};

/// What to verify: the request's Identity header values and the call's numbers.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// Every Identity header value of the request (each may hold comma-separated values).
    pub identity: Vec<String>,
    /// The calling number: the user part of P-Asserted-Identity when present, else of From.
    pub from: String,
    /// The called number: the user part of the Request-URI (or To).
    pub to: String,
    /// The verification clock: the one instant every time rule of this verification uses
    /// (iat freshness, certificate validity, replay record lifetime).
    pub now: SystemTime,
}

impl VerifyRequest {
    /// A request verified at `now`.
    pub fn new(
        identity: Vec<String>,
        from: impl Into<String>,
        to: impl Into<String>,
        now: SystemTime,
    ) -> Self {
        Self {
            identity,
            from: from.into(),
            to: to.into(),
            now,
        }
    }

    /// `now` as UNIX seconds (0 before the epoch).
    pub fn now_unix(&self) -> i64 {
        unix(self.now)
    }
}

/// Where the checker gets validated certificate chains by x5u URL.
pub trait ChainSource {
    /// The validated chain for `x5u`, or the reason it is unavailable.
    fn chain(&self, x5u: &str) -> Result<Arc<ValidatedChain>, Reason>;
}

/// A fixed map from x5u to chain (or failure): what the async verifier hands the checker after
/// fetching, and what offline users build with [`StaticChains::insert_bundle`].
#[derive(Debug, Clone, Default)]
pub struct StaticChains {
    map: HashMap<String, Result<Arc<ValidatedChain>, Reason>>,
}

impl StaticChains {
    /// An empty map (every x5u unavailable).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the result for an x5u.
    pub fn insert(&mut self, x5u: impl Into<String>, chain: Result<Arc<ValidatedChain>, Reason>) {
        self.map.insert(x5u.into(), chain);
    }

    /// Parses and validates a PEM/DER bundle for an x5u against the anchors and records it.
    pub fn insert_bundle(&mut self, x5u: impl Into<String>, bundle: &[u8], anchors: &TrustAnchors) {
        let chain = cert::parse_bundle(bundle)
            .and_then(|b| cert::validate_chain(&b, &[], anchors))
            .map(Arc::new)
            .map_err(Reason::Certificate);
        self.insert(x5u, chain);
    }
}

impl ChainSource for StaticChains {
    fn chain(&self, x5u: &str) -> Result<Arc<ValidatedChain>, Reason> {
        self.map
            .get(x5u)
            .cloned()
            .unwrap_or(Err(Reason::X5uUnavailable(
                crate::verdict::FetchFailure::Transport,
            )))
    }
}

/// The Identity headers of one request, parsed and decoded, sorted into SHAKEN and `div`
/// PASSporTs.
#[derive(Debug, Clone)]
pub struct Parsed {
    shaken: Vec<Candidate>,
    divs: Vec<Candidate>,
    /// `ppt=rcd` PASSporTs (RFC 9795): rich data signed apart from the SHAKEN PASSporT.
    rcds: Vec<Candidate>,
    first_error: Option<Reason>,
}

#[derive(Debug, Clone)]
struct Candidate {
    header: IdentityHeader,
    passport: Passport,
}

/// The most Identity values one request gets read (RFC 8224 sets no limit). A call carries one
/// SHAKEN PASSporT, one `div` per retargeting and maybe an `rcd`; ten leave room for that, and
/// bound what a hostile INVITE costs: at most 10 + 5 x 5 signature checks (a few ms), not
/// hundreds.
pub const MAX_IDENTITIES: usize = 10;

impl Parsed {
    /// Parses every Identity value. `Err` is the verdict's reason when nothing usable remains:
    /// [`Reason::NoIdentity`] when there is no value, else the first parse error or
    /// [`Reason::NoShakenPassport`].
    pub fn parse(values: &[String]) -> Result<Self, Reason> {
        // Each candidate may cost an ECDSA verify (and each SHAKEN one a pass over the `div`
        // ones), on the thread that carries the call: values past the first MAX_IDENTITIES
        // are not read.
        let mut parsed = Self {
            shaken: Vec::new(),
            divs: Vec::new(),
            rcds: Vec::new(),
            first_error: None,
        };
        let mut any = false;
        for value in values
            .iter()
            .flat_map(|v| identity::split_values(v))
            .take(MAX_IDENTITIES)
        {
            any = true;
            let candidate = IdentityHeader::parse(value)
                .map_err(Reason::InvalidIdentityHeader)
                .and_then(|header| match Passport::decode(&header.token) {
                    Ok(passport) => Ok(Candidate { header, passport }),
                    Err(e) => Err(Reason::MalformedPassport(e)),
                });
            let candidate = match candidate {
                Ok(c) => c,
                Err(reason) => {
                    parsed.first_error.get_or_insert(reason);
                    continue;
                }
            };
            let ppt = candidate
                .header
                .ppt
                .as_deref()
                .or(candidate.passport.header.ppt.as_deref())
                .unwrap_or_default();
            match ppt {
                p if p.eq_ignore_ascii_case("shaken") => parsed.shaken.push(candidate),
                p if p.eq_ignore_ascii_case("div") => parsed.divs.push(candidate),
                p if p.eq_ignore_ascii_case("rcd") => parsed.rcds.push(candidate),
                // Other PASSporT types are outside SHAKEN verification.
                _ => {}
            }
        }
        if !any {
            return Err(Reason::NoIdentity);
        }
        if parsed.shaken.is_empty() {
            return Err(parsed
                .first_error
                .take()
                .unwrap_or(Reason::NoShakenPassport));
        }
        Ok(parsed)
    }

    /// The `info` URL of the first SHAKEN Identity header.
    pub fn first_x5u(&self) -> Option<&str> {
        self.shaken.first().map(|c| c.header.info.as_str())
    }

    /// The x5u URLs whose chains the check needs: those of SHAKEN PASSporTs that pass the
    /// claim checks, and of the `div` PASSporTs when the called number needs a diversion.
    pub fn needed_x5us(&self, req: &VerifyRequest, rules: Freshness) -> Vec<String> {
        let now = req.now_unix();
        let mut out: Vec<String> = Vec::new();
        let mut need_div = false;
        for c in &self.shaken {
            if let Ok(claims) = pre_check(c, "shaken", now, rules) {
                if tn::canonicalize(&req.from).as_deref() == Some(claims.orig.as_str()) {
                    out.push(c.header.info.clone());
                    need_div |= !matches_dest(&claims.dest, &req.to);
                }
            }
        }
        if !out.is_empty() {
            // Rich data PASSporTs ride on a SHAKEN one that may pass: their chains too.
            for r in &self.rcds {
                if pre_check(r, "rcd", now, rules).is_ok() {
                    out.push(r.header.info.clone());
                }
            }
        }
        if need_div {
            for d in &self.divs {
                if pre_check(d, "div", now, rules).is_ok() {
                    out.push(d.header.info.clone());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// How many SHAKEN PASSporTs the request carries (at least one).
    pub fn shaken_len(&self) -> usize {
        self.shaken.len()
    }
}

/// The time rules of verification (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// How old an iat may be (`stir.max_iat_age_s`), exactly.
    pub max_age: Duration,
    /// Tolerated disagreement between the signer's clock and ours (`stir.clock_skew_s`).
    pub clock_skew: Duration,
}

impl Freshness {
    /// Whether a PASSporT issued at `iat` is fresh at `now` (UNIX seconds): at most
    /// `clock_skew` in the future, at most `max_age` in the past.
    pub fn accepts_iat(&self, iat: i64, now: i64) -> bool {
        // i128: iat comes from the wire and may be anywhere in i64.
        let (iat, now) = (i128::from(iat), i128::from(now));
        let skew = i128::from(self.clock_skew.as_secs());
        let max_age = i128::from(self.max_age.as_secs());
        iat - now <= skew && now - iat <= max_age
    }

    /// The last UNIX second at which a PASSporT issued at `iat` is still fresh: how long its
    /// replay record must live.
    pub fn last_accepted(&self, iat: i64) -> i64 {
        iat.saturating_add(secs(self.max_age))
    }

    /// The skew in whole seconds.
    pub fn skew_secs(&self) -> i64 {
        secs(self.clock_skew)
    }
}

/// What [`Checker::check_candidate`] found.
#[derive(Debug, Clone)]
pub enum Checked {
    /// Every check but the replay check passed.
    Pending(Pending),
    /// A check failed: the final verdict.
    Failed(Verdict),
}

/// A SHAKEN PASSporT that passed every check except the replay check: the first half of
/// [`Checker::check`], for callers that keep replay keys elsewhere (the verifier's Redis
/// store). Finish it with [`Checker::settle`].
#[derive(Debug, Clone)]
pub struct Pending {
    verdict: Verdict,
    key: ReplayKey,
    last: i64,
    now: i64,
}

impl Pending {
    /// The PASSporT's replay key.
    pub fn key(&self) -> &ReplayKey {
        &self.key
    }

    /// The last UNIX second at which the PASSporT is fresh.
    pub fn last_accepted(&self) -> i64 {
        self.last
    }

    /// How long from the verification's `now` the replay record must live (at least 1 s):
    /// until the PASSporT would fail as stale anyway.
    pub fn ttl(&self) -> Duration {
        let s = self.last.saturating_sub(self.now).saturating_add(1).max(1);
        Duration::from_secs(u64::try_from(s).unwrap_or(1))
    }
}

/// Verification rules and the in-process replay memory: the synchronous heart of the verifier.
#[derive(Debug)]
pub struct Checker {
    rules: Freshness,
    replay_policy: ReplayPolicy,
    /// Shared with the checker a reload replaces, so a PASSporT seen before the reload is
    /// still a replay after it.
    replay: Arc<ReplayCache>,
    /// Rich-data URLs may be http (`stir.allow_http_x5u`, tests only).
    allow_http_urls: bool,
}

impl Checker {
    /// A checker with a maximum iat age, a replay policy and a replay memory bound (0 turns replay
    /// detection off), and no clock skew tolerance (see [`Checker::with_clock_skew`]).
    pub fn new(max_age: Duration, replay_policy: ReplayPolicy, replay_capacity: usize) -> Self {
        Self {
            rules: Freshness {
                max_age,
                clock_skew: Duration::ZERO,
            },
            replay_policy,
            replay: Arc::new(ReplayCache::new(replay_capacity)),
            allow_http_urls: false,
        }
    }

    /// The checker a `[stir]` config describes (window, skew, replay policy and bound).
    pub fn from_config(cfg: &Config) -> Self {
        let mut checker = Self::new(cfg.max_iat_age(), cfg.replay, cfg.replay_cache_size)
            .with_clock_skew(cfg.clock_skew());
        checker.allow_http_urls = cfg.allow_http_x5u;
        checker
    }

    /// Keeps `previous`'s replay memory (a reload): what it remembers stays a replay. The
    /// memory keeps its own bound; a changed `replay_cache_size` applies after a restart.
    #[must_use]
    pub fn sharing_replay_with(mut self, previous: &Self) -> Self {
        // A memory turned on or off by the reload starts anew.
        if self.replay.enabled() && previous.replay.enabled() {
            self.replay = Arc::clone(&previous.replay);
        }
        self
    }

    /// Tolerates `skew` of clock disagreement (see [`Freshness`]).
    #[must_use]
    pub fn with_clock_skew(mut self, skew: Duration) -> Self {
        self.rules.clock_skew = skew;
        self
    }

    /// The oldest iat accepted, in seconds before now.
    pub fn max_iat_age(&self) -> Duration {
        self.rules.max_age
    }

    /// The time rules.
    pub fn freshness(&self) -> Freshness {
        self.rules
    }

    /// Whether replay detection is on (`stir.replay_cache_size` above 0).
    pub fn replay_enabled(&self) -> bool {
        self.replay.enabled()
    }

    /// Parses and checks a request in one go (`elapsed` is left zero for the caller to fill).
    pub fn verify(&self, req: &VerifyRequest, chains: &dyn ChainSource) -> Verdict {
        match Parsed::parse(&req.identity) {
            Ok(parsed) => self.check(&parsed, req, chains),
            Err(reason) => Verdict::from_reason(reason),
        }
    }

    /// Checks parsed headers against the request, with chains from `chains` and replays
    /// detected in this checker's own memory. The first SHAKEN PASSporT that passes decides;
    /// when none does, the first one's failure.
    pub fn check(&self, parsed: &Parsed, req: &VerifyRequest, chains: &dyn ChainSource) -> Verdict {
        let mut first: Option<Verdict> = None;
        for index in 0..parsed.shaken_len() {
            let v = match self.check_candidate(parsed, index, req, chains) {
                Checked::Pending(pending) => {
                    let replayed = self.replay.seen(&pending.key, pending.last, pending.now);
                    self.settle(pending, replayed)
                }
                Checked::Failed(v) => v,
            };
            if v.passed() {
                return v;
            }
            first.get_or_insert(v);
        }
        // `Parsed::parse` guarantees at least one SHAKEN candidate.
        first.unwrap_or_else(|| Verdict::from_reason(Reason::NoShakenPassport))
    }

    /// Every check but the replay check of the `index`th SHAKEN PASSporT (an index out of
    /// range fails as [`Reason::NoShakenPassport`]).
    pub fn check_candidate(
        &self,
        parsed: &Parsed,
        index: usize,
        req: &VerifyRequest,
        chains: &dyn ChainSource,
    ) -> Checked {
        let Some(c) = parsed.shaken.get(index) else {
            return Checked::Failed(Verdict::from_reason(Reason::NoShakenPassport));
        };
        let now = req.now_unix();
        let v = self.check_shaken(c, parsed, req, now, chains);
        if !v.passed() {
            return Checked::Failed(v);
        }
        Checked::Pending(Pending {
            verdict: v,
            key: ReplayKey::of(&c.passport),
            last: self.rules.last_accepted(c.passport.claims.iat),
            now,
        })
    }

    /// Finishes a [`Pending`] with the replay store's answer: a replay is marked
    /// (`replayed`), and fails with [`Reason::Replay`] (438) under the `fail` policy.
    pub fn settle(&self, pending: Pending, replayed: bool) -> Verdict {
        let mut v = pending.verdict;
        if replayed {
            v.replayed = true;
            if self.replay_policy == ReplayPolicy::Fail {
                v.verstat = Reason::Replay.verstat();
                v.reason = Reason::Replay;
                // Rich data rides on a verdict that passed; a replay shows none.
                v.rcd = None;
                v.rcd_plan = None;
            }
        }
        v
    }

    fn check_shaken(
        &self,
        c: &Candidate,
        parsed: &Parsed,
        req: &VerifyRequest,
        now: i64,
        chains: &dyn ChainSource,
    ) -> Verdict {
        let claims = &c.passport.claims;
        let mut v = Verdict::from_reason(Reason::Verified);
        v.attest = claims.attest.as_deref().and_then(Attest::parse);
        v.x5u = Some(c.header.info.clone());
        v.origid = claims.origid.clone();
        v.orig = claims.orig.tn.as_deref().and_then(tn::canonicalize);
        v.dest = claims
            .dest
            .tn
            .iter()
            .filter_map(|t| tn::canonicalize(t))
            .collect();
        v.iat = Some(claims.iat);
        let result = (|| {
            let ok = pre_check(c, "shaken", now, self.rules)?;
            if tn::canonicalize(&req.from).as_deref() != Some(ok.orig.as_str()) {
                return Err(Reason::OrigMismatch);
            }
            let chain = chains.chain(&c.header.info)?;
            v.spc = chain.spc().map(str::to_owned);
            check_signature(&c.passport, &chain, now, self.rules)?;
            // A delegate certificate vouches only for its own numbers (RFC 8226 §9).
            v.tn_auth_match = Some(authorize(&chain, &ok.orig)?.clone());
            if !matches_dest(&ok.dest, &req.to) {
                v.diversions = self.check_divs(parsed, &ok, req, now, chains);
                if !v.diversions.iter().any(|d| {
                    d.verified
                        && d.to
                            .iter()
                            .any(|t| matches_dest(std::slice::from_ref(t), &req.to))
                }) {
                    return Err(Reason::DestMismatch);
                }
            }
            Ok(())
        })();
        match result {
            Err(reason) => {
                v.verstat = reason.verstat();
                v.reason = reason;
            }
            Ok(()) => {
                if let Some(plan) = self.rich_data(c, parsed, req, now, chains) {
                    if plan.digests.is_empty() {
                        v.rcd = plan.settle(&[]).map(Box::new);
                    } else {
                        v.rcd_plan = Some(Box::new(plan));
                    }
                }
            }
        }
        v
    }

    /// The rich data of a SHAKEN PASSporT that passed: its own `rcd`/`crn` claims, else those of
    /// the first `ppt=rcd` PASSporT that passes the same checks (same `orig`, a destination of
    /// the call, fresh, a chain whose TNAuthList covers `orig`, a good signature). Malformed
    /// rich data is dropped, never shown.
    fn rich_data(
        &self,
        shaken: &Candidate,
        parsed: &Parsed,
        req: &VerifyRequest,
        now: i64,
        chains: &dyn ChainSource,
    ) -> Option<RcdPlan> {
        let own = rcd_claims(&shaken.passport, self.allow_http_urls).check();
        match own {
            Ok(Some(plan)) => return Some(plan),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "rich call data of the SHAKEN PASSporT dropped");
                return None;
            }
        }
        let orig = shaken
            .passport
            .claims
            .orig
            .tn
            .as_deref()
            .and_then(tn::canonicalize)?;
        parsed.rcds.iter().find_map(|r| {
            let ok = pre_check(r, "rcd", now, self.rules).ok()?;
            let to_call = matches_dest(&ok.dest, &req.to);
            if ok.orig != orig || !to_call {
                return None;
            }
            let chain = chains.chain(&r.header.info).ok()?;
            check_signature(&r.passport, &chain, now, self.rules).ok()?;
            authorize(&chain, &orig).ok()?;
            match rcd_claims(&r.passport, self.allow_http_urls).check() {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::debug!(error = %e, "rich call data of an rcd PASSporT dropped");
                    None
                }
            }
        })
    }

    /// Verifies the `div` PASSporTs and marks those that link the SHAKEN PASSporT's
    /// destinations to the called number (possibly over several hops).
    fn check_divs(
        &self,
        parsed: &Parsed,
        shaken: &ClaimsOk,
        req: &VerifyRequest,
        now: i64,
        chains: &dyn ChainSource,
    ) -> Vec<Diversion> {
        let mut results: Vec<(Diversion, Option<ClaimsOk>)> = parsed
            .divs
            .iter()
            .map(|d| {
                let r = pre_check(d, "div", now, self.rules).and_then(|ok| {
                    if ok.orig != shaken.orig {
                        return Err(Reason::OrigMismatch);
                    }
                    let chain = chains.chain(&d.header.info)?;
                    check_signature(&d.passport, &chain, now, self.rules)?;
                    // The retargeting party signs for the number it diverts (`div.tn`).
                    if let Some(div_tn) = &ok.div {
                        authorize(&chain, div_tn)?;
                    }
                    Ok(ok)
                });
                let div = Diversion {
                    from: d
                        .passport
                        .claims
                        .div
                        .as_ref()
                        .and_then(|x| x.tn.as_deref())
                        .and_then(tn::canonicalize),
                    to: d
                        .passport
                        .claims
                        .dest
                        .tn
                        .iter()
                        .filter_map(|t| tn::canonicalize(t))
                        .collect(),
                    verified: false,
                    reason: r.as_ref().err().map_or("verified", Reason::label),
                };
                (div, r.ok())
            })
            .collect();
        // Walk from the SHAKEN destinations through valid diversions; a diversion counts as
        // verified only when it is reachable from the original call.
        let mut reached: Vec<String> = shaken.dest.clone();
        let target = tn::canonicalize(&req.to);
        for _ in 0..results.len() {
            let mut progressed = false;
            for (div, ok) in &mut results {
                let Some(ok) = ok else { continue };
                if div.verified || !div.from.as_ref().is_some_and(|f| reached.contains(f)) {
                    continue;
                }
                div.verified = true;
                reached.extend(ok.dest.iter().cloned());
                progressed = true;
            }
            if !progressed || target.as_ref().is_some_and(|t| reached.contains(t)) {
                break;
            }
        }
        for (div, ok) in &mut results {
            if ok.is_some() && !div.verified {
                div.reason = "div_not_linked";
            }
        }
        results.into_iter().map(|(d, _)| d).collect()
    }
}

struct ClaimsOk {
    orig: String,
    dest: Vec<String>,
    /// The canonical `div.tn` of a `div` PASSporT.
    div: Option<String>,
}

/// Header and claim checks that need no certificate.
fn pre_check(c: &Candidate, ppt: &str, now: i64, rules: Freshness) -> Result<ClaimsOk, Reason> {
    let h = &c.passport.header;
    let claims = &c.passport.claims;
    if let Some(alg) = &c.header.alg {
        if alg != "ES256" {
            return Err(Reason::UnsupportedAlg {
                alg: Some(alg.clone()),
            });
        }
    }
    if h.alg.as_deref() != Some("ES256") {
        return Err(Reason::UnsupportedAlg { alg: h.alg.clone() });
    }
    if !h
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("passport"))
    {
        return Err(Reason::BadTyp);
    }
    if !h
        .ppt
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case(ppt))
    {
        return Err(Reason::BadPpt);
    }
    if h.x5u.as_deref() != Some(c.header.info.as_str()) {
        return Err(Reason::X5uMismatch);
    }
    if ppt == "shaken" {
        if claims.attest.as_deref().and_then(Attest::parse).is_none() {
            return Err(Reason::BadClaim { claim: "attest" });
        }
        if claims.origid.as_deref().is_none_or(str::is_empty) {
            return Err(Reason::BadClaim { claim: "origid" });
        }
    }
    let div = if ppt != "div" {
        None
    } else {
        Some(
            claims
                .div
                .as_ref()
                .and_then(|d| d.tn.as_deref())
                .and_then(tn::canonicalize)
                .ok_or(Reason::BadClaim { claim: "div.tn" })?,
        )
    };
    let orig = claims
        .orig
        .tn
        .as_deref()
        .and_then(tn::canonicalize)
        .ok_or(Reason::BadClaim { claim: "orig.tn" })?;
    let dest: Option<Vec<String>> = claims.dest.tn.iter().map(|t| tn::canonicalize(t)).collect();
    let dest = dest
        .filter(|d| !d.is_empty())
        .ok_or(Reason::BadClaim { claim: "dest.tn" })?;
    if !rules.accepts_iat(claims.iat, now) {
        return Err(Reason::StaleDate {
            iat: claims.iat,
            now,
        });
    }
    Ok(ClaimsOk { orig, dest, div })
}

fn check_signature(
    p: &Passport,
    chain: &ValidatedChain,
    now: i64,
    rules: Freshness,
) -> Result<(), Reason> {
    chain
        .check_time_with_skew(now, rules.skew_secs())
        .map_err(Reason::Certificate)?;
    if p.signature.len() != 64 || !chain.verify_es256(p.signing_input(), &p.signature) {
        return Err(Reason::BadSignature);
    }
    Ok(())
}

/// The rich-data claims of a PASSporT.
fn rcd_claims(p: &Passport, allow_http: bool) -> RcdClaims<'_> {
    RcdClaims {
        rcd: p.claims.rcd.as_ref(),
        rcdi: p.claims.rcdi.as_ref(),
        crn: p.claims.crn.as_ref(),
        allow_http,
    }
}

/// The TNAuthList entry of the chain's leaf that covers the canonical number `tn`.
fn authorize<'c>(chain: &'c ValidatedChain, tn: &str) -> Result<&'c TnEntry, Reason> {
    chain
        .authorize(tn)
        .ok_or_else(|| Reason::TnNotAuthorized { tn: tn.to_owned() })
}

fn matches_dest(dest: &[String], to: &str) -> bool {
    tn::canonicalize(to).is_some_and(|t| dest.contains(&t))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

pub(crate) fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
