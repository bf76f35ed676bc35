//! A bitrate ladder from several files: a sidecar `title.ladder` beside the renditions of a
//! title lists their MP4 files, one a line, and `/path/title.ladder/master.m3u8` and
//! `/manifest.mpd` present them as one presentation (a variant / `Representation` per video
//! track of every rendition; audio and subtitles from the first). Each rendition's
//! playlists and segments live below `r{n}/` (`/path/title.ladder/r2/v1/3.m4s`), answered by
//! the single-movie packager on that file. This module owns the sidecar's format, the URL
//! tail below it, and the check that the renditions' segment boundaries line up.

use super::hls::Part;
use super::route::PackageRequest;
use super::Package;

/// The file extension of a ladder sidecar.
pub const EXTENSION: &str = "ladder";
/// The most renditions in one ladder.
pub const MAX_RENDITIONS: usize = 16;
/// The largest sidecar read.
pub const MAX_BYTES: u64 = 16 << 10;
/// Segment boundaries of two renditions may differ by this much (seconds) and still count
/// as the same.
pub const TOLERANCE: f64 = 0.001;

/// The renditions a sidecar lists: paths relative to its directory, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ladder {
    pub renditions: Vec<String>,
}

impl Ladder {
    /// Parses a sidecar: one relative path a line (`/`-separated, below the sidecar's
    /// directory: no `..`, no component starting with `.`, no absolute path); blank lines and
    /// lines starting with `#` are ignored; surrounding spaces are trimmed. The message of an
    /// error names the line.
    pub fn parse(text: &str) -> Result<Ladder, String> {
        let mut renditions = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            if line.starts_with('/') {
                return Err(format!("line {n}: {line:?} is absolute; name the file relative to the ladder"));
            }
            if line.chars().any(|c| c.is_control() || c == '\\') {
                return Err(format!("line {n}: control character or backslash"));
            }
            if line.split('/').any(|c| c.is_empty() || c.starts_with('.')) {
                return Err(format!("line {n}: {line:?} has an empty or dot component (`..` is not allowed)"));
            }
            renditions.push(line.to_string());
            if renditions.len() > MAX_RENDITIONS {
                return Err(format!("line {n}: more than {MAX_RENDITIONS} renditions"));
            }
        }
        if renditions.is_empty() {
            return Err("it lists no rendition".into());
        }
        Ok(Ladder { renditions })
    }
}

/// What a URL below a ladder asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LadderRequest {
    /// `master.m3u8`: the multivariant playlist of every rendition.
    Master,
    /// `manifest.mpd`: the MPD of every rendition.
    Mpd,
    /// `r{n}/…`: a playlist, init segment, segment or WebVTT of rendition `n` (from 1).
    Rendition { n: usize, req: PackageRequest },
}

impl LadderRequest {
    /// Parses the tail below the sidecar; `None` for anything else.
    pub fn parse(tail: &str) -> Option<LadderRequest> {
        match tail {
            "master.m3u8" => return Some(LadderRequest::Master),
            "manifest.mpd" => return Some(LadderRequest::Mpd),
            _ => {}
        }
        let (dir, rest) = tail.split_once('/')?;
        let digits = dir.strip_prefix('r')?;
        if digits.is_empty()
            || digits.len() > 2
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let n: usize = digits.parse().ok()?;
        match PackageRequest::parse(rest)? {
            PackageRequest::Master | PackageRequest::Mpd => None,
            req => (1..=MAX_RENDITIONS).contains(&n).then_some(LadderRequest::Rendition { n, req }),
        }
    }

    /// The content type of the answer.
    pub fn content_type(&self) -> &'static str {
        match self {
            LadderRequest::Master => super::M3U8,
            LadderRequest::Mpd => super::MPD,
            LadderRequest::Rendition { req, .. } => req.content_type(),
        }
    }
}

/// Whether `name` (a path component) names a ladder sidecar.
pub fn is_ladder(name: &str) -> bool {
    super::rsplit_at(name, b'.').is_some_and(|(stem, ext)| !stem.is_empty() && ext.eq_ignore_ascii_case(EXTENSION))
}

