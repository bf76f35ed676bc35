//! Operating `loomiere serve`: Prometheus metrics (checked by `promtool check metrics` and by
//! counting), `/healthz` and `/readyz`, access log formats and their reopening on SIGUSR1,
//! HTTPS with certificates made by `openssl` (fetched by `curl --cacert`, decoded by ffmpeg;
//! TLS 1.1 refused), and socket activation through `systemd-socket-activate`. Servers listen
//! on 127.0.0.1 and are killed by PID. No timed assertions: waits are bounded only so that a
//! broken server fails instead of hanging.

mod common;

use common::serve::Serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

impl Serve {
    fn with_config(name: &str, config: &Path, lines: usize) -> Serve {
        let log = common::scratch(&format!("{name}-stderr")).join("stderr.log");
        let mut cmd = common::loomiere();
        cmd.arg("serve").arg("--config").arg(config).args(["--listen", "127.0.0.1:0", "--threads", "2"]);
        Serve::launch_cmd(cmd, lines, &log)
    }

    fn base(&self) -> &str {
        self.urls[0].trim_end_matches('/')
    }
}

/// `curl` of `url` into `out`: (status, body).
fn curl(url: &str, extra: &[&str], out: &Path) -> (u16, Vec<u8>) {
    common::require_tool("curl");
    let r = common::run(
        Command::new("curl")
            .args(["-s", "-S", "--max-time", "60", "-o"])
            .arg(out)
            .args(["-w", "%{http_code}"])
            .args(extra)
            .arg(url),
    );
    let code = String::from_utf8_lossy(&r.stdout).trim().parse().unwrap_or(0);
    (code, std::fs::read(out).unwrap_or_default())
}

/// A document root with two media files, and a config file serving it plus `more` TOML.
fn setup(name: &str, more: &str) -> (PathBuf, PathBuf) {
    let dir = common::scratch(name);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    for f in ["short.mp4", "still.png"] {
        std::fs::copy(common::media(f), root.join(f)).unwrap();
    }
    let config = dir.join("stream.conf");
    std::fs::write(&config, format!("document_root = {:?}\n{more}", root.display().to_string())).unwrap();
    (root, config)
}

/// The value of one sample line (`name{labels} value`) of an exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

