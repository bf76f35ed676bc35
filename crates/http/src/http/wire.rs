//! Parsing a raw HTTP/1.0 or HTTP/1.1 request head (request line and header fields) into an
//! [`HttpRequest`], for the front ends that own the socket (`serve-cgi --inetd`, `serve`).
//! Strict and bounded: the caller caps the head's size and time; this module refuses
//! obsolete line folding, bad tokens, too many fields and versions other than 1.0/1.1. It
//! never reads a body: a request that announces one is answered and the connection closed.
//! Framing that two parties could read differently (RFC 9112 §6.3: `Content-Length` with
//! `Transfer-Encoding`, two different or invalid `Content-Length`s, a `Transfer-Encoding`
//! not ending in `chunked`) is a 400 and the connection is closed, as nginx does.

use super::path::Target;
use super::HttpRequest;

/// The most header fields accepted.
pub const MAX_FIELDS: usize = 100;

/// A parsed request head and what it means for the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireRequest {
    /// The request for [`super::respond`].
    pub request: HttpRequest,
    /// True for HTTP/1.0.
    pub http10: bool,
    /// Whether the client allows another request on this connection (and sent no body).
    pub keep_alive: bool,
}

/// Why a head is refused, with the status to answer (then close the connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    /// 400, 414, 431, 501 or 505.
    pub status: u16,
    /// For the log.
    pub why: String,
}

fn err(status: u16, why: impl Into<String>) -> WireError {
    WireError { status, why: why.into() }
}

