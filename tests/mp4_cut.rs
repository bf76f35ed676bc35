//! End-to-end checks of `loomiere cut` and `loomiere inspect` on MP4: a table of cuts over the
//! generated media (moov first, moov last, a 2-hour file, audio only, a sparse 4 GiB co64 file),
//! each judged with ffprobe/ffmpeg (duration, streams, clean decode, A/V alignment, the right
//! keyframe, unchanged samples), chapters (QuickTime chapter track and Nero `chpl`) after a
//! cut, and a table of hostile inputs that must fail cleanly: non-zero
//! exit, a message, no panic, no output or temp file left behind, input untouched.
//!
//! Written to the engine's specification before the engine landed; seek positions are chosen
//! away from GOP boundaries (keyframes every 2 s) so that "the keyframe at or before start"
//! means the same whether measured in decode or presentation time.

mod common;

use common::{decode_errors, duration, loomiere, media, mp4_boxes, run, scratch, stream_count, BoxAt};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Slack on ffprobe durations: container rounding plus one frame at the end.
const EPS: f64 = 0.1;
/// One GOP of the generated media (`-g 50` at 25 fps).
const GOP: f64 = 2.0;
/// One video frame of the generated media (25 fps).
const FRAME: f64 = 0.04;
/// How many leading output packets are compared with the source.
const RUN: usize = 40;

// ---- helpers ---------------------------------------------------------------------------------

/// The audio-only `.m4a` (stream copy of short.mp4's AAC track), made once per test process.
fn audio_m4a() -> PathBuf {
    static M4A: OnceLock<PathBuf> = OnceLock::new();
    M4A.get_or_init(|| {
        let dir = scratch("mp4_cut-audio-source");
        let out = dir.join("audio.m4a");
        let o = run(Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-y", "-i"])
            .arg(media("short.mp4"))
            .args(["-vn", "-c", "copy"])
            .arg(&out));
        assert!(o.status.success(), "ffmpeg -vn failed: {}", String::from_utf8_lossy(&o.stderr));
        out
    })
    .clone()
}

/// A source by table name: a generated medium, or the m4a made above.
fn source(name: &str) -> PathBuf {
    if name == "audio.m4a" {
        audio_m4a()
    } else {
        media(name)
    }
}

/// Runs `loomiere cut FILE ARGS…`.
fn cut(file: &Path, args: &[&str]) -> Output {
    run(loomiere().arg("cut").arg(file).args(args))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a clean success and returns stdout.
fn ok(out: &Output, what: &str) -> String {
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{what}: panicked:\n{err}");
    assert!(out.status.success(), "{what}: exit {:?}\nstderr: {err}", out.status);
    text(&out.stdout)
}

/// One demuxed packet as ffprobe reports it.
#[derive(Debug, Clone)]
struct Packet {
    pts: Option<f64>,
    size: u64,
    key: bool,
}

/// Packets of the first stream of `kind` ("v" or "a") in decode order; `interval` is an
/// ffprobe `-read_intervals` value (empty = whole file).
fn packets(path: &Path, kind: &str, interval: &str) -> Vec<Packet> {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-select_streams", &format!("{kind}:0"), "-show_entries", "packet=pts_time,size,flags"]);
    if !interval.is_empty() {
        cmd.args(["-read_intervals", interval]);
    }
    let out = run(cmd.args(["-of", "json"]).arg(path));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ffprobe -show_packets {}: {e}: {}", path.display(), text(&out.stderr)));
    let num = |p: &Value, k: &str| p.get(k).and_then(Value::as_str).and_then(|s| s.parse::<f64>().ok());
    v["packets"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| Packet {
                    pts: num(p, "pts_time"),
                    size: num(p, "size").unwrap_or(-1.0) as u64,
                    key: p["flags"].as_str().is_some_and(|f| f.starts_with('K')),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first audio stream's sample rate, if there is audio.
fn audio_rate(path: &Path) -> Option<f64> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate", "-of", "csv=p=0"])
        .arg(path));
    text(&out.stdout).trim().parse().ok()
}

/// Presentation time (seconds) of the first decoded frame of the first stream of `kind`: the
/// smallest pts among the frames of the first 200 packets (robust to whichever stream's packet
/// comes first in the file and to B-frame reordering).
fn first_frame_pts(path: &Path, kind: &str) -> Option<f64> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", &format!("{kind}:0"), "-show_entries", "frame=pts_time"])
        .args(["-read_intervals", "%+#200", "-of", "csv=p=0"])
        .arg(path));
    text(&out.stdout).lines().filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok()).reduce(f64::min)
}

fn has_stream(path: &Path, kind: &str) -> bool {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", kind, "-show_entries", "stream=index", "-of", "csv=p=0"])
        .arg(path));
    !text(&out.stdout).trim().is_empty()
}

fn sha256(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    format!("{:x}", h.finalize())
}

