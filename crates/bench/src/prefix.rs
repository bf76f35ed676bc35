//! The media layout the bench reads as bytes go by: where a response's *prefix* ends (MP4:
//! every top-level box before the first `mdat` payload or `moof`; FLV: the file header and
//! the script tags before the first audio/video tag) and, on the way, the duration the index
//! states (MP4 `mvhd`; FLV `onMetaData.duration`) and an FLV's keyframe list.
//!
//! A [`Scanner`] is a pure state machine fed in stream order: it says how many bytes it must
//! see ([`Want::Copy`]) and how many it may let pass unseen ([`Want::Skip`]), so a viewer can
//! drop a 4 MB `moov` in the kernel and still know where the media starts, and the duration
//! probe can walk a file with a few small `Range` requests. Every length read from the input
//! is checked; copies are bounded (an `mvhd` of at most 128 bytes, an FLV script tag of at
//! most [`MAX_SCRIPT`] and only when probing) and the walk gives up after [`MAX_BOXES`].

use loomiere_engine::flv::amf0;

/// Largest FLV script tag the probe reads to learn the duration and keyframes.
pub const MAX_SCRIPT: usize = 8 << 20;
/// Most boxes or tags walked before the scanner gives up and calls the prefix ended.
pub const MAX_BOXES: u32 = 1024;
/// Most keyframes kept from an FLV's metadata.
pub const MAX_KEYFRAMES: usize = 1 << 20;
/// Largest `mvhd` read (version 1 is 120 bytes with its header).
const MAX_MVHD: u64 = 128;
/// Box types an MP4 file or answer may begin with.
const FIRST_BOXES: &[&[u8; 4]] =
    &[b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin", b"uuid", b"sidx", b"moof"];

/// What the scanner needs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// The next `n` bytes must be handed to [`Scanner::copied`] (fewer at a time is fine).
    Copy(usize),
    /// The next `n` bytes may pass unseen; report them with [`Scanner::skipped`].
    Skip(u64),
    /// The prefix has ended (or the scan gave up); nothing more to see.
    Done,
}

/// The container the scanner recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    Mp4,
    Flv,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// The first 8 bytes: an FLV signature or an MP4 box header.
    Sniff,
    /// A top-level MP4 box header (8 bytes, 16 with a 64-bit size).
    Mp4Box,
    /// A child header inside `moov`, which ends at this offset.
    Mp4Child {
        moov_end: u64,
    },
    /// The body of `mvhd`.
    Mp4Mvhd {
        moov_end: u64,
    },
    /// The 9-byte FLV header.
    FlvHeader,
    /// An 11-byte FLV tag header.
    FlvTag,
    /// An FLV script tag's data (probe only).
    FlvScript,
    Done,
}

/// A streaming prefix scanner; see the module comment.
#[derive(Clone, Debug)]
pub struct Scanner {
    /// Probing a whole file: walk past `mdat` to a `moov` at the end, read FLV metadata, and
    /// stop as soon as a duration is known.
    probe: bool,
    /// The length of the stream, when known: a box reaching past it ends the scan.
    limit: Option<u64>,
    state: State,
    /// Bytes seen or skipped so far.
    pos: u64,
    /// Bytes collected for the current step.
    acc: Vec<u8>,
    /// How many bytes the current step needs in `acc`.
    need: usize,
    /// Bytes to let pass before the current step.
    skip: u64,
    walked: u32,
    container: Option<Container>,
    prefix: Option<u64>,
    duration: Option<f64>,
    keyframes: Option<Vec<(f64, u64)>>,
}

impl Scanner {
    /// A scanner for a response body (`probe = false`) or for walking a whole file with
    /// ranged reads (`probe = true`); `limit` is the stream's length when known.
    pub fn new(probe: bool, limit: Option<u64>) -> Scanner {
        Scanner {
            probe,
            limit,
            state: State::Sniff,
            pos: 0,
            acc: Vec::new(),
            need: 8,
            skip: 0,
            walked: 0,
            container: None,
            prefix: None,
            duration: None,
            keyframes: None,
        }
    }

    /// What to do with the next bytes.
    pub fn want(&self) -> Want {
        if self.state == State::Done {
            Want::Done
        } else if self.skip > 0 {
            Want::Skip(self.skip)
        } else {
            Want::Copy(self.need - self.acc.len())
        }
    }

