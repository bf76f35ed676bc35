//! The query string: `start`, `end`, `exact` and the signed-URL pair `expires`/`sig`,
//! percent-decoded with hard limits on length and count. Unknown keys are ignored (players
//! add cache busters); a known key given twice is a 400, since two parties reading the same
//! URL differently is how cache poisoning starts. It knows nothing of files or containers.

use super::percent;
use crate::{Error, Result};

/// The longest raw query string accepted.
pub const MAX_QUERY_BYTES: usize = 2048;
/// The most `key=value` pairs accepted.
pub const MAX_PAIRS: usize = 32;
/// The longest decoded key or value accepted.
pub const MAX_ITEM_BYTES: usize = 256;

/// The parameters loomiere reads, still as text (positions are parsed once the file kind,
/// hence the unit of a bare number, is known).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// `start=`: where to start (text, not parsed yet); an empty value is kept, and refused
    /// where positions are parsed, like any other malformed one.
    pub start: Option<String>,
    /// `end=`: where to end.
    pub end: Option<String>,
    /// `exact`, `exact=1|true|yes|on` (true) or `exact=0|false|no|off` (false).
    pub exact: bool,
    /// `expires=`: Unix time a signed URL stops working.
    pub expires: Option<String>,
    /// `sig=`: the URL signature, hex.
    pub sig: Option<String>,
}

impl Query {
    /// Parses a raw (still percent-encoded) query string, without the `?`.
    pub fn parse(raw: &str) -> Result<Query> {
        if raw.len() > MAX_QUERY_BYTES {
            return Err(Error::bad_request("query string too long"));
        }
        let mut q = Query::default();
        let mut exact_seen = false;
        for (i, pair) in raw.split('&').filter(|p| !p.is_empty()).enumerate() {
            if i >= MAX_PAIRS {
                return Err(Error::bad_request("too many query parameters"));
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode_item(k)?;
            let slot = match key.as_str() {
                "start" => &mut q.start,
                "end" => &mut q.end,
                "expires" => &mut q.expires,
                "sig" => &mut q.sig,
                "exact" => {
                    if exact_seen {
                        return Err(Error::bad_request("exact given twice"));
                    }
                    exact_seen = true;
                    q.exact = parse_flag(&decode_item(v)?)?;
                    continue;
                }
                _ => continue,
            };
            if slot.is_some() {
                return Err(Error::bad_request(format!("{key} given twice")));
            }
            *slot = Some(decode_item(v)?);
        }
        Ok(q)
    }
}

fn decode_item(s: &str) -> Result<String> {
    if s.len() > MAX_ITEM_BYTES * 3 {
        return Err(Error::bad_request("query parameter too long"));
    }
    let bytes =
        percent::decode(s.as_bytes(), true).ok_or_else(|| Error::bad_request("bad percent-encoding in query"))?;
    if bytes.len() > MAX_ITEM_BYTES {
        return Err(Error::bad_request("query parameter too long"));
    }
    let text = String::from_utf8(bytes).map_err(|_| Error::bad_request("query is not UTF-8"))?;
    if text.chars().any(char::is_control) {
        return Err(Error::bad_request("control character in query"));
    }
    Ok(text)
}

fn parse_flag(v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::bad_request(format!("exact={v:?}: want 1 or 0"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_keys_and_ignores_others() {
        let q = Query::parse("start=30.5&end=1%3A02&foo=bar&exact&&x").unwrap();
        assert_eq!(q.start.as_deref(), Some("30.5"));
        assert_eq!(q.end.as_deref(), Some("1:02"));
        assert!(q.exact);
        let q = Query::parse("start=&exact=0&sig=ab&expires=12").unwrap();
        assert_eq!(q.start.as_deref(), Some(""));
        assert!(!q.exact);
        assert_eq!(q.sig.as_deref(), Some("ab"));
        assert_eq!(Query::parse("").unwrap(), Query::default());
        assert_eq!(Query::parse("start=1+2").unwrap().start.as_deref(), Some("1 2"));
    }

    #[test]
    fn rejects_hostile_queries() {
        for bad in [
            "start=1&start=2".to_string(),
            "exact=1&exact=1".into(),
            "exact=maybe".into(),
            "start=%zz".into(),
            "start=%4".into(),
            "start=%ff".into(),
            "start=%00".into(),
            "start=a%0ab".into(),
            format!("start={}", "1".repeat(300)),
            "a&".repeat(40),
            "x".repeat(3000),
        ] {
            assert!(Query::parse(&bad).is_err(), "{bad:?} accepted");
        }
    }
}
