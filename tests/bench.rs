//! `loomiere bench` end to end against tiny in-test HTTP servers (std threads on
//! 127.0.0.1:0) that serve a fixed body with `X-Content-Duration`, misbehave on purpose
//! (404, short bodies) or are absent, and against `loomiere serve` on the test media (its
//! access log shows what the bench asked); plus the loopback-only refusal and the exit
//! status. Checks that the JSON report's numbers are consistent, never how fast anything was.

mod common;

use common::serve::Serve;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy)]
enum Behaviour {
    /// 200 with the body and `X-Content-Duration: seconds`, keep-alive; with a `start=`
    /// parameter, half of both (a seeking server answers less than the whole file).
    Serve { len: usize, seconds: f64 },
    /// 404 with a small body.
    NotFound,
    /// Promise `len` bytes, send 10, close.
    Short { len: usize },
}

/// A tiny HTTP/1.1 server on a free loopback port; records request targets.
struct Server {
    port: u16,
    paths: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let p = paths.clone();
        // The accept thread ends with the test process; it owns nothing but the socket.
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let p = p.clone();
                std::thread::spawn(move || serve(conn, behaviour, &p));
            }
        });
        Server { port, paths }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn serve(conn: TcpStream, behaviour: Behaviour, paths: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut ranged = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            ranged |= h.to_ascii_lowercase().starts_with("range:");
        }
        let ranged = if ranged { " (range)" } else { "" };
        paths.lock().unwrap().push(format!("{method} {target}{ranged}"));
        let body_wanted = method != "HEAD";
        let ok = match behaviour {
            Behaviour::Serve { len, seconds } => {
                let (len, seconds) = if target.contains("start=") { (len / 2, seconds / 2.0) } else { (len, seconds) };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {len}\r\nX-Content-Duration: {seconds}\r\n\r\n"
                );
                out.write_all(head.as_bytes()).is_ok() && (!body_wanted || out.write_all(&vec![b'x'; len]).is_ok())
            }
            Behaviour::NotFound => out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n").is_ok(),
            Behaviour::Short { len } => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n0123456789");
                let _ = out.write_all(head.as_bytes());
                return;
            }
        };
        if !ok {
            return;
        }
    }
}

