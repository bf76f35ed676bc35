//! Sending a plan to a file descriptor: a regular file (`copy_file_range`), a pipe or socket
//! (`sendfile`), with a plain `pread`/`write` fallback when the kernel refuses. Synthesised
//! pieces are pulled into a small caller-owned scratch buffer, so memory per stream is that
//! buffer and a cursor, whatever the size of the `moov`.
//!
//! The sinks: [`send_range`] (blocking: a pipe, a socket, a file descriptor), [`pace`]
//! (the same, burst then paced), [`file`] (an output path, atomically), and [`write_step`]
//! and [`write_burst`] for drivers with their own loop (the async server), which may
//! [`gather`] runs of small pieces in the kernel first.
//!
//! The unit of work is [`write_step`]: at most one write of at most `max` bytes, which suits
//! blocking callers (loop until done), throttled callers (a budget per step) and non-blocking
//! callers (stop on `WouldBlock`, resume later) alike. This module never decides what to send.

#[allow(unsafe_code)] // signal-safe clean-up of a temporary file
pub mod file;
pub mod gather;
pub mod pace;

use crate::plan::{Piece, Plan};
use crate::source::Source;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};

/// Where a stream is in its output range, and how much it has sent since it last checked
/// that its source is unchanged.
#[derive(Clone, Debug)]
pub struct Cursor {
    /// Next output offset to send.
    pub pos: u64,
    /// One past the last output offset to send.
    pub end: u64,
    /// Bytes sent since the source was last checked; `None`: check before the next step.
    unchecked: Option<u64>,
}

/// The most bytes a stream sends between two checks of its source while every write takes
/// all it is given (see [`Cursor::recheck`] for the other moments a check is due).
pub const CHECK_EVERY: u64 = 1 << 20;

impl Cursor {
    /// A cursor over output bytes `range`; its first step checks the source.
    pub fn new(range: Range<u64>) -> Cursor {
        Cursor { pos: range.start, end: range.end.max(range.start), unchecked: None }
    }

    /// Makes the next step check the source first. [`write_step`] does this itself after a
    /// short or failed write (a full socket or pipe, a source that ended: the stream waits,
    /// and the file may change meanwhile) and after [`CHECK_EVERY`] bytes; a driver calls it
    /// when it resumes after a wait of its own (a pacer's sleep, a blocking write that waited
    /// for its reader).
    pub fn recheck(&mut self) {
        self.unchecked = None;
    }

    /// Whether the next step checks the source.
    pub fn check_due(&self) -> bool {
        self.unchecked.is_none_or(|n| n >= CHECK_EVERY)
    }

    /// A cursor over the whole plan.
    pub fn whole(plan: &Plan) -> Cursor {
        Cursor::new(0..plan.len())
    }

    /// Bytes still to send.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// True when everything has been sent.
    pub fn is_done(&self) -> bool {
        self.pos >= self.end
    }
}

/// How file ranges reach the output; starts at the best method for the descriptor and steps
/// down when the kernel says a method is not possible for this pair of descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyMethod {
    /// `copy_file_range(2)`: file to file, in the kernel (and reflinks where supported).
    CopyFileRange,
    /// `sendfile(2)`: file to socket or pipe.
    Sendfile,
    /// `pread` into the scratch buffer, then `write`.
    ReadWrite,
}

impl CopyMethod {
    /// The best method for writing to `out`.
    pub fn for_output(out: BorrowedFd<'_>) -> CopyMethod {
        match rustix::fs::fstat(out) {
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() => CopyMethod::CopyFileRange,
            _ => CopyMethod::Sendfile,
        }
    }

    fn next(self) -> CopyMethod {
        match self {
            CopyMethod::CopyFileRange => CopyMethod::Sendfile,
            _ => CopyMethod::ReadWrite,
        }
    }
}

/// Default scratch size for synthesised bytes and the read/write fallback: one pipe buffer
/// (Linux's default), so a CGI process writes a synthesised moov in as few calls as the
/// pipe can take.
pub const SCRATCH: usize = 64 * 1024;

