//! Seek marks (`mp4::marks`) change how fast a seek finds its samples, never what it answers:
//! on the generated media (the 2-hour file's tables hold about 120 000 `ctts` runs and 50 000
//! `stsc` entries, so marks matter there), every plan made with marks — built in memory, or
//! stored in a marks file and loaded by a later "process" — is byte-identical to the plan made
//! by scanning from the first entry. A marks file that is damaged, or belongs to another
//! movie, is ignored; one that is forged (valid checksum, wrong marks) may give a wrong cut
//! but never a panic or a read outside the file.

mod common;

use common::{media, scratch};
use loomiere::media::Source;
use loomiere::mp4::{marks, Movie};
use loomiere::plan::Plan;
use loomiere::{Piece, Position, Request};
use std::path::Path;

/// What decides a plan's bytes: its synthesised pieces' bytes and its file ranges.
fn bytes(plan: &Plan) -> Vec<u8> {
    let mut out = Vec::new();
    for p in plan.pieces() {
        match p {
            Piece::Synth(s) => {
                let mut buf = vec![0u8; s.len() as usize];
                let mut at = 0;
                while at < buf.len() {
                    let n = s.read_at(at as u64, &mut buf[at..]);
                    assert!(n > 0, "synth ended early");
                    at += n;
                }
                out.extend_from_slice(&buf);
            }
            Piece::Source { offset, len } => {
                out.extend_from_slice(b"FILE");
                out.extend_from_slice(&offset.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
            }
        }
    }
    out
}

fn req(start: f64, end: Option<f64>, exact: bool) -> Request {
    Request { start: Some(Position::Seconds(start)), end: end.map(Position::Seconds), exact, ..Request::default() }
}

fn requests() -> Vec<Request> {
    let mut v = Vec::new();
    for (s, e) in [(0.5, None), (13.0, Some(40.0)), (3600.0, None), (3600.0, Some(3700.5)), (7100.0, None)] {
        v.push(req(s, e, false));
        v.push(req(s, e, true));
    }
    v
}

fn open(path: &Path) -> Movie {
    Movie::open(Source::open(path).unwrap()).unwrap()
}

#[test]
fn plans_with_marks_equal_plans_without() {
    for name in ["long.mp4", "short.mp4", "moovend.mp4", "co64.mp4"] {
        let path = media(name);
        let plain = open(&path);
        let mut marked = open(&path);
        marked.build_marks().unwrap();
        for r in requests() {
            let a = plain.plan(&r, "video/mp4");
            let b = marked.plan(&r, "video/mp4");
            match (a, b) {
                (Ok(a), Ok(b)) => assert!(bytes(&a) == bytes(&b), "{name} {r:?}: plans differ"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{name} {r:?}"),
                (a, b) => panic!("{name} {r:?}: {:?} vs {:?}", a.map(|p| p.len()), b.map(|p| p.len())),
            }
        }
    }
}

#[test]
fn marks_file_round_trip_and_rejections() {
    let dir = scratch("seek_marks-file");
    let path = media("long.mp4");
    let plain = open(&path);
    let key = plain.key();
    let tracks = plain.tracks().unwrap();
    let built = marks::Marks::build(&tracks);
    assert!(built.tracks.iter().any(|t| t.ctts.len() > 100), "the 2-hour file should have many marks");

    // The first process stores, the next one loads the same marks and plans the same bytes.
    let mut first = open(&path);
    first.use_marks_in(&dir).unwrap();
    let file = marks::file_for(&dir, &key);
    assert!(file.is_file(), "marks file written");
    assert_eq!(marks::load(&dir, &key, &tracks), Some(built.clone()));
    let mut second = open(&path);
    second.use_marks_in(&dir).unwrap();
    let r = req(3600.0, None, false);
    assert!(bytes(&second.plan(&r, "video/mp4").unwrap()) == bytes(&plain.plan(&r, "video/mp4").unwrap()));
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "{names:?}");

    // Damaged: any flipped byte, a truncation, or another movie's key: ignored.
    let good = std::fs::read(&file).unwrap();
    for at in [0, 9, 60, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        std::fs::write(&file, &bad).unwrap();
        assert_eq!(marks::load(&dir, &key, &tracks), None, "flipped byte {at}");
    }
    std::fs::write(&file, &good[..good.len() - 3]).unwrap();
    assert_eq!(marks::load(&dir, &key, &tracks), None);
    let other = marks::MovieKey { mtime_ns: key.mtime_ns ^ 1, ..key };
    std::fs::write(&file, built.encode(&other)).unwrap();
    assert_eq!(marks::load(&dir, &key, &tracks), None);
    // A symlink is never followed.
    std::fs::remove_file(&file).unwrap();
    let target = dir.join("elsewhere");
    std::fs::write(&target, &good).unwrap();
    std::os::unix::fs::symlink(&target, &file).unwrap();
    assert_eq!(marks::load(&dir, &key, &tracks), None);
    // Nor is a FIFO planted under the name waited on (a blocking open would hang here).
    std::fs::remove_file(&file).unwrap();
    rustix::fs::mknodat(rustix::fs::CWD, &file, rustix::fs::FileType::Fifo, rustix::fs::Mode::RWXU, 0).unwrap();
    assert_eq!(marks::load(&dir, &key, &tracks), None);
    let other = marks::MovieKey { ctime_ns: key.ctime_ns ^ 1, ..key };
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, built.encode(&other)).unwrap();
    assert_eq!(marks::load(&dir, &key, &tracks), None, "a file rewritten in place has new marks");
    std::fs::write(&file, &good).unwrap();

    // Forged (checksum recomputed over wrong marks): plans still never panic.
    let mut forged = built.clone();
    for t in &mut forged.tracks {
        for (i, m) in t.ctts.iter_mut().enumerate() {
            *m = (i as u64) * 7;
        }
        for (i, m) in t.stsc.iter_mut().enumerate() {
            *m = (i as u64) * 1_000_003;
        }
        t.offsets_grow = true;
    }
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, forged.encode(&key)).unwrap();
    let mut fooled = open(&path);
    fooled.use_marks_in(&dir).unwrap();
    for r in requests() {
        if let Ok(p) = fooled.plan(&r, "video/mp4") {
            let _ = bytes(&p);
        }
    }
}

