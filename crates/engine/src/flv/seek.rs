//! FLV seek: (source, request) → plan. The output is a new 13-byte FLV header and a small
//! `onMetaData` (the output's duration, scalar facts copied from the source) as one
//! synthesised piece, then the codec sequence headers in effect at the cut (AVC decoder
//! configuration, AAC AudioSpecificConfig) copied as file pieces, then one file range from
//! the start tag to the end tag. Tag timestamps are not rewritten: the range goes out
//! zero-copy, as in nginx/lighttpd, and players doing pseudo-streaming expect source times;
//! the `onMetaData` duration is what makes the output's length right (ffprobe reads it).
//!
//! Start positions: seconds snap to the video keyframe at or before them (audio-only files:
//! the audio tag at or before them), found through `onMetaData` `keyframes` when that index
//! is sane and points at keyframe tags, else by walking the tags. A byte offset must be the
//! start of a tag (checked by its type, stream id and trailing PreviousTagSize; anything else
//! is `BadRequest`); a tag that is not a keyframe snaps forward to the next keyframe.

use super::amf0::{self, Value};
use super::scan::{is_on_metadata, read_metadata};
use super::tags::{self, Header, Reader, Tag, Walk, AUDIO, SCRIPT, VIDEO};
use crate::media::Source;
use crate::plan::{Bytes, Piece, Plan};
use crate::request::{Position, Request};
use crate::{Error, Result};
use std::sync::Arc;

/// Tags looked at from the start of the file for metadata and sequence headers.
const HEAD_TAGS: usize = 1024;
/// Largest `onMetaData` parsed per seek (≈ 450 000 keyframes); a bigger one is ignored and
/// the tags are walked instead, so one request never allocates more than a few tens of MB.
const MAX_SEEK_METADATA: u32 = 8 << 20;
/// Index entries looked at before the one at the requested time when it names a tag that is
/// flagged as a keyframe but carries no picture (an end-of-sequence tag).
const INDEX_STEP_BACK: usize = 4;
/// Most keys copied from the source metadata into a seeked output.
const MAX_COPIED_KEYS: usize = 64;
/// Longest string value copied from the source metadata.
const MAX_COPIED_STRING: usize = 256;
/// Source metadata keys that describe the whole source and are wrong for a part of it.
const DROPPED_KEYS: &[&str] = &[
    "duration",
    "filesize",
    "datasize",
    "videosize",
    "audiosize",
    "lasttimestamp",
    "lastkeyframetimestamp",
    "lastkeyframelocation",
    "keyframes",
    "times",
    "filepositions",
    "cuePoints",
    "canSeekToEnd",
];

/// What the first tags of the file say.
struct Head {
    header: Header,
    metadata: Option<Value>,
    video_config: Option<Tag>,
    audio_config: Option<Tag>,
    has_video: bool,
    has_audio: bool,
    /// The first tag that is not an `onMetaData` script tag.
    media_start: u64,
}

fn read_head(reader: &mut Reader<'_>) -> Result<Head> {
    let header = reader.header()?;
    let mut head = Head {
        header,
        metadata: None,
        video_config: None,
        audio_config: None,
        has_video: false,
        has_audio: false,
        media_start: header.first_tag(),
    };
    let mut leading = true;
    let mut tags = Vec::new();
    let mut walk = Walk::new(reader, header.first_tag());
    while tags.len() < HEAD_TAGS {
        let Some(item) = walk.next() else { break };
        match item {
            Ok(t) => tags.push(t),
            // A fault after the first media tags: the head is readable, the seek may still be.
            Err(_) if tags.iter().any(|t| t.kind != SCRIPT) => break,
            Err(e) => return Err(e),
        }
        let Some(tag) = tags.last().copied() else { break };
        if tag.kind == SCRIPT && is_on_metadata(walk.reader(), &tag)? {
            if head.metadata.is_none() && tag.size <= MAX_SEEK_METADATA {
                head.metadata = read_metadata(walk.reader(), &tag).ok();
            }
            if leading {
                head.media_start = tag.end();
            }
            continue;
        }
        leading = false;
        if tag.is_video_config() && head.video_config.is_none() {
            head.video_config = Some(tag);
        } else if tag.is_audio_config() && head.audio_config.is_none() {
            head.audio_config = Some(tag);
        } else if tag.kind == VIDEO && super::scan::is_video_frame(&tag) {
            head.has_video = true;
        } else if tag.kind == AUDIO {
            head.has_audio = true;
        }
        if head.has_video && head.has_audio {
            break;
        }
    }
    head.has_video |= head.video_config.is_some();
    head.has_audio |= head.audio_config.is_some();
    Ok(head)
}

