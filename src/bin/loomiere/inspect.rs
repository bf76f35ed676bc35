//! `loomiere inspect FILE [--json]`: prints what the library's inspectors report.

use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The media file to inspect.
    pub file: PathBuf,
    /// Print JSON for scripts instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> Result<()> {
    anyhow::bail!("inspect is not implemented yet")
}
