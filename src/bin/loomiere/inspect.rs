//! `loomiere inspect FILE [--json]`: prints what the library's inspectors report.

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
}

pub fn run(args: Args) -> Result<()> {
    match Kind::of(&args.file) {
        Some(Kind::Flv) => {
            let src = Source::open(&args.file)?;
            let report = loomiere::flv::inspect::inspect(&src)
                .with_context(|| format!("cannot inspect {}", args.file.display()))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            if let Some(fault) = &report.fault {
                bail!("{}: {fault}", args.file.display());
            }
            Ok(())
        }
        // TODO(lead): MP4 inspection report.
        Some(Kind::Mp4) => bail!("not implemented yet"),
        Some(Kind::Image(_)) | None => bail!("{}: inspect reads .flv and .mp4 files", args.file.display()),
    }
}
