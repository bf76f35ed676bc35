//! Keeping packages on disk for a process per request, so a segment request does not rebuild
//! the segment index ([`load_or_build`]: the index's byte form in the `index_cache`
//! directory, written atomically by the first request and checked — identity, options,
//! checksum, bounds — by every later one, as the seek marks are). A long-running server keeps
//! them in memory in the movie's entry of [`crate::media::MovieCache`]
//! ([`crate::media::MovieCache::package`]).

use super::segments::{Clip, Options, SegmentIndex};
use super::Package;
use crate::mp4::Movie;
use crate::Result;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest index file read (a 10-hour movie with four tracks is about 3 MB).
const MAX_FILE: u64 = 64 << 20;

/// The index file of `movie` for `clip` and `options` in `dir`: named by device, inode and a
/// hash of the clip and target, so it needs no escaping.
fn file_for(dir: &Path, movie: &Movie, clip: Clip, options: &Options) -> PathBuf {
    let key = movie.key();
    let mut facts = Vec::new();
    for v in
        [clip.start.map_or(u64::MAX, f64::to_bits), clip.end.map_or(u64::MAX, f64::to_bits), options.target.to_bits()]
    {
        facts.extend_from_slice(&v.to_le_bytes());
    }
    let h = crate::mp4::marks::checksum(&facts);
    dir.join(format!("{:x}-{:x}-{h:016x}.segments", key.dev, key.ino))
}

/// The package of `movie`, its index read from `dir` when a valid one is there, else built
/// and stored there for the next process (any failure to store is ignored). Never follows
/// a symlink, never waits on a FIFO planted under the file's name.
pub fn load_or_build(movie: &Movie, clip: Clip, options: &Options, dir: &Path) -> Result<Package> {
    let tracks = movie.tracks()?;
    let key = movie.key();
    let path = file_for(dir, movie, clip, options);
    let read = || -> Option<Vec<u8>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
            .open(&path)
            .ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() > MAX_FILE {
            return None;
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::io::Read::read_to_end(&mut std::io::Read::take(&file, MAX_FILE), &mut bytes).ok()?;
        Some(bytes)
    };
    if let Some(index) = read().and_then(|b| SegmentIndex::decode(&b, &key, clip, options, &tracks)) {
        return Ok(Package::with_index(movie, &tracks, Arc::new(index)));
    }
    let index = SegmentIndex::build(&tracks, movie.header()?.timescale, clip, options)?;
    let tmp =
        dir.join(format!(".{}.{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("x"), std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        f.write_all(&index.encode(&key))?;
        std::fs::rename(&tmp, &path)
    };
    if write().is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(Package::with_index(movie, &tracks, Arc::new(index)))
}
