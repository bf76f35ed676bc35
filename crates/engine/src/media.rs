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
/// used, and for each the plans of its last [`PLANS_PER_MOVIE`] distinct requests: viewers who
/// seek to the same point (a shared `?start=` link, a chapter, the page's default start) get
/// the plan without a table scan. A plan is a few hundred bytes of segment descriptions over
/// the shared moov, so the memo stays small.
///
/// It is the one movie cache of `serve`: the HLS/DASH packager takes its movies from it too
/// ([`MovieCache::package`]). A movie's packages (a segment index per clip and segment
/// target, with the track facts) hang off the movie's entry, so a movie served both
/// progressive and packaged is opened and held once; at most [`PACKAGES_HELD`] packages are
/// kept over all movies, the least recently used dropped first, and they go with their movie.
///
/// A movie whose file was deleted or replaced is let go promptly, so that its disk space is
/// freed: at the next lookup of its path (a new identity under the same name drops the old
/// entry), and by [`MovieCache::sweep`] — run at each insertion and periodically by `serve` —
/// which drops every entry whose held descriptor has no link left (`fstat`: `st_nlink` 0) or
/// whose path now names another file or none. Concurrent misses for one file open it once:
/// a burst of first requests (a player fetching its playlists at once, a new title's first
/// viewers) waits for the first one's open — reading a `moov` of up to `max_moov_bytes` —
/// instead of each reading its own (a wait is bounded by [`OPEN_WAIT`], after which a miss
/// opens the file itself); a movie is inserted once, and a package too (a package built twice
/// by concurrent misses is kept once).
pub struct MovieCache {
    capacity: usize,
    entries: std::sync::Mutex<Vec<CacheEntry>>,
    /// The use clock of the least-recently-used rule (movies and packages).
    clock: std::sync::atomic::AtomicU64,
    /// Lookups answered and not, for the server's metrics ([`MovieCache::stats`]).
    counts: [std::sync::atomic::AtomicU64; 6],
    /// The movies being opened right now, one opener each ([`Opening::turn`]).
    opening: Opening,
    /// Movies opened (files read), for tests of the single open.
    opened: std::sync::atomic::AtomicU64,
}

/// How long a miss waits for another's open of the same movie before opening it itself.
pub const OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The keys of movies being opened, and a condition their waiters sleep on.
#[derive(Default)]
struct Opening {
    keys: std::sync::Mutex<Vec<MovieKey>>,
    done: std::sync::Condvar,
}

impl Opening {
    /// Waits (at most [`OPEN_WAIT`]) while another thread opens `key`, then takes the turn:
    /// until the returned guard is dropped (also on an error or a panic), others wait.
    fn turn(&self, key: &MovieKey) -> Turn<'_> {
        let deadline = std::time::Instant::now() + OPEN_WAIT;
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        while keys.contains(key) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            keys = self.done.wait_timeout(keys, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        keys.push(key.clone());
        Turn { opening: self, key: key.clone() }
    }
}

/// One thread's turn to open a movie; ends when dropped, waking the waiters.
struct Turn<'a> {
    opening: &'a Opening,
    key: MovieKey,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut keys = self.opening.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = keys.iter().position(|k| *k == self.key) {
            keys.swap_remove(i);
        }
        drop(keys);
        self.opening.done.notify_all();
    }
}

/// How often [`MovieCache`] lookups were answered from it, since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// A seek's plan remembered for its movie (viewers seeking to the same point).
    pub plan_hits: u64,
    pub plan_misses: u64,
    /// An opened movie with its seek marks (or a fragmented MP4's fragment index), looked up
    /// when a plan or a package was not remembered.
    pub movie_hits: u64,
    pub movie_misses: u64,
    /// A movie's HLS/DASH package (segment index) for a clip and segment target: every
    /// playlist, manifest and segment request looks one up.
    pub segment_index_hits: u64,
    pub segment_index_misses: u64,
}

/// The identity of one version of a file as the cache knows it.
type MovieKey = (Version, u64, Option<std::time::SystemTime>);

/// What a package of a movie is built for: the clip's start and end, and the segment target
/// (as bits: the values are compared, never computed with).
type PackageKey = (Option<u64>, Option<u64>, u64);