/// Cheap fingerprint of a (possibly huge, sparse) input: length and modification time.
fn stamp(path: &Path) -> (u64, std::time::SystemTime) {
    let m = std::fs::metadata(path).unwrap();
    (m.len(), m.modified().unwrap())
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn find_box(data: &[u8], kind: &[u8; 4]) -> BoxAt {
    mp4_boxes(data)
        .into_iter()
        .find(|b| &b.kind == kind)
        .unwrap_or_else(|| panic!("no {} box", String::from_utf8_lossy(kind)))
}

// ---- the table of cuts -----------------------------------------------------------------------

/// One row of the table: cut `file` from `start` to `end` (seconds), exactly or at a keyframe.
struct Case {
    file: &'static str,
    start: Option<&'static str>,
    end: Option<&'static str>,
    exact: bool,
}

fn secs(s: Option<&str>) -> Option<f64> {
    s.map(|t| t.split(':').try_fold(0.0, |acc, part| part.parse::<f64>().map(|v| acc * 60.0 + v)).expect("table time"))
}

fn check_case(name: &str, case: Case) {
    let src = source(case.file);
    let before = stamp(&src);
    let dir = scratch(&format!("mp4_cut-{name}"));
    let ext = src.extension().and_then(|e| e.to_str()).unwrap_or("mp4");
    let out = dir.join(format!("clip.{ext}"));

    let mut args: Vec<String> = Vec::new();
    if let Some(s) = case.start {
        args.extend(["--start".into(), s.into()]);
    }
    if let Some(e) = case.end {
        args.extend(["--end".into(), e.into()]);
    }
    if case.exact {
        args.push("--exact".into());
    }
    args.extend(["-o".into(), out.display().to_string()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&cut(&src, &argv), &format!("cut {} {argv:?}", case.file));

    assert_eq!(dir_entries(&dir), vec![format!("clip.{ext}")], "only the output is left in its directory");
    assert_eq!(stamp(&src), before, "input changed");

    // Duration: end − start, up to one GOP longer when the start snaps back to a keyframe.
    let start = secs(case.start).unwrap_or(0.0);
    let src_dur = duration(&src);
    let expected = secs(case.end).map_or(src_dur, |e| e.min(src_dur)) - start;
    let got = duration(&out);
    if case.exact {
        assert!((got - expected).abs() <= EPS, "exact cut lasts {got} s, expected {expected} s");
    } else {
        let slack = if start > 0.0 { GOP } else { 0.0 };
        assert!(
            got >= expected - EPS && got <= expected + slack + EPS,
            "cut lasts {got} s, expected {expected} s (+ up to {slack} s to the keyframe)"
        );
    }

    assert_eq!(stream_count(&out), stream_count(&src), "stream count changed");
    let errors = decode_errors(&out);
    assert!(errors.trim().is_empty(), "decode errors:\n{errors}");

    // Audio starts with the video: first presentation times within one audio frame.
    let has_video = has_stream(&src, "v");
    if has_video {
        if let Some(rate) = audio_rate(&src) {
            let v = first_frame_pts(&out, "v").expect("video pts");
            let a = first_frame_pts(&out, "a").expect("audio pts");
            let frame = 1024.0 / rate;
            assert!((v - a).abs() <= frame + 0.005, "A/V start misaligned: video {v} s, audio {a} s");
        }
    }

    // The samples themselves: the output begins at the keyframe at or before start and carries
    // the source's packets unchanged from there.
    let kind = if has_video { "v" } else { "a" };
    let window = format!("{}%{}", (start - 2.0 * GOP).max(0.0), start + 3.0 * GOP + RUN as f64 * 0.05);
    let src_pk = packets(&src, kind, if start > 0.0 { &window } else { "" });
    let out_pk = packets(&out, kind, "");
    assert!(!out_pk.is_empty(), "no {kind} packets in the output");
    let n = RUN.min(out_pk.len());
    let out_sizes: Vec<u64> = out_pk[..n].iter().map(|p| p.size).collect();
    if has_video {
        let mut key = src_pk
            .iter()
            .rposition(|p| p.key && p.pts.is_some_and(|t| t <= start + 1e-3))
            .expect("a source keyframe at or before start");
        // Unless the next keyframe is shown less than a frame after start, not counting a
        // delay of up to a frame before the source's video (docs/design.md, "Seek semantics").
        let delay = if start > 0.0 { first_frame_pts(&src, "v").unwrap_or(0.0).clamp(0.0, FRAME) } else { 0.0 };
        if let Some(next) = src_pk.iter().skip(key + 1).position(|p| p.key).map(|i| key + 1 + i) {
            if src_pk[next].pts.is_some_and(|t| t > start + 1e-3 && t - start < FRAME + delay) {
                key = next;
            }
        }
        let want: Vec<u64> = src_pk[key..].iter().take(n).map(|p| p.size).collect();
        assert_eq!(out_sizes, want, "output video does not start at the keyframe for {start} s");
    } else {
        let found = src_pk.windows(n).any(|w| w.iter().map(|p| p.size).eq(out_sizes.iter().copied()));
        assert!(found, "output audio packets are not a run of the source's");
    }
}

macro_rules! cut_table {
    ($($name:ident: $file:literal, $start:expr, $end:expr, $exact:literal;)*) => {$(
        #[test]
        fn $name() {
            check_case(stringify!($name), Case { file: $file, start: $start, end: $end, exact: $exact });
        }
    )*};
}

cut_table! {
    short_10_5_to_20:          "short.mp4",     Some("10.5"),   Some("20"),   false;
    short_exact_10_5_to_20:    "short.mp4",     Some("10.5"),   Some("20"),   true;
    short_clock_to_end:        "short.mp4",     Some("0:41.3"), None,         false;
    short_exact_to_end:        "short.mp4",     Some("47.7"),   None,         true;
    short_end_only:            "short.mp4",     None,           Some("12.5"), false;
    faststart_31_to_45_5:      "faststart.mp4", Some("31"),     Some("45.5"), false;
    faststart_exact_5_3_to_9:  "faststart.mp4", Some("5.3"),    Some("9"),    true;
    moovend_25_5_to_end:       "moovend.mp4",   Some("25.5"),   None,         false;
    moovend_exact_13_1_to_21:  "moovend.mp4",   Some("13.1"),   Some("21"),   true;
    long_3600_to_3660:         "long.mp4",      Some("3600"),   Some("3660"), false;
    long_exact_1h0m1_to_3611:  "long.mp4",      Some("1:00:01.5"), Some("3611"), true;
    long_last_minute:          "long.mp4",      Some("7141"),   None,         false;
    audio_only_10_5_to_20:     "audio.m4a",     Some("10.5"),   Some("20"),   false;
    audio_only_exact_33_3:     "audio.m4a",     Some("33.3"),   Some("40"),   true;
    co64_small_cut:            "co64.mp4",      Some("10.5"),   Some("12.5"), false;
    co64_exact_small_cut:      "co64.mp4",      Some("50.3"),   Some("52"),   true;
}

// ---- whole-file requests keep every sample -----------------------------------------------------

fn sizes(path: &Path, kind: &str) -> Vec<u64> {
    packets(path, kind, "").into_iter().map(|p| p.size).collect()
}

fn assert_same_packets(name: &str, file: &str, args: &[&str]) {
    let src = media(file);
    let dir = scratch(name);
    let out = dir.join("whole.mp4");
    let mut argv = args.to_vec();
    let o = out.display().to_string();
    argv.extend(["-o", &o]);
    ok(&cut(&src, &argv), &format!("cut {file} {argv:?}"));
    for kind in ["v", "a"] {
        assert_eq!(sizes(&out, kind), sizes(&src, kind), "{kind} packets differ from the source's");
    }
    let errors = decode_errors(&out);
    assert!(errors.trim().is_empty(), "decode errors:\n{errors}");
}

#[test]
fn start_zero_keeps_every_packet() {
    assert_same_packets("mp4_cut-start-zero", "short.mp4", &["--start", "0"]);
}

#[test]
fn no_start_keeps_every_packet_faststart() {
    assert_same_packets("mp4_cut-no-start", "faststart.mp4", &[]);
}

// ---- co64 ------------------------------------------------------------------------------------

#[test]
fn forced_co64_output_has_co64_and_decodes() {
    let dir = scratch("mp4_cut-co64-forced");
    let out = dir.join("clip.mp4");
    let o = out.display().to_string();
    ok(&cut(&media("short.mp4"), &["--start", "20.5", "--end", "30", "--co64", "-o", &o]), "cut --co64");
    let data = std::fs::read(&out).unwrap();
    let found = mp4_boxes(&data);
    let co64 = found.iter().filter(|b| &b.kind == b"co64").count();
    let stco = found.iter().filter(|b| &b.kind == b"stco").count();
    assert!(co64 >= stream_count(&out), "expected a co64 box per track, found {co64} (and {stco} stco)");
    assert_eq!(stco, 0, "--co64 output still has stco boxes");
    let errors = decode_errors(&out);
    assert!(errors.trim().is_empty(), "decode errors:\n{errors}");
}

#[test]
fn co64_source_dry_run_prints_total() {
    let src = media("co64.mp4");
    let before = stamp(&src);
    let stdout = ok(&cut(&src, &["--start", "30.5", "--dry-run"]), "cut co64.mp4 --dry-run");
    assert!(stdout.to_ascii_lowercase().contains("total"), "dry run prints no total:\n{stdout}");
    assert_eq!(stamp(&src), before);
}

// ---- stdout, dry run, inspect ----------------------------------------------------------------

#[test]
fn stdout_output_equals_file_output() {
    let src = media("short.mp4");
    let dir = scratch("mp4_cut-stdout");
    let out = dir.join("clip.mp4");
    let o = out.display().to_string();
    ok(&cut(&src, &["--start", "14.5", "--end", "22", "-o", &o]), "cut -o FILE");
    let piped = cut(&src, &["--start", "14.5", "--end", "22", "-o", "-"]);
    ok(&piped, "cut -o -");
    let file = std::fs::read(&out).unwrap();
    assert!(!file.is_empty());
    assert!(piped.stdout == file, "stdout ({} bytes) differs from the file ({} bytes)", piped.stdout.len(), file.len());
}

#[test]
fn dry_run_prints_a_total_and_writes_nothing() {
    let dir = scratch("mp4_cut-dry-run");
    let src = dir.join("in.mp4");
    std::fs::copy(media("short.mp4"), &src).unwrap();
    let hash = sha256(&src);
    let stdout = ok(&cut(&src, &["--start", "10.5", "--end", "20", "--dry-run"]), "cut --dry-run");
    assert!(stdout.to_ascii_lowercase().contains("total"), "dry run prints no total:\n{stdout}");
    assert_eq!(dir_entries(&dir), vec!["in.mp4".to_string()]);
    assert_eq!(sha256(&src), hash);
}

fn inspect_json(file: &Path) -> Value {
    let out = run(loomiere().arg("inspect").arg(file).arg("--json"));
    let stdout = ok(&out, &format!("inspect --json {}", file.display()));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("inspect --json is not JSON ({e}):\n{stdout}"))
}

#[test]
fn inspect_json_has_boxes_and_tracks() {
    for file in [media("short.mp4"), media("faststart.mp4"), media("long.mp4"), media("co64.mp4"), audio_m4a()] {
        let v = inspect_json(&file);
        let name = file.display();
        assert!(v["error"].is_null(), "{name}: error {:?}", v["error"]);
        let boxes = v["boxes"].as_array().unwrap_or_else(|| panic!("{name}: no boxes array"));
        let top: Vec<&str> =
            boxes.iter().filter(|b| b["depth"].as_u64() == Some(0)).filter_map(|b| b["type"].as_str()).collect();
        for want in ["ftyp", "moov", "mdat"] {
            assert!(top.contains(&want), "{name}: no top-level {want} in {top:?}");
        }
        for b in boxes {
            for k in ["type", "offset", "size", "depth"] {
                assert!(!b[k].is_null(), "{name}: box without {k}: {b}");
            }
        }
        let tracks = v["tracks"].as_array().unwrap_or_else(|| panic!("{name}: no tracks array"));
        assert_eq!(tracks.len(), stream_count(&file), "{name}: track count");
        for t in tracks {
            for k in ["id", "kind", "codec", "timescale", "duration", "samples", "sync_samples", "bitrate"] {
                assert!(!t[k].is_null(), "{name}: track without {k}: {t}");
            }
            assert!(t["samples"].as_u64().unwrap_or(0) > 0, "{name}: track without samples: {t}");
        }
    }
}

/// ffprobe's JSON view of a file: streams and format.
fn ffprobe_json(file: &Path) -> Value {
    let o =
        run(Command::new("ffprobe").args(["-v", "error", "-show_streams", "-show_format", "-of", "json"]).arg(file));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("ffprobe json for {}: {e}", file.display()))
}