/// Sends at most `max` bytes of `plan` at `cur` to `out` with one write-like call, and
/// advances `cur` by what was written. Returns the byte count (0 only when `cur` is done or
/// `max` is 0). `io::ErrorKind::WouldBlock` and `Interrupted` are passed to the caller
/// unchanged; a source file that ends early, or that was modified since the plan was made, is
/// `UnexpectedEof` ([`is_source_fault`]), never a hang and never other bytes.
///
/// The source is checked (one `fstat`) when [`Cursor::check_due`]: on a cursor's first step,
/// after a short or failed write, after [`CHECK_EVERY`] bytes, and when the driver asked
/// ([`Cursor::recheck`]). A segment of a few hundred small samples that the socket takes at
/// once is one check, not one per sample.
pub fn write_step(
    plan: &Plan,
    cur: &mut Cursor,
    out: BorrowedFd<'_>,
    max: u64,
    scratch: &mut [u8],
    method: &mut CopyMethod,
) -> io::Result<u64> {
    if cur.is_done() || max == 0 || scratch.is_empty() {
        return Ok(0);
    }
    if cur.check_due() {
        check_source(plan)?;
        cur.unchecked = Some(0);
    }
    let Some((piece, at)) = plan.locate(cur.pos) else {
        cur.pos = cur.end;
        return Ok(0);
    };
    let want = (piece.len() - at).min(cur.remaining()).min(max);
    // (bytes written, bytes offered to the write)
    let written = match piece {
        Piece::Synth(s) => {
            let take = want.min(scratch.len() as u64) as usize;
            let got = s.read_at(at, &mut scratch[..take]);
            if got == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "synthesised piece ended early"));
            }
            rustix::io::write(out, &scratch[..got]).map(|n| (n as u64, got as u64)).map_err(io::Error::from)
        }
        Piece::Source { offset, .. } => {
            let src_off = offset + at;
            copy_source_bytes(plan.source(), src_off, want, out, scratch, method).map(|n| (n, want))
        }
    };
    let (n, offered) = match written {
        Ok(w) => w,
        Err(e) => {
            cur.recheck();
            return Err(e);
        }
    };
    cur.pos += n;
    // A short write means a full socket or pipe (the stream will wait) or a source that
    // ended: check before going on either way.
    cur.unchecked = if n < offered { None } else { cur.unchecked.map(|u| u.saturating_add(n)) };
    Ok(n)
}

/// [`write_step`]s while `out` takes what it is given, until `max` bytes in all were sent or
/// the cursor is done: the many small pieces of a segment go out in one go instead of one
/// per turn of a driver's loop. With a [`gather::Gather`] (and `sendfile` as the method),
/// runs of pieces under a page are gathered in the kernel and sent as one range (see there).
/// Returns the bytes sent. An error (`WouldBlock` when a non-blocking socket fills) is
/// returned even after some bytes went out; `cur` says how far the stream got.
pub fn write_burst(
    plan: &Plan,
    cur: &mut Cursor,
    out: BorrowedFd<'_>,
    max: u64,
    scratch: &mut [u8],
    method: &mut CopyMethod,
    mut gather: Option<&mut gather::Gather>,
) -> io::Result<u64> {
    let mut sent = 0u64;
    while sent < max && !cur.is_done() {
        if let Some(g) = gather.as_deref_mut().filter(|_| *method == CopyMethod::Sendfile) {
            if let Some(n) = g.send(plan, cur, out, max - sent)? {
                if n == 0 {
                    break;
                }
                sent += n;
                continue;
            }
        }
        match write_step(plan, cur, out, max - sent, scratch, method)? {
            0 => break,
            n => sent += n,
        }
    }
    Ok(sent)
}

