//! `loomiere inspect FILE [--json] [--keyframes]`: prints what the library's inspectors report.

use anyhow::{bail, Context, Result};
use loomiere::media::Source;
use loomiere::Kind;
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
    match Kind::of(&args.file) {
        Some(Kind::Mp4) => {
            let options = loomiere::mp4::inspect::Options { keyframes: args.keyframes };
            let mut report = loomiere::mp4::inspect_with(Source::open(&args.file)?, options);
            // The hint names the command to run: with this file's path.
            report.hint = report.hint.map(|h| h.replace("FILE", &args.file.display().to_string()));
            print(serde_json::to_string_pretty(&report)?, report.render());
            if let Some(e) = &report.error {
                bail!("{}: {e}", args.file.display());
            }
            Ok(())
        }
        Some(Kind::Flv) => {
            let src = Source::open(&args.file)?;
            let report = loomiere::flv::inspect::inspect_with(&src, args.keyframes)
                .with_context(|| format!("cannot inspect {}", args.file.display()))?;
            print(serde_json::to_string_pretty(&report)?, report.render());
            if let Some(fault) = &report.fault {
                bail!("{}: {fault}", args.file.display());
            }
            Ok(())
        }
        Some(Kind::Image(_)) | None => {
            bail!("{}: inspect reads .mp4 (.m4v .m4a .mov .f4v) and .flv files", args.file.display())
        }
    }
}
