//! Gathering runs of small source pieces in the kernel: for a socket now ([`Gather::send`]),
//! or once into a kept copy of a whole answer ([`stage`]).
//!
//! A media segment of interleaved audio and video is a few hundred source ranges, and a
//! sample of a small rendition (or any audio frame) is a few hundred bytes. Sent one
//! `sendfile` each, every range becomes its own page fragment of a socket buffer, and TCP
//! puts at most 17 fragments in a packet: a 7 KB segment of 60-byte samples leaves as 8
//! packets, each run through the network stack, where one would do. Gathering splices a run
//! of such ranges from the source into a pipe (page references, no copy), moves the pipe
//! into a private staging file (`memfd`: the kernel copies the bytes once, as a socket write
//! would) and sends that as one contiguous range: full packets. No byte passes through user
//! space. Pieces of a page or more keep going by page reference ([`super::write_step`]).
//! Measured: docs/performance.md, section 8.
//!
//! [`Gather::send`]'s staging file is emptied (truncated) after every send: the socket keeps
//! references to the pages it was given, and a truncated page is never written again, so
//! bytes already queued for a reader cannot change under it. A [`stage`]d copy is never
//! written after it is made.

use super::{check_source, Cursor};
use crate::plan::{Piece, Plan};
use crate::source::{Medium, Source};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::pipe::SpliceFlags;
use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// A source piece shorter than this (a 4 KiB page, the unit of a pipe slot and of a socket's
/// page fragment on x86-64 and arm64 Linux) is gathered; longer ones go by reference.
pub const SMALL: u64 = 4096;

/// At most this many bytes per gathered send (one loopback packet's worth of payload).
const MOST: u64 = 64 * 1024;

/// The pipe's size when the kernel allows it: 64 slots, so a gather takes up to 64 small
/// pieces (a 6-s segment of interleaved 25 fps video in 3 gathers) while a thread's pipe
/// counts only 64 pages against the user's pipe allowance (`pipe-user-pages-soft`).
/// Without it, the default 16 slots.
const PIPE_BYTES: usize = 64 * 4096;

thread_local! {
    /// One gather per thread that gathers (`serve`'s runtime threads; blocking-pool threads
    /// that keep a segment), made at its first use; `None` where the kernel offers no pipe
    /// or memfd.
    static THREAD: RefCell<Option<Gather>> = RefCell::new(Gather::new().ok());
}

/// Runs `f` with this thread's [`Gather`] (`None`: none could be made, or it is in use
/// further up this thread's stack; send piece by piece). A gather retired after a failure
/// is replaced first.
pub fn with_thread<R>(f: impl FnOnce(Option<&mut Gather>) -> R) -> R {
    THREAD.with(|g| match g.try_borrow_mut() {
        Ok(mut g) => {
            if g.as_ref().is_some_and(|g| g.stage.is_none()) {
                *g = Gather::new().ok();
            }
            f(g.as_mut())
        }
        Err(_) => f(None),
    })
}

/// A pipe and a staging file, one per thread (not shared: a gather is synchronous).
#[derive(Debug)]
pub struct Gather {
    rd: OwnedFd,
    wr: OwnedFd,
    /// `None` once the pipe or the staging file could not be emptied: this gather is then
    /// never used again (stale bytes must never reach a reader).
    stage: Option<OwnedFd>,
    /// Page slots of the pipe.
    slots: u64,
}

impl Gather {
    /// A new pipe and staging file; fails where the kernel has neither (then the caller sends
    /// piece by piece).
    pub fn new() -> io::Result<Gather> {
        let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let bytes = rustix::pipe::fcntl_setpipe_size(&wr, PIPE_BYTES)
            .or_else(|_| rustix::pipe::fcntl_getpipe_size(&wr))
            .unwrap_or(16 * 4096);
        let stage = memfd()?;
        Ok(Gather { rd, wr, stage: Some(stage), slots: (bytes / 4096).max(1) as u64 })
    }