/// Splits a request path (`/dir/title.ladder/r2/v1/3.m4s`) into the sidecar's path and the
/// request, when a `.ladder` component is followed by a valid tail.
pub fn split(path: &str) -> Option<(&str, LadderRequest)> {
    for parts in [1usize, 3] {
        let mut cut = path.len();
        for _ in 0..parts {
            cut = super::rsplit_at(&path[..cut], b'/')?.0.len();
        }
        let (ladder, tail) = (&path[..cut], &path[cut + 1..]);
        let name = super::rsplit_at(ladder, b'/').map_or(ladder, |(_, name)| name);
        if !is_ladder(name) {
            continue;
        }
        if let Some(req) = LadderRequest::parse(tail) {
            return Some((ladder, req));
        }
    }
    None
}

/// The URL prefix of rendition `n` (from 1).
pub fn prefix(n: usize) -> String {
    format!("r{n}/")
}

/// Checks that every rendition is cut at the same times as the first: the same number of
/// segments, each starting within [`TOLERANCE`]. The error names the two files and the
/// first time where they differ.
pub fn check_aligned(renditions: &[(&str, &Package)]) -> Result<(), String> {
    let Some(&(first_name, first)) = renditions.first() else { return Ok(()) };
    for &(name, p) in &renditions[1..] {
        let (a, b) = (&first.index, &p.index);
        for n in 0..a.count.max(b.count) {
            let (x, y) = (a.span(n), b.span(n));
            let differs = match (x, y) {
                (Some(x), Some(y)) => (x.0 - y.0).abs() > TOLERANCE,
                _ => true,
            };
            if differs {
                let at = |s: Option<(f64, f64)>, name: &str| match s {
                    Some((t, _)) => format!("{name} at {t:.3} s"),
                    None => format!("{name} has no segment {}", n + 1),
                };
                return Err(format!(
                    "the keyframes of the renditions do not line up: segment {} starts {} but {}; \
                     encode them with the same keyframe times (e.g. ffmpeg -g and -sc_threshold 0, or -force_key_frames)",
                    n + 1,
                    at(x, first_name),
                    at(y, name),
                ));
            }
        }
    }
    Ok(())
}

/// The parts of the presentation, each rendition under its prefix.
pub fn parts<'a>(packages: &[&'a Package]) -> Vec<Part<'a>> {
    packages.iter().enumerate().map(|(i, p)| Part { prefix: prefix(i + 1), package: p }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::segments::Media;

    #[test]
    fn sidecars_parse_and_refuse_escapes() {
        let l = Ladder::parse("# title\n\n  hi.mp4  \nlow/lo.mp4\n").unwrap();
        assert_eq!(l.renditions, vec!["hi.mp4", "low/lo.mp4"]);
        for bad in ["", "# only\n", "/etc/x.mp4", "../x.mp4", "a/../x.mp4", "a//x.mp4", ".hidden.mp4", "a\\b.mp4"] {
            assert!(Ladder::parse(bad).is_err(), "{bad:?}");
        }
        let many: String = (0..=MAX_RENDITIONS).map(|i| format!("r{i}.mp4\n")).collect();
        assert!(Ladder::parse(&many).unwrap_err().contains("more than"));
    }

    #[test]
    fn tails_parse_strictly() {
        use LadderRequest as L;
        assert_eq!(split("/d/t.ladder/master.m3u8"), Some(("/d/t.ladder", L::Master)));
        assert_eq!(split("/t.ladder/manifest.mpd"), Some(("/t.ladder", L::Mpd)));
        assert_eq!(
            split("/d/t.ladder/r2/v1/3.m4s"),
            Some((
                "/d/t.ladder",
                L::Rendition { n: 2, req: PackageRequest::Segment { media: Media::Video, id: 1, number: 3 } }
            ))
        );
        assert_eq!(
            split("/t.ladder/r1/s3/all.vtt"),
            Some(("/t.ladder", L::Rendition { n: 1, req: PackageRequest::Vtt { id: 3, number: None } }))
        );
        for bad in [
            "/t.ladder/r0/v1/1.m4s",
            "/t.ladder/r01/v1/1.m4s",
            "/t.ladder/r17/v1/1.m4s",
            "/t.ladder/r1/master.m3u8",
            "/t.ladder/v1/1.m4s",
            "/t.ladder/r1/v1/x.m4s",
            "/t.mp4/r1/v1/1.m4s",
            "/.ladder/master.m3u8",
            "/t.ladder",
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }
}
