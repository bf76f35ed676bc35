//! `loomiere index FILE.mp4` (faststart): the output plays, its `moov` comes before its
//! `mdat`, and it holds the same packets as the input (ffprobe sizes, pts, dts, flags); a file
//! already in faststart order is left untouched; `--check` tells the two apart.

mod common;

use common::{decode_errors, loomiere, media, run, scratch};
use std::path::Path;
use std::process::Command;

/// Top-level box types in file order, read with loomiere's own JSON inspector.
fn top_level(file: &Path) -> Vec<String> {
    let out = run(loomiere().arg("inspect").arg("--json").arg(file));
    assert!(out.status.success(), "inspect {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["depth"] == 0)
        .map(|b| b["type"].as_str().unwrap().to_string())
        .collect()
}

fn packets(file: &Path) -> String {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=stream_index,pts,dts,size,flags", "-of", "csv=p=0"])
        .arg(file));
    String::from_utf8(out.stdout).unwrap()
}

fn position(boxes: &[String], kind: &str) -> usize {
    boxes.iter().position(|b| b == kind).unwrap_or_else(|| panic!("no {kind} in {boxes:?}"))
}

#[test]
fn moov_moves_to_the_front_with_the_same_packets() {
    let dir = scratch("faststart-moves");
    for name in ["moovend.mp4", "long.mp4"] {
        let src = media(name);
        let before = std::fs::read(&src).unwrap().len();
        let boxes = top_level(&src);
        assert!(position(&boxes, "moov") > position(&boxes, "mdat"), "{name} should start with moov at the end");
        let check = run(loomiere().arg("index").arg("--check").arg(&src));
        assert_eq!(check.status.code(), Some(1), "--check on {name} should say 'not faststart'");

        let out = dir.join(name);
        let done = run(loomiere().arg("index").arg(&src).arg("-o").arg(&out));
        assert!(done.status.success(), "index {name}: {}", String::from_utf8_lossy(&done.stderr));
        let boxes = top_level(&out);
        assert!(position(&boxes, "moov") < position(&boxes, "mdat"), "{name}: moov not first in {boxes:?}");
        assert_eq!(decode_errors(&out), "", "{name}: the faststart output does not decode cleanly");
        assert_eq!(packets(&src), packets(&out), "{name}: packets differ");
        assert_eq!(std::fs::read(&src).unwrap().len(), before, "{name}: input changed");
        let check = run(loomiere().arg("index").arg("--check").arg(&out));
        assert!(check.status.success(), "--check on the output of {name} should pass");
    }
}

#[test]
fn in_place_rewrite_and_untouched_faststart_file() {
    let dir = scratch("faststart-in-place");
    let file = dir.join("movie.mp4");
    std::fs::copy(media("moovend.mp4"), &file).unwrap();
    let done = run(loomiere().arg("index").arg(&file));
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let boxes = top_level(&file);
    assert!(position(&boxes, "moov") < position(&boxes, "mdat"));
    assert_eq!(packets(&media("moovend.mp4")), packets(&file));
    // Only the file itself is left in the directory (no temporary files).
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

    // Already faststart: the bytes and the modification time stay as they were.
    let fast = dir.join("fast.mp4");
    std::fs::copy(media("faststart.mp4"), &fast).unwrap();
    let before = (std::fs::read(&fast).unwrap(), std::fs::metadata(&fast).unwrap().modified().unwrap());
    let again = run(loomiere().arg("index").arg(&fast));
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("untouched"));
    let after = (std::fs::read(&fast).unwrap(), std::fs::metadata(&fast).unwrap().modified().unwrap());
    assert!(before == after, "a faststart file was rewritten");
}
