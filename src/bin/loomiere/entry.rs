//! The process entry, in place of std's `lang_start` (issue 6: a web server execs loomiere
//! for every CGI request, so start-up is part of every answer). std's runtime set-up costs
//! about 65 µs per exec: it reads `/proc/self/maps` (through glibc's `pthread_getattr_np`,
//! with `sscanf`) to place the main thread's stack guard, and installs a `sigaltstack` and
//! SIGSEGV/SIGBUS handlers, all for its "has overflowed its stack" message. This module keeps
//! only what matters to loomiere:
//! - descriptors 0–2 exist (opened on `/dev/null` when the parent closed them), so no file
//!   opened later can become "stdout" — and `rustix::stdio` may assume they are open;
//! - SIGPIPE is ignored, so writing to a client that went away fails with `EPIPE` (a
//!   [`loomiere::cgi::Outcome::HungUp`]) instead of killing the process;
//! - a panic stops here: the panic hook has printed it, and the process exits with 101, as
//!   under std's runtime.
//!
//! What is lost: std's stack-overflow message (an overflow is a plain SIGSEGV) and the name
//! `main` in panic messages. Also [`Argv`]: the C `argv` as byte strings, read in place.

use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body` as the whole program after the runtime set-up above; returns its exit status,
/// or 101 when it panicked.
pub fn run(body: impl FnOnce() -> i32) -> c_int {
    standard_fds();
    ignore_sigpipe();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(status) => status,
        Err(payload) => {
            // Dropping a payload could itself panic (a payload with a panicking Drop), and
            // nothing may unwind out of an `extern "C"` function: leak it, the process ends.
            std::mem::forget(payload);
            101
        }
    }
}

/// Opens `/dev/null` on any of descriptors 0–2 that is closed (as std's runtime does).
fn standard_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
    let closed: [bool; 3] = loop {
        // SAFETY: `fds` is a valid array of three `pollfd`s for the duration of the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
        if r != -1 {
            break fds.map(|p| p.revents & libc::POLLNVAL != 0);
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            // poll may fail for want of resources: ask each descriptor instead.
            // SAFETY: F_GETFD only reads the descriptor flags of `fd`.
            _ => {
                break [0, 1, 2].map(|fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 && is_ebadf());
            }
        }
    };
    for (fd, closed) in closed.into_iter().enumerate() {
        // SAFETY: a NUL-terminated path; the lowest free descriptor is the closed one, as
        // the descriptors are checked in increasing order.
        if closed && unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } != fd as c_int {
            // SAFETY: ends the process; there is no sane way on without stdio.
            unsafe { libc::abort() };
        }
    }
}

fn is_ebadf() -> bool {
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
}

/// SIGPIPE → SIG_IGN (std's default for Rust programs; children spawned with
/// `std::process::Command` still get SIG_DFL back).
fn ignore_sigpipe() {
    // SAFETY: installs the predefined SIG_IGN disposition; no handler code runs.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        // SAFETY: as above; std aborts here too.
        unsafe { libc::abort() };
    }
}

/// The program's arguments as the C runtime passed them to `main`: byte strings, borrowed,
/// nothing copied.
#[derive(Clone, Copy)]
pub struct Argv {
    argc: usize,
    argv: *const *const c_char,
}

impl Argv {
    /// # Safety
    /// `argc` and `argv` must be the arguments of the C `main`: `argv[0..argc]` are valid
    /// NUL-terminated strings that live (unchanged) as long as the process.
    pub unsafe fn new(argc: c_int, argv: *const *const c_char) -> Argv {
        let argc = if argv.is_null() { 0 } else { usize::try_from(argc).unwrap_or(0) };
        Argv { argc, argv }
    }
}

/// An iterator over [`Argv`].
#[derive(Clone)]
pub struct ArgvIter {
    args: Argv,
    next: usize,
}

impl IntoIterator for Argv {
    type Item = &'static [u8];
    type IntoIter = ArgvIter;
    fn into_iter(self) -> ArgvIter {
        ArgvIter { args: self, next: 0 }
    }
}

impl Iterator for ArgvIter {
    type Item = &'static [u8];
    fn next(&mut self) -> Option<&'static [u8]> {
        if self.next >= self.args.argc {
            return None;
        }
        // SAFETY: `next < argc`, and `Argv::new`'s contract makes `argv[next]` readable.
        let p = unsafe { *self.args.argv.add(self.next) };
        if p.is_null() {
            self.next = self.args.argc;
            return None;
        }
        self.next += 1;
        // SAFETY: a non-null argv entry is a NUL-terminated string that lives as long as the
        // process (`Argv::new`'s contract).
        Some(unsafe { CStr::from_ptr(p) }.to_bytes())
    }
}
