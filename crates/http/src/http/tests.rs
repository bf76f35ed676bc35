//! Unit tests of [`respond`] over a scratch document root holding small images (whole-file
//! plans, independent of the container engines).

use super::*;
use crate::request::{Position, Request};
use std::path::PathBuf;
use std::time::Duration;

struct Root(PathBuf);

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn root(name: &str) -> Root {
    let dir = std::env::temp_dir().join(format!("loomiere-http-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.png"), (0..=255u8).cycle().take(1000).collect::<Vec<u8>>()).unwrap();
    std::fs::write(dir.join("sub/b.jpg"), b"jpeg bytes").unwrap();
    std::fs::write(dir.join("notes.txt"), b"secret").unwrap();
    Root(dir)
}

fn cfg(r: &Root) -> Config {
    Config::with_root(&r.0).unwrap()
}

fn body(resp: &Response) -> Vec<u8> {
    match &resp.body {
        Body::Plan { plan, range } => crate::sink::read_range(plan, range.clone()).unwrap(),
        Body::Text(t) => t.as_bytes().to_vec(),
        Body::Empty => Vec::new(),
    }
}

#[test]
fn whole_file_get_and_head() {
    let r = root("get");
    let c = cfg(&r);
    let resp = respond(&c, &HttpRequest::get("/a.png", ""));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Content-Type"), Some("image/png"));
    assert_eq!(resp.header("Content-Length"), Some("1000"));
    assert_eq!(resp.header("Accept-Ranges"), Some("bytes"));
    assert!(resp.header("ETag").is_some());
    assert!(resp.header("Last-Modified").is_some());
    assert_eq!(body(&resp), std::fs::read(r.0.join("a.png")).unwrap());

    let head = respond(&c, &HttpRequest { method: "HEAD".into(), ..HttpRequest::get("/a.png", "") });
    assert_eq!(head.status, 200);
    assert_eq!(head.headers, resp.headers);
    assert!(matches!(head.body, Body::Empty));

    let sub = respond(&c, &HttpRequest::get("/sub/b.jpg", "start=10&foo"));
    assert_eq!(sub.status, 200);
    assert_eq!(sub.header("Content-Type"), Some("image/jpeg"));
    assert_eq!(body(&sub), b"jpeg bytes");
}

#[test]
fn statuses_for_bad_requests() {
    let r = root("status");
    let c = cfg(&r);
    let status = |req: HttpRequest| respond(&c, &req).status;
    assert_eq!(status(HttpRequest { method: "POST".into(), ..HttpRequest::get("/a.png", "") }), 405);
    assert_eq!(status(HttpRequest { method: "get".into(), ..HttpRequest::get("/a.png", "") }), 405);
    assert_eq!(status(HttpRequest::get("/missing.png", "")), 404);
    assert_eq!(status(HttpRequest::get("/notes.txt", "")), 403);
    assert_eq!(status(HttpRequest::get("/sub", "")), 403);
    assert_eq!(status(HttpRequest::get("/", "")), 403);
    assert_eq!(status(HttpRequest::get("/../a.png", "")), 403);
    assert_eq!(status(HttpRequest::get("/a.png", "start=1&start=2")), 400);
    let r405 = respond(&c, &HttpRequest { method: "PUT".into(), ..HttpRequest::get("/a.png", "") });
    assert_eq!(r405.header("Allow"), Some("GET, HEAD"));
    assert!(
        matches!(&r405.body, Body::Text(t) if t == "405 Method Not Allowed\nmethod \"PUT\" is not served (GET and HEAD are)\n"),
        "{:?}",
        r405.body
    );
    assert!(r405.log.is_some());
}

/// The text body of an answer.
fn text(resp: &Response) -> String {
    match &resp.body {
        Body::Text(t) => t.clone(),
        b => panic!("not a text body: {b:?}"),
    }
}

