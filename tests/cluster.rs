//! The scaled-out topology end to end (`scripts/cluster.sh`): Varnish → two `loomiere serve`
//! origins → SeaweedFS's S3 gateway. One cluster for the whole file (starting SeaweedFS is
//! the slow part), used in phases that must not overlap (one stops the store, one kills an
//! origin), so they are one test:
//!
//! 1. seeks, whole files, a range and an image through Varnish equal byte for byte the
//!    answers of `loomiere serve` on the local files, and decode cleanly; repeats are cache
//!    hits; a warm seek costs one storage request; an overwritten object is re-indexed; the
//!    nginx proxy_cache config gives the same; signed URLs through Varnish stay signed;
//! 2. a store that stops answering (SIGSTOP) gives 504, a missing object 404;
//! 3. an origin killed during a `loomiere bench` run through Varnish fails at most the
//!    requests in flight on it.
//!
//! The nginx `proxy_cache` alternative (contrib/nginx/proxy-cache.conf) is checked in phase 1.
//!
//! Needs varnishd, nginx, python3 (with venv, for SeaweedFS from PyPI), curl, ffmpeg: missing ones
//! fail the test under `LOOMIERE_REQUIRE_ALL=1`.

// Object storage is the `storage` feature (on by default).
#![cfg(feature = "storage")]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The cluster of this test; `down` when dropped, also on a failed assertion.
struct Cluster {
    pointer: PathBuf,
    state: PathBuf,
}

impl Cluster {
    fn up(scratch: &Path) -> Cluster {
        let pointer = scratch.join("cluster.state");
        let out = run(Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh"))
            .arg("up")
            .env("LOOMIERE_CLUSTER", &pointer)
            .env("LOOMIERE_BIN", env!("CARGO_BIN_EXE_loomiere"))
            .env("LOOMIERE_TEST_MEDIA", media_dir()));
        let state = std::fs::read_to_string(&pointer).map(|s| PathBuf::from(s.trim())).unwrap_or_default();
        let c = Cluster { pointer, state };
        assert!(
            out.status.success(),
            "scripts/cluster.sh up failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        c
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.join(name)).unwrap_or_else(|e| panic!("{name}: {e}")).trim().to_string()
    }

    fn varnish(&self) -> String {
        self.read("varnish.url")
    }

    fn origin(&self, i: u32) -> String {
        format!("http://127.0.0.1:{}", self.read(&format!("origin{i}.port")))
    }

    fn pid(&self, name: &str) -> i32 {
        self.read(&format!("{name}.pid")).parse().unwrap()
    }

    /// Puts `file` into the bucket as `name` (through the filer, as cluster.sh uploads).
    fn upload(&self, file: &Path, name: &str) {
        let tmp = self.state.join(name);
        std::fs::copy(file, &tmp).unwrap();
        let out = run(Command::new("curl")
            .args(["-sf", "-F"])
            .arg(format!("file=@{}", tmp.display()))
            .arg(format!("{}/buckets/media/", self.read("filer.url"))));
        assert!(out.status.success(), "upload of {name} failed");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh"))
            .arg("down")
            .env("LOOMIERE_CLUSTER", &self.pointer)
            .stdout(Stdio::null())
            .status();
    }
}

/// A local `loomiere serve` on the media directory: the reference answers.
struct Local(Child, String);

