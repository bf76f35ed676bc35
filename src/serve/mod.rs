//! `loomiere serve`: the standalone HTTP/1.1 server on tokio. It owns sockets, timing and
//! signals; every answer comes from the shared HTTP core ([`crate::http::respond`]) as for
//! CGI, and bodies go zero-copy with `sendfile` on the non-blocking socket.
//!
//! - [`settings`]: which configuration, re-read on change or SIGHUP;
//! - `conn`: one connection (head limits, keep-alive, pipelining, access log);
//! - `send`: plan bodies on a non-blocking socket, throttled;
//! - [`listing`]: the directory page with a player;
//! - [`access_log`]: common log format lines.
//!
//! Limits come from the configuration's `[server]` table: `max_connections` (further
//! clients wait in the listen queue), `max_header_bytes`, `header_timeout_secs`. SIGTERM or
//! ctrl-c stops accepting, closes idle connections and gives running answers
//! [`GRACE`] to finish.
//!
//! Memory per stream: the task, the socket and a cursor; synthesised bytes are pulled into a
//! per-thread scratch buffer. Plans are built per request: the MP4 engine does not (yet)
//! expose a parsed movie that viewers of one file could share.

pub mod access_log;
mod conn;
pub mod listing;
mod send;
pub mod settings;

use crate::{Error, Result};
pub use settings::{ConfigCell, Settings};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// How many opened MP4 movies `serve` keeps (least recently used dropped first).
const MOVIE_CACHE: usize = 256;

/// How long running answers may continue after SIGTERM.
pub const GRACE: Duration = Duration::from_secs(5);

/// State shared by every connection.
pub(crate) struct Shared {
    pub config: ConfigCell,
    pub log: access_log::AccessLog,
    pub active: AtomicUsize,
    pub freed: Notify,
    pub stop: watch::Sender<bool>,
    /// Opened MP4 movies, shared by all viewers of a file (one mapped moov, one descriptor).
    pub movies: Arc<crate::media::MovieCache>,
}

/// Counts a connection for `max_connections` while it lives.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        self.0.freed.notify_one();
    }
}

/// The signals `serve` handles, registered before the address is announced so that a
/// SIGTERM sent right after start-up is never fatal.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// A bound, configured server with its runtime and signal handlers, not yet serving.
pub struct Server {
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Runtime,
    signals: Signals,
}

impl Server {
    /// Loads the configuration (a broken one is an error here) and binds `listen`.
    pub fn bind(listen: SocketAddr, settings: Settings, threads: Option<usize>) -> Result<Server> {
        let config = ConfigCell::new(settings).map_err(Error::Config)?;
        let listener = std::net::TcpListener::bind(listen).map_err(|e| {
            let fix = match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    " (another program listens there: stop it, or pick another address with --listen)"
                }
                std::io::ErrorKind::PermissionDenied => {
                    " (ports below 1024 need root or CAP_NET_BIND_SERVICE: pick a higher port with --listen)"
                }
                std::io::ErrorKind::AddrNotAvailable => " (no interface of this machine has that address)",
                _ => "",
            };
            let why = std::io::Error::new(e.kind(), format!("{}{fix}", crate::error::plain_io(&e)));
            Error::io(format!("cannot listen on {listen}"), why)
        })?;
        listener.set_nonblocking(true).map_err(|e| Error::io("cannot set the listener non-blocking", e))?;
        // Each stream holds a socket and its media file open.
        crate::bench::raise_nofile_to(1 << 18);
        let shared = Arc::new(Shared {
            config,
            log: access_log::AccessLog::default(),
            active: AtomicUsize::new(0),
            freed: Notify::new(),
            stop: watch::channel(false).0,
            movies: Arc::new(crate::media::MovieCache::new(MOVIE_CACHE)),
        });
        let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let runtime = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        } else {
            tokio::runtime::Builder::new_multi_thread().worker_threads(threads.min(256)).enable_all().build()
        }
        .map_err(|e| Error::io("cannot start the tokio runtime", e))?;
        let signals = runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            Ok::<_, std::io::Error>(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
                hup: signal(SignalKind::hangup())?,
            })
        });
        let signals = signals.map_err(|e| Error::io("cannot install signal handlers", e))?;
        Ok(Server { listener, shared, runtime, signals })
    }

    /// The address actually bound (for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| Error::io("cannot read the listening address", e))
    }

    /// The document root in force.
    pub fn document_root(&self) -> Option<std::path::PathBuf> {
        self.shared.config.get().ok().map(|c| c.document_root.clone())
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    pub fn run(self) -> Result<()> {
        let Server { listener, shared, runtime, signals } = self;
        runtime.block_on(serve(listener, shared, signals))
    }
}

async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, signals: Signals) -> Result<()> {
    let Signals { mut term, mut int, mut hup } = signals;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| Error::io("cannot register the listener", e))?;
    loop {
        let max = shared.config.get().map(|c| c.server.max_connections).unwrap_or(1024);
        let full = shared.active.load(Ordering::Relaxed) >= max;
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => shared.config.reload_soon(),
            _ = shared.freed.notified(), if full => {}
            acc = listener.accept(), if !full => match acc {
                Ok((stream, peer)) => {
                    shared.active.fetch_add(1, Ordering::Relaxed);
                    let slot = Slot(shared.clone());
                    let sh = shared.clone();
                    tokio::spawn(async move {
                        conn::serve(stream, peer, sh).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    // Out of descriptors or similar: back off instead of spinning.
                    crate::config::log_to(&crate::config::LogTarget::Stderr, &format!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = shared.stop.send(true);
    let deadline = tokio::time::Instant::now() + GRACE;
    while shared.active.load(Ordering::Relaxed) > 0 {
        if tokio::time::timeout_at(deadline, shared.freed.notified()).await.is_err() {
            break;
        }
    }
    Ok(())
}