    /// When the output at `cur` begins with at least two small source pieces of a local
    /// file: gathers as many as fit (at most `max` bytes) and sends them to `out` with one
    /// `sendfile`, advancing `cur`. `Ok(None)`: nothing to gather here (the caller sends the
    /// next piece itself, as it does when the kernel cannot splice this file or send from a
    /// memfd to `out`). For non-blocking sockets: a socket that took only part of a gather is
    /// full, so that is `WouldBlock` after `cur` moved past what it took (as
    /// [`super::write_burst`] may end); otherwise errors are [`super::write_step`]'s:
    /// `WouldBlock` when the socket is full (nothing was sent), `UnexpectedEof` when the
    /// source ended early.
    pub fn send(&mut self, plan: &Plan, cur: &mut Cursor, out: BorrowedFd<'_>, max: u64) -> io::Result<Option<u64>> {
        let Some(file) = plan.source().as_local_file() else { return Ok(None) };
        if self.stage.is_none() {
            return Ok(None);
        }
        let limit = cur.remaining().min(max).min(MOST);
        // The run: pieces each under a page, at most `slots` pages in all.
        let (mut run, mut pages) = (0usize, 0u64);
        for seg in plan.segments(cur.pos..cur.pos + limit) {
            let Piece::Source { offset, .. } = seg.piece else { break };
            let at = offset + seg.from;
            // Pages the piece touches (a piece is never empty: `Plan::new` drops those).
            let spans = at.saturating_add(seg.to - seg.from).saturating_sub(1) / 4096 - at / 4096 + 1;
            if seg.piece.len() >= SMALL || pages + spans > self.slots {
                break;
            }
            run += 1;
            pages += spans;
        }
        if run < 2 {
            return Ok(None);
        }
        if cur.check_due() {
            check_source(plan)?;
            cur.unchecked = Some(0);
        }
        let mut piped = 0u64;
        for seg in plan.segments(cur.pos..cur.pos + limit).take(run) {
            let Piece::Source { offset, .. } = seg.piece else { break };
            let len = seg.to - seg.from;
            let n = match self.pipe(file.as_fd(), offset + seg.from, len) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    self.reset(true);
                    return Ok(None);
                }
                Err(e) => {
                    self.reset(true);
                    cur.recheck();
                    return Err(e);
                }
            };
            piped += n;
            if n < len {
                break; // the pipe is full: send what it holds
            }
        }
        if piped == 0 {
            return Ok(None);
        }
        let staged = match &self.stage {
            Some(stage) => self.unpipe(stage.as_fd(), 0, piped),
            None => return Ok(None),
        };
        if let Err(e) = staged {
            self.reset(true);
            cur.recheck();
            return Err(e);
        }
        let sent = match &self.stage {
            Some(stage) => rustix::fs::sendfile(out, stage, Some(&mut 0), piped as usize),
            None => return Ok(None),
        };
        self.reset(false);
        let n = match sent {
            Ok(n) => n as u64,
            Err(e) if unsupported(e) => return Ok(None),
            Err(e) => {
                cur.recheck();
                return Err(e.into());
            }
        };
        cur.pos += n;
        if n < piped {
            // The socket is full: wait for it rather than gather again for nothing.
            cur.recheck();
            return Err(io::ErrorKind::WouldBlock.into());
        }
        cur.unchecked = cur.unchecked.map(|u| u.saturating_add(n));
        Ok(Some(n))
    }

    /// Splices up to `len` bytes at `off` of `file` into the pipe; returns how many went in
    /// (less, even 0, when the pipe is full), `None` when the kernel cannot splice this file.
    /// A source that ends early is `UnexpectedEof`.
    fn pipe(&self, file: BorrowedFd<'_>, off: u64, len: u64) -> io::Result<Option<u64>> {
        let mut at = off;
        let want = usize::try_from(len).unwrap_or(usize::MAX);
        match rustix::pipe::splice(file, Some(&mut at), &self.wr, None, want, SpliceFlags::NONBLOCK) {
            Ok(0) => Err(super::eof()),
            Ok(n) => Ok(Some(n as u64)),
            Err(rustix::io::Errno::AGAIN) => Ok(Some(0)),
            Err(e) if unsupported(e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves the `bytes` the pipe holds into `dest` at offset `at` (the kernel copies them).
    fn unpipe(&self, dest: BorrowedFd<'_>, at: u64, bytes: u64) -> io::Result<()> {
        let mut moved = 0u64;
        while moved < bytes {
            let mut to = at + moved;
            let want = usize::try_from(bytes - moved).unwrap_or(usize::MAX);
            match rustix::pipe::splice(&self.rd, None, dest, Some(&mut to), want, SpliceFlags::NONBLOCK)? {
                0 => return Err(io::Error::other("the gather pipe ended early")),
                n => moved += n as u64,
            }
        }
        Ok(())
    }

    /// Empties the staging file, and first the pipe when `drain` (after a failure half-way).
    /// Where either cannot be emptied, this gather is retired.
    fn reset(&mut self, drain: bool) {
        let Some(stage) = &self.stage else { return };
        let mut ok = true;
        if drain {
            ok = loop {
                match rustix::io::ioctl_fionread(&self.rd) {
                    Ok(0) => break true,
                    Ok(_) => {}
                    Err(_) => break false,
                }
                let moved =
                    rustix::pipe::splice(&self.rd, None, stage, Some(&mut 0), MOST as usize, SpliceFlags::NONBLOCK);
                if !matches!(moved, Ok(n) if n > 0) {
                    break false;
                }
            };
        }
        if !ok || rustix::fs::ftruncate(stage, 0).is_err() {
            self.stage = None;
        }
    }
}

/// Errors that mean "not possible for these descriptors" (then the caller sends piece by
/// piece, which steps down further by itself), not "something went wrong".
fn unsupported(e: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP, Errno::XDEV, Errno::BADF].contains(&e)
}

fn memfd() -> io::Result<OwnedFd> {
    Ok(rustix::fs::memfd_create("loomiere-gather", rustix::fs::MemfdFlags::CLOEXEC)?)
}

/// A kept copy of an answer's source bytes: never written after it is made, so it cannot
/// change under a plan that refers to it.
struct Staged(File);

impl Medium for Staged {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.0, buf, offset)
    }

    fn as_local_file(&self) -> Option<&File> {
        Some(&self.0)
    }
}

