//! What a viewer asks for: where to start, where to end, and how exactly. Parsing of the
//! user's words for positions ("30.5", "1:02:03.5", "30s", "123456b") lives here, bounded and
//! strict, so every front end (CLI, CGI, server) accepts the same syntax and rejects the
//! same garbage. It knows nothing of containers or HTTP.

use crate::{Error, Result};

/// A position in a media file: a time, or (FLV, nginx-compatible) a byte offset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Position {
    /// Seconds from the start of the presentation (finite, ≥ 0).
    Seconds(f64),
    /// A byte offset in the source file.
    Byte(u64),
}

/// How a bare number (no `s` or `b` suffix) is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareUnit {
    /// "30.5" means seconds (MP4 everywhere, the CLI everywhere).
    Seconds,
    /// "123456" means a byte offset (FLV over HTTP, as nginx and the original did).
    Bytes,
}

/// The longest position text accepted; anything longer is garbage, not a position.
const MAX_POSITION_LEN: usize = 32;
/// The largest time accepted (about 31 years), far beyond any media, far from overflow.
const MAX_SECONDS: f64 = 1e9;

impl Position {
    /// Parses `30.5`, `30.5s`, `1:02:03.25`, `02:03` or `123456b`; `bare` decides what a bare
    /// number means. Rejects negative, non-finite, over-long and malformed values.
    pub fn parse(text: &str, bare: BareUnit) -> Result<Position> {
        let t = text.trim();
        if t.is_empty() {
            return Err(Error::bad_request("the position is empty: give a time in seconds (e.g. 30.5)"));
        }
        if t.len() > MAX_POSITION_LEN {
            return Err(Error::bad_request(format!(
                "position {text:?} is too long (at most {MAX_POSITION_LEN} characters)"
            )));
        }
        if let Some(num) = t.strip_suffix(['b', 'B']) {
            return parse_bytes(num, text).map(Position::Byte);
        }
        if let Some(num) = t.strip_suffix('s') {
            return parse_seconds(num, text).map(Position::Seconds);
        }
        if t.contains(':') {
            return parse_clock(t, text).map(Position::Seconds);
        }
        match bare {
            BareUnit::Seconds => parse_seconds(t, text).map(Position::Seconds),
            BareUnit::Bytes => parse_bytes(t, text).map(Position::Byte),
        }
    }

    /// The position as seconds, if it is a time.
    pub fn seconds(self) -> Option<f64> {
        match self {
            Position::Seconds(s) => Some(s),
            Position::Byte(_) => None,
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Seconds(s) => write!(f, "{s}s"),
            Position::Byte(b) => write!(f, "{b}b"),
        }
    }
}

fn parse_seconds(num: &str, orig: &str) -> Result<f64> {
    // Only plain decimal: no exponents, no "inf"/"nan", no signs.
    if num.is_empty()
        || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || num.bytes().filter(|&b| b == b'.').count() > 1
        || num == "."
    {
        return Err(Error::bad_request(format!("{orig:?} is not a time in seconds (want e.g. 30.5)")));
    }
    let v: f64 = num.parse().map_err(|_| Error::bad_request(format!("{orig:?} is not a number")))?;
    if !(0.0..=MAX_SECONDS).contains(&v) {
        return Err(Error::bad_request(format!("{orig:?} is out of range")));
    }
    Ok(v)
}

fn parse_bytes(num: &str, orig: &str) -> Result<u64> {
    if num.is_empty() || num.len() > 20 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::bad_request(format!("{orig:?} is not a byte offset (want e.g. 123456)")));
    }
    num.parse().map_err(|_| Error::bad_request(format!("{orig:?} is out of range")))
}

fn parse_clock(t: &str, orig: &str) -> Result<f64> {
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() > 3 {
        return Err(Error::bad_request(format!("{orig:?} is not a time (want [[hh:]mm:]ss[.frac])")));
    }
    let mut total = 0.0;
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let ok = !p.is_empty() && (last || p.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(Error::bad_request(format!("{orig:?} is not a time (want [[hh:]mm:]ss[.frac])")));
        }
        let v = parse_seconds(p, orig)?;
        if i > 0 && v >= 60.0 {
            return Err(Error::bad_request(format!("{orig:?}: minutes and seconds must be below 60")));
        }
        total = total * 60.0 + v;
    }
    if total > MAX_SECONDS {
        return Err(Error::bad_request(format!("{orig:?} is out of range")));
    }
    Ok(total)
}

