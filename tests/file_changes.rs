//! Files changed while they are served (issue 12.1, 12.8): a copy of the 2-hour movie is read
//! slowly (small receive buffer, a little at a time) while it is truncated or overwritten in
//! place with `cp`, once while the rewritten moov is being sent and once during the media
//! part. `serve` must end that one answer (short body, connection closed, an error line, the
//! access line marked `cut-short`) and keep answering; the CGI must exit with status 1 and a
//! message, never die of a signal. No timed assertions: the sleeps only pace the reader.

mod common;

use common::serve::Serve;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

impl Serve {
    fn start(name: &str, root: &Path) -> Serve {
        let log = common::scratch(&format!("{name}-log")).join("stderr.log");
        Serve::launch(&[root], &log)
    }

    /// A whole answer on a fresh connection: (status, body length, announced length).
    fn get(&self, target: &str) -> (u16, usize, usize) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let (status, len, body_at) = parse_head(&all).expect("a response head");
        (status, all.len() - body_at, len)
    }
}

/// (status, Content-Length, offset of the body) of a response head at the start of `all`.
fn parse_head(all: &[u8]) -> Option<(u16, usize, usize)> {
    let end = all.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&all[..end]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))?
        .1
        .trim()
        .parse()
        .ok()?;
    Some((status, len, end + 4))
}

/// A connection whose receive buffer is small, so the server's sends block early.
fn slow_connect(addr: std::net::SocketAddr) -> TcpStream {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    sockopt::set_socket_recv_buffer_size(&fd, 4096).unwrap();
    rustix::net::connect(&fd, &addr).unwrap();
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// Reads until at least `n` body bytes (after the head) are in `got`, a little at a time.
fn read_body_until(s: &mut TcpStream, got: &mut Vec<u8>, n: usize) {
    let mut chunk = [0u8; 4096];
    while parse_head(got).is_none_or(|(_, _, at)| got.len() - at < n) {
        let k = s.read(&mut chunk).unwrap();
        assert!(k > 0, "the answer ended before {n} body bytes");
        got.extend_from_slice(&chunk[..k]);
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Length of the synthesised prefix (ftyp + moov + mdat header) of an MP4 answer body.
fn prefix_len(body: &[u8]) -> usize {
    let size = |at: usize| u32::from_be_bytes(body[at..at + 4].try_into().unwrap()) as usize;
    let ftyp = size(0);
    assert_eq!(&body[ftyp + 4..ftyp + 8], b"moov");
    ftyp + size(ftyp) + 16
}

/// How the served file is changed.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// `truncate -s 1M`.
    Truncate,
    /// `cp short.mp4 FILE` (same inode, new and shorter contents).
    CopyOver,
}

fn change(file: &Path, how: Change) {
    let ok = match how {
        Change::Truncate => Command::new("truncate").args(["-s", "1M"]).arg(file).status(),
        Change::CopyOver => Command::new("cp").arg(common::media("short.mp4")).arg(file).status(),
    };
    assert!(ok.expect("run truncate/cp").success());
}

/// Reads `target` slowly, changes `file` while the server is still sending the rewritten moov
/// (or, `in_media`, once the reader is past it), then reads what is left. Returns (body
/// bytes received, synthesised prefix length, announced length).
fn read_while_changed(s: &Serve, target: &str, file: &Path, how: Change, in_media: bool) -> (usize, usize, usize) {
    let mut c = slow_connect(s.addr.parse().unwrap());
    write!(c, "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut got = Vec::new();
    read_body_until(&mut c, &mut got, 16 << 10);
    let (status, len, at) = parse_head(&got).unwrap();
    assert_eq!(status, 200);
    let prefix = prefix_len(&got[at..]);
    assert!(prefix > 1 << 20, "the rewritten moov of the 2-hour movie is over 1 MiB");
    if in_media {
        read_body_until(&mut c, &mut got, prefix + (256 << 10));
    }
    // Let the server fill what the socket takes, so it is blocked mid-answer.
    std::thread::sleep(Duration::from_millis(200));
    change(file, how);
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    (got.len() - at + rest.len(), prefix, len)
}

#[test]
fn serve_survives_files_changed_while_sent() {
    let dir = common::scratch("file_changes-serve");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(common::media("short.mp4"), root.join("short.mp4")).unwrap();
    let mut s = Serve::start("file_changes-serve", &root);
    // start=1 keeps nearly every sample: a 4 MB moov, more than the socket buffers hold, so
    // the change lands while the server is still sending it.
    let cases = [
        ("trunc-moov.mp4", "start=1", Change::Truncate, false),
        ("trunc-media.mp4", "start=3600", Change::Truncate, true),
        ("cp-moov.mp4", "start=1", Change::CopyOver, false),
        ("cp-media.mp4", "start=3600", Change::CopyOver, true),
    ];
    for (name, query, how, in_media) in cases {
        let file = root.join(name);
        std::fs::copy(common::media("long.mp4"), &file).unwrap();
        let target = format!("/{name}?{query}");
        let (got, prefix, len) = read_while_changed(&s, &target, &file, how, in_media);
        assert!(got < len, "{name}: {got} of {len} bytes: the answer must be cut short, not completed or padded");
        if in_media {
            assert!(got > prefix, "{name}: cut at {got}, inside the {prefix}-byte prefix");
        } else {
            assert!(got < prefix, "{name}: cut at {got}, after the {prefix}-byte prefix (socket buffers too large?)");
        }
        assert!(s.alive(), "{name}: serve died: {}", s.stderr());
        // Other requests (and the changed file itself, as it is now) are still answered.
        let (status, body, announced) = s.get("/short.mp4?start=5");
        assert_eq!((status, body), (200, announced), "{name}: a later request");
        let log = s.stderr();
        let access = log.lines().find(|l| l.contains(&format!("\"GET {target} "))).unwrap_or_default();
        assert!(access.ends_with(" cut-short"), "{name}: access line {access:?} in\n{log}");
        assert!(
            log.lines().any(|l| l.contains(&target) && l.contains("cut short") && l.contains("truncated")),
            "{name}: no error line in\n{log}"
        );
    }
    assert!(s.alive());
}

#[test]
fn cgi_exits_with_an_error_when_its_file_is_truncated() {
    let dir = common::scratch("file_changes-cgi");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    for (name, how) in [("cgi-trunc.mp4", Change::Truncate), ("cgi-cp.mp4", Change::CopyOver)] {
        let file = root.join(name);
        std::fs::copy(common::media("long.mp4"), &file).unwrap();
        let conf = dir.join("stream.conf");
        std::fs::write(&conf, format!("document_root = {:?}\n", root)).unwrap();
        let mut child = common::loomiere()
            .env_clear()
            .env("LOOMIERE_CONFIG", &conf)
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("REQUEST_METHOD", "GET")
            .env("SCRIPT_NAME", format!("/{name}"))
            .env("QUERY_STRING", "start=1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut head = vec![0u8; 16 << 10];
        out.read_exact(&mut head).unwrap();
        assert!(head.starts_with(b"Status: 200"), "{}", String::from_utf8_lossy(&head[..64]));
        std::thread::sleep(Duration::from_millis(200));
        change(&file, how);
        let mut rest = Vec::new();
        out.read_to_end(&mut rest).unwrap();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), None, "{name}: killed by a signal: {err}");
        assert_eq!(status.code(), Some(1), "{name}: {err}");
        assert!(err.contains("truncated or overwritten"), "{name}: {err}");
    }
}
