//! Errors that say why: an HTTP error body is `text/plain` with the status line and the
//! reason (the words of the log line), never a path of the server — from `serve` and from a
//! CGI process; the command line speaks to a person (no "bad request", no status codes, one
//! line per error, the fix when there is one) and a broken config names its line.

mod common;

use common::serve::Serve;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A document root with `short.mp4` and `short.flv`.
fn root(name: &str) -> PathBuf {
    let root = common::scratch(name).join("root");
    std::fs::create_dir_all(&root).unwrap();
    for f in ["short.mp4", "short.flv"] {
        std::fs::copy(common::media(f), root.join(f)).unwrap();
    }
    root
}

impl Serve {
    fn start(root: &Path, name: &str) -> Serve {
        let log = common::scratch(&format!("{name}-log")).join("stderr.log");
        Serve::launch(&[root.as_os_str(), "--threads".as_ref(), "1".as_ref()], &log)
    }

    /// (status line, content type, body) of a GET.
    fn get(&self, target: &str) -> (String, String, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("an answer");
        let status = head.lines().next().unwrap_or("").to_string();
        let ctype = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_string()))
            .unwrap_or_default();
        (status, ctype, body.to_string())
    }
}

/// The bad requests of both front ends, with the reason each body must give.
const BAD: &[(&str, &str, &str)] = &[
    ("/short.mp4?start=999", "400 Bad Request", "start 999 s is beyond the duration (60."),
    ("/short.mp4?start=abc", "400 Bad Request", "\"abc\" is not a time in seconds (want e.g. 30.5)"),
    ("/short.mp4?start=", "400 Bad Request", "start is empty: give a position (e.g. start=30.5) or leave start out"),
    ("/short.flv?start=12", "400 Bad Request", "byte offset 12 is not the start of an FLV tag"),
    ("/missing.mp4", "404 Not Found", "no such file"),
];

#[test]
fn serve_error_bodies_give_the_reason() {
    let root = root("errors-serve");
    let s = Serve::start(&root, "errors-serve");
    for (target, status, why) in BAD {
        let (line, ctype, body) = s.get(target);
        assert_eq!(line, format!("HTTP/1.1 {status}"), "{target}");
        assert_eq!(ctype, "text/plain; charset=utf-8", "{target}");
        assert!(body.starts_with(&format!("{status}\n")), "{target}: {body:?}");
        assert!(body.contains(why), "{target}: {body:?} lacks {why:?}");
        assert!(!body.contains(root.to_str().unwrap()), "{target}: {body:?} names the document root");
        // The log line says the same.
        let reason = body.lines().nth(1).unwrap();
        assert!(s.stderr().contains(reason), "log lacks {reason:?}: {}", s.stderr());
    }
}

#[test]
fn cgi_error_bodies_give_the_reason() {
    let root = root("errors-cgi");
    for (target, status, why) in BAD {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let out = common::run(
            common::loomiere()
                .env_clear()
                .env("GATEWAY_INTERFACE", "CGI/1.1")
                .env("REQUEST_METHOD", "GET")
                .env("PATH_INFO", path)
                .env("QUERY_STRING", query)
                .env("DOCUMENT_ROOT", &root)
                .env("LOOMIERE_CONFIG", "")
                .arg("serve-cgi"),
        );
        assert!(out.status.success(), "{target}");
        let text = String::from_utf8_lossy(&out.stdout);
        let (head, body) = text.split_once("\r\n\r\n").expect("a CGI answer");
        assert!(head.starts_with(&format!("Status: {status}\r\n")), "{target}: {head}");
        assert!(head.contains("Content-Type: text/plain; charset=utf-8"), "{target}: {head}");
        assert!(body.starts_with(&format!("{status}\n")) && body.contains(why), "{target}: {body:?} lacks {why:?}");
        assert!(!body.contains(root.to_str().unwrap()), "{target}: {body:?} names the document root");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains(body.lines().nth(1).unwrap()), "{target}: log {log:?} against body {body:?}");
    }
}

