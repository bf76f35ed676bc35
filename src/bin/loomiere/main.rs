//! The `loomiere` command: argument parsing (clap, derive) and dispatch to one small module
//! per subcommand. All logic lives in the library; these modules parse, call and print.

#![cfg_attr(not(test), no_main)]

use anyhow::Result;
use clap::{Parser, Subcommand};

mod bench;
mod completions;
mod cut;
mod demo;
#[cfg_attr(test, allow(dead_code))]
#[allow(unsafe_code)] // the C entry point: argv and the standard descriptors
mod entry;
mod index;
mod inspect;
mod render;
mod serve;
mod serve_cgi;

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
    /// Inject or refresh an FLV's onMetaData keyframe index (MP4: faststart; fragmented MP4:
    /// defragment).
    Index(index::Args),
    /// Load a loopback streaming server with simulated viewers and report latency, stalls, errors.
    Bench(bench::Args),
    /// Serve a directory over HTTP/1.1 with seeking, ranges, throttling and a player page.
    Serve(serve::Args),
    /// Make sample media (ffmpeg) for `loomiere serve` to show.
    Demo(demo::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Print the man page (roff) to stdout.
    #[command(hide = true)]
    Man(completions::ManArgs),
    /// Answer one CGI request (or, with --inetd, one HTTP connection on stdin/stdout).
    ServeCgi(serve_cgi::Args),
}

/// The C entry point (see `entry` for why not std's): a CGI call is answered straight away,
/// before anything else is set up; anything else is a command line for clap.
#[cfg(not(test))]
#[allow(unsafe_code)]
#[no_mangle]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    // SAFETY: these are the arguments the C runtime passed to `main`.
    let args = unsafe { entry::Argv::new(argc, argv) };
    entry::run(move || {
        if serve_cgi::is_direct_cgi(args, SUBCOMMANDS) {
            serve_cgi::run(serve_cgi::Args { config: None, inetd: false })
        } else {
            cli(args)
        }
    })
}

/// The command line: parses argv (clap exits on `--help`, `--version` and usage errors),
/// runs the subcommand and returns the exit status. The arguments come from the C `main`:
/// `std::env::args` is filled without std's start-up only on glibc.
#[cfg_attr(test, allow(dead_code))]
fn cli(args: entry::Argv) -> i32 {
    use std::os::unix::ffi::OsStrExt;
    let cli = Cli::parse_from(args.into_iter().map(|a| std::ffi::OsStr::from_bytes(a).to_os_string()));
    let result: Result<()> = match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Cut(a) => cut::run(a),
        Command::Index(a) => index::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => completions::man(a),
        Command::ServeCgi(a) => return serve_cgi::run(a),
    };
    // No runtime flushes stdout at exit any more (see `entry`); as under std's, an error
    // there is ignored.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("loomiere: {}", describe(&e));
            1
        }
    }
}

/// The error and its causes on one line, skipping causes the message already includes (an
/// I/O cause is compared without std's ` (os error N)` tail, which the library drops).
fn describe(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => loomiere::error::plain_io(io),
            None => cause.to_string(),
        };
        if !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
    }
    msg
}

/// Every subcommand name (present and planned) and `help`: with `GATEWAY_INTERFACE` set, an
/// argv[1] outside this list means a web server is running loomiere as a CGI program.
const SUBCOMMANDS: &[&str] =
    &["inspect", "cut", "index", "serve-cgi", "serve", "bench", "completions", "man", "demo", "help"];

#[cfg(test)]
mod tests {
    #[test]
    fn every_subcommand_is_known_to_the_cgi_check() {
        use clap::CommandFactory;
        for c in super::Cli::command().get_subcommands() {
            assert!(super::SUBCOMMANDS.contains(&c.get_name()), "{} missing from SUBCOMMANDS", c.get_name());
        }
    }
}
