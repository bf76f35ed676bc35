//! The ISO box header walk. Top-level boxes are read from the file with `pread` (the file's
//! first 4 KiB at once, then 16 bytes per box beyond it; the media data is never touched);
//! boxes inside `moov` are walked over the `moov` bytes. Every size is checked against its parent's end before anything is read: a
//! box that claims to run past its parent or the file is an error naming its offset.

use crate::source::Source;
use crate::{Error, Result};

/// A box's four-character type.
pub type FourCc = [u8; 4];

/// A box header: where the box is, how long its header is, how long the whole box is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxHeader {
    /// The type, e.g. `*b"moov"`.
    pub kind: FourCc,
    /// Offset of the box's first byte (in the file, or in the buffer being walked).
    pub offset: u64,
    /// 8, or 16 for a 64-bit `largesize` box.
    pub header_len: u64,
    /// The whole box's size, header included.
    pub size: u64,
}

impl BoxHeader {
    /// Offset of the first payload byte.
    pub fn body_start(&self) -> u64 {
        self.offset + self.header_len
    }
    /// Offset one past the box's last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.size
    }
    /// Payload length.
    pub fn body_len(&self) -> u64 {
        self.size - self.header_len
    }
    /// The type as text, for messages (`moov`, or escaped bytes).
    pub fn name(&self) -> String {
        fourcc_name(&self.kind)
    }
}

/// A four-character code as printable text.
pub fn fourcc_name(k: &FourCc) -> String {
    k.iter()
        .map(|&b| if b.is_ascii_graphic() || b == b' ' { (b as char).to_string() } else { format!("\\x{b:02x}") })
        .collect()
}

/// Decodes the header of a box starting at `at` of a buffer whose box region ends at `limit`
/// (the parent's end). `first16` are the bytes at `at` (fewer near the end).
fn decode(first16: &[u8], at: u64, limit: u64) -> Result<BoxHeader> {
    if first16.len() < 8 || limit.saturating_sub(at) < 8 {
        return Err(Error::corrupt(at, "truncated box header"));
    }
    let size32 = u32::from_be_bytes([first16[0], first16[1], first16[2], first16[3]]);
    let kind = [first16[4], first16[5], first16[6], first16[7]];
    let (header_len, size) = match size32 {
        0 => (8, limit - at),
        1 => {
            if first16.len() < 16 || limit - at < 16 {
                return Err(Error::corrupt(at, format!("truncated 64-bit size of box '{}'", fourcc_name(&kind))));
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&first16[8..16]);
            (16, u64::from_be_bytes(b))
        }
        n => (8, u64::from(n)),
    };
    if size < header_len {
        return Err(Error::corrupt(
            at,
            format!("box '{}' has size {size}, smaller than its header", fourcc_name(&kind)),
        ));
    }
    if size > limit - at {
        return Err(Error::corrupt(
            at,
            format!(
                "box '{}' of size {size} runs past the end of its parent ({} bytes left)",
                fourcc_name(&kind),
                limit - at
            ),
        ));
    }
    Ok(BoxHeader { kind, offset: at, header_len, size })
}

/// Iterates the boxes in `buf[start..end]`, offsets relative to `buf`. Stops after the first
/// error (which it yields).
pub struct Children<'a> {
    buf: &'a [u8],
    at: u64,
    end: u64,
    failed: bool,
}

/// The children of a box's payload (or any region) in a buffer.
pub fn children(buf: &[u8], start: u64, end: u64) -> Children<'_> {
    let end = end.min(buf.len() as u64);
    Children { buf, at: start, end, failed: false }
}

impl Iterator for Children<'_> {
    type Item = Result<BoxHeader>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.end {
            return None;
        }
        let from = self.at as usize;
        let to = (self.at + 16).min(self.end) as usize;
        let res = decode(&self.buf[from..to], self.at, self.end);
        match &res {
            Ok(h) => self.at = h.end(),
            Err(_) => self.failed = true,
        }
        Some(res)
    }
}

