//! One `trak` read into the facts the seek needs: id, handler, timescale, edit list, codec,
//! and the sample tables as views. Also the small fixed-layout header boxes (`mvhd`, `tkhd`,
//! `mdhd`, `elst`) and where their duration fields sit, so the rewrite can patch them.

use super::boxes::{children, find, fourcc_name, BoxHeader, FourCc, ReadBe};
use super::tables::{body, ChunkOffsets, Entries, Runs, SampleSizes, SampleToChunk, SyncSamples};
use crate::{Error, Result};

/// Where a header box keeps its timescale and duration, by version.
#[derive(Clone, Copy, Debug)]
pub struct TimeFields {
    pub timescale: u32,
    pub duration: u64,
    /// Body offset of the duration field and its width (4 or 8).
    pub duration_at: usize,
    pub duration_width: usize,
}

/// Reads `mvhd` or `mdhd` (same layout for timescale and duration).
pub fn time_fields(moov: &[u8], h: &BoxHeader) -> Result<TimeFields> {
    let b = body(moov, h)?;
    let short = || Error::corrupt(h.offset, format!("'{}' is too short", h.name()));
    let v = b.u8_at(0).ok_or_else(short)?;
    let (ts_at, dur_at, w) = if v == 1 { (20, 24, 8) } else { (12, 16, 4) };
    let timescale = b.u32_at(ts_at).ok_or_else(short)?;
    let duration =
        if w == 8 { b.u64_at(dur_at).ok_or_else(short)? } else { u64::from(b.u32_at(dur_at).ok_or_else(short)?) };
    Ok(TimeFields { timescale, duration, duration_at: dur_at, duration_width: w })
}

/// Reads the track id and duration field position of `tkhd`.
pub fn tkhd_fields(moov: &[u8], h: &BoxHeader) -> Result<(u32, usize, usize)> {
    let b = body(moov, h)?;
    let short = || Error::corrupt(h.offset, "'tkhd' is too short");
    let v = b.u8_at(0).ok_or_else(short)?;
    let (id_at, dur_at, w) = if v == 1 { (20, 28, 8) } else { (12, 20, 4) };
    let id = b.u32_at(id_at).ok_or_else(short)?;
    b.get(dur_at..dur_at + w).ok_or_else(short)?;
    Ok((id, dur_at, w))
}

/// The part of an edit list loomiere honours: an initial empty edit (a delay) followed by
/// one normal edit at rate 1 (media time where presentation starts). Later edits are ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Edit {
    /// Presentation delay before the media starts, in the movie timescale.
    pub delay: u64,
    /// Media time (track timescale) shown at the start of the normal edit.
    pub media_time: i64,
    /// Presentation duration of the normal edit (movie timescale); 0 when unknown.
    pub shown: u64,
    /// The source had an edit list.
    pub present: bool,
}

fn read_edit(moov: &[u8], edts: &BoxHeader) -> Result<Edit> {
    let Some(elst) = find(moov, edts.body_start(), edts.end(), b"elst")? else {
        return Ok(Edit::default());
    };
    let b = body(moov, &elst)?;
    let v = b.u8_at(0).ok_or_else(|| Error::corrupt(elst.offset, "'elst' is too short"))?;
    let width = if v == 1 { 20 } else { 12 };
    let e = Entries::parse(moov, &elst, 4, width)?;
    let mut edit = Edit { present: true, ..Edit::default() };
    for i in 0..e.count {
        let (dur, mt) = if v == 1 {
            (e.u64(i, 0), e.u64(i, 8) as i64)
        } else {
            (u64::from(e.u32(i, 0)), i64::from(e.u32(i, 4) as i32))
        };
        if mt == -1 {
            edit.delay = edit.delay.saturating_add(dur);
            continue;
        }
        edit.media_time = mt.max(0);
        edit.shown = dur;
        break;
    }
    Ok(edit)
}

/// The boxes of a track the rewrite patches or transforms, and its sample tables.
#[derive(Clone, Debug)]
pub struct Track<'a> {
    pub trak: BoxHeader,
    pub id: u32,
    /// `vide`, `soun`, `text`, `hint`, …
    pub handler: FourCc,
    /// First sample description's format: `avc1`, `mp4a`, …
    pub codec: FourCc,
    pub mdhd: TimeFields,
    pub edit: Edit,
    pub stts: Runs<'a>,
    pub ctts: Option<Runs<'a>>,
    /// `ctts` version 1 (signed offsets).
    pub ctts_signed: bool,
    pub stss: Option<SyncSamples<'a>>,
    pub stsc: SampleToChunk<'a>,
    pub sizes: SampleSizes<'a>,
    pub offsets: ChunkOffsets<'a>,
    /// Number of samples (from `stsz`/`stz2`).
    pub samples: u64,
    /// Known (from seek marks) that the chunk offsets never decrease.
    pub offsets_grow: bool,
}

