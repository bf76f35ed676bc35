//! `inspect` for MP4: the box tree (type, offset, size, depth) and one summary row per track,
//! as a serialisable report with a table rendering. A damaged file yields the tree up to the
//! fault and an error naming its offset, never a panic.

use super::boxes::{children, fourcc_name, walk_top, BoxHeader};
use super::Movie;
use crate::media::Source;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;

/// One box of the tree.
#[derive(Clone, Debug, Serialize)]
pub struct BoxRow {
    #[serde(rename = "type")]
    pub kind: String,
    pub offset: u64,
    pub size: u64,
    pub depth: u32,
}

/// One track's summary.
#[derive(Clone, Debug, Serialize)]
pub struct TrackRow {
    pub id: u32,
    /// `video`, `audio`, or the handler code.
    pub kind: String,
    pub codec: String,
    pub timescale: u32,
    /// Seconds.
    pub duration: f64,
    pub samples: u64,
    /// Number of sync (key) samples.
    pub sync_samples: u64,
    /// True when the track has no `stss`: every sample is a sync sample.
    pub all_sync: bool,
    /// Average bits per second.
    pub bitrate: u64,
}

/// What `inspect` reports about an MP4 file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub boxes: Vec<BoxRow>,
    pub tracks: Vec<TrackRow>,
    /// Duration of the movie in seconds, when known.
    pub duration: Option<f64>,
    /// The first fault found, with its offset.
    pub error: Option<String>,
}

/// Boxes whose payload is a list of boxes.
const CONTAINERS: &[&[u8; 4]] = &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta", b"mvex"];
/// Rows listed at most (a hostile file could hold millions of tiny boxes).
const MAX_ROWS: usize = 100_000;

/// Inspects an MP4 source.
pub fn inspect(src: Source) -> Report {
    let mut report = Report::default();
    let (top, fault) = walk_top(&src.file, src.len, true);
    for h in &top.boxes {
        push(&mut report, h, 0, 0);
        if &h.kind == b"moov" {
            if let Ok(movie) = Movie::open(src.clone()) {
                tree(&mut report, &movie.moov, &movie.root, 1, h.offset);
            }
        }
    }
    if let Some(e) = fault {
        report.error = Some(e.to_string());
    }
    match Movie::open(src) {
        Ok(movie) => match movie.tracks() {
            Ok(tracks) => {
                report.duration = movie.duration(&tracks).ok();
                for t in &tracks {
                    let seconds = t.seconds();
                    report.tracks.push(TrackRow {
                        id: t.id,
                        kind: match &t.handler {
                            b"vide" => "video".into(),
                            b"soun" => "audio".into(),
                            h => fourcc_name(h),
                        },
                        codec: fourcc_name(&t.codec),
                        timescale: t.mdhd.timescale,
                        duration: seconds,
                        samples: t.samples,
                        sync_samples: t.stss.as_ref().map_or(t.samples, |s| s.len() as u64),
                        all_sync: t.stss.is_none(),
                        bitrate: if seconds > 0.0 { (t.total_bytes() as f64 * 8.0 / seconds) as u64 } else { 0 },
                    });
                }
            }
            Err(e) => report.error = report.error.take().or(Some(e.to_string())),
        },
        Err(e) => report.error = report.error.take().or(Some(e.to_string())),
    }
    report
}

fn row(h: &BoxHeader, depth: u32, base: u64) -> BoxRow {
    BoxRow { kind: h.name(), offset: h.offset + base, size: h.size, depth }
}

fn push(report: &mut Report, h: &BoxHeader, depth: u32, base: u64) {
    if report.boxes.len() < MAX_ROWS {
        report.boxes.push(row(h, depth, base));
    }
}

fn tree(report: &mut Report, moov: &[u8], parent: &BoxHeader, depth: u32, base: u64) {
    if depth > 16 {
        return;
    }
    for h in children(moov, parent.body_start(), parent.end()) {
        match h {
            Ok(h) => {
                push(report, &h, depth, base);
                if CONTAINERS.contains(&&h.kind) {
                    tree(report, moov, &h, depth + 1, base);
                }
            }
            Err(e) => {
                if report.error.is_none() {
                    report.error = Some(match e {
                        crate::Error::Corrupt { offset, what } => {
                            format!("corrupt file at offset {}: {what}", offset.saturating_add(base))
                        }
                        e => e.to_string(),
                    });
                }
                return;
            }
        }
    }
}

impl Report {
    /// The report as text tables for people.
    pub fn render(&self) -> String {
        let mut boxes = Table::new();
        boxes.load_preset(UTF8_FULL_CONDENSED).set_header(vec!["box", "offset", "size"]);
        for b in &self.boxes {
            boxes.add_row(vec![
                format!("{}{}", "  ".repeat(b.depth as usize), b.kind),
                b.offset.to_string(),
                b.size.to_string(),
            ]);
        }
        let mut tracks = Table::new();
        tracks.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "id",
            "kind",
            "codec",
            "timescale",
            "duration",
            "samples",
            "sync samples",
            "bitrate",
        ]);
        for t in &self.tracks {
            tracks.add_row(vec![
                t.id.to_string(),
                t.kind.clone(),
                t.codec.clone(),
                t.timescale.to_string(),
                format!("{:.3} s", t.duration),
                t.samples.to_string(),
                if t.all_sync { "all".into() } else { t.sync_samples.to_string() },
                format!("{} kb/s", t.bitrate / 1000),
            ]);
        }
        let mut s = format!("{boxes}\n{tracks}\n");
        if let Some(d) = self.duration {
            s.push_str(&format!("duration: {d:.3} s\n"));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("error: {e}\n"));
        }
        s
    }
}
