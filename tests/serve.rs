//! `loomiere serve` end to end: the binary on a free loopback port (killed by PID on drop),
//! fetched with a tiny raw HTTP client so that keep-alive, pipelining and slow clients can
//! be driven byte by byte. Outputs are judged with ffprobe/ffmpeg. No timed assertions:
//! waits are bounded only so a broken server fails the test instead of hanging it.

mod common;

use common::serve::Serve;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

impl Serve {
    fn start(name: &str, args: &[&str]) -> Serve {
        Serve::start_in(Path::new(env!("CARGO_MANIFEST_DIR")), name, args)
    }

    fn start_in(cwd: &Path, name: &str, args: &[&str]) -> Serve {
        let log = common::scratch(&format!("{name}-log")).join("stderr.log");
        let mut cmd = common::loomiere();
        cmd.current_dir(cwd).arg("serve").args(args).args(["--listen", "127.0.0.1:0", "--threads", "2"]);
        Serve::launch_cmd(cmd, 1, &log)
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    }

    /// Sends `raw` on a new connection and reads until the server closes.
    fn raw(&self, raw: &str) -> Resp {
        let mut s = self.connect();
        s.write_all(raw.as_bytes()).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        Resp::parse(&all).unwrap_or_else(|| panic!("no response to {raw:?}: {:?}", String::from_utf8_lossy(&all)))
    }

    fn get(&self, path: &str, headers: &str) -> Resp {
        self.raw(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"))
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn parse(all: &[u8]) -> Option<Resp> {
        let end = all.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&all[..end]).ok()?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Some(Resp { status, headers, body: all[end + 4..].to_vec() })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Reads one response framed by Content-Length from a kept-alive connection.
    fn read_one(r: &mut impl Read) -> Resp {
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            r.read_exact(&mut byte).expect("response head");
            head.push(byte[0]);
        }
        let mut resp = Resp::parse(&head).unwrap();
        let len: usize = resp.header("content-length").unwrap().parse().unwrap();
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body).unwrap();
        resp
    }
}

/// A document root with the test media copied in, and a secret outside it.
fn root(name: &str) -> PathBuf {
    let dir = common::scratch(name);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    for f in ["short.mp4", "short.flv", "still.jpg", "still.png"] {
        std::fs::copy(common::media(f), root.join(f)).unwrap();
    }
    std::fs::copy(common::media("still.png"), root.join("sub/deep.png")).unwrap();
    std::fs::create_dir_all(dir.join("outside")).unwrap();
    std::fs::write(dir.join("outside/secret.mp4"), b"TOP-SECRET-OUTSIDE-ROOT").unwrap();
    std::fs::write(root.join("notes.txt"), b"TOP-SECRET-TXT").unwrap();
    std::os::unix::fs::symlink(dir.join("outside/secret.mp4"), root.join("link-out.mp4")).unwrap();
    std::os::unix::fs::symlink(dir.join("outside"), root.join("dir-out")).unwrap();
    root
}

