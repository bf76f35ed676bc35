//! A real browser against `loomiere serve`: headless Chromium driven through chromedriver's
//! WebDriver HTTP API (tests/common/webdriver.rs) loads the listing page, plays a
//! seeked MP4 (and a seeked fragmented MP4) from it, checks that `currentTime` advances and `duration` matches what the
//! server sent, then seeks inside the video (Range requests). Skipped with a `SKIPPED:`
//! message when chromium, chromedriver or curl is not installed, and failed instead under
//! `LOOMIERE_REQUIRE_ALL=1` (CI). Everything listens on 127.0.0.1 only; the
//! browser runs with networking features off and a fresh profile.

mod common;

use common::serve::Serve;
use common::webdriver::{Driver, CHROMEDRIVER, CHROMIUM};
use serde_json::{json, Value};
use std::process::Command;

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
    let server = Serve::launch(&[&root], &log);
    let base = server.urls[0].clone();
    assert!(base.starts_with("http://127.0.0.1:"), "serve did not start: {base:?}");

    // What the server sends for the seek: the duration the video element must report.
    let seek = 10.0;
    let served = common::run(
        Command::new("curl").args(["-s", "-o"]).arg(dir.join("seek.mp4")).arg(format!("{base}{name}?start={seek}")),
    );
    assert!(served.status.success());
    let expected = common::duration(&dir.join("seek.mp4"));

    // chromedriver and a browser.
    let driver = Driver::start();
    let session =
        driver.session(&dir.join("profile")).unwrap_or_else(|e| panic!("cannot start a chromium session: {e}"));
    let result = (|| -> Result<Value, String> {
        session.timeouts(60000, 30000)?;
        session.open(&base)?;
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
        let played = session.run_async(play, json!([seek, name]))?;
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
        let seeked = session.run_async(seek_script, json!([target]))?;
        Ok(json!({"played": played, "seeked": seeked, "target": target}))
    })();
    drop(session);
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
