//! Picture size from the bitstream where it is cheap: the H.264 sequence parameter set in an
//! AVC decoder configuration record, and the Sorenson Spark (H.263-like) picture header.
//! Every read is bounds-checked; anything unexpected gives `None`, never an error or panic.

/// Reads bits MSB first.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n.min(32) {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    /// Unsigned Exp-Golomb.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        ((1u64 << zeros) - 1 + u64::from(rest)).try_into().ok()
    }

    /// Signed Exp-Golomb.
    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Width and height from an AVC decoder configuration record (the body of an AVC sequence
/// header tag after its 4-byte AVCPacketType/CompositionTime prefix).
pub fn from_avc_config(record: &[u8]) -> Option<(u32, u32)> {
    // version, profile, compat, level, lengthSizeMinusOne, numOfSPS (low 5 bits)
    if record.len() < 8 || record[0] != 1 || record[5] & 0x1F == 0 {
        return None;
    }
    let sps_len = usize::from(u16::from_be_bytes([record[6], record[7]]));
    let sps = record.get(8..8 + sps_len)?;
    from_sps(sps)
}

/// Removes emulation-prevention bytes (00 00 03 → 00 00).
fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Width and height (after cropping) from an H.264 SPS NAL unit, header byte included.
pub fn from_sps(nal: &[u8]) -> Option<(u32, u32)> {
    let rbsp = unescape(nal);
    let mut r = Bits::new(&rbsp);
    if r.bits(8)? & 0x1F != 7 {
        return None;
    }
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    let mut separate_planes = false;
    if matches!(profile, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
        chroma_format = r.ue()?;
        if chroma_format == 3 {
            separate_planes = r.bit()? == 1;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass
        if r.bit()? == 1 {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256).rem_euclid(256);
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed
    let w_mbs = u64::from(r.ue()?) + 1;
    let h_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = u64::from(r.bit()?);
    if frame_mbs_only == 0 {
        r.bit()?;
    }
    r.bit()?; // direct_8x8_inference
    let (mut cl, mut cr, mut ct, mut cb) = (0u64, 0u64, 0u64, 0u64);
    if r.bit()? == 1 {
        cl = r.ue()?.into();
        cr = r.ue()?.into();
        ct = r.ue()?.into();
        cb = r.ue()?.into();
    }
    let array_type = if separate_planes { 0 } else { chroma_format };
    let (sub_w, sub_h) = match array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_x = if array_type == 0 { 1 } else { sub_w };
    let crop_y = if array_type == 0 { 2 - frame_mbs_only } else { sub_h * (2 - frame_mbs_only) };
    let w = (w_mbs * 16).checked_sub(crop_x * (cl + cr))?;
    let h = ((2 - frame_mbs_only) * h_units * 16).checked_sub(crop_y * (ct + cb))?;
    (w > 0 && h > 0 && w <= 65535 && h <= 65535).then_some((w as u32, h as u32))
}

/// Width and height from a Sorenson Spark frame (the tag body after its 1-byte video header).
pub fn from_sorenson(frame: &[u8]) -> Option<(u32, u32)> {
    let mut r = Bits::new(frame);
    if r.bits(17)? != 1 {
        return None;
    }
    r.bits(5)?; // version
    r.bits(8)?; // temporal reference
    let (w, h) = match r.bits(3)? {
        0 => (r.bits(8)?, r.bits(8)?),
        1 => (r.bits(16)?, r.bits(16)?),
        2 => (352, 288),
        3 => (176, 144),
        4 => (128, 96),
        5 => (320, 240),
        6 => (160, 120),
        _ => return None,
    };
    (w > 0 && h > 0).then_some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sps_320x240_high() {
        // x264 High profile SPS for 320x240 (from an ffmpeg encode).
        let sps = [
            0x67, 0x64, 0x00, 0x0D, 0xAC, 0xD9, 0x41, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
            0x03, 0x03, 0x20, 0xF1, 0x42, 0x99, 0x60,
        ];
        assert_eq!(from_sps(&sps), Some((320, 240)));
    }

    #[test]
    fn garbage_gives_none() {
        assert_eq!(from_sps(&[]), None);
        assert_eq!(from_sps(&[0x67]), None);
        assert_eq!(from_sps(&[0x67, 0x64, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(from_avc_config(&[1, 2, 3]), None);
        assert_eq!(from_avc_config(&[1, 0x64, 0, 0x0D, 0xFF, 0xE1, 0xFF, 0xFF, 0x67]), None);
        assert_eq!(from_sorenson(&[0, 0, 0x84]), None);
        assert_eq!(from_sorenson(&[0xFF; 8]), None);
    }

    #[test]
    fn sorenson_fixed_size() {
        // start code 0000 0000 0000 0000 1, version 00000, tr 00000000, size 101 (320x240)
        let mut bits = String::from("00000000000000001");
        bits += "00000";
        bits += "00000000";
        bits += "101";
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let bytes: Vec<u8> = bits
            .as_bytes()
            .chunks(8)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap())
            .collect();
        assert_eq!(from_sorenson(&bytes), Some((320, 240)));
    }
}
