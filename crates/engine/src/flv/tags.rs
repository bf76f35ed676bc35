//! Reading FLV structure from a file with `pread`, never the whole file: the 9-byte file
//! header, 11-byte tag headers and the first bytes of each tag's data (codec, frame type,
//! packet type), each checked against the file length. A small read window (64 KiB) makes
//! walking millions of small tags cost one system call per window, not per tag, and keeps
//! memory bounded whatever the file size.
//!
//! Layout: `FLV` version flags(audio 4, video 1) header-size(4) · PreviousTagSize0(4) · then
//! tags: type(1) size(3) timestamp(3) timestamp-ext(1) stream-id(3) data(size) · PreviousTagSize(4).

use crate::source::Source;
use crate::{Error, Result};

/// Length of the FLV file header.
pub const HEADER_LEN: u64 = 9;
/// Length of a tag header.
pub const TAG_HEADER_LEN: u64 = 11;
/// Tag type: audio.
pub const AUDIO: u8 = 8;
/// Tag type: video.
pub const VIDEO: u8 = 9;
/// Tag type: script data (onMetaData…).
pub const SCRIPT: u8 = 18;
/// Read window size.
const WINDOW: usize = 64 * 1024;
/// How many data bytes of each tag the walker looks at.
pub const PEEK: usize = 5;

/// The FLV file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Header {
    pub version: u8,
    pub has_audio: bool,
    pub has_video: bool,
    /// The raw flags byte.
    pub flags: u8,
    /// Offset of PreviousTagSize0 (normally 9).
    pub data_offset: u64,
}

impl Header {
    /// Offset of the first tag.
    pub fn first_tag(&self) -> u64 {
        self.data_offset + 4
    }
}

/// One tag header plus the first few bytes of its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// File offset of the tag header.
    pub offset: u64,
    /// Tag type (low 5 bits of the first byte).
    pub kind: u8,
    /// The filter (encryption) bit.
    pub filtered: bool,
    /// Data size.
    pub size: u32,
    /// Timestamp in milliseconds (with the extension byte as the high 8 bits).
    pub timestamp: u32,
    pub stream_id: u32,
    /// First data bytes (up to [`PEEK`]; `head_len` of them are valid).
    pub head: [u8; PEEK],
    pub head_len: u8,
}

impl Tag {
    /// Offset of the tag's data.
    pub fn data_offset(&self) -> u64 {
        self.offset + TAG_HEADER_LEN
    }

    /// Total bytes of the tag including its trailing PreviousTagSize.
    pub fn total_len(&self) -> u64 {
        TAG_HEADER_LEN + u64::from(self.size) + 4
    }

    /// Offset just past the trailing PreviousTagSize: where the next tag starts.
    pub fn end(&self) -> u64 {
        self.offset + self.total_len()
    }

    fn byte(&self, i: usize) -> Option<u8> {
        (i < usize::from(self.head_len)).then(|| self.head[i])
    }

    /// Video codec id (2 Sorenson H.263, 3 screen, 4 VP6, 5 VP6 alpha, 6 screen 2, 7 AVC, 12 HEVC).
    pub fn video_codec(&self) -> Option<u8> {
        (self.kind == VIDEO).then(|| self.byte(0).map(|b| b & 0x0F)).flatten()
    }

    /// Video frame type (1 keyframe, 2 inter, 3 disposable, 4 generated key, 5 info/command).
    pub fn frame_type(&self) -> Option<u8> {
        (self.kind == VIDEO).then(|| self.byte(0).map(|b| b >> 4)).flatten()
    }

    /// Audio codec id (SoundFormat: 2 MP3, 10 AAC, …).
    pub fn audio_codec(&self) -> Option<u8> {
        (self.kind == AUDIO).then(|| self.byte(0).map(|b| b >> 4)).flatten()
    }

    /// AVC/HEVC packet type (0 sequence header, 1 NALUs, 2 end of sequence).
    fn avc_packet_type(&self) -> Option<u8> {
        matches!(self.video_codec(), Some(7 | 12)).then(|| self.byte(1)).flatten()
    }

    /// The AVC (or HEVC) decoder configuration tag.
    pub fn is_video_config(&self) -> bool {
        self.avc_packet_type() == Some(0)
    }

    /// The AVC (or HEVC) end-of-sequence tag.
    pub fn is_end_of_sequence(&self) -> bool {
        self.avc_packet_type() == Some(2)
    }

    /// The AAC AudioSpecificConfig tag.
    pub fn is_audio_config(&self) -> bool {
        self.audio_codec() == Some(10) && self.byte(1) == Some(0)
    }

    /// A video frame a decoder can start at: frame type 1, and for AVC/HEVC a picture
    /// (packet type 1), not the configuration record or the end-of-sequence marker.
    pub fn is_keyframe(&self) -> bool {
        self.frame_type() == Some(1) && matches!(self.avc_packet_type(), None | Some(1))
    }

