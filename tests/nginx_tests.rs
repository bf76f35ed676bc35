//! nginx's own tests of its mp4 module, replayed against loomiere: every case of nginx-tests'
//! `mp4.t`, `mp4_start_key_frame.t` and `range_mp4.t` (github.com/nginx/nginx-tests). The
//! media are made here with ffmpeg as those scripts make them (testsrc 320x200 at 15 fps,
//! libx264 with B-frames; `mp4.t`'s file has two video tracks of 10 s and 20 s), the cases and
//! expected values are a table in this file, and each case runs through three front ends:
//! `loomiere cut`, `loomiere serve` (127.0.0.1, a free port, stopped by PID) and the CGI
//! (`loomiere` with CGI/1.1 variables). The serve and CGI bodies must be the bytes `cut`
//! writes; each distinct output is judged as nginx-tests judge it (ffprobe stream durations,
//! rounded as they print them) and must decode clean (`ffmpeg -v error -i OUT -map 0 -f null -`
//! prints nothing).
//!
//! nginx-tests run `mp4.t` without `mp4_start_key_frame`, where nginx starts on whatever
//! sample `start` falls on; nginx with `mp4_start_key_frame on` gives the same durations with
//! a clean decode, and that is loomiere's exact mode (`exact=1`, `--exact`). The table also
//! runs each case in loomiere's default mode, which starts at the keyframe: the expected
//! values differ only where `start` is not on a keyframe. Where loomiere answers differently
//! on purpose, the row says so: a `start` past the end is 400 (nginx 500: the request is at
//! fault), an `end` not after `start` is refused by `cut` (the HTTP front ends ignore it, as
//! nginx does), and several ranges in one `Range` header get the whole body (nginx-tests mark
//! multipart ranges on mp4 as a known failure of nginx too).

mod common;

use common::serve::Serve;
use common::{loomiere, run, scratch};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

// ---- media -----------------------------------------------------------------------------------

/// ffmpeg, quiet, never reading stdin.
fn ffmpeg() -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-nostdin", "-hide_banner", "-v", "error", "-y"]);
    c
}

fn must(cmd: &mut Command, what: &str) {
    let o = run(cmd);
    assert!(o.status.success(), "{what} failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// testsrc at 320x200, 15 fps, for `secs` seconds, as an ffmpeg input.
fn testsrc(cmd: &mut Command, secs: u32) {
    cmd.args(["-f", "lavfi", "-i", &format!("testsrc=duration={secs}:size=320x200:rate=15")]);
}

/// A tiny file whose only track's sample tables point past its end (`mp4.t`'s `bad.mp4`):
/// ftyp, a 1-byte mdat, and a moov whose stbl has 826 samples of 1449 bytes in one chunk at
/// offset 2^64 − 2^28 + …, no `tkhd`, no `mdhd`.
fn bad_mp4() -> Vec<u8> {
    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }
    let words = |w: &[u32]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
    let stts = bx(b"stts", &words(&[0, 1, 826, 1024]));
    let stsc = bx(b"stsc", &words(&[0, 2, 1, 783, 1, 2, 43, 1]));
    let stsz = bx(b"stsz", &words(&[0, 1449, 827]));
    let mut co64 = words(&[0, 1]);
    co64.extend_from_slice(&0xffff_ffff_f00f_fbe7u64.to_be_bytes());
    let co64 = bx(b"co64", &co64);
    let stbl = bx(b"stbl", &[stts, stsc, stsz, co64].concat());
    let moov = bx(b"moov", &bx(b"trak", &bx(b"mdia", &bx(b"minf", &stbl))));
    let ftyp = bx(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41");
    [ftyp, bx(b"mdat", &[0]), moov].concat()
}

/// The document root with every file the three scripts use, made once per test process.
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = scratch("nginx_tests-media");
        let out = |name: &str| dir.join(name).display().to_string();
        // mp4.t: two video tracks, 10 s and 20 s, keyframes every second; moov at the end.
        let mut c = ffmpeg();
        testsrc(&mut c, 10);
        testsrc(&mut c, 20);
        c.args(["-map", "0:0", "-map", "1:0", "-pix_fmt", "yuv420p", "-g", "15", "-c:v", "libx264", &out("test.mp4")]);
        must(&mut c, "ffmpeg test.mp4 (needs ffmpeg with lavfi and libx264)");
        // mp4.t's no_mdat.mp4: the same with the moov first.
        must(
            ffmpeg().args([
                "-i",
                &out("test.mp4"),
                "-map",
                "0",
                "-c",
                "copy",
                "-movflags",
                "+faststart",
                &out("no_mdat.mp4"),
            ]),
            "ffmpeg no_mdat.mp4",
        );
        // mp4_start_key_frame.t: one 10 s track, keyframes every second.
        let mut c = ffmpeg();
        testsrc(&mut c, 10);
        c.args(["-pix_fmt", "yuv420p", "-g", "15", "-c:v", "libx264", &out("key.mp4")]);
        must(&mut c, "ffmpeg key.mp4");
        // range_mp4.t: one 10 s track, the encoder's default GOP.
        let mut c = ffmpeg();
        testsrc(&mut c, 10);
        c.args(["-pix_fmt", "yuv420p", "-c:v", "libx264", &out("range.mp4")]);
        must(&mut c, "ffmpeg range.mp4");
        std::fs::write(dir.join("bad.mp4"), bad_mp4()).unwrap();
        std::fs::write(dir.join("stream.conf"), format!("document_root = {:?}\nlog = \"off\"\n", dir)).unwrap();
        dir
    })
}

