//! FLV end to end: `loomiere index` against yamdi and flvmeta, seeked outputs judged by
//! ffmpeg/ffprobe, `inspect`, and damaged files giving errors (never panics, never a
//! damaged input).

mod common;

use common::{decode_errors, duration, first_pts, flvmeta_check, loomiere, media, require_tool, run, scratch};
use loomiere::flv::amf0::Value;
use loomiere::flv::scan::read_metadata;
use loomiere::flv::tags::{Reader, Tag, Walk};
use loomiere::media::Source;
use loomiere::{Error, Position, Request};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The onMetaData of a file and its keyframe index as (seconds, position) pairs.
fn index_of(path: &Path) -> (Value, Vec<(f64, u64)>) {
    let src = Source::open(path).unwrap();
    let mut r = Reader::new(&src, src.len);
    let h = r.header().unwrap();
    let first = r.tag_at(h.first_tag()).unwrap().unwrap();
    let meta = read_metadata(&r, &first).unwrap();
    let kf = meta.get("keyframes").expect("keyframes");
    let t = kf.get("times").and_then(Value::elements).unwrap();
    let p = kf.get("filepositions").and_then(Value::elements).unwrap();
    assert_eq!(t.len(), p.len());
    let pairs = t.iter().zip(p).map(|(t, p)| (t.as_f64().unwrap(), p.as_f64().unwrap() as u64)).collect();
    (meta, pairs)
}

/// The tag at `pos` in `path`.
fn tag_at(path: &Path, pos: u64) -> Option<Tag> {
    let src = Source::open(path).unwrap();
    let mut r = Reader::new(&src, src.len);
    r.tag_at(pos).ok().flatten()
}

/// All tags of a file (panics on a damaged file: outputs must walk cleanly).
fn tags_of(path: &Path) -> Vec<Tag> {
    let src = Source::open(path).unwrap();
    let mut r = Reader::new(&src, src.len);
    let h = r.header().unwrap();
    Walk::new(&mut r, h.first_tag()).collect::<loomiere::Result<_>>().unwrap()
}

/// Index entries that point at pictures (yamdi and flvmeta also list the AVC configuration
/// and end-of-sequence tags, which carry the keyframe flag but no picture).
fn picture_entries(path: &Path, index: &[(f64, u64)]) -> Vec<(f64, u64)> {
    index.iter().copied().filter(|&(_, p)| tag_at(path, p).is_some_and(|t| t.is_keyframe())).collect()
}

fn loomiere_index(input: &Path, out: &Path) {
    let o = run(loomiere().arg("index").arg(input).arg("-o").arg(out));
    assert!(o.status.success(), "loomiere index failed: {}", String::from_utf8_lossy(&o.stderr));
}

fn check_exit(path: &Path) -> i32 {
    run(loomiere().arg("index").arg("--check").arg(path)).status.code().unwrap_or(-1)
}

/// What an index entry names: "picture", "config" (AVC sequence header) or "end" (AVC
/// end of sequence); anything else is reported as "other".
fn entry_kind(path: &Path, pos: u64) -> &'static str {
    match tag_at(path, pos) {
        Some(t) if t.is_keyframe() => "picture",
        Some(t) if t.is_video_config() && t.frame_type() == Some(1) => "config",
        Some(t) if t.frame_type() == Some(1) && t.is_end_of_sequence() => "end",
        _ => "other",
    }
}

/// flvmeta's verdict must be clean: zero errors and zero warnings.
fn assert_flvmeta_clean(path: &Path) {
    let (errors, warnings, messages) = flvmeta_check(path);
    assert_eq!((errors, warnings), (0, 0), "flvmeta --check {}: {messages:#?}", path.display());
}