    /// Timestamp in seconds.
    pub fn seconds(&self) -> f64 {
        f64::from(self.timestamp) / 1000.0
    }
}

/// Buffered positional reads over a file of known length.
pub struct Reader<'a> {
    file: &'a Source,
    len: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
}

impl<'a> Reader<'a> {
    /// A reader over the first `len` bytes of `file`.
    pub fn new(file: &'a Source, len: u64) -> Self {
        Reader { file, len, buf: Vec::new(), base: 0 }
    }

    /// The file length the reader works with.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Up to `n` (≤ 64 KiB) bytes at `offset`, fewer only at the end of the file.
    pub fn peek(&mut self, offset: u64, n: usize) -> Result<&[u8]> {
        let n = n.min(WINDOW);
        let want_end = offset.saturating_add(n as u64).min(self.len);
        if offset >= self.len {
            return Ok(&[]);
        }
        let have_end = self.base + self.buf.len() as u64;
        if offset < self.base || want_end > have_end {
            let take = (self.len - offset).min(WINDOW as u64) as usize;
            self.buf.resize(take, 0);
            let mut done = 0;
            while done < take {
                let got = self
                    .file
                    .read_at(&mut self.buf[done..], offset + done as u64)
                    .map_err(|e| Error::io(format!("cannot read at offset {}", offset + done as u64), e))?;
                if got == 0 {
                    // The file shrank under us: what we have is what there is.
                    self.buf.truncate(done);
                    self.len = offset + done as u64;
                    break;
                }
                done += got;
            }
            self.base = offset;
        }
        let from = (offset - self.base) as usize;
        let to = ((want_end - self.base) as usize).min(self.buf.len());
        Ok(self.buf.get(from..to).unwrap_or(&[]))
    }

    /// Exactly `n` bytes at `offset` into a new buffer (callers bound `n`).
    pub fn read_exact(&self, offset: u64, n: usize) -> Result<Vec<u8>> {
        let end = offset.checked_add(n as u64).filter(|&e| e <= self.len);
        if end.is_none() {
            return Err(Error::corrupt(offset, format!("{n} bytes needed, file ends at {}", self.len)));
        }
        let mut v = vec![0u8; n];
        self.file.read_exact_at(&mut v, offset).map_err(|e| Error::io(format!("cannot read at offset {offset}"), e))?;
        Ok(v)
    }

    /// The FLV file header.
    pub fn header(&mut self) -> Result<Header> {
        let len = self.len;
        let b = self.peek(0, 13)?;
        if b.len() < 9 || &b[..3] != b"FLV" {
            return Err(Error::corrupt(0, "not an FLV file (no FLV signature)"));
        }
        let data_offset = u64::from(u32::from_be_bytes([b[5], b[6], b[7], b[8]]));
        if data_offset < HEADER_LEN || data_offset.saturating_add(4) > len {
            return Err(Error::corrupt(5, format!("header size {data_offset} is impossible")));
        }
        Ok(Header { version: b[3], has_audio: b[4] & 4 != 0, has_video: b[4] & 1 != 0, flags: b[4], data_offset })
    }

    /// The tag at `offset`, `None` exactly at the end of the file. Fails when fewer than a
    /// whole tag (header, data, PreviousTagSize) remain, or the type is not audio, video or
    /// script.
    pub fn tag_at(&mut self, offset: u64) -> Result<Option<Tag>> {
        if offset == self.len {
            return Ok(None);
        }
        let len = self.len;
        let b = self.peek(offset, TAG_HEADER_LEN as usize + PEEK)?;
        if b.len() < TAG_HEADER_LEN as usize {
            return Err(Error::corrupt(offset, format!("truncated tag header ({} of 11 bytes)", b.len())));
        }
        let kind = b[0] & 0x1F;
        if !matches!(kind, AUDIO | VIDEO | SCRIPT) || b[0] & 0xC0 != 0 {
            return Err(Error::corrupt(offset, format!("unknown tag type 0x{:02x}", b[0])));
        }
        let size = u32::from_be_bytes([0, b[1], b[2], b[3]]);
        let timestamp = u32::from_be_bytes([b[7], b[4], b[5], b[6]]);
        let stream_id = u32::from_be_bytes([0, b[8], b[9], b[10]]);
        let head_len = (b.len() - TAG_HEADER_LEN as usize).min(size as usize).min(PEEK);
        let mut head = [0u8; PEEK];
        head[..head_len].copy_from_slice(&b[TAG_HEADER_LEN as usize..TAG_HEADER_LEN as usize + head_len]);
        let tag = Tag {
            offset,
            kind,
            filtered: b[0] & 0x20 != 0,
            size,
            timestamp,
            stream_id,
            head,
            head_len: head_len as u8,
        };
        if tag.end() > len {
            return Err(Error::corrupt(
                offset,
                format!("tag of {size} data bytes runs past the end of the file ({len} bytes)"),
            ));
        }
        Ok(Some(tag))
    }

