//! A whole MP4 sent as it is (no `start`, no `end`): the plan is the file, byte for byte, and
//! only two facts are read for the headers and the throttle — the movie's duration (the
//! `mvhd`) and where its media data lies (first `mdat` body to last `mdat` end). They cost
//! the top-level walk's reads (the file's first 4 KiB, one `pread` per box beyond them) and,
//! for a `moov` outside those 4 KiB, one more small read for the `mvhd`: no sample table is
//! touched and no `moov` is mapped, so a CGI process stays lean. The facts are best effort:
//! a file they cannot be read from is still served as it is, only unpaced and without
//! `X-Content-Duration`.

use super::boxes::{self, children, BoxHeader};
use super::track;
use crate::plan::Plan;
use crate::source::Source;
use crate::Result;
use std::ops::Range;

/// The most `moov` bytes read to find the `mvhd` (it is the first child in every muxer's
/// output; a `moov` that hides it further on gets no duration).
const MVHD_WINDOW: u64 = 4096;

/// What a whole-file answer needs to know about a movie.
#[derive(Clone, Debug, PartialEq)]
pub struct WholeFacts {
    /// The movie header's duration in seconds (> 0).
    pub duration: f64,
    /// The file bytes that are media data: the first `mdat`'s body to the last `mdat`'s end.
    pub media: Range<u64>,
}

/// The registry's `plan_as_is` for MP4 ([`plan`] with the options' content type).
pub fn plan_as_is(src: Source, opts: &crate::container::Options) -> Result<Plan> {
    plan(src, opts.content_type)
}

/// The plan for a whole MP4: the file as it is, with the duration and the media range in its
/// info when they can be read.
pub fn plan(src: Source, content_type: &'static str) -> Result<Plan> {
    let mut info = src.info(content_type);
    if let Some(f) = facts(&src) {
        info.duration = Some(f.duration);
        info.header_len = f.media.start;
        info.trailer_len = src.len - f.media.end;
    }
    Plan::whole_file(src, info)
}

/// The duration and media range of `src`, or `None` when the file does not say (no `moov`
/// or `mdat`, fragmented, a zero duration, a damaged box).
pub fn facts(src: &Source) -> Option<WholeFacts> {
    let head = boxes::read_head(src, src.len);
    let (top, fault) = boxes::walk_top_in(src, src.len, false, &head);
    if fault.is_some() || top.fragmented {
        return None;
    }
    let moov = top.moov?;
    let first = top.mdat?;
    let last = top.boxes.iter().rev().find(|b| &b.kind == b"mdat")?;
    let media = first.body_start()..last.end();
    if media.start > media.end || media.end > src.len {
        return None;
    }
    let duration = mvhd_seconds(src, &head, &moov)?;
    Some(WholeFacts { duration, media })
}

/// The `mvhd` duration in seconds, from the first [`MVHD_WINDOW`] bytes of the `moov`.
fn mvhd_seconds(src: &Source, head: &[u8], moov: &BoxHeader) -> Option<f64> {
    let want = moov.size.min(MVHD_WINDOW);
    let from = usize::try_from(moov.offset).ok()?;
    let to = from.checked_add(usize::try_from(want).ok()?)?;
    let window: Vec<u8> = match head.get(from..to) {
        Some(b) => b.to_vec(),
        None => {
            let mut v = vec![0u8; to - from];
            src.read_exact_at(&mut v, moov.offset).ok()?;
            v
        }
    };
    let body_start = moov.body_start() - moov.offset;
    // Children that run past the window end the walk (an error from `children`).
    let mvhd = children(&window, body_start, window.len() as u64).map_while(|h| h.ok()).find(|h| &h.kind == b"mvhd")?;
    let t = track::time_fields(&window, &mvhd).ok()?;
    let secs = t.duration as f64 / f64::from(t.timescale);
    (t.timescale > 0 && t.duration > 0 && secs.is_finite() && secs < 1e9).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn mvhd(timescale: u32, duration: u32) -> Vec<u8> {
        let mut b = vec![0u8; 100];
        b[12..16].copy_from_slice(&timescale.to_be_bytes());
        b[16..20].copy_from_slice(&duration.to_be_bytes());
        boxed(b"mvhd", &b)
    }

    fn source(name: &str, bytes: &[u8]) -> Source {
        let path = std::env::temp_dir().join(format!("loomiere-whole-{name}-{}", std::process::id()));
        std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        Source::nameless(Arc::new(f), bytes.len() as u64)
    }

    #[test]
    fn faststart_and_moov_at_end() {
        let ftyp = boxed(b"ftyp", b"isom\0\0\0\0");
        let moov = boxed(b"moov", &mvhd(1000, 10_000));
        let mdat = boxed(b"mdat", &[0u8; 5000]);
        let fast = [ftyp.clone(), moov.clone(), mdat.clone()].concat();
        let f = facts(&source("fast", &fast)).unwrap();
        assert_eq!(f.duration, 10.0);
        let start = (ftyp.len() + moov.len() + 8) as u64;
        assert_eq!(f.media, start..fast.len() as u64);

        // moov after mdat, far beyond the first 4 KiB: read with its own pread.
        let late = [ftyp.clone(), mdat.clone(), moov.clone()].concat();
        let f = facts(&source("late", &late)).unwrap();
        assert_eq!(f.media, (ftyp.len() + 8) as u64..(ftyp.len() + mdat.len()) as u64);
        let plan = plan(source("late-plan", &late), "video/mp4").unwrap();
        assert_eq!(plan.info.trailer_len, moov.len() as u64);
        assert_eq!(plan.info.bytes_per_second(plan.len()), Some(500.0));
    }

    #[test]
    fn files_that_do_not_say_are_served_unpaced() {
        let ftyp = boxed(b"ftyp", b"isom\0\0\0\0");
        let mdat = boxed(b"mdat", &[0u8; 100]);
        let zero = [ftyp.clone(), boxed(b"moov", &mvhd(1000, 0)), mdat.clone()].concat();
        assert_eq!(facts(&source("zero", &zero)), None);
        let no_moov = [ftyp.clone(), mdat.clone()].concat();
        assert_eq!(facts(&source("nomoov", &no_moov)), None);
        let mut cut = [ftyp.clone(), boxed(b"moov", &mvhd(1000, 5)), mdat.clone()].concat();
        cut.truncate(cut.len() - 10);
        assert_eq!(facts(&source("cut", &cut)), None);
        let short_mvhd = [ftyp, boxed(b"moov", &boxed(b"mvhd", &[0u8; 4])), mdat].concat();
        assert_eq!(facts(&source("short", &short_mvhd)), None);
        let p = plan(source("zero-plan", &zero), "video/mp4").unwrap();
        assert_eq!(p.info.duration, None);
        assert_eq!(p.len(), zero.len() as u64);
    }
}
