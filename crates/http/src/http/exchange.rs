//! The parts of one HTTP/1.x exchange that every driver shares — the blocking one for inetd
//! (`cgi::serve_inetd`) and the async one of `serve` — around the core's [`super::respond`]:
//! where a request head ends within the size limit ([`head_state`]), the answer to a head
//! that never completes ([`HeadFailure`]: 408, 431, 400), whether the connection is kept
//! ([`keep_alive`]), a HEAD answer's body let go ([`strip_head_body`]), how the body goes
//! out ([`delivery`]: the head and a text body in one write, then a plan's range, paced as
//! configured) and the log lines of an answer ([`log_answer`], [`log_cut_short`]). A driver
//! only moves bytes: it reads until [`head_state`] says, waits within `header_timeout_secs`,
//! writes the delivery's prefix and sends its plan range with its own loop over
//! `sink::write_step` (blocking: `throttle::send_paced`; async: `serve::send::send_plan`).

use super::{wire, Body, HttpRequest, Response};
use crate::config::Config;
use crate::plan::Plan;
use crate::throttle::Pacer;
use std::ops::Range;

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

/// Lets go of the body of an answer to `HEAD` (its headers still tell the size). A process
/// that answers once and exits (`one_shot`, the CGI) forgets the plan rather than dropping
/// it: the kernel takes its mappings back at exit, faster than unmapping piece by piece.
#[inline]
pub fn strip_head_body(req: &HttpRequest, resp: &mut Response, one_shot: bool) {
    if req.method != "HEAD" {
        return;
    }
    let body = std::mem::replace(&mut resp.body, Body::Empty);
    if one_shot {
        std::mem::forget(body);
    }
}

/// What a driver writes for an answer: `prefix` first (the head, and a text body after it),
/// then, for a plan body, output bytes `range` of `plan` under `pacer`.
pub struct Delivery<'a> {
    pub prefix: Vec<u8>,
    /// The body bytes inside `prefix` (a text body's length).
    pub prefix_body: u64,
    pub plan: Option<(&'a Plan, Range<u64>, Option<Pacer>)>,
}

/// The delivery of `resp` after its serialised `head`; `cfg` (absent when the configuration
/// could not be loaded, or for a refused head) sets the throttle.
#[inline]
pub fn delivery<'a>(resp: &'a Response, head: String, cfg: Option<&Config>) -> Delivery<'a> {
    let mut prefix = head.into_bytes();
    match &resp.body {
        Body::Empty => Delivery { prefix, prefix_body: 0, plan: None },
        Body::Text(t) => {
            prefix.extend_from_slice(t.as_bytes());
            Delivery { prefix, prefix_body: t.len() as u64, plan: None }
        }
        Body::Plan { plan, range } => {
            let pacer = cfg.and_then(|c| crate::throttle::pacer_for(c, plan, range));
            Delivery { prefix, prefix_body: 0, plan: Some((plan, range.clone(), pacer)) }
        }
    }
}

/// Writes the error-log line of an answer that has one (refusals and failures say why).
pub fn log_answer(cfg: &Config, resp: &Response, method: &str) {
    if let Some(detail) = &resp.log {
        cfg.log(&format!("{} {method} {detail}", resp.status));
    }
}

/// Writes the error-log line of an answer whose body stopped early because its source could
/// no longer give the announced bytes (truncated or overwritten while sent).
pub fn log_cut_short(cfg: &Config, status: u16, request_line: &str, bytes: u64, e: &std::io::Error) {
    cfg.log(&format!("{status} \"{request_line}\": answer cut short after {bytes} body bytes, connection closed: {e}"));
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

    #[test]
    fn deliveries() {
        let text = Response::error(404, Some("gone".into()));
        let d = delivery(&text, "HEAD\r\n\r\n".into(), None);
        assert!(d.plan.is_none());
        assert_eq!(d.prefix_body, d.prefix.len() as u64 - 8);
        let req = HttpRequest {
            method: "HEAD".into(),
            target: super::super::path::Target::Decoded("/".into()),
            query: String::new(),
            range: None,
            if_none_match: None,
            if_modified_since: None,
            if_range: None,
        };
        let mut head = Response::error(404, Some("gone".into()));
        strip_head_body(&req, &mut head, false);
        let d = delivery(&head, "H".into(), None);
        assert_eq!((d.prefix, d.prefix_body), (b"H".to_vec(), 0));
    }
}
