//! Before the run, what the bench learns about each target: the media's duration (the
//! server's `X-Content-Duration`, else the file's own index read with a few small `Range`
//! requests: MP4 `mvhd`, FLV `onMetaData`), and how the server takes a seek — `start=S` for
//! MP4, `start=Ss` (time) or a keyframe's byte offset from `onMetaData` for FLV, whose bare
//! numbers are byte offsets. One `HEAD` with a trial seek checks the form; a target that
//! cannot be seeked is reported as a warning, which the run prints before it starts.

use super::http::Head;
use super::prefix::{Container, Scanner, Want};
use super::target::Target;
use super::viewer::{connect, read_head, HeadOutcome};
use super::{Seek, Shared};
use std::sync::Arc;

/// Bytes asked per `Range` request while walking an index.
const WINDOW: usize = 4096;
/// Most `Range` requests spent on one target's index.
const MAX_FETCHES: u32 = 16;

/// How a target's seeks are written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SeekForm {
    /// The target cannot (or need not) be seeked: requests go as written.
    None,
    /// `start=12.500` (MP4).
    Seconds,
    /// `start=12.500s` (FLV with a server that takes times).
    SecondsSuffix,
    /// `start=BYTE`, the offset of the keyframe at or before the time (FLV, from
    /// `onMetaData.keyframes`): (seconds, offset) in time order.
    FlvBytes(Arc<[(f64, u64)]>),
}

impl SeekForm {
    /// The `start` value for a seek to `t` seconds, and the time the answer begins at.
    pub fn value(&self, t: f64) -> Option<(String, f64)> {
        match self {
            SeekForm::None => None,
            SeekForm::Seconds => Some((format!("{t:.3}"), t)),
            SeekForm::SecondsSuffix => Some((format!("{t:.3}s"), t)),
            SeekForm::FlvBytes(k) => {
                let i = k.partition_point(|&(kt, _)| kt <= t).saturating_sub(1);
                k.get(i).map(|&(kt, pos)| (pos.to_string(), kt))
            }
        }
    }
}

/// A target with what the probe learnt about it.
#[derive(Clone)]
pub(crate) struct Probed {
    pub target: Target,
    /// The whole media's duration, seconds.
    pub duration: Option<f64>,
    pub form: SeekForm,
}

/// Learns `target`'s duration and seek form; returns it with warnings for the user.
pub(crate) async fn probe(shared: &Arc<Shared>, target: Target, seek: Seek) -> (Probed, Vec<String>) {
    let mut warnings = Vec::new();
    let url = target.url.clone();
    let base = target.path_with_start(None);
    let unprobed = |target| Probed { target, duration: None, form: SeekForm::None };
    let whole = match head(shared, &target, &base).await {
        Ok(h) if (200..300).contains(&h.status) => h,
        Ok(h) => {
            warnings
                .push(format!("{url}: HEAD {base} answered HTTP {}; the bench cannot learn its duration", h.status));
            return (unprobed(target), warnings);
        }
        Err(why) => {
            warnings.push(format!("{url}: {why}"));
            return (unprobed(target), warnings);
        }
    };
    let mut scan = walk_index(shared, &target, &base, whole.content_length).await;
    let duration = whole.duration.or(scan.duration());
    let flv = scan.container() == Some(Container::Flv)
        || base.split('?').next().is_some_and(|p| p.to_ascii_lowercase().ends_with(".flv"));
    let keyframes = scan.take_keyframes();
    let trial = match seek {
        Seek::Fixed(s) if s > 0.0 => s,
        Seek::Fixed(_) => return (Probed { target, duration, form: SeekForm::None }, warnings),
        Seek::Random => match duration {
            Some(d) => d / 2.0,
            None => {
                warnings.push(format!(
                    "{url} cannot be seeked: its duration is unknown (no X-Content-Duration, no readable MP4 or FLV \
                     index); its viewers play it from the start"
                ));
                return (Probed { target, duration, form: SeekForm::None }, warnings);
            }
        },
    };
    let mut forms = Vec::new();
    let mut refusals = Vec::new();
    if flv {
        forms.push(SeekForm::SecondsSuffix);
        match keyframes {
            Some(k) => forms.push(SeekForm::FlvBytes(k.into())),
            None => refusals.push("no keyframe index in its onMetaData for byte-offset seeks".to_string()),
        }
    } else {
        forms.push(SeekForm::Seconds);
    }
    for form in forms {
        let Some((value, _)) = form.value(trial) else { continue };
        let path = target.path_with_start(Some(&value));
        match head(shared, &target, &path).await {
            Ok(h) if (200..300).contains(&h.status) => {
                if whole.content_length.is_some() && h.content_length == whole.content_length {
                    refusals.push(format!("HEAD {path} announces the whole file: start= is ignored"));
                    continue;
                }
                return (Probed { target, duration, form }, warnings);
            }
            Ok(h) => refusals.push(format!("HEAD {path} answered HTTP {}", h.status)),
            Err(why) => refusals.push(format!("HEAD {path}: {why}")),
        }
    }
    let why = if refusals.is_empty() { "no seek form fits it".to_string() } else { refusals.join(", ") };
    warnings.push(format!("{url} cannot be seeked ({why}); its viewers play it from the start"));
    (Probed { target, duration, form: SeekForm::None }, warnings)
}

