//! Browser players against loomiere's HLS and DASH: headless Chromium (driven through
//! chromedriver's WebDriver HTTP API) runs hls.js, Shaka Player and dash.js (npm packages,
//! installed by this test into `target/players` with `npm`) on a page served from another
//! loopback origin, so the CORS headers are exercised too. Each player must start, advance
//! `currentTime`, report the movie's duration, play on after a seek to the middle, raise no
//! error event, and show the movie's subtitles as a text track — from `serve`, and from the
//! CGI under lighttpd (`cgi/lighttpd.conf`); hls.js and dash.js also play a fragmented MP4
//! (CMAF) source and a bitrate ladder of two files. Skipped with `SKIPPED:` when chromium,
//! chromedriver, npm or lighttpd is missing, failed instead under `LOOMIERE_REQUIRE_ALL=1`.

mod common;

use common::serve::Serve;
use common::webdriver::{free_port, Driver, Guard, CHROMEDRIVER, CHROMIUM};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The player packages, pinned.
const PACKAGES: [&str; 3] = ["hls.js@1.7.4", "dashjs@5.2.1", "shaka-player@5.2.12"];

/// The players' scripts: installed once per target directory with npm.
fn players() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("players");
    let stamp = dir.join(format!("installed-{}", PACKAGES.join("+").replace('/', "_")));
    if !stamp.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let out = common::run(
            Command::new("npm")
                .current_dir(&dir)
                .args(["install", "--no-audit", "--no-fund", "--no-save", "--prefix"])
                .arg(&dir)
                .args(PACKAGES),
        );
        assert!(out.status.success(), "npm install {PACKAGES:?}: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(&stamp, b"").unwrap();
    }
    dir.join("node_modules")
}

/// A static page server for the test page and the player scripts (another origin than
/// loomiere's), on a thread; it stops with the test process.
fn page_server(files: Vec<(&'static str, &'static str, Vec<u8>)>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).map(|n| n == 1).unwrap_or(false) {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split(' ').nth(1).unwrap_or("/");
            let found = files.iter().find(|(p, _, _)| *p == path);
            let _ = match found {
                Some((_, ctype, body)) => {
                    let _ =
                        write!(s, "HTTP/1.0 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n", body.len());
                    s.write_all(body)
                }
                None => s.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            };
        }
    });
    port
}

const PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8">
<script src="/hls.js"></script><script src="/dash.js"></script><script src="/shaka.js"></script>
</head><body><video id="v" muted playsinline></video></body></html>"#;

/// Runs in the page: attaches `player` to the video for `url`, waits for playback, then seeks
/// to the middle; reports times, duration, text tracks and errors.
const SCRIPT: &str = r#"
const [player, url] = [arguments[0], arguments[1]];
const done = arguments[arguments.length - 1];
const v = document.getElementById('v');
const errors = [];
const report = {};
const wait = (ms) => new Promise(r => setTimeout(r, ms));
const until = (what, ms) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('timeout waiting for ' + what)), ms);
  v.addEventListener(what, () => { clearTimeout(t); resolve(); }, {once: true});
});
v.addEventListener('error', () => errors.push('media error ' + (v.error && v.error.code)));
(async () => {
  if (player === 'hls.js') {
    const hls = new Hls({enableWebVTT: true, renderTextTracksNatively: true});
    hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) errors.push('hls.js ' + d.type + ' ' + d.details); });
    hls.loadSource(url);
    hls.attachMedia(v);
    window.__p = hls;
  } else if (player === 'dash.js') {
    const p = dashjs.MediaPlayer().create();
    p.on(dashjs.MediaPlayer.events.ERROR, (e) => errors.push('dash.js ' + JSON.stringify(e.error || e)));
    p.initialize(v, url, false);
    window.__p = p;
  } else {
    shaka.polyfill.installAll();
    const p = new shaka.Player();
    await p.attach(v);
    p.addEventListener('error', (e) => errors.push('shaka ' + (e.detail && e.detail.code)));
    await p.load(url);
    window.__p = p;
  }
  const playing = until('playing', 60000);
  v.play().catch(e => errors.push('play(): ' + e));
  await playing;
  report.t1 = v.currentTime;
  await wait(1500);
  report.t2 = v.currentTime;
  report.duration = v.duration;
  const middle = Math.floor(v.duration / 2);
  const seeked = until('seeked', 60000);
  v.currentTime = middle;
  await seeked;
  report.s1 = v.currentTime;
  await wait(1500);
  report.s2 = v.currentTime;
  report.middle = middle;
  report.textTracks = Array.from(v.textTracks).map(t => t.kind + ':' + (t.language || ''));
  if (player === 'shaka') report.textTracks = report.textTracks.concat(window.__p.getTextTracks().map(t => 'shaka:' + t.language));
  if (player === 'dash.js') report.textTracks = report.textTracks.concat((window.__p.getTracksFor('text') || []).map(t => 'dashjs:' + t.lang));
  report.errors = errors;
  done(report);
})().catch(e => { errors.push(String(e)); done({errors: errors, failed: String(e)}); });
"#;

