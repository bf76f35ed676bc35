//! Sample tables as views over the mapped `moov` bytes: `stts`, `ctts` and `sbgp` (runs),
//! `stss` (sync samples), `stsc` (sample-to-chunk), `stsz`/`stz2` (sizes), `stco`/`co64`
//! (chunk offsets). Nothing is copied or allocated per entry: a table is a slice and a count,
//! and its constructor checks `count × entry size ≤ bytes in the box` before anything else,
//! so a hostile count can neither overrun the box nor make loomiere allocate.

use super::boxes::{BoxHeader, ReadBe};
use crate::{Error, Result};

/// The entries of a table box: the byte slice they occupy and where it starts in `moov`.
#[derive(Clone, Copy, Debug)]
pub struct Entries<'a> {
    /// Exactly `count × width` bytes.
    pub data: &'a [u8],
    /// Offset of `data` in the moov buffer.
    pub moov_off: usize,
    /// Number of entries.
    pub count: usize,
    /// Bytes per entry.
    pub width: usize,
}

impl<'a> Entries<'a> {
    /// Reads a table whose entry count is the `u32` at body offset `count_at`, entries starting
    /// right after it. `moov` is the whole moov buffer, `h` the box (offsets in `moov`).
    pub fn parse(moov: &'a [u8], h: &BoxHeader, count_at: usize, width: usize) -> Result<Entries<'a>> {
        let body = body(moov, h)?;
        let count = body
            .u32_at(count_at)
            .ok_or_else(|| Error::corrupt(h.offset, format!("'{}' is too short for its entry count", h.name())))?
            as usize;
        let start = count_at + 4;
        Entries::at(moov, h, start, count, width)
    }

    /// A table of `count` entries of `width` bytes at body offset `start`.
    pub fn at(moov: &'a [u8], h: &BoxHeader, start: usize, count: usize, width: usize) -> Result<Entries<'a>> {
        let body = body(moov, h)?;
        let need = count.checked_mul(width).and_then(|n| n.checked_add(start));
        match need {
            Some(n) if n <= body.len() => {}
            _ => {
                return Err(Error::corrupt(
                    h.offset,
                    format!("'{}' claims {count} entries, more than its {} bytes hold", h.name(), body.len()),
                ))
            }
        }
        let moov_off = h.body_start() as usize + start;
        Ok(Entries { data: &body[start..start + count * width], moov_off, count, width })
    }

    /// The `u32` at byte `field` of entry `i` (0 when out of range; callers index within
    /// `count`, which the constructor validated).
    pub fn u32(&self, i: usize, field: usize) -> u32 {
        self.data.u32_at(i * self.width + field).unwrap_or(0)
    }

    /// The `u64` at byte `field` of entry `i`.
    pub fn u64(&self, i: usize, field: usize) -> u64 {
        self.data.u64_at(i * self.width + field).unwrap_or(0)
    }
}

/// The payload of box `h` inside `moov`.
pub fn body<'a>(moov: &'a [u8], h: &BoxHeader) -> Result<&'a [u8]> {
    let s = usize::try_from(h.body_start()).ok();
    let e = usize::try_from(h.end()).ok();
    match (s, e) {
        (Some(s), Some(e)) if s <= e && e <= moov.len() => Ok(&moov[s..e]),
        _ => Err(Error::corrupt(h.offset, format!("'{}' lies outside moov", h.name()))),
    }
}

/// Entries per block in the skip scans of `Runs` and `SampleToChunk`, and between two seek
/// marks.
pub const BLOCK: usize = 64;

/// Where a forward scan from entry `i` (first sample `first`) towards sample `s` may resume:
/// the last mark at or before `s`, when it lies beyond `i`. `marks[k]` is the first sample of
/// entry `k × BLOCK`; marks are non-decreasing and checked when loaded (see `marks`), and a
/// scan from any mark stays within the table, so wrong marks give wrong positions, never a
/// read out of bounds.
fn jump(marks: &[u64], i: usize, first: u64, s: u64) -> (usize, u64) {
    let k = marks.partition_point(|&m| m <= s);
    match k.checked_sub(1).and_then(|k| Some((k.checked_mul(BLOCK)?, *marks.get(k)?))) {
        Some((at, m)) if at > i => (at, m),
        _ => (i, first),
    }
}

