//! The engine's front door: (file, request) → plan. Opens the file, refuses what is not a
//! regular file, picks the container by extension and hands over to `mp4` or
//! `flv`; images and unseeked files become a whole-file plan. Front ends call only this.
//! Path confinement is not done here: callers pass a path they have already resolved.

use crate::plan::{Plan, PlanInfo};
use crate::request::Request;
use crate::{Error, Result};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// What a file is, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// ISO base media: `.mp4 .m4v .m4a .mov .f4v`.
    Mp4,
    /// Flash video: `.flv`.
    Flv,
    /// A still image served as it is, with its MIME type.
    Image(&'static str),
}

impl Kind {
    /// The kind for a path's extension (case-insensitive), or `None` if loomiere does not
    /// serve it.
    pub fn of(path: &Path) -> Option<Kind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "mp4" | "m4v" | "m4a" | "mov" | "f4v" => Kind::Mp4,
            "flv" => Kind::Flv,
            "jpg" | "jpeg" => Kind::Image("image/jpeg"),
            "png" => Kind::Image("image/png"),
            "gif" => Kind::Image("image/gif"),
            "bmp" => Kind::Image("image/bmp"),
            _ => return None,
        })
    }

    /// MIME type of whole files of this kind.
    pub fn content_type(self, path: &Path) -> &'static str {
        match self {
            Kind::Mp4 => match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
                Some("m4a") => "audio/mp4",
                Some("mov") => "video/quicktime",
                _ => "video/mp4",
            },
            Kind::Flv => "video/x-flv",
            Kind::Image(t) => t,
        }
    }
}

/// An open source file with the facts every plan needs.
#[derive(Clone)]
pub struct Source {
    /// The open file, shared with the plan's sinks.
    pub file: Arc<File>,
    /// Its length in bytes at open time.
    pub len: u64,
    /// Its modification time.
    pub modified: Option<std::time::SystemTime>,
    /// Which file this is (zero for a nameless one, e.g. in tests): caches key on it.
    pub id: FileId,
}

/// A file's identity as of its opening: device, inode and status-change time. With the
/// length and modification time it tells a file replaced or rewritten in place (a write
/// always moves the status-change time, even when the modification time is set back).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub ctime_ns: u64,
}

impl FileId {
    /// The identity in `meta`.
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        let ctime_ns = (meta.ctime() as u64).wrapping_mul(1_000_000_000).wrapping_add(meta.ctime_nsec() as u64);
        FileId { dev: meta.dev(), ino: meta.ino(), ctime_ns }
    }
}

impl Source {
    /// A source from an opened file and its metadata (the caller's one `fstat`).
    pub fn from_meta(file: File, meta: &std::fs::Metadata) -> Source {
        Source { file: Arc::new(file), len: meta.len(), modified: meta.modified().ok(), id: FileId::of(meta) }
    }

    /// A source with no identity (tests, fuzzing): `len` bytes of `file`.
    pub fn nameless(file: Arc<File>, len: u64) -> Source {
        Source { file, len, modified: None, id: FileId::default() }
    }

    /// Opens `path` for reading; only regular files are accepted (no directories, devices,
    /// FIFOs, sockets).
    pub fn open(path: &Path) -> Result<Source> {
        let file = File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        let meta = file.metadata().map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(Error::io(
                format!("{} is not a regular file", path.display()),
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, "not a regular file"),
            ));
        }
        Ok(Source::from_meta(file, &meta))
    }

    /// Plan info with the source facts filled in.
    pub fn info(&self, content_type: &'static str) -> PlanInfo {
        PlanInfo { content_type, modified: self.modified, source_len: self.len, ..PlanInfo::default() }
    }
}

/// Turns (file, request) into a plan. The file's kind comes from its extension.
pub fn open(path: &Path, req: &Request) -> Result<Plan> {
    let kind = kind_of(path)?;
    let src = Source::open(path)?;
    plan_for(kind, path, src, req)
}

/// Like [`open`], for a process that plans once and then writes the whole prefix (`cut`): an
/// MP4 seek forgets the moov's pages between phases and while the prefix is emitted, so the
/// process's peak memory holds about one table's pages instead of every page of the moov it
/// read (see `mp4::MoovBytes::forget_pages`). The CGI path does not use it: re-reading the
/// pages costs about 0.2 ms on a 2-hour movie, and a CGI process exits right after.
pub fn open_lean(path: &Path, req: &Request) -> Result<Plan> {
    let kind = kind_of(path)?;
    let src = Source::open(path)?;
    match kind {
        Kind::Mp4 if rewrites(req) => crate::mp4::plan_lean(src, req, kind.content_type(path)),
        _ => plan_for(kind, path, src, req),
    }
}

