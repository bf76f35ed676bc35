//! The segment layout of a package as `inspect --segments` shows it: per segment its start
//! and duration on the output timeline (the reference track's), and per track its samples,
//! bytes and decode time span, for JSON and for the binary's tables.

use super::Package;
use serde::Serialize;

/// One track's part of one segment.
#[derive(Clone, Debug, Serialize)]
pub struct Part {
    /// `v1`, `a2`, `s3`: the track's directory in the URLs.
    pub track: String,
    pub first_sample: u64,
    pub samples: u64,
    pub bytes: u64,
    /// Seconds.
    pub duration: f64,
}

/// One segment.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// From 1, as in the URLs.
    pub number: usize,
    /// Seconds from the output's first frame (reference track).
    pub start: f64,
    /// Seconds (reference track).
    pub duration: f64,
    pub parts: Vec<Part>,
}

/// The layout of a package.
#[derive(Clone, Debug, Serialize)]
pub struct Layout {
    /// Target segment duration in seconds.
    pub target: f64,
    /// Tracks left out, with the reason.
    pub left_out: Vec<String>,
    pub segments: Vec<Row>,
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

impl Layout {
    /// The layout of `package`.
    pub fn of(package: &Package) -> Layout {
        let index = &package.index;
        let mut segments = Vec::with_capacity(index.count);
        for n in 0..index.count {
            let (start, end) = index.span(n).unwrap_or((0.0, 0.0));
            let duration = end - start;
            let parts = index
                .tracks
                .iter()
                .enumerate()
                .filter_map(|(k, t)| {
                    let c = index.cell(n, k)?;
                    Some(Part {
                        track: format!("{}{}", t.media.letter(), t.id),
                        first_sample: c.s0,
                        samples: c.s1.saturating_sub(c.s0),
                        bytes: c.bytes,
                        duration: round6(c.duration as f64 / f64::from(t.timescale.max(1))),
                    })
                })
                .collect();
            segments.push(Row { number: n + 1, start: round6(start), duration: round6(duration), parts });
        }
        Layout { target: index.target, left_out: index.skipped.clone(), segments }
    }
}
