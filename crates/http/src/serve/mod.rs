//! `loomiere serve`: the standalone HTTP/1.1 server on tokio. It owns sockets, timing and
//! signals; every answer comes from the shared HTTP core ([`crate::http::respond`]) as for
//! CGI (directory listings included), and bodies go zero-copy with `sendfile` on the non-blocking socket.
//!
//! - [`settings`]: which configuration, re-read on change or SIGHUP;
//! - `conn`: the async driver of one connection (reading heads within the limits of
//!   [`crate::http::exchange`], keep-alive, pipelining, access log);
//! - `idle`: which connections may be closed to admit new ones when full;
//! - `send`: plan bodies on a non-blocking socket, throttled;
//! - [`access_log`]: access log lines (common, combined or JSON);
//! - `ops`: `/healthz`, `/readyz`, `/metrics` ([`crate::metrics`]);
//! - `transport`, `tls`: plain TCP or rustls TLS under a connection;
//! - `activation`: listening sockets passed by systemd (`LISTEN_FDS`).
//!
//! With `[storage]` in the configuration, media come from object storage instead
//! ([`crate::storage`]: `conn` hands those requests to `storage::answer` and sends their data
//! pieces from the store).
//!
//! Limits come from the configuration's `[server]` table: `listen_backlog` (the kernel's
//! accept queue, set at start-up), `max_connections` (when reached, idle keep-alive
//! connections are closed oldest first to admit a new one; without any, further clients wait
//! in the listen queue), `max_header_bytes`, `header_timeout_secs`. SIGTERM or
//! ctrl-c stops accepting, closes idle connections and gives running answers
//! `shutdown_grace_secs` to finish, then logs each one it cuts. SIGHUP re-reads the
//! configuration and the TLS certificate; SIGUSR1 reopens the access log file.
//!
//! Memory per stream: the task, the socket and a cursor; synthesised bytes are pulled into a
//! per-thread scratch buffer. The viewers of one MP4 share its opened movie and recent
//! plans ([`crate::media::MovieCache`]).

pub mod access_log;
#[allow(unsafe_code)] // taking ownership of the descriptors systemd passed (LISTEN_FDS)
mod activation;
mod conn;
mod idle;
mod ops;
mod send;
pub mod settings;
mod tls;
mod transport;

use crate::{Error, Result};
pub use settings::{ConfigCell, Settings};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// How many opened MP4 movies `serve` keeps (least recently used dropped first), for
/// progressive seeks and HLS/DASH alike (their packages are kept in the movie's entry, at
/// most `media::PACKAGES_HELD` over all movies).
const MOVIE_CACHE: usize = 256;

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
    /// The HTTPS acceptor, when `[tls]` is configured.
    pub tls: Option<tls::Tls>,
    /// Answers being sent, by id: what a shutdown that runs out of grace cuts.
    pub sending: std::sync::Mutex<std::collections::HashMap<u64, String>>,
    pub next_id: std::sync::atomic::AtomicU64,
    /// The object store when `[storage]` is configured (see [`crate::storage`]).
    #[cfg(feature = "storage")]
    pub storage: crate::storage::StorageState,
}

/// An answer being sent, listed in [`Shared::sending`] while it lives.
pub(crate) struct Sending<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Shared {
    /// Lists an answer as being sent (`what`: the client and the request line).
    pub fn sending(&self, what: String) -> Sending<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.sending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, what);
        Sending { shared: self, id }
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.shared.sending.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

/// Counts a connection for `max_connections` while it lives.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        if crate::metrics::enabled() {
            crate::metrics::METRICS.connections_open.fetch_sub(1, Ordering::Relaxed);
        }
        self.0.freed.notify_one();
    }
}

/// The signals `serve` handles, registered before the address is announced so that a
/// SIGTERM sent right after start-up is never fatal.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
}

/// The listening sockets of a server.
struct Listeners {
    http: std::net::TcpListener,
    https: Option<std::net::TcpListener>,
    metrics: Option<std::net::TcpListener>,
}

/// A bound, configured server with its runtime and signal handlers, not yet serving.
pub struct Server {
    listeners: Listeners,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Runtime,
    signals: Signals,
}