    /// Offset of the next byte the scanner expects.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// `n` bytes went by unseen (at most what [`Want::Skip`] allowed).
    pub fn skipped(&mut self, n: u64) {
        let n = n.min(self.skip);
        self.skip -= n;
        self.pos = self.pos.saturating_add(n);
    }

    /// The next bytes of the stream (at most what [`Want::Copy`] asked for; the rest is
    /// ignored).
    pub fn copied(&mut self, bytes: &[u8]) {
        if self.state == State::Done || self.skip > 0 {
            return;
        }
        let take = bytes.len().min(self.need - self.acc.len());
        self.acc.extend_from_slice(&bytes[..take]);
        self.pos = self.pos.saturating_add(take as u64);
        if self.acc.len() == self.need {
            self.step();
        }
    }

    /// The stream ended (or a ranged read found nothing more): the prefix ends here.
    pub fn end(&mut self) {
        self.finish(None);
    }

    /// True once the scan is over.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Where the prefix ends (the first media byte), once done; before that, `None`.
    pub fn prefix_len(&self) -> Option<u64> {
        if self.is_done() {
            self.prefix
        } else {
            None
        }
    }

    /// The container recognised, if any.
    pub fn container(&self) -> Option<Container> {
        self.container
    }

    /// The duration the index states, in seconds (finite, > 0).
    pub fn duration(&self) -> Option<f64> {
        self.duration
    }

    /// An FLV's keyframes from `onMetaData` as (seconds, byte offset), when sane.
    pub fn take_keyframes(&mut self) -> Option<Vec<(f64, u64)>> {
        self.keyframes.take()
    }

    fn finish(&mut self, prefix: Option<u64>) {
        if self.state != State::Done {
            self.prefix = Some(prefix.unwrap_or(self.pos));
            self.state = State::Done;
            self.acc = Vec::new();
            self.skip = 0;
        }
    }

    /// Sets up the next step: `need` bytes in a fresh accumulator.
    fn expect(&mut self, state: State, need: usize) {
        self.state = state;
        self.acc.clear();
        self.need = need;
    }

    fn step(&mut self) {
        self.walked += 1;
        if self.walked > MAX_BOXES {
            return self.finish(None);
        }
        match self.state {
            State::Sniff => {
                if self.acc.starts_with(b"FLV") {
                    self.container = Some(Container::Flv);
                    self.state = State::FlvHeader;
                    self.need = 9;
                } else {
                    self.state = State::Mp4Box;
                    self.mp4_box();
                }
            }
            State::Mp4Box => self.mp4_box(),
            State::Mp4Child { moov_end } => self.mp4_child(moov_end),
            State::Mp4Mvhd { moov_end } => {
                self.duration = mvhd_duration(&self.acc);
                if self.probe && self.duration.is_some() {
                    return self.finish(None);
                }
                self.skip = moov_end.saturating_sub(self.pos);
                self.expect(State::Mp4Box, 8);
            }
            State::FlvHeader => {
                let size = u64::from(u32::from_be_bytes([self.acc[5], self.acc[6], self.acc[7], self.acc[8]]));
                if !(9..=1024).contains(&size) {
                    return self.finish(Some(0));
                }
                // The rest of the header, then PreviousTagSize0.
                self.skip = size - 9 + 4;
                self.expect(State::FlvTag, 11);
            }
            State::FlvTag => {
                let start = self.pos - 11;
                let kind = self.acc[0] & 0x1f;
                let size = u32::from_be_bytes([0, self.acc[1], self.acc[2], self.acc[3]]) as usize;
                if kind != 18 {
                    // Audio, video (or garbage): the media starts with this tag.
                    return self.finish(Some(start));
                }
                if self.probe && self.keyframes.is_none() && self.duration.is_none() && size <= MAX_SCRIPT {
                    self.expect(State::FlvScript, size);
                    if size == 0 {
                        self.step();
                    }
                } else {
                    self.skip = size as u64 + 4;
                    self.expect(State::FlvTag, 11);
                }
            }
            State::FlvScript => {
                if let Ok((name, meta)) = amf0::decode_script(&self.acc, self.pos - self.acc.len() as u64) {
                    if name == "onMetaData" {
                        self.duration = meta.get("duration").and_then(amf0::Value::as_f64).filter(|d| sane(*d));
                        self.keyframes = flv_keyframes(&meta);
                    }
                }
                if self.probe && self.duration.is_some() {
                    return self.finish(None);
                }
                self.skip = 4;
                self.expect(State::FlvTag, 11);
            }
            State::Done => {}
        }
    }

