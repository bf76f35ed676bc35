//! Hostile inputs on the stable toolchain: a deterministic mutation test that runs in
//! `cargo test`. Every seed file of the fuzz corpus (fuzz/corpus/{mp4,fmp4,flv}) is truncated at
//! many lengths, has its box/tag sizes, entry counts, versions and types overwritten with
//! awkward values (the sample descriptions `inspect` decodes too), and is mutated at random (fixed seed) a few thousand times; each variant
//! goes through the engine in-process with the fuzz harness (fuzz/fuzz_targets/harness.rs):
//! plan several requests, read every planned byte back; MP4s are also packaged for HLS/DASH
//! (segment index for three clips and its byte form, every playlist, MPD, init, media and
//! WebVTT segment, and segments planned from a forged index). A panic anywhere fails the test; an
//! input that makes no progress for a minute is reported as a hang.

mod common;
#[path = "../fuzz/fuzz_targets/harness.rs"]
mod harness;

use common::mp4_boxes;

use loomiere::media::Kind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Random mutants per seed file.
const RANDOM_PER_SEED: usize = 600;
/// A single input that makes no progress for this long is a hang (not a speed check).
const HANG: Duration = Duration::from_secs(60);

/// 32-bit values that break naive size and count arithmetic.
const AWKWARD: [u32; 12] = [0, 1, 2, 7, 8, 9, 16, 0xFF, 0xFFFF, 0x3FFF_FFFF, 0x7FFF_FFFF, 0xFFFF_FFFF];

/// One mutant: a label for failure reports and its bytes.
struct Mutant {
    label: String,
    data: Vec<u8>,
}

fn seeds(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus").join(kind);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no seeds in {}", dir.display());
    paths
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

/// A small deterministic generator (xorshift64*), so every run tries the same mutants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn put_u32(data: &mut [u8], at: usize, v: u32) {
    if let Some(dst) = data.get_mut(at..at + 4) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
}

fn put_u24(data: &mut [u8], at: usize, v: u32) {
    if let Some(dst) = data.get_mut(at..at + 3) {
        dst.copy_from_slice(&v.to_be_bytes()[1..]);
    }
}

// ---- structure: MP4 boxes and FLV tags ---------------------------------------------------------

/// Full boxes whose first field after version/flags is an entry count (`stsz`: after the
/// sample size), and boxes whose version switches 32/64-bit layouts.
const COUNTED: [&[u8; 4]; 10] =
    [b"stts", b"ctts", b"stss", b"stsc", b"stco", b"co64", b"elst", b"stsd", b"dref", b"trun"];
const VERSIONED: [&[u8; 4]; 6] = [b"mvhd", b"tkhd", b"mdhd", b"elst", b"ctts", b"tfdt"];

/// FLV tags: offset of each tag header (11 bytes: type, 24-bit data size, timestamp, stream).
fn flv_tags(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let Some(hdr) = data.get(5..9) else { return out };
    let mut pos = u32::from_be_bytes(hdr.try_into().unwrap()) as usize + 4;
    while pos + 11 <= data.len() {
        out.push(pos);
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        pos += 11 + size + 4;
    }
    out
}

// ---- mutants ---------------------------------------------------------------------------------

fn truncations(name: &str, data: &[u8], boundaries: &[usize], out: &mut Vec<Mutant>) {
    let step = (data.len() / 150).max(1);
    let mut lens: Vec<usize> = (0..data.len()).step_by(step).collect();
    for &b in boundaries {
        lens.extend([b.saturating_sub(1), b, b + 1, b + 8, b + 12, b + 16]);
    }
    lens.sort_unstable();
    lens.dedup();
    for len in lens.into_iter().filter(|&l| l < data.len()) {
        out.push(Mutant { label: format!("{name}: truncated to {len} bytes"), data: data[..len].to_vec() });
    }
}

