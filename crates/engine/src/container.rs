//! Containers: the one trait every media format implements ([`Container`]: open a source,
//! describe it, plan a request, inspect, index) and the one registry of kinds ([`FORMATS`]:
//! extensions, content types, how a bare query position reads, which container opens it).
//! Config defaults, the listing, the CLI's dispatch and the error messages that name what
//! loomiere serves are all derived from the registry; nothing else matches on extensions.
//!
//! This module owns the dispatch by kind. It never parses bytes (the containers do: `mp4`
//! with `fmp4`, `flv`, [`Image`]) and knows nothing of HTTP.

use crate::plan::Plan;
use crate::request::{BareUnit, Request};
use crate::source::Source;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// What a medium is, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// ISO base media, progressive or fragmented: `.mp4 .m4v .m4a .mov .f4v`.
    Mp4,
    /// Flash video: `.flv`.
    Flv,
    /// A still image served as it is, with its MIME type.
    Image(&'static str),
}

/// One row of the registry: a container and the extensions it serves.
pub struct Format {
    /// Short name (`mp4`, `flv`, `image`).
    pub name: &'static str,
    /// Extensions (lower case, no dot) with the content type of whole files of each, and
    /// the kind (images carry their own type).
    pub extensions: &'static [(&'static str, &'static str)],
    /// The kind of this format's media (for images, `Kind::Image` with the content type of
    /// the extension at hand: see [`Format::kind_for`]).
    pub kind: Kind,
    /// What a bare number in `start`/`end` means for this format over HTTP; `None`: the
    /// format does not seek (positions are ignored).
    pub bare_unit: Option<BareUnit>,
    /// Plans a request for the medium as it is (no position, no rewrite) without opening
    /// it: the source byte for byte, with what the headers and throttle need. `None`: the
    /// container plans such requests itself.
    pub plan_as_is: Option<fn(Source, &Options) -> Result<Plan>>,
    /// Opens a source of this format. The request path's functions (`open`, `plan_as_is`)
    /// are named functions of their containers rather than closures: a closure here is
    /// compiled as a separate shim far from the container's code, one more page of text
    /// for every CGI process to fault in.
    pub open: fn(Source, &Options) -> Result<Box<dyn Container>>,
    /// The inspection report of a source (tolerates damage: says where it is).
    pub inspect: Option<fn(Source, &Options) -> Result<Inspection>>,
    /// The indexed rewrite of a source (moov first, `onMetaData` keyframes).
    pub index: Option<IndexFn>,
    /// Whether a source is already indexed (`index --check`).
    pub check_index: Option<fn(Source, &Options) -> Result<IndexCheck>>,
}

/// Builds a format's indexed rewrite; the callback gets the offset reached by the walk.
pub type IndexFn = fn(Source, &Options, &mut dyn FnMut(u64)) -> Result<Indexed>;

