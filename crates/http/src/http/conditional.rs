//! Validators and conditional requests (RFC 9110 §8.8, §13): the `ETag` of an answer (which
//! varies with the source's length and mtime, the request's start/end/exact and the engine
//! version, since each gives different bytes), `Last-Modified`, HTTP dates, and the
//! `If-None-Match` / `If-Modified-Since` / `If-Range` evaluation. Pure functions, no I/O.

use crate::plan::PlanInfo;
use crate::request::Request;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The strong entity tag of an answer, quoted: `"…"` (24 hex digits). An entity tag only has
/// to differ between different bytes, so two FNV-1a hashes (different offset bases) of the
/// facts that decide the bytes do; a cryptographic hash would cost a CGI process its CPU
/// feature probe for nothing.
pub fn etag(info: &PlanInfo, plan_len: u64, req: &Request) -> String {
    etag_versioned(info, plan_len, req, None)
}

/// [`etag`] for a source with a version of its own beyond length and modification time (an
/// object's store ETag, `Version::Tag`), which decides the bytes too.
pub fn etag_versioned(info: &PlanInfo, plan_len: u64, req: &Request, version: Option<&str>) -> String {
    let mtime = info.modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
    // Strings are pushed, numbers formatted: the same text as one `format!`, without the
    // formatting machinery's string instances (code a CGI process would fault in).
    let mut facts = String::with_capacity(128);
    facts.push_str(concat!("loomiere ", env!("CARGO_PKG_VERSION"), "|"));
    let _ = write!(
        facts,
        "{}|{}|{:?}|{:?}|{}|{}|{}",
        info.source_len, mtime, req.start, req.end, req.exact, req.force_co64, plan_len
    );
    // Local files have no such version: their entity tags stay what they were.
    if let Some(v) = version {
        facts.push('|');
        facts.push_str(v);
    }
    let a = fnv1a(0xcbf2_9ce4_8422_2325, facts.as_bytes());
    let b = fnv1a(0x6c62_272e_07bb_0142, facts.as_bytes());
    format!("\"{a:016x}{:08x}\"", b >> 32)
}

/// 64-bit FNV-1a from offset basis `basis`.
fn fnv1a(basis: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(basis, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, as RFC 9110 §13.1.2
/// requires for this header).
pub fn none_match_hits(if_none_match: &str, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    if_none_match.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == ours)
}

/// Whether the resource is unchanged since an `If-Modified-Since` date. An unparsable date
/// or an unknown mtime is "modified" (send the body).
pub fn not_modified_since(if_modified_since: &str, modified: Option<SystemTime>) -> bool {
    let (Some(since), Some(m)) = (parse_http_date(if_modified_since), modified) else { return false };
    let secs = m.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    secs <= since
}

/// Whether an `If-Range` value still matches, so the `Range` header may be honoured. An
/// entity tag must match strongly; a date must equal `Last-Modified` exactly.
pub fn if_range_holds(if_range: &str, etag: &str, modified: Option<SystemTime>) -> bool {
    let v = if_range.trim();
    if v.starts_with('"') || v.starts_with("W/") {
        return v == etag;
    }
    match (parse_http_date(v), modified) {
        (Some(d), Some(m)) => m.duration_since(UNIX_EPOCH).map(|x| x.as_secs()).ok() == Some(d),
        _ => false,
    }
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Formats a time as an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. Times before 1970 are
/// written as the epoch.
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    // The names are pushed, the numbers formatted (see `etag_versioned`).
    let mut s = String::with_capacity(29);
    s.push_str(DAYS[(days % 7) as usize]);
    let _ = write!(s, ", {d:02} ");
    s.push_str(MONTHS[(m - 1) as usize]);
    let _ = write!(s, " {y:04} {:02}:{:02}:{:02} GMT", rem / 3600, rem / 60 % 60, rem % 60);
    s
}

/// Formats a time as RFC 3339 in UTC with milliseconds: `2026-11-30T08:20:27.123Z` (log
/// lines). Times before 1970 are written as the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(secs / 86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem / 60 % 60, rem % 60, since.subsec_millis())
}

/// Parses an IMF-fixdate into Unix seconds; other (obsolete) formats give `None`.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let b = s.trim().as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    let text = std::str::from_utf8(b).ok()?;
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let t = text.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let day = num(5..7)?;
    let month = MONTHS.iter().position(|m| text.get(8..11) == Some(*m))? as u64 + 1;
    let year = num(12..16)?;
    let (hh, mm, ss) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if b[7] != b' ' || b[11] != b' ' || b[16] != b' ' || b[19] != b':' || b[22] != b':' {
        return None;
    }
    if !(1970..=9999).contains(&year) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (year ≥ 1970).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// (year, month 1–12, day 1–31) for days since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        for s in [0u64, 951_782_400, 1_709_164_800, 4_102_444_800, 253_402_300_799] {
            let d = http_date(UNIX_EPOCH + Duration::from_secs(s));
            assert_eq!(parse_http_date(&d), Some(s), "{d}");
        }
        for bad in ["", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 06 Xyz 1994 08:49:37 GMT"] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMX"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 28:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 0é Nov 1994 08:49:37 GM"), None);
    }

    #[test]
    fn etag_varies_with_request_and_source() {
        let info = PlanInfo { source_len: 10, modified: Some(UNIX_EPOCH), ..PlanInfo::default() };
        let base = etag(&info, 10, &Request::default());
        let seeked = etag(&info, 10, &Request { start: Some(crate::Position::Seconds(3.0)), ..Request::default() });
        let touched = etag(
            &PlanInfo { modified: Some(UNIX_EPOCH + Duration::from_secs(1)), ..info.clone() },
            10,
            &Request::default(),
        );
        assert_ne!(base, seeked);
        assert_ne!(base, touched);
        assert_eq!(base, etag(&info, 10, &Request::default()));
        assert!(base.starts_with('"') && base.ends_with('"'));
        assert!(none_match_hits(&format!("\"x\", W/{base}"), &base));
        assert!(none_match_hits("*", &base));
        assert!(!none_match_hits("\"x\"", &base));
    }

    #[test]
    fn modified_since_and_if_range() {
        let m = Some(UNIX_EPOCH + Duration::from_millis(784_111_777_500));
        assert!(not_modified_since("Sun, 06 Nov 1994 08:49:37 GMT", m));
        assert!(!not_modified_since("Sun, 06 Nov 1994 08:49:36 GMT", m));
        assert!(!not_modified_since("garbage", m));
        assert!(if_range_holds("Sun, 06 Nov 1994 08:49:37 GMT", "\"a\"", m));
        assert!(if_range_holds("\"a\"", "\"a\"", m));
        assert!(!if_range_holds("W/\"a\"", "\"a\"", m));
        assert!(!if_range_holds("\"b\"", "\"a\"", m));
    }
}
