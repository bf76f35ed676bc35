//! A CMAF media segment of one track as a plan: `styp`, `moof` (`mfhd`; `traf` with `tfhd`
//! default-base-is-moof, `tfdt` version 1, `trun` with data offset and per-sample duration,
//! size, flags and — when the track has `ctts` — composition offsets in version 1 (signed),
//! shifted so that none is negative)
//! and the `mdat` header, synthesised; then the samples as byte ranges of the source,
//! consecutive samples coalesced into one range. No sample byte passes through user space.
//!
//! The samples are walked from the table positions the segment index recorded, so a
//! segment costs the same wherever it lies in the movie.

use super::init::{bx, full};
use super::segments::{Cell, SegmentIndex, Walk};
use crate::mp4::track::Track;
use crate::mp4::Movie;
use crate::plan::{Bytes, Piece, Plan};
use crate::{Error, Result};
use std::sync::Arc;

/// The most samples one media segment may hold (its `trun` is built in memory: 16 bytes
/// each).
pub const MAX_SAMPLES: u64 = 500_000;

/// `sample_flags` of a sync sample: depends on no other (`sample_depends_on` = 2).
const SYNC: u32 = 0x0200_0000;
/// `sample_flags` of another sample: depends on others, `sample_is_non_sync_sample`.
const NON_SYNC: u32 = 0x0101_0000;

const STYP_LEN: u64 = 24;

/// Bytes of the `trun` entry of one sample.
fn entry_width(with_cts: bool) -> u64 {
    if with_cts {
        16
    } else {
        12
    }
}

/// Length of `styp` + `moof` for `samples` samples.
fn moof_end(samples: u64, with_cts: bool) -> u64 {
    // moof 8 + mfhd 16 + traf 8 + tfhd 16 + tfdt 20 + trun 20 + entries.
    (STYP_LEN + 8 + 16 + 8 + 16 + 20 + 20).saturating_add(samples.saturating_mul(entry_width(with_cts)))
}

fn mdat_header_len(bytes: u64) -> u64 {
    if bytes.saturating_add(8) > u64::from(u32::MAX) {
        16
    } else {
        8
    }
}

/// Bytes before the first sample's data in media segment (`styp`, `moof`, `mdat` header).
pub fn header_len(with_cts: bool, c: &Cell) -> u64 {
    moof_end(c.s1.saturating_sub(c.s0), with_cts).saturating_add(mdat_header_len(c.bytes))
}

