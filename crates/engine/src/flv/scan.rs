//! One full walk over an FLV file collecting what the indexer and the inspector need: tag
//! counts and byte totals, keyframes (one per distinct timestamp, capped), the entries of an
//! `onMetaData` keyframe index in flvmeta's convention, codecs, the sequence-header tags, the
//! existing `onMetaData`, picture size and the last timestamps.
//! Memory is the read window plus the keyframe list (capped at [`MAX_KEYFRAMES`]); a
//! structural fault stops the walk and is kept in [`Scan::fault`] with everything found
//! before it.

use super::amf0::{self, Value};
use super::dims;
use super::tags::{Header, Reader, Tag, Walk, AUDIO, SCRIPT, VIDEO};
use crate::{Error, Result};

/// Most keyframes indexed (≈ 18 MB of metadata; 2 s GOPs make this 580 hours).
pub const MAX_KEYFRAMES: usize = 1 << 20;
/// Largest script tag parsed for `onMetaData`.
pub const MAX_METADATA: usize = 32 << 20;
/// Most `onMetaData` tags remembered (the indexer drops them all).
pub const MAX_METADATA_TAGS: usize = 64;

/// A keyframe: timestamp (ms) and tag offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keyframe {
    pub timestamp: u32,
    pub offset: u64,
}

/// Per-stream facts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stream {
    /// Codec id of the first frame.
    pub codec: Option<u8>,
    /// Frames (tags that carry media, not configuration or end-of-sequence).
    pub frames: u64,
    /// Timestamps of the first and last frame, ms.
    pub first_ts: u32,
    pub last_ts: u32,
    /// Data bytes of all tags of this kind.
    pub bytes: u64,
    /// Bytes of all tags of this kind with their 11-byte headers (yamdi's `videosize`).
    pub tag_bytes: u64,
    /// Codec payload bytes: the data of every non-empty tag minus its one flags byte (what
    /// flvmeta's and yamdi's data rates count).
    pub payload: u64,
    /// Timestamp of the first tag of this kind, configuration included, ms.
    pub first_tag_ts: Option<u32>,
    /// The first data byte of the first frame (audio: rate/size/channels flags).
    pub flags: u8,
}

impl Stream {
    fn add(&mut self, tag: &Tag, codec: Option<u8>, is_frame: bool) {
        self.bytes += u64::from(tag.size);
        self.tag_bytes += u64::from(tag.size) + super::tags::TAG_HEADER_LEN;
        self.payload += u64::from(tag.size.saturating_sub(1));
        self.first_tag_ts.get_or_insert(tag.timestamp);
        if !is_frame {
            return;
        }
        if self.frames == 0 {
            self.codec = codec;
            self.first_ts = tag.timestamp;
            self.flags = tag.head[0];
        }
        self.frames += 1;
        self.last_ts = self.last_ts.max(tag.timestamp);
    }

    /// Where the stream ends: last timestamp plus one average frame interval, in seconds.
    pub fn end_seconds(&self) -> Option<f64> {
        if self.frames == 0 {
            return None;
        }
        let span = f64::from(self.last_ts.saturating_sub(self.first_ts));
        let step = if self.frames > 1 { span / (self.frames - 1) as f64 } else { 0.0 };
        Some((f64::from(self.last_ts) + step) / 1000.0)
    }
}

