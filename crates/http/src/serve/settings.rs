//! Where `serve` gets its configuration and when it re-reads it. A config file is checked
//! with one `stat` per request (and per accepted connection) and re-read when its modification time, length or inode
//! changed, or after SIGHUP; a directory given on the command line is served with the
//! defaults and the listing page on. A file that does not validate at start-up is fatal; one
//! that stops validating on a reload is refused with a log line naming the error (once per
//! change or SIGHUP) and the last good configuration keeps serving until the file is fixed —
//! never a fallback to looser defaults, never a site answering 500 for a typo.

use crate::config::{log_to, Config, LogTarget};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What `serve` was told to serve.
#[derive(Clone, Debug)]
pub enum Settings {
    /// A configuration file (`--config`); `root` (the DIR argument) overrides its
    /// `document_root` when given.
    File { path: PathBuf, root: Option<PathBuf> },
    /// A directory with the default settings and the listing page on.
    Dir(PathBuf),
}

type Stamp = (Option<SystemTime>, u64, u64);

struct State {
    stamp: Option<Stamp>,
    /// The last configuration that validated.
    current: Arc<Config>,
}

/// The configuration in force, reloaded on change.
pub struct ConfigCell {
    settings: Settings,
    state: Mutex<State>,
    hup: AtomicBool,
}

impl ConfigCell {
    /// Loads the configuration once; an error here is returned so that `serve` refuses to
    /// start with a broken file.
    pub fn new(settings: Settings) -> Result<ConfigCell, String> {
        let stamp = stamp_of(&settings);
        let current = Arc::new(load(&settings)?);
        Ok(ConfigCell { settings, state: Mutex::new(State { stamp, current }), hup: AtomicBool::new(false) })
    }

    /// Asks for a re-read on the next request (SIGHUP).
    pub fn reload_soon(&self) {
        self.hup.store(true, Ordering::Relaxed);
    }

    /// The configuration in force, the file not checked: the head limits a connection reads
    /// its next request under (the accept loop and each request check the file: [`ConfigCell::get`]).
    pub fn current(&self) -> Arc<Config> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).current.clone()
    }

    /// The configuration for the next request: re-read if the file changed. A file that no
    /// longer validates is logged and the last good configuration returned.
    pub fn get(&self) -> Arc<Config> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = stamp_of(&self.settings);
        let forced = self.hup.swap(false, Ordering::Relaxed);
        if forced || stamp != st.stamp {
            st.stamp = stamp;
            match load(&self.settings) {
                Ok(c) => {
                    c.log("configuration reloaded");
                    st.current = Arc::new(c);
                }
                Err(e) => {
                    if crate::metrics::enabled() {
                        crate::metrics::METRICS.config_reload_failures.fetch_add(1, Ordering::Relaxed);
                    }
                    let line = format!("configuration not reloaded, the last good one stays in force: {e}");
                    // Where the configuration in force logs, and on stderr if that is elsewhere,
                    // so an operator watching either sees it.
                    st.current.log(&line);
                    if st.current.log != LogTarget::Stderr {
                        log_to(&LogTarget::Stderr, &line);
                    }
                }
            }
        }
        st.current.clone()
    }
}

/// What tells a changed file: modification time, length, inode.
fn stamp_of(settings: &Settings) -> Option<Stamp> {
    match settings {
        Settings::File { path, .. } => std::fs::metadata(path).ok().map(|m| (m.modified().ok(), m.len(), m.ino())),
        Settings::Dir(_) => Some((None, 0, 0)),
    }
}

fn load(settings: &Settings) -> Result<Config, String> {
    match settings {
        Settings::File { path, root } => {
            let mut cfg = Config::from_file(path).map_err(|e| e.to_string())?;
            if let Some(root) = root {
                cfg.document_root = Config::with_root(&absolute(root)?).map_err(|e| e.to_string())?.document_root;
            }
            Ok(cfg)
        }
        Settings::Dir(root) => {
            let mut cfg = Config::with_root(&absolute(root)?).map_err(|e| e.to_string())?;
            cfg.listing = true;
            Ok(cfg)
        }
    }
}

/// A directory given on the command line, made absolute (relative to the working directory).
fn absolute(dir: &std::path::Path) -> Result<PathBuf, String> {
    std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))
}
