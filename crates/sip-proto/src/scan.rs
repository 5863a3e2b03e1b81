//! Searches for one ASCII byte in text with `memchr`: what `str::find` and `str::split_once`
//! give for an ASCII `char`, for less than their char searcher costs on the short header values
//! and URIs every message carries (it is built for any character).

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
    }
}
