//! HLS and DASH end to end: `loomiere serve` on a free loopback port (killed by PID on drop),
//! its playlists, MPD and segments judged by ffmpeg/ffprobe and by parsing the fragments'
//! `tfdt`/`trun` independently of loomiere's code. No timed assertions.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `loomiere serve` over the test media; killed on drop.
struct Serve {
    child: Child,
    addr: String,
}

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
        let mut child = common::loomiere()
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--threads", "2"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start loomiere serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().trim_start_matches("http://").trim_end_matches('/').to_string();
        if addr.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve did not start: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        Serve { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
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

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let srt = dir.join("cues.srt");
    std::fs::write(
        &srt,
        "1\n00:00:01,000 --> 00:00:03,500\nHello & friends\n\n2\n00:00:14,000 --> 00:00:20,000\nAcross a boundary\n",
    )
    .unwrap();
    let movie = dir.join("subs.mp4");
    let out = common::run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(common::media("short.mp4"))
            .arg("-i")
            .arg(&srt)
            .args(["-map", "0", "-map", "1", "-c", "copy", "-c:s", "mov_text", "-metadata:s:s:0", "language=eng"])
            .arg(&movie),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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
