//! Path confinement: a request path becomes an open regular file inside the document root,
//! or a refusal. Two steps, so a signature can be checked before the file system is touched:
//!
//! 1. [`normalize`] (pure, apart from resolving a CGI `PATH_TRANSLATED` against the root):
//!    the decoded path is split into components; `.`/`..`, hidden names (leading `.`), NUL,
//!    control characters, backslashes and percent-encoded dots, slashes, backslashes or NULs
//!    (`%2e %2f %5c %00`, also double-encoded) are refused; empty components (`//`) are
//!    dropped, so a path is always relative to the root; the extension must be configured.
//! 2. [`open`]: the file is opened beneath the root with `openat2(RESOLVE_BENEATH)` where the
//!    kernel has it (no symlink or `..` may leave the root, race-free). When that one call
//!    opens a regular file, the kernel has already proved what the checks below prove, and
//!    nothing more is done (the common case, and the cheap one). Otherwise the real path
//!    (`realpath`) must lie inside the canonical root unless `follow_symlinks` is set, and
//!    must still have a served extension. The open uses `O_NONBLOCK` (a FIFO cannot stall
//!    us) and `O_NOFOLLOW`; the opened descriptor must be a regular file.
//!
//! It decides nothing about HTTP beyond which refusal (403 or 404) fits.

use crate::config::Config;
use crate::media::{Kind, Source};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::fs::File;
use std::path::{Component, Path, PathBuf};

/// The longest decoded path accepted, in bytes.
const MAX_PATH_BYTES: usize = 4096;
/// The most components accepted.
const MAX_COMPONENTS: usize = 64;

/// How the front end received the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The raw, still percent-encoded path of an HTTP request line (`/a%20b.mp4`).
    Url(String),
    /// A path the web server already decoded (CGI `PATH_INFO`, `SCRIPT_NAME`).
    Decoded(String),
    /// A file-system path the web server computed (CGI `PATH_TRANSLATED`).
    Translated(PathBuf),
}

/// Why a path is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// 403: the path tries something it may not (the reason, told to the client and logged,
    /// never holds a path on the server).
    Forbidden(String),
    /// 404: nothing there (the path on the server, for debugging; never told).
    NotFound(String),
    /// The path names a directory (403 unless a front end lists it).
    Directory(PathBuf),
}

impl PathError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            PathError::NotFound(_) => 404,
            PathError::Forbidden(_) | PathError::Directory(_) => 403,
        }
    }

    /// The reason, for the answer's body and the log line (the front end adds the URL
    /// path): no path on the server.
    pub fn reason(&self) -> String {
        match self {
            PathError::Forbidden(r) => r.clone(),
            PathError::NotFound(_) => "no such file".into(),
            PathError::Directory(_) => "is a directory".into(),
        }
    }
}

fn forbidden(why: impl Into<String>) -> PathError {
    PathError::Forbidden(why.into())
}

/// A checked path relative to the document root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelPath {
    /// Its components, each a plain name.
    pub components: Vec<String>,
}

impl RelPath {
    /// The path as a URL path: `/a/b.mp4` (what signed URLs sign).
    pub fn url_path(&self) -> String {
        let mut s = String::new();
        for c in &self.components {
            s.push('/');
            s.push_str(c);
        }
        if s.is_empty() {
            s.push('/');
        }
        s
    }

    /// The path relative to the root, for the file system.
    pub fn fs_path(&self) -> PathBuf {
        self.components.iter().collect()
    }

    /// The kind of file its extension names.
    pub fn kind(&self) -> Option<Kind> {
        Kind::of(Path::new(self.components.last()?))
    }
}

/// Checks and normalises a request path (step 1). The root itself (`/`) normalises to an
/// empty component list, which [`open`] reports as a directory.
pub fn normalize(cfg: &Config, target: &Target) -> Result<RelPath, PathError> {
    let rel = split_checked(&decoded(cfg, target)?)?;
    if let Some(last) = rel.components.last() {
        check_extension(cfg, Path::new(last))?;
    }
    Ok(rel)
}

/// [`normalize`] for a ladder sidecar (`title.ladder`, see `crate::package::ladder`): the
/// same checks except the extension rule (a sidecar is never served itself; the renditions
/// it names go through [`normalize`]).
pub fn normalize_sidecar(cfg: &Config, target: &Target) -> Result<RelPath, PathError> {
    split_checked(&decoded(cfg, target)?)
}

