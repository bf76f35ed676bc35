//! Percent-decoding (RFC 3986), strict: a `%` not followed by two hex digits is an error, not
//! a literal. Shared by the query and path decoders; it owns no policy about what the
//! decoded bytes may contain.

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, for queries). `None` when
/// an escape is malformed.
pub fn decode(input: &[u8], plus_is_space: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'%' => {
                let hi = hex(*input.get(i + 1)?)?;
                let lo = hex(*input.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Encodes everything but unreserved characters and `/` (for building URLs in listings and
/// tests).
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_rejects() {
        assert_eq!(decode(b"a%20b+c", true).unwrap(), b"a b c");
        assert_eq!(decode(b"a+b", false).unwrap(), b"a+b");
        assert_eq!(decode(b"%2e%2E", false).unwrap(), b"..");
        assert!(decode(b"%", false).is_none());
        assert!(decode(b"%2", false).is_none());
        assert!(decode(b"%g0", false).is_none());
        assert_eq!(encode_path("/a b/ü.mp4"), "/a%20b/%C3%BC.mp4");
    }
}
