//! The store client (the `storage` feature: `object_store` with SigV4), the identities of the
//! objects it has seen, and the answer of one request from the store; see the module above.

use super::{index, send, StorageConfig};
use crate::config::Config;
use crate::http::{self, HttpRequest, Response};
use crate::media::Kind;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// What a storage request failed with, sorted by what the client is told.
#[derive(Debug)]
pub enum StoreError {
    /// No such object: 404.
    NotFound,
    /// The object changed since its identity was read (`If-Match` failed): re-index.
    Changed,
    /// No answer within `storage_timeout_secs`: 504.
    TimedOut,
    /// Anything else the store said or did (403, 500, a reset): 502, with the store's words
    /// for the log.
    Failed(String),
}

impl StoreError {
    fn from_store(e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound,
            object_store::Error::Precondition { .. } => StoreError::Changed,
            e => StoreError::Failed(e.to_string()),
        }
    }

    /// The answer for a request that hit this error.
    pub fn response(&self, url: &str) -> Response {
        match self {
            StoreError::NotFound => http::Response::refused(404, url, "no such file"),
            StoreError::TimedOut => http::Response::error_private(
                504,
                "the media store did not answer in time",
                format!("{url}: the media store did not answer within storage_timeout_secs"),
            ),
            StoreError::Changed => http::Response::error_private(
                502,
                "the file changed while it was read",
                format!("{url}: the object changed while it was read"),
            ),
            StoreError::Failed(why) => http::Response::error_private(
                502,
                "the media store failed",
                format!("{url}: the media store failed: {}", why.replace(['\n', '\r'], " ")),
            ),
        }
    }
}

/// One version of one object: what caches key on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub key: String,
    pub len: u64,
    /// The store's entity tag (quotes kept as the store gave them).
    pub etag: String,
    pub modified: Option<SystemTime>,
}

/// The store client with its counters and the identities it has seen.
pub struct Store {
    s3: AmazonS3,
    pub cfg: StorageConfig,
    /// Storage requests made since start (HEAD and GET).
    pub requests: AtomicU64,
    /// Identities read by HEAD, with when.
    known: Mutex<HashMap<String, (Identity, Instant)>>,
    pub index: index::IndexDir,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        write!(f, "Store({} bucket {})", self.cfg.endpoint, self.cfg.bucket)
    }
}

/// Reads `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) from the
/// environment, else from `file` (`KEY=value` lines, `#` comments).
fn credentials(file: Option<&std::path::Path>) -> Result<Option<(String, String, Option<String>)>, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Some((id, secret, env("AWS_SESSION_TOKEN"))));
    }
    let Some(file) = file else { return Ok(None) };
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("storage: credentials_file {}: {}", file.display(), crate::error::plain_io(&e)))?;
    let mut vals: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            vals.insert(k.trim().to_ascii_uppercase(), v.trim().trim_matches('"').to_string());
        }
    }
    match (vals.remove("AWS_ACCESS_KEY_ID"), vals.remove("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Ok(Some((id, secret, vals.remove("AWS_SESSION_TOKEN")))),
        _ => Err(format!(
            "storage: credentials_file {} has no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY lines",
            file.display()
        )),
    }
}