impl Server {
    /// Loads the configuration (a broken one is an error here) and binds `listen`, the
    /// `[tls]` and `[metrics]` addresses — or takes the sockets systemd passed
    /// (`LISTEN_FDS`, see `activation`), then `listen` is not used.
    pub fn bind(listen: SocketAddr, settings: Settings, threads: Option<usize>) -> Result<Server> {
        let config = ConfigCell::new(settings)
            .map_err(|e| Error::Config(format!("not starting: the configuration is invalid: {e}")))?;
        let cfg = config.get();
        let backlog = effective_backlog(cfg.server.listen_backlog);
        #[cfg(feature = "storage")]
        let storage = crate::storage::StorageState::default();
        if let Some(_st) = &cfg.storage {
            // Credentials that cannot be read are a start-up error, not a site of 500s.
            #[cfg(feature = "storage")]
            storage.store(_st).map_err(|e| Error::Config(format!("not starting: {e}")))?;
            #[cfg(not(feature = "storage"))]
            return Err(Error::Config(
                "not starting: [storage] needs loomiere built with the `storage` feature".into(),
            ));
        }
        crate::metrics::set_enabled(cfg.metrics.enabled);
        let tls = match &cfg.tls {
            Some(t) => Some(tls::Tls::new(t).map_err(|e| Error::Config(format!("not starting: {e}")))?),
            None => None,
        };
        let mut passed = activation::passed().map_err(|e| Error::Config(format!("not starting: {e}")))?;
        let activated = !passed.is_empty();
        let mut take = |u: activation::Use| passed.iter().position(|(x, _)| *x == u).map(|i| passed.swap_remove(i).1);
        let (p_http, p_https, p_metrics) =
            (take(activation::Use::Http), take(activation::Use::Https), take(activation::Use::Metrics));
        let http = match p_http {
            Some(l) => l,
            None if activated => {
                return Err(Error::Config("not starting: systemd passed sockets but none for HTTP".into()))
            }
            None => bind_or_explain(listen, backlog, "--listen")?,
        };
        let https = match (&cfg.tls, p_https) {
            (Some(_), Some(l)) => Some(l),
            (Some(t), None) => Some(bind_or_explain(t.listen, backlog, "[tls] listen")?),
            (None, Some(_)) => {
                return Err(Error::Config(
                    "not starting: systemd passed an https socket but [tls] is not configured".into(),
                ))
            }
            (None, None) => None,
        };
        let metrics = match (cfg.metrics.listen, p_metrics) {
            (Some(_), Some(l)) => Some(l),
            (None, Some(_)) => {
                return Err(Error::Config(
                    "not starting: systemd passed a metrics socket but [metrics] listen is not configured".into(),
                ))
            }
            (Some(a), None) => Some(bind_or_explain(a, 128, "[metrics] listen")?),
            (None, None) => None,
        };
        let listeners = Listeners { http, https, metrics };
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
            tls,
            sending: Default::default(),
            next_id: Default::default(),
            #[cfg(feature = "storage")]
            storage,
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
                usr1: signal(SignalKind::user_defined1())?,
            })
        });
        let signals = signals.map_err(|e| Error::io("cannot install signal handlers", e))?;
        Ok(Server { listeners, shared, runtime, signals })
    }

    /// The HTTP address actually bound (for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listeners.http.local_addr().map_err(|e| Error::io("cannot read the listening address", e))
    }

    /// The HTTPS address, when `[tls]` is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.listeners.https.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The metrics address, when `[metrics] listen` is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.listeners.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The document root in force.
    pub fn document_root(&self) -> Option<std::path::PathBuf> {
        Some(self.shared.config.get().document_root.clone())
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    pub fn run(self) -> Result<()> {
        let Server { listeners, shared, runtime, signals } = self;
        // The accept loop runs as a task on a runtime thread, not on this one: a connection it
        // accepts is spawned where it was accepted and answered by the same thread, as an
        // nginx worker does, instead of being handed from this thread to a worker (two
        // thread wake-ups per connection).
        runtime.block_on(async move {
            tokio::spawn(serve(listeners, shared, signals))
                .await
                .unwrap_or_else(|e| Err(Error::io("the accept loop failed", std::io::Error::other(e.to_string()))))
        })
    }
}

/// The backlog asked for, capped as the kernel will cap it (`somaxconn`).
fn effective_backlog(asked: u32) -> i32 {
    let cap = std::fs::read_to_string(SOMAXCONN).ok().and_then(|s| s.trim().parse::<u32>().ok());
    let n = cap.map_or(asked, |c| asked.min(c.max(1)));
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// [`listen_on`], its error said for a person (`what`: where the address came from).
fn bind_or_explain(listen: SocketAddr, backlog: i32, what: &str) -> Result<std::net::TcpListener> {
    listen_on(listen, backlog).map_err(|e| {
        let fix = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                format!(" (another program listens there: stop it, or pick another address with {what})")
            }
            std::io::ErrorKind::PermissionDenied => format!(
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE: pick a higher port with {what}, \
                 or let systemd pass the socket)"
            ),
            std::io::ErrorKind::AddrNotAvailable => " (no interface of this machine has that address)".into(),
            _ => String::new(),
        };
        let why = std::io::Error::new(e.kind(), format!("{}{fix}", crate::error::plain_io(&e)));
        Error::io(format!("cannot listen on {listen}"), why)
    })
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

