//! Keeping packages on disk so a process per request (the CGI) does not rebuild the segment
//! index ([`load_or_build`]: the index's byte form in the `index_cache` directory, written
//! atomically by the first request and checked — identity, options, checksum, bounds — by
//! every later one, as the seek marks are). A long-running server keeps its packages in
//! memory in the movie's entry of `media::MovieCache` (`MovieCache::package`), the one movie
//! cache, so a movie served both progressive and packaged is opened once.

use super::segments::{Clip, Options, SegmentIndex};
use super::Package;
use crate::mp4::Movie;
use crate::Result;
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