/// What one walk found.
#[derive(Debug, Default)]
pub struct Scan {
    pub len: u64,
    pub header: Option<Header>,
    /// Offset just past the last complete tag.
    pub end: u64,
    /// The fault that stopped the walk early, if any.
    pub fault: Option<Error>,
    pub video: Stream,
    pub audio: Stream,
    pub script_tags: u64,
    pub video_tags: u64,
    pub audio_tags: u64,
    /// Keyframes at distinct timestamps (the first tag at each), in file order.
    pub keyframes: Vec<Keyframe>,
    /// All keyframe tags, duplicates included.
    pub keyframe_tags: u64,
    /// The entries of an `onMetaData` keyframe index as flvmeta writes and checks them: every
    /// non-empty video tag flagged as a keyframe (frame type 1) whose timestamp differs from
    /// the previous entry's, so the AVC configuration stands for time 0 and the end-of-sequence
    /// tag ends the list, as in yamdi's and flvmeta's indexes.
    pub index: Vec<Keyframe>,
    /// True when the last video tag is flagged as a keyframe (flvmeta's `canSeekToEnd`).
    pub last_video_is_key: bool,
    /// Bytes (headers included) of the script tags not in `metadata_tags`, i.e. those an
    /// indexed output keeps.
    pub other_script_bytes: u64,
    /// True when more keyframes existed than [`MAX_KEYFRAMES`].
    pub keyframes_capped: bool,
    /// The first `onMetaData` tag and its value.
    pub metadata: Option<(Tag, Value)>,
    /// Every `onMetaData` tag (capped), including the first.
    pub metadata_tags: Vec<Tag>,
    /// Why the `onMetaData` could not be read, when it could not.
    pub metadata_error: Option<String>,
    pub video_config: Option<Tag>,
    pub audio_config: Option<Tag>,
    /// Width and height from the bitstream.
    pub dims: Option<(u32, u32)>,
    /// Tags whose trailing PreviousTagSize is wrong.
    pub size_mismatches: u64,
    /// Largest timestamp of any tag, ms.
    pub last_ts: u32,
}

impl Scan {
    /// Duration in seconds: the later stream end, from the bitstream.
    pub fn duration(&self) -> f64 {
        let v = self.video.end_seconds().unwrap_or(0.0);
        let a = self.audio.end_seconds().unwrap_or(0.0);
        v.max(a).max(f64::from(self.last_ts) / 1000.0)
    }

    /// True when the file has video frames.
    pub fn has_video(&self) -> bool {
        self.video.frames > 0
    }

    /// True when the file has audio frames.
    pub fn has_audio(&self) -> bool {
        self.audio.frames > 0
    }
}

/// True when a video tag is a picture (not configuration, end of sequence or command frame).
pub fn is_video_frame(tag: &Tag) -> bool {
    tag.kind == VIDEO
        && tag.frame_type() != Some(5)
        && !(matches!(tag.video_codec(), Some(7 | 12)) && tag.head_len >= 2 && tag.head[1] != 1)
}

/// Walks the whole file. Only header and I/O errors are returned; structural faults in the
/// tag stream end the walk and land in [`Scan::fault`].
pub fn scan(reader: &mut Reader<'_>, mut progress: impl FnMut(u64)) -> Result<Scan> {
    let mut s = Scan { len: reader.len(), ..Scan::default() };
    let header = reader.header()?;
    s.header = Some(header);
    s.end = header.first_tag();
    let mut walk = Walk::new(reader, header.first_tag());
    let mut since_progress = 0u64;
    while let Some(item) = walk.next() {
        let tag = match item {
            Ok(t) => t,
            Err(e @ Error::Io { .. }) => return Err(e),
            Err(e) => {
                s.fault = Some(e);
                break;
            }
        };
        s.end = tag.end();
        since_progress += 1;
        if since_progress >= 4096 {
            since_progress = 0;
            progress(tag.end());
        }
        match tag.kind {
            VIDEO => {
                s.video_tags += 1;
                s.last_ts = s.last_ts.max(tag.timestamp);
                let frame = is_video_frame(&tag);
                s.video.add(&tag, tag.video_codec(), frame);
                if tag.is_video_config() && s.video_config.is_none() {
                    s.video_config = Some(tag);
                    if s.dims.is_none() && tag.video_codec() == Some(7) {
                        let data = walk.reader().data(&tag, 64 * 1024).ok();
                        s.dims = data.as_deref().and_then(|d| d.get(5..)).and_then(dims::from_avc_config);
                    }
                }
                if s.dims.is_none() && frame && tag.video_codec() == Some(2) {
                    let data = walk.reader().read_exact(tag.data_offset(), (tag.size as usize).min(16)).ok();
                    s.dims = data.as_deref().and_then(|d| d.get(1..)).and_then(dims::from_sorenson);
                }
                s.last_video_is_key = tag.frame_type() == Some(1);
                let new_time = s.index.last().is_none_or(|k| k.timestamp != tag.timestamp);
                if tag.frame_type() == Some(1) && tag.size > 0 && new_time {
                    if s.index.len() < MAX_KEYFRAMES {
                        s.index.push(Keyframe { timestamp: tag.timestamp, offset: tag.offset });
                    } else {
                        s.keyframes_capped = true;
                    }
                }
                if tag.is_keyframe() {
                    s.keyframe_tags += 1;
                    let dup = s.keyframes.last().is_some_and(|k| k.timestamp == tag.timestamp);
                    if !dup {
                        if s.keyframes.len() < MAX_KEYFRAMES {
                            s.keyframes.push(super::scan::Keyframe { timestamp: tag.timestamp, offset: tag.offset });
                        } else {
                            s.keyframes_capped = true;
                        }
                    }
                }
            }
            AUDIO => {
                s.audio_tags += 1;
                s.last_ts = s.last_ts.max(tag.timestamp);
                let config = tag.is_audio_config();
                if config && s.audio_config.is_none() {
                    s.audio_config = Some(tag);
                }
                s.audio.add(&tag, tag.audio_codec(), !config);
            }
            SCRIPT => {
                s.script_tags += 1;
                let on_metadata = is_on_metadata(walk.reader(), &tag)?;
                if on_metadata && s.metadata_tags.len() < MAX_METADATA_TAGS {
                    s.metadata_tags.push(tag);
                } else {
                    s.other_script_bytes += u64::from(tag.size) + super::tags::TAG_HEADER_LEN;
                }
                if on_metadata && s.metadata.is_none() && s.metadata_error.is_none() {
                    match read_metadata(walk.reader(), &tag) {
                        Ok(v) => s.metadata = Some((tag, v)),
                        Err(e) => s.metadata_error = Some(e.to_string()),
                    }
                }
            }
            _ => {}
        }
    }
    s.size_mismatches = walk.size_mismatches;
    progress(s.end);
    Ok(s)
}

