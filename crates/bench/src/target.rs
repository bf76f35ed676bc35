//! Bench targets: parsing `http[s]://host[:port]/path?query` URLs and the loopback-only rule.
//! Only 127.0.0.0/8, `::1` and the name `localhost` are accepted; any other host is refused
//! before anything is resolved or connected, because this load generator must never be
//! pointed at someone else's machine.

use loomiere_engine::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One URL to load, already resolved to a loopback socket address.
#[derive(Clone, Debug)]
pub struct Target {
    /// The URL as given (for reports).
    pub url: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header value (`host[:port]` as written in the URL).
    pub host_header: String,
    /// Path and query, without any fragment; starts with `/`.
    pub path: String,
    /// `https://`: the connection is TLS.
    pub tls: bool,
    /// The host as the TLS server name (an IP address or `localhost`, no brackets or port).
    pub server_name: String,
}

impl Target {
    /// Parses an `http://` or `https://` URL and checks that its host is a loopback address.
    pub fn parse(url: &str) -> Result<Target> {
        let bad = |why: &str| Error::bad_request(format!("{url}: {why}"));
        let (rest, tls) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (rest, false),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (rest, true),
            Some((scheme, _)) => {
                return Err(bad(&format!("scheme {scheme:?} is not supported (only http:// and https://)")))
            }
            None => return Err(bad("not a URL (expected http://127.0.0.1:PORT/path)")),
        };
        let rest = rest.split('#').next().unwrap_or("");
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("the path contains spaces or control characters"));
        }
        if authority.contains('@') {
            return Err(bad("user information in URLs is not supported"));
        }
        let (host, port) =
            split_host_port(authority, if tls { 443 } else { 80 }).ok_or_else(|| bad("cannot read host and port"))?;
        let ip = loopback_ip(host).ok_or_else(|| {
            Error::bad_request(format!(
                "{url}: refusing non-loopback target {host:?}: bench only loads 127.0.0.0/8, ::1 or localhost"
            ))
        })?;
        Ok(Target {
            url: url.to_string(),
            addr: SocketAddr::new(ip, port),
            host_header: authority.to_string(),
            path,
            tls,
            server_name: host.to_ascii_lowercase(),
        })
    }

    /// The request target with its `start` parameter set to `start` (any `start` already
    /// in the query is replaced, other parameters are kept in order), or with no `start` at
    /// all for `None`.
    pub fn path_with_start(&self, start: Option<&str>) -> String {
        let (path, query) = self.path.split_once('?').unwrap_or((&self.path, ""));
        let mut params: Vec<&str> =
            query.split('&').filter(|p| !p.is_empty() && p.split('=').next() != Some("start")).collect();
        let start = start.map(|s| format!("start={s}"));
        if let Some(s) = &start {
            params.push(s);
        }
        if params.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", params.join("&"))
        }
    }

    /// True when the URL's query already has a `start` parameter.
    pub fn has_start(&self) -> bool {
        self.path.split_once('?').is_some_and(|(_, q)| q.split('&').any(|p| p.split('=').next() == Some("start")))
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to `default_port`.
fn split_host_port(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => p.parse().ok().filter(|&p| p != 0)?,
    };
    (!host.is_empty()).then_some((host, port))
}

/// The loopback address `host` stands for, or `None` when it is not loopback. Names other
/// than `localhost` are never resolved.
fn loopback_ip(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    match host.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) if v4.is_loopback() => Some(IpAddr::V4(v4)),
        IpAddr::V6(v6) if v6 == Ipv6Addr::LOCALHOST => Some(IpAddr::V6(v6)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_forms() {
        let t = Target::parse("http://127.0.0.1:8080/a/b.mp4?x=1#frag").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.path, "/a/b.mp4?x=1");
        assert_eq!(t.host_header, "127.0.0.1:8080");
        assert_eq!(t.path_with_start(Some("1.500")), "/a/b.mp4?x=1&start=1.500");
        assert!(!t.has_start());
        let t = Target::parse("http://127.0.0.1:8080/a.mp4?start=0&x=1&start=9&starts=2").unwrap();
        assert!(t.has_start());
        assert_eq!(t.path_with_start(Some("7.250")), "/a.mp4?x=1&starts=2&start=7.250");
        assert_eq!(t.path_with_start(None), "/a.mp4?x=1&starts=2");
        let t = Target::parse("http://127.0.0.1:8080/a.mp4?start=0").unwrap();
        assert_eq!(t.path_with_start(None), "/a.mp4");
        assert_eq!(t.path_with_start(Some("3")), "/a.mp4?start=3");
        let t = Target::parse("http://[::1]:9/v.flv").unwrap();
        assert_eq!(t.addr, "[::1]:9".parse().unwrap());
        assert_eq!(t.path_with_start(Some("2.000s")), "/v.flv?start=2.000s");
        let t = Target::parse("HTTP://LocalHost").unwrap();
        assert_eq!(t.addr.port(), 80);
        assert_eq!(t.path, "/");
        assert!(Target::parse("http://127.200.3.4:1/").is_ok());
        let t = Target::parse("https://[::1]/v.mp4").unwrap();
        assert!(t.tls);
        assert_eq!(t.addr, "[::1]:443".parse().unwrap());
        assert_eq!(t.server_name, "::1");
        assert!(!Target::parse("http://localhost/").unwrap().tls);
        assert_eq!(Target::parse("http://127.0.0.1:5?q").unwrap().path, "/?q");
    }

    #[test]
    fn refuses_everything_else() {
        for url in [
            "http://10.0.0.1/x",
            "http://192.168.1.1:80/",
            "http://example.com/",
            "http://localhost.example.com/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0:80/",
            "http://[::]:80/",
            "ftp://127.0.0.1/",
            "https://10.0.0.1/",
            "127.0.0.1:80/x",
            "http://user@127.0.0.1/",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:80/a b",
            "http://:80/",
            "http://[::1/",
        ] {
            assert!(Target::parse(url).is_err(), "{url} should be refused");
        }
        let e = Target::parse("http://8.8.8.8/").unwrap_err().to_string();
        assert!(e.contains("loopback"), "{e}");
    }
}
