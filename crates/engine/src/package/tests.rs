//! Unit tests of the packager on the small movies of the fuzz corpus (H.264 with B-frames
//! and a keyframe every 0.5 s, AAC): the segmenter's boundaries and cells, the index's byte
//! form, the media segments' boxes and bytes against the source samples, and the playlists
//! and MPD read back by independent parsers (`m3u8-rs`, `dash-mpd-core`).

use super::*;
use crate::sink::read_range;
use crate::source::Source;
use std::path::PathBuf;
use std::sync::Arc;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mp4").join(name)
}

fn movie(name: &str) -> Movie {
    Movie::open(Source::open(&corpus(name)).unwrap()).unwrap()
}

fn build(m: &Movie, clip: Clip, target: f64) -> Package {
    Package::build(m, clip, &Options { target }).unwrap()
}

fn whole(plan: &Plan) -> Vec<u8> {
    read_range(plan, 0..plan.len()).unwrap()
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
}

/// (kind, offset, size) of the boxes at the top of `d` and inside `moof`/`traf`.
fn boxes(d: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    fn walk(d: &[u8], mut at: usize, end: usize, out: &mut Vec<([u8; 4], usize, usize)>) {
        while at + 8 <= end {
            let size = be32(d, at) as usize;
            let kind: [u8; 4] = d[at + 4..at + 8].try_into().unwrap();
            assert!(size >= 8 && at + size <= end, "box {kind:?} at {at} overruns");
            out.push((kind, at, size));
            if matches!(&kind, b"moof" | b"traf" | b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"mvex") {
                walk(d, at + 8, at + size, out);
            }
            at += size;
        }
    }
    let mut out = Vec::new();
    walk(d, 0, d.len(), &mut out);
    out
}

#[test]
fn boundaries_fall_on_keyframes_and_cells_tile_every_track() {
    let m = movie("faststart.mp4");
    let tracks = m.tracks().unwrap();
    for target in [1.0, 2.0, 6.0] {
        let p = build(&m, Clip::default(), target);
        let index = &p.index;
        assert_eq!(index.tracks.len(), 2);
        assert_eq!(index.tracks[0].media, Media::Video);
        // Keyframes every 0.5 s over 2 s: a segment per target second, at least one.
        assert_eq!(index.count, (2.0 / target).ceil() as usize, "target {target}");
        for (k, info) in index.tracks.iter().enumerate() {
            let t = &tracks[info.index];
            let cells: Vec<_> = index.cells_of(k).collect();
            assert_eq!(cells.len(), index.count);
            assert_eq!(cells[0].s0, 0);
            assert_eq!(cells.last().unwrap().s1, t.samples);
            for w in cells.windows(2) {
                assert_eq!(w[0].s1, w[1].s0);
                assert_eq!(w[0].dts + w[0].duration, w[1].dts);
                assert_eq!(index.tfdt(k, w[0]) + w[0].duration, index.tfdt(k, w[1]));
            }
            let total: u64 = cells.iter().map(|c| c.duration).sum();
            assert_eq!(total, t.stts.time_of(t.samples));
            let bytes: u64 = cells.iter().map(|c| c.bytes).sum();
            assert_eq!(bytes, t.total_bytes());
            if info.media == Media::Video {
                assert!(cells.iter().all(|c| t.is_sync(c.s0)), "a segment starts at a non-sync sample");
            }
        }
    }
}

#[test]
fn a_clip_starts_at_the_keyframe_before_start_and_ends_at_end() {
    let m = movie("faststart.mp4");
    let tracks = m.tracks().unwrap();
    let p = build(&m, Clip { start: Some(0.7), end: Some(1.5) }, 1.0);
    let v = p.index.cells_of(0).collect::<Vec<_>>();
    // Keyframes at 0, 0.5, 1.0, 1.5 s (10 fps): the clip shows 0.5 .. 1.5.
    assert_eq!(v[0].s0, 5);
    assert_eq!(v.last().unwrap().s1, 15);
    let shown: u64 = v.iter().map(|c| c.duration).sum();
    assert_eq!(shown as f64 / f64::from(tracks[0].mdhd.timescale), 1.0);
    assert!(Package::build(&m, Clip { start: Some(5.0), end: None }, &Options::default()).is_err());
    assert!(Package::build(&m, Clip { start: Some(1.0), end: Some(0.5) }, &Options::default()).is_err());
    assert!(Package::build(&m, Clip::default(), &Options { target: 0.01 }).is_err());
}