fn mp4_structural(name: &str, data: &[u8], out: &mut Vec<Mutant>) {
    let boxes = mp4_boxes(data);
    let boundaries: Vec<usize> = boxes.iter().flat_map(|b| [b.offset, b.offset + b.size]).collect();
    truncations(name, data, &boundaries, out);
    let len = data.len() as u32;
    for b in &boxes {
        let t = String::from_utf8_lossy(&b.kind).into_owned();
        let size = b.size as u32;
        // Lying sizes, including a 64-bit size that points far away.
        for v in AWKWARD.iter().copied().chain([size.wrapping_sub(1), size.wrapping_add(1), len, len.wrapping_add(1)]) {
            let mut m = data.to_vec();
            put_u32(&mut m, b.offset, v);
            out.push(Mutant { label: format!("{name}: {t}@{} size := {v:#x}", b.offset), data: m });
        }
        for big in [u64::MAX, 1 << 40, (data.len() as u64) * 2] {
            let mut m = data.to_vec();
            put_u32(&mut m, b.offset, 1);
            m.splice(b.offset + 8..b.offset + 8, big.to_be_bytes());
            out.push(Mutant { label: format!("{name}: {t}@{} largesize := {big:#x}", b.offset), data: m });
        }
        // Counts.
        if COUNTED.contains(&&b.kind) || &b.kind == b"stsz" || &b.kind == b"stz2" {
            let at = b.offset + b.header + if &b.kind == b"stsz" || &b.kind == b"stz2" { 8 } else { 4 };
            for v in AWKWARD {
                let mut m = data.to_vec();
                put_u32(&mut m, at, v);
                out.push(Mutant { label: format!("{name}: {t}@{} count := {v:#x}", b.offset), data: m });
            }
            if &b.kind == b"stsz" {
                // A constant sample size that lies.
                for v in [1u32, 0xFFFF_FFFF] {
                    let mut m = data.to_vec();
                    put_u32(&mut m, b.offset + b.header + 4, v);
                    out.push(Mutant { label: format!("{name}: stsz@{} sample_size := {v:#x}", b.offset), data: m });
                }
            }
            // Garbage in the first entries of the table.
            for v in [0u32, 0xFFFF_FFFF, 0x8000_0000] {
                let mut m = data.to_vec();
                for k in 0..4 {
                    put_u32(&mut m, at + 4 + 4 * k, v);
                }
                out.push(Mutant { label: format!("{name}: {t}@{} entries := {v:#x}", b.offset), data: m });
            }
        }
        if VERSIONED.contains(&&b.kind) {
            for v in [1u8, 2, 0xFF] {
                let mut m = data.to_vec();
                if let Some(x) = m.get_mut(b.offset + b.header) {
                    *x = v;
                }
                out.push(Mutant { label: format!("{name}: {t}@{} version := {v}", b.offset), data: m });
            }
        }
        // Types swapped for others.
        for new in [b"moov", b"trak", b"mdat", b"free", b"co64", b"stco", b"moof", b"uuid"] {
            if &b.kind != new {
                let mut m = data.to_vec();
                m[b.offset + 4..b.offset + 8].copy_from_slice(new);
                out.push(Mutant {
                    label: format!("{name}: {t}@{} type := {}", b.offset, String::from_utf8_lossy(new)),
                    data: m,
                });
            }
        }
    }
    // The sample descriptions `inspect` reads (found by their type codes: the box walk does
    // not enter `stsd`): lying sizes and every byte of the codec configuration overwritten.
    for kind in [b"avc1", b"avcC", b"mp4a", b"esds", b"hvcC"] {
        let Some(at) = data.windows(4).position(|w| w == kind).and_then(|p| p.checked_sub(4)) else { continue };
        let t = String::from_utf8_lossy(kind).into_owned();
        let size = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        for v in AWKWARD.iter().copied().chain([size.wrapping_sub(1), size.wrapping_add(1)]) {
            let mut m = data.to_vec();
            put_u32(&mut m, at, v);
            out.push(Mutant { label: format!("{name}: {t}@{at} size := {v:#x}"), data: m });
        }
        let end = (at + size as usize).min(data.len()).min(at + 64);
        for i in at + 8..end {
            for v in [0u8, 0x1F, 0x80, 0xFF] {
                let mut m = data.to_vec();
                m[i] = v;
                out.push(Mutant { label: format!("{name}: {t}@{at} byte {} := {v:#x}", i - at), data: m });
            }
        }
    }
    // A duplicated moov.
    if let Some(moov) = boxes.iter().find(|b| &b.kind == b"moov") {
        let mut m = data.to_vec();
        m.extend_from_slice(&data[moov.offset..moov.offset + moov.size]);
        out.push(Mutant { label: format!("{name}: second moov appended"), data: m });
    }
}