/// ffprobe's keyframes of the first video stream: (pts seconds, byte position).
fn ffprobe_keyframes(file: &Path) -> Vec<(f64, u64)> {
    let o = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,pos,flags", "-of", "csv=p=0"])
        .arg(file));
    text(&o.stdout)
        .lines()
        .filter(|l| l.split(',').nth(2).is_some_and(|f| f.starts_with('K')))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap())
        })
        .collect()
}

fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s}")),
        v => v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")),
    }
}

/// "25/1" → 25.
fn rate(v: &Value) -> f64 {
    let s = v.as_str().unwrap();
    let (a, b) = s.split_once('/').unwrap();
    num(&Value::String(a.into())) / num(&Value::String(b.into()))
}

/// H.264 profile_idc by the name ffprobe prints.
fn avc_profile_idc(name: &str) -> u8 {
    match name {
        "Baseline" | "Constrained Baseline" => 66,
        "Main" => 77,
        "Extended" => 88,
        "High" => 100,
        "High 10" => 110,
        other => panic!("unexpected H.264 profile {other}"),
    }
}

#[test]
fn inspect_agrees_with_ffprobe() {
    for name in ["short.mp4", "long.mp4", "faststart.mp4"] {
        let file = media(name);
        let ours = inspect_json(&file);
        let probe = ffprobe_json(&file);
        let format = &probe["format"];
        assert_eq!(ours["file_size"].as_u64().unwrap() as f64, num(&format["size"]), "{name}: size");
        assert!((num(&ours["duration"]) - num(&format["duration"])).abs() < 0.01, "{name}: duration");
        let br = num(&ours["bitrate"]) / num(&format["bit_rate"]);
        assert!((br - 1.0).abs() < 0.01, "{name}: bitrate {} vs {}", ours["bitrate"], format["bit_rate"]);
        assert_eq!(ours["brands"]["major"].as_str().unwrap(), format["tags"]["major_brand"].as_str().unwrap());
        let compatible: Vec<&str> =
            ours["brands"]["compatible"].as_array().unwrap().iter().map(|b| b.as_str().unwrap()).collect();
        assert_eq!(compatible.concat(), format["tags"]["compatible_brands"].as_str().unwrap(), "{name}: brands");

        let streams = probe["streams"].as_array().unwrap();
        let tracks = ours["tracks"].as_array().unwrap();
        assert_eq!(tracks.len(), streams.len());
        for (t, st) in tracks.iter().zip(streams) {
            let what = format!("{name} track {}", t["id"]);
            assert_eq!(t["codec"], st["codec_tag_string"], "{what}");
            assert_eq!(t["profile"], st["profile"], "{what}: profile");
            assert_eq!(t["samples"].as_u64().unwrap() as f64, num(&st["nb_frames"]), "{what}: samples");
            assert!((num(&t["duration"]) - num(&st["duration"])).abs() < 0.05, "{what}: duration {}", t["duration"]);
            let br = num(&t["bitrate"]) / num(&st["bit_rate"]);
            assert!((br - 1.0).abs() < 0.005, "{what}: bitrate {} vs {}", t["bitrate"], st["bit_rate"]);
            let codec = t["codec_string"].as_str().unwrap();
            match st["codec_type"].as_str().unwrap() {
                "video" => {
                    let profile = avc_profile_idc(st["profile"].as_str().unwrap());
                    let level = st["level"].as_u64().unwrap();
                    assert!(codec.starts_with(&format!("avc1.{profile:02x}")), "{what}: {codec}");
                    assert!(codec.ends_with(&format!("{level:02x}")) && codec.len() == 11, "{what}: {codec}");
                    assert_eq!(t["level"].as_u64(), Some(level));
                    assert_eq!(t["width"], st["width"]);
                    assert_eq!(t["height"], st["height"]);
                    assert!((num(&t["frame_rate"]) - rate(&st["avg_frame_rate"])).abs() < 0.01, "{what}: frame rate");
                    let keyframes = ffprobe_keyframes(&file);
                    let k = &t["keyframes"];
                    assert_eq!(k["count"].as_u64(), Some(keyframes.len() as u64), "{what}: keyframe count");
                    let gaps: Vec<f64> = keyframes.windows(2).map(|w| w[1].0 - w[0].0).collect();
                    let (min, max) =
                        (gaps.iter().copied().fold(f64::MAX, f64::min), gaps.iter().copied().fold(0.0, f64::max));
                    let avg = gaps.iter().sum::<f64>() / gaps.len() as f64;
                    assert!((num(&k["min_spacing"]) - min).abs() < 0.001, "{what}: min spacing");
                    assert!((num(&k["max_spacing"]) - max).abs() < 0.001, "{what}: max spacing");
                    assert!((num(&k["avg_spacing"]) - avg).abs() < 0.001, "{what}: avg spacing");
                }
                "audio" => {
                    assert_eq!(st["profile"], "LC");
                    assert_eq!(codec, "mp4a.40.2", "{what}");
                    assert_eq!(t["sample_rate"].as_u64(), Some(num(&st["sample_rate"]) as u64));
                    assert_eq!(t["channels"], st["channels"]);
                    assert!(t["keyframes"].is_null(), "{what}: every AAC sample is a sync sample");
                }
                other => panic!("{what}: unexpected stream {other}"),
            }
        }
        // The table says the same.
        let table = ok(&run(loomiere().arg("inspect").arg(&file)), "inspect");
        for t in tracks {
            assert!(table.contains(t["codec_string"].as_str().unwrap()), "{name}: table:\n{table}");
        }
    }
}