/// Like [`plan_for`] for a server's one request (CGI, inetd): an MP4 whose moov is larger than
/// `max_moov` is refused before the seek, and with `marks_dir` (`index_cache`) the movie's
/// seek marks are kept there between processes (see `mp4::marks`).
pub fn plan_limited(
    kind: Kind,
    path: &Path,
    src: Source,
    req: &Request,
    max_moov: u64,
    marks_dir: Option<&Path>,
) -> Result<Plan> {
    match kind {
        Kind::Mp4 if rewrites(req) => crate::mp4::plan_limited(src, req, kind.content_type(path), max_moov, marks_dir),
        _ => plan_for(kind, path, src, req),
    }
}

/// Whether an MP4 request needs a rewritten moov (else the file is served as it is).
fn rewrites(req: &Request) -> bool {
    req.start.is_some() || req.end.is_some() || req.force_co64
}

/// The kind of `path` by its extension, or an error naming the extensions loomiere serves.
fn kind_of(path: &Path) -> Result<Kind> {
    Kind::of(path).ok_or_else(|| {
        Error::Unsupported(format!(
            "{}: unknown extension (loomiere serves mp4 m4v m4a mov f4v flv jpg png gif bmp)",
            path.display()
        ))
    })
}

/// Like [`open`], for a source that is already open.
pub fn plan_for(kind: Kind, path: &Path, src: Source, req: &Request) -> Result<Plan> {
    match kind {
        // Nothing to seek: the file as it is (byte-exact, cacheable, no moov work beyond
        // reading the duration and where the media data lies, for the throttle).
        Kind::Mp4 if !rewrites(req) => crate::mp4::whole::plan(src, kind.content_type(path)),
        Kind::Mp4 => crate::mp4::plan(src, req, kind.content_type(path)),
        Kind::Flv => crate::flv::plan(src, req, kind.content_type(path)),
        Kind::Image(t) => {
            let info = src.info(t);
            Plan::whole_file(src.file, src.len, info)
        }
    }
}

/// Opened MP4 movies shared between requests, so that the viewers of one file share one copy
/// of its `moov` (read once with `pread`, never mapped: see `mp4::Movie::open_read`), and of
/// a fragmented MP4 its fragment index (`crate::fmp4`), instead of reading them each. A file is
/// known by device, inode, status-change time, length and modification time: a replaced or
/// modified file is opened afresh. Holds at most `capacity` movies, dropping the least recently
/// used, and for each the plans of its last [`PLANS_PER_MOVIE`] distinct requests: viewers who
/// seek to the same point (a shared `?start=` link, a chapter, the page's default start) get
/// the plan without a table scan. A plan is a few hundred bytes of segment descriptions over
/// the shared moov, so the memo stays small.
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
    /// Lookups answered and not, for the server's metrics ([`MovieCache::stats`]).
    counts: [std::sync::atomic::AtomicU64; 4],
}

/// How often [`MovieCache`] lookups were answered from it, since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// A seek's plan remembered for its movie (viewers seeking to the same point).
    pub plan_hits: u64,
    pub plan_misses: u64,
    /// An opened movie with its seek marks (or a fragmented MP4's fragment index).
    pub movie_hits: u64,
    pub movie_misses: u64,
}

/// The identity of one version of a file as the cache knows it.
type MovieKey = (FileId, u64, Option<std::time::SystemTime>);

struct CacheEntry {
    /// The file's identity, length and modification time when the movie was opened.
    key: MovieKey,
    /// The path it was opened under (checked by [`MovieCache::sweep`]).
    path: std::path::PathBuf,
    movie: Arc<crate::mp4::Movie>,
    used: u64,
    /// Recent plans, most recent last.
    plans: Vec<(Request, Plan)>,
}

/// Plans remembered per cached movie.
pub const PLANS_PER_MOVIE: usize = 4;

impl MovieCache {
    /// A cache of at most `capacity` movies.
    pub fn new(capacity: usize) -> MovieCache {
        MovieCache { capacity: capacity.max(1), entries: std::sync::Mutex::new(Vec::new()), counts: Default::default() }
    }