/// Fragmented MP4: everything [`mp4_structural`] does, plus the fragment fields that steer
/// reads: `tfhd` flags and base offsets, `trun` flags and data offsets, `tfdt` values that go
/// back, fragments swapped (out of order) or dropped, `sidx` references that lie.
fn fmp4_structural(name: &str, data: &[u8], out: &mut Vec<Mutant>) {
    mp4_structural(name, data, out);
    let boxes = mp4_boxes(data);
    for b in &boxes {
        let t = String::from_utf8_lossy(&b.kind).into_owned();
        let body = b.offset + b.header;
        let mut set = |label: String, at: usize, v: u32| {
            let mut m = data.to_vec();
            put_u32(&mut m, at, v);
            out.push(Mutant { label: format!("{name}: {t}@{} {label} := {v:#x}", b.offset), data: m });
        };
        match &b.kind {
            b"tfhd" => {
                for v in [0, 0x01, 0x02_0000, 0x3b, 0x02_003a, 0x01_0000, 0x00FF_FFFF] {
                    set("flags".into(), body, v);
                }
                for v in [0, 2, 0xFFFF_FFFF] {
                    set("track_id".into(), body + 4, v);
                }
                for v in AWKWARD {
                    set("field 1".into(), body + 8, v);
                    set("field 2".into(), body + 12, v);
                }
            }
            b"trun" => {
                for v in [0, 0x001, 0x005, 0xF01, 0x0100_0F01, 0x0000_0201, 0x00FF_FFFF] {
                    set("flags".into(), body, v);
                }
                for v in AWKWARD.iter().copied().chain([(-8i32) as u32, (-100_000i32) as u32]) {
                    set("data_offset".into(), body + 8, v);
                }
            }
            b"tfdt" => {
                for v in [0, 1, 0x7FFF_FFFF, 0xFFFF_FFFF] {
                    set("time hi".into(), body + 4, v);
                    set("time lo".into(), body + 8, v);
                }
            }
            b"sidx" | b"tfra" | b"mehd" | b"trex" => {
                for at in (body..body + 28).step_by(4) {
                    for v in [0, 0xFFFF, 0xFFFF_FFFF] {
                        set(format!("word {}", at - body), at, v);
                    }
                }
            }
            _ => {}
        }
    }
    // Fragments (moof + mdat pairs) swapped, dropped and duplicated.
    let top: Vec<&common::BoxAt> = boxes.iter().filter(|b| &b.kind == b"moof").collect();
    if top.len() >= 2 {
        let (a, b) = (top[0], top[1]);
        let (a0, b0) = (a.offset, b.offset);
        let end = boxes.iter().find(|x| &x.kind == b"mdat" && x.offset > b0).map_or(data.len(), |m| m.offset + m.size);
        let mut m = data[..a0].to_vec();
        m.extend_from_slice(&data[b0..end]);
        m.extend_from_slice(&data[a0..b0]);
        m.extend_from_slice(&data[end..]);
        out.push(Mutant { label: format!("{name}: first two fragments swapped"), data: m });
        let mut m = data[..a0].to_vec();
        m.extend_from_slice(&data[b0..]);
        out.push(Mutant { label: format!("{name}: first fragment dropped"), data: m });
        let mut m = data.to_vec();
        m.extend_from_slice(&data[a0..b0]);
        out.push(Mutant { label: format!("{name}: first fragment appended again"), data: m });
    }
}

