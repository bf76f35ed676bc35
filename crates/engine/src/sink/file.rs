//! Writing a plan to an output path, the way `cut -o` and `index -o` need it:
//! - a new name or an existing regular file: whole-or-nothing — a temporary file
//!   `.NAME.loomiere-PID.tmp` in the destination's directory, filled zero-copy, synced, then
//!   renamed over the destination. On any error, and on SIGINT/SIGTERM/SIGHUP while it is
//!   written, the temporary file is removed; temp files of earlier runs whose process is gone
//!   are removed before the next write to the same name. The destination (and the source,
//!   which is only ever read) is left as it was.
//! - a FIFO or a character device (`/dev/null`, a tape, a terminal): streamed into, in place;
//!   the node is never replaced.
//! - `-`, `/dev/stdout`, `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N`: streamed into that
//!   descriptor of this process.
//! - anything else (a symbolic link, a directory, a socket, a block device) is refused with a
//!   message that says why.

use crate::plan::Plan;
use crate::{sink, Error, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Removes the temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes `plan` to `dest` as the module documentation says (atomically for regular files,
/// streamed for FIFOs, character devices and stdout-like names, refused for other nodes),
/// calling `progress` with the bytes written so far. Returns the number of bytes written.
pub fn write(plan: &Plan, dest: &Path, progress: impl FnMut(u64)) -> Result<u64> {
    if let Some(fd) = descriptor_name(dest) {
        // SAFETY: `fd` was checked to be open (fcntl) just now, and it is one of this
        // process's descriptors it was told to write to; it is only borrowed for the write.
        let out = unsafe { BorrowedFd::borrow_raw(fd) };
        let name = if dest.as_os_str() == "-" { "standard output".into() } else { dest.display().to_string() };
        return sink::send_range(plan, 0..plan.len(), out, progress)
            .map_err(|e| Error::io(format!("cannot write to {name}"), e));
    }
    let meta = match std::fs::symlink_metadata(dest) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return write_atomic(plan, dest, progress),
        Err(e) => return Err(Error::io(format!("cannot look at {}", dest.display()), e)),
    };
    let t = meta.file_type();
    if t.is_file() {
        write_atomic(plan, dest, progress)
    } else if t.is_fifo() || t.is_char_device() {
        write_stream(plan, dest, progress)
    } else {
        let what = if t.is_symlink() {
            "a symbolic link (loomiere does not write through links: give the path it points to)"
        } else if t.is_dir() {
            "a directory (give a file name)"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_block_device() {
            "a block device"
        } else {
            "not a regular file"
        };
        Err(Error::io(
            format!("{} is {what}; it is left as it is", dest.display()),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "output not written"),
        ))
    }
}

/// The open descriptor an output name stands for: `-`, `/dev/stdout` (1), `/dev/stderr` (2),
/// `/dev/fd/N`, `/proc/self/fd/N`; `None` for any other name or a descriptor that is not open.
fn descriptor_name(dest: &Path) -> Option<i32> {
    let s = dest.to_str()?;
    let fd: i32 = match s {
        "-" | "/dev/stdout" => 1,
        "/dev/stderr" => 2,
        _ => s.strip_prefix("/dev/fd/").or_else(|| s.strip_prefix("/proc/self/fd/"))?.parse().ok()?,
    };
    // SAFETY: F_GETFD only reads the descriptor flags of `fd`.
    (fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1).then_some(fd)
}

/// Streams `plan` into an existing FIFO or character device: opened for writing without
/// creating, truncating or following a link, and checked again once open.
fn write_stream(plan: &Plan, dest: &Path, progress: impl FnMut(u64)) -> Result<u64> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(dest)
        .map_err(|e| Error::io(format!("cannot open {}", dest.display()), e))?;
    let t = file.metadata().map_err(|e| Error::io(format!("cannot stat {}", dest.display()), e))?.file_type();
    if !(t.is_fifo() || t.is_char_device()) {
        return Err(Error::io(
            format!("{} changed while it was being opened; it is left as it is", dest.display()),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "output not written"),
        ));
    }
    sink::send_range(plan, 0..plan.len(), file.as_fd(), progress)
        .map_err(|e| Error::io(format!("cannot write {}", dest.display()), e))
}

/// Writes `plan` to `dest` atomically (a new file, or one replacing a regular file), calling
/// `progress` with the bytes written so far. Returns the number of bytes written. Callers
/// with a user-given path use [`write`], which refuses what must not be replaced.
pub fn write_atomic(plan: &Plan, dest: &Path, progress: impl FnMut(u64)) -> Result<u64> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest
        .file_name()
        .ok_or_else(|| Error::bad_request(format!("{} is not a file name", dest.display())))?
        .to_string_lossy()
        .into_owned();
    remove_stale_temps(&dir, &name);
    let tmp = dir.join(temp_name(&name, std::process::id()));
    // Armed before the file exists, so no signal can fall between its creation and the arming.
    let signals = crate::fault::TempFileSignals::arm(&tmp);
    let file: File = OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| {
        Error::io(format!("cannot create {} (the temporary file for {})", tmp.display(), dest.display()), e)
    })?;
    let mut guard = TempGuard(Some(tmp.clone()));
    let n = sink::send_range(plan, 0..plan.len(), file.as_fd(), progress)
        .map_err(|e| Error::io(format!("cannot write {}", dest.display()), e))?;
    // Replacing a file keeps its permissions.
    if let Ok(meta) = std::fs::metadata(dest) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    file.sync_all().map_err(|e| Error::io(format!("cannot write {} (sync)", dest.display()), e))?;
    drop(file);
    std::fs::rename(&tmp, dest).map_err(|e| Error::io(format!("cannot rename onto {}", dest.display()), e))?;
    guard.0 = None;
    drop(signals);
    Ok(n)
}

/// `.NAME.loomiere-PID.tmp`.
fn temp_name(name: &str, pid: u32) -> String {
    format!(".{name}.loomiere-{pid}.tmp")
}

/// Removes `.NAME.loomiere-PID.tmp` files in `dir` left by processes that no longer exist
/// (killed mid-write by SIGKILL or a power cut). Only regular files are removed, only for
/// this `name`, and only when no process has that PID (another writer's file is left alone).
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.loomiere-");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|f| f.strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if pid <= 0 || pid == std::process::id() as i32 || process_exists(pid) {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether a process with this PID exists (signal 0: ESRCH means none; EPERM means one owned
/// by another user).
fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 sends nothing; it only checks that `pid` can be addressed.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temps_of_dead_processes_only() {
        let dir = std::env::temp_dir().join(format!("loomiere-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // PID 1 always exists; 2^22 + 1 is above Linux's pid_max limit, so never alive.
        let alive = dir.join(temp_name("a.mp4", 1));
        let dead = dir.join(temp_name("a.mp4", (1 << 22) + 1));
        let other = dir.join(temp_name("b.mp4", (1 << 22) + 1));
        for p in [&alive, &dead, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        remove_stale_temps(&dir, "a.mp4");
        assert!(alive.exists() && other.exists() && !dead.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn descriptor_names() {
        assert_eq!(descriptor_name(Path::new("-")), Some(1));
        assert_eq!(descriptor_name(Path::new("/dev/stderr")), Some(2));
        assert_eq!(descriptor_name(Path::new("/dev/fd/0")), Some(0));
        assert_eq!(descriptor_name(Path::new("/dev/fd/999999")), None);
        assert_eq!(descriptor_name(Path::new("out.mp4")), None);
    }
}