#[test]
fn the_index_survives_its_byte_form_and_refuses_damage() {
    let m = movie("faststart.mp4");
    let tracks = m.tracks().unwrap();
    let clip = Clip { start: Some(0.2), end: None };
    let options = Options { target: 1.0 };
    let p = build(&m, clip, 1.0);
    let key = m.key();
    let bytes = p.index.encode(&key);
    let back = SegmentIndex::decode(&bytes, &key, clip, &options, &tracks).unwrap();
    assert_eq!(back.cells, p.index.cells);
    assert_eq!(back.tracks, p.index.tracks);
    // Another clip, another movie, a flipped byte, a short file: refused.
    assert!(SegmentIndex::decode(&bytes, &key, Clip::default(), &options, &tracks).is_none());
    let other = crate::mp4::marks::MovieKey { ino: key.ino ^ 1, ..key };
    assert!(SegmentIndex::decode(&bytes, &other, clip, &options, &tracks).is_none());
    for at in [0, 9, bytes.len() / 2, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        assert!(SegmentIndex::decode(&bad, &key, clip, &options, &tracks).is_none(), "flip at {at}");
    }
    assert!(SegmentIndex::decode(&bytes[..bytes.len() - 3], &key, clip, &options, &tracks).is_none());
}

#[test]
fn media_segments_carry_the_source_samples_and_their_timing() {
    let m = movie("faststart.mp4");
    let tracks = m.tracks().unwrap();
    let p = build(&m, Clip::default(), 1.0);
    for (k, info) in p.index.tracks.iter().enumerate() {
        let t = &tracks[info.index];
        for (n, c) in p.index.cells_of(k).enumerate() {
            let plan = answer_with(
                &m,
                &p,
                &PackageRequest::Segment { media: info.media, id: info.id, number: n as u32 + 1 },
                "",
            )
            .unwrap();
            let seg = whole(&plan);
            let b = boxes(&seg);
            let kinds: Vec<&[u8; 4]> = b.iter().map(|(k, _, _)| k).collect();
            assert_eq!(kinds, [b"styp", b"moof", b"mfhd", b"traf", b"tfhd", b"tfdt", b"trun", b"mdat"]);
            let find = |kind: &[u8; 4]| b.iter().find(|(k, _, _)| k == kind).map(|&(_, o, s)| (o, s)).unwrap();
            let (moof_at, _) = find(b"moof");
            let (tfdt_at, _) = find(b"tfdt");
            assert_eq!(seg[tfdt_at + 8], 1, "tfdt version 1");
            assert_eq!(u64::from_be_bytes(seg[tfdt_at + 12..tfdt_at + 20].try_into().unwrap()), p.index.tfdt(k, c));
            let (trun_at, _) = find(b"trun");
            let flags = be32(&seg, trun_at + 8) & 0xff_ffff;
            let count = be32(&seg, trun_at + 12) as u64;
            assert_eq!(count, c.s1 - c.s0);
            assert_eq!(flags & 0x800 != 0, t.ctts.is_some());
            let data_at = moof_at + be32(&seg, trun_at + 16) as usize;
            let (mdat_at, _) = find(b"mdat");
            assert_eq!(data_at, mdat_at + 8);
            // The payload is the source samples, in order.
            let mut expect = Vec::new();
            for s in c.s0..c.s1 {
                let (off, size) = t.sample_location(s).unwrap();
                let mut buf = vec![0u8; size as usize];
                m.src.read_exact_at(&mut buf, off).unwrap();
                expect.extend(buf);
            }
            assert_eq!(&seg[data_at..], &expect[..], "track {} segment {}", info.id, n + 1);
            // Entries: duration, size, flags (sync first), composition offset not negative.
            let w = if flags & 0x800 != 0 { 16 } else { 12 };
            let e0 = trun_at + 20;
            let first_flags = be32(&seg, e0 + 8);
            if info.media == Media::Video {
                assert_eq!(first_flags, 0x0200_0000, "a segment starts with a sync sample");
                assert!((1..count as usize).any(|i| be32(&seg, e0 + i * w + 8) == 0x0101_0000));
            }
            if w == 16 {
                assert_eq!(seg[trun_at + 8], 1, "trun version 1 with composition offsets");
                assert!((0..count as usize).all(|i| (be32(&seg, e0 + i * w + 12) as i32) >= 0));
            }
        }
        assert!(matches!(
            answer_with(
                &m,
                &p,
                &PackageRequest::Segment { media: info.media, id: info.id, number: p.index.count as u32 + 1 },
                ""
            ),
            Err(crate::Error::NotFound(_))
        ));
    }
}

