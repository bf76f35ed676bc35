//! Signals for one-shot processes (`cut`, `index`, the CGI and inetd front ends), never for
//! `serve`: a SIGBUS from a mapped moov whose file shrank becomes a clean error exit, and a
//! temp file being written is removed when the process is interrupted (SIGINT, SIGTERM,
//! SIGHUP). The handlers are async-signal-safe: they read a path published through atomics,
//! call `write`, `unlink`, `sigaction`, `raise` and `_exit`, nothing else.
//!
//! `serve` reads its moovs with `pread` (see `mp4::Movie::open_for` with `resident`), so no fault can reach
//! it; these handlers would kill every viewer's stream, so it never installs them.

use std::ffi::c_int;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// The longest temp-file path the handlers can remove (longer ones are removed only by the
/// normal error path, and by the stale-file sweep of the next run).
const PATH_MAX: usize = 4096;

/// The temp file being written, NUL-terminated, valid while `ARMED` is true.
static TEMP_PATH: [AtomicU8; PATH_MAX] = [const { AtomicU8::new(0) }; PATH_MAX];
static ARMED: AtomicBool = AtomicBool::new(false);

const SIGBUS_MESSAGE: &[u8] = b"loomiere: the input file changed while it was being read (truncated or overwritten \
in place); the output is incomplete\n";

/// Removes the published temp file, if any. Async-signal-safe.
fn unlink_temp() {
    if !ARMED.load(Ordering::Acquire) {
        return;
    }
    let mut buf = [0u8; PATH_MAX];
    for (b, a) in buf.iter_mut().zip(TEMP_PATH.iter()) {
        *b = a.load(Ordering::Relaxed);
        if *b == 0 {
            break;
        }
    }
    // SAFETY: `buf` is NUL-terminated (publish() only arms paths shorter than PATH_MAX, and
    // the last byte stays 0); unlink only reads it.
    unsafe { libc::unlink(buf.as_ptr().cast()) };
}

extern "C" fn on_sigbus(_sig: c_int) {
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the message is a static buffer.
    unsafe { libc::write(2, SIGBUS_MESSAGE.as_ptr().cast(), SIGBUS_MESSAGE.len()) };
    unlink_temp();
    // SAFETY: ends the process at once, without running anything that is not signal-safe.
    unsafe { libc::_exit(1) };
}

extern "C" fn on_interrupt(sig: c_int) {
    unlink_temp();
    // Die of the signal as if no handler had been installed (exit status 128 + sig for the
    // shell): default action back, then re-raise; it is delivered when this handler returns.
    set_handler(sig, libc::SIG_DFL);
    // SAFETY: raise(3) is async-signal-safe.
    unsafe { libc::raise(sig) };
}

fn set_handler(sig: c_int, handler: libc::sighandler_t) -> Option<libc::sigaction> {
    // SAFETY: a zeroed sigaction is a valid value (empty mask, no flags); sigaction(2) reads
    // `act` and writes `old`, both valid for the call.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler;
        libc::sigemptyset(&mut act.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(sig, &act, &mut old) == 0).then_some(old)
    }
}

/// Turns a SIGBUS (a mapped file that shrank under the process) into a message on stderr,
/// the removal of the temp file being written (if any) and exit status 1. For processes that
/// map a moov and answer or write once; one `sigaction` call.
pub fn exit_on_sigbus() {
    set_handler(libc::SIGBUS, on_sigbus as *const () as libc::sighandler_t);
}

/// Publishes `path` as the temp file the handlers remove. False when it is too long.
fn publish(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= PATH_MAX || bytes.contains(&0) {
        return false;
    }
    ARMED.store(false, Ordering::Release);
    for (a, &b) in TEMP_PATH.iter().zip(bytes.iter().chain(std::iter::once(&0))) {
        a.store(b, Ordering::Relaxed);
    }
    ARMED.store(true, Ordering::Release);
    true
}

/// While alive, SIGINT, SIGTERM and SIGHUP remove `path` (a temp file being written) before
/// the process dies of them, and so does the SIGBUS exit. Signals the process ignores stay
/// ignored (e.g. SIGINT of a background job). Dropping it restores the previous handlers.
/// One temp file per process is tracked (the last armed): `cut` and `index` write one output;
/// a program writing several at once still dies of the signal, leaving the others for the
/// stale-file sweep of the next run.
pub struct TempFileSignals {
    old: Vec<(c_int, libc::sigaction)>,
}

const INTERRUPTS: [c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

impl TempFileSignals {
    /// Arms the handlers for `path`.
    pub fn arm(path: &Path) -> TempFileSignals {
        let mut old = Vec::new();
        if publish(path) {
            for sig in INTERRUPTS {
                if let Some(prev) = set_handler(sig, on_interrupt as *const () as libc::sighandler_t) {
                    if prev.sa_sigaction == libc::SIG_IGN {
                        // SAFETY: puts back the disposition sigaction just returned.
                        unsafe { libc::sigaction(sig, &prev, std::ptr::null_mut()) };
                    } else {
                        old.push((sig, prev));
                    }
                }
            }
        }
        TempFileSignals { old }
    }
}

impl Drop for TempFileSignals {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: restores a disposition sigaction returned earlier.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
        ARMED.store(false, Ordering::Release);
    }
}
