//! Table transforms on hand-built movies: a synthetic MP4 whose samples each carry unique
//! bytes, with irregular `stsc` runs, several `stts`/`ctts` runs and sparse `stss`, is cut at
//! many points; the output is parsed back with loomiere's own readers and every kept sample is
//! checked for its bytes (so `stsc`/`stco`/`stsz` agree), its timing (`stts`/`ctts`) and its
//! sync flag (`stss`) against the source.

use super::track::Track;
use super::Movie;
use crate::media::Source;
use crate::request::{Position, Request};
use crate::sink::read_range;
use std::io::Write;

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

fn full(kind: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
    let mut b = vec![version, 0, 0, 0];
    b.extend_from_slice(body);
    bx(kind, &b)
}

fn u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn table(kind: &[u8; 4], width_words: usize, entries: &[u32]) -> Vec<u8> {
    let mut b = u32s(&[(entries.len() / width_words) as u32]);
    b.extend_from_slice(&u32s(entries));
    full(kind, 0, &b)
}

/// The synthetic movie's sample layout.
struct Spec {
    sizes: Vec<u32>,
    /// (count, duration)
    stts: Vec<u32>,
    /// (count, offset)
    ctts: Vec<u32>,
    /// 1-based sync samples
    stss: Vec<u32>,
    /// (first_chunk, samples_per_chunk, desc)
    stsc: Vec<u32>,
    chunks: usize,
    co64: bool,
}

fn spec(co64: bool) -> Spec {
    // 60 samples: chunks of 5, 5, 3, 3, 3, … (stsc: 1→5, 3→3, 9→4, 12→2)
    let stsc = vec![1, 5, 1, 3, 3, 1, 9, 4, 1, 12, 2, 1];
    // chunks 1-2: 10, 3-8: 18, 9-11: 12, 12-21: 20 → 60 samples with 21 chunks.
    let sizes = (0..60u32).map(|i| 7 + (i * 13) % 29).collect();
    Spec {
        sizes,
        stts: vec![10, 40, 25, 40, 5, 80, 20, 40],
        ctts: vec![1, 80, 2, 0, 7, 40, 50, 80],
        stss: vec![1, 11, 21, 31, 41, 51],
        stsc,
        chunks: 21,
        co64,
    }
}

/// Byte `k` of sample `i`.
fn sample_byte(i: usize, k: usize) -> u8 {
    (i * 31 + k * 7) as u8
}

/// Builds ftyp + mdat + moov (moov at the end) for `s`. Chunks are laid out in order with a
/// 3-byte gap between them (so a wrong offset shows).
fn build(s: &Spec) -> Vec<u8> {
    let ftyp = bx(b"ftyp", b"isom\0\0\0\x01isom");
    // Chunk → samples from stsc.
    let mut per_chunk = vec![0u32; s.chunks];
    for e in s.stsc.chunks(3) {
        let first = e[0] as usize - 1;
        for c in per_chunk.iter_mut().skip(first) {
            *c = e[1];
        }
    }
    let mut payload = Vec::new();
    let mut chunk_rel = Vec::new();
    let mut i = 0usize;
    for &n in &per_chunk {
        payload.extend_from_slice(&[0xEE; 3]);
        chunk_rel.push(payload.len() as u64);
        for _ in 0..n {
            for k in 0..s.sizes[i] as usize {
                payload.push(sample_byte(i, k));
            }
            i += 1;
        }
    }
    assert_eq!(i, s.sizes.len());
    let mdat_at = ftyp.len() as u64;
    let mdat = bx(b"mdat", &payload);
    let offsets: Vec<u64> = chunk_rel.iter().map(|r| mdat_at + 8 + r).collect();
    let stco = if s.co64 {
        let mut b = u32s(&[offsets.len() as u32]);
        for o in &offsets {
            b.extend_from_slice(&o.to_be_bytes());
        }
        full(b"co64", 0, &b)
    } else {
        table(b"stco", 1, &offsets.iter().map(|&o| o as u32).collect::<Vec<_>>())
    };
    let mut stsz = u32s(&[0, s.sizes.len() as u32]);
    stsz.extend_from_slice(&u32s(&s.sizes));
    let stsd = full(b"stsd", 0, &[&u32s(&[1])[..], &bx(b"avc1", &[0; 78])[..]].concat());
    let stbl = bx(
        b"stbl",
        &[
            stsd,
            table(b"stts", 2, &s.stts),
            table(b"ctts", 2, &s.ctts),
            table(b"stss", 1, &s.stss),
            table(b"stsc", 3, &s.stsc),
            full(b"stsz", 0, &stsz),
            stco,
        ]
        .concat(),
    );
    let total: u32 = s.stts.chunks(2).map(|e| e[0] * e[1]).sum();
    let mdhd = full(b"mdhd", 0, &u32s(&[0, 0, 1000, total, 0]));
    let hdlr = full(b"hdlr", 0, &[&u32s(&[0])[..], b"vide", &[0; 13]].concat());
    let minf = bx(b"minf", &stbl);
    let mdia = bx(b"mdia", &[mdhd, hdlr, minf].concat());
    let mut tkhd_body = u32s(&[0, 0, 1, 0, total]);
    tkhd_body.extend_from_slice(&[0; 60]);
    let tkhd = full(b"tkhd", 0, &tkhd_body);
    let elst = full(b"elst", 0, &u32s(&[1, total, 80, 0x0001_0000]));
    let trak = bx(b"trak", &[tkhd, bx(b"edts", &elst), mdia].concat());
    let mut mvhd_body = u32s(&[0, 0, 1000, total]);
    mvhd_body.extend_from_slice(&[0; 80]);
    let mvhd = full(b"mvhd", 0, &mvhd_body);
    let moov = bx(b"moov", &[mvhd, trak].concat());
    [ftyp, mdat, moov].concat()
}

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("loomiere-mp4-{}-{name}.mp4", std::process::id()));
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