/// Finds the first child of type `kind` in a region of `buf`.
pub fn find(buf: &[u8], start: u64, end: u64, kind: &FourCc) -> Result<Option<BoxHeader>> {
    for h in children(buf, start, end) {
        let h = h?;
        if &h.kind == kind {
            return Ok(Some(h));
        }
    }
    Ok(None)
}

/// Reads the top-level box header at file offset `at`, for a file of length `file_len`.
pub fn read_top(file: &Source, at: u64, file_len: u64) -> Result<BoxHeader> {
    let mut b = [0u8; 16];
    let want = (file_len.saturating_sub(at)).min(16) as usize;
    file.read_exact_at(&mut b[..want], at)
        .map_err(|e| Error::io(format!("cannot read box header at offset {at}"), e))?;
    decode(&b[..want], at, file_len)
}

/// The top-level layout of a file: the boxes loomiere needs, found without reading media.
#[derive(Clone, Debug, Default)]
pub struct TopLevel {
    /// `ftyp`, if present.
    pub ftyp: Option<BoxHeader>,
    /// `moov`, if present.
    pub moov: Option<BoxHeader>,
    /// The first `mdat`.
    pub mdat: Option<BoxHeader>,
    /// A `moof` was seen: the file is fragmented.
    pub fragmented: bool,
    /// Every top-level box in order (bounded by `MAX_TOP_BOXES`).
    pub boxes: Vec<BoxHeader>,
}

/// The most top-level boxes walked before giving up (a hostile file could have millions of
/// tiny boxes; real files have a handful, fragmented ones a few thousand).
pub const MAX_TOP_BOXES: usize = 100_000;

/// How many bytes of a file's head [`read_head`] takes: `ftyp`, `free` and the `mdat` or
/// `moov` header of a typical file, so the walk needs no read per box there.
pub const HEAD_BYTES: usize = 4096;

