//! `loomiere serve-cgi [--config F] [--inetd]`: answer one CGI request from the environment,
//! or (`--inetd`) one HTTP connection on stdin/stdout. Also what `loomiere` becomes when a
//! web server runs it as a CGI program directly (see `main`). The work is in
//! `loomiere::cgi`; this module only maps the outcome to an exit status.

use loomiere::cgi::{self, Outcome};
use loomiere::config::ConfigSource;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (default: $LOOMIERE_CONFIG, else /etc/loomiere/stream.conf, else
    /// the CGI DOCUMENT_ROOT with default settings).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve one HTTP/1.x connection on stdin/stdout (tcpsvd, xinetd, inetd) instead of CGI.
    #[arg(long)]
    pub inetd: bool,
}

/// Runs and returns the process exit status: 0 answered (any HTTP status) or client gone,
/// 1 when the answer could not be written (or was cut short because the file changed).
pub fn run(args: Args) -> i32 {
    // The moov is mapped (a lean start-up): a file truncated while it is sent ends this one
    // process with a message and exit status 1, not a signal.
    loomiere::fault::exit_on_sigbus();
    let source = ConfigSource::from_flag_or_env(args.config);
    let stdout = rustix::stdio::stdout();
    let result = if args.inetd {
        cgi::serve_inetd(&source, rustix::stdio::stdin(), stdout)
    } else {
        cgi::run_cgi(&source, stdout)
    };
    match result {
        Ok(Outcome::Answered) | Ok(Outcome::HungUp) => 0,
        Err(e) if loomiere::sink::is_source_fault(&e) => {
            eprintln!("loomiere: the answer was cut short: {e}");
            1
        }
        Err(e) => {
            eprintln!("loomiere: writing the answer failed: {}", loomiere::error::plain_io(&e));
            1
        }
    }
}

/// Issue 6: when a web server runs `loomiere` itself as the CGI program (lighttpd
/// `cgi.assign` passes the script path as argv[1]; Apache may pass ISINDEX words), argv is
/// not a loomiere command line. Returns true when this process is such a CGI call. `args` is
/// argv as bytes (the C entry passes the raw C strings, nothing collected).
#[cfg_attr(test, allow(dead_code))]
pub fn is_direct_cgi<A: AsRef<[u8]>>(args: impl IntoIterator<Item = A> + Clone, subcommands: &[&str]) -> bool {
    if std::env::var_os("GATEWAY_INTERFACE").is_none() {
        return false;
    }
    let query = std::env::var_os("QUERY_STRING");
    if cgi::args_from_isindex(args.clone(), query.as_deref().and_then(|q| q.to_str())) {
        return true;
    }
    match args.into_iter().nth(1) {
        Some(a) => !subcommands.iter().any(|s| s.as_bytes() == a.as_ref()),
        None => true,
    }
}
