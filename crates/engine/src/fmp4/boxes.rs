//! The boxes of movie fragments, read over a buffer (a `moof` read with one `pread`, or the
//! `moov` for `trex`): `trex` (per-track defaults in `mvex`), `mehd`, `tfhd` (its optional
//! fields by flag, defaults falling back to `trex`), `tfdt` (v0/v1), `trun` (every flag
//! combination, v0 unsigned and v1 signed composition offsets). Every field read is bounded
//! by its box; a `trun`'s `sample_count × entry size` is checked against the box's bytes
//! before a sample is read, so a count that lies is an error, never a long loop.

use crate::mp4::boxes::{children, find, BoxHeader, ReadBe};
use crate::mp4::tables::body;
use crate::{Error, Result};

/// `tfhd` flags.
pub const TFHD_BASE_DATA_OFFSET: u32 = 0x01;
pub const TFHD_SAMPLE_DESCRIPTION: u32 = 0x02;
pub const TFHD_DEFAULT_DURATION: u32 = 0x08;
pub const TFHD_DEFAULT_SIZE: u32 = 0x10;
pub const TFHD_DEFAULT_FLAGS: u32 = 0x20;
pub const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x2_0000;

/// `trun` flags.
pub const TRUN_DATA_OFFSET: u32 = 0x001;
pub const TRUN_FIRST_FLAGS: u32 = 0x004;
pub const TRUN_DURATION: u32 = 0x100;
pub const TRUN_SIZE: u32 = 0x200;
pub const TRUN_FLAGS: u32 = 0x400;
pub const TRUN_CTO: u32 = 0x800;

/// A sample is not a sync sample when its flags say `sample_is_non_sync_sample` or
/// `sample_depends_on == 1` (as ffmpeg reads them).
pub fn is_sync(flags: u32) -> bool {
    flags & 0x0101_0000 == 0
}

/// Per-track defaults from `mvex`/`trex`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trex {
    pub track_id: u32,
    pub description: u32,
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
}

/// Every `trex` of a moov's `mvex` (none when there is no `mvex`).
pub fn trex_all(moov: &[u8], root: &BoxHeader) -> Result<Vec<Trex>> {
    let Some(mvex) = find(moov, root.body_start(), root.end(), b"mvex")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for h in children(moov, mvex.body_start(), mvex.end()) {
        let h = h?;
        if &h.kind != b"trex" {
            continue;
        }
        let b = body(moov, &h)?;
        let f = |at: usize| b.u32_at(at).ok_or_else(|| Error::corrupt(h.offset, "'trex' is too short"));
        out.push(Trex { track_id: f(4)?, description: f(8)?, duration: f(12)?, size: f(16)?, flags: f(20)? });
    }
    Ok(out)
}

/// A `tfhd` with its defaults resolved against the track's `trex`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tfhd {
    pub track_id: u32,
    pub flags: u32,
    /// The explicit `base_data_offset` and where its 8 bytes sit in the buffer.
    pub base_data_offset: Option<(u64, usize)>,
    pub description: u32,
    pub duration: u32,
    pub size: u32,
    pub sample_flags: u32,
}

/// Reads the track id of a `tfhd` (to find its `trex`).
pub fn tfhd_track_id(buf: &[u8], h: &BoxHeader) -> Result<u32> {
    body(buf, h)?.u32_at(4).ok_or_else(|| Error::corrupt(h.offset, "'tfhd' is too short"))
}

/// Reads a `tfhd`; absent defaults come from `trex`.
pub fn tfhd(buf: &[u8], h: &BoxHeader, trex: &Trex) -> Result<Tfhd> {
    let b = body(buf, h)?;
    let short = || Error::corrupt(h.offset, "'tfhd' is too short for its flags");
    let flags = b.u32_at(0).ok_or_else(short)? & 0x00FF_FFFF;
    let track_id = b.u32_at(4).ok_or_else(short)?;
    let mut at = 8usize;
    let mut t = Tfhd {
        track_id,
        flags,
        base_data_offset: None,
        description: trex.description,
        duration: trex.duration,
        size: trex.size,
        sample_flags: trex.flags,
    };
    if flags & TFHD_BASE_DATA_OFFSET != 0 {
        let v = b.u64_at(at).ok_or_else(short)?;
        t.base_data_offset = Some((v, h.body_start() as usize + at));
        at += 8;
    }
    let mut field = |bit: u32, slot: &mut u32| -> Result<()> {
        if flags & bit != 0 {
            *slot = b.u32_at(at).ok_or_else(short)?;
            at += 4;
        }
        Ok(())
    };
    field(TFHD_SAMPLE_DESCRIPTION, &mut t.description)?;
    field(TFHD_DEFAULT_DURATION, &mut t.duration)?;
    field(TFHD_DEFAULT_SIZE, &mut t.size)?;
    field(TFHD_DEFAULT_FLAGS, &mut t.sample_flags)?;
    Ok(t)
}

