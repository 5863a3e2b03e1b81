//! Identity header parsing (RFC 8224 §4.1).
//!
//! The full form is `TOKEN;info=<URL>;alg=ES256;ppt=shaken`: parameters may come in any order,
//! with quoted or bare values and optional whitespace, and unknown parameters are ignored. The
//! compact form (a token whose payload is empty, `header..signature`) is recognised and refused
//! with [`IdentityError::CompactForm`] (438): SHAKEN (ATIS-1000074) requires the full form, and
//! reconstructing the claims needs the SIP `Date` header, which a verifier fed with header values
//! alone does not have. See `docs/stir.md`.

/// One parsed Identity header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeader {
    /// The PASSporT compact serialization `header.payload.signature` (base64url parts).
    pub token: String,
    /// The `info` URL without its angle brackets.
    pub info: String,
    /// The `alg` parameter, if present (RFC 8224 makes it optional; ES256 when absent).
    pub alg: Option<String>,
    /// The `ppt` parameter, if present (`shaken`, `div`, …).
    pub ppt: Option<String>,
}

impl IdentityHeader {
    /// Parses one Identity header value.
    pub fn parse(value: &str) -> Result<Self, IdentityError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(IdentityError::Empty);
        }
        // The token is base64url and dots, so the first ';' ends it; only the (short) parameter
        // list needs the quote- and bracket-aware split.
        let (token, params) = value.split_once(';').unwrap_or((value, ""));
        let token = token.trim();
        check_token(token)?;
        let parts = split_outside(params, b';');
        let mut info = None;
        let mut alg = None;
        let mut ppt = None;
        for param in parts {
            let param = param.trim();
            if param.is_empty() {
                continue;
            }
            let (name, val) = match param.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (param, None),
            };
            let slot = if name.eq_ignore_ascii_case("info") {
                &mut info
            } else if name.eq_ignore_ascii_case("alg") {
                &mut alg
            } else if name.eq_ignore_ascii_case("ppt") {
                &mut ppt
            } else {
                // RFC 8224: unknown parameters are ignored.
                continue;
            };
            let Some(val) = val.map(unquote).filter(|v| !v.is_empty()) else {
                return Err(IdentityError::EmptyParameter {
                    name: name.to_ascii_lowercase(),
                });
            };
            if slot.is_some() {
                return Err(IdentityError::DuplicateParameter {
                    name: name.to_ascii_lowercase(),
                });
            }
            *slot = Some(val.to_owned());
        }
        let info = info.ok_or(IdentityError::MissingInfo)?;
        let info = info
            .strip_prefix('<')
            .and_then(|i| i.strip_suffix('>'))
            .unwrap_or(&info)
            .trim()
            .to_owned();
        if info.is_empty() || info.contains(['<', '>', ' ']) {
            return Err(IdentityError::BadInfo);
        }
        Ok(Self {
            token: token.to_owned(),
            info,
            alg,
            ppt,
        })
    }

    /// The `ppt` parameter folded to lower case, if present.
    pub fn ppt_lower(&self) -> Option<String> {
        self.ppt.as_deref().map(str::to_ascii_lowercase)
    }
}

/// Splits a SIP header value that may carry several comma-separated Identity values into the
/// values (commas inside `<...>` or quotes are not separators).
pub fn split_values(value: &str) -> Vec<&str> {
    if !value.contains(',') {
        let value = value.trim();
        return if value.is_empty() {
            Vec::new()
        } else {
            vec![value]
        };
    }
    split_outside(value, b',')
        .into_iter()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

/// Why an Identity header value could not be parsed; every one maps to 438 Invalid Identity
/// Header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The value is empty.
    #[error("empty Identity header")]
    Empty,
    /// The token is not `base64url.base64url.base64url`.
    #[error("Identity token is not a three-part base64url JWS")]
    BadToken,
    /// The compact form (empty payload), which this verifier does not reconstruct.
    #[error(
        "compact-form PASSporT (empty payload) is not supported; SHAKEN requires the full form"
    )]
    CompactForm,
    /// No `info` parameter.
    #[error("Identity header has no info parameter")]
    MissingInfo,
    /// The `info` parameter is not `<URL>`.
    #[error("Identity header info parameter is not a URL")]
    BadInfo,
    /// A known parameter appears twice.
    #[error("Identity header parameter {name} appears twice")]
    DuplicateParameter {
        /// The parameter name.
        name: String,
    },
    /// A known parameter has no value.
    #[error("Identity header parameter {name} has no value")]
    EmptyParameter {
        /// The parameter name.
        name: String,
    },
}

