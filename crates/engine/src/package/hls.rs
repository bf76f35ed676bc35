//! HLS playlists (version 7, fragmented MP4) written from a [`Package`] (or several, for a
//! ladder): the multivariant playlist (`master.m3u8`: one `EXT-X-STREAM-INF` per video track
//! and audio group, audio (a group per codec) and subtitles as `EXT-X-MEDIA` rendition
//! groups, an `EXT-X-I-FRAME-STREAM-INF` per video track), the media playlists
//! (`v1/index.m3u8`, `a2/index.m3u8`, WebVTT `s3/index.m3u8`) and the I-frame playlists
//! (`v1/iframes.m3u8`, byte ranges of the media segments holding their first, key, frame). Every URL is
//! relative and carries the caller's query suffix.

use super::segments::Media;
use super::Package;
use std::fmt::Write;

/// A query suffix made safe inside a quoted attribute or on a URI line.
fn clean(query: &str) -> String {
    query.chars().filter(|c| !matches!(c, '"' | '\r' | '\n' | ',') && !c.is_control()).collect()
}

/// `EXT-X-TARGETDURATION`: the longest segment, rounded to the nearest second (at least 1).
fn target_duration(package: &Package, k: usize) -> u64 {
    let ts = package.index.tracks[k].timescale.max(1);
    package.index.cells_of(k).map(|c| (c.duration as f64 / f64::from(ts)).round() as u64).max().unwrap_or(1).max(1)
}

/// The audio rendition groups of a package: (group id, tracks, highest peak and average
/// bits per second), one per codec in the order of first appearance; the one group is
/// `audio` when all audio tracks share a codec.
fn audio_groups(package: &Package) -> Vec<(String, Vec<usize>, u64, u64)> {
    let index = &package.index;
    let mut groups: Vec<(String, Vec<usize>, u64, u64)> = Vec::new();
    for k in (0..index.tracks.len()).filter(|&k| index.tracks[k].media == Media::Audio) {
        let f = &package.facts[k];
        let codec = clean(&f.codecs);
        match groups.iter_mut().find(|g| g.0 == codec) {
            Some(g) => {
                g.1.push(k);
                g.2 = g.2.max(f.peak_bps);
                g.3 = g.3.max(f.average_bps);
            }
            None => groups.push((codec, vec![k], f.peak_bps, f.average_bps)),
        }
    }
    let single = groups.len() == 1;
    for g in &mut groups {
        g.0 = if single { "audio".into() } else { format!("audio-{}", g.0) };
    }
    groups
}

/// One rendition of a presentation: the URL prefix of its tracks (empty for a movie, `r2/`
/// in a ladder) and its package.
pub struct Part<'a> {
    pub prefix: String,
    pub package: &'a Package,
}

/// The multivariant playlist of one movie.
pub fn master(package: &Package, query: &str) -> String {
    master_of(&[Part { prefix: String::new(), package }], query)
}