/// The request path as text, decoded once and checked for encoded specials before and after
/// decoding (a double-encoded `%252e` is refused as it would be under CGI).
fn decoded(cfg: &Config, target: &Target) -> Result<String, PathError> {
    Ok(match target {
        Target::Url(raw) => {
            reject_encoded_specials(raw)?;
            if !raw.starts_with('/') {
                return Err(forbidden("path does not start with /"));
            }
            let bytes =
                super::percent::decode(raw.as_bytes(), false).ok_or_else(|| forbidden("bad percent-encoding"))?;
            let text = String::from_utf8(bytes).map_err(|_| forbidden("path is not UTF-8"))?;
            reject_encoded_specials(&text)?;
            text
        }
        Target::Decoded(p) => {
            reject_encoded_specials(p)?;
            p.clone()
        }
        Target::Translated(p) => relative_to_root(cfg, p)?,
    })
}

/// Opens a ladder sidecar beneath the root with the rules of [`open`] (no way out of the
/// root unless `follow_symlinks`; a regular file only): its real path and the open file.
pub fn open_sidecar(cfg: &Config, rel: &RelPath) -> Result<(PathBuf, File), PathError> {
    let root = &cfg.document_root;
    let joined = root.join(rel.fs_path());
    let real = joined.canonicalize().map_err(|e| io_refusal(&e, &joined))?;
    if !real.starts_with(root) && !cfg.follow_symlinks {
        return Err(forbidden("leads outside the document root (through a symlink)"));
    }
    let fd = if cfg.follow_symlinks || rel.components.is_empty() {
        rustix::fs::open(&real, OPEN_FLAGS, Mode::empty()).map_err(|e| io_refusal(&e.into(), &real))?
    } else {
        open_beneath(root, &rel.fs_path(), OPEN_FLAGS).or_else(|e| match e {
            BeneathError::Unavailable => {
                rustix::fs::open(&real, OPEN_FLAGS, Mode::empty()).map_err(|e| io_refusal(&e.into(), &real))
            }
            BeneathError::Refused(r) => Err(r),
        })?
    };
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| io_refusal(&e, &real))?;
    if !meta.is_file() {
        return Err(forbidden("is not a regular file"));
    }
    Ok((real, file))
}

/// `%2e`, `%2f`, `%5c`, `%00` (any case) — also what a double-encoded `%252e` leaves after
/// the web server's decoding.
fn reject_encoded_specials(s: &str) -> Result<(), PathError> {
    let lower = s.to_ascii_lowercase();
    for bad in ["%2e", "%2f", "%5c", "%00"] {
        if lower.contains(bad) {
            return Err(forbidden(format!("encoded {bad} in path")));
        }
    }
    Ok(())
}

fn split_checked(decoded: &str) -> Result<RelPath, PathError> {
    if decoded.len() > MAX_PATH_BYTES {
        return Err(forbidden("path too long"));
    }
    if decoded.chars().any(|c| c.is_control() || c == '\\') {
        return Err(forbidden("control character or backslash in path"));
    }
    let mut components = Vec::new();
    for c in decoded.split('/').filter(|c| !c.is_empty()) {
        if c.starts_with('.') {
            return Err(forbidden(format!("dot component {c:?}")));
        }
        components.push(c.to_string());
        if components.len() > MAX_COMPONENTS {
            return Err(forbidden("too many path components"));
        }
    }
    Ok(RelPath { components })
}

fn check_extension(cfg: &Config, p: &Path) -> Result<Kind, PathError> {
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    match Kind::of(p) {
        Some(k) if cfg.allows_extension(ext) => Ok(k),
        _ => Err(forbidden(format!("extension {ext:?} is not served"))),
    }
}

/// The part of a CGI `PATH_TRANSLATED` below the root, as text.
fn relative_to_root(cfg: &Config, p: &Path) -> Result<String, PathError> {
    if !p.is_absolute() {
        return Err(forbidden("PATH_TRANSLATED is not absolute"));
    }
    let text = p.to_str().ok_or_else(|| forbidden("PATH_TRANSLATED is not UTF-8"))?;
    if p.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) || text.contains("/./") {
        return Err(forbidden("dot component in PATH_TRANSLATED"));
    }
    reject_encoded_specials(text)?;
    let root = &cfg.document_root;
    let rel = match p.strip_prefix(root) {
        Ok(r) => r.to_path_buf(),
        Err(_) => {
            // The web server may spell the root through a symlink (/var/www → /srv/www):
            // resolve it and try again; the real-path check in `open` still applies.
            let real = p.canonicalize().map_err(|e| io_refusal(&e, p))?;
            real.strip_prefix(root)
                .map_err(|_| forbidden("PATH_TRANSLATED is outside the document root"))?
                .to_path_buf()
        }
    };
    rel.to_str().map(|s| format!("/{s}")).ok_or_else(|| forbidden("path is not UTF-8"))
}

