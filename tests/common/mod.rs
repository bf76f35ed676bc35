//! Shared helpers for the integration tests: the test media (made once per target directory
//! by `tests/make-media.sh` with ffmpeg), the built binary, and ffprobe/ffmpeg checks that
//! judge loomiere's output with real decoders.
#![allow(dead_code)]

pub mod serve;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The directory holding the generated test media (short.mp4, long.mp4, short.flv, …).
pub fn media_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::var_os("LOOMIERE_TEST_MEDIA")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target").join("test-media"));
        std::fs::create_dir_all(&dir).expect("create test media dir");
        if !dir.join("MD5SUMS").exists() {
            // flock serialises test processes that start at once (nextest, several binaries).
            let lock = dir.join(".lock");
            let status = Command::new("flock")
                .arg(&lock)
                .arg("bash")
                .arg(root.join("tests").join("make-media.sh"))
                .arg(&dir)
                .stdout(std::process::Stdio::null())
                .status()
                .expect("run tests/make-media.sh (needs flock, bash, ffmpeg)");
            assert!(status.success(), "tests/make-media.sh failed");
        }
        dir
    })
}

/// Path of one generated medium, e.g. `media("short.mp4")`.
pub fn media(name: &str) -> PathBuf {
    let p = media_dir().join(name);
    assert!(p.exists(), "test medium {name} is missing from {}", media_dir().display());
    p
}

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// True when `LOOMIERE_REQUIRE_ALL=1` (CI: `.ci/run`, `scripts/test.sh`): a test whose
/// external tool is missing then fails instead of being skipped.
pub fn require_all() -> bool {
    std::env::var("LOOMIERE_REQUIRE_ALL").is_ok_and(|v| v.trim() == "1")
}

/// True when `tool` (a program name looked up in `PATH`, or a path) can be run.
pub fn have_tool(tool: &str) -> bool {
    if tool.contains('/') {
        return Path::new(tool).is_file();
    }
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// For a test that cannot run at all without `tool`: true when it is installed. When it is
/// missing the test fails under `LOOMIERE_REQUIRE_ALL=1`, and otherwise prints
/// `SKIPPED: <test>: <tool> is not installed` and gets false (the caller returns).
#[must_use]
pub fn tool_or_skip(test: &str, tool: &str) -> bool {
    if have_tool(tool) {
        return true;
    }
    assert!(
        !require_all(),
        "{test}: {tool} is not installed and LOOMIERE_REQUIRE_ALL=1 (scripts/deps.sh test installs it)"
    );
    eprintln!("SKIPPED: {test}: {tool} is not installed (scripts/deps.sh test installs it)");
    false
}

/// For a test whose verdict comes from `tool`: fails at once, naming the tool, when it is
/// missing (with or without `LOOMIERE_REQUIRE_ALL`).
pub fn require_tool(tool: &str) {
    assert!(have_tool(tool), "{tool} is not installed: this test needs it (scripts/deps.sh test installs it)");
}

/// `flvmeta --check FILE`: (errors, warnings, message lines) parsed from its report. Fails
/// when flvmeta is missing or its report cannot be read.
pub fn flvmeta_check(path: &Path) -> (u32, u32, Vec<String>) {
    require_tool("flvmeta");
    let out = run(Command::new("flvmeta").arg("--check").arg(path));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = text.lines().find_map(|l| {
        let (e, rest) = l.split_once(" error(s), ")?;
        Some((e.trim().parse::<u32>().ok()?, rest.strip_suffix(" warning(s)")?.trim().parse::<u32>().ok()?))
    });
    let (errors, warnings) =
        summary.unwrap_or_else(|| panic!("no summary line from flvmeta --check {}: {text:?}", path.display()));
    assert_eq!(out.status.success(), errors == 0, "flvmeta exit status {} with {errors} errors", out.status);
    let messages =
        text.lines().filter(|l| l.contains(": warning ") || l.contains(": error ") || l.contains(": fatal "));
    (errors, warnings, messages.map(str::to_string).collect())
}

/// The built `loomiere` binary.
pub fn loomiere() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loomiere"))
}

/// Runs a command, returning its output (panics only if it cannot be started).
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// `ffprobe` format duration in seconds.
pub fn duration(path: &Path) -> f64 {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(path));
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().unwrap_or_else(|_| panic!("no duration from ffprobe for {}: {text:?}", path.display()))
}

/// Number of streams ffprobe sees.
pub fn stream_count(path: &Path) -> usize {
    let out =
        run(Command::new("ffprobe").args(["-v", "error", "-show_entries", "stream=index", "-of", "csv=p=0"]).arg(path));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count()
}

/// What `ffmpeg -v error -i FILE -map 0 -f null -` prints: empty means every stream decodes
/// clean (without `-map 0` ffmpeg decodes one stream of each kind).
pub fn decode_errors(path: &Path) -> String {
    let out = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0", "-f", "null", "-"]));
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        s.push_str(&format!("\nffmpeg exited with {}", out.status));
    }
    s
}

/// First packet pts (seconds) of the first stream of `kind` ("v" or "a").
pub fn first_pts(path: &Path, kind: &str) -> Option<f64> {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            kind,
            "-show_entries",
            "frame=pts_time",
            "-read_intervals",
            "%+#1",
            "-of",
            "csv=p=0",
        ])
        .arg(path));
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| l.trim().trim_end_matches(',').parse().ok())
}

/// One box found by [`mp4_boxes`]: type, offset of its header, header length, total size.
#[derive(Debug, Clone)]
pub struct BoxAt {
    pub kind: [u8; 4],
    pub offset: usize,
    pub header: usize,
    pub size: usize,
}

/// Boxes that hold other boxes (the path to the sample tables, and fragments).
const CONTAINERS: [&[u8; 4]; 11] =
    [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta", b"mvex", b"moof", b"traf"];
/// Walks the box tree of an in-memory MP4 (containers on the path to the sample tables, and
/// fragments), stopping at garbage. Test-side and independent of loomiere's own parser, so
/// tests can locate what to damage or check without trusting the code under test.
pub fn mp4_boxes(data: &[u8]) -> Vec<BoxAt> {
    fn walk(data: &[u8], mut pos: usize, end: usize, out: &mut Vec<BoxAt>) {
        while pos + 8 <= end {
            let size32 = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as u64;
            let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
            let (size, header) = match size32 {
                0 => ((end - pos) as u64, 8),
                1 if pos + 16 <= end => (u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap()), 16),
                _ => (size32, 8),
            };
            if size < header as u64 || size > (end - pos) as u64 {
                return;
            }
            let size = size as usize;
            out.push(BoxAt { offset: pos, header, size, kind });
            if CONTAINERS.contains(&&kind) {
                walk(data, pos + header, pos + size, out);
            }
            pos += size;
        }
    }
    let mut out = Vec::new();
    walk(data, 0, data.len(), &mut out);
    out
}

/// Writes `out`: `short.mp4` with an English `mov_text` (tx3g) subtitle track made from the
/// SubRip text `srt` (ffmpeg, stream copy for the rest).
pub fn with_subtitles(srt: &str, out: &Path) {
    require_tool("ffmpeg");
    let cues = out.with_extension("srt");
    std::fs::write(&cues, srt).unwrap();
    let r = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(media("short.mp4"))
        .arg("-i")
        .arg(&cues)
        .args(["-map", "0", "-map", "1", "-c", "copy", "-c:s", "mov_text", "-metadata:s:s:0", "language=eng"])
        .arg(out));
    assert!(r.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&r.stderr));
}
