//! `loomiere serve`: the standalone HTTP/1.1 server on tokio. It owns sockets, timing and
//! signals; every answer comes from the shared HTTP core ([`crate::http::respond`]) as for
//! CGI (directory listings included), and bodies go zero-copy with `sendfile` on the non-blocking socket.
//!
//! - [`settings`]: which configuration, re-read on change or SIGHUP;
//! - `conn`: the async driver of one connection (reading heads within the limits of
//!   [`crate::http::exchange`], keep-alive, pipelining, access log);
//! - `idle`: which connections may be closed to admit new ones when full;
//! - `send`: plan bodies on a non-blocking socket, throttled;
//! - [`access_log`]: common log format lines.
//!
//! Limits come from the configuration's `[server]` table: `listen_backlog` (the kernel's
//! accept queue, set at start-up), `max_connections` (when reached, idle keep-alive
//! connections are closed oldest first to admit a new one; without any, further clients wait
//! in the listen queue), `max_header_bytes`, `header_timeout_secs`. SIGTERM or
//! ctrl-c stops accepting, closes idle connections and gives running answers
//! [`GRACE`] to finish.
//!
//! Memory per stream: the task, the socket and a cursor; synthesised bytes are pulled into a
//! per-thread scratch buffer. The viewers of one MP4 share its opened movie and recent
//! plans ([`crate::media::MovieCache`]).

pub mod access_log;
mod conn;
mod idle;
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

/// How often the movie cache is swept of deleted or replaced files (see
/// [`crate::media::MovieCache::sweep`]), besides at each insertion.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Where the kernel caps every listen backlog.
const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";

/// State shared by every connection.
pub(crate) struct Shared {
    pub config: ConfigCell,
    pub log: access_log::AccessLog,
    pub active: AtomicUsize,
    pub freed: Notify,
    /// Connections waiting for a request, which may be closed to admit new ones.
    pub idle: idle::IdleSet,
    /// Whether an accepted client waits for a slot: a connection turning idle then wakes the
    /// accept loop (through `freed`) so that it may be closed for it.
    pub starved: std::sync::atomic::AtomicBool,
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
        let config = ConfigCell::new(settings)
            .map_err(|e| Error::Config(format!("not starting: the configuration is invalid: {e}")))?;
        let backlog = effective_backlog(config.get().server.listen_backlog);
        let listener = listen_on(listen, backlog).map_err(|e| {
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
        // Each stream holds a socket and its media file open.
        raise_nofile_to(1 << 18);
        let shared = Arc::new(Shared {
            config,
            log: access_log::AccessLog::default(),
            active: AtomicUsize::new(0),
            freed: Notify::new(),
            idle: idle::IdleSet::default(),
            starved: std::sync::atomic::AtomicBool::new(false),
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
        Some(self.shared.config.get().document_root.clone())
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    pub fn run(self) -> Result<()> {
        let Server { listener, shared, runtime, signals } = self;
        runtime.block_on(serve(listener, shared, signals))
    }
}

/// The backlog asked for, capped as the kernel will cap it (`somaxconn`).
fn effective_backlog(asked: u32) -> i32 {
    let cap = std::fs::read_to_string(SOMAXCONN).ok().and_then(|s| s.trim().parse::<u32>().ok());
    let n = cap.map_or(asked, |c| asked.min(c.max(1)));
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A non-blocking listening socket on `addr` with `SO_REUSEADDR` (a restart does not wait for
/// the old connections' TIME_WAIT) and the given backlog.
fn listen_on(addr: SocketAddr, backlog: i32) -> std::io::Result<std::net::TcpListener> {
    use rustix::net::{self as net, AddressFamily, SocketFlags, SocketType};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        Some(net::ipproto::TCP),
    )?;
    net::sockopt::set_socket_reuseaddr(&fd, true)?;
    net::bind(&fd, &addr)?;
    net::listen(&fd, backlog)?;
    Ok(std::net::TcpListener::from(fd))
}

async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, signals: Signals) -> Result<()> {
    let Signals { mut term, mut int, mut hup } = signals;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| Error::io("cannot register the listener", e))?;
    let sweeper = tokio::spawn(sweep_movies(shared.movies.clone()));
    // An accepted connection waiting for a slot (at most one: the rest wait in the kernel's
    // queue), and when an idle new connection may be closed for it.
    let mut waiting: Option<(tokio::net::TcpStream, SocketAddr)> = None;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        if let Some((stream, peer)) = waiting.take() {
            let max = shared.config.get().server.max_connections;
            if shared.active.load(Ordering::Relaxed) < max {
                shared.active.fetch_add(1, Ordering::Relaxed);
                let slot = Slot(shared.clone());
                let sh = shared.clone();
                tokio::spawn(async move {
                    conn::serve(stream, peer, sh).await;
                    drop(slot);
                });
                retry_at = None;
            } else {
                waiting = Some((stream, peer));
                // One idle connection closed per waiting client: none while one is closing.
                retry_at = match shared.idle.closing() {
                    0 => match shared.idle.close_oldest(std::time::Instant::now()) {
                        idle::Closed::NotBefore(t) => Some(t.into()),
                        idle::Closed::One | idle::Closed::Nothing => None,
                    },
                    _ => None,
                };
            }
        }
        shared.starved.store(waiting.is_some(), Ordering::Relaxed);
        let retry = retry_at.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => shared.config.reload_soon(),
            _ = shared.freed.notified(), if waiting.is_some() => {}
            _ = tokio::time::sleep_until(retry), if waiting.is_some() && retry_at.is_some() => {}
            acc = listener.accept(), if waiting.is_none() => match acc {
                Ok(accepted) => waiting = Some(accepted),
                Err(e) => {
                    // Out of descriptors or similar: back off instead of spinning.
                    crate::config::log_to(&crate::config::LogTarget::Stderr, &format!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    sweeper.abort();
    drop(waiting);
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

/// Lets go of deleted or replaced movies every [`SWEEP_EVERY`], off the async threads (it
/// `stat`s each held file).
async fn sweep_movies(movies: Arc<crate::media::MovieCache>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let m = movies.clone();
        let _ = tokio::task::spawn_blocking(move || m.sweep()).await;
    }
}

/// Raises the open-file limits to `want` where the process may (root may raise the hard
/// limit, up to the kernel's `nr_open`), else the soft limit to the hard one; returns the
/// soft limit now in force. `serve` uses it for sockets plus the media files they stream.
pub fn raise_nofile_to(want: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current.is_some_and(|c| c < want) {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum: Some(want) });
    }
    let lim = getrlimit(Resource::Nofile);
    if let Some(max) = lim.maximum {
        if lim.current.is_some_and(|c| c < max) {
            let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(max), maximum: Some(max) });
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}