fn io_refusal(e: &std::io::Error, p: &Path) -> PathError {
    match e.kind() {
        std::io::ErrorKind::NotFound => PathError::NotFound(p.display().to_string()),
        _ => forbidden(format!("cannot be opened: {}", crate::error::plain_io(e))),
    }
}

/// An opened file inside the root.
pub struct Opened {
    /// The file's path inside the root, for the extension and log lines: its real path, or
    /// (when opened beneath the root in one step) the root joined with the request path,
    /// which may still pass through symlinks inside the root.
    pub real: PathBuf,
    /// What it is, by the extension of the requested name.
    pub kind: Kind,
    /// The open file with its length and mtime.
    pub source: Source,
}

/// Opens a normalised path beneath the root (step 2).
pub fn open(cfg: &Config, rel: &RelPath) -> Result<Opened, PathError> {
    if let Some(opened) = open_regular_beneath(cfg, rel) {
        return Ok(opened);
    }
    open_checked(cfg, rel)
}

/// The fast path (issue 6: no `realpath` walk — a `readlink` per component of root and
/// path — and no extra `stat`, on every CGI request): a single `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` with `O_NOFOLLOW`.
/// When it opens a regular file, the kernel has guaranteed what [`open_checked`] verifies by
/// hand: no step of the resolution left the root (`..`, absolute symlinks and symlinks
/// pointing out are refused) and the last component is not a symlink, so the file's real
/// name is the requested one, with its served extension. Anything else — a symlink at the
/// end, a directory, a non-regular file, an error, `follow_symlinks`, an old kernel — is
/// `None`: the checked path decides (and words the refusal).
fn open_regular_beneath(cfg: &Config, rel: &RelPath) -> Option<Opened> {
    if cfg.follow_symlinks {
        return None;
    }
    let kind = rel.kind()?;
    let fs_path = rel.fs_path();
    let fd = open_beneath_once(&cfg.document_root, &fs_path).ok()?;
    let file = File::from(fd);
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let source = Source::from_meta(file, &meta);
    Some(Opened { real: cfg.document_root.join(fs_path), kind, source })
}

/// One `openat2` beneath `root` with the flags [`open`] uses, no fallback.
fn open_beneath_once(root: &Path, rel: &Path) -> rustix::io::Result<rustix::fd::OwnedFd> {
    let dir = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    rustix::fs::openat2(&dir, rel, OPEN_FLAGS, Mode::empty(), ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS)
}

/// How media files are opened: read-only, never blocking on a FIFO, never following a
/// symlink as the last component, never becoming a controlling terminal.
const OPEN_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::NONBLOCK).union(OFlags::CLOEXEC).union(OFlags::NOCTTY).union(OFlags::NOFOLLOW);

/// The checked path: the real path must lie inside the root (unless `follow_symlinks`),
/// then the file is opened beneath the root where the kernel can, else by its real path.
fn open_checked(cfg: &Config, rel: &RelPath) -> Result<Opened, PathError> {
    let root = &cfg.document_root;
    let joined = root.join(rel.fs_path());
    let real = joined.canonicalize().map_err(|e| io_refusal(&e, &joined))?;
    let inside = real.starts_with(root);
    if !inside && !cfg.follow_symlinks {
        return Err(forbidden("leads outside the document root (through a symlink)"));
    }
    let meta = std::fs::metadata(&real).map_err(|e| io_refusal(&e, &real))?;
    if meta.is_dir() {
        return Err(PathError::Directory(real));
    }
    let Some(kind) = rel.kind() else { return Err(forbidden("no file name")) };
    // A symlink inside the root must not turn `a.mp4` into a file type we do not serve.
    check_extension(cfg, &real)?;

    let flags = OPEN_FLAGS;
    let fd = if cfg.follow_symlinks || rel.components.is_empty() {
        rustix::fs::open(&real, flags, Mode::empty()).map_err(|e| io_refusal(&e.into(), &real))?
    } else {
        open_beneath(root, &rel.fs_path(), flags).or_else(|e| match e {
            BeneathError::Unavailable => {
                rustix::fs::open(&real, flags, Mode::empty()).map_err(|e| io_refusal(&e.into(), &real))
            }
            BeneathError::Refused(r) => Err(r),
        })?
    };
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| io_refusal(&e, &real))?;
    if meta.is_dir() {
        return Err(PathError::Directory(real));
    }
    if !meta.is_file() {
        return Err(forbidden("is not a regular file"));
    }
    let source = Source::from_meta(file, &meta);
    Ok(Opened { real, kind, source })
}

