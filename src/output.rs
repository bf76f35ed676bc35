//! Writing a plan to a file so that the file is either whole or not there: a temporary file
//! in the destination's directory, filled zero-copy, synced, then renamed over the
//! destination. On any error the temporary file is removed and the destination (and the
//! source, which is only ever read) is left as it was.

use crate::plan::Plan;
use crate::{sink, Error, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
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

/// Writes `plan` to `dest` atomically, calling `progress` with the bytes written so far.
/// Returns the number of bytes written.
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
    let tmp = dir.join(format!(".{name}.loomiere-{}.tmp", std::process::id()));
    let file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?;
    let mut guard = TempGuard(Some(tmp.clone()));
    let n = sink::send_range(plan, 0..plan.len(), file.as_fd(), progress)
        .map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
    // Replacing a file keeps its permissions.
    if let Ok(meta) = std::fs::metadata(dest) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    file.sync_all().map_err(|e| Error::io(format!("cannot sync {}", tmp.display()), e))?;
    drop(file);
    std::fs::rename(&tmp, dest).map_err(|e| Error::io(format!("cannot rename onto {}", dest.display()), e))?;
    guard.0 = None;
    Ok(n)
}
