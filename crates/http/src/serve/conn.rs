//! One client connection of `serve`: read a request head (bounded in size and time — a
//! client trickling bytes is dropped at `header_timeout_secs`), answer it through the shared
//! HTTP core ([`http::respond`], or the listing page), log it, and loop while keep-alive
//! holds. Bytes after a head stay buffered for the next request, so pipelined requests are
//! answered in order. While a body streams the connection holds no buffer of its own.
//! Operator paths (`/healthz`, `/readyz`, `/metrics`) are answered by [`super::ops`]; every
//! answer is counted in [`crate::metrics::METRICS`] unless metrics are off
//! ([`crate::metrics::enabled`]), when none of that work is done.

use super::access_log::{self, sanitise, Entry};
use super::idle::Idle;
use super::ops::{self, Role};
use super::transport::Stream;
use super::{send, Shared};
use crate::config::{AccessLogFormat, Config, LogTarget, ServerLimits};
use crate::http::exchange::{self, HeadFailure, HeadState};
use crate::http::{self, wire, Body, Response};
use crate::metrics::{enabled as counting, ErrorKind, RequestKind, METRICS};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

enum HeadRead {
    /// A complete head of this many bytes is at the front of the buffer.
    Head(usize),
    /// The client closed, or went quiet between requests, or the server is stopping.
    Done,
    /// A head that cannot be had: too slow (slowloris, 408) or too large (431).
    Failed(HeadFailure),
}