#[test]
fn index_agrees_with_yamdi_and_flvmeta() {
    require_tool("yamdi");
    require_tool("flvmeta");
    let dir = scratch("flv-index-vs");
    for name in ["short.flv", "sorenson.flv"] {
        let input = media(name);
        let before = std::fs::read(&input).unwrap();
        let ours = dir.join(format!("ours-{name}"));
        loomiere_index(&input, &ours);
        assert_eq!(std::fs::read(&input).unwrap(), before, "{name}: input changed");
        assert_flvmeta_clean(&ours);

        let yamdi = dir.join(format!("yamdi-{name}"));
        assert!(run(Command::new("yamdi").arg("-i").arg(&input).arg("-o").arg(&yamdi)).status.success());
        let flvmeta = dir.join(format!("flvmeta-{name}"));
        assert!(run(Command::new("flvmeta").arg("-U").arg(&input).arg(&flvmeta)).status.success());

        let (meta, idx) = index_of(&ours);
        assert!(!idx.is_empty());
        // Every entry points at a video tag of the output flagged as a keyframe, with that time.
        for &(t, p) in &idx {
            let tag = tag_at(&ours, p).unwrap_or_else(|| panic!("{name}: no tag at {p}"));
            assert_eq!(tag.frame_type(), Some(1), "{name}: {p} is not flagged as a keyframe");
            assert!((tag.seconds() - t).abs() < 1e-9, "{name}: time {t} vs tag {}", tag.seconds());
        }
        // flvmeta's convention exactly: one entry per timestamp, the first tag flagged as a
        // keyframe at it (the AVC configuration at 0, the end-of-sequence tag last).
        let kinds = |path: &Path, index: &[(f64, u64)]| -> Vec<(f64, &'static str)> {
            index.iter().map(|&(t, p)| (t, entry_kind(path, p))).collect()
        };
        let (_, theirs) = index_of(&flvmeta);
        assert_eq!(kinds(&ours, &idx), kinds(&flvmeta, &theirs), "{name}: entries differ from flvmeta -U");
        // yamdi lists the same tags plus the picture that shares time 0 with the configuration.
        let (_, y) = index_of(&yamdi);
        let mut y_kinds = kinds(&yamdi, &y);
        y_kinds.dedup_by(|b, a| a.0 == b.0);
        assert_eq!(kinds(&ours, &idx), y_kinds, "{name}: entries differ from yamdi's (duplicates removed)");
        if name == "short.flv" {
            assert_eq!(idx[0].0, 0.0);
            assert_eq!(entry_kind(&ours, idx[0].1), "config");
            assert_eq!(entry_kind(&ours, idx[idx.len() - 1].1), "end");
        } else {
            assert!(kinds(&ours, &idx).iter().all(|k| k.1 == "picture"));
        }
        let last = idx[idx.len() - 1];
        assert_eq!(meta.get("lastkeyframetimestamp").and_then(Value::as_f64), Some(last.0));
        assert_eq!(meta.get("lastkeyframelocation").and_then(Value::as_f64), Some(last.1 as f64));
        for (tool, out) in [("yamdi", &yamdi), ("flvmeta", &flvmeta)] {
            assert!(check_exit(out) == 0, "{name}: --check rejects {tool}'s index");
        }

        // Duration: ffprobe reads the output's, equal to the source's, and to ours.
        let d = duration(&ours);
        assert!((d - duration(&input)).abs() < 0.1, "{name}: duration {d}");
        assert!((meta.get("duration").and_then(Value::as_f64).unwrap() - d).abs() < 0.1);
        assert_eq!(meta.get("filesize").and_then(Value::as_f64), Some(std::fs::metadata(&ours).unwrap().len() as f64));
        assert_eq!(decode_errors(&ours), "");
        assert_eq!(check_exit(&ours), 0);
        assert_eq!(check_exit(&input), 1);
        // Indexing the outputs of the other tools (their keys, onLastSecond) is clean too.
        for (tool, out) in [("yamdi", &yamdi), ("flvmeta", &flvmeta)] {
            let again = dir.join(format!("ours-of-{tool}-{name}"));
            loomiere_index(out, &again);
            assert_flvmeta_clean(&again);
        }
    }
}