/// Sum of the big-endian `u32` counts that open each 8-byte entry of `data` (run tables).
fn count_sum(data: &[u8]) -> u64 {
    data.chunks_exact(8).map(|e| u64::from(u32::from_be_bytes([e[0], e[1], e[2], e[3]]))).sum()
}

/// The 0-based chunks `start..end` of an `stsc` entry whose first chunk (1-based) is `fc`,
/// followed by an entry starting at `next_fc` (`None`: the last entry, which runs to the
/// track's `chunks`). `None` when the entry is inconsistent: a first chunk of 0, first chunks
/// going backwards, or chunks past the chunk-offset table. The one rule every `stsc` walk
/// applies (the block sum below is its branch-free form).
pub fn stsc_span(fc: u64, next_fc: Option<u64>, chunks: u64) -> Option<(u64, u64)> {
    let start = fc.checked_sub(1)?;
    let end = next_fc.map_or(chunks, |n| n.saturating_sub(1));
    (start <= end && end <= chunks).then_some((start, end))
}

/// Samples described by the first `BLOCK` entries of `block` (`BLOCK + 1` stsc entries: the
/// last one only gives the end chunk), and whether every one of them is consistent. When it is,
/// the sum cannot overflow: the chunk spans add up to at most `chunks` (< 2^32) and each is
/// multiplied by a `u32`.
fn stsc_block_sum(block: &[u8], chunks: u64) -> (u64, bool) {
    let be = |at: usize| block.get(at..at + 4).map_or(0, |b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])));
    let mut n = 0u64;
    let mut ok = true;
    for k in 0..BLOCK {
        let (fc, spc, next) = (be(k * 12), be(k * 12 + 4), be(k * 12 + 12));
        ok &= fc >= 1 && next >= fc && next - 1 <= chunks;
        n = n.wrapping_add(next.wrapping_sub(fc).wrapping_mul(spc));
    }
    (n, ok && block.len() >= (BLOCK + 1) * 12)
}

/// A run-length table of (sample count, value) pairs: `stts` (value = duration), `ctts`
/// (value = composition offset), `sbgp` (value = group description index).
#[derive(Clone, Copy, Debug)]
pub struct Runs<'a> {
    pub entries: Entries<'a>,
    /// Seek marks (see `marks`): the first sample of every `BLOCK`-th entry; empty when
    /// none were attached, and then scans start at the first entry.
    pub marks: &'a [u64],
}

/// Where a sample falls in a run table: the entry index and the position within the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunPos {
    pub entry: usize,
    pub within: u64,
}

impl<'a> Runs<'a> {
    /// A run table without seek marks.
    pub fn new(entries: Entries<'a>) -> Runs<'a> {
        Runs { entries, marks: &[] }
    }

    /// Entry `i` as (count, value).
    pub fn entry(&self, i: usize) -> (u32, u32) {
        (self.entries.u32(i, 0), self.entries.u32(i, 4))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.count
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.count == 0
    }

    /// Total samples covered.
    pub fn total(&self) -> u64 {
        count_sum(self.entries.data)
    }

    /// The run holding sample `s` (0-based), or `None` past the end.
    pub fn locate(&self, s: u64) -> Option<RunPos> {
        self.scan(0, 0, s).ok()
    }

    /// The runs holding samples `a` ≤ `b`, found in one forward scan.
    pub fn locate_pair(&self, a: u64, b: u64) -> (Option<RunPos>, Option<RunPos>) {
        match self.scan(0, 0, a) {
            Err(_) => (None, None),
            Ok(p) => (Some(p), self.scan(p.entry, a - p.within, b.max(a)).ok()),
        }
    }

    /// Like [`Runs::locate_pair`], but `b` past the table's end is clamped to its last sample:
    /// returns the runs of `a` and of `min(b, total − 1)`, and that sample + 1.
    pub fn locate_clamped(&self, a: u64, b: u64) -> Option<(RunPos, RunPos, u64)> {
        let p0 = self.scan(0, 0, a).ok()?;
        match self.scan(p0.entry, a - p0.within, b.max(a)) {
            Ok(p1) => Some((p0, p1, b.max(a).saturating_add(1))),
            Err(total) => {
                // The last sample is in the last run with a non-zero count.
                let last = (0..self.len()).rev().find(|&i| self.entry(i).0 > 0)?;
                let p1 = RunPos { entry: last, within: u64::from(self.entry(last).0) - 1 };
                Some((p0, p1, total))
            }
        }
    }

    /// From entry `i`, whose first sample is `first`, forward to the run holding sample `s`:
    /// whole blocks of entries are skipped by their count sums (a tight loop the compiler
    /// vectorises), then the block holding `s` is walked entry by entry. `Err(total)` past
    /// the end.
    fn scan(&self, mut i: usize, mut first: u64, s: u64) -> std::result::Result<RunPos, u64> {
        (i, first) = jump(self.marks, i, first, s);
        let data = self.entries.data;
        while let Some(block) = data.get(i * 8..(i + BLOCK) * 8) {
            let n = count_sum(block);
            if s < first + n {
                break;
            }
            first += n;
            i += BLOCK;
        }
        while i < self.len() {
            let n = u64::from(self.entries.u32(i, 0));
            if s < first + n {
                return Ok(RunPos { entry: i, within: s - first });
            }
            first += n;
            i += 1;
        }
        Err(first)
    }

    /// The values of samples `s`, `s + 1`, … (one scan to find `s`, then entry by entry).
    pub fn values_from(&self, s: u64) -> impl Iterator<Item = u32> + '_ {
        let start = self.locate(s);
        let (mut entry, mut within) = start.map_or((self.len(), 0), |p| (p.entry, p.within));
        std::iter::from_fn(move || {
            while entry < self.len() {
                let (n, v) = self.entry(entry);
                if within < u64::from(n) {
                    within += 1;
                    return Some(v);
                }
                entry += 1;
                within = 0;
            }
            None
        })
    }