/// A `tfdt`: the decode time of the fragment's first sample of the track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tfdt {
    pub value: u64,
    /// Where the value sits in the buffer, and its width (4 or 8).
    pub at: usize,
    pub width: u8,
}

/// Reads a `tfdt`.
pub fn tfdt(buf: &[u8], h: &BoxHeader) -> Result<Tfdt> {
    let b = body(buf, h)?;
    let short = || Error::corrupt(h.offset, "'tfdt' is too short");
    let v = b.u8_at(0).ok_or_else(short)?;
    let at = h.body_start() as usize + 4;
    if v == 1 {
        Ok(Tfdt { value: b.u64_at(4).ok_or_else(short)?, at, width: 8 })
    } else {
        Ok(Tfdt { value: u64::from(b.u32_at(4).ok_or_else(short)?), at, width: 4 })
    }
}

/// One sample of a `trun`, defaults applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
    /// Composition offset (v0 unsigned, v1 signed; both fit an i64).
    pub cto: i64,
}

/// A `trun`: its header, and its sample entries as a view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trun {
    pub flags: u32,
    pub version: u8,
    pub count: u32,
    /// Where the `sample_count` field sits in the buffer.
    pub count_at: usize,
    /// The `data_offset` (relative to the base) and where its 4 bytes sit in the buffer.
    pub data_offset: Option<(i32, usize)>,
    pub first_flags: Option<u32>,
    /// Buffer offset of the first sample entry, and bytes per entry.
    pub entries_at: usize,
    pub entry_len: usize,
}

/// Reads a `trun` header and checks that its entries fit the box.
pub fn trun(buf: &[u8], h: &BoxHeader) -> Result<Trun> {
    let b = body(buf, h)?;
    let short = || Error::corrupt(h.offset, "'trun' is too short for its flags");
    let vf = b.u32_at(0).ok_or_else(short)?;
    let (version, flags) = ((vf >> 24) as u8, vf & 0x00FF_FFFF);
    let count = b.u32_at(4).ok_or_else(short)?;
    let mut at = 8usize;
    let mut data_offset = None;
    if flags & TRUN_DATA_OFFSET != 0 {
        let v = b.u32_at(at).ok_or_else(short)? as i32;
        data_offset = Some((v, h.body_start() as usize + at));
        at += 4;
    }
    let mut first_flags = None;
    if flags & TRUN_FIRST_FLAGS != 0 {
        first_flags = Some(b.u32_at(at).ok_or_else(short)?);
        at += 4;
    }
    let entry_len = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTO].iter().filter(|&&f| flags & f != 0).count() * 4;
    let need = (count as usize).checked_mul(entry_len).and_then(|n| n.checked_add(at));
    if need.is_none_or(|n| n > b.len()) {
        return Err(Error::corrupt(
            h.offset,
            format!(
                "'trun' claims {count} samples of {entry_len} bytes but holds {} bytes",
                b.len().saturating_sub(at)
            ),
        ));
    }
    Ok(Trun {
        flags,
        version,
        count,
        count_at: h.body_start() as usize + 4,
        data_offset,
        first_flags,
        entries_at: h.body_start() as usize + at,
        entry_len,
    })
}

