//! The `loomiere` command: argument parsing (clap, derive) and dispatch to one small module
//! per subcommand. All logic lives in the library; these modules parse, call and print.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod bench;
mod completions;
mod cut;
mod inspect;

/// HTTP pseudo-streaming for MP4 and FLV: seek, cut, index and serve without re-encoding.
#[derive(Parser)]
#[command(name = "loomiere", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a file's boxes (MP4) or tags (FLV), its tracks and keyframes.
    Inspect(inspect::Args),
    /// Write a clip from START to END without re-encoding.
    Cut(cut::Args),
    /// Load a loopback streaming server with simulated viewers and report latency, stalls, errors.
    Bench(bench::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Print the man page (roff) to stdout.
    #[command(hide = true)]
    Man(completions::ManArgs),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Cut(a) => cut::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => completions::man(a),
    };
    if let Err(e) = result {
        eprintln!("loomiere: {e:#}");
        std::process::exit(1);
    }
}