#[test]
fn error_bodies_say_why_without_server_paths() {
    let r = root("why");
    let c = cfg(&r);
    let root_text = c.document_root.display().to_string();
    std::fs::write(r.0.join("broken.mp4"), b"\0\0\0\x10ftypisom\0\0\0\0 not a movie").unwrap();
    std::fs::write(r.0.join("clip.flv"), b"FLV\x01\x05\0\0\0\x09\0\0\0\0").unwrap();
    std::fs::create_dir_all(r.0.join("dir.mp4")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", r.0.join("out.png")).unwrap();
    for (path, query, status, why) in [
        ("/a.png", "start=1&start=2", 400, "start given twice"),
        ("/broken.mp4", "start=10", 500, "corrupt file at offset 16: box"),
        ("/broken.mp4", "start=", 400, "start is empty: give a position (e.g. start=30.5) or leave start out"),
        ("/clip.flv", "start=", 400, "start is empty: give a position (e.g. start=123456 (a byte offset) or 30.5s)"),
        ("/broken.mp4", "end=abc", 400, "\"abc\" is not a time in seconds"),
        ("/missing.mp4", "", 404, "no such file"),
        ("/dir.mp4", "", 403, "is a directory"),
        ("/out.png", "", 403, "leads outside the document root"),
        ("/notes.txt", "", 403, "extension \"txt\" is not served"),
    ] {
        let resp = respond(&c, &HttpRequest::get(path, query));
        let body = text(&resp);
        assert_eq!(resp.status, status, "{path}?{query}: {body}");
        assert_eq!(resp.header("Content-Type"), Some("text/plain; charset=utf-8"));
        let first = format!("{status} {}\n", reason(status));
        assert!(body.starts_with(&first) && body.ends_with('\n'), "{path}?{query}: {body:?}");
        assert!(body.contains(why), "{path}?{query}: {body:?} lacks {why:?}");
        assert_eq!(body.lines().count(), 2, "{body:?}");
        assert!(!body.contains(&root_text) && !body.contains("/etc/"), "{path}?{query} names a server path: {body:?}");
        // The log line carries the same words, and the URL path.
        let log = resp.log.as_deref().unwrap();
        assert!(log.contains(body.lines().nth(1).unwrap()), "log {log:?} vs body {body:?}");
        assert!(!log.contains(&root_text), "{log}");
    }
    // An empty position on an image is ignored, as every position is.
    assert_eq!(respond(&c, &HttpRequest::get("/a.png", "start=")).status, 200);
    // A broken configuration is a 500 that names nothing of the server's.
    let e = crate::config::Config::parse("document_root = =", std::path::Path::new("/etc/x.conf")).unwrap_err();
    let resp = Response::config_error(&e);
    assert!(!text(&resp).contains("/etc/x.conf") && resp.log.as_deref().unwrap().contains("/etc/x.conf, line 1"));
}

#[test]
fn ranges_on_the_output() {
    let r = root("range");
    let c = cfg(&r);
    let full = std::fs::read(r.0.join("a.png")).unwrap();
    let with_range = |h: &str| respond(&c, &HttpRequest { range: Some(h.into()), ..HttpRequest::get("/a.png", "") });
    let a = with_range("bytes=0-99");
    assert_eq!(a.status, 206);
    assert_eq!(a.header("Content-Range"), Some("bytes 0-99/1000"));
    assert_eq!(a.header("Content-Length"), Some("100"));
    let b = with_range("bytes=100-");
    assert_eq!(b.header("Content-Range"), Some("bytes 100-999/1000"));
    assert_eq!([body(&a), body(&b)].concat(), full);
    let u = with_range("bytes=1000-");
    assert_eq!(u.status, 416);
    assert_eq!(u.header("Content-Range"), Some("bytes */1000"));
    assert_eq!(with_range("bytes=0-1,5-9").status, 200);

    // If-Range with a stale validator: the whole body.
    let etag = a.header("ETag").unwrap().to_string();
    let ir = |v: &str| {
        respond(
            &c,
            &HttpRequest {
                range: Some("bytes=0-9".into()),
                if_range: Some(v.into()),
                ..HttpRequest::get("/a.png", "")
            },
        )
        .status
    };
    assert_eq!(ir(&etag), 206);
    assert_eq!(ir("\"stale\""), 200);
}

#[test]
fn conditional_requests() {
    let r = root("cond");
    let c = cfg(&r);
    let first = respond(&c, &HttpRequest::get("/a.png", ""));
    let etag = first.header("ETag").unwrap().to_string();
    let lm = first.header("Last-Modified").unwrap().to_string();
    let inm = respond(&c, &HttpRequest { if_none_match: Some(etag.clone()), ..HttpRequest::get("/a.png", "") });
    assert_eq!(inm.status, 304);
    assert_eq!(inm.header("ETag"), Some(etag.as_str()));
    assert!(matches!(inm.body, Body::Empty));
    let ims = respond(&c, &HttpRequest { if_modified_since: Some(lm.clone()), ..HttpRequest::get("/a.png", "") });
    assert_eq!(ims.status, 304);
    // If-None-Match wins over If-Modified-Since.
    let both = respond(
        &c,
        &HttpRequest {
            if_none_match: Some("\"other\"".into()),
            if_modified_since: Some(lm),
            ..HttpRequest::get("/a.png", "")
        },
    );
    assert_eq!(both.status, 200);
    // A touched file gets a new tag.
    let f = std::fs::File::options().write(true).open(r.0.join("a.png")).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5)).unwrap();
    let after = respond(&c, &HttpRequest { if_none_match: Some(etag.clone()), ..HttpRequest::get("/a.png", "") });
    assert_eq!(after.status, 200);
    assert_ne!(after.header("ETag"), Some(etag.as_str()));
}

