//! What a track's first sample description (`stsd` entry) says, for `inspect`: the RFC 6381
//! codec string (`avc1.64001f` from `avcC`, `hvc1.1.6.L93.B0` from `hvcC`, `mp4a.40.2` from
//! the `esds` decoder configuration and the AAC AudioSpecificConfig), the profile and level,
//! the picture size, and the audio sample rate and channels. Every read is bounded by the
//! entry and by each box's own end; anything unexpected leaves a field unknown, never panics.

use super::boxes::{children, fourcc_name, BoxHeader, ReadBe};

/// What the sample description says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Description {
    /// RFC 6381 codec string (`avc1.64001f`, `mp4a.40.2`), or the entry's four-character code.
    pub codec_string: String,
    /// Profile name as ffprobe prints it (`High`, `LC`), when known.
    pub profile: Option<String>,
    /// Level as coded (`level_idc` for H.264/HEVC), when known.
    pub level: Option<u32>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
}

/// Bytes of a VisualSampleEntry before its child boxes.
const VISUAL_FIELDS: u64 = 78;
/// Bytes of an AudioSampleEntry (version 0) before its child boxes; QuickTime versions 1 and 2
/// add 16 and 36.
const AUDIO_FIELDS: u64 = 28;

/// Reads the first entry of the `stsd` box `stsd` in `moov`; `handler` is the track's (`vide`,
/// `soun`, …). `None` when there is no readable entry.
pub fn describe(moov: &[u8], stsd: &BoxHeader, handler: &[u8; 4]) -> Option<Description> {
    // Full box header (4) + entry count (4), then the entries as boxes.
    let entry = children(moov, stsd.body_start().checked_add(8)?, stsd.end()).next()?.ok()?;
    let body = moov.get(usize::try_from(entry.body_start()).ok()?..usize::try_from(entry.end()).ok()?)?;
    let fourcc = fourcc_name(&entry.kind);
    let mut d = Description { codec_string: fourcc.clone(), ..Description::default() };
    let child = |fields: u64, kind: &[u8; 4]| -> Option<&[u8]> {
        let start = entry.body_start().checked_add(fields)?;
        let h = children(moov, start, entry.end()).map_while(Result::ok).find(|h| &h.kind == kind)?;
        moov.get(usize::try_from(h.body_start()).ok()?..usize::try_from(h.end()).ok()?)
    };
    match handler {
        b"vide" => {
            d.width = body.u16_at(24).map(u32::from).filter(|&w| w > 0);
            d.height = body.u16_at(26).map(u32::from).filter(|&h| h > 0);
            match &entry.kind {
                b"avc1" | b"avc2" | b"avc3" | b"avc4" => {
                    if let Some(c) = child(VISUAL_FIELDS, b"avcC") {
                        avc(&mut d, &fourcc, c);
                    }
                }
                b"hvc1" | b"hev1" => {
                    if let Some(c) = child(VISUAL_FIELDS, b"hvcC") {
                        hevc(&mut d, &fourcc, c);
                    }
                }
                _ => {}
            }
        }
        b"soun" => {
            let version = body.u16_at(8)?;
            let fields = match version {
                1 => AUDIO_FIELDS + 16,
                2 => AUDIO_FIELDS + 36,
                _ => AUDIO_FIELDS,
            };
            if version == 2 {
                d.sample_rate = body
                    .u64_at(32)
                    .map(f64::from_bits)
                    .filter(|r| r.is_finite() && *r >= 1.0 && *r < 1e7)
                    .map(|r| r.round() as u32);
                d.channels = body.u32_at(40).filter(|&c| c > 0);
            } else {
                d.channels = body.u16_at(16).map(u32::from).filter(|&c| c > 0);
                d.sample_rate = body.u32_at(24).map(|r| r >> 16).filter(|&r| r > 0);
            }
            if &entry.kind == b"mp4a" {
                if let Some(c) = child(fields, b"esds") {
                    esds(&mut d, c);
                }
            }
        }
        _ => {}
    }
    Some(d)
}

/// H.264: `avc1.PPCCLL` from the AVCDecoderConfigurationRecord.
fn avc(d: &mut Description, fourcc: &str, c: &[u8]) {
    let (Some(profile), Some(compat), Some(level)) = (c.u8_at(1), c.u8_at(2), c.u8_at(3)) else { return };
    d.codec_string = format!("{fourcc}.{profile:02x}{compat:02x}{level:02x}");
    d.level = Some(u32::from(level));
    d.profile = Some(
        match profile {
            66 if compat & 0x40 != 0 => "Constrained Baseline",
            66 => "Baseline",
            77 => "Main",
            88 => "Extended",
            100 => "High",
            110 => "High 10",
            122 => "High 4:2:2",
            244 => "High 4:4:4 Predictive",
            _ => return,
        }
        .into(),
    );
}

