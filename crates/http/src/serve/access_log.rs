//! The access log: one line per request in the common log format, followed by the time the
//! answer took — `127.0.0.1 - - [24/Nov/2026:16:50:00 +0000] "GET /a.mp4?start=10 HTTP/1.1"
//! 200 123456 0.153` — written to the configured log target (stderr or a file kept open).
//! An answer cut short because its file was truncated or overwritten while it was sent keeps
//! its status and the byte count actually sent, and ends with the word `cut-short`
//! (`... 200 81920 2.410 cut-short`); the error line next to it says why.

use crate::config::LogTarget;
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
    /// Writes `e` to `target`; failures to log are ignored (a full disk must not stop
    /// streams).
    pub fn write(&self, target: &LogTarget, e: &Entry<'_>) {
        let line = format!(
            "{} - - [{}] \"{}\" {} {} {:.3}{}\n",
            e.peer.ip(),
            clf_time(e.when),
            e.request_line,
            e.status,
            e.bytes,
            e.took.as_secs_f64(),
            if e.cut_short { " cut-short" } else { "" }
        );
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(clf_time(t), "06/Nov/1994:08:49:37 +0000");
        assert_eq!(sanitise(b"GET /a\"b\x01 HTTP/1.1"), "GET /a\\\"b\\x01 HTTP/1.1");
    }
}