/// Runs `loomiere bench ARGS --json` and returns the parsed report.
fn bench(args: &[&str]) -> Value {
    let out = common::run(common::loomiere().arg("bench").args(args).arg("--json"));
    assert!(
        out.status.success(),
        "bench failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn assert_latency_sane(r: &Value) {
    let l = &r["ttfb_ms"];
    let (p50, p90, p99, max) = (f(l, "p50"), f(l, "p90"), f(l, "p99"), f(l, "max"));
    assert!(0.0 <= p50 && p50 <= p90 && p90 <= p99 && p99 <= max, "{l}");
    assert_eq!(u(l, "count"), u(r, "responses"), "one TTFB per response");
}

#[test]
fn fast_viewers_fetch_whole_bodies() {
    let len = 200_000;
    let server = Server::start(Behaviour::Serve { len, seconds: 1000.0 });
    let url = server.url("/movie.mp4");
    let r = bench(&[&url, "--fast", "--viewers", "4", "--duration", "1", "--ramp", "0", "--seek", "fixed"]);
    assert_eq!(u(&r, "viewers"), 4);
    assert_eq!(r["mode"], "fast");
    assert_eq!(u(&r["errors"], "total"), 0, "{r}");
    let completed = u(&r, "completed");
    assert!(completed >= 1, "{r}");
    let bytes = u(&r, "bytes");
    assert!(bytes >= completed * len as u64, "{r}");
    assert!(bytes <= (completed + 4) * len as u64, "at most one partial body per viewer: {r}");
    assert!(u(&r, "responses") >= completed && u(&r, "requests") >= u(&r, "responses"), "{r}");
    assert!(u(&r, "responses") <= completed + 4, "{r}");
    assert!((1..=4).contains(&u(&r, "peak_streams")), "keep-alive: one connection per viewer at most: {r}");
    assert!(f(&r, "requests_per_s") > 0.0 && f(&r, "mbit_per_s") > 0.0, "{r}");
    assert_eq!(u(&r, "unpaced"), 0);
    assert!(u(&r, "nofile_limit") >= 4);
    assert_latency_sane(&r);
    // Fixed seek at 0 sends no start parameter (the probe's HEAD and range reads aside).
    let paths = server.paths.lock().unwrap();
    let gets: Vec<&String> = paths.iter().filter(|p| p.starts_with("GET ") && !p.ends_with("(range)")).collect();
    assert!(!gets.is_empty() && gets.iter().all(|p| *p == "GET /movie.mp4"), "{paths:?}");
}

#[test]
fn paced_viewers_hold_their_streams_and_seek_randomly() {
    // 200 kB said to last 1000 s: 200 B/s. The first read buffers minutes of playback, so a
    // paced viewer then waits and is still holding its stream when the run ends.
    let server = Server::start(Behaviour::Serve { len: 200_000, seconds: 1000.0 });
    let url = server.url("/movie.mp4?token=abc");
    let r = bench(&[&url, "--viewers", "6", "--duration", "1", "--ramp", "0.2"]);
    assert_eq!(r["mode"], "playback-rate");
    assert_eq!(u(&r["errors"], "total"), 0, "{r}");
    assert_eq!(u(&r, "completed"), 0, "{r}");
    assert_eq!(u(&r, "cut_at_end"), 6, "{r}");
    assert_eq!(u(&r, "peak_streams"), 6, "{r}");
    assert_eq!(u(&r, "stalls"), 0, "{r}");
    assert!(u(&r, "bytes") < 6 * 200_000, "paced reads stop early: {r}");
    assert_latency_sane(&r);
    let paths = server.paths.lock().unwrap();
    assert_eq!(paths.first().map(String::as_str), Some("HEAD /movie.mp4?token=abc"), "duration probe first");
    let starts: Vec<f64> = paths
        .iter()
        .filter(|p| p.starts_with("GET ") && !p.ends_with("(range)"))
        .map(|p| {
            let s = p.split("&start=").nth(1).unwrap_or_else(|| panic!("no start in {p}"));
            s.parse().unwrap()
        })
        .collect();
    assert_eq!(starts.len(), 6);
    assert!(starts.iter().all(|s| (0.0..1000.0).contains(s)), "{starts:?}");
    assert!(starts.windows(2).any(|w| w[0] != w[1]), "random seeks differ: {starts:?}");
}

#[test]
fn bad_answers_are_counted_by_kind() {
    let missing = Server::start(Behaviour::NotFound);
    let short = Server::start(Behaviour::Short { len: 1000 });
    // A port with nothing listening: bind, note, close.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = bench(&[
        &missing.url("/a.mp4"),
        &short.url("/b.mp4"),
        &format!("http://127.0.0.1:{closed}/c.mp4"),
        "--fast",
        "--viewers",
        "3",
        "--duration",
        "1",
        "--ramp",
        "0",
        "--max-error-rate",
        "100",
    ]);
    let e = &r["errors"];
    assert!(e["status"]["404"].as_u64().unwrap_or(0) >= 1, "{r}");
    assert!(u(e, "short_body") >= 1, "{r}");
    assert!(u(e, "connect") >= 1, "{r}");
    assert_eq!(u(e, "timeout") + u(e, "protocol"), 0, "{r}");
    assert_eq!(u(&r, "completed"), 0, "{r}");
}

#[test]
fn refuses_non_loopback_targets() {
    for url in ["http://192.0.2.1/x.mp4", "http://example.com/x.mp4", "http://[2001:db8::1]:80/"] {
        let out = common::run(common::loomiere().args(["bench", url, "--duration", "1"]));
        assert!(!out.status.success(), "{url} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("loopback"), "{url}: {err}");
        assert!(out.stdout.is_empty());
    }
    let out = common::run(common::loomiere().args(["bench", "http://127.0.0.1:9/", "--viewers", "0"]));
    assert!(!out.status.success());
}

#[test]
fn exit_status_says_when_requests_fail() {
    // Nothing listens: every connection is refused.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{closed}/c.mp4");
    let out = common::run(common::loomiere().args(["bench", &url, "--duration", "1", "--viewers", "2", "--json"]));
    assert!(!out.status.success(), "all refused must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no request succeeded") && err.contains("refused"), "{err}");
    let r: Value = serde_json::from_slice(&out.stdout).expect("the report is still printed");
    assert_eq!(u(&r, "succeeded"), 0);
    assert!(!r["warnings"].as_array().unwrap().is_empty(), "the probe said it: {r}");
    // Half the answers are 404: over the default 2 %, fine under --max-error-rate 100.
    let missing = Server::start(Behaviour::NotFound);
    let fine = Server::start(Behaviour::Serve { len: 1000, seconds: 1.0 });
    let args = [&missing.url("/a.mp4"), &fine.url("/b.mp4"), "--fast", "--viewers", "2", "--duration", "1", "--json"];
    let out = common::run(common::loomiere().arg("bench").args(args));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--max-error-rate"), "{err}");
    bench(&[&args[..args.len() - 1], &["--max-error-rate", "100"]].concat());
}