    /// The value for sample `s` (0 past the end).
    pub fn value_of(&self, s: u64) -> u32 {
        self.locate(s).map(|p| self.entry(p.entry).1).unwrap_or(0)
    }

    /// Time-to-sample: decode time of sample `s` (sum of the durations before it).
    pub fn time_of(&self, s: u64) -> u64 {
        let mut t = 0u64;
        let mut first = 0u64;
        for i in 0..self.len() {
            let (n, d) = self.entry(i);
            let n = u64::from(n);
            if s < first + n {
                return t.saturating_add((s - first).saturating_mul(u64::from(d)));
            }
            t = t.saturating_add(n.saturating_mul(u64::from(d)));
            first += n;
        }
        t
    }

    /// Time-to-sample: the last sample (< `limit`) whose decode time is ≤ `t`, or 0.
    pub fn sample_at(&self, t: u64, limit: u64) -> u64 {
        let mut time = 0u64;
        let mut first = 0u64;
        for i in 0..self.len() {
            let (n, d) = self.entry(i);
            let n = u64::from(n);
            let span = n.saturating_mul(u64::from(d));
            if d > 0 && t < time.saturating_add(span) {
                let s = first + (t - time) / u64::from(d);
                return s.min(limit.saturating_sub(1));
            }
            time = time.saturating_add(span);
            first += n;
            if first >= limit {
                break;
            }
        }
        limit.saturating_sub(1)
    }

    /// Time-to-sample: the first sample whose decode time is ≥ `t` (may be `limit`): one past
    /// the last sample at or before `t − 1`.
    pub fn first_at_or_after(&self, t: u64, limit: u64) -> u64 {
        match t.checked_sub(1) {
            None => 0,
            Some(before) if self.time_of(limit) <= before => limit,
            Some(before) => (self.sample_at(before, limit) + 1).min(limit),
        }
    }

    /// Sum of the values × counts for samples `s0..s1` (decode duration for `stts`).
    pub fn sum(&self, s0: u64, s1: u64) -> u64 {
        self.time_of(s1).saturating_sub(self.time_of(s0))
    }
}

/// `stss`: 1-based sync sample numbers in increasing order.
#[derive(Clone, Copy, Debug)]
pub struct SyncSamples<'a> {
    pub entries: Entries<'a>,
}

impl<'a> SyncSamples<'a> {
    /// Sync sample `i` as a 0-based sample index.
    pub fn get(&self, i: usize) -> u64 {
        u64::from(self.entries.u32(i, 0)).saturating_sub(1)
    }

    /// Number of sync samples.
    pub fn len(&self) -> usize {
        self.entries.count
    }

    /// True when no sample is a sync sample.
    pub fn is_empty(&self) -> bool {
        self.entries.count == 0
    }

