//! `loomiere index FILE [-o OUT] [--check]`: injects or refreshes an FLV's onMetaData
//! keyframe index (in place, atomically, when no -o), or checks whether it is already
//! correct (exit 0 yes, 1 no). MP4 files get faststart (moov before mdat); fragmented MP4
//! files are defragmented into a progressive faststart MP4.

use anyhow::{bail, Context, Result};
use loomiere::media::Source;
use loomiere::Kind;
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
    match Kind::of(&args.file) {
        Some(Kind::Flv) => flv(args),
        Some(Kind::Mp4) => mp4(args),
        Some(Kind::Image(_)) | None => bail!("{}: index works on .flv (and .mp4) files", args.file.display()),
    }
}

fn flv(args: Args) -> Result<()> {
    let src = Source::open(&args.file)?;
    if args.check {
        let c = loomiere::flv::index::check(&src).with_context(|| format!("cannot check {}", args.file.display()))?;
        if c.ok {
            println!("{}: index is correct ({} keyframes)", args.file.display(), c.keyframes);
            return Ok(());
        }
        for p in &c.problems {
            println!("{}: {p}", args.file.display());
        }
        std::process::exit(1);
    }
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
    let idx = loomiere::flv::index::build(src, |at| {
        if let Some(b) = &bar {
            b.set_position(at);
        }
    })
    .with_context(|| format!("cannot index {}", args.file.display()))?;
    let dest = args.output.clone().unwrap_or_else(|| args.file.clone());
    if let Some(b) = &bar {
        b.set_length(len + idx.plan.len());
        b.set_message("writing");
    }
    loomiere::output::write(&idx.plan, &dest, |n| {
        if let Some(b) = &bar {
            b.set_position(len + n);
        }
    })?; // output errors name the path and what failed
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    eprintln!("{}: {} keyframes, {:.3} s, {} bytes", dest.display(), idx.keyframes, idx.duration, idx.plan.len());
    Ok(())
}

fn mp4(args: Args) -> Result<()> {
    use loomiere::mp4::Faststart;
    if args.check {
        let movie = loomiere::mp4::Movie::open(Source::open(&args.file)?)?;
        if loomiere::mp4::faststart::is_faststart(&movie) {
            println!("{}: moov is before mdat (faststart)", args.file.display());
            return Ok(());
        }
        if movie.fragmented {
            println!("{}: fragmented MP4 (run `loomiere index` to defragment it)", args.file.display());
        } else {
            println!("{}: moov is after mdat (run `loomiere index` to move it to the front)", args.file.display());
        }
        std::process::exit(1);
    }
    let len = Source::open(&args.file)?.len;
    let bar = (std::io::stderr().is_terminal() && len > PROGRESS_OVER).then(|| indicatif::ProgressBar::new(len));
    let done = loomiere::mp4::faststart(&args.file, args.output.as_deref(), |n| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    })
    .with_context(|| format!("cannot index {}", args.file.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match done {
        Faststart::AlreadyFaststart => {
            eprintln!("{}: already in faststart order (moov before mdat); left untouched", args.file.display())
        }
        Faststart::Rewritten(n) => {
            let dest = args.output.as_ref().unwrap_or(&args.file);
            eprintln!("{}: moov moved before mdat, {n} bytes", dest.display())
        }
        Faststart::Defragmented(n) => {
            let dest = args.output.as_ref().unwrap_or(&args.file);
            eprintln!("{}: defragmented into a progressive MP4 (moov first), {n} bytes", dest.display())
        }
    }
    Ok(())
}
