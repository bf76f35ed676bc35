//! The parts of one HTTP/1.x exchange that every driver shares — the blocking one for inetd
//! (`cgi::serve_inetd`) and the async one of `serve` — around the core's [`super::respond`]:
//! where a request head ends within the size limit ([`head_state`]), the answer to a head
//! that never completes ([`HeadFailure`]: 408, 431, 400), whether the connection is kept
//! ([`keep_alive`]) and the error-log line of an answer ([`log_answer`]). A driver only moves
//! bytes: it reads until [`head_state`] says, waits within `header_timeout_secs`, and writes.

use super::{wire, Response};
use crate::config::Config;

/// Where a buffered request head stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadState {
    /// A complete head of this many bytes is at the front of the buffer.
    Complete(usize),
    /// No blank line yet, and room for more.
    Incomplete,
    /// Over `max_header_bytes` without the blank line, or a head longer than that.
    TooLarge,
}

/// Where the head at the front of `buf` stands under a limit of `max` bytes.
pub fn head_state(buf: &[u8], max: usize) -> HeadState {
    match wire::head_len(buf) {
        Some(n) if n > max => HeadState::TooLarge,
        Some(n) => HeadState::Complete(n),
        None if buf.len() >= max => HeadState::TooLarge,
        None => HeadState::Incomplete,
    }
}

/// Why no request head could be had from a client that sent something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadFailure {
    /// A partial head was not completed within `header_timeout_secs` (slowloris).
    TimedOut,
    /// More than `max_header_bytes`.
    TooLarge,
    /// The connection closed inside the head.
    Truncated,
}

impl HeadFailure {
    /// The status answered.
    pub fn status(self) -> u16 {
        match self {
            HeadFailure::TimedOut => 408,
            HeadFailure::TooLarge => 431,
            HeadFailure::Truncated => 400,
        }
    }

    /// The reason given, in the body and the log.
    pub fn why(self) -> &'static str {
        match self {
            HeadFailure::TimedOut => "request head not received in time",
            HeadFailure::TooLarge => "request head too large",
            HeadFailure::Truncated => "the connection closed inside the request head",
        }
    }

    /// The answer (the connection is closed after it).
    pub fn response(self) -> Response {
        Response::error(self.status(), Some(self.why().into()))
    }
}

/// Whether the connection stays open after answering `wire`'s request: the client asked
/// for it (HTTP/1.1 by default, HTTP/1.0 with `Connection: keep-alive`) and the server is
/// not stopping.
pub fn keep_alive(wire: &wire::WireRequest, stopping: bool) -> bool {
    wire.keep_alive && !stopping
}

/// Writes the error-log line of an answer that has one (refusals and failures say why).
pub fn log_answer(cfg: &Config, resp: &Response, method: &str) {
    if let Some(detail) = &resp.log {
        cfg.log(&format!("{} {method} {detail}", resp.status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_states() {
        assert_eq!(head_state(b"GET / HTTP/1.1\r\n\r\nrest", 64), HeadState::Complete(18));
        assert_eq!(head_state(b"GET / HTTP/1.1\r\n", 64), HeadState::Incomplete);
        assert_eq!(head_state(b"GET / HTTP/1.1\r\n", 16), HeadState::TooLarge);
        assert_eq!(head_state(b"GET / HTTP/1.1\r\n\r\n", 10), HeadState::TooLarge);
        assert_eq!(HeadFailure::TimedOut.response().status, 408);
        assert_eq!(HeadFailure::TooLarge.response().status, 431);
    }
}
