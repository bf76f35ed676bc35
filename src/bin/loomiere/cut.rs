//! `loomiere cut FILE --start S [--end E] -o OUT`: writes a plan to a file (atomically) or
//! to stdout, or describes it with `--dry-run`.

use anyhow::{Context, Result};
use loomiere::{BareUnit, Position, Request};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The source media file (never modified).
    pub file: PathBuf,
    /// Where to start: seconds (30.5, 1:02:03.5) or, for FLV, a byte offset (123456b).
    #[arg(long, short = 's')]
    pub start: Option<String>,
    /// Where to end, in seconds.
    #[arg(long, short = 'e')]
    pub end: Option<String>,
    /// Start exactly at START: keep the keyframe before it but hide the frames before START
    /// with an edit list.
    #[arg(long)]
    pub exact: bool,
    /// Always write 64-bit chunk offsets (co64).
    #[arg(long)]
    pub co64: bool,
    /// Output file, or - for stdout.
    #[arg(long, short = 'o', required_unless_present = "dry_run")]
    pub output: Option<PathBuf>,
    /// Print the plan (pieces and total length) instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: Args) -> Result<()> {
    let parse = |s: &Option<String>| -> Result<Option<Position>> {
        s.as_deref().map(|t| Position::parse(t, BareUnit::Seconds)).transpose().map_err(Into::into)
    };
    let req = Request { start: parse(&args.start)?, end: parse(&args.end)?, exact: args.exact, force_co64: args.co64 };
    let plan =
        loomiere::media::open(&args.file, &req).with_context(|| format!("cannot cut {}", args.file.display()))?;
    if args.dry_run {
        println!("{plan:?}");
        return Ok(());
    }
    anyhow::bail!("writing is not implemented yet")
}