#[test]
fn segments_of_small_samples_are_kept_as_one_range_within_bounds() {
    let m = movie("faststart.mp4");
    // A one-shot package (the CGI's) plans each segment; a kept one gathers it once.
    let once = build(&m, Clip::default(), 1.0);
    let a = PackageRequest::Segment { media: Media::Audio, id: 2, number: 1 };
    assert!(once.index.track(2).is_some_and(|(_, t)| t.media == Media::Audio));
    assert!(answer_with(&m, &once, &a, "").unwrap().source().same_medium(&m.src));
    assert!(once.segments.lock().unwrap().is_empty());
    let p = build(&m, Clip::default(), 1.0).keeping_segments();
    let (k, info) = p.index.tracks.iter().enumerate().find(|(_, t)| t.media == Media::Audio).unwrap();
    let req = |n: usize| PackageRequest::Segment { media: info.media, id: info.id, number: n as u32 + 1 };
    let fresh = |n: usize| render(&m, &p, &req(n), "").unwrap();
    let count = p.index.cells_of(k).count();
    assert!(count >= 2);
    for n in 0..count {
        let first = answer_with(&m, &p, &req(n), "").unwrap();
        let again = answer_with(&m, &p, &req(n), "").unwrap();
        // AAC frames are small: the samples are gathered once into one range, kept.
        assert_eq!(first.pieces().len(), 2, "segment {}", n + 1);
        assert!(again.source().same_medium(first.source()), "the second answer is the kept one");
        assert!(!first.source().same_medium(&m.src));
        assert_eq!(whole(&first), whole(&fresh(n)), "segment {}", n + 1);
        assert_eq!(whole(&again), whole(&first));
        assert_eq!(first.info.modified, m.src.modified);
    }
    assert_eq!(p.segments.lock().unwrap().len(), count);
    // The bounds: least recently used out first, by count and by bytes of samples.
    let plans: Vec<(PackageRequest, Plan)> =
        (0..2).map(|n| (req(n), answer_with(&m, &p, &req(n), "").unwrap())).collect();
    let body = |p: &Plan| p.len() - p.info.header_len;
    let mut kept = Vec::new();
    for (r, plan) in &plans {
        keep(&mut kept, *r, plan.clone(), 1, u64::MAX);
    }
    assert_eq!(kept.iter().map(|(r, _)| *r).collect::<Vec<_>>(), [plans[1].0]);
    let mut kept = Vec::new();
    for (r, plan) in &plans {
        keep(&mut kept, *r, plan.clone(), 10, body(&plans[1].1));
    }
    assert_eq!(kept.iter().map(|(r, _)| *r).collect::<Vec<_>>(), [plans[1].0]);
    keep(&mut kept, plans[0].0, plans[0].1.clone(), 10, u64::MAX);
    assert_eq!(kept.len(), 2);
    // A second copy of a kept segment is not kept: the first one is answered.
    let other = render(&m, &p, &plans[0].0, "").unwrap();
    let answered = keep(&mut kept, plans[0].0, other, 10, u64::MAX);
    assert!(answered.source().same_medium(plans[0].1.source()));
    assert_eq!(kept.len(), 2);
}

#[test]
fn the_first_frame_is_shown_at_the_lead_in_every_track() {
    // Video: first frame at presentation 0 in the source; audio starts with it (the edit
    // lists of the corpus file are plain). The output shows both at the same lead.
    let m = movie("faststart.mp4");
    let p = build(&m, Clip::default(), 1.0);
    let secs: Vec<f64> = p.index.tracks.iter().map(|t| t.lead as f64 / f64::from(t.timescale)).collect();
    assert!((secs[0] - secs[1]).abs() < 0.001, "leads {secs:?}");
    let v = &p.index.tracks[0];
    let c = p.index.cell(0, 0).unwrap();
    let tracks = m.tracks().unwrap();
    let first_pts = p.index.tfdt(0, c) as i64 + tracks[0].cts_offset(0) - v.cts_shift;
    assert_eq!(first_pts as u64, v.lead);
}