/// A failed command's stderr: it exits non-zero and prints one line, for a person.
fn one_line_error(cmd: &mut std::process::Command) -> String {
    let out = common::run(cmd.stdin(Stdio::null()));
    assert!(!out.status.success(), "{cmd:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{cmd:?}: not one line: {err:?}");
    for http in ["bad request", "Bad Request", "answering", " 400", " 500", "os error"] {
        assert!(!err.contains(http), "{cmd:?} speaks HTTP or errno to a person ({http:?}): {err:?}");
    }
    err
}

#[test]
fn config_syntax_error_names_its_line() {
    let dir = common::scratch("errors-config");
    let conf = dir.join("stream.conf");
    let root = dir.display().to_string();
    std::fs::write(&conf, format!("document_root = {root:?}\nthrottle = 1.5\nburst_seconds = = 3\n")).unwrap();
    let err = one_line_error(common::loomiere().arg("serve").arg("--config").arg(&conf).args(["-l", "127.0.0.1:0"]));
    assert!(err.contains(&format!("{}, line 3, column ", conf.display())), "{err:?}");
    // A key with a typo names its line too.
    std::fs::write(&conf, format!("document_root = {root:?}\nthrotle = 1.5\n")).unwrap();
    let err = one_line_error(common::loomiere().arg("serve").arg("--config").arg(&conf).args(["-l", "127.0.0.1:0"]));
    assert!(err.contains("line 2, column 1") && err.contains("throtle"), "{err:?}");
    // A value out of range says which and what is allowed.
    std::fs::write(&conf, format!("document_root = {root:?}\nthrottle = -2\n")).unwrap();
    let err = one_line_error(common::loomiere().arg("serve").arg("--config").arg(&conf).args(["-l", "127.0.0.1:0"]));
    assert!(err.contains("throttle -2 must be 0 (off) or between 0.01 and 1000"), "{err:?}");
}

#[test]
fn cli_errors_speak_to_a_person() {
    let short = common::media("short.mp4");
    let out = common::scratch("errors-cli").join("clip.mp4");
    let err = one_line_error(common::loomiere().arg("cut").arg(&short).args(["--start", "999", "-o"]).arg(&out));
    assert!(err.starts_with("loomiere: ") && err.contains("start 999 s is beyond the duration (60."), "{err:?}");
    let err = one_line_error(common::loomiere().args(["cut", "/nonexistent/a.mp4", "--start", "1", "-o"]).arg(&out));
    assert!(err.ends_with("No such file or directory\n") && err.matches("No such file").count() == 1, "{err:?}");
    // Over HTTP an MP4 `end` at or before `start` is ignored (as nginx does); `cut` refuses it.
    let err =
        one_line_error(common::loomiere().arg("cut").arg(&short).args(["--start", "10", "--end", "5", "-o"]).arg(&out));
    assert!(err.contains("end 5 s is not after start 10 s"), "{err:?}");
    let err = one_line_error(common::loomiere().args(["serve", "/nonexistent/dir", "-l", "127.0.0.1:0"]));
    assert!(err.contains("is not a directory") && err.contains("loomiere demo"), "{err:?}");
    // A port already taken: the fix is another --listen.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = one_line_error(common::loomiere().args(["serve", "-l", &addr]).arg(common::media_dir()));
    assert!(err.contains(&format!("cannot listen on {addr}")) && err.contains("--listen"), "{err:?}");
    let err = one_line_error(common::loomiere().args(["serve", "--config", "/nonexistent/stream.conf"]));
    assert!(err.contains("cannot read config /nonexistent/stream.conf: No such file or directory"), "{err:?}");
}

/// `loomiere inspect … | head`: a reader that stops reading is not an error (no panic
/// message, status 0).
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::io::Read;
    let mut child = common::loomiere()
        .arg("inspect")
        .arg(common::media("long.mp4"))
        .arg("--keyframes")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start loomiere inspect");
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The pipe's read end is closed here: the rest of the listing meets EPIPE.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "{:?}: {err}", out.status);
}
