//! Real web servers in front of `loomiere` as a CGI program (lighttpd, Apache, busybox httpd,
//! nginx + fcgiwrap) and as an inetd service (tcpsvd with its runit script, xinetd), each
//! started from the ready configs in `cgi/` on 127.0.0.1 and a free port, and fetched with
//! curl (or a raw socket where exact bytes matter). A server whose binary is missing is
//! skipped with a `SKIPPED:` message, or fails the test under `LOOMIERE_REQUIRE_ALL=1` (CI).
//! Every server is killed by process group on drop, also on failure.
//!
//! What each run checks: seeked MP4 and FLV answers equal what the library plans (and decode
//! cleanly, with the planned duration); `Range: 0-99` + `100-` concatenate to the whole body;
//! HEAD has the same headers and no body; revalidation gives 304; images arrive
//! byte-identical with their type; a table of traversal attempts is all refused with nothing
//! from outside the root in any body; a config edit is honoured on the next request; a
//! throttled stream arrives near its configured rate; and a client hanging up mid-stream
//! leaves no loomiere process behind.

mod common;

use loomiere::request::{BareUnit, Position, Request};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET_MARKER: &str = "LOOMIERE-SECRET-MARKER";

/// A started server process group, killed on drop.
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pg = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &pg]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &pg]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}

/// One server under test: its directories, port and what it can pass to a CGI program.
struct Site {
    name: &'static str,
    port: u16,
    dir: PathBuf,
    root: PathBuf,
    run: PathBuf,
    config: PathBuf,
    bin: PathBuf,
    /// Whether the server forwards `Range` and `If-*` headers to loomiere.
    forwards_conditionals: bool,
    /// loomiere speaks HTTP itself (`serve-cgi --inetd`).
    inetd: bool,
    /// What comes before a media path in a URL: empty where the server maps extensions to
    /// loomiere, the CGI program's own path where the media path is its `PATH_INFO`.
    prefix: &'static str,
    procs: Vec<Proc>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn link_or_copy(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

impl Site {
    fn new(name: &'static str) -> Site {
        let dir = common::scratch(&format!("cgi-{name}"));
        let root = dir.join("root");
        let run = dir.join("run");
        let outside = dir.join("outside");
        for d in [&root, &run, &outside, &root.join("sub"), &root.join("dir.mp4"), &run.join("cgi-bin")] {
            std::fs::create_dir_all(d).unwrap();
        }
        for m in ["short.mp4", "long.mp4", "short.flv", "still.jpg", "still.png"] {
            link_or_copy(&common::media(m), &root.join(m));
        }
        link_or_copy(&common::media("still.jpg"), &root.join("sub/still.jpg"));
        std::fs::write(outside.join("secret.mp4"), SECRET_MARKER).unwrap();
        std::fs::write(outside.join("secret.txt"), SECRET_MARKER).unwrap();
        std::fs::write(root.join(".hidden.mp4"), SECRET_MARKER).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.mp4"), root.join("link.mp4")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("linkdir")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("passwd.mp4")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("zero.mp4")).unwrap();
        let fifo = root.join("fifo.mp4");
        assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        // A private hard link of the binary, so its processes can be told apart in /proc.
        let bin = run.join("cgi-bin").join("loomiere");
        link_or_copy(Path::new(env!("CARGO_BIN_EXE_loomiere")), &bin);
        let config = run.join("stream.conf");
        std::fs::create_dir_all(run.join("index-cache")).unwrap();
        let site = Site {
            name,
            port: free_port(),
            dir,
            root,
            run,
            config,
            bin,
            forwards_conditionals: true,
            inetd: false,
            prefix: "",
            procs: Vec::new(),
        };
        site.write_config("");
        site
    }

    /// Writes stream.conf: the template with the `key = value` lines of `extra` replacing
    /// the template's lines for the same keys.
    fn write_config(&self, extra: &str) {
        let keys: Vec<&str> = extra.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k.trim()).collect();
        let text: String = self
            .template("stream.conf")
            .lines()
            .filter(|l| !l.split_once('=').is_some_and(|(k, _)| keys.contains(&k.trim())))
            .map(|l| format!("{l}\n"))
            .collect();
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, format!("{text}{extra}\n")).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    /// A file from cgi/ with its placeholders filled in.
    fn template(&self, rel: &str) -> String {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("cgi").join(rel);
        let text = std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        let (user, group) = if rustix_is_root() { ("daemon", "daemon") } else { ("#-1", "#-1") };
        text.replace("@PORT@", &self.port.to_string())
            .replace("@ROOT@", self.root.to_str().unwrap())
            .replace("@RUN@", self.run.to_str().unwrap())
            .replace("@CONFIG@", self.config.to_str().unwrap())
            .replace("@CACHE@", self.run.join("index-cache").to_str().unwrap())
            .replace("@LOOMIERE@", self.bin.to_str().unwrap())
            .replace("@CGIBIN@", self.run.join("cgi-bin").to_str().unwrap())
            .replace("@USER@", user)
            .replace("@GROUP@", group)
    }

    /// Writes a filled-in template into the run directory and returns its path.
    fn install(&self, rel: &str) -> PathBuf {
        let to = self.run.join(Path::new(rel).file_name().unwrap());
        std::fs::write(&to, self.template(rel)).unwrap();
        to
    }

    fn start(&mut self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(self.run.join(format!("{}-{}.out", self.name, self.procs.len()))).unwrap();
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        self.procs.push(Proc { child });
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            for p in &mut self.procs {
                if let Ok(Some(status)) = p.child.try_wait() {
                    panic!("{} exited early with {status}: {}", self.name, self.logs());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not listen on {}: {}", self.name, self.port, self.logs());
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for e in std::fs::read_dir(&self.run).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log" || x == "out") {
                s.push_str(&format!("\n--- {}\n{}", p.display(), std::fs::read_to_string(&p).unwrap_or_default()));
            }
        }
        s
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}{path}", self.port, self.prefix)
    }

