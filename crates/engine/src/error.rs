//! The library's one error type. Every failure a front end must report is one of these
//! kinds, so the CLI can print a useful message and the HTTP layers can pick a status code
//! without looking inside strings. The library never panics on bad input; it returns these.
//! Messages are sentences for people: the kind picks the HTTP status, it is never printed
//! ("bad request: …"), and I/O errors read without their `(os error N)` tail.

use std::io;
use thiserror::Error;

/// What went wrong, sorted by who is to blame (the request, the file, or the machine).
#[derive(Debug, Error)]
pub enum Error {
    /// The request cannot be satisfied as asked: start beyond the duration, start ≥ end,
    /// negative or non-numeric values, a byte offset that is not a tag start… (HTTP 400).
    #[error("{0}")]
    BadRequest(String),

    /// The file is well formed but uses a feature loomiere does not handle (HTTP 415/500),
    /// e.g. an MP4 whose chunk offsets are out of file order.
    #[error("{0}")]
    Unsupported(String),

    /// The file is damaged or lies about itself; `offset` is where the fault was found.
    #[error("corrupt file at offset {offset}: {what}")]
    Corrupt { offset: u64, what: String },

    /// The thing asked for does not exist, e.g. a segment number past the last (HTTP 404).
    #[error("not found: {0}")]
    NotFound(String),

    /// The file is beyond a limit the configuration sets (HTTP 500), e.g. a `moov` larger
    /// than `max_moov_bytes`: refused before any work that grows with it.
    #[error("{0}")]
    OverLimit(String),

    /// The configuration cannot be loaded (HTTP 500); the message names the file, and the
    /// line and column of a syntax error.
    #[error("{0}")]
    Config(String),

    /// Reading the source or writing the output failed.
    #[error("{context}: {}", plain_io(source))]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

/// An I/O error as a person reads it: `No such file or directory`, without std's
/// ` (os error 2)` tail.
pub fn plain_io(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}

/// Shorthand used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A corrupt-file error at `offset`.
    pub fn corrupt(offset: u64, what: impl Into<String>) -> Self {
        Error::Corrupt { offset, what: what.into() }
    }

    /// A bad-request error.
    pub fn bad_request(what: impl Into<String>) -> Self {
        Error::BadRequest(what.into())
    }

    /// An I/O error with a short description of what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// The HTTP status a server should answer with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::Unsupported(_) => 415,
            Error::NotFound(_) => 404,
            Error::Corrupt { .. } | Error::OverLimit(_) | Error::Config(_) => 500,
            Error::Io { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => 404,
                io::ErrorKind::PermissionDenied => 403,
                _ => 500,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_for_people() {
        let e = Error::bad_request("start 999 s is beyond the duration (60.000 s)");
        assert_eq!(e.to_string(), "start 999 s is beyond the duration (60.000 s)");
        assert_eq!(e.http_status(), 400);
        let e = Error::io("cannot open a.mp4", io::Error::from_raw_os_error(2));
        assert_eq!(e.to_string(), "cannot open a.mp4: No such file or directory");
        assert_eq!(e.http_status(), 404);
        assert_eq!(plain_io(&io::Error::other("x (y)")), "x (y)");
    }
}