impl Trun {
    /// Sample `i` (< `count`, checked by [`trun`]), with `tfhd`'s defaults.
    pub fn sample(&self, buf: &[u8], i: u32, d: &Tfhd) -> Sample {
        let mut at = self.entries_at + i as usize * self.entry_len;
        let mut next = |bit: u32| -> Option<u32> {
            if self.flags & bit == 0 {
                return None;
            }
            let v = buf.u32_at(at).unwrap_or(0);
            at += 4;
            Some(v)
        };
        let duration = next(TRUN_DURATION).unwrap_or(d.duration);
        let size = next(TRUN_SIZE).unwrap_or(d.size);
        let own_flags = next(TRUN_FLAGS);
        let cto = next(TRUN_CTO).map_or(0, |v| if self.version == 0 { i64::from(v) } else { i64::from(v as i32) });
        let flags = match (own_flags, self.first_flags) {
            (Some(f), _) => f,
            (None, Some(f)) if i == 0 => f,
            _ => d.sample_flags,
        };
        Sample { duration, size, flags, cto }
    }

    /// Sum of the sample sizes: the bytes of the run's data.
    pub fn data_len(&self, buf: &[u8], d: &Tfhd) -> u64 {
        if self.flags & TRUN_SIZE == 0 {
            return u64::from(self.count) * u64::from(d.size);
        }
        (0..self.count).map(|i| u64::from(self.sample(buf, i, d).size)).sum()
    }
}

/// The `fragment_duration` field of `mehd`: where it sits in the buffer and its width.
pub fn mehd_field(buf: &[u8], h: &BoxHeader) -> Result<(usize, usize)> {
    let b = body(buf, h)?;
    let v = b.u8_at(0).ok_or_else(|| Error::corrupt(h.offset, "'mehd' is too short"))?;
    let w = if v == 1 { 8 } else { 4 };
    if b.len() < 4 + w {
        return Err(Error::corrupt(h.offset, "'mehd' is too short"));
    }
    Ok((4, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn header(buf: &[u8]) -> BoxHeader {
        children(buf, 0, buf.len() as u64).next().unwrap().unwrap()
    }

    #[test]
    fn tfhd_defaults_and_fields() {
        let trex = Trex { track_id: 1, description: 1, duration: 512, size: 100, flags: 0x0101_0000 };
        let mut b = (TFHD_DEFAULT_DURATION | TFHD_BASE_DATA_OFFSET).to_be_bytes().to_vec();
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&4000u64.to_be_bytes());
        b.extend_from_slice(&1024u32.to_be_bytes());
        let buf = bx(b"tfhd", &b);
        let t = tfhd(&buf, &header(&buf), &trex).unwrap();
        assert_eq!(t.base_data_offset, Some((4000, 16)));
        assert_eq!((t.duration, t.size, t.sample_flags), (1024, 100, 0x0101_0000));
        // A flag without its field is an error.
        let buf = bx(b"tfhd", &[0, 0, 0, 0x3b, 0, 0, 0, 1]);
        assert!(tfhd(&buf, &header(&buf), &trex).is_err());
    }

    #[test]
    fn trun_fields_and_lying_count() {
        let flags = TRUN_DATA_OFFSET | TRUN_FIRST_FLAGS | TRUN_SIZE | TRUN_CTO;
        let mut b = (0x0100_0000 | flags).to_be_bytes().to_vec();
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&(-8i32).to_be_bytes());
        b.extend_from_slice(&0x0200_0000u32.to_be_bytes());
        for (size, cto) in [(10u32, -512i32), (20, 1024)] {
            b.extend_from_slice(&size.to_be_bytes());
            b.extend_from_slice(&cto.to_be_bytes());
        }
        let buf = bx(b"trun", &b);
        let r = trun(&buf, &header(&buf)).unwrap();
        let d = Tfhd { duration: 512, sample_flags: 0x0101_0000, ..Tfhd::default() };
        assert_eq!(r.data_offset.map(|d| d.0), Some(-8));
        let s0 = r.sample(&buf, 0, &d);
        let s1 = r.sample(&buf, 1, &d);
        assert_eq!((s0.size, s0.cto, s0.duration, is_sync(s0.flags)), (10, -512, 512, true));
        assert_eq!((s1.size, s1.cto, is_sync(s1.flags)), (20, 1024, false));
        assert_eq!(r.data_len(&buf, &d), 30);
        let mut lying = b.clone();
        lying[4..8].copy_from_slice(&0x4000_0000u32.to_be_bytes());
        let buf = bx(b"trun", &lying);
        assert!(matches!(trun(&buf, &header(&buf)), Err(Error::Corrupt { .. })));
    }
}
