//! Who calls whom: the numbers of an INVITE that a verification compares with its PASSporT and
//! that pick the per-number settings. One reading for the B2BUA and the redirect mode.

use sip_proto::headers::{NameAddr, SipUri};
use sip_proto::message::SipHeaders;
use sip_proto::Request;

/// The numbers of one INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallNumbers {
    /// The calling number: the first P-Asserted-Identity that is a telephone number, else the
    /// From user (as written; `stir::tn::canonicalize` strips visual separators and RFC 4904
    /// user parameters before any comparison).
    pub orig: String,
    /// The called number: the Request-URI user, else the To user (RFC 8224 §5.2).
    pub dest: String,
    /// The called number canonicalized, when it is one: the key of `[[numbers]]`.
    pub dialled: Option<String>,
    /// The From user as written ("" without one): the caller of the call record.
    pub from: String,
    /// The To user as written ("" without one): the callee of the call record.
    pub to: String,
}

impl CallNumbers {
    /// Reads the numbers of `invite`.
    pub fn of(invite: &Request) -> Self {
        let from = invite
            .header_from()
            .and_then(|f| f.sip_uri())
            .and_then(|u| u.user)
            .unwrap_or_default();
        let to = invite
            .header_to()
            .and_then(|t| t.sip_uri())
            .and_then(|u| u.user);
        // The trunk vouches for P-Asserted-Identity, and an anonymous From with a valid PAI is
        // common.
        let orig = invite
            .headers
            .get_list("P-Asserted-Identity")
            .filter_map(|v| {
                NameAddr::parse(v)
                    .ok()
                    .and_then(|a| a.sip_uri())
                    .and_then(|u| u.user)
            })
            .find(|user| stir::tn::is_telephone_number(user))
            .unwrap_or_else(|| from.clone());
        let uri_user = SipUri::parse(&invite.uri).ok().and_then(|u| u.user);
        let dialled = uri_user
            .as_deref()
            .or(to.as_deref())
            .and_then(stir::tn::canonicalize);
        let dest = uri_user.or_else(|| to.clone()).unwrap_or_default();
        Self {
            orig,
            dest,
            dialled,
            from,
            to: to.unwrap_or_default(),
        }
    }
}