fn check_token(token: &str) -> Result<(), IdentityError> {
    // One pass: base64url characters and exactly two dots, with non-empty header and signature.
    let mut dots = [0usize; 2];
    let mut n = 0;
    for (i, b) in token.bytes().enumerate() {
        if BASE64URL[usize::from(b)] {
            continue;
        }
        if b != b'.' || n == 2 {
            return Err(IdentityError::BadToken);
        }
        dots[n] = i;
        n += 1;
    }
    if n != 2 || dots[0] == 0 || dots[1] + 1 == token.len() {
        return Err(IdentityError::BadToken);
    }
    if dots[1] == dots[0] + 1 {
        return Err(IdentityError::CompactForm);
    }
    Ok(())
}

/// The bytes of base64url and its padding, as a table: a token is some 600 of them, each
/// checked on every INVITE.
static BASE64URL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'=';
        b += 1;
    }
    table
};

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .trim()
}

/// Splits on `sep` (ASCII) outside angle brackets and double quotes. Works on bytes: ASCII
/// bytes never occur inside a multi-byte UTF-8 sequence, so every cut is a char boundary.
fn split_outside(value: &str, sep: u8) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_angle = false;
    let mut in_quote = false;
    for (i, b) in value.bytes().enumerate() {
        match b {
            b'"' if !in_angle => in_quote = !in_quote,
            b'<' if !in_quote => in_angle = true,
            b'>' if !in_quote => in_angle = false,
            b if b == sep && !in_angle && !in_quote => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64url_table_is_the_token_alphabet() {
        for b in 0..=255u8 {
            let expected =
                matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'=');
            assert_eq!(BASE64URL[usize::from(b)], expected, "byte {b}");
        }
    }

    use super::*;

    const TOKEN: &str = "eyJh.eyJi.c2ln";

    #[test]
    fn full_form_variants() {
        let cases = [
            "eyJh.eyJi.c2ln;info=<https://cr.example/c.pem>;alg=ES256;ppt=shaken",
            "eyJh.eyJi.c2ln;ppt=shaken;alg=ES256;info=<https://cr.example/c.pem>",
            "eyJh.eyJi.c2ln ; info = <https://cr.example/c.pem> ; alg = \"ES256\" ; ppt = \"shaken\"",
            "eyJh.eyJi.c2ln;info=\"<https://cr.example/c.pem>\";alg=ES256;ppt=shaken;foo=bar;flag",
            "  eyJh.eyJi.c2ln;INFO=<https://cr.example/c.pem>;ALG=ES256;PPT=shaken  ",
        ];
        for case in cases {
            let h = IdentityHeader::parse(case).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(h.token, TOKEN, "{case}");
            assert_eq!(h.info, "https://cr.example/c.pem", "{case}");
            assert_eq!(h.alg.as_deref(), Some("ES256"), "{case}");
            assert_eq!(h.ppt.as_deref(), Some("shaken"), "{case}");
        }
    }

    #[test]
    fn info_only_is_accepted() {
        let h = IdentityHeader::parse("eyJh.eyJi.c2ln;info=<https://x/c>").unwrap();
        assert_eq!(h.alg, None);
        assert_eq!(h.ppt, None);
    }

    #[test]
    fn rejections() {
        let cases = [
            ("", IdentityError::Empty),
            ("eyJh.eyJi;info=<https://x/c>", IdentityError::BadToken),
            (
                "eyJh.eyJi.c2ln.x;info=<https://x/c>",
                IdentityError::BadToken,
            ),
            ("ey!h.eyJi.c2ln;info=<https://x/c>", IdentityError::BadToken),
            ("eyJh..c2ln;info=<https://x/c>", IdentityError::CompactForm),
            ("eyJh.eyJi.c2ln;alg=ES256", IdentityError::MissingInfo),
            ("eyJh.eyJi.c2ln;info=<>", IdentityError::BadInfo),
            (
                "eyJh.eyJi.c2ln;info",
                IdentityError::EmptyParameter {
                    name: "info".into(),
                },
            ),
            (
                "eyJh.eyJi.c2ln;info=<https://x/c>;ppt=shaken;ppt=div",
                IdentityError::DuplicateParameter { name: "ppt".into() },
            ),
            ("eyJh.eyJi.c2ln;info=<https://x /c>", IdentityError::BadInfo),
        ];
        for (input, want) in cases {
            assert_eq!(IdentityHeader::parse(input), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn splits_combined_values() {
        let v = "a.b.c;info=<https://x/a,b>;ppt=shaken, d.e.f;info=<https://y/c>;ppt=div";
        assert_eq!(
            split_values(v),
            vec![
                "a.b.c;info=<https://x/a,b>;ppt=shaken",
                "d.e.f;info=<https://y/c>;ppt=div"
            ]
        );
    }
}