#[test]
fn seeks_through_our_own_index_start_on_pictures() {
    let dir = scratch("flv-seek-own-index");
    let indexed = dir.join("indexed.flv");
    loomiere_index(&media("short.flv"), &indexed);
    let (_, idx) = index_of(&indexed);
    // Time 0 is the configuration entry, 59.96 the end-of-sequence entry: both must still
    // give an output that starts on a picture keyframe with its sequence headers.
    for (start, first) in [(0.0, 0.0), (0.01, 0.0), (31.0, 30.0), (58.5, 58.0), (59.97, 58.0), (60.0, 58.0)] {
        let out = dir.join(format!("seek-{start}.flv"));
        let req = Request { start: secs(start), ..Request::default() };
        seek(&indexed, &req, &out).unwrap_or_else(|e| panic!("start {start}: {e}"));
        assert_eq!(decode_errors(&out), "", "start {start}");
        let v = first_pts(&out, "v").unwrap();
        // The first picture is shown a composition offset after its decode time.
        assert!(v >= first && v < first + 0.2, "start {start}: first video pts {v}, want {first}");
        let tags = tags_of(&out);
        assert!(tags.iter().any(|t| t.is_video_config()), "start {start}: no AVC configuration");
        assert!(tags.iter().find(|t| t.kind == 9 && !t.is_video_config()).is_some_and(|t| t.is_keyframe()));
    }
    // What a player sends: the byte positions of the entries that name a configuration or a
    // picture decode; the end-of-sequence entry has nothing to play after it.
    for &(t, p) in &idx {
        let out = dir.join(format!("byte-{p}.flv"));
        let req = Request { start: Some(Position::Byte(p)), ..Request::default() };
        match entry_kind(&indexed, p) {
            "end" => assert!(matches!(loomiere::media::open(&indexed, &req), Err(Error::BadRequest(_)))),
            _ => {
                seek(&indexed, &req, &out).unwrap_or_else(|e| panic!("byte {p}: {e}"));
                assert_eq!(decode_errors(&out), "", "byte {p}");
                let v = first_pts(&out, "v").unwrap();
                assert!(v >= t && v < t + 0.2, "byte {p}: first video pts {v}, keyframe at {t}");
            }
        }
    }
}

#[test]
fn index_in_place_is_atomic_and_refreshes_existing_metadata() {
    let dir = scratch("flv-index-inplace");
    let copy = dir.join("kf.flv");
    std::fs::copy(media("short.kf.flv"), &copy).unwrap();
    let o = run(loomiere().arg("index").arg(&copy));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "temporary file left behind");
    let (meta, idx) = index_of(&copy);
    // yamdi's keys are kept, ours replace the computed ones.
    assert!(meta.get("metadatacreator").is_some());
    assert!(meta.get("audiosamplerate").is_some());
    assert_eq!(tags_of(&copy).iter().filter(|t| t.kind == 18).count(), 1);
    assert!(idx.iter().all(|&(_, p)| entry_kind(&copy, p) != "other"));
    assert_flvmeta_clean(&copy);
    assert_eq!(check_exit(&copy), 0);
    // Indexing an indexed file again gives the same bytes.
    let again = dir.join("again.flv");
    loomiere_index(&copy, &again);
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&again).unwrap());
}

/// Writes the plan for `req` over `input` to `out`.
fn seek(input: &Path, req: &Request, out: &Path) -> loomiere::Result<loomiere::Plan> {
    let plan = loomiere::media::open(input, req)?;
    loomiere::output::write_atomic(&plan, out, |_| {})?;
    Ok(plan)
}

fn secs(s: f64) -> Option<Position> {
    Some(Position::Seconds(s))
}

#[test]
fn seeked_outputs_decode_with_expected_duration() {
    let dir = scratch("flv-seek");
    // short.kf.flv goes through the onMetaData index, the others through the tag walk.
    for name in ["short.flv", "short.kf.flv", "sorenson.flv"] {
        let input = media(name);
        let src_dur = duration(&input);
        for (start, end) in [(30.5, None), (10.0, Some(20.0)), (0.5, Some(3.0)), (59.0, None), (45.3, Some(59.5))] {
            let out = dir.join(format!("{name}-{start}-{end:?}.flv"));
            let req = Request { start: secs(start), end: end.and_then(secs), ..Request::default() };
            let plan = seek(&input, &req, &out).unwrap_or_else(|e| panic!("{name} {start} {end:?}: {e}"));
            assert!(plan.pieces().len() <= 4, "{:?}", plan.pieces());
            assert_eq!(decode_errors(&out), "", "{name} {start}..{end:?}");
            let want = end.unwrap_or(src_dur) - start;
            let got = duration(&out);
            // Starts at the keyframe at or before `start` (2 s GOPs): up to one GOP longer.
            assert!(got >= want - 0.1 && got <= want + 2.1, "{name} {start}..{end:?}: duration {got}, want ~{want}");
            assert_eq!(plan.info.duration.map(|d| (d * 10.0).round()), Some((got * 10.0).round()));
            let v = first_pts(&out, "v").unwrap();
            assert!(v <= start + 0.2 && v >= start - 2.1, "{name}: first video pts {v} for start {start}");
            tags_of(&out);
        }
    }
}

