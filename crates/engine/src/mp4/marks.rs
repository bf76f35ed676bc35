//! Seek marks: a sparse index over a movie's long sample tables, built by one scan, so that a
//! seek jumps to within `BLOCK` entries of its target instead of scanning from the first
//! entry. For each track: the first sample of every `BLOCK`-th `ctts` run and `stsc` entry
//! (for `stsc`, only as far as the table is consistent), and whether the chunk offsets never
//! decrease (then a cut checks its kept chunks by their two ends instead of one by one).
//!
//! Marks are small (8 bytes per 64 entries: about 20 KB for a 2-hour movie). `serve` keeps
//! them in memory with each cached movie; the CGI path, a process per request, keeps them in a
//! file per movie under the configured `index_cache` directory, written atomically by the
//! first request and checked (identity of the movie, checksum, sizes, monotony) by every later
//! one. Marks only let a scan start later; the entry-by-entry checks still run from there, and
//! a scan from any mark stays inside its table, so even a forged marks file can only give a
//! wrong cut, never a read out of bounds.

use super::tables::BLOCK;
use super::track::Track;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The marks of one track.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackMarks {
    /// `ctts[k]` = first sample of `ctts` entry `k × BLOCK` (empty without `ctts`).
    pub ctts: Vec<u64>,
    /// `stsc[k]` = first sample of `stsc` entry `k × BLOCK`.
    pub stsc: Vec<u64>,
    /// The chunk offsets never decrease.
    pub offsets_grow: bool,
}

/// The marks of every track of a movie, in moov order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    pub tracks: Vec<TrackMarks>,
}

/// What a marks file belongs to: the movie file (device, inode, length, modification and
/// status-change times in ns) and its moov (offset, size). A file replaced or rewritten in
/// place gets new marks: a write always moves the status-change time, even when the
/// modification time is set back afterwards (`rsync --inplace -t`, `touch -d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MovieKey {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: u64,
    pub ctime_ns: u64,
    pub moov_offset: u64,
    pub moov_size: u64,
}

/// The largest marks file read (a 10-hour movie's is well under 1 MB).
const MAX_FILE: u64 = 16 << 20;
const MAGIC: &[u8; 8] = b"LMMARKS2";

impl Marks {
    /// Builds the marks of `tracks` (one scan of their `ctts`, `stsc` and chunk offsets).
    pub fn build(tracks: &[Track<'_>]) -> Marks {
        Marks { tracks: tracks.iter().map(build_track).collect() }
    }

    /// The marks as bytes for a marks file.
    pub fn encode(&self, key: &MovieKey) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        for n in [key.dev, key.ino, key.len, key.mtime_ns, key.ctime_ns, key.moov_offset, key.moov_size] {
            v.extend_from_slice(&n.to_le_bytes());
        }
        v.extend_from_slice(&(self.tracks.len() as u32).to_le_bytes());
        for t in &self.tracks {
            v.push(u8::from(t.offsets_grow));
            v.extend_from_slice(&(t.ctts.len() as u32).to_le_bytes());
            v.extend_from_slice(&(t.stsc.len() as u32).to_le_bytes());
            for m in t.ctts.iter().chain(&t.stsc) {
                v.extend_from_slice(&m.to_le_bytes());
            }
        }
        let sum = checksum(&v);
        v.extend_from_slice(&sum.to_le_bytes());
        v
    }

