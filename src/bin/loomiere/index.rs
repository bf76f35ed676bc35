//! `loomiere index FILE [-o OUT] [--check]`: injects or refreshes an FLV's onMetaData
//! keyframe index (in place, atomically, when no -o), or checks whether it is already
//! correct (exit 0 yes, 1 no). MP4 files get faststart (moov before mdat); fragmented MP4
//! files are defragmented into a progressive faststart MP4.

use anyhow::{bail, Context, Result};
use loomiere::container::{self, Indexed};
use loomiere::{Kind, Source};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Outputs larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_OVER: u64 = 64 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// The FLV (or MP4, or fragmented MP4) file to index.
    pub file: PathBuf,
    /// Write here instead of replacing FILE: a file (replaced atomically), a FIFO or character
    /// device (streamed into), or - for stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Only check whether FILE already has a correct index (exit 0 if so, 1 if not).
    #[arg(long, conflicts_with = "output")]
    pub check: bool,
}

pub fn run(args: Args) -> Result<()> {
    // An MP4's moov is mapped: a file truncated while it is read ends the process with a
    // message, not a signal.
    loomiere::fault::exit_on_sigbus();
    let Some(kind) = Kind::of(&args.file).filter(|k| k.format().index.is_some()) else {
        let what = container::described(|f| f.index.is_some());
        bail!("{}: index works on {what} files", args.file.display())
    };
    if args.check {
        let opts = container::Options::for_kind(kind, &args.file);
        let c = container::check_index(Source::open(&args.file)?, &opts)
            .with_context(|| format!("cannot check {}", args.file.display()))?;
        for line in &c.lines {
            println!("{}: {line}", args.file.display());
        }
        if !c.indexed {
            std::process::exit(1);
        }
        return Ok(());
    }
    write(kind, &args)
}

/// Builds the indexed rewrite through the file's container and writes it (atomically over
/// the file, or to `-o`).
fn write(kind: Kind, args: &Args) -> Result<()> {
    let src = Source::open(&args.file)?;
    let len = src.len;
    let bar = (std::io::stderr().is_terminal() && len > PROGRESS_OVER).then(|| {
        let b = indicatif::ProgressBar::new(len * 2);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message("indexing");
        b
    });
    let opts = container::Options::for_kind(kind, &args.file);
    let indexed = container::index(src, &opts, &mut |at| {
        if let Some(b) = &bar {
            b.set_position(at);
        }
    })
    .with_context(|| format!("cannot index {}", args.file.display()))?;
    if let Indexed::Mp4(r) = &indexed {
        if r.already_faststart && args.output.is_none() {
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            eprintln!("{}: already in faststart order (moov before mdat); left untouched", args.file.display());
            return Ok(());
        }
    }
    let plan = indexed.plan();
    let dest = args.output.clone().unwrap_or_else(|| args.file.clone());
    if let Some(b) = &bar {
        b.set_length(len + plan.len());
        b.set_message("writing");
    }
    let n = loomiere::output::write(plan, &dest, |n| {
        if let Some(b) = &bar {
            b.set_position(len + n);
        }
    })?; // output errors name the path and what failed
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match &indexed {
        Indexed::Flv(idx) => {
            eprintln!("{}: {} keyframes, {:.3} s, {} bytes", dest.display(), idx.keyframes, idx.duration, n);
        }
        Indexed::Mp4(r) if r.defragmented => {
            eprintln!("{}: defragmented into a progressive MP4 (moov first), {n} bytes", dest.display());
        }
        Indexed::Mp4(_) => eprintln!("{}: moov moved before mdat, {n} bytes", dest.display()),
    }
    Ok(())
}