/// The first [`HEAD_BYTES`] of a file (fewer if it is shorter or a read fails: the walk then
/// reads those box headers one by one, and reports any error at the right offset).
pub fn read_head(file: &Source, file_len: u64) -> Vec<u8> {
    let want = usize::try_from(file_len).unwrap_or(usize::MAX).min(HEAD_BYTES);
    let mut head = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match file.read_at(head.get_mut(got..).unwrap_or(&mut []), got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    head.truncate(got);
    head
}

/// Walks the top-level boxes of a file. Stops early once `moov` and `mdat` are both known and
/// fragmentation has been ruled out by the box after them, unless `all` is set (inspect).
pub fn walk_top(file: &Source, file_len: u64, all: bool) -> (TopLevel, Option<Error>) {
    walk_top_in(file, file_len, all, &read_head(file, file_len))
}

/// [`walk_top`] with the file's first bytes already read (`head`, from [`read_head`]): box
/// headers inside it are decoded from it, the others read with one `pread` each.
pub fn walk_top_in(file: &Source, file_len: u64, all: bool, head: &[u8]) -> (TopLevel, Option<Error>) {
    let mut top = TopLevel::default();
    let mut at = 0u64;
    while at < file_len {
        if top.boxes.len() >= MAX_TOP_BOXES {
            return (top, Some(Error::corrupt(at, "too many top-level boxes")));
        }
        let want = (file_len - at).min(16);
        let in_head = usize::try_from(at).ok().and_then(|from| head.get(from..from.checked_add(want as usize)?));
        let header = match in_head {
            Some(bytes) => decode(bytes, at, file_len),
            None => read_top(file, at, file_len),
        };
        let h = match header {
            Ok(h) => h,
            Err(e) => return (top, Some(e)),
        };
        top.boxes.push(h);
        match &h.kind {
            b"ftyp" if top.ftyp.is_none() => top.ftyp = Some(h),
            b"moov" if top.moov.is_none() => top.moov = Some(h),
            b"mdat" if top.mdat.is_none() => top.mdat = Some(h),
            b"moof" => top.fragmented = true,
            _ => {}
        }
        at = h.end();
        if !all && top.fragmented {
            break;
        }
    }
    (top, None)
}

/// Big-endian readers over a byte slice that return `None` instead of panicking.
pub trait ReadBe {
    /// `u8` at `at`.
    fn u8_at(&self, at: usize) -> Option<u8>;
    /// `u16` at `at`.
    fn u16_at(&self, at: usize) -> Option<u16>;
    /// `u32` at `at`.
    fn u32_at(&self, at: usize) -> Option<u32>;
    /// `u64` at `at`.
    fn u64_at(&self, at: usize) -> Option<u64>;
}

impl ReadBe for [u8] {
    fn u8_at(&self, at: usize) -> Option<u8> {
        self.get(at).copied()
    }
    fn u16_at(&self, at: usize) -> Option<u16> {
        let b = self.get(at..at.checked_add(2)?)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32_at(&self, at: usize) -> Option<u32> {
        let b = self.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64_at(&self, at: usize) -> Option<u64> {
        let b = self.get(at..at.checked_add(8)?)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_be_bytes(a))
    }
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

    #[test]
    fn walks_children_and_largesize() {
        let mut buf = bx(b"free", b"abc");
        let mut large = 1u32.to_be_bytes().to_vec();
        large.extend_from_slice(b"skip");
        large.extend_from_slice(&20u64.to_be_bytes());
        large.extend_from_slice(b"1234");
        buf.extend_from_slice(&large);
        let hs: Vec<_> = children(&buf, 0, buf.len() as u64).collect::<Result<_>>().unwrap();
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[1].kind, *b"skip");
        assert_eq!(hs[1].header_len, 16);
        assert_eq!(hs[1].body_len(), 4);
    }

    #[test]
    fn lying_sizes_are_errors() {
        let mut buf = bx(b"free", b"abc");
        buf[3] = 200; // claims 200 bytes
        let r: Vec<_> = children(&buf, 0, buf.len() as u64).collect();
        assert!(matches!(r[0], Err(Error::Corrupt { offset: 0, .. })));
        let mut buf = bx(b"free", b"");
        buf[3] = 3; // smaller than header
        assert!(children(&buf, 0, 8).next().unwrap().is_err());
        // Truncated header.
        assert!(children(&[0, 0, 0], 0, 3).next().unwrap().is_err());
        // Size 0 runs to the end of the parent.
        let buf = [0, 0, 0, 0, b'm', b'd', b'a', b't', 1, 2];
        let h = children(&buf, 0, 10).next().unwrap().unwrap();
        assert_eq!(h.size, 10);
    }

    #[test]
    fn head_and_per_box_reads_agree() {
        // A box header straddling the end of the head, one beyond it, a truncated last one.
        let mut file = bx(b"ftyp", &[0; 24]);
        file.extend(bx(b"free", &vec![0; HEAD_BYTES - 32 - 8 - 6]));
        file.extend(bx(b"mdat", &[7; 100]));
        file.extend(bx(b"moov", &[1; 50]));
        file.extend_from_slice(&[0, 0, 0, 9, b'f']);
        let path = std::env::temp_dir().join(format!("loomiere-boxes-{}", std::process::id()));
        std::fs::write(&path, &file).unwrap();
        let len = file.len() as u64;
        let f = Source::nameless(std::sync::Arc::new(std::fs::File::open(&path).unwrap()), len);
        let head = read_head(&f, len);
        assert_eq!(head.len(), HEAD_BYTES);
        let (a, ea) = walk_top_in(&f, len, true, &head);
        let (b, eb) = walk_top_in(&f, len, true, &[]);
        let _ = std::fs::remove_file(&path);
        assert_eq!(a.boxes, b.boxes);
        assert_eq!(a.boxes.iter().map(|h| h.kind).collect::<Vec<_>>(), [*b"ftyp", *b"free", *b"mdat", *b"moov"]);
        assert_eq!(a.moov.map(|m| m.size), Some(58));
        assert!(ea.is_some());
        assert_eq!(ea.map(|e| e.to_string()), eb.map(|e| e.to_string()));
    }

    #[test]
    fn readers_never_panic() {
        let b = [1u8, 2, 3];
        assert_eq!(b.u16_at(1), Some(0x0203));
        assert_eq!(b.u32_at(0), None);
        assert_eq!(b.u64_at(usize::MAX), None);
    }
}