fn save(name: &str, body: &[u8]) -> PathBuf {
    let p = common::scratch(name).join("out.bin");
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn seeks_decode_and_images_are_identical() {
    let root = root("serve-decode");
    let s = Serve::start("serve-decode", &[root.to_str().unwrap()]);
    let r = s.get("/short.mp4?start=10", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(r.header("content-length").unwrap().parse::<usize>().unwrap(), r.body.len());
    let out = save("serve-decode-mp4", &r.body).with_extension("mp4");
    std::fs::write(&out, &r.body).unwrap();
    assert_eq!(common::decode_errors(&out), "");
    let d = common::duration(&out);
    // 50 s once the MP4 engine seeks (keyframes every 2 s), 60 s while it sends whole files.
    assert!((49.0..=60.5).contains(&d), "duration {d}");

    let r = s.get("/short.flv", "");
    assert_eq!(r.status, 200);
    let out = common::scratch("serve-decode-flv").join("out.flv");
    std::fs::write(&out, &r.body).unwrap();
    assert_eq!(common::decode_errors(&out), "");

    for (file, ty) in [("still.jpg", "image/jpeg"), ("still.png", "image/png"), ("sub/deep.png", "image/png")] {
        let r = s.get(&format!("/{file}"), "");
        assert_eq!(r.status, 200, "{file}");
        assert_eq!(r.header("content-type"), Some(ty));
        assert_eq!(r.body, std::fs::read(root.join(file)).unwrap(), "{file} differs");
    }
    assert!(s.stderr().contains("\"GET /short.mp4?start=10 HTTP/1.1\" 200 "), "access log: {}", s.stderr());
}

#[test]
fn ranges_head_and_revalidation() {
    let root = root("serve-ranges");
    let s = Serve::start("serve-ranges", &[root.to_str().unwrap()]);
    let full = s.get("/short.mp4?start=20", "");
    assert_eq!(full.status, 200);
    let a = s.get("/short.mp4?start=20", "Range: bytes=0-99\r\n");
    assert_eq!(a.status, 206);
    assert_eq!(a.body.len(), 100);
    assert_eq!(a.header("content-range"), Some(format!("bytes 0-99/{}", full.body.len()).as_str()));
    let b = s.get("/short.mp4?start=20", "Range: bytes=100-\r\n");
    assert_eq!(b.status, 206);
    assert_eq!([a.body, b.body].concat(), full.body, "ranges concatenate to the whole");
    let r = s.get("/short.mp4", &format!("Range: bytes={}-\r\n", full.body.len() * 2));
    assert_eq!(r.status, 416);

    let head = s.raw("HEAD /short.mp4?start=20 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let strip = |r: &Resp| r.headers.iter().filter(|(n, _)| n != "date").cloned().collect::<Vec<_>>();
    assert_eq!(strip(&head), strip(&full));

    let etag = full.header("etag").expect("etag").to_string();
    let r = s.get("/short.mp4?start=20", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let lm = full.header("last-modified").expect("last-modified").to_string();
    assert_eq!(s.get("/still.png", &format!("If-Modified-Since: {lm}\r\n")).status, 304);
    let r = s.raw("POST /short.mp4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 405);
}

#[test]
fn traversal_table_never_leaves_the_root() {
    let root = root("serve-traversal");
    let s = Serve::start("serve-traversal", &[root.to_str().unwrap()]);
    let attempts = [
        "/../outside/secret.mp4",
        "/../../../../etc/passwd",
        "/sub/../../outside/secret.mp4",
        "/%2e%2e/outside/secret.mp4",
        "/%2E%2E/outside/secret.mp4",
        "/.%2e/outside/secret.mp4",
        "/%2e./outside/secret.mp4",
        "/sub/%2e%2e/%2e%2e/outside/secret.mp4",
        "/..%2foutside%2fsecret.mp4",
        "/%2f..%2foutside/secret.mp4",
        "/sub%2f..%2f..%2foutside/secret.mp4",
        "/..%5coutside%5csecret.mp4",
        "/..\\outside\\secret.mp4",
        "/%252e%252e/outside/secret.mp4",
        "//../outside/secret.mp4",
        "///..//..//outside/secret.mp4",
        "/link-out.mp4",
        "/dir-out/secret.mp4",
        "/dir-out/",
        "/notes.txt",
        "/notes.txt%00.mp4",
        "/notes.txt\0.mp4",
        "/short.mp4%00",
        "/etc/passwd",
        "/%00/short.mp4",
        "/.%2e",
        "/..",
        "/sub/..",
        "http://evil/../outside/secret.mp4",
        "*",
        "/short.mp4/../../outside/secret.mp4",
        "/.hidden.mp4",
        "/%c0%ae%c0%ae/outside/secret.mp4",
        "/sub/./../../outside/secret.mp4",
    ];
    assert!(attempts.len() >= 30);
    for path in attempts {
        let r = s.raw(&format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        assert!(
            [400, 403, 404].contains(&r.status)
                || (r.status == 200 && r.header("content-type") == Some("text/html; charset=utf-8")),
            "{path:?} answered {}",
            r.status
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("TOP-SECRET") && !body.contains("root:"), "{path:?} leaked: {body}");
    }
    // The listing shows neither hidden nor unserved names.
    let page = String::from_utf8_lossy(&s.get("/", "").body).into_owned();
    assert!(page.contains("<video") && page.contains("short.mp4") && !page.contains("notes.txt"), "{page}");
}

fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn config_is_reloaded_and_limits_apply() {
    let root = root("serve-config");
    let conf = common::scratch("serve-config-file").join("stream.conf");
    let base = format!("document_root = {:?}\n[server]\nheader_timeout_secs = 1\n", root.display().to_string());
    write_config(&conf, &format!("extensions = [\"mp4\"]\n{base}"));
    let s = Serve::start("serve-config", &["--config", conf.to_str().unwrap()]);
    assert_eq!(s.get("/short.mp4", "").status, 200);
    assert!([403, 404].contains(&s.get("/still.jpg", "").status));
    assert_eq!(s.get("/", "").status, 403, "listing is off unless the config turns it on");
    write_config(&conf, &format!("extensions = [\"mp4\", \"jpg\"]\nlisting = true\n{base}"));
    assert_eq!(s.get("/still.jpg", "").status, 200, "edited config honoured on the next request");
    assert_eq!(s.get("/", "").status, 200);
    // A broken save is refused with a log line naming the error; the last good config serves.
    write_config(&conf, "document_root = \"relative\"\n");
    assert_eq!(s.get("/still.jpg", "").status, 200, "the last good config stays in force");
    assert_eq!(s.get("/", "").status, 200);
    let log = s.stderr();
    assert!(
        log.contains("configuration not reloaded") && log.contains("document_root relative must be an absolute path"),
        "the error log names the error: {log}"
    );
    write_config(&conf, &format!("extensions = [\"mp4\"]\n{base}"));
    assert_eq!(s.get("/short.mp4", "").status, 200);
    assert!([403, 404].contains(&s.get("/still.jpg", "").status), "the fixed file is read again");

    // Slowloris: a head that never completes is dropped at the header timeout (1 s).
    let mut c = s.connect();
    c.write_all(b"GET /short.mp4 HTTP/1.1\r\nHost: x\r\n").unwrap();
    let began = Instant::now();
    let mut got = Vec::new();
    c.read_to_end(&mut got).expect("server closes the connection");
    assert!(began.elapsed() < Duration::from_secs(25));
    assert!(got.starts_with(b"HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&got));
    // An oversized head is refused.
    let big = format!("GET /short.mp4 HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(s.raw(&big).status, 431);
}

#[test]
fn a_broken_config_at_start_up_is_fatal() {
    let conf = common::scratch("serve-broken-start").join("stream.conf");
    write_config(&conf, "document_root = \"relative\"\n");
    let out = common::run(
        common::loomiere().arg("serve").args(["--config", conf.to_str().unwrap()]).args(["--listen", "127.0.0.1:0"]),
    );
    assert!(!out.status.success(), "serve started with a broken config");
    assert!(out.stdout.is_empty(), "no address announced");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("configuration is invalid") && err.contains("must be an absolute path"), "{err}");
}

#[test]
fn keep_alive_and_pipelining() {
    let root = root("serve-keepalive");
    let s = Serve::start("serve-keepalive", &[root.to_str().unwrap()]);
    let mut c = s.connect();
    // Three requests one after another, then three pipelined in one write.
    for _ in 0..3 {
        c.write_all(b"GET /still.png HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = Resp::read_one(&mut c);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    c.write_all(
        b"GET /still.png HTTP/1.1\r\nHost: x\r\n\r\nHEAD /still.jpg HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /short.mp4 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n",
    )
    .unwrap();
    let png = Resp::read_one(&mut c);
    assert_eq!(png.body, std::fs::read(root.join("still.png")).unwrap());
    // HEAD carries a Content-Length but no body: read just the head.
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    let r = Resp::read_one(&mut c);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, std::fs::read(root.join("short.mp4")).unwrap()[..10]);
    assert_eq!(s.stderr().matches("\"GET /still.png HTTP/1.1\" 200").count(), 4);
}

#[test]
fn throttle_paces_media() {
    let root = root("serve-throttle");
    let conf = common::scratch("serve-throttle-file").join("stream.conf");
    write_config(
        &conf,
        &format!("document_root = {:?}\nthrottle = 1.0\nburst_seconds = 1\n", root.display().to_string()),
    );
    let s = Serve::start("serve-throttle", &["--config", conf.to_str().unwrap()]);
    let probe = s.raw("HEAD /short.flv HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let duration = probe
        .header("x-content-duration")
        .and_then(|d| d.parse::<f64>().ok())
        .expect("no X-Content-Duration for short.flv: the throttle has no rate to pace at");
    let total: f64 = probe.header("content-length").unwrap().parse().unwrap();
    let rate = total / duration;
    let mut c = s.connect();
    c.write_all(b"GET /short.flv HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let began = Instant::now();
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    while began.elapsed() < Duration::from_secs(3) {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let secs = began.elapsed().as_secs_f64();
    // Burst (header + 1 s) plus the paced part; generous bounds either side.
    let expected = rate * (1.0 + secs);
    assert!((got as f64) < expected * 2.0 + 65536.0, "got {got} bytes in {secs:.1} s, expected about {expected:.0}");
    assert!((got as f64) > expected * 0.3, "got {got} bytes in {secs:.1} s, expected about {expected:.0}");
}

#[test]
fn sigterm_stops_the_server() {
    let root = root("serve-sigterm");
    let mut s = Serve::start("serve-sigterm", &[root.to_str().unwrap()]);
    assert_eq!(s.get("/still.png", "").status, 200);
    let pid = s.child.id().to_string();
    assert!(common::run(std::process::Command::new("kill").args(["-HUP", &pid])).status.success());
    let began = Instant::now();
    while !s.stderr().contains("configuration reloaded") {
        assert_eq!(s.get("/still.png", "").status, 200, "SIGHUP must not stop the server");
        assert!(began.elapsed() < Duration::from_secs(30), "SIGHUP did not reload: {}", s.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let idle = s.connect(); // an idle keep-alive connection must not hold the shutdown up
    assert!(common::run(std::process::Command::new("kill").args(["-TERM", &pid])).status.success());
    let began = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(began.elapsed() < Duration::from_secs(30), "serve ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    drop(idle);
}

/// Waits (bounded) for the server to exit; its status.
fn wait_exit(s: &mut Serve) -> std::process::ExitStatus {
    let began = Instant::now();
    loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            return st;
        }
        assert!(began.elapsed() < Duration::from_secs(60), "serve did not stop: {}", s.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_lets_streams_finish_within_the_grace_then_cuts_and_logs_them() {
    let root = root("serve-grace");
    let conf = common::scratch("serve-grace-file").join("stream.conf");
    // Paced at the media rate with no burst: a 2-second clip takes about 2 s, the whole
    // 60-second movie about a minute.
    let text = |grace: u32| {
        format!(
            "document_root = {:?}\nthrottle = 1.0\nburst_seconds = 0\n[server]\nshutdown_grace_secs = {grace}\n",
            root.display().to_string()
        )
    };
    // A grace long enough: the running clip is sent whole, and nothing is cut.
    write_config(&conf, &text(60));
    let mut s = Serve::start("serve-grace-long", &["--config", conf.to_str().unwrap()]);
    let mut c = s.connect();
    c.write_all(b"GET /short.mp4?start=10&end=12 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut first = [0u8; 1];
    c.read_exact(&mut first).unwrap(); // the answer is under way
    s.signal("-TERM");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    let mut all = first.to_vec();
    all.extend_from_slice(&rest);
    let resp = Resp::parse(&all).expect("an answer");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), resp.header("content-length").unwrap().parse::<usize>().unwrap());
    assert_eq!(common::decode_errors(&save("serve-grace-clip", &resp.body)), "");
    assert!(wait_exit(&mut s).success());
    assert!(s.stderr().contains("stopped: 0 answers cut"), "{}", s.stderr());

    // A short grace: the whole-movie stream is cut when it runs out, and the log says which.
    write_config(&conf, &text(1));
    let mut s = Serve::start("serve-grace-short", &["--config", conf.to_str().unwrap()]);
    let mut c = s.connect();
    c.write_all(b"GET /short.mp4?start=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\nConnection: close\r\n\r\n")
        .unwrap();
    c.read_exact(&mut first).unwrap();
    s.signal("-TERM");
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest); // ends (closed or reset) when the grace is over
    assert!(wait_exit(&mut s).success());
    let log = s.stderr();
    assert!(
        log.contains("stopping: grace of 1 s over, answer cut: 127.0.0.1 \"GET /short.mp4?start=1 HTTP/1.1\""),
        "{log}"
    );
    assert!(log.contains("stopped: 1 answers cut"), "{log}");
}

#[test]
fn max_connections_queues_the_rest() {
    let root = root("serve-maxconn");
    let conf = common::scratch("serve-maxconn-file").join("stream.conf");
    write_config(
        &conf,
        &format!(
            "document_root = {:?}\n[server]\nmax_connections = 1\nheader_timeout_secs = 120\n",
            root.display().to_string()
        ),
    );
    let s = Serve::start("serve-maxconn", &["--config", conf.to_str().unwrap()]);
    let mut a = s.connect();
    // `a` holds the only slot with a request under way: it is not idle, so it is never closed.
    a.write_all(b"GET /still.png HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut b = s.connect(); // accepted by the kernel, not served yet
    b.write_all(b"GET /still.jpg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    b.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut byte = [0u8];
    let early = b.read(&mut byte);
    assert!(early.is_err(), "second connection answered while the first held the only slot: {early:?}");
    // `a` is answered and stays open, idle: it then gives its slot to `b` at once (the idle
    // timeout, 120 s, is far longer than `b` waits).
    a.write_all(b"\r\n").unwrap();
    assert_eq!(Resp::read_one(&mut a).status, 200, "the request under way is answered");
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut all = Vec::new();
    b.read_to_end(&mut all).expect("the waiting client is served once the slot's holder is idle");
    assert_eq!(Resp::parse(&all).unwrap().status, 200);
    assert!(matches!(a.read(&mut byte), Ok(0) | Err(_)), "the idle connection was closed for it");
}

#[test]
fn idle_keep_alive_connections_make_room_oldest_first() {
    let root = root("serve-idle");
    let conf = common::scratch("serve-idle-file").join("stream.conf");
    // The idle timeout (header_timeout_secs) is far longer than the wait allowed below.
    write_config(
        &conf,
        &format!(
            "document_root = {:?}\n[server]\nmax_connections = 8\nheader_timeout_secs = 120\n",
            root.display().to_string()
        ),
    );
    let s = Serve::start("serve-idle", &["--config", conf.to_str().unwrap()]);
    let mut idle: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut c = s.connect();
            c.write_all(b"GET /still.png HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            assert_eq!(Resp::read_one(&mut c).status, 200);
            c
        })
        .collect();
    // The server is full of idle keep-alive clients: a new viewer is served all the same.
    let mut fresh = s.connect();
    fresh.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    fresh.write_all(b"GET /still.jpg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = Vec::new();
    fresh.read_to_end(&mut all).expect("a new viewer is served without waiting for the idle timeout");
    assert_eq!(Resp::parse(&all).unwrap().status, 200);
    // The oldest idle connection was the one closed; the youngest still works.
    let mut byte = [0u8];
    assert!(matches!(idle[0].read(&mut byte), Ok(0) | Err(_)), "the oldest idle connection is closed");
    let last = idle.last_mut().unwrap();
    last.write_all(b"GET /still.png HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(Resp::read_one(last).status, 200);

    // Connections that never send a byte (browser preconnects, idle attackers) make room too,
    // once silent for a second.
    drop(idle);
    let silent: Vec<TcpStream> = (0..8).map(|_| s.connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fresh = s.connect();
    fresh.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    fresh.write_all(b"GET /still.jpg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = Vec::new();
    fresh.read_to_end(&mut all).expect("a new viewer is served past silent connections");
    assert_eq!(Resp::parse(&all).unwrap().status, 200);
    drop(silent);
}

#[test]
fn a_burst_of_2000_connections_is_answered() {
    const CLIENTS: usize = 2000;
    const THREADS: usize = 16;
    let have = loomiere::serve::raise_nofile_to(4 * CLIENTS as u64 + 256);
    assert!(have >= 2 * CLIENTS as u64 + 64, "the open-file limit ({have}) is too low for {CLIENTS} connections");
    let root = root("serve-burst");
    let conf = common::scratch("serve-burst-file").join("stream.conf");
    // Idle keep-alive clients are kept far longer than a client below waits for its answer:
    // the second half of the burst is served because idle ones make room, not by timeout.
    write_config(
        &conf,
        &format!(
            "document_root = {:?}\nlog = \"off\"\n[server]\nheader_timeout_secs = 120\n",
            root.display().to_string()
        ),
    );
    let s = Serve::start("serve-burst", &["--config", conf.to_str().unwrap()]);
    // The listen backlog is the default 4096, as far as the kernel allows (ss shows a
    // listening socket's backlog as its Send-Q).
    let port = s.addr.rsplit(':').next().unwrap();
    let out = common::run(std::process::Command::new("ss").args(["-Hltn", &format!("sport = :{port}")]));
    assert!(out.status.success(), "ss (iproute2) is needed: {out:?}");
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let backlog: u64 = listing.split_whitespace().nth(2).and_then(|q| q.parse().ok()).expect(&listing);
    let somaxconn: u64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
    assert_eq!(backlog, somaxconn.min(4096), "listen backlog: {listing}");
    let connected = std::sync::Barrier::new(THREADS);
    let answered = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for _ in 0..THREADS {
            sc.spawn(|| {
                // Every client connects and sends its HEAD before any answer is read.
                let mut mine: Vec<TcpStream> = (0..CLIENTS / THREADS)
                    .map(|_| {
                        let mut c = TcpStream::connect(&s.addr).expect("connect");
                        c.write_all(b"HEAD /still.png HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                        c
                    })
                    .collect();
                connected.wait();
                for c in &mut mine {
                    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                    let mut head = Vec::new();
                    let mut byte = [0u8];
                    while !head.ends_with(b"\r\n\r\n") && c.read(&mut byte).is_ok_and(|n| n == 1) {
                        head.push(byte[0]);
                    }
                    if head.starts_with(b"HTTP/1.1 200") {
                        answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(answered.into_inner(), CLIENTS, "every client of the burst is answered");
}

/// The deleted files `pid` holds open (`/proc/PID/fd` links ending in "(deleted)"; memory
/// files, which never had a name on disk, are not counted).
fn deleted_files_held(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .filter(|t| t.ends_with("(deleted)") && !t.starts_with("/memfd:"))
        .collect()
}

#[test]
fn deleted_and_replaced_movies_are_let_go() {
    let root = root("serve-deleted");
    for f in ["gone.mp4", "other.mp4", "replaced.mp4"] {
        std::fs::copy(common::media("short.mp4"), root.join(f)).unwrap();
    }
    let s = Serve::start("serve-deleted", &[root.to_str().unwrap()]);
    let pid = s.child.id();
    for f in ["gone.mp4", "replaced.mp4"] {
        assert_eq!(s.get(&format!("/{f}?start=10"), "").status, 200);
    }
    // Deleted: let go at the next insertion into the movie cache (or the periodic sweep).
    std::fs::remove_file(root.join("gone.mp4")).unwrap();
    assert!(deleted_files_held(pid).iter().any(|t| t.contains("gone.mp4")), "the movie cache holds the file");
    assert_eq!(s.get("/other.mp4?start=10", "").status, 200);
    let held = deleted_files_held(pid);
    assert!(held.is_empty(), "serve still holds deleted files: {held:?}");
    // Replaced under the same name: the next request for that name opens the new file and
    // closes the old one.
    let tmp = root.join(".replaced.tmp");
    std::fs::copy(common::media("faststart.mp4"), &tmp).unwrap();
    std::fs::rename(&tmp, root.join("replaced.mp4")).unwrap();
    let r = s.get("/replaced.mp4?start=1", "");
    assert_eq!(r.status, 200);
    let held = deleted_files_held(pid);
    assert!(held.is_empty(), "serve still holds the replaced file: {held:?}");
}

#[test]
fn conflicting_framing_is_400_and_closes() {
    let root = root("serve-framing");
    let s = Serve::start("serve-framing", &[root.to_str().unwrap()]);
    let conf = common::scratch("serve-framing-inetd").join("stream.conf");
    write_config(&conf, &format!("document_root = {:?}\nlog = \"off\"\n", root.display().to_string()));
    for framing in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: -5\r\n",
        "Content-Length: five\r\n",
        "Transfer-Encoding: gzip\r\n",
    ] {
        // A pipelined second request must never be answered: the connection is closed.
        let raw = format!(
            "GET /still.png HTTP/1.1\r\nHost: x\r\n{framing}\r\nhello\r\n\r\nGET /still.jpg HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let mut c = s.connect();
        c.write_all(raw.as_bytes()).unwrap();
        let mut all = Vec::new();
        c.read_to_end(&mut all).expect("the server closes the connection");
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 400"), "{framing:?}: {text}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{framing:?}: one answer only: {text}");

        // The inetd driver parses with the same rules.
        let mut inetd = common::loomiere()
            .args(["serve-cgi", "--inetd", "--config", conf.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        inetd.stdin.take().unwrap().write_all(raw.as_bytes()).unwrap();
        let out = inetd.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/1.1 400"), "inetd {framing:?}: {text}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "inetd {framing:?}: one answer only: {text}");
    }
}

#[test]
fn signed_listing_refuses_unsigned_requests() {
    let root = root("serve-signed-listing");
    let conf = common::scratch("serve-signed-listing-file").join("stream.conf");
    let key = "0123456789abcdef-listing";
    write_config(
        &conf,
        &format!("document_root = {:?}\nlisting = true\nsecret = {key:?}\n", root.display().to_string()),
    );
    let s = Serve::start("serve-signed-listing", &["--config", conf.to_str().unwrap()]);
    let r = s.get("/", "");
    assert_eq!(r.status, 403, "an unsigned listing is refused");
    assert!(!String::from_utf8_lossy(&r.body).contains("short.mp4"));
    assert_eq!(s.get("/sub/", "").status, 403);
    let bad = loomiere::http::signed::query(key, "/sub/", 4_000_000_000);
    assert_eq!(s.get(&format!("/?{bad}"), "").status, 403, "a signature for another directory");
    let until = 4_000_000_000u64;
    let page = s.get(&format!("/?{}", loomiere::http::signed::query(key, "/", until)), "");
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body).into_owned();
    // Its links carry signatures and work; the same file unsigned is refused.
    let q = loomiere::http::signed::query(key, "/short.mp4", until).replace('&', "&amp;");
    assert!(html.contains(&format!("href=\"/short.mp4?{q}\"")), "{html}");
    let link = format!("/short.mp4?{}&start=10", loomiere::http::signed::query(key, "/short.mp4", until));
    assert_eq!(s.get(&link, "").status, 200);
    assert_eq!(s.get("/short.mp4", "").status, 403);
}

#[test]
fn demo_then_serve_on_a_fresh_directory() {
    let cwd = common::scratch("serve-demo");
    let out = common::run(common::loomiere().current_dir(&cwd).arg("serve").args(["--listen", "127.0.0.1:0"]));
    assert!(!out.status.success(), "serve without media must explain, not serve nothing");
    assert!(String::from_utf8_lossy(&out.stderr).contains("loomiere demo"));
    let out = common::run(common::loomiere().current_dir(&cwd).arg("demo"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = Serve::start_in(&cwd, "serve-demo", &[]);
    let page = String::from_utf8_lossy(&s.get("/", "").body).into_owned();
    assert!(page.contains("<video") && page.contains("href=\"/sample.mp4\""), "{page}");
    for (file, ext) in [("sample.mp4", "mp4"), ("sample.flv", "flv"), ("poster.jpg", "jpg")] {
        let r = s.get(&format!("/{file}"), "");
        assert_eq!(r.status, 200, "{file}");
        let saved = common::scratch(&format!("serve-demo-{ext}")).join(format!("got.{ext}"));
        std::fs::write(&saved, &r.body).unwrap();
        assert_eq!(common::decode_errors(&saved), "", "{file}");
    }
}
