//! The byte stream under one connection of `serve`: plain TCP, or TLS over TCP (rustls).
//! Plan bodies go zero-copy with `sendfile` on plain TCP ([`super::send::send_plan`]); under
//! TLS the bytes must pass through the process to be encrypted, so they are read with `pread`
//! into a buffer ([`crate::sink::read_range`]) and written through the TLS session, paced the
//! same way.

use crate::plan::Plan;
use crate::throttle::{Pace, Pacer};
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Bytes read and encrypted per step under TLS (rustls cuts them into 16 KiB records).
const TLS_STEP: u64 = 256 * 1024;

/// A client connection.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    /// Reads what is already there without waiting: `WouldBlock` when nothing is.
    pub fn try_read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.try_read(buf),
            Stream::Tls(s) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut rb = ReadBuf::new(buf);
                match Pin::new(s.as_mut()).poll_read(&mut cx, &mut rb) {
                    Poll::Ready(Ok(())) => Ok(rb.filled().len()),
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Sends output bytes `range` of `plan`, paced by `pacer` when given, counting what went
    /// in `sent` (also on error).
    pub async fn send_plan(
        &mut self,
        plan: &Plan,
        range: Range<u64>,
        pacer: Option<&Pacer>,
        sent: &mut u64,
    ) -> io::Result<()> {
        match self {
            Stream::Plain(s) => super::send::send_plan(s, plan, range, pacer, sent).await,
            Stream::Tls(s) => send_buffered(s.as_mut(), plan, range, pacer, sent).await,
        }
    }
}

/// The buffered path: `pread` a step of the plan, write it through the TLS session.
async fn send_buffered(
    out: &mut (impl AsyncWrite + Unpin),
    plan: &Plan,
    range: Range<u64>,
    pacer: Option<&Pacer>,
    sent: &mut u64,
) -> io::Result<()> {
    let began = Instant::now();
    let mut pos = range.start;
    while pos < range.end {
        let budget = match pacer.map(|p| p.next(*sent, began.elapsed())) {
            None => TLS_STEP,
            Some(Pace::Send(n)) => n.clamp(1, TLS_STEP),
            Some(Pace::Wait(d)) => {
                tokio::time::sleep(d).await;
                continue;
            }
        };
        let to = pos.saturating_add(budget).min(range.end);
        let bytes = crate::sink::read_range(plan, pos..to)?;
        out.write_all(&bytes).await?;
        *sent += to - pos;
        pos = to;
        tokio::task::yield_now().await;
    }
    out.flush().await
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