/// The name that marks a metadata script tag, as AMF0: string marker, length 10, "onMetaData".
const ON_METADATA: &[u8] = b"\x02\x00\x0aonMetaData";

/// True when a script tag's first value is the string `onMetaData`.
pub fn is_on_metadata(reader: &mut Reader<'_>, tag: &Tag) -> Result<bool> {
    if tag.kind != SCRIPT || (tag.size as usize) < ON_METADATA.len() {
        return Ok(false);
    }
    Ok(reader.peek(tag.data_offset(), ON_METADATA.len())? == ON_METADATA)
}

/// Reads and decodes the `onMetaData` argument of a script tag.
pub fn read_metadata(reader: &Reader<'_>, tag: &Tag) -> Result<Value> {
    let data = reader.data(tag, MAX_METADATA)?;
    let (_, v) = amf0::decode_script(&data, tag.data_offset())?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::super::tags::tests::{file_with, tiny};
    use super::*;

    #[test]
    fn scans_tiny() {
        let bytes = tiny();
        let f = file_with(&bytes);
        let mut r = Reader::new(&f, bytes.len() as u64);
        let s = scan(&mut r, |_| {}).unwrap();
        assert!(s.fault.is_none());
        assert_eq!((s.video_tags, s.audio_tags), (3, 1));
        assert_eq!(s.keyframes, vec![Keyframe { timestamp: 0, offset: 35 }]);
        // The index entry at time 0 is the AVC configuration, flagged as a keyframe.
        assert_eq!(s.index, vec![Keyframe { timestamp: 0, offset: 13 }]);
        assert!(!s.last_video_is_key);
        assert_eq!(s.video.payload, 6 + 7 + 5);
        assert_eq!(s.video.frames, 2);
        assert!(s.video_config.is_some());
        assert_eq!(s.end, bytes.len() as u64);
    }

    #[test]
    fn truncated_scan_keeps_what_it_found() {
        let bytes = tiny();
        let f = file_with(&bytes[..bytes.len() - 3]);
        let mut r = Reader::new(&f, bytes.len() as u64 - 3);
        let s = scan(&mut r, |_| {}).unwrap();
        assert!(matches!(s.fault, Some(Error::Corrupt { offset: 77, .. })), "{:?}", s.fault);
        assert_eq!(s.video_tags, 2);
    }
}
