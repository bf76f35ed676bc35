//! Headless Chromium for the browser tests, driven through chromedriver's WebDriver HTTP API
//! with a tiny JSON-over-HTTP client: the driver process, one session per profile, script
//! calls. Everything listens on 127.0.0.1; the browser runs with networking features off and
//! a fresh profile.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A child process killed (by PID) and reaped on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One WebDriver call: `method path` with an optional JSON body; returns the `value`.
pub fn wd(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(200))).unwrap();
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

/// A running chromedriver on a free loopback port.
pub struct Driver {
    pub port: u16,
    _child: Guard,
}

impl Driver {
    /// Starts chromedriver and waits (up to 30 s) until it says it is ready.
    pub fn start() -> Driver {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver { port, _child: Guard(child) };
        let began = Instant::now();
        while wd(port, "GET", "/status", None).map(|v| v["ready"] != json!(true)).unwrap_or(true) {
            assert!(began.elapsed() < Duration::from_secs(30), "chromedriver did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }

    /// A new headless Chromium session with its own profile directory.
    pub fn session(&self, profile: &Path) -> Result<Session, String> {
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
        let v = wd(self.port, "POST", "/session", Some(&caps))?;
        let id = v["sessionId"].as_str().ok_or_else(|| format!("no session id in {v}"))?;
        Ok(Session { port: self.port, path: format!("/session/{id}") })
    }
}

/// One browser session; closed on drop.
pub struct Session {
    port: u16,
    path: String,
}

impl Session {
    /// Sets the script and page-load timeouts (ms).
    pub fn timeouts(&self, script_ms: u64, page_ms: u64) -> Result<(), String> {
        self.call("POST", "/timeouts", &json!({"script": script_ms, "pageLoad": page_ms})).map(drop)
    }

    /// Loads `url`.
    pub fn open(&self, url: &str) -> Result<(), String> {
        self.call("POST", "/url", &json!({"url": url})).map(drop)
    }

    /// Runs an asynchronous script (it calls its last argument when done) with `args`.
    pub fn run_async(&self, script: &str, args: Value) -> Result<Value, String> {
        self.call("POST", "/execute/async", &json!({"script": script, "args": args}))
    }

    fn call(&self, method: &str, suffix: &str, body: &Value) -> Result<Value, String> {
        wd(self.port, method, &format!("{}{suffix}", self.path), Some(body))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = wd(self.port, "DELETE", &self.path, None);
    }
}
