//! A small AMF0 codec for FLV script tags (`onMetaData`): the value kinds FLV files use
//! (numbers, booleans, strings, long strings, objects, ECMA arrays, strict arrays, dates,
//! null/undefined), decoded with a bounded nesting depth and a bounded number of values so a
//! hostile tag cannot exhaust the stack or memory, and encoded back with its exact length
//! known in advance (the index writer sizes the new metadata before filling in positions).
//!
//! Own code rather than the `amf` crate: that crate allocates whatever a length field claims
//! (`vec![0; len]` for a 4 GB long string), has no nesting limit, refuses non-UTF-8 strings
//! and would add a dependency for ~250 lines. Keys and values keep their order.

use crate::{Error, Result};
use serde::ser::{SerializeMap, SerializeSeq};

/// Deepest nesting of objects/arrays accepted.
pub const MAX_DEPTH: usize = 16;
/// Most values (of any kind, nested ones included) decoded from one buffer.
pub const MAX_VALUES: usize = 1 << 22;

/// One AMF0 value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Marker 0x00: an IEEE-754 double.
    Number(f64),
    /// Marker 0x01.
    Boolean(bool),
    /// Marker 0x02 (or 0x0C, long string, when longer than 65535 bytes).
    String(String),
    /// Marker 0x03: key/value pairs.
    Object(Vec<(String, Value)>),
    /// Marker 0x05.
    Null,
    /// Marker 0x06.
    Undefined,
    /// Marker 0x08: key/value pairs with an (advisory) count.
    EcmaArray(Vec<(String, Value)>),
    /// Marker 0x0A.
    StrictArray(Vec<Value>),
    /// Marker 0x0B: milliseconds since the epoch and a time-zone offset in minutes.
    Date { millis: f64, tz: i16 },
}

impl Value {
    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The key/value pairs of an object or ECMA array.
    pub fn pairs(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// The value of `key` in an object or ECMA array (first match).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.pairs()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The elements of a strict array.
    pub fn elements(&self) -> Option<&[Value]> {
        match self {
            Value::StrictArray(v) => Some(v),
            _ => None,
        }
    }

    /// Sets `key` in an object or ECMA array: replaces the first existing entry in place, or
    /// appends. Does nothing on other kinds.
    pub fn set(&mut self, key: &str, value: Value) {
        if let Value::Object(p) | Value::EcmaArray(p) = self {
            match p.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value,
                None => p.push((key.to_string(), value)),
            }
        }
    }

    /// Removes every entry named `key` from an object or ECMA array.
    pub fn remove(&mut self, key: &str) {
        if let Value::Object(p) | Value::EcmaArray(p) = self {
            p.retain(|(k, _)| k != key);
        }
    }

    /// Exact length of [`Value::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        match self {
            Value::Number(_) => 9,
            Value::Boolean(_) => 2,
            Value::String(s) => string_len(s) + 1,
            Value::Object(p) => 1 + pairs_len(p) + 3,
            Value::Null | Value::Undefined => 1,
            Value::EcmaArray(p) => 5 + pairs_len(p) + 3,
            Value::StrictArray(v) => 5 + v.iter().map(Value::encoded_len).sum::<usize>(),
            Value::Date { .. } => 11,
        }
    }

    /// Appends the AMF0 encoding of this value to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Number(n) => {
                out.push(0x00);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Value::Boolean(b) => out.extend_from_slice(&[0x01, u8::from(*b)]),
            Value::String(s) => {
                if s.len() > usize::from(u16::MAX) {
                    out.push(0x0C);
                    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                    out.extend_from_slice(s.as_bytes());
                } else {
                    out.push(0x02);
                    encode_key(s, out);
                }
            }
            Value::Object(p) => {
                out.push(0x03);
                encode_pairs(p, out);
            }
            Value::Null => out.push(0x05),
            Value::Undefined => out.push(0x06),
            Value::EcmaArray(p) => {
                out.push(0x08);
                out.extend_from_slice(&(p.len() as u32).to_be_bytes());
                encode_pairs(p, out);
            }
            Value::StrictArray(v) => {
                out.push(0x0A);
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                for e in v {
                    e.encode(out);
                }
            }
            Value::Date { millis, tz } => {
                out.push(0x0B);
                out.extend_from_slice(&millis.to_be_bytes());
                out.extend_from_slice(&tz.to_be_bytes());
            }
        }
    }
}

/// Length of a UTF-8 string without its marker (2- or 4-byte length prefix).
fn string_len(s: &str) -> usize {
    if s.len() > usize::from(u16::MAX) {
        4 + s.len()
    } else {
        2 + s.len()
    }
}

