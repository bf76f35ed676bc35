//! The DASH MPD (static, CMAF segments) written from a [`Package`]: one `AdaptationSet` per
//! media type, a `Representation` per track with `codecs`, `bandwidth`, `width`/`height`,
//! `frameRate`, `audioSamplingRate`, and a `SegmentTemplate` with a `SegmentTimeline`
//! (`$Number$` URLs naming the same `.m4s` segments as the HLS playlists); subtitles as a
//! text `AdaptationSet` naming one WebVTT document.

use super::segments::Media;
use super::Package;
use std::fmt::Write;

/// Text made safe inside an XML attribute.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// An ISO 8601 duration in seconds (`PT6.006S`).
fn duration(secs: f64) -> String {
    format!("PT{:.3}S", if secs.is_finite() { secs.max(0.0) } else { 0.0 })
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The MPD.
pub fn mpd(package: &Package, query: &str) -> String {
    let index = &package.index;
    // `$` starts a template identifier: doubled it is a literal dollar.
    let q = xml(query).replace('$', "$$");
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" type=\"static\" minBufferTime=\"PT2S\" mediaPresentationDuration=\"{}\">",
        duration(index.duration())
    );
    s.push_str("  <Period id=\"1\" start=\"PT0S\">\n");
    let mut set_id = 0;
    for (media, kind, mime) in [(Media::Video, "video", "video/mp4"), (Media::Audio, "audio", "audio/mp4")] {
        let members: Vec<usize> = (0..index.tracks.len()).filter(|&k| index.tracks[k].media == media).collect();
        if members.is_empty() {
            continue;
        }
        set_id += 1;
        let _ = writeln!(
            s,
            "    <AdaptationSet id=\"{set_id}\" contentType=\"{kind}\" mimeType=\"{mime}\" segmentAlignment=\"true\" startWithSAP=\"1\">"
        );
        for k in members {
            let t = &index.tracks[k];
            let f = &package.facts[k];
            let _ = write!(
                s,
                "      <Representation id=\"{}{}\" codecs=\"{}\" bandwidth=\"{}\"",
                media.letter(),
                t.id,
                xml(&f.codecs),
                f.peak_bps.max(1)
            );
            if let (Some(w), Some(h)) = (f.description.width, f.description.height) {
                let _ = write!(s, " width=\"{w}\" height=\"{h}\"");
            }
            if media == Media::Video {
                let samples = index.cells_of(k).fold(0u64, |a, c| a.saturating_add(c.s1.saturating_sub(c.s0)));
                let ticks = index.cells_of(k).fold(0u64, |a, c| a.saturating_add(c.duration));
                let num = samples.saturating_mul(u64::from(t.timescale));
                if ticks > 0 && num > 0 {
                    let g = gcd(num, ticks);
                    let (n, d) = (num / g, ticks / g);
                    if d == 1 {
                        let _ = write!(s, " frameRate=\"{n}\"");
                    } else {
                        let _ = write!(s, " frameRate=\"{n}/{d}\"");
                    }
                }
            }
            if let Some(r) = f.description.sample_rate.filter(|_| media == Media::Audio) {
                let _ = write!(s, " audioSamplingRate=\"{r}\"");
            }
            s.push_str(">\n");
            if let Some(ch) = f.description.channels.filter(|_| media == Media::Audio) {
                let _ = writeln!(
                    s,
                    "        <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{ch}\"/>"
                );
            }
            let dir = format!("{}{}", media.letter(), t.id);
            let _ = writeln!(
                s,
                "        <SegmentTemplate timescale=\"{}\" presentationTimeOffset=\"{}\" initialization=\"{dir}/init.mp4{q}\" media=\"{dir}/$Number$.m4s{q}\" startNumber=\"1\">",
                t.timescale, t.lead
            );
            s.push_str("          <SegmentTimeline>\n");
            // Runs of equal durations: `<S t d r>`, `t` on the first only (no gaps).
            let mut run: Option<(u64, u64, u64)> = None; // start, duration, repeats
            let mut first = true;
            let flush = |s: &mut String, r: (u64, u64, u64), first: &mut bool| {
                let t_attr = if *first { format!(" t=\"{}\"", r.0) } else { String::new() };
                *first = false;
                if r.2 > 0 {
                    let _ = writeln!(s, "            <S{t_attr} d=\"{}\" r=\"{}\"/>", r.1, r.2);
                } else {
                    let _ = writeln!(s, "            <S{t_attr} d=\"{}\"/>", r.1);
                }
            };
            // Segment times: decode times moved so that the first is the lead, the first
            // sample's presentation time (segments start with a sync sample).
            let tfdt0 = index.cells_of(k).next().map_or(0, |c| index.tfdt(k, c));
            for c in index.cells_of(k) {
                let t0 = index.tfdt(k, c).saturating_sub(tfdt0).saturating_add(t.lead);
                run = match run {
                    Some((start, d, r)) if d == c.duration => Some((start, d, r.saturating_add(1))),
                    Some(prev) => {
                        flush(&mut s, prev, &mut first);
                        Some((t0, c.duration, 0))
                    }
                    None => Some((t0, c.duration, 0)),
                };
            }
            if let Some(r) = run {
                flush(&mut s, r, &mut first);
            }
            s.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n      </Representation>\n");
        }
        s.push_str("    </AdaptationSet>\n");
    }
    // Subtitles: one WebVTT document each (players read text/vtt as a whole file).
    let q = xml(query);
    for k in (0..index.tracks.len()).filter(|&k| index.tracks[k].media == Media::Subtitle) {
        set_id += 1;
        let t = &index.tracks[k];
        let lang = package.facts[k].language.as_deref().map(|l| format!(" lang=\"{l}\"")).unwrap_or_default();
        let _ = writeln!(
            s,
            "    <AdaptationSet id=\"{set_id}\" contentType=\"text\" mimeType=\"text/vtt\"{lang}>\n      <Role schemeIdUri=\"urn:mpeg:dash:role:2011\" value=\"subtitle\"/>\n      <Representation id=\"s{}\" bandwidth=\"256\">\n        <BaseURL>s{}/all.vtt{q}</BaseURL>\n      </Representation>\n    </AdaptationSet>",
            t.id, t.id
        );
    }
    s.push_str("  </Period>\n</MPD>\n");
    s
}
