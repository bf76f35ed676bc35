//! Socket activation (systemd's `LISTEN_FDS` protocol, also spoken by
//! `systemd-socket-activate`): when `LISTEN_PID` is this process, descriptors 3 … 3 +
//! `LISTEN_FDS` − 1 are listening sockets made by the service manager, used instead of
//! binding. `LISTEN_FDNAMES` (systemd's `FileDescriptorName=`) says which is which: `https`
//! is the TLS listener and `metrics` the metrics one (each needs its table, `[tls]` or
//! `[metrics]`, in the configuration; its `listen` is then unused), any other name or none
//! the HTTP listener (the first one is used). The variables are removed once read, so that programs
//! started later do not take the sockets for theirs.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The first descriptor passed (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

/// What a passed socket is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    Http,
    Https,
    Metrics,
}

/// The listening sockets passed by a service manager, or an empty list when none were.
pub fn passed() -> Result<Vec<(Use, std::net::TcpListener)>, String> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    let (Some(pid), Some(fds)) = (pid, fds) else { return Ok(Vec::new()) };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    let n: RawFd = fds
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=64).contains(n))
        .ok_or_else(|| format!("LISTEN_FDS={fds:?} is not a number of sockets from 1 to 64"))?;
    let names: Vec<&str> = names.split(':').collect();
    let mut out = Vec::new();
    for i in 0..n {
        let fd = FIRST_FD + i;
        // Only a stream socket is taken; anything else is refused before it is owned.
        // SAFETY: only borrowed for this one call; a closed descriptor makes it fail (EBADF).
        let ok = rustix::net::sockopt::socket_type(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
            .is_ok_and(|t| t == rustix::net::SocketType::STREAM);
        if !ok {
            return Err(format!("passed descriptor {fd} is not a stream socket"));
        }
        // SAFETY: the service manager passed this descriptor to this process (LISTEN_PID) and
        // nothing else in it owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC);
        let listener = std::net::TcpListener::from(owned);
        listener.set_nonblocking(true).map_err(|e| format!("passed socket {fd}: {e}"))?;
        let role = match names.get(i as usize).copied().unwrap_or("") {
            "https" | "tls" => Use::Https,
            "metrics" => Use::Metrics,
            _ => Use::Http,
        };
        out.push((role, listener));
    }
    Ok(out)
}
