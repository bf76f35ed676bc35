//! The directory page (routed by the core, so `serve`, inetd and CGI alike): a listing of the sub-directories and served files with an
//! HTML5 `<video>` player and a start-time box — clicking an MP4 plays
//! `file.mp4?start=S` in the page. Only when the configuration's `listing` is on. The
//! directory is found with the same confinement rules as files ([`path::normalize`] on a
//! probe name inside it), then must canonicalise inside the document root.
//!
//! With a `secret`, a listing is a resource like any other: its URL must be signed (the
//! directory's path with its trailing slash, `/` or `/sub/`) or it is refused with 403
//! ([`authorize`], checked before anything is read from the directory), and every link on a
//! signed page carries a signature with the page's own expiry, so a granted page grants its
//! files and sub-directories for as long as it lasts.

use crate::config::Config;
use crate::http::path::{self, Target};
use crate::http::percent::encode_path;
use crate::http::{query::Query, signed, Body, Response};
use crate::media::Kind;
use std::path::{Path, PathBuf};

/// Most entries listed; more are summarised.
const MAX_ENTRIES: usize = 2000;

/// A directory to list: its real path and its URL path (ending in `/`).
pub struct Dir {
    pub real: PathBuf,
    pub url: String,
}

/// The directory a request path names, if it names one inside the root.
pub fn resolve(cfg: &Config, target: &Target) -> Option<Dir> {
    let Target::Url(raw) = target else { return None };
    let ext = cfg.extensions.first()?;
    let probe = format!("{}/_.{ext}", raw.trim_end_matches('/'));
    let rel = path::normalize(cfg, &Target::Url(probe)).ok()?;
    let comps = rel.components.get(..rel.components.len().checked_sub(1)?)?;
    let joined = cfg.document_root.join(comps.iter().collect::<PathBuf>());
    let real = joined.canonicalize().ok()?;
    if !real.starts_with(&cfg.document_root) && !cfg.follow_symlinks {
        return None;
    }
    if !real.is_dir() {
        return None;
    }
    let mut url = String::from("/");
    for c in comps {
        url.push_str(c);
        url.push('/');
    }
    Some(Dir { real, url })
}

/// The signature check for a listing request (query `raw_query`, time `now`): `Ok(None)`
/// without a secret, `Ok(Some(expires))` for a valid signature (the page's links are signed
/// until then), else the refusal to send.
pub fn authorize(
    cfg: &Config,
    dir: &Dir,
    raw_query: &str,
    now: std::time::SystemTime,
) -> Result<Option<u64>, Box<Response>> {
    let Some(secret) = &cfg.secret else { return Ok(None) };
    let q = Query::parse(raw_query).map_err(|e| Box::new(Response::error(400, Some(e.to_string()))))?;
    let now_secs = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    match signed::verify(secret, &dir.url, q.expires.as_deref(), q.sig.as_deref(), now_secs) {
        // `verify` accepted it, so it is a number.
        Ok(()) => Ok(q.expires.and_then(|e| e.parse().ok())),
        Err(e) => Err(Box::new(Response::error(403, Some(format!("{}: {e}", dir.url))))),
    }
}