struct CacheEntry {
    /// The file's identity, length and modification time when the movie was opened.
    key: MovieKey,
    /// The path it was opened under (checked by [`MovieCache::sweep`]).
    path: std::path::PathBuf,
    movie: Arc<crate::mp4::Movie>,
    used: u64,
    /// Recent plans, most recent last.
    plans: Vec<(Request, Plan)>,
    /// The movie as the packager sees it, made at its first package: the movie itself, or for
    /// a fragmented MP4 the sample tables made from its fragment index
    /// (`package::fragmented::made_tables`; let go with its last package).
    packaging: Option<Arc<crate::mp4::Movie>>,
    /// Its packages, built from `packaging`.
    packages: Vec<Packaged>,
}

/// One package kept in a movie's entry.
struct Packaged {
    key: PackageKey,
    package: Arc<crate::package::Package>,
    used: u64,
}

/// Plans remembered per cached movie.
pub const PLANS_PER_MOVIE: usize = 4;

/// Packages (segment indexes) kept over all cached movies.
pub const PACKAGES_HELD: usize = 32;

/// Counter slots of [`MovieCache`]: (hit, miss) of plans, movies and segment indexes.
const PLAN: usize = 0;
const MOVIE: usize = 2;
const SEGMENT_INDEX: usize = 4;

