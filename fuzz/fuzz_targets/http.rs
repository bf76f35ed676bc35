//! Fuzz target `http`: arbitrary bytes as an HTTP request head, answered by the shared core
//! (`http::respond`) under a document root that holds the MP4 and FLV seeds, a symlink out of
//! the root and a secret file beside it. Any panic is a bug; so is an answer whose body is
//! not confined to the root (the secret's bytes must never appear).
#![no_main]

use libfuzzer_sys::fuzz_target;
use loomiere::config::Config;
use loomiere::http::{self, wire, Body};
use std::path::PathBuf;
use std::sync::OnceLock;

const SECRET: &[u8] = b"loomiere-fuzz-secret-outside-the-root";

fn setup() -> &'static (Config, PathBuf) {
    static SETUP: OnceLock<(Config, PathBuf)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("loomiere-fuzz-http-{}", std::process::id()));
        let root = base.join("root");
        let _ = std::fs::create_dir_all(root.join("sub"));
        let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let _ = std::fs::copy(corpus.join("mp4/faststart.mp4"), root.join("a.mp4"));
        let _ = std::fs::copy(corpus.join("mp4/moovend.mp4"), root.join("sub/b.mp4"));
        let _ = std::fs::copy(corpus.join("flv/h264-keyframes.flv"), root.join("c.flv"));
        let _ = std::fs::write(base.join("secret.mp4"), SECRET);
        let _ = std::os::unix::fs::symlink(base.join("secret.mp4"), root.join("out.mp4"));
        let cfg = Config::with_root(&root).expect("fuzz document root");
        (cfg, base)
    })
}

fuzz_target!(|data: &[u8]| {
    let (cfg, _) = setup();
    let len = wire::head_len(data).unwrap_or(data.len()).min(data.len());
    let Ok(parsed) = wire::parse(&data[..len]) else { return };
    let resp = http::respond(cfg, &parsed.request);
    let _ = resp.http_head(parsed.http10, parsed.keep_alive, std::time::SystemTime::UNIX_EPOCH);
    if let Body::Plan { plan, range } = &resp.body {
        if range.end - range.start <= 1 << 20 {
            let bytes = loomiere::sink::read_range(plan, range.clone()).expect("planned bytes are readable");
            assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET), "a file outside the root was served");
        }
    }
});
