//! Sending a plan whose data pieces are ranges of an object in storage: synthesised pieces
//! are pulled from the plan in 64 KiB steps, each data range is one ranged GET (with
//! `If-Match` on the ETag the plan was made from) whose chunks are written to the client as
//! they arrive. Back-pressure: the next chunk is read from the store only once the previous
//! one is in the socket, so a slow client holds one chunk, never the range. Paced like any
//! answer. A store that stops sending for `storage_timeout_secs`, or changes the object
//! mid-answer, cuts the answer short (the connection is closed, never padded).

use super::{Identity, Store, StoreError};
use crate::plan::{Piece, Plan};
use crate::sink::pace::{Pace, Pacer};
use futures_util::StreamExt;
use std::io;
use std::ops::Range;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncWriteExt;

/// The chunks of one ranged GET.
pub type ChunkStream = futures_util::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>;

/// The object an answer's data pieces come from, the first range's GET already answered.
pub struct Remote {
    store: Arc<Store>,
    id: Identity,
    first: Option<ChunkStream>,
    data_ranges: u64,
}

/// The object byte ranges of output `range` of `plan`, in order.
fn data_ranges(plan: &Plan, range: Range<u64>) -> Vec<Range<u64>> {
    plan.slice(range)
        .iter()
        .filter_map(|s| match s.piece {
            Piece::Source { offset, .. } => Some(offset.saturating_add(s.from)..offset.saturating_add(s.to)),
            Piece::Synth(_) => None,
        })
        .collect()
}

impl Remote {
    /// Opens the first data range of output `range` of `plan` (none when the range holds
    /// only synthesised bytes).
    pub async fn open(
        store: Arc<Store>,
        id: Identity,
        plan: &Plan,
        range: Range<u64>,
        count: &AtomicU64,
    ) -> Result<Remote, StoreError> {
        let ranges = data_ranges(plan, range);
        let first = match ranges.first() {
            Some(r) => Some(store.stream(&id, r.clone(), count).await?),
            None => None,
        };
        Ok(Remote { store, id, first, data_ranges: ranges.len() as u64 })
    }

    /// Storage requests this answer will still make (data ranges after the first).
    pub fn ranges_left(&self) -> u64 {
        self.data_ranges.saturating_sub(1)
    }
}

fn cut(why: String) -> io::Error {
    // The kind `serve` logs as an answer cut short by its source.
    io::Error::new(io::ErrorKind::UnexpectedEof, why)
}

/// Writes `bytes` paced by `pacer`.
async fn write_paced(
    stream: &mut (impl tokio::io::AsyncWrite + Unpin),
    mut bytes: &[u8],
    pacer: Option<&Pacer>,
    began: Instant,
    sent: &mut u64,
) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = match pacer.map(|p| p.next(*sent, began.elapsed())) {
            None => bytes.len(),
            Some(Pace::Send(n)) => usize::try_from(n).unwrap_or(usize::MAX).min(bytes.len()),
            Some(Pace::Wait(d)) => {
                tokio::time::sleep(d).await;
                continue;
            }
        };
        let (now, rest) = bytes.split_at(n);
        stream.write_all(now).await?;
        *sent += n as u64;
        bytes = rest;
    }
    Ok(())
}

/// Sends output bytes `range` of `plan`, its data pieces read from `remote`'s object.
pub async fn send_plan(
    stream: &mut (impl tokio::io::AsyncWrite + Unpin),
    plan: &Plan,
    range: Range<u64>,
    remote: &mut Remote,
    pacer: Option<&Pacer>,
    sent: &mut u64,
) -> io::Result<()> {
    let began = Instant::now();
    let timeout = remote.store.cfg.timeout;
    let count = AtomicU64::new(0);
    let mut scratch = vec![0u8; 64 * 1024];
    for seg in plan.slice(range) {
        match seg.piece {
            Piece::Synth(s) => {
                let mut at = seg.from;
                while at < seg.to {
                    let want = usize::try_from(seg.to - at).unwrap_or(usize::MAX).min(scratch.len());
                    let buf = scratch.get_mut(..want).unwrap_or_default();
                    let n = s.read_at(at, buf);
                    if n == 0 {
                        return Err(cut("the synthesised header ended early".into()));
                    }
                    write_paced(stream, buf.get(..n).unwrap_or_default(), pacer, began, sent).await?;
                    at += n as u64;
                }
            }
            Piece::Source { offset, .. } => {
                let obj = offset.saturating_add(seg.from)..offset.saturating_add(seg.to);
                let mut chunks = match remote.first.take() {
                    Some(c) => c,
                    None => {
                        remote.store.stream(&remote.id, obj.clone(), &count).await.map_err(|e| cut(format!("{e:?}")))?
                    }
                };
                let mut got = 0u64;
                let want = obj.end - obj.start;
                while got < want {
                    let chunk = match tokio::time::timeout(timeout, chunks.next()).await {
                        Err(_) => return Err(cut("the media store stopped sending (storage_timeout_secs)".into())),
                        Ok(None) => {
                            return Err(cut(format!("the media store ended the range after {got} of {want} bytes")))
                        }
                        Ok(Some(Err(e))) => return Err(cut(format!("the media store failed: {e}"))),
                        Ok(Some(Ok(c))) => c,
                    };
                    let take = usize::try_from(want - got).unwrap_or(usize::MAX).min(chunk.len());
                    write_paced(stream, chunk.get(..take).unwrap_or_default(), pacer, began, sent).await?;
                    got += take as u64;
                }
            }
        }
    }
    Ok(())
}
