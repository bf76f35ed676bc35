//! The `Range` request header (RFC 9110 §14), resolved against the length of the *plan's*
//! output, never the source file. One range gives 206; several are answered with the whole
//! body (200), which RFC 9110 allows and players never need; a header that does not parse is
//! ignored (200), as the RFC recommends; a range starting past the end is 416.

use std::ops::Range;

/// The longest `Range` header considered; longer ones are ignored.
const MAX_HEADER: usize = 256;

/// What to send for a request's `Range` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole body, 200.
    Full,
    /// Output bytes `range`, 206 with `Content-Range`.
    Partial(Range<u64>),
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Resolves a `Range` header value against an output of `len` bytes.
pub fn resolve(header: Option<&str>, len: u64) -> RangeAnswer {
    let Some(h) = header else { return RangeAnswer::Full };
    if h.len() > MAX_HEADER {
        return RangeAnswer::Full;
    }
    let h = h.trim();
    let Some((unit, set)) = h.split_once('=') else { return RangeAnswer::Full };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeAnswer::Full;
    }
    let specs: Vec<&str> = set.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let [spec] = specs.as_slice() else { return RangeAnswer::Full };
    let Some((first, last)) = spec.split_once('-') else { return RangeAnswer::Full };
    let (first, last) = (first.trim(), last.trim());
    match (number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || len == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial(len.saturating_sub(n)..len)
            }
        }
        // bytes=A-
        (Some(a), None) if last.is_empty() => {
            if a >= len {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial(a..len)
            }
        }
        // bytes=A-B
        (Some(a), Some(b)) if a <= b => {
            if a >= len {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial(a..b.saturating_add(1).min(len))
            }
        }
        _ => RangeAnswer::Full,
    }
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAnswer::*;

    #[test]
    fn single_ranges() {
        assert_eq!(resolve(None, 100), Full);
        assert_eq!(resolve(Some("bytes=0-99"), 1000), Partial(0..100));
        assert_eq!(resolve(Some("bytes=100-"), 1000), Partial(100..1000));
        assert_eq!(resolve(Some("bytes=-10"), 1000), Partial(990..1000));
        assert_eq!(resolve(Some("bytes=-5000"), 1000), Partial(0..1000));
        assert_eq!(resolve(Some("bytes=990-5000"), 1000), Partial(990..1000));
        assert_eq!(resolve(Some("Bytes = 5-5"), 1000), Partial(5..6));
        assert_eq!(resolve(Some("bytes=0-18446744073709551615"), 10), Full);
        assert_eq!(resolve(Some("bytes=0-9223372036854775807"), 10), Partial(0..10));
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(resolve(Some("bytes=1000-"), 1000), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=1000-2000"), 1000), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-0"), 1000), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=0-"), 0), Unsatisfiable);
        for ignored in [
            "bytes=5-1",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=",
            "bytes=--1",
            "bytes=+1-2",
            "0-1",
        ] {
            assert_eq!(resolve(Some(ignored), 1000), Full, "{ignored}");
        }
        assert_eq!(resolve(Some(&"bytes=0-1".repeat(100)), 1000), Full);
    }
}
