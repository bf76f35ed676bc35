//! HLS and DASH end to end: `loomiere serve` on a free loopback port (killed by PID on drop),
//! its playlists, MPD and segments judged by ffmpeg/ffprobe and by parsing the fragments'
//! `tfdt`/`trun` independently of loomiere's code. No timed assertions.

mod common;

use common::serve::Serve;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

impl Serve {
    fn start(name: &str) -> Serve {
        Serve::start_in(name, common::media_dir())
    }

    fn start_in(name: &str, root: &Path) -> Serve {
        Serve::start_with(name, &[root.as_os_str()])
    }

    fn start_with(name: &str, args: &[&std::ffi::OsStr]) -> Serve {
        let log = common::scratch(&format!("package-{name}")).join("stderr.log");
        Serve::start_logging(&log, args)
    }

    fn start_logging(log: &Path, args: &[&std::ffi::OsStr]) -> Serve {
        Serve::launch(args, log)
    }

    /// One request on its own connection: status, headers (lower-case names), body.
    fn request(&self, method: &str, path: &str, headers: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let end = all.windows(4).position(|w| w == b"\r\n\r\n").expect("response head");
        let head = String::from_utf8_lossy(&all[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let hs = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (status, hs, all[end + 4..].to_vec())
    }

    fn get(&self, path: &str) -> Vec<u8> {
        let (status, _, body) = self.request("GET", path, "");
        assert_eq!(status, 200, "GET {path}");
        body
    }

    fn text(&self, path: &str) -> String {
        String::from_utf8(self.get(path)).unwrap()
    }
}

fn header<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// What `ffmpeg -v error -i URL -map 0 -f null -` prints (empty: a clean decode).
fn ffmpeg_errors(url: &str) -> String {
    common::require_tool("ffmpeg");
    let out = common::run(
        Command::new("ffmpeg").args(["-nostdin", "-v", "error", "-i", url, "-map", "0", "-f", "null", "-"]),
    );
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        s.push_str(&format!("\nffmpeg exited with {}", out.status));
    }
    s
}

/// ffprobe's format duration of a URL or file.
fn probe_duration(what: &str) -> f64 {
    common::require_tool("ffprobe");
    common::duration(Path::new(what))
}

/// ffprobe's duration of the first video stream of a file.
fn video_stream_duration(path: &Path) -> f64 {
    let out = common::run(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=duration", "-of", "csv=p=0"])
            .arg(path),
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
}

/// The `tfdt` and the sum of the `trun` sample durations of a media segment (parsed here,
/// not by loomiere).
fn fragment_times(seg: &[u8]) -> (u64, u64) {
    let boxes = common::mp4_boxes(seg);
    let tfdt = boxes.iter().find(|b| &b.kind == b"tfdt").expect("tfdt");
    let body = &seg[tfdt.offset + tfdt.header..tfdt.offset + tfdt.size];
    let decode =
        if body[0] == 1 { u64::from_be_bytes(body[4..12].try_into().unwrap()) } else { u64::from(be32(body, 4)) };
    let trun = boxes.iter().find(|b| &b.kind == b"trun").expect("trun");
    let body = &seg[trun.offset + trun.header..trun.offset + trun.size];
    let flags = be32(body, 0) & 0xff_ffff;
    let count = be32(body, 4) as usize;
    let mut at = 8;
    if flags & 0x1 != 0 {
        at += 4;
    }
    if flags & 0x4 != 0 {
        at += 4;
    }
    assert!(flags & 0x100 != 0, "trun without sample durations");
    let per = [0x100, 0x200, 0x400, 0x800].iter().filter(|&&f| flags & f != 0).count() * 4;
    let total = (0..count).map(|i| u64::from(be32(body, at + i * per))).sum();
    (decode, total)
}

/// The media playlists a multivariant playlist names (URIs, relative to the movie).
fn media_playlists(master: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut next_is_uri = false;
    for line in master.lines() {
        if next_is_uri {
            out.push(line.to_string());
            next_is_uri = false;
        } else if line.starts_with("#EXT-X-STREAM-INF") {
            next_is_uri = true;
        } else if line.starts_with("#EXT-X-MEDIA:") {
            if let Some(u) = line.split("URI=\"").nth(1) {
                out.push(u.split('"').next().unwrap().to_string());
            }
        }
    }
    out
}

/// Segment URIs and EXTINF durations of a media playlist.
fn segments(playlist: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut dur = None;
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            dur = Some(d.trim_end_matches(',').parse::<f64>().unwrap());
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((line.to_string(), dur.take().expect("EXTINF before a segment")));
        }
    }
    out
}

#[test]
fn hls_and_dash_decode_cleanly_with_the_source_duration() {
    let serve = Serve::start("decode");
    let src = common::media("short.mp4");
    let want = common::duration(&src);
    for manifest in ["master.m3u8", "manifest.mpd"] {
        let url = serve.url(&format!("/short.mp4/{manifest}"));
        assert_eq!(ffmpeg_errors(&url), "", "{manifest}");
        let got = probe_duration(&url);
        assert!((got - want).abs() < 0.05, "{manifest}: duration {got}, source {want}");
    }
}

