//! Where `serve` gets its configuration and when it re-reads it. A config file is checked
//! with one `stat` per request and re-read when its modification time, length or inode
//! changed, or after SIGHUP; a directory given on the command line is served with the
//! defaults and the listing page on. A file that no longer validates makes every answer a
//! 500 (logged once per change) until it is fixed — never a fallback to looser settings.

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
    current: Result<Arc<Config>, String>,
    loaded_once: bool,
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
        let cell = ConfigCell {
            settings,
            state: Mutex::new(State { stamp: None, current: Err("not loaded".into()), loaded_once: false }),
            hup: AtomicBool::new(true),
        };
        cell.get()?;
        Ok(cell)
    }

    /// Asks for a re-read on the next request (SIGHUP).
    pub fn reload_soon(&self) {
        self.hup.store(true, Ordering::Relaxed);
    }

    /// The configuration for the next request: re-read if the file changed.
    pub fn get(&self) -> Result<Arc<Config>, String> {
        let Ok(mut st) = self.state.lock() else { return Err("configuration lock poisoned".into()) };
        let stamp = self.stamp();
        let forced = self.hup.swap(false, Ordering::Relaxed);
        if forced || stamp != st.stamp {
            st.stamp = stamp;
            st.current = self.load().map(Arc::new);
            match &st.current {
                Ok(c) if st.loaded_once => c.log("configuration reloaded"),
                Ok(_) => {}
                // At start-up the error is returned (and printed once, by the caller).
                Err(e) if st.loaded_once => {
                    log_to(&LogTarget::Stderr, &format!("{e}; every request fails until the file is fixed"))
                }
                Err(_) => {}
            }
            st.loaded_once = true;
        }
        st.current.clone()
    }

    fn stamp(&self) -> Option<Stamp> {
        match &self.settings {
            Settings::File { path, .. } => std::fs::metadata(path).ok().map(|m| (m.modified().ok(), m.len(), m.ino())),
            Settings::Dir(_) => Some((None, 0, 0)),
        }
    }

    fn load(&self) -> Result<Config, String> {
        match &self.settings {
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
}

/// A directory given on the command line, made absolute (relative to the working directory).
fn absolute(dir: &std::path::Path) -> Result<PathBuf, String> {
    std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))
}