#[test]
fn inspect_hevc_codec_string() {
    let dir = scratch("mp4_cut-inspect-hevc");
    let file = dir.join("hevc.mp4");
    let o = run(Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=128x96:rate=25"])
        .args([
            "-t",
            "2",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx265",
            "-tag:v",
            "hvc1",
            "-x265-params",
            "log-level=error",
        ])
        .args(["-g", "25"])
        .arg(&file));
    assert!(o.status.success(), "ffmpeg libx265: {}", String::from_utf8_lossy(&o.stderr));
    let t = inspect_json(&file)["tracks"][0].clone();
    let st = ffprobe_json(&file)["streams"][0].clone();
    assert_eq!(t["profile"], st["profile"]);
    assert_eq!(t["level"], st["level"]);
    let level = st["level"].as_u64().unwrap();
    // Main (1), compatible with Main and Main 10 (flags 0x60000000 reversed: 6), main tier.
    let codec = t["codec_string"].as_str().unwrap();
    assert!(codec.starts_with(&format!("hvc1.1.6.L{level}")), "{codec}");
    assert_eq!((t["width"].as_u64(), t["height"].as_u64()), (Some(128), Some(96)));
    assert_eq!(t["keyframes"]["count"].as_u64(), Some(ffprobe_keyframes(&file).len() as u64));
}