    /// The PreviousTagSize field that ends `tag`.
    pub fn trailing_size(&mut self, tag: &Tag) -> Result<u32> {
        let at = tag.end() - 4;
        let b = self.peek(at, 4)?;
        if b.len() < 4 {
            return Err(Error::corrupt(at, "truncated PreviousTagSize"));
        }
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// True when a plausible tag starts at `offset`: a known type, stream id 0, fits in the
    /// file, and its trailing PreviousTagSize equals its length. Used to accept byte offsets
    /// from players.
    pub fn is_tag_start(&mut self, offset: u64) -> Result<Option<Tag>> {
        let Ok(Some(tag)) = self.tag_at(offset) else {
            return Ok(None);
        };
        if tag.stream_id != 0 {
            return Ok(None);
        }
        let ok = u64::from(self.trailing_size(&tag)?) == TAG_HEADER_LEN + u64::from(tag.size);
        Ok(ok.then_some(tag))
    }

    /// The data of `tag`, when it is at most `limit` bytes.
    pub fn data(&self, tag: &Tag, limit: usize) -> Result<Vec<u8>> {
        if tag.size as usize > limit {
            return Err(Error::Unsupported(format!(
                "tag at offset {} has {} data bytes, more than the {limit} loomiere reads",
                tag.offset, tag.size
            )));
        }
        self.read_exact(tag.data_offset(), tag.size as usize)
    }

    /// The last tag of the file, found through the final PreviousTagSize; `None` when that
    /// field does not lead to a valid tag.
    pub fn last_tag(&mut self, first_tag: u64) -> Result<Option<Tag>> {
        if self.len < first_tag.saturating_add(TAG_HEADER_LEN + 4) {
            return Ok(None);
        }
        let b = self.peek(self.len - 4, 4)?;
        if b.len() < 4 {
            return Ok(None);
        }
        let prev = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let Some(at) = (self.len - 4).checked_sub(prev).filter(|&a| a >= first_tag) else {
            return Ok(None);
        };
        Ok(self.is_tag_start(at)?.filter(|t| t.end() == self.len))
    }
}

/// Walks tags in file order from a starting offset. Yields each tag; a structural fault
/// ends the walk with one `Err` (the offset names where).
pub struct Walk<'r, 'f> {
    reader: &'r mut Reader<'f>,
    next: u64,
    done: bool,
    /// Tags whose trailing PreviousTagSize does not match their length (not fatal).
    pub size_mismatches: u64,
}

impl<'r, 'f> Walk<'r, 'f> {
    /// A walk starting with the tag at `offset`.
    pub fn new(reader: &'r mut Reader<'f>, offset: u64) -> Self {
        Walk { reader, next: offset, done: false, size_mismatches: 0 }
    }

    /// The offset the next tag would start at (after the last one yielded).
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The reader, for reading tag data mid-walk.
    pub fn reader(&mut self) -> &mut Reader<'f> {
        self.reader
    }
}

impl Iterator for Walk<'_, '_> {
    type Item = Result<Tag>;