/// Every format loomiere serves, in the order the messages list them.
pub static FORMATS: &[Format] = &[
    Format {
        name: "mp4",
        extensions: &[
            ("mp4", "video/mp4"),
            ("m4v", "video/mp4"),
            ("m4a", "audio/mp4"),
            ("mov", "video/quicktime"),
            ("f4v", "video/mp4"),
        ],
        kind: Kind::Mp4,
        bare_unit: Some(BareUnit::Seconds),
        plan_as_is: Some(crate::mp4::whole::plan_as_is),
        open: crate::mp4::Movie::open_container,
        inspect: Some(|src, o| {
            let options = crate::mp4::inspect::Options { keyframes: o.keyframes };
            Ok(Inspection::Mp4(crate::mp4::inspect_with(src, options)))
        }),
        index: Some(|src, o, progress| crate::mp4::faststart::index(src, o, progress).map(Indexed::Mp4)),
        check_index: Some(|src, _| {
            let movie = crate::mp4::Movie::open(src)?;
            let (indexed, line) = if crate::mp4::faststart::is_faststart(&movie) {
                (true, "moov is before mdat (faststart)")
            } else if movie.fragmented {
                (false, "fragmented MP4 (run `loomiere index` to defragment it)")
            } else {
                (false, "moov is after mdat (run `loomiere index` to move it to the front)")
            };
            Ok(IndexCheck { indexed, lines: vec![line.to_string()] })
        }),
    },
    Format {
        name: "flv",
        extensions: &[("flv", "video/x-flv")],
        kind: Kind::Flv,
        bare_unit: Some(BareUnit::Bytes),
        plan_as_is: None,
        open: crate::flv::FlvFile::open_container,
        inspect: Some(|src, o| Ok(Inspection::Flv(crate::flv::inspect::inspect_with(&src, o.keyframes)?))),
        index: Some(|src, _, progress| crate::flv::index::build(src, progress).map(Indexed::Flv)),
        check_index: Some(|src, _| {
            let c = crate::flv::index::check(&src)?;
            let lines =
                if c.ok { vec![format!("index is correct ({} keyframes)", c.keyframes)] } else { c.problems.clone() };
            Ok(IndexCheck { indexed: c.ok, lines })
        }),
    },
    Format {
        name: "image",
        extensions: &[
            ("jpg", "image/jpeg"),
            ("jpeg", "image/jpeg"),
            ("png", "image/png"),
            ("gif", "image/gif"),
            ("bmp", "image/bmp"),
        ],
        kind: Kind::Image(""),
        bare_unit: None,
        plan_as_is: Some(Image::plan_as_is),
        open: Image::open_container,
        inspect: None,
        index: None,
        check_index: None,
    },
];

impl Kind {
    /// The kind for a path's extension (case-insensitive), or `None` if loomiere does not
    /// serve it.
    pub fn of(path: &Path) -> Option<Kind> {
        let (format, ty) = lookup(path)?;
        Some(format.kind_for(ty))
    }

    /// MIME type of whole files of this kind under `path`'s extension.
    pub fn content_type(self, path: &Path) -> &'static str {
        match (self, lookup(path)) {
            (Kind::Image(t), _) => t,
            (_, Some((_, t))) => t,
            (Kind::Mp4, None) => "video/mp4",
            (Kind::Flv, None) => "video/x-flv",
        }
    }

    /// The registry row of this kind.
    pub fn format(self) -> &'static Format {
        let name = match self {
            Kind::Mp4 => "mp4",
            Kind::Flv => "flv",
            Kind::Image(_) => "image",
        };
        FORMATS.iter().find(|f| f.name == name).unwrap_or(&FORMATS[0])
    }

    /// The kind of `path` by its extension, or an error naming the extensions served.
    pub fn of_path(path: &Path) -> Result<Kind> {
        Kind::of(path).ok_or_else(|| {
            Error::Unsupported(format!(
                "{}: unknown extension (loomiere serves {})",
                path.display(),
                extensions().collect::<Vec<_>>().join(" ")
            ))
        })
    }
}

impl Format {
    /// The kind of a medium of this format whose extension has content type `ty`.
    pub fn kind_for(&self, ty: &'static str) -> Kind {
        match self.kind {
            Kind::Image(_) => Kind::Image(ty),
            kind => kind,
        }
    }
}

/// The registry row and content type for `path`'s extension.
fn lookup(path: &Path) -> Option<(&'static Format, &'static str)> {
    let ext = path.extension()?.to_str()?;
    FORMATS.iter().find_map(|f| f.extensions.iter().find(|(e, _)| e.eq_ignore_ascii_case(ext)).map(|(_, t)| (f, *t)))
}

/// Every extension loomiere serves, in registry order (config defaults, messages).
pub fn extensions() -> impl Iterator<Item = &'static str> {
    FORMATS.iter().flat_map(|f| f.extensions.iter().map(|(e, _)| *e))
}