    /// Reads a marks file's bytes: `None` unless it is whole (checksum), belongs to `key`,
    /// and fits `tracks` (one entry per track, as many marks as the tables allow,
    /// non-decreasing, each step no more than `BLOCK` entries can hold).
    pub fn decode(bytes: &[u8], key: &MovieKey, tracks: &[Track<'_>]) -> Option<Marks> {
        let (body, sum) = bytes.split_at(bytes.len().checked_sub(8)?);
        if checksum(body) != u64::from_le_bytes(sum.try_into().ok()?) {
            return None;
        }
        let mut r = Reader { buf: body, at: 0 };
        if r.take(8)? != MAGIC {
            return None;
        }
        let stored = MovieKey {
            dev: r.u64()?,
            ino: r.u64()?,
            len: r.u64()?,
            mtime_ns: r.u64()?,
            ctime_ns: r.u64()?,
            moov_offset: r.u64()?,
            moov_size: r.u64()?,
        };
        if stored != *key || r.u32()? as usize != tracks.len() {
            return None;
        }
        let mut out = Vec::with_capacity(tracks.len());
        for t in tracks {
            let offsets_grow = match r.take(1)?.first()? {
                0 => false,
                1 => true,
                _ => return None,
            };
            let (nc, ns) = (r.u32()? as usize, r.u32()? as usize);
            let want_ctts = t.ctts.map_or(0, |c| marks_for(c.len()));
            if nc != want_ctts || ns > marks_for(t.stsc.len()) {
                return None;
            }
            // A run table's sums use plain additions: a step is at most `BLOCK` counts, so no
            // sum from any mark can overflow. The stsc scan checks its additions.
            let ctts = r.marks(nc, BLOCK as u64 * u64::from(u32::MAX))?;
            let stsc = r.marks(ns, u64::MAX)?;
            out.push(TrackMarks { ctts, stsc, offsets_grow });
        }
        (r.at == body.len()).then_some(Marks { tracks: out })
    }
}

/// Marks for a table of `len` entries: one per `BLOCK` entries, the first at entry 0.
fn marks_for(len: usize) -> usize {
    len / BLOCK + 1
}

fn build_track(t: &Track<'_>) -> TrackMarks {
    let ctts = t.ctts.map_or_else(Vec::new, |c| {
        let mut marks = Vec::with_capacity(marks_for(c.len()));
        let mut first = 0u64;
        for (i, e) in c.entries.data.chunks_exact(8).enumerate() {
            if i.is_multiple_of(BLOCK) {
                marks.push(first);
            }
            first += u64::from(u32::from_be_bytes([e[0], e[1], e[2], e[3]]));
        }
        if c.len().is_multiple_of(BLOCK) {
            marks.push(first);
        }
        marks
    });
    TrackMarks { ctts, stsc: stsc_marks(t), offsets_grow: offsets_grow(t) }
}

/// The `stsc` marks, up to the first inconsistent entry (the same checks as the scan).
fn stsc_marks(t: &Track<'_>) -> Vec<u64> {
    let chunks = t.offsets.len() as u64;
    let table = &t.stsc;
    let mut marks = Vec::with_capacity(marks_for(table.len()));
    let mut first = 0u64;
    for i in 0..table.len() {
        if i.is_multiple_of(BLOCK) {
            marks.push(first);
        }
        let (fc, spc, _) = table.entry(i);
        let next_fc = (i + 1 < table.len()).then(|| u64::from(table.entry(i + 1).0));
        let Some((start, end)) = super::tables::stsc_span(u64::from(fc), next_fc, chunks) else { return marks };
        match (end - start).checked_mul(u64::from(spc)).and_then(|n| first.checked_add(n)) {
            Some(next) => first = next,
            None => return marks,
        }
    }
    if table.len().is_multiple_of(BLOCK) {
        marks.push(first);
    }
    marks
}

/// Whether the chunk offsets never decrease (one branch-free pass).
fn offsets_grow(t: &Track<'_>) -> bool {
    let e = &t.offsets.entries;
    if e.width == 8 {
        e.data
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .fold((true, 0u64), |(ok, prev), o| (ok & (o >= prev), o))
            .0
    } else {
        e.data
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .fold((true, 0u32), |(ok, prev), o| (ok & (o >= prev), o))
            .0
    }
}

/// A 64-bit checksum in the manner of FNV-1a, eight bytes a step (a marks file is read on
/// every CGI request, so byte-at-a-time hashing of 20 KB would show), then the tail bytes;
/// the length is mixed in first. It detects damage, not forgery.
pub fn checksum(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mix = |h: u64, v: u64| (h ^ v).wrapping_mul(PRIME).rotate_left(29);
    let mut h = mix(0xcbf2_9ce4_8422_2325, bytes.len() as u64);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        h = mix(h, u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
    }
    for &b in words.remainder() {
        h = mix(h, u64::from(b));
    }
    h
}

/// A bounds-checked little-endian reader.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// `n` marks: starting at 0, non-decreasing, each step at most `step_max`.
    fn marks(&mut self, n: usize, step_max: u64) -> Option<Vec<u64>> {
        let bytes = self.take(n.checked_mul(8)?)?;
        let v: Vec<u64> = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        let ok = v.first().is_none_or(|&m| m == 0) && v.windows(2).all(|w| w[1] >= w[0] && w[1] - w[0] <= step_max);
        ok.then_some(v)
    }
}

/// The marks file for `key` in `dir`: named by device and inode, so it needs no escaping.
pub fn file_for(dir: &Path, key: &MovieKey) -> PathBuf {
    dir.join(format!("{:x}-{:x}.marks", key.dev, key.ino))
}

/// Reads the marks for `key` from `dir`, if a valid file is there. Never follows a symlink,
/// never waits on a FIFO planted under the marks file's name (`O_NONBLOCK`; anything but a
/// regular file is then refused).
pub fn load(dir: &Path, key: &MovieKey, tracks: &[Track<'_>]) -> Option<Marks> {
    Marks::decode(&read_index_file(&file_for(dir, key), MAX_FILE)?, key, tracks)
}

/// The bytes of an index file of the index cache (seek marks, gathered moofs, segment
/// indexes), when it is a regular file of at most `max` bytes. Never follows a symlink, never
/// waits on a FIFO planted under its name (`O_NONBLOCK`; anything but a regular file is then
/// refused). The caller checks what it reads (identity, checksum) before trusting it.
pub(crate) fn read_index_file(path: &Path, max: u64) -> Option<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > max {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).ok()?);
    std::io::Read::read_to_end(&mut std::io::Read::take(&file, max), &mut bytes).ok()?;
    Some(bytes)
}

/// Writes an index file atomically: a new temporary file beside `path` (never through a
/// symlink), then a rename; a failure leaves nothing behind.
pub(crate) fn write_index_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("index");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        f.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Writes the marks for `key` into `dir` atomically (a new temporary file, then a rename);
/// any failure (no such directory, not writable) leaves nothing behind and is only reported.
pub fn store(dir: &Path, key: &MovieKey, marks: &Marks) -> std::io::Result<()> {
    write_index_file(&file_for(dir, key), &marks.encode(key))
}