impl MovieCache {
    /// A cache of at most `capacity` movies.
    pub fn new(capacity: usize) -> MovieCache {
        MovieCache {
            capacity: capacity.max(1),
            entries: std::sync::Mutex::new(Vec::new()),
            clock: std::sync::atomic::AtomicU64::new(0),
            counts: Default::default(),
            opening: Opening::default(),
            opened: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many times a movie was opened (its file read) by this cache.
    pub fn opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts one lookup of `what` (`PLAN`, `MOVIE`, `SEGMENT_INDEX`), answered or not.
    fn count(&self, what: usize, hit: bool) {
        if let Some(c) = self.counts.get(what + usize::from(!hit)) {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The next tick of the use clock.
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    /// The lookups counted so far.
    pub fn stats(&self) -> CacheStats {
        let [ph, pm, mh, mm, sh, sm] = self.counts.each_ref().map(|c| c.load(std::sync::atomic::Ordering::Relaxed));
        CacheStats {
            plan_hits: ph,
            plan_misses: pm,
            movie_hits: mh,
            movie_misses: mm,
            segment_index_hits: sh,
            segment_index_misses: sm,
        }
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

    /// How many packages are held, over all movies.
    pub fn packages(&self) -> usize {
        self.lock().iter().map(|e| e.packages.len()).sum()
    }

    /// Media segments kept by the packages held, over all movies, and the bytes of their
    /// samples: memory copies outside the heap (`crate::sink::gather::stage`).
    pub fn kept_segments(&self) -> (usize, u64) {
        self.lock()
            .iter()
            .flat_map(|e| &e.packages)
            .map(|p| p.package.kept_segments())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    /// How many movies hold a packager's view (for tests of what is let go).
    pub fn views_held(&self) -> usize {
        self.lock().iter().filter(|e| e.packaging.is_some()).count()
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
        if let Some(held) = self.plan_held(&src, req, opts) {
            return held;
        }
        let key = (src.version.clone(), src.len, src.modified);
        let content_type = opts.content_type;
        // A plan remembered since `plan_held` looked is made again: no harm.
        let cached = self.find_movie(&key, path, opts.max_moov, PLAN, |e| Ok(e.movie.clone()))?;
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

    /// The plan of `req` on the file `src` identifies, when the cache remembers it (counted
    /// as a plan hit; `src` is not used up); `None`, with nothing counted, opened or read,
    /// when answering would take more than memory: a movie not held, a plan not remembered, a
    /// medium asked for as it is. What `serve` answers on its async threads ([`MovieCache::plan`]
    /// does the rest off them).
    pub fn plan_held(&self, src: &Source, req: &Request, opts: &Options) -> Option<Result<Plan>> {
        if opts.kind != Kind::Mp4 || untouched(req) {
            return None;
        }
        let key = (src.version.clone(), src.len, src.modified);
        // Two names of one file (a hard link, `a.m4a` → `a.mp4`) share the movie but not the
        // type their answers carry.
        let content_type = opts.content_type;
        let mut entries = self.lock();
        let e = entries.iter_mut().find(|e| e.key == key)?;
        let (_, plan) = e.plans.iter().find(|(r, p)| r == req && p.info.content_type == content_type)?;
        let plan = plan.clone();
        e.used = self.tick();
        let checked = e.movie.check_moov_size(opts.max_moov);
        drop(entries);
        self.count(PLAN, true);
        Some(checked.and_then(|()| within_limit(plan, opts)))
    }

    /// The package of the movie `src` identifies for `clip` and `segments`, with the view it
    /// was built from, when the cache holds it (counted as a segment-index hit); `None`, with
    /// nothing counted, opened or built, otherwise ([`MovieCache::package`] does that).
    pub fn package_held(
        &self,
        src: &Source,
        clip: crate::package::Clip,
        segments: &crate::package::Options,
        opts: &Options,
    ) -> Option<Result<(Arc<crate::mp4::Movie>, Arc<crate::package::Package>)>> {
        let key = (src.version.clone(), src.len, src.modified);
        let wanted = package_key(clip, segments);
        let mut entries = self.lock();
        let tick = self.tick();
        let e = entries.iter_mut().find(|e| e.key == key)?;
        let view = e.packaging.clone()?;
        let p = e.packages.iter_mut().find(|p| p.key == wanted)?;
        p.used = tick;
        let package = p.package.clone();
        e.used = tick;
        let checked = e.movie.check_moov_size(opts.max_moov).and_then(|()| view.check_moov_size(opts.max_moov));
        drop(entries);
        self.count(SEGMENT_INDEX, true);
        Some(checked.map(|()| (view, package)))
    }

    /// The HLS/DASH package of the MP4 movie at `path` for `clip` and `segments`, with the
    /// movie it was built from (for a fragmented MP4, the progressive view made from its
    /// fragments), through the cache: the movie is the entry progressive seeks use, opened
    /// once however it is served, and the package is kept in that entry. `src` identifies
    /// the file as in [`MovieCache::plan`]; a moov (or made tables) larger than
    /// `opts.max_moov` is refused.
    pub fn package(
        &self,
        path: &Path,
        src: Source,
        clip: crate::package::Clip,
        segments: &crate::package::Options,
        opts: &Options,
    ) -> Result<(Arc<crate::mp4::Movie>, Arc<crate::package::Package>)> {
        if let Some(held) = self.package_held(&src, clip, segments, opts) {
            return held;
        }
        let key = (src.version.clone(), src.len, src.modified);
        let wanted = package_key(clip, segments);
        let cached = self.find_movie(&key, path, opts.max_moov, SEGMENT_INDEX, |e| {
            if let Some(view) = &e.packaging {
                view.check_moov_size(opts.max_moov)?;
            }
            Ok((e.movie.clone(), e.packaging.clone()))
        })?;
        let (movie, view) = match cached {
            Some(held) => held,
            None => (self.open_movie(key.clone(), path, src, opts)?, None),
        };
        let view = match view {
            Some(v) => v,
            None => self.packaging_view(&key, movie, opts.max_moov)?,
        };
        let package = Arc::new(crate::package::Package::build(&view, clip, segments)?.keeping_segments());
        let mut entries = self.lock();
        let tick = self.tick();
        // Evicted meanwhile: answered, not kept.
        let Some(e) = entries.iter_mut().find(|e| e.key == key) else { return Ok((view, package)) };
        if let (Some(held), Some(p)) = (&e.packaging, e.packages.iter_mut().find(|p| p.key == wanted)) {
            // A concurrent miss built it first: that one is kept and shared.
            p.used = tick;
            return Ok((held.clone(), p.package.clone()));
        }
        match &e.packaging {
            // The entry was dropped and opened again meanwhile: this view becomes its own.
            None => e.packaging = Some(view.clone()),
            // Its packages are of another view: this one is answered, not kept.
            Some(held) if !Arc::ptr_eq(held, &view) => return Ok((view, package)),
            Some(_) => {}
        }
        e.packages.push(Packaged { key: wanted, package: package.clone(), used: tick });
        let evicted = evict_packages(&mut entries, PACKAGES_HELD);
        drop(entries);
        drop(evicted);
        Ok((view, package))
    }

    /// The movie lookup after a miss of `what` (`PLAN` or `SEGMENT_INDEX`, counted as such):
    /// a held movie is touched, checked against `max_moov` and given to `take`; on a miss an
    /// older version of the file under `path` is let go (unmapped and closed outside the lock)
    /// and `None` returned.
    fn find_movie<T>(
        &self,
        key: &MovieKey,
        path: &Path,
        max_moov: u64,
        what: usize,
        take: impl FnOnce(&CacheEntry) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut entries = self.lock();
        let tick = self.tick();
        if let Some(e) = entries.iter_mut().find(|e| e.key == *key) {
            e.used = tick;
            e.movie.check_moov_size(max_moov)?;
            let taken = take(e)?;
            self.count(what, false);
            self.count(MOVIE, true);
            return Ok(Some(taken));
        }
        self.count(what, false);
        self.count(MOVIE, false);
        let replaced = take_where(&mut entries, |e| e.path == path);
        drop(entries);
        drop(replaced);
        Ok(None)
    }

    /// The packager's view of the cached `movie` known as `key`: the one its entry holds, else
    /// made now (the movie itself, or tables made from a fragmented movie's fragment index).
    /// The entry takes a made view only with the first package built on it ([`MovieCache::package`]),
    /// so a clip that fails to package leaves nothing held, and a view made twice by
    /// concurrent misses is dropped outside the lock.
    fn packaging_view(
        &self,
        key: &MovieKey,
        movie: Arc<crate::mp4::Movie>,
        max_moov: u64,
    ) -> Result<Arc<crate::mp4::Movie>> {
        if let Some(held) = self.lock().iter().find(|e| &e.key == key).and_then(|e| e.packaging.clone()) {
            return Ok(held);
        }
        Ok(if movie.fragmented {
            Arc::new(crate::package::fragmented::made_tables(&movie, None, max_moov)?)
        } else {
            movie
        })
    }

    /// Opens the movie of a miss, resident (read, not mapped: a file truncated while served
    /// must not fault the server; its seek marks or fragment index built), and inserts it.
    /// One miss at a time opens a given movie; the others wait for it and take its entry.
    fn open_movie(&self, key: MovieKey, path: &Path, src: Source, opts: &Options) -> Result<Arc<crate::mp4::Movie>> {
        let _turn = self.opening.turn(&key);
        // Opened by the miss this one waited for.
        if let Some(e) = self.lock().iter_mut().find(|e| e.key == key) {
            e.used = self.tick();
            return Ok(e.movie.clone());
        }
        let resident = Options { resident: true, lean: false, marks_dir: None, ..opts.clone() };
        self.opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let m = crate::mp4::Movie::open_for(src, &resident)?;
        self.sweep();
        Ok(self.insert(key, path, Arc::new(m)))
    }

    /// Inserts a freshly opened movie, unless a concurrent miss inserted the same file first:
    /// then that one is used and `movie` dropped. Returns the movie to plan with.
    fn insert(&self, key: MovieKey, path: &Path, movie: Arc<crate::mp4::Movie>) -> Arc<crate::mp4::Movie> {
        let mut entries = self.lock();
        let tick = self.tick();
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
            packaging: None,
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

/// The key a package is kept under.
fn package_key(clip: crate::package::Clip, segments: &crate::package::Options) -> PackageKey {
    (clip.start.map(f64::to_bits), clip.end.map(f64::to_bits), segments.target.to_bits())
}

/// Removes the least recently used packages until at most `most` are held over all
/// `entries`; returns them (dropped by the caller outside the lock). A fragmented movie left
/// without packages lets go of its made tables too (rebuilt at its next package), so they
/// are held only beside packages.
fn evict_packages(entries: &mut [CacheEntry], most: usize) -> Vec<Packaged> {
    let mut out = Vec::new();
    let mut held: usize = entries.iter().map(|e| e.packages.len()).sum();
    while held > most {
        let oldest = entries
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.packages.iter().enumerate().map(move |(j, p)| (p.used, i, j)))
            .min();
        let Some((_, i, j)) = oldest else { break };
        if let Some(e) = entries.get_mut(i) {
            out.push(e.packages.swap_remove(j));
            if e.packages.is_empty() && e.movie.fragmented {
                e.packaging = None;
            }
        }
        held -= 1;
    }
    out
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
