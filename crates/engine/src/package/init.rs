//! The CMAF initialisation segment of one track: `ftyp` (`iso6`, `cmfc`) and a `moov` with
//! the source's `mvhd`, one `trak` (its `tkhd`, `mdhd`, `hdlr`, media header and `dinf`
//! copied, durations set to 0; its `stsd` copied verbatim; empty `stts`/`stsc`/`stsz`/`stco`)
//! and `mvex`/`trex`. No edit list: the media segments' times are shifted instead (see
//! [`super::segments::TrackInfo`]). A few hundred bytes plus the sample description, built in
//! memory.

use crate::mp4::boxes::{children, find, BoxHeader};
use crate::mp4::track::{time_fields, tkhd_fields, Track};
use crate::mp4::Movie;
use crate::{Error, Result};

/// A box of `kind` around `body`.
pub fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 8);
    v.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

/// A full box (version, flags) of `kind` around `body`.
pub fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(body.len() + 4);
    b.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
    b.extend_from_slice(body);
    bx(kind, &b)
}

/// The bytes of box `h` of `moov`.
fn bytes_of<'m>(moov: &'m [u8], h: &BoxHeader) -> Result<&'m [u8]> {
    let s = usize::try_from(h.offset).ok();
    let e = usize::try_from(h.end()).ok();
    match (s, e) {
        (Some(s), Some(e)) if s <= e && e <= moov.len() => Ok(&moov[s..e]),
        _ => Err(Error::corrupt(h.offset, format!("'{}' lies outside moov", h.name()))),
    }
}

/// Box `h` copied with the `width`-byte field at body offset `at` set to zero.
fn zeroed(moov: &[u8], h: &BoxHeader, at: usize, width: usize) -> Result<Vec<u8>> {
    let mut v = bytes_of(moov, h)?.to_vec();
    let from = usize::try_from(h.header_len).unwrap_or(usize::MAX).saturating_add(at);
    let field = v
        .get_mut(from..from.saturating_add(width))
        .ok_or_else(|| Error::corrupt(h.offset, format!("'{}' is too short", h.name())))?;
    field.fill(0);
    Ok(v)
}

/// The `ftyp` of every initialisation segment.
pub fn ftyp() -> Vec<u8> {
    let mut b = b"iso6".to_vec();
    b.extend_from_slice(&0u32.to_be_bytes());
    for brand in [b"iso6", b"cmfc", b"mp41", b"dash"] {
        b.extend_from_slice(brand);
    }
    bx(b"ftyp", &b)
}

fn need(moov: &[u8], parent: &BoxHeader, kind: &[u8; 4]) -> Result<BoxHeader> {
    find(moov, parent.body_start(), parent.end(), kind)?.ok_or_else(|| {
        Error::corrupt(
            parent.offset,
            format!("'{}' has no '{}' box", parent.name(), crate::mp4::boxes::fourcc_name(kind)),
        )
    })
}

/// The `stsd` box of a track.
pub fn stsd_of(moov: &[u8], trak: &BoxHeader) -> Result<BoxHeader> {
    let mdia = need(moov, trak, b"mdia")?;
    let minf = need(moov, &mdia, b"minf")?;
    let stbl = need(moov, &minf, b"stbl")?;
    need(moov, &stbl, b"stsd")
}

/// The initialisation segment of track `t` of `movie`.
pub fn init_segment(movie: &Movie, t: &Track<'_>) -> Result<Vec<u8>> {
    let moov: &[u8] = &movie.moov;
    let root = movie.root;
    let mvhd = need(moov, &root, b"mvhd")?;
    let f = time_fields(moov, &mvhd)?;
    let mut body = zeroed(moov, &mvhd, f.duration_at, f.duration_width)?;
    body.extend(trak(moov, &t.trak)?);
    let trex = {
        let mut b = t.id.to_be_bytes().to_vec();
        for v in [1u32, 0, 0, 0] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        full(b"trex", 0, 0, &b)
    };
    body.extend(bx(b"mvex", &trex));
    let mut out = ftyp();
    out.extend(bx(b"moov", &body));
    Ok(out)
}

fn trak(moov: &[u8], trak: &BoxHeader) -> Result<Vec<u8>> {
    let tkhd = need(moov, trak, b"tkhd")?;
    let (_, dur_at, w) = tkhd_fields(moov, &tkhd)?;
    let mut body = zeroed(moov, &tkhd, dur_at, w)?;
    let mdia = need(moov, trak, b"mdia")?;
    let mut mdia_body = Vec::new();
    for h in children(moov, mdia.body_start(), mdia.end()) {
        let h = h?;
        match &h.kind {
            b"mdhd" => {
                let f = time_fields(moov, &h)?;
                mdia_body.extend(zeroed(moov, &h, f.duration_at, f.duration_width)?);
            }
            b"hdlr" => mdia_body.extend_from_slice(bytes_of(moov, &h)?),
            b"minf" => mdia_body.extend(minf(moov, &h)?),
            _ => {}
        }
    }
    body.extend(bx(b"mdia", &mdia_body));
    Ok(bx(b"trak", &body))
}

fn minf(moov: &[u8], minf: &BoxHeader) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut has_dinf = false;
    for h in children(moov, minf.body_start(), minf.end()) {
        let h = h?;
        match &h.kind {
            b"stbl" => {
                let stsd = need(moov, &h, b"stsd")?;
                let mut stbl = bytes_of(moov, &stsd)?.to_vec();
                let empty = 0u32.to_be_bytes();
                stbl.extend(full(b"stts", 0, 0, &empty));
                stbl.extend(full(b"stsc", 0, 0, &empty));
                stbl.extend(full(b"stsz", 0, 0, &[0; 8]));
                stbl.extend(full(b"stco", 0, 0, &empty));
                body.extend(bx(b"stbl", &stbl));
            }
            b"vmhd" | b"smhd" | b"nmhd" | b"sthd" | b"gmhd" => body.extend_from_slice(bytes_of(moov, &h)?),
            b"dinf" => {
                has_dinf = true;
                body.extend_from_slice(bytes_of(moov, &h)?);
            }
            _ => {}
        }
    }
    if !has_dinf {
        let url = full(b"url ", 0, 1, &[]);
        let mut dref = 1u32.to_be_bytes().to_vec();
        dref.extend(url);
        body.extend(bx(b"dinf", &full(b"dref", 0, 0, &dref)));
    }
    Ok(bx(b"minf", &body))
}
