//! The router: from a verification verdict and the caller's list status to what happens to the
//! call. Pure functions over a policy table; the shell supplies the verdict and the lists.

use stir::{Attest, Verdict, Verstat};

/// What a route does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteAction {
    /// B2BUA leg to the forward target, verification result stamped on it.
    Forward,
    /// Refuse with the RFC 8224 code of the failure and a Reason header.
    Reject,
    /// Answer, play a greeting and the beep, record a message, notify.
    Voicemail,
    /// Answer, ask for digits; forward on success (and add the caller to the fast-pass list),
    /// hang up politely on failure.
    Captcha,
    /// Answer, record the caller's name, call the target and let the callee accept (1) or send
    /// the caller to voicemail (2, or no answer).
    Screen,
}

impl RouteAction {
    /// The name used in config, CDRs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forward => "forward",
            Self::Reject => "reject",
            Self::Voicemail => "voicemail",
            Self::Captcha => "captcha",
            Self::Screen => "screen",
        }
    }
}

/// The verification outcome classes that the policy table is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictClass {
    /// Verified, attestation A.
    A,
    /// Verified, attestation B.
    B,
    /// Verified, attestation C.
    C,
    /// TN-Validation-Failed.
    Failed,
    /// No-TN-Validation: no Identity header, or it could not be verified in time.
    Missing,
}

impl VerdictClass {
    /// The class of a verdict.
    pub fn of(verdict: &Verdict) -> Self {
        match (verdict.verstat, verdict.attest) {
            (Verstat::Passed, Some(Attest::A)) => Self::A,
            (Verstat::Passed, Some(Attest::B)) => Self::B,
            // A pass without attest cannot happen for SHAKEN; treat it as the weakest level.
            (Verstat::Passed, _) => Self::C,
            (Verstat::Failed, _) => Self::Failed,
            _ => Self::Missing,
        }
    }
}

/// The policy table: one action per class (config keys `routes.A` … `routes.missing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routes {
    /// `routes.A`
    pub a: RouteAction,
    /// `routes.B`
    pub b: RouteAction,
    /// `routes.C`
    pub c: RouteAction,
    /// `routes.failed`
    pub failed: RouteAction,
    /// `routes.missing`
    pub missing: RouteAction,
}

impl Default for Routes {
    /// Forward everything: stirgate never blocks on attestation alone unless configured to.
    fn default() -> Self {
        Self {
            a: RouteAction::Forward,
            b: RouteAction::Forward,
            c: RouteAction::Forward,
            failed: RouteAction::Forward,
            missing: RouteAction::Forward,
        }
    }
}

impl Routes {
    /// The action for a class.
    pub fn action(&self, class: VerdictClass) -> RouteAction {
        match class {
            VerdictClass::A => self.a,
            VerdictClass::B => self.b,
            VerdictClass::C => self.c,
            VerdictClass::Failed => self.failed,
            VerdictClass::Missing => self.missing,
        }
    }
}

/// The caller's number on the lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Listing {
    /// On neither list.
    #[default]
    Unlisted,
    /// On the blocklist: refused before anything else (603 Decline).
    Blocked,
    /// On the fast-pass allow list: forwarded when the verdict is passed or missing (see
    /// [`FastPass`]).
    Allowed,
}

/// Which verdicts a fast-pass entry may skip the routes for (`lists.fast_pass_overrides_failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FastPass {
    /// Passed (A/B/C) and missing (no Identity, no verdict in time) verdicts only: a failed
    /// signature on a number that once passed the CAPTCHA follows `routes.failed`, so a
    /// spoofer cannot borrow a fast-pass entry with a forged PASSporT.
    #[default]
    PassedOrMissing,
    /// Every verdict, failed ones included (the behaviour before issue 14; a forged Identity
    /// on a fast-passed number is then forwarded).
    Any,
}

/// What the router decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Blocklisted: 603 Decline.
    Block,
    /// Forward to the target.
    Forward {
        /// True when the fast-pass list decided it.
        fast_pass: bool,
    },
    /// Answer locally and run a call flow.
    Local(RouteAction),
    /// Refuse with this code and reason phrase.
    Reject {
        /// RFC 8224 code (428, 403, 436, 437, 438).
        status: u16,
        /// Reason phrase.
        phrase: &'static str,
    },
}

impl Decision {
    /// The route label for CDRs and metrics.
    pub fn route(&self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Forward { .. } => "forward",
            Self::Local(action) => action.as_str(),
            Self::Reject { .. } => "reject",
        }
    }
}

