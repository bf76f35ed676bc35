//! `loomiere serve` end to end: the binary on a free loopback port (killed by PID on drop),
//! fetched with a tiny raw HTTP client so that keep-alive, pipelining and slow clients can
//! be driven byte by byte. Outputs are judged with ffprobe/ffmpeg. No timed assertions:
//! waits are bounded only so a broken server fails the test instead of hanging it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running `loomiere serve`; killed on drop (also when a test fails).
struct Serve {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Serve {
    fn start(name: &str, args: &[&str]) -> Serve {
        Serve::start_in(Path::new(env!("CARGO_MANIFEST_DIR")), name, args)
    }

    fn start_in(cwd: &Path, name: &str, args: &[&str]) -> Serve {
        let log = common::scratch(&format!("{name}-log")).join("stderr.log");
        let mut child = common::loomiere()
            .current_dir(cwd)
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--threads", "2"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start loomiere serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().trim_start_matches("http://").trim_end_matches('/').to_string();
        if addr.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        Serve { child, addr, log }
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

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    assert!(s.log().contains("\"GET /short.mp4?start=10 HTTP/1.1\" 200 "), "access log: {}", s.log());
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
    write_config(&conf, "document_root = \"relative\"\n");
    assert_eq!(s.get("/short.mp4", "").status, 500, "a broken config is a 500, never a fallback");
    write_config(&conf, &format!("extensions = [\"mp4\"]\n{base}"));
    assert_eq!(s.get("/short.mp4", "").status, 200);

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
    assert_eq!(s.log().matches("\"GET /still.png HTTP/1.1\" 200").count(), 4);
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
    let duration: f64 = probe.header("x-content-duration").expect("a whole FLV carries its duration").parse().unwrap();
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
    while !s.log().contains("configuration reloaded") {
        assert_eq!(s.get("/still.png", "").status, 200, "SIGHUP must not stop the server");
        assert!(began.elapsed() < Duration::from_secs(30), "SIGHUP did not reload: {}", s.log());
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

#[test]
fn max_connections_queues_the_rest() {
    let root = root("serve-maxconn");
    let conf = common::scratch("serve-maxconn-file").join("stream.conf");
    write_config(&conf, &format!("document_root = {:?}\n[server]\nmax_connections = 1\n", root.display().to_string()));
    let s = Serve::start("serve-maxconn", &["--config", conf.to_str().unwrap()]);
    let mut a = s.connect();
    a.write_all(b"GET /still.png HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(Resp::read_one(&mut a).status, 200); // `a` now holds the only slot
    let mut b = s.connect(); // accepted by the kernel, not served yet
    b.write_all(b"GET /still.jpg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    b.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut byte = [0u8];
    let early = b.read(&mut byte);
    assert!(early.is_err(), "second connection answered while the first held the only slot: {early:?}");
    drop(a);
    b.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut all = Vec::new();
    b.read_to_end(&mut all).unwrap();
    assert_eq!(Resp::parse(&all).unwrap().status, 200);
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
