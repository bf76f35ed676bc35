//! `loomiere inspect FILE [--json]`: prints what the library's inspectors report.

use anyhow::{bail, Result};
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
    let src = Source::open(&args.file)?;
    match Kind::of(&args.file) {
        Some(Kind::Mp4) => {
            let report = loomiere::mp4::inspect(src);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            if let Some(e) = &report.error {
                bail!("{}: {e}", args.file.display());
            }
            Ok(())
        }
        Some(Kind::Flv) => bail!("inspect for FLV is not implemented yet"),
        _ => bail!("{}: not an MP4 or FLV file (by its extension)", args.file.display()),
    }
}