    /// Loomiere processes of this site still alive.
    fn loomiere_processes(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            if std::fs::read_link(e.path().join("exe")).is_ok_and(|exe| exe == self.bin) {
                pids.push(pid);
            }
        }
        pids
    }
}

fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// A fetched answer.
struct Fetched {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    body_path: PathBuf,
}

impl Fetched {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// curl with `args` before the URL; the body lands in a file named `tag` in the site dir.
fn curl(site: &Site, tag: &str, path: &str, args: &[&str]) -> Fetched {
    let body_path = site.dir.join(format!("{tag}.body"));
    let head_path = site.dir.join(format!("{tag}.head"));
    let out = Command::new("curl")
        .args(["-s", "-S", "--path-as-is", "--max-time", "60", "-o"])
        .arg(&body_path)
        .arg("-D")
        .arg(&head_path)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(site.url(path))
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    let head = std::fs::read_to_string(&head_path).unwrap_or_default();
    let block = head.split("\r\n\r\n").filter(|b| !b.trim().is_empty()).last().unwrap_or("");
    let headers = block
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = std::fs::read(&body_path).unwrap_or_default();
    Fetched { status, headers, body, body_path }
}

/// A raw HTTP/1.0 GET with the exact target bytes; returns (status, whole answer).
fn raw_get(site: &Site, target: &[u8]) -> (u16, Vec<u8>) {
    raw_request(site, b"GET", target)
}

fn raw_request(site: &Site, method: &[u8], target: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = method.to_vec();
    req.push(b' ');
    if target.starts_with(b"/") {
        req.extend_from_slice(site.prefix.as_bytes());
    }
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    s.write_all(&req).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let status = answer.get(9..12).and_then(|b| std::str::from_utf8(b).ok()).and_then(|t| t.parse().ok()).unwrap_or(0);
    (status, answer)
}

/// What the library itself produces for `file?query`, as (plan bytes, duration) or the
/// HTTP status of its error.
fn expected(site: &Site, file: &str, start: &str, unit: BareUnit) -> Result<(Vec<u8>, Option<f64>), u16> {
    let req = Request { start: Some(Position::parse(start, unit).unwrap()), ..Request::default() };
    match loomiere::media::open(&site.root.join(file), &req) {
        Ok(plan) => Ok((loomiere::sink::read_range(&plan, 0..plan.len()).unwrap(), plan.info.duration)),
        Err(e) => Err(e.http_status()),
    }
}

fn check_media(site: &Site, file: &str, query_start: &str, unit: BareUnit) {
    let got = curl(site, &format!("seek-{file}"), &format!("/{file}?start={query_start}"), &[]);
    match expected(site, file, query_start, unit) {
        Err(status) => assert_eq!(got.status, status, "{}: {file}?start={query_start}", site.name),
        Ok((bytes, duration)) => {
            assert_eq!(got.status, 200, "{}: {file}?start={query_start}: {}", site.name, site.logs());
            assert!(got.body == bytes, "{}: {file}: body differs from the library's plan", site.name);
            let errors = common::decode_errors(&got.body_path);
            assert!(errors.trim().is_empty(), "{}: {file} does not decode: {errors}", site.name);
            let d = duration.unwrap_or_else(|| panic!("{}: {file}?start={query_start} plans no duration", site.name));
            let probed = common::duration(&got.body_path);
            assert!((probed - d).abs() < 0.6, "{}: {file}: ffprobe {probed} s, planned {d} s", site.name);
            assert!((47.0..=52.5).contains(&d), "{}: {file}?start=10 plans {d} s of a 60 s file", site.name);
            let header: f64 = got.header("X-Content-Duration").unwrap().parse().unwrap();
            assert!((header - d).abs() < 0.01);
        }
    }
}

/// The checks every server must pass.
fn exercise(site: &mut Site) {
    // Seeked media, equal to the library's own plan.
    check_media(site, "short.mp4", "10", BareUnit::Seconds);
    check_media(site, "short.flv", "10s", BareUnit::Bytes);

    // Whole FLV decodes.
    let flv = curl(site, "flv", "/short.flv", &[]);
    assert_eq!(flv.status, 200, "{}", site.name);
    assert_eq!(flv.header("Content-Type"), Some("video/x-flv"));
    assert_eq!(flv.body, std::fs::read(site.root.join("short.flv")).unwrap(), "{}", site.name);

    // Images byte-identical with their type.
    for (img, ty) in [("still.jpg", "image/jpeg"), ("still.png", "image/png"), ("sub/still.jpg", "image/jpeg")] {
        let got = curl(site, "img", &format!("/{img}"), &[]);
        assert_eq!(got.status, 200, "{}: {img}: {}", site.name, site.logs());
        assert_eq!(got.header("Content-Type"), Some(ty), "{}: {img}", site.name);
        assert!(got.body == std::fs::read(site.root.join(img)).unwrap(), "{}: {img} differs", site.name);
    }

    // HEAD: same headers, no body.
    let get = curl(site, "get", "/short.mp4?start=10", &[]);
    let head = curl(site, "head", "/short.mp4?start=10", &["-I"]);
    assert_eq!(head.status, 200, "{}", site.name);
    // curl -I writes the head as the "body"; a raw HEAD shows nothing follows the head.
    let (status, raw) = raw_request(site, b"HEAD", b"/short.mp4?start=10");
    assert_eq!(status, 200, "{}", site.name);
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head end") + 4;
    assert_eq!(raw.len(), end, "{}: HEAD has a body", site.name);
    for h in ["Content-Type", "Content-Length", "ETag", "Last-Modified", "Accept-Ranges", "X-Content-Duration"] {
        assert_eq!(get.header(h), head.header(h), "{}: {h} differs between GET and HEAD", site.name);
    }
    assert_eq!(get.header("Content-Length"), Some(get.body.len().to_string().as_str()), "{}", site.name);

    if site.forwards_conditionals {
        // Range halves concatenate to the whole.
        let a = curl(site, "r1", "/short.mp4?start=10", &["-H", "Range: bytes=0-99"]);
        let b = curl(site, "r2", "/short.mp4?start=10", &["-H", "Range: bytes=100-"]);
        assert_eq!((a.status, b.status), (206, 206), "{}", site.name);
        assert_eq!(a.body.len(), 100);
        assert!([a.body, b.body].concat() == get.body, "{}: ranges do not concatenate to the body", site.name);
        let c = curl(site, "r3", "/short.mp4?start=10", &["-H", "Range: bytes=999999999-"]);
        assert_eq!(c.status, 416, "{}", site.name);

        // Revalidation.
        let etag = get.header("ETag").unwrap().to_string();
        let again = curl(site, "inm", "/short.mp4?start=10", &["-H", &format!("If-None-Match: {etag}")]);
        assert_eq!(again.status, 304, "{}", site.name);
        assert!(again.body.is_empty());
        let png = curl(site, "png", "/still.png", &[]);
        let lm = png.header("Last-Modified").unwrap().to_string();
        let again = curl(site, "ims", "/still.png", &["-H", &format!("If-Modified-Since: {lm}")]);
        assert_eq!(again.status, 304, "{}", site.name);
        let other = curl(site, "inm2", "/short.mp4?start=20", &["-H", &format!("If-None-Match: {etag}")]);
        assert_eq!(other.status, 200, "{}: another start must not match the ETag", site.name);
    }

    // Bad parameters: 400 with the reason in a text/plain body, never a path of the server.
    for (tag, query, why) in [
        ("bad", "start=abc", "\"abc\" is not a time in seconds"),
        ("bad-far", "start=999", "start 999 s is beyond the duration (60."),
        ("bad-empty", "start=", "start is empty"),
    ] {
        let bad = curl(site, tag, &format!("/short.mp4?{query}"), &[]);
        assert_eq!(bad.status, 400, "{} {query}", site.name);
        let text = String::from_utf8_lossy(&bad.body);
        assert!(text.starts_with("400 Bad Request\n") && text.contains(why), "{} {query}: {text:?}", site.name);
        assert!(!text.contains(site.root.to_str().unwrap()), "{} {query}: {text:?}", site.name);
    }

    traversal(site);
    if site.inetd {
        keep_alive(site);
    }
    config_edit(site);
    throttle(site);
    hang_up(site);
}

fn traversal(site: &Site) {
    let targets: Vec<Vec<u8>> = [
        "/../outside/secret.mp4",
        "/../../../../../../etc/passwd",
        "/%2e%2e/outside/secret.mp4",
        "/%2E%2E/outside/secret.mp4",
        "/%2e%2e%2foutside%2fsecret.mp4",
        "/..%2foutside/secret.mp4",
        "/..%5coutside%5csecret.mp4",
        "/..\\outside\\secret.mp4",
        "/sub/../../outside/secret.mp4",
        "/sub/%2e%2e/%2e%2e/outside/secret.mp4",
        "/%252e%252e/outside/secret.mp4",
        "/%252e%252e%252foutside%252fsecret.mp4",
        "//outside/secret.mp4",
        "//etc/passwd",
        "/etc/passwd",
        "/%2fetc%2fpasswd",
        "/link.mp4",
        "/linkdir/secret.mp4",
        "/linkdir/../outside/secret.mp4",
        "/passwd.mp4",
        "/zero.mp4",
        "/fifo.mp4",
        "/dir.mp4",
        "/.hidden.mp4",
        "/.%2e/outside/secret.mp4",
        "/%c0%ae%c0%ae/outside/secret.mp4",
        "/..;/outside/secret.mp4",
        "/./../outside/secret.mp4",
        "/short.mp4/../../outside/secret.mp4",
        "/short.mp4/..%2f..%2foutside%2fsecret.mp4",
        "/secret.txt%00.mp4",
        "/sub%2f..%2f..%2foutside%2fsecret.mp4",
        "/%5c..%5c..%5coutside%5csecret.mp4",
        "/sub/..%00/../outside/secret.mp4",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        format!("http://127.0.0.1:{}/../outside/secret.mp4", site.port).into_bytes(),
        b"/sub/\x00/../../outside/secret.mp4".to_vec(),
        b"/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd".to_vec(),
    ])
    .collect();
    assert!(targets.len() >= 30);
    for t in &targets {
        let (status, answer) = raw_get(site, t);
        let shown = String::from_utf8_lossy(t);
        let text = String::from_utf8_lossy(&answer);
        // A web server may redirect a directory to its slashed name itself; that reads nothing.
        let dir_redirect = matches!(status, 301 | 302) && text.contains(&format!("{shown}/"));
        assert!(
            matches!(status, 400 | 403 | 404 | 0) || dir_redirect,
            "{}: {shown:?} answered {status}: {}",
            site.name,
            text.chars().take(300).collect::<String>()
        );
        assert!(!text.contains(SECRET_MARKER) && !text.contains("root:x:0:0"), "{}: {shown:?} leaked", site.name);
    }
}