#[test]
fn inspect_keyframes_lists_times_and_offsets() {
    for name in ["short.mp4", "long.mp4"] {
        let file = media(name);
        let out = run(loomiere().arg("inspect").arg("--json").arg("--keyframes").arg(&file));
        let v: Value = serde_json::from_str(&ok(&out, "inspect --json --keyframes")).unwrap();
        let theirs = ffprobe_keyframes(&file);
        let video = v["tracks"].as_array().unwrap().iter().find(|t| t["kind"] == "video").unwrap();
        let list = video["keyframe_list"].as_array().unwrap();
        assert_eq!(list.len(), theirs.len(), "{name}: keyframes listed");
        for (k, (pts, pos)) in list.iter().zip(&theirs) {
            assert!((num(&k["time"]) - pts).abs() < 0.001, "{name}: keyframe {k} vs ffprobe {pts}");
            assert_eq!(k["offset"].as_u64(), Some(*pos), "{name}: keyframe {k} offset");
        }
        // Without the flag there is no list; the table lists them with the flag.
        assert!(inspect_json(&file)["tracks"][0].get("keyframe_list").is_none());
        let table = ok(&run(loomiere().arg("inspect").arg("--keyframes").arg(&file)), "inspect --keyframes");
        let (_, last_pos) = theirs[theirs.len() - 1];
        assert!(table.contains(&last_pos.to_string()), "{name}: the last keyframe's offset is not in the table");
    }
    // FLV too: the picture keyframes with their tag offsets.
    let out = run(loomiere().arg("inspect").arg("--json").arg("--keyframes").arg(media("short.flv")));
    let v: Value = serde_json::from_str(&ok(&out, "inspect --json --keyframes short.flv")).unwrap();
    let list = v["keyframe_list"].as_array().unwrap();
    assert_eq!(list.len() as u64, v["keyframes"]["count"].as_u64().unwrap());
    assert_eq!(list.len(), ffprobe_keyframes(&media("short.flv")).len());
}

#[test]
fn inspect_says_where_the_moov_is() {
    let end = inspect_json(&media("moovend.mp4"));
    assert_eq!(end["moov"]["position"], "after mdat");
    let hint = end["hint"].as_str().unwrap();
    assert!(hint.contains("loomiere index") && hint.contains("moovend.mp4"), "{hint}");
    let table = ok(&run(loomiere().arg("inspect").arg(media("moovend.mp4"))), "inspect moovend.mp4");
    assert!(table.contains("after mdat") && table.contains("loomiere index"), "{table}");
    let front = inspect_json(&media("faststart.mp4"));
    assert_eq!(front["moov"]["position"], "before mdat");
    assert!(front["hint"].is_null());
    // What the hint says to run makes the file faststart.
    let dir = scratch("mp4_cut-inspect-hint");
    let copy = dir.join("moovend.mp4");
    std::fs::copy(media("moovend.mp4"), &copy).unwrap();
    ok(&run(loomiere().arg("index").arg(&copy)), "index moovend.mp4");
    let after = inspect_json(&copy);
    assert_eq!(after["moov"]["position"], "before mdat");
    assert!(after["hint"].is_null());
}

// ---- hostile inputs --------------------------------------------------------------------------

