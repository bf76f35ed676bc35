//! The `loomiere` command: argument parsing (clap, derive) and dispatch to one small module
//! per subcommand. All logic lives in the library; these modules parse, call and print.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cut;
mod index;
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
    /// Inject or refresh an FLV's onMetaData keyframe index (MP4: faststart).
    Index(index::Args),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Cut(a) => cut::run(a),
        Command::Index(a) => index::run(a),
    };
    if let Err(e) = result {
        eprintln!("loomiere: {}", describe(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, skipping causes the message already includes.
fn describe(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
    }
    msg
}