/// Per-sample facts of a track: (bytes, dts, cts offset, sync).
fn samples(path: &std::path::Path) -> Vec<(Vec<u8>, u64, i64, bool)> {
    let movie = Movie::open(Source::open(path).unwrap()).unwrap();
    let data = std::fs::read(path).unwrap();
    let tracks = movie.tracks().unwrap();
    let t: &Track<'_> = &tracks[0];
    (0..t.samples)
        .map(|s| {
            let (off, size) = t.sample_location(s).unwrap();
            let bytes = data[off as usize..(off + size) as usize].to_vec();
            (bytes, t.dts(s), t.cts_offset(s), t.is_sync(s))
        })
        .collect()
}

fn check_cuts(co64_src: bool, force_co64: bool) {
    let s = spec(co64_src);
    let src = temp_file(&format!("src-{co64_src}-{force_co64}"), &build(&s));
    let source = samples(&src);
    assert_eq!(source.len(), 60);
    // Decode times: 10×40, 25×40, 5×80, 20×40 → total 2800 ms.
    for (start, end) in
        [(0.0, None), (0.39, None), (0.4, Some(1.0)), (0.95, Some(2.2)), (1.21, Some(1.35)), (2.0, None)]
    {
        let req = Request {
            start: Some(Position::Seconds(start)),
            end: end.map(Position::Seconds),
            force_co64,
            ..Request::default()
        };
        let plan = Movie::open(Source::open(&src).unwrap()).unwrap().plan(&req, "video/mp4").unwrap();
        let out_bytes = read_range(&plan, 0..plan.len()).unwrap();
        let out = temp_file(&format!("out-{co64_src}-{force_co64}-{start}"), &out_bytes);
        let got = samples(&out);
        assert!(!got.is_empty(), "start {start}: no samples");
        assert!(got[0].3, "start {start}: first sample is not a sync sample");
        // Find where the output starts in the source: its first sample's bytes.
        let s0 = source.iter().position(|x| x.0 == got[0].0).expect("first sample comes from the source");
        let dts0 = source[s0].1;
        for (j, g) in got.iter().enumerate() {
            let want = &source[s0 + j];
            assert_eq!(g.0, want.0, "start {start}: bytes of output sample {j}");
            assert_eq!(g.1 + dts0, want.1, "start {start}: dts of output sample {j}");
            assert_eq!(g.2, want.2, "start {start}: cts offset of output sample {j}");
            assert_eq!(g.3, want.3, "start {start}: sync flag of output sample {j}");
        }
        let has = |k: &[u8]| out_bytes.windows(4).any(|w| w == k);
        assert_eq!(has(b"co64"), co64_src || force_co64, "start {start}: co64 presence");
        let _ = std::fs::remove_file(out);
    }
    let _ = std::fs::remove_file(src);
}

#[test]
fn cuts_keep_every_sample_intact_stco() {
    check_cuts(false, false);
}

#[test]
fn cuts_keep_every_sample_intact_co64_source() {
    check_cuts(true, false);
}

#[test]
fn cuts_keep_every_sample_intact_forced_co64() {
    check_cuts(false, true);
}