/// The length of the head in `buf` (through the blank line), once it has arrived. Accepts
/// bare LF line ends as RFC 9112 allows.
pub fn head_len(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let rest = buf.get(nl + 1..)?;
        if rest.first() == Some(&b'\n') {
            return Some(nl + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

/// Parses a complete head (as delimited by [`head_len`]).
pub fn parse(head: &[u8]) -> Result<WireRequest, WireError> {
    let text = std::str::from_utf8(head).map_err(|_| err(400, "request head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    // RFC 9112 §2.2: ignore at least one empty line before the request line.
    let mut line = lines.next().unwrap_or("");
    if line.is_empty() {
        line = lines.next().unwrap_or("");
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(err(400, "malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(err(400, "malformed method"));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/") => return Err(err(505, format!("version {v:?}"))),
        _ => return Err(err(400, "malformed request line")),
    };
    if target.len() > 8192 {
        return Err(err(414, "request target too long"));
    }
    let (path, query) = split_target(target)?;

    let mut request = HttpRequest {
        method: method.to_string(),
        target: Target::Url(path.to_string()),
        query: query.to_string(),
        range: None,
        if_none_match: None,
        if_modified_since: None,
        if_range: None,
    };
    let mut connection = String::new();
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = String::new();
    let mut host_seen = false;
    let mut count = 0;
    for line in lines {
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > MAX_FIELDS {
            return Err(err(431, "too many header fields"));
        }
        if line.starts_with([' ', '\t']) {
            return Err(err(400, "obsolete line folding"));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| err(400, "header field without ':'"))?;
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(err(400, "malformed header field name"));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(err(400, "control character in header field"));
        }
        let slot = match name.to_ascii_lowercase().as_str() {
            "range" => &mut request.range,
            "if-none-match" => &mut request.if_none_match,
            "if-modified-since" => &mut request.if_modified_since,
            "if-range" => &mut request.if_range,
            "connection" => {
                connection.push_str(&value.to_ascii_lowercase());
                connection.push(',');
                continue;
            }
            "host" => {
                if host_seen {
                    return Err(err(400, "two Host fields"));
                }
                host_seen = true;
                continue;
            }
            "content-length" => {
                // `5, 5` and repeated equal fields are one length (RFC 9110 §8.6); anything
                // else that is not one decimal number is a framing error.
                for item in value.split(',').map(|v| v.trim_matches([' ', '\t'])) {
                    let n = parse_length(item).ok_or_else(|| err(400, "invalid Content-Length"))?;
                    if content_length.is_some_and(|c| c != n) {
                        return Err(err(400, "two different Content-Length values"));
                    }
                    content_length = Some(n);
                }
                continue;
            }
            "transfer-encoding" => {
                transfer_encoding.push_str(&value.to_ascii_lowercase());
                transfer_encoding.push(',');
                continue;
            }
            _ => continue,
        };
        // A repeated field: keep the first; for Range, two means "ignore" (no range).
        if slot.is_some() {
            if name.eq_ignore_ascii_case("range") {
                request.range = Some(String::from("invalid"));
            }
            continue;
        }
        *slot = Some(value.to_string());
    }
    if !http10 && !host_seen {
        return Err(err(400, "HTTP/1.1 request without Host"));
    }
    let chunked = !transfer_encoding.is_empty();
    if chunked {
        if content_length.is_some() {
            return Err(err(400, "both Content-Length and Transfer-Encoding"));
        }
        let last = transfer_encoding.split(',').map(str::trim).rfind(|c| !c.is_empty());
        if last != Some("chunked") {
            return Err(err(400, "Transfer-Encoding does not end in chunked"));
        }
    }
    let has_body = chunked || content_length.is_some_and(|n| n > 0);
    let tokens: Vec<&str> = connection.split(',').map(str::trim).collect();
    let keep_alive = !has_body && if http10 { tokens.contains(&"keep-alive") } else { !tokens.contains(&"close") };
    Ok(WireRequest { request, http10, keep_alive })
}

/// Splits origin-form (`/p?q`) or absolute-form (`http://host/p?q`) into path and query.
fn split_target(target: &str) -> Result<(&str, &str), WireError> {
    if target.contains('#') || target.bytes().any(|b| b <= 0x20 || b >= 0x7f) {
        return Err(err(400, "malformed request target"));
    }
    let rest = if target.starts_with('/') {
        target
    } else {
        let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
        let after = if lower.starts_with("http://") {
            &target[7..]
        } else if lower.starts_with("https://") {
            &target[8..]
        } else {
            return Err(err(400, "request target is neither a path nor an absolute URL"));
        };
        match after.find(['/', '?']) {
            Some(i) if after.as_bytes().get(i) == Some(&b'/') => &after[i..],
            _ => return Err(err(400, "absolute URL without a path")),
        }
    };
    Ok(rest.split_once('?').unwrap_or((rest, "")))
}

/// A `Content-Length` value: decimal digits only, no sign, no overflow.
fn parse_length(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_head_end() {
        assert_eq!(head_len(b"GET / HTTP/1.0\r\n\r\nrest"), Some(18));
        assert_eq!(head_len(b"GET / HTTP/1.0\n\nrest"), Some(16));
        assert_eq!(head_len(b"GET / HTTP/1.0\r\nA: b\r\n"), None);
        assert_eq!(head_len(b""), None);
    }

    #[test]
    fn parses_requests() {
        let w =
            parse(b"GET /a%20b.mp4?start=3&x HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\nIf-None-Match: \"e\"\r\n\r\n")
                .unwrap();
        assert_eq!(w.request.method, "GET");
        assert_eq!(w.request.target, Target::Url("/a%20b.mp4".into()));
        assert_eq!(w.request.query, "start=3&x");
        assert_eq!(w.request.range.as_deref(), Some("bytes=0-9"));
        assert_eq!(w.request.if_none_match.as_deref(), Some("\"e\""));
        assert!(w.keep_alive && !w.http10);
        let w = parse(b"HEAD http://h:8/v.flv HTTP/1.0\n\n").unwrap();
        assert_eq!(w.request.target, Target::Url("/v.flv".into()));
        assert!(!w.keep_alive && w.http10);
        let w = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(w.keep_alive);
        let w = parse(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!w.keep_alive);
        let w = parse(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert!(!w.keep_alive);
        let w = parse(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(w.keep_alive, "equal repeated lengths are one length, and 0 is no body");
        let w = parse(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 7, 7\r\n\r\n").unwrap();
        assert!(!w.keep_alive);
        let w = parse(b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n").unwrap();
        assert!(!w.keep_alive, "a chunked body is not read: answer and close");
        let w = parse(b"GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n").unwrap();
        assert_eq!(w.request.range.as_deref(), Some("invalid"));
    }

    #[test]
    fn refuses_malformed_heads() {
        for (bad, status) in [
            (&b"GET / HTTP/2.0\r\n\r\n"[..], 505),
            (b"GET /  HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400),
            (b"GET /a#b HTTP/1.0\r\n\r\n", 400),
            (b"GET * HTTP/1.0\r\n\r\n", 400),
            (b"G(T / HTTP/1.0\r\n\r\n", 400),
            (b"GET http://host HTTP/1.0\r\n\r\n", 400),
            (b"\xff / HTTP/1.0\r\n\r\n", 400),
            (b"GET / HTTP/1.0\r\nA: \x01\r\n\r\n", 400),
            (b"", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        ] {
            assert_eq!(parse(bad).map_err(|e| e.status), Err(status), "{:?}", String::from_utf8_lossy(bad));
        }
        let many: Vec<u8> = [&b"GET / HTTP/1.0\r\n"[..], &b"A: b\r\n".repeat(101), b"\r\n"].concat();
        assert_eq!(parse(&many).map_err(|e| e.status), Err(431));
    }
}