#[test]
fn init_segments_copy_the_sample_description() {
    let m = movie("co64.mp4");
    let tracks = m.tracks().unwrap();
    let p = build(&m, Clip::default(), 6.0);
    for info in &p.index.tracks {
        let plan = answer_with(&m, &p, &PackageRequest::Init { media: info.media, id: info.id }, "").unwrap();
        let init = whole(&plan);
        let b = boxes(&init);
        for kind in [b"ftyp", b"moov", b"mvhd", b"trak", b"tkhd", b"mdia", b"stbl", b"mvex", b"trex"] {
            assert!(b.iter().any(|(k, _, _)| k == kind), "no {kind:?}");
        }
        assert!(!b.iter().any(|(k, _, _)| k == b"edts"));
        let stsd = init::stsd_of(&m.moov, &tracks[info.index].trak).unwrap();
        let src = &m.moov[stsd.offset as usize..stsd.end() as usize];
        assert!(init.windows(src.len()).any(|w| w == src), "stsd not copied verbatim");
    }
}

#[test]
fn playlists_parse_with_an_hls_parser() {
    use m3u8_rs::Playlist;
    let m = movie("faststart.mp4");
    let p = build(&m, Clip::default(), 1.0);
    let q = "?start=0.2&sig=ab";
    let master = answer_with(&m, &p, &PackageRequest::Master, q).unwrap();
    let Ok(Playlist::MasterPlaylist(master)) = m3u8_rs::parse_playlist_res(&whole(&master)) else {
        panic!("not a master playlist")
    };
    assert_eq!(master.version, Some(7));
    assert!(master.independent_segments);
    let normal: Vec<_> = master.variants.iter().filter(|v| !v.is_i_frame).collect();
    let iframes: Vec<_> = master.variants.iter().filter(|v| v.is_i_frame).collect();
    assert_eq!(normal.len(), 1);
    assert_eq!(iframes.len(), 1);
    let v = normal[0];
    assert_eq!(v.uri, format!("v1/index.m3u8{q}"));
    assert_eq!(v.codecs.as_deref(), Some("avc1.64000a,mp4a.40.2"));
    assert_eq!(v.audio.as_deref(), Some("audio"));
    assert!(v.bandwidth >= v.average_bandwidth.unwrap() && v.bandwidth > 0);
    assert_eq!(v.frame_rate, Some(10.0));
    assert!(v.resolution.is_some());
    assert_eq!(iframes[0].uri, format!("v1/iframes.m3u8{q}"));
    assert_eq!(master.alternatives.len(), 1);
    assert_eq!(master.alternatives[0].uri.as_deref(), Some(&*format!("a2/index.m3u8{q}")));
    for (k, info) in p.index.tracks.iter().enumerate() {
        let plan = answer_with(&m, &p, &PackageRequest::Playlist { media: info.media, id: info.id }, q).unwrap();
        let Ok(Playlist::MediaPlaylist(pl)) = m3u8_rs::parse_playlist_res(&whole(&plan)) else {
            panic!("not a media playlist")
        };
        assert_eq!(pl.segments.len(), p.index.count);
        assert!(pl.end_list);
        assert_eq!(pl.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
        assert_eq!(pl.segments[0].map.as_ref().unwrap().uri, format!("init.mp4{q}"));
        let ts = f64::from(info.timescale);
        for (n, (s, c)) in pl.segments.iter().zip(p.index.cells_of(k)).enumerate() {
            assert_eq!(s.uri, format!("{}.m4s{q}", n + 1));
            assert!((f64::from(s.duration) - c.duration as f64 / ts).abs() < 0.001);
            assert!((s.duration.round() as u64) <= pl.target_duration);
        }
    }
    let plan = answer_with(&m, &p, &PackageRequest::IFrames { id: 1 }, q).unwrap();
    let Ok(Playlist::MediaPlaylist(pl)) = m3u8_rs::parse_playlist_res(&whole(&plan)) else { panic!("i-frames") };
    assert!(pl.i_frames_only);
    // Each byte range holds the segment's boxes and its whole first frame.
    for (n, s) in pl.segments.iter().enumerate() {
        let r = s.byte_range.as_ref().unwrap();
        assert_eq!(r.offset, Some(0));
        let seg = whole(
            &answer_with(&m, &p, &PackageRequest::Segment { media: Media::Video, id: 1, number: n as u32 + 1 }, "")
                .unwrap(),
        );
        let c = p.index.cell(n, 0).unwrap();
        let b = boxes(&seg);
        let mdat = b.iter().find(|(k, _, _)| k == b"mdat").unwrap();
        assert_eq!(r.length, (mdat.1 + 8) as u64 + u64::from(c.first_size));
    }
}

#[test]
fn the_mpd_parses_and_names_the_same_segments() {
    let m = movie("faststart.mp4");
    let p = build(&m, Clip::default(), 1.0);
    let q = "?start=0&sig=a$b";
    let plan = answer_with(&m, &p, &PackageRequest::Mpd, q).unwrap();
    let xml = String::from_utf8(whole(&plan)).unwrap();
    let mpd = dash_mpd_core::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    assert_eq!(mpd.mpdtype.as_deref(), Some("static"));
    let d = mpd.mediaPresentationDuration.unwrap().as_secs_f64();
    assert!((d - 2.0).abs() < 0.05, "duration {d}");
    let sets = &mpd.periods[0].adaptations;
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0].contentType.as_deref(), Some("video"));
    assert_eq!(sets[1].contentType.as_deref(), Some("audio"));
    for (k, set) in sets.iter().enumerate() {
        let r = &set.representations[0];
        let info = &p.index.tracks[k];
        assert_eq!(r.codecs.as_deref(), Some(p.facts[k].codecs.as_str()));
        assert!(r.bandwidth.unwrap() > 0);
        let st = r.SegmentTemplate.as_ref().unwrap();
        assert_eq!(st.timescale, Some(u64::from(info.timescale)));
        assert_eq!(st.presentationTimeOffset, Some(info.lead));
        let letter = info.media.letter();
        assert_eq!(st.media.as_deref(), Some(&*format!("{letter}{}/$Number$.m4s?start=0&sig=a$$b", info.id)));
        // The timeline expands to the index's durations, from the lead on.
        let mut expanded = Vec::new();
        let mut t = None;
        for s in &st.SegmentTimeline.as_ref().unwrap().segments {
            let mut at = s.t.or(t).unwrap();
            for _ in 0..=s.r.unwrap_or(0) {
                expanded.push((at, s.d));
                at += s.d;
            }
            t = Some(at);
        }
        let want: Vec<u64> = p.index.cells_of(k).map(|c| c.duration).collect();
        assert_eq!(expanded.iter().map(|e| e.1).collect::<Vec<_>>(), want);
        assert_eq!(expanded[0].0, info.lead);
        if k == 0 {
            assert_eq!(r.width, Some(u64::from(p.facts[0].description.width.unwrap())));
            assert_eq!(r.frameRate.as_deref(), Some("10"));
        } else {
            let rate = p.facts[k].description.sample_rate.unwrap().to_string();
            assert_eq!(r.audioSamplingRate.as_deref(), Some(rate.as_str()));
        }
    }
    assert!(dash_mpd_core::check_conformity(&mpd).is_empty(), "{:?}", dash_mpd_core::check_conformity(&mpd));
}