#[test]
fn a_clip_has_the_clips_duration_and_carries_its_query() {
    let serve = Serve::start("clip");
    let want = probe_duration(&serve.url("/short.mp4?start=10&end=40"));
    for manifest in ["master.m3u8", "manifest.mpd"] {
        let url = serve.url(&format!("/short.mp4/{manifest}?start=10&end=40"));
        assert_eq!(ffmpeg_errors(&url), "", "{manifest}");
        let got = probe_duration(&url);
        assert!((got - want).abs() < 0.1, "{manifest}: clip duration {got}, progressive clip {want}");
    }
    let master = serve.text("/short.mp4/master.m3u8?start=10&end=40");
    for uri in media_playlists(&master) {
        assert!(uri.ends_with("?start=10&end=40"), "{uri}");
        let playlist = serve.text(&format!("/short.mp4/{uri}"));
        assert!(playlist.contains("#EXT-X-MAP:URI=\"init.mp4?start=10&end=40\""), "{playlist}");
        for (seg, _) in segments(&playlist) {
            assert!(seg.ends_with("?start=10&end=40"), "{seg}");
        }
    }
}

#[test]
fn every_segments_tfdt_continues_the_previous_one() {
    let serve = Serve::start("tfdt");
    for query in ["", "?start=10&end=40"] {
        let master = serve.text(&format!("/short.mp4/master.m3u8{query}"));
        let playlists = media_playlists(&master);
        assert_eq!(playlists.len(), 2, "{master}");
        for uri in playlists {
            let dir = uri.split('/').next().unwrap();
            let playlist = serve.text(&format!("/short.mp4/{uri}"));
            let mut expect: Option<u64> = None;
            for (seg, _) in segments(&playlist) {
                let body = serve.get(&format!("/short.mp4/{dir}/{seg}"));
                let (tfdt, dur) = fragment_times(&body);
                if let Some(e) = expect {
                    assert_eq!(tfdt, e, "{dir}/{seg}{query}: tfdt does not continue the previous segment");
                }
                expect = Some(tfdt + dur);
            }
        }
    }
}