/// HEVC: `hvc1.[space]profile.compat.Tlevel[.constraints]` from the HEVCDecoderConfigurationRecord.
fn hevc(d: &mut Description, fourcc: &str, c: &[u8]) {
    let (Some(b1), Some(compat), Some(level)) = (c.u8_at(1), c.u32_at(2), c.u8_at(12)) else { return };
    let Some(constraints) = c.get(6..12) else { return };
    let space = ["", "A", "B", "C"][usize::from(b1 >> 6)];
    let tier = if b1 & 0x20 != 0 { 'H' } else { 'L' };
    let profile = b1 & 0x1F;
    let mut s = format!("{fourcc}.{space}{profile}.{:X}.{tier}{level}", compat.reverse_bits());
    let used = constraints.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    for b in &constraints[..used] {
        s.push_str(&format!(".{b:X}"));
    }
    d.codec_string = s;
    d.level = Some(u32::from(level));
    d.profile = match profile {
        1 => Some("Main".into()),
        2 => Some("Main 10".into()),
        3 => Some("Main Still Picture".into()),
        4 => Some("Rext".into()),
        _ => None,
    };
}

/// One MPEG-4 descriptor: its tag and body, and the bytes after it.
fn descriptor(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let mut len = 0usize;
    let mut at = 1;
    // The size is 1 to 4 bytes of 7 bits, the high bit saying "more".
    loop {
        let byte = *b.get(at)?;
        at += 1;
        len = (len << 7) | usize::from(byte & 0x7F);
        if byte & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return None;
        }
    }
    let body = b.get(at..at.checked_add(len)?)?;
    Some((tag, body, &b[at + len..]))
}

/// Sampling frequencies by the AudioSpecificConfig's 4-bit index.
const AAC_RATES: [u32; 13] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// MPEG-4 audio: `mp4a.OO[.A]` from the ES descriptor (object type, and for MPEG-4 audio the
/// AudioSpecificConfig's audio object type), with the AAC sample rate and channels.
fn esds(d: &mut Description, esds: &[u8]) {
    // Full box: version and flags, then the ES_Descriptor (tag 3).
    let Some((3, es, _)) = esds.get(4..).and_then(descriptor) else { return };
    let Some(flags) = es.u8_at(2) else { return };
    let mut at = 3usize;
    if flags & 0x80 != 0 {
        at += 2; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(es.u8_at(at).unwrap_or(0)); // URL
    }
    if flags & 0x20 != 0 {
        at += 2; // OCR_ES_ID
    }
    let mut rest = es.get(at..).unwrap_or(&[]);
    let mut config = None;
    while let Some((tag, body, after)) = descriptor(rest) {
        if tag == 4 {
            config = Some(body);
            break;
        }
        rest = after;
    }
    let Some(config) = config else { return };
    let Some(oti) = config.u8_at(0) else { return };
    d.codec_string = format!("mp4a.{oti:02X}");
    if oti == 0x6B || oti == 0x69 {
        d.profile = Some("MP3".into());
    }
    // DecoderSpecificInfo (tag 5) after the 13 fixed bytes: the AudioSpecificConfig.
    let Some((5, asc, _)) = config.get(13..).and_then(descriptor) else { return };
    if oti != 0x40 {
        return;
    }
    let mut bits = Bits { data: asc, pos: 0 };
    let Some(mut aot) = bits.take(5) else { return };
    if aot == 31 {
        let Some(ext) = bits.take(6) else { return };
        aot = 32 + ext;
    }
    d.codec_string = format!("mp4a.40.{aot}");
    d.profile = match aot {
        1 => Some("Main".into()),
        2 => Some("LC".into()),
        3 => Some("SSR".into()),
        4 => Some("LTP".into()),
        5 => Some("HE-AAC".into()),
        23 => Some("LD".into()),
        29 => Some("HE-AACv2".into()),
        39 => Some("ELD".into()),
        _ => None,
    };
    let rate = |bits: &mut Bits<'_>| -> Option<u32> {
        match bits.take(4)? {
            15 => bits.take(24),
            i => AAC_RATES.get(i as usize).copied(),
        }
    };
    let Some(base) = rate(&mut bits) else { return };
    let Some(channels) = bits.take(4) else { return };
    d.sample_rate = Some(base);
    // HE-AAC (SBR, PS): the output rate is the extension's.
    if aot == 5 || aot == 29 {
        if let Some(r) = rate(&mut bits) {
            d.sample_rate = Some(r);
        }
    }
    match channels {
        1..=6 => d.channels = Some(channels),
        7 => d.channels = Some(8),
        _ => {}
    }
}

