//! What `str::find`, `str::split_once` (on an ASCII `char`) and `str::trim` give, for less than
//! they cost on the short header values and URIs every message carries: the searches are one
//! `memchr`, and trimming reads the two end bytes before it decodes any character.

/// Where the first `byte` (ASCII) is in `text`: `text.find(char::from(byte))`.
pub(crate) fn find(text: &str, byte: u8) -> Option<usize> {
    debug_assert!(byte.is_ascii());
    memchr::memchr(byte, text.as_bytes())
}

/// `text` split around its first `byte` (ASCII): `text.split_once(char::from(byte))`.
pub(crate) fn split_once(text: &str, byte: u8) -> Option<(&str, &str)> {
    let at = find(text, byte)?;
    // An ASCII byte is always a character boundary.
    Some((text.get(..at)?, text.get(at + 1..)?))
}

/// `text.trim()`, the text returned as it is without decoding a character when neither end is
/// white space (nearly every header value and parameter).
pub(crate) fn trim(text: &str) -> &str {
    // ASCII and not one of the ASCII characters of `char::is_whitespace`.
    let kept = |b: &u8| b.is_ascii() && !matches!(b, b'\t'..=b'\r' | b' ');
    let bytes = text.as_bytes();
    if bytes.first().is_some_and(kept) && bytes.last().is_some_and(kept) {
        text
    } else {
        text.trim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn as_the_str_methods(text in "[a=;:@é\u{2003}]{0,10}", byte in proptest::sample::select(b"=;:@x".to_vec())) {
            let c = char::from(byte);
            proptest::prop_assert_eq!(find(&text, byte), text.find(c));
            proptest::prop_assert_eq!(split_once(&text, byte), text.split_once(c));
        }

        #[test]
        fn trims_as_str_trim(text in "[a \t\n\r\u{b}\u{c}\u{1c}\u{85}\u{a0}\u{2003}é]{0,8}") {
            proptest::prop_assert_eq!(trim(&text), text.trim());
        }
    }
}
