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
    // 18 MB of media. The test waits for the temp file to appear, then sends SIGTERM; a cut
    // that finished first is simply run again.
    let mut terminated = 0;
    for _ in 0..20 {
        let mut child = common::loomiere()
            .args(["cut", "--start", "0", "-o"])
            .arg(&out)
            .arg(common::media("long.mp4"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if !temps(&dir).is_empty() {
                let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        assert!(temps(&dir).is_empty(), "temp file left: {:?} ({status:?})", temps(&dir));
        if status.signal() == Some(libc::SIGTERM) {
            terminated += 1;
            break;
        }
        assert!(status.success(), "{status:?}");
    }
    assert!(terminated > 0, "no cut was caught mid-write in 20 tries");
}