/// How a damaged input is made from a generated medium.
enum Damage {
    /// The file as it is.
    None,
    /// The first `n` bytes only.
    Truncate(usize),
    /// The first `pct` percent only.
    TruncatePct(usize),
    /// Drop the `moov` box entirely.
    DropMoov,
    /// Overwrite the 32-bit size field of the first box of this type.
    BoxSize(&'static [u8; 4], u32),
    /// Overwrite the entry count of a full box (`stsz`: sample count; others: entry count).
    Count(&'static [u8; 4], u32),
}

fn damaged(file: &str, damage: &Damage, dir: &Path) -> PathBuf {
    let mut data = std::fs::read(media(file)).unwrap();
    match *damage {
        Damage::None => {}
        Damage::Truncate(n) => data.truncate(n),
        Damage::TruncatePct(p) => data.truncate(data.len() * p / 100),
        Damage::DropMoov => {
            let b = find_box(&data, b"moov");
            data.drain(b.offset..b.offset + b.size);
        }
        Damage::BoxSize(kind, size) => {
            let b = find_box(&data, kind);
            data[b.offset..b.offset + 4].copy_from_slice(&size.to_be_bytes());
        }
        Damage::Count(kind, count) => {
            let b = find_box(&data, kind);
            // Full box: header, version+flags (4); stsz has sample_size (4) before its count.
            let at = b.offset + b.header + if kind == b"stsz" { 8 } else { 4 };
            data[at..at + 4].copy_from_slice(&count.to_be_bytes());
        }
    }
    let path = dir.join(format!("in.{}", Path::new(file).extension().unwrap().to_str().unwrap()));
    std::fs::write(&path, data).unwrap();
    path
}

/// Cut arguments of an error case.
fn check_error(name: &str, file: &str, damage: Damage, args: &[&str], message: &str) {
    let dir = scratch(&format!("mp4_cut-err-{name}"));
    let input_dir = dir.join("in");
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&input_dir).unwrap();
    std::fs::create_dir_all(&out_dir).unwrap();
    let src = damaged(file, &damage, &input_dir);
    let hash = sha256(&src);
    let out = out_dir.join("clip.mp4");
    let o = out.display().to_string();
    let mut argv = args.to_vec();
    argv.extend(["-o", &o]);

    let result = cut(&src, &argv);
    let err = text(&result.stderr);
    assert!(!err.contains("panicked"), "{name}: panicked:\n{err}");
    match result.status.code() {
        Some(0) => panic!("{name}: cut {argv:?} succeeded, expected an error"),
        Some(_) => {}
        None => panic!("{name}: killed by a signal: {:?}\n{err}", result.status),
    }
    assert!(!err.trim().is_empty(), "{name}: no message on stderr");
    assert!(
        err.to_ascii_lowercase().contains(&message.to_ascii_lowercase()),
        "{name}: message {err:?} does not mention {message:?}"
    );
    assert!(dir_entries(&out_dir).is_empty(), "{name}: left behind {:?}", dir_entries(&out_dir));
    assert_eq!(dir_entries(&input_dir), vec![src.file_name().unwrap().to_string_lossy().into_owned()]);
    assert_eq!(sha256(&src), hash, "{name}: input changed");
}

macro_rules! error_table {
    ($($name:ident: $file:literal, $damage:expr, [$($arg:literal),*], $msg:literal;)*) => {$(
        #[test]
        fn $name() {
            check_error(stringify!($name), $file, $damage, &[$($arg),*], $msg);
        }
    )*};
}

error_table! {
    err_start_beyond_duration:  "short.mp4",     Damage::None, ["--start", "61"], "";
    err_start_far_beyond:       "long.mp4",      Damage::None, ["--start", "99999"], "";
    err_start_after_end:        "short.mp4",     Damage::None, ["--start", "20", "--end", "10"], "";
    err_start_equals_end:       "short.mp4",     Damage::None, ["--start", "10", "--end", "10"], "";
    err_negative_start:         "short.mp4",     Damage::None, ["--start=-5"], "";
    err_negative_end:           "short.mp4",     Damage::None, ["--start", "1", "--end=-1"], "";
    err_non_numeric_start:      "short.mp4",     Damage::None, ["--start", "abc"], "";
    err_non_numeric_end:        "short.mp4",     Damage::None, ["--end", "1O"], "";
    err_exponent_start:         "short.mp4",     Damage::None, ["--start", "1e3"], "";
    err_nan_start:              "short.mp4",     Damage::None, ["--start", "NaN"], "";
    err_fragmented_beyond:      "frag.mp4",      Damage::None, ["--start", "61"], "beyond the duration";
    err_fragmented_moof_size:   "frag.mp4",      Damage::BoxSize(b"moof", 3), ["--start", "10.5"], "corrupt";
    err_no_moov:                "short.mp4",     Damage::DropMoov, ["--start", "10.5"], "";
    err_moov_end_truncated:     "moovend.mp4",   Damage::TruncatePct(99), ["--start", "10.5"], "";
    err_only_ftyp:              "faststart.mp4", Damage::Truncate(40), ["--start", "10.5"], "";
    err_empty_file:             "faststart.mp4", Damage::Truncate(0), ["--start", "10.5"], "";
    err_truncated_in_moov:      "faststart.mp4", Damage::Truncate(3000), ["--start", "10.5"], "";
    err_truncated_in_mdat:      "faststart.mp4", Damage::TruncatePct(50), ["--start", "40.5"], "";
    err_moov_size_lies:         "faststart.mp4", Damage::BoxSize(b"moov", 0xFFFF_FFF0), ["--start", "10.5"], "";
    err_trak_size_lies:         "faststart.mp4", Damage::BoxSize(b"trak", 0x7FFF_FFFF), ["--start", "10.5"], "";
    err_stbl_size_too_small:    "faststart.mp4", Damage::BoxSize(b"stbl", 3), ["--start", "10.5"], "";
    err_stsz_count_lies:        "faststart.mp4", Damage::Count(b"stsz", 0xFFFF_FFFF), ["--start", "10.5"], "";
    err_stco_count_lies:        "faststart.mp4", Damage::Count(b"stco", 0x4000_0000), ["--start", "10.5"], "";
    err_stts_count_lies:        "faststart.mp4", Damage::Count(b"stts", 0x7FFF_FFFF), ["--start", "10.5"], "";
    err_stss_count_lies:        "faststart.mp4", Damage::Count(b"stss", 0xFFFF_FFF0), ["--start", "10.5"], "";
    err_stsc_count_lies:        "faststart.mp4", Damage::Count(b"stsc", 0x0FFF_FFFF), ["--start", "10.5"], "";
}

#[test]
fn err_missing_file() {
    let dir = scratch("mp4_cut-err-missing");
    let out = dir.join("clip.mp4");
    let o = out.display().to_string();
    let result = cut(&dir.join("nope.mp4"), &["--start", "1", "-o", &o]);
    let err = text(&result.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(matches!(result.status.code(), Some(c) if c != 0), "{:?}", result.status);
    assert!(!err.trim().is_empty());
    assert!(dir_entries(&dir).is_empty(), "left behind {:?}", dir_entries(&dir));
}

#[test]
fn err_output_directory_missing() {
    let dir = scratch("mp4_cut-err-no-out-dir");
    let out = dir.join("missing").join("clip.mp4");
    let o = out.display().to_string();
    let result = cut(&media("short.mp4"), &["--start", "10.5", "-o", &o]);
    let err = text(&result.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(matches!(result.status.code(), Some(c) if c != 0), "{:?}", result.status);
    assert!(!err.trim().is_empty());
    assert!(dir_entries(&dir).is_empty(), "left behind {:?}", dir_entries(&dir));
}

// ---- chapters --------------------------------------------------------------------------------

/// short.mp4 with three chapters (0–20 s "One", 20–40 s "Two", 40–60 s "Three"), written by
/// ffmpeg both ways: a QuickTime chapter track (`text`, referenced by `tref/chap`) and a Nero
/// `udta/chpl` list.
fn chaptered_mp4() -> PathBuf {
    static MP4: OnceLock<PathBuf> = OnceLock::new();
    MP4.get_or_init(|| {
        let dir = scratch("mp4_cut-chapters-source");
        let meta = dir.join("chapters.txt");
        let mut spec = String::from(";FFMETADATA1\n");
        for (start, end, title) in [(0, 20, "One"), (20, 40, "Two"), (40, 60, "Three")] {
            spec.push_str(&format!(
                "[CHAPTER]\nTIMEBASE=1/1000\nSTART={}\nEND={}\ntitle={title}\n",
                start * 1000,
                end * 1000
            ));
        }
        std::fs::write(&meta, spec).unwrap();
        let out = dir.join("chapters.mp4");
        let o = run(Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-y", "-i"])
            .arg(media("short.mp4"))
            .args(["-f", "ffmetadata", "-i"])
            .arg(&meta)
            .args(["-map", "0", "-map_chapters", "1", "-c", "copy"])
            .arg(&out));
        assert!(o.status.success(), "ffmpeg chapters failed: {}", text(&o.stderr));
        out
    })
    .clone()
}

/// `ffprobe -show_chapters`: (start, end, title) in seconds.
fn chapters(path: &Path) -> Vec<(f64, f64, String)> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "chapter=start_time,end_time:chapter_tags=title", "-of", "json"])
        .arg(path));
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe -show_chapters JSON");
    let secs = |c: &Value, k: &str| c[k].as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
    v["chapters"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| (secs(c, "start_time"), secs(c, "end_time"), c["tags"]["title"].as_str().unwrap_or("").into()))
                .collect()
        })
        .unwrap_or_default()
}

