//! The bench's HLS and DASH manifest readers: just enough of an HLS playlist (multivariant:
//! the variant URIs; media: `EXT-X-MAP` and `EXTINF` segments) and of a static MPD (the
//! first Period's Representations, their `SegmentTemplate` with a `SegmentTimeline` or a
//! fixed `duration`) to list a variant's init segment and segment URLs with durations.
//! Pure text handling, no I/O; every input is hostile: sizes are bounded by the caller
//! (the body limit), segment counts by [`MAX_SEGMENTS`], numbers are checked.

/// Most segments one media playlist or Representation may list.
pub const MAX_SEGMENTS: usize = 200_000;

/// The manifest flavour a target URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `….m3u8`: an HLS multivariant or media playlist.
    Hls,
    /// `….mpd`: a DASH MPD.
    Dash,
}

impl Kind {
    /// The flavour of a request path (its query ignored), if it is a manifest.
    pub fn of(path: &str) -> Option<Kind> {
        let path = path.split(['?', '#']).next().unwrap_or("").to_ascii_lowercase();
        if path.ends_with(".m3u8") {
            Some(Kind::Hls)
        } else if path.ends_with(".mpd") {
            Some(Kind::Dash)
        } else {
            None
        }
    }
}

/// One media segment: its URI as written (relative or absolute) and its duration.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub uri: String,
    pub duration: f64,
}

/// A variant's segments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaList {
    /// The init segment (`EXT-X-MAP`, DASH `initialization`), when there is one.
    pub init: Option<String>,
    pub segments: Vec<Segment>,
}

impl MediaList {
    /// The longest segment (the HLS target duration), at least a millisecond.
    pub fn longest(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).fold(0.001, f64::max)
    }
}

/// What an HLS playlist is.
#[derive(Clone, Debug, PartialEq)]
pub enum Hls {
    /// A multivariant playlist: its variants' URIs in order (I-frame playlists left out).
    Master(Vec<String>),
    /// A media playlist.
    Media(MediaList),
}

fn duration_ok(d: f64) -> bool {
    d.is_finite() && (0.0..=86_400.0).contains(&d)
}

/// Reads an HLS playlist.
pub fn parse_hls(text: &str) -> Result<Hls, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("#EXTM3U") {
        return Err("not an HLS playlist (no #EXTM3U first line)".into());
    }
    let mut variants = Vec::new();
    let mut media = MediaList::default();
    let mut pending_variant = false;
    let mut pending_duration: Option<f64> = None;
    for line in lines {
        if let Some(tag) = line.strip_prefix('#') {
            if tag.starts_with("EXT-X-STREAM-INF:") {
                pending_variant = true;
            } else if let Some(d) = tag.strip_prefix("EXTINF:") {
                let d: f64 = d.split(',').next().unwrap_or("").trim().parse().map_err(|_| format!("bad #{tag}"))?;
                if !duration_ok(d) {
                    return Err(format!("segment duration {d} out of range"));
                }
                pending_duration = Some(d);
            } else if let Some(attrs) = tag.strip_prefix("EXT-X-MAP:") {
                media.init = Some(attribute(attrs, "URI").ok_or("#EXT-X-MAP without URI")?);
            } else if tag.starts_with("EXT-X-BYTERANGE") {
                return Err("byte-range segments (#EXT-X-BYTERANGE) are not supported by the bench".into());
            }
            continue;
        }
        if pending_variant {
            pending_variant = false;
            if variants.len() >= MAX_SEGMENTS {
                return Err("too many variants".into());
            }
            variants.push(line.to_string());
        } else if let Some(duration) = pending_duration.take() {
            if media.segments.len() >= MAX_SEGMENTS {
                return Err(format!("more than {MAX_SEGMENTS} segments"));
            }
            media.segments.push(Segment { uri: line.to_string(), duration });
        }
    }
    if !variants.is_empty() {
        return Ok(Hls::Master(variants));
    }
    if media.segments.is_empty() {
        return Err("the playlist lists no variant and no segment".into());
    }
    Ok(Hls::Media(media))
}

/// The value of `NAME=` in an HLS attribute list (quoted or not).
fn attribute(list: &str, name: &str) -> Option<String> {
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], q[end + 1..].trim_start_matches(','))
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        if key.trim() == name {
            return Some(value.to_string());
        }
        rest = next;
    }
    None
}

/// One XML start, end or empty-element tag.
struct Tag<'a> {
    name: &'a str,
    attrs: Vec<(&'a str, String)>,
    closing: bool,
    empty: bool,
}

impl Tag<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }
}