/// Two pipelined HTTP/1.1 requests on one connection, then `Connection: close`.
fn keep_alive(site: &Site) {
    let mut s = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(
        b"GET /still.png HTTP/1.1\r\nHost: x\r\n\r\nHEAD /still.jpg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let png = std::fs::read(site.root.join("still.png")).unwrap();
    let first_end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&answer[..first_end]);
    assert!(head.starts_with("HTTP/1.1 200 OK") && head.contains("Connection: keep-alive"), "{}: {head}", site.name);
    assert!(answer[first_end..].starts_with(&png), "{}: first body differs", site.name);
    let second = String::from_utf8_lossy(&answer[first_end + png.len()..]);
    assert!(second.starts_with("HTTP/1.1 200 OK") && second.contains("image/jpeg"), "{}: {second}", site.name);
    assert!(second.ends_with("Connection: close\r\n\r\n"), "{}: HEAD body or no close: {second}", site.name);
}

fn config_edit(site: &Site) {
    assert_eq!(curl(site, "cfg0", "/still.png", &[]).status, 200, "{}", site.name);
    let text = site.template("stream.conf").replace("\"jpeg\", \"png\"]", "\"jpeg\"]");
    std::fs::write(&site.config, text).unwrap();
    assert_eq!(curl(site, "cfg1", "/still.png", &[]).status, 403, "{}: config edit ignored", site.name);
    std::fs::write(&site.config, "document_root = ").unwrap();
    assert_eq!(curl(site, "cfg2", "/still.png", &[]).status, 500, "{}: broken config not refused", site.name);
    site.write_config("");
    assert_eq!(curl(site, "cfg3", "/still.png", &[]).status, 200, "{}", site.name);

    // Signed URLs, switched on by the same kind of edit.
    let secret = "0123456789abcdef-test";
    site.write_config(&format!("secret = {secret:?}"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let signed = loomiere::http::signed::query(secret, "/sub/still.jpg", now + 600);
    let expired = loomiere::http::signed::query(secret, "/sub/still.jpg", now - 1);
    assert_eq!(curl(site, "sig0", "/sub/still.jpg", &[]).status, 403, "{}: unsigned URL served", site.name);
    assert_eq!(curl(site, "sig1", &format!("/sub/still.jpg?{signed}"), &[]).status, 200, "{}", site.name);
    assert_eq!(curl(site, "sig2", &format!("/sub/still.jpg?{expired}"), &[]).status, 403, "{}", site.name);
    assert_eq!(curl(site, "sig3", &format!("/still.jpg?{signed}"), &[]).status, 403, "{}", site.name);
    site.write_config("");
}

fn throttle(site: &Site) {
    // The throttle needs the media rate, hence a duration from the engine.
    let (bytes, duration) = expected(site, "short.mp4", "10", BareUnit::Seconds).expect("short.mp4?start=10 plans");
    let duration = duration.expect("the MP4 engine reports the clip's duration");
    let factor = 20.0;
    site.write_config(&format!("throttle = {factor}\nburst_seconds = 1"));
    let began = Instant::now();
    let got = curl(site, "throttled", "/short.mp4?start=10", &[]);
    let elapsed = began.elapsed().as_secs_f64();
    site.write_config("");
    assert_eq!(got.status, 200);
    assert_eq!(got.body.len(), bytes.len());
    // Paced part: everything after the header and 1 s of media, at 20× real time.
    let expect = (duration - 1.0) / factor;
    assert!(
        elapsed > expect * 0.5 && elapsed < expect * 3.0 + 2.0,
        "{}: throttled stream took {elapsed:.2} s, expected about {expect:.2} s",
        site.name
    );
}

fn hang_up(site: &Site) {
    // Paced at real time so the stream is surely still running (an hour of it) when the
    // client leaves.
    let planned = expected(site, "long.mp4", "3600", BareUnit::Seconds);
    assert!(matches!(planned, Ok((_, Some(_)))), "{}: long.mp4?start=3600 plans no duration", site.name);
    site.write_config("throttle = 1\nburst_seconds = 1");
    let mut s = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("GET {}/long.mp4?start=3600 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", site.prefix).as_bytes())
        .unwrap();
    // The head and the first bytes of the body, then away.
    let mut buf = vec![0u8; 65536];
    let mut got = 0;
    while got < 2048 {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = site.loomiere_processes();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{}: loomiere processes left after hang-up: {left:?}", site.name);
        std::thread::sleep(Duration::from_millis(100));
    }
    site.write_config("");
}

/// Returns from the test when a server binary is missing (printing `SKIPPED`), or fails it
/// under `LOOMIERE_REQUIRE_ALL=1` (CI).
macro_rules! need {
    ($test:expr, $($bin:expr),+) => {
        $(if !common::tool_or_skip($test, $bin) {
            return;
        })+
    };
}

#[test]
fn lighttpd() {
    need!("lighttpd", "lighttpd", "curl");
    let mut site = Site::new("lighttpd");
    let conf = site.install("lighttpd.conf");
    site.start(Command::new("lighttpd").arg("-D").arg("-f").arg(&conf));
    site.wait_ready();
    exercise(&mut site);
}

#[test]
fn apache() {
    need!("apache", "apache2", "curl");
    let mut site = Site::new("apache");
    let conf = site.install("apache.conf");
    site.start(Command::new("apache2").arg("-f").arg(&conf).arg("-DFOREGROUND"));
    site.wait_ready();
    exercise(&mut site);
}

#[test]
fn busybox_httpd() {
    need!("busybox_httpd", "busybox", "curl");
    let mut site = Site::new("busybox");
    // busybox httpd 1.35 hands no Range or If-* headers to CGI programs.
    site.forwards_conditionals = false;
    let conf = site.install("busybox-httpd.conf");
    let root = site.root.clone();
    let port = site.port;
    let config = site.config.clone();
    site.start(
        Command::new("busybox")
            .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
            .arg(&root)
            .arg("-c")
            .arg(&conf)
            .env("LOOMIERE_CONFIG", &config),
    );
    site.wait_ready();
    exercise(&mut site);
}

#[test]
fn nginx_fcgiwrap() {
    need!("nginx_fcgiwrap", "nginx", "fcgiwrap", "curl");
    let mut site = Site::new("nginx");
    let conf = site.install("nginx-fcgiwrap.conf");
    let sock = site.run.join("fcgiwrap.sock");
    site.start(Command::new("fcgiwrap").arg("-c").arg("4").arg("-s").arg(format!("unix:{}", sock.display())));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // nginx workers run as an unprivileged user when the master is root.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    site.start(Command::new("nginx").arg("-c").arg(&conf).arg("-p").arg(&site.run));
    site.wait_ready();
    exercise(&mut site);
}

#[test]
fn tcpsvd_runit() {
    need!("tcpsvd_runit", "tcpsvd", "curl");
    let mut site = Site::new("tcpsvd");
    site.inetd = true;
    let run = site.install("tcpsvd/run");
    site.start(Command::new("sh").arg(&run));
    site.wait_ready();
    exercise(&mut site);
}

#[test]
fn xinetd() {
    need!("xinetd", "xinetd", "curl");
    let mut site = Site::new("xinetd");
    site.inetd = true;
    let conf = site.install("xinetd.conf");
    site.start(Command::new("xinetd").arg("-dontfork").arg("-f").arg(&conf));
    site.wait_ready();
    exercise(&mut site);
}

#[test]
fn mini_httpd() {
    need!("mini_httpd", "mini_httpd", "curl");
    let mut site = Site::new("mini_httpd");
    // mini_httpd (thttpd's sibling; thttpd and fnord are not packaged for Debian 12) runs CGI
    // programs under the document root with a fixed environment: no Range or If-* headers,
    // no LOOMIERE_CONFIG, so a two-line wrapper names the config (cgi/mini-httpd-stream).
    site.forwards_conditionals = false;
    site.prefix = "/cgi-bin/stream";
    let cgi = site.root.join("cgi-bin");
    std::fs::create_dir_all(&cgi).unwrap();
    let wrapper = cgi.join("stream");
    std::fs::write(&wrapper, site.template("mini-httpd-stream")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("mini_httpd");
    cmd.args(["-D", "-h", "127.0.0.1", "-p", &site.port.to_string(), "-c", "cgi-bin/*", "-d"])
        .arg(&site.root)
        .arg("-l")
        .arg(site.run.join("mini_httpd.log"));
    if rustix_is_root() {
        cmd.args(["-u", "daemon"]);
    }
    site.start(&mut cmd);
    site.wait_ready();
    exercise(&mut site);
}