#[test]
fn start_snaps_to_sync_sample_by_presentation_time() {
    let s = spec(false);
    let src = temp_file("snap", &build(&s));
    let movie = Movie::open(Source::open(&src).unwrap()).unwrap();
    let tracks = movie.tracks().unwrap();
    // Sample 10 (sync) decodes at 400 ms, shows at 400 + ctts − 80 (edit) = 320 + ctts.
    for (start, want) in [(0.0, 0), (0.5, 10), (0.9, 20), (2.5, 50)] {
        let st = super::seek::find_start(&tracks, 1000, start, false).unwrap();
        assert_eq!(st.sample, want, "start {start}");
    }
    // Sample 20 (sync, 40 ms frames) is shown at 800 ms: a start less than a frame before it
    // takes it, and the clip still begins at the requested time (the video waits); a start
    // 50 ms before it goes back to sample 10, and the clip begins where that one is shown.
    for (start, want, begins) in [(0.79, 20, 0.79), (0.77, 20, 0.77), (0.75, 10, 0.4)] {
        for exact in [false, true] {
            let st = super::seek::find_start(&tracks, 1000, start, exact).unwrap();
            assert_eq!(st.sample, want, "start {start}");
            let begins = if exact { f64::max(begins, start) } else { begins };
            assert!((st.time.secs() - begins).abs() < 1e-9, "start {start}: clip begins at {}", st.time.secs());
        }
    }
    let _ = std::fs::remove_file(src);
}

#[test]
fn a_source_without_a_local_file_plans_and_sends_the_same_bytes() {
    // What a remote object (no descriptor: the moov is read, never mapped; sinks read into
    // their scratch buffer) gets must equal what the local file gets.
    for co64 in [false, true] {
        let bytes = build(&spec(co64));
        let path = temp_file(&format!("remote-{co64}"), &bytes);
        let opts = crate::media::Options::for_path(&path).unwrap();
        for s in [0.0, 0.5, 1.5] {
            let req = Request { start: Some(Position::Seconds(s)), ..Request::default() };
            let local = crate::media::plan(Source::open(&path).unwrap(), &req, &opts).unwrap();
            let remote = crate::media::plan(Source::in_memory(bytes.clone()), &req, &opts).unwrap();
            assert!(remote.source().as_local_file().is_none());
            assert_eq!(read_range(&remote, 0..remote.len()).unwrap(), read_range(&local, 0..local.len()).unwrap());
        }
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn movie_cache_reuses_and_notices_replacement() {
    let cache = crate::media::MovieCache::new(2);
    let path = temp_file("cache", &build(&spec(false)));
    let req = Request { start: Some(Position::Seconds(1.0)), ..Request::default() };
    let a = cache.open(&path, &req).unwrap();
    let b = cache.open(&path, &req).unwrap();
    assert_eq!(read_range(&a, 0..a.len()).unwrap(), read_range(&b, 0..b.len()).unwrap());
    // Replace the file (new inode) with the co64 variant: the cache must not serve the old moov.
    let tmp = temp_file("cache-new", &build(&spec(true)));
    std::fs::rename(&tmp, &path).unwrap();
    let c = cache.open(&path, &req).unwrap();
    let bytes = read_range(&c, 0..c.len()).unwrap();
    assert!(bytes.windows(4).any(|w| w == b"co64"));
    let _ = std::fs::remove_file(path);
}

#[test]
fn movie_cache_remembers_recent_plans_per_request() {
    let cache = crate::media::MovieCache::new(2);
    let path = temp_file("plans", &build(&spec(false)));
    let at = |s: f64| Request { start: Some(Position::Seconds(s)), ..Request::default() };
    let fresh = |r: &Request| {
        let p = crate::media::open(&path, r).unwrap();
        read_range(&p, 0..p.len()).unwrap()
    };
    // More distinct requests than the memo holds, each asked twice, in an order that evicts:
    // every answer must equal a fresh plan for that request.
    let starts = [0.5, 1.0, 1.5, 2.0, 2.5, 0.5, 0.2, 1.0];
    for s in starts.iter().chain(starts.iter().rev()) {
        let r = at(*s);
        let p = cache.open(&path, &r).unwrap();
        assert_eq!(read_range(&p, 0..p.len()).unwrap(), fresh(&r), "start {s}");
    }
    let exact = Request { exact: true, ..at(1.0) };
    let p = cache.open(&path, &exact).unwrap();
    assert_eq!(read_range(&p, 0..p.len()).unwrap(), fresh(&exact));
    // A second name of the same file shares the movie, not the remembered answer's type.
    let audio = path.with_extension("m4a");
    let _ = std::fs::remove_file(&audio);
    std::fs::hard_link(&path, &audio).unwrap();
    assert_eq!(cache.open(&path, &exact).unwrap().info.content_type, "video/mp4");
    assert_eq!(cache.open(&audio, &exact).unwrap().info.content_type, "audio/mp4");
    let _ = std::fs::remove_file(audio);
    let _ = std::fs::remove_file(path);
}

#[test]
fn max_moov_bytes_refuses_a_larger_moov_before_planning() {
    // One request without and one through the cache (the CGI's and serve's paths): both
    // refuse a moov over the limit with an error a server answers 500 and logs.
    let dir = std::env::temp_dir().join(format!("loomiere-mp4-{}-limit", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("movie.mp4");
    std::fs::write(&path, build(&spec(true))).unwrap();
    let moov = Movie::open(Source::open(&path).unwrap()).unwrap().root.size;
    assert!(moov > 1024, "the synthetic moov ({moov} bytes) must exceed the configuration's floor");
    let cache = crate::media::MovieCache::new(2);
    let req = Request { start: Some(Position::Seconds(1.0)), ..Request::default() };
    for (limit, ok) in [(moov, true), (moov - 1, false)] {
        let opts = crate::media::Options { max_moov: limit, ..crate::media::Options::for_path(&path).unwrap() };
        let once = crate::media::plan(Source::open(&path).unwrap(), &req, &opts);
        let cached = cache.plan(&path, Source::open(&path).unwrap(), &req, &opts);
        assert_eq!((once.is_ok(), cached.is_ok()), (ok, ok), "limit {limit}, moov {moov}");
        if !ok {
            for e in [once.unwrap_err(), cached.unwrap_err()] {
                assert_eq!(e.http_status(), 500);
                assert!(e.to_string().contains("max_moov_bytes"), "{e}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn offsets_inside_never_wraps_across_4_gib() {
    let be32 = |v: &[u32]| v.iter().flat_map(|o| o.to_be_bytes()).collect::<Vec<u8>>();
    let be64 = |v: &[u64]| v.iter().flat_map(|o| o.to_be_bytes()).collect::<Vec<u8>>();
    // A range below 4 GiB: the 32-bit pass.
    assert!(super::offsets_inside(&be32(&[100, 150, 199]), 4, 100, 200));
    assert!(!super::offsets_inside(&be32(&[100, 200]), 4, 100, 200));
    assert!(!super::offsets_inside(&be32(&[99]), 4, 100, 200));
    assert!(!super::offsets_inside(&be32(&[u32::MAX]), 4, 100, 200));
    // A range across 4 GiB (an `stco` track beside a `co64` one): an offset below `start`
    // must not wrap into it.
    let (start, end) = (0xF000_0000, 0x1_1000_0000);
    assert!(!super::offsets_inside(&be32(&[0x0800_0000]), 4, start, end));
    assert!(super::offsets_inside(&be32(&[0xF000_0000, 0xFFFF_FFFF]), 4, start, end));
    assert!(super::offsets_inside(&be64(&[0xF000_0000, 0x1_0FFF_FFFF]), 8, start, end));
    assert!(!super::offsets_inside(&be64(&[0x1_1000_0000]), 8, start, end));
    assert!(!super::offsets_inside(&be64(&[0x0800_0000]), 8, start, end));
}

#[test]
fn movie_cache_inserts_once_under_concurrent_misses() {
    let path = temp_file("cache-race", &build(&spec(false)));
    for round in 0..20 {
        let cache = crate::media::MovieCache::new(8);
        let ready = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let req = Request { start: Some(Position::Seconds(1.0)), ..Request::default() };
                    ready.wait();
                    cache.open(&path, &req).unwrap();
                });
            }
        });
        assert_eq!(cache.len(), 1, "round {round}: one file, one entry");
    }
    let _ = std::fs::remove_file(path);
}

/// Whether this process holds a descriptor of a deleted file named `name`.
fn holds_deleted(name: &str) -> bool {
    std::fs::read_dir("/proc/self/fd").unwrap().flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|t| {
            let t = t.to_string_lossy();
            t.contains(name) && t.ends_with("(deleted)")
        })
    })
}

