//! One rung's media-playlist state: the sliding window of segments and parts, the lookups the
//! HTTP side serves from, and the blocking waits of LL-HLS (§6.2.5.2, §6.2.6).
//!
//! Concurrency: the packager thread pushes, many HTTP handlers read and wait. The state sits
//! behind a `std::sync::Mutex` held only for a push, a lookup or a render; the live edge is
//! mirrored into a `tokio::sync::watch` channel so that waiters decide from it without the lock
//! and wake on every push (no polling, no lost wake-up: a waiter subscribes before it looks).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::watch;

use super::{HlsConfig, HlsError, PlaylistRequest, playlist};

/// One CMAF chunk (moof+mdat) from the packager.
#[derive(Clone, Debug)]
pub struct PartIn {
    pub data: Bytes,
    pub duration: Duration,
    /// The chunk starts with a keyframe (`INDEPENDENT=YES`).
    pub independent: bool,
    /// The chunk starts a new fragment, i.e. a new segment: the open segment is closed first.
    pub starts_segment: bool,
    /// Wall-clock time of the chunk's first sample (`EXT-X-PROGRAM-DATE-TIME` of a segment is
    /// that of its first part).
    pub program_date_time: SystemTime,
}

/// Counters for monitoring: what is retained, and how often the input broke the spec's bounds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackStats {
    /// Bytes of media (parts) held: retained segments plus the open one.
    pub retained_bytes: usize,
    pub retained_parts: usize,
    /// Complete segments held (listed and no-longer-listed-but-downloadable).
    pub retained_segments: usize,
    /// Bytes of init segments held (the current one plus any still referenced).
    pub init_bytes: usize,
    /// `EXT-X-MEDIA-SEQUENCE` of the current playlist.
    pub media_sequence: u64,
    /// MSN of the open segment (or of the next one).
    pub live_msn: u64,
    pub parts_pushed: u64,
    /// Parts longer than PART-TARGET (§4.4.4.9 MUST NOT; see the module doc).
    pub parts_over_target: u64,
    /// Regular parts (not independent, not last of a segment) under 85 % of PART-TARGET.
    pub parts_under_floor: u64,
    /// Segments whose duration rounds above the target duration (§4.4.3.1 MUST NOT).
    pub segments_over_target: u64,
    /// Segments that did not start with an independent part.
    pub dependent_segment_starts: u64,
    /// Open segments closed without `starts_segment` because they grew past 3 target durations.
    pub forced_splits: u64,
}

/// The live edge as waiters see it (mirrored into the watch channel on every change).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Edge {
    /// MSN of the open segment, or of the next one to open: the number of segments completed.
    pub next_msn: u64,
    /// Parts in the open segment (0 when none is open).
    pub open_parts: u64,
    /// Parts in the last complete segment (segment `next_msn - 1`).
    pub last_parts: u64,
    pub ended: bool,
}

impl Edge {
    /// §6.2.5.2: has part `part` of segment `msn` (or, without `part`, segment `msn` complete), or
    /// anything later, been published?
    fn reached(&self, msn: u64, part: Option<u64>) -> bool {
        if self.ended {
            // "A Server MUST ignore _HLS_msn and _HLS_part if the Playlist contains EXT-X-ENDLIST."
            return true;
        }
        let Some(part) = part else {
            return msn < self.next_msn;
        };
        if msn + 1 < self.next_msn {
            // Segment msn + 1 is complete, so whichever part of msn is meant exists or rolls
            // over to part 0 of msn + 1.
            true
        } else if msn + 1 == self.next_msn {
            // msn is the last complete segment: a part past its final one means part 0 of the
            // following segment (§6.2.5.2), which exists once that segment has a part.
            part < self.last_parts || self.open_parts > 0
        } else if msn == self.next_msn {
            part < self.open_parts
        } else {
            false
        }
    }

    /// §6.2.5.2 SHOULD: refuse requests too far ahead at once instead of blocking.
    fn check_ahead(&self, cfg: &HlsConfig, msn: u64, part: Option<u64>) -> Result<(), HlsError> {
        if self.ended {
            return Ok(());
        }
        // "greater than the Media Sequence Number of the last Media Segment plus two": the last
        // complete segment is next_msn - 1.
        if msn >= self.next_msn + cfg.max_msn_ahead {
            return Err(HlsError::TooFarAhead {
                requested: msn,
                live_edge: self.next_msn,
            });
        }
        let Some(part) = part else { return Ok(()) };
        let limit = cfg.advance_part_limit();
        // Parts ahead of the last published one; for a later segment at least part + 1.
        let ahead = if msn == self.next_msn {
            (part + 1).saturating_sub(self.open_parts)
        } else if msn > self.next_msn {
            part + 1
        } else {
            0
        };
        if ahead > limit {
            return Err(HlsError::PartTooFarAhead { msn, part, limit });
        }
        Ok(())
    }

    /// `LAST-MSN` / `LAST-PART` for a rendition report: the last published part.
    pub fn last_part(&self) -> Option<(u64, u64)> {
        if self.open_parts > 0 {
            Some((self.next_msn, self.open_parts - 1))
        } else if self.next_msn > 0 && self.last_parts > 0 {
            Some((self.next_msn - 1, self.last_parts - 1))
        } else {
            None
        }
    }
}

pub(crate) struct Part {
    pub data: Bytes,
    pub duration: Duration,
    pub independent: bool,
}

pub(crate) struct Segment {
    pub msn: u64,
    pub parts: Vec<Part>,
    /// Sum of the parts' durations.
    pub duration: Duration,
    pub bytes: usize,
    /// Program date time of the first part.
    pub pdt: SystemTime,
    pub init_version: u32,
    /// `EXT-X-DISCONTINUITY` before this segment.
    pub discontinuity: bool,
}

struct Init {
    version: u32,
    data: Bytes,
}