enum BeneathError {
    Unavailable,
    Refused(PathError),
}

/// `openat2(root, rel, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: the kernel refuses any
/// resolution step (`..`, an absolute symlink, a symlink out) that leaves the root.
fn open_beneath(root: &Path, rel: &Path, flags: OFlags) -> Result<rustix::fd::OwnedFd, BeneathError> {
    use rustix::io::Errno;
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = rustix::fs::open(root, dir_flags, Mode::empty())
        .map_err(|e| BeneathError::Refused(io_refusal(&e.into(), root)))?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(&dir, rel, flags, Mode::empty(), resolve) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOSYS) | Err(Errno::PERM) | Err(Errno::INVAL) => Err(BeneathError::Unavailable),
        Err(Errno::XDEV) | Err(Errno::LOOP) => {
            // A symlink on the way: an absolute one (refused by BENEATH even when it points
            // inside), or the last component (NOFOLLOW). The real path was checked by the
            // caller; open exactly that, with no symlink allowed at all, so a link swapped
            // in meanwhile is refused rather than followed.
            let real = root.join(rel).canonicalize().map_err(|e| BeneathError::Refused(io_refusal(&e, rel)))?;
            let real_rel = real
                .strip_prefix(root)
                .map_err(|_| BeneathError::Refused(forbidden("path escapes the document root")))?
                .to_path_buf();
            rustix::fs::openat2(&dir, &real_rel, flags, Mode::empty(), resolve | ResolveFlags::NO_SYMLINKS)
                .map_err(|e| BeneathError::Refused(io_refusal(&e.into(), &real)))
        }
        Err(e) => Err(BeneathError::Refused(io_refusal(&e.into(), rel))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::with_root(&std::env::temp_dir()).unwrap()
    }

    #[test]
    fn normalizes_good_paths() {
        let c = cfg();
        let r = normalize(&c, &Target::Url("/a%20b//c/d.mp4".into())).unwrap();
        assert_eq!(r.components, vec!["a b", "c", "d.mp4"]);
        assert_eq!(r.url_path(), "/a b/c/d.mp4");
        let r = normalize(&c, &Target::Decoded("x/Y.FLV".into())).unwrap();
        assert_eq!(r.url_path(), "/x/Y.FLV");
        let t = c.document_root.join("v/a.mp4");
        assert_eq!(normalize(&c, &Target::Translated(t)).unwrap().url_path(), "/v/a.mp4");
        assert_eq!(normalize(&c, &Target::Url("/".into())).unwrap().components.len(), 0);
    }

    #[test]
    fn refuses_hostile_paths() {
        let c = cfg();
        for bad in [
            "/../etc/passwd.mp4",
            "/a/../../x.mp4",
            "/%2e%2e/x.mp4",
            "/%2E%2E/x.mp4",
            "/a%2fb.mp4",
            "/a%5cb.mp4",
            "/a%00.mp4",
            "/a%252e%252e/x.mp4",
            "/a\\..\\b.mp4",
            "/.hidden.mp4",
            "/./a.mp4",
            "/a.txt",
            "/a.mp4.txt",
            "/a",
            "relative.mp4",
            "/a%zz.mp4",
            "/a%ff.mp4",
            "/a\u{1}.mp4",
        ] {
            assert!(normalize(&c, &Target::Url(bad.into())).is_err(), "{bad:?} accepted");
        }
        for bad in ["/../x.mp4", "../x.mp4", "/a/%2e%2e/x.mp4", "/a\0.mp4", "/a\\b.mp4"] {
            assert!(normalize(&c, &Target::Decoded(bad.into())).is_err(), "{bad:?} accepted");
        }
        for bad in ["/etc/passwd.mp4", "relative.mp4"] {
            assert!(normalize(&c, &Target::Translated(bad.into())).is_err(), "{bad:?} accepted");
        }
        let up = c.document_root.join("a/../../etc/x.mp4");
        assert!(normalize(&c, &Target::Translated(up)).is_err());
    }
}
