//! `loomiere serve [DIR] [--listen ADDR] [--config FILE]`: picks what to serve, binds, prints
//! the address on stdout (first line, for scripts and tests; then the HTTPS address and the
//! metrics URL when configured, one a line) and runs the library server.

use anyhow::{bail, Result};
use loomiere::config::{ConfigSource, DEFAULT_PATH};
use loomiere::serve::{Server, Settings};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Directory to serve (overrides the config's document_root). Default: ./demo-media
    /// when no config is given (make it with `loomiere demo`).
    pub dir: Option<PathBuf>,
    /// Address to listen on (not used when systemd passes the sockets: LISTEN_FDS).
    #[arg(long, short = 'l', default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Configuration file (TOML; see docs). Also LOOMIERE_CONFIG. Re-read when it changes
    /// and on SIGHUP.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Runtime worker threads (1: single-threaded). Default: one per CPU.
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(a: Args) -> Result<()> {
    if let Some(dir) = a.dir.as_ref().filter(|d| !d.is_dir()) {
        bail!(
            "{} is not a directory: give the directory to serve (or run `loomiere demo DIR` to make one with sample media)",
            dir.display()
        );
    }
    let settings = match (ConfigSource::from_flag_or_env(a.config), a.dir) {
        (ConfigSource::Explicit(path), root) => Settings::File { path, root },
        (ConfigSource::Default, Some(dir)) => Settings::Dir(dir),
        (ConfigSource::Default, None) => {
            let dir = PathBuf::from(loomiere::demo::DEFAULT_DIR);
            if !dir.is_dir() {
                bail!(
                    "nothing to serve: give a directory, --config FILE (e.g. {DEFAULT_PATH}), \
                     or run `loomiere demo` to make ./{} with sample media",
                    loomiere::demo::DEFAULT_DIR
                );
            }
            Settings::Dir(dir)
        }
    };
    let server = Server::bind(a.listen, settings, a.threads)?;
    let addr = server.local_addr()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "http://{addr}/")?;
    if let Some(tls) = server.tls_addr() {
        writeln!(out, "https://{tls}/")?;
    }
    if let Some(m) = server.metrics_addr() {
        writeln!(out, "http://{m}/metrics")?;
    }
    out.flush()?;
    drop(out);
    if let Some(root) = server.document_root() {
        // Not eprintln!: a closed stderr (a supervisor's pipe gone) must not stop the server.
        let _ = writeln!(std::io::stderr(), "loomiere: serving {} on http://{addr}/ (ctrl-c to stop)", root.display());
    }
    server.run()?;
    Ok(())
}
