//! Where `cut -o` and `index -o` write (issue 12.4, 12.6): FIFOs and character devices are
//! streamed into and stay what they are, symbolic links and other special files are refused
//! and left untouched, a killed write leaves no temp file, and temp files of dead processes
//! are swept by the next write to the same name. Outputs are judged with ffprobe/ffmpeg.

mod common;

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

fn mkfifo(p: &Path) {
    assert!(std::process::Command::new("mkfifo").arg(p).status().expect("run mkfifo").success());
}

/// Temp files (`.NAME.loomiere-PID.tmp`) in `dir`.
fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".loomiere-") && n.ends_with(".tmp"))
        .collect()
}

#[test]
fn cut_streams_into_a_fifo() {
    let dir = common::scratch("cut_outputs-fifo");
    let fifo = dir.join("pipe.mp4");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut all = Vec::new();
            std::fs::File::open(&fifo).unwrap().read_to_end(&mut all).unwrap();
            all
        })
    };
    let out = common::run(
        common::loomiere()
            .args(["cut", "--start", "10", "--end", "20", "-o"])
            .arg(&fifo)
            .arg(common::media("short.mp4")),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = reader.join().unwrap();
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
    assert!(temps(&dir).is_empty(), "{:?}", temps(&dir));
    let copy = dir.join("got.mp4");
    std::fs::write(&copy, &got).unwrap();
    assert_eq!(common::decode_errors(&copy), "", "the streamed clip decodes");
    let d = common::duration(&copy);
    assert!((9.0..12.5).contains(&d), "duration {d}");
}

#[test]
fn cut_writes_into_a_character_device() {
    let dir = common::scratch("cut_outputs-chardev");
    // A twin of /dev/null (1, 3) when root may make device nodes, else /dev/null itself.
    let twin = dir.join("null");
    let made = std::process::Command::new("mknod").arg(&twin).args(["c", "1", "3"]).status().is_ok_and(|s| s.success());
    let dev = if made { twin } else { Path::new("/dev/null").to_path_buf() };
    let out =
        common::run(common::loomiere().args(["cut", "--start", "10", "-o"]).arg(&dev).arg(common::media("short.mp4")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = std::fs::symlink_metadata(&dev).unwrap().file_type();
    assert!(t.is_char_device(), "{} is no longer a character device", dev.display());
    assert!(temps(dev.parent().unwrap()).iter().all(|n| !n.starts_with(".null.")));
    // index -o the device streams too.
    let out = common::run(common::loomiere().arg("index").arg(common::media("short.flv")).arg("-o").arg(&dev));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::symlink_metadata(&dev).unwrap().file_type().is_char_device());
}

#[test]
fn symlinks_and_other_nodes_are_refused_and_left_alone() {
    let dir = common::scratch("cut_outputs-link");
    let target = dir.join("target.mp4");
    std::fs::write(&target, b"KEEP ME").unwrap();
    let link = dir.join("link.mp4");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let sub = dir.join("a-dir.mp4");
    std::fs::create_dir(&sub).unwrap();
    let sock_path = dir.join("sock.mp4");
    let _sock = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    for (node, says) in [(&link, "symbolic link"), (&sub, "directory"), (&sock_path, "socket")] {
        let out = common::run(
            common::loomiere().args(["cut", "--start", "10", "-o"]).arg(node).arg(common::media("short.mp4")),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", node.display());
        assert!(err.contains(says) && err.contains("left as it is"), "{}: {err}", node.display());
        let out = common::run(common::loomiere().arg("index").arg(common::media("short.flv")).arg("-o").arg(node));
        assert_eq!(out.status.code(), Some(1), "index -o {}", node.display());
    }
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), target);
    assert_eq!(std::fs::read(&target).unwrap(), b"KEEP ME");
    assert!(std::fs::symlink_metadata(&sub).unwrap().is_dir());
    assert!(std::fs::symlink_metadata(&sock_path).unwrap().file_type().is_socket());
    assert!(temps(&dir).is_empty(), "{:?}", temps(&dir));
}