#[test]
fn viewers_leave_at_their_watch_time_and_waste_what_they_did_not_watch() {
    // 200 B/s: one read buffers far more than the 0.2 s each viewer watches.
    let server = Server::start(Behaviour::Serve { len: 200_000, seconds: 1000.0 });
    let r = bench(&[&server.url("/movie.mp4"), "--viewers", "3", "--duration", "2", "--ramp", "0", "--watch", "0.2"]);
    assert_eq!(r["watch"], "0.2");
    assert_eq!(u(&r["errors"], "total"), 0, "{r}");
    assert!(u(&r, "left") >= 3, "every viewer left at least once: {r}");
    assert!(u(&r, "requests") >= u(&r, "left"), "{r}");
    let (bytes, watched, wasted) = (u(&r, "bytes"), u(&r, "bytes_watched"), u(&r, "bytes_wasted"));
    assert!(wasted > 0 && watched + wasted <= bytes, "{r}");
    assert!((f(&r, "wasted_fraction") - wasted as f64 / bytes as f64).abs() < 1e-9, "{r}");
    // --watch is for paced viewers only; a bad model is refused with the forms it takes.
    let out = common::run(common::loomiere().args(["bench", &server.url("/m.mp4"), "--fast", "--watch", "5"]));
    assert!(!out.status.success());
    let out = common::run(common::loomiere().args(["bench", &server.url("/m.mp4"), "--watch", "later"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("retention"));
}

impl Serve {
    fn start(name: &str) -> Serve {
        let log = common::scratch(&format!("bench-{name}")).join("stderr.log");
        Serve::launch(&[common::media_dir().as_os_str(), "--threads".as_ref(), "1".as_ref()], &log)
    }

    /// The request targets of the GETs in the access log.
    fn gets(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split("\"GET ").nth(1)?.split(' ').next().map(str::to_string))
            .collect()
    }
}

/// Runs a short paced bench of `path` against `serve`; checks it got no error and no
/// warning, and returns the report.
fn bench_serve(serve: &Serve, path: &str) -> Value {
    let r = bench(&[&serve.url(path), "--viewers", "3", "--duration", "2", "--ramp", "0.5", "--watch", "retention"]);
    assert_eq!(u(&r["errors"], "total"), 0, "no 4xx, no error: {r}");
    assert_eq!(r["warnings"].as_array().map(Vec::len), Some(0), "{r}");
    assert!(u(&r, "succeeded") >= 3 && u(&r, "unpaced") == 0, "{r}");
    r
}

#[test]
fn serve_plain_mp4_url_gets_seeks() {
    let serve = Serve::start("plain-mp4");
    bench_serve(&serve, "/short.mp4");
    let seeks: Vec<String> = serve.gets().into_iter().filter(|g| g.starts_with("/short.mp4?start=")).collect();
    assert!(seeks.len() >= 3, "the viewers seek: {:?}", serve.gets());
    assert!(seeks.iter().all(|s| s.matches("start=").count() == 1), "{seeks:?}");
}

#[test]
fn serve_flv_seeks_in_a_form_it_takes() {
    let serve = Serve::start("flv");
    bench_serve(&serve, "/short.flv");
    let seeks: Vec<String> = serve.gets().into_iter().filter(|g| g.starts_with("/short.flv?start=")).collect();
    assert!(seeks.len() >= 3, "the viewers seek: {:?}", serve.gets());
}

#[test]
fn serve_url_with_a_start_gets_it_replaced_not_doubled() {
    let serve = Serve::start("query");
    bench_serve(&serve, "/short.mp4?start=0");
    let gets = serve.gets();
    let seeks: Vec<&String> = gets.iter().filter(|g| g.contains("start=")).collect();
    assert!(seeks.len() >= 3, "{gets:?}");
    assert!(seeks.iter().all(|s| s.matches("start=").count() == 1), "{seeks:?}");
    // --seek fixed keeps the URL as written.
    let r = bench(&[&serve.url("/short.mp4?start=0"), "--seek", "fixed", "--viewers", "1", "--duration", "1"]);
    assert_eq!(u(&r["errors"], "total"), 0, "{r}");
    assert!(serve.gets().iter().any(|g| g == "/short.mp4?start=0"));
}

/// Checks an HLS/DASH run against `serve`: no error, manifests, init and `.m4s` segments
/// asked for (the access log says so), per-kind figures in the report.
fn assert_segmented_run(serve: &Serve, r: &Value, manifest: &str) {
    assert_eq!(u(&r["errors"], "total"), 0, "no 4xx, no error: {r}");
    let abr = &r["abr"];
    assert!(u(abr, "sessions") >= 2 && u(abr, "segments") >= 2, "{r}");
    assert!(abr["first_error"].is_null(), "{r}");
    for kind in ["ttfb_playlist_ms", "ttfb_init_ms", "ttfb_segment_ms", "segment_download_ms"] {
        let l = &abr[kind];
        assert!(u(l, "count") >= 1 && f(l, "p50") <= f(l, "p99"), "{kind}: {r}");
    }
    let gets = serve.gets();
    assert!(gets.iter().any(|g| g == manifest), "{gets:?}");
    assert!(gets.iter().any(|g| g.starts_with("/short.mp4/v1/") && g.ends_with("init.mp4")), "{gets:?}");
    let segments = gets.iter().filter(|g| g.starts_with("/short.mp4/v1/") && g.ends_with(".m4s")).count();
    assert!(segments >= 2, "segments fetched: {gets:?}");
}

#[test]
fn serve_hls_viewers_fetch_playlists_init_and_segments() {
    let serve = Serve::start("hls");
    let r = bench(&[
        &serve.url("/short.mp4/master.m3u8"),
        "--viewers",
        "3",
        "--duration",
        "4",
        "--ramp",
        "0.5",
        "--watch",
        "0.5..1.5",
    ]);
    assert_segmented_run(&serve, &r, "/short.mp4/master.m3u8");
    assert!(serve.gets().iter().any(|g| g == "/short.mp4/v1/index.m3u8"), "the variant's media playlist");
    assert!(u(&r, "left") >= 1 && u(&r, "bytes_watched") > 0, "viewers left at their watch time: {r}");
    // Read as fast as they come, every segment of the 60 s file is fetched from the first on.
    let fast = bench(&[
        &serve.url("/short.mp4/master.m3u8"),
        "--viewers",
        "1",
        "--duration",
        "2",
        "--fast",
        "--seek",
        "fixed",
    ]);
    assert_segmented_run(&serve, &fast, "/short.mp4/master.m3u8");
    assert!(
        serve.gets().iter().any(|g| g == "/short.mp4/v1/1.m4s")
            && serve.gets().iter().any(|g| g == "/short.mp4/v1/10.m4s")
    );
}

#[test]
fn serve_dash_viewers_fetch_segments_from_the_timeline() {
    let serve = Serve::start("dash");
    let r = bench(&[
        &serve.url("/short.mp4/manifest.mpd"),
        "--viewers",
        "3",
        "--duration",
        "3",
        "--ramp",
        "0.5",
        "--seek",
        "random",
    ]);
    assert_segmented_run(&serve, &r, "/short.mp4/manifest.mpd");
    // --variant 2: the audio Representation.
    let a = bench(&[
        &serve.url("/short.mp4/manifest.mpd"),
        "--variant",
        "2",
        "--viewers",
        "1",
        "--duration",
        "1",
        "--fast",
    ]);
    assert_eq!(u(&a["errors"], "total"), 0, "{a}");
    assert!(serve.gets().iter().any(|g| g.starts_with("/short.mp4/a2/") && g.ends_with(".m4s")));
}

#[test]
fn bad_playlist_urls_fail_the_run() {
    let serve = Serve::start("hls-bad");
    for path in ["/missing.mp4/master.m3u8", "/short.mp4/nothing.mpd"] {
        let out =
            common::run(common::loomiere().args(["bench", &serve.url(path), "--duration", "1", "--viewers", "1"]));
        assert!(!out.status.success(), "{path} must fail the run");
    }
    // A variant that is not there: the manifests are answered, the run fails and says why.
    let out = common::run(common::loomiere().args([
        "bench",
        &serve.url("/short.mp4/master.m3u8"),
        "--variant",
        "9",
        "--duration",
        "1",
        "--viewers",
        "1",
        "--json",
    ]));
    assert!(!out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["abr"]["first_error"].as_str().is_some_and(|e| e.contains("--variant 9")), "{r}");
}
