//! `tx3g` (3GPP timed text, ffmpeg's `mov_text`) subtitle tracks as WebVTT: the cues of one
//! HLS segment's time span (`s3/2.vtt`) or of the whole presentation (`s3/all.vtt`, the DASH
//! sidecar). A `tx3g` sample is a 16-bit length and the text (UTF-8, or UTF-16 after a byte
//! order mark), then style boxes, which are dropped; empty samples are the gaps between cues.
//! Cue times are on the output timeline, relative to its first frame (the lead, see
//! [`super::segments::TrackInfo::lead`]), and `X-TIMESTAMP-MAP` ties them to the media's
//! timestamps for HLS players. The text is read from the file (subtitle tracks are small; the
//! number of samples and bytes read is bounded).

use super::segments::{SegmentIndex, Walk};
use crate::mp4::track::Track;
use crate::mp4::Movie;
use crate::{Error, Result};
use std::fmt::Write;

/// The most samples of one subtitle track read for an answer.
pub const MAX_CUES: u64 = 100_000;
/// The most bytes of one subtitle sample read.
const MAX_SAMPLE: u32 = 64 << 10;

/// `hh:mm:ss.mmm`.
fn timestamp(secs: f64) -> String {
    let ms = (secs.max(0.0) * 1000.0).round() as u64;
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// The text of a `tx3g` sample, escaped for WebVTT (`&`, `<`, `>`), lines kept.
fn text_of(sample: &[u8]) -> String {
    let len = sample.get(..2).map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    let raw = sample.get(2..2 + len.min(sample.len().saturating_sub(2))).unwrap_or(&[]);
    let text = if raw.starts_with(&[0xFE, 0xFF]) {
        let units: Vec<u16> = raw[2..].chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(raw).into_owned()
    };
    let mut out = String::with_capacity(text.len());
    for c in text.replace("\r\n", "\n").replace('\r', "\n").chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() && c != '\n' => {}
            c => out.push(c),
        }
    }
    // A blank line would end the cue.
    out.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("\n")
}

/// The WebVTT document of subtitle track `k` with the cues that overlap `window` (seconds
/// from the output's start; `None`: all of them).
pub fn document(
    movie: &Movie,
    tracks: &[Track<'_>],
    index: &SegmentIndex,
    k: usize,
    window: Option<(f64, f64)>,
) -> Result<String> {
    let info = index.tracks.get(k).ok_or_else(|| Error::NotFound("no such subtitle track".into()))?;
    let t = tracks.get(info.index).ok_or_else(|| Error::corrupt(0, "segment index does not fit the movie"))?;
    let bad = |what: &str| Error::corrupt(t.trak.offset, format!("track {}: {what}", t.id));
    let (s0, s1) = match (index.cell(0, k), index.cell(index.count.saturating_sub(1), k)) {
        (Some(a), Some(b)) => (a.s0, b.s1.min(t.samples)),
        _ => return Err(Error::NotFound("no such subtitle track".into())),
    };
    if s1.saturating_sub(s0) > MAX_CUES {
        return Err(Error::Unsupported(format!("subtitle track {} has more than {MAX_CUES} samples", t.id)));
    }
    let ts = f64::from(info.timescale.max(1));
    let mts = (info.lead as f64 * 90_000.0 / ts).round() as u64;
    let mut out = format!("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{mts},LOCAL:00:00:00.000\n\n");
    let mut walk = Walk::new(t);
    let mut buf = Vec::new();
    for s in s0..s1 {
        let (dts, duration) = walk.dts(s).ok_or_else(|| bad("'stts' does not cover every sample"))?;
        // Output time relative to the first frame: dts − base − lead.
        let start = (i128::from(dts) - i128::from(info.base) - i128::from(info.lead)) as f64 / ts;
        let end = start + f64::from(duration) / ts;
        if let Some((a, b)) = window {
            if end <= a || start >= b {
                continue;
            }
        }
        let size = t.sizes.get(usize::try_from(s).unwrap_or(usize::MAX));
        if size <= 2 || end <= 0.0 {
            continue;
        }
        if size > MAX_SAMPLE {
            return Err(bad("subtitle sample too large"));
        }
        let (chunk, chunk_first) = walk.chunk(s).ok_or_else(|| bad("'stsc' does not cover every sample"))?;
        let offset = t
            .offsets
            .get(usize::try_from(chunk).unwrap_or(usize::MAX))
            .checked_add(t.sizes.sum(chunk_first, s))
            .ok_or_else(|| bad("chunk offset overflows"))?;
        if offset.saturating_add(u64::from(size)) > movie.src.len {
            return Err(Error::corrupt(offset, "subtitle sample runs past the end of the file"));
        }
        buf.resize(size as usize, 0);
        movie.src.read_exact_at(&mut buf, offset).map_err(|e| Error::io("cannot read subtitle", e))?;
        let text = text_of(&buf);
        if text.is_empty() {
            continue;
        }
        let _ = write!(out, "{}\n{} --> {}\n{text}\n\n", s + 1, timestamp(start), timestamp(end));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_decoded_and_escaped() {
        assert_eq!(text_of(b"\x00\x0ba <b> & c\r\nd"), "a &lt;b&gt; &amp; c");
        assert_eq!(text_of(b"\x00\x05ab\n\nc"), "ab\nc");
        assert_eq!(text_of(b"\x00\x06\xfe\xff\x00h\x00i"), "hi");
        assert_eq!(text_of(b"\x00\xffshort"), "short");
        assert_eq!(text_of(b"\x00"), "");
        assert_eq!(timestamp(3725.5), "01:02:05.500");
    }
}
