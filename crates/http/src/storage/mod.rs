//! Media in S3-compatible object storage (`[storage]` in stream.conf), for `serve`: the
//! object source (identity = length + ETag, ranged GETs signed with SigV4 by the
//! `object_store` crate), the answer of one request from the store, and the hooks `serve`
//! calls. The engine stays unchanged and runtime-free: an object's top-level boxes other than
//! the media data (`ftyp`, `moov`, `moof`…, never `mdat`'s payload) are fetched once into a
//! sparse local "shadow" file of the object's length in the persistent index cache
//! ([`index`]), the engine plans on that file as on any other — a `Source` with the object's
//! length, Last-Modified and `Version::Tag(ETag)`, so the movie cache (with its packages) and the
//! answers' validators know the object, not the file — and the plan's data pieces (ranges of
//! the object) are fetched from the store by the async sender ([`send`]) and streamed to the
//! client with back-pressure. No whole object is ever held in memory or on disk. Progressive
//! answers and HLS/DASH below a movie (`http::package::answer_opened`) both work this way.
//!
//! Storage requests an answer costs (`X-Storage-Requests` on the answer): a cold
//! seek = one HEAD + one or two ranged GETs for the boxes + one ranged GET per data range; a
//! warm one (index on disk, identity known within `revalidate_secs`) = one ranged GET per
//! data range, sent with `If-Match: <ETag>` so a changed object is noticed and re-indexed.

#[cfg(feature = "storage")]
pub mod index;
#[cfg(feature = "storage")]
pub mod send;
#[cfg(feature = "storage")]
mod store;
#[cfg(feature = "storage")]
pub use store::*;

