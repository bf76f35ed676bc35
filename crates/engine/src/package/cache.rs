//! Keeping packages so a segment request does not rebuild the segment index: in memory for
//! a long-running server ([`PackageCache`]: the opened movie and its package, shared by every
//! viewer, keyed by the file's identity and the clip), and on disk for a process per request
//! ([`load_or_build`]: the index's byte form in the `index_cache` directory, written
//! atomically by the first request and checked — identity, options, checksum, bounds — by
//! every later one, as the seek marks are).

use super::segments::{Clip, Options, SegmentIndex};
use super::Package;
use crate::mp4::Movie;
use crate::source::{Source, Version};
use crate::Result;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What a cached package was built from: the file version, the clip and the target.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    id: Version,
    len: u64,
    modified: Option<SystemTime>,
    clip: (Option<u64>, Option<u64>),
    target: u64,
}

impl Key {
    fn of(src: &Source, clip: Clip, options: &Options) -> Key {
        Key {
            id: src.version.clone(),
            len: src.len,
            modified: src.modified,
            clip: (clip.start.map(f64::to_bits), clip.end.map(f64::to_bits)),
            target: options.target.to_bits(),
        }
    }
}

struct Entry {
    key: Key,
    movie: Arc<Movie>,
    package: Arc<Package>,
    used: u64,
}

/// The packages a server keeps: at most `capacity`, least recently used evicted; the clips
/// of one file share its opened movie. A file replaced or rewritten gets a new identity,
/// hence a new entry; the old one ages out, and a deleted file's entry is dropped at the next
/// miss.
pub struct PackageCache {
    capacity: usize,
    entries: Mutex<Vec<Entry>>,
    /// Lookups answered from the cache and built, for the server's metrics.
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

impl PackageCache {
    /// A cache of at most `capacity` packages.
    pub const fn new(capacity: usize) -> PackageCache {
        PackageCache {
            capacity,
            entries: Mutex::new(Vec::new()),
            hits: std::sync::atomic::AtomicU64::new(0),
            misses: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Segment indexes found in the cache and built, so far: (hits, misses).
    pub fn stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }

    /// The movie and package for `src` (opened by the caller after confinement), built on a
    /// miss: the moov is read into memory (never mapped, as `serve`'s movie cache does) and checked
    /// against `max_moov`.
    pub fn get(&self, src: Source, clip: Clip, options: &Options, max_moov: u64) -> Result<(Arc<Movie>, Arc<Package>)> {
        let key = Key::of(&src, clip, options);
        let same_file = |e: &Entry| e.key.id == key.id && e.key.len == key.len && e.key.modified == key.modified;
        let opened = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let tick = entries.iter().map(|e| e.used).max().unwrap_or(0) + 1;
            if let Some(e) = entries.iter_mut().find(|e| e.key == key) {
                e.used = tick;
                self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Ok((e.movie.clone(), e.package.clone()));
            }
            self.misses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Another clip of the same file: its movie (and moov bytes) is shared.
            entries.iter().find(|e| same_file(e)).map(|e| e.movie.clone())
        };
        let movie = match opened {
            Some(m) => {
                m.check_moov_size(max_moov)?;
                m
            }
            // Read, not mapped: a file truncated while served must not fault the server. A
            // fragmented file is seen through sample tables made from its fragments.
            None => Arc::new(super::fragmented::progressive(Movie::open_with(src, false, max_moov)?, None, max_moov)?),
        };
        let package = Arc::new(Package::build(&movie, clip, options)?);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let tick = entries.iter().map(|e| e.used).max().unwrap_or(0) + 1;
        if let Some(e) = entries.iter_mut().find(|e| e.key == key) {
            // A concurrent miss inserted it first: use that one.
            e.used = tick;
            return Ok((e.movie.clone(), e.package.clone()));
        }
        // Let go of movies whose file was deleted (no link left), so their space is freed.
        entries.retain(|e| {
            e.movie.src.as_local_file().is_none_or(|f| rustix::fs::fstat(f).is_ok_and(|st| st.st_nlink > 0))
        });
        if entries.len() >= self.capacity.max(1) {
            if let Some(i) = entries.iter().enumerate().min_by_key(|(_, e)| e.used).map(|(i, _)| i) {
                entries.swap_remove(i);
            }
        }
        entries.push(Entry { key, movie: movie.clone(), package: package.clone(), used: tick });
        Ok((movie, package))
    }
}

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
    if let Some(index) = crate::mp4::marks::read_index_file(&path, MAX_FILE)
        .and_then(|b| SegmentIndex::decode(&b, &key, clip, options, &tracks))
    {
        return Ok(Package::with_index(movie, &tracks, Arc::new(index)));
    }
    let index = SegmentIndex::build(&tracks, movie.header()?.timescale, clip, options)?;
    // Best effort: without the file, the next process builds the index again.
    let _ = crate::mp4::marks::write_index_file(&path, &index.encode(&key));
    Ok(Package::with_index(movie, &tracks, Arc::new(index)))
}
