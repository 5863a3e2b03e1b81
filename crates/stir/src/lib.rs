//! STIR/SHAKEN verification (RFC 8224, RFC 8225, RFC 8588): being built under issue 3.