/// `HEAD path` on a fresh connection.
async fn head(shared: &Arc<Shared>, target: &Target, path: &str) -> Result<Head, String> {
    let req = format!("HEAD {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", target.host_header);
    let mut conn = connect(shared, target).await.map_err(|f| match f {
        super::stats::Failure::Tls => {
            format!("no TLS session with {}: {}", target.addr, shared.live.first_tls_error().unwrap_or_default())
        }
        _ => format!("nothing answers at {}", target.addr),
    })?;
    let wrote = tokio::time::timeout(shared.timeout, conn.stream.write_all(req.as_bytes())).await;
    if !matches!(wrote, Ok(Ok(()))) {
        return Err(format!("cannot send a request to {}", target.addr));
    }
    match read_head(shared, &mut conn.stream, false).await {
        Ok(HeadOutcome::Head { head, .. }) => Ok(head),
        _ => Err(format!("no valid answer to HEAD {path}")),
    }
}

/// `GET path` for bytes `from..from + len` (a `206`, or the start of a `200` when `from` is
/// 0); `None` when the server will not give them.
async fn range(shared: &Arc<Shared>, target: &Target, path: &str, from: u64, len: usize) -> Option<Vec<u8>> {
    let last = from.checked_add(len as u64)?.checked_sub(1)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nRange: bytes={from}-{last}\r\nConnection: close\r\n\r\n",
        target.host_header
    );
    let mut conn = connect(shared, target).await.ok()?;
    tokio::time::timeout(shared.timeout, conn.stream.write_all(req.as_bytes())).await.ok()?.ok()?;
    let HeadOutcome::Head { head, extra, .. } = read_head(shared, &mut conn.stream, false).await.ok()? else {
        return None;
    };
    if !(head.status == 206 || (head.status == 200 && from == 0)) {
        return None;
    }
    let want = head.content_length.map_or(len, |l| usize::try_from(l).unwrap_or(len).min(len));
    let mut body = extra;
    body.truncate(want);
    while body.len() < want {
        let read = tokio::time::timeout(
            shared.timeout,
            conn.stream.read_with(want - body.len(), |b| body.extend_from_slice(b)),
        )
        .await;
        match read {
            Ok(Ok((n, ()))) if n > 0 => {}
            _ => break,
        }
    }
    Some(body)
}

/// Walks the file's index with small `Range` requests (see [`Scanner`] in probe mode).
async fn walk_index(shared: &Arc<Shared>, target: &Target, path: &str, len: Option<u64>) -> Scanner {
    let mut scan = Scanner::new(true, len);
    let mut window: (u64, Vec<u8>) = (0, Vec::new());
    let mut fetches = 0;
    loop {
        match scan.want() {
            Want::Done => break,
            Want::Skip(n) => scan.skipped(n),
            Want::Copy(n) => {
                let pos = scan.pos();
                let (at, bytes) = &window;
                let inside = pos.checked_sub(*at).and_then(|o| usize::try_from(o).ok()).filter(|&o| o < bytes.len());
                if let Some(o) = inside {
                    let take = n.min(bytes.len() - o);
                    let chunk = bytes[o..o + take].to_vec();
                    scan.copied(&chunk);
                    continue;
                }
                fetches += 1;
                if fetches > MAX_FETCHES {
                    break;
                }
                match range(shared, target, path, pos, n.max(WINDOW)).await {
                    Some(b) if !b.is_empty() => window = (pos, b),
                    _ => {
                        scan.end();
                        break;
                    }
                }
            }
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_values_per_form() {
        assert_eq!(SeekForm::None.value(3.0), None);
        assert_eq!(SeekForm::Seconds.value(3.25), Some(("3.250".into(), 3.25)));
        assert_eq!(SeekForm::SecondsSuffix.value(3.25), Some(("3.250s".into(), 3.25)));
        let k = SeekForm::FlvBytes(vec![(0.0, 300), (2.0, 900), (4.0, 1500)].into());
        assert_eq!(k.value(0.0), Some(("300".into(), 0.0)));
        assert_eq!(k.value(3.9), Some(("900".into(), 2.0)));
        assert_eq!(k.value(99.0), Some(("1500".into(), 4.0)));
    }
}