/// The extensions of the formats that have `what` (for messages like "inspect reads .mp4
/// (.m4v .m4a .mov .f4v) and .flv files").
pub fn described(has: impl Fn(&Format) -> bool) -> String {
    let parts: Vec<String> = FORMATS
        .iter()
        .filter(|f| has(f))
        .map(|f| {
            let mut e = f.extensions.iter().map(|(e, _)| format!(".{e}"));
            let first = e.next().unwrap_or_default();
            let rest: Vec<String> = e.collect();
            if rest.is_empty() {
                first
            } else {
                format!("{first} ({})", rest.join(" "))
            }
        })
        .collect();
    parts.join(" and ")
}

/// Options of opening and planning. The defaults suit a one-shot plan of a local file.
#[derive(Clone, Debug)]
pub struct Options {
    /// The kind of the medium (from the registry, by the path's extension).
    pub kind: Kind,
    /// MIME type of the answers (from the registry, by the path's extension).
    pub content_type: &'static str,
    /// The largest index (an MP4 `moov`) to work on; larger is refused before it is read
    /// (a server's `max_moov_bytes`).
    pub max_moov: u64,
    /// Where seek marks and fragment indexes are kept between processes (`index_cache`).
    pub marks_dir: Option<PathBuf>,
    /// Planned once and written whole (`cut`): memory is given back between phases.
    pub lean: bool,
    /// Kept by a long-lived process (`serve`): the index is read into memory (never mapped,
    /// so a file truncated while served cannot fault the process) and its seek indexes built.
    pub resident: bool,
    /// Inspection lists every keyframe.
    pub keyframes: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            kind: Kind::Mp4,
            content_type: "video/mp4",
            max_moov: crate::mp4::MAX_MOOV,
            marks_dir: None,
            lean: false,
            resident: false,
            keyframes: false,
        }
    }
}

impl Options {
    /// Default options for the medium at `path` (its kind and content type), or an error
    /// naming the extensions loomiere serves.
    pub fn for_path(path: &Path) -> Result<Options> {
        let kind = Kind::of_path(path)?;
        Ok(Options::for_kind(kind, path))
    }

    /// Default options for a medium of `kind` named `path`.
    pub fn for_kind(kind: Kind, path: &Path) -> Options {
        Options { kind, content_type: kind.content_type(path), ..Options::default() }
    }
}

/// What a container says about a medium without planning.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Description {
    /// Playing time in seconds, when it is media and known.
    pub duration: Option<f64>,
    /// Tracks (MP4) or streams (FLV: audio, video).
    pub tracks: usize,
}

/// An inspection report, by container.
pub enum Inspection {
    Mp4(crate::mp4::inspect::Report),
    Flv(crate::flv::inspect::Report),
}

/// An indexed rewrite, by container: a plan to write over the file or to another.
pub enum Indexed {
    Mp4(crate::mp4::faststart::Rewrite),
    Flv(crate::flv::index::Indexed),
}

impl Indexed {
    /// The output to write.
    pub fn plan(&self) -> &Plan {
        match self {
            Indexed::Mp4(r) => &r.plan,
            Indexed::Flv(i) => &i.plan,
        }
    }
}

/// Whether a medium is already indexed, and what to tell about it (one line each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexCheck {
    pub indexed: bool,
    pub lines: Vec<String>,
}

/// A medium opened by its container, ready to plan any number of requests.
pub trait Container: Send + Sync {
    /// The source it reads.
    fn source(&self) -> &Source;

    /// Tracks and duration.
    fn describe(&self) -> Result<Description>;

    /// The plan for `req`: synthesised bytes and ranges of the source.
    fn plan(&self, req: &Request, opts: &Options) -> Result<Plan>;
}

/// Opens `src` as a medium of `opts.kind`.
pub fn open(src: Source, opts: &Options) -> Result<Box<dyn Container>> {
    (opts.kind.format().open)(src, opts)
}

/// The inspection report of `src` as a medium of `opts.kind`.
pub fn inspect(src: Source, opts: &Options) -> Result<Inspection> {
    match opts.kind.format().inspect {
        Some(f) => f(src, opts),
        None => Err(Error::Unsupported(format!("inspect reads {} files", described(|f| f.inspect.is_some())))),
    }
}