// ---- the three front ends --------------------------------------------------------------------

/// An HTTP answer (or `cut`'s: 200 and the file it wrote, or 0 when it refused).
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    /// Splits a response (`HTTP/1.1 200 …` or CGI `Status: 200 …`) into its parts.
    fn parse(all: &[u8]) -> Answer {
        let end = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
        let head = String::from_utf8_lossy(&all[..end]);
        let mut status = 200;
        let mut headers = HashMap::new();
        for (i, line) in head.split("\r\n").enumerate() {
            if i == 0 && line.starts_with("HTTP/") {
                status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
            } else if let Some((name, value)) = line.split_once(':') {
                let name = name.trim().to_ascii_lowercase();
                if name == "status" {
                    status = value.trim().split(' ').next().and_then(|s| s.parse().ok()).expect("a CGI status");
                }
                headers.insert(name, value.trim().to_string());
            }
        }
        Answer { status, headers, body: all[end + 4..].to_vec() }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

impl Serve {
    fn start() -> Serve {
        let log = common::scratch("nginx-tests-serve").join("stderr.log");
        Serve::launch(&[root()], &log)
    }

    fn request(&self, method: &str, target: &str, range: Option<&str>) -> Answer {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let range = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
        write!(s, "{method} {target} HTTP/1.1\r\nHost: localhost\r\n{range}Connection: close\r\n\r\n").unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        Answer::parse(&all)
    }
}

/// One CGI/1.1 request: the binary run as a web server runs it, the media file as the
/// "script" (`SCRIPT_NAME`, as lighttpd's `cgi.assign` does).
fn cgi(method: &str, target: &str, range: Option<&str>) -> Answer {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut cmd = loomiere();
    cmd.env_clear()
        .env("LOOMIERE_CONFIG", root().join("stream.conf"))
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", method)
        .env("SCRIPT_NAME", path)
        .env("QUERY_STRING", query);
    if let Some(r) = range {
        cmd.env("HTTP_RANGE", r);
    }
    let out = run(&mut cmd);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "CGI {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Answer::parse(&out.stdout)
}

/// `loomiere cut` for an HTTP target (`/file.mp4?start=…&end=…&exact=1`): 200 and the file
/// it wrote, or status 0 when it refused (with a message and no output).
fn cut(target: &str, dir: &Path) -> Answer {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let out = dir.join("cut.mp4");
    let _ = std::fs::remove_file(&out);
    let mut cmd = loomiere();
    cmd.arg("cut").arg(root().join(path.trim_start_matches('/')));
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("exact", _)) => cmd.arg("--exact"),
            Some((k, v)) => cmd.arg(format!("--{k}")).arg(v),
            None => panic!("bad table query {pair}"),
        };
    }
    let o = run(cmd.arg("-o").arg(&out));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "cut {target}: {err}");
    if o.status.success() {
        Answer { status: 200, headers: HashMap::new(), body: std::fs::read(&out).unwrap() }
    } else {
        assert!(!err.trim().is_empty(), "cut {target} failed without a message");
        assert!(!out.exists(), "cut {target} failed but left {}", out.display());
        Answer { status: 0, headers: HashMap::new(), body: Vec::new() }
    }
}