/// The tags of an XML text in order (text, comments, declarations skipped).
fn xml_tags(xml: &str) -> Result<Vec<Tag<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        let skip_to = |end: &str, rest: &str| rest.find(end).map(|j| j + end.len()).ok_or("unterminated XML markup");
        if rest.starts_with("<!--") {
            rest = &rest[skip_to("-->", rest)?..];
            continue;
        }
        if rest.starts_with("<?") || rest.starts_with("<!") {
            rest = &rest[skip_to(">", rest)?..];
            continue;
        }
        // Find the tag's end, minding quotes.
        let mut quote = None;
        let mut end = None;
        for (j, c) in rest.char_indices().skip(1) {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '>') => {
                    end = Some(j);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or("unterminated XML tag")?;
        let inner = &rest[1..end];
        rest = &rest[end + 1..];
        let (closing, inner) = match inner.strip_prefix('/') {
            Some(i) => (true, i),
            None => (false, inner),
        };
        let (empty, inner) = match inner.strip_suffix('/') {
            Some(i) => (true, i),
            None => (false, inner),
        };
        let name_end = inner.find(|c: char| c.is_whitespace()).unwrap_or(inner.len());
        let name = &inner[..name_end];
        // Namespaced names compare by their local part.
        let name = name.rsplit(':').next().unwrap_or(name);
        let mut attrs = Vec::new();
        let mut a = inner[name_end..].trim_start();
        while !a.is_empty() {
            let (key, after) = a.split_once('=').ok_or("malformed XML attribute")?;
            let after = after.trim_start();
            let q = after.chars().next().filter(|c| *c == '"' || *c == '\'').ok_or("unquoted XML attribute")?;
            let body = &after[1..];
            let close = body.find(q).ok_or("unterminated XML attribute")?;
            attrs.push((key.trim(), unescape(&body[..close])));
            a = body[close + 1..].trim_start();
        }
        out.push(Tag { name, attrs, closing, empty });
    }
    Ok(out)
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// `PT1H2M3.5S` (and `P1DT…`) in seconds.
fn iso_duration(s: &str) -> Option<f64> {
    let s = s.strip_prefix('P')?;
    let (days, time) = match s.split_once('T') {
        Some((d, t)) => (d, t),
        None => (s, ""),
    };
    let mut total = 0.0;
    if !days.is_empty() {
        total += days.strip_suffix('D')?.parse::<f64>().ok()? * 86_400.0;
    }
    let mut num = String::new();
    for c in time.chars() {
        let unit = match c {
            'H' => 3600.0,
            'M' => 60.0,
            'S' => 1.0,
            _ => {
                num.push(c);
                continue;
            }
        };
        total += num.parse::<f64>().ok()? * unit;
        num.clear();
    }
    (num.is_empty() && total.is_finite() && total >= 0.0).then_some(total)
}

/// A `SegmentTemplate` as read.
#[derive(Clone, Debug, Default)]
struct Template {
    timescale: Option<u64>,
    media: Option<String>,
    initialization: Option<String>,
    start_number: Option<u64>,
    duration: Option<u64>,
    /// `SegmentTimeline` entries: (t, d, r).
    timeline: Vec<(Option<u64>, u64, i64)>,
}

impl Template {
    /// This template with what it leaves unsaid taken from `parent` (the AdaptationSet's).
    fn over(&self, parent: Option<&Template>) -> Template {
        let Some(p) = parent else { return self.clone() };
        Template {
            timescale: self.timescale.or(p.timescale),
            media: self.media.clone().or_else(|| p.media.clone()),
            initialization: self.initialization.clone().or_else(|| p.initialization.clone()),
            start_number: self.start_number.or(p.start_number),
            duration: self.duration.or(p.duration),
            timeline: if self.timeline.is_empty() { p.timeline.clone() } else { self.timeline.clone() },
        }
    }
}

fn number<T: std::str::FromStr>(tag: &Tag, key: &str) -> Result<Option<T>, String> {
    tag.get(key).map(|v| v.trim().parse::<T>().map_err(|_| format!("bad {}@{key}: {v:?}", tag.name))).transpose()
}