fn flv_structural(name: &str, data: &[u8], out: &mut Vec<Mutant>) {
    let tags = flv_tags(data);
    let boundaries: Vec<usize> = tags.iter().copied().chain([9, 13]).collect();
    truncations(name, data, &boundaries, out);
    for v in AWKWARD.iter().copied().chain([0, 8, 9, 10, data.len() as u32]) {
        let mut m = data.to_vec();
        put_u32(&mut m, 5, v);
        out.push(Mutant { label: format!("{name}: header data offset := {v:#x}"), data: m });
    }
    for flags in [0u8, 1, 4, 5, 0xFF] {
        let mut m = data.to_vec();
        if let Some(x) = m.get_mut(4) {
            *x = flags;
        }
        out.push(Mutant { label: format!("{name}: header flags := {flags:#x}"), data: m });
    }
    // Every tag of the first few, and a sample of the rest.
    for (i, &at) in tags.iter().enumerate().filter(|(i, _)| *i < 8 || i % 7 == 0) {
        for v in [0u32, 1, 5, 0xFF_FFFF, 0x7F_FFFF, data.len() as u32] {
            let mut m = data.to_vec();
            put_u24(&mut m, at + 1, v);
            out.push(Mutant { label: format!("{name}: tag {i}@{at} data size := {v:#x}"), data: m });
        }
        for ty in [0u8, 8, 9, 18, 0x20, 0xFF] {
            let mut m = data.to_vec();
            m[at] = ty;
            out.push(Mutant { label: format!("{name}: tag {i}@{at} type := {ty}"), data: m });
        }
        for ts in [0u32, 0xFF_FFFF] {
            let mut m = data.to_vec();
            put_u24(&mut m, at + 4, ts);
            if let Some(x) = m.get_mut(at + 7) {
                *x = 0xFF;
            }
            out.push(Mutant { label: format!("{name}: tag {i}@{at} timestamp := {ts:#x}ff"), data: m });
        }
        // The first payload bytes (codec id, AVC packet type, composition time, AMF type).
        for k in 0..5 {
            for v in [0u8, 0xFF] {
                let mut m = data.to_vec();
                if let Some(x) = m.get_mut(at + 11 + k) {
                    *x = v;
                }
                out.push(Mutant { label: format!("{name}: tag {i}@{at} payload[{k}] := {v:#x}"), data: m });
            }
        }
        // The previous-tag-size that follows the tag.
        let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
        for v in [0u32, 0xFFFF_FFFF] {
            let mut m = data.to_vec();
            put_u32(&mut m, at + 11 + size, v);
            out.push(Mutant { label: format!("{name}: tag {i}@{at} previous size := {v:#x}"), data: m });
        }
    }
}

fn random_mutants(name: &str, data: &[u8], seed: u64, out: &mut Vec<Mutant>) {
    let mut rng = Rng(seed | 1);
    for n in 0..RANDOM_PER_SEED {
        let mut m = data.to_vec();
        let ops = 1 + rng.below(4);
        for _ in 0..ops {
            let len = m.len();
            match rng.below(7) {
                0 if len > 0 => {
                    let at = rng.below(len);
                    m[at] ^= 1 << rng.below(8);
                }
                1 if len > 0 => {
                    let at = rng.below(len);
                    m[at] = rng.next() as u8;
                }
                2 if len >= 4 => {
                    let at = rng.below(len - 3);
                    put_u32(&mut m, at, AWKWARD[rng.below(AWKWARD.len())]);
                }
                3 if len > 0 => {
                    let at = rng.below(len);
                    let n = 1 + rng.below((len - at).min(512));
                    m.drain(at..at + n);
                }
                4 if len > 0 => {
                    let at = rng.below(len);
                    let n = 1 + rng.below((len - at).min(512));
                    let copy = m[at..at + n].to_vec();
                    let to = rng.below(len + 1);
                    m.splice(to..to, copy);
                }
                5 => {
                    let to = rng.below(len + 1);
                    let junk: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
                    m.splice(to..to, junk);
                }
                _ => {
                    let keep = rng.below(len + 1);
                    m.truncate(keep);
                }
            }
        }
        out.push(Mutant { label: format!("{name}: random mutant #{n} (seed {seed:#x})"), data: m });
    }
}

// ---- running ---------------------------------------------------------------------------------

