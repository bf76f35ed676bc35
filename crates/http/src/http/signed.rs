//! Signed, expiring URLs (in the spirit of nginx's `secure_link`): when the configuration has
//! a `secret`, every request must carry `expires=<unix seconds>&sig=<hex>` where `sig` is
//! `HMAC-SHA256(secret, "<expires>\n<path>")` in lower-case hex, and `path` is the decoded,
//! normalised URL path (`/dir/movie.mp4`: leading `/`, no empty segments). `start`, `end`
//! and `exact` are not signed, so a player may seek freely within a granted file.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature is refused (for the log; the client only sees 403).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// `expires` or `sig` is missing.
    Missing,
    /// `expires` is not a number or `sig` is not hex of the right length.
    Malformed,
    /// The link has expired.
    Expired,
    /// The signature does not match.
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureError::Missing => "unsigned URL (expires/sig missing)",
            SignatureError::Malformed => "malformed expires or sig",
            SignatureError::Expired => "signed URL has expired",
            SignatureError::Mismatch => "bad URL signature",
        })
    }
}

fn mac(secret: &str, path: &str, expires: u64) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    m.update(format!("{expires}\n{path}").as_bytes());
    m
}

/// The signature for `path` (decoded, normalised, leading `/`) valid until `expires`.
pub fn sign(secret: &str, path: &str, expires: u64) -> String {
    let tag = mac(secret, path, expires).finalize().into_bytes();
    tag.iter().map(|b| format!("{b:02x}")).collect()
}

/// The query parameters to append to a URL for `path`: `expires=…&sig=…`.
pub fn query(secret: &str, path: &str, expires: u64) -> String {
    format!("expires={expires}&sig={}", sign(secret, path, expires))
}

/// Checks a request's `expires` and `sig` for `path` at time `now` (Unix seconds). The
/// comparison is constant-time.
pub fn verify(
    secret: &str,
    path: &str,
    expires: Option<&str>,
    sig: Option<&str>,
    now: u64,
) -> Result<(), SignatureError> {
    let (Some(expires), Some(sig)) = (expires, sig) else { return Err(SignatureError::Missing) };
    if expires.is_empty() || expires.len() > 19 || !expires.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed);
    }
    let expires: u64 = expires.parse().map_err(|_| SignatureError::Malformed)?;
    let tag = unhex(sig).ok_or(SignatureError::Malformed)?;
    if tag.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    mac(secret, path, expires).verify_slice(&tag).map_err(|_| SignatureError::Mismatch)?;
    if now > expires {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "0123456789abcdef";

    #[test]
    fn sign_and_verify() {
        let sig = sign(K, "/a.mp4", 1000);
        assert_eq!(sig.len(), 64);
        assert_eq!(verify(K, "/a.mp4", Some("1000"), Some(&sig), 999), Ok(()));
        assert_eq!(verify(K, "/a.mp4", Some("1000"), Some(&sig), 1000), Ok(()));
        assert_eq!(verify(K, "/a.mp4", Some("1000"), Some(&sig), 1001), Err(SignatureError::Expired));
        assert_eq!(verify(K, "/b.mp4", Some("1000"), Some(&sig), 0), Err(SignatureError::Mismatch));
        assert_eq!(verify(K, "/a.mp4", Some("1001"), Some(&sig), 0), Err(SignatureError::Mismatch));
        assert_eq!(verify("another secret!!", "/a.mp4", Some("1000"), Some(&sig), 0), Err(SignatureError::Mismatch));
        assert_eq!(verify(K, "/a.mp4", None, Some(&sig), 0), Err(SignatureError::Missing));
        assert_eq!(verify(K, "/a.mp4", Some("1000"), None, 0), Err(SignatureError::Missing));
        for bad in ["", "zz", "abc", &sig[..62], "é"] {
            assert_eq!(verify(K, "/a.mp4", Some("1000"), Some(bad), 0), Err(SignatureError::Malformed), "{bad}");
        }
        assert_eq!(verify(K, "/a.mp4", Some("-1"), Some(&sig), 0), Err(SignatureError::Malformed));
        assert_eq!(query(K, "/a.mp4", 5), format!("expires=5&sig={}", sign(K, "/a.mp4", 5)));
        // The same as `printf '%s\n%s' 1000 /a.mp4 | openssl dgst -sha256 -hmac 0123456789abcdef`.
        assert_eq!(sig, "3b232994754a1653a8f5314f8b5da7c21ecf706d86185d1b769fbe5fb2f71364");
    }
}