#[test]
fn audio_only_movies_are_one_variant() {
    let m = movie("audio.m4a");
    let p = build(&m, Clip::default(), 1.0);
    assert_eq!(p.index.tracks.len(), 1);
    let master = String::from_utf8(whole(&answer_with(&m, &p, &PackageRequest::Master, "").unwrap())).unwrap();
    assert!(master.contains("CODECS=\"mp4a.40.2\"\na1/index.m3u8"), "{master}");
}

#[test]
fn tx3g_subtitles_become_webvtt_in_hls_and_dash() {
    let m = movie("subtitles.mp4");
    let p = build(&m, Clip::default(), 1.0);
    let k = p.index.tracks.iter().position(|t| t.media == Media::Subtitle).unwrap();
    let id = p.index.tracks[k].id;
    assert_eq!(p.facts[k].language.as_deref(), Some("fra"));
    let text = |r: PackageRequest| String::from_utf8(whole(&answer_with(&m, &p, &r, "").unwrap())).unwrap();
    let all = text(PackageRequest::Vtt { id, number: None });
    assert!(all.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:"), "{all}");
    // Times relative to the first frame, as the source shows them; tags of the source text
    // are kept as text, escaped.
    assert!(all.contains("00:00:00.300 --> 00:00:00.900\nFirst"), "{all}");
    assert!(all.contains("00:00:01.200 --> 00:00:01.800\nSecond"), "{all}");
    let first = text(PackageRequest::Vtt { id, number: Some(1) });
    assert!(first.contains("First") && !first.contains("Second"), "{first}");
    let second = text(PackageRequest::Vtt { id, number: Some(2) });
    assert!(second.contains("Second") && !second.contains("First"), "{second}");
    assert!(answer_with(&m, &p, &PackageRequest::Vtt { id, number: Some(3) }, "").is_err());
    let master = text(PackageRequest::Master);
    assert!(
        master.contains(&format!("TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"subtitles {id}\",LANGUAGE=\"fra\"")),
        "{master}"
    );
    assert!(master.contains("SUBTITLES=\"subs\""), "{master}");
    let Ok(m3u8_rs::Playlist::MediaPlaylist(pl)) =
        m3u8_rs::parse_playlist_res(text(PackageRequest::Playlist { media: Media::Subtitle, id }).as_bytes())
    else {
        panic!("subtitle playlist")
    };
    assert_eq!(pl.segments.len(), p.index.count);
    assert_eq!(pl.segments[1].uri, "2.vtt");
    let mpd = dash_mpd_core::parse(&text(PackageRequest::Mpd)).unwrap();
    let set = &mpd.periods[0].adaptations[2];
    assert_eq!(set.contentType.as_deref(), Some("text"));
    assert_eq!(set.representations[0].BaseURL[0].base, format!("s{id}/all.vtt"));
}

/// `MovieCache::package` for the corpus movie `path` with the default clip and `target`.
fn cached(
    cache: &crate::media::MovieCache,
    path: &std::path::Path,
    clip: Clip,
    target: f64,
) -> (Arc<Movie>, Arc<Package>) {
    let opts = crate::media::Options::for_path(path).unwrap();
    cache.package(path, Source::open(path).unwrap(), clip, &Options { target }, &opts).unwrap()
}

#[test]
fn a_movie_served_progressive_then_packaged_is_opened_once() {
    use crate::request::{Position, Request};
    for name in ["faststart.mp4", "frag.mp4"] {
        let path = corpus(name);
        let cache = crate::media::MovieCache::new(8);
        let seek = Request { start: Some(Position::Seconds(1.0)), ..Request::default() };
        let progressive = cache.open(&path, &seek).unwrap();
        assert_eq!(whole(&progressive), whole(&crate::media::open(&path, &seek).unwrap()), "{name}");
        let (m1, p1) = cached(&cache, &path, Clip::default(), 1.0);
        let (m2, p2) = cached(&cache, &path, Clip::default(), 1.0);
        let s = cache.stats();
        assert_eq!((s.movie_misses, s.movie_hits), (1, 1), "{name}: opened once, found by the packager");
        assert_eq!((s.segment_index_misses, s.segment_index_hits), (1, 1), "{name}");
        assert_eq!(cache.len(), 1, "{name}: one entry however the movie is served");
        assert!(Arc::ptr_eq(&m1, &m2) && Arc::ptr_eq(&p1, &p2), "{name}: the segment index is built once");
        // The same package as one built afresh (a fragmented file through its made tables).
        let fresh = super::fragmented::progressive(movie(name), None, crate::mp4::MAX_MOOV).unwrap();
        assert_eq!(*p1.index, *build(&fresh, Clip::default(), 1.0).index, "{name}");
        let seg = PackageRequest::Segment { media: p1.index.tracks[0].media, id: p1.index.tracks[0].id, number: 2 };
        assert_eq!(
            whole(&answer_with(&m1, &p1, &seg, "").unwrap()),
            whole(&answer_with(&fresh, &build(&fresh, Clip::default(), 1.0), &seg, "").unwrap()),
            "{name}"
        );
        // Another clip shares the movie; a progressive seek after it still finds the movie.
        let (m3, p3) = cached(&cache, &path, Clip { start: Some(0.5), end: None }, 1.0);
        assert!(Arc::ptr_eq(&m1, &m3) && !Arc::ptr_eq(&p1, &p3), "{name}");
        let again = Request { start: Some(Position::Seconds(1.5)), ..Request::default() };
        cache.open(&path, &again).unwrap();
        assert_eq!(cache.stats().movie_misses, 1, "{name}");
        assert_eq!(cache.packages(), 2, "{name}");
    }
}

#[test]
fn packages_are_bounded_over_all_movies_least_recently_used_first() {
    let cache = crate::media::MovieCache::new(8);
    let a = corpus("faststart.mp4");
    let b = corpus("video-only.mp4");
    let (_, first) = cached(&cache, &a, Clip::default(), 1.0);
    for k in 1..crate::media::PACKAGES_HELD {
        let clip = Clip { start: Some(0.01 * k as f64), end: None };
        cached(&cache, &b, clip, 1.0);
        // The first one stays the most recently used of `a`'s: asked between the others.
        let (_, again) = cached(&cache, &a, Clip::default(), 1.0);
        assert!(Arc::ptr_eq(&first, &again));
    }
    assert_eq!(cache.packages(), crate::media::PACKAGES_HELD);
    // One more: the least recently used (`b`'s first clip) goes, `a`'s whole movie stays.
    cached(&cache, &b, Clip { start: Some(0.9), end: None }, 1.0);
    assert_eq!(cache.packages(), crate::media::PACKAGES_HELD);
    let (_, kept) = cached(&cache, &a, Clip::default(), 1.0);
    assert!(Arc::ptr_eq(&first, &kept));
    let misses = cache.stats().segment_index_misses;
    cached(&cache, &b, Clip { start: Some(0.01), end: None }, 1.0);
    assert_eq!(cache.stats().segment_index_misses, misses + 1, "the evicted package is built again");
    assert_eq!(cache.len(), 2);
}

#[test]
fn concurrent_package_misses_insert_once() {
    for name in ["faststart.mp4", "frag.mp4"] {
        let path = corpus(name);
        for round in 0..10 {
            let cache = crate::media::MovieCache::new(8);
            let ready = std::sync::Barrier::new(8);
            let got: Vec<(Arc<Movie>, Arc<Package>)> = std::thread::scope(|s| {
                let threads: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            ready.wait();
                            cached(&cache, &path, Clip::default(), 1.0)
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).collect()
            });
            assert_eq!((cache.len(), cache.packages()), (1, 1), "{name} round {round}: one movie, one package");
            assert_eq!(cache.opened(), 1, "{name} round {round}: the file read once, the others waited");
            // Every thread got the one view and the one package kept, as does a later lookup.
            let (m, p) = cached(&cache, &path, Clip::default(), 1.0);
            assert!(got.iter().all(|(gm, _)| Arc::ptr_eq(gm, &m)), "{name} round {round}: one view of the movie");
            assert!(got.iter().all(|(_, gp)| Arc::ptr_eq(gp, &p)), "{name} round {round}: one package shared");
        }
    }
}