    /// A complete top-level box header is in `acc` (8 bytes, or 16 for a 64-bit size).
    fn mp4_box(&mut self) {
        let a = &self.acc;
        let size32 = u32::from_be_bytes([a[0], a[1], a[2], a[3]]);
        let kind = [a[4], a[5], a[6], a[7]];
        if !kind.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            // Not a box: whatever this is, the bench cannot tell a prefix in it.
            let start = self.pos - a.len() as u64;
            return self.finish(Some(start));
        }
        if self.container.is_none() {
            // The first box says whether this is MP4 at all.
            if !FIRST_BOXES.contains(&&kind) {
                return self.finish(Some(0));
            }
            self.container = Some(Container::Mp4);
        }
        if size32 == 1 && a.len() == 8 {
            self.need = 16;
            return;
        }
        let header = a.len() as u64;
        let start = self.pos - header;
        let size = match size32 {
            0 => None,
            1 => Some(u64::from_be_bytes([a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]])),
            n => Some(u64::from(n)),
        };
        if size.is_some_and(|s| s < header || self.limit.is_some_and(|l| start.saturating_add(s) > l)) {
            return self.finish(Some(start));
        }
        match &kind {
            b"mdat" if !self.probe => self.finish(None),
            b"moof" => self.finish(Some(start)),
            b"moov" => {
                let moov_end = size.map_or(u64::MAX, |s| start.saturating_add(s));
                self.expect(State::Mp4Child { moov_end }, 8);
            }
            _ => match size {
                // A box running to the end of the file: nothing after it.
                None => self.finish(Some(start)),
                Some(s) => {
                    self.skip = s - header;
                    self.expect(State::Mp4Box, 8);
                }
            },
        }
    }

    /// A child header inside `moov` is in `acc`.
    fn mp4_child(&mut self, moov_end: u64) {
        let a = &self.acc;
        let size = u64::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]]));
        let kind = [a[4], a[5], a[6], a[7]];
        let left = moov_end.saturating_sub(self.pos);
        if &kind == b"mvhd" && (8..=MAX_MVHD).contains(&size) && size - 8 <= left {
            let body = (size - 8) as usize;
            self.expect(State::Mp4Mvhd { moov_end }, body);
            if body == 0 {
                self.step();
            }
            return;
        }
        if size < 8 {
            // A 64-bit or to-the-end child, or garbage: skip the rest of the moov.
            self.skip = left;
            return self.expect(State::Mp4Box, 8);
        }
        self.skip = (size - 8).min(left);
        if self.pos.saturating_add(self.skip) >= moov_end {
            self.expect(State::Mp4Box, 8);
        } else {
            self.expect(State::Mp4Child { moov_end }, 8);
        }
    }
}

fn sane(d: f64) -> bool {
    d.is_finite() && d > 0.0 && d < 1e9
}

/// The duration an `mvhd` body (after its 8-byte header) states.
fn mvhd_duration(body: &[u8]) -> Option<f64> {
    let be32 = |i: usize| body.get(i..i + 4).map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])));
    let (scale, duration) = match body.first()? {
        0 => (be32(12)?, be32(16).filter(|&d| d != u64::from(u32::MAX))?),
        1 => {
            let hi = be32(24)?;
            let lo = be32(28)?;
            (be32(20)?, Some((hi << 32) | lo).filter(|&d| d != u64::MAX)?)
        }
        _ => return None,
    };
    if scale == 0 {
        return None;
    }
    Some(duration as f64 / scale as f64).filter(|d| sane(*d))
}