/// The Nero chapter list (`moov/udta/chpl`) read test-side: (start seconds, title).
fn nero_chapters(path: &Path) -> Vec<(f64, String)> {
    let data = std::fs::read(path).unwrap();
    let b = find_box(&data, b"chpl");
    let body = &data[b.offset + b.header..b.offset + b.size];
    let mut pos = if body[0] == 1 { 8 } else { 4 };
    let count = body[pos];
    pos += 1;
    (0..count)
        .map(|_| {
            let t = u64::from_be_bytes(body[pos..pos + 8].try_into().unwrap());
            let len = usize::from(body[pos + 8]);
            let title = String::from_utf8_lossy(&body[pos + 9..pos + 9 + len]).into_owned();
            pos += 9 + len;
            (t as f64 / 1e7, title)
        })
        .collect()
}

/// An expected chapter: start and end (seconds), title.
type Chapter = (f64, f64, &'static str);

#[test]
fn chapters_are_shifted_and_cut_with_the_clip() {
    let src = chaptered_mp4();
    assert_eq!(chapters(&src).len(), 3, "the source has three chapters");
    // (cut arguments, chapters expected): non-exact cuts start at the keyframe (24 s for 25).
    let cases: [(&[&str], &[Chapter]); 5] = [
        (&["--start", "25", "--exact"], &[(0.0, 15.0, "Two"), (15.0, 35.0, "Three")]),
        (&["--start", "25"], &[(0.0, 16.0, "Two"), (16.0, 36.0, "Three")]),
        (&["--start", "25", "--end", "45", "--exact"], &[(0.0, 15.0, "Two"), (15.0, 20.0, "Three")]),
        (&["--start", "10.5", "--end", "19", "--exact"], &[(0.0, 8.5, "One")]),
        (&["--end", "30"], &[(0.0, 20.0, "One"), (20.0, 30.0, "Two")]),
    ];
    for (i, (args, want)) in cases.iter().enumerate() {
        let dir = scratch(&format!("mp4_cut-chapters-{i}"));
        let out = dir.join("clip.mp4");
        let o = out.display().to_string();
        let mut argv = args.to_vec();
        argv.extend(["-o", &o]);
        ok(&cut(&src, &argv), &format!("cut {argv:?}"));
        let got = chapters(&out);
        let close = |a: f64, b: f64| (a - b).abs() < 0.002;
        let same = got.len() == want.len()
            && got.iter().zip(want.iter()).all(|(g, w)| close(g.0, w.0) && close(g.1, w.1) && g.2 == w.2);
        assert!(same, "{args:?}: ffprobe chapters {got:?}, expected {want:?}");
        let nero = nero_chapters(&out);
        let starts: Vec<(f64, &str)> = want.iter().map(|w| (w.0, w.2)).collect();
        let same = nero.len() == starts.len() && nero.iter().zip(&starts).all(|(g, w)| close(g.0, w.0) && g.1 == w.1);
        assert!(same, "{args:?}: chpl {nero:?}, expected starts {starts:?}");
        let errors = decode_errors(&out);
        assert!(errors.trim().is_empty(), "{args:?}: decode errors:\n{errors}");
    }
}

// ---- two video tracks whose keyframes do not line up ------------------------------------------

/// Two 12 s video tracks at 15 fps, keyframes every 15 frames (1 s) and every 20 (1.33 s).
fn misaligned_mp4() -> PathBuf {
    static MP4: OnceLock<PathBuf> = OnceLock::new();
    MP4.get_or_init(|| {
        let out = scratch("mp4_cut-misaligned-source").join("two-gops.mp4");
        let o = run(Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc=duration=12:size=160x100:rate=15"])
            .args(["-f", "lavfi", "-i", "testsrc2=duration=12:size=160x100:rate=15"])
            .args(["-map", "0:0", "-map", "1:0", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-threads", "1"])
            .args(["-sc_threshold", "0", "-g:v:0", "15", "-g:v:1", "20"])
            .arg(&out));
        assert!(o.status.success(), "ffmpeg two-gops.mp4 failed: {}", text(&o.stderr));
        out
    })
    .clone()
}

/// Per stream: (start_time, duration, first packet is a keyframe).
fn stream_starts(path: &Path) -> Vec<(f64, f64, bool)> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=start_time,duration", "-of", "csv=p=0"])
        .arg(path));
    text(&out.stdout)
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let v: Vec<f64> = l.split(',').map(|x| x.trim().parse().unwrap_or(f64::NAN)).collect();
            let first = run(Command::new("ffprobe")
                .args(["-v", "error", "-select_streams", &i.to_string(), "-show_entries", "packet=flags"])
                .args(["-read_intervals", "%+#1", "-of", "csv=p=0"])
                .arg(path));
            (v[0], v[1], text(&first.stdout).trim_start().starts_with('K'))
        })
        .collect()
}

