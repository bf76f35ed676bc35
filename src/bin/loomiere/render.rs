//! Text rendering of the engine's inspection reports: tables for people (comfy-table), next
//! to the reports' JSON for scripts. The engine only builds the reports.

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use loomiere::flv::inspect::Report as FlvReport;
use loomiere::fmp4::inspect::Fragments;
use loomiere::mp4::inspect::Report as Mp4Report;
use loomiere::package::layout::Layout;

/// A report that prints as text tables.
pub trait Render {
    /// The report as text tables.
    fn render(&self) -> String;
}

fn table(title: &str) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(vec![title.to_string(), String::new()]);
    t
}

fn opt<T: std::fmt::Display>(v: Option<T>, unit: &str) -> String {
    v.map(|x| format!("{x}{unit}")).unwrap_or_else(|| "-".into())
}

impl Render for FlvReport {
    fn render(&self) -> String {
        let mut out = String::new();
        let mut t = table("FLV");
        t.add_row(vec!["size".to_string(), format!("{} bytes", self.size)]);
        if let Some(h) = &self.header {
            t.add_row(vec!["version".to_string(), h.version.to_string()]);
            t.add_row(vec![
                "header flags".to_string(),
                format!("0x{:02x} (audio: {}, video: {})", h.flags, h.has_audio, h.has_video),
            ]);
            t.add_row(vec!["header size".to_string(), h.data_offset.to_string()]);
        }
        t.add_row(vec!["duration".to_string(), format!("{:.3} s", self.duration)]);
        t.add_row(vec![
            "tags".to_string(),
            format!(
                "{} (video {}, audio {}, script {})",
                self.tags.total, self.tags.video, self.tags.audio, self.tags.script
            ),
        ]);
        let k = &self.keyframes;
        t.add_row(vec!["keyframes".to_string(), k.count.to_string()]);
        t.add_row(vec![
            "keyframe spacing".to_string(),
            format!(
                "min {} avg {} max {}",
                opt(k.min_spacing.map(|x| format!("{x:.3}")), " s"),
                opt(k.avg_spacing.map(|x| format!("{x:.3}")), " s"),
                opt(k.max_spacing.map(|x| format!("{x:.3}")), " s")
            ),
        ]);
        if let Some(v) = &self.video {
            let size = match (v.width, v.height) {
                (Some(w), Some(h)) => format!(", {w}x{h}"),
                _ => String::new(),
            };
            t.add_row(vec![
                "video".to_string(),
                format!(
                    "{} (id {}){size}, {} frames, {} bytes{}",
                    v.codec,
                    opt(v.codec_id, ""),
                    v.frames,
                    v.bytes,
                    if v.has_config { ", sequence header" } else { "" }
                ),
            ]);
        }
        if let Some(a) = &self.audio {
            t.add_row(vec![
                "audio".to_string(),
                format!(
                    "{} (id {}), {} Hz {}-bit {}, {} frames, {} bytes{}",
                    a.codec,
                    opt(a.codec_id, ""),
                    a.sample_rate,
                    a.sample_bits,
                    if a.stereo { "stereo" } else { "mono" },
                    a.frames,
                    a.bytes,
                    if a.has_config { ", sequence header" } else { "" }
                ),
            ]);
        }
        if self.previous_size_mismatches > 0 {
            t.add_row(vec!["bad PreviousTagSize".to_string(), self.previous_size_mismatches.to_string()]);
        }
        if let Some(f) = &self.fault {
            t.add_row(vec!["FAULT".to_string(), f.clone()]);
        }
        out.push_str(&t.to_string());
        out.push('\n');

        let mut m = table("onMetaData");
        match (&self.metadata, &self.metadata_error) {
            (Some(v), _) => match v.pairs() {
                Some(pairs) => {
                    for (k, v) in pairs {
                        m.add_row(vec![k.clone(), v.to_string()]);
                    }
                }
                None => {
                    m.add_row(vec!["(value)".to_string(), v.to_string()]);
                }
            },
            (None, Some(e)) => {
                m.add_row(vec!["(unreadable)".to_string(), e.clone()]);
            }
            (None, None) => {
                m.add_row(vec!["(none)".to_string(), String::new()]);
            }
        }
        out.push_str(&m.to_string());
        out.push('\n');
        if let Some(list) = &self.keyframe_list {
            let mut k = Table::new();
            k.load_preset(UTF8_FULL_CONDENSED).set_header(vec!["keyframe", "time (s)", "offset"]);
            for (i, e) in list.iter().enumerate() {
                k.add_row(vec![i.to_string(), format!("{:.3}", e.time), e.offset.to_string()]);
            }
            out.push_str(&k.to_string());
            out.push('\n');
        }
        out
    }
}

impl Render for Fragments {
    fn render(&self) -> String {
        let secs = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3} s"));
        let mut s = Table::new();
        s.load_preset(UTF8_FULL_CONDENSED).set_header(vec!["fragments", ""]);
        s.add_row(vec!["count".to_string(), self.count.to_string()]);
        s.add_row(vec!["samples".to_string(), self.samples.to_string()]);
        s.add_row(vec![
            "duration min / max".to_string(),
            format!("{} / {}", secs(self.min_duration), secs(self.max_duration)),
        ]);
        for x in &self.sidx {
            s.add_row(vec![
                "sidx".to_string(),
                format!("at {}: {} references, {}", x.offset, x.references, agrees(x.agrees)),
            ]);
        }
        if let Some(at) = self.cut_short_at {
            s.add_row(vec![
                "cut short".to_string(),
                format!("at {at}: the last fragment is incomplete and left out (still being written?)"),
            ]);
        }
        if let Some(m) = &self.mfra {
            s.add_row(vec![
                "mfra".to_string(),
                format!("at {}: {} entries, {}", m.offset, m.entries, agrees(m.agrees)),
            ]);
        }
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "fragment",
            "moof offset",
            "moof",
            "mdat",
            "start (s)",
            "duration (s)",
            "samples",
            "keyframe",
        ]);
        for (i, f) in self.list.iter().enumerate() {
            let key = match (f.starts_with_keyframe, f.keyframe_time) {
                (true, Some(k)) => format!("first, {k:.3} s"),
                (false, Some(k)) => format!("inside, {k:.3} s"),
                _ => "none".into(),
            };
            t.add_row(vec![
                i.to_string(),
                f.moof_offset.to_string(),
                f.moof_size.to_string(),
                f.mdat_size.to_string(),
                format!("{:.3}", f.start),
                format!("{:.3}", f.duration),
                f.samples.to_string(),
                key,
            ]);
        }
        format!("{s}\n{t}\n")
    }
}

