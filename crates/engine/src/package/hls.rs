//! HLS playlists (version 7, fragmented MP4) written from a [`Package`]: the multivariant
//! playlist (`master.m3u8`: one `EXT-X-STREAM-INF` per video track, audio and subtitles as
//! `EXT-X-MEDIA` rendition groups, an `EXT-X-I-FRAME-STREAM-INF` per video track), the media
//! playlists (`v1/index.m3u8`, `a2/index.m3u8`, WebVTT `s3/index.m3u8`) and the I-frame
//! playlists (`v1/iframes.m3u8`,
//! byte ranges of the media segments holding their first, key, frame). Every URL is
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

/// The audio codecs of the movie's packaged audio tracks, each once.
fn audio_codecs(package: &Package) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for (k, t) in package.index.tracks.iter().enumerate() {
        if t.media == Media::Audio {
            let c = package.facts[k].codecs.as_str();
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

/// The multivariant playlist.
pub fn master(package: &Package, query: &str) -> String {
    let q = clean(query);
    let index = &package.index;
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let audio: Vec<usize> = (0..index.tracks.len()).filter(|&k| index.tracks[k].media == Media::Audio).collect();
    let (mut audio_peak, mut audio_avg) = (0u64, 0u64);
    for (i, &k) in audio.iter().enumerate() {
        let t = &index.tracks[k];
        let f = &package.facts[k];
        audio_peak = audio_peak.max(f.peak_bps);
        audio_avg = audio_avg.max(f.average_bps);
        let _ = write!(
            s,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio {}\",DEFAULT={},AUTOSELECT=YES",
            t.id,
            if i == 0 { "YES" } else { "NO" }
        );
        if let Some(lang) = &f.language {
            let _ = write!(s, ",LANGUAGE=\"{lang}\"");
        }
        if let Some(ch) = f.description.channels {
            let _ = write!(s, ",CHANNELS=\"{ch}\"");
        }
        let _ = writeln!(s, ",URI=\"a{}/index.m3u8{q}\"", t.id);
    }
    let subtitles: Vec<usize> = (0..index.tracks.len()).filter(|&k| index.tracks[k].media == Media::Subtitle).collect();
    for &k in &subtitles {
        let t = &index.tracks[k];
        let _ = write!(s, "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"subtitles {}\"", t.id);
        if let Some(lang) = &package.facts[k].language {
            let _ = write!(s, ",LANGUAGE=\"{lang}\"");
        }
        let _ = writeln!(s, ",DEFAULT=NO,AUTOSELECT=YES,URI=\"s{}/index.m3u8{q}\"", t.id);
    }
    let audio_list = audio_codecs(package);
    let video: Vec<usize> = (0..index.tracks.len()).filter(|&k| index.tracks[k].media == Media::Video).collect();
    for &k in &video {
        let t = &index.tracks[k];
        let f = &package.facts[k];
        let mut codecs = vec![f.codecs.as_str()];
        codecs.extend(&audio_list);
        let _ = write!(
            s,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
            f.peak_bps.saturating_add(audio_peak),
            f.average_bps.saturating_add(audio_avg),
            codecs.join(",")
        );
        if let (Some(w), Some(h)) = (f.description.width, f.description.height) {
            let _ = write!(s, ",RESOLUTION={w}x{h}");
        }
        if let Some(r) = f.frame_rate {
            let _ = write!(s, ",FRAME-RATE={r:.3}");
        }
        if !audio.is_empty() {
            s.push_str(",AUDIO=\"audio\"");
        }
        if !subtitles.is_empty() {
            s.push_str(",SUBTITLES=\"subs\"");
        }
        let _ = writeln!(s, "\nv{}/index.m3u8{q}", t.id);
    }
    for &k in &video {
        let t = &index.tracks[k];
        let f = &package.facts[k];
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
        let _ = writeln!(s, ",URI=\"v{}/iframes.m3u8{q}\"", t.id);
    }
    if video.is_empty() {
        // Audio only: the first audio track is the variant.
        if let Some(&k) = audio.first() {
            let f = &package.facts[k];
            let _ = writeln!(
                s,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"\na{}/index.m3u8{q}",
                f.peak_bps, f.average_bps, f.codecs, index.tracks[k].id
            );
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
