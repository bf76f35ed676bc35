//! Fragmented MP4 as input, end to end: sources made with ffmpeg (`frag_keyframe+empty_moov`,
//! `+default_base_moof`, `dash`, CMAF, without B-frames, audio only, and the media set's
//! frag.mp4) are cut through `cut` and through `serve` for a table of start/end cases; each
//! output is judged by ffprobe (duration, stream count) and by a clean ffmpeg decode of every
//! stream. `index` must give a progressive file with the source's packets. Needs ffmpeg and
//! ffprobe: a test fails when they are missing.

mod common;

use common::serve::Serve;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Keyframe interval of the generated sources (short.mp4: a keyframe every 2 s).
const GOP: f64 = 2.0;

/// The fMP4 sources, made once per test binary: (name, path, duration).
fn sources() -> &'static Vec<(String, PathBuf, f64)> {
    static S: OnceLock<Vec<(String, PathBuf, f64)>> = OnceLock::new();
    S.get_or_init(|| {
        common::require_tool("ffmpeg");
        common::require_tool("ffprobe");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fmp4-sources");
        std::fs::create_dir_all(&dir).unwrap();
        let short = common::media("short.mp4");
        let copy = ["-map", "0", "-c", "copy"];
        let make: Vec<(&str, Vec<&str>)> = vec![
            ("keyframe", [&copy[..], &["-movflags", "frag_keyframe+empty_moov"]].concat()),
            ("basemoof", [&copy[..], &["-movflags", "frag_keyframe+empty_moov+default_base_moof"]].concat()),
            ("dash", [&copy[..], &["-movflags", "dash"]].concat()),
            ("cmaf", [&copy[..], &["-f", "mp4", "-movflags", "cmaf"]].concat()),
            (
                "nobframes",
                vec![
                    "-t",
                    "24",
                    "-map",
                    "0",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-bf",
                    "0",
                    "-g",
                    "50",
                    "-c:a",
                    "copy",
                    "-movflags",
                    "frag_keyframe+empty_moov",
                ],
            ),
            ("audio", vec!["-map", "0:a", "-c", "copy", "-frag_duration", "2000000", "-movflags", "empty_moov"]),
        ];
        let mut out = Vec::new();
        for (name, args) in make {
            let path = dir.join(format!("{name}.mp4"));
            let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            if modified(&path) < modified(&short) {
                let tmp = dir.join(format!("{name}.tmp.mp4"));
                let st = common::run(
                    Command::new("ffmpeg")
                        .args(["-nostdin", "-v", "error", "-y", "-i"])
                        .arg(&short)
                        .args(&args)
                        .arg(&tmp),
                );
                assert!(st.status.success(), "ffmpeg {name}: {}", String::from_utf8_lossy(&st.stderr));
                std::fs::rename(&tmp, &path).unwrap();
            }
            let d = common::duration(&path);
            out.push((name.to_string(), path, d));
        }
        let frag = common::media("frag.mp4");
        let d = common::duration(&frag);
        out.push(("media-frag".into(), frag, d));
        out
    })
}

/// What `ffmpeg -v error -i FILE -map 0 -f null -` prints: empty is a clean decode.
fn decode_all(path: &Path) -> String {
    let out = common::run(
        Command::new("ffmpeg").args(["-nostdin", "-v", "error", "-i"]).arg(path).args(["-map", "0", "-f", "null", "-"]),
    );
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        s.push_str(&format!("ffmpeg exited with {}", out.status));
    }
    s
}

/// The start/end cases, in seconds, relative to a source of `d` seconds.
fn cases(d: f64) -> Vec<(f64, Option<f64>, bool)> {
    vec![
        (0.0, None, false),
        (10.5, None, false),
        (5.0, Some(15.0), false),
        (5.3, Some(15.0), true),
        (0.5, Some(10.0), true),
        (d - 3.0, None, false),
        (12.2, None, true),
    ]
}

/// Checks one output against its case.
fn judge(label: &str, out: &Path, src: &Path, d: f64, (start, end, exact): (f64, Option<f64>, bool)) {
    let got = common::duration(out);
    let want = end.unwrap_or(d).min(d) - start;
    if exact {
        assert!((got - want).abs() <= 0.05, "{label}: duration {got}, want {want} (exact)");
    } else {
        // From the keyframe at or before start (up to one GOP early); cut at end.
        let extra = GOP;
        assert!(got >= want - 0.15 && got <= want + extra + 0.15, "{label}: duration {got}, want {want} + ≤ {extra}");
    }
    assert_eq!(common::stream_count(out), common::stream_count(src), "{label}: stream count");
    let errors = decode_all(out);
    assert!(errors.trim().is_empty(), "{label}: decode errors:\n{errors}");
}