fn agrees(ok: bool) -> &'static str {
    if ok {
        "agrees with the fragments"
    } else {
        "DISAGREES with the fragments (ignored: the fragments are read instead)"
    }
}

impl Render for Mp4Report {
    fn render(&self) -> String {
        let mut file = Table::new();
        file.load_preset(UTF8_FULL_CONDENSED).set_header(vec!["file", ""]);
        file.add_row(vec!["size".to_string(), format!("{} bytes", self.file_size)]);
        if let Some(b) = &self.brands {
            file.add_row(vec![
                "brands".to_string(),
                format!("{} (minor {}), compatible: {}", b.major, b.minor_version, b.compatible.join(" ")),
            ]);
        }
        if let Some(m) = &self.moov {
            file.add_row(vec!["moov".to_string(), format!("{} ({} bytes at {})", m.position, m.size, m.offset)]);
        }
        if let Some(d) = self.duration {
            file.add_row(vec!["duration".to_string(), format!("{d:.3} s")]);
        }
        if let Some(b) = self.bitrate {
            file.add_row(vec!["bitrate".to_string(), format!("{} kb/s", b / 1000)]);
        }
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
            "profile",
            "format",
            "duration",
            "samples",
            "keyframes (spacing min/avg/max)",
            "bitrate",
        ]);
        let secs = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
        for t in &self.tracks {
            let mut format = Vec::new();
            if let (Some(w), Some(h)) = (t.width, t.height) {
                format.push(format!("{w}x{h}"));
            }
            if let Some(f) = t.frame_rate {
                format.push(format!("{} fps", (f * 1000.0).round() / 1000.0));
            }
            if let Some(r) = t.sample_rate {
                format.push(format!("{r} Hz"));
            }
            if let Some(c) = t.channels {
                format.push(format!("{c} ch"));
            }
            let profile = match (&t.profile, t.level) {
                (Some(p), Some(l)) => format!("{p} @ {l}"),
                (Some(p), None) => p.clone(),
                _ => "-".into(),
            };
            let keyframes = match &t.keyframes {
                Some(k) if !t.all_sync => {
                    format!(
                        "{} ({} / {} / {} s)",
                        k.count,
                        secs(k.min_spacing),
                        secs(k.avg_spacing),
                        secs(k.max_spacing)
                    )
                }
                Some(_) | None => "all".into(),
            };
            tracks.add_row(vec![
                t.id.to_string(),
                t.kind.clone(),
                t.codec_string.clone(),
                profile,
                format.join(", "),
                format!("{:.3} s", t.duration),
                t.samples.to_string(),
                keyframes,
                format!("{} kb/s", t.bitrate / 1000),
            ]);
        }
        let mut s = format!("{file}\n{boxes}\n{tracks}\n");
        if let Some(f) = &self.fragments {
            s.push_str(&f.render());
        }
        for t in &self.tracks {
            let Some(list) = &t.keyframe_list else { continue };
            let mut k = Table::new();
            k.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
                format!("track {} keyframe", t.id),
                "time (s)".into(),
                "offset".into(),
                "size".into(),
            ]);
            for (i, e) in list.iter().enumerate() {
                k.add_row(vec![i.to_string(), format!("{:.3}", e.time), e.offset.to_string(), e.size.to_string()]);
            }
            s.push_str(&format!("{k}\n"));
        }
        if let Some(h) = &self.hint {
            s.push_str(&format!("hint: {h}\n"));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("error: {e}\n"));
        }
        s
    }
}

impl Render for Layout {
    fn render(&self) -> String {
        let mut table = Table::new();
        let mut header = vec!["segment".to_string(), "start".to_string(), "duration".to_string()];
        if let Some(first) = self.segments.first() {
            header.extend(first.parts.iter().map(|p| format!("{} samples / bytes", p.track)));
        }
        table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
        for s in &self.segments {
            let mut row = vec![s.number.to_string(), format!("{:.3}", s.start), format!("{:.3}", s.duration)];
            row.extend(s.parts.iter().map(|p| format!("{} / {}", p.samples, p.bytes)));
            table.add_row(row);
        }
        let mut out = format!("segments of about {} s: {}\n{table}\n", self.target, self.segments.len());
        for l in &self.left_out {
            out.push_str(&format!("left out: {l}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flv_report_renders_codec_and_fault() {
        let dir = std::env::temp_dir().join(format!("loomiere-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A header, then a truncated tag: the report says FAULT.
        let path = dir.join("cut.flv");
        let mut bytes = vec![b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0];
        bytes.extend_from_slice(&[9, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x17, 0]);
        std::fs::write(&path, &bytes).unwrap();
        let src = loomiere::Source::open(&path).unwrap();
        let r = loomiere::flv::inspect::inspect(&src).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(r.render().contains("FAULT"));
    }
}
