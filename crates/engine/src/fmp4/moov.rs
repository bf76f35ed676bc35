//! The `moov` of a seeked fragmented MP4: the source's, with `mvhd`, `tkhd`, `mdhd` and
//! `mvex/mehd` durations patched and a new edit list per track (so that presentation starts
//! at zero, or at `start` exactly), everything else copied byte for byte (`mvex` kept). The
//! moov of a fragmented file is small (its sample tables are empty), so it is built in memory.
//! Also the small box-writing helpers the defragmenter shares.

use super::boxes::mehd_field;
use crate::mp4::boxes::{children, BoxHeader};
use crate::mp4::track::{time_fields, tkhd_fields};
use crate::{Error, Result};

/// One track's new timing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewEdit {
    /// Presentation delay (empty edit), movie timescale.
    pub delay: u64,
    /// Media time shown first, track timescale.
    pub media_time: i64,
    /// Presentation duration of the normal edit, movie timescale.
    pub shown: u64,
    /// Sum of the kept samples' durations, track timescale.
    pub media_duration: u64,
}

/// Opens a box: writes a placeholder size and the type, returns where it starts.
pub fn open(out: &mut Vec<u8>, kind: &[u8; 4]) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(kind);
    at
}

/// Closes a box opened at `at`: writes its size.
pub fn close(out: &mut [u8], at: usize) -> Result<()> {
    let size = u32::try_from(out.len() - at).map_err(|_| Error::Unsupported("a box would exceed 4 GiB".into()))?;
    out[at..at + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Copies a box of `src` as it is.
pub fn copy(out: &mut Vec<u8>, src: &[u8], h: &BoxHeader) -> Result<()> {
    let b = src
        .get(h.offset as usize..h.end() as usize)
        .ok_or_else(|| Error::corrupt(h.offset, format!("'{}' lies outside its parent", h.name())))?;
    out.extend_from_slice(b);
    Ok(())
}

/// Copies a box with the `width`-byte field at body offset `field_at` set to `value`.
pub fn patched(out: &mut Vec<u8>, src: &[u8], h: &BoxHeader, field_at: usize, width: usize, value: u64) -> Result<()> {
    let at = out.len() + h.header_len as usize + field_at;
    copy(out, src, h)?;
    let field = out.get_mut(at..at + width).ok_or_else(|| Error::corrupt(h.offset, "box is too short"))?;
    if width == 8 {
        field.copy_from_slice(&value.to_be_bytes());
    } else {
        field.copy_from_slice(&u32::try_from(value).unwrap_or(u32::MAX).to_be_bytes());
    }
    Ok(())
}

/// An `edts` with an optional empty edit and one normal edit.
pub fn edts(out: &mut Vec<u8>, delay: u64, media_time: i64, shown: u64) -> Result<()> {
    let wide = shown > u64::from(u32::MAX) || delay > u64::from(u32::MAX) || media_time > i64::from(i32::MAX);
    let mut entries: Vec<(u64, i64)> = Vec::new();
    if delay > 0 {
        entries.push((delay, -1));
    }
    entries.push((shown, media_time));
    let e = open(out, b"edts");
    let l = open(out, b"elst");
    out.extend_from_slice(&[u8::from(wide), 0, 0, 0]);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (dur, mt) in entries {
        if wide {
            out.extend_from_slice(&dur.to_be_bytes());
            out.extend_from_slice(&mt.to_be_bytes());
        } else {
            out.extend_from_slice(&(dur as u32).to_be_bytes());
            out.extend_from_slice(&(mt as i32).to_be_bytes());
        }
        out.extend_from_slice(&[0, 1, 0, 0]);
    }
    close(out, l)?;
    close(out, e)
}

/// The new moov of a seek. `edits[i]` belongs to the i-th `trak`.
pub fn seek_moov(moov: &[u8], root: &BoxHeader, edits: &[NewEdit], movie_duration: u64) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(moov.len() + 64);
    let m = open(&mut out, b"moov");
    let mut i = 0;
    for h in children(moov, root.body_start(), root.end()) {
        let h = h?;
        match &h.kind {
            b"mvhd" => {
                let f = time_fields(moov, &h)?;
                patched(&mut out, moov, &h, f.duration_at, f.duration_width, movie_duration)?;
            }
            b"trak" => {
                let e = edits.get(i).ok_or_else(|| Error::corrupt(h.offset, "unexpected 'trak'"))?;
                i += 1;
                trak(&mut out, moov, &h, e)?;
            }
            b"mvex" => {
                let x = open(&mut out, b"mvex");
                for c in children(moov, h.body_start(), h.end()) {
                    let c = c?;
                    if &c.kind == b"mehd" {
                        let (at, w) = mehd_field(moov, &c)?;
                        patched(&mut out, moov, &c, at, w, movie_duration)?;
                    } else {
                        copy(&mut out, moov, &c)?;
                    }
                }
                close(&mut out, x)?;
            }
            _ => copy(&mut out, moov, &h)?,
        }
    }
    close(&mut out, m)?;
    Ok(out)
}

fn trak(out: &mut Vec<u8>, moov: &[u8], trak: &BoxHeader, e: &NewEdit) -> Result<()> {
    let t = open(out, b"trak");
    for h in children(moov, trak.body_start(), trak.end()) {
        let h = h?;
        match &h.kind {
            b"tkhd" => {
                let (_, at, w) = tkhd_fields(moov, &h)?;
                patched(out, moov, &h, at, w, e.delay.saturating_add(e.shown))?;
                edts(out, e.delay, e.media_time, e.shown)?;
            }
            b"edts" => {}
            b"mdia" => {
                let m = open(out, b"mdia");
                for c in children(moov, h.body_start(), h.end()) {
                    let c = c?;
                    if &c.kind == b"mdhd" {
                        let f = time_fields(moov, &c)?;
                        patched(out, moov, &c, f.duration_at, f.duration_width, e.media_duration)?;
                    } else {
                        copy(out, moov, &c)?;
                    }
                }
                close(out, m)?;
            }
            _ => copy(out, moov, &h)?,
        }
    }
    close(out, t)
}
