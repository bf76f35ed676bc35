//! The engine's front door: (source, request, options) → plan, through the container the
//! options name ([`plan`]), and the in-memory cache layer around it ([`MovieCache`]). Front
//! ends call only this. Path confinement is not done here: callers pass a path they have
//! already resolved.

use crate::plan::Plan;
use crate::request::Request;
use crate::Result;
use std::path::Path;
use std::sync::Arc;

pub use crate::container::{Kind, Options};
pub use crate::source::{FileId, Source, Version};

/// The planning entry: (source, request, options) → plan. Opens the source with its
/// container (`opts.kind`) and plans the request; a medium asked for as it is (an image, an
/// MP4 without a seek) is planned by its format's `plan_as_is`, without being opened. Caches are layers
/// around this ([`MovieCache`] in memory for `serve`; `opts.marks_dir` on disk for the CGI).
pub fn plan(src: Source, req: &Request, opts: &Options) -> Result<Plan> {
    if let Some(as_is) = opts.kind.format().plan_as_is.filter(|_| untouched(req)) {
        return as_is(src, opts);
    }
    within_limit(crate::container::open(src, opts)?.plan(req, opts)?, opts)
}

/// The one place `max_moov` bounds a plan's output: a synthesised header (a rewritten moov)
/// over the limit is refused (the source's moov was checked against it at opening); a
/// whole file sent as it is is not bounded.
fn within_limit(plan: Plan, opts: &Options) -> Result<Plan> {
    let synthesised = matches!(plan.pieces().first(), Some(crate::plan::Piece::Synth(_)));
    if synthesised && plan.info.header_len > opts.max_moov {
        return Err(crate::Error::OverLimit(format!(
            "the rewritten header of {} bytes is over max_moov_bytes {}",
            plan.info.header_len, opts.max_moov
        )));
    }
    Ok(plan)
}

/// [`plan`] for the file at `path`, with the default options of its extension.
pub fn open(path: &Path, req: &Request) -> Result<Plan> {
    let opts = Options::for_path(path)?;
    plan(Source::open(path)?, req, &opts)
}

/// Whether `req` asks for the medium as it is: no position and no rewrite (byte-exact,
/// cacheable).
fn untouched(req: &Request) -> bool {
    req.start.is_none() && req.end.is_none() && !req.force_co64
}

/// Opened MP4 movies shared between requests, so that the viewers of one file share one copy
/// of its `moov` (read once with `pread`, never mapped: see `mp4::Movie::open_for` with `resident`), and of
/// a fragmented MP4 its fragment index (`crate::fmp4`), instead of reading them each. A file is
/// known by device, inode, status-change time, length and modification time: a replaced or
/// modified file is opened afresh. Holds at most `capacity` movies, dropping the least recently
/// used, and for each the plans of its last [`PLANS_PER_MOVIE`] distinct requests (viewers who
/// seek to the same point (a shared `?start=` link, a chapter, the page's default start) get
/// the plan without a table scan. A plan is a few hundred bytes of segment descriptions over
/// the shared moov, so the memo stays small) and its last [`PACKAGES_PER_MOVIE`] HLS/DASH
/// segment indexes ([`MovieCache::package`]): a movie served both progressive and packaged
/// is held once.
///
/// A movie whose file was deleted or replaced is let go promptly, so that its disk space is
/// freed: at the next lookup of its path (a new identity under the same name drops the old
/// entry), and by [`MovieCache::sweep`] — run at each insertion and periodically by `serve` —
/// which drops every entry whose held descriptor has no link left (`fstat`: `st_nlink` 0) or
/// whose path now names another file or none. Two concurrent misses for one file open it
/// twice but insert it once: the second finds the first's entry under the lock and uses it.
pub struct MovieCache {
    capacity: usize,
    entries: std::sync::Mutex<Vec<CacheEntry>>,
}

/// The identity of one version of a file as the cache knows it.
type MovieKey = (Version, u64, Option<std::time::SystemTime>);

struct CacheEntry {
    /// The file's identity, length and modification time when the movie was opened.
    key: MovieKey,
    /// The path it was opened under (checked by [`MovieCache::sweep`]).
    path: std::path::PathBuf,
    movie: Arc<crate::mp4::Movie>,
    used: u64,
    /// Recent plans, most recent last.
    plans: Vec<(Request, Plan)>,
    /// The packager's segment indexes (HLS/DASH), by clip and segment target, most recently
    /// used last.
    packages: Vec<(PackageKey, Arc<crate::package::Package>)>,
}