/// Evaluation order: blocklist, then the fast-pass list (for the verdicts `fast_pass` admits),
/// then the verdict's class.
pub fn decide(
    routes: &Routes,
    verdict: &Verdict,
    listing: Listing,
    identity_present: bool,
    fast_pass: FastPass,
) -> Decision {
    let class = VerdictClass::of(verdict);
    match listing {
        Listing::Blocked => return Decision::Block,
        Listing::Allowed if class != VerdictClass::Failed || fast_pass == FastPass::Any => {
            return Decision::Forward { fast_pass: true };
        }
        Listing::Allowed | Listing::Unlisted => {}
    }
    match routes.action(class) {
        RouteAction::Forward => Decision::Forward { fast_pass: false },
        action @ (RouteAction::Voicemail | RouteAction::Captcha | RouteAction::Screen) => {
            Decision::Local(action)
        }
        RouteAction::Reject => {
            let status = verdict
                .sip_code()
                .unwrap_or(if identity_present { 436 } else { 428 });
            Decision::Reject {
                status,
                phrase: phrase_for(status),
            }
        }
    }
}

/// RFC 8224 §13.2 reason phrases (and RFC 3261 for 403).
pub fn phrase_for(status: u16) -> &'static str {
    match status {
        403 => "Stale Date",
        428 => "Use Identity Header",
        436 => "Bad Identity Info",
        437 => "Unsupported Credential",
        438 => "Invalid Identity Header",
        _ => "Forbidden",
    }
}

#[cfg(test)]
mod tests {
    use stir::Reason;

    use super::*;

    fn passed(attest: Attest) -> Verdict {
        let mut v = Verdict::from_reason(Reason::Verified);
        v.attest = Some(attest);
        v
    }

    #[test]
    fn classes_follow_verstat_and_attest() {
        assert_eq!(VerdictClass::of(&passed(Attest::A)), VerdictClass::A);
        assert_eq!(VerdictClass::of(&passed(Attest::B)), VerdictClass::B);
        assert_eq!(VerdictClass::of(&passed(Attest::C)), VerdictClass::C);
        assert_eq!(
            VerdictClass::of(&Verdict::from_reason(Reason::NoIdentity)),
            VerdictClass::Missing
        );
        assert_eq!(
            VerdictClass::of(&Verdict::from_reason(Reason::BadTyp)),
            VerdictClass::Failed
        );
    }

    #[test]
    fn blocklist_first_then_fast_pass_then_policy() {
        let all_reject = Routes {
            a: RouteAction::Reject,
            b: RouteAction::Reject,
            c: RouteAction::Reject,
            failed: RouteAction::Reject,
            missing: RouteAction::Reject,
        };
        let v = passed(Attest::A);
        let fp = FastPass::default();
        assert_eq!(
            decide(&Routes::default(), &v, Listing::Blocked, true, fp),
            Decision::Block
        );
        assert_eq!(
            decide(&all_reject, &v, Listing::Allowed, true, fp),
            Decision::Forward { fast_pass: true }
        );
        assert_eq!(
            decide(&Routes::default(), &v, Listing::Unlisted, true, fp),
            Decision::Forward { fast_pass: false }
        );
        let missing = Verdict::from_reason(Reason::NoIdentity);
        assert_eq!(
            decide(&all_reject, &missing, Listing::Allowed, false, fp),
            Decision::Forward { fast_pass: true },
            "fast-pass covers an unsigned call"
        );
        assert_eq!(
            decide(&all_reject, &missing, Listing::Unlisted, false, fp),
            Decision::Reject {
                status: 428,
                phrase: "Use Identity Header"
            }
        );
        let bad = Verdict::from_reason(Reason::BadTyp);
        let Decision::Reject { status, .. } =
            decide(&all_reject, &bad, Listing::Unlisted, true, fp)
        else {
            panic!("reject expected")
        };
        assert_eq!(Some(status), bad.sip_code());
    }

    #[test]
    fn fast_pass_does_not_launder_a_failed_signature() {
        let forged = Verdict::from_reason(Reason::BadSignature);
        let routes = Routes {
            failed: RouteAction::Captcha,
            ..Routes::default()
        };
        assert_eq!(
            decide(
                &routes,
                &forged,
                Listing::Allowed,
                true,
                FastPass::default()
            ),
            Decision::Local(RouteAction::Captcha),
            "a failed verdict follows routes.failed even for a fast-passed number"
        );
        assert_eq!(
            decide(&routes, &forged, Listing::Allowed, true, FastPass::Any),
            Decision::Forward { fast_pass: true },
            "the old behaviour, when configured"
        );
        assert_eq!(
            decide(&routes, &forged, Listing::Blocked, true, FastPass::Any),
            Decision::Block,
            "the blocklist stays first"
        );
    }
}