#[test]
fn the_two_hour_files_last_segment_ends_at_the_movies_end() {
    let serve = Serve::start("long");
    let src = common::media("long.mp4");
    let want = video_stream_duration(&src);
    let playlist = serve.text("/long.mp4/v1/index.m3u8");
    let segs = segments(&playlist);
    let sum: f64 = segs.iter().map(|(_, d)| d).sum();
    assert!((sum - want).abs() < 0.001 * segs.len() as f64, "EXTINF sum {sum}, video {want}");
    // Timescale from the MPD, first and last tfdt from the segments.
    let mpd = serve.text("/long.mp4/manifest.mpd");
    let ts: f64 = mpd.split("timescale=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    let (first, _) = fragment_times(&serve.get(&format!("/long.mp4/v1/{}", segs[0].0)));
    let (last, dur) = fragment_times(&serve.get(&format!("/long.mp4/v1/{}", segs.last().unwrap().0)));
    let end = (last + dur - first) as f64 / ts;
    assert!((end - want).abs() < 0.001, "last segment ends at {end} s, video lasts {want} s");
}

#[test]
fn players_can_load_it_cors_ranges_types_and_refusals() {
    let serve = Serve::start("http");
    let (status, hs, _) = serve.request("GET", "/short.mp4/master.m3u8", "Origin: http://player.example\r\n");
    assert_eq!(status, 200);
    assert_eq!(header(&hs, "content-type"), Some("application/vnd.apple.mpegurl"));
    assert_eq!(header(&hs, "access-control-allow-origin"), Some("*"));
    assert!(header(&hs, "access-control-expose-headers").unwrap().contains("Content-Range"));
    let (_, hs, _) = serve.request("GET", "/short.mp4/manifest.mpd", "");
    assert_eq!(header(&hs, "content-type"), Some("application/dash+xml"));
    let whole = serve.get("/short.mp4/v1/2.m4s");
    let (status, hs, part) = serve.request("GET", "/short.mp4/v1/2.m4s", "Range: bytes=100-1099\r\n");
    assert_eq!(status, 206);
    assert_eq!(header(&hs, "content-type"), Some("video/mp4"));
    assert_eq!(part, whole[100..1100]);
    let (status, hs, _) = serve.request("OPTIONS", "/short.mp4/v1/2.m4s", "Access-Control-Request-Headers: range\r\n");
    assert_eq!(status, 204);
    assert!(header(&hs, "access-control-allow-headers").unwrap().contains("Range"));
    for (path, want) in [
        ("/short.mp4/v1/999.m4s", 404),
        ("/short.mp4/a1/1.m4s", 404),
        ("/short.mp4/v9/index.m3u8", 404),
        ("/short.mp4/v1/0.m4s", 403),
        ("/short.mp4/nothing.m3u8", 403),
        ("/missing.mp4/master.m3u8", 404),
        ("/short.flv/master.m3u8", 403),
        ("/short.mp4/master.m3u8?start=70", 400),
    ] {
        let (status, _, _) = serve.request("GET", path, "");
        assert_eq!(status, want, "{path}");
    }
}

/// Runs the binary as a CGI program for `path_info` below the movie `script` (as a web
/// server does with `cgi.assign` by extension) and returns the body.
fn cgi(conf: &Path, script: &str, path_info: &str) -> Vec<u8> {
    cgi_query(conf, script, path_info, "")
}

fn cgi_query(conf: &Path, script: &str, path_info: &str, query: &str) -> Vec<u8> {
    let out = common::run(
        common::loomiere()
            .env_clear()
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("REQUEST_METHOD", "GET")
            .env("SCRIPT_NAME", script)
            .env("PATH_INFO", path_info)
            .env("QUERY_STRING", query)
            .env("LOOMIERE_CONFIG", conf),
    );
    assert!(out.status.success(), "CGI {script}{path_info}: {}", String::from_utf8_lossy(&out.stderr));
    let end = out.stdout.windows(4).position(|w| w == b"\r\n\r\n").expect("CGI head");
    let head = String::from_utf8_lossy(&out.stdout[..end]);
    assert!(head.starts_with("Status: 200"), "{head}");
    out.stdout[end + 4..].to_vec()
}

#[test]
fn the_cgi_keeps_the_index_and_answers_what_serve_answers() {
    let dir = common::scratch("package-cgi-conf");
    let cache = dir.join("index");
    std::fs::create_dir_all(&cache).unwrap();
    let conf = dir.join("stream.conf");
    std::fs::write(
        &conf,
        format!(
            "document_root = {:?}\nindex_cache = {:?}\n",
            common::media_dir().display().to_string(),
            cache.display().to_string()
        ),
    )
    .unwrap();
    let serve = Serve::start("cgi");
    for tail in ["/v1/600.m4s", "/a2/17.m4s", "/master.m3u8", "/v1/iframes.m3u8", "/manifest.mpd"] {
        let first = cgi(&conf, "/long.mp4", tail);
        let again = cgi(&conf, "/long.mp4", tail);
        assert!(first == again, "{tail}: a second CGI answer (index from the cache) differs");
        assert!(first == serve.get(&format!("/long.mp4{tail}")), "{tail}: CGI and serve differ");
    }
    // A clip is answered like serve's, and leaves no file of its own.
    for start in ["100", "101.5"] {
        let q = format!("start={start}");
        let clipped = cgi_query(&conf, "/long.mp4", "/v1/3.m4s", &q);
        assert!(clipped == serve.get(&format!("/long.mp4/v1/3.m4s?{q}")), "clip {q}: CGI and serve differ");
    }
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(files.len(), 1, "one index file for the movie, none for clips");
}

/// The cues ffmpeg reads from `input`'s subtitle stream, as WebVTT text without the header.
fn ffmpeg_cues(input: &str) -> String {
    let out = common::run(
        Command::new("ffmpeg").args(["-nostdin", "-v", "error", "-i", input, "-map", "0:s", "-f", "webvtt", "-"]),
    );
    assert!(out.status.success(), "{input}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_start_matches("WEBVTT").trim().to_string()
}

#[test]
fn tx3g_subtitles_are_served_as_webvtt() {
    common::require_tool("ffmpeg");
    let dir = common::scratch("package-subtitles-media");
    let movie = dir.join("subs.mp4");
    common::with_subtitles(
        "1\n00:00:01,000 --> 00:00:03,500\nHello & friends\n\n2\n00:00:14,000 --> 00:00:20,000\nAcross a boundary\n",
        &movie,
    );
    let serve = Serve::start_in("subtitles", &dir);
    let master = serve.text("/subs.mp4/master.m3u8");
    assert!(master.contains("TYPE=SUBTITLES") && master.contains("LANGUAGE=\"eng\""), "{master}");
    let (status, hs, body) = serve.request("GET", "/subs.mp4/s3/all.vtt", "");
    assert_eq!(status, 200);
    assert_eq!(header(&hs, "content-type"), Some("text/vtt"));
    let all = String::from_utf8(body).unwrap();
    assert!(all.contains("00:00:01.000 --> 00:00:03.500\nHello &amp; friends"), "{all}");
    // The cue across the 18 s boundary is in both segments' documents.
    for n in [3, 4] {
        let seg = serve.text(&format!("/subs.mp4/s3/{n}.vtt"));
        assert!(seg.contains("Across a boundary"), "{n}.vtt: {seg}");
    }
    assert!(!serve.text("/subs.mp4/s3/5.vtt").contains("-->"));
    // DASH: ffmpeg decodes everything (subtitles re-encoded as WebVTT) and reads the same cue
    // texts as from the source file.
    let mpd = serve.url("/subs.mp4/manifest.mpd");
    let out = common::run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i", &mpd, "-map", "0", "-c:s", "webvtt", "-f", "null", "-"]),
    );
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let texts = |cues: &str| {
        cues.lines().filter(|l| !l.contains("-->") && !l.is_empty()).map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(texts(&ffmpeg_cues(&mpd)), texts(&ffmpeg_cues(movie.to_str().unwrap())));
}

#[test]
fn a_signed_manifest_signs_every_url_it_names() {
    let dir = common::scratch("package-signed-conf");
    let conf = dir.join("stream.conf");
    let secret = "a secret of at least sixteen characters";
    std::fs::write(
        &conf,
        format!("document_root = {:?}\nsecret = {secret:?}\n", common::media_dir().display().to_string()),
    )
    .unwrap();
    let serve = Serve::start_with("signed", &["--config".as_ref(), conf.as_os_str()]);
    let expires = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let q = loomiere::http::signed::query(secret, "/short.mp4", expires);
    let (status, _, _) = serve.request("GET", "/short.mp4/master.m3u8", "");
    assert_eq!(status, 403, "unsigned manifest");
    let (status, _, _) = serve.request("GET", "/short.mp4/v1/1.m4s", "");
    assert_eq!(status, 403, "unsigned segment");
    let master = serve.text(&format!("/short.mp4/master.m3u8?start=5&{q}"));
    for uri in media_playlists(&master) {
        assert!(uri.contains("sig=") && uri.contains("start=5"), "{uri}");
        let dir = uri.split('/').next().unwrap();
        let playlist = serve.text(&format!("/short.mp4/{uri}"));
        let (seg, _) = &segments(&playlist)[1];
        assert!(!serve.get(&format!("/short.mp4/{dir}/{seg}")).is_empty());
        let init = playlist.split("URI=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(!serve.get(&format!("/short.mp4/{dir}/{init}")).is_empty());
    }
    let mpd = serve.text(&format!("/short.mp4/manifest.mpd?{q}"));
    assert!(mpd.contains("sig="), "{mpd}");
}

#[test]
fn unsupported_and_misaligned_tracks_are_left_out_with_a_log_line() {
    common::require_tool("ffmpeg");
    let dir = common::scratch("package-unsupported");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    // Track 1 H.264, 2 AAC, 3 MPEG-4 Part 2 (`mp4v`), 4 H.264 with other keyframes, 5 a copy
    // of track 1 (a rendition whose keyframes line up).
    let out = common::run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-t", "12", "-i"])
            .arg(common::media("short.mp4"))
            .args(["-map", "0:v", "-map", "0:a", "-map", "0:v", "-map", "0:v", "-map", "0:v", "-c", "copy"])
            .args(["-c:v:1", "mpeg4", "-c:v:2", "libx264", "-g:v:2", "37", "-s:v:2", "160x120"])
            .arg(root.join("tracks.mp4")),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = dir.join("serve.log");
    let serve = Serve::start_logging(&log, &[root.as_os_str()]);
    let master = serve.text("/tracks.mp4/master.m3u8");
    assert_eq!(master.matches("#EXT-X-STREAM-INF").count(), 2, "{master}");
    assert!(master.contains("\nv1/index.m3u8") && master.contains("\nv5/index.m3u8"), "{master}");
    assert!(!master.contains("v3/") && !master.contains("v4/"), "{master}");
    assert_eq!(ffmpeg_errors(&serve.url("/tracks.mp4/master.m3u8")), "");
    assert_eq!(ffmpeg_errors(&serve.url("/tracks.mp4/manifest.mpd")), "");
    for path in ["/tracks.mp4/v3/1.m4s", "/tracks.mp4/v4/index.m3u8"] {
        let (status, _, _) = serve.request("GET", path, "");
        assert_eq!(status, 404, "{path}");
    }
    drop(serve);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("left out of HLS/DASH: track 3: video codec mp4v is not packaged"), "{logged}");
    assert!(logged.contains("track 4: its keyframes do not line up with track 1's"), "{logged}");
}

#[test]
fn inspect_shows_the_segment_layout() {
    let out =
        common::run(common::loomiere().arg("inspect").arg(common::media("short.mp4")).args(["--segments=6", "--json"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let segments = v["segments"]["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 10);
    let frames: u64 = segments.iter().map(|s| s["parts"][0]["samples"].as_u64().unwrap()).sum();
    assert_eq!(frames, 1500, "every video frame in exactly one segment");
    assert!(segments.iter().all(|s| (s["duration"].as_f64().unwrap() - 6.0).abs() < 1e-6));
    assert!(v["inspect"]["tracks"].is_array());
    let text = common::run(common::loomiere().arg("inspect").arg(common::media("short.mp4")).arg("--segments"));
    assert!(String::from_utf8_lossy(&text.stdout).contains("segments of about 6 s: 10"));
    let flv = common::run(common::loomiere().arg("inspect").arg(common::media("short.flv")).arg("--segments"));
    assert!(!flv.status.success());
    assert!(String::from_utf8_lossy(&flv.stderr).contains("--segments is for MP4 files"));
}

/// Makes `name` in `root` from short.mp4 with ffmpeg `args` (output options).
fn make_from_short(root: &Path, name: &str, args: &[&str]) {
    common::require_tool("ffmpeg");
    let out = common::run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(common::media("short.mp4"))
            .args(args)
            .arg(root.join(name)),
    );
    assert!(out.status.success(), "ffmpeg {name}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn fragmented_sources_are_packaged_too() {
    let dir = common::scratch("package-fmp4");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let copy = ["-map", "0", "-c", "copy"];
    make_from_short(&root, "keyframe.mp4", &[&copy[..], &["-movflags", "frag_keyframe+empty_moov"]].concat());
    make_from_short(&root, "cmaf.mp4", &[&copy[..], &["-f", "mp4", "-movflags", "cmaf"]].concat());
    make_from_short(
        &root,
        "audio.mp4",
        &["-map", "0:a", "-c", "copy", "-frag_duration", "2000000", "-movflags", "empty_moov"],
    );
    let serve = Serve::start_logging(&dir.join("serve.log"), &[root.as_os_str()]);
    let want = common::duration(&common::media("short.mp4"));
    for name in ["keyframe.mp4", "cmaf.mp4", "audio.mp4"] {
        for manifest in ["master.m3u8", "manifest.mpd"] {
            let url = serve.url(&format!("/{name}/{manifest}"));
            assert_eq!(ffmpeg_errors(&url), "", "{name} {manifest}");
            let got = probe_duration(&url);
            assert!((got - want).abs() < 0.1, "{name} {manifest}: duration {got}, source {want}");
        }
        // Every track's segments continue each other and are plans over the source.
        let master = serve.text(&format!("/{name}/master.m3u8"));
        let mut playlists = media_playlists(&master);
        playlists.sort();
        playlists.dedup();
        assert_eq!(playlists.len(), if name == "audio.mp4" { 1 } else { 2 }, "{master}");
        for uri in playlists {
            let track = uri.split('/').next().unwrap();
            let playlist = serve.text(&format!("/{name}/{uri}"));
            let mut expect: Option<u64> = None;
            for (seg, _) in segments(&playlist) {
                let (tfdt, dur) = fragment_times(&serve.get(&format!("/{name}/{track}/{seg}")));
                if let Some(e) = expect {
                    assert_eq!(tfdt, e, "{name} {track}/{seg}: tfdt does not continue the previous segment");
                }
                expect = Some(tfdt + dur);
            }
        }
    }
    // The 2-hour file as fMP4 is cut where its progressive copy is.
    let long = common::media("long.mp4");
    let out = common::run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(&long)
            .args(["-map", "0", "-c", "copy", "-movflags", "frag_keyframe+empty_moov"])
            .arg(root.join("long-frag.mp4")),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::hard_link(&long, root.join("long.mp4"))
        .or_else(|_| std::fs::copy(&long, root.join("long.mp4")).map(|_| ()))
        .unwrap();
    for track in ["v1", "a2"] {
        let frag = segments(&serve.text(&format!("/long-frag.mp4/{track}/index.m3u8")));
        let progressive = segments(&serve.text(&format!("/long.mp4/{track}/index.m3u8")));
        assert_eq!(frag.len(), progressive.len(), "{track}: segment count");
        // The audio's first segment may differ by the priming ffmpeg's remux keeps.
        let (f0, p0) = (frag[0].1, progressive[0].1);
        assert!((f0 - p0).abs() < 0.05, "{track}: first segment {f0} s against {p0} s");
        assert!(frag[1..] == progressive[1..], "{track}: the segments after the first differ");
    }
    // A clip of a fragmented source.
    let url = serve.url("/cmaf.mp4/manifest.mpd?start=10&end=40");
    assert_eq!(ffmpeg_errors(&url), "");
    let got = probe_duration(&url);
    assert!((got - 30.0).abs() < 0.1, "clip of cmaf.mp4: {got}");
    // The CGI (a process per request, fragment index through index_cache) answers the same.
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let conf = dir.join("stream.conf");
    std::fs::write(
        &conf,
        format!("document_root = {:?}\nindex_cache = {:?}\n", root.display().to_string(), cache.display().to_string()),
    )
    .unwrap();
    for tail in ["/master.m3u8", "/v1/index.m3u8", "/a2/init.mp4", "/v1/3.m4s"] {
        assert_eq!(cgi(&conf, "/keyframe.mp4", tail), serve.get(&format!("/keyframe.mp4{tail}")), "{tail}");
    }
    // A large file's fragment index is kept in index_cache by the first request and read by
    // the next ones, which answer the same.
    for tail in ["/v1/600.m4s", "/v1/600.m4s", "/a2/1200.m4s"] {
        assert_eq!(cgi(&conf, "/long-frag.mp4", tail), serve.get(&format!("/long-frag.mp4{tail}")), "{tail}");
    }
    let kept: Vec<String> =
        std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(kept.iter().any(|n| n.ends_with(".fragments")), "{kept:?}");
}

/// Two renditions of the first 20 s of short.mp4 with the same keyframe times (a keyframe
/// every 2 s, no scene-cut keyframes), one more with keyframes every 1.48 s, and sidecars.
fn make_ladder(root: &Path) {
    let x264 = |size: &str, rate: &str, gop: &str| -> Vec<String> {
        ["-t", "20", "-map", "0", "-c:v", "libx264", "-preset", "ultrafast", "-g", gop, "-keyint_min", gop]
            .iter()
            .chain(&["-sc_threshold", "0", "-s", size, "-b:v", rate, "-c:a", "copy"])
            .map(|s| s.to_string())
            .collect()
    };
    std::fs::create_dir_all(root.join("title/low")).unwrap();
    for (name, args) in [
        ("title/hi.mp4", x264("320x240", "400k", "50")),
        ("title/low/lo.mp4", x264("160x120", "100k", "50")),
        ("title/odd.mp4", x264("160x120", "100k", "37")),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        make_from_short(root, name, &args);
    }
    std::fs::write(root.join("title/title.ladder"), "# renditions of one title, best first\nhi.mp4\nlow/lo.mp4\n")
        .unwrap();
    std::fs::write(root.join("title/bad.ladder"), "hi.mp4\nodd.mp4\n").unwrap();
    std::fs::write(root.join("title/evil.ladder"), "hi.mp4\n../../etc/passwd.mp4\n").unwrap();
    std::fs::write(root.join("title/missing.ladder"), "hi.mp4\nnone.mp4\n").unwrap();
}

#[test]
fn a_ladder_presents_several_files_as_one_title() {
    let dir = common::scratch("package-ladder-media");
    let root = dir.join("root");
    make_ladder(&root);
    let log = dir.join("serve.log");
    let serve = Serve::start_logging(&log, &[root.as_os_str()]);
    // Every variant decodes: -map 0 takes both videos and the audio.
    for manifest in ["master.m3u8", "manifest.mpd"] {
        let url = serve.url(&format!("/title/title.ladder/{manifest}"));
        assert_eq!(ffmpeg_errors(&url), "", "{manifest}");
        let out = common::run(
            Command::new("ffprobe")
                .args(["-v", "error", "-show_entries", "stream=codec_type,width", "-of", "csv=p=0"])
                .arg(&url),
        );
        let mut streams: Vec<String> =
            String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
        streams.sort();
        streams.dedup();
        assert_eq!(streams, vec!["audio", "video,160", "video,320"], "{manifest}");
        let got = probe_duration(&url);
        assert!((got - 20.0).abs() < 0.1, "{manifest}: duration {got}");
    }
    // The playlist parses: a variant per rendition, under r1/ and r2/, one audio group.
    use m3u8_rs::Playlist;
    let master = serve.get("/title/title.ladder/master.m3u8");
    let Ok(Playlist::MasterPlaylist(m)) = m3u8_rs::parse_playlist_res(&master) else { panic!("master") };
    let uris: Vec<&str> = m.variants.iter().filter(|v| !v.is_i_frame).map(|v| v.uri.as_str()).collect();
    assert_eq!(uris, vec!["r1/v1/index.m3u8", "r2/v1/index.m3u8"]);
    assert!(m.variants[0].bandwidth > m.variants[1].bandwidth);
    assert_eq!(m.variants[1].resolution.map(|r| (r.width, r.height)), Some((160, 120)));
    assert_eq!(m.alternatives.len(), 1);
    assert_eq!(m.alternatives[0].uri.as_deref(), Some("r1/a2/index.m3u8"));
    // The MPD parses and conforms: two video representations, one audio.
    let mpd = dash_mpd_core::parse(&serve.text("/title/title.ladder/manifest.mpd")).unwrap();
    let sets = &mpd.periods[0].adaptations;
    let ids: Vec<&str> = sets.iter().flat_map(|s| &s.representations).filter_map(|r| r.id.as_deref()).collect();
    assert_eq!(ids, vec!["r1v1", "r2v1", "r1a2"]);
    assert!(dash_mpd_core::check_conformity(&mpd).is_empty(), "{:?}", dash_mpd_core::check_conformity(&mpd));
    // Rendition URLs: segments of the second file, the same bytes as its own packaging.
    assert_eq!(serve.get("/title/title.ladder/r2/v1/2.m4s"), serve.get("/title/low/lo.mp4/v1/2.m4s"));
    for (path, want) in [
        ("/title/title.ladder/r3/v1/1.m4s", 404),
        ("/title/title.ladder/r1/v1/99.m4s", 404),
        ("/title/title.ladder", 403),
        ("/title/title.ladder/r1/master.m3u8", 403),
        ("/title/missing.ladder/master.m3u8", 404),
        ("/title/evil.ladder/master.m3u8", 500),
        ("/title/nothing.ladder/master.m3u8", 404),
    ] {
        let (status, _, _) = serve.request("GET", path, "");
        assert_eq!(status, want, "{path}");
    }
    // Renditions whose keyframes do not line up are refused, naming the files and the time.
    let (status, _, body) = serve.request("GET", "/title/bad.ladder/master.m3u8", "");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("hi.mp4 at 6.000 s but odd.mp4 at 7.400 s"), "{body}");
    let (status, _, _) = serve.request("GET", "/title/bad.ladder/manifest.mpd", "");
    assert_eq!(status, 409);
}

#[test]
fn a_signed_ladder_signs_its_sidecar_path() {
    let dir = common::scratch("package-ladder-signed");
    let root = dir.join("root");
    make_ladder(&root);
    let conf = dir.join("stream.conf");
    let secret = "a secret of at least sixteen characters";
    std::fs::write(&conf, format!("document_root = {:?}\nsecret = {secret:?}\n", root.display().to_string())).unwrap();
    let serve = Serve::start_logging(&dir.join("serve.log"), &["--config".as_ref(), conf.as_os_str()]);
    let expires = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let q = loomiere::http::signed::query(secret, "/title/title.ladder", expires);
    for path in ["/title/title.ladder/master.m3u8", "/title/title.ladder/r2/v1/1.m4s"] {
        let (status, _, _) = serve.request("GET", path, "");
        assert_eq!(status, 403, "unsigned {path}");
    }
    let master = serve.text(&format!("/title/title.ladder/master.m3u8?{q}"));
    for uri in media_playlists(&master) {
        assert!(uri.contains("sig="), "{uri}");
        let dir = uri.rsplit_once('/').unwrap().0;
        let playlist = serve.text(&format!("/title/title.ladder/{uri}"));
        let (seg, _) = &segments(&playlist)[1];
        assert!(!serve.get(&format!("/title/title.ladder/{dir}/{seg}")).is_empty());
    }
    // The CGI answers the same.
    let cgi_conf = dir.join("cgi.conf");
    std::fs::write(&cgi_conf, format!("document_root = {:?}\n", root.display().to_string())).unwrap();
    for tail in ["/master.m3u8", "/manifest.mpd", "/r2/v1/index.m3u8", "/r2/v1/3.m4s", "/r1/a2/init.mp4"] {
        let plain = Serve::start_logging(&dir.join("plain.log"), &[root.as_os_str()]);
        assert_eq!(
            cgi(&cgi_conf, "/title/title.ladder", tail),
            plain.get(&format!("/title/title.ladder{tail}")),
            "{tail}"
        );
    }
}

#[test]
fn hevc_dolby_and_opus_tracks_are_packaged_with_their_codec_strings() {
    let dir = common::scratch("package-codecs-media");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let x265 = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:keyint=50:scenecut=0"];
    // HEVC (hvc1) with AC-3 5.1, E-AC-3 stereo, Opus and FLAC (not packaged) audio.
    let mut args = vec!["-t", "12", "-map", "0:v", "-map", "0:a", "-map", "0:a", "-map", "0:a", "-map", "0:a"];
    args.extend(x265);
    args.extend(["-tag:v", "hvc1", "-c:a:0", "ac3", "-ac:a:0", "6", "-c:a:1", "eac3", "-c:a:2", "libopus"]);
    args.extend(["-c:a:3", "flac", "-strict", "-2"]);
    make_from_short(&root, "codecs.mp4", &args);
    // HEVC tagged hev1 (parameter sets in band) with AAC.
    let mut args = vec!["-t", "12", "-map", "0:v", "-map", "0:a"];
    args.extend(x265);
    args.extend(["-tag:v", "hev1", "-c:a", "copy"]);
    make_from_short(&root, "hev1.mp4", &args);
    let log = dir.join("serve.log");
    let serve = Serve::start_logging(&log, &[root.as_os_str()]);
    for name in ["codecs.mp4", "hev1.mp4"] {
        for manifest in ["master.m3u8", "manifest.mpd"] {
            let url = serve.url(&format!("/{name}/{manifest}"));
            assert_eq!(ffmpeg_errors(&url), "", "{name} {manifest}");
        }
    }
    // Every packaged stream decodes, with its channels.
    let out = common::run(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=codec_name,channels", "-of", "csv=p=0"])
            .arg(serve.url("/codecs.mp4/manifest.mpd")),
    );
    let mut streams: Vec<String> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim_end_matches(',').into()).collect();
    streams.retain(|s| !s.is_empty());
    streams.sort();
    streams.dedup();
    assert_eq!(streams, vec!["ac3,6", "eac3,2", "hevc", "opus,2"]);
    // One audio group per codec, a variant per group, codec strings from the sample entries.
    let master = serve.text("/codecs.mp4/master.m3u8");
    let hevc = master.split("CODECS=\"").nth(1).unwrap().split(',').next().unwrap().to_string();
    assert!(hevc.starts_with("hvc1.1.6.L"), "{master}");
    for (group, codec, channels) in
        [("audio-ac-3", "ac-3", "6"), ("audio-ec-3", "ec-3", "2"), ("audio-opus", "opus", "2")]
    {
        assert!(master.contains(&format!("GROUP-ID=\"{group}\"")), "{master}");
        assert!(master.contains(&format!("CHANNELS=\"{channels}\",URI")), "{master}");
        assert!(master.contains(&format!("CODECS=\"{hevc},{codec}\"")), "{master}");
        assert!(master.contains(&format!("AUDIO=\"{group}\"")), "{master}");
    }
    assert!(!master.contains("a5/"), "{master}");
    let mpd = serve.text("/codecs.mp4/manifest.mpd");
    for codecs in ["ac-3", "ec-3", "opus"] {
        assert!(mpd.contains(&format!("codecs=\"{codecs}\"")), "{mpd}");
    }
    assert!(mpd.contains("tag:dolby.com,2014:dash:audio_channel_configuration:2011\" value=\"F801\""), "{mpd}");
    let parsed = dash_mpd_core::parse(&mpd).unwrap();
    assert_eq!(parsed.periods[0].adaptations.len(), 4, "a video set and an audio set per codec");
    let master = serve.text("/hev1.mp4/master.m3u8");
    assert!(master.contains("CODECS=\"hev1.1.6.L"), "{master}");
    drop(serve);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("left out of HLS/DASH: track 5: audio codec fLaC is not packaged"), "{logged}");
}

/// What `serve` answers on its async threads (`http::respond_held`): a package or a seek the
/// movie cache holds, answered exactly as the blocking path answers it; anything that would
/// read a file or build an index (a movie or package not held, a seek not remembered, FLV, a
/// whole file) is left to that path, and counts nothing in the cache's statistics.
#[test]
fn held_answers_come_from_memory_and_match_the_blocking_path() {
    use loomiere::http::{respond_cached, respond_held, Body, HttpRequest, Response};
    let cfg = loomiere::config::Config::with_root(common::media_dir()).unwrap();
    let cache = loomiere::media::MovieCache::new(4);
    let bytes = |r: &Response| match &r.body {
        Body::Plan { plan, range } => loomiere::sink::read_range(plan, range.clone()).unwrap(),
        other => panic!("not a plan: {other:?}"),
    };
    let same = |a: &Response, b: &Response| {
        assert_eq!((a.status, &a.headers), (b.status, &b.headers));
        assert_eq!(bytes(a), bytes(b));
    };
    let segment = HttpRequest::get("/short.mp4/v1/2.m4s", "");
    assert!(respond_held(&cfg, &segment, &cache).is_none(), "nothing is held yet");
    assert_eq!(cache.stats(), Default::default());
    let cold = respond_cached(&cfg, &segment, &cache);
    assert_eq!(cold.status, 200);
    same(&respond_held(&cfg, &segment, &cache).expect("the package is held"), &cold);
    let ranged = HttpRequest { range: Some("bytes=10-99".into()), ..HttpRequest::get("/short.mp4/v1/init.mp4", "") };
    let cold = respond_cached(&cfg, &ranged, &cache);
    assert_eq!(cold.status, 206);
    same(&respond_held(&cfg, &ranged, &cache).expect("the package is held"), &cold);

    // The movie is held, this seek's plan is not: made off the async threads, then remembered.
    let seek = HttpRequest::get("/short.mp4", "start=2");
    assert!(respond_held(&cfg, &seek, &cache).is_none());
    let cold = respond_cached(&cfg, &seek, &cache);
    assert_eq!(cold.status, 200);
    same(&respond_held(&cfg, &seek, &cache).expect("the plan is remembered"), &cold);
    let head = HttpRequest { method: "HEAD".into(), ..seek.clone() };
    let held = respond_held(&cfg, &head, &cache).unwrap();
    assert!(matches!(held.body, Body::Empty) && held.headers == cold.headers);

    // What reads the file whatever is held.
    for (path, query) in [("/short.flv", "start=2s"), ("/short.mp4", ""), ("/still.png", "")] {
        assert!(respond_held(&cfg, &HttpRequest::get(path, query), &cache).is_none(), "{path}?{query}");
    }
    // Refusals found before anything is read are answered as they are.
    let status = |p: &str| respond_held(&cfg, &HttpRequest::get(p, ""), &cache).map(|r| r.status);
    assert_eq!(status("/missing.mp4"), Some(404));
    assert_eq!(status("/missing.mp4/master.m3u8"), Some(404));
    assert_eq!(status("/%2e%2e/short.mp4"), Some(403));
    assert_eq!(status("/short.mp4/v1/99999.m4s"), Some(404));

    let s = cache.stats();
    assert_eq!((s.segment_index_hits, s.segment_index_misses), (4, 1), "{s:?}");
    assert_eq!((s.plan_hits, s.plan_misses, s.movie_hits, s.movie_misses), (2, 1, 1, 1), "{s:?}");
}