/// Reads bits MSB first, `None` past the end.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn take(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A box of `kind` around `body`.
    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn stsd_with(entry: Vec<u8>) -> (Vec<u8>, BoxHeader) {
        let mut body = vec![0, 0, 0, 0, 0, 0, 0, 1];
        body.extend(entry);
        let v = boxed(b"stsd", &body);
        let h = BoxHeader { kind: *b"stsd", offset: 0, header_len: 8, size: v.len() as u64 };
        (v, h)
    }

    fn avc_entry() -> Vec<u8> {
        let mut body = vec![0u8; 78];
        body[24..26].copy_from_slice(&320u16.to_be_bytes());
        body[26..28].copy_from_slice(&240u16.to_be_bytes());
        body.extend(boxed(b"avcC", &[1, 0x64, 0, 0x1f, 0xff, 0xe0]));
        boxed(b"avc1", &body)
    }

    fn aac_entry(asc: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8; 28];
        body[16..18].copy_from_slice(&2u16.to_be_bytes());
        body[24..28].copy_from_slice(&(44100u32 << 16).to_be_bytes());
        let mut dsi = vec![5, asc.len() as u8];
        dsi.extend_from_slice(asc);
        let mut dcd = vec![0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        dcd.extend(dsi);
        let mut es = vec![0, 1, 0, 4, dcd.len() as u8];
        es.extend(dcd);
        let mut esds = vec![0, 0, 0, 0, 3, 0x80, 0x80, 0x80, es.len() as u8];
        esds.extend(es);
        body.extend(boxed(b"esds", &esds));
        boxed(b"mp4a", &body)
    }

    #[test]
    fn avc_and_aac_codec_strings() {
        let (moov, h) = stsd_with(avc_entry());
        let d = describe(&moov, &h, b"vide").unwrap();
        assert_eq!(d.codec_string, "avc1.64001f");
        assert_eq!((d.profile.as_deref(), d.level, d.width, d.height), (Some("High"), Some(31), Some(320), Some(240)));
        // AAC LC, 44.1 kHz (index 4), stereo: 00010 0100 0010 000
        let (moov, h) = stsd_with(aac_entry(&[0x12, 0x10]));
        let d = describe(&moov, &h, b"soun").unwrap();
        assert_eq!(d.codec_string, "mp4a.40.2");
        assert_eq!((d.profile.as_deref(), d.sample_rate, d.channels), (Some("LC"), Some(44100), Some(2)));
        // HE-AAC: 24 kHz core (index 6), extension 48 kHz (index 3), mono.
        let (moov, h) = stsd_with(aac_entry(&[0x2B, 0x09, 0x80]));
        let d = describe(&moov, &h, b"soun").unwrap();
        assert_eq!((d.codec_string.as_str(), d.sample_rate, d.channels), ("mp4a.40.5", Some(48000), Some(1)));
    }

    #[test]
    fn hevc_codec_string() {
        let mut body = vec![0u8; 78];
        let mut hvcc = vec![1, 0x01, 0x60, 0, 0, 0, 0xB0, 0, 0, 0, 0, 0, 93];
        hvcc.extend([0u8; 10]);
        body.extend(boxed(b"hvcC", &hvcc));
        let (moov, h) = stsd_with(boxed(b"hvc1", &body));
        let d = describe(&moov, &h, b"vide").unwrap();
        assert_eq!(d.codec_string, "hvc1.1.6.L93.B0");
        assert_eq!(d.profile.as_deref(), Some("Main"));
    }

    #[test]
    fn every_truncation_and_flip_is_safe() {
        for entry in [avc_entry(), aac_entry(&[0x12, 0x10])] {
            let handler = if &entry[4..8] == b"avc1" { b"vide" } else { b"soun" };
            let (moov, h) = stsd_with(entry);
            for cut in 0..moov.len() {
                let hh = BoxHeader { size: cut as u64, ..h };
                let _ = describe(&moov[..cut], &hh, handler);
                let _ = describe(&moov[..cut], &h, handler);
            }
            let mut bad = moov.clone();
            for i in 0..bad.len() {
                for mask in [0x01, 0x80, 0xFF] {
                    bad[i] ^= mask;
                    let _ = describe(&bad, &h, handler);
                    bad[i] ^= mask;
                }
            }
        }
    }
}
