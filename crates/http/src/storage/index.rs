//! The persistent index cache of objects in storage: for each version of an object (key,
//! length, ETag) a sparse "shadow" file of the object's length holding, at their own
//! offsets, every top-level box except the media data's payload (`ftyp`, `moov`, `moof`,
//! `mdat` headers…) and the object's first 64 KiB, plus a `.meta` file listing those ranges
//! with a SHA-256 of their bytes. The engine plans on the shadow as on a local file (its
//! data pieces are then fetched from the store), `serve`'s movie cache keys on it, so a
//! restart or a second origin sharing the directory reads no moov from the store again, and
//! a new ETag is a new entry (re-indexed).
//!
//! Bounded (`index_max_bytes`, counted in allocated bytes: a 2-hour movie's entry is its 4 MB
//! moov, not its 22 MB length), least recently used first out (each use moves the `.meta`
//! file's modification time, at most once a minute), written atomically (temporary names,
//! synced, the shadow renamed before the `.meta` that vouches for it), and checked on every
//! first use by a process (identity, ranges within the length, checksum); a bad entry is
//! removed and rebuilt.

use super::{Identity, Store, StoreError};
use crate::media::Kind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Bytes read ahead at each place the box walk looks (a box header, and whatever small boxes
/// follow it).
const WINDOW: u64 = 64 * 1024;
/// A tail of the object at most this long is read in one go (a moov at the end and what
/// follows it).
const TAIL: u64 = 16 << 20;
/// Top-level boxes walked at most (a fragmented file has two per fragment).
const MAX_BOXES: usize = 200_000;
/// A `.meta` file is never larger.
const MAX_META: u64 = 16 << 20;

/// Why an index could not be had.
#[derive(Debug)]
pub enum IndexError {
    Store(StoreError),
    Engine(crate::Error),
}

impl From<StoreError> for IndexError {
    fn from(e: StoreError) -> Self {
        IndexError::Store(e)
    }
}

/// What a `.meta` file says.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Meta {
    format: u32,
    key: String,
    len: u64,
    etag: String,
    /// `(offset, length)` of the bytes present in the shadow, sorted, not overlapping.
    ranges: Vec<(u64, u64)>,
    /// SHA-256 of those bytes in order, hex.
    sha256: String,
}

/// The cache directory.
pub struct IndexDir {
    dir: PathBuf,
    max_bytes: u64,
    /// Shadows this process has checked: (path, inode, status-change time).
    checked: Mutex<HashSet<(PathBuf, u64, i64)>>,
    tmp_seq: AtomicU64,
}

impl IndexDir {
    pub fn new(dir: PathBuf, max_bytes: u64) -> IndexDir {
        IndexDir { dir, max_bytes, checked: Mutex::new(HashSet::new()), tmp_seq: AtomicU64::new(0) }
    }