pub(crate) struct State {
    /// Current init last; older versions only while a retained segment refers to them.
    inits: Vec<Init>,
    /// Retained complete segments, oldest first, consecutive MSNs ending at `next_msn - 1`.
    pub complete: VecDeque<Segment>,
    /// `EXT-X-MEDIA-SEQUENCE`: segments before it are retained for download but not listed.
    pub first_listed: u64,
    pub open: Option<Segment>,
    pub next_msn: u64,
    /// Discontinuities in segments dropped from `complete` (for EXT-X-DISCONTINUITY-SEQUENCE).
    disc_dropped: u64,
    pub any_discontinuity: bool,
    /// The next part starts a new segment with EXT-X-DISCONTINUITY (init change, caller's mark).
    pending_discontinuity: bool,
    pub ended: bool,
    /// Bumped on every change; keys the render cache.
    generation: u64,
    cache: [Option<(u64, Arc<str>)>; 2],
    stats: TrackStats,
}

impl State {
    fn new() -> State {
        State {
            inits: Vec::new(),
            complete: VecDeque::new(),
            first_listed: 0,
            open: None,
            next_msn: 0,
            disc_dropped: 0,
            any_discontinuity: false,
            pending_discontinuity: false,
            ended: false,
            generation: 0,
            cache: [None, None],
            stats: TrackStats::default(),
        }
    }

    fn edge(&self) -> Edge {
        Edge {
            next_msn: self.next_msn,
            open_parts: self.open.as_ref().map_or(0, |s| s.parts.len() as u64),
            last_parts: self.complete.back().map_or(0, |s| s.parts.len() as u64),
            ended: self.ended,
        }
    }

    /// The listed complete segments (`first_listed..next_msn`).
    pub fn listed(&self) -> impl DoubleEndedIterator<Item = &Segment> + ExactSizeIterator {
        let skip = self.complete.len() - self.listed_count();
        self.complete.range(skip..)
    }

    fn listed_count(&self) -> usize {
        (self.next_msn - self.first_listed) as usize
    }

    /// `EXT-X-DISCONTINUITY-SEQUENCE`: discontinuities before the first listed segment.
    pub fn discontinuity_sequence(&self) -> u64 {
        let unlisted = self.complete.len() - self.listed_count();
        let in_unlisted = self
            .complete
            .iter()
            .take(unlisted)
            .filter(|s| s.discontinuity)
            .count();
        self.disc_dropped + in_unlisted as u64
    }

    pub fn init_uri_version(&self) -> Option<u32> {
        self.inits.last().map(|i| i.version)
    }

    fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.complete.front()?.msn;
        self.complete.get(msn.checked_sub(first)? as usize)
    }

    fn any_segment(&self, msn: u64) -> Option<&Segment> {
        match &self.open {
            Some(open) if open.msn == msn => Some(open),
            _ => self.segment(msn),
        }
    }

    /// Where the next part will most likely go, for `EXT-X-PRELOAD-HINT`. Segments end at GOP
    /// boundaries the packager decides, so predict a boundary once the open segment is within
    /// half a part of the expected length (the target, or the last segment's if longer: an
    /// encoder with a longer GOP). A wrong guess costs one 404 on the hinted URI (§6.2.6 MAY).
    pub fn next_part_hint(&self, cfg: &HlsConfig) -> (u64, u64) {
        let Some(open) = &self.open else {
            return (self.next_msn, 0);
        };
        let expected = self
            .complete
            .back()
            .map_or(cfg.segment_target, |s| s.duration.max(cfg.segment_target));
        if self.pending_discontinuity || open.duration + cfg.part_target / 2 >= expected {
            (open.msn + 1, 0)
        } else {
            (open.msn, open.parts.len() as u64)
        }
    }

    fn close_open(&mut self, cfg: &HlsConfig) {
        let Some(seg) = self.open.take() else { return };
        let pt = cfg.part_target;
        // §4.4.4.9: the 85 % floor does not apply to independent parts or the final part.
        let last = seg.parts.len().saturating_sub(1);
        let under = seg
            .parts
            .iter()
            .enumerate()
            .filter(|(i, p)| *i != last && !p.independent && p.duration * 100 < pt * 85)
            .count() as u64;
        if under > 0 {
            self.stats.parts_under_floor += under;
            warn_sometimes(self.stats.parts_under_floor, || {
                format!(
                    "segment {} has {under} parts under 85% of PART-TARGET {pt:?}",
                    seg.msn
                )
            });
        }
        // §4.4.3.1: EXTINF rounded to the nearest integer must be <= the target duration.
        if seg.duration.as_millis() >= u128::from(cfg.target_duration()) * 1000 + 500 {
            self.stats.segments_over_target += 1;
            warn_sometimes(self.stats.segments_over_target, || {
                format!(
                    "segment {} lasts {:?}, above the target duration {} s",
                    seg.msn,
                    seg.duration,
                    cfg.target_duration()
                )
            });
        }
        self.complete.push_back(seg);
        self.next_msn += 1;
        self.slide_window(cfg);
    }

    /// Advances `EXT-X-MEDIA-SEQUENCE` past segments beyond the window (never backwards), then
    /// drops segments that are neither listed nor within the download grace.
    fn slide_window(&mut self, cfg: &HlsConfig) {
        let min_duration = cfg.target_duration_dur() * 3;
        let mut listed: Duration = self.listed().map(|s| s.duration).sum();
        // Hard cap in case segments are tiny (a broken encoder): the window must stay bounded.
        let hard_cap = cfg.window_segments.saturating_mul(8);
        while self.listed_count() > cfg.window_segments {
            let first = self.listed().next().expect("listed is non-empty");
            // §6.2.2: never shrink the playlist below three target durations.
            let remaining = listed - first.duration;
            if remaining < min_duration && self.listed_count() <= hard_cap {
                break;
            }
            listed = remaining;
            self.first_listed += 1;
        }
        let keep = self.listed_count() + cfg.retain_extra_segments();
        while self.complete.len() > keep {
            let dropped = self.complete.pop_front().expect("len > keep >= 0");
            if dropped.discontinuity {
                self.disc_dropped += 1;
            }
        }
        // Keep old init versions only while something retained refers to them.
        let oldest = self
            .complete
            .front()
            .or(self.open.as_ref())
            .map(|s| s.init_version);
        // Versions only grow, so the current init always passes.
        if let Some(oldest) = oldest {
            self.inits.retain(|init| init.version >= oldest);
        }
    }

    fn touch(&mut self) {
        self.generation += 1;
    }

    fn stats(&self) -> TrackStats {
        let open_bytes = self.open.as_ref().map_or(0, |s| s.bytes);
        let open_parts = self.open.as_ref().map_or(0, |s| s.parts.len());
        TrackStats {
            retained_bytes: self.complete.iter().map(|s| s.bytes).sum::<usize>() + open_bytes,
            retained_parts: self.complete.iter().map(|s| s.parts.len()).sum::<usize>() + open_parts,
            retained_segments: self.complete.len(),
            init_bytes: self.inits.iter().map(|i| i.data.len()).sum(),
            media_sequence: self.first_listed,
            live_msn: self.next_msn,
            ..self.stats.clone()
        }
    }
}