/// Runs every mutant through the harness on a worker thread; fails on a panic (naming the
/// input) or when one input makes no progress for [`HANG`].
fn run_all(kind: Kind, mutants: Vec<Mutant>) {
    let total = mutants.len();
    let done = Arc::new(AtomicUsize::new(0));
    let current = Arc::new(Mutex::new(String::new()));
    let worker = {
        let (done, current) = (Arc::clone(&done), Arc::clone(&current));
        std::thread::Builder::new()
            .name("hostile-worker".into())
            .spawn(move || {
                for m in mutants {
                    *current.lock().unwrap() = m.label.clone();
                    harness::exercise(kind, &m.data);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap()
    };
    let mut last = (0, Instant::now());
    while !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        let now = done.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > HANG {
            panic!("hang: no progress for {HANG:?} on {:?} ({now}/{total} done)", current.lock().unwrap());
        }
    }
    if worker.join().is_err() {
        let label = current.lock().map(|l| l.clone()).unwrap_or_else(|p| p.into_inner().clone());
        panic!("the engine panicked on {label:?} (see the panic message above)");
    }
    assert_eq!(done.load(Ordering::Relaxed), total);
    eprintln!("{kind:?}: {total} hostile inputs, no panic");
}

fn mutants_for(dir: &str, structural: fn(&str, &[u8], &mut Vec<Mutant>)) -> Vec<Mutant> {
    let mut out = Vec::new();
    for (i, (name, data)) in seeds(dir).into_iter().enumerate() {
        out.push(Mutant { label: format!("{name}: as it is"), data: data.clone() });
        structural(&name, &data, &mut out);
        random_mutants(&name, &data, 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1), &mut out);
    }
    out
}

#[test]
fn hostile_mp4_never_panics() {
    let mutants = mutants_for("mp4", mp4_structural);
    assert!(mutants.len() > 2000, "only {} mutants", mutants.len());
    run_all(Kind::Mp4, mutants);
}

#[test]
fn hostile_fmp4_never_panics() {
    let mutants = mutants_for("fmp4", fmp4_structural);
    assert!(mutants.len() > 2000, "only {} mutants", mutants.len());
    run_all(Kind::Mp4, mutants);
}

#[test]
fn hostile_flv_never_panics() {
    let mutants = mutants_for("flv", flv_structural);
    assert!(mutants.len() > 2000, "only {} mutants", mutants.len());
    run_all(Kind::Flv, mutants);
}

#[test]
fn garbage_and_tiny_inputs_never_panic() {
    let mut mutants = Vec::new();
    let mut rng = Rng(42);
    for len in [0usize, 1, 4, 7, 8, 9, 12, 16, 100, 4096] {
        for pattern in [0u8, 0xFF] {
            mutants.push(Mutant { label: format!("{len} bytes of {pattern:#x}"), data: vec![pattern; len] });
        }
        let data = (0..len).map(|_| rng.next() as u8).collect();
        mutants.push(Mutant { label: format!("{len} random bytes"), data });
    }
    // Boxes that claim to be everything at once.
    for kind in [b"ftyp", b"moov", b"mdat", b"moof"] {
        for size in [0u32, 1, 8, 0xFFFF_FFFF] {
            let mut d = size.to_be_bytes().to_vec();
            d.extend_from_slice(kind);
            d.extend_from_slice(&[0xFF; 8]);
            mutants.push(Mutant { label: format!("lone {} size {size:#x}", String::from_utf8_lossy(kind)), data: d });
        }
    }
    // An FLV header alone, and one whose data offset points past the end.
    mutants.push(Mutant { label: "flv header only".into(), data: b"FLV\x01\x05\x00\x00\x00\x09".to_vec() });
    mutants
        .push(Mutant { label: "flv header, far offset".into(), data: b"FLV\x01\x05\xFF\xFF\xFF\xFF\0\0\0\0".to_vec() });
    let copy: Vec<Mutant> = mutants.iter().map(|m| Mutant { label: m.label.clone(), data: m.data.clone() }).collect();
    run_all(Kind::Mp4, mutants);
    run_all(Kind::Flv, copy);
}

/// Inputs the fuzzer once crashed on (fuzz/regressions/<kind>/), each run through the harness
/// as it is: they must stay fixed.
#[test]
fn fuzz_regressions_stay_fixed() {
    for (kind, dir) in [(Kind::Mp4, "mp4"), (Kind::Mp4, "fmp4"), (Kind::Flv, "flv")] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("regressions").join(dir);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.filter_map(|e| e.ok()) {
            let data = std::fs::read(e.path()).unwrap();
            harness::exercise(kind, &data);
        }
    }
}
