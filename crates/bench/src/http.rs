//! The bench's minimal HTTP/1.1 client protocol: building a GET request and parsing a
//! response head (status, `Content-Length`, `X-Content-Duration`, keep-alive). Pure byte
//! handling with no I/O, so it is tested on its own; the viewer loop owns the socket.

/// Largest response head accepted; anything longer is a protocol error.
pub const MAX_HEAD: usize = 16 * 1024;

/// The request bytes for `GET path` on a keep-alive connection.
pub fn request(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: loomiere-bench\r\nAccept: */*\r\n\r\n").into_bytes()
}

/// What the bench needs from a response head.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// `Content-Length`, when present and valid.
    pub content_length: Option<u64>,
    /// `X-Content-Duration` in seconds, when present, finite and positive.
    pub duration: Option<f64>,
    /// True when the connection may carry another request after this body.
    pub keep_alive: bool,
    /// True for `Transfer-Encoding: chunked` (counted raw, read to end of connection).
    pub chunked: bool,
}

/// Why a response head could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// More than [`MAX_HEAD`] bytes without the blank line.
    TooLong,
    /// Not an HTTP/1.x status line or a malformed header.
    Malformed,
}

/// Collects a response head from the chunks a socket delivers, keeping only the head bytes
/// (never the body that follows in the same read), at most [`MAX_HEAD`] of them.
#[derive(Default)]
pub struct HeadScanner {
    head: Vec<u8>,
    /// How much of `\r\n\r\n` has been matched so far.
    matched: u8,
}

impl HeadScanner {
    /// Feeds one chunk. Returns `Ok(Some(used))` when the head is complete, `used` being the
    /// bytes of `chunk` that belonged to it (the rest is body); `Ok(None)` when more is needed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Option<usize>, HeadError> {
        for (i, &b) in chunk.iter().enumerate() {
            self.matched = match (self.matched, b) {
                (0 | 2, b'\r') => self.matched + 1,
                (1 | 3, b'\n') => self.matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if self.matched == 4 {
                let used = i + 1;
                if self.head.len() + used > MAX_HEAD {
                    return Err(HeadError::TooLong);
                }
                self.head.extend_from_slice(&chunk[..used]);
                return Ok(Some(used));
            }
        }
        if self.head.len() + chunk.len() >= MAX_HEAD {
            return Err(HeadError::TooLong);
        }
        self.head.extend_from_slice(chunk);
        Ok(None)
    }

    /// True before any byte arrived.
    pub fn is_empty(&self) -> bool {
        self.head.is_empty()
    }

    /// The collected head (complete once [`HeadScanner::feed`] returned `Some`).
    pub fn bytes(&self) -> &[u8] {
        &self.head
    }
}

/// Parses a complete head (as collected by [`HeadScanner`]).
pub fn parse_head(head: &[u8]) -> Result<Head, HeadError> {
    let text = std::str::from_utf8(head).map_err(|_| HeadError::Malformed)?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or(HeadError::Malformed)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err(HeadError::Malformed),
    };
    let code = parts.next().unwrap_or("");
    if code.len() != 3 {
        return Err(HeadError::Malformed);
    }
    let status: u16 = code.parse().map_err(|_| HeadError::Malformed)?;
    if !(100..=599).contains(&status) {
        return Err(HeadError::Malformed);
    }
    let mut out = Head { status, content_length: None, duration: None, keep_alive: minor == 1, chunked: false };
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(HeadError::Malformed)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value.parse().map_err(|_| HeadError::Malformed)?;
            if out.content_length.is_some_and(|old| old != n) {
                return Err(HeadError::Malformed);
            }
            out.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("x-content-duration") {
            out.duration = value.parse::<f64>().ok().filter(|d| d.is_finite() && *d > 0.0);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    out.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    out.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            out.chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    if out.chunked {
        // Framed by chunks we do not decode: count bytes until the server closes.
        out.content_length = None;
    }
    if out.content_length.is_none() {
        out.keep_alive = false;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_streaming_head() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Content-Duration: 12.5\r\n\r\nBODY";
        // Delivered in awkward pieces: the blank line split across chunks.
        let mut sc = HeadScanner::default();
        assert_eq!(sc.feed(&raw[..10]), Ok(None));
        assert_eq!(sc.feed(&raw[10..raw.len() - 6]), Ok(None));
        assert_eq!(sc.feed(&raw[raw.len() - 6..]), Ok(Some(2)));
        let h = parse_head(sc.bytes()).unwrap();
        assert_eq!(
            h,
            Head { status: 200, content_length: Some(1000), duration: Some(12.5), keep_alive: true, chunked: false }
        );
    }

    #[test]
    fn close_chunked_and_http10() {
        let h = parse_head(b"HTTP/1.1 206 Partial\r\ncontent-length: 5\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        let h = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n").unwrap();
        assert!(h.chunked && h.content_length.is_none() && !h.keep_alive);
        let h = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        let h = parse_head(b"HTTP/1.1 200 OK\r\nX-Content-Duration: nan\r\n\r\n").unwrap();
        assert_eq!(h.duration, None);
    }

    #[test]
    fn rejects_garbage() {
        for raw in [
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 999 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert_eq!(parse_head(raw), Err(HeadError::Malformed), "{:?}", String::from_utf8_lossy(raw));
        }
        assert_eq!(HeadScanner::default().feed(&[b'a'; MAX_HEAD]), Err(HeadError::TooLong));
        let mut sc = HeadScanner::default();
        assert_eq!(sc.feed(b"HTTP/1.1 200 OK\r\n\r"), Ok(None));
        assert_eq!(sc.feed(b"\r\n\r\n"), Ok(Some(4)), "a stray CR restarts the match");
    }
}