#[test]
fn hls_js_shaka_and_dash_js_play_hls_and_dash() {
    for tool in [CHROMIUM, CHROMEDRIVER, "npm", "lighttpd"] {
        if !common::tool_or_skip("hls_js_shaka_and_dash_js_play_hls_and_dash", tool) {
            return;
        }
    }
    common::require_tool("ffmpeg");
    let modules = players();
    let dir = common::scratch("players");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    // short.mp4 with an English tx3g subtitle track.
    common::with_subtitles(
        "1\n00:00:01,000 --> 00:00:30,000\nHello\n\n2\n00:00:31,000 --> 00:00:59,000\nAgain\n",
        &root.join("movie.mp4"),
    );
    // The same picture and sound as a fragmented MP4 (CMAF), packaged from its fragments.
    let out = common::run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(common::media("short.mp4"))
            .args(["-map", "0", "-c", "copy", "-f", "mp4", "-movflags", "cmaf"])
            .arg(root.join("frag.mp4")),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A bitrate ladder: two renditions with the same keyframe times, and their sidecar.
    for (name, size, rate) in [("hi.mp4", "320x240", "300k"), ("lo.mp4", "160x120", "80k")] {
        let out = common::run(
            Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-i"])
                .arg(common::media("short.mp4"))
                .args(["-map", "0", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50"])
                .args(["-sc_threshold", "0", "-s", size, "-b:v", rate, "-c:a", "copy"])
                .arg(root.join(name)),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(root.join("title.ladder"), "hi.mp4\nlo.mp4\n").unwrap();
    let want = common::duration(&common::media("short.mp4"));
    let log = dir.join("serve.log");
    let server = Serve::launch(&[&root], &log);
    let base = server.urls[0].clone();
    assert!(base.starts_with("http://127.0.0.1:"), "serve did not start: {base:?}");

    let read = |p: &str| std::fs::read(modules.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let page_port = page_server(vec![
        ("/page.html", "text/html; charset=utf-8", PAGE.as_bytes().to_vec()),
        ("/hls.js", "text/javascript", read("hls.js/dist/hls.min.js")),
        ("/dash.js", "text/javascript", read("dashjs/dist/modern/umd/dash.all.min.js")),
        ("/shaka.js", "text/javascript", read("shaka-player/dist/shaka-player.compiled.js")),
    ]);

    let driver = Driver::start();
    // The same root through lighttpd running loomiere as a CGI program (cgi/lighttpd.conf).
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let conf = run.join("stream.conf");
    std::fs::write(&conf, format!("document_root = {:?}\n", root.display().to_string())).unwrap();
    let lighttpd_port = free_port();
    let template = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("cgi/lighttpd.conf")).unwrap();
    let lighttpd_conf = run.join("lighttpd.conf");
    std::fs::write(
        &lighttpd_conf,
        template
            .replace("@ROOT@", &root.display().to_string())
            .replace("@PORT@", &lighttpd_port.to_string())
            .replace("@RUN@", &run.display().to_string())
            .replace("@CONFIG@", &conf.display().to_string())
            .replace("@LOOMIERE@", env!("CARGO_BIN_EXE_loomiere")),
    )
    .unwrap();
    let lighttpd = Command::new("lighttpd")
        .arg("-D")
        .arg("-f")
        .arg(&lighttpd_conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _lighttpd = Guard(lighttpd);
    let began = Instant::now();
    while TcpStream::connect(("127.0.0.1", lighttpd_port)).is_err() {
        assert!(began.elapsed() < Duration::from_secs(30), "lighttpd did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let cgi_base = format!("http://127.0.0.1:{lighttpd_port}/");

    let mut failures = Vec::new();
    for (front, base) in [("serve", &base), ("lighttpd CGI", &cgi_base)] {
        for (movie, player, manifest) in [
            ("movie.mp4", "hls.js", "master.m3u8"),
            ("movie.mp4", "shaka", "master.m3u8"),
            ("movie.mp4", "dash.js", "manifest.mpd"),
            ("movie.mp4", "shaka", "manifest.mpd"),
            ("frag.mp4", "hls.js", "master.m3u8"),
            ("frag.mp4", "dash.js", "manifest.mpd"),
            ("title.ladder", "hls.js", "master.m3u8"),
            ("title.ladder", "dash.js", "manifest.mpd"),
        ] {
            let profile = dir.join(format!("profile-{player}-{movie}-{manifest}"));
            let url = format!("{base}{movie}/{manifest}");
            let result = driver.session(&profile).and_then(|session| {
                session.timeouts(180000, 30000)?;
                session.open(&format!("http://127.0.0.1:{page_port}/page.html"))?;
                session.run_async(SCRIPT, json!([player, url]))
            });
            let r = match result {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{front}: {player} {movie}/{manifest}: webdriver: {e}"));
                    continue;
                }
            };
            // Missing numbers read as NaN, which fails every check below.
            let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            let advances = f("t2") > f("t1");
            let duration_right = (f("duration") - want).abs() < 0.5;
            let plays_after_seek = f("s1") >= f("middle") - 1.0 && f("s2") > f("s1");
            let mut wrong = Vec::new();
            if r["errors"].as_array().is_none_or(|e| !e.is_empty()) {
                wrong.push("errors");
            }
            if !advances {
                wrong.push("currentTime does not advance");
            }
            if !duration_right {
                wrong.push("duration");
            }
            if !plays_after_seek {
                wrong.push("no playback after the seek");
            }
            if movie == "movie.mp4"
                && !r["textTracks"].as_array().is_some_and(|t| {
                    t.iter().any(|t| t.as_str().is_some_and(|t| t.ends_with(":eng") || t.ends_with(":en")))
                })
            {
                wrong.push("no English text track");
            }
            if !wrong.is_empty() {
                failures.push(format!("{front}: {player} {movie}/{manifest}: {wrong:?}: {r}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{failures:#?}\nserver log:\n{}\nlighttpd log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        std::fs::read_to_string(run.join("lighttpd-error.log")).unwrap_or_default()
    );
}
