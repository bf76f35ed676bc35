//! The blocking throttle driver over a real pipe: a paced stream arrives near the configured
//! rate (generous bounds, about a second of measuring), and a reader that goes away during
//! a pause ends the stream with `BrokenPipe` instead of leaving the writer asleep.

use loomiere::plan::{Piece, Plan, PlanInfo};
use loomiere::throttle::{send_paced, Pacer};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A 100 kB "media" plan lasting 10 s (10 kB/s) behind a 1 kB header.
/// Each test names its own file: tests run in parallel and `File::create` truncates.
fn plan(dir: &std::path::Path, name: &str) -> Plan {
    let path = dir.join(format!("throttle-source-{name}.bin"));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&vec![7u8; 101_000]).unwrap();
    let file = Arc::new(std::fs::File::open(&path).unwrap());
    let info = PlanInfo { duration: Some(10.0), header_len: 1000, source_len: 101_000, ..PlanInfo::default() };
    Plan::new(loomiere::Source::nameless(file, 101_000), vec![Piece::Source { offset: 0, len: 101_000 }], info).unwrap()
}

#[test]
fn paced_stream_arrives_at_the_rate() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).to_path_buf();
    let p = plan(&dir, "rate");
    // Factor 10 → 100 kB/s; burst = 1 kB header + 1 s of media (10 kB); 90 kB paced ≈ 0.9 s.
    let pacer = Pacer::for_output(10.0, 1.0, &p.info, p.len(), &(0..p.len())).unwrap();
    assert_eq!(pacer.burst, 11_000);
    let (r, w) = rustix::pipe::pipe().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        std::fs::File::from(r).read_to_end(&mut got).unwrap();
        got.len()
    });
    let began = Instant::now();
    let sent = send_paced(&p, 0..p.len(), w.as_fd(), Some(&pacer)).unwrap();
    let elapsed = began.elapsed().as_secs_f64();
    drop(w);
    assert_eq!(sent, 101_000);
    assert_eq!(reader.join().unwrap(), 101_000);
    assert!((0.45..3.0).contains(&elapsed), "paced 90 kB at 100 kB/s took {elapsed:.2} s");

    // Unthrottled, the same plan goes at once.
    let (r, w) = rustix::pipe::pipe().unwrap();
    let reader = std::thread::spawn(move || std::io::copy(&mut std::fs::File::from(r), &mut std::io::sink()).unwrap());
    let began = Instant::now();
    send_paced(&p, 0..p.len(), w.as_fd(), None).unwrap();
    drop(w);
    reader.join().unwrap();
    assert!(began.elapsed().as_secs_f64() < elapsed);
}

#[test]
fn reader_gone_during_a_pause_ends_the_stream() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).to_path_buf();
    let p = plan(&dir, "gone");
    // 2 kB/s after an 11 kB burst: the writer spends most of its time waiting.
    let pacer = Pacer::new(11_000, 2_000.0);
    let (r, w) = rustix::pipe::pipe().unwrap();
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(r);
        let mut buf = vec![0u8; 11_000];
        f.read_exact(&mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(f);
    });
    let err = send_paced(&p, 0..p.len(), w.as_fd(), Some(&pacer)).unwrap_err();
    reader.join().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
}

// ---- Every media answer paced, over real sockets: `serve` and the CGI's blocking driver ----

mod common;

use std::io::BufRead;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// Throttle settings of these tests: 2 × the media rate after 2 s of media.
const FACTOR: f64 = 2.0;
const BURST_SECONDS: f64 = 2.0;
/// How long the bound is watched.
const WATCH: Duration = Duration::from_secs(5);
/// Slack for the clocks of server and client (the server's clock starts later than ours).
const SLACK: u64 = 64 * 1024;

/// Where a whole MP4's media data lies (first `mdat` body to last `mdat` end), by the tests'
/// own box walker.
fn media_range(file: &Path) -> std::ops::Range<u64> {
    let data = std::fs::read(file).unwrap();
    let boxes = common::mp4_boxes(&data);
    let mdats: Vec<_> = boxes.iter().filter(|b| &b.kind == b"mdat").collect();
    let (first, last) = (mdats.first().unwrap(), mdats.last().unwrap());
    (first.offset + first.header) as u64..(last.offset + last.size) as u64
}

/// A document root holding the test media, and a config throttling at `factor`.
fn site(name: &str, factor: f64, burst: f64) -> (PathBuf, PathBuf) {
    let dir = common::scratch(name);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    for f in ["short.mp4", "long.mp4"] {
        std::fs::hard_link(common::media(f), root.join(f))
            .or_else(|_| std::fs::copy(common::media(f), root.join(f)).map(|_| ()))
            .unwrap();
    }
    let conf = dir.join("stream.conf");
    std::fs::write(
        &conf,
        format!(
            "document_root = {:?}\nthrottle = {factor}\nburst_seconds = {burst}\nlog = \"off\"\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    (root, conf)
}

/// A server of one of the two kinds, killed by PID when dropped.
struct Front {
    child: Child,
    /// `serve`: its address. CGI: `None` (one connection, already made).
    addr: Option<String>,
    /// CGI: the client end of the connection handed to the process.
    client: Option<TcpStream>,
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Front {
    fn serve(conf: &Path) -> Front {
        let mut child = common::loomiere()
            .args(["serve", "--listen", "127.0.0.1:0", "--threads", "1", "--config"])
            .arg(conf)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start loomiere serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().trim_start_matches("http://").trim_end_matches('/').to_string();
        assert!(!addr.is_empty(), "serve did not start");
        Front { child, addr: Some(addr), client: None }
    }

    /// `serve-cgi --inetd` on one accepted loopback connection (as tcpsvd runs it): the
    /// blocking driver writes the answer to the socket.
    fn cgi(conf: &Path) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let child = common::loomiere()
            .args(["serve-cgi", "--inetd", "--config"])
            .arg(conf)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(conn.try_clone().unwrap())))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(conn)))
            .stderr(Stdio::null())
            .spawn()
            .expect("start loomiere serve-cgi --inetd");
        Front { child, addr: None, client: Some(client) }
    }

    fn connect(&mut self) -> TcpStream {
        let s = match (&self.addr, self.client.take()) {
            (Some(addr), _) => TcpStream::connect(addr).unwrap(),
            (None, Some(c)) => c,
            (None, None) => panic!("the CGI front serves one connection"),
        };
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s
    }
}

