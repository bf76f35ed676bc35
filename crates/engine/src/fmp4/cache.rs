//! The fragment index on disk, for the CGI's `index_cache` (a process per request): what the
//! walk gathered — each fragment's `moof` and `mdat` headers and the moofs' bytes — in one
//! file per movie, so a request reads one file instead of walking thousands of boxes and
//! reading every moof. Written atomically by the first request (temp file + rename, never
//! through a symlink), checked on every read (the movie's identity, sizes, a checksum), and
//! then parsed with every check of the format, exactly like moofs read from the movie: a
//! forged file can give a wrong answer but never a read outside the movie (every range is
//! checked against the file's length when planned).

use super::index::{Gathered, MAX_MOOF_BYTES};
use crate::mp4::boxes::BoxHeader;
use crate::mp4::marks::{checksum, MovieKey};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"LMFRAGS1";
/// Bytes per fragment entry: two headers of offset (8), size (8), header length (1).
const ENTRY: usize = 34;
/// The largest file read.
const MAX_FILE: u64 = MAX_MOOF_BYTES as u64 + (64 << 20);

/// The cache file for `key` in `dir`.
pub fn file_for(dir: &Path, key: &MovieKey) -> PathBuf {
    dir.join(format!("{:x}-{:x}.fragments", key.dev, key.ino))
}

/// The gathered moofs as the bytes of a cache file.
pub fn encode(g: &Gathered, key: &MovieKey) -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    for n in [key.dev, key.ino, key.len, key.mtime_ns, key.ctime_ns, key.moov_offset, key.moov_size] {
        v.extend_from_slice(&n.to_le_bytes());
    }
    v.extend_from_slice(&(g.pairs.len() as u64).to_le_bytes());
    v.extend_from_slice(&(g.bytes.len() as u64).to_le_bytes());
    for (moof, mdat) in &g.pairs {
        for h in [moof, mdat] {
            v.extend_from_slice(&h.offset.to_le_bytes());
            v.extend_from_slice(&h.size.to_le_bytes());
            v.push(h.header_len as u8);
        }
    }
    v.extend_from_slice(&g.bytes);
    let sum = checksum(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

/// Reads a cache file's bytes: `None` unless whole (checksum), for `key`, and consistent (each
/// moof's size adds up to the bytes held, each header inside the movie's length).
pub fn decode(bytes: &[u8], key: &MovieKey) -> Option<Gathered> {
    let (body, sum) = bytes.split_at(bytes.len().checked_sub(8)?);
    if checksum(body) != u64::from_le_bytes(sum.try_into().ok()?) {
        return None;
    }
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = body.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    if take(8)? != MAGIC {
        return None;
    }
    let mut u64s = [0u64; 9];
    for n in &mut u64s {
        *n = u64::from_le_bytes(take(8)?.try_into().ok()?);
    }
    let stored = MovieKey {
        dev: u64s[0],
        ino: u64s[1],
        len: u64s[2],
        mtime_ns: u64s[3],
        ctime_ns: u64s[4],
        moov_offset: u64s[5],
        moov_size: u64s[6],
    };
    let (count, held) = (usize::try_from(u64s[7]).ok()?, usize::try_from(u64s[8]).ok()?);
    if stored != *key || held > MAX_MOOF_BYTES {
        return None;
    }
    let table = take(count.checked_mul(ENTRY)?)?;
    let mut pairs = Vec::with_capacity(count);
    let mut total = 0u64;
    for e in table.chunks_exact(ENTRY) {
        let header = |at: usize, kind: &[u8; 4]| -> Option<BoxHeader> {
            let offset = u64::from_le_bytes(e.get(at..at + 8)?.try_into().ok()?);
            let size = u64::from_le_bytes(e.get(at + 8..at + 16)?.try_into().ok()?);
            let header_len = u64::from(*e.get(at + 16)?);
            let inside = matches!(header_len, 8 | 16) && size >= header_len && offset.checked_add(size)? <= key.len;
            inside.then_some(BoxHeader { kind: *kind, offset, header_len, size })
        };
        let (moof, mdat) = (header(0, b"moof")?, header(17, b"mdat")?);
        total = total.checked_add(moof.size)?;
        pairs.push((moof, mdat));
    }
    let bytes = take(held)?.to_vec();
    (total == held as u64 && at == body.len()).then_some(Gathered {
        pairs,
        bytes,
        sidx: Vec::new(),
        mfra: None,
        cut_short_at: None,
    })
}

/// The gathered moofs for `key` from `dir`, if a valid file is there. Never follows a symlink
/// or waits on a FIFO planted under the file's name.
pub fn load(dir: &Path, key: &MovieKey) -> Option<Gathered> {
    decode(&crate::mp4::marks::read_index_file(&file_for(dir, key), MAX_FILE)?, key)
}

/// Writes the gathered moofs for `key` into `dir` atomically; a failure leaves nothing behind.
pub fn store(dir: &Path, key: &MovieKey, g: &Gathered) -> std::io::Result<()> {
    crate::mp4::marks::write_index_file(&file_for(dir, key), &encode(g, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MovieKey {
        MovieKey { dev: 1, ino: 2, len: 10_000, mtime_ns: 3, ctime_ns: 4, moov_offset: 40, moov_size: 500 }
    }

    fn gathered() -> Gathered {
        let moof = |offset, size| BoxHeader { kind: *b"moof", offset, header_len: 8, size };
        let mdat = |offset, size| BoxHeader { kind: *b"mdat", offset, header_len: 8, size };
        Gathered {
            pairs: vec![(moof(540, 16), mdat(556, 100)), (moof(656, 24), mdat(680, 16))],
            bytes: (0..40u8).collect(),
            sidx: Vec::new(),
            mfra: None,
            cut_short_at: None,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let g = gathered();
        let bytes = encode(&g, &key());
        assert_eq!(decode(&bytes, &key()), Some(g.clone()));
        // Another file, damage, truncation: refused.
        assert_eq!(decode(&bytes, &MovieKey { len: 9_999, ..key() }), None);
        let mut d = bytes.clone();
        d[100] ^= 1;
        assert_eq!(decode(&d, &key()), None);
        assert_eq!(decode(&bytes[..bytes.len() - 1], &key()), None);
        assert_eq!(decode(&[], &key()), None);
        // A box past the movie's end, even with a right checksum: refused.
        let mut far = g;
        far.pairs[1].1.size = 1 << 40;
        assert_eq!(decode(&encode(&far, &key()), &key()), None);
    }
}
