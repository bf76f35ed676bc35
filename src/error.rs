//! The library's one error type. Every failure a front end must report is one of these
//! kinds, so the CLI can print a useful message and the HTTP layers can pick a status code
//! without looking inside strings. The library never panics on bad input; it returns these.

use std::io;
use thiserror::Error;

/// What went wrong, sorted by who is to blame (the request, the file, or the machine).
#[derive(Debug, Error)]
pub enum Error {
    /// The request cannot be satisfied as asked: start beyond the duration, start ≥ end,
    /// negative or non-numeric values, a byte offset that is not a tag start… (HTTP 400).
    #[error("bad request: {0}")]
    BadRequest(String),

    /// The file is well formed but uses a feature loomiere does not handle (HTTP 415/500),
    /// e.g. fragmented MP4.
    #[error("not supported: {0}")]
    Unsupported(String),

    /// The file is damaged or lies about itself; `offset` is where the fault was found.
    #[error("corrupt file at offset {offset}: {what}")]
    Corrupt { offset: u64, what: String },

    /// The thing asked for does not exist, e.g. a segment number past the last (HTTP 404).
    #[error("not found: {0}")]
    NotFound(String),

    /// The file is beyond a limit the configuration sets (HTTP 500), e.g. a `moov` larger
    /// than `max_moov_bytes`: refused before any work that grows with it.
    #[error("over a configured limit: {0}")]
    OverLimit(String),

    /// Reading the source or writing the output failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
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
            Error::Corrupt { .. } | Error::OverLimit(_) => 500,
            Error::Io { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => 404,
                io::ErrorKind::PermissionDenied => 403,
                _ => 500,
            },
        }
    }
}
