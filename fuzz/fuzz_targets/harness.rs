//! The one fuzzing harness, shared by the cargo-fuzz targets (`mp4`, `fmp4`, `flv`) and by the
//! stable-toolchain mutation test (`tests/hostile.rs`): it puts hostile bytes in an anonymous
//! in-memory file and drives the engine through it the way a front end would: plan a few
//! requests, read every planned byte back, and check the plan's own arithmetic (a slice of
//! the output equals the same bytes read whole). Any panic is a bug; errors are fine.

use loomiere::media::{self, Kind, Source};
use loomiere::plan::Plan;
use loomiere::{sink, Position, Request};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Plans larger than this are planned but not read back (keeps each input fast and small).
pub const MAX_READ: u64 = 64 * 1024 * 1024;

/// The requests every input is tried with: whole file, seeks, ranges, exact, co64, bytes.
pub fn requests() -> Vec<Request> {
    let s = |v: f64| Some(Position::Seconds(v));
    vec![
        Request::default(),
        Request { start: s(0.0), ..Request::default() },
        Request { start: s(0.75), ..Request::default() },
        Request { start: s(10.0), ..Request::default() },
        Request { start: s(0.5), end: s(1.5), ..Request::default() },
        Request { start: s(1.2), end: s(1.7), exact: true, ..Request::default() },
        Request { start: s(0.3), exact: true, force_co64: true, ..Request::default() },
        Request { end: s(1.0), force_co64: true, ..Request::default() },
        Request { start: Some(Position::Byte(13)), ..Request::default() },
        Request { start: Some(Position::Byte(1000)), ..Request::default() },
    ]
}

/// An anonymous in-memory file holding `data` (a memfd; a temporary file where memfds are
/// not available).
pub fn file_with(data: &[u8]) -> std::io::Result<File> {
    let mut file = match rustix::fs::memfd_create("loomiere-fuzz", rustix::fs::MemfdFlags::CLOEXEC) {
        Ok(fd) => File::from(fd),
        Err(_) => tempfile_fallback()?,
    };
    file.write_all(data)?;
    Ok(file)
}