    fn next(&mut self) -> Option<Result<Tag>> {
        if self.done {
            return None;
        }
        match self.reader.tag_at(self.next) {
            Ok(Some(tag)) => {
                match self.reader.trailing_size(&tag) {
                    Ok(s) if u64::from(s) != TAG_HEADER_LEN + u64::from(tag.size) => self.size_mismatches += 1,
                    Ok(_) => {}
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                self.next = tag.end();
                Some(Ok(tag))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Builds an 11-byte tag header.
pub fn tag_header(kind: u8, size: u32, timestamp: u32) -> [u8; 11] {
    let s = size.to_be_bytes();
    let t = timestamp.to_be_bytes();
    [kind, s[1], s[2], s[3], t[1], t[2], t[3], t[0], 0, 0, 0]
}

/// A whole tag (header, data, PreviousTagSize) as bytes.
pub fn tag_bytes(kind: u8, timestamp: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 15);
    v.extend_from_slice(&tag_header(kind, data.len() as u32, timestamp));
    v.extend_from_slice(data);
    v.extend_from_slice(&((data.len() as u32).wrapping_add(11)).to_be_bytes());
    v
}

/// The 13-byte start of an FLV file: header (version 1) and PreviousTagSize0.
pub fn file_header(has_audio: bool, has_video: bool) -> [u8; 13] {
    let flags = if has_audio { 4 } else { 0 } | if has_video { 1 } else { 0 };
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// Codec name for a video codec id.
pub fn video_codec_name(id: u8) -> &'static str {
    match id {
        1 => "JPEG",
        2 => "Sorenson H.263",
        3 => "Screen video",
        4 => "On2 VP6",
        5 => "On2 VP6 alpha",
        6 => "Screen video v2",
        7 => "H.264/AVC",
        12 => "H.265/HEVC",
        _ => "unknown",
    }
}

/// Codec name for an audio SoundFormat.
pub fn audio_codec_name(id: u8) -> &'static str {
    match id {
        0 => "PCM (platform endian)",
        1 => "ADPCM",
        2 => "MP3",
        3 => "PCM (little endian)",
        4 => "Nellymoser 16 kHz",
        5 => "Nellymoser 8 kHz",
        6 => "Nellymoser",
        7 => "G.711 A-law",
        8 => "G.711 mu-law",
        10 => "AAC",
        11 => "Speex",
        14 => "MP3 8 kHz",
        15 => "device specific",
        _ => "unknown",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A source over a temporary file holding `bytes` (unlinked now, gone when dropped).
    pub(crate) fn file_with(bytes: &[u8]) -> Source {
        let path = std::env::temp_dir().join(format!(
            "loomiere-flv-{}-{:?}-{}",
            std::process::id(),
            std::thread::current().id(),
            bytes.len()
        ));
        let mut f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        f.write_all(bytes).unwrap();
        std::fs::remove_file(&path).unwrap();
        Source::nameless(std::sync::Arc::new(f), bytes.len() as u64)
    }

    /// A tiny FLV: header, an AVC config, a keyframe, an audio frame.
    pub(crate) fn tiny() -> Vec<u8> {
        let mut v = file_header(true, true).to_vec();
        v.extend(tag_bytes(VIDEO, 0, &[0x17, 0, 0, 0, 0, 1, 2]));
        v.extend(tag_bytes(VIDEO, 0, &[0x17, 1, 0, 0, 0, 9, 9, 9]));
        v.extend(tag_bytes(AUDIO, 10, &[0xAF, 1, 5, 5]));
        v.extend(tag_bytes(VIDEO, 40, &[0x27, 1, 0, 0, 0, 8]));
        v
    }

    #[test]
    fn walks_a_tiny_file() {
        let bytes = tiny();
        let f = file_with(&bytes);
        let mut r = Reader::new(&f, bytes.len() as u64);
        let h = r.header().unwrap();
        assert!(h.has_audio && h.has_video);
        let tags: Vec<Tag> = Walk::new(&mut r, h.first_tag()).collect::<Result<_>>().unwrap();
        assert_eq!(tags.len(), 4);
        assert!(tags[0].is_video_config() && !tags[0].is_keyframe());
        assert!(tags[1].is_keyframe());
        assert_eq!(tags[2].audio_codec(), Some(10));
        assert!(!tags[3].is_keyframe());
        assert_eq!(tags[3].timestamp, 40);
        assert_eq!(r.last_tag(h.first_tag()).unwrap().unwrap().offset, tags[3].offset);
        assert!(r.is_tag_start(tags[2].offset).unwrap().is_some());
        assert!(r.is_tag_start(tags[2].offset + 1).unwrap().is_none());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = tiny();
        for cut in 0..bytes.len() {
            let f = file_with(&bytes[..cut]);
            let mut r = Reader::new(&f, cut as u64);
            let Ok(h) = r.header() else { continue };
            let res: Result<Vec<Tag>> = Walk::new(&mut r, h.first_tag()).collect();
            let whole_tags = [13, 13 + 22, 13 + 22 + 23, 13 + 22 + 23 + 19];
            assert_eq!(res.is_ok(), whole_tags.contains(&cut), "cut at {cut}");
            let _ = r.last_tag(h.first_tag());
        }
    }

    #[test]
    fn lying_sizes_and_types_are_corrupt() {
        let mut bytes = tiny();
        bytes[14] = 0xFF; // first tag size 0xFF0000+
        let f = file_with(&bytes);
        let mut r = Reader::new(&f, bytes.len() as u64);
        let err = Walk::new(&mut r, 13).next().unwrap().unwrap_err();
        assert!(matches!(err, Error::Corrupt { offset: 13, .. }), "{err}");
        let mut bytes = tiny();
        bytes[13] = 0x07;
        let f = file_with(&bytes);
        let mut r = Reader::new(&f, bytes.len() as u64);
        assert!(Walk::new(&mut r, 13).next().unwrap().is_err());
        // Header size pointing past the end.
        let mut bytes = tiny();
        bytes[5] = 0xFF;
        let f = file_with(&bytes);
        assert!(Reader::new(&f, bytes.len() as u64).header().is_err());
    }
}