/// `onMetaData.keyframes.{times,filepositions}` when they are sane: equal lengths, finite,
/// times non-decreasing, positions whole and strictly increasing.
fn flv_keyframes(meta: &amf0::Value) -> Option<Vec<(f64, u64)>> {
    let k = meta.get("keyframes")?;
    let times = k.get("times")?.elements()?;
    let positions = k.get("filepositions")?.elements()?;
    if times.len() != positions.len() || times.is_empty() || times.len() > MAX_KEYFRAMES {
        return None;
    }
    let mut out: Vec<(f64, u64)> = Vec::with_capacity(times.len());
    for (t, p) in times.iter().zip(positions) {
        let (t, p) = (t.as_f64()?, p.as_f64()?);
        if !(t.is_finite() && t >= 0.0 && (0.0..9.0e15).contains(&p) && p.fract() == 0.0) {
            return None;
        }
        let p = p as u64;
        if let Some(&(lt, lp)) = out.last() {
            if t < lt || p <= lp {
                return None;
            }
        }
        out.push((t, p));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives `sc` over `data` the way a reader would, handing at most `chunk` bytes at a
    /// time; returns how many bytes were copied (looked at).
    fn drive(sc: &mut Scanner, data: &[u8], chunk: usize) -> usize {
        let mut at = 0usize;
        let mut looked = 0;
        loop {
            match sc.want() {
                Want::Done => return looked,
                _ if at >= data.len() => {
                    sc.end();
                    return looked;
                }
                Want::Copy(n) => {
                    let n = n.min(chunk).min(data.len() - at);
                    sc.copied(&data[at..at + n]);
                    at += n;
                    looked += n;
                }
                Want::Skip(n) => {
                    let n = (n as usize).min(data.len() - at);
                    sc.skipped(n as u64);
                    at += n;
                }
            }
            assert_eq!(sc.pos(), at as u64);
        }
    }

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    fn mvhd(scale: u32, duration: u32) -> Vec<u8> {
        let mut body = vec![0u8; 100];
        body[12..16].copy_from_slice(&scale.to_be_bytes());
        body[16..20].copy_from_slice(&duration.to_be_bytes());
        mp4_box(b"mvhd", &body)
    }

    fn movie(moov_first: bool) -> (Vec<u8>, u64) {
        let ftyp = mp4_box(b"ftyp", b"isom\0\0\0\0isommp41");
        let mut moov_body = mvhd(1000, 90_500);
        moov_body.extend(mp4_box(b"trak", &[7u8; 300]));
        let moov = mp4_box(b"moov", &moov_body);
        let mdat = mp4_box(b"mdat", &[1u8; 5000]);
        let mut f = ftyp.clone();
        if moov_first {
            f.extend(&moov);
            let prefix = (f.len() + 8) as u64;
            f.extend(&mdat);
            (f, prefix)
        } else {
            f.extend(&mdat);
            f.extend(&moov);
            (f, (ftyp.len() + 8) as u64)
        }
    }

    #[test]
    fn mp4_prefix_ends_at_the_mdat_payload_and_the_moov_goes_by_unseen() {
        let (f, prefix) = movie(true);
        for chunk in [1, 3, 8, 64, 1 << 20] {
            let mut sc = Scanner::new(false, None);
            let looked = drive(&mut sc, &f, chunk);
            assert_eq!(sc.prefix_len(), Some(prefix), "chunk {chunk}");
            assert_eq!(sc.duration(), Some(90.5));
            assert_eq!(sc.container(), Some(Container::Mp4));
            assert!(looked < 160, "only box headers and the mvhd are looked at: {looked}");
        }
    }

    #[test]
    fn probe_walks_past_mdat_to_a_moov_at_the_end() {
        let (f, _) = movie(false);
        let mut sc = Scanner::new(true, None);
        let looked = drive(&mut sc, &f, 16);
        assert_eq!(sc.duration(), Some(90.5));
        assert!(looked < 160, "{looked}");
        // A body scan of the same file stops at the mdat.
        let mut sc = Scanner::new(false, None);
        drive(&mut sc, &f, 16);
        assert_eq!(sc.prefix_len(), Some(24 + 8), "ftyp, then the mdat header");
        assert_eq!(sc.duration(), None);
    }

    #[test]
    fn large_sizes_fragments_and_garbage() {
        let mut f = mp4_box(b"ftyp", b"isom");
        f.extend(1u32.to_be_bytes());
        f.extend(b"mdat");
        f.extend(116u64.to_be_bytes());
        f.extend([0u8; 100]);
        let mut sc = Scanner::new(false, None);
        drive(&mut sc, &f, 5);
        assert_eq!(sc.prefix_len(), Some(12 + 16));

        let mut f = mp4_box(b"ftyp", b"isom");
        f.extend(mp4_box(b"moov", &mvhd(10, 20)));
        let moof_at = f.len() as u64;
        f.extend(mp4_box(b"moof", &[0; 40]));
        let mut sc = Scanner::new(false, None);
        drive(&mut sc, &f, 7);
        assert_eq!((sc.prefix_len(), sc.duration()), (Some(moof_at), Some(2.0)));

        // Text is not MP4, nor is a box running past the end of the stream.
        let mut sc = Scanner::new(false, None);
        drive(&mut sc, &[b'x'; 1000], 100);
        assert_eq!((sc.prefix_len(), sc.container()), (Some(0), None));
        let mut sc = Scanner::new(false, Some(1000));
        drive(&mut sc, b"\x00\x00\x00\x10ftypisom\0\0\0\0\x00\x10\x00\x00free", 100);
        assert_eq!(sc.prefix_len(), Some(16));

        let mut sc = Scanner::new(false, None);
        drive(&mut sc, b"\x00\x00\x01\x00\xff\xfe\x01\x02rest of something", 100);
        assert_eq!(sc.prefix_len(), Some(0));
        assert_eq!(sc.container(), None);

        // A box smaller than its header, a truncated stream.
        let mut sc = Scanner::new(false, None);
        drive(&mut sc, b"\x00\x00\x00\x04ftyp", 100);
        assert_eq!(sc.prefix_len(), Some(0));
        let mut sc = Scanner::new(false, None);
        drive(&mut sc, &movie(true).0[..50], 9);
        assert_eq!(sc.prefix_len(), Some(50));
    }

    fn flv_tag(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut t = vec![kind];
        t.extend(&(data.len() as u32).to_be_bytes()[1..]);
        t.extend([0u8; 7]);
        t.extend(data);
        t.extend(((data.len() + 11) as u32).to_be_bytes());
        t
    }

    fn flv() -> (Vec<u8>, u64) {
        let mut f = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        let num = |v: f64| amf0::Value::Number(v);
        let meta = amf0::Value::EcmaArray(vec![
            ("duration".into(), num(60.08)),
            (
                "keyframes".into(),
                amf0::Value::Object(vec![
                    ("times".into(), amf0::Value::StrictArray(vec![num(0.0), num(2.0), num(4.0)])),
                    ("filepositions".into(), amf0::Value::StrictArray(vec![num(300.0), num(900.0), num(1500.0)])),
                ]),
            ),
        ]);
        f.extend(flv_tag(18, &amf0::encode_script("onMetaData", &meta)));
        let prefix = f.len() as u64;
        f.extend(flv_tag(9, &[0x17, 0, 0, 0, 0, 1, 2, 3]));
        f.extend(flv_tag(8, &[0xaf, 0, 0x12, 0x10]));
        (f, prefix)
    }

    #[test]
    fn flv_prefix_is_header_and_script_tags_and_the_probe_reads_the_metadata() {
        let (f, prefix) = flv();
        for chunk in [1, 4, 11, 4096] {
            let mut sc = Scanner::new(false, None);
            let looked = drive(&mut sc, &f, chunk);
            assert_eq!(sc.prefix_len(), Some(prefix));
            assert_eq!(sc.container(), Some(Container::Flv));
            assert_eq!(looked, 9 + 11 + 11, "the metadata goes by unseen");
            let mut sc = Scanner::new(true, None);
            drive(&mut sc, &f, chunk);
            assert_eq!(sc.duration(), Some(60.08));
            assert_eq!(sc.take_keyframes(), Some(vec![(0.0, 300), (2.0, 900), (4.0, 1500)]));
        }
    }

    #[test]
    fn hostile_bytes_never_panic_and_always_end() {
        let (flv, _) = flv();
        let (mp4, _) = movie(true);
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let base = if round % 2 == 0 { &flv } else { &mp4 };
            let mut f = base.clone();
            for _ in 0..(next() % 6) {
                let i = (next() as usize) % f.len();
                f[i] = next() as u8;
            }
            f.truncate(1 + (next() as usize) % f.len());
            for probe in [false, true] {
                let mut sc = Scanner::new(probe, Some(f.len() as u64));
                drive(&mut sc, &f, 1 + (next() as usize) % 40);
                assert!(sc.is_done());
                assert!(sc.prefix_len().unwrap() <= f.len() as u64);
            }
        }
    }
}
