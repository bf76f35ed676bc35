//! The FLV inspection report behind `loomiere inspect FILE.flv`: header flags, tag counts,
//! keyframe count and spacing (and on request every keyframe's time and offset), duration, codecs and the `onMetaData` object, as a
//! `Serialize` struct (for `--json`) with a table rendering (comfy-table). A damaged file
//! is reported up to the fault, whose offset and reason are in `fault`.

use super::amf0::Value;
use super::scan::{scan, Scan};
use super::tags::{audio_codec_name, video_codec_name, Header, Reader};
use crate::media::Source;
use crate::Result;
use serde::Serialize;

/// Tag counts by type.
#[derive(Debug, Serialize)]
pub struct TagCounts {
    pub audio: u64,
    pub video: u64,
    pub script: u64,
    pub total: u64,
}

/// Keyframes (distinct timestamps) and their spacing in seconds.
#[derive(Debug, Serialize)]
pub struct Keyframes {
    pub count: usize,
    pub min_spacing: Option<f64>,
    pub avg_spacing: Option<f64>,
    pub max_spacing: Option<f64>,
}

/// One picture keyframe: its time (seconds) and the offset of its tag.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct KeyframeAt {
    pub time: f64,
    pub offset: u64,
}

/// The video stream.
#[derive(Debug, Serialize)]
pub struct Video {
    pub codec_id: Option<u8>,
    pub codec: &'static str,
    pub frames: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub bytes: u64,
    pub has_config: bool,
}

/// The audio stream.
#[derive(Debug, Serialize)]
pub struct Audio {
    pub codec_id: Option<u8>,
    pub codec: &'static str,
    pub frames: u64,
    /// From the tag flags (AAC always says 44100: the real rate is in its config).
    pub sample_rate: f64,
    pub sample_bits: u8,
    pub stereo: bool,
    pub bytes: u64,
    pub has_config: bool,
}

/// Everything `inspect` shows about an FLV file.
#[derive(Debug, Serialize)]
pub struct Report {
    pub size: u64,
    pub header: Option<Header>,
    pub tags: TagCounts,
    /// Seconds, from the streams.
    pub duration: f64,
    pub video: Option<Video>,
    pub audio: Option<Audio>,
    pub keyframes: Keyframes,
    /// Every picture keyframe, with `--keyframes` ([`inspect_with`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyframe_list: Option<Vec<KeyframeAt>>,
    /// Tags whose trailing PreviousTagSize is wrong.
    pub previous_size_mismatches: u64,
    /// The first `onMetaData` value.
    pub metadata: Option<Value>,
    pub metadata_error: Option<String>,
    /// Offset of the fault that ended the walk early.
    pub fault_offset: Option<u64>,
    /// The fault, as text.
    pub fault: Option<String>,
}

/// Inspects an open FLV source. Fails only when it is not an FLV at all or cannot be read;
/// a damaged tag stream is reported in [`Report::fault`].
pub fn inspect(src: &Source) -> Result<Report> {
    inspect_with(src, false)
}

/// [`inspect`], and with `list` every picture keyframe's time and tag offset.
pub fn inspect_with(src: &Source, list: bool) -> Result<Report> {
    let mut reader = Reader::new(src, src.len);
    let s = scan(&mut reader, |_| {})?;
    let mut r = report(&s);
    if list {
        r.keyframe_list = Some(
            s.keyframes
                .iter()
                .map(|k| KeyframeAt { time: f64::from(k.timestamp) / 1000.0, offset: k.offset })
                .collect(),
        );
    }
    Ok(r)
}

fn report(s: &Scan) -> Report {
    let gaps: Vec<f64> =
        s.keyframes.windows(2).map(|w| f64::from(w[1].timestamp.saturating_sub(w[0].timestamp)) / 1000.0).collect();
    let keyframes = Keyframes {
        count: s.keyframes.len(),
        min_spacing: gaps.iter().copied().reduce(f64::min),
        avg_spacing: (!gaps.is_empty()).then(|| gaps.iter().sum::<f64>() / gaps.len() as f64),
        max_spacing: gaps.iter().copied().reduce(f64::max),
    };
    let video = (s.video_tags > 0).then(|| Video {
        codec_id: s.video.codec,
        codec: s.video.codec.map(video_codec_name).unwrap_or("none"),
        frames: s.video.frames,
        width: s.dims.map(|d| d.0),
        height: s.dims.map(|d| d.1),
        bytes: s.video.bytes,
        has_config: s.video_config.is_some(),
    });
    let f = s.audio.flags;
    let audio = (s.audio_tags > 0).then(|| Audio {
        codec_id: s.audio.codec,
        codec: s.audio.codec.map(audio_codec_name).unwrap_or("none"),
        frames: s.audio.frames,
        sample_rate: [5512.5, 11025.0, 22050.0, 44100.0][usize::from((f >> 2) & 3)],
        sample_bits: if f & 2 != 0 { 16 } else { 8 },
        stereo: f & 1 != 0,
        bytes: s.audio.bytes,
        has_config: s.audio_config.is_some(),
    });
    let (fault_offset, fault) = match &s.fault {
        Some(e @ crate::Error::Corrupt { offset, .. }) => (Some(*offset), Some(e.to_string())),
        Some(e) => (None, Some(e.to_string())),
        None => (None, None),
    };
    Report {
        size: s.len,
        header: s.header,
        tags: TagCounts {
            audio: s.audio_tags,
            video: s.video_tags,
            script: s.script_tags,
            total: s.audio_tags + s.video_tags + s.script_tags,
        },
        duration: (s.duration() * 1000.0).round() / 1000.0,
        video,
        audio,
        keyframes,
        keyframe_list: None,
        previous_size_mismatches: s.size_mismatches,
        metadata: s.metadata.as_ref().map(|(_, v)| v.clone()),
        metadata_error: s.metadata_error.clone(),
        fault_offset,
        fault,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tags::tests::{file_with, tiny};
    use super::*;

    #[test]
    fn reports_tiny_and_truncated() {
        let bytes = tiny();
        let src = file_with(&bytes);
        let r = inspect(&src).unwrap();
        assert_eq!(r.tags.total, 4);
        assert_eq!(r.keyframes.count, 1);
        assert!(r.video.as_ref().is_some_and(|v| v.codec.contains("H.264/AVC")));
        assert!(serde_json::to_string(&r).unwrap().contains("\"video\""));
        let src = file_with(&bytes[..60]);
        let r = inspect(&src).unwrap();
        assert_eq!(r.fault_offset, Some(58));
        assert!(r.fault.is_some());
    }
}