#[test]
fn cut_table_of_cases() {
    let dir = common::scratch("fmp4-cut");
    for (name, src, d) in sources() {
        for (i, case) in cases(*d).into_iter().enumerate() {
            let (start, end, exact) = case;
            let out = dir.join(format!("{name}-{i}.mp4"));
            let mut cmd = common::loomiere();
            cmd.arg("cut").arg(src).args(["--start", &start.to_string()]).arg("-o").arg(&out);
            if let Some(e) = end {
                cmd.args(["--end", &e.to_string()]);
            }
            if exact {
                cmd.arg("--exact");
            }
            let r = common::run(&mut cmd);
            let label = format!("{name} {case:?}");
            assert!(r.status.success(), "{label}: {}", String::from_utf8_lossy(&r.stderr));
            judge(&label, &out, src, *d, case);
        }
    }
}

/// Packets as (pts − first pts, dts − first dts, size), per stream: ffmpeg shows negative
/// composition offsets differently in fragmented and progressive files (it shifts both
/// timestamps), so the sequences are compared relative to their first packet.
fn packets(path: &Path, stream: usize) -> Vec<(i64, i64, u64)> {
    let out = common::run(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", &stream.to_string(), "-show_entries", "packet=pts,dts,size"])
            .args(["-of", "csv=p=0"])
            .arg(path),
    );
    let rows: Vec<(i64, i64, u64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    let Some(&(p0, d0, _)) = rows.first() else { return rows };
    rows.into_iter().map(|(p, d, s)| (p - p0, d - d0, s)).collect()
}

#[test]
fn index_defragments_with_the_same_packets() {
    let dir = common::scratch("fmp4-index");
    for (name, src, d) in sources() {
        let out = dir.join(format!("{name}.mp4"));
        let r = common::run(common::loomiere().arg("index").arg(src).arg("-o").arg(&out));
        assert!(r.status.success(), "{name}: {}", String::from_utf8_lossy(&r.stderr));
        let data = std::fs::read(&out).unwrap();
        let boxes = common::mp4_boxes(&data);
        assert!(!boxes.iter().any(|b| &b.kind == b"moof"), "{name}: output still fragmented");
        let moov = boxes.iter().position(|b| &b.kind == b"moov").unwrap();
        let mdat = boxes.iter().position(|b| &b.kind == b"mdat").unwrap();
        assert!(moov < mdat, "{name}: moov is not first");
        for s in 0..common::stream_count(src) {
            assert_eq!(packets(src, s), packets(&out, s), "{name}: stream {s} packets differ");
        }
        assert!((common::duration(&out) - d).abs() < 0.1, "{name}: duration");
        let errors = decode_all(&out);
        assert!(errors.trim().is_empty(), "{name}: decode errors:\n{errors}");
        // --check says the source needs it.
        let c = common::run(common::loomiere().arg("index").arg("--check").arg(src));
        assert!(!c.status.success(), "{name}: --check passed a fragmented file");
    }
}

#[test]
fn inspect_lists_fragments() {
    for (name, src, _) in sources() {
        let r = common::run(common::loomiere().arg("inspect").arg("--json").arg(src));
        assert!(r.status.success(), "{name}: {}", String::from_utf8_lossy(&r.stderr));
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        let f = &v["fragments"];
        let count = f["count"].as_u64().unwrap();
        assert!(count >= 5, "{name}: {count} fragments");
        assert_eq!(f["list"].as_array().unwrap().len() as u64, count);
        assert!(f["list"][0]["starts_with_keyframe"].as_bool().unwrap(), "{name}: first fragment");
        assert!(v["tracks"][0]["samples"].as_u64().unwrap() > 0, "{name}: samples from fragments");
        let r = common::run(common::loomiere().arg("inspect").arg(src));
        let text = String::from_utf8_lossy(&r.stdout);
        assert!(text.contains("fragments") && text.contains("moof offset"), "{name}: table");
    }
}

fn get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").expect("response head");
    let status = String::from_utf8_lossy(&all[..end]).split(' ').nth(1).unwrap().parse().unwrap();
    (status, all[end + 4..].to_vec())
}