/// Copies source bytes to `out`: in the kernel from a local file, else read into `scratch`.
fn copy_source_bytes(
    src: &Source,
    src_off: u64,
    want: u64,
    out: BorrowedFd<'_>,
    scratch: &mut [u8],
    method: &mut CopyMethod,
) -> io::Result<u64> {
    // Kernel copies move at most about 2 GiB per call.
    let chunk = want.min(1 << 30) as usize;
    let Some(file) = src.as_local_file() else {
        return read_write(src, src_off, chunk, out, scratch);
    };
    loop {
        let res = match *method {
            CopyMethod::CopyFileRange => {
                let mut off = src_off;
                rustix::fs::copy_file_range(file.as_fd(), Some(&mut off), out, None, chunk)
            }
            CopyMethod::Sendfile => {
                let mut off = src_off;
                rustix::fs::sendfile(out, file.as_fd(), Some(&mut off), chunk)
            }
            CopyMethod::ReadWrite => return read_write(src, src_off, chunk, out, scratch),
        };
        match res {
            Ok(0) => {
                // copy_file_range returns 0 at end of source, and on some filesystems when it
                // cannot copy; let the read/write path tell the two apart.
                if *method == CopyMethod::ReadWrite {
                    return Err(eof());
                }
                *method = method.next();
            }
            Ok(n) => return Ok(n as u64),
            Err(e)
                if e == rustix::io::Errno::INVAL
                    || e == rustix::io::Errno::NOSYS
                    || e == rustix::io::Errno::XDEV
                    || e == rustix::io::Errno::OPNOTSUPP
                    || e == rustix::io::Errno::BADF =>
            {
                *method = method.next();
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One `read_at` of the source into `scratch`, then one write.
fn read_write(src: &Source, src_off: u64, chunk: usize, out: BorrowedFd<'_>, scratch: &mut [u8]) -> io::Result<u64> {
    let take = chunk.min(scratch.len());
    let got = src.read_at(&mut scratch[..take], src_off)?;
    if got == 0 {
        return Err(eof());
    }
    Ok(rustix::io::write(out, &scratch[..got])? as u64)
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the source file is shorter than when the answer began (truncated while being sent?)",
    )
}

/// Whether an error from [`write_step`] and its drivers means the source file can no longer
/// give the bytes the plan announced (it shrank, or was rewritten in place): the output was
/// cut short through no fault of the reader, and must be ended, not padded or resumed.
pub fn is_source_fault(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::UnexpectedEof
}

/// Fails when the plan's source is no longer the one the plan was made from: shorter than
/// its length then, or modified since (a `cp` over it keeps the inode but rewrites the
/// bytes). One `fstat` for a local file; skipped for plans without a recorded modification
/// time.
fn check_source(plan: &Plan) -> io::Result<()> {
    let Some(modified) = plan.info.modified else { return Ok(()) };
    plan.source().check_unchanged(plan.info.source_len, modified)
}

/// Sends output bytes `range` of `plan` to a blocking descriptor, calling `progress` with the
/// running byte count after each step. Retries `Interrupted`.
pub fn send_range(plan: &Plan, range: Range<u64>, out: BorrowedFd<'_>, progress: impl FnMut(u64)) -> io::Result<u64> {
    pace::send(plan, range, out, None, progress)
}

/// Sends the whole plan to a blocking descriptor.
pub fn send_all(plan: &Plan, out: BorrowedFd<'_>) -> io::Result<u64> {
    send_range(plan, 0..plan.len(), out, |_| {})
}

/// Reads output bytes `range` of `plan` into memory (tests, small answers, hashing).
pub fn read_range(plan: &Plan, range: Range<u64>) -> io::Result<Vec<u8>> {
    let end = range.end.min(plan.len());
    let n = usize::try_from(end.saturating_sub(range.start)).map_err(|_| io::Error::other("range too large"))?;
    let mut out = vec![0; n];
    fill(plan, range.start, &mut out)?;
    Ok(out)
}

/// Fills `out` with the output bytes of `plan` from `from` on, for drivers that must see the
/// bytes (TLS encrypts them from a scratch buffer). Like [`write_step`], first checks that the
/// source is still the one the plan was made from; a source that ends early, or a range past
/// the plan's end, is `UnexpectedEof` ([`is_source_fault`]).
pub fn read_step(plan: &Plan, from: u64, out: &mut [u8]) -> io::Result<()> {
    check_source(plan)?;
    fill(plan, from, out)
}

/// Fills `out` with the output bytes of `plan` from `from` on.
fn fill(plan: &Plan, from: u64, out: &mut [u8]) -> io::Result<()> {
    let end = from.checked_add(out.len() as u64).filter(|&e| e <= plan.len()).ok_or_else(eof)?;
    let mut start = 0usize;
    for seg in plan.slice(from..end) {
        let n = usize::try_from(seg.to - seg.from).map_err(|_| io::Error::other("range too large"))?;
        let part = out.get_mut(start..start + n).ok_or_else(eof)?;
        match seg.piece {
            Piece::Synth(s) => {
                let mut done = 0;
                while done < n {
                    let got = s.read_at(seg.from + done as u64, &mut part[done..]);
                    if got == 0 {
                        return Err(eof());
                    }
                    done += got;
                }
            }
            Piece::Source { offset, .. } => {
                plan.source().read_exact_at(part, offset + seg.from)?;
            }
        }
        start += n;
    }
    if start == out.len() {
        Ok(())
    } else {
        Err(eof())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Bytes, PlanInfo};
    use std::io::{Read, Seek, Write};
    use std::sync::Arc;

    fn source() -> Source {
        let mut f = tempfile();
        f.write_all(b"0123456789abcdefghij").unwrap();
        Source::nameless(Arc::new(f), 20)
    }

    fn tempfile() -> std::fs::File {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("loomiere-sink-{}-{:?}", std::process::id(), std::thread::current().id()));
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    fn plan() -> Plan {
        plan_over(source())
    }

    fn plan_over(source: Source) -> Plan {
        let pieces = vec![
            Piece::Synth(Arc::new(Bytes(b"HEAD".to_vec()))),
            Piece::Source { offset: 10, len: 5 },
            Piece::Source { offset: 0, len: 3 },
        ];
        Plan::new(source, pieces, PlanInfo::default()).unwrap()
    }

    #[test]
    fn source_without_descriptor_is_read_into_scratch() {
        let p = plan_over(Source::in_memory(b"0123456789abcdefghij".to_vec()));
        assert!(p.source().as_local_file().is_none());
        let (r, w) = rustix::pipe::pipe().unwrap();
        send_all(&p, w.as_fd()).unwrap();
        drop(w);
        let mut got = Vec::new();
        std::fs::File::from(r).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"HEADabcde012");
    }

    #[test]
    fn read_range_matches_plan() {
        let p = plan();
        assert_eq!(read_range(&p, 0..p.len()).unwrap(), b"HEADabcde012");
        assert_eq!(read_range(&p, 2..7).unwrap(), b"ADabc");
    }

    #[test]
    fn read_step_fills_exactly_or_says_the_source_fell_short() {
        let p = plan();
        let mut buf = [0u8; 6];
        read_step(&p, 3, &mut buf).unwrap();
        assert_eq!(&buf, b"Dabcde");
        // Past the plan's end: an error, never a partly filled buffer passed off as whole.
        assert_eq!(read_step(&p, 8, &mut buf).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        // A source shorter than its piece says.
        let pieces = vec![Piece::Source { offset: 15, len: 50 }];
        let short = Plan::new(source(), pieces, PlanInfo::default()).unwrap();
        assert_eq!(read_step(&short, 0, &mut buf).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn send_to_file_and_pipe_agree() {
        let p = plan();
        let mut out = tempfile();
        send_all(&p, out.as_fd()).unwrap();
        out.rewind().unwrap();
        let mut got = Vec::new();
        out.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"HEADabcde012");

        let (r, w) = rustix::pipe::pipe().unwrap();
        send_range(&p, 3..11, w.as_fd(), |_| {}).unwrap();
        drop(w);
        let mut got = Vec::new();
        std::fs::File::from(r).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"Dabcde01");
    }

    /// A local file whose checks are counted and can be made to fail (as if the file had
    /// been rewritten in place).
    struct Watched {
        file: std::fs::File,
        checks: std::sync::atomic::AtomicUsize,
        changed: std::sync::atomic::AtomicBool,
    }

    impl crate::source::Medium for Watched {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            std::os::unix::fs::FileExt::read_at(&self.file, buf, offset)
        }
        fn as_local_file(&self) -> Option<&std::fs::File> {
            Some(&self.file)
        }
        fn check_unchanged(&self, _len: u64, _modified: std::time::SystemTime) -> io::Result<()> {
            use std::sync::atomic::Ordering::SeqCst;
            self.checks.fetch_add(1, SeqCst);
            if self.changed.load(SeqCst) {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "rewritten"));
            }
            Ok(())
        }
    }

    /// A plan of `pieces` over a watched file of `len` bytes (byte i = i % 251).
    fn watched(len: usize, pieces: Vec<Piece>) -> (Plan, Arc<Watched>) {
        let mut f = tempfile();
        f.write_all(&(0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
        let w = Arc::new(Watched { file: f, checks: 0.into(), changed: false.into() });
        let info = PlanInfo {
            modified: Some(std::time::SystemTime::UNIX_EPOCH),
            source_len: len as u64,
            ..PlanInfo::default()
        };
        let src = Source::new(w.clone(), len as u64, info.modified, crate::source::Version::default());
        (Plan::new(src, pieces, info).unwrap(), w)
    }

    fn checks(w: &Watched) -> usize {
        w.checks.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn many_small_pieces_taken_at_once_are_one_check() {
        // 300 samples of 20 bytes, every other one (interleaved audio and video).
        let pieces = (0..300).map(|i| Piece::Source { offset: i * 40, len: 20 }).collect();
        let (p, w) = watched(12_000, pieces);
        let mut out = tempfile();
        assert_eq!(send_all(&p, out.as_fd()).unwrap(), 6_000);
        out.rewind().unwrap();
        let mut got = Vec::new();
        out.read_to_end(&mut got).unwrap();
        let want: Vec<u8> = (0..300).flat_map(|i| (i * 40..i * 40 + 20).map(|b| (b % 251) as u8)).collect();
        assert_eq!(got, want);
        assert_eq!(checks(&w), 1);
    }

    #[test]
    fn a_burst_sends_piece_after_piece_up_to_its_budget() {
        let pieces = (0..100).map(|i| Piece::Source { offset: i * 40, len: 20 }).collect();
        let (p, w) = watched(4_000, pieces);
        let out = tempfile();
        let mut cur = Cursor::whole(&p);
        let mut method = CopyMethod::for_output(out.as_fd());
        let mut scratch = vec![0u8; SCRATCH];
        // 15 pieces and half of the 16th.
        assert_eq!(write_burst(&p, &mut cur, out.as_fd(), 310, &mut scratch, &mut method, None).unwrap(), 310);
        assert_eq!(cur.pos, 310);
        assert_eq!(write_burst(&p, &mut cur, out.as_fd(), u64::MAX, &mut scratch, &mut method, None).unwrap(), 1_690);
        assert!(cur.is_done());
        assert_eq!(write_burst(&p, &mut cur, out.as_fd(), u64::MAX, &mut scratch, &mut method, None).unwrap(), 0);
        assert_eq!(checks(&w), 1);
        let mut got = Vec::new();
        let mut f = out;
        f.rewind().unwrap();
        f.read_to_end(&mut got).unwrap();
        let want: Vec<u8> = (0..100).flat_map(|i| (i * 40..i * 40 + 20).map(|b| (b % 251) as u8)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_long_answer_is_checked_every_mib() {
        let len = 3 * CHECK_EVERY as usize + 1000;
        let (p, w) = watched(len, vec![Piece::Source { offset: 0, len: len as u64 }]);
        let out = tempfile();
        let mut cur = Cursor::whole(&p);
        let mut method = CopyMethod::for_output(out.as_fd());
        let mut scratch = vec![0u8; SCRATCH];
        let step = 64 << 10;
        write_step(&p, &mut cur, out.as_fd(), step, &mut scratch, &mut method).unwrap();
        assert_eq!(checks(&w), 1);
        // Rewritten now: the stream goes on until its next check is due, then stops there.
        w.changed.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = loop {
            match write_step(&p, &mut cur, out.as_fd(), step, &mut scratch, &mut method) {
                Ok(n) => assert_eq!(n, step),
                Err(e) => break e,
            }
        };
        assert!(is_source_fault(&err));
        assert_eq!(cur.pos, CHECK_EVERY);
        assert_eq!(checks(&w), 2);
    }

    #[test]
    fn a_stream_that_waited_checks_before_going_on() {
        let len = 256 << 10;
        let (p, w) = watched(len, vec![Piece::Source { offset: 0, len: len as u64 }]);
        let (r, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK).unwrap();
        let mut cur = Cursor::whole(&p);
        let mut method = CopyMethod::Sendfile;
        let mut scratch = vec![0u8; SCRATCH];
        // Fill the pipe: the last write is short or would block.
        let stalled = loop {
            match write_step(&p, &mut cur, wr.as_fd(), u64::MAX, &mut scratch, &mut method) {
                Ok(_) if cur.check_due() => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = stalled {
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        }
        assert!(cur.check_due());
        assert!(!cur.is_done());
        w.changed.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut drain = vec![0u8; 1 << 20];
        let _ = rustix::io::read(&r, &mut drain);
        let err = write_step(&p, &mut cur, wr.as_fd(), u64::MAX, &mut scratch, &mut method).unwrap_err();
        assert!(is_source_fault(&err));
    }

    #[test]
    fn a_blocking_write_that_waited_checks_before_going_on() {
        let head = 32 << 10;
        let pieces = vec![Piece::Synth(Arc::new(Bytes(vec![1u8; head]))), Piece::Source { offset: 0, len: 10 }];
        let (p, w) = watched(100, pieces);
        let (r, wr) = rustix::pipe::pipe().unwrap();
        // Fill the pipe, so the plan's first write blocks until the reader comes.
        let fill = vec![0u8; 1 << 20];
        rustix::fs::fcntl_setfl(&wr, rustix::fs::OFlags::NONBLOCK).unwrap();
        while rustix::io::write(&wr, &fill).is_ok() {}
        rustix::fs::fcntl_setfl(&wr, rustix::fs::OFlags::empty()).unwrap();
        let w2 = w.clone();
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            // Rewritten while the server waits for its reader.
            w2.changed.store(true, std::sync::atomic::Ordering::SeqCst);
            let mut all = Vec::new();
            std::fs::File::from(r).read_to_end(&mut all).unwrap();
        });
        let err = send_all(&p, wr.as_fd()).unwrap_err();
        assert!(is_source_fault(&err));
        assert_eq!(checks(&w), 2);
        drop(wr);
        reader.join().unwrap();
    }

    #[test]
    fn recheck_makes_the_next_step_check() {
        let (p, w) = watched(100, vec![Piece::Source { offset: 0, len: 100 }]);
        let out = tempfile();
        let mut cur = Cursor::whole(&p);
        let mut method = CopyMethod::for_output(out.as_fd());
        let mut scratch = vec![0u8; SCRATCH];
        write_step(&p, &mut cur, out.as_fd(), 10, &mut scratch, &mut method).unwrap();
        write_step(&p, &mut cur, out.as_fd(), 10, &mut scratch, &mut method).unwrap();
        assert_eq!(checks(&w), 1);
        cur.recheck();
        write_step(&p, &mut cur, out.as_fd(), 10, &mut scratch, &mut method).unwrap();
        assert_eq!(checks(&w), 2);
    }

    #[test]
    fn short_source_is_an_error_not_a_hang() {
        let pieces = vec![Piece::Source { offset: 15, len: 50 }];
        let p = Plan::new(source(), pieces, PlanInfo::default()).unwrap();
        let out = tempfile();
        let err = send_all(&p, out.as_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