/// Keys longer than 65535 bytes cannot be encoded; they are truncated (at a char boundary).
fn key_bytes(k: &str) -> &[u8] {
    let mut end = k.len().min(usize::from(u16::MAX));
    while !k.is_char_boundary(end) {
        end -= 1;
    }
    &k.as_bytes()[..end]
}

fn pairs_len(p: &[(String, Value)]) -> usize {
    p.iter().map(|(k, v)| 2 + key_bytes(k).len() + v.encoded_len()).sum()
}

fn encode_key(k: &str, out: &mut Vec<u8>) {
    let b = key_bytes(k);
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

fn encode_pairs(p: &[(String, Value)], out: &mut Vec<u8>) {
    for (k, v) in p {
        encode_key(k, out);
        v.encode(out);
    }
    out.extend_from_slice(&[0, 0, 0x09]);
}

/// Decodes AMF0 values from a byte buffer. `base` is the buffer's offset in the file, for
/// error messages.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    values: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf`, which starts at file offset `base`.
    pub fn new(buf: &'a [u8], base: u64) -> Self {
        Decoder { buf, pos: 0, base, values: 0 }
    }

    /// True when every byte has been consumed.
    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn corrupt(&self, what: &str) -> Error {
        Error::corrupt(self.base.saturating_add(self.pos as u64), format!("AMF0: {what}"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.corrupt("value runs past the end of the tag"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn string(&mut self, len: usize) -> Result<String> {
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    /// Decodes the next value.
    pub fn value(&mut self) -> Result<Value> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Result<Value> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(self.corrupt("too many values"));
        }
        let marker = self.u8()?;
        Ok(match marker {
            0x00 => Value::Number(self.f64()?),
            0x01 => Value::Boolean(self.u8()? != 0),
            0x02 => {
                let n = usize::from(self.u16()?);
                Value::String(self.string(n)?)
            }
            0x0C => {
                let n = self.u32()? as usize;
                Value::String(self.string(n)?)
            }
            0x03 => Value::Object(self.pairs(depth)?),
            0x05 => Value::Null,
            0x06 => Value::Undefined,
            0x08 => {
                let _advisory_count = self.u32()?;
                Value::EcmaArray(self.pairs(depth)?)
            }
            0x0A => {
                if depth >= MAX_DEPTH {
                    return Err(self.corrupt("nested too deeply"));
                }
                let n = self.u32()? as usize;
                // Every element takes at least one byte: never reserve more than remains.
                let mut v = Vec::with_capacity(n.min(self.buf.len() - self.pos));
                for _ in 0..n {
                    v.push(self.value_at(depth + 1)?);
                }
                Value::StrictArray(v)
            }
            0x0B => {
                let millis = self.f64()?;
                let tz = self.u16()? as i16;
                Value::Date { millis, tz }
            }
            m => return Err(self.corrupt(&format!("unsupported marker 0x{m:02x}"))),
        })
    }

    fn pairs(&mut self, depth: usize) -> Result<Vec<(String, Value)>> {
        if depth >= MAX_DEPTH {
            return Err(self.corrupt("nested too deeply"));
        }
        let mut p = Vec::new();
        loop {
            // Some writers end the outermost ECMA array with the tag, not with 00 00 09.
            if self.at_end() {
                return Ok(p);
            }
            let n = usize::from(self.u16()?);
            if n == 0 {
                if self.at_end() {
                    return Ok(p);
                }
                let m = self.u8()?;
                if m == 0x09 {
                    return Ok(p);
                }
                return Err(self.corrupt("empty key that is not an object end"));
            }
            let k = self.string(n)?;
            let v = self.value_at(depth + 1)?;
            p.push((k, v));
        }
    }
}

/// Decodes a script tag body: the event name (a string) and its argument (the first value
/// after it; `Undefined` when missing).
pub fn decode_script(buf: &[u8], base: u64) -> Result<(String, Value)> {
    let mut d = Decoder::new(buf, base);
    let name = match d.value()? {
        Value::String(s) => s,
        _ => return Err(Error::corrupt(base, "script tag does not start with a name")),
    };
    let arg = if d.at_end() { Value::Undefined } else { d.value()? };
    Ok((name, arg))
}

/// Encodes a script tag body: event name then one value.
pub fn encode_script(name: &str, value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(script_len(name, value));
    Value::String(name.to_string()).encode(&mut out);
    value.encode(&mut out);
    out
}

/// Exact length of [`encode_script`]'s output.
pub fn script_len(name: &str, value: &Value) -> usize {
    1 + string_len(name) + value.encoded_len()
}

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::Number(n) if n.is_finite() => s.serialize_f64(*n),
            Value::Number(_) | Value::Null | Value::Undefined => s.serialize_none(),
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::String(t) => s.serialize_str(t),
            Value::Object(p) | Value::EcmaArray(p) => {
                let mut m = s.serialize_map(Some(p.len()))?;
                for (k, v) in p {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Value::StrictArray(v) => {
                let mut q = s.serialize_seq(Some(v.len()))?;
                for e in v {
                    q.serialize_element(e)?;
                }
                q.end()
            }
            Value::Date { millis, .. } => s.serialize_f64(*millis),
        }
    }
}

impl std::fmt::Display for Value {
    /// Short one-line form for tables: long arrays are summarised.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::String(s) if s.chars().count() > 60 => {
                write!(f, "{:?}…", s.chars().take(60).collect::<String>())
            }
            Value::String(s) => write!(f, "{s:?}"),
            Value::Null => f.write_str("null"),
            Value::Undefined => f.write_str("undefined"),
            Value::Date { millis, tz } => write!(f, "date({millis} ms, tz {tz})"),
            Value::StrictArray(v) if v.len() > 6 => {
                write!(f, "[{} values: {}, {}, … {}]", v.len(), v[0], v[1], v[v.len() - 1])
            }
            Value::StrictArray(v) => {
                f.write_str("[")?;
                for (i, e) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str("]")
            }
            Value::Object(p) | Value::EcmaArray(p) => {
                f.write_str("{")?;
                for (i, (k, v)) in p.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        Value::EcmaArray(vec![
            ("duration".into(), Value::Number(59.96)),
            ("stereo".into(), Value::Boolean(true)),
            ("encoder".into(), Value::String("Lavf".into())),
            ("nothing".into(), Value::Null),
            ("undef".into(), Value::Undefined),
            ("when".into(), Value::Date { millis: 1.5e12, tz: -60 }),
            (
                "keyframes".into(),
                Value::Object(vec![
                    ("times".into(), Value::StrictArray(vec![Value::Number(0.0), Value::Number(2.0)])),
                    ("filepositions".into(), Value::StrictArray(vec![Value::Number(13.0), Value::Number(4000.0)])),
                ]),
            ),
            ("long".into(), Value::String("x".repeat(70_000))),
        ])
    }

    #[test]
    fn round_trips_with_exact_length() {
        let v = sample();
        let body = encode_script("onMetaData", &v);
        assert_eq!(body.len(), script_len("onMetaData", &v));
        let (name, back) = decode_script(&body, 0).unwrap();
        assert_eq!(name, "onMetaData");
        assert_eq!(back, v);
        assert_eq!(encode_script(&name, &back), body);
    }

    #[test]
    fn truncations_are_errors() {
        let body = encode_script("onMetaData", &sample());
        for cut in 0..200 {
            let r = decode_script(&body[..cut], 0);
            // Some prefixes decode (the outer ECMA array may end with the tag); none panic.
            if let Ok((_, v)) = r {
                assert!(v.pairs().is_some() || v == Value::Undefined || cut < 14);
            }
        }
    }

    #[test]
    fn hostile_inputs_are_bounded() {
        // Strict array claiming 4 billion elements with no data.
        let mut b = vec![0x0A, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(Decoder::new(&b, 0).value().is_err());
        // Long string claiming 4 GB.
        b = vec![0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a'];
        assert!(Decoder::new(&b, 0).value().is_err());
        // Deep nesting.
        b = Vec::new();
        for _ in 0..1000 {
            b.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
        }
        b.push(0x05);
        assert!(Decoder::new(&b, 0).value().is_err());
        // Unknown marker.
        assert!(Decoder::new(&[0x11], 0).value().is_err());
        // Bad object end.
        assert!(Decoder::new(&[0x03, 0, 0, 0x07], 0).value().is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let markers = [0x00u8, 0x01, 0x02, 0x03, 0x05, 0x06, 0x08, 0x0A, 0x0B, 0x0C, 0x09];
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        markers[(r >> 8) as usize % markers.len()]
                    } else {
                        (r >> 16) as u8 % 4
                    }
                })
                .collect();
            if let Ok((n, v)) = decode_script(&buf, 0) {
                let _ = (encode_script(&n, &v), v.to_string(), serde_json::to_string(&v));
            }
        }
    }

    #[test]
    fn set_replaces_in_place() {
        let mut v = sample();
        v.set("stereo", Value::Boolean(false));
        v.set("new", Value::Number(1.0));
        let p = v.pairs().unwrap();
        assert_eq!(p[1], ("stereo".into(), Value::Boolean(false)));
        assert_eq!(p.last().unwrap().0, "new");
        v.remove("new");
        assert!(v.get("new").is_none());
    }
}
