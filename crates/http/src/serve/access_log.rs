//! The access log: one line per request, written to the configured log target (stderr — for
//! journald — or a file kept open and reopened on SIGUSR1, for logrotate), in the
//! configured `access_log_format`:
//! - `common` (default): the common log format, then the seconds the answer took —
//!   `127.0.0.1 - - [24/Nov/2026:16:50:00 +0000] "GET /a.mp4?start=10 HTTP/1.1" 200 123456 0.153`;
//! - `combined`: nginx's combined format (referer, user agent), then the seconds taken, the
//!   seconds to the first byte, the seek asked and the seek served —
//!   `... 200 123456 "-" "curl/8.5.0" 0.153 0.002 asked=10.. served=9.960..60.000`;
//! - `json`: one object per line with all of these (`time` in RFC 3339).
//!
//! An answer cut short because its file was truncated or overwritten while it was sent keeps
//! its status and the byte count actually sent, and ends with the word `cut-short`
//! (`... 200 81920 2.410 cut-short`; `"cut_short":true` in JSON); the error line next to it
//! says why.

use crate::config::{AccessLogFormat, LogTarget};
use crate::http::conditional::http_date;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Writes access lines; reopens the file when the configured path changes.
#[derive(Default)]
pub struct AccessLog {
    file: Mutex<Option<(PathBuf, std::fs::File)>>,
}

/// One finished request.
pub struct Entry<'a> {
    pub peer: SocketAddr,
    pub when: SystemTime,
    /// The request line as received (already sanitised for the log).
    pub request_line: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub took: Duration,
    /// The body stopped before its announced length (the file changed under it).
    pub cut_short: bool,
    /// `Referer` and `User-Agent`, sanitised.
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    /// From the complete head to the first byte of the answer written.
    pub first_byte: Option<Duration>,
    /// The seek asked: `start=` and `end=` as given.
    pub asked: Option<(Option<String>, Option<String>)>,
    /// The seek served: (start, end) in seconds of the source, when a seek was planned.
    pub served: Option<(f64, f64)>,
}

impl Entry<'_> {
    /// An entry with no optional fields (refused heads).
    pub fn bare(peer: SocketAddr, when: SystemTime, request_line: &str, status: u16, bytes: u64) -> Entry<'_> {
        Entry {
            peer,
            when,
            request_line,
            status,
            bytes,
            took: Duration::ZERO,
            cut_short: false,
            referer: None,
            user_agent: None,
            first_byte: None,
            asked: None,
            served: None,
        }
    }

    fn asked_text(&self) -> String {
        match &self.asked {
            None => "-".into(),
            Some((s, e)) => format!("{}..{}", s.as_deref().unwrap_or(""), e.as_deref().unwrap_or("")),
        }
    }

    fn served_text(&self) -> String {
        match self.served {
            None => "-".into(),
            Some((s, e)) => format!("{s:.3}..{e:.3}"),
        }
    }

    /// The line in `format`, with its newline.
    pub fn line(&self, format: AccessLogFormat) -> String {
        let quoted = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let clf = format!(
            "{} - - [{}] \"{}\" {} {}",
            self.peer.ip(),
            clf_time(self.when),
            self.request_line,
            self.status,
            self.bytes
        );
        let cut = if self.cut_short { " cut-short" } else { "" };
        match format {
            AccessLogFormat::Common => format!("{clf} {:.3}{cut}\n", self.took.as_secs_f64()),
            AccessLogFormat::Combined => format!(
                "{clf} \"{}\" \"{}\" {:.3} {} asked={} served={}{cut}\n",
                quoted(&self.referer),
                quoted(&self.user_agent),
                self.took.as_secs_f64(),
                self.first_byte.map_or("-".into(), |d| format!("{:.3}", d.as_secs_f64())),
                self.asked_text(),
                self.served_text()
            ),
            AccessLogFormat::Json => {
                let v = serde_json::json!({
                    "time": crate::http::conditional::rfc3339(self.when),
                    "remote_addr": self.peer.ip().to_string(),
                    "request": self.request_line,
                    "status": self.status,
                    "bytes": self.bytes,
                    "duration": round6(self.took.as_secs_f64()),
                    "first_byte": self.first_byte.map(|d| round6(d.as_secs_f64())),
                    "referer": self.referer,
                    "user_agent": self.user_agent,
                    "seek_asked": self.asked.as_ref().map(|(s, e)| serde_json::json!({"start": s, "end": e})),
                    "seek_served": self.served.map(|(s, e)| serde_json::json!({"start": round6(s), "end": round6(e)})),
                    "cut_short": self.cut_short,
                });
                format!("{v}\n")
            }
        }
    }
}