#[test]
fn movie_cache_lets_deleted_and_replaced_files_go() {
    let cache = crate::media::MovieCache::new(8);
    let req = Request { start: Some(Position::Seconds(1.0)), ..Request::default() };
    let gone = temp_file("cache-gone", &build(&spec(false)));
    let kept = temp_file("cache-kept", &build(&spec(false)));
    drop(cache.open(&gone, &req).unwrap());
    drop(cache.open(&kept, &req).unwrap());
    assert_eq!(cache.len(), 2);
    std::fs::remove_file(&gone).unwrap();
    assert!(holds_deleted("cache-gone"), "the cache holds the movie it opened");
    cache.sweep();
    assert_eq!(cache.len(), 1, "the deleted file is let go, the other kept");
    assert!(!holds_deleted("cache-gone"));
    // Replaced under the same name: the next lookup of that name drops the old version.
    let tmp = temp_file("cache-kept-new", &build(&spec(true)));
    std::fs::rename(&tmp, &kept).unwrap();
    assert!(holds_deleted("cache-kept"));
    drop(cache.open(&kept, &req).unwrap());
    assert_eq!(cache.len(), 1);
    assert!(!holds_deleted("cache-kept"), "the replaced version is closed");
    let _ = std::fs::remove_file(kept);
}
