//! Writing answers to a non-blocking tokio socket. File pieces of a plan go zero-copy with
//! `sendfile` through [`sink::write_burst`]: as many pieces as the socket takes, up to
//! [`STEP`] bytes (or the throttle's budget) per turn; when the socket is full the burst
//! reports `WouldBlock` and the task awaits writability, and only a task that spent its
//! whole budget yields. A burst over several pieces is sent under `TCP_CORK`, released at
//! its end. Synthesised pieces are pulled into one
//! scratch buffer per runtime thread, borrowed only during the synchronous step, so a
//! stream's own memory is a cursor and a few numbers (the TLS path in [`super::transport`]
//! encrypts from the same buffer). The throttle's [`Pacer`] decides how
//! much may go now and how long to sleep.

use crate::plan::Plan;
use crate::sink::{self, CopyMethod, Cursor};
use crate::throttle::{Pace, Pacer};
use std::cell::RefCell;
use std::io;
use std::ops::Range;
use std::os::fd::AsFd;
use std::time::Instant;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// The most bytes one turn may send, so one fast stream cannot hog a runtime thread.
const STEP: u64 = 1 << 20;

/// Scratch per runtime thread for synthesised bytes: a 2-hour movie's 2 MB moov goes out in
/// 8 writes instead of 128 (a socket takes what fits; the rest is produced again next step).
const THREAD_SCRATCH: usize = 256 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; THREAD_SCRATCH]);
}

/// Runs `f` on this runtime thread's scratch buffer (never held across an await).
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|s| f(&mut s.borrow_mut()))
}