/// Each video track starts at its own keyframe and hides the frames before the clip's start
/// (the first track's keyframe, or `start` in exact mode): both decode clean from a keyframe
/// and are shown from the same instant for the same time.
#[test]
fn video_tracks_with_misaligned_keyframes_start_together() {
    let src = misaligned_mp4();
    // 5.5 s: the first track's keyframe is at 5.0 s, the second's at 4.0 s (and 5.33 s).
    let cases: [(&[&str], f64); 3] =
        [(&["--start", "5.5"], 7.0), (&["--start", "5.5", "--exact"], 6.5), (&["--start", "5.5", "--end", "9"], 4.0)];
    for (i, (args, want)) in cases.iter().enumerate() {
        let out = scratch(&format!("mp4_cut-misaligned-{i}")).join("clip.mp4");
        let o = out.display().to_string();
        let mut argv = args.to_vec();
        argv.extend(["-o", &o]);
        ok(&cut(&src, &argv), &format!("cut {argv:?}"));
        let streams = stream_starts(&out);
        assert_eq!(streams.len(), 2, "{args:?}: {streams:?}");
        for (start, dur, key) in &streams {
            assert!(
                start.abs() < 1e-3 && (dur - want).abs() < 1e-3 && *key,
                "{args:?}: streams {streams:?}, want {want} s from 0"
            );
        }
        let errors = decode_errors(&out);
        assert!(errors.trim().is_empty(), "{args:?}: decode errors:\n{errors}");
    }
}

// ---- an edit-list delay: a keyframe shown just after start --------------------------------------

/// long.mp4's video waits 46 ms (an empty edit) and its frames last 40 ms: the keyframe for
/// 3600 s is shown at 3600.046 s. The clip starts there instead of a GOP earlier and lasts the
/// minute asked for.
#[test]
fn long_minute_after_an_edit_delay_lasts_a_minute() {
    let out = scratch("mp4_cut-edit-delay").join("clip.mp4");
    let o = out.display().to_string();
    for exact in [false, true] {
        let mut argv = vec!["--start", "3600", "--end", "3660", "-o", &o];
        if exact {
            argv.push("--exact");
        }
        ok(&cut(&media("long.mp4"), &argv), &format!("cut {argv:?}"));
        let got = duration(&out);
        assert!((got - 60.0).abs() <= FRAME, "{argv:?}: the clip lasts {got} s, expected 60 s ± one frame");
        let errors = decode_errors(&out);
        assert!(errors.trim().is_empty(), "{argv:?}: decode errors:\n{errors}");
    }
}