// ---- how nginx-tests judge an answer ---------------------------------------------------------

/// Every `duration=` of `ffprobe -show_streams`, as `%.{digits}f`, space-separated (what
/// nginx-tests' `durations()` returns; `mp4_start_key_frame.t` looks at the first only).
fn durations(path: &Path, digits: usize, first_only: bool) -> String {
    let out = run(Command::new("ffprobe").arg("-show_streams").arg(path));
    let text = String::from_utf8_lossy(&out.stdout);
    let all: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("duration="))
        .filter_map(|v| v.parse::<f64>().ok())
        .map(|d| format!("{d:.digits$}"))
        .collect();
    if first_only {
        all.into_iter().next().unwrap_or_default()
    } else {
        all.join(" ")
    }
}

/// What `ffmpeg -v error -i FILE -map 0 -f null -` prints (empty: every stream decodes clean).
fn decode_errors(path: &Path) -> String {
    let out = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0", "-f", "null", "-"]));
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        s.push_str(&format!("ffmpeg exited with {}", out.status));
    }
    s
}

/// Failures of a table, reported together with the pass count.
#[derive(Default)]
struct Tally {
    cases: usize,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, case: &str, failure: Option<String>) {
        self.cases += 1;
        if let Some(f) = failure {
            self.failures.push(format!("{case}: {f}"));
        }
    }

    fn finish(self, table: &str) {
        let passed = self.cases - self.failures.len();
        eprintln!("{table}: {passed} of {} cases pass", self.cases);
        assert!(
            self.failures.is_empty(),
            "{table}: {passed} of {} cases pass:\n{}",
            self.cases,
            self.failures.join("\n")
        );
    }
}

/// A GET through the three front ends: the serve and CGI bodies must equal `cut`'s output when
/// it wrote one; returns the statuses (cut, serve, CGI) and the body.
fn get_everywhere(serve: &Serve, target: &str, dir: &Path) -> Result<(u16, u16, Vec<u8>), String> {
    let c = cut(target, dir);
    let s = serve.request("GET", target, None);
    let g = cgi("GET", target, None);
    if s.status != g.status {
        return Err(format!("serve answers {}, the CGI {}", s.status, g.status));
    }
    if c.status == 200 && s.status == 200 && (s.body != c.body || g.body != c.body) {
        return Err(format!("bodies differ: cut {} bytes, serve {}, CGI {}", c.body.len(), s.body.len(), g.body.len()));
    }
    Ok((c.status, s.status, s.body))
}

// ---- mp4.t -----------------------------------------------------------------------------------

/// One duration case: query, then the durations (`%.1f` per stream) in exact mode (nginx with
/// `mp4_start_key_frame on`, and nginx-tests' expected value) and in keyframe mode.
struct DurationCase {
    query: &'static str,
    exact: &'static str,
    keyframe: &'static str,
}

const MP4_T_DURATIONS: &[DurationCase] = &[
    DurationCase { query: "start=0", exact: "10.0 20.0", keyframe: "10.0 20.0" },
    DurationCase { query: "start=2", exact: "8.0 18.0", keyframe: "8.0 18.0" },
    // 7.1 s is not on a keyframe: keyframe mode starts at 7.0 s.
    DurationCase { query: "start=7.1", exact: "2.9 12.9", keyframe: "3.0 13.0" },
    DurationCase { query: "start=6&end=9", exact: "3.0 3.0", keyframe: "3.0 3.0" },
    // 2.7 s: keyframe mode starts at 2.0 s and ends at 5.6 s.
    DurationCase { query: "start=2.7&end=5.6", exact: "2.9 2.9", keyframe: "3.6 3.6" },
    DurationCase { query: "end=9", exact: "9.0 9.0", keyframe: "9.0 9.0" },
    DurationCase { query: "end=5.6", exact: "5.6 5.6", keyframe: "5.6 5.6" },
];