fn tempfile_fallback() -> std::io::Result<File> {
    let path = std::env::temp_dir().join(format!("loomiere-fuzz-{}", std::process::id()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Runs one input of `kind` through the engine with every request of [`requests`].
pub fn exercise(kind: Kind, data: &[u8]) {
    let Ok(file) = file_with(data) else { return };
    let file = Arc::new(file);
    let name = match kind {
        Kind::Mp4 => "input.mp4",
        Kind::Flv => "input.flv",
        Kind::Image(_) => "input.png",
    };
    for req in requests() {
        let src = Source::nameless(Arc::clone(&file), data.len() as u64);
        if let Ok(plan) = media::plan(src, &req, &media::Options::for_kind(kind, Path::new(name))) {
            pace(&plan);
            read_back(&plan);
        }
    }
    let src = Source::nameless(Arc::clone(&file), data.len() as u64);
    if kind == Kind::Mp4 {
        let _ = loomiere::mp4::inspect_with(src, loomiere::mp4::inspect::Options { keyframes: true });
        marks_agree(&file, data);
        defragment(&file, data);
        package_all(&file, data);
    }
}

/// A fragmented input defragmented whole (`loomiere index`): planned and read back.
fn defragment(file: &Arc<File>, data: &[u8]) {
    use loomiere::fmp4::{defrag, index};
    let Ok(movie) = loomiere::mp4::Movie::open(Source::nameless(Arc::clone(file), data.len() as u64)) else { return };
    if !movie.fragmented {
        return;
    }
    let Ok(index) = index::build(&movie.src, &movie) else { return };
    if let Ok(plan) = defrag::plan(&movie, &index, &defrag::whole(&index), "video/mp4") {
        read_back(&plan);
    }
}

/// HLS/DASH packaging of the input: the segment index for a few clips and segment
/// durations, every playlist, the MPD, every init segment, WebVTT document and (up to a
/// bound) every media segment planned and read back, also from a forged index; the index
/// survives its byte form, and the input's bytes read as an index file never panic.
fn package_all(file: &Arc<File>, data: &[u8]) {
    use loomiere::mp4::Movie;
    use loomiere::package::{self, Clip, Media, Options, Package, PackageRequest, SegmentIndex};
    let Ok(movie) = Movie::open(Source::nameless(Arc::clone(file), data.len() as u64)) else { return };
    let clips = [
        (Clip::default(), 6.0),
        (Clip { start: Some(0.5), end: Some(1.5) }, 1.0),
        (Clip { start: Some(0.2), end: None }, 1.0),
    ];
    for (clip, target) in clips {
        let options = Options { target };
        let Ok(pkg) = Package::build(&movie, clip, &options) else { continue };
        if let Ok(tracks) = movie.tracks() {
            let key = movie.key();
            let bytes = pkg.index.encode(&key);
            let back = SegmentIndex::decode(&bytes, &key, clip, &options, &tracks);
            let same = back.is_some_and(|b| {
                (&b.tracks, &b.cells, b.count) == (&pkg.index.tracks, &pkg.index.cells, pkg.index.count)
            });
            assert!(same, "segment index does not survive its byte form");
            let _ = SegmentIndex::decode(data, &key, clip, &options, &tracks);
        }
        let mut requests = vec![PackageRequest::Master, PackageRequest::Mpd];
        for t in &pkg.index.tracks {
            let (media, id) = (t.media, t.id);
            requests.push(PackageRequest::Playlist { media, id });
            requests.push(PackageRequest::Init { media, id });
            if media == Media::Video {
                requests.push(PackageRequest::IFrames { id });
            }
            if media == Media::Subtitle {
                requests.push(PackageRequest::Vtt { id, number: None });
                requests.push(PackageRequest::Vtt { id, number: Some(1) });
            }
            for number in 1..=pkg.index.count.min(40) as u32 {
                requests.push(PackageRequest::Segment { media, id, number });
            }
        }
        for r in &requests {
            if let Ok(plan) = package::answer_with(&movie, &pkg, r, "?start=1&sig=x") {
                read_back(&plan);
            }
        }
        // A forged index (as a damaged or planted cache file could hold): table positions and
        // sizes taken from the input's bytes. Wrong answers are allowed, panics and reads
        // outside the file are not.
        let mut forged = (*pkg.index).clone();
        let word = |i: usize| -> u64 {
            let at = (i * 8) % data.len().max(1);
            data.get(at..at + 8).map_or(i as u64, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        };
        for (i, c) in forged.cells.iter_mut().enumerate() {
            match i % 6 {
                0 => c.stts = (word(i) % 8, word(i + 1) % 64, word(i + 2)),
                1 => c.ctts = (word(i) % 8, word(i + 1) % 64),
                2 => c.stsc = (word(i) % 8, word(i + 1) % 64),
                3 => c.bytes = word(i),
                4 => c.dts = word(i),
                _ => c.duration = word(i),
            }
        }
        let Ok(tracks) = movie.tracks() else { continue };
        let forged = Package::with_index(&movie, &tracks, Arc::new(forged));
        for r in &requests {
            if let Ok(plan) = package::answer_with(&movie, &forged, r, "") {
                read_back(&plan);
            }
        }
    }
}

/// Seek marks change nothing: every plan of a movie with marks equals the plan without (same
/// outcome, same bytes), and the input's bytes read as a marks file never panic.
fn marks_agree(file: &Arc<File>, data: &[u8]) {
    use loomiere::mp4::{marks::Marks, Movie};
    let open = || Movie::open(Source::nameless(Arc::clone(file), data.len() as u64));
    let (Ok(plain), Ok(mut marked)) = (open(), open()) else { return };
    if let Ok(tracks) = plain.tracks() {
        let _ = Marks::decode(data, &plain.key(), &tracks);
    }
    if marked.build_marks().is_err() {
        return;
    }
    for req in requests().into_iter().filter(|r| !matches!(r.start, Some(Position::Byte(_)))) {
        match (plain.plan(&req, "video/mp4"), marked.plan(&req, "video/mp4")) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.len(), b.len(), "{req:?}: plan lengths differ with marks");
                if a.len() <= MAX_READ {
                    let (x, y) = (sink::read_range(&a, 0..a.len()), sink::read_range(&b, 0..b.len()));
                    if let (Ok(x), Ok(y)) = (x, y) {
                        assert!(x == y, "{req:?}: plan bytes differ with marks");
                    }
                }
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{req:?}: errors differ with marks"),
            (a, b) => panic!("{req:?}: {:?} without marks, {:?} with", a.map(|p| p.len()), b.map(|p| p.len())),
        }
    }
}

/// The throttle's arithmetic over what a hostile file says of itself (duration, header and
/// trailer lengths): for the whole output and a range across its middle, the pacer's rate is
/// a finite positive number and it never asks to wait forever.
fn pace(plan: &Plan) {
    use loomiere::throttle::{Pace, Pacer};
    use std::time::Duration;
    let len = plan.len();
    for range in [0..len, len / 3..len - len / 4] {
        let Some(p) = Pacer::for_output(1.5, 10.0, &plan.info, len, &range) else { continue };
        assert!(p.rate.is_finite() && p.rate > 0.0, "pacer rate {}", p.rate);
        for (sent, secs) in [(0, 0.0), (p.burst, 0.0), (p.burst, 1.0), (range.end - range.start, 3600.0)] {
            if let Pace::Wait(d) = p.next(sent, Duration::from_secs_f64(secs)) {
                assert!(d <= Duration::from_secs(1_000_000_000), "wait {d:?}");
            }
        }
    }
}

/// Reads the whole plan, then a slice across its middle, and checks they agree.
fn read_back(plan: &Plan) {
    let len = plan.len();
    if len > MAX_READ {
        return;
    }
    let Ok(whole) = sink::read_range(plan, 0..len) else { return };
    assert_eq!(whole.len() as u64, len, "read_range returned {} bytes of a {len}-byte plan", whole.len());
    let (a, b) = (len / 3, len - len / 4);
    if let Ok(part) = sink::read_range(plan, a..b) {
        assert_eq!(part.as_slice(), &whole[a as usize..b as usize], "slice {a}..{b} differs from the whole read");
    }
}