    /// Index (into the table) of the first entry whose sample is ≥ `s` (binary search).
    pub fn first_index_at_or_after(&self, s: u64) -> usize {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid) < s {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The last sync sample ≤ `s`, if any.
    pub fn at_or_before(&self, s: u64) -> Option<u64> {
        let i = self.first_index_at_or_after(s.saturating_add(1));
        i.checked_sub(1).map(|i| self.get(i))
    }
}

/// `stsc` entries: (first chunk, 1-based; samples per chunk; sample description index).
#[derive(Clone, Copy, Debug)]
pub struct SampleToChunk<'a> {
    pub entries: Entries<'a>,
    /// Seek marks: the first sample of every `BLOCK`-th entry, as far as the entries before
    /// it are consistent; empty when none were attached.
    pub marks: &'a [u64],
}

/// Where a sample sits: its chunk (0-based), the chunk's first sample, and the stsc entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkPos {
    pub chunk: u64,
    pub first_sample: u64,
    pub samples_per_chunk: u32,
    pub desc: u32,
    pub entry: usize,
}

impl<'a> SampleToChunk<'a> {
    /// A sample-to-chunk table without seek marks.
    pub fn new(entries: Entries<'a>) -> SampleToChunk<'a> {
        SampleToChunk { entries, marks: &[] }
    }

    /// Entry `i` as (first_chunk, samples_per_chunk, description index).
    pub fn entry(&self, i: usize) -> (u32, u32, u32) {
        (self.entries.u32(i, 0), self.entries.u32(i, 4), self.entries.u32(i, 8))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.count
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.count == 0
    }

    /// The chunk holding sample `s`, given the number of chunks (from `stco`).
    pub fn locate(&self, s: u64, chunks: u64) -> Option<ChunkPos> {
        self.locate_pair(s, s, chunks).0
    }

    /// The chunks holding samples `a` ≤ `b`, found in one forward scan of the table.
    pub fn locate_pair(&self, a: u64, b: u64, chunks: u64) -> (Option<ChunkPos>, Option<ChunkPos>) {
        match self.scan(0, 0, a, chunks) {
            None => (None, None),
            Some(p) => {
                let from = p.entry;
                let first = p.first_sample - (p.chunk - self.first_chunk(from)) * u64::from(p.samples_per_chunk);
                (Some(p), self.scan(from, first, b.max(a), chunks))
            }
        }
    }

    /// 0-based first chunk of entry `i`.
    fn first_chunk(&self, i: usize) -> u64 {
        u64::from(self.entries.u32(i, 0)).saturating_sub(1)
    }

    /// From entry `i`, whose first sample is `first`, forward to the chunk holding sample `s`.
    /// Whole blocks of entries are skipped by their sample sums when every entry in them is
    /// consistent (first chunks ≥ 1, not decreasing, within `chunks`); otherwise the walk goes
    /// entry by entry and stops at the first inconsistent one (`None`, as past the end).
    fn scan(&self, mut i: usize, mut first: u64, s: u64, chunks: u64) -> Option<ChunkPos> {
        (i, first) = jump(self.marks, i, first, s);
        let data = self.entries.data;
        // A block needs the entry after it (its end chunk), hence `BLOCK + 1` entries.
        while let Some(block) = data.get(i * 12..(i + BLOCK + 1) * 12) {
            let (n, ok) = stsc_block_sum(block, chunks);
            match first.checked_add(n) {
                Some(next) if ok && s >= next => {
                    first = next;
                    i += BLOCK;
                }
                _ => break,
            }
        }
        let be = |e: &[u8], at: usize| u64::from(u32::from_be_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]));
        let mut entries = data.get(i * 12..)?.chunks_exact(12).enumerate().peekable();
        while let Some((k, e)) = entries.next() {
            let (fc, spc) = (be(e, 0), be(e, 4));
            let (start, end) = stsc_span(fc, entries.peek().map(|(_, next)| be(next, 0)), chunks)?;
            let next = (end - start).checked_mul(spc).and_then(|n| first.checked_add(n))?;
            if spc > 0 && s < next {
                let k_in = (s - first) / spc;
                return Some(ChunkPos {
                    chunk: start + k_in,
                    first_sample: first + k_in * spc,
                    samples_per_chunk: spc as u32,
                    desc: be(e, 8) as u32,
                    entry: i + k,
                });
            }
            first = next;
        }
        None
    }

    /// Total samples described, given the number of chunks; `None` if the table is inconsistent
    /// (first chunks not increasing, or beyond the chunk count).
    pub fn total(&self, chunks: u64) -> Option<u64> {
        let mut total = 0u64;
        for i in 0..self.len() {
            let (fc, spc, _) = self.entry(i);
            let next_fc = (i + 1 < self.len()).then(|| u64::from(self.entry(i + 1).0));
            let (start, end) = stsc_span(u64::from(fc), next_fc, chunks)?;
            total = total.checked_add((end - start).checked_mul(u64::from(spc))?)?;
        }
        Some(total)
    }

    /// Samples per chunk and description index of chunk `chunk0` (0-based).
    pub fn locate_chunk(&self, chunk0: u64) -> Option<(u32, u32)> {
        let i = self.first_entry_after(chunk0.checked_add(1)?).checked_sub(1)?;
        let (_, spc, desc) = self.entry(i);
        Some((spc, desc))
    }

    /// Index of the first entry whose first chunk (1-based) is > `chunk1` (binary search;
    /// entries are increasing once `total` has checked them).
    pub fn first_entry_after(&self, chunk1: u64) -> usize {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if u64::from(self.entry(mid).0) <= chunk1 {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// `stsz` or `stz2`: sample sizes.
#[derive(Clone, Copy, Debug)]
pub enum SampleSizes<'a> {
    /// Every sample has the same size.
    Constant { size: u32, count: usize },
    /// `stsz` with a table (width 4) or `stz2` with 8/16-bit fields (width 1/2).
    Table(Entries<'a>),
    /// `stz2` with 4-bit fields: `count` nibbles in `data`.
    Nibbles { data: &'a [u8], count: usize },
}

impl<'a> SampleSizes<'a> {
    /// Reads `stsz` (`compact` = false) or `stz2`.
    pub fn parse(moov: &'a [u8], h: &BoxHeader, compact: bool) -> Result<SampleSizes<'a>> {
        let b = body(moov, h)?;
        let short = || Error::corrupt(h.offset, format!("'{}' is too short", h.name()));
        if !compact {
            let size = b.u32_at(4).ok_or_else(short)?;
            let count = b.u32_at(8).ok_or_else(short)? as usize;
            if size != 0 {
                return Ok(SampleSizes::Constant { size, count });
            }
            return Ok(SampleSizes::Table(Entries::at(moov, h, 12, count, 4)?));
        }
        let field = b.u8_at(7).ok_or_else(short)?;
        let count = b.u32_at(8).ok_or_else(short)? as usize;
        match field {
            4 => {
                let bytes = count.div_ceil(2);
                let data = b.get(12..12usize.checked_add(bytes).ok_or_else(short)?).ok_or_else(|| {
                    Error::corrupt(h.offset, format!("'stz2' claims {count} entries, more than its bytes hold"))
                })?;
                Ok(SampleSizes::Nibbles { data, count })
            }
            8 => Ok(SampleSizes::Table(Entries::at(moov, h, 12, count, 1)?)),
            16 => Ok(SampleSizes::Table(Entries::at(moov, h, 12, count, 2)?)),
            f => Err(Error::corrupt(h.offset, format!("'stz2' field size {f} is not 4, 8 or 16"))),
        }
    }

    /// Number of samples.
    pub fn count(&self) -> usize {
        match self {
            SampleSizes::Constant { count, .. } | SampleSizes::Nibbles { count, .. } => *count,
            SampleSizes::Table(e) => e.count,
        }
    }

    /// Size of sample `i` (0 out of range).
    pub fn get(&self, i: usize) -> u32 {
        match self {
            SampleSizes::Constant { size, count } => {
                if i < *count {
                    *size
                } else {
                    0
                }
            }
            SampleSizes::Table(e) => match e.width {
                1 => u32::from(e.data.u8_at(i).unwrap_or(0)),
                2 => u32::from(e.data.u16_at(i * 2).unwrap_or(0)),
                _ => e.u32(i, 0),
            },
            SampleSizes::Nibbles { data, count } => {
                if i >= *count {
                    return 0;
                }
                let b = data.get(i / 2).copied().unwrap_or(0);
                u32::from(if i.is_multiple_of(2) { b >> 4 } else { b & 0x0f })
            }
        }
    }

    /// Sum of sizes of samples `a..b`.
    pub fn sum(&self, a: u64, b: u64) -> u64 {
        match self {
            SampleSizes::Constant { size, .. } => b.saturating_sub(a).saturating_mul(u64::from(*size)),
            _ => (a..b).map(|i| u64::from(self.get(i as usize))).sum(),
        }
    }
}

/// `stco` (32-bit) or `co64` (64-bit) chunk offsets.
#[derive(Clone, Copy, Debug)]
pub struct ChunkOffsets<'a> {
    pub entries: Entries<'a>,
}

impl<'a> ChunkOffsets<'a> {
    /// Offset of chunk `i` (0-based).
    pub fn get(&self, i: usize) -> u64 {
        if self.entries.width == 8 {
            self.entries.u64(i, 0)
        } else {
            u64::from(self.entries.u32(i, 0))
        }
    }

    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.entries.count
    }

    /// True when there are no chunks.
    pub fn is_empty(&self) -> bool {
        self.entries.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A moov buffer holding one full box `kind` with `body`, and its header.
    fn table(kind: &[u8; 4], body: Vec<u8>) -> (Vec<u8>, BoxHeader) {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(&body);
        let h = BoxHeader { kind: *kind, offset: 0, header_len: 8, size: v.len() as u64 };
        (v, h)
    }

    fn u32s(vals: &[u32]) -> Vec<u8> {
        vals.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    #[test]
    fn stts_time_queries() {
        // 3 samples of 10, then 2 of 20: times 0 10 20 30 50, end 70.
        let (buf, h) = table(b"stts", u32s(&[0, 2, 3, 10, 2, 20]));
        let r = Runs::new(Entries::parse(&buf, &h, 4, 8).unwrap());
        assert_eq!(r.total(), 5);
        assert_eq!(r.time_of(3), 30);
        assert_eq!(r.time_of(5), 70);
        assert_eq!(r.sample_at(29, 5), 2);
        assert_eq!(r.sample_at(30, 5), 3);
        assert_eq!(r.sample_at(1000, 5), 4);
        assert_eq!(r.first_at_or_after(30, 5), 3);
        assert_eq!(r.first_at_or_after(31, 5), 4);
        assert_eq!(r.first_at_or_after(71, 5), 5);
        assert_eq!(r.sum(1, 4), 40);
        assert_eq!(r.locate(4), Some(RunPos { entry: 1, within: 1 }));
        assert_eq!(r.values_from(1).collect::<Vec<_>>(), vec![10, 10, 20, 20]);
        assert_eq!(r.values_from(9).count(), 0);
    }

    #[test]
    fn hostile_count_is_rejected() {
        let (buf, h) = table(b"stts", u32s(&[0, 0x4000_0000, 1, 1]));
        assert!(Entries::parse(&buf, &h, 4, 8).is_err());
        let (buf, h) = table(b"stsz", u32s(&[0, 0, u32::MAX]));
        assert!(SampleSizes::parse(&buf, &h, false).is_err());
    }

    #[test]
    fn stss_search() {
        let (buf, h) = table(b"stss", u32s(&[0, 3, 1, 51, 101]));
        let s = SyncSamples { entries: Entries::parse(&buf, &h, 4, 4).unwrap() };
        assert_eq!(s.at_or_before(0), Some(0));
        assert_eq!(s.at_or_before(49), Some(0));
        assert_eq!(s.at_or_before(50), Some(50));
        assert_eq!(s.at_or_before(1000), Some(100));
        assert_eq!(s.first_index_at_or_after(51), 2);
    }

    #[test]
    fn stsc_locate() {
        // chunks 1-2: 3 samples, chunk 3..: 2 samples; 5 chunks → 3+3+2+2+2 = 12 samples.
        let (buf, h) = table(b"stsc", u32s(&[0, 2, 1, 3, 1, 3, 2, 1]));
        let t = SampleToChunk::new(Entries::parse(&buf, &h, 4, 12).unwrap());
        assert_eq!(t.total(5), Some(12));
        let p = t.locate(7, 5).unwrap();
        assert_eq!((p.chunk, p.first_sample, p.samples_per_chunk), (2, 6, 2));
        assert!(t.locate(12, 5).is_none());
        assert_eq!(t.first_entry_after(2), 1);
        assert_eq!(t.first_entry_after(3), 2);
        // Decreasing first chunks are inconsistent.
        let (buf, h) = table(b"stsc", u32s(&[0, 2, 3, 3, 1, 1, 2, 1]));
        let t = SampleToChunk::new(Entries::parse(&buf, &h, 4, 12).unwrap());
        assert_eq!(t.total(5), None);
    }

    #[test]
    fn stz2_nibbles() {
        let mut body = u32s(&[0, 4, 3]);
        body.extend_from_slice(&[0x12, 0x30]);
        let (buf, h) = table(b"stz2", body);
        let s = SampleSizes::parse(&buf, &h, true).unwrap();
        assert_eq!((s.get(0), s.get(1), s.get(2), s.get(3)), (1, 2, 3, 0));
        assert_eq!(s.sum(0, 3), 6);
    }

    /// A small deterministic generator (xorshift) for the scan cross-checks.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    /// The plain entry-by-entry walk the block scans must agree with.
    fn runs_reference(r: &Runs<'_>, s: u64) -> Option<RunPos> {
        let mut first = 0u64;
        for i in 0..r.len() {
            let n = u64::from(r.entry(i).0);
            if s < first + n {
                return Some(RunPos { entry: i, within: s - first });
            }
            first += n;
        }
        None
    }

    fn stsc_reference(t: &SampleToChunk<'_>, s: u64, chunks: u64) -> Option<ChunkPos> {
        let mut first = 0u64;
        for i in 0..t.len() {
            let (fc, spc, desc) = t.entry(i);
            let start = u64::from(fc).checked_sub(1)?;
            let end = if i + 1 < t.len() { u64::from(t.entry(i + 1).0).saturating_sub(1) } else { chunks };
            if end < start || end > chunks {
                return None;
            }
            let next = (end - start).checked_mul(u64::from(spc)).and_then(|n| first.checked_add(n))?;
            if spc > 0 && s < next {
                let k = (s - first) / u64::from(spc);
                return Some(ChunkPos {
                    chunk: start + k,
                    first_sample: first + k * u64::from(spc),
                    samples_per_chunk: spc,
                    desc,
                    entry: i,
                });
            }
            first = next;
        }
        None
    }

    #[test]
    fn block_scans_agree_with_the_plain_walk() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let n = rng.below(600) as usize;
            // Runs: counts mostly small, some zero, some huge (hostile).
            let mut body = vec![0u32, n as u32];
            for _ in 0..n {
                let c = match rng.below(10) {
                    0 => 0,
                    1 => u32::MAX - rng.below(3) as u32,
                    _ => rng.below(4) as u32 + 1,
                };
                body.extend([c, rng.next() as u32]);
            }
            let (buf, h) = table(b"ctts", u32s(&body));
            let r = Runs::new(Entries::parse(&buf, &h, 4, 8).unwrap());
            let total = r.total();
            for _ in 0..40 {
                let a = rng.below(total.min(5000) + 10);
                let b = a + rng.below(3000);
                assert_eq!(r.locate(a), runs_reference(&r, a), "round {round} a={a}");
                let want = runs_reference(&r, a).map(|p| (p, runs_reference(&r, b)));
                let got = r.locate_pair(a, b);
                assert_eq!((got.0, got.1), want.map_or((None, None), |(p, q)| (Some(p), q)), "round {round}");
                if let Some((p0, p1, end)) = r.locate_clamped(a, b) {
                    assert_eq!(Some(p0), runs_reference(&r, a));
                    let last = b.min(total - 1);
                    assert_eq!(Some(p1), runs_reference(&r, last), "round {round} b={b}");
                    assert_eq!(end, last + 1);
                } else {
                    assert!(a >= total);
                }
            }
            // stsc: first chunks increasing with occasional faults (zero, decreasing, past the end).
            let chunks = rng.below(5000) + 1;
            let m = rng.below(400) as usize;
            let mut body = vec![0u32, m as u32];
            let mut fc = 1u64;
            for _ in 0..m {
                let f = match rng.below(200) {
                    0 => 0,
                    1 => fc.saturating_sub(2),
                    2 => chunks + 5,
                    _ => fc,
                };
                body.extend([f as u32, rng.below(5) as u32, 1 + rng.below(2) as u32]);
                fc += rng.below(20);
            }
            let (buf, h) = table(b"stsc", u32s(&body));
            let t = SampleToChunk::new(Entries::parse(&buf, &h, 4, 12).unwrap());
            for _ in 0..40 {
                let a = rng.below(20_000);
                let b = a + rng.below(20_000);
                let want_a = stsc_reference(&t, a, chunks);
                let (ga, gb) = t.locate_pair(a, b, chunks);
                assert_eq!(ga, want_a, "round {round} a={a}");
                if want_a.is_some() {
                    assert_eq!(gb, stsc_reference(&t, b, chunks), "round {round} b={b}");
                }
            }
        }
    }
}