/// One status case (nginx-tests send HEAD): the HTTP status of serve and the CGI, and
/// whether `cut` writes a clip.
struct StatusCase {
    target: &'static str,
    http: u16,
    cut_writes: bool,
}

const MP4_T_STATUSES: &[StatusCase] = &[
    // "invalid range results in ignoring end argument" (cut refuses it: a typo to point out).
    StatusCase { target: "?start=1&end=1", http: 200, cut_writes: false },
    StatusCase { target: "?start=1&end=0", http: 200, cut_writes: false },
    // start/end beyond a track or the file: never 500 but for start past the end (nginx 500,
    // loomiere 400: the request asks for nothing).
    StatusCase { target: "?end=11", http: 200, cut_writes: true },
    StatusCase { target: "?end=21", http: 200, cut_writes: true },
    StatusCase { target: "?start=11", http: 200, cut_writes: true },
    StatusCase { target: "?start=21", http: 400, cut_writes: false },
];

/// Judges one output: nginx-tests' durations and a clean decode.
fn judge(body: &[u8], dir: &Path, digits: usize, first_only: bool, want: &str) -> Option<String> {
    let file = dir.join("answer.mp4");
    std::fs::write(&file, body).unwrap();
    let got = durations(&file, digits, first_only);
    let errors = decode_errors(&file);
    match (got == want, errors.trim().is_empty()) {
        (true, true) => None,
        (ok, clean) => Some(format!(
            "{}{}",
            if ok { String::new() } else { format!("durations {got:?}, expected {want:?}. ") },
            if clean { String::new() } else { format!("decode errors: {}", errors.trim()) }
        )),
    }
}

#[test]
fn mp4_t() {
    let serve = Serve::start();
    let dir = scratch("nginx_tests-mp4_t");
    let mut tally = Tally::default();
    for file in ["/test.mp4", "/no_mdat.mp4"] {
        for case in MP4_T_DURATIONS {
            for (mode, suffix, want) in [("exact", "&exact=1", case.exact), ("keyframe", "", case.keyframe)] {
                let target = format!("{file}?{}{suffix}", case.query);
                let failure = match get_everywhere(&serve, &target, &dir) {
                    Err(e) => Some(e),
                    Ok((200, 200, body)) => judge(&body, &dir, 1, false, want),
                    Ok((c, s, _)) => Some(format!("cut {c} (0 = refused), HTTP {s}")),
                };
                tally.check(&format!("{target} ({mode})"), failure);
            }
        }
        for case in MP4_T_STATUSES {
            let target = format!("{file}{}", case.target);
            let s = serve.request("HEAD", &target, None);
            let g = cgi("HEAD", &target, None);
            let c = cut(&target, &dir);
            let mut failure = None;
            if s.status != case.http || g.status != case.http {
                failure = Some(format!("HEAD: serve {}, CGI {}, expected {}", s.status, g.status, case.http));
            } else if (c.status == 200) != case.cut_writes {
                failure = Some(format!("cut {}", if case.cut_writes { "refused" } else { "wrote a clip" }));
            } else if case.cut_writes {
                // What is served decodes clean (durations are not checked by nginx-tests here).
                let errors = {
                    let file = dir.join("answer.mp4");
                    std::fs::write(&file, &c.body).unwrap();
                    decode_errors(&file)
                };
                if !errors.trim().is_empty() {
                    failure = Some(format!("decode errors: {}", errors.trim()));
                }
            }
            tally.check(&target, failure);
        }
    }
    // Corrupted formats: a co64 chunk beyond the end of the file.
    let s = serve.request("GET", "/bad.mp4?start=0.5", None);
    let g = cgi("GET", "/bad.mp4?start=0.5", None);
    let c = cut("/bad.mp4?start=0.5", &dir);
    let failure = (s.status != 500 || g.status != 500 || c.status != 0).then(|| {
        format!("serve {}, CGI {}, cut {} (0 = refused), expected 500 and a refusal", s.status, g.status, c.status)
    });
    tally.check("/bad.mp4?start=0.5", failure);
    tally.finish("mp4.t");
}

// ---- mp4_start_key_frame.t -------------------------------------------------------------------