/// Seconds to the microsecond (JSON numbers without float noise).
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The value of header `name` (any case) in a raw request head, sanitised for the log.
pub fn header(head: &[u8], name: &str) -> Option<String> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let (n, v) = line.split_at(colon);
        if !n.eq_ignore_ascii_case(name.as_bytes()) {
            return None;
        }
        let v = v.get(1..).unwrap_or(&[]);
        let v = v.strip_suffix(b"\r").unwrap_or(v);
        Some(sanitise(v.trim_ascii()))
    })
}

/// `06/Nov/1994:08:49:37 +0000` from an IMF-fixdate.
fn clf_time(t: SystemTime) -> String {
    let d = http_date(t); // "Sun, 06 Nov 1994 08:49:37 GMT"
    match (d.get(5..7), d.get(8..11), d.get(12..16), d.get(17..25)) {
        (Some(day), Some(mon), Some(year), Some(time)) => format!("{day}/{mon}/{year}:{time} +0000"),
        _ => d,
    }
}

/// The request line made safe for a log line: printable ASCII, quotes escaped, bounded.
pub fn sanitise(line: &[u8]) -> String {
    let mut s = String::new();
    for &b in line.iter().take(1024) {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

impl AccessLog {
    /// Writes `e` to `target` in `format`; failures to log are ignored (a full disk must not
    /// stop streams).
    pub fn write(&self, target: &LogTarget, format: AccessLogFormat, e: &Entry<'_>) {
        let line = e.line(format);
        match target {
            LogTarget::Off => {}
            LogTarget::Stderr => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            LogTarget::File(path) => {
                let Ok(mut slot) = self.file.lock() else { return };
                if slot.as_ref().is_none_or(|(p, _)| p != path) {
                    *slot = std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(path)
                        .ok()
                        .map(|f| (path.clone(), f));
                }
                match slot.as_mut() {
                    Some((_, f)) => {
                        let _ = f.write_all(line.as_bytes());
                    }
                    None => {
                        let _ = std::io::stderr().write_all(line.as_bytes());
                    }
                }
            }
        }
    }

    /// Closes the log file so that the next line opens its path afresh (SIGUSR1, after
    /// logrotate moved it away).
    pub fn reopen(&self) {
        if let Ok(mut slot) = self.file.lock() {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(clf_time(t), "06/Nov/1994:08:49:37 +0000");
        assert_eq!(sanitise(b"GET /a\"b\x01 HTTP/1.1"), "GET /a\\\"b\\x01 HTTP/1.1");
        let head = b"GET / HTTP/1.1\r\nHost: x\r\nuser-agent:  curl/8 \r\n\r\n";
        assert_eq!(header(head, "User-Agent").as_deref(), Some("curl/8"));
        assert_eq!(header(head, "Referer"), None);
    }

    #[test]
    fn formats_of_lines() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let mut e = Entry::bare("127.0.0.1:1".parse().unwrap(), t, "GET /a.mp4?start=10 HTTP/1.1", 200, 42);
        e.took = Duration::from_millis(153);
        e.first_byte = Some(Duration::from_millis(2));
        e.user_agent = Some("curl/8".into());
        e.asked = Some((Some("10".into()), None));
        e.served = Some((9.96, 60.0));
        let clf = "127.0.0.1 - - [06/Nov/1994:08:49:37 +0000] \"GET /a.mp4?start=10 HTTP/1.1\" 200 42";
        assert_eq!(e.line(AccessLogFormat::Common), format!("{clf} 0.153\n"));
        assert_eq!(
            e.line(AccessLogFormat::Combined),
            format!("{clf} \"-\" \"curl/8\" 0.153 0.002 asked=10.. served=9.960..60.000\n")
        );
        let j: serde_json::Value = serde_json::from_str(&e.line(AccessLogFormat::Json)).unwrap();
        assert_eq!(j["time"], "1994-11-06T08:49:37.000Z");
        assert_eq!(j["status"], 200);
        assert_eq!(j["first_byte"], 0.002);
        assert_eq!(j["seek_asked"]["start"], "10");
        assert_eq!(j["seek_served"]["start"], 9.96);
        assert_eq!(j["cut_short"], false);
    }
}