/// An answer's head: status and headers (lower-case names).
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends a GET and reads the head byte by byte (no body byte is consumed).
fn request(s: &mut TcpStream, path: &str, extra: &str) -> Head {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("answer head");
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Head { status, headers }
}

/// Reads the body for [`WATCH`] (and at least until `burst` bytes came), checking after every
/// read that no more than `burst + rate × elapsed + SLACK` arrived. Returns the bytes read.
fn watch_pace(s: &mut TcpStream, began: Instant, burst: u64, rate: f64, total: u64) -> u64 {
    let mut got = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while got < total && (began.elapsed() < WATCH || got < burst) {
        let n = s.read(&mut buf).expect("body");
        assert!(n > 0, "the answer ended after {got} of {total} bytes");
        got += n as u64;
        let secs = began.elapsed().as_secs_f64();
        let allowed = burst + (rate * secs) as u64 + SLACK;
        assert!(got <= allowed, "{got} bytes after {secs:.2} s: more than burst {burst} + {rate:.0} B/s × elapsed");
    }
    got
}

/// The whole 2-hour file, then a range from the middle of its media, paced on `front`.
fn whole_file_and_mid_range_are_paced(mut front: impl FnMut() -> TcpStream) {
    let file = common::media("long.mp4");
    let len = std::fs::metadata(&file).unwrap().len();
    let media = media_range(&file);
    let probe = common::duration(&file);

    let mut s = front();
    let began = Instant::now();
    let head = request(&mut s, "/long.mp4", "");
    assert_eq!(head.status, 200);
    let duration: f64 = head.header("x-content-duration").expect("whole file carries its duration").parse().unwrap();
    assert!((duration - probe).abs() < 1.0, "X-Content-Duration {duration} against ffprobe's {probe}");
    assert_eq!(head.header("content-length"), Some(len.to_string().as_str()));
    let bps = (media.end - media.start) as f64 / duration;
    let burst = media.start + (bps * BURST_SECONDS) as u64;
    let got = watch_pace(&mut s, began, burst, bps * FACTOR, len);
    assert!(got < len / 2, "{got} of {len} bytes within {WATCH:?}: not paced");
    drop(s);

    // A player dragging the bar: `Range: bytes=N-` from the middle of the media.
    let from = media.start + (media.end - media.start) / 2;
    let mut s = front();
    let began = Instant::now();
    let head = request(&mut s, "/long.mp4", &format!("Range: bytes={from}-\r\n"));
    assert_eq!(head.status, 206);
    assert_eq!(head.header("content-range"), Some(format!("bytes {from}-{}/{len}", len - 1).as_str()));
    let burst = (bps * BURST_SECONDS) as u64;
    let got = watch_pace(&mut s, began, burst, bps * FACTOR, len - from);
    assert!(got < (len - from) / 2, "{got} bytes of the range within {WATCH:?}: not paced");
}

#[test]
fn serve_paces_whole_files_and_ranges() {
    let (_, conf) = site("pace-serve", FACTOR, BURST_SECONDS);
    let mut front = Front::serve(&conf);
    whole_file_and_mid_range_are_paced(|| front.connect());
}

#[test]
fn cgi_paces_whole_files_and_ranges() {
    let (_, conf) = site("pace-cgi", FACTOR, BURST_SECONDS);
    let mut fronts = Vec::new();
    whole_file_and_mid_range_are_paced(|| {
        fronts.push(Front::cgi(&conf));
        fronts.last_mut().unwrap().connect()
    });
}

/// A throttled whole-file answer is the file, byte for byte, and decodes.
fn throttled_whole_file_decodes(name: &str, mut front: impl FnMut() -> TcpStream) {
    let mut s = front();
    let head = request(&mut s, "/short.mp4", "");
    assert_eq!(head.status, 200);
    assert!(head.header("x-content-duration").is_some());
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    let source = std::fs::read(common::media("short.mp4")).unwrap();
    assert!(
        body == source,
        "the throttled answer differs from the file ({} against {} bytes)",
        body.len(),
        source.len()
    );
    let out = common::scratch(name).join("got.mp4");
    std::fs::write(&out, &body).unwrap();
    assert_eq!(common::decode_errors(&out), "");
}

#[test]
fn throttled_whole_file_decodes_from_serve_and_cgi() {
    // 60 s of media at 30 × its rate after 5 s: about 2 s per answer.
    let (_, conf) = site("pace-decode", 30.0, 5.0);
    let mut serve = Front::serve(&conf);
    throttled_whole_file_decodes("pace-decode-serve", || serve.connect());
    let mut cgi = Front::cgi(&conf);
    throttled_whole_file_decodes("pace-decode-cgi", || cgi.connect());
}