/// The multivariant playlist of several renditions (a ladder): a variant per video track of
/// every part; audio and subtitle groups from the first part.
pub fn master_of(parts: &[Part<'_>], query: &str) -> String {
    let q = clean(query);
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let Some(first) = parts.first() else { return s };
    let (package, p0) = (first.package, clean(&first.prefix));
    let index = &package.index;
    // One rendition group per audio codec (`audio`, or `audio-ac-3`, `audio-mp4a.40.2`… when
    // there are several): a variant names one group, so a player that cannot decode one
    // codec still finds a variant it can play.
    let groups = audio_groups(package);
    for (gid, members, _, _) in &groups {
        for (i, &k) in members.iter().enumerate() {
            let t = &index.tracks[k];
            let f = &package.facts[k];
            let _ = write!(
                s,
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{gid}\",NAME=\"audio {}\",DEFAULT={},AUTOSELECT=YES",
                t.id,
                if i == 0 { "YES" } else { "NO" }
            );
            if let Some(lang) = &f.language {
                let _ = write!(s, ",LANGUAGE=\"{lang}\"");
            }
            if let Some(ch) = f.description.channels {
                let _ = write!(s, ",CHANNELS=\"{ch}\"");
            }
            let _ = writeln!(s, ",URI=\"{p0}a{}/index.m3u8{q}\"", t.id);
        }
    }
    let subtitles: Vec<usize> = (0..index.tracks.len()).filter(|&k| index.tracks[k].media == Media::Subtitle).collect();
    for &k in &subtitles {
        let t = &index.tracks[k];
        let _ = write!(s, "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"subtitles {}\"", t.id);
        if let Some(lang) = &package.facts[k].language {
            let _ = write!(s, ",LANGUAGE=\"{lang}\"");
        }
        let _ = writeln!(s, ",DEFAULT=NO,AUTOSELECT=YES,URI=\"{p0}s{}/index.m3u8{q}\"", t.id);
    }
    // (prefix, package, track) of every video track of every part.
    let video: Vec<(String, &Package, usize)> = parts
        .iter()
        .flat_map(|p| {
            let idx = &p.package.index;
            (0..idx.tracks.len())
                .filter(|&k| idx.tracks[k].media == Media::Video)
                .map(|k| (clean(&p.prefix), p.package, k))
        })
        .collect();
    // Each video track once per audio group (once when there is no audio).
    let none = [(String::new(), Vec::new(), 0u64, 0u64)];
    let variants = if groups.is_empty() { &none[..] } else { &groups[..] };
    for (prefix, pkg, k) in &video {
        for (gid, members, audio_peak, audio_avg) in variants {
            let t = &pkg.index.tracks[*k];
            let f = &pkg.facts[*k];
            let mut codecs = vec![f.codecs.as_str()];
            if let Some(&a) = members.first() {
                codecs.push(package.facts[a].codecs.as_str());
            }
            let _ = write!(
                s,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
                f.peak_bps.saturating_add(*audio_peak),
                f.average_bps.saturating_add(*audio_avg),
                codecs.join(",")
            );
            if let (Some(w), Some(h)) = (f.description.width, f.description.height) {
                let _ = write!(s, ",RESOLUTION={w}x{h}");
            }
            if let Some(r) = f.frame_rate {
                let _ = write!(s, ",FRAME-RATE={r:.3}");
            }
            if !members.is_empty() {
                let _ = write!(s, ",AUDIO=\"{gid}\"");
            }
            if !subtitles.is_empty() {
                s.push_str(",SUBTITLES=\"subs\"");
            }
            let _ = writeln!(s, "\n{prefix}v{}/index.m3u8{q}", t.id);
        }
    }
    for (prefix, pkg, k) in &video {
        let t = &pkg.index.tracks[*k];
        let f = &pkg.facts[*k];
        let _ = write!(
            s,
            "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
            f.iframe_peak_bps.max(1),
            f.iframe_average_bps.max(1),
            f.codecs
        );
        if let (Some(w), Some(h)) = (f.description.width, f.description.height) {
            let _ = write!(s, ",RESOLUTION={w}x{h}");
        }
        let _ = writeln!(s, ",URI=\"{prefix}v{}/iframes.m3u8{q}\"", t.id);
    }
    if video.is_empty() {
        // Audio only: the first audio track of each part is a variant.
        for p in parts {
            let idx = &p.package.index;
            if let Some(k) = (0..idx.tracks.len()).find(|&k| idx.tracks[k].media == Media::Audio) {
                let f = &p.package.facts[k];
                let _ = writeln!(
                    s,
                    "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"\n{}a{}/index.m3u8{q}",
                    f.peak_bps,
                    f.average_bps,
                    f.codecs,
                    clean(&p.prefix),
                    idx.tracks[k].id
                );
            }
        }
    }
    s
}

/// The media playlist of packaged track `k`.
pub fn media_playlist(package: &Package, k: usize, query: &str) -> String {
    let q = clean(query);
    let ts = package.index.tracks[k].timescale.max(1);
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4{q}\"\n",
        target_duration(package, k)
    );
    for (n, c) in package.index.cells_of(k).enumerate() {
        let _ = writeln!(s, "#EXTINF:{:.3},\n{}.m4s{q}", c.duration as f64 / f64::from(ts), n + 1);
    }
    s.push_str("#EXT-X-ENDLIST\n");
    s
}

/// The playlist of subtitle track `k`: one WebVTT document per segment of the reference
/// track, with its durations (cues that span a boundary are in both documents).
pub fn subtitle_playlist(package: &Package, _k: usize, query: &str) -> String {
    let q = clean(query);
    let index = &package.index;
    let r = index.tracks.iter().position(|t| t.media == Media::Video).unwrap_or(0);
    let ts = index.tracks.get(r).map_or(1, |t| t.timescale.max(1));
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-PLAYLIST-TYPE:VOD\n",
        target_duration(package, r)
    );
    for (n, c) in index.cells_of(r).enumerate() {
        let _ = writeln!(s, "#EXTINF:{:.3},\n{}.vtt{q}", c.duration as f64 / f64::from(ts), n + 1);
    }
    s.push_str("#EXT-X-ENDLIST\n");
    s
}

/// The I-frame playlist of packaged video track `k`: for each segment, the byte range of
/// its `styp`, `moof`, `mdat` header and first sample (a sync sample: segments start at one).
pub fn iframe_playlist(package: &Package, k: usize, query: &str) -> String {
    let q = clean(query);
    let info = &package.index.tracks[k];
    let ts = info.timescale.max(1);
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-I-FRAMES-ONLY\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4{q}\"\n",
        target_duration(package, k)
    );
    for (n, c) in package.index.cells_of(k).enumerate() {
        if c.s1 <= c.s0 {
            continue;
        }
        let len = super::fragment::header_len(info.with_cts, c).saturating_add(u64::from(c.first_size));
        let _ = writeln!(
            s,
            "#EXTINF:{:.3},\n#EXT-X-BYTERANGE:{len}@0\n{}.m4s{q}",
            c.duration as f64 / f64::from(ts),
            n + 1
        );
    }
    s.push_str("#EXT-X-ENDLIST\n");
    s
}