/// The indexed rewrite of `src` as a medium of `opts.kind`; `progress` gets the offset
/// reached by the walk.
pub fn index(src: Source, opts: &Options, progress: &mut dyn FnMut(u64)) -> Result<Indexed> {
    match opts.kind.format().index {
        Some(f) => f(src, opts, progress),
        None => Err(Error::Unsupported(format!("index works on {} files", described(|f| f.index.is_some())))),
    }
}

/// Whether `src`, a medium of `opts.kind`, is already indexed.
pub fn check_index(src: Source, opts: &Options) -> Result<IndexCheck> {
    match opts.kind.format().check_index {
        Some(f) => f(src, opts),
        None => Err(Error::Unsupported(format!("index works on {} files", described(|f| f.index.is_some())))),
    }
}

/// A still image: served whole, as it is.
pub struct Image {
    src: Source,
}

impl Image {
    /// The registry's `open`.
    fn open_container(src: Source, _: &Options) -> Result<Box<dyn Container>> {
        Ok(Box::new(Image { src }))
    }

    /// The registry's `plan_as_is`: the file as it is.
    fn plan_as_is(src: Source, opts: &Options) -> Result<Plan> {
        let info = src.info(opts.content_type);
        Plan::whole_file(src, info)
    }
}

impl Container for Image {
    fn source(&self) -> &Source {
        &self.src
    }

    fn describe(&self) -> Result<Description> {
        Ok(Description::default())
    }

    fn plan(&self, _req: &Request, opts: &Options) -> Result<Plan> {
        Plan::whole_file(self.src.clone(), self.src.info(opts.content_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_answers_kinds_types_and_messages() {
        assert_eq!(Kind::of(Path::new("a.M4A")), Some(Kind::Mp4));
        assert_eq!(Kind::Mp4.content_type(Path::new("a.M4A")), "audio/mp4");
        assert_eq!(Kind::of(Path::new("a.jpeg")), Some(Kind::Image("image/jpeg")));
        assert_eq!(Kind::of(Path::new("a.txt")), None);
        assert_eq!(
            extensions().collect::<Vec<_>>(),
            ["mp4", "m4v", "m4a", "mov", "f4v", "flv", "jpg", "jpeg", "png", "gif", "bmp"]
        );
        assert_eq!(described(|f| f.inspect.is_some()), ".mp4 (.m4v .m4a .mov .f4v) and .flv");
        assert!(Kind::of_path(Path::new("x.txt")).unwrap_err().to_string().contains("mp4 m4v m4a mov f4v flv jpg"));
    }

    #[test]
    fn containers_open_describe_and_plan_through_the_registry() {
        let bytes = crate::flv::tags::tests::tiny();
        let opts = Options::for_path(Path::new("a.flv")).unwrap();
        let flv = open(Source::in_memory(bytes.clone()), &opts).unwrap();
        assert_eq!(flv.describe().unwrap().tracks, 2);
        let whole = flv.plan(&Request::default(), &opts).unwrap();
        assert_eq!((whole.len(), whole.info.content_type), (bytes.len() as u64, "video/x-flv"));
        let png = Options::for_path(Path::new("a.png")).unwrap();
        let img = open(Source::in_memory(vec![1, 2, 3]), &png).unwrap();
        assert_eq!(img.describe().unwrap(), Description::default());
        assert_eq!(img.plan(&Request::default(), &png).unwrap().len(), 3);
        let e = inspect(Source::in_memory(Vec::new()), &png).err().unwrap();
        assert!(e.to_string().contains("inspect reads .mp4 (.m4v .m4a .mov .f4v) and .flv files"), "{e}");
        let e = index(Source::in_memory(Vec::new()), &png, &mut |_| {}).err().unwrap();
        assert!(e.to_string().contains("index works on .mp4 (.m4v .m4a .mov .f4v) and .flv files"), "{e}");
    }
}