impl Store {
    /// A client for `cfg` (no request is made here).
    pub fn open(cfg: &StorageConfig) -> Result<Store, String> {
        // The store's HTTP client (reqwest) is built without a TLS crypto provider of its own
        // (see Cargo.toml): ring, as for `serve`'s listener, becomes the process default
        // first. Installing fails only when a provider is already installed, which serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = AmazonS3Builder::new()
            .with_endpoint(&cfg.endpoint)
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_virtual_hosted_style_request(false)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(cfg.timeout)
                    .with_connect_timeout(cfg.timeout.min(Duration::from_secs(5))),
            )
            // allow_http lives in the client options: set after them, or they would reset it.
            .with_allow_http(cfg.allow_http)
            // One try: the answer's own deadline (storage_timeout_secs) is the bound, and a cache
            // in front retries on another origin.
            .with_retry(RetryConfig { max_retries: 0, retry_timeout: cfg.timeout, ..RetryConfig::default() });
        match credentials(cfg.credentials_file.as_deref())? {
            Some((id, secret, token)) => {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
                if let Some(t) = token {
                    b = b.with_token(t);
                }
            }
            None => b = b.with_skip_signature(true),
        }
        let s3 = b.build().map_err(|e| format!("storage: {e}"))?;
        Ok(Store {
            s3,
            cfg: cfg.clone(),
            requests: AtomicU64::new(0),
            known: Mutex::new(HashMap::new()),
            index: index::IndexDir::new(cfg.index_dir.clone(), cfg.index_max_bytes),
        })
    }

    fn path(key: &str) -> Result<ObjectPath, StoreError> {
        ObjectPath::parse(key).map_err(|_| StoreError::NotFound)
    }

    /// Runs one storage request under the timeout, counting it in `count` and the total.
    async fn timed<T>(
        &self,
        count: &AtomicU64,
        fut: impl std::future::Future<Output = object_store::Result<T>>,
    ) -> Result<T, StoreError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        count.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(self.cfg.timeout, fut).await {
            Err(_) => Err(StoreError::TimedOut),
            Ok(r) => r.map_err(|e| {
                // A timeout of the client itself is the same thing.
                let text = format!("{e:?}");
                if text.contains("TimedOut") || text.contains("timed out") || text.contains("operation timed out") {
                    StoreError::TimedOut
                } else {
                    StoreError::from_store(e)
                }
            }),
        }
    }

    /// The object's identity: remembered for `revalidate_secs`, else a HEAD.
    pub async fn identity(&self, key: &str, count: &AtomicU64, fresh: bool) -> Result<Identity, StoreError> {
        if !fresh {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((id, at)) = known.get(key) {
                if at.elapsed() < self.cfg.revalidate {
                    return Ok(id.clone());
                }
            }
        }
        let path = Store::path(key)?;
        let meta = self.timed(count, self.s3.head(&path)).await?;
        let id = Identity {
            key: key.to_string(),
            len: meta.size,
            etag: meta.e_tag.unwrap_or_default(),
            modified: Some(SystemTime::from(meta.last_modified)),
        };
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() > 100_000 {
            known.clear();
        }
        known.insert(key.to_string(), (id.clone(), Instant::now()));
        Ok(id)
    }

    /// Forgets what is known of `key` (it changed).
    pub fn forget(&self, key: &str) {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Bytes `range` of one version of an object, whole (small reads: box headers, a moov).
    pub async fn read(
        &self,
        id: &Identity,
        range: std::ops::Range<u64>,
        count: &AtomicU64,
    ) -> Result<bytes::Bytes, StoreError> {
        let path = Store::path(&id.key)?;
        let want = range.end - range.start;
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            if_match: (!id.etag.is_empty()).then(|| id.etag.clone()),
            ..GetOptions::default()
        };
        let bytes = self.timed(count, async { self.s3.get_opts(&path, opts).await?.bytes().await }).await?;
        if bytes.len() as u64 != want {
            return Err(StoreError::Failed(format!("the store sent {} bytes for a range of {want}", bytes.len())));
        }
        Ok(bytes)
    }

    /// Bytes `range` of one version of an object as a stream of chunks (plan data).
    pub async fn stream(
        &self,
        id: &Identity,
        range: std::ops::Range<u64>,
        count: &AtomicU64,
    ) -> Result<send::ChunkStream, StoreError> {
        let path = Store::path(&id.key)?;
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            if_match: (!id.etag.is_empty()).then(|| id.etag.clone()),
            ..GetOptions::default()
        };
        let got = self.timed(count, self.s3.get_opts(&path, opts)).await?;
        Ok(got.into_stream())
    }
}

/// What `serve` holds for storage: the store for the `[storage]` table in force.
#[derive(Default)]
pub struct StorageState {
    current: Mutex<Option<(StorageConfig, Arc<Store>)>>,
}

impl StorageState {
    /// The store for `cfg`, opened anew when the table changed (a reload).
    pub fn store(&self, cfg: &StorageConfig) -> Result<Arc<Store>, String> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((c, s)) = cur.as_ref() {
            if c == cfg {
                return Ok(s.clone());
            }
        }
        let s = Arc::new(Store::open(cfg)?);
        *cur = Some((cfg.clone(), s.clone()));
        Ok(s)
    }
}

/// What a storage answer sends: the response, and for a plan body the object its data pieces
/// come from, with the first data range's stream already open (so a store failure is still a
/// clean error status).
pub struct Answer {
    pub response: Response,
    pub remote: Option<send::Remote>,
}