#[test]
fn mp4_start_key_frame_t() {
    let serve = Serve::start();
    let dir = scratch("nginx_tests-mp4_start_key_frame_t");
    let mut tally = Tally::default();
    // (query, first stream's duration as %.2f); nginx-tests only require "not 1.90" for the
    // second case (the keyframe at 2.0 s is kept), loomiere gives 2.00.
    let cases = [
        ("start=2.0&end=4.0", "2.00"),
        ("start=2.1&end=4.0", "2.00"),
        ("start=2.0&end=4.0&exact=1", "2.00"),
        ("start=2.1&end=4.0&exact=1", "1.90"),
    ];
    for (query, want) in cases {
        let target = format!("/key.mp4?{query}");
        let failure = match get_everywhere(&serve, &target, &dir) {
            Err(e) => Some(e),
            Ok((200, 200, body)) => judge(&body, &dir, 2, true, want),
            Ok((c, s, _)) => Some(format!("cut {c} (0 = refused), HTTP {s}")),
        };
        tally.check(&target, failure);
    }
    tally.finish("mp4_start_key_frame.t");
}

// ---- range_mp4.t -----------------------------------------------------------------------------

#[test]
fn range_mp4_t() {
    let serve = Serve::start();
    let dir = scratch("nginx_tests-range_mp4_t");
    let mut tally = Tally::default();
    let target = "/range.mp4?start=1";
    // The start argument works: the seeked answer is not the whole file, and `cut` writes
    // exactly what is served.
    let whole = serve.request("HEAD", "/range.mp4", None);
    let seeked = serve.request("HEAD", target, None);
    let len = |a: &Answer| a.header("content-length").and_then(|v| v.parse::<u64>().ok());
    let fsz = len(&seeked).expect("Content-Length of the seeked answer");
    let c = cut(target, &dir);
    let failure = if len(&whole) == Some(fsz) {
        Some(format!("start=1 answers the whole file's {fsz} bytes"))
    } else if c.body.len() as u64 != fsz {
        Some(format!("cut writes {} bytes, serve announces {fsz}", c.body.len()))
    } else {
        // The encoder's default GOP (250 frames) leaves one keyframe, at 0 s: the clip is
        // rewritten but starts there.
        judge(&c.body, &dir, 1, true, "10.0").map(|f| format!("the seeked clip: {f}"))
    };
    tally.check("mp4 start argument works", failure);
    // (Range, status, Content-Length, Content-Range); the last is multipart, a known failure
    // of nginx (TODO in range_mp4.t): loomiere answers it whole, as RFC 9110 allows.
    let cases = [
        ("bytes=0-9", 206, 10, Some(format!("bytes 0-9/{fsz}"))),
        ("bytes=-10", 206, 10, Some(format!("bytes {}-{}/{fsz}", fsz - 10, fsz - 1))),
        ("bytes=0-99", 206, 100, Some(format!("bytes 0-99/{fsz}"))),
        ("bytes=0-10,11-99", 200, fsz, None),
    ];
    for (range, status, length, content_range) in &cases {
        for (via, answer) in
            [("serve", serve.request("HEAD", target, Some(range))), ("CGI", cgi("HEAD", target, Some(range)))]
        {
            let mut problems = Vec::new();
            if answer.status != *status {
                problems.push(format!("status {}, expected {status}", answer.status));
            }
            if len(&answer) != Some(*length) {
                problems.push(format!("Content-Length {:?}, expected {length}", answer.header("content-length")));
            }
            if answer.header("content-range") != content_range.as_deref() {
                problems
                    .push(format!("Content-Range {:?}, expected {content_range:?}", answer.header("content-range")));
            }
            if !answer.body.is_empty() {
                problems.push(format!("HEAD answered with {} body bytes", answer.body.len()));
            }
            // The bytes of a GET of the same range are that slice of the whole answer.
            if *status == 206 && problems.is_empty() {
                let got = serve.request("GET", target, Some(range)).body;
                let from =
                    answer.header("content-range").and_then(|v| v.split([' ', '-']).nth(1)?.parse::<usize>().ok());
                let want = from.and_then(|f| c.body.get(f..f + *length as usize));
                if want != Some(&got[..]) {
                    problems.push("GET of the range is not that slice of the clip".into());
                }
            }
            tally.check(&format!("{via} {target} Range: {range}"), (!problems.is_empty()).then(|| problems.join("; ")));
        }
    }
    tally.finish("range_mp4.t");
}