fn promtool_check(text: &[u8], scratch: &Path) {
    common::require_tool("promtool");
    let file = scratch.join("metrics.txt");
    std::fs::write(&file, text).unwrap();
    let r = common::run(Command::new("sh").arg("-c").arg("promtool check metrics < \"$1\"").arg("sh").arg(&file));
    assert!(
        r.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
}

#[test]
fn metrics_are_valid_and_count_what_was_served() {
    let (_, config) = setup("ops-metrics", "");
    let s = Serve::with_config("ops-metrics", &config, 1);
    let tmp = common::scratch("ops-metrics-out");
    let body = tmp.join("body");
    let base = s.base().to_string();
    // Two viewers seek to one point (the second gets the remembered plan), one asks for a
    // missing file, one for an image; and the liveness probe.
    let (c1, b1) = curl(&format!("{base}/short.mp4?start=2"), &[], &body);
    let (c2, b2) = curl(&format!("{base}/short.mp4?start=2"), &[], &body);
    assert_eq!((c1, c2), (200, 200));
    assert_eq!(b1, b2);
    assert_eq!(curl(&format!("{base}/missing.mp4"), &[], &body).0, 404);
    let (c, png) = curl(&format!("{base}/still.png"), &[], &body);
    assert_eq!(c, 200);
    assert_eq!(curl(&format!("{base}/healthz"), &[], &body), (200, b"ok\n".to_vec()));
    // HLS: the playlist twice (the second from the segment-index cache), one segment.
    let (c, master) = curl(&format!("{base}/short.mp4/master.m3u8"), &[], &body);
    assert_eq!(c, 200);
    assert_eq!(curl(&format!("{base}/short.mp4/master.m3u8"), &[], &body), (200, master.clone()));
    let (c, init) = curl(&format!("{base}/short.mp4/v1/init.mp4"), &[], &body);
    assert_eq!(c, 200);
    // An audio segment: AAC frames are small, so the package keeps it as a memory copy.
    let (c, seg) = curl(&format!("{base}/short.mp4/a2/1.m4s"), &[], &body);
    assert_eq!(c, 200);

    let (c, text) = curl(&format!("{base}/metrics"), &["-D", tmp.join("head").to_str().unwrap()], &body);
    assert_eq!(c, 200);
    let head = std::fs::read_to_string(tmp.join("head")).unwrap().to_ascii_lowercase();
    assert!(head.contains("content-type: text/plain; version=0.0.4"), "{head}");
    promtool_check(&text, &tmp);
    let text = String::from_utf8(text).unwrap();
    let m = |series: &str| sample(&text, series);
    assert_eq!(m("loomiere_requests_total{kind=\"progressive\",code=\"2xx\"}"), 2.0);
    assert_eq!(m("loomiere_requests_total{kind=\"progressive\",code=\"4xx\"}"), 1.0);
    assert_eq!(m("loomiere_requests_total{kind=\"image\",code=\"2xx\"}"), 1.0);
    assert_eq!(m("loomiere_requests_total{kind=\"other\",code=\"2xx\"}"), 1.0); // /healthz
    assert_eq!(m("loomiere_errors_total{kind=\"not_found\"}"), 1.0);
    assert_eq!(m("loomiere_cache_misses_total{cache=\"movie\"}"), 1.0);
    // The packager found the movie the seeks opened (one movie cache): the first playlist's
    // segment-index miss is a movie hit, not a second opening.
    assert_eq!(m("loomiere_cache_hits_total{cache=\"movie\"}"), 1.0);
    assert_eq!(m("loomiere_cache_hits_total{cache=\"plan\"}"), 1.0);
    assert_eq!(m("loomiere_requests_total{kind=\"hls\",code=\"2xx\"}"), 2.0);
    assert_eq!(m("loomiere_requests_total{kind=\"segment\",code=\"2xx\"}"), 2.0);
    assert_eq!(m("loomiere_cache_misses_total{cache=\"segment_index\"}"), 1.0);
    assert_eq!(m("loomiere_cache_hits_total{cache=\"segment_index\"}"), 3.0); // playlist, init, segment
    assert_eq!(m("loomiere_plan_seconds_count"), 7.0); // two seeks, the image, HLS
    assert_eq!(m("loomiere_first_byte_seconds_count"), 9.0); // the scrape is counted after
    assert_eq!(m("loomiere_kept_segments"), 1.0);
    let kept = m("loomiere_kept_segment_bytes");
    assert!(kept > 0.0 && kept < seg.len() as f64, "{kept} bytes kept for a {}-byte segment", seg.len());
    let bodies = (b1.len() + b2.len() + png.len() + 2 * master.len() + init.len() + seg.len()) as f64;
    let sent = m("loomiere_sent_bytes_total");
    assert!(sent > bodies && sent < bodies + 8192.0, "sent {sent} for {bodies} body bytes");
    assert_eq!(m("loomiere_streams_active"), 0.0);
    assert_eq!(m("loomiere_connections_open"), 1.0); // the scrape's own
    assert_eq!(m("loomiere_connections_total"), 10.0);
}

#[test]
fn metrics_on_their_own_listener_are_not_public() {
    let (_, config) = setup("ops-metrics-listen", "[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let s = Serve::with_config("ops-metrics-listen", &config, 2);
    let tmp = common::scratch("ops-metrics-listen-out");
    let body = tmp.join("body");
    assert!(s.urls[1].ends_with("/metrics"), "{:?}", s.urls);
    let (c, public) = curl(&format!("{}/metrics", s.base()), &[], &body);
    assert!(c == 403 || c == 404, "the public listener answered /metrics with {c}");
    assert!(!String::from_utf8_lossy(&public).contains("loomiere_"));
    assert_eq!(curl(&format!("{}/healthz", s.base()), &[], &body).0, 200);
    let (c, text) = curl(&s.urls[1], &[], &body);
    assert_eq!(c, 200);
    promtool_check(&text, &tmp);
    let text = String::from_utf8(text).unwrap();
    assert_eq!(sample(&text, "loomiere_requests_total{kind=\"other\",code=\"4xx\"}"), 1.0);
    let other = s.urls[1].replace("/metrics", "/short.mp4");
    assert_eq!(curl(&other, &[], &body).0, 404, "the metrics listener serves no media");
}

#[test]
fn metrics_off_answers_404_and_still_serves() {
    let (_, config) = setup("ops-metrics-off", "[metrics]\nenabled = false\n");
    let s = Serve::with_config("ops-metrics-off", &config, 1);
    let tmp = common::scratch("ops-metrics-off-out");
    let body = tmp.join("body");
    let seek = tmp.join("seek.mp4");
    assert_eq!(curl(&format!("{}/short.mp4?start=3", s.base()), &[], &seek).0, 200);
    assert_eq!(common::decode_errors(&seek), "");
    let (c, text) = curl(&format!("{}/metrics", s.base()), &[], &body);
    assert_eq!(c, 404);
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("metrics are off") && !text.contains("loomiere_"), "{text}");
    assert_eq!(curl(&format!("{}/healthz", s.base()), &[], &body).0, 200);
    // Off and a listener of its own contradict each other: refused at start-up, in words.
    let (_, both) = setup("ops-metrics-off-listen", "[metrics]\nenabled = false\nlisten = \"127.0.0.1:0\"\n");
    let out = common::run(common::loomiere().arg("serve").arg("--config").arg(&both).args(["-l", "127.0.0.1:0"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("enabled = false"), "{err}");
}

#[test]
fn readiness_follows_the_document_root() {
    let (root, config) = setup("ops-ready", "");
    let s = Serve::with_config("ops-ready", &config, 1);
    let body = common::scratch("ops-ready-out").join("body");
    assert_eq!(curl(&format!("{}/readyz", s.base()), &[], &body), (200, b"ready\n".to_vec()));
    let moved = root.with_file_name("moved");
    std::fs::rename(&root, &moved).unwrap();
    let (c, text) = curl(&format!("{}/readyz", s.base()), &[], &body);
    assert_eq!(c, 503);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("document root cannot be read"), "{text}");
    assert!(!text.contains(root.to_str().unwrap()), "a server path leaked: {text}");
    assert_eq!(curl(&format!("{}/healthz", s.base()), &[], &body).0, 200, "alive while not ready");
    std::fs::rename(&moved, &root).unwrap();
    assert_eq!(curl(&format!("{}/readyz", s.base()), &[], &body).0, 200);
}

/// Waits until `path` holds `n` lines, and returns them.
fn lines_of(path: &Path, n: usize) -> Vec<String> {
    let began = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(began.elapsed() < Duration::from_secs(30), "{} has {} lines, not {n}", path.display(), lines.len());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn access_log_formats_and_reopen_on_sigusr1() {
    let dir = common::scratch("ops-log-files");
    let access = dir.join("access.log");
    let more = format!("log = {:?}\naccess_log_format = \"json\"\n", access.display().to_string());
    let (_, config) = setup("ops-log", &more);
    let s = Serve::with_config("ops-log", &config, 1);
    let body = dir.join("body");
    let (c, _) =
        curl(&format!("{}/short.mp4?start=2.5&end=4", s.base()), &["-A", "viewer/1.0", "-e", "http://ref/"], &body);
    assert_eq!(c, 200);
    let line = lines_of(&access, 1).remove(0);
    let j: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(j["status"], 200);
    assert_eq!(j["request"], "GET /short.mp4?start=2.5&end=4 HTTP/1.1");
    assert_eq!(j["user_agent"], "viewer/1.0");
    assert_eq!(j["referer"], "http://ref/");
    assert_eq!(j["seek_asked"]["start"], "2.5");
    assert_eq!(j["seek_asked"]["end"], "4");
    let served = j["seek_served"]["start"].as_f64().unwrap();
    assert!((0.0..=2.5).contains(&served), "{line}"); // the keyframe at or before 2.5 s
    assert_eq!(j["bytes"].as_u64(), Some(std::fs::metadata(&body).unwrap().len()));
    assert!(j["first_byte"].as_f64().unwrap() <= j["duration"].as_f64().unwrap(), "{line}");
    assert!(j["time"].as_str().unwrap().ends_with('Z'), "{line}");

    // logrotate: move the file away, SIGUSR1, and the next line goes to a new file.
    let rotated = dir.join("access.log.1");
    std::fs::rename(&access, &rotated).unwrap();
    s.signal("-USR1");
    let began = Instant::now();
    while !access.exists() {
        // The "reopened" error line lands in the new file.
        assert!(began.elapsed() < Duration::from_secs(30), "no new log after SIGUSR1: {}", s.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = lines_of(&access, 1).remove(0);
    assert!(first.contains("loomiere[") && first.contains("reopened"), "{first}");
    // Error lines start with an RFC 3339 time.
    let stamp = first.split(' ').next().unwrap();
    assert!(stamp.len() == 24 && stamp.as_bytes()[10] == b'T' && stamp.ends_with('Z'), "{first}");

    // Switch to combined (the configuration is re-read on change).
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().replace("\"json\"", "\"combined\"")).unwrap();
    let (c, _) = curl(&format!("{}/short.mp4?start=3", s.base()), &["-A", "viewer/2.0"], &body);
    assert_eq!(c, 200);
    let lines = lines_of(&access, 3);
    assert_eq!(lines_of(&rotated, 1).len(), 1, "the rotated file got no more lines");
    let last = lines.last().unwrap();
    assert!(last.starts_with("127.0.0.1 - - ["), "{last}");
    assert!(last.contains("\"GET /short.mp4?start=3 HTTP/1.1\" 200 "), "{last}");
    assert!(last.contains(" \"-\" \"viewer/2.0\" "), "{last}");
    assert!(last.contains(" asked=3.. served="), "{last}");
}

/// Makes a CA and a certificate for 127.0.0.1 signed by it, with `openssl`: (ca, cert, key).
fn make_certificate(dir: &Path, tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    common::require_tool("openssl");
    let p = |f: &str| dir.join(format!("{tag}-{f}"));
    let ok = |c: &mut Command| {
        let r = common::run(c);
        assert!(r.status.success(), "{c:?}: {}", String::from_utf8_lossy(&r.stderr));
    };
    ok(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN=loomiere test CA {tag}"), "-keyout"])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    ok(Command::new("openssl")
        .args(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(p("key.pem"))
        .arg("-out")
        .arg(p("csr.pem")));
    std::fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    ok(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-in"])
        .arg(p("csr.pem"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(p("ext.cnf"))
        .arg("-out")
        .arg(p("cert.pem")));
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

#[test]
fn https_serves_seeks_refuses_old_tls_and_reloads_its_certificate() {
    let dir = common::scratch("ops-tls-certs");
    let (ca, cert, key) = make_certificate(&dir, "a");
    let live_cert = dir.join("live-cert.pem");
    let live_key = dir.join("live-key.pem");
    std::fs::copy(&cert, &live_cert).unwrap();
    std::fs::copy(&key, &live_key).unwrap();
    let more = format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncertificate = {:?}\nkey = {:?}\n",
        live_cert.display().to_string(),
        live_key.display().to_string()
    );
    let (_, config) = setup("ops-tls", &more);
    let s = Serve::with_config("ops-tls", &config, 2);
    let https = s.urls[1].trim_end_matches('/').to_string();
    assert!(https.starts_with("https://127.0.0.1:"), "{:?}", s.urls);
    let out = dir.join("seek.mp4");
    let (c, body) = curl(&format!("{https}/short.mp4?start=3"), &["--cacert", ca.to_str().unwrap()], &out);
    assert_eq!(c, 200);
    assert!(body.len() > 1000);
    assert_eq!(common::decode_errors(&out), "");
    let d = common::duration(&out);
    let whole = common::duration(&common::media("short.mp4"));
    // From the keyframe at or before 3 s.
    assert!(d < whole - 0.9 && d > whole - 5.0, "seek to 3 s of {whole} s gave {d} s");
    // The same bytes as over plain HTTP (the buffered path sends what sendfile sends).
    let plain = dir.join("plain.mp4");
    assert_eq!(curl(&format!("{}/short.mp4?start=3", s.base()), &[], &plain), (200, body));
    // TLS 1.0 and 1.1 are refused.
    let old = common::run(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--tlsv1.0", "--tls-max", "1.1", "--cacert"])
            .arg(&ca)
            .arg(format!("{https}/still.png")),
    );
    assert!(!old.status.success(), "a TLS 1.1 handshake was accepted");
    // The client's own policy (OpenSSL's security level) may refuse 1.1 before the server
    // sees it: lower it, so that the refusal must come from the server, as an alert.
    let addr = https.trim_start_matches("https://");
    let s_client = common::run(
        Command::new("openssl")
            .args(["s_client", "-connect", addr, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"])
            .stdin(Stdio::null()),
    );
    let said = format!("{}{}", String::from_utf8_lossy(&s_client.stdout), String::from_utf8_lossy(&s_client.stderr));
    assert!(
        said.contains("alert number") && said.contains("Cipher is (NONE)"),
        "TLS 1.1 was not refused by the server: {said}"
    );
    let (c, _) = curl(&format!("{https}/still.png"), &["--tls-max", "1.2", "--cacert", ca.to_str().unwrap()], &out);
    assert_eq!(c, 200, "TLS 1.2 is served");
    // SIGHUP re-reads the files: a certificate from another CA is served from then on.
    let (ca_b, cert_b, key_b) = make_certificate(&dir, "b");
    std::fs::copy(&cert_b, &live_cert).unwrap();
    std::fs::copy(&key_b, &live_key).unwrap();
    s.signal("-HUP");
    let began = Instant::now();
    while !s.stderr().contains("tls certificate reloaded") {
        assert!(began.elapsed() < Duration::from_secs(30), "no reload: {}", s.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (c, _) = curl(&format!("{https}/still.png"), &["--cacert", ca_b.to_str().unwrap()], &out);
    assert_eq!(c, 200);
}

/// curl options that wait for a port that is not bound yet.
const RETRY: &[&str] = &["--retry", "50", "--retry-delay", "1", "--retry-connrefused"];

/// `loomiere bench` over `https://`: trusting the server's CA with `--cacert` it completes
/// without an error and reports its handshakes; trusting another CA every handshake fails,
/// counted as TLS errors with the reason, and it exits non-zero.
#[test]
fn bench_over_https_trusts_its_cacert_only() {
    let dir = common::scratch("ops-bench-tls-certs");
    let (ca, cert, key) = make_certificate(&dir, "a");
    let (other_ca, _, _) = make_certificate(&dir, "b");
    let more = format!(
        "throttle = 0\n[tls]\nlisten = \"127.0.0.1:0\"\ncertificate = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let (_, config) = setup("ops-bench-tls", &more);
    let s = Serve::with_config("ops-bench-tls", &config, 2);
    let url = format!("{}/short.mp4", s.urls[1].trim_end_matches('/'));
    let bench = |cacert: &Path, extra: &[&str]| {
        common::run(
            common::loomiere()
                .args(["bench", &url, "--viewers", "4", "--duration", "2", "--ramp", "0.5", "--json", "--cacert"])
                .arg(cacert)
                .args(extra),
        )
    };
    for mode in [&["--fast"][..], &["--seek", "fixed", "--start", "5", "--watch", "1"][..]] {
        let out = bench(&ca, mode);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode:?}: {stderr}");
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["errors"]["total"], 0, "{mode:?}: {r}");
        assert!(r["succeeded"].as_u64().unwrap() >= 4, "{mode:?}: {r}");
        assert!(r["bytes"].as_u64().unwrap() > 10_000, "{mode:?}: {r}");
        let handshakes = &r["tls_handshake_ms"];
        assert!(handshakes["count"].as_u64().unwrap() >= 4, "{mode:?}: {r}");
        assert!(handshakes["p50"].as_f64().unwrap() > 0.0, "{mode:?}: {r}");
    }
    let out = bench(&other_ca, &[]);
    assert!(!out.status.success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["errors"]["tls"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["succeeded"], 0, "{r}");
    let why = r["tls_error"].as_str().unwrap();
    assert!(why.contains("not trusted"), "{why}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("every TLS handshake failed") && stderr.contains("not trusted"), "{stderr}");
    // A CA file that is not PEM is refused before anything is sent.
    let out = bench(&dir.join("a-ext.cnf"), &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cacert"), "{out:?}");
}

#[test]
fn socket_activation_serves_a_seek() {
    common::require_tool("systemd-socket-activate");
    let (root, _) = setup("ops-activate", "");
    // A free port: bound, read, released for systemd-socket-activate to take.
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port = free();
    let log = common::scratch("ops-activate-stderr").join("stderr.log");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-l", &format!("127.0.0.1:{port}"), "--fdname=http"])
        .arg(env!("CARGO_BIN_EXE_loomiere"))
        .arg("serve")
        .arg(&root)
        .args(["--listen", "127.0.0.1:1"]); // not used: the passed socket is
    let mut child = cmd.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let out = common::scratch("ops-activate-out").join("seek.mp4");
    // Until systemd-socket-activate has bound the port, connections are refused: retried.
    let (c, _) = curl(&format!("http://127.0.0.1:{port}/short.mp4?start=2"), RETRY, &out);
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(c, 200, "{stderr}");
    assert_eq!(common::decode_errors(&out), "");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "serve says the passed address: {stderr}");
}

#[test]
fn socket_activation_passes_http_and_https_by_name() {
    common::require_tool("systemd-socket-activate");
    let dir = common::scratch("ops-activate-tls-certs");
    let (ca, cert, key) = make_certificate(&dir, "c");
    // [tls] must be configured for a passed https socket; its listen is then unused.
    let more = format!(
        "[tls]\nlisten = \"127.0.0.1:1\"\ncertificate = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let (_, config) = setup("ops-activate-tls", &more);
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (http, https) = (free(), free());
    let log = common::scratch("ops-activate-tls-stderr").join("stderr.log");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-l", &format!("127.0.0.1:{https}"), "-l", &format!("127.0.0.1:{http}"), "--fdname=https:http"])
        .arg(env!("CARGO_BIN_EXE_loomiere"))
        .arg("serve")
        .arg("--config")
        .arg(&config);
    let mut child = cmd.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let out = dir.join("seek.mp4");
    let (c1, plain) = curl(&format!("http://127.0.0.1:{http}/short.mp4?start=2"), RETRY, &out);
    let (c2, secure) =
        curl(&format!("https://127.0.0.1:{https}/short.mp4?start=2"), &["--cacert", ca.to_str().unwrap()], &out);
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!((c1, c2), (200, 200), "{stderr}");
    assert_eq!(plain, secure);
    assert_eq!(common::decode_errors(&out), "");
}

#[test]
fn systemd_units_verify_and_are_hardened() {
    common::require_tool("systemd-analyze");
    let dir = common::scratch("ops-units");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
    // The unit names the installed binary; point it at this build so `verify` finds it.
    let service = std::fs::read_to_string(repo.join("loomiere.service"))
        .unwrap()
        .replace("/usr/local/bin/loomiere", env!("CARGO_BIN_EXE_loomiere"));
    std::fs::write(dir.join("loomiere.service"), service).unwrap();
    std::fs::copy(repo.join("loomiere.socket"), dir.join("loomiere.socket")).unwrap();
    let verify = common::run(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(dir.join("loomiere.socket"))
            .arg(dir.join("loomiere.service")),
    );
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    // systemd's own exposure score: 10 is unprotected; the unit must stay below 2.
    let security = common::run(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
            .arg(dir.join("loomiere.service")),
    );
    assert!(
        security.status.success(),
        "exposure too high: {}",
        String::from_utf8_lossy(&security.stdout).lines().last().unwrap_or("")
    );
}

#[test]
fn runit_run_script_serves_a_seek() {
    common::require_tool("chpst");
    let (_, config) = setup("ops-runit", "");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/runit/run");
    let log = common::scratch("ops-runit-stderr").join("stderr.log");
    let mut cmd = Command::new("sh");
    cmd.arg(&script)
        .env("LOOMIERE", env!("CARGO_BIN_EXE_loomiere"))
        .env("CONFIG", &config)
        .env("LISTEN", "127.0.0.1:0")
        // Root drops to this user through chpst; the scratch files are the test user's.
        .env("USER", String::from_utf8(common::run(Command::new("id").arg("-un")).stdout).unwrap().trim());
    let s = Serve::launch_cmd(cmd, 1, &log);
    let out = common::scratch("ops-runit-out").join("seek.mp4");
    assert_eq!(curl(&format!("{}/short.mp4?start=2", s.base()), &[], &out).0, 200);
    assert_eq!(common::decode_errors(&out), "");
}

#[test]
fn a_missing_certificate_is_refused_at_start_up_in_one_line() {
    let dir = common::scratch("ops-tls-missing");
    let more = format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncertificate = {:?}\nkey = {:?}\n",
        dir.join("none.pem").display().to_string(),
        dir.join("none.key").display().to_string()
    );
    let (_, config) = setup("ops-tls-missing-conf", &more);
    let out = common::run(common::loomiere().arg("serve").arg("--config").arg(&config).args(["-l", "127.0.0.1:0"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("none.pem: No such file or directory") && !err.contains("os error"), "{err}");
}