/// Fills `$RepresentationID$`, `$Number$`, `$Time$`, `$Bandwidth$` (with `%0Nd` widths).
fn fill(template: &str, id: &str, bandwidth: u64, number: u64, time: u64) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut parts = template.split('$');
    out.push_str(parts.next().unwrap_or(""));
    while let Some(ident) = parts.next() {
        let Some(after) = parts.next() else { return Err(format!("unbalanced $ in template {template:?}")) };
        if ident.is_empty() {
            out.push('$');
        } else {
            let (name, format) = ident.split_once('%').unwrap_or((ident, ""));
            let width: usize = match format {
                "" => 0,
                f => {
                    f.strip_prefix('0').unwrap_or(f).strip_suffix('d').and_then(|w| w.parse().ok()).unwrap_or(0).min(32)
                }
            };
            match name {
                "RepresentationID" => out.push_str(id),
                "Number" => out.push_str(&format!("{number:0width$}")),
                "Time" => out.push_str(&format!("{time:0width$}")),
                "Bandwidth" => out.push_str(&format!("{bandwidth:0width$}")),
                other => return Err(format!("unknown template identifier ${other}$")),
            }
        }
        out.push_str(after);
    }
    Ok(out)
}

/// Reads a static MPD and lists the segments of its `variant`-th Representation (1 = the
/// first, in document order across the first Period's AdaptationSets). Also returns how many
/// Representations there are.
pub fn parse_mpd(xml: &str, variant: usize) -> Result<(MediaList, usize), String> {
    let tags = xml_tags(xml)?;
    let mut presentation: Option<f64> = None;
    let mut adaptation_template: Option<Template> = None;
    let mut current: Option<Template> = None;
    // (id, bandwidth, own template) of the Representation being read.
    let mut rep: Option<(String, u64, Option<Template>)> = None;
    let mut chosen: Option<(String, u64, Template)> = None;
    let mut count = 0usize;
    let mut periods = 0;
    let mut saw_mpd = false;
    for tag in &tags {
        match (tag.name, tag.closing) {
            ("MPD", false) => {
                saw_mpd = true;
                if let Some(d) = tag.get("mediaPresentationDuration") {
                    presentation = Some(iso_duration(d).ok_or(format!("bad mediaPresentationDuration {d:?}"))?);
                }
            }
            ("Period", false) => {
                periods += 1;
                if periods > 1 {
                    break;
                }
            }
            ("AdaptationSet", false) => adaptation_template = None,
            ("Representation", false) => {
                let id = tag.get("id").unwrap_or("").to_string();
                let bw = number::<u64>(tag, "bandwidth")?.unwrap_or(0);
                rep = Some((id, bw, None));
                if tag.empty {
                    count += 1;
                    if count == variant {
                        let t = adaptation_template.clone().ok_or("a Representation without a SegmentTemplate")?;
                        let (id, bw, _) = rep.take().unwrap_or_default();
                        chosen = Some((id, bw, t));
                    }
                }
            }
            ("Representation", true) => {
                count += 1;
                if let Some((id, bw, own)) = rep.take() {
                    if count == variant {
                        let t = match own {
                            Some(t) => t.over(adaptation_template.as_ref()),
                            None => adaptation_template.clone().ok_or("a Representation without a SegmentTemplate")?,
                        };
                        chosen = Some((id, bw, t));
                    }
                }
            }
            ("SegmentTemplate", false) => {
                current = Some(Template {
                    timescale: number(tag, "timescale")?,
                    media: tag.get("media").map(str::to_string),
                    initialization: tag.get("initialization").map(str::to_string),
                    start_number: number(tag, "startNumber")?,
                    duration: number(tag, "duration")?,
                    timeline: Vec::new(),
                });
                if tag.empty {
                    store(&mut current, &mut rep, &mut adaptation_template);
                }
            }
            ("SegmentTemplate", true) => store(&mut current, &mut rep, &mut adaptation_template),
            ("S", false) => {
                if let Some(t) = current.as_mut() {
                    if t.timeline.len() >= MAX_SEGMENTS {
                        return Err(format!("more than {MAX_SEGMENTS} SegmentTimeline entries"));
                    }
                    let d = number::<u64>(tag, "d")?.ok_or("S without d")?;
                    t.timeline.push((number(tag, "t")?, d, number::<i64>(tag, "r")?.unwrap_or(0)));
                }
            }
            _ => {}
        }
    }
    if !saw_mpd {
        return Err("not a DASH MPD (no MPD element)".into());
    }
    let Some((id, bw, t)) = chosen else {
        return Err(format!("the MPD has {count} Representations; --variant {variant} is not one of them"));
    };
    Ok((expand(&id, bw, &t, presentation)?, count))
}

/// Hands a finished `SegmentTemplate` to the Representation being read, else to the
/// AdaptationSet.
fn store(
    current: &mut Option<Template>,
    rep: &mut Option<(String, u64, Option<Template>)>,
    set: &mut Option<Template>,
) {
    let Some(t) = current.take() else { return };
    match rep.as_mut() {
        Some(r) => r.2 = Some(t),
        None => *set = Some(t),
    }
}

