//! `[routes]` and `[[numbers]]`: the action for each verification outcome, globally and per
//! dialled number.

use std::net::SocketAddr;

use b2bua::{RouteAction, Routes};
use serde::Deserialize;

use super::forward::forward_targets;
use super::ConfigError;

/// `[routes]`: the action for each verification outcome.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRoutes {
    /// `routes.A`
    #[serde(rename = "A")]
    pub a: String,
    /// `routes.B`
    #[serde(rename = "B")]
    pub b: String,
    /// `routes.C`
    #[serde(rename = "C")]
    pub c: String,
    /// `routes.failed`
    pub failed: String,
    /// `routes.missing`
    pub missing: String,
}

impl Default for RawRoutes {
    /// The two well-known call flows: A forwarded, B screened, C to voicemail, unsigned or
    /// failed through the CAPTCHA.
    fn default() -> Self {
        Self {
            a: "forward".to_owned(),
            b: "screen".to_owned(),
            c: "voicemail".to_owned(),
            failed: "captcha".to_owned(),
            missing: "captcha".to_owned(),
        }
    }
}

impl RawRoutes {
    /// Validates the table into the policy table.
    pub(super) fn validate(&self, errors: &mut Vec<ConfigError>) -> Routes {
        Routes {
            a: route_action("routes.A", &self.a, errors),
            b: route_action("routes.B", &self.b, errors),
            c: route_action("routes.C", &self.c, errors),
            failed: route_action("routes.failed", &self.failed, errors),
            missing: route_action("routes.missing", &self.missing, errors),
        }
    }
}

/// One `[[numbers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNumber {
    /// `numbers[].number`: the dialled number (To / Request-URI), any visual format.
    pub number: String,
    /// `numbers[].forward_target`: where forwarded calls to it go (default: forward.target).
    #[serde(default)]
    pub forward_target: String,
    /// `numbers[].organization`: the name spoken in its voicemail greeting.
    #[serde(default)]
    pub organization: String,
    /// `numbers[].routes`: route overrides for it.
    #[serde(default)]
    pub routes: RawRouteOverrides,
    /// `numbers[].ring_timeout_s`: its ring limit (default: forward.ring_timeout_s).
    #[serde(default)]
    pub ring_timeout_s: Option<u64>,
    /// `numbers[].on_no_answer`: `voicemail` or `relay` (default: forward.on_no_answer).
    #[serde(default)]
    pub on_no_answer: Option<String>,
    /// `numbers[].on_busy` (default: forward.on_busy).
    #[serde(default)]
    pub on_busy: Option<String>,
    /// `numbers[].on_failure` (default: forward.on_failure).
    #[serde(default)]
    pub on_failure: Option<String>,
}

/// `[numbers.routes]`: any of the `[routes]` keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteOverrides {
    /// A
    #[serde(rename = "A")]
    pub a: Option<String>,
    /// B
    #[serde(rename = "B")]
    pub b: Option<String>,
    /// C
    #[serde(rename = "C")]
    pub c: Option<String>,
    /// failed
    pub failed: Option<String>,
    /// missing
    pub missing: Option<String>,
}

/// A validated `[[numbers]]` entry.
#[derive(Debug, Clone)]
pub struct NumberConfig {
    /// Canonical number (RFC 8224 §8.3).
    pub number: String,
    /// Its policy table.
    pub routes: Routes,
    /// Its forward target, when it has its own.
    pub forward: Option<b2bua::ForwardTargets>,
    /// Its organisation name.
    pub organization: Option<String>,
    /// Its ring limit and fallbacks.
    pub forward_policy: b2bua::ForwardPolicy,
}

/// Validates every `[[numbers]]` entry; what an entry does not override comes from `routes`.
/// A TLS forward target adds the name its certificate must carry to `tls_names`.
pub(super) fn validate_numbers(
    raw: &[RawNumber],
    routes: &Routes,
    forward_policy: b2bua::ForwardPolicy,
    tls_names: &mut Vec<(SocketAddr, String)>,
    errors: &mut Vec<ConfigError>,
) -> Vec<NumberConfig> {
    let mut numbers = Vec::new();
    for (i, n) in raw.iter().enumerate() {
        let key = |k: &str| format!("numbers[{i}].{k}");
        let Some(number) = stir::tn::canonicalize(&n.number) else {
            errors.push(ConfigError::new(
                &key("number"),
                format!("`{}` is not a telephone number", n.number),
            ));
            continue;
        };
        if numbers.iter().any(|m: &NumberConfig| m.number == number) {
            errors.push(ConfigError::new(
                &key("number"),
                format!("{number} is listed twice"),
            ));
        }
        let forward = if n.forward_target.is_empty() {
            None
        } else {
            forward_targets(
                &key("forward_target"),
                std::slice::from_ref(&n.forward_target),
                tls_names,
                errors,
            )
        };
        let over = |v: &Option<String>,
                    k: &str,
                    default: RouteAction,
                    errors: &mut Vec<ConfigError>| match v {
            Some(v) => route_action(&key(&format!("routes.{k}")), v, errors),
            None => default,
        };
        let number_routes = Routes {
            a: over(&n.routes.a, "A", routes.a, errors),
            b: over(&n.routes.b, "B", routes.b, errors),
            c: over(&n.routes.c, "C", routes.c, errors),
            failed: over(&n.routes.failed, "failed", routes.failed, errors),
            missing: over(&n.routes.missing, "missing", routes.missing, errors),
        };
        numbers.push(NumberConfig {
            number,
            routes: number_routes,
            forward,
            organization: (!n.organization.is_empty()).then(|| n.organization.clone()),
            forward_policy: super::forward::PolicyKeys {
                ring_timeout_s: n.ring_timeout_s,
                on_no_answer: n.on_no_answer.as_deref(),
                on_busy: n.on_busy.as_deref(),
                on_failure: n.on_failure.as_deref(),
            }
            .apply(forward_policy, &key(""), errors),
        });
    }
    numbers
}

fn route_action(key: &str, value: &str, errors: &mut Vec<ConfigError>) -> RouteAction {
    match value {
        "forward" => RouteAction::Forward,
        "reject" => RouteAction::Reject,
        "voicemail" => RouteAction::Voicemail,
        "captcha" => RouteAction::Captcha,
        "screen" => RouteAction::Screen,
        other => {
            errors.push(ConfigError::new(
                key,
                format!(
                    "unknown action `{other}`; use forward, screen, voicemail, captcha or reject"
                ),
            ));
            RouteAction::Forward
        }
    }
}
