//! `onMetaData` indexing, like yamdi and flvmeta: one walk over the file, then a plan whose
//! synthesised part is a new FLV header and `onMetaData` tag (duration, size, codecs, data
//! rates, `keyframes: { times, filepositions }` …, other existing keys kept) and whose file
//! pieces are the source tags minus the old `onMetaData` tags. Positions are those of the
//! OUTPUT: every number is an 8-byte double, so the metadata's size is known before the
//! positions are, and computed first. Also: the `--check` verdict on an existing index, and
//! the atomic writer (temp file in the destination's directory, then rename).

use super::amf0::{self, Value};
use super::scan::{scan, Scan};
use super::tags::{self, Reader, SCRIPT};
use crate::media::Source;
use crate::plan::{Bytes, Piece, Plan};
use crate::{Error, Result};
use std::sync::Arc;

/// A built index: the output plan and what went into it.
pub struct Indexed {
    /// The output: header + metadata (synthesised), then file ranges.
    pub plan: Plan,
    /// The new `onMetaData` value.
    pub metadata: Value,
    /// Keyframes indexed.
    pub keyframes: usize,
    /// Duration written, seconds.
    pub duration: f64,
}

/// Audio sample rates by the FLV SoundRate field.
const RATES: [f64; 4] = [5512.5, 11025.0, 22050.0, 44100.0];

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Builds the indexed output for `src`. Refuses damaged files (the fault's offset is in the
/// error) and files with more keyframes than the index can hold. `progress` gets the byte
/// offset reached by the walk.
pub fn build(src: Source, progress: impl FnMut(u64)) -> Result<Indexed> {
    let file = src.clone();
    let mut reader = Reader::new(&file, src.len);
    let s = scan(&mut reader, progress)?;
    if let Some(e) = s.fault {
        return Err(e);
    }
    if s.keyframes_capped {
        return Err(Error::Unsupported(format!(
            "more than {} keyframes: too many for an onMetaData index",
            super::scan::MAX_KEYFRAMES
        )));
    }
    let header = s.header.ok_or_else(|| Error::corrupt(0, "no FLV header"))?;
    let first_tag = header.first_tag();

    // The output: new header, new metadata, then [first_tag, end) minus the old metadata.
    let skipped: Vec<(u64, u64)> = s.metadata_tags.iter().map(|t| (t.offset, t.end())).collect();
    let skipped_total: u64 = skipped.iter().map(|(a, b)| b - a).sum();
    let kept = (s.end - first_tag).saturating_sub(skipped_total);

    let mut meta = match s.metadata.as_ref().map(|(_, v)| v) {
        Some(v @ (Value::EcmaArray(_) | Value::Object(_))) => Value::EcmaArray(v.pairs().unwrap_or(&[]).to_vec()),
        _ => Value::EcmaArray(Vec::new()),
    };
    // Pass 1 with placeholder positions (all numbers are 8 bytes), pass 2 with the real ones.
    fill(&mut meta, &s, &|_| 0);
    let meta_tag_len = tags::TAG_HEADER_LEN + amf0::script_len("onMetaData", &meta) as u64 + 4;
    let head_len = 13 + meta_tag_len;
    let out_pos = |o: u64| -> u64 {
        let before: u64 = skipped.iter().filter(|(a, _)| *a < o).map(|(a, b)| b - a).sum();
        head_len + (o - first_tag) - before
    };
    let filesize = head_len + kept;
    fill(&mut meta, &s, &out_pos);
    meta.set("filesize", Value::Number(filesize as f64));
    // flvmeta's `datasize`: the bytes of the script tags (the new one and those kept).
    let datasize = meta_tag_len - 4 + s.other_script_bytes;
    meta.set("datasize", Value::Number(datasize as f64));
    let body = amf0::encode_script("onMetaData", &meta);
    if tags::TAG_HEADER_LEN + body.len() as u64 + 4 != meta_tag_len {
        return Err(Error::corrupt(0, "internal: metadata size changed between passes"));
    }

    let mut synth = tags::file_header(s.has_audio(), s.has_video()).to_vec();
    synth.extend(tags::tag_bytes(SCRIPT, 0, &body));
    let mut pieces = vec![Piece::Synth(Arc::new(Bytes(synth)))];
    let mut at = first_tag;
    for &(a, b) in &skipped {
        pieces.push(Piece::Source { offset: at, len: a - at });
        at = b;
    }
    pieces.push(Piece::Source { offset: at, len: s.end - at });

    let mut info = src.info("video/x-flv");
    info.duration = Some(s.duration());
    info.header_len = head_len;
    let plan = Plan::new(src, pieces, info)?;
    Ok(Indexed { plan, keyframes: s.keyframes.len(), duration: round3(s.duration()), metadata: meta })
}

/// Keys that describe the video stream, removed when there is none (flvmeta warns about them).
const VIDEO_KEYS: &[&str] = &[
    "width",
    "height",
    "videocodecid",
    "videodatarate",
    "videosize",
    "framerate",
    "lastkeyframetimestamp",
    "lastkeyframelocation",
];
/// Keys that describe the audio stream, removed when there is none.
const AUDIO_KEYS: &[&str] =
    &["audiocodecid", "audiodatarate", "audiosize", "audiosamplerate", "audiosamplesize", "stereo"];

/// Sets the computed keys; `pos` maps a source offset to the output offset. Every key that
/// flvmeta's checker recomputes from the tags is written here from the same tags (or removed
/// when its stream is absent), so an index never carries a stale value from the source.
fn fill(meta: &mut Value, s: &Scan, pos: &dyn Fn(u64) -> u64) {
    let duration = round3(s.duration());
    let num = Value::Number;
    meta.set("hasMetadata", Value::Boolean(true));
    meta.set("hasVideo", Value::Boolean(s.has_video()));
    meta.set("hasAudio", Value::Boolean(s.has_audio()));
    meta.set("hasKeyframes", Value::Boolean(!s.index.is_empty()));
    meta.set("canSeekToEnd", Value::Boolean(s.last_video_is_key));
    meta.set("duration", num(duration));
    meta.set("lasttimestamp", num(f64::from(s.last_ts) / 1000.0));
    for key in VIDEO_KEYS.iter().filter(|_| !s.has_video()).chain(AUDIO_KEYS.iter().filter(|_| !s.has_audio())) {
        meta.remove(key);
    }
    match s.index.last() {
        Some(k) => {
            meta.set("lastkeyframetimestamp", num(f64::from(k.timestamp) / 1000.0));
            meta.set("lastkeyframelocation", num(pos(k.offset) as f64));
        }
        None => {
            meta.remove("lastkeyframetimestamp");
            meta.remove("lastkeyframelocation");
        }
    }
    if let Some((w, h)) = s.dims {
        meta.set("width", num(f64::from(w)));
        meta.set("height", num(f64::from(h)));
    }
    // kbit/s with 1024-bit kilobits, of codec payload: yamdi's and flvmeta's unit.
    let rate = |bytes: u64| if duration > 0.0 { bytes as f64 * 8.0 / 1024.0 / duration } else { 0.0 };
    if s.has_video() {
        if let Some(c) = s.video.codec {
            meta.set("videocodecid", num(f64::from(c)));
        }
        meta.set("videodatarate", num(rate(s.video.payload)));
        meta.set("videosize", num(s.video.tag_bytes as f64));
        let span = f64::from(s.video.last_ts.saturating_sub(s.video.first_ts));
        if s.video.frames > 1 && span > 0.0 {
            meta.set("framerate", num((s.video.frames - 1) as f64 * 1000.0 / span));
        }
    }
    if s.has_audio() {
        if let Some(c) = s.audio.codec {
            meta.set("audiocodecid", num(f64::from(c)));
        }
        meta.set("audiodatarate", num(rate(s.audio.payload)));
        meta.set("audiosize", num(s.audio.tag_bytes as f64));
        // From the tag flags, as players and flvmeta read them (AAC always says 44.1 kHz
        // stereo there; its real rate is in the AudioSpecificConfig).
        let f = s.audio.flags;
        meta.set("audiosamplerate", num(RATES[usize::from((f >> 2) & 3)]));
        meta.set("audiosamplesize", num(if f & 2 != 0 { 16.0 } else { 8.0 }));
        meta.set("stereo", Value::Boolean(f & 1 != 0));
    }
    match (s.audio.first_tag_ts, s.video.first_tag_ts) {
        (Some(a), Some(v)) if s.has_audio() && s.has_video() => {
            meta.set("audiodelay", num((f64::from(a) - f64::from(v)) / 1000.0));
        }
        _ => meta.remove("audiodelay"),
    }
    meta.set("datasize", num(0.0));
    meta.set("filesize", num(0.0));
    meta.set("metadatacreator", Value::String(concat!("loomiere ", env!("CARGO_PKG_VERSION")).into()));
    let times = s.index.iter().map(|k| num(f64::from(k.timestamp) / 1000.0)).collect();
    let positions = s.index.iter().map(|k| num(pos(k.offset) as f64)).collect();
    meta.set(
        "keyframes",
        Value::Object(vec![
            ("times".into(), Value::StrictArray(times)),
            ("filepositions".into(), Value::StrictArray(positions)),
        ]),
    );
}

/// The verdict of `index --check`.
#[derive(Debug, serde::Serialize)]
pub struct Check {
    /// True when the file has a correct, complete keyframe index.
    pub ok: bool,
    /// What is wrong, one line each.
    pub problems: Vec<String>,
    /// Keyframes found in the stream (distinct timestamps).
    pub keyframes: usize,
    /// Entries in the file's index.
    pub indexed: usize,
}

/// Checks whether `src` already carries a correct index: an `onMetaData` first tag with a
/// duration close to the stream's, a matching `filesize` if present, and `keyframes` arrays
/// whose every entry points at a video keyframe tag with that time, covering every keyframe
/// time of the stream. Indexes that also list the AVC configuration or end-of-sequence tags
/// (flagged as keyframes) or duplicate timestamps, as yamdi's and flvmeta's do, are accepted.
pub fn check(src: &Source) -> Result<Check> {
    let mut reader = Reader::new(src, src.len);
    let s = scan(&mut reader, |_| {})?;
    if let Some(e) = s.fault {
        return Err(e);
    }
    let mut c = Check { ok: false, problems: Vec::new(), keyframes: s.keyframes.len(), indexed: 0 };
    let mut problem = |p: String| c.problems.push(p);
    if let Some(e) = &s.metadata_error {
        problem(format!("onMetaData cannot be read: {e}"));
    }
    let first_tag = s.header.map(|h| h.first_tag()).unwrap_or(13);
    let Some((tag, meta)) = &s.metadata else {
        if s.metadata_error.is_none() {
            problem("no onMetaData tag".into());
        }
        c.ok = c.problems.is_empty();
        return Ok(c);
    };
    if tag.offset != first_tag {
        problem(format!("onMetaData is at offset {}, not the first tag", tag.offset));
    }
    if s.metadata_tags.len() > 1 {
        problem(format!("{} onMetaData tags", s.metadata_tags.len()));
    }
    match meta.get("duration").and_then(Value::as_f64) {
        Some(d) if (d - s.duration()).abs() <= 0.5 => {}
        Some(d) => problem(format!("duration says {d} s, the stream lasts {:.3} s", s.duration())),
        None => problem("no duration".into()),
    }
    if let Some(fs) = meta.get("filesize").and_then(Value::as_f64) {
        if fs != src.len as f64 {
            problem(format!("filesize says {fs}, the file has {} bytes", src.len));
        }
    }
    let kf = meta.get("keyframes");
    let times = kf.and_then(|k| k.get("times")).and_then(Value::elements);
    let positions = kf.and_then(|k| k.get("filepositions")).and_then(Value::elements);
    match (times, positions) {
        (Some(t), Some(p)) if t.len() == p.len() => {
            c.indexed = t.len();
            let mut covered = Vec::with_capacity(t.len());
            let mut bad = 0usize;
            for (tv, pv) in t.iter().zip(p) {
                let (Some(time), Some(pos)) = (tv.as_f64(), pv.as_f64()) else {
                    bad += 1;
                    continue;
                };
                let ok = pos.is_finite() && pos >= 0.0 && pos.fract() == 0.0 && pos < src.len as f64;
                let tag = if ok { reader.tag_at(pos as u64).ok().flatten() } else { None };
                match tag {
                    Some(tag) if tag.frame_type() == Some(1) && (tag.seconds() - time).abs() <= 0.0015 => {
                        // An entry at the AVC configuration (flvmeta's for time 0) covers the
                        // picture that follows it at the same time.
                        if tag.is_keyframe() || tag.is_video_config() {
                            covered.push(tag.timestamp);
                        }
                    }
                    _ => bad += 1,
                }
            }
            if bad > 0 {
                problem(format!("{bad} keyframes entries do not point at a video keyframe with that time"));
            }
            covered.sort_unstable();
            let missing = s.keyframes.iter().filter(|k| covered.binary_search(&k.timestamp).is_err()).count();
            if missing > 0 {
                problem(format!("{missing} of {} keyframes are missing from the index", s.keyframes.len()));
            }
        }
        (Some(_), Some(_)) => problem("keyframes.times and keyframes.filepositions differ in length".into()),
        _ => problem("no keyframes index (keyframes.times, keyframes.filepositions)".into()),
    }
    c.ok = c.problems.is_empty();
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::super::tags::tests::{file_with, tiny};
    use super::super::tags::{tag_bytes, Walk};
    use super::*;
    use crate::sink::read_range;

    fn source(bytes: &[u8]) -> Source {
        file_with(bytes)
    }

    fn with_old_metadata() -> Vec<u8> {
        let mut v = tags::file_header(true, true).to_vec();
        let old = Value::EcmaArray(vec![
            ("duration".into(), Value::Number(1.0)),
            ("encoder".into(), Value::String("test".into())),
        ]);
        v.extend(tag_bytes(SCRIPT, 0, &amf0::encode_script("onMetaData", &old)));
        v.extend_from_slice(&tiny()[13..]);
        v
    }

    #[test]
    fn index_positions_point_at_keyframes_in_the_output() {
        for input in [tiny(), with_old_metadata()] {
            let idx = build(source(&input), |_| {}).unwrap();
            let out = read_range(&idx.plan, 0..idx.plan.len()).unwrap();
            let f = file_with(&out);
            let mut r = Reader::new(&f, out.len() as u64);
            let h = r.header().unwrap();
            let all: Vec<_> = Walk::new(&mut r, h.first_tag()).collect::<Result<_>>().unwrap();
            assert_eq!(all.iter().filter(|t| t.kind == SCRIPT).count(), 1);
            let meta = super::super::scan::read_metadata(&r, &all[0]).unwrap();
            assert_eq!(meta.get("filesize").and_then(Value::as_f64), Some(out.len() as f64));
            let pos = meta.get("keyframes").unwrap().get("filepositions").unwrap().elements().unwrap();
            assert_eq!(pos.len(), 1);
            // flvmeta's convention: the configuration tag stands for time 0.
            let tag = r.tag_at(pos[0].as_f64().unwrap() as u64).unwrap().unwrap();
            assert!(tag.is_video_config() && tag.frame_type() == Some(1));
            assert_eq!(meta.get("lastkeyframelocation").and_then(Value::as_f64), pos[0].as_f64());
            assert_eq!(meta.get("canSeekToEnd"), Some(&Value::Boolean(false)));
            assert_eq!(meta.get("audiodelay").and_then(Value::as_f64), Some(0.01));
            let script_bytes = all[0].size as f64 + 11.0;
            assert_eq!(meta.get("datasize").and_then(Value::as_f64), Some(script_bytes));
            // The output passes its own check.
            let c = check(&source(&out)).unwrap();
            assert!(c.ok, "{:?}", c.problems);
        }
        let idx = build(source(&with_old_metadata()), |_| {}).unwrap();
        assert_eq!(idx.metadata.get("encoder"), Some(&Value::String("test".into())));
        assert!(!check(&source(&with_old_metadata())).unwrap().ok);
    }

    #[test]
    fn damaged_input_is_refused() {
        let bytes = with_old_metadata();
        for cut in 0..bytes.len() {
            let r = build(source(&bytes[..cut]), |_| {});
            let _ = check(&source(&bytes[..cut]));
            if cut > 13 && r.is_ok() {
                // Only cuts at tag boundaries index.
                let f = file_with(&bytes[..cut]);
                let mut rd = Reader::new(&f, cut as u64);
                assert!(Walk::new(&mut rd, 13).all(|t| t.is_ok()));
            }
        }
    }

    #[test]
    fn flipped_bytes_never_panic() {
        let bytes = with_old_metadata();
        let mut bad = bytes.clone();
        for i in 0..bad.len() {
            for mask in [0x01, 0x80, 0xFF] {
                bad[i] ^= mask;
                if let Ok(idx) = build(source(&bad), |_| {}) {
                    let out = read_range(&idx.plan, 0..idx.plan.len()).unwrap();
                    assert_eq!(out.len() as u64, idx.plan.len());
                }
                let _ = check(&source(&bad));
                let _ = super::super::inspect::inspect(&source(&bad));
                bad[i] ^= mask;
            }
        }
    }

    #[test]
    fn atomic_write_leaves_no_temp_on_failure() {
        let idx = build(source(&tiny()), |_| {}).unwrap();
        let dir = std::env::temp_dir().join(format!("loomiere-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("out.flv");
        crate::output::write_atomic(&idx.plan, &dest, |_| {}).unwrap();
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), idx.plan.len());
        assert!(crate::output::write_atomic(&idx.plan, &dir.join("missing/x.flv"), |_| {}).is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
