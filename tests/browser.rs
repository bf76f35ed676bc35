//! A real browser against `loomiere serve`: headless Chromium driven through chromedriver's
//! WebDriver HTTP API (a tiny JSON-over-HTTP client below) loads the listing page, plays a
//! seeked MP4 (and a seeked fragmented MP4) from it, checks that `currentTime` advances and `duration` matches what the
//! server sent, then seeks inside the video (Range requests). Skipped with a `SKIPPED:`
//! message when chromium, chromedriver or curl is not installed, and failed instead under
//! `LOOMIERE_REQUIRE_ALL=1` (CI). Everything listens on 127.0.0.1 only; the
//! browser runs with networking features off and a fresh profile.

mod common;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A child process killed (by PID) and reaped on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One WebDriver call: `method path` with an optional JSON body; returns the `value`.
fn wd(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // chromedriver may keep the connection open: read the head, then Content-Length bytes.
    let mut r = BufReader::new(s);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed in the head".into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(|_| "bad Content-Length")?;
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&body)))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if value.get("error").is_some() {
        return Err(value.to_string());
    }
    Ok(value)
}

#[test]
fn chromium_plays_and_seeks() {
    plays_and_seeks("chromium_plays_and_seeks", "short.mp4");
}

/// The same with a fragmented MP4 (frag_keyframe+empty_moov): the seeked answer is the init
/// part and rewritten fragments (docs/fmp4.md).
#[test]
fn chromium_plays_and_seeks_fragmented() {
    plays_and_seeks("chromium_plays_and_seeks_fragmented", "frag.mp4");
}

/// Serves `name` from the test media, plays it seeked from the listing page, seeks inside it.
fn plays_and_seeks(test: &str, name: &str) {
    for tool in [CHROMIUM, CHROMEDRIVER, "curl"] {
        if !common::tool_or_skip(test, tool) {
            return;
        }
    }
    let dir = common::scratch(test);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(common::media(name), root.join(name)).unwrap();
    let log = dir.join("serve.log");

    // The server.
    let mut child = common::loomiere()
        .arg("serve")
        .arg(&root)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _server = Guard(child);
    let base = line.trim().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "serve did not start: {line:?}");

    // What the server sends for the seek: the duration the video element must report.
    let seek = 10.0;
    let served = common::run(
        Command::new("curl").args(["-s", "-o"]).arg(dir.join("seek.mp4")).arg(format!("{base}{name}?start={seek}")),
    );
    assert!(served.status.success());
    let expected = common::duration(&dir.join("seek.mp4"));

    // chromedriver.
    let port = free_port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _driver = Guard(driver);
    let began = Instant::now();
    while wd(port, "GET", "/status", None).map(|v| v["ready"] != json!(true)).unwrap_or(true) {
        assert!(began.elapsed() < Duration::from_secs(30), "chromedriver did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let profile = dir.join("profile");
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--autoplay-policy=no-user-gesture-required", "--mute-audio",
                     format!("--user-data-dir={}", profile.display())]
        }
    }}});
    let session = match wd(port, "POST", "/session", Some(&caps)) {
        Ok(v) => v["sessionId"].as_str().unwrap().to_string(),
        Err(e) => panic!("cannot start a chromium session: {e}"),
    };
    let s = format!("/session/{session}");
    let result = (|| -> Result<Value, String> {
        wd(port, "POST", &format!("{s}/timeouts"), Some(&json!({"script": 60000, "pageLoad": 30000})))?;
        wd(port, "POST", &format!("{s}/url"), Some(&json!({"url": base})))?;
        // Type the start time, click the file in the page's list, wait for playback to move.
        let play = r#"
            const done = arguments[arguments.length - 1];
            const v = document.getElementById('player');
            v.muted = true;
            document.getElementById('start').value = arguments[0];
            const a = [...document.querySelectorAll('a.play')].find(x => x.textContent === arguments[1]);
            if (!a) { done({error: 'no link to ' + arguments[1] + ' in the page'}); return; }
            v.addEventListener('error', () => done({error: 'media error ' + (v.error && v.error.code)}));
            v.addEventListener('playing', () => {
                const t1 = v.currentTime;
                setTimeout(() => done({src: v.currentSrc, duration: v.duration, t1: t1, t2: v.currentTime}), 1500);
            }, {once: true});
            a.click();
        "#;
        let played =
            wd(port, "POST", &format!("{s}/execute/async"), Some(&json!({"script": play, "args": [seek, name]})))?;
        let seek_script = r#"
            const done = arguments[arguments.length - 1];
            const v = document.getElementById('player');
            v.addEventListener('seeked', () => {
                const t1 = v.currentTime;
                setTimeout(() => done({t1: t1, t2: v.currentTime, paused: v.paused}), 1500);
            }, {once: true});
            v.currentTime = arguments[0];
        "#;
        let target = (expected * 0.6).floor();
        let seeked =
            wd(port, "POST", &format!("{s}/execute/async"), Some(&json!({"script": seek_script, "args": [target]})))?;
        Ok(json!({"played": played, "seeked": seeked, "target": target}))
    })();
    let _ = wd(port, "DELETE", &s, None);
    let r = result.unwrap_or_else(|e| {
        panic!("webdriver: {e}\nserver log:\n{}", std::fs::read_to_string(&log).unwrap_or_default())
    });
    let played = &r["played"];
    assert!(played.get("error").is_none(), "{r}");
    assert!(played["src"].as_str().unwrap().ends_with(&format!("{name}?start={seek}")), "{r}");
    let duration = played["duration"].as_f64().unwrap();
    assert!((duration - expected).abs() < 0.5, "browser duration {duration} vs served {expected}: {r}");
    assert!(played["t2"].as_f64().unwrap() > played["t1"].as_f64().unwrap(), "currentTime does not advance: {r}");
    let seeked = &r["seeked"];
    let target = r["target"].as_f64().unwrap();
    assert!(seeked["t1"].as_f64().unwrap() >= target - 1.0, "{r}");
    assert!(seeked["t2"].as_f64().unwrap() > seeked["t1"].as_f64().unwrap(), "no playback after the seek: {r}");
    let served_log = std::fs::read_to_string(&log).unwrap();
    assert!(served_log.contains(&format!("\"GET /{name}?start={seek} HTTP/1.1\"")), "{served_log}");
    assert!(served_log.contains("\" 206 "), "the browser used Range requests: {served_log}");
}
