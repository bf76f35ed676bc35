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
