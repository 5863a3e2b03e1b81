//! Telephone number canonicalization (RFC 8224 §8.3).

/// Canonicalizes a telephone number as RFC 8224 §8.3 describes: URI parameters (`;npdi`,
/// `;rn=...`) are cut, visual separators (`-`, `.`, `(`, `)`, spaces) and a leading `+` are
/// dropped, and what remains must be a non-empty string of at most 32 digits.
///
/// Returns `None` when the input is not a telephone number (letters, an empty string, …).
///
/// ```
/// assert_eq!(stir::tn::canonicalize("+1 (215) 555-1212").as_deref(), Some("12155551212"));
/// assert_eq!(stir::tn::canonicalize("alice"), None);
/// ```
pub fn canonicalize(tn: &str) -> Option<String> {
    let mut out = String::with_capacity(tn.len());
    digits(tn, |c| out.push(c)).then_some(out)
}

/// Whether [`canonicalize`] reads `tn` as a telephone number, without writing the number.
pub fn is_telephone_number(tn: &str) -> bool {
    digits(tn, |_| {})
}

/// Whether `tn` reads as the number `canonical` (a [`canonicalize`] result), without writing it.
///
/// ```
/// assert!(stir::tn::is_number("+1 (215) 555-1212;npdi", "12155551212"));
/// assert!(!stir::tn::is_number("+1215555121", "12155551212"));
/// ```
pub fn is_number(tn: &str, canonical: &str) -> bool {
    let mut want = canonical.bytes();
    let mut same = true;
    let number = digits(tn, |c| same &= want.next() == u8::try_from(c).ok());
    number && same && want.next().is_none()
}

/// Hands each digit of `tn` (as [`canonicalize`] reads it) to `push`; true when `tn` is a
/// telephone number: only digits and visual separators, 1 to 32 digits.
fn digits(tn: &str, mut push: impl FnMut(char)) -> bool {
    let tn = tn.split(';').next().unwrap_or_default().trim();
    let tn = tn.strip_prefix('+').unwrap_or(tn);
    let mut count = 0usize;
    for c in tn.chars() {
        match c {
            '0'..='9' => {
                push(c);
                count += 1;
            }
            '-' | '.' | '(' | ')' | ' ' | '\t' => {}
            _ => return false,
        }
    }
    (1..=32).contains(&count)
}

#[cfg(test)]
mod tests {
    use super::{canonicalize, is_telephone_number};

    #[test]
    fn canonical_forms() {
        let cases = [
            ("+12155551212", Some("12155551212")),
            ("12155551212", Some("12155551212")),
            ("+1-215-555-1212", Some("12155551212")),
            ("+1.215.555.1212", Some("12155551212")),
            ("+1 (215) 555 1212", Some("12155551212")),
            ("+12155551212;npdi;rn=+12155550000", Some("12155551212")),
            ("", None),
            ("+", None),
            ("alice", None),
            ("+1215555121x", None),
            ("123456789012345678901234567890123", None),
        ];
        for (input, want) in cases {
            assert_eq!(canonicalize(input).as_deref(), want, "input {input:?}");
            assert_eq!(
                is_telephone_number(input),
                want.is_some(),
                "input {input:?}"
            );
        }
    }
}