    /// Counts one lookup: `plan` hit or not, and when not, `movie` hit or not.
    fn count(&self, plan: bool, movie: Option<bool>) {
        use std::sync::atomic::Ordering::Relaxed;
        let [ph, pm, mh, mm] = &self.counts;
        if plan { ph } else { pm }.fetch_add(1, Relaxed);
        match movie {
            Some(true) => mh.fetch_add(1, Relaxed),
            Some(false) => mm.fetch_add(1, Relaxed),
            None => 0,
        };
    }

    /// The lookups counted so far.
    pub fn stats(&self) -> CacheStats {
        let [ph, pm, mh, mm] = self.counts.each_ref().map(|c| c.load(std::sync::atomic::Ordering::Relaxed));
        CacheStats { plan_hits: ph, plan_misses: pm, movie_hits: mh, movie_misses: mm }
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

    /// Like [`open`], reusing the opened movie for MP4 seeks.
    pub fn open(&self, path: &Path, req: &Request) -> Result<Plan> {
        self.plan_for(kind_of(path)?, path, Source::open(path)?, req, u64::MAX)
    }

    /// Like [`plan_for`], reusing the opened movie for MP4 seeks: `src` (opened by the caller,
    /// e.g. after path confinement) identifies the file; on a hit it is simply closed and the
    /// cached movie's descriptor serves the plan.
    /// A moov larger than `max_moov` is refused before any work that grows with it.
    pub fn plan_for(&self, kind: Kind, path: &Path, src: Source, req: &Request, max_moov: u64) -> Result<Plan> {
        let seeks_mp4 = kind == Kind::Mp4 && rewrites(req);
        if !seeks_mp4 {
            return plan_for(kind, path, src, req);
        }
        let key = (src.id, src.len, src.modified);
        // Two names of one file (a hard link, `a.m4a` → `a.mp4`) share the movie but not the
        // type their answers carry.
        let content_type = kind.content_type(path);
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
                        self.count(true, None);
                        return Ok(plan.clone());
                    }
                    self.count(false, Some(true));
                    (Some(e.movie.clone()), Vec::new())
                }
                // A miss: an older version of the file under this name is let go now.
                None => {
                    self.count(false, Some(false));
                    (None, take_where(&mut entries, |e| e.path == path))
                }
            }
        };
        drop(replaced); // unmapped and closed outside the lock
        let movie = match cached {
            Some(m) => m,
            None => {
                // Read, not mapped: a file truncated while served must not fault the server.
                let mut m = crate::mp4::Movie::open_read(src, max_moov)?;
                m.build_indexes()?;
                self.sweep();
                self.insert(key, path, Arc::new(m))
            }
        };
        let plan = movie.plan(req, content_type)?;
        let mut entries = self.lock();
        if let Some(e) = entries.iter_mut().find(|e| e.key == key) {
            if e.plans.len() >= PLANS_PER_MOVIE {
                e.plans.remove(0);
            }
            e.plans.push((req.clone(), plan.clone()));
        }
        Ok(plan)
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
        entries.push(CacheEntry { key, path: path.to_path_buf(), movie: movie.clone(), used: tick, plans: Vec::new() });
        drop(entries);
        drop(evicted);
        movie
    }

    /// Lets go of every movie whose file was deleted (no link left to the held descriptor) or
    /// whose path now names another file (replaced, renamed away) or nothing. The checks run
    /// outside the lock; a movie dropped while a viewer still streams it is closed when that
    /// stream ends.
    pub fn sweep(&self) {
        let held: Vec<(MovieKey, std::path::PathBuf, Arc<File>)> =
            self.lock().iter().map(|e| (e.key, e.path.clone(), e.movie.src.file.clone())).collect();
        let stale: Vec<MovieKey> =
            held.into_iter().filter(|(key, path, file)| !still_current(key.0, path, file)).map(|(k, ..)| k).collect();
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

/// Whether the file held open as `file`, known as `id`, still has a link and is still what
/// `path` names.
fn still_current(id: FileId, path: &Path, file: &File) -> bool {
    match rustix::fs::fstat(file) {
        Ok(st) if st.st_nlink > 0 => {}
        _ => return false,
    }
    std::fs::metadata(path).is_ok_and(|meta| FileId::of(&meta) == id)
}