use crate::config::Config;
use crate::http::Response;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[storage]` as written.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    endpoint: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    prefix: Option<String>,
    allow_http: Option<bool>,
    credentials_file: Option<PathBuf>,
    index_dir: Option<PathBuf>,
    index_max_bytes: Option<u64>,
    storage_timeout_secs: Option<u64>,
    revalidate_secs: Option<u64>,
}

/// A validated `[storage]` table. Credentials are not part of it: they are read from the
/// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or from
/// `credentials_file` when the store is opened, and never logged.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageConfig {
    /// The S3 endpoint (`https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:8333`).
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Prepended to the request path to make the object key (`videos/` + `a/b.mp4`).
    pub prefix: String,
    /// Whether a plain-HTTP endpoint is accepted.
    pub allow_http: bool,
    /// A file of `AWS_ACCESS_KEY_ID=…` / `AWS_SECRET_ACCESS_KEY=…` lines, used when the
    /// environment has no key.
    pub credentials_file: Option<PathBuf>,
    /// The persistent index cache (shadow files of the objects' boxes, see [`index`]).
    pub index_dir: PathBuf,
    /// Its bound in bytes (least recently used entries removed beyond it).
    pub index_max_bytes: u64,
    /// How long one storage request may take before the answer is 504.
    pub timeout: Duration,
    /// How long an object's identity (length, ETag) is trusted before a HEAD asks again.
    pub revalidate: Duration,
}

impl StorageConfig {
    /// Checks `[storage]`; the message names the key.
    pub fn validate(raw: RawStorage) -> Result<StorageConfig, String> {
        let need = |v: Option<String>, key: &str| {
            v.filter(|s| !s.trim().is_empty()).ok_or_else(|| format!("storage: {key} is required"))
        };
        let endpoint = need(raw.endpoint, "endpoint")?;
        let allow_http = raw.allow_http.unwrap_or(false);
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(format!("storage: endpoint {endpoint:?} must start with https:// or http://"));
        }
        if endpoint.starts_with("http://") && !allow_http {
            return Err(format!("storage: endpoint {endpoint:?} is plain HTTP: set allow_http = true to use it"));
        }
        let bucket = need(raw.bucket, "bucket")?;
        let index_dir = raw.index_dir.ok_or_else(|| "storage: index_dir is required".to_string())?;
        if !index_dir.is_absolute() {
            return Err(format!("storage: index_dir {} must be an absolute path", index_dir.display()));
        }
        if let Some(f) = &raw.credentials_file {
            if !f.is_absolute() {
                return Err(format!("storage: credentials_file {} must be an absolute path", f.display()));
            }
        }
        let secs = raw.storage_timeout_secs.unwrap_or(10);
        if !(1..=600).contains(&secs) {
            return Err(format!("storage: storage_timeout_secs {secs} must be between 1 and 600"));
        }
        let revalidate = raw.revalidate_secs.unwrap_or(10);
        if revalidate > 86_400 {
            return Err(format!("storage: revalidate_secs {revalidate} must be at most 86400"));
        }
        let index_max_bytes = raw.index_max_bytes.unwrap_or(1 << 30);
        if index_max_bytes < 1 << 20 {
            return Err(format!("storage: index_max_bytes {index_max_bytes} is below 1048576"));
        }
        let prefix = raw.prefix.unwrap_or_default().trim_matches('/').to_string();
        Ok(StorageConfig {
            endpoint,
            bucket,
            region: raw.region.unwrap_or_else(|| "us-east-1".into()),
            prefix,
            allow_http,
            credentials_file: raw.credentials_file,
            index_dir,
            index_max_bytes,
            timeout: Duration::from_secs(secs),
            revalidate: Duration::from_secs(revalidate),
        })
    }

    /// The object key of a request path (`/a/b.mp4` → `prefix/a/b.mp4`).
    pub fn key(&self, url_path: &str) -> String {
        let p = url_path.trim_start_matches('/');
        if self.prefix.is_empty() {
            p.to_string()
        } else {
            format!("{}/{p}", self.prefix)
        }
    }
}

/// `Cache-Control` for a cache in front: media answers (and their 304s) may be kept for
/// `cache_max_age_secs`; errors are not marked (a cache applies its own short default).
pub fn add_cache_headers(cfg: &Config, resp: &mut Response) {
    let Some(age) = cfg.cache_max_age else { return };
    // An answer that says its own (a packager's manifest or segment) keeps it.
    if resp.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("Cache-Control")) {
        return;
    }
    if matches!(resp.status, 200 | 206 | 304) {
        resp.headers.push(("Cache-Control", format!("public, max-age={age}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(endpoint: &str, allow_http: Option<bool>) -> RawStorage {
        RawStorage {
            endpoint: Some(endpoint.into()),
            bucket: Some("media".into()),
            region: None,
            prefix: Some("/videos/".into()),
            allow_http,
            credentials_file: None,
            index_dir: Some("/tmp/x".into()),
            index_max_bytes: None,
            storage_timeout_secs: None,
            revalidate_secs: None,
        }
    }

    #[test]
    fn plain_http_needs_allow_http() {
        let e = StorageConfig::validate(raw("http://127.0.0.1:8333", None)).unwrap_err();
        assert!(e.contains("allow_http"), "{e}");
        let c = StorageConfig::validate(raw("http://127.0.0.1:8333", Some(true))).unwrap();
        assert_eq!(c.key("/a/b.mp4"), "videos/a/b.mp4");
        assert_eq!(c.timeout, Duration::from_secs(10));
    }

    #[test]
    fn media_answers_are_cacheable_errors_are_not() {
        let dir = std::env::temp_dir().join(format!("loomiere-cache-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("x.jpg"), b"not really a picture").unwrap();
        let mut cfg = Config::with_root(&dir).unwrap();
        let at = std::time::SystemTime::now();
        let plain = crate::http::respond_full(&cfg, &crate::http::HttpRequest::get("/x.jpg", ""), at);
        assert_eq!(plain.header("Cache-Control"), None, "off unless configured");
        cfg.cache_max_age = Some(600);
        let ok = crate::http::respond_full(&cfg, &crate::http::HttpRequest::get("/x.jpg", ""), at);
        assert_eq!((ok.status, ok.header("Cache-Control")), (200, Some("public, max-age=600")));
        let missing = crate::http::respond_full(&cfg, &crate::http::HttpRequest::get("/y.jpg", ""), at);
        assert_eq!((missing.status, missing.header("Cache-Control")), (404, None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_table_in_stream_conf() {
        let dir = std::env::temp_dir();
        let text = format!(
            "document_root = {:?}\ncache_max_age_secs = 60\n[storage]\nendpoint = \"https://s3.example\"\n\
             bucket = \"media\"\nindex_dir = \"/var/cache/x\"\nstorage_timeout_secs = 3\n",
            dir.display().to_string()
        );
        let c = Config::parse(&text, std::path::Path::new("t.conf")).unwrap();
        assert_eq!(c.cache_max_age, Some(60));
        let s = c.storage.unwrap();
        assert_eq!((s.bucket.as_str(), s.timeout, s.region.as_str()), ("media", Duration::from_secs(3), "us-east-1"));
        let bad = text.replace("storage_timeout_secs = 3", "storage_timeout_secs = 0");
        let e = Config::parse(&bad, std::path::Path::new("t.conf")).unwrap_err().to_string();
        assert!(e.contains("storage_timeout_secs"), "{e}");
        let unknown = text.replace("bucket =", "bukket =");
        assert!(Config::parse(&unknown, std::path::Path::new("t.conf")).is_err());
    }
}
