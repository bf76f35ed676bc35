//! `inspect` of a fragmented MP4: what the MP4 report says of the file and its tracks, plus
//! the fragments (count, shortest and longest, and per fragment its place, time, duration,
//! samples and whether it starts with a keyframe), the `sidx`/`mfra` found and whether they
//! agree with the fragments. Track rows get their samples, durations and bitrates from the
//! fragment index (the moov of a fragmented file describes no samples).

use super::index::{FragmentIndex, MfraSummary, SidxSummary};
use super::seek::reference;
use crate::mp4::inspect::{Keyframes, TrackRow};
use serde::Serialize;

/// One fragment, as listed.
#[derive(Clone, Debug, Serialize)]
pub struct FragmentRow {
    pub moof_offset: u64,
    pub moof_size: u64,
    pub mdat_size: u64,
    pub sequence: u32,
    /// Decode time of the reference track's first sample, seconds.
    pub start: f64,
    /// The reference track's duration in this fragment, seconds.
    pub duration: f64,
    /// Samples of all tracks.
    pub samples: u64,
    /// The reference track's data starts with a keyframe.
    pub starts_with_keyframe: bool,
    /// Composition time of the reference track's first keyframe in the fragment, seconds.
    pub keyframe_time: Option<f64>,
}

/// The fragments of a file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Fragments {
    pub count: usize,
    pub min_duration: Option<f64>,
    pub max_duration: Option<f64>,
    pub samples: u64,
    pub sidx: Vec<SidxSummary>,
    pub mfra: Option<MfraSummary>,
    /// Where an incomplete last fragment (left out) starts, when the file was cut short.
    pub cut_short_at: Option<u64>,
    pub list: Vec<FragmentRow>,
}

/// The fragments summary and table of an index.
pub fn fragments(index: &FragmentIndex) -> Fragments {
    let r = reference(index);
    let mut out = Fragments {
        count: index.fragments.len(),
        samples: index.samples,
        sidx: index.sidx.clone(),
        mfra: index.mfra.clone(),
        cut_short_at: index.cut_short_at,
        ..Fragments::default()
    };
    for f in &index.fragments {
        let trafs = index.trafs_of(f);
        let rt = trafs.iter().find(|t| Some(t.track) == r);
        let ts = |k: usize| f64::from(index.tracks[k].timescale.max(1));
        let row = FragmentRow {
            moof_offset: f.moof.offset,
            moof_size: f.moof.size,
            mdat_size: f.mdat.size,
            sequence: f.sequence,
            start: rt.map_or(0.0, |t| t.dts as f64 / ts(t.track)),
            duration: rt.map_or(0.0, |t| t.duration as f64 / ts(t.track)),
            samples: trafs.iter().map(|t| t.samples).sum(),
            starts_with_keyframe: rt.is_some_and(|t| t.first_sync),
            keyframe_time: rt.and_then(|t| t.keyframe_cts.map(|k| k as f64 / ts(t.track))),
        };
        if rt.is_some() {
            out.min_duration = Some(out.min_duration.map_or(row.duration, |m: f64| m.min(row.duration)));
            out.max_duration = Some(out.max_duration.map_or(row.duration, |m: f64| m.max(row.duration)));
        }
        out.list.push(row);
    }
    out
}

/// Fills the track rows' sample counts, durations, bitrates and keyframes from the index.
pub fn fill_tracks(index: &FragmentIndex, rows: &mut [TrackRow]) {
    for (k, row) in rows.iter_mut().enumerate() {
        let Some(t) = index.tracks.get(k) else { continue };
        let ts = f64::from(t.timescale.max(1));
        let trafs = index.trafs.iter().filter(|x| x.track == k);
        let (mut samples, mut duration, mut bytes, mut keys) = (0u64, 0u64, 0u64, 0u64);
        for x in trafs {
            samples += x.samples;
            duration = duration.saturating_add(x.duration);
            bytes = bytes.saturating_add(x.bytes);
            keys += u64::from(x.keyframe_cts.is_some());
        }
        let secs = duration as f64 / ts;
        row.samples = samples;
        row.media_duration = secs;
        if row.duration == 0.0 {
            row.duration = secs;
        }
        row.bitrate = if secs > 0.0 { (bytes as f64 * 8.0 / secs) as u64 } else { 0 };
        if &t.handler == b"vide" {
            row.frame_rate = (secs > 0.0).then(|| samples as f64 / secs);
            row.keyframes = Some(Keyframes { count: keys, ..Keyframes::default() });
            row.all_sync = false;
            row.sync_samples = keys;
        } else {
            row.sync_samples = samples;
        }
    }
}