#[test]
fn byte_starts_follow_nginx_semantics_but_decode() {
    let dir = scratch("flv-seek-bytes");
    let input = media("short.kf.flv");
    let (_, idx) = index_of(&input);
    let pictures = picture_entries(&input, &idx);
    let (t, pos) = pictures[10];
    let out = dir.join("byte.flv");
    let req = Request { start: Some(Position::Byte(pos)), ..Request::default() };
    seek(&input, &req, &out).unwrap();
    assert_eq!(decode_errors(&out), "");
    let v = first_pts(&out, "v").unwrap();
    assert!((v - t).abs() < 0.2, "first pts {v}, keyframe at {t}");

    // With an end in seconds.
    let req = Request { start: Some(Position::Byte(pos)), end: secs(t + 5.0), ..Request::default() };
    seek(&input, &req, &out).unwrap();
    assert_eq!(decode_errors(&out), "");
    assert!((duration(&out) - 5.0).abs() < 0.2, "{}", duration(&out));

    // A tag that is not a keyframe snaps forward to the next keyframe.
    let next_tag = tag_at(&input, pos).unwrap().end();
    let req = Request { start: Some(Position::Byte(next_tag)), ..Request::default() };
    seek(&input, &req, &out).unwrap();
    assert_eq!(decode_errors(&out), "");
    assert!((first_pts(&out, "v").unwrap() - pictures[11].0).abs() < 0.2);

    // Not a tag start, or beyond the file: bad request.
    for n in [pos + 1, 5, u64::MAX / 2] {
        let req = Request { start: Some(Position::Byte(n)), ..Request::default() };
        let err = loomiere::media::open(&input, &req).unwrap_err();
        assert!(matches!(err, Error::BadRequest(_)), "{n}: {err}");
        assert_eq!(err.http_status(), 400);
    }
}

#[test]
fn out_of_range_requests_are_bad_requests() {
    let input = media("short.flv");
    for (s, e) in [(Some(100.0), None), (Some(30.0), Some(20.0)), (Some(30.0), Some(30.0))] {
        let req = Request { start: s.and_then(secs), end: e.and_then(secs), ..Request::default() };
        let err = loomiere::media::open(&input, &req).unwrap_err();
        assert!(matches!(err, Error::BadRequest(_)), "{s:?} {e:?}: {err}");
    }
    // An end beyond the duration is clamped to the end of the file.
    let req = Request { start: secs(50.0), end: secs(500.0), ..Request::default() };
    let plan = loomiere::media::open(&input, &req).unwrap();
    assert!(plan.info.duration.unwrap() < 12.0);
}

fn truncated(dir: &Path, name: &str, keep: usize) -> PathBuf {
    let bytes = std::fs::read(media(name)).unwrap();
    let p = dir.join(format!("trunc-{keep}-{name}"));
    std::fs::write(&p, &bytes[..keep.min(bytes.len())]).unwrap();
    p
}

