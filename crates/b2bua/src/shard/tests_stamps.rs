//! Which URIs of the outbound INVITE carry the verification's verstat: only those that hold
//! the number verified. A caller's own `verstat` claims never reach the callee.

use super::*;

/// The forwarded INVITE of `text`, verified as an A attestation of +15551230001.
fn forwarded(text: &str) -> Request {
    let mut b = b2bua();
    let job = start_call(
        &mut b,
        Instant::now(),
        text,
        &verified(stir::Attest::A),
        Listing::Unlisted,
    );
    assert_eq!(job.orig, "+15551230001");
    requests_to(&sent(&mut b), CALLEE, &Method::Invite)
        .into_iter()
        .next()
        .expect("forwarded")
}

/// An attacker with an A PASSporT for their own number shows another number in From and adds
/// identities that claim a pass: each URI that is not the verified number says
/// No-TN-Validation, whatever the caller wrote, in the URI parameters or in the user part.
#[test]
fn only_the_verified_number_is_stamped_as_passed() {
    let text = invite()
        .replace(
            &format!("From: \"Alice\" <sip:+15551230001@{CALLER}>;tag=caller1"),
            "From: \"Your Bank\" <sip:+1-800-555-0199;verstat=TN-Validation-Passed@bank;user=phone>;tag=caller1",
        )
        .replace(
            "P-Asserted-Identity: <sip:+15551230001@trunk>\r\n",
            "P-Asserted-Identity: <sip:+15551230001@trunk>, \
             <tel:+18005550199;verstat=TN-Validation-Passed>\r\n\
             P-Asserted-Identity: <sip:+18005550199@bank;verstat=TN-Validation-Passed-A\r\n\
             P-Preferred-Identity: <sip:+18005550199;verstat=TN-Validation-Passed@bank;user=phone>\r\n",
        );
    let inv = forwarded(&text);
    assert_eq!(
        inv.header_from().unwrap().uri,
        "sip:+1-800-555-0199@bank;user=phone;verstat=No-TN-Validation",
        "From holds another number than the one verified"
    );
    assert_eq!(
        inv.headers
            .get_all("P-Asserted-Identity")
            .collect::<Vec<_>>(),
        vec![
            "<sip:+15551230001@trunk;verstat=TN-Validation-Passed>",
            "<tel:+18005550199;verstat=No-TN-Validation>",
        ],
        "one identity per line; the unparsable one (no closing '>') is dropped"
    );
    assert_eq!(
        inv.headers.get("P-Preferred-Identity"),
        Some("<sip:+18005550199@bank;user=phone;verstat=No-TN-Validation>")
    );
    let bytes = inv.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let head = text.split("\r\n\r\n").next().unwrap();
    assert_eq!(
        head.matches("TN-Validation-Passed").count(),
        2,
        "the verified PAI and X-Stirgate-Verstat only:\n{head}"
    );
    assert_eq!(
        inv.headers.get("X-Stirgate-Verstat"),
        Some("TN-Validation-Passed-A")
    );
}

/// The same number written another way (visual separators, user parameters) is the number
/// verified; an anonymous From stands for the identity it hides.
#[test]
fn the_verified_number_is_stamped_however_it_is_written_and_anonymous_from_too() {
    let text = invite().replace(
        &format!("From: \"Alice\" <sip:+15551230001@{CALLER}>;tag=caller1"),
        "From: <sip:+1-555-123-0001;npdi@trunk;user=phone>;tag=caller1",
    );
    let inv = forwarded(&text);
    assert_eq!(
        inv.header_from().unwrap().uri,
        "sip:+1-555-123-0001;npdi@trunk;user=phone;verstat=TN-Validation-Passed"
    );
    let text = invite().replace(
        &format!("From: \"Alice\" <sip:+15551230001@{CALLER}>;tag=caller1"),
        "From: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=caller1",
    );
    let inv = forwarded(&text);
    assert_eq!(
        inv.header_from().unwrap().uri,
        "sip:anonymous@anonymous.invalid;verstat=TN-Validation-Passed"
    );
}