/// Reads until a complete head is at the front of `buf`. While nothing of the request has
/// arrived the connection is registered as idle (`kept_alive`: answered before), so that a
/// full server may close it to admit a new one (see `idle`).
async fn read_head(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    limits: &ServerLimits,
    shared: &Shared,
    kept_alive: bool,
    stop: &mut watch::Receiver<bool>,
) -> HeadRead {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(limits.header_timeout_secs);
    let mut idle: Option<Idle<'_>> = None;
    loop {
        match exchange::head_state(buf, limits.max_header_bytes) {
            HeadState::Complete(n) => return HeadRead::Head(n),
            HeadState::TooLarge => return HeadRead::Failed(HeadFailure::TooLarge),
            HeadState::Incomplete => {}
        }
        if *stop.borrow() && buf.is_empty() {
            return HeadRead::Done;
        }
        let room = (limits.max_header_bytes - buf.len()).min(4096);
        if buf.is_empty() && idle.is_none() {
            // Idle only once a read finds nothing: a request already queued is read at once.
            let mut first = [0u8; 4096];
            match stream.try_read_now(first.get_mut(..room).unwrap_or(&mut [])) {
                Ok(0) => return HeadRead::Done,
                Ok(n) => {
                    buf.extend_from_slice(first.get(..n).unwrap_or(&[]));
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    idle = Some(shared.idle.enter(kept_alive));
                    if shared.starved.load(std::sync::atomic::Ordering::Relaxed) {
                        shared.freed.notify_one(); // a waiting client may now have this slot
                    }
                }
                Err(_) => return HeadRead::Done,
            }
        }
        buf.reserve(room);
        let mut chunk = (&mut *stream).take(room as u64);
        let asked = async {
            match &idle {
                Some(i) => i.asked_to_close().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = tokio::time::timeout_at(deadline, chunk.read_buf(buf)) => match r {
                Err(_) if buf.is_empty() => return HeadRead::Done,
                Err(_) => return HeadRead::Failed(HeadFailure::TimedOut),
                Ok(Ok(0)) | Ok(Err(_)) => return HeadRead::Done,
                Ok(Ok(_)) => {
                    // The request has begun: no longer idle. Chosen to be closed just as it
                    // arrived? Serve it, and let the accept loop choose another.
                    if idle.take().is_some_and(|i| i.was_asked()) {
                        shared.freed.notify_one();
                    }
                }
            },
            _ = asked => return HeadRead::Done,
            _ = stop.changed() => {}
        }
    }
}

/// Serves one connection until it closes, errs, or the server stops.
pub async fn serve(mut stream: Stream, peer: SocketAddr, shared: Arc<Shared>, role: Role) {
    let mut stop = shared.stop.subscribe();
    let mut buf: Vec<u8> = Vec::new();
    let mut answered = false;
    loop {
        let limits = shared.config.current().server.clone();
        let n = match read_head(&mut stream, &mut buf, &limits, &shared, answered, &mut stop).await {
            HeadRead::Head(n) => n,
            HeadRead::Done => return,
            HeadRead::Failed(failure) => {
                refuse(&mut stream, &shared, peer, failure.status(), failure.why()).await;
                return;
            }
        };
        let began = Instant::now();
        let when = SystemTime::now();
        let head: Vec<u8> = buf.drain(..n).collect();
        if buf.is_empty() {
            buf = Vec::new(); // hold no memory while the answer streams
        }
        let line_end = head.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(head.len());
        let request_line = sanitise(head.get(..line_end).unwrap_or(&[]));
        let parsed = match wire::parse(&head) {
            Ok(p) => p,
            Err(e) => {
                refuse(&mut stream, &shared, peer, e.status, &e.why).await;
                return;
            }
        };
        let cfg = shared.config.get();
        // What only the combined and JSON formats write.
        let detailed = cfg.access_log_format != AccessLogFormat::Common && cfg.log != LogTarget::Off;
        let (referer, user_agent, asked) = if detailed {
            let asked = crate::http::query::Query::parse(&parsed.request.query)
                .ok()
                .filter(|q| q.start.is_some() || q.end.is_some())
                .map(|q| (q.start.map(|s| sanitise(s.as_bytes())), q.end.map(|e| sanitise(e.as_bytes()))));
            (access_log::header(&head, "Referer"), access_log::header(&head, "User-Agent"), asked)
        } else {
            (None, None, None)
        };
        drop(head);
        // Media in object storage (`[storage]`): answered from the store, data streamed from it.
        #[cfg(feature = "storage")]
        let ((resp, kind), mut remote) = if cfg.storage.is_some()
            && !is_listing(&cfg, &parsed.request)
            && !ops::is_reserved(role, &cfg, &url_path_of(&parsed.request))
        {
            // Boxed, as `write_remote` below: the store client's futures are large, and a
            // connection's task is sized for its largest state whether storage is used or not.
            let a = Box::pin(crate::storage::answer(
                cfg.clone(),
                &shared.storage,
                parsed.request.clone(),
                shared.movies.clone(),
            ))
            .await;
            let kind =
                if counting() { RequestKind::of_path(&url_path_of(&parsed.request)) } else { RequestKind::Other };
            ((a.response, kind), a.remote)
        } else {
            (answer(cfg.clone(), parsed.request.clone(), shared.movies.clone(), role).await, None)
        };
        #[cfg(not(feature = "storage"))]
        let (resp, kind) = answer(cfg.clone(), parsed.request.clone(), shared.movies.clone(), role).await;
        let served = match &resp.body {
            Body::Plan { plan, .. } => plan.info.start.map(|s| (s, s + plan.info.duration.unwrap_or(0.0))),
            _ => None,
        };
        let keep = exchange::keep_alive(&parsed, *stop.borrow());
        let mut out = Outcome::default();
        let listed =
            matches!(resp.body, Body::Plan { .. }).then(|| shared.sending(format!("{} \"{request_line}\"", peer.ip())));
        #[cfg(feature = "storage")]
        let ok = match remote.as_mut() {
            Some(r) => Box::pin(write_remote(&mut stream, &resp, r, parsed.http10, keep, &cfg, &mut out)).await,
            None => write_response(&mut stream, &resp, parsed.http10, keep, Some(&cfg), &mut out).await,
        };
        #[cfg(not(feature = "storage"))]
        let ok = write_response(&mut stream, &resp, parsed.http10, keep, Some(&cfg), &mut out).await;
        drop(listed);
        let first_byte = out.first_byte.map(|t| t.saturating_duration_since(began));
        if counting() {
            METRICS.request(kind, resp.status);
            if let Some(d) = first_byte {
                METRICS.first_byte.observe(d);
            }
            if !ok && out.cut_short.is_none() {
                METRICS.error(ErrorKind::ClientGone);
            }
        }
        let (bytes, cut_short) = (out.bytes, out.cut_short);
        shared.log.write(
            &cfg.log,
            cfg.access_log_format,
            &Entry {
                peer,
                when,
                request_line: &request_line,
                status: resp.status,
                bytes,
                took: began.elapsed(),
                cut_short: cut_short.is_some(),
                referer,
                user_agent,
                first_byte,
                asked,
                served,
            },
        );
        exchange::log_answer(&cfg, &resp, &parsed.request.method);
        if let Some(e) = &cut_short {
            if counting() {
                METRICS.error(ErrorKind::CutShort);
            }
            exchange::log_cut_short(&cfg, resp.status, &request_line, bytes, e);
        }
        if !ok {
            return;
        }
        answered = true;
        if !keep {
            linger(&mut stream).await;
            return;
        }
    }
}

/// The operator paths ([`ops`]), else the shared core (files, HLS/DASH, the listing page;
/// timed for `loomiere_plan_seconds`). Also says what kind of request it was, for the
/// metrics. An answer the movie cache already holds (a segment or playlist of a package
/// built, a remembered seek) is made right here on the async thread — the file opened and
/// `fstat`ed, nothing read ([`http::respond_held`]); anything that would read a file or
/// build an index (a `moov`, a segment index, a directory) runs on tokio's blocking pool.
async fn answer(
    cfg: Arc<Config>,
    req: http::HttpRequest,
    movies: Arc<crate::media::MovieCache>,
    role: Role,
) -> (Response, RequestKind) {
    let url_path = match &req.target {
        http::path::Target::Url(p) => p.clone(),
        _ => String::new(),
    };
    if ops::is_reserved(role, &cfg, &url_path) {
        let done = tokio::task::spawn_blocking(move || ops::answer(role, &cfg, &req, &movies)).await;
        let r = done.ok().flatten().unwrap_or_else(|| Response::error(500, Some("operator path failed".into())));
        return (r, RequestKind::Other);
    }
    let kind = if counting() { RequestKind::of_path(&url_path) } else { RequestKind::Other };
    let began = counting().then(Instant::now);
    if let Some(r) = http::respond_held(&cfg, &req, &movies) {
        if let (Some(began), Body::Plan { .. }) = (began, &r.body) {
            METRICS.plan_time.observe(began.elapsed());
        }
        return (r, kind);
    }
    let planned = tokio::task::spawn_blocking(move || {
        let began = counting().then(Instant::now);
        let r = http::respond_cached(&cfg, &req, &movies);
        if let (Some(began), Body::Plan { .. }) = (began, &r.body) {
            METRICS.plan_time.observe(began.elapsed());
        }
        r
    })
    .await;
    match planned {
        // The core answers a directory with its listing page (when on).
        Ok(r) if r.headers.iter().any(|(n, v)| *n == "Content-Type" && v.starts_with("text/html")) => {
            (r, RequestKind::Listing)
        }
        Ok(r) => (r, kind),
        Err(e) => (Response::error(500, Some(format!("request handler failed: {e}"))), kind),
    }
}

/// What sending an answer came to.
#[derive(Default)]
struct Outcome {
    /// Body bytes sent.
    bytes: u64,
    /// Why the body stopped early, when its file could no longer give it.
    cut_short: Option<std::io::Error>,
    /// When the first byte of the answer was written.
    first_byte: Option<Instant>,
}

/// Counts a body being sent (and paced) in the gauges while it lives.
struct Streaming {
    paced: bool,
}

impl Streaming {
    /// `None` when metrics are off.
    fn new(paced: bool) -> Option<Streaming> {
        if !counting() {
            return None;
        }
        METRICS.streams_active.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if paced {
            METRICS.streams_paced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Some(Streaming { paced })
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        METRICS.streams_active.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if self.paced {
            METRICS.streams_paced.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Sends head and body; false when the connection must not be reused. A body the source
/// file can no longer give as announced (truncated or overwritten while sent) stops there, its
/// error in `out.cut_short`: the caller closes the connection, never pads it.
async fn write_response(
    stream: &mut Stream,
    resp: &Response,
    http10: bool,
    keep: bool,
    cfg: Option<&Arc<Config>>,
    out: &mut Outcome,
) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    let head = resp.http_head(http10, keep, SystemTime::now());
    let head_len = head.len() as u64;
    match &resp.body {
        Body::Empty => {
            let ok = send::write_all(stream, head.as_bytes()).await.is_ok();
            if ok {
                out.first_byte = Some(Instant::now());
                if counting() {
                    METRICS.sent_bytes.fetch_add(head_len, Relaxed);
                }
            }
            ok
        }
        Body::Text(t) => {
            let mut all = head.into_bytes();
            all.extend_from_slice(t.as_bytes());
            let ok = send::write_all(stream, &all).await.is_ok();
            if ok {
                out.first_byte = Some(Instant::now());
                out.bytes = t.len() as u64;
                if counting() {
                    METRICS.sent_bytes.fetch_add(all.len() as u64, Relaxed);
                }
            }
            ok
        }
        Body::Plan { plan, range } => {
            if send::write_all(stream, head.as_bytes()).await.is_err() {
                return false;
            }
            out.first_byte = Some(Instant::now());
            let pacer = cfg.and_then(|c| crate::throttle::pacer_for(c, plan, range));
            let streaming = Streaming::new(pacer.is_some());
            let sent = stream.send_plan(plan, range.clone(), pacer.as_ref(), &mut out.bytes).await;
            if streaming.is_some() {
                drop(streaming);
                METRICS.sent_bytes.fetch_add(head_len.saturating_add(out.bytes), Relaxed);
            }
            match sent {
                Ok(()) => true,
                Err(e) => {
                    if crate::sink::is_source_fault(&e) {
                        out.cut_short = Some(e);
                    }
                    false
                }
            }
        }
    }
}

/// The URL path of a request (empty for other request targets).
#[cfg(feature = "storage")]
fn url_path_of(req: &http::HttpRequest) -> String {
    match &req.target {
        http::path::Target::Url(p) => p.clone(),
        _ => String::new(),
    }
}

/// Whether the listing page answers this request (a directory with `listing` on).
#[cfg(feature = "storage")]
fn is_listing(cfg: &Config, req: &http::HttpRequest) -> bool {
    cfg.listing && (req.method == "GET" || req.method == "HEAD") && http::listing::resolve(cfg, &req.target).is_some()
}

/// [`write_response`] for an answer from object storage: its data pieces come from the store.
#[cfg(feature = "storage")]
#[allow(clippy::too_many_arguments)]
async fn write_remote(
    stream: &mut Stream,
    resp: &Response,
    remote: &mut crate::storage::send::Remote,
    http10: bool,
    keep: bool,
    cfg: &Arc<Config>,
    out: &mut Outcome,
) -> bool {
    let Body::Plan { plan, range } = &resp.body else {
        return write_response(stream, resp, http10, keep, Some(cfg), out).await;
    };
    let head = resp.http_head(http10, keep, SystemTime::now());
    let sent = match stream {
        Stream::Plain(s) => send::write_all(s, head.as_bytes()).await,
        Stream::Tls(s) => send::write_all(s.as_mut(), head.as_bytes()).await,
    };
    if sent.is_err() {
        return false;
    }
    out.first_byte.get_or_insert_with(Instant::now);
    let pacer = crate::throttle::pacer_for(cfg, plan, range);
    let result = match stream {
        Stream::Plain(s) => {
            crate::storage::send::send_plan(s, plan, range.clone(), remote, pacer.as_ref(), &mut out.bytes).await
        }
        Stream::Tls(s) => {
            crate::storage::send::send_plan(s.as_mut(), plan, range.clone(), remote, pacer.as_ref(), &mut out.bytes)
                .await
        }
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            if crate::sink::is_source_fault(&e) {
                out.cut_short = Some(e);
            }
            false
        }
    }
}

/// Answers a request that cannot be served with an error status and closes.
async fn refuse(stream: &mut Stream, shared: &Shared, peer: SocketAddr, status: u16, why: &str) {
    let resp = Response::error(status, Some(why.to_string()));
    let mut out = Outcome::default();
    let _ = write_response(stream, &resp, false, false, None, &mut out).await;
    linger(stream).await;
    if counting() {
        METRICS.request(RequestKind::Other, status);
    }
    let cfg = shared.config.get();
    shared.log.write(&cfg.log, cfg.access_log_format, &Entry::bare(peer, SystemTime::now(), "-", status, out.bytes));
}

/// Closes gracefully after an error answer: send FIN, then discard what the client is still
/// sending (bounded in bytes and time), so the kernel does not answer unread data with a
/// reset that could destroy the error response before the client reads it.
async fn linger(stream: &mut Stream) {
    use tokio::io::AsyncWriteExt;
    if stream.shutdown().await.is_err() {
        return;
    }
    // On the heap, and only now: an array here would be part of every connection's task.
    let mut sink = vec![0u8; 4096];
    let mut left = 256 * 1024usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while left > 0 {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without making one.
    fn future_size<F, Fut>(_: F) -> usize
    where
        F: FnOnce(Stream, SocketAddr, Arc<Shared>, Role) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn a_connection_task_stays_small() {
        // Every viewer holds one: sized for its largest state (a buffer kept across an await,
        // an unboxed store-client future) whether that state is reached or not.
        let size = future_size(serve);
        eprintln!("conn::serve future: {size} bytes");
        assert!(size <= 3 * 1024, "conn::serve's future is {size} bytes");
    }
}