#[test]
fn serve_answers_seeks_from_its_cache() {
    let dir = common::scratch("fmp4-serve");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    for (name, src, _) in sources() {
        std::fs::copy(src, root.join(format!("{name}.mp4"))).unwrap();
    }
    let mut cmd = common::loomiere();
    cmd.current_dir(&root).arg("serve").arg(&root).args(["--listen", "127.0.0.1:0", "--threads", "2"]);
    let serve = Serve::launch_cmd(cmd, 1, &dir.join("stderr.log"));
    for (name, src, d) in sources() {
        for (i, case) in cases(*d).into_iter().enumerate() {
            let (start, end, exact) = case;
            let mut q = format!("/{name}.mp4?start={start}");
            if let Some(e) = end {
                q.push_str(&format!("&end={e}"));
            }
            if exact {
                q.push_str("&exact=1");
            }
            let (status, body) = get(&serve.addr, &q);
            assert_eq!(status, 200, "{q}: {}", String::from_utf8_lossy(&body));
            let out = dir.join(format!("{name}-{i}.mp4"));
            std::fs::write(&out, &body).unwrap();
            judge(&q, &out, src, *d, case);
            // Asked again: the same bytes (the fragment index and plan are cached).
            assert_eq!(get(&serve.addr, &q).1, body, "{q}: second answer differs");
        }
        // No seek: the file as it is.
        let (status, body) = get(&serve.addr, &format!("/{name}.mp4"));
        assert_eq!(status, 200);
        assert_eq!(body, std::fs::read(src).unwrap(), "{name}: whole file");
    }
    let (status, _) = get(&serve.addr, "/keyframe.mp4?start=900");
    assert_eq!(status, 400, "start beyond the duration");
}

/// The bytes of a generated source and its boxes.
fn source_bytes(name: &str) -> (Vec<u8>, Vec<common::BoxAt>, PathBuf) {
    let (_, path, _) = sources().iter().find(|(n, _, _)| n == name).unwrap();
    let data = std::fs::read(path).unwrap();
    let boxes = common::mp4_boxes(&data);
    (data, boxes, path.clone())
}

/// `cut --start 10.5` of `data` (written as NAME.mp4): (success, stderr, output path).
fn cut_bytes(name: &str, data: &[u8], extra: &[&str]) -> (bool, String, PathBuf) {
    let dir = common::scratch(&format!("fmp4-hostile-{name}"));
    let src = dir.join(format!("{name}.mp4"));
    std::fs::write(&src, data).unwrap();
    let out = dir.join("out.mp4");
    let r =
        common::run(common::loomiere().arg("cut").arg(&src).args(["--start", "10.5"]).args(extra).arg("-o").arg(&out));
    (r.status.success(), String::from_utf8_lossy(&r.stderr).into_owned(), out)
}

#[test]
fn hostile_fragments_are_clean_errors() {
    let (data, boxes, _) = source_bytes("keyframe");
    let at = |kind: &[u8; 4], nth: usize| boxes.iter().filter(|b| &b.kind == kind).nth(nth).unwrap();
    let put = |d: &mut Vec<u8>, at: usize, v: u32| d[at..at + 4].copy_from_slice(&v.to_be_bytes());
    // A trun whose sample count lies.
    let mut d = data.clone();
    let trun = at(b"trun", 3);
    put(&mut d, trun.offset + trun.header + 4, 0x4000_0000);
    let (ok, err, _) = cut_bytes("count", &d, &[]);
    assert!(!ok && err.contains("corrupt file at offset") && err.contains("'trun' claims"), "{err}");
    // A data offset outside the mdat.
    let mut d = data.clone();
    put(&mut d, trun.offset + trun.header + 8, 0x7FFF_0000);
    let (ok, err, _) = cut_bytes("offset", &d, &[]);
    assert!(!ok && err.contains("outside its 'mdat'"), "{err}");
    // A moof whose size lies (smaller than its header).
    let mut d = data.clone();
    put(&mut d, at(b"moof", 2).offset, 3);
    let (ok, err, _) = cut_bytes("moofsize", &d, &[]);
    assert!(!ok && err.contains("corrupt file at offset"), "{err}");
    // Fragments out of order: the second and third swapped (moof-relative data offsets, so
    // that only the decode times give them away).
    let (data, boxes, _) = source_bytes("basemoof");
    let moof = |n: usize| boxes.iter().filter(|b| &b.kind == b"moof").nth(n).unwrap().offset;
    let (m1, m2, m3) = (moof(1), moof(2), moof(3));
    let mut d = data[..m1].to_vec();
    d.extend_from_slice(&data[m2..m3]);
    d.extend_from_slice(&data[m1..m2]);
    d.extend_from_slice(&data[m3..]);
    let (ok, err, _) = cut_bytes("order", &d, &[]);
    assert!(!ok && err.contains("out of order"), "{err}");
}

#[test]
fn missing_tfdt_is_derived_from_durations() {
    let (data, boxes, src) = source_bytes("keyframe");
    let mut d = data.clone();
    for b in boxes.iter().filter(|b| &b.kind == b"tfdt") {
        d[b.offset + 4..b.offset + 8].copy_from_slice(b"free");
    }
    let (ok, err, out) = cut_bytes("notfdt", &d, &[]);
    assert!(ok, "{err}");
    let d0 = common::duration(&src);
    judge("no tfdt", &out, &src, d0, (10.5, None, false));
    let (ok, err, out) = cut_bytes("notfdt-exact", &d, &["--end", "20", "--exact"]);
    assert!(ok, "{err}");
    judge("no tfdt, exact", &out, &src, d0, (10.5, Some(20.0), true));
}

