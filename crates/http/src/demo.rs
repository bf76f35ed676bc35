//! `loomiere demo [DIR]`: sample media for trying `loomiere serve` on a fresh machine, made
//! with ffmpeg (a 60 s test pattern with a running clock and beeps, keyframes every 2 s):
//! `sample.mp4` (H.264 + AAC, moov first), `sample.flv` (the same in FLV) and
//! `poster.jpg`. Each file is written to a temporary name in DIR and renamed into place;
//! existing files are kept.

use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The directory `loomiere serve` uses when given neither a directory nor a config.
pub const DEFAULT_DIR: &str = "demo-media";

/// One file to make: name, ffmpeg output arguments (format included, since the temporary
/// name has no meaningful extension).
const FILES: &[(&str, Input, &[&str])] = &[
    (
        "sample.mp4",
        Input::Pattern,
        &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "main",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
            "-b:v",
            "600k",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
        ],
    ),
    // The same streams in FLV: a stream copy of the MP4, not a second encode.
    ("sample.flv", Input::Remux("sample.mp4"), &["-map", "0", "-c", "copy", "-f", "flv"]),
    ("poster.jpg", Input::Pattern, &["-frames:v", "1", "-an", "-f", "mjpeg"]),
];

/// Where a sample file's streams come from.
enum Input {
    /// ffmpeg's test pattern with a running clock, and beeps.
    Pattern,
    /// An already made sample file in the same directory.
    Remux(&'static str),
}

/// Makes the sample media in `dir` (created if needed); returns the files now present.
pub fn make(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let mut made = Vec::new();
    for (name, input, args) in FILES {
        let path = dir.join(name);
        if path.is_file() {
            made.push(path);
            continue;
        }
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut ffmpeg = Command::new("ffmpeg");
        ffmpeg.args(["-hide_banner", "-nostdin", "-v", "error", "-y"]);
        match input {
            Input::Pattern => ffmpeg.args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=60"]).args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:beep_factor=4:sample_rate=44100:duration=60",
            ]),
            Input::Remux(from) => ffmpeg.arg("-i").arg(dir.join(from)),
        };
        let status = ffmpeg.args(*args).arg(&tmp).stdin(Stdio::null()).status();
        match status {
            Ok(s) if s.success() => {
                std::fs::rename(&tmp, &path)
                    .map_err(|e| Error::io(format!("cannot rename into {}", path.display()), e))?;
                made.push(path);
            }
            Ok(s) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io(
                    format!("ffmpeg failed making {name} ({s})"),
                    std::io::Error::other("ffmpeg failed"),
                ));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io("cannot run ffmpeg (apt-get install ffmpeg)", e));
            }
        }
    }
    Ok(made)
}