/// Writes all of `bytes` (and flushes: a TLS session holds them until then).
pub async fn write_all(stream: &mut (impl tokio::io::AsyncWrite + Unpin), bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Sends output bytes `range` of `plan`, paced by `pacer` when given; returns the bytes sent
/// (also on error, through `sent`).
pub async fn send_plan(
    stream: &TcpStream,
    plan: &Plan,
    range: Range<u64>,
    pacer: Option<&Pacer>,
    sent: &mut u64,
) -> io::Result<()> {
    let (start, before) = (range.start, *sent);
    let mut cur = Cursor::new(range);
    let mut method = CopyMethod::Sendfile;
    let began = Instant::now();
    while !cur.is_done() {
        let budget = match pacer.map(|p| p.next(*sent, began.elapsed())) {
            None => STEP,
            Some(Pace::Send(n)) => n.min(STEP),
            Some(Pace::Wait(d)) => {
                tokio::time::sleep(d).await;
                // The file may have changed while the stream slept.
                cur.recheck();
                continue;
            }
        };
        stream.writable().await?;
        // Everything the socket takes now, up to the budget: a segment of a few hundred
        // small samples goes out in one turn, with one check of its source.
        // Many small pieces (interleaved samples) are corked into full frames for the burst
        // and pushed at its end: the last bytes never wait, and nothing stays corked while
        // the task sleeps or awaits writability.
        let cork = spans_pieces(plan, &cur, budget);
        if cork {
            let _ = rustix::net::sockopt::set_tcp_cork(stream, true);
        }
        let burst = stream.try_io(Interest::WRITABLE, || {
            with_scratch(|s| {
                // Runs of small pieces are gathered in the kernel and go as one range.
                sink::gather::with_thread(|g| {
                    sink::write_burst(plan, &mut cur, stream.as_fd(), budget, s, &mut method, g)
                })
            })
        });
        if cork {
            let _ = rustix::net::sockopt::set_tcp_cork(stream, false);
        }
        *sent = before + (cur.pos - start);
        match burst {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "nothing could be sent")),
            Ok(_) if cur.is_done() => {}
            Ok(_) => {
                // The budget is spent and the socket still writable: a fast reader keeps
                // draining it, so without this the task would loop here for many MiB
                // (tokio's budget counts polls, not bytes) while new requests on this
                // runtime thread wait for their first byte.
                tokio::task::yield_now().await;
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a burst of at most `budget` bytes from `cur` would take more than one piece of
/// `plan` (then corking saves a frame, and the kernel's work for it, per piece).
fn spans_pieces(plan: &Plan, cur: &Cursor, budget: u64) -> bool {
    let want = budget.min(cur.remaining());
    plan.locate(cur.pos).is_some_and(|(piece, at)| piece.len() - at < want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Bytes, Piece, PlanInfo};
    use std::io::{Read, Write};
    use std::sync::Arc;

    fn plan(len: usize) -> Plan {
        let path = std::env::temp_dir().join(format!("loomiere-send-{}-{len}", std::process::id()));
        std::fs::File::create(&path).unwrap().write_all(&vec![7u8; len]).unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        let pieces =
            vec![Piece::Synth(Arc::new(Bytes(b"HEADER".to_vec()))), Piece::Source { offset: 0, len: len as u64 }];
        let src = crate::source::Source::nameless(file, len as u64);
        Plan::new(src, pieces, PlanInfo { duration: Some(2.0), header_len: 6, ..PlanInfo::default() }).unwrap()
    }

    /// Sends `plan` over loopback and returns (bytes received, seconds taken).
    fn transfer(plan: Plan, pacer: Option<Pacer>) -> (Vec<u8>, f64) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
            let mut all = Vec::new();
            c.read_to_end(&mut all).unwrap();
            all
        });
        let began = Instant::now();
        rt.block_on(async {
            listener.set_nonblocking(true).unwrap();
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            let (s, _) = l.accept().await.unwrap();
            let mut sent = 0;
            send_plan(&s, &plan, 0..plan.len(), pacer.as_ref(), &mut sent).await.unwrap();
            assert_eq!(sent, plan.len());
        });
        let secs = began.elapsed().as_secs_f64();
        (reader.join().unwrap(), secs)
    }

    #[test]
    fn sends_synth_and_file_pieces() {
        let (got, _) = transfer(plan(300_000), None);
        assert_eq!(got.len(), 300_006);
        assert_eq!(&got[..6], b"HEADER");
        assert!(got[6..].iter().all(|&b| b == 7));
    }

    /// A segment-like plan: a header, then `n` samples of 50 bytes, every other one of a
    /// file (interleaved audio and video), each its own piece.
    fn interleaved(n: u64) -> (Plan, Vec<u8>) {
        let len = (n * 100) as usize;
        let bytes: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let path = std::env::temp_dir().join(format!("loomiere-send-il-{}-{n}", std::process::id()));
        std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        let mut pieces = vec![Piece::Synth(Arc::new(Bytes(b"MOOF".to_vec())))];
        let mut want = b"MOOF".to_vec();
        for i in 0..n {
            pieces.push(Piece::Source { offset: i * 100, len: 50 });
            want.extend_from_slice(&bytes[(i * 100) as usize..(i * 100 + 50) as usize]);
        }
        let src = crate::source::Source::nameless(file, len as u64);
        (Plan::new(src, pieces, PlanInfo { duration: Some(6.0), header_len: 4, ..PlanInfo::default() }).unwrap(), want)
    }

    #[test]
    fn corks_only_bursts_over_several_pieces() {
        let (p, _) = interleaved(3); // MOOF (4), then 3 × 50
        assert!(spans_pieces(&p, &Cursor::new(0..p.len()), STEP));
        assert!(!spans_pieces(&p, &Cursor::new(0..p.len()), 4));
        assert!(!spans_pieces(&p, &Cursor::new(0..3), STEP));
        assert!(spans_pieces(&p, &Cursor::new(10..60), STEP));
        assert!(!spans_pieces(&p, &Cursor::new(104..p.len()), STEP));
        assert!(!spans_pieces(&plan(1000), &Cursor::new(6..1006), STEP));
    }

    #[test]
    fn many_small_pieces_arrive_whole_and_in_order() {
        // 130 pieces (one segment of long.mp4), then 20,000 (a socket that fills mid-burst).
        for n in [130, 20_000] {
            let (p, want) = interleaved(n);
            let (got, _) = transfer(p, None);
            assert_eq!(got.len(), want.len());
            assert!(got == want, "{n} pieces: bytes differ");
        }
    }

    #[test]
    fn throttled_stream_of_small_pieces_arrives_whole() {
        let (p, want) = interleaved(4_000);
        let (got, _) = transfer(p, Some(Pacer::new(20_000, 1_000_000.0)));
        assert!(got == want);
    }

    #[test]
    fn throttled_stream_is_not_faster_than_its_rate() {
        // 200 kB after a 20 kB burst at 200 kB/s: at least 0.9 s (only a lower bound, which
        // a slow machine cannot break).
        let (got, secs) = transfer(plan(200_000), Some(Pacer::new(20_000, 200_000.0)));
        assert_eq!(got.len(), 200_006);
        assert!(secs >= 0.85, "took {secs:.2} s");
    }
}