#[test]
fn signed_urls() {
    let r = root("signed");
    let mut c = cfg(&r);
    let secret = "0123456789abcdef0123";
    c.secret = Some(secret.into());
    let now = SystemTime::now();
    let t = now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let q = signed::query(secret, "/sub/b.jpg", t + 60);
    assert_eq!(respond_full(&c, &HttpRequest::get("/sub//b.jpg", &q), now).status, 200);
    assert_eq!(respond_full(&c, &HttpRequest::get("/sub/b.jpg", ""), now).status, 403);
    assert_eq!(respond_full(&c, &HttpRequest::get("/a.png", &q), now).status, 403);
    let expired = signed::query(secret, "/sub/b.jpg", t - 1);
    assert_eq!(respond_full(&c, &HttpRequest::get("/sub/b.jpg", &expired), now).status, 403);
    // Unsigned probing of missing files learns nothing: 403, not 404.
    assert_eq!(respond_full(&c, &HttpRequest::get("/missing.png", ""), now).status, 403);
}

#[test]
fn listings_are_routed_by_the_core_and_signed() {
    // The core lists directories for every driver (CGI and inetd as `serve`), and with a
    // secret an unsigned listing is refused before the directory is read.
    let r = root("listing");
    let mut c = cfg(&r);
    c.listing = true;
    let now = SystemTime::now();
    let page = respond_full(&c, &HttpRequest::get("/", ""), now);
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&body(&page)).contains("a.png"));
    let secret = "0123456789abcdef0123";
    c.secret = Some(secret.into());
    assert_eq!(respond_full(&c, &HttpRequest::get("/", ""), now).status, 403);
    assert_eq!(respond_full(&c, &HttpRequest::get("/sub/", ""), now).status, 403);
    let t = now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let q = signed::query(secret, "/", t + 60);
    assert_eq!(respond_full(&c, &HttpRequest::get("/", &q), now).status, 200);
    c.listing = false;
    assert_eq!(respond_full(&c, &HttpRequest::get("/", &q), now).status, 403);
}