/// Answers `req` from the object store: the same checks, in the same order, as the local
/// path (method, query, path, signature), then the object's identity, its index (from the
/// disk cache or fetched), the plan, and the first data range opened.
pub async fn answer(
    cfg: Arc<Config>,
    st: &StorageState,
    req: HttpRequest,
    movies: Arc<crate::media::MovieCache>,
) -> Answer {
    let plain = |response| Answer { response, remote: None };
    let Some(scfg) = cfg.storage.clone() else {
        return plain(Response::error(500, Some("no [storage] configured".into())));
    };
    let store = match st.store(&scfg) {
        Ok(s) => s,
        Err(e) => return plain(Response::error_private(500, "the media store is not configured right", e)),
    };
    // HLS/DASH below a movie (`/movie.mp4/master.m3u8`): the movie is the object.
    let (movie_req, package) = match http::package::split(&req.target) {
        Some((target, preq)) => (HttpRequest { target, ..req.clone() }, Some(preq)),
        None => (req.clone(), None),
    };
    let (rel, q) = match http::stand_in::check_request(&cfg, &movie_req, SystemTime::now()) {
        Ok(x) => x,
        Err(r) => return plain(*r),
    };
    let url = rel.url_path();
    let Some(kind) = rel.kind() else {
        return plain(Response::refused(404, &url, "no such file"));
    };
    if package.is_some() && kind != Kind::Mp4 {
        return plain(Response::refused(404, &url, "not an MP4 movie"));
    }
    let request = match http::media_request(kind, &q) {
        Ok(r) => r,
        Err(e) => return plain(Response::refused(400, &url, &e.to_string())),
    };
    if kind == Kind::Flv && request.start.is_some() {
        return plain(Response::refused(
            501,
            &url,
            "seeking FLV files in object storage is not supported yet: ask without start for the whole file",
        ));
    }
    let key = scfg.key(&url);
    let ext = rel.fs_path().extension().and_then(|e| e.to_str()).unwrap_or("bin").to_ascii_lowercase();
    let count = AtomicU64::new(0);
    // Two tries: the second after the object turned out to have changed under a known ETag.
    let mut fresh = false;
    for _ in 0..2 {
        let id = match store.identity(&key, &count, fresh).await {
            Ok(id) => id,
            Err(e) => return plain(e.response(&url)),
        };
        let shadow = match index::shadow_for(&store, &id, &ext, kind, cfg.max_moov_bytes, &count).await {
            Ok(p) => p,
            Err(index::IndexError::Store(StoreError::Changed)) => {
                store.forget(&key);
                fresh = true;
                continue;
            }
            Err(index::IndexError::Store(e)) => return plain(e.response(&url)),
            Err(index::IndexError::Engine(e)) => {
                return plain(Response::refused(e.http_status(), &url, &e.to_string()))
            }
        };
        let (cfg2, req2, id2, url2, request2) = (cfg.clone(), req.clone(), id.clone(), url.clone(), request.clone());
        let movies2 = movies.clone();
        let (rel2, q2) = (rel.clone(), q.clone());
        let planned = tokio::task::spawn_blocking(move || {
            // The shadow file with the object's identity: its length, Last-Modified and ETag
            // are what the movie cache keys on and what the answer's validators say.
            let opened = match std::fs::File::open(&shadow) {
                Ok(f) => {
                    let source = crate::source::Source::new(
                        Arc::new(f),
                        id2.len,
                        id2.modified,
                        crate::source::Version::Tag(id2.etag.as_str().into()),
                    );
                    http::path::Opened { real: shadow, kind, source }
                }
                Err(e) => return Response::error_private(500, "the index cache failed", e.to_string()),
            };
            match package {
                Some(preq) => {
                    let mut r = http::package::answer_opened(
                        &cfg2,
                        &req2,
                        &preq,
                        &rel2,
                        &q2,
                        opened,
                        Some(&http::Movies::all(&movies2)),
                    );
                    if cfg2.cors {
                        http::package::cors_headers(&mut r);
                    }
                    if req2.method == "HEAD" {
                        r.body = http::Body::Empty;
                    }
                    r
                }
                None => http::stand_in::answer_source(&cfg2, &req2, &url2, opened, &request2, &movies2),
            }
        })
        .await;
        let mut response = match planned {
            Ok(r) => r,
            Err(e) => return plain(Response::error(500, Some(format!("request handler failed: {e}")))),
        };
        let mut remote = None;
        if req.method == "GET" {
            if let http::Body::Plan { plan, range } = &response.body {
                match send::Remote::open(store.clone(), id.clone(), plan, range.clone(), &count).await {
                    Ok(r) => remote = Some(r),
                    Err(StoreError::Changed) => {
                        store.forget(&key);
                        fresh = true;
                        continue;
                    }
                    Err(e) => return plain(e.response(&url)),
                }
            }
        }
        let total = count.load(Ordering::Relaxed) + remote.as_ref().map_or(0, |r| r.ranges_left());
        response.headers.push(("X-Storage-Requests", total.to_string()));
        return Answer { response, remote };
    }
    plain(StoreError::Changed.response(&url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_never_printed_with_credentials() {
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "very-secret-key");
        let raw: super::super::RawStorage =
            toml::from_str("endpoint = \"https://s3.example\"\nbucket = \"media\"\nindex_dir = \"/tmp/x\"").unwrap();
        let c = StorageConfig::validate(raw).unwrap();
        let s = Store::open(&c).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("very-secret-key") && !shown.contains("AKIDEXAMPLE"), "{shown}");
    }
}