/// Lists a Representation's segments from its template.
fn expand(id: &str, bw: u64, t: &Template, presentation: Option<f64>) -> Result<MediaList, String> {
    let timescale = t.timescale.unwrap_or(1).max(1);
    let media = t.media.as_deref().ok_or("SegmentTemplate without media")?;
    let mut number = t.start_number.unwrap_or(1);
    let mut list = MediaList {
        init: t.initialization.as_deref().map(|i| fill(i, id, bw, 0, 0)).transpose()?,
        segments: Vec::new(),
    };
    let push = |list: &mut MediaList, number: u64, time: u64, d: u64| -> Result<(), String> {
        if list.segments.len() >= MAX_SEGMENTS {
            return Err(format!("more than {MAX_SEGMENTS} segments"));
        }
        let duration = d as f64 / timescale as f64;
        if !duration_ok(duration) {
            return Err(format!("segment duration {duration} s out of range"));
        }
        list.segments.push(Segment { uri: fill(media, id, bw, number, time)?, duration });
        Ok(())
    };
    if !t.timeline.is_empty() {
        let mut time = 0u64;
        let end = presentation.map(|p| (p * timescale as f64) as u64);
        for (i, &(start, d, r)) in t.timeline.iter().enumerate() {
            if d == 0 {
                return Err("a SegmentTimeline entry of duration 0".into());
            }
            if let Some(s) = start {
                time = s;
            }
            let repeats = if r >= 0 {
                u64::try_from(r).unwrap_or(0)
            } else {
                // Repeat until the next entry's start or the presentation's end.
                let until = t.timeline.get(i + 1).and_then(|n| n.0).or(end).ok_or("r=-1 with nothing to end it")?;
                until.saturating_sub(time).div_ceil(d).saturating_sub(1)
            };
            for _ in 0..=repeats.min(MAX_SEGMENTS as u64) {
                push(&mut list, number, time, d)?;
                number = number.checked_add(1).ok_or("segment number overflows")?;
                time = time.checked_add(d).ok_or("segment time overflows")?;
            }
        }
    } else if let Some(d) = t.duration.filter(|&d| d > 0) {
        let total = presentation.ok_or("a SegmentTemplate@duration without mediaPresentationDuration")?;
        let whole = total * timescale as f64;
        let count = (whole / d as f64).ceil();
        if !(count.is_finite() && count <= MAX_SEGMENTS as f64) {
            return Err(format!("more than {MAX_SEGMENTS} segments"));
        }
        let mut time = 0u64;
        for i in 0..count as u64 {
            let left = whole - i.saturating_mul(d) as f64;
            push(&mut list, number, time, (left as u64).min(d).max(1))?;
            number = number.checked_add(1).ok_or("segment number overflows")?;
            time = time.saturating_add(d);
        }
    } else {
        return Err("SegmentTemplate with neither SegmentTimeline nor duration".into());
    }
    if list.segments.is_empty() {
        return Err("the Representation lists no segment".into());
    }
    Ok(list)
}