#[test]
fn concurrent_seeks_of_a_new_movie_read_it_once() {
    use crate::request::{Position, Request};
    let path = corpus("faststart.mp4");
    let cache = crate::media::MovieCache::new(8);
    let ready = std::sync::Barrier::new(8);
    let lens: Vec<u64> = std::thread::scope(|s| {
        let threads: Vec<_> = (1..=8u32)
            .map(|k| {
                let (cache, path, ready) = (&cache, &path, &ready);
                s.spawn(move || {
                    let req = Request { start: Some(Position::Seconds(f64::from(k) * 0.2)), ..Request::default() };
                    ready.wait();
                    cache.plan(path, Source::open(path).unwrap(), &req, &crate::media::Options::for_path(path).unwrap())
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap().unwrap().len()).collect()
    });
    assert!(lens.iter().all(|&n| n > 0));
    assert_eq!((cache.opened(), cache.len()), (1, 1), "one read of the moov for 8 first viewers");
    // A failed open is not waited for forever, and the next miss tries again.
    let gone = std::env::temp_dir().join(format!("loomiere-open-once-{}.mp4", std::process::id()));
    std::fs::write(&gone, b"\0\0\0\x08free").unwrap();
    let opts = crate::media::Options::for_path(&gone).unwrap();
    let req = Request { start: Some(Position::Seconds(1.0)), ..Request::default() };
    assert!(cache.plan(&gone, Source::open(&gone).unwrap(), &req, &opts).is_err());
    assert!(cache.plan(&gone, Source::open(&gone).unwrap(), &req, &opts).is_err());
    assert_eq!(cache.opened(), 3);
    let _ = std::fs::remove_file(gone);
}

#[test]
fn a_fragmented_movie_lets_go_of_its_made_tables_with_its_last_package() {
    let cache = crate::media::MovieCache::new(8);
    let frag = corpus("frag.mp4");
    let other = corpus("faststart.mp4");
    let (view, _) = cached(&cache, &frag, Clip::default(), 1.0);
    assert!(!view.fragmented, "the packager sees made tables");
    for k in 0..crate::media::PACKAGES_HELD {
        cached(&cache, &other, Clip { start: Some(0.01 * k as f64), end: None }, 1.0);
    }
    assert_eq!(cache.packages(), crate::media::PACKAGES_HELD);
    let (again, _) = cached(&cache, &frag, Clip::default(), 1.0);
    assert!(!Arc::ptr_eq(&view, &again), "the tables were made again");
    assert_eq!(cache.stats().movie_misses, 2, "each movie opened once");
    assert_eq!(cache.len(), 2);
}

#[test]
fn a_clip_that_fails_to_package_leaves_no_made_tables_held() {
    let cache = crate::media::MovieCache::new(8);
    let path = corpus("frag.mp4");
    let opts = crate::media::Options::for_path(&path).unwrap();
    let bad = Clip { start: Some(1e9), end: None };
    let r = cache.package(&path, Source::open(&path).unwrap(), bad, &Options { target: 1.0 }, &opts);
    assert!(r.is_err());
    assert_eq!((cache.len(), cache.packages(), cache.views_held()), (1, 0, 0));
    cached(&cache, &path, Clip::default(), 1.0);
    assert_eq!((cache.packages(), cache.views_held()), (1, 1));
}

#[test]
fn a_replaced_movie_is_packaged_afresh_and_a_deleted_one_let_go() {
    let dir = std::env::temp_dir().join(format!("loomiere-package-{}-replaced", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("movie.mp4");
    std::fs::copy(corpus("faststart.mp4"), &path).unwrap();
    let cache = crate::media::MovieCache::new(8);
    let (m1, p1) = cached(&cache, &path, Clip::default(), 1.0);
    // Replaced under the same name (a new inode): a new entry, the old one dropped.
    let tmp = dir.join("movie.tmp");
    std::fs::copy(corpus("video-only.mp4"), &tmp).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let (m2, p2) = cached(&cache, &path, Clip::default(), 1.0);
    assert!(!Arc::ptr_eq(&m1, &m2) && !Arc::ptr_eq(&p1, &p2));
    assert_eq!(*p2.index, *build(&movie("video-only.mp4"), Clip::default(), 1.0).index);
    assert_eq!((cache.len(), cache.packages()), (1, 1));
    assert_eq!(cache.stats().movie_misses, 2);
    // Deleted: the sweep lets the movie and its packages go.
    std::fs::remove_file(&path).unwrap();
    cache.sweep();
    assert_eq!((cache.len(), cache.packages()), (0, 0));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn manifests_and_init_segments_are_rendered_once_per_query() {
    let m = movie("faststart.mp4");
    let p = build(&m, Clip::default(), 1.0);
    let asks = [
        PackageRequest::Master,
        PackageRequest::Mpd,
        PackageRequest::Playlist { media: Media::Video, id: 1 },
        PackageRequest::Init { media: Media::Video, id: 1 },
    ];
    for req in &asks {
        let first = answer_with(&m, &p, req, "").unwrap();
        let again = answer_with(&m, &p, req, "").unwrap();
        assert_eq!(whole(&first), whole(&again), "{req:?}");
        assert_eq!(whole(&first), whole(&render(&m, &p, req, "").unwrap()), "{req:?}");
        // Kept: the same bytes in memory, not a copy.
        match (first.pieces().first(), again.pieces().first()) {
            (Some(Piece::Synth(a)), Some(Piece::Synth(b))) => assert!(Arc::ptr_eq(a, b), "{req:?}"),
            _ => panic!("{req:?}: not rendered in memory"),
        }
    }
    // Another query suffix is another answer; the oldest go past ANSWERS_KEPT.
    let signed = whole(&answer_with(&m, &p, &PackageRequest::Master, "?sig=1").unwrap());
    assert!(String::from_utf8(signed).unwrap().contains("?sig=1"));
    for n in 0..2 * ANSWERS_KEPT {
        answer_with(&m, &p, &PackageRequest::Master, &format!("?sig={n}")).unwrap();
    }
    assert_eq!(p.answers.lock().unwrap().len(), ANSWERS_KEPT);
    // Segments are planned each time.
    let seg = PackageRequest::Segment { media: Media::Video, id: 1, number: 1 };
    answer_with(&m, &p, &seg, "").unwrap();
    assert!(p.answers.lock().unwrap().iter().all(|((r, _), _)| *r != seg));
}