/// `plan` made self-contained, when it is synthesised bytes followed by small source pieces
/// of a local file (a media segment of interleaved samples), at most `max` bytes in at most
/// `max_pieces` pieces: the same bytes, its source pieces gathered once by the kernel into a
/// private memory file, so the plan is then sent as one contiguous range like a file on
/// disk. Headers and validators stay those of the original source. The source is checked
/// unchanged before and after the copy (a file rewritten meanwhile is an error, never a copy
/// of mixed bytes). `Ok(None)`: not kept this way (a piece of a page or more, which goes
/// zero-copy by reference anyway; too much; no local file; no gather on this thread; a file
/// the kernel cannot splice).
pub fn stage(plan: &Plan, max: u64, max_pieces: usize) -> io::Result<Option<Plan>> {
    let Some(file) = plan.source().as_local_file() else { return Ok(None) };
    let pieces = plan.pieces();
    let head = pieces.iter().take_while(|p| matches!(p, Piece::Synth(_))).count();
    let body = &pieces[head..];
    let bytes: u64 = body.iter().map(Piece::len).sum();
    let small = |p: &Piece| matches!(p, Piece::Source { len, .. } if *len < SMALL);
    if body.len() < 2 || body.len() > max_pieces || bytes > max || !body.iter().all(small) {
        return Ok(None);
    }
    check_source(plan)?;
    let dest = File::from(memfd()?);
    let copied = with_thread(|g| -> io::Result<bool> {
        let Some(g) = g else { return Ok(false) };
        if g.stage.is_none() {
            return Ok(false);
        }
        let (mut piped, mut at) = (0u64, 0u64);
        for p in body {
            let Piece::Source { offset, len } = *p else { continue };
            let mut done = 0;
            while done < len {
                let Some(n) = g.pipe(file.as_fd(), offset + done, len - done).inspect_err(|_| g.reset(true))? else {
                    g.reset(true);
                    return Ok(false);
                };
                if n == 0 {
                    // The pipe is full: empty it into the copy and go on.
                    if piped == 0 {
                        return Err(io::Error::other("the gather pipe takes nothing"));
                    }
                    g.unpipe(dest.as_fd(), at, piped).inspect_err(|_| g.reset(true))?;
                    (at, piped) = (at + piped, 0);
                }
                done += n;
                piped += n;
            }
        }
        g.unpipe(dest.as_fd(), at, piped).inspect_err(|_| g.reset(true))?;
        Ok(at + piped == bytes)
    })?;
    if !copied {
        return Ok(None);
    }
    check_source(plan)?;
    let src = plan.source();
    let kept = Source::new(Arc::new(Staged(dest)), bytes, src.modified, src.version.clone());
    let mut out: Vec<Piece> = pieces[..head].to_vec();
    out.push(Piece::Source { offset: 0, len: bytes });
    Plan::new(kept, out, plan.info.clone()).map(Some).map_err(|e| io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Bytes, PlanInfo};
    use crate::sink::{read_range, write_burst, CopyMethod};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    /// An unlinked file of `len` bytes (byte i = i % 251) as a named-like source.
    fn file(len: usize) -> (Source, File) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("loomiere-gather-{}-{n}", std::process::id()));
        let mut f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        f.write_all(&(0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let again = f.try_clone().unwrap();
        (Source::nameless(Arc::new(f), len as u64), again)
    }

    /// A segment-like plan: a head, then `n` samples of 1..=200 bytes every 300 bytes, with
    /// one sample of 9,000 bytes (goes by reference) in the middle.
    fn segment(src: Source, n: u64) -> Plan {
        let mut pieces = vec![Piece::Synth(Arc::new(Bytes(b"MOOF+MDAT".to_vec())))];
        for i in 0..n {
            let len = if i == n / 2 { 9_000 } else { 1 + i * 7 % 200 };
            pieces.push(Piece::Source { offset: 20 + i * 300, len });
        }
        Plan::new(src, pieces, PlanInfo { header_len: 9, ..PlanInfo::default() }).unwrap()
    }

    /// Sends `plan` through a socket with this thread's gather; returns what arrived.
    fn through_socket(plan: &Plan) -> io::Result<Vec<u8>> {
        let (a, mut b) = UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            b.read_to_end(&mut all).map(|_| all)
        });
        let mut cur = Cursor::whole(plan);
        let (mut scratch, mut method) = (vec![0u8; 4096], CopyMethod::Sendfile);
        let mut result = Ok(());
        while !cur.is_done() {
            let step = with_thread(|g| {
                assert!(g.is_some(), "this kernel offers a pipe and a memfd");
                write_burst(plan, &mut cur, a.as_fd(), 5_000, &mut scratch, &mut method, g)
            });
            if let Err(e) = step {
                result = Err(e);
                break;
            }
        }
        drop(a);
        let got = reader.join().unwrap()?;
        result.map(|()| got)
    }

    #[test]
    fn gathered_answer_is_the_same_bytes() {
        let (src, _) = file(200_000);
        let plan = segment(src, 600);
        let want = read_range(&plan, 0..plan.len()).unwrap();
        assert_eq!(through_socket(&plan).unwrap(), want);
    }

    #[test]
    fn a_source_that_ends_early_is_an_error_and_leaves_nothing_behind() {
        let (src, _) = file(50_000);
        // Samples past the end of the file: the gather must fail, not send other bytes.
        let err = through_socket(&segment(src, 600)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // The same thread's next gather sends exactly its own bytes.
        let (src, _) = file(200_000);
        let plan = segment(src, 300);
        assert_eq!(through_socket(&plan).unwrap(), read_range(&plan, 0..plan.len()).unwrap());
    }

    #[test]
    fn staged_plan_is_the_same_bytes_in_one_piece_and_stays_so() {
        let (src, f) = file(200_000);
        let mut pieces = vec![Piece::Synth(Arc::new(Bytes(b"HEAD".to_vec())))];
        pieces.extend((0..500).map(|i| Piece::Source { offset: i * 311, len: 1 + i % 97 }));
        let plan = Plan::new(src, pieces, PlanInfo { header_len: 4, ..PlanInfo::default() }).unwrap();
        let want = read_range(&plan, 0..plan.len()).unwrap();
        let staged = stage(&plan, 1 << 20, 1000).unwrap().expect("small pieces are staged");
        assert_eq!(staged.pieces().len(), 2);
        assert_eq!(staged.len(), plan.len());
        assert_eq!(read_range(&staged, 0..staged.len()).unwrap(), want);
        assert_eq!(through_socket(&staged).unwrap(), want);
        // The copy does not follow later writes to the source.
        f.write_all_at(&[0xee; 4096], 0).unwrap();
        assert_eq!(read_range(&staged, 0..staged.len()).unwrap(), want);
    }

    #[test]
    fn large_pieces_and_remote_sources_are_not_staged() {
        let (src, _) = file(100_000);
        assert!(stage(&segment(src.clone(), 100), 1 << 20, 1000).unwrap().is_none(), "a 9,000-byte piece");
        let small = |src: Source| {
            let pieces = (0..10).map(|i| Piece::Source { offset: i * 100, len: 50 }).collect();
            Plan::new(src, pieces, PlanInfo::default()).unwrap()
        };
        assert!(stage(&small(src.clone()), 499, 1000).unwrap().is_none(), "over the byte limit");
        assert!(stage(&small(src.clone()), 500, 9).unwrap().is_none(), "over the piece limit");
        assert!(stage(&small(src), 500, 10).unwrap().is_some());
        assert!(stage(&small(Source::in_memory(vec![7; 2_000])), 1 << 20, 1000).unwrap().is_none());
    }

    /// A local file that says it changed from its `after`-th check on.
    struct Changing {
        file: File,
        checks: std::sync::atomic::AtomicUsize,
        after: usize,
    }

    impl Medium for Changing {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            FileExt::read_at(&self.file, buf, offset)
        }
        fn as_local_file(&self) -> Option<&File> {
            Some(&self.file)
        }
        fn check_unchanged(&self, _: u64, _: std::time::SystemTime) -> io::Result<()> {
            match self.checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= self.after {
                true => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "rewritten")),
                false => Ok(()),
            }
        }
    }

    #[test]
    fn a_source_rewritten_before_or_while_it_is_copied_is_never_staged() {
        for after in [0, 1] {
            let (_, f) = file(10_000);
            let medium = Arc::new(Changing { file: f, checks: 0.into(), after });
            let modified = Some(std::time::SystemTime::UNIX_EPOCH);
            let src = Source::new(medium, 10_000, modified, crate::source::Version::default());
            let pieces = (0..10).map(|i| Piece::Source { offset: i * 100, len: 50 }).collect();
            let info = PlanInfo { modified, source_len: 10_000, ..PlanInfo::default() };
            let plan = Plan::new(src, pieces, info).unwrap();
            let err = stage(&plan, 1 << 20, 1000).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "changed at check {after}");
        }
    }
}