impl Local {
    fn start() -> Local {
        let port = free_port();
        let child = loomiere()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg(media_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Local(child, url)
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx with contrib/nginx/proxy-cache.conf in front of the cluster's origins.
struct Nginx {
    child: Child,
    url: String,
}

impl Nginx {
    fn start(cluster: &Cluster, dir: &Path) -> Nginx {
        require_tool("nginx");
        let run = dir.join("nginx");
        std::fs::create_dir_all(&run).unwrap();
        let port = free_port();
        let conf =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/nginx/proxy-cache.conf"))
                .unwrap()
                .replace("@RUN@", &run.display().to_string())
                .replace("@PORT@", &port.to_string())
                .replace("@ORIGIN1_PORT@", &cluster.read("origin1.port"))
                .replace("@ORIGIN2_PORT@", &cluster.read("origin2.port"));
        let path = run.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("nginx").arg("-p").arg(&run).arg("-c").arg(&path).spawn().unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Nginx { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: the master stops its workers and exits.
        let _ = Command::new("kill").args(["-QUIT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// A process this test started (an extra origin, an extra Varnish), stopped with SIGTERM.
struct Process {
    child: Child,
    port: String,
}

impl Process {
    /// `loomiere serve` with origin 1's configuration plus `extra` top-level lines.
    fn origin_with(cluster: &Cluster, dir: &Path, extra: &str) -> Process {
        let conf = std::fs::read_to_string(cluster.state.join("origin1/stream.conf")).unwrap();
        let path = dir.join("origin-extra.conf");
        std::fs::write(&path, format!("{extra}\n{conf}")).unwrap();
        let port = free_port();
        let child = loomiere()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--config"])
            .arg(&path)
            .env("AWS_ACCESS_KEY_ID", "loomiere-test")
            .env("AWS_SECRET_ACCESS_KEY", "loomiere-test-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port);
        Process { child, port: port.to_string() }
    }

    /// varnishd with contrib/varnish/default.vcl, both backends at `origin_port`.
    fn varnish(dir: &Path, origin_port: &str, probe: &str) -> Process {
        let vcl = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/varnish/default.vcl"))
            .unwrap()
            .replace("@ORIGIN1_PORT@", origin_port)
            .replace("@ORIGIN2_PORT@", origin_port)
            .replace("@PROBE_URL@", probe);
        let work = dir.join("varnish-extra");
        std::fs::create_dir_all(&work).unwrap();
        let path = work.join("default.vcl");
        std::fs::write(&path, vcl).unwrap();
        let port = free_port();
        let child = Command::new("varnishd")
            .args(["-F", "-a", &format!("127.0.0.1:{port}"), "-T", "none", "-s", "malloc,64m", "-f"])
            .arg(&path)
            .arg("-n")
            .arg(work.join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port);
        // Healthy once the probe answered twice (window 3, threshold 2, every second).
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if get(&format!("{url}{probe}"), &["-I"]).0 == 200 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Process { child, port: port.to_string() }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

fn wait_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A GET with curl: (status, headers lower-cased, body).
fn get(url: &str, extra: &[&str]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let out = run(Command::new("curl").args(["-s", "--max-time", "60", "-D", "-"]).args(extra).arg(url));
    let raw = out.stdout;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no answer from {url}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn tools_or_skip() -> bool {
    ["varnishd", "nginx", "python3", "curl", "ffmpeg"].iter().all(|t| tool_or_skip("cluster", t))
}

#[test]
fn varnish_origins_and_object_storage() {
    if !tools_or_skip() {
        return;
    }
    let dir = scratch("cluster");
    let cluster = Cluster::up(&dir);
    let local = Local::start();
    let varnish = cluster.varnish();

    // --- 1. the same bytes as from local files, decodable, cached on repeat ------------------
    let cases = [
        "/short.mp4?start=3.5",
        "/moovend.mp4?start=2&end=6",
        "/long.mp4?start=3600&end=3630",
        "/long.mp4?start=1800.5&end=1810&exact=1",
        "/short.mp4",
        "/short.flv",
        "/still.jpg",
    ];
    for url in cases {
        let (status, h, body) = get(&format!("{varnish}{url}"), &[]);
        assert_eq!(status, 200, "{url} through Varnish");
        let (lstatus, lh, want) = get(&format!("{}{url}", local.1), &[]);
        assert_eq!(lstatus, 200, "{url} from the local server");
        assert!(body == want, "{url}: {} bytes through Varnish, {} from the local file", body.len(), want.len());
        assert_eq!(header(&h, "content-type"), header(&lh, "content-type"), "{url}");
        assert!(header(&h, "etag").is_some() && header(&h, "last-modified").is_some(), "{url}: validators");
        assert_eq!(header(&h, "cache-control"), Some("public, max-age=300"), "{url}");
        if url.contains(".mp4") {
            let f = dir.join("answer.mp4");
            std::fs::write(&f, &body).unwrap();
            assert_eq!(decode_errors(&f), "", "{url} does not decode cleanly");
        }
        let (_, h2, again) = get(&format!("{varnish}{url}"), &[]);
        assert!(again == body, "{url}: the cached copy differs");
        assert_eq!(header(&h2, "x-cache"), Some("hit"), "{url}: a repeat is served by Varnish");
    }
    // HLS and DASH below a movie in the store: manifests, init and media segments equal the
    // local server's byte for byte, and ffmpeg decodes the HLS stream through Varnish.
    let hls = ["/short.mp4/master.m3u8", "/short.mp4/manifest.mpd", "/short.mp4/v1/init.mp4", "/short.mp4/v1/2.m4s"];
    for url in hls.iter().chain(["/short.mp4/a2/init.mp4", "/short.mp4/a2/1.m4s"].iter()) {
        let (status, h, body) = get(&format!("{varnish}{url}"), &[]);
        let (lstatus, _, want) = get(&format!("{}{url}", local.1), &[]);
        assert_eq!((status, lstatus), (200, 200), "{url}");
        assert!(body == want, "{url}: {} bytes through Varnish, {} from the local file", body.len(), want.len());
        assert!(header(&h, "cache-control").is_some(), "{url}");
    }
    assert_eq!(decode_errors(Path::new(&format!("{varnish}/short.mp4/master.m3u8"))), "", "HLS through Varnish");

    // A byte range of a seek, cut by Varnish from its cached copy, equals the local one.
    let url = "/long.mp4?start=3600&end=3630";
    let (s, _, part) = get(&format!("{varnish}{url}"), &["-H", "Range: bytes=1000-99999"]);
    let (ls, _, lpart) = get(&format!("{}{url}", local.1), &["-H", "Range: bytes=1000-99999"]);
    assert_eq!((s, ls), (206, 206));
    assert!(part == lpart, "a range of a seek differs");

    // Storage requests: the index of long.mp4 is on disk (shared by both origins) and its
    // identity known to origin 1, so a new seek there costs one ranged GET; origin 2 adds
    // one HEAD for the identity but reads no moov.
    let (_, h, _) = get(&format!("{}/long.mp4?start=2000&end=2005", cluster.origin(1)), &[]);
    let (_, h2, _) = get(&format!("{}/long.mp4?start=2100&end=2105", cluster.origin(2)), &[]);
    let n1: u64 = header(&h, "x-storage-requests").unwrap().parse().unwrap();
    let n2: u64 = header(&h2, "x-storage-requests").unwrap().parse().unwrap();
    assert!(n1 <= 2 && n2 <= 2, "warm seeks cost {n1} and {n2} storage requests");

    // An object overwritten in the store is re-indexed: the answer is the new file's.
    cluster.upload(&media("short.mp4"), "swap.mp4");
    let (s, _, first) = get(&format!("{}/swap.mp4?start=2", cluster.origin(1)), &[]);
    assert_eq!(s, 200);
    assert!(first == get(&format!("{}/short.mp4?start=2", local.1), &[]).2);
    cluster.upload(&media("moovend.mp4"), "swap.mp4");
    let want = get(&format!("{}/moovend.mp4?start=2", local.1), &[]).2;
    assert_ne!(first, want, "the two versions must differ for this check");
    let (s, _, second) = get(&format!("{}/swap.mp4?start=2", cluster.origin(1)), &[]);
    assert_eq!(s, 200);
    assert!(second == want, "the overwritten object was answered from its old index");

    // The nginx proxy_cache alternative (contrib/nginx/proxy-cache.conf) in front of the same
    // origins gives the same bytes, from its cache on a repeat.
    {
        let nginx = Nginx::start(&cluster, &dir);
        for url in ["/long.mp4?start=600&end=640", "/short.mp4?start=1"] {
            let (s, _, body) = get(&format!("{}{url}", nginx.url), &[]);
            assert_eq!(s, 200, "{url} through nginx");
            assert!(body == get(&format!("{}{url}", local.1), &[]).2, "{url} through nginx differs");
            let (_, h, again) = get(&format!("{}{url}", nginx.url), &[]);
            assert!(again == body);
            assert_eq!(header(&h, "x-cache"), Some("HIT"), "{url}: a repeat is served by nginx's cache");
        }
    }

    // Signed URLs behind the cache: an origin with a `secret`, Varnish (the same VCL) in
    // front. The signature is part of the cache key: a cached signed answer is never given to
    // an unsigned or differently signed request.
    {
        let secret = "cluster-test-secret-0123456789";
        let signed = Process::origin_with(&cluster, &dir, &format!("secret = {secret:?}"));
        let far = 4_000_000_000u64;
        let probe = format!("/short.mp4?{}", loomiere::http::signed::query(secret, "/short.mp4", far));
        let front = Process::varnish(&dir, &signed.port, &probe);
        let path = "/long.mp4";
        let url = |expires: u64| {
            format!("{}{path}?start=900&end=905&{}", front.url(), loomiere::http::signed::query(secret, path, expires))
        };
        let (s, _, _) = get(&format!("{}{path}?start=900&end=905", front.url()), &[]);
        assert_eq!(s, 403, "an unsigned request through the cache");
        let (s, _, body) = get(&url(far), &[]);
        assert_eq!(s, 200, "a signed request through the cache");
        assert!(body == get(&format!("{}{path}?start=900&end=905", local.1), &[]).2);
        let (_, h, _) = get(&url(far), &[]);
        assert_eq!(header(&h, "x-cache"), Some("hit"), "the same signed URL again");
        let (s, h, _) = get(&url(far - 1), &[]);
        assert_eq!((s, header(&h, "x-cache")), (200, Some("miss")), "another signature is another entry");
        let forged = url(far).replace("expires=4000000000", "expires=4000000001");
        assert_eq!(get(&forged, &[]).0, 403, "a forged expiry through the cache");
    }

    // --- 2. store faults -------------------------------------------------------------------
    let (s, _, body) = get(&format!("{}/missing.mp4?start=1", cluster.origin(1)), &[]);
    assert_eq!(s, 404, "{}", String::from_utf8_lossy(&body));
    // The store refusing the origin's credentials (403) is the gateway's failure: 502.
    {
        let port = free_port();
        let mut refused = loomiere()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--config"])
            .arg(cluster.state.join("origin1/stream.conf"))
            .env("AWS_ACCESS_KEY_ID", "loomiere-test")
            .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let (s, _, body) = get(&format!("http://127.0.0.1:{port}/short.mp4?start=1"), &[]);
        let _ = refused.kill();
        let out = refused.wait_with_output().unwrap();
        assert_eq!(s, 502, "wrong credentials: {}", String::from_utf8_lossy(&body));
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(!log.contains("not-the-secret"), "a secret key was logged: {log}");
    }
    let weed = cluster.pid("weed");
    assert!(Command::new("kill").args(["-STOP", &weed.to_string()]).status().unwrap().success());
    // A seek not asked before (nothing cached anywhere): the store must be asked, and does
    // not answer within storage_timeout_secs (5 s in cluster.sh).
    let (s, _, body) = get(&format!("{}/moovend.mp4?start=3.25", cluster.origin(2)), &[]);
    assert!(Command::new("kill").args(["-CONT", &weed.to_string()]).status().unwrap().success());
    assert_eq!(s, 504, "a stopped store: {}", String::from_utf8_lossy(&body));

    // --- 3. an origin killed under load ------------------------------------------------------
    let viewers = 8u32;
    let bench = loomiere()
        .args(["bench", &format!("{varnish}/long.mp4"), "--viewers", &viewers.to_string()])
        .args(["--duration", "8", "--ramp", "1", "--seek", "random", "--fast", "--json", "--timeout", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let origin2 = cluster.pid("origin2");
    assert!(Command::new("kill").args(["-KILL", &origin2.to_string()]).status().unwrap().success());
    let out = bench.wait_with_output().unwrap();
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench --json report");
    let failed = report["errors"]["total"].as_u64().unwrap();
    let answered = report["responses"].as_u64().unwrap();
    eprintln!("bench through Varnish with an origin killed: {answered} answers, {failed} failed");
    assert!(answered > u64::from(viewers), "bench made too few requests to judge ({answered})");
    assert!(failed <= u64::from(viewers), "{failed} requests failed: more than the {viewers} in flight");
    // After the probes noticed, everything goes to the origin that lives.
    let (s, _, _) = get(&format!("{varnish}/short.mp4?start=7"), &[]);
    assert_eq!(s, 200);
}
