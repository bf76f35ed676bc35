//! The source: the bytes of one medium and their identity. A [`Source`] is read at offsets
//! (`read_at`), knows its length and a version that changes whenever the bytes may have
//! (device, inode and status-change time for a local file; an ETag for a remote object), and
//! may offer a local file descriptor, which sinks use as an optimisation only (zero-copy
//! `sendfile`/`splice`/`copy_file_range`, a mapped `moov`). Nothing above this module assumes
//! a descriptor: a medium that has none (an object in a store read by HTTP range requests)
//! answers `None` there and is read with `read_at`.
//!
//! This module owns opening local files (regular files only) and the [`Medium`] trait a new
//! kind of source implements. It never parses bytes.

use crate::plan::PlanInfo;
use crate::{Error, Result};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// Where the bytes of a source come from: a local file, later an object in a store. An
/// implementation must be cheap to share between threads (it sits behind an `Arc` shared by
/// every plan and stream of the source).
pub trait Medium: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`, returning how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// The local file holding the bytes, when there is one: sinks copy from it in the kernel
    /// and one-shot processes may map it. `None` (the default) means: read with `read_at`.
    fn as_local_file(&self) -> Option<&File> {
        None
    }

    /// Fails with `UnexpectedEof` when the medium no longer holds the bytes a plan made at
    /// `len` bytes and modification time `modified` announced (a file truncated or rewritten
    /// in place while served). Called by sinks before an answer's first write, after a write
    /// that was short or failed, and every [`crate::sink::CHECK_EVERY`] bytes: must be cheap.
    fn check_unchanged(&self, _len: u64, _modified: SystemTime) -> io::Result<()> {
        Ok(())
    }
}

impl Medium for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    fn as_local_file(&self) -> Option<&File> {
        Some(self)
    }

    fn check_unchanged(&self, len: u64, modified: SystemTime) -> io::Result<()> {
        let st = rustix::fs::fstat(self)?;
        let then = modified.duration_since(std::time::UNIX_EPOCH).ok();
        let now = (u64::try_from(st.st_mtime).ok(), u32::try_from(st.st_mtime_nsec).ok());
        let same_time = then.is_some_and(|t| (Some(t.as_secs()), Some(t.subsec_nanos())) == now);
        if u64::try_from(st.st_size).unwrap_or(0) < len || (then.is_some() && !same_time) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the source file was truncated or overwritten while being sent",
            ));
        }
        Ok(())
    }
}

/// Bytes held in memory (tests, fuzzing, small synthetic media).
pub struct InMemory(pub Vec<u8>);

impl Medium for InMemory {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset) else { return Ok(0) };
        let src = self.0.get(start..).unwrap_or(&[]);
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        Ok(n)
    }
}

/// A local file's identity as of its opening: device, inode and status-change time. With the
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

/// Which version of a medium a source is: caches (movies, plans, seek marks, fragment
/// indexes) key on it together with the length and modification time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Version {
    /// Nothing known (tests, fuzzing): never matches a cached entry of a named source.
    #[default]
    Unknown,
    /// A local file: device, inode, status-change time.
    Local(FileId),
    /// An object in a store: its entity tag.
    Tag(Arc<str>),
}

impl Version {
    /// The local file identity, or the zero identity for other versions.
    pub fn file_id(&self) -> FileId {
        match self {
            Version::Local(id) => *id,
            _ => FileId::default(),
        }
    }
}

/// The bytes of one medium, their length and identity. Cheap to clone (shared medium).
#[derive(Clone)]
pub struct Source {
    medium: Arc<dyn Medium>,
    /// Its length in bytes at open time.
    pub len: u64,
    /// Its modification time.
    pub modified: Option<SystemTime>,
    /// Which version of the medium this is.
    pub version: Version,
}

impl Source {
    /// A source over any medium.
    pub fn new(medium: Arc<dyn Medium>, len: u64, modified: Option<SystemTime>, version: Version) -> Source {
        Source { medium, len, modified, version }
    }

    /// A source from an opened file and its metadata (the caller's one `fstat`).
    pub fn from_meta(file: File, meta: &std::fs::Metadata) -> Source {
        Source::new(Arc::new(file), meta.len(), meta.modified().ok(), Version::Local(FileId::of(meta)))
    }

    /// A source with no identity (tests, fuzzing): `len` bytes of `file`.
    pub fn nameless(file: Arc<File>, len: u64) -> Source {
        Source::new(file, len, None, Version::Unknown)
    }

    /// A source with no identity over bytes in memory.
    pub fn in_memory(bytes: Vec<u8>) -> Source {
        let len = bytes.len() as u64;
        Source::new(Arc::new(InMemory(bytes)), len, None, Version::Unknown)
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

    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.medium.read_at(buf, offset)
    }

    /// Fills `buf` from `offset`, or fails (`UnexpectedEof` when the medium ends first).
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.medium.read_at(buf, offset) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the source ended early")),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset = offset.checked_add(n as u64).ok_or_else(|| io::Error::other("offset overflows"))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The local file holding the bytes, when there is one (an optimisation only).
    pub fn as_local_file(&self) -> Option<&File> {
        self.medium.as_local_file()
    }

    /// See [`Medium::check_unchanged`].
    pub fn check_unchanged(&self, len: u64, modified: SystemTime) -> io::Result<()> {
        self.medium.check_unchanged(len, modified)
    }

    /// Whether two sources share one medium (the same opened file).
    pub fn same_medium(&self, other: &Source) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.medium), Arc::as_ptr(&other.medium))
    }

    /// Plan info with the source facts filled in.
    pub fn info(&self, content_type: &'static str) -> PlanInfo {
        PlanInfo { content_type, modified: self.modified, source_len: self.len, ..PlanInfo::default() }
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("len", &self.len).field("version", &self.version).finish_non_exhaustive()
    }
}
