//! `loomiere bench` end to end against tiny in-test HTTP servers (std threads on
//! 127.0.0.1:0) that serve a fixed body with `X-Content-Duration`, misbehave on purpose
//! (404, short bodies) or are absent; plus the loopback-only refusal. Checks that the JSON
//! report's numbers are consistent, never how fast anything was.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy)]
enum Behaviour {
    /// 200 with the body and `X-Content-Duration: seconds`, keep-alive.
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
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
        }
        paths.lock().unwrap().push(format!("{method} {target}"));
        let body_wanted = method != "HEAD";
        let ok = match behaviour {
            Behaviour::Serve { len, seconds } => {
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
    // Fixed seek at 0 sends no start parameter.
    assert!(server.paths.lock().unwrap().iter().all(|p| p == "GET /movie.mp4"));
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
        .filter(|p| p.starts_with("GET "))
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