impl<'a> Track<'a> {
    /// Reads a `trak` box.
    pub fn parse(moov: &'a [u8], trak: &BoxHeader) -> Result<Track<'a>> {
        let need = |parent: &BoxHeader, kind: &FourCc| -> Result<BoxHeader> {
            find(moov, parent.body_start(), parent.end(), kind)?.ok_or_else(|| {
                Error::corrupt(parent.offset, format!("'{}' has no '{}' box", parent.name(), fourcc_name(kind)))
            })
        };
        let tkhd = need(trak, b"tkhd")?;
        let (id, _, _) = tkhd_fields(moov, &tkhd)?;
        let edit = match find(moov, trak.body_start(), trak.end(), b"edts")? {
            Some(edts) => read_edit(moov, &edts)?,
            None => Edit::default(),
        };
        let mdia = need(trak, b"mdia")?;
        let mdhd = time_fields(moov, &need(&mdia, b"mdhd")?)?;
        let handler = match find(moov, mdia.body_start(), mdia.end(), b"hdlr")? {
            Some(h) => {
                let b = body(moov, &h)?;
                let t = b.get(8..12).ok_or_else(|| Error::corrupt(h.offset, "'hdlr' is too short"))?;
                [t[0], t[1], t[2], t[3]]
            }
            None => *b"----",
        };
        let minf = need(&mdia, b"minf")?;
        let stbl = need(&minf, b"stbl")?;
        let mut stts = None;
        let mut ctts = None;
        let mut ctts_signed = false;
        let mut stss = None;
        let mut stsc = None;
        let mut sizes = None;
        let mut offsets = None;
        let mut codec = *b"----";
        for h in children(moov, stbl.body_start(), stbl.end()) {
            let h = h?;
            match &h.kind {
                b"stsd" => {
                    if let Some(t) = body(moov, &h)?.get(12..16) {
                        codec = [t[0], t[1], t[2], t[3]];
                    }
                }
                b"stts" => stts = Some(Runs::new(Entries::parse(moov, &h, 4, 8)?)),
                b"ctts" => {
                    ctts_signed = body(moov, &h)?.u8_at(0) == Some(1);
                    ctts = Some(Runs::new(Entries::parse(moov, &h, 4, 8)?));
                }
                b"stss" => stss = Some(SyncSamples { entries: Entries::parse(moov, &h, 4, 4)? }),
                b"stsc" => stsc = Some(SampleToChunk::new(Entries::parse(moov, &h, 4, 12)?)),
                b"stsz" => sizes = Some(SampleSizes::parse(moov, &h, false)?),
                b"stz2" => sizes = Some(SampleSizes::parse(moov, &h, true)?),
                b"stco" => offsets = Some(ChunkOffsets { entries: Entries::parse(moov, &h, 4, 4)? }),
                b"co64" => offsets = Some(ChunkOffsets { entries: Entries::parse(moov, &h, 4, 8)? }),
                _ => {}
            }
        }
        let missing = |what: &str| Error::corrupt(stbl.offset, format!("track {id} has no '{what}' table"));
        let stts = stts.ok_or_else(|| missing("stts"))?;
        let stsc = stsc.ok_or_else(|| missing("stsc"))?;
        let sizes = sizes.ok_or_else(|| missing("stsz"))?;
        let offsets = offsets.ok_or_else(|| missing("stco"))?;
        let samples = sizes.count() as u64;
        if mdhd.timescale == 0 && samples > 0 {
            return Err(Error::corrupt(trak.offset, format!("track {id} has timescale 0")));
        }
        let track = Track {
            trak: *trak,
            id,
            handler,
            codec,
            mdhd,
            edit,
            stts,
            ctts,
            ctts_signed,
            stss,
            stsc,
            sizes,
            offsets,
            samples,
            offsets_grow: false,
        };
        track.check()?;
        Ok(track)
    }

    /// Cross-checks the tables: every sample has a duration and a chunk.
    fn check(&self) -> Result<()> {
        if self.samples == 0 {
            return Ok(());
        }
        let covered = self.stts.total();
        if covered < self.samples {
            return Err(Error::corrupt(
                self.trak.offset,
                format!("track {}: 'stts' covers {covered} samples, 'stsz' has {}", self.id, self.samples),
            ));
        }
        // stsc/stco coverage is checked where it is used (`locate_pair` finds both ends of a
        // cut or fails), which avoids a scan of a table that can hold 50 000 entries.
        Ok(())
    }

    /// Lets the scans of this track start from its seek marks.
    pub fn attach(&mut self, marks: &'a super::marks::TrackMarks) {
        if let Some(c) = &mut self.ctts {
            c.marks = &marks.ctts;
        }
        self.stsc.marks = &marks.stsc;
        self.offsets_grow = marks.offsets_grow;
    }

    /// True for video tracks.
    pub fn is_video(&self) -> bool {
        &self.handler == b"vide"
    }

    /// True for audio tracks.
    pub fn is_audio(&self) -> bool {
        &self.handler == b"soun"
    }

    /// True for timed text: QuickTime text (chapter tracks), 3GPP/MPEG-4 subtitles.
    pub fn is_timed_text(&self) -> bool {
        matches!(&self.handler, b"text" | b"sbtl" | b"subt")
    }

    /// Composition offset of sample `s` (0 without `ctts`).
    pub fn cts_offset(&self, s: u64) -> i64 {
        match &self.ctts {
            Some(c) => i64::from(c.value_of(s) as i32),
            None => 0,
        }
    }

    /// Where presentation of samples `..s1` ends, in the media timeline: the latest
    /// composition time + duration among the last samples (B-frame reordering is shallow),
    /// and no later than the source's own edit ends.
    pub fn presentation_end(&self, s1: u64, mts: u32) -> i128 {
        let edit_end = (self.edit.present && self.edit.shown > 0 && mts > 0).then(|| {
            i128::from(self.edit.media_time)
                + i128::from(self.edit.shown) * i128::from(self.mdhd.timescale) / i128::from(mts)
        });
        // Kept to the end: the source's own edit says where presentation ends.
        if let (true, Some(e)) = (s1 >= self.samples, edit_end) {
            return e;
        }
        let from = s1.saturating_sub(32);
        let mut end = i128::from(self.dts(s1));
        if let Some(ctts) = &self.ctts {
            let mut dts = i128::from(self.dts(from));
            let durations = self.stts.values_from(from);
            let offsets = ctts.values_from(from).chain(std::iter::repeat(0));
            for (d, c) in durations.zip(offsets).take((s1 - from) as usize) {
                end = end.max(dts + i128::from(c as i32) + i128::from(d));
                dts += i128::from(d);
            }
        }
        match edit_end {
            Some(e) => end.min(e),
            None => end,
        }
    }

    /// Decode time of sample `s` in the track timescale.
    pub fn dts(&self, s: u64) -> u64 {
        self.stts.time_of(s)
    }

    /// Is sample `s` a sync sample?
    pub fn is_sync(&self, s: u64) -> bool {
        match &self.stss {
            None => true,
            Some(t) => t.at_or_before(s) == Some(s),
        }
    }

    /// The last sync sample at or before `s` (the first sample when there is none).
    pub fn sync_at_or_before(&self, s: u64) -> u64 {
        match &self.stss {
            None => s,
            Some(t) => t.at_or_before(s).unwrap_or_else(|| if t.is_empty() { 0 } else { t.get(0) }),
        }
    }

    /// Sync sample before sync sample `s`, if any.
    pub fn previous_sync(&self, s: u64) -> Option<u64> {
        match &self.stss {
            None => s.checked_sub(1),
            Some(t) => s.checked_sub(1).and_then(|p| t.at_or_before(p)),
        }
    }

    /// The sync sample after sync sample `s`, if any (the next sample without `stss`).
    pub fn next_sync(&self, s: u64) -> Option<u64> {
        let next = match &self.stss {
            None => s.checked_add(1),
            Some(t) => {
                let i = t.first_index_at_or_after(s.saturating_add(1));
                (i < t.len()).then(|| t.get(i))
            }
        };
        next.filter(|&n| n > s && n < self.samples)
    }

    /// Presentation (composition) time of sample `s` in the media timeline: decode time plus
    /// composition offset, in the track timescale.
    pub fn pts(&self, s: u64) -> i128 {
        i128::from(self.dts(s)) + i128::from(self.cts_offset(s))
    }

    /// File offset and size of sample `s`.
    pub fn sample_location(&self, s: u64) -> Option<(u64, u64)> {
        self.location_in(&self.stsc.locate(s, self.offsets.len() as u64)?, s)
    }

    /// File offset and size of sample `s`, which lies in the chunk at `pos`.
    pub fn location_in(&self, pos: &super::tables::ChunkPos, s: u64) -> Option<(u64, u64)> {
        let base = self.offsets.get(usize::try_from(pos.chunk).ok()?);
        let within = self.sizes.sum(pos.first_sample, s);
        Some((base.checked_add(within)?, u64::from(self.sizes.get(usize::try_from(s).ok()?))))
    }

    /// Total bytes of all samples.
    pub fn total_bytes(&self) -> u64 {
        self.sizes.sum(0, self.samples)
    }

    /// Duration of the media in seconds (from the sample durations).
    pub fn seconds(&self) -> f64 {
        if self.mdhd.timescale == 0 {
            return 0.0;
        }
        self.stts.sum(0, self.samples) as f64 / f64::from(self.mdhd.timescale)
    }
}
