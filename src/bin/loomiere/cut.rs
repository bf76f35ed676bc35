//! `loomiere cut FILE --start S [--end E] -o OUT`: writes a plan to a file (atomically), to
//! stdout, a FIFO or a character device (streamed; see `loomiere::output`), or describes it
//! with `--dry-run`.

use anyhow::{Context, Result};
use loomiere::{BareUnit, Piece, Position, Request};
use std::io::IsTerminal;
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
    /// Output file (replaced atomically), FIFO or character device (streamed into), or - for
    /// stdout. Symbolic links and other special files are refused.
    #[arg(long, short = 'o', required_unless_present = "dry_run")]
    pub output: Option<PathBuf>,
    /// Print the plan (pieces and total length) instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
}

/// Outputs at least this large get a progress bar (when stderr is a terminal).
const PROGRESS_MIN: u64 = 64 << 20;

pub fn run(args: Args) -> Result<()> {
    let parse = |s: &Option<String>| -> Result<Option<Position>> {
        s.as_deref().map(|t| Position::parse(t, BareUnit::Seconds)).transpose().map_err(Into::into)
    };
    let req = Request { start: parse(&args.start)?, end: parse(&args.end)?, exact: args.exact, force_co64: args.co64 };
    // The moov is mapped (the memory target of a one-shot cut relies on it): a source file
    // truncated while it is read ends the process with a message, not a signal.
    loomiere::fault::exit_on_sigbus();
    let began = std::time::Instant::now();
    let plan = loomiere::media::Options::for_path(&args.file)
        .and_then(|opts| {
            let opts = loomiere::media::Options { lean: true, ..opts };
            loomiere::media::plan(loomiere::Source::open(&args.file)?, &req, &opts)
        })
        .with_context(|| format!("cannot cut {}", args.file.display()))?;
    let planned = began.elapsed();
    if args.dry_run {
        println!("content type: {}", plan.info.content_type);
        if let Some(d) = plan.info.duration {
            println!("duration:     {d:.3} s");
        }
        println!("header:       {} bytes", plan.info.header_len);
        for p in plan.pieces() {
            match p {
                Piece::Synth(s) => println!("synthesised:  {} bytes", s.len()),
                Piece::Source { offset, len } => println!("file range:   {offset}..{} ({len} bytes)", offset + len),
            }
        }
        println!("total:        {} bytes", plan.len());
        // The engine's own time (open, map the index, plan), read by bench/nginx-vs-loomiere.sh.
        println!("planned in:   {:.3} ms", planned.as_secs_f64() * 1000.0);
        return Ok(());
    }
    let out = args.output.expect("clap requires --output without --dry-run");
    if let (Ok(a), Ok(b)) = (std::fs::metadata(&args.file), std::fs::metadata(&out)) {
        use std::os::unix::fs::MetadataExt;
        if (a.dev(), a.ino()) == (b.dev(), b.ino()) {
            anyhow::bail!("{} is the input file: choose another --output (the input is never replaced)", out.display());
        }
    }
    let bar = (plan.len() >= PROGRESS_MIN && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(plan.len());
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    loomiere::output::write(&plan, &out, |n| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    })?; // output errors name the path and what failed
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(())
}