    /// The entry's file name stem: a hash of key, length and ETag.
    fn stem(id: &Identity) -> String {
        let mut h = Sha256::new();
        h.update(id.key.as_bytes());
        h.update([0]);
        h.update(id.len.to_le_bytes());
        h.update(id.etag.as_bytes());
        h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    fn paths(&self, id: &Identity, ext: &str) -> (PathBuf, PathBuf) {
        let stem = IndexDir::stem(id);
        // The shadow keeps the object's extension: the engine picks the content type by it.
        let ext: String = ext.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect();
        (self.dir.join(format!("{stem}.{ext}")), self.dir.join(format!("{stem}.meta")))
    }

    /// The shadow of `id` if the cache holds a good one.
    pub fn lookup(&self, id: &Identity, ext: &str) -> Option<PathBuf> {
        let (shadow, meta_path) = self.paths(id, ext);
        let shadow_meta = std::fs::symlink_metadata(&shadow).ok()?;
        if !shadow_meta.is_file() {
            return None;
        }
        let mark = (shadow.clone(), shadow_meta.ino(), shadow_meta.ctime());
        let seen = self.checked.lock().unwrap_or_else(|p| p.into_inner()).contains(&mark);
        if !seen {
            if check(&shadow, &meta_path, id).is_err() {
                let _ = std::fs::remove_file(&meta_path);
                let _ = std::fs::remove_file(&shadow);
                return None;
            }
            self.checked.lock().unwrap_or_else(|p| p.into_inner()).insert(mark);
        }
        touch(&meta_path);
        Some(shadow)
    }

    /// Writes an entry for `id` with `ranges` (offset, bytes), atomically; returns the shadow.
    pub fn store(&self, id: &Identity, ext: &str, ranges: &[(u64, bytes::Bytes)]) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let (shadow, meta_path) = self.paths(id, ext);
        let seq = self.tmp_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = |what: &str| self.dir.join(format!(".tmp-{}-{seq}-{what}", std::process::id()));
        let (tmp_shadow, tmp_meta) = (tmp("shadow"), tmp("meta"));
        let result: std::io::Result<()> = (|| {
            let f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp_shadow)?;
            f.set_len(id.len)?;
            let mut h = Sha256::new();
            let mut listed = Vec::with_capacity(ranges.len());
            for (off, bytes) in ranges {
                f.write_all_at(bytes, *off)?;
                h.update(bytes);
                listed.push((*off, bytes.len() as u64));
            }
            f.sync_all()?;
            let meta = Meta {
                format: 1,
                key: id.key.clone(),
                len: id.len,
                etag: id.etag.clone(),
                ranges: listed,
                sha256: hex(&h.finalize()),
            };
            let text = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
            let m = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp_meta)?;
            m.write_all_at(&text, 0)?;
            m.sync_all()?;
            std::fs::rename(&tmp_shadow, &shadow)?;
            std::fs::rename(&tmp_meta, &meta_path)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp_shadow);
            let _ = std::fs::remove_file(&tmp_meta);
        }
        result?;
        // Written by this process: no need to check it on its first use.
        if let Ok(m) = std::fs::symlink_metadata(&shadow) {
            self.checked.lock().unwrap_or_else(|p| p.into_inner()).insert((shadow.clone(), m.ino(), m.ctime()));
        }
        self.evict();
        Ok(shadow)
    }

    /// Removes least recently used entries until the directory is within its bound, and
    /// temporary files of writers that are gone (older than an hour).
    pub fn evict(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return };
        let mut entries: Vec<(SystemTime, PathBuf, u64)> = Vec::new();
        let mut sizes: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        let now = SystemTime::now();
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(m) = e.metadata() else { continue };
            if name.starts_with(".tmp-") {
                if now.duration_since(m.modified().unwrap_or(now)).unwrap_or_default() > Duration::from_secs(3600) {
                    let _ = std::fs::remove_file(e.path());
                }
                continue;
            }
            let Some((stem, ext)) = name.split_once('.') else { continue };
            *sizes.entry(stem.to_string()).or_default() += m.blocks() * 512;
            if ext == "meta" {
                entries.push((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), e.path(), 0));
            }
        }
        let mut total: u64 = sizes.values().sum();
        if total <= self.max_bytes {
            return;
        }
        entries.sort();
        for (_, meta, _) in entries {
            if total <= self.max_bytes {
                break;
            }
            let stem = meta.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            // The meta first: without it the shadow is never used.
            let _ = std::fs::remove_file(&meta);
            if let Ok(d) = std::fs::read_dir(&self.dir) {
                for e in d.flatten() {
                    if e.file_name().to_string_lossy().split_once('.').is_some_and(|(s, _)| s == stem) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            total = total.saturating_sub(sizes.get(&stem).copied().unwrap_or(0));
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Moves `path`'s modification time to now, at most once a minute (the LRU order).
fn touch(path: &Path) {
    let Ok(m) = std::fs::metadata(path) else { return };
    let now = SystemTime::now();
    if now.duration_since(m.modified().unwrap_or(now)).unwrap_or_default() > Duration::from_secs(60) {
        if let Ok(f) = std::fs::OpenOptions::new().append(true).open(path) {
            let _ = f.set_modified(now);
        }
    }
}

/// Checks an entry against the identity it is used for: the `.meta` names it, the shadow has
/// its length, the ranges lie inside it, sorted and apart, and their bytes hash as recorded.
fn check(shadow: &Path, meta_path: &Path, id: &Identity) -> Result<(), String> {
    let m = std::fs::symlink_metadata(meta_path).map_err(|e| e.to_string())?;
    if !m.is_file() || m.len() > MAX_META {
        return Err("bad meta file".into());
    }
    let text = std::fs::read(meta_path).map_err(|e| e.to_string())?;
    let meta: Meta = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    if meta.format != 1 || meta.key != id.key || meta.len != id.len || meta.etag != id.etag {
        return Err("meta file of another object".into());
    }
    let f = std::fs::File::open(shadow).map_err(|e| e.to_string())?;
    if f.metadata().map_err(|e| e.to_string())?.len() != id.len {
        return Err("shadow of another length".into());
    }
    let mut h = Sha256::new();
    let mut at = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    for &(off, len) in &meta.ranges {
        let end = off.checked_add(len).ok_or("range overflows")?;
        if off < at || end > id.len {
            return Err("ranges out of order or past the end".into());
        }
        let mut pos = off;
        while pos < end {
            let n = usize::try_from((end - pos).min(buf.len() as u64)).unwrap_or(buf.len());
            let chunk = buf.get_mut(..n).ok_or("buffer")?;
            f.read_exact_at(chunk, pos).map_err(|e| e.to_string())?;
            h.update(&*chunk);
            pos += n as u64;
        }
        at = end;
    }
    if hex(&h.finalize()) != meta.sha256 {
        return Err("checksum mismatch".into());
    }
    Ok(())
}

/// The shadow of one version of an object: from the cache, else built by walking the
/// object's top-level boxes with ranged GETs (MP4; other kinds keep their first 64 KiB).
pub async fn shadow_for(
    store: &std::sync::Arc<Store>,
    id: &Identity,
    ext: &str,
    kind: Kind,
    max_moov: u64,
    count: &AtomicU64,
) -> Result<PathBuf, IndexError> {
    if let Some(p) = store.index.lookup(id, ext) {
        return Ok(p);
    }
    let ranges = match kind {
        Kind::Mp4 => walk_boxes(store, id, max_moov, count).await?,
        _ if id.len == 0 => Vec::new(),
        _ => vec![(0, store.read(id, 0..id.len.min(WINDOW), count).await?)],
    };
    let id2 = id.clone();
    let ext2 = ext.to_string();
    // Written off the async threads (a few MB, synced).
    let store2 = store.clone();
    let written = tokio::task::spawn_blocking(move || store2.index.store(&id2, &ext2, &ranges)).await;
    match written {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(IndexError::Engine(crate::Error::io("cannot write the index cache", e))),
        Err(e) => {
            Err(IndexError::Engine(crate::Error::io("index cache writer failed", std::io::Error::other(e.to_string()))))
        }
    }
}

/// One read-ahead window of the object.
struct Window {
    start: u64,
    bytes: bytes::Bytes,
}

impl Window {
    fn get(&self, range: std::ops::Range<u64>) -> Option<bytes::Bytes> {
        let from = usize::try_from(range.start.checked_sub(self.start)?).ok()?;
        let to = usize::try_from(range.end.checked_sub(self.start)?).ok()?;
        (to <= self.bytes.len()).then(|| self.bytes.slice(from..to))
    }
}

/// Walks the object's top-level boxes: each box kept whole except `mdat` (header only), the
/// first window kept too. The reads: one window where a box header is looked for (past the first,
/// when what remains of the object is at most 16 MiB and `max_moov`, all of it, so a moov at the end costs one
/// suffix read), and the rest of a box larger than its window. The kept bytes are bounded by
/// `max_moov` plus one window.
async fn walk_boxes(
    store: &Store,
    id: &Identity,
    max_moov: u64,
    count: &AtomicU64,
) -> Result<Vec<(u64, bytes::Bytes)>, IndexError> {
    let len = id.len;
    let mut kept: Vec<(u64, bytes::Bytes)> = Vec::new();
    let mut kept_bytes = 0u64;
    let mut window: Option<Window> = None;
    let mut pos = 0u64;
    let mut boxes = 0usize;
    while pos < len {
        boxes += 1;
        if boxes > MAX_BOXES {
            return Err(IndexError::Engine(crate::Error::Unsupported(format!(
                "more than {MAX_BOXES} top-level boxes"
            ))));
        }
        // The header: at most 16 bytes.
        let head_end = len.min(pos.saturating_add(16));
        let head = match window.as_ref().and_then(|w| w.get(pos..head_end)) {
            Some(h) if h.len() >= 16 || head_end == len => h,
            _ => {
                let rest = len - pos;
                // Past the first window (a moov at the end), the whole tail when it is small.
                let take = if pos > 0 && rest <= max_moov.min(TAIL) { rest } else { WINDOW.min(rest) };
                let w = Window { start: pos, bytes: store.read(id, pos..pos + take, count).await? };
                if pos == 0 {
                    kept_bytes += w.bytes.len() as u64;
                    kept.push((0, w.bytes.clone()));
                }
                let h = w.get(pos..head_end).unwrap_or_default();
                window = Some(w);
                h
            }
        };
        if head.len() < 8 {
            break; // trailing bytes that are no box: the engine judges the file
        }
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let size32 = be32(&head[0..4]);
        let kind = [head[4], head[5], head[6], head[7]];
        let (size, hdr) = match size32 {
            0 => (len - pos, 8),
            1 if head.len() >= 16 => {
                let s =
                    u64::from_be_bytes([head[8], head[9], head[10], head[11], head[12], head[13], head[14], head[15]]);
                (s, 16)
            }
            1 => break,
            s => (u64::from(s), 8),
        };
        if size < hdr {
            break;
        }
        let end = pos.checked_add(size).filter(|&e| e <= len).unwrap_or(len);
        let keep_end = if &kind == b"mdat" { pos + hdr.min(end - pos) } else { end };
        let keep = pos..keep_end;
        let first_window_covers = kept.first().is_some_and(|(o, b)| *o == 0 && keep.end <= b.len() as u64);
        if !first_window_covers && keep.end > keep.start {
            kept_bytes = kept_bytes.saturating_add(keep.end - keep.start);
            if kept_bytes > max_moov.saturating_add(WINDOW) {
                return Err(IndexError::Engine(crate::Error::OverLimit(format!(
                    "the file's boxes other than media data are over max_moov_bytes {max_moov}"
                ))));
            }
            let bytes = match window.as_ref().and_then(|w| w.get(keep.clone())) {
                Some(b) => b,
                None => {
                    // What the window has, then the rest in one read.
                    let have = window.as_ref().and_then(|w| {
                        let wend = w.start + w.bytes.len() as u64;
                        (w.start <= keep.start && wend > keep.start).then(|| w.get(keep.start..wend)).flatten()
                    });
                    let from = keep.start + have.as_ref().map_or(0, |h| h.len() as u64);
                    let rest = store.read(id, from..keep.end, count).await?;
                    let mut all = Vec::with_capacity(usize::try_from(keep.end - keep.start).unwrap_or(0));
                    all.extend_from_slice(have.as_deref().unwrap_or(&[]));
                    all.extend_from_slice(&rest);
                    bytes::Bytes::from(all)
                }
            };
            kept.push((keep.start, bytes));
        }
        pos = end;
    }
    // Sorted and apart: the first window may overlap the first boxes.
    kept.sort_by_key(|(o, _)| *o);
    let mut merged: Vec<(u64, bytes::Bytes)> = Vec::new();
    for (off, b) in kept {
        let end = off + b.len() as u64;
        if let Some((lo, lb)) = merged.last() {
            let lend = lo + lb.len() as u64;
            if end <= lend {
                continue;
            }
            if off < lend {
                let skip = usize::try_from(lend - off).unwrap_or(0);
                merged.push((lend, b.slice(skip..)));
                continue;
            }
        }
        merged.push((off, b));
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity { key: "a/b.mp4".into(), len: 1000, etag: "\"abc\"".into(), modified: None }
    }

    #[test]
    fn entries_round_trip_and_are_checked() {
        let dir = std::env::temp_dir().join(format!("loomiere-index-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let idx = IndexDir::new(dir.clone(), 1 << 20);
        let ranges = vec![(0u64, bytes::Bytes::from_static(b"hello")), (500, bytes::Bytes::from_static(b"moov"))];
        let p = idx.store(&id(), "mp4", &ranges).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 1000);
        assert_eq!(IndexDir::new(dir.clone(), 1 << 20).lookup(&id(), "mp4"), Some(p.clone()));
        // Another ETag is another entry.
        let other = Identity { etag: "\"def\"".into(), ..id() };
        assert_eq!(idx.lookup(&other, "mp4"), None);
        // A damaged shadow is refused and removed.
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(b"X", 501).unwrap();
        assert_eq!(IndexDir::new(dir.clone(), 1 << 20).lookup(&id(), "mp4"), None);
        assert!(!p.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
