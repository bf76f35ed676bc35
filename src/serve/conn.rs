//! One client connection of `serve`: read a request head (bounded in size and time — a
//! client trickling bytes is dropped at `header_timeout_secs`), answer it through the shared
//! HTTP core ([`http::respond`], or the listing page), log it, and loop while keep-alive
//! holds. Bytes after a head stay buffered for the next request, so pipelined requests are
//! answered in order. While a body streams the connection holds no buffer of its own.

use super::access_log::{sanitise, Entry};
use super::{listing, send, Shared};
use crate::config::{Config, ServerLimits};
use crate::http::{self, wire, Body, Response};
use crate::throttle::Pacer;
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
    /// A partial head was not completed in time (slowloris): 408.
    TimedOut,
    /// More than `max_header_bytes` without the blank line: 431.
    TooLarge,
}

async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    limits: &ServerLimits,
    stop: &mut watch::Receiver<bool>,
) -> HeadRead {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(limits.header_timeout_secs);
    loop {
        if let Some(n) = wire::head_len(buf) {
            if n > limits.max_header_bytes {
                return HeadRead::TooLarge;
            }
            return HeadRead::Head(n);
        }
        if buf.len() >= limits.max_header_bytes {
            return HeadRead::TooLarge;
        }
        if *stop.borrow() && buf.is_empty() {
            return HeadRead::Done;
        }
        let room = (limits.max_header_bytes - buf.len()).min(4096);
        buf.reserve(room);
        let mut chunk = (&mut *stream).take(room as u64);
        tokio::select! {
            r = tokio::time::timeout_at(deadline, chunk.read_buf(buf)) => match r {
                Err(_) if buf.is_empty() => return HeadRead::Done,
                Err(_) => return HeadRead::TimedOut,
                Ok(Ok(0)) | Ok(Err(_)) => return HeadRead::Done,
                Ok(Ok(_)) => {}
            },
            _ = stop.changed() => {}
        }
    }
}

/// Serves one connection until it closes, errs, or the server stops.
pub async fn serve(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut stop = shared.stop.subscribe();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let limits = shared.config.get().map(|c| c.server.clone()).unwrap_or_default();
        let n = match read_head(&mut stream, &mut buf, &limits, &mut stop).await {
            HeadRead::Head(n) => n,
            HeadRead::Done => return,
            HeadRead::TimedOut => {
                refuse(&mut stream, &shared, peer, 408, "request head not received in time").await;
                return;
            }
            HeadRead::TooLarge => {
                refuse(&mut stream, &shared, peer, 431, "request head too large").await;
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
        let resp = match &cfg {
            Ok(cfg) => answer(cfg.clone(), parsed.request.clone(), shared.movies.clone()).await,
            Err(e) => Response::config_error_text(e.clone()),
        };
        let keep = parsed.keep_alive && !*stop.borrow();
        let mut bytes = 0u64;
        let ok = write_response(&mut stream, &resp, parsed.http10, keep, cfg.as_ref().ok(), &mut bytes).await;
        let target = cfg.as_ref().map(|c| c.log.clone()).unwrap_or(crate::config::LogTarget::Stderr);
        shared.log.write(
            &target,
            &Entry { peer, when, request_line: &request_line, status: resp.status, bytes, took: began.elapsed() },
        );
        if let (Some(detail), Ok(cfg)) = (&resp.log, &cfg) {
            cfg.log(&format!("{} {} {detail}", resp.status, parsed.request.method));
        }
        if !ok {
            return;
        }
        if !keep {
            linger(&mut stream).await;
            return;
        }
    }
}

/// The listing page for directories (when on), else the shared core, run off the async
/// threads because it opens the file and reads the media index.
async fn answer(cfg: Arc<Config>, req: http::HttpRequest, movies: Arc<crate::media::MovieCache>) -> Response {
    let head_only = req.method == "HEAD";
    if cfg.listing && (req.method == "GET" || head_only) {
        if let Some(dir) = listing::resolve(&cfg, &req.target) {
            return listing::page(&cfg, &dir, head_only);
        }
    }
    match tokio::task::spawn_blocking(move || http::respond_cached(&cfg, &req, &movies)).await {
        Ok(r) => r,
        Err(e) => Response::error(500, Some(format!("request handler failed: {e}"))),
    }
}

/// Sends head and body; false when the connection must not be reused.
async fn write_response(
    stream: &mut TcpStream,
    resp: &Response,
    http10: bool,
    keep: bool,
    cfg: Option<&Arc<Config>>,
    bytes: &mut u64,
) -> bool {
    let head = resp.http_head(http10, keep, SystemTime::now());
    match &resp.body {
        Body::Empty => send::write_all(stream, head.as_bytes()).await.is_ok(),
        Body::Text(t) => {
            let mut all = head.into_bytes();
            all.extend_from_slice(t.as_bytes());
            let ok = send::write_all(stream, &all).await.is_ok();
            if ok {
                *bytes = t.len() as u64;
            }
            ok
        }
        Body::Plan { plan, range } => {
            if send::write_all(stream, head.as_bytes()).await.is_err() {
                return false;
            }
            let pacer = cfg.and_then(|c| Pacer::for_plan(c, plan, range));
            send::send_plan(stream, plan, range.clone(), pacer.as_ref(), bytes).await.is_ok()
        }
    }
}

/// Answers a request that cannot be served with an error status and closes.
async fn refuse(stream: &mut TcpStream, shared: &Shared, peer: SocketAddr, status: u16, why: &str) {
    let resp = Response::error(status, Some(why.to_string()));
    let mut bytes = 0;
    let _ = write_response(stream, &resp, false, false, None, &mut bytes).await;
    linger(stream).await;
    let target = shared.config.get().map(|c| c.log.clone()).unwrap_or(crate::config::LogTarget::Stderr);
    shared.log.write(
        &target,
        &Entry { peer, when: SystemTime::now(), request_line: "-", status, bytes, took: Duration::ZERO },
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