#[test]
fn a_sidx_that_disagrees_is_ignored_and_reported() {
    let (data, boxes, src) = source_bytes("dash");
    let sidx = boxes.iter().find(|b| &b.kind == b"sidx").unwrap();
    let mut d = data.clone();
    // The first reference's size (after version/flags, id, timescale, ept, offset, reserved+count).
    let at = sidx.offset + sidx.header + 4 + 4 + 4 + 4 + 4 + 4;
    d[at..at + 4].copy_from_slice(&12345u32.to_be_bytes());
    let (ok, err, out) = cut_bytes("sidx", &d, &[]);
    assert!(ok, "{err}");
    judge("sidx lies", &out, &src, common::duration(&src), (10.5, None, false));
    let dir = common::scratch("fmp4-sidx-inspect");
    let p = dir.join("sidx.mp4");
    std::fs::write(&p, &d).unwrap();
    let r = common::run(common::loomiere().arg("inspect").arg(&p));
    assert!(String::from_utf8_lossy(&r.stdout).contains("DISAGREES"), "inspect does not report the sidx");
}

/// The CGI path with `index_cache` on a 2-hour fragmented film: the first request stores the
/// gathered moofs, later ones read them; every answer is the same bytes as without the cache,
/// and a damaged cache file is ignored.
#[test]
fn cgi_with_index_cache_answers_the_same_bytes() {
    let dir = common::scratch("fmp4-cgi-cache");
    let root = dir.join("root");
    let cache = dir.join("cache");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    let film = root.join("long.mp4");
    let st = common::run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(common::media("long.mp4"))
            .args(["-map", "0", "-c", "copy", "-movflags", "frag_keyframe+empty_moov"])
            .arg(&film),
    );
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let with = dir.join("with.conf");
    let without = dir.join("without.conf");
    std::fs::write(&with, format!("document_root = {:?}\nindex_cache = {:?}\n", root, cache)).unwrap();
    std::fs::write(&without, format!("document_root = {:?}\n", root)).unwrap();
    let get = |conf: &Path, query: &str| {
        let out = common::loomiere()
            .env_clear()
            .env("LOOMIERE_CONFIG", conf)
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("REQUEST_METHOD", "GET")
            .env("SCRIPT_NAME", "/long.mp4")
            .env("QUERY_STRING", query)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout[..200.min(out.stdout.len())]).to_string();
        assert!(text.starts_with("Status: 200"), "{text}");
        out.stdout
    };
    for query in ["start=3600&end=3630", "start=12.5", "start=100&end=130&exact=1"] {
        let plain = get(&without, query);
        let first = get(&with, query);
        let files: Vec<_> = std::fs::read_dir(&cache).unwrap().filter_map(|e| e.ok()).collect();
        assert_eq!(files.len(), 1, "one cache file");
        let later = get(&with, query);
        assert!(plain == first && first == later, "{query}: answers differ");
        // A damaged cache file is ignored (and the answer stays the same).
        let path = files[0].path();
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        assert!(get(&with, query) == plain, "{query}: damaged cache changed the answer");
        std::fs::remove_file(&path).unwrap();
    }
    let body = get(&with, "start=3600&end=3630");
    let at = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let out = dir.join("clip.mp4");
    std::fs::write(&out, &body[at..]).unwrap();
    let errors = decode_all(&out);
    assert!(errors.trim().is_empty(), "decode errors:\n{errors}");
}

/// A file cut short inside a fragment (a recording still being written): answered up to its
/// last complete fragment, and `inspect` says so.
#[test]
fn a_file_cut_short_is_served_to_its_last_whole_fragment() {
    let (data, boxes, src) = source_bytes("keyframe");
    let mdat = boxes.iter().filter(|b| &b.kind == b"mdat").nth(15).unwrap();
    let cut = &data[..mdat.offset + mdat.size / 2];
    let (ok, err, out) = cut_bytes("cutshort", cut, &[]);
    assert!(ok, "{err}");
    let got = common::duration(&out);
    assert!(got > 15.0 && got < 25.0, "duration {got}");
    let errors = decode_all(&out);
    assert!(errors.trim().is_empty(), "decode errors:\n{errors}");
    assert_eq!(common::stream_count(&out), common::stream_count(&src));
    let dir = common::scratch("fmp4-cutshort-inspect");
    let p = dir.join("cut.mp4");
    std::fs::write(&p, cut).unwrap();
    let r = common::run(common::loomiere().arg("inspect").arg(&p));
    assert!(String::from_utf8_lossy(&r.stdout).contains("cut short"), "inspect does not say it");
}