/// Logs the 1st, 2nd, 4th, 8th... occurrence: visible without flooding a 24 h log.
fn warn_sometimes(count: u64, msg: impl FnOnce() -> String) {
    if count.is_power_of_two() {
        tracing::warn!(count, "{}", msg());
    }
}

/// One rung's LL-HLS media playlist state. Share it as `Arc<Track>`.
pub struct Track {
    name: String,
    cfg: HlsConfig,
    state: Mutex<State>,
    edge: watch::Sender<Edge>,
}

impl std::fmt::Debug for Track {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Track")
            .field("name", &self.name)
            .field("edge", &*self.edge.borrow())
            .finish_non_exhaustive()
    }
}

impl Track {
    pub fn new(name: impl Into<String>, cfg: HlsConfig) -> Result<Track, HlsError> {
        cfg.validate()?;
        Ok(Track {
            name: name.into(),
            cfg,
            state: Mutex::new(State::new()),
            edge: watch::Sender::new(Edge::default()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &HlsConfig {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the HTTP side down with it: the state is consistent
        // between statements that could panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, st: &mut State) {
        st.touch();
        let edge = st.edge();
        // send_replace updates even with no receiver subscribed.
        self.edge.send_replace(edge);
    }

    pub(crate) fn edge(&self) -> Edge {
        *self.edge.borrow()
    }

    /// Sets the init segment (ftyp+moov). The same bytes again are a no-op; different bytes
    /// after media was pushed get the next version (`init{v}.mp4`) and make the next part start a
    /// new segment with `EXT-X-DISCONTINUITY` (§6.2.1: changes in encoding parameters MUST be
    /// signalled).
    pub fn set_init(&self, data: Bytes) {
        let mut st = self.lock();
        if st.inits.last().is_some_and(|i| i.data == data) {
            return;
        }
        let version = st.inits.last().map_or(0, |i| i.version + 1);
        let has_media = st.open.is_some() || !st.complete.is_empty();
        if has_media {
            st.pending_discontinuity = true;
            st.inits.push(Init { version, data });
        } else {
            // Nothing refers to the old one yet: replace it (keeps `init.mp4` for the common
            // case of caps settling before the first chunk).
            st.inits.clear();
            st.inits.push(Init { version: 0, data });
        }
        self.publish(&mut st);
    }

    /// Makes the next part start a new segment with `EXT-X-DISCONTINUITY` (e.g. the timestamps
    /// jump after an encoder restart).
    pub fn mark_discontinuity(&self) {
        let mut st = self.lock();
        if st.open.is_some() || !st.complete.is_empty() {
            st.pending_discontinuity = true;
            self.publish(&mut st);
        }
    }

    /// Appends a part. Closes the open segment first when the part starts a segment (or a
    /// discontinuity is pending, or the open segment grew past three target durations).
    pub fn push_part(&self, part: PartIn) -> Result<(), HlsError> {
        let cfg = &self.cfg;
        let mut st = self.lock();
        if st.ended {
            return Err(HlsError::Ended);
        }
        let Some(init_version) = st.init_uri_version() else {
            return Err(HlsError::NoInit);
        };
        if part.duration.is_zero() {
            return Err(HlsError::InvalidPart("zero duration".into()));
        }
        if part.data.is_empty() {
            return Err(HlsError::InvalidPart("no data".into()));
        }
        // A broken encoder that never sends a keyframe must not grow a segment without bound.
        let too_long = st
            .open
            .as_ref()
            .is_some_and(|s| s.duration >= cfg.target_duration_dur() * 3 || s.parts.len() >= 1024);
        if too_long && !part.starts_segment {
            st.stats.forced_splits += 1;
            warn_sometimes(st.stats.forced_splits, || {
                format!(
                    "track {}: no segment start for 3 target durations, splitting",
                    self.name
                )
            });
        }
        if part.starts_segment || st.pending_discontinuity || too_long {
            st.close_open(cfg);
        }
        if st.open.is_none() {
            let discontinuity = std::mem::take(&mut st.pending_discontinuity);
            st.any_discontinuity |= discontinuity;
            if !part.independent {
                st.stats.dependent_segment_starts += 1;
            }
            st.open = Some(Segment {
                msn: st.next_msn,
                parts: Vec::with_capacity(8),
                duration: Duration::ZERO,
                bytes: 0,
                pdt: part.program_date_time,
                init_version,
                discontinuity,
            });
        }
        if part.duration > cfg.part_target {
            st.stats.parts_over_target += 1;
            warn_sometimes(st.stats.parts_over_target, || {
                format!(
                    "track {}: part of {:?} is above PART-TARGET {:?}",
                    self.name, part.duration, cfg.part_target
                )
            });
        }
        st.stats.parts_pushed += 1;
        let open = st.open.as_mut().expect("opened above");
        open.duration += part.duration;
        open.bytes += part.data.len();
        open.parts.push(Part {
            data: part.data,
            duration: part.duration,
            independent: part.independent,
        });
        self.publish(&mut st);
        Ok(())
    }

    /// Ends the stream: closes the open segment, adds `EXT-X-ENDLIST`, releases every waiter.
    pub fn finish(&self) {
        let mut st = self.lock();
        if st.ended {
            return;
        }
        st.close_open(&self.cfg);
        st.ended = true;
        self.publish(&mut st);
    }

    /// The init segment in effect for new segments.
    pub fn init(&self) -> Option<Bytes> {
        self.lock().inits.last().map(|i| i.data.clone())
    }

    /// A specific init version (`init.mp4` is 0), while a retained segment refers to it.
    pub fn init_version(&self, version: u32) -> Option<Bytes> {
        let st = self.lock();
        st.inits
            .iter()
            .find(|i| i.version == version)
            .map(|i| i.data.clone())
    }

    /// A complete segment's bytes, as its parts (serve their concatenation).
    pub fn segment(&self, msn: u64) -> Option<Vec<Bytes>> {
        let st = self.lock();
        st.segment(msn)
            .map(|s| s.parts.iter().map(|p| p.data.clone()).collect())
    }

    /// A part of a retained segment (complete or open).
    pub fn part(&self, msn: u64, index: u64) -> Option<Bytes> {
        let st = self.lock();
        let seg = st.any_segment(msn)?;
        seg.parts
            .get(usize::try_from(index).ok()?)
            .map(|p| p.data.clone())
    }

    /// At least one part published (the playlist lists something).
    pub fn is_ready(&self) -> bool {
        let e = self.edge();
        e.open_parts > 0 || e.next_msn > 0
    }

    pub fn stats(&self) -> TrackStats {
        self.lock().stats()
    }

    /// Renders the media playlist now (`req.skip` selects a delta update; `msn`/`part` are for
    /// [`Track::wait_for`] and ignored here).
    pub fn media_playlist(&self, req: PlaylistRequest) -> String {
        self.media_playlist_shared(req).to_string()
    }

    /// As [`Track::media_playlist`], sharing the rendered text between requests that see the
    /// same state (every waiter wakes on the same push and would render the same bytes).
    pub(crate) fn media_playlist_shared(&self, req: PlaylistRequest) -> Arc<str> {
        let skip = req.skip && self.cfg.can_skip_until.is_some();
        let mut st = self.lock();
        let slot = usize::from(skip);
        if let Some((generation, text)) = &st.cache[slot]
            && *generation == st.generation
        {
            return text.clone();
        }
        let text: Arc<str> = playlist::render_media(&st, &self.cfg, skip).into();
        st.cache[slot] = Some((st.generation, text.clone()));
        text
    }

    /// Blocking playlist reload (§6.2.5.2): returns once segment `msn` is complete (`part` =
    /// `None`) or part `part` of segment `msn` exists, counting a part index past the final part
    /// of a complete segment as part 0 of the next one, and anything later as satisfying. Errors
    /// at once with `TooFarAhead` / `PartTooFarAhead` (400). Unbounded: bound it with
    /// `tokio::time::timeout` (or use [`Track::blocking_playlist`]).
    pub async fn wait_for(&self, msn: u64, part: Option<u64>) -> Result<(), HlsError> {
        // Subscribe before looking: a push between the look and the await still wakes us.
        let mut rx = self.edge.subscribe();
        loop {
            let edge = *rx.borrow_and_update();
            edge.check_ahead(&self.cfg, msn, part)?;
            if edge.reached(msn, part) {
                return Ok(());
            }
            // The sender lives in `self`, so this only fails if the track is gone.
            rx.changed().await.map_err(|_| HlsError::Ended)?;
        }
    }

    /// Waits per `req`'s directives (if `msn` is given), at most `timeout`, then renders.
    /// `Err(Timeout)` maps to 503 (§6.2.5.2: respond within three target durations,
    /// [`HlsConfig::blocking_timeout`]).
    pub async fn blocking_playlist(
        &self,
        req: PlaylistRequest,
        timeout: Duration,
    ) -> Result<String, HlsError> {
        if req.part.is_some() && req.msn.is_none() {
            return Err(HlsError::BadRequest("_HLS_part without _HLS_msn".into()));
        }
        if let Some(msn) = req.msn {
            tokio::time::timeout(timeout, self.wait_for(msn, req.part))
                .await
                .map_err(|_| HlsError::Timeout)??;
        }
        Ok(self.media_playlist(req))
    }

    /// A part's bytes, waiting if it is the next part to come (the `EXT-X-PRELOAD-HINT` target or
    /// part 0 of the next segment). `NoSuchResource` (404) for a part that does not exist and
    /// will not: not the next one, out of the window, or a hinted part that the segmentation
    /// skipped (§6.2.6: "MAY choose not to publish previously-hinted resources ... SHOULD respond
    /// ... Not Found"). Unbounded: bound it with a timeout (or use [`Track::blocking_part`]).
    pub async fn wait_part(&self, msn: u64, index: u64) -> Result<Bytes, HlsError> {
        let mut rx = self.edge.subscribe();
        loop {
            let edge = *rx.borrow_and_update();
            if let Some(data) = self.part(msn, index) {
                return Ok(data);
            }
            let next_in_open = msn == edge.next_msn && index == edge.open_parts;
            let next_segment = msn == edge.next_msn + u64::from(edge.open_parts > 0) && index == 0;
            if edge.ended || !(next_in_open || next_segment) {
                return Err(HlsError::NoSuchResource);
            }
            rx.changed().await.map_err(|_| HlsError::Ended)?;
        }
    }

    /// [`Track::wait_part`] bounded by `timeout` (`Err(Timeout)`, 503).
    pub async fn blocking_part(
        &self,
        msn: u64,
        index: u64,
        timeout: Duration,
    ) -> Result<Bytes, HlsError> {
        tokio::time::timeout(timeout, self.wait_part(msn, index))
            .await
            .map_err(|_| HlsError::Timeout)?
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hls::checker::{Checker, parse_media};
    use std::time::UNIX_EPOCH;

    pub(crate) const T0: u64 = 1_700_000_000;

    /// Pushes parts in a fixed 1 s GOP of five 200 ms parts, the shape cmafmux produces.
    pub(crate) struct Feeder {
        pub n: u64,
        pub part: Duration,
        pub per_segment: u64,
        pub size: usize,
        pub elapsed: Duration,
    }

    impl Feeder {
        pub fn new() -> Feeder {
            Feeder {
                n: 0,
                part: Duration::from_millis(200),
                per_segment: 5,
                size: 1000,
                elapsed: Duration::ZERO,
            }
        }

        pub fn next(&mut self) -> PartIn {
            let starts = self.n.is_multiple_of(self.per_segment);
            let pdt = UNIX_EPOCH + Duration::from_secs(T0) + self.elapsed;
            // Tag the bytes with the part number so tests can tell parts apart.
            let mut data = vec![0u8; self.size];
            data[..8].copy_from_slice(&self.n.to_be_bytes());
            self.n += 1;
            self.elapsed += self.part;
            PartIn {
                data: Bytes::from(data),
                duration: self.part,
                independent: starts,
                starts_segment: starts,
                program_date_time: pdt,
            }
        }

        pub fn push(&mut self, t: &Track, count: u64) {
            for _ in 0..count {
                t.push_part(self.next()).unwrap();
            }
        }
    }

    pub(crate) fn track() -> Track {
        track_with(HlsConfig::default())
    }

    pub(crate) fn track_with(cfg: HlsConfig) -> Track {
        let t = Track::new("720p", cfg).unwrap();
        t.set_init(Bytes::from_static(b"ftypmoov"));
        t
    }

    fn full(t: &Track) -> String {
        t.media_playlist(PlaylistRequest::default())
    }

    #[test]
    fn track_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Track>();
        assert_send_sync::<Arc<Track>>();
    }

    #[test]
    fn push_requires_init_and_valid_parts() {
        let t = Track::new("a", HlsConfig::default()).unwrap();
        let mut f = Feeder::new();
        assert_eq!(t.push_part(f.next()), Err(HlsError::NoInit));
        t.set_init(Bytes::from_static(b"init"));
        let mut p = f.next();
        p.duration = Duration::ZERO;
        assert!(matches!(t.push_part(p), Err(HlsError::InvalidPart(_))));
        let mut p = f.next();
        p.data = Bytes::new();
        assert!(matches!(t.push_part(p), Err(HlsError::InvalidPart(_))));
        t.push_part(f.next()).unwrap();
        t.finish();
        assert_eq!(t.push_part(f.next()), Err(HlsError::Ended));
    }

    #[test]
    fn first_part_opens_segment_zero_and_starts_close_segments() {
        let t = track();
        let mut f = Feeder::new();
        let mut first = f.next();
        first.starts_segment = false; // the first part opens segment 0 regardless
        t.push_part(first).unwrap();
        assert_eq!(
            t.edge(),
            Edge {
                next_msn: 0,
                open_parts: 1,
                last_parts: 0,
                ended: false
            }
        );
        f.push(&t, 4);
        assert_eq!(t.segment(0), None, "segment 0 is still open");
        f.push(&t, 1); // part 5 starts segment 1
        assert_eq!(
            t.edge(),
            Edge {
                next_msn: 1,
                open_parts: 1,
                last_parts: 5,
                ended: false
            }
        );
        let seg = t.segment(0).unwrap();
        assert_eq!(seg.len(), 5);
        // A segment is the concatenation of its parts, shared without copying.
        for (i, b) in seg.iter().enumerate() {
            assert_eq!(b, &t.part(0, i as u64).unwrap());
            assert_eq!(b.as_ptr(), t.part(0, i as u64).unwrap().as_ptr());
        }
        assert_eq!(t.part(1, 0).unwrap()[..8], 5u64.to_be_bytes());
        assert_eq!(t.part(1, 1), None);
        assert_eq!(t.part(0, 5), None);
        assert_eq!(t.part(0, u64::MAX), None);
    }

    #[test]
    fn playlists_obey_the_spec_on_every_push_and_reload() {
        let t = track();
        let mut f = Feeder::new();
        let mut checker = Checker::new();
        for _ in 0..(5 * 25 + 3) {
            f.push(&t, 1);
            let text = full(&t);
            let pl = checker
                .check(&text, &t.cfg)
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(pl.version, 6);
        }
        let pl = parse_media(&full(&t)).unwrap();
        assert_eq!(pl.segments.len(), 10, "window of 10 complete segments");
        assert_eq!(pl.media_sequence, 15);
        assert_eq!(pl.segments.last().unwrap().msn, 24);
        assert_eq!(pl.open_parts.len(), 3);
        assert_eq!(pl.hint.as_deref(), Some("part25.3.m4s"));
    }

    #[test]
    fn part_tags_only_for_the_last_three_target_durations() {
        let t = track();
        let mut f = Feeder::new();
        f.push(&t, 5 * 12 + 1);
        let pl = parse_media(&full(&t)).unwrap();
        let with_parts: Vec<u64> = pl
            .segments
            .iter()
            .filter(|s| !s.parts.is_empty())
            .map(|s| s.msn)
            .collect();
        // Open segment 12 has 0.2 s: segments 11 (1.2 s from the end) and 10 (2.2 s) keep their
        // parts, segment 9 would start 3.2 s from the end.
        assert_eq!(with_parts, vec![10, 11]);
        // ... but their parts stay downloadable for well over three more target durations.
        assert!(t.part(3, 0).is_some());
        let media = parse_media(&full(&t)).unwrap().media_sequence;
        assert_eq!(media, 2);
        assert!(
            t.part(0, 4).is_some(),
            "unlisted segments are kept for a grace period"
        );
    }

    #[test]
    fn independent_flags_follow_the_push() {
        let t = track();
        let mut f = Feeder::new();
        f.push(&t, 13);
        let text = full(&t);
        let pl = parse_media(&text).unwrap();
        for seg in pl.segments.iter().filter(|s| !s.parts.is_empty()) {
            assert!(seg.parts[0].independent, "{text}");
            assert!(seg.parts[1..].iter().all(|p| !p.independent), "{text}");
        }
        assert!(pl.open_parts[0].independent);
        assert!(text.contains("#EXT-X-PART:DURATION=0.200,URI=\"part2.0.m4s\",INDEPENDENT=YES"));
        assert!(text.contains("#EXT-X-PART:DURATION=0.200,URI=\"part2.1.m4s\"\n"));
    }

    #[test]
    fn memory_stays_flat_over_a_24h_show() {
        let t = track();
        let mut f = Feeder::new();
        // 24 h of 200 ms parts of 1 KB: 432,000 parts, 86,400 segments.
        let total = 24 * 3600 * 5;
        let mut max_bytes = 0;
        let mut max_parts = 0;
        for i in 0..total {
            t.push_part(f.next()).unwrap();
            if i % 997 == 0 || i + 1 == total {
                let s = t.stats();
                max_bytes = max_bytes.max(s.retained_bytes);
                max_parts = max_parts.max(s.retained_parts);
            }
        }
        let s = t.stats();
        // 10 listed + 3 grace segments of 5 parts, plus the open segment.
        let bound = (10 + 3 + 1) * 5;
        assert!(max_parts <= bound, "{max_parts} parts retained");
        assert!(max_bytes <= bound * 1000, "{max_bytes} bytes retained");
        assert_eq!(s.retained_segments, 13);
        assert_eq!(s.parts_pushed, total);
        assert_eq!(s.live_msn, total / 5 - 1);
        assert_eq!(s.init_bytes, 8);
        assert_eq!(
            (
                s.parts_over_target,
                s.parts_under_floor,
                s.segments_over_target,
                s.forced_splits
            ),
            (0, 0, 0, 0)
        );
        let text = full(&t);
        Checker::new().check(&text, &t.cfg).unwrap();
        assert!(
            text.len() < 4096,
            "playlist stays small: {} bytes",
            text.len()
        );
    }

    #[test]
    fn a_segment_without_keyframes_is_split_to_bound_memory() {
        let t = track();
        let mut f = Feeder::new();
        for _ in 0..100 {
            let mut p = f.next();
            p.starts_segment = false;
            p.independent = false;
            t.push_part(p).unwrap();
        }
        let s = t.stats();
        assert!(s.forced_splits > 0);
        assert!(s.retained_parts <= 14 * 15, "{}", s.retained_parts);
    }

    #[test]
    fn gop_boundary_overshoot_needs_a_larger_part_target() {
        // The last part of each GOP is one frame longer (the keyframe came late).
        let frame = Duration::from_nanos(33_333_333);
        let push = |t: &Track| {
            let mut f = Feeder::new();
            for i in 0..40u64 {
                let mut p = f.next();
                if i % 5 == 4 {
                    p.duration += frame;
                    f.elapsed += frame; // the wall clock moves on with it
                }
                t.push_part(p).unwrap();
            }
        };
        let naive = track();
        push(&naive);
        assert_eq!(naive.stats().parts_over_target, 8);
        let err = Checker::new().check(&full(&naive), &naive.cfg).unwrap_err();
        assert!(err.contains("PART-TARGET"), "{err}");

        let pt = HlsConfig::part_target_for(Duration::from_millis(200), frame).unwrap();
        let cfg = HlsConfig {
            part_target: pt,
            ..HlsConfig::default()
        };
        let fixed = track_with(cfg);
        push(&fixed);
        let s = fixed.stats();
        assert_eq!((s.parts_over_target, s.parts_under_floor), (0, 0));
        let text = full(&fixed);
        Checker::new()
            .check(&text, &fixed.cfg)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(
            text.contains("#EXT-X-PART-INF:PART-TARGET=0.233334\n"),
            "{text}"
        );
        assert!(text.contains("PART-HOLD-BACK=0.466668"), "{text}");
    }

    #[test]
    fn short_regular_parts_are_counted() {
        let t = track();
        let mut f = Feeder::new();
        for i in 0..11u64 {
            let mut p = f.next();
            if i == 2 {
                p.duration = Duration::from_millis(100); // a regular part under 85 %
            }
            if i == 4 {
                p.duration = Duration::from_millis(50); // the final part: exempt
            }
            t.push_part(p).unwrap();
        }
        assert_eq!(t.stats().parts_under_floor, 1);
    }

    #[test]
    fn preload_hint_predicts_segment_boundaries() {
        let t = track();
        let mut f = Feeder::new();
        let hint = |t: &Track| parse_media(&full(t)).unwrap().hint.unwrap();
        assert_eq!(hint(&t), "part0.0.m4s");
        f.push(&t, 1);
        assert_eq!(hint(&t), "part0.1.m4s");
        f.push(&t, 3);
        assert_eq!(hint(&t), "part0.4.m4s");
        f.push(&t, 1);
        // Five parts make 1 s: the next part starts segment 1.
        assert_eq!(hint(&t), "part1.0.m4s");
        f.push(&t, 1);
        assert_eq!(hint(&t), "part1.1.m4s");
    }

    #[test]
    fn discontinuity_on_init_change() {
        let t = track();
        let mut f = Feeder::new();
        f.push(&t, 7);
        t.set_init(Bytes::from_static(b"ftypmoov")); // unchanged: no-op
        t.set_init(Bytes::from_static(b"ftypmoov-v2"));
        // The next part is hinted in a new segment.
        assert_eq!(
            parse_media(&full(&t)).unwrap().hint.as_deref(),
            Some("part2.0.m4s")
        );
        let mut p = f.next();
        p.starts_segment = false; // mid-GOP in the old numbering: the init change still splits
        t.push_part(p).unwrap();
        let text = full(&t);
        let pl = Checker::new()
            .check(&text, &t.cfg)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(pl.segments.len(), 2);
        assert_eq!(
            pl.segments[1].duration_s, 0.4,
            "segment 1 cut short by the change"
        );
        assert!(
            text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init1.mp4\""),
            "{text}"
        );
        assert_eq!(t.init().unwrap(), Bytes::from_static(b"ftypmoov-v2"));
        assert_eq!(t.init_version(0).unwrap(), Bytes::from_static(b"ftypmoov"));
        assert_eq!(
            t.init_version(1).unwrap(),
            Bytes::from_static(b"ftypmoov-v2")
        );
        assert_eq!(pl.discontinuity_sequence, 0);

        // Once the discontinuity slides out of the window the sequence counts it, and the old
        // init is released once no retained segment refers to it.
        let mut checker = Checker::new();
        for _ in 0..5 * 16 {
            f.push(&t, 1);
            checker.check(&full(&t), &t.cfg).unwrap();
        }
        let text = full(&t);
        let pl = parse_media(&text).unwrap();
        assert_eq!(pl.discontinuity_sequence, 1, "{text}");
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"));
        assert!(text.contains("#EXT-X-MAP:URI=\"init1.mp4\""));
        assert_eq!(t.init_version(0), None);
        assert!(t.init_version(1).is_some());
    }

    #[test]
    fn finish_ends_the_playlist() {
        let t = track();
        let mut f = Feeder::new();
        f.push(&t, 12);
        t.finish();
        t.finish();
        let text = full(&t);
        let pl = Checker::new().check(&text, &t.cfg).unwrap();
        assert!(pl.endlist);
        assert_eq!(pl.hint, None);
        assert!(pl.open_parts.is_empty());
        assert_eq!(pl.segments.len(), 3);
        assert_eq!(pl.segments[2].duration_s, 0.4);
    }

    // ---- blocking reload ----

    fn ready(t: &Track, msn: u64, part: Option<u64>) -> bool {
        t.edge().reached(msn, part)
    }

    #[test]
    fn reached_follows_section_6_2_5_2() {
        let t = track();
        let mut f = Feeder::new();
        assert!(!ready(&t, 0, Some(0)));
        f.push(&t, 5 * 3 + 2); // segments 0..=2 complete, segment 3 open with 2 parts
        // msn only: the segment must be complete.
        assert!(ready(&t, 2, None));
        assert!(!ready(&t, 3, None));
        // Existing parts.
        assert!(ready(&t, 3, Some(0)));
        assert!(ready(&t, 3, Some(1)));
        assert!(!ready(&t, 3, Some(2)));
        // A part past the final part of a complete segment is part 0 of the next one.
        assert!(ready(&t, 2, Some(5)));
        assert!(ready(&t, 2, Some(99)));
        assert!(ready(&t, 1, Some(7)));
        // A part past the last part of the open segment waits: its final part is unknown.
        assert!(!ready(&t, 3, Some(9)));
        assert!(!ready(&t, 4, Some(0)));
        // Segments long gone are satisfied by the current playlist.
        f.push(&t, 5 * 20);
        assert!(ready(&t, 0, None));
        assert!(ready(&t, 0, Some(3)));
    }

    #[test]
    fn too_far_ahead_is_refused_at_once() {
        let t = track();
        let mut f = Feeder::new();
        let cfg = &t.cfg;
        let check = |msn, part| t.edge().check_ahead(cfg, msn, part);
        // Nothing complete yet: segments 0 and 1 may be waited for.
        assert_eq!(check(1, None), Ok(()));
        assert_eq!(
            check(2, None),
            Err(HlsError::TooFarAhead {
                requested: 2,
                live_edge: 0
            })
        );
        f.push(&t, 5 * 4 + 1); // last complete 3, open 4
        assert_eq!(check(5, Some(0)), Ok(()));
        assert_eq!(check(5, None), Ok(()));
        assert_eq!(
            check(6, None),
            Err(HlsError::TooFarAhead {
                requested: 6,
                live_edge: 4
            })
        );
        // Advance Part Limit: 3 / 0.2 = 15 parts past the last one.
        assert_eq!(check(4, Some(15)), Ok(()));
        assert_eq!(
            check(4, Some(16)),
            Err(HlsError::PartTooFarAhead {
                msn: 4,
                part: 16,
                limit: 15
            })
        );
        assert_eq!(check(5, Some(14)), Ok(()));
        assert!(check(5, Some(15)).is_err());
    }

    #[tokio::test]
    async fn wait_for_errors_immediately_when_too_far_ahead() {
        let t = Arc::new(track());
        Feeder::new().push(&t, 5 * 4 + 1);
        let r = t.wait_for(7, None).await;
        assert_eq!(
            r,
            Err(HlsError::TooFarAhead {
                requested: 7,
                live_edge: 4
            })
        );
        assert_eq!(r.unwrap_err().http_status(), 400);
        let r = t.wait_for(4, Some(40)).await.unwrap_err();
        assert_eq!(r.http_status(), 400);
        // Requests for the past return at once.
        t.wait_for(0, Some(2)).await.unwrap();
        t.wait_for(3, None).await.unwrap();
    }

    /// Polls a future once without waiting.
    fn poll_once<F: std::future::Future>(fut: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match fut.poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn wait_for_resolves_exactly_when_the_part_is_pushed() {
        // Ordering, not timing: pending before the push, ready right after it.
        let t = track();
        let mut f = Feeder::new();
        f.push(&t, 2);
        let fut = t.wait_for(0, Some(3));
        tokio::pin!(fut);
        assert!(poll_once(fut.as_mut()).is_none());
        f.push(&t, 1); // part 0.2
        assert!(poll_once(fut.as_mut()).is_none());
        f.push(&t, 1); // part 0.3
        assert_eq!(poll_once(fut.as_mut()), Some(Ok(())));
    }

    #[tokio::test]
    async fn part_past_the_end_of_the_open_segment_waits_for_the_next_segment() {
        let t = track();
        let mut f = Feeder::new();
        f.push(&t, 3);
        let fut = t.wait_for(0, Some(7));
        tokio::pin!(fut);
        f.push(&t, 2); // parts 0.3, 0.4: segment 0 still open, no part 7
        assert!(poll_once(fut.as_mut()).is_none());
        f.push(&t, 1); // part 1.0: segment 0 completes with 5 parts -> request means 1.0
        assert_eq!(poll_once(fut.as_mut()), Some(Ok(())));

        let fut = t.wait_for(1, None);
        tokio::pin!(fut);
        f.push(&t, 4);
        assert!(
            poll_once(fut.as_mut()).is_none(),
            "segment 1 is complete only at 2.0"
        );
        f.push(&t, 1);
        assert_eq!(poll_once(fut.as_mut()), Some(Ok(())));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_waiters_wake_promptly_on_push_from_another_thread() {
        let t = Arc::new(track());
        let mut f = Feeder::new();
        f.push(&t, 5 * 2 + 1); // open segment 2 with 1 part
        let mut waiters = Vec::new();
        for _ in 0..200 {
            let t = t.clone();
            waiters.push(tokio::spawn(async move {
                t.wait_for(2, Some(1)).await.unwrap();
                std::time::Instant::now()
            }));
        }
        // Let them all block; none may finish before the push.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()));
        let pushed_at = std::thread::spawn({
            let t = t.clone();
            move || {
                let mut f = f;
                let at = std::time::Instant::now();
                f.push(&t, 1);
                at
            }
        })
        .join()
        .unwrap();
        for w in waiters {
            let woke = tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .unwrap()
                .unwrap();
            // Generous bound (CI machines): a wake-up, not a poll interval.
            assert!(woke.duration_since(pushed_at) < Duration::from_millis(500));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn simulated_ll_clients_follow_the_live_edge() {
        // A packager thread pushes in real time while LL clients chain blocking reloads the way
        // the spec's clients do: ask for the part after the last one they saw.
        let t = Arc::new(track());
        let packager = std::thread::spawn({
            let t = t.clone();
            move || {
                let mut f = Feeder::new();
                for _ in 0..400 {
                    f.push(&t, 1);
                    std::thread::sleep(Duration::from_micros(500));
                }
                t.finish();
            }
        });
        let mut clients = Vec::new();
        for _ in 0..8 {
            let t = t.clone();
            clients.push(tokio::spawn(async move {
                let mut req = PlaylistRequest::default();
                let mut reloads = 0u32;
                loop {
                    let text = t
                        .blocking_playlist(req, Duration::from_secs(10))
                        .await
                        .unwrap();
                    reloads += 1;
                    let pl = Checker::new()
                        .check(&text, &t.cfg)
                        .unwrap_or_else(|e| panic!("{e}\n{text}"));
                    if pl.endlist {
                        return reloads;
                    }
                    let open_msn = pl.media_sequence + pl.skipped + pl.segments.len() as u64;
                    let (msn, last) = match (pl.open_parts.len(), pl.segments.last()) {
                        (0, None) => {
                            // Nothing published yet: block for the very first part.
                            req = PlaylistRequest {
                                msn: Some(0),
                                part: Some(0),
                                skip: false,
                            };
                            continue;
                        }
                        (0, Some(seg)) => (seg.msn, seg.parts.len() as u64 - 1),
                        (n, _) => (open_msn, n as u64 - 1),
                    };
                    // The answer holds what was asked for (or later).
                    if let (Some(m), Some(p)) = (req.msn, req.part) {
                        assert!(
                            (msn, last) >= (m, p) || msn > m,
                            "asked {m}.{p}, got {msn}.{last}"
                        );
                    }
                    req = PlaylistRequest {
                        msn: Some(msn),
                        part: Some(last + 1),
                        skip: false,
                    };
                }
            }));
        }
        packager.join().unwrap();
        for c in clients {
            let reloads = c.await.unwrap();
            assert!(
                reloads > 10,
                "clients blocked instead of polling: {reloads}"
            );
        }
    }

    #[tokio::test]
    async fn blocking_playlist_times_out_with_503() {
        let t = track();
        Feeder::new().push(&t, 3);
        let req = PlaylistRequest {
            msn: Some(0),
            part: Some(3),
            skip: false,
        };
        let r = t.blocking_playlist(req, Duration::from_millis(20)).await;
        assert_eq!(r, Err(HlsError::Timeout));
        assert_eq!(HlsError::Timeout.http_status(), 503);
        let req = PlaylistRequest {
            msn: Some(0),
            part: Some(2),
            skip: false,
        };
        let text = t
            .blocking_playlist(req, Duration::from_millis(20))
            .await
            .unwrap();
        assert!(text.contains("part0.2.m4s"));
        let bad = PlaylistRequest {
            msn: None,
            part: Some(2),
            skip: false,
        };
        assert!(matches!(
            t.blocking_playlist(bad, Duration::from_millis(20)).await,
            Err(HlsError::BadRequest(_))
        ));
    }

    #[tokio::test]
    async fn finish_releases_waiters() {
        let t = track();
        Feeder::new().push(&t, 3);
        let fut = t.wait_for(1, None);
        tokio::pin!(fut);
        assert!(poll_once(fut.as_mut()).is_none());
        t.finish();
        assert_eq!(poll_once(fut.as_mut()), Some(Ok(())));
        // After ENDLIST the directives are ignored, even far ahead.
        t.wait_for(1000, Some(1000)).await.unwrap();
    }

    #[tokio::test]
    async fn hinted_part_waits_and_mispredicted_hint_is_404() {
        let t = track();
        let mut f = Feeder::new();
        f.push(&t, 2);
        // The hinted next part blocks until pushed.
        let fut = t.wait_part(0, 2);
        tokio::pin!(fut);
        assert!(poll_once(fut.as_mut()).is_none());
        f.push(&t, 1);
        let got = poll_once(fut.as_mut()).unwrap().unwrap();
        assert_eq!(got[..8], 2u64.to_be_bytes());
        // Existing parts return at once, parts that are not next are 404 at once.
        assert!(t.wait_part(0, 0).await.is_ok());
        assert_eq!(t.wait_part(0, 5).await, Err(HlsError::NoSuchResource));
        assert_eq!(t.wait_part(2, 0).await, Err(HlsError::NoSuchResource));
        assert_eq!(t.wait_part(1, 1).await, Err(HlsError::NoSuchResource));

        // Hint 0.3 predicted, but the encoder starts a new GOP early: 0.3 never comes.
        let fut = t.wait_part(0, 3);
        tokio::pin!(fut);
        assert!(poll_once(fut.as_mut()).is_none());
        let mut p = f.next();
        p.starts_segment = true;
        p.independent = true;
        t.push_part(p).unwrap();
        assert_eq!(poll_once(fut.as_mut()), Some(Err(HlsError::NoSuchResource)));
        assert_eq!(HlsError::NoSuchResource.http_status(), 404);

        // Part 0 of the next segment may be requested before its segment opens.
        let fut = t.blocking_part(2, 0, Duration::from_secs(5));
        tokio::pin!(fut);
        assert!(poll_once(fut.as_mut()).is_none());
        f.n = 5; // next part starts a segment
        f.push(&t, 1);
        assert!(poll_once(fut.as_mut()).unwrap().is_ok());
        assert_eq!(
            t.blocking_part(2, 1, Duration::from_millis(10)).await,
            Err(HlsError::Timeout)
        );
    }
}