#[test]
fn damaged_files_give_errors_not_panics() {
    let dir = scratch("flv-damaged");
    for keep in [0, 5, 12, 20, 300, 1_000_003] {
        let p = truncated(&dir, "short.flv", keep);
        let before = std::fs::read(&p).unwrap();
        // index refuses, naming the offset, and leaves the input alone.
        let o = run(loomiere().arg("index").arg(&p));
        assert_eq!(o.status.code(), Some(1), "{keep}");
        let msg = String::from_utf8_lossy(&o.stderr);
        assert!(msg.contains("offset") || msg.contains("not an FLV"), "{keep}: {msg}");
        assert_eq!(std::fs::read(&p).unwrap(), before);
        assert_eq!(
            std::fs::read_dir(&dir)
                .unwrap()
                .filter(|e| { e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp") })
                .count(),
            0
        );
        // inspect reports up to the fault and fails naming its offset.
        let o = run(loomiere().arg("inspect").arg(&p));
        assert_eq!(o.status.code(), Some(1), "{keep}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("offset") || err.contains("not an FLV"), "{keep}: {err}");
        // Seeks: errors, never panics; a time past the fault is an error.
        for req in [
            Request { start: secs(50.0), ..Request::default() },
            Request { start: secs(0.1), end: secs(40.0), ..Request::default() },
            Request { start: Some(Position::Byte(13)), end: secs(1.0), ..Request::default() },
        ] {
            let _ = loomiere::media::open(&p, &req);
        }
        let req = Request { start: secs(50.0), ..Request::default() };
        if keep > 13 {
            assert!(loomiere::media::open(&p, &req).is_err(), "{keep}");
        }
    }
    let p = truncated(&dir, "short.flv", 1_000_003);
    let o = run(loomiere().arg("inspect").arg("--json").arg(&p));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(json["fault_offset"].as_u64().is_some());
    assert!(json["tags"]["video"].as_u64().unwrap() > 100);
}

#[test]
fn inspect_reports_codecs_keyframes_and_metadata() {
    let o = run(loomiere().arg("inspect").arg("--json").arg(media("short.kf.flv")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["video"]["codec_id"], 7);
    assert_eq!(j["video"]["width"], 320);
    assert_eq!(j["audio"]["codec_id"], 10);
    assert_eq!(j["keyframes"]["count"], 30);
    assert_eq!(j["keyframes"]["avg_spacing"], 2.0);
    assert!(j["metadata"]["keyframes"]["times"].as_array().unwrap().len() > 20);
    let o = run(loomiere().arg("inspect").arg(media("sorenson.flv")));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Sorenson") && text.contains("MP3") && text.contains("320x240"), "{text}");
    // The same subcommand reads MP4 through the MP4 engine.
    let o = run(loomiere().arg("inspect").arg(media("short.mp4")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn audio_only_and_video_only_files() {
    let dir = scratch("flv-one-stream");
    let src = media("short.mp4");
    for (name, args) in [
        ("audio.flv", ["-vn", "-c:a", "copy"]),
        ("mp3.flv", ["-vn", "-c:a", "libmp3lame"]),
        ("video.flv", ["-an", "-c:v", "copy"]),
    ] {
        let input = dir.join(name);
        let o = run(Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(&src)
            .args(args)
            .args(["-f", "flv"])
            .arg(&input));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let whole = loomiere::media::open(&input, &Request::default()).unwrap();
        assert!((whole.info.duration.unwrap() - duration(&input)).abs() < 0.2, "{name}: whole-file duration");

        let indexed = dir.join(format!("indexed-{name}"));
        loomiere_index(&input, &indexed);
        assert_eq!(check_exit(&indexed), 0, "{name}");
        let (errors, warnings, messages) = flvmeta_check(&indexed);
        if name == "video.flv" {
            assert_eq!((errors, warnings), (0, 0), "{name}: {messages:#?}");
        } else {
            // flvmeta warns on every audio-only file, its own outputs included, that the
            // header has no video flag (W11006, which is right) and that no picture size can
            // be found (W60079). Nothing else is allowed.
            assert_eq!(errors, 0, "{name}: {messages:#?}");
            let codes = |m: &[String]| -> Vec<String> {
                m.iter()
                    .filter_map(|l| l.split_whitespace().nth(2))
                    .map(|c| c.trim_end_matches(':').to_string())
                    .collect()
            };
            assert_eq!(codes(&messages), ["W11006", "W60079"], "{name}: {messages:#?}");
            let theirs = dir.join(format!("flvmeta-{name}"));
            assert!(run(Command::new("flvmeta").arg("-U").arg(&input).arg(&theirs)).status.success());
            let their_codes = codes(&flvmeta_check(&theirs).2);
            assert!(their_codes.iter().any(|c| c == "W11006") && their_codes.iter().any(|c| c == "W60079"));
        }
        assert_eq!(decode_errors(&indexed), "");
        let (meta, idx) = index_of(&indexed);
        let video = name == "video.flv";
        assert_eq!(meta.get("hasVideo"), Some(&Value::Boolean(video)));
        assert_eq!(meta.get("hasAudio"), Some(&Value::Boolean(!video)));
        assert_eq!(idx.is_empty(), !video);

        for file in [&input, &indexed] {
            let out = dir.join(format!("seek-{name}"));
            let req = Request { start: secs(21.0), end: secs(33.0), ..Request::default() };
            seek(file, &req, &out).unwrap();
            assert_eq!(decode_errors(&out), "", "{name}");
            let d = duration(&out);
            let want = if video { 13.0 } else { 12.0 }; // video starts at the keyframe at 20 s
            assert!((d - want).abs() < 0.2, "{name}: duration {d}, want {want}");
        }
    }
}