/// The parent directory's URL path of `url` (`/a/b/` → `/a/`).
fn parent(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(i) => trimmed.get(..=i).unwrap_or("/").to_string(),
        None => "/".into(),
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

struct Entry {
    name: String,
    dir: bool,
    len: u64,
    kind: Option<Kind>,
}

fn entries(cfg: &Config, dir: &Path) -> (Vec<Entry>, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    let Ok(rd) = std::fs::read_dir(dir) else { return (out, 0) };
    for e in rd.flatten() {
        let Ok(name) = e.file_name().into_string() else { continue };
        if name.starts_with('.') || name.chars().any(|c| c.is_control() || c == '\\') {
            continue;
        }
        // Follows symlinks; the file itself is confined again when it is requested.
        let Ok(meta) = std::fs::metadata(e.path()) else { continue };
        let kind = Kind::of(Path::new(&name));
        let served = Path::new(&name).extension().and_then(|x| x.to_str()).is_some_and(|x| cfg.allows_extension(x));
        if !(meta.is_dir() || (meta.is_file() && served)) {
            continue;
        }
        if out.len() >= MAX_ENTRIES {
            skipped += 1;
            continue;
        }
        out.push(Entry { name, dir: meta.is_dir(), len: meta.len(), kind });
    }
    out.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    (out, skipped)
}

fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// The listing page for `dir` (body left out for HEAD). With `signed_until` (see
/// [`authorize`]) every link carries a signature valid until then.
pub fn page(cfg: &Config, dir: &Dir, head_only: bool, signed_until: Option<u64>) -> Response {
    let (list, skipped) = entries(cfg, &dir.real);
    let title = escape(&dir.url);
    // The href of a decoded URL path, signed when the page is.
    let link = |path: &str| {
        let mut href = encode_path(path);
        if let (Some(secret), Some(expires)) = (&cfg.secret, signed_until) {
            href.push('?');
            href.push_str(&signed::query(secret, path, expires));
        }
        escape(&href)
    };
    let mut items = String::new();
    if dir.url != "/" {
        items.push_str(&format!("<li><a href=\"{}\">../</a></li>\n", link(&parent(&dir.url))));
    }
    for e in &list {
        let name = escape(&e.name);
        if e.dir {
            let href = link(&format!("{}{}/", dir.url, e.name));
            items.push_str(&format!("<li><a href=\"{href}\">{name}/</a></li>\n"));
            continue;
        }
        let href = link(&format!("{}{}", dir.url, e.name));
        if e.kind == Some(Kind::Mp4) {
            items.push_str(&format!(
                "<li><a class=\"play\" href=\"{href}\">{name}</a> <small>{}</small> \
                 <a class=\"get\" href=\"{href}\" download>download</a></li>\n",
                size(e.len)
            ));
        } else {
            items.push_str(&format!("<li><a href=\"{href}\">{name}</a> <small>{}</small></li>\n", size(e.len)));
        }
    }
    if skipped > 0 {
        items.push_str(&format!("<li>… and {skipped} more</li>\n"));
    }
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loomiere: {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em}}video{{width:100%;max-width:854px;background:#000}}
li{{margin:.3em 0}}small{{color:#666}}#bar{{margin:.5em 0}}</style></head>
<body><h1>{title}</h1>
<video id="player" controls preload="metadata"></video>
<div id="bar"><label>Start at <input id="start" type="number" min="0" step="0.1" value="0" size="6"> s</label>
<span id="playing"></span></div>
<ul id="files">
{items}</ul>
<script>
document.querySelectorAll('a.play').forEach(function (a) {{
  a.addEventListener('click', function (ev) {{
    ev.preventDefault();
    var s = parseFloat(document.getElementById('start').value) || 0;
    var href = a.getAttribute('href');
    var url = href + (s > 0 ? (href.indexOf('?') < 0 ? '?' : '&') + 'start=' + s : '');
    var v = document.getElementById('player');
    v.src = url;
    document.getElementById('playing').textContent = url;
    v.play();
  }});
}});
</script>
</body></html>
"#
    );
    let headers = vec![
        ("Content-Type", "text/html; charset=utf-8".to_string()),
        ("Content-Length", html.len().to_string()),
        ("Cache-Control", "no-cache".to_string()),
    ];
    let body = if head_only { Body::Empty } else { Body::Text(html) };
    Response { status: 200, headers, body, log: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn resolves_only_directories_inside_the_root() {
        let root = std::env::temp_dir().join(format!("loomiere-listing-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.mp4"), b"x").unwrap();
        let cfg = Config::with_root(&root).unwrap();
        let url = |p: &str| Target::Url(p.into());
        assert_eq!(resolve(&cfg, &url("/")).unwrap().url, "/");
        assert_eq!(resolve(&cfg, &url("/sub")).unwrap().url, "/sub/");
        assert_eq!(resolve(&cfg, &url("//sub/")).unwrap().url, "/sub/");
        for bad in ["/a.mp4", "/missing/", "/../", "/%2e%2e/", "/sub/../../", "/.git/"] {
            assert!(resolve(&cfg, &url(bad)).is_none(), "{bad}");
        }
        let page = page(&cfg, &resolve(&cfg, &url("/")).unwrap(), false, None);
        let Body::Text(html) = page.body else { panic!() };
        assert!(html.contains("href=\"/a.mp4\"") && html.contains("href=\"/sub/\""), "{html}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn signed_listing_signs_its_links() {
        let root = std::env::temp_dir().join(format!("loomiere-listing-signed-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a b.mp4"), b"x").unwrap();
        let mut cfg = Config::with_root(&root).unwrap();
        let key = "0123456789abcdef";
        cfg.secret = Some(key.into());
        let dir = resolve(&cfg, &Target::Url("/sub".into())).unwrap();
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(100);
        assert_eq!(authorize(&cfg, &dir, "", now).unwrap_err().status, 403);
        assert_eq!(authorize(&cfg, &dir, &signed::query(key, "/", 200), now).unwrap_err().status, 403);
        assert_eq!(authorize(&cfg, &dir, &signed::query(key, "/sub/", 50), now).unwrap_err().status, 403);
        let until = authorize(&cfg, &dir, &signed::query(key, "/sub/", 200), now).unwrap();
        assert_eq!(until, Some(200));
        let Body::Text(html) = page(&cfg, &dir, false, until).body else { panic!() };
        let file = format!("href=\"/sub/a%20b.mp4?{}\"", escape(&signed::query(key, "/sub/a b.mp4", 200)));
        let up = format!("href=\"/?{}\"", escape(&signed::query(key, "/", 200)));
        assert!(html.contains(&file) && html.contains(&up), "{html}");
        cfg.secret = None;
        assert_eq!(authorize(&cfg, &dir, "", now).unwrap(), None);
        assert_eq!(parent("/a/b/"), "/a/");
        assert_eq!(parent("/a/"), "/");
        let _ = std::fs::remove_dir_all(&root);
    }
}