#[test]
fn a_missing_marks_directory_costs_nothing() {
    let path = media("long.mp4");
    let mut m = open(&path);
    m.use_marks_in(Path::new("/nonexistent/loomiere-marks")).unwrap();
    assert!(!m.has_marks(), "marks no later process could read are not built");
    let r = req(3600.0, None, false);
    assert!(bytes(&m.plan(&r, "video/mp4").unwrap()) == bytes(&open(&path).plan(&r, "video/mp4").unwrap()));
}

#[test]
fn a_small_moov_keeps_no_marks_file() {
    let dir = scratch("seek_marks-small");
    let mut m = open(&media("short.mp4"));
    m.use_marks_in(&dir).unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "short.mp4's moov is scanned, not indexed");
}

/// The CGI path with `index_cache`: the first request writes the movie's marks file, and every
/// answer (first, later, and without the cache) is the same bytes.
#[test]
fn cgi_with_index_cache_answers_the_same_bytes() {
    let dir = scratch("seek_marks-cgi");
    let cache = dir.join("marks");
    std::fs::create_dir_all(&cache).unwrap();
    let root = media("long.mp4").parent().unwrap().to_path_buf();
    let with = dir.join("with.conf");
    let without = dir.join("without.conf");
    std::fs::write(&with, format!("document_root = {:?}\nindex_cache = {:?}\n", root, cache)).unwrap();
    std::fs::write(&without, format!("document_root = {:?}\n", root)).unwrap();
    let get = |conf: &Path| {
        let out = common::loomiere()
            .env_clear()
            .env("LOOMIERE_CONFIG", conf)
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("REQUEST_METHOD", "GET")
            .env("SCRIPT_NAME", "/long.mp4")
            .env("QUERY_STRING", "start=3600&end=3630")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout[..200.min(out.stdout.len())]).to_string();
        assert!(text.starts_with("Status: 200"), "{text}");
        out.stdout
    };
    let plain = get(&without);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
    let first = get(&with);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1, "one marks file written");
    let later = get(&with);
    assert!(plain == first && first == later, "answers differ");
}
