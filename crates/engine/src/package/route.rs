//! The URL tail below a movie that names a packaging answer: `master.m3u8`, `manifest.mpd`,
//! `v1/index.m3u8`, `v1/iframes.m3u8`, `v1/init.mp4`, `v1/3.m4s` (and `a2/…`), `s3/index.m3u8`,
//! `s3/2.vtt`, `s3/all.vtt`.
//! Strict: anything else is not a packaging request. Also finds where a request path splits
//! into the movie and such a tail.

use super::segments::Media;

/// What a packaging URL asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackageRequest {
    /// `master.m3u8`: the HLS multivariant playlist.
    Master,
    /// `manifest.mpd`: the DASH MPD.
    Mpd,
    /// `v1/index.m3u8`: a media playlist.
    Playlist { media: Media, id: u32 },
    /// `v1/iframes.m3u8`: an I-frame playlist.
    IFrames { id: u32 },
    /// `v1/init.mp4`: an initialisation segment.
    Init { media: Media, id: u32 },
    /// `v1/3.m4s`: media segment `number` (from 1).
    Segment { media: Media, id: u32, number: u32 },
    /// `s3/2.vtt`: the WebVTT cues of segment `number`; `s3/all.vtt` (`None`): all of them.
    Vtt { id: u32, number: Option<u32> },
}

/// A decimal number without sign, leading zeros or excess digits.
fn number(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

impl PackageRequest {
    /// Parses a tail (`master.m3u8`, `v1/3.m4s`); `None` for anything else.
    pub fn parse(tail: &str) -> Option<PackageRequest> {
        match tail {
            "master.m3u8" => return Some(PackageRequest::Master),
            "manifest.mpd" => return Some(PackageRequest::Mpd),
            _ => {}
        }
        let (dir, file) = tail.split_once('/')?;
        let media = match dir.as_bytes().first()? {
            b'v' => Media::Video,
            b'a' => Media::Audio,
            b's' => Media::Subtitle,
            _ => return None,
        };
        let id = number(&dir[1..])?;
        if media == Media::Subtitle {
            return match file {
                "index.m3u8" => Some(PackageRequest::Playlist { media, id }),
                "all.vtt" => Some(PackageRequest::Vtt { id, number: None }),
                _ => {
                    let n = number(file.strip_suffix(".vtt")?)?;
                    (n >= 1).then_some(PackageRequest::Vtt { id, number: Some(n) })
                }
            };
        }
        match file {
            "index.m3u8" => Some(PackageRequest::Playlist { media, id }),
            "iframes.m3u8" if media == Media::Video => Some(PackageRequest::IFrames { id }),
            "init.mp4" => Some(PackageRequest::Init { media, id }),
            _ => {
                let n = number(file.strip_suffix(".m4s")?)?;
                (n >= 1).then_some(PackageRequest::Segment { media, id, number: n })
            }
        }
    }

    /// The content type of the answer.
    pub fn content_type(&self) -> &'static str {
        match self {
            PackageRequest::Master | PackageRequest::Playlist { .. } | PackageRequest::IFrames { .. } => super::M3U8,
            PackageRequest::Mpd => super::MPD,
            PackageRequest::Init { .. } | PackageRequest::Segment { .. } => super::MP4,
            PackageRequest::Vtt { .. } => super::VTT,
        }
    }
}

/// Splits a request path (`/dir/movie.mp4/v1/3.m4s`) into the movie's path and the
/// packaging request, when a component with an MP4 extension (`is_movie`) is followed by a
/// valid tail. The movie path keeps the form it had (still encoded for a raw URL path).
pub fn split(path: &str, is_movie: impl Fn(&str) -> bool) -> Option<(&str, PackageRequest)> {
    // The tail is one or two components: try both.
    for parts in [1usize, 2] {
        let mut cut = path.len();
        for _ in 0..parts {
            cut = super::rsplit_at(&path[..cut], b'/')?.0.len();
        }
        let (movie, tail) = (&path[..cut], &path[cut + 1..]);
        let name = super::rsplit_at(movie, b'/').map_or(movie, |(_, name)| name);
        if name.is_empty() || !is_movie(name) {
            continue;
        }
        if let Some(req) = PackageRequest::parse(tail) {
            return Some((movie, req));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_parse_strictly() {
        use PackageRequest as P;
        assert_eq!(P::parse("master.m3u8"), Some(P::Master));
        assert_eq!(P::parse("manifest.mpd"), Some(P::Mpd));
        assert_eq!(P::parse("v1/index.m3u8"), Some(P::Playlist { media: Media::Video, id: 1 }));
        assert_eq!(P::parse("a2/init.mp4"), Some(P::Init { media: Media::Audio, id: 2 }));
        assert_eq!(P::parse("v1/iframes.m3u8"), Some(P::IFrames { id: 1 }));
        assert_eq!(P::parse("v10/37.m4s"), Some(P::Segment { media: Media::Video, id: 10, number: 37 }));
        assert_eq!(P::parse("s3/index.m3u8"), Some(P::Playlist { media: Media::Subtitle, id: 3 }));
        assert_eq!(P::parse("s3/2.vtt"), Some(P::Vtt { id: 3, number: Some(2) }));
        assert_eq!(P::parse("s3/all.vtt"), Some(P::Vtt { id: 3, number: None }));
        for bad in [
            "",
            "master.m3u",
            "v/1.m4s",
            "v01/1.m4s",
            "v1/0.m4s",
            "v1/01.m4s",
            "x1/1.m4s",
            "v1/1.mp4",
            "v1/-1.m4s",
            "v1/1.m4s/",
            "v1/a/1.m4s",
            "a1/iframes.m3u8",
            "v1/9999999999.m4s",
            "v+1/1.m4s",
        ] {
            assert_eq!(P::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn paths_split_at_the_movie() {
        let mp4 = |n: &str| n.ends_with(".mp4");
        assert_eq!(split("/a/m.mp4/master.m3u8", mp4), Some(("/a/m.mp4", PackageRequest::Master)));
        assert_eq!(
            split("/m.mp4/v1/2.m4s", mp4),
            Some(("/m.mp4", PackageRequest::Segment { media: Media::Video, id: 1, number: 2 }))
        );
        assert_eq!(split("/m.mp4", mp4), None);
        assert_eq!(split("/m.flv/master.m3u8", mp4), None);
        assert_eq!(split("/m.mp4/x/master.m3u8", mp4), None);
        assert_eq!(split("master.m3u8", mp4), None);
    }
}
