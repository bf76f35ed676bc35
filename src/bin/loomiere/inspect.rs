//! `loomiere inspect FILE [--json] [--keyframes]`: prints what the library's inspectors report.

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
    let opts = container::Options { keyframes: args.keyframes, ..container::Options::for_kind(kind, &args.file) };
    let src = Source::open(&args.file)?;
    match container::inspect(src, &opts).with_context(|| format!("cannot inspect {}", args.file.display()))? {
        Inspection::Mp4(mut report) => {
            // The hint names the command to run: with this file's path.
            report.hint = report.hint.map(|h| h.replace("FILE", &args.file.display().to_string()));
            print(serde_json::to_string_pretty(&report)?, report.render());
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
