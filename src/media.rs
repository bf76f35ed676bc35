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
pub struct Source {
    /// The open file, shared with the plan's sinks.
    pub file: Arc<File>,
    /// Its length in bytes at open time.
    pub len: u64,
    /// Its modification time.
    pub modified: Option<std::time::SystemTime>,
}

impl Source {
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
        Ok(Source { file: Arc::new(file), len: meta.len(), modified: meta.modified().ok() })
    }

    /// Plan info with the source facts filled in.
    pub fn info(&self, content_type: &'static str) -> PlanInfo {
        PlanInfo { content_type, modified: self.modified, source_len: self.len, ..PlanInfo::default() }
    }
}

/// Turns (file, request) into a plan. The file's kind comes from its extension.
pub fn open(path: &Path, req: &Request) -> Result<Plan> {
    let kind = Kind::of(path).ok_or_else(|| {
        Error::Unsupported(format!(
            "{}: unknown extension (loomiere serves mp4 m4v m4a mov f4v flv jpg png gif bmp)",
            path.display()
        ))
    })?;
    let src = Source::open(path)?;
    plan_for(kind, path, src, req)
}

/// Like [`open`], for a source that is already open.
pub fn plan_for(kind: Kind, path: &Path, src: Source, req: &Request) -> Result<Plan> {
    match kind {
        Kind::Mp4 => crate::mp4::plan(src, req, kind.content_type(path)),
        Kind::Flv => crate::flv::plan(src, req, kind.content_type(path)),
        Kind::Image(t) => {
            let info = src.info(t);
            Plan::whole_file(src.file, src.len, info)
        }
    }
}