#[test]
fn stale_temp_files_of_dead_processes_are_removed() {
    let dir = common::scratch("cut_outputs-stale");
    // No process can have a PID above Linux's limit of 2^22.
    let stale = dir.join(".clip.mp4.loomiere-4194305.tmp");
    let other = dir.join(".other.mp4.loomiere-4194305.tmp");
    std::fs::write(&stale, vec![0u8; 4096]).unwrap();
    std::fs::write(&other, vec![0u8; 4096]).unwrap();
    let out = dir.join("clip.mp4");
    let r =
        common::run(common::loomiere().args(["cut", "--start", "10", "-o"]).arg(&out).arg(common::media("short.mp4")));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(!stale.exists(), "the stale temp file of the same output is removed");
    assert!(other.exists(), "another output's temp file is not this write's business");
    assert_eq!(common::decode_errors(&out), "");
}

#[test]
fn a_terminated_cut_leaves_no_temp_file() {
    let dir = common::scratch("cut_outputs-sigterm");
    let out = dir.join("whole.mp4");
    // The 2-hour movie rewritten from the start: a 4 MB moov pulled in 64 KiB steps, then
    // 18 MB of media; SIGTERM as soon as the temp file appears.
    let (status, err) =
        signal_mid_write(&dir, &out, rustix::process::Signal::TERM).expect("no cut was caught mid-write in 20 tries");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "dies of the signal, as without a handler: {err}");
    assert!(!out.exists());
}

/// Spawns `cut --start 0` of the 2-hour movie into `out` (a regular file) and sends `sig` once
/// its temp file exists; a cut that finished first is run again. Returns the exit status and
/// stderr of the first cut that was caught mid-write.
fn signal_mid_write(
    dir: &Path,
    out: &Path,
    sig: rustix::process::Signal,
) -> Option<(std::process::ExitStatus, String)> {
    for _ in 0..20 {
        let _ = std::fs::remove_file(out);
        let mut child = common::loomiere()
            .args(["cut", "--start", "0", "-o"])
            .arg(out)
            .arg(common::media("long.mp4"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let caught = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            if !temps(dir).is_empty() {
                let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
                let _ = rustix::process::kill_process(pid, sig);
                break true;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let status = child.wait().unwrap();
        assert!(temps(dir).is_empty(), "temp file left: {:?} ({status:?}, {err})", temps(dir));
        if caught && !status.success() {
            return Some((status, err));
        }
        assert!(status.success(), "{status:?}: {err}");
    }
    None
}

/// The SIGBUS handler of one-shot processes (what a mapped moov whose file shrank raises): a
/// message, the temp file removed, exit status 1, not death by the signal. Sent with kill(2),
/// since a truncation is caught by the per-step check before the mapping is touched.
#[test]
fn a_sigbus_mid_write_is_a_clean_error_exit() {
    let dir = common::scratch("cut_outputs-sigbus");
    let out = dir.join("whole.mp4");
    let (status, err) =
        signal_mid_write(&dir, &out, rustix::process::Signal::BUS).expect("no cut was caught mid-write in 20 tries");
    assert_eq!(status.signal(), None, "{err}");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("changed while it was being read"), "{err}");
    assert!(!out.exists(), "no output from a failed cut");
}

/// `cut -o -` into a pipe read slowly while the source is truncated: exit status 1 and a
/// message, never a signal, and fewer bytes than a whole cut.
#[test]
fn cut_to_stdout_of_a_truncated_file_exits_with_an_error() {
    let dir = common::scratch("cut_outputs-stdout-trunc");
    let src = dir.join("long.mp4");
    std::fs::copy(common::media("long.mp4"), &src).unwrap();
    let mut child = common::loomiere()
        .args(["cut", "--start", "1", "-o", "-"])
        .arg(&src)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut head = vec![0u8; 64 << 10];
    out.read_exact(&mut head).unwrap();
    assert_eq!(&head[4..8], b"ftyp");
    std::thread::sleep(Duration::from_millis(200));
    assert!(std::process::Command::new("truncate").args(["-s", "1M"]).arg(&src).status().unwrap().success());
    let mut rest = Vec::new();
    out.read_to_end(&mut rest).unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), None, "{err}");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("truncated or overwritten") || err.contains("changed while it was being read"), "{err}");
    assert!(head.len() + rest.len() < 22_000_000, "the whole clip was written from a truncated file");
}