/// Plans remembered per cached movie.
pub const PLANS_PER_MOVIE: usize = 4;

/// Segment indexes (packages) remembered per cached movie: distinct clips and segment targets.
pub const PACKAGES_PER_MOVIE: usize = 4;

/// What a package of a movie is built for: the clip's start and end, and the segment target
/// (as bits: the values are compared, never computed with).
type PackageKey = (Option<u64>, Option<u64>, u64);

impl MovieCache {
    /// A cache of at most `capacity` movies.
    pub fn new(capacity: usize) -> MovieCache {
        MovieCache { capacity: capacity.max(1), entries: std::sync::Mutex::new(Vec::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CacheEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many movies are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no movie is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`MovieCache::plan`] for the file at `path` with the default options of its extension.
    pub fn open(&self, path: &Path, req: &Request) -> Result<Plan> {
        let opts = Options::for_path(path)?;
        self.plan(path, Source::open(path)?, req, &opts)
    }

    /// [`plan`] through the cache: MP4 seeks reuse the opened movie (resident: its moov read
    /// into memory and its seek indexes built) and its recent plans. `src` (opened by the
    /// caller, e.g. after path confinement) identifies the file; on a hit it is simply closed
    /// and the cached movie's source serves the plan. A moov larger than `opts.max_moov` is
    /// refused before any work that grows with it.
    pub fn plan(&self, path: &Path, src: Source, req: &Request, opts: &Options) -> Result<Plan> {
        if opts.kind != Kind::Mp4 || untouched(req) {
            return plan(src, req, opts);
        }
        let max_moov = opts.max_moov;
        let key = (src.version.clone(), src.len, src.modified);
        // Two names of one file (a hard link, `a.m4a` → `a.mp4`) share the movie but not the
        // type their answers carry.
        let content_type = opts.content_type;
        let (cached, replaced) = {
            let mut entries = self.lock();
            let tick = entries.iter().map(|e| e.used).max().unwrap_or(0) + 1;
            match entries.iter_mut().find(|e| e.key == key) {
                Some(e) => {
                    e.used = tick;
                    e.movie.check_moov_size(max_moov)?;
                    if let Some((_, plan)) =
                        e.plans.iter().find(|(r, p)| r == req && p.info.content_type == content_type)
                    {
                        return within_limit(plan.clone(), opts);
                    }
                    (Some(e.movie.clone()), Vec::new())
                }
                // A miss: an older version of the file under this name is let go now.
                None => (None, take_where(&mut entries, |e| e.path == path)),
            }
        };
        drop(replaced); // unmapped and closed outside the lock
        let movie = match cached {
            Some(m) => m,
            None => self.open_movie(key.clone(), path, src, opts)?,
        };
        let plan = within_limit(movie.plan(req, content_type)?, opts)?;
        let mut entries = self.lock();
        if let Some(e) = entries.iter_mut().find(|e| e.key == key) {
            if e.plans.len() >= PLANS_PER_MOVIE {
                e.plans.remove(0);
            }
            e.plans.push((req.clone(), plan.clone()));
        }
        Ok(plan)
    }

    /// The packaging (HLS/DASH segment index and track facts) of the MP4 movie at `path` for
    /// `clip` and `segments`, with the movie it was built from: the movie is the same entry
    /// progressive seeks use (opened once however it is served), and its packages are kept
    /// beside its plans, at most [`PACKAGES_PER_MOVIE`], least recently used dropped.
    pub fn package(
        &self,
        path: &Path,
        src: Source,
        clip: crate::package::Clip,
        segments: &crate::package::Options,
        opts: &Options,
    ) -> Result<(Arc<crate::mp4::Movie>, Arc<crate::package::Package>)> {
        let key = (src.version.clone(), src.len, src.modified);
        let wanted: PackageKey = (clip.start.map(f64::to_bits), clip.end.map(f64::to_bits), segments.target.to_bits());
        let (cached, replaced) = {
            let mut entries = self.lock();
            let tick = entries.iter().map(|e| e.used).max().unwrap_or(0) + 1;
            match entries.iter_mut().find(|e| e.key == key) {
                Some(e) => {
                    e.used = tick;
                    e.movie.check_moov_size(opts.max_moov)?;
                    if let Some(i) = e.packages.iter().position(|(k, _)| *k == wanted) {
                        let hit = e.packages.remove(i);
                        let package = hit.1.clone();
                        e.packages.push(hit);
                        return Ok((e.movie.clone(), package));
                    }
                    (Some(e.movie.clone()), Vec::new())
                }
                None => (None, take_where(&mut entries, |e| e.path == path)),
            }
        };
        drop(replaced);
        let movie = match cached {
            Some(m) => m,
            None => self.open_movie(key.clone(), path, src, opts)?,
        };
        let package = Arc::new(crate::package::Package::build(&movie, clip, segments)?);
        let mut entries = self.lock();
        if let Some(e) = entries.iter_mut().find(|e| e.key == key) {
            // A concurrent miss built it first: that one is kept and shared.
            if let Some((_, p)) = e.packages.iter().find(|(k, _)| *k == wanted) {
                return Ok((movie, p.clone()));
            }
            if e.packages.len() >= PACKAGES_PER_MOVIE {
                e.packages.remove(0);
            }
            e.packages.push((wanted, package.clone()));
        }
        Ok((movie, package))
    }

    /// Opens the movie of a miss, resident (read, not mapped: a file truncated while served
    /// must not fault the server; its seek indexes built), and inserts it.
    fn open_movie(&self, key: MovieKey, path: &Path, src: Source, opts: &Options) -> Result<Arc<crate::mp4::Movie>> {
        let resident = Options { resident: true, lean: false, marks_dir: None, ..opts.clone() };
        let m = crate::mp4::Movie::open_for(src, &resident)?;
        self.sweep();
        Ok(self.insert(key, path, Arc::new(m)))
    }

    /// Inserts a freshly opened movie, unless a concurrent miss inserted the same file first:
    /// then that one is used and `movie` dropped. Returns the movie to plan with.
    fn insert(&self, key: MovieKey, path: &Path, movie: Arc<crate::mp4::Movie>) -> Arc<crate::mp4::Movie> {
        let mut entries = self.lock();
        let tick = entries.iter().map(|e| e.used).max().unwrap_or(0) + 1;
        if let Some(e) = entries.iter_mut().find(|e| e.key == key) {
            e.used = tick;
            return e.movie.clone();
        }
        let mut evicted = None;
        if entries.len() >= self.capacity {
            if let Some(i) = entries.iter().enumerate().min_by_key(|(_, e)| e.used).map(|(i, _)| i) {
                evicted = Some(entries.swap_remove(i));
            }
        }
        entries.push(CacheEntry {
            key,
            path: path.to_path_buf(),
            movie: movie.clone(),
            used: tick,
            plans: Vec::new(),
            packages: Vec::new(),
        });
        drop(entries);
        drop(evicted);
        movie
    }

    /// Lets go of every movie whose file was deleted (no link left to the held descriptor) or
    /// whose path now names another file (replaced, renamed away) or nothing. The checks run
    /// outside the lock; a movie dropped while a viewer still streams it is closed when that
    /// stream ends.
    pub fn sweep(&self) {
        let held: Vec<(MovieKey, std::path::PathBuf, Source)> =
            self.lock().iter().map(|e| (e.key.clone(), e.path.clone(), e.movie.src.clone())).collect();
        let stale: Vec<MovieKey> =
            held.into_iter().filter(|(key, path, src)| !still_current(&key.0, path, src)).map(|(k, ..)| k).collect();
        if stale.is_empty() {
            return;
        }
        let gone = take_where(&mut self.lock(), |e| stale.contains(&e.key));
        drop(gone);
    }
}

/// Removes and returns the entries that match `pred`.
fn take_where(entries: &mut Vec<CacheEntry>, pred: impl Fn(&CacheEntry) -> bool) -> Vec<CacheEntry> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        if entries.get(i).is_some_and(&pred) {
            out.push(entries.swap_remove(i));
        } else {
            i += 1;
        }
    }
    out
}

/// Whether the file held open by `src`, known as `version`, still has a link and is still
/// what `path` names. A source without a local file is current (its store says otherwise).
fn still_current(version: &Version, path: &Path, src: &Source) -> bool {
    let (Version::Local(id), Some(file)) = (version, src.as_local_file()) else { return true };
    let id = *id;
    match rustix::fs::fstat(file) {
        Ok(st) if st.st_nlink > 0 => {}
        _ => return false,
    }
    std::fs::metadata(path).is_ok_and(|meta| FileId::of(&meta) == id)
}