#[test]
fn symlinks_out_of_the_root() {
    let r = root("symlink");
    let outside = r.0.with_extension("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("x.png"), b"outside").unwrap();
    std::os::unix::fs::symlink(outside.join("x.png"), r.0.join("out.png")).unwrap();
    std::os::unix::fs::symlink(&outside, r.0.join("outdir")).unwrap();
    std::os::unix::fs::symlink(r.0.join("notes.txt"), r.0.join("notes.png")).unwrap();
    std::os::unix::fs::symlink("a.png", r.0.join("rel.png")).unwrap();
    std::os::unix::fs::symlink(r.0.join("sub"), r.0.join("abs")).unwrap();
    let mut c = cfg(&r);
    let status = |c: &Config, p: &str| respond(c, &HttpRequest::get(p, "")).status;
    assert_eq!(status(&c, "/out.png"), 403);
    assert_eq!(status(&c, "/outdir/x.png"), 403);
    assert_eq!(status(&c, "/notes.png"), 403);
    assert_eq!(status(&c, "/rel.png"), 200);
    assert_eq!(status(&c, "/abs/b.jpg"), 200);
    // Relative symlinks: through a directory inside the root (opened in one `openat2`), and
    // out of it with `..` (refused by the kernel, then by the real-path check).
    std::os::unix::fs::symlink("sub", r.0.join("reldir")).unwrap();
    let name = outside.file_name().unwrap().to_str().unwrap();
    std::os::unix::fs::symlink(format!("../{name}"), r.0.join("updir")).unwrap();
    std::os::unix::fs::symlink(format!("../{name}/x.png"), r.0.join("up.png")).unwrap();
    assert_eq!(status(&c, "/reldir/b.jpg"), 200);
    assert_eq!(body(&respond(&c, &HttpRequest::get("/reldir/b.jpg", ""))), b"jpeg bytes");
    assert_eq!(status(&c, "/updir/x.png"), 403);
    assert_eq!(status(&c, "/up.png"), 403);
    // Not regular files: a directory named like media, a FIFO (opened without blocking).
    std::fs::create_dir(r.0.join("dir.png")).unwrap();
    assert_eq!(status(&c, "/dir.png"), 403);
    let fifo = std::process::Command::new("mkfifo").arg(r.0.join("fifo.png")).status().unwrap();
    assert!(fifo.success());
    assert_eq!(status(&c, "/fifo.png"), 403);
    c.follow_symlinks = true;
    assert_eq!(status(&c, "/out.png"), 200);
    assert_eq!(status(&c, "/notes.png"), 403);
    let _ = std::fs::remove_dir_all(&outside);
}

#[test]
fn heads_serialise() {
    let r = Response::error(404, None);
    assert_eq!(
        r.cgi_head(),
        "Status: 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\n"
    );
    let h = r.http_head(false, true, std::time::UNIX_EPOCH);
    assert!(h.starts_with("HTTP/1.1 404 Not Found\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"));
    assert!(h.ends_with("Connection: keep-alive\r\n\r\n"));
    assert!(r.http_head(true, false, SystemTime::now()).starts_with("HTTP/1.0 404"));
}

#[test]
fn bare_numbers_are_bytes_for_flv_only() {
    let q = query::Query::parse("start=123&end=456").unwrap();
    let flv = media_request(Kind::Flv, &q).unwrap();
    assert_eq!(flv.start, Some(Position::Byte(123)));
    let mp4 = media_request(Kind::Mp4, &q).unwrap();
    assert_eq!(mp4.start, Some(Position::Seconds(123.0)));
    assert_eq!(mp4.end, Some(Position::Seconds(456.0)));
    let img = media_request(Kind::Image("image/png"), &q).unwrap();
    assert_eq!(img, Request::default());
    let q = query::Query::parse("start=1.5").unwrap();
    assert!(media_request(Kind::Flv, &q).is_err());
    assert_eq!(
        media_request(Kind::Flv, &query::Query::parse("start=1.5s").unwrap()).unwrap().start,
        Some(Position::Seconds(1.5))
    );
}

#[test]
fn garbage_never_panics() {
    let r = root("garbage");
    let c = cfg(&r);
    // A small deterministic generator: no dependency, same inputs every run.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet: &[&str] = &[
        "/",
        ".",
        "..",
        "%",
        "%2e",
        "%2F",
        "%00",
        "\\",
        "a.png",
        "sub",
        "b.jpg",
        "=",
        "&",
        "start",
        "end",
        "exact",
        "bytes=",
        "-",
        ",",
        "1",
        "99999999999999999999",
        "é",
        "\u{0}",
        " ",
        "\"",
        "W/",
        "*",
        "sig",
        "expires",
        ":",
    ];
    let mut word =
        |n: usize| -> String { (0..n).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect() };
    for i in 0..3000 {
        let req = HttpRequest {
            method: if i % 7 == 0 { "HEAD".into() } else { "GET".into() },
            target: match i % 3 {
                0 => Target::Url(format!("/{}", word(1 + i % 6))),
                1 => Target::Decoded(word(1 + i % 5)),
                _ => Target::Translated(r.0.join(word(1 + i % 4))),
            },
            query: word(i % 9),
            range: (i % 2 == 0).then(|| word(1 + i % 5)),
            if_none_match: (i % 5 == 0).then(|| word(2)),
            if_modified_since: (i % 4 == 0).then(|| word(3)),
            if_range: (i % 6 == 0).then(|| word(2)),
        };
        let resp = respond(&c, &req);
        assert!(matches!(resp.status, 200 | 206 | 304 | 400 | 403 | 404 | 416), "{req:?} → {}", resp.status);
        if let Body::Plan { plan, range } = &resp.body {
            assert!(range.start < range.end && range.end <= plan.len());
        }
    }
}

#[test]
fn responses_can_cross_threads() {
    // The tokio server moves answers between tasks and threads.
    fn send_static<T: Send + 'static>() {}
    send_static::<Response>();
    send_static::<HttpRequest>();
    send_static::<crate::throttle::Pacer>();
}
