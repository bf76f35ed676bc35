//! `loomiere inspect FILE [--json] [--keyframes] [--segments[=SECONDS]]`: prints what the
//! library's inspectors report.

use crate::render::Render;
use anyhow::{bail, Context, Result};
use loomiere::container::{self, Inspection};
use loomiere::{Kind, Source};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The media file to inspect.
    pub file: PathBuf,
    /// Print JSON for scripts instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also list every keyframe: presentation time and byte offset.
    #[arg(long)]
    pub keyframes: bool,
    /// Also show the HLS/DASH segment layout (MP4) for a target segment duration in seconds.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "6", value_hint = clap::ValueHint::Other)]
    pub segments: Option<f64>,
}

pub fn run(args: Args) -> Result<()> {
    // An MP4's moov is mapped: a file truncated while it is read ends the process with a
    // message, not a signal.
    loomiere::fault::exit_on_sigbus();
    let print = |json: String, text: String| {
        if args.json {
            println!("{json}");
        } else {
            print!("{text}");
        }
    };
    let what = || format!("inspect reads {} files", container::described(|f| f.inspect.is_some()));
    let Some(kind) = Kind::of(&args.file).filter(|k| k.format().inspect.is_some()) else {
        bail!("{}: {}", args.file.display(), what())
    };
    if kind == Kind::Flv && args.segments.is_some() {
        bail!("{}: --segments is for MP4 files (HLS/DASH are packaged from MP4 only)", args.file.display())
    }
    let opts = container::Options { keyframes: args.keyframes, ..container::Options::for_kind(kind, &args.file) };
    let src = Source::open(&args.file)?;
    match container::inspect(src, &opts).with_context(|| format!("cannot inspect {}", args.file.display()))? {
        Inspection::Mp4(mut report) => {
            // The hint names the command to run: with this file's path.
            report.hint = report.hint.map(|h| h.replace("FILE", &args.file.display().to_string()));
            let layout = match args.segments {
                Some(target) if report.error.is_none() => {
                    let movie = loomiere::mp4::Movie::open(Source::open(&args.file)?)?;
                    let options = loomiere::package::Options { target };
                    let package =
                        loomiere::package::Package::build(&movie, loomiere::package::Clip::default(), &options)
                            .with_context(|| format!("cannot lay out the segments of {}", args.file.display()))?;
                    Some(loomiere::package::layout::Layout::of(&package))
                }
                _ => None,
            };
            match &layout {
                None => print(serde_json::to_string_pretty(&report)?, report.render()),
                // With --segments, the JSON is {"inspect": report, "segments": layout}.
                Some(l) => print(
                    serde_json::to_string_pretty(&serde_json::json!({"inspect": &report, "segments": l}))?,
                    report.render() + &l.render(),
                ),
            }
            if let Some(e) = &report.error {
                bail!("{}: {e}", args.file.display());
            }
            Ok(())
        }
        Inspection::Flv(report) => {
            print(serde_json::to_string_pretty(&report)?, report.render());
            if let Some(fault) = &report.fault {
                bail!("{}: {fault}", args.file.display());
            }
            Ok(())
        }
    }
}