/// Accepts from `listener` when there is one; never ready otherwise.
async fn accept_on(listener: &Option<tokio::net::TcpListener>) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Makes the connection's stream: TLS after a handshake bounded by `header_timeout_secs`.
async fn open_stream(tcp: tokio::net::TcpStream, tls: bool, shared: &Shared) -> Option<transport::Stream> {
    let _ = tcp.set_nodelay(true);
    if !tls {
        return Some(transport::Stream::Plain(tcp));
    }
    let acceptor = shared.tls.as_ref()?.acceptor();
    let limit = Duration::from_secs(shared.config.get().server.header_timeout_secs);
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => Some(transport::Stream::tls(s)),
        // A failed or slow handshake (an old protocol, a scanner): no HTTP to answer it with.
        _ => {
            if crate::metrics::enabled() {
                crate::metrics::METRICS.error(crate::metrics::ErrorKind::TlsHandshake);
            }
            None
        }
    }
}

/// The `[metrics] listen` listener: every connection served at once (few, from the
/// scraper), not counted in `max_connections`.
async fn serve_metrics(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let sh = shared.clone();
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    conn::serve(transport::Stream::Plain(tcp), peer, sh, ops::Role::Metrics).await;
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn serve(listeners: Listeners, shared: Arc<Shared>, signals: Signals) -> Result<()> {
    let Signals { mut term, mut int, mut hup, mut usr1 } = signals;
    let register = |l: std::net::TcpListener| {
        tokio::net::TcpListener::from_std(l).map_err(|e| Error::io("cannot register the listener", e))
    };
    let listener = register(listeners.http)?;
    let https = listeners.https.map(register).transpose()?;
    let metrics = listeners.metrics.map(register).transpose()?.map(|l| tokio::spawn(serve_metrics(l, shared.clone())));
    let sweeper = tokio::spawn(sweep_movies(shared.movies.clone()));
    // An accepted connection waiting for a slot (at most one: the rest wait in the kernel's
    // queue), whether it is TLS, and when an idle new connection may be closed for it.
    let mut waiting: Option<(tokio::net::TcpStream, SocketAddr, bool)> = None;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        if let Some((stream, peer, tls)) = waiting.take() {
            let max = shared.config.get().server.max_connections;
            if shared.active.load(Ordering::Relaxed) < max {
                shared.active.fetch_add(1, Ordering::Relaxed);
                if crate::metrics::enabled() {
                    crate::metrics::METRICS.connections_open.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::METRICS.connections_total.fetch_add(1, Ordering::Relaxed);
                }
                let slot = Slot(shared.clone());
                let sh = shared.clone();
                tokio::spawn(async move {
                    if let Some(stream) = open_stream(stream, tls, &sh).await {
                        conn::serve(stream, peer, sh, ops::Role::Public).await;
                    }
                    drop(slot);
                });
                retry_at = None;
            } else {
                waiting = Some((stream, peer, tls));
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
        let accepted = |acc: std::io::Result<(tokio::net::TcpStream, SocketAddr)>, tls: bool| match acc {
            Ok((s, p)) => Ok((s, p, tls)),
            Err(e) => Err(e),
        };
        let acc = tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                shared.config.reload_soon();
                let cfg = shared.config.get();
                if let Some(t) = &shared.tls {
                    t.reload(&cfg);
                }
                continue;
            }
            _ = usr1.recv() => {
                shared.log.reopen();
                shared.config.get().log("log file reopened (SIGUSR1)");
                continue;
            }
            _ = shared.freed.notified(), if waiting.is_some() => continue,
            _ = tokio::time::sleep_until(retry), if waiting.is_some() && retry_at.is_some() => continue,
            acc = listener.accept(), if waiting.is_none() => accepted(acc, false),
            acc = accept_on(&https), if waiting.is_none() => accepted(acc, true),
        };
        match acc {
            Ok(a) => waiting = Some(a),
            Err(e) => {
                // Out of descriptors or similar: back off instead of spinning.
                crate::config::log_to(&crate::config::LogTarget::Stderr, &format!("accept: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    sweeper.abort();
    drop(waiting);
    drop(listener);
    drop(https);
    let _ = shared.stop.send(true);
    let cfg = shared.config.get();
    let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
    let running = shared.sending.lock().unwrap_or_else(|p| p.into_inner()).len();
    cfg.log(&format!(
        "stopping: no longer accepting; {running} answers being sent get up to {} s to finish",
        grace.as_secs()
    ));
    let deadline = tokio::time::Instant::now() + grace;
    while shared.active.load(Ordering::Relaxed) > 0 {
        if tokio::time::timeout_at(deadline, shared.freed.notified()).await.is_err() {
            break;
        }
    }
    let cut: Vec<String> = shared.sending.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    for what in &cut {
        cfg.log(&format!("stopping: grace of {} s over, answer cut: {what}", grace.as_secs()));
    }
    if crate::metrics::enabled() {
        crate::metrics::METRICS.streams_cut_at_shutdown.fetch_add(cut.len() as u64, Ordering::Relaxed);
    }
    cfg.log(&format!("stopped: {} answers cut", cut.len()));
    if let Some(m) = metrics {
        m.abort();
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
