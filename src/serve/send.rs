//! Writing answers to a non-blocking tokio socket. File pieces of a plan go zero-copy with
//! `sendfile` through [`sink::write_step`]; when the socket is full the step reports
//! `WouldBlock` and the task awaits writability. Synthesised pieces are pulled into one
//! scratch buffer per runtime thread, borrowed only during the synchronous step, so a
//! stream's own memory is a cursor and a few numbers. The throttle's [`Pacer`] decides how
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

/// The most bytes one step may send, so one fast stream cannot hog a runtime thread.
const STEP: u64 = 1 << 20;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; sink::SCRATCH]);
}

/// Writes all of `bytes`.
pub async fn write_all(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await
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
    let mut cur = Cursor::new(range);
    let mut method = CopyMethod::Sendfile;
    let began = Instant::now();
    while !cur.is_done() {
        let budget = match pacer.map(|p| p.next(*sent, began.elapsed())) {
            None => STEP,
            Some(Pace::Send(n)) => n.min(STEP),
            Some(Pace::Wait(d)) => {
                tokio::time::sleep(d).await;
                continue;
            }
        };
        stream.writable().await?;
        let step = stream.try_io(Interest::WRITABLE, || {
            SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                sink::write_step(plan, &mut cur, stream.as_fd(), budget, &mut s, &mut method)
            })
        });
        match step {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "nothing could be sent")),
            Ok(n) => *sent += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
