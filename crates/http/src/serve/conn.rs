//! One client connection of `serve`: read a request head (bounded in size and time — a
//! client trickling bytes is dropped at `header_timeout_secs`), answer it through the shared
//! HTTP core ([`http::respond`], or the listing page), log it, and loop while keep-alive
//! holds. Bytes after a head stay buffered for the next request, so pipelined requests are
//! answered in order. While a body streams the connection holds no buffer of its own.

use super::access_log::{sanitise, Entry};
use super::idle::Idle;
use super::{send, Shared};
use crate::config::{Config, ServerLimits};
use crate::http::exchange::{self, HeadFailure, HeadState};
use crate::http::{self, wire, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
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
    stream: &mut TcpStream,
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
            match stream.try_read(first.get_mut(..room).unwrap_or(&mut [])) {
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
pub async fn serve(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut stop = shared.stop.subscribe();
    let mut buf: Vec<u8> = Vec::new();
    let mut answered = false;
    loop {
        let limits = shared.config.get().server.clone();
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
        drop(head);
        let cfg = shared.config.get();
        let resp = answer(cfg.clone(), parsed.request.clone(), shared.movies.clone()).await;
        let keep = exchange::keep_alive(&parsed, *stop.borrow());
        let mut bytes = 0u64;
        let mut cut_short = None;
        let ok = write_response(&mut stream, &resp, parsed.http10, keep, Some(&cfg), &mut bytes, &mut cut_short).await;
        shared.log.write(
            &cfg.log,
            &Entry {
                peer,
                when,
                request_line: &request_line,
                status: resp.status,
                bytes,
                took: began.elapsed(),
                cut_short: cut_short.is_some(),
            },
        );
        exchange::log_answer(&cfg, &resp, &parsed.request.method);
        if let Some(e) = &cut_short {
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

/// The shared core, run off the async threads because it opens the file (or lists a
/// directory) and reads the media index.
async fn answer(cfg: Arc<Config>, req: http::HttpRequest, movies: Arc<crate::media::MovieCache>) -> Response {
    match tokio::task::spawn_blocking(move || http::respond_cached(&cfg, &req, &movies)).await {
        Ok(r) => r,
        Err(e) => Response::error(500, Some(format!("request handler failed: {e}"))),
    }
}

/// Sends head and body; false when the connection must not be reused. A body the source
/// file can no longer give as announced (truncated or overwritten while sent) stops there, its
/// error in `cut_short`: the caller closes the connection, never pads it.
async fn write_response(
    stream: &mut TcpStream,
    resp: &Response,
    http10: bool,
    keep: bool,
    cfg: Option<&Arc<Config>>,
    bytes: &mut u64,
    cut_short: &mut Option<std::io::Error>,
) -> bool {
    let head = resp.http_head(http10, keep, SystemTime::now());
    let delivery = exchange::delivery(resp, head, cfg.map(|c| &**c));
    if send::write_all(stream, &delivery.prefix).await.is_err() {
        return false;
    }
    *bytes = delivery.prefix_body;
    let Some((plan, range, pacer)) = &delivery.plan else { return true };
    match send::send_plan(stream, plan, range.clone(), pacer.as_ref(), bytes).await {
        Ok(()) => true,
        Err(e) => {
            if crate::sink::is_source_fault(&e) {
                *cut_short = Some(e);
            }
            false
        }
    }
}

/// Answers a request that cannot be served with an error status and closes.
async fn refuse(stream: &mut TcpStream, shared: &Shared, peer: SocketAddr, status: u16, why: &str) {
    let resp = Response::error(status, Some(why.to_string()));
    let mut bytes = 0;
    let _ = write_response(stream, &resp, false, false, None, &mut bytes, &mut None).await;
    linger(stream).await;
    shared.log.write(
        &shared.config.get().log,
        &Entry {
            peer,
            when: SystemTime::now(),
            request_line: "-",
            status,
            bytes,
            took: Duration::ZERO,
            cut_short: false,
        },
    );
}

/// Closes gracefully after an error answer: send FIN, then discard what the client is still
/// sending (bounded in bytes and time), so the kernel does not answer unread data with a
/// reset that could destroy the error response before the client reads it.
async fn linger(stream: &mut TcpStream) {
    use tokio::io::AsyncWriteExt;
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut left = 256 * 1024usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while left > 0 {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}