/// The request path for `uri` as written in the manifest at `base` (a request path): an
/// absolute path as is, a relative one against `base`'s directory (`.` and `..` resolved);
/// `None` for anything else (an absolute URL is handled by the caller).
pub fn resolve(base: &str, uri: &str) -> Option<String> {
    if uri.contains("://") || uri.starts_with("//") {
        return None;
    }
    let (joined, query) = {
        let (p, q) = uri.split_once('?').map_or((uri, None), |(p, q)| (p, Some(q)));
        if p.starts_with('/') {
            (p.to_string(), q)
        } else {
            let base = base.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            (format!("{dir}{p}"), q)
        }
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/').skip(1) {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut path = format!("/{}", parts.join("/"));
    if let Some(q) = query {
        path.push('?');
        path.push_str(q);
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_master_and_media() {
        let master = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",URI=\"a2/index.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1.64000d\"\nv1/index.m3u8\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"v1/iframes.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2\nv2/index.m3u8\n";
        assert_eq!(parse_hls(master), Ok(Hls::Master(vec!["v1/index.m3u8".into(), "v2/index.m3u8".into()])));
        let media = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:6.000,\n1.m4s\n\
            #EXTINF:2.5,\n2.m4s\n#EXT-X-ENDLIST\n";
        let Ok(Hls::Media(m)) = parse_hls(media) else { panic!() };
        assert_eq!(m.init.as_deref(), Some("init.mp4"));
        assert_eq!(
            m.segments,
            vec![Segment { uri: "1.m4s".into(), duration: 6.0 }, Segment { uri: "2.m4s".into(), duration: 2.5 }]
        );
        assert!(parse_hls("<html>").is_err());
        assert!(parse_hls("#EXTM3U\n#EXTINF:nan,\na\n").is_err());
        assert!(parse_hls("#EXTM3U\n#EXTINF:-1,\na\n").is_err());
        assert!(parse_hls("#EXTM3U\n").is_err());
    }

    #[test]
    fn mpd_timeline_and_duration() {
        let mpd = r#"<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT1M0.000S">
  <Period id="1"><!-- a comment with <tags> -->
    <AdaptationSet contentType="video">
      <Representation id="v1" bandwidth="200">
        <SegmentTemplate timescale="12800" initialization="v1/init.mp4" media="v1/$Number$.m4s" startNumber="1">
          <SegmentTimeline><S t="512" d="76800" r="9"/></SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
    <AdaptationSet contentType="audio">
      <SegmentTemplate timescale="1000" duration="4000" media="$RepresentationID$/$Number%05d$-$Bandwidth$.m4s"/>
      <Representation id="a2" bandwidth="64"/>
    </AdaptationSet>
  </Period></MPD>"#;
        let (v, n) = parse_mpd(mpd, 1).unwrap();
        assert_eq!(n, 2);
        assert_eq!(v.init.as_deref(), Some("v1/init.mp4"));
        assert_eq!(v.segments.len(), 10);
        assert_eq!(v.segments[9], Segment { uri: "v1/10.m4s".into(), duration: 6.0 });
        let (a, _) = parse_mpd(mpd, 2).unwrap();
        assert_eq!(a.init, None);
        assert_eq!(a.segments.len(), 15);
        assert_eq!(a.segments[0].uri, "a2/00001-64.m4s");
        assert!(parse_mpd(mpd, 3).unwrap_err().contains("2 Representations"));
        assert!(parse_mpd("<html/>", 1).is_err());
        let zero = mpd.replace("d=\"76800\"", "d=\"0\"");
        assert!(parse_mpd(&zero, 1).is_err());
        let huge = mpd.replace("r=\"9\"", "r=\"999999999999\"");
        assert!(parse_mpd(&huge, 1).unwrap_err().contains("more than"));
        assert!(parse_mpd("<MPD><Period><Representation id=\"x\" bandwidth=\"q\"/>", 1).is_err());
    }

    #[test]
    fn truncated_and_mangled_manifests_never_panic() {
        let mpd = r#"<?xml version="1.0"?><MPD mediaPresentationDuration="PT1M"><Period><AdaptationSet>
<SegmentTemplate timescale="1000" duration="18446744073709551615" media="$Number%05d$.m4s" initialization="i.mp4"/>
<Representation id="a" bandwidth="1"><SegmentTemplate timescale="0" media="$Time$.m4s"><SegmentTimeline>
<S t="18446744073709551615" d="18446744073709551615" r="-1"/><S d="1" r="-9"/></SegmentTimeline></SegmentTemplate>
</Representation></AdaptationSet></Period></MPD>"#;
        let m3u8 = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n#EXT-X-MAP:URI=\"i\n#EXTINF:1e400,\nx\n";
        for text in [mpd, m3u8] {
            for cut in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
                let (head, tail) = text.split_at(cut);
                for t in [head, tail] {
                    for v in [0, 1, 2, 7] {
                        let _ = parse_mpd(t, v);
                    }
                    let _ = parse_hls(t);
                    let _ = resolve(t, t);
                }
            }
        }
    }

    #[test]
    fn iso_durations_and_paths() {
        assert_eq!(iso_duration("PT1H2M3.5S"), Some(3723.5));
        assert_eq!(iso_duration("P1DT0S"), Some(86_400.0));
        assert_eq!(iso_duration("PTxS"), None);
        assert_eq!(resolve("/a/b.mp4/master.m3u8?start=3", "v1/index.m3u8").as_deref(), Some("/a/b.mp4/v1/index.m3u8"));
        assert_eq!(resolve("/a/b.mp4/v1/index.m3u8", "../a2/1.m4s?x=1").as_deref(), Some("/a/b.mp4/a2/1.m4s?x=1"));
        assert_eq!(resolve("/a/x.mpd", "/abs/1.m4s").as_deref(), Some("/abs/1.m4s"));
        assert_eq!(resolve("/a/x.mpd", "http://other/1.m4s"), None);
        assert_eq!(Kind::of("/a.mp4/master.m3u8?start=1"), Some(Kind::Hls));
        assert_eq!(Kind::of("/a.mp4/manifest.MPD"), Some(Kind::Dash));
        assert_eq!(Kind::of("/a.mp4"), None);
    }
}