/// The media segment `n` (0-based) of packaged track `k`.
pub fn plan_segment(movie: &Movie, tracks: &[Track<'_>], index: &SegmentIndex, k: usize, n: usize) -> Result<Plan> {
    let info = index.tracks.get(k).ok_or_else(|| Error::NotFound(format!("no packaged track {k}")))?;
    let c = index.cell(n, k).ok_or_else(|| Error::NotFound(format!("no segment {}", n + 1)))?;
    let t = tracks.get(info.index).ok_or_else(|| Error::corrupt(0, "segment index does not fit the movie"))?;
    if t.id != info.id || c.s1 < c.s0 || c.s1 > t.samples {
        return Err(Error::corrupt(t.trak.offset, "segment index does not fit the movie"));
    }
    let samples = c.s1 - c.s0;
    if samples > MAX_SAMPLES {
        return Err(Error::Unsupported(format!(
            "segment {} of track {} holds {samples} samples, over the limit of {MAX_SAMPLES}",
            n + 1,
            t.id
        )));
    }
    let with_cts = info.with_cts;
    let data_start = moof_end(samples, with_cts) + mdat_header_len(c.bytes);
    let mut entries = Vec::with_capacity((samples * entry_width(with_cts)) as usize);
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut walk = Walk::at(t, c);
    let mut sync_i = t.stss.map(|s| s.first_index_at_or_after(c.s0));
    let mut at_chunk: Option<(u64, u64)> = None; // chunk, next sample's offset in it
    let mut bytes = 0u64;
    let bad = |what: &str| Error::corrupt(t.trak.offset, format!("track {}: {what}", t.id));
    for s in c.s0..c.s1 {
        let (_, duration) = walk.dts(s).ok_or_else(|| bad("'stts' does not cover every sample"))?;
        let size = t.sizes.get(usize::try_from(s).unwrap_or(usize::MAX));
        let sync = match (&t.stss, &mut sync_i) {
            (Some(stss), Some(i)) => {
                while *i < stss.len() && stss.get(*i) < s {
                    *i += 1;
                }
                *i < stss.len() && stss.get(*i) == s
            }
            _ => true,
        };
        let (chunk, chunk_first) = walk.chunk(s).ok_or_else(|| bad("'stsc' does not cover every sample"))?;
        let offset = match at_chunk {
            Some((ch, next)) if ch == chunk => next,
            _ => {
                let base = t.offsets.get(usize::try_from(chunk).unwrap_or(usize::MAX));
                base.checked_add(t.sizes.sum(chunk_first, s)).ok_or_else(|| bad("chunk offset overflows"))?
            }
        };
        let end = offset.checked_add(u64::from(size)).ok_or_else(|| bad("chunk offset overflows"))?;
        if end > movie.src.len {
            return Err(Error::corrupt(end, "sample data runs past the end of the file (is it truncated?)"));
        }
        at_chunk = Some((chunk, end));
        match ranges.last_mut() {
            Some(r) if r.1 == offset => r.1 = end,
            _ => ranges.push((offset, end)),
        }
        bytes += u64::from(size);
        entries.extend_from_slice(&duration.to_be_bytes());
        entries.extend_from_slice(&size.to_be_bytes());
        entries.extend_from_slice(&(if sync { SYNC } else { NON_SYNC }).to_be_bytes());
        if with_cts {
            let cts = i128::from(walk.cts(s)) - i128::from(info.cts_shift);
            // Never negative (the shift is the track's smallest offset), and signed in `trun`
            // version 1.
            let cts = u32::try_from(cts)
                .ok()
                .and_then(|c| i32::try_from(c).ok())
                .ok_or_else(|| bad("composition offset out of range"))?;
            entries.extend_from_slice(&cts.to_be_bytes());
        }
    }
    if bytes != c.bytes {
        return Err(bad("segment index does not fit the sample sizes"));
    }
    // styp
    let mut head = {
        let mut b = b"msdh".to_vec();
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(b"msdhmsix");
        bx(b"styp", &b)
    };
    let mfhd = full(b"mfhd", 0, 0, &(n as u32 + 1).to_be_bytes());
    let tfhd = full(b"tfhd", 0, 0x02_0000, &t.id.to_be_bytes());
    let tfdt = full(b"tfdt", 1, 0, &index.tfdt(k, c).to_be_bytes());
    let data_offset = i32::try_from(data_start - STYP_LEN).map_err(|_| bad("segment header too large"))?;
    let mut trun_body = (samples as u32).to_be_bytes().to_vec();
    trun_body.extend_from_slice(&data_offset.to_be_bytes());
    trun_body.extend(entries);
    let flags = 0x0001 | 0x0100 | 0x0200 | 0x0400 | if with_cts { 0x0800 } else { 0 };
    let trun = full(b"trun", u8::from(with_cts), flags, &trun_body);
    let mut traf = tfhd;
    traf.extend(tfdt);
    traf.extend(trun);
    let mut moof = mfhd;
    moof.extend(bx(b"traf", &traf));
    head.extend(bx(b"moof", &moof));
    if mdat_header_len(bytes) == 16 {
        head.extend_from_slice(&1u32.to_be_bytes());
        head.extend_from_slice(b"mdat");
        head.extend_from_slice(&(bytes + 16).to_be_bytes());
    } else {
        head.extend_from_slice(&((bytes + 8) as u32).to_be_bytes());
        head.extend_from_slice(b"mdat");
    }
    debug_assert_eq!(head.len() as u64, data_start);
    let mut info_out = movie.src.info("video/mp4");
    info_out.header_len = head.len() as u64;
    info_out.duration = Some(c.duration as f64 / f64::from(t.mdhd.timescale.max(1)));
    let mut pieces = Vec::with_capacity(ranges.len() + 1);
    pieces.push(Piece::Synth(Arc::new(Bytes(head))));
    pieces.extend(ranges.into_iter().map(|(a, b)| Piece::Source { offset: a, len: b - a }));
    Plan::new(movie.src.clone(), pieces, info_out)
}