/// A request for part of a media file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    /// Where to start; `None` is the beginning.
    pub start: Option<Position>,
    /// Where to end; `None` is the end of the file.
    pub end: Option<Position>,
    /// MP4: hide the frames between the keyframe and `start` with an edit list, so playback
    /// begins exactly at `start` (nginx's `mp4_start_key_frame`).
    pub exact: bool,
    /// MP4: always write 64-bit chunk offsets (`co64`), even when 32 bits would do.
    pub force_co64: bool,
}

impl Request {
    /// True when the request asks for the file as it is.
    pub fn is_whole(&self) -> bool {
        matches!(self.start, None | Some(Position::Seconds(0.0)) | Some(Position::Byte(0))) && self.end.is_none()
    }
}

impl Position {
    /// This position in seconds for an MP4 (`what` names it in the message): a byte offset
    /// is an FLV position and a bad request here.
    pub fn mp4_seconds(p: Option<Position>, what: &str) -> Result<Option<f64>> {
        match p {
            None => Ok(None),
            Some(Position::Seconds(s)) => Ok(Some(s)),
            Some(Position::Byte(_)) => Err(Error::bad_request(format!(
                "{what} as a byte offset is for FLV files; give MP4 positions in seconds"
            ))),
        }
    }
}

/// Checks a clip from `start` to `end` seconds against a medium lasting `duration` seconds,
/// with the messages every container gives: a start at or past the end, or an end not after
/// the start, is a bad request. Returns the end still to honour (`None` when it reaches the
/// end of the medium anyway).
pub fn clip_within(start: f64, end: Option<f64>, duration: f64) -> Result<Option<f64>> {
    if start > 0.0 && start >= duration {
        return Err(Error::bad_request(format!("start {start} s is beyond the duration ({duration:.3} s)")));
    }
    match end {
        Some(e) if e <= start => Err(Error::bad_request(format!("end {e} s is not after start {start} s"))),
        Some(e) if e >= duration => Ok(None),
        e => Ok(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_are_checked_against_the_duration() {
        assert_eq!(clip_within(0.0, None, 60.0).unwrap(), None);
        assert_eq!(clip_within(10.0, Some(20.0), 60.0).unwrap(), Some(20.0));
        assert_eq!(clip_within(10.0, Some(60.0), 60.0).unwrap(), None);
        assert!(clip_within(60.0, None, 60.0).unwrap_err().to_string().contains("beyond the duration (60.000 s)"));
        assert!(clip_within(10.0, Some(10.0), 60.0).unwrap_err().to_string().contains("not after start"));
        // A start of 0 on an empty medium is the whole (empty) medium, not an error.
        assert_eq!(clip_within(0.0, None, 0.0).unwrap(), None);
    }

    #[test]
    fn parses_good_positions() {
        use Position::*;
        let s = BareUnit::Seconds;
        assert_eq!(Position::parse("30.5", s).unwrap(), Seconds(30.5));
        assert_eq!(Position::parse("30", BareUnit::Bytes).unwrap(), Byte(30));
        assert_eq!(Position::parse("30s", BareUnit::Bytes).unwrap(), Seconds(30.0));
        assert_eq!(Position::parse("123b", s).unwrap(), Byte(123));
        assert_eq!(Position::parse("1:02:03.5", s).unwrap(), Seconds(3723.5));
        assert_eq!(Position::parse("02:03", s).unwrap(), Seconds(123.0));
        assert_eq!(Position::parse(".5", s).unwrap(), Seconds(0.5));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "-1",
            "1e3",
            "inf",
            "NaN",
            "1.2.3",
            ".",
            "abc",
            "1:60",
            "1:2:3:4",
            "::",
            "99999999999999999999999b",
            "+5",
            "0x10",
            "1 2",
            &"9".repeat(40),
        ] {
            assert!(Position::parse(bad, BareUnit::Seconds).is_err(), "{bad:?} accepted");
        }
        assert!(Position::parse("12.5", BareUnit::Bytes).is_err());
    }
}