/// Where the output starts.
struct Start {
    offset: u64,
    timestamp: u32,
    video_config: Option<Tag>,
    audio_config: Option<Tag>,
}

/// A sane `onMetaData` keyframe index: times non-decreasing, positions increasing and
/// inside the file's tag area. Each entry used is also checked against the tag it names.
struct Index<'a> {
    times: &'a [Value],
    positions: &'a [Value],
}

impl<'a> Index<'a> {
    fn from(meta: &'a Value, first_tag: u64, len: u64) -> Option<Index<'a>> {
        let kf = meta.get("keyframes")?;
        let times = kf.get("times")?.elements()?;
        let positions = kf.get("filepositions")?.elements()?;
        if times.is_empty() || times.len() != positions.len() {
            return None;
        }
        let (mut last_t, mut last_p) = (f64::NEG_INFINITY, -1.0f64);
        for (t, p) in times.iter().zip(positions) {
            let (t, p) = (t.as_f64()?, p.as_f64()?);
            let ok = t.is_finite() && t >= 0.0 && t >= last_t && p.is_finite() && p > last_p;
            if !ok || p < first_tag as f64 || p >= len as f64 || p.fract() != 0.0 {
                return None;
            }
            (last_t, last_p) = (t, p);
        }
        Some(Index { times, positions })
    }

    /// The number of the entry at or before `t` seconds (the first entry when `t` precedes
    /// them all).
    fn at_or_before(&self, t: f64) -> usize {
        let i = self.times.partition_point(|v| v.as_f64().unwrap_or(f64::INFINITY) <= t + 0.0005);
        i.saturating_sub(1)
    }

    /// Entry `i` as (seconds, position).
    fn entry(&self, i: usize) -> (f64, u64) {
        let time = self.times.get(i).and_then(Value::as_f64).unwrap_or(0.0);
        let pos = self.positions.get(i).and_then(Value::as_f64).unwrap_or(0.0);
        (time, pos as u64)
    }
}

/// True when a tag is a place playback can start: a keyframe (or, in indexes written by yamdi
/// and flvmeta, the AVC configuration tagged as a keyframe), or any audio frame when there
/// is no video.
fn can_start(tag: &Tag, has_video: bool) -> bool {
    if has_video {
        tag.is_keyframe() || (tag.is_video_config() && tag.frame_type() == Some(1))
    } else {
        tag.kind == AUDIO && !tag.is_audio_config()
    }
}

/// The last start point at or before `t_ms`, by walking from the first tag.
fn walk_to_time(reader: &mut Reader<'_>, head: &Head, t_ms: f64) -> Result<Start> {
    let (mut vcfg, mut acfg) = (None, None);
    let mut best: Option<Start> = None;
    let mut walk = Walk::new(reader, head.header.first_tag());
    for item in walk.by_ref() {
        // A fault before `t` is reached is an error: the asked-for time is not in the file.
        let tag = item?;
        if tag.is_video_config() {
            vcfg = Some(tag);
            continue;
        }
        if tag.is_audio_config() {
            acfg = Some(tag);
            continue;
        }
        let is_start = if head.has_video { tag.is_keyframe() } else { tag.kind == AUDIO };
        if !is_start {
            continue;
        }
        if f64::from(tag.timestamp) > t_ms && best.is_some() {
            break;
        }
        best = Some(Start { offset: tag.offset, timestamp: tag.timestamp, video_config: vcfg, audio_config: acfg });
        if f64::from(tag.timestamp) > t_ms {
            break; // t precedes the first keyframe: start at it
        }
    }
    best.ok_or_else(|| Error::corrupt(head.header.first_tag(), "no keyframe to start at"))
}

/// The next start point at or after `offset`.
fn walk_to_next_start(reader: &mut Reader<'_>, head: &Head, offset: u64) -> Result<Option<Start>> {
    let mut walk = Walk::new(reader, offset);
    for item in walk.by_ref() {
        let tag = item?;
        if tag.kind != SCRIPT && !tag.is_video_config() && !tag.is_audio_config() && can_start(&tag, head.has_video) {
            return Ok(Some(Start {
                offset: tag.offset,
                timestamp: tag.timestamp,
                video_config: head.video_config,
                audio_config: head.audio_config,
            }));
        }
    }
    Ok(None)
}

/// The end of the source in seconds: the `onMetaData` duration when it agrees with the last
/// tag, else the last tag's timestamp.
fn source_end(reader: &mut Reader<'_>, head: &Head) -> Result<Option<f64>> {
    let last = reader.last_tag(head.header.first_tag())?.map(|t| t.seconds());
    let meta = head
        .metadata
        .as_ref()
        .and_then(|m| m.get("duration"))
        .and_then(Value::as_f64)
        .filter(|d| d.is_finite() && *d > 0.0 && *d < 1e9);
    Ok(match (last, meta) {
        (Some(l), Some(m)) if m >= l && m <= l + 10.0 => Some(m),
        (Some(l), _) => Some(l),
        (None, m) => m,
    })
}

/// The plan for `req` over an FLV source.
pub fn plan(src: Source, req: &Request, content_type: &'static str) -> Result<Plan> {
    if req.is_whole() {
        let mut info = src.info(content_type);
        (info.duration, info.header_len) = whole_facts(&src);
        return Plan::whole_file(src, info);
    }
    let file = src.clone();
    let mut reader = Reader::new(&file, src.len);
    let head = read_head(&mut reader)?;
    let first_tag = head.header.first_tag();
    let src_end = source_end(&mut reader, &head)?;
    let index =
        if head.has_video { head.metadata.as_ref().and_then(|m| Index::from(m, first_tag, src.len)) } else { None };

    let start = match req.start {
        None | Some(Position::Byte(0)) => beginning(&head),
        Some(Position::Byte(n)) if n == first_tag => beginning(&head),
        Some(Position::Byte(n)) => {
            if n >= src.len {
                return Err(Error::bad_request(format!("byte offset {n} is beyond the end of the file ({})", src.len)));
            }
            if reader.is_tag_start(n)?.is_none() {
                return Err(Error::bad_request(format!("byte offset {n} is not the start of an FLV tag")));
            }
            walk_to_next_start(&mut reader, &head, n)?
                .ok_or_else(|| Error::bad_request(format!("no keyframe at or after byte offset {n}")))?
        }
        Some(Position::Seconds(t)) => {
            if let Some(end) = src_end {
                if t > end {
                    return Err(Error::bad_request(format!("start {t}s is beyond the duration ({end:.3}s)")));
                }
            }
            let from_index = index.as_ref().and_then(|ix| {
                // yamdi's and flvmeta's indexes end with the end-of-sequence tag (flagged as a
                // keyframe, no picture): step back over such entries to a real start.
                let at = ix.at_or_before(t);
                (at.saturating_sub(INDEX_STEP_BACK)..=at).rev().find_map(|i| {
                    let (time, pos) = ix.entry(i);
                    // A stale index (file re-muxed after indexing) fails this and is not used.
                    match reader.tag_at(pos) {
                        Ok(Some(tag)) if (tag.seconds() - time).abs() > 0.0015 => Some(None),
                        Ok(Some(tag)) if can_start(&tag, true) => Some(Some(Start {
                            offset: tag.offset,
                            timestamp: tag.timestamp,
                            video_config: head.video_config,
                            audio_config: head.audio_config,
                        })),
                        Ok(Some(tag)) if tag.kind == VIDEO && tag.frame_type() == Some(1) => None,
                        _ => Some(None),
                    }
                })?
            });
            match from_index {
                Some(s) => s,
                None => walk_to_time(&mut reader, &head, t * 1000.0)?,
            }
        }
    };

    if let (Some(Position::Seconds(s)), Some(Position::Seconds(e))) = (req.start, req.end) {
        if e <= s {
            return Err(Error::bad_request(format!("end {e}s is not after start {s}s")));
        }
    }
    let (end_offset, end_seconds) = match req.end {
        None => (src.len, None),
        Some(Position::Seconds(e)) => {
            if e * 1000.0 <= f64::from(start.timestamp) {
                return Err(Error::bad_request(format!("end {e}s is not after the start keyframe")));
            }
            let from = index
                .as_ref()
                .map(|ix| ix.entry(ix.at_or_before(e)).1)
                .filter(|&p| p > start.offset && reader.tag_at(p).is_ok_and(|t| t.is_some()))
                .unwrap_or(start.offset);
            match cut_at(&mut reader, from, |t| f64::from(t.timestamp) >= e * 1000.0 && t.kind != SCRIPT)? {
                Some((off, _)) => (off, Some(e)),
                None => (src.len, None),
            }
        }
        Some(Position::Byte(n)) => {
            if n <= start.offset {
                return Err(Error::bad_request(format!("end byte {n} is not after the start (byte {})", start.offset)));
            }
            match cut_at(&mut reader, start.offset, |t| t.offset >= n)? {
                Some((off, ts)) => (off, ts.map(|ms| f64::from(ms) / 1000.0)),
                None => (src.len, None),
            }
        }
    };

    let start_s = f64::from(start.timestamp) / 1000.0;
    let out_end = end_seconds.or(src_end);
    let duration = out_end.map(|e| (e - start_s).max(0.0));

    let mut synth = tags::file_header(head.has_audio, head.has_video).to_vec();
    if head.header.flags & 5 != 0 {
        synth[4] = head.header.flags & 5;
    }
    synth.extend(tags::tag_bytes(SCRIPT, 0, &amf0::encode_script("onMetaData", &output_metadata(&head, duration))));

    let mut pieces = vec![Piece::Synth(Arc::new(Bytes(synth)))];
    for cfg in [start.video_config, start.audio_config].into_iter().flatten() {
        if cfg.offset < start.offset {
            pieces.push(Piece::Source { offset: cfg.offset, len: cfg.total_len() });
        }
    }
    let header_len = pieces.iter().map(Piece::len).sum();
    pieces.push(Piece::Source { offset: start.offset, len: end_offset.saturating_sub(start.offset) });

    let mut info = src.info(content_type);
    info.duration = duration;
    info.header_len = header_len;
    Plan::new(src, pieces, info)
}

/// Largest first-tag `onMetaData` read for the duration of a whole file.
const MAX_WHOLE_METADATA: u32 = 1 << 20;

/// Best-effort facts of a whole file (for pacing): its duration — the first tag's
/// `onMetaData` duration, else the last tag's timestamp — and the length of its header part
/// (the FLV header and a leading `onMetaData` tag, which a throttle sends at once). Never
/// fails: a whole file is sent as it is.
pub(crate) fn whole_facts(src: &Source) -> (Option<f64>, u64) {
    let mut reader = Reader::new(src, src.len);
    let Some(first_tag) = reader.header().ok().map(|h| h.first_tag()) else { return (None, 0) };
    let meta_tag = reader
        .tag_at(first_tag)
        .ok()
        .flatten()
        .filter(|t| t.size <= MAX_WHOLE_METADATA && is_on_metadata(&mut reader, t).unwrap_or(false));
    let header_len = meta_tag.as_ref().map_or(first_tag, |t| t.end()).min(src.len);
    let from_meta = meta_tag
        .and_then(|t| read_metadata(&reader, &t).ok())
        .and_then(|m| m.get("duration").and_then(Value::as_f64))
        .filter(|d| d.is_finite() && *d > 0.0 && *d < 1e9);
    let duration = from_meta.or_else(|| reader.last_tag(first_tag).ok().flatten().map(|t| t.seconds()));
    (duration, header_len)
}

/// The start of the media when no start was asked for (or byte 0): everything after the
/// leading `onMetaData`, which is replaced.
fn beginning(head: &Head) -> Start {
    Start { offset: head.media_start, timestamp: 0, video_config: None, audio_config: None }
}

/// Walks from `from` to the first tag matching `stop`: its offset and timestamp, or `None`
/// at the end of the file. A structural fault after `from` cuts the output there (no
/// timestamp then).
fn cut_at(reader: &mut Reader<'_>, from: u64, stop: impl Fn(&Tag) -> bool) -> Result<Option<(u64, Option<u32>)>> {
    let mut walk = Walk::new(reader, from);
    for item in walk.by_ref() {
        match item {
            Ok(t) if stop(&t) => return Ok(Some((t.offset, Some(t.timestamp)))),
            Ok(_) => {}
            Err(Error::Corrupt { offset, .. }) => return Ok(Some((offset, None))),
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The `onMetaData` of a seeked output: scalar facts of the source (codecs, size, rates)
/// and the output's duration; whole-source facts (sizes, keyframe index) are dropped.
fn output_metadata(head: &Head, duration: Option<f64>) -> Value {
    let mut pairs = Vec::new();
    if let Some(src) = head.metadata.as_ref().and_then(Value::pairs) {
        for (k, v) in src {
            if pairs.len() >= MAX_COPIED_KEYS || DROPPED_KEYS.contains(&k.as_str()) || k.len() > MAX_COPIED_STRING {
                continue;
            }
            let keep = match v {
                Value::Number(_) | Value::Boolean(_) => true,
                Value::String(s) => s.len() <= MAX_COPIED_STRING,
                _ => false,
            };
            if keep {
                pairs.push((k.clone(), v.clone()));
            }
        }
    }
    let mut meta = Value::EcmaArray(pairs);
    if let Some(d) = duration {
        meta.set("duration", Value::Number((d * 1000.0).round() / 1000.0));
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::super::tags::tests::{file_with, tiny};
    use super::super::tags::{tag_bytes, VIDEO};
    use super::*;
    use crate::sink::read_range;

    fn source(bytes: &[u8]) -> Source {
        file_with(bytes)
    }

    fn req(start: Option<Position>, end: Option<Position>) -> Request {
        Request { start, end, ..Request::default() }
    }

    /// tiny() plus more GOPs: keyframes at 0, 1000, 2000 ms.
    fn gops() -> Vec<u8> {
        let mut v = tiny();
        for k in 1..3u32 {
            v.extend(tag_bytes(VIDEO, k * 1000, &[0x17, 1, 0, 0, 0, 7]));
            v.extend(tag_bytes(AUDIO, k * 1000 + 5, &[0xAF, 1, 5]));
            v.extend(tag_bytes(VIDEO, k * 1000 + 40, &[0x27, 1, 0, 0, 0, 8]));
        }
        v
    }

    #[test]
    fn seconds_snap_to_keyframe_with_configs() {
        let bytes = gops();
        let plan = plan(source(&bytes), &req(Some(Position::Seconds(1.5)), None), "video/x-flv").unwrap();
        let p = plan.pieces();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(matches!(p[1], Piece::Source { offset: 13, len: 22 }));
        let out = read_range(&plan, 0..plan.len()).unwrap();
        assert_eq!(&out[..3], b"FLV");
        // The output walks cleanly and starts its media at the 1000 ms keyframe.
        let f = file_with(&out);
        let mut r = Reader::new(&f, out.len() as u64);
        let h = r.header().unwrap();
        let t: Vec<Tag> = Walk::new(&mut r, h.first_tag()).collect::<Result<_>>().unwrap();
        assert_eq!(t[0].kind, SCRIPT);
        assert!(t[1].is_video_config());
        assert_eq!((t[2].timestamp, t[2].is_keyframe()), (1000, true));
        assert_eq!(plan.info.header_len, out.len() as u64 - (bytes.len() as u64 - 98));
    }

    #[test]
    fn end_cuts_at_first_tag_at_or_after() {
        let bytes = gops();
        let plan = plan(source(&bytes), &req(Some(Position::Seconds(1.0)), Some(Position::Seconds(2.0))), "v").unwrap();
        let last = plan.pieces().last().unwrap();
        assert!(matches!(last, Piece::Source { offset: 98, len: 60 }), "{last:?}");
        assert_eq!(plan.info.duration, Some(1.0));
    }

    /// gops() with an onMetaData keyframe index claiming `times` for its three keyframes.
    fn gops_indexed(times: [f64; 3]) -> Vec<u8> {
        let meta = |shift: u64| {
            let num = |x: f64| Value::Number(x);
            Value::EcmaArray(vec![(
                "keyframes".into(),
                Value::Object(vec![
                    ("times".into(), Value::StrictArray(times.iter().map(|&t| num(t)).collect())),
                    (
                        "filepositions".into(),
                        Value::StrictArray([35u64, 98, 158].iter().map(|&p| num((p + shift) as f64)).collect()),
                    ),
                ]),
            )])
        };
        let shift = 15 + amf0::script_len("onMetaData", &meta(0)) as u64;
        let mut v = tags::file_header(true, true).to_vec();
        v.extend(tag_bytes(SCRIPT, 0, &amf0::encode_script("onMetaData", &meta(shift))));
        v.extend_from_slice(&gops()[13..]);
        v
    }

    #[test]
    fn index_is_used_only_when_it_matches_the_tags() {
        let start_ts = |bytes: &[u8], t: f64| {
            let plan = plan(source(bytes), &req(Some(Position::Seconds(t)), None), "v").unwrap();
            let Piece::Source { offset, .. } = plan.pieces().last().unwrap() else { panic!() };
            let f = file_with(bytes);
            Reader::new(&f, bytes.len() as u64).tag_at(*offset).unwrap().unwrap().timestamp
        };
        let good = gops_indexed([0.0, 1.0, 2.0]);
        assert_eq!(start_ts(&good, 1.7), 1000);
        assert_eq!(start_ts(&good, 2.02), 2000);
        // Lying times: trusting them would start after the asked-for time.
        let stale = gops_indexed([0.0, 0.5, 0.6]);
        assert_eq!(start_ts(&stale, 0.7), 0);
        assert_eq!(start_ts(&stale, 1.7), 1000);
    }

    #[test]
    fn own_index_with_end_of_sequence_entry_starts_on_a_picture() {
        let mut bytes = gops();
        bytes.extend(tag_bytes(VIDEO, 2080, &[0x17, 2, 0, 0, 0]));
        let idx = super::super::index::build(source(&bytes), |_| {}).unwrap();
        let out = read_range(&idx.plan, 0..idx.plan.len()).unwrap();
        let f = file_with(&out);
        for (t, want) in [(2.5, 2000), (2.08, 2000), (0.01, 0), (1.2, 1000)] {
            let plan = plan(source(&out), &req(Some(Position::Seconds(t)), None), "v").unwrap();
            let Piece::Source { offset, .. } = plan.pieces().last().unwrap() else {
                panic!("{t}: {:?}", plan.pieces())
            };
            let tag = Reader::new(&f, out.len() as u64).tag_at(*offset).unwrap().unwrap();
            assert_eq!(tag.timestamp, want, "{t}");
            assert!(can_start(&tag, true), "{t}");
        }
    }

    #[test]
    fn bad_requests() {
        let bytes = gops();
        for (s, e) in [
            (Some(Position::Seconds(99.0)), None),
            (Some(Position::Byte(14)), None),
            (Some(Position::Byte(1)), None),
            (Some(Position::Byte(1 << 40)), None),
            (Some(Position::Seconds(2.0)), Some(Position::Seconds(1.0))),
            (Some(Position::Seconds(1.0)), Some(Position::Seconds(1.0))),
        ] {
            let err = plan(source(&bytes), &req(s, e), "v").unwrap_err();
            assert!(matches!(err, Error::BadRequest(_)), "{s:?} {e:?}: {err}");
        }
    }

    #[test]
    fn byte_start_snaps_forward_to_keyframe() {
        let bytes = gops();
        // Offset 58 is the audio tag after the first keyframe: next keyframe is at 98.
        let plan = plan(source(&bytes), &req(Some(Position::Byte(58)), None), "v").unwrap();
        assert!(matches!(plan.pieces().last().unwrap(), Piece::Source { offset: 98, .. }));
    }

    #[test]
    fn corrupt_and_truncated_files_do_not_panic() {
        let bytes = gops();
        for cut in 0..bytes.len() {
            for r in [
                req(Some(Position::Seconds(1.5)), None),
                req(Some(Position::Seconds(0.5)), Some(Position::Seconds(1.2))),
                req(Some(Position::Byte(98)), None),
            ] {
                let _ = plan(source(&bytes[..cut]), &r, "v");
            }
        }
        let mut bad = bytes.clone();
        for i in 13..bad.len() {
            bad[i] ^= 0xA5;
            let _ = plan(source(&bad), &req(Some(Position::Seconds(1.5)), None), "v");
            bad[i] ^= 0xA5;
        }
        assert!(matches!(
            plan(source(b"NOTFLV......."), &req(Some(Position::Seconds(1.0)), None), "v"),
            Err(Error::Corrupt { .. })
        ));
    }
}
