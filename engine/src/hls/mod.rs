//! LL-HLS packaging state and playlists (RFC 8216bis, "draft-pantos-hls-rfc8216bis"), as plain
//! Rust: no GStreamer types, no HTTP. The engine feeds each rung's `cmafmux` output in and serves
//! what comes out; this module owns the sliding window, the playlists and the blocking waits.
//!
//! # Data flow
//!
//! Per rung the engine runs `cmafmux` with fragment-duration = segment target (one GOP) and
//! chunk-duration = part target. For each rung it owns an `Arc<Track>` (usually through an
//! [`HlsRoom`]) and calls, from the packager thread:
//!
//! * [`Track::set_init`] with the init segment (ftyp+moov) once, and again if caps change (a
//!   changed init gets a new URI and the next segment gets `EXT-X-DISCONTINUITY`);
//! * [`Track::push_part`] with every CMAF chunk (moof+mdat) as a [`PartIn`]: its duration, whether
//!   it starts with a keyframe (`independent`) and whether it starts a new segment (fragment
//!   boundary). The first part ever opens segment 0; a part with `starts_segment` closes the open
//!   segment and opens the next one;
//! * [`Track::finish`] when the show ends (`EXT-X-ENDLIST`, all waiters released).
//!
//! HTTP handlers (many, concurrently) call the lookups, the renderers and the async waits.
//! `Track` is `Send + Sync`: a `std::sync::Mutex` guards the state and is held only for a
//! lookup or a render (never across an `.await`); a `tokio::sync::watch` channel carries the live
//! edge so that waiters wake on every push without polling and without taking the lock.
//!
//! # URLs (relative URIs inside the playlists)
//!
//! | resource | path | [`Resource`] |
//! |---|---|---|
//! | multivariant playlist | `/live/{room}/index.m3u8` | ([`HlsPath::Multivariant`]) |
//! | media playlist | `/live/{room}/{rung}/index.m3u8` | `Playlist` |
//! | init segment | `/live/{room}/{rung}/init.mp4` (`init{v}.mp4` after the `v`-th caps change) | `Init(v)` |
//! | segment | `/live/{room}/{rung}/seg{msn}.m4s` | `Segment(msn)` |
//! | part | `/live/{room}/{rung}/part{msn}.{index}.m4s` | `Part(msn, index)` |
//!
//! [`parse_resource`] parses the last path component and rejects everything else (no `..`, no
//! signs, no leading zeros, no numbers beyond 15 digits); [`parse_path`] parses a whole path.
//!
//! # Public API
//!
//! * [`HlsConfig`] (`part_target`, `segment_target`, `window_segments`, `max_msn_ahead`,
//!   `can_skip_until`) with `Default` and [`HlsConfig::validate`];
//!   [`HlsConfig::part_target_for`] derives a spec-legal PART-TARGET from the chunk duration and
//!   the packager's worst overshoot at a GOP boundary (see "PART-TARGET" below).
//! * [`RungInfo`] and [`multivariant`]`(&[RungInfo]) -> String`.
//! * [`Track`]: `new`, `set_init(Bytes)`, `push_part(PartIn) -> Result<(), HlsError>`,
//!   `mark_discontinuity()`, `finish()`; lookups `init() -> Option<Bytes>`,
//!   `init_version(v)`, `segment(msn) -> Option<Vec<Bytes>>`, `part(msn, i) -> Option<Bytes>`;
//!   rendering `media_playlist(PlaylistRequest) -> String`; waits
//!   `async wait_for(msn, Option<part>) -> Result<(), HlsError>`,
//!   `async blocking_playlist(PlaylistRequest, timeout) -> Result<String, HlsError>`,
//!   `async wait_part(msn, i) -> Result<Bytes, HlsError>` (for preload-hinted parts),
//!   `async blocking_part(msn, i, timeout)`; `stats() -> TrackStats`.
//! * [`PlaylistRequest`] (`msn`, `part`, `skip`) with [`PlaylistRequest::from_query`] for the
//!   `_HLS_msn` / `_HLS_part` / `_HLS_skip` delivery directives.
//! * [`HlsRoom`]: the tracks of one room's ladder by rung name, `track(name)`, `multivariant()`,
//!   and `media_playlist` / `blocking_playlist` that add `EXT-X-RENDITION-REPORT` tags for the
//!   other rungs (required by the spec's low-latency server configuration profile, Appendix B).
//! * [`HlsError`] with [`HlsError::http_status`] (400 / 404 / 503 / 500).
//!
//! # Blocking playlist reload (§6.2.5.2)
//!
//! * `_HLS_msn=M` alone: wait until segment `M` is complete (listed with `EXTINF`), or any later.
//! * `_HLS_msn=M&_HLS_part=N`: wait until part `N` of segment `M`, or any later part, exists.
//!   Once segment `M` is complete with fewer than `N + 1` parts the request means part 0 of
//!   segment `M + 1` ("If the Client requests a Part Index greater than that of the final
//!   Partial Segment of the Parent Segment, the Server MUST treat the request as one for Part
//!   Index 0 of the following Parent Segment"). While `M` is still open, an `N` past its last part
//!   waits (the final part is not known yet).
//! * A segment that already left the window is satisfied at once: "the Server MUST deliver the
//!   entire Playlist ... even if it is no longer in the Playlist".
//! * `M` more than `max_msn_ahead` (2, the spec's "plus two") past the last complete segment is
//!   [`HlsError::TooFarAhead`]; `N` more than the Advance Part Limit (3 / PART-TARGET parts,
//!   15 at 200 ms) past the last part is [`HlsError::PartTooFarAhead`]; both are HTTP 400.
//! * `_HLS_part` without `_HLS_msn` is a 400 ([`PlaylistRequest::from_query`]).
//! * The wait is bounded by the caller; the spec says to answer 503 after three target durations
//!   ([`HlsConfig::blocking_timeout`], [`HlsError::Timeout`]).
//! * After [`Track::finish`] (`EXT-X-ENDLIST`) directives are ignored: every wait returns at once.
//!
//! # PART-TARGET and GOP boundaries
//!
//! The spec has no tolerance: every part MUST be <= PART-TARGET, and every part except an
//! INDEPENDENT one and the last of its segment MUST be >= 85 % of it (§4.4.4.9). PART-TARGET also
//! MUST NOT change while the playlist lives (iOS fails on it), so it is fixed by
//! [`HlsConfig::part_target`], not derived from what arrives. If the packager can emit a longer
//! part at a GOP boundary (the last chunk stretched to the late keyframe), PART-TARGET must cover
//! that overshoot while the regular chunks stay >= 85 % of it: with 200 ms chunks at 30 fps and
//! at most one frame of overshoot, PART-TARGET = 0.234 s works (200 / 234 = 85.5 %), while a 0.2 s
//! PART-TARGET would be violated by every stretched part. [`HlsConfig::part_target_for`] computes
//! and checks this. Parts that break either bound are still published with their real duration
//! (lying would desynchronise the timeline) and counted in [`TrackStats`] with a rate-limited
//! warning. Likewise `EXT-X-TARGETDURATION` is fixed at `ceil(segment_target)` (>= 1): the spec
//! forbids changing it, and a segment passes as long as its duration rounds to <= that value.
//!
//! # Memory
//!
//! A track keeps `window_segments` listed segments, a few more that left the playlist but must
//! stay downloadable (§6.2.2: segments for their availability duration, parts for three target
//! durations after their `EXT-X-PART` tag went), and the open segment. Segment bytes are the
//! parts' `Bytes` (a segment is served as their concatenation, no copy), so nothing else is
//! stored; memory is flat however long the show runs. An open segment that never gets a
//! `starts_segment` is force-closed at three target durations so that a broken encoder cannot
//! grow it without bound.

mod playlist;
mod room;
mod track;

#[cfg(test)]
mod checker;

use std::time::Duration;

pub use playlist::multivariant;
pub use room::HlsRoom;
pub use track::{PartIn, Track, TrackStats};

/// Delivery-directive and packaging errors. [`HlsError::http_status`] maps each to the HTTP status
/// the engine should answer with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HlsError {
    #[error("invalid HLS configuration: {0}")]
    InvalidConfig(String),
    #[error("bad playlist request: {0}")]
    BadRequest(String),
    #[error(
        "_HLS_msn={requested} is too far ahead of the live edge (segment {live_edge} is being written)"
    )]
    TooFarAhead { requested: u64, live_edge: u64 },
    #[error("_HLS_part={part} of segment {msn} is more than {limit} parts ahead of the live edge")]
    PartTooFarAhead { msn: u64, part: u64, limit: u64 },
    #[error("no such resource")]
    NoSuchResource,
    #[error("timed out waiting for the requested segment or part")]
    Timeout,
    #[error("no init segment has been set for this track")]
    NoInit,
    #[error("the track has ended")]
    Ended,
    #[error("invalid part: {0}")]
    InvalidPart(String),
}

impl HlsError {
    /// The HTTP status for this error when it answers a request (§6.2.5.2: 400 for requests too
    /// far ahead, 503 after blocking too long; §6.2.6: 404 for unknown resources). Packager-side
    /// errors map to 500.
    pub fn http_status(&self) -> u16 {
        match self {
            HlsError::BadRequest(_)
            | HlsError::TooFarAhead { .. }
            | HlsError::PartTooFarAhead { .. } => 400,
            HlsError::NoSuchResource => 404,
            HlsError::Timeout => 503,
            HlsError::InvalidConfig(_)
            | HlsError::NoInit
            | HlsError::Ended
            | HlsError::InvalidPart(_) => 500,
        }
    }
}

/// Packaging parameters shared by every rung of a room (§6.2.4 requires the same target duration
/// and the same `EXT-X-SERVER-CONTROL` in every media playlist of a presentation).
#[derive(Clone, Debug, PartialEq)]
pub struct HlsConfig {
    /// The advertised PART-TARGET. Every part MUST be <= this and every regular part >= 85 % of
    /// it; see the module doc and [`HlsConfig::part_target_for`]. Default 200 ms.
    pub part_target: Duration,
    /// The nominal segment (GOP / fragment) duration. `EXT-X-TARGETDURATION` is its ceiling in
    /// whole seconds (at least 1). Default 1 s.
    pub segment_target: Duration,
    /// Complete segments listed in the media playlist (the sliding window). Default 10.
    pub window_segments: usize,
    /// How far past the last complete segment a blocking request's `_HLS_msn` may point before it
    /// is refused with 400 (§6.2.5.2: "plus two"). At least 2. Default 2.
    pub max_msn_ahead: u64,
    /// `CAN-SKIP-UNTIL` (the skip boundary) for playlist delta updates (`_HLS_skip=YES`), or
    /// `None` to not offer them. MUST be >= 6 target durations. Default 6 target durations.
    pub can_skip_until: Option<Duration>,
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            part_target: Duration::from_millis(200),
            segment_target: Duration::from_secs(1),
            window_segments: 10,
            max_msn_ahead: 2,
            can_skip_until: Some(Duration::from_secs(6)),
        }
    }
}

impl HlsConfig {
    /// `EXT-X-TARGETDURATION`: `ceil(segment_target)` in whole seconds, at least 1.
    pub fn target_duration(&self) -> u64 {
        let ns = self.segment_target.as_nanos();
        (ns.div_ceil(1_000_000_000) as u64).max(1)
    }

    /// The target duration as a `Duration`.
    pub fn target_duration_dur(&self) -> Duration {
        Duration::from_secs(self.target_duration())
    }

    /// `PART-HOLD-BACK`: two part targets, the spec's MUST (its SHOULD is three). hls.js sits
    /// this far behind the live edge and never speeds up to it with under 1 s buffered, so every
    /// part target here is a part target of glass-to-glass latency: measured in
    /// `benches/hls_glass.rs`, 3x put the median at about 1.0-1.1 s, 2x at 0.8 s. A player that
    /// stalls backs off by itself (hls.js adds `liveSyncOnStallIncrease` per stall).
    pub fn part_hold_back(&self) -> Duration {
        self.part_target * 2
    }

    /// How long a blocking request may wait before the server should answer 503 (§6.2.5.2:
    /// "after blocking for more than three Target Durations").
    pub fn blocking_timeout(&self) -> Duration {
        self.target_duration_dur() * 3
    }

    /// The Advance Part Limit of §6.2.5.2: `3 / PART-TARGET` parts when PART-TARGET < 1 s, else 3.
    pub fn advance_part_limit(&self) -> u64 {
        let pt = self.part_target.as_secs_f64();
        if pt > 0.0 && pt < 1.0 {
            (3.0 / pt).floor() as u64
        } else {
            3
        }
    }

    /// Parts stay listed (as `EXT-X-PART`) while their segment starts within this distance of the
    /// end of the playlist (§6.2.2: three target durations).
    pub(crate) fn part_listing_span(&self) -> Duration {
        self.target_duration_dur() * 3
    }

    /// Complete segments kept after they left the playlist, so that they (§6.2.2: until first
    /// listed + segment duration + playlist duration) and their parts (three target durations
    /// after their `EXT-X-PART` tag went) stay downloadable.
    pub(crate) fn retain_extra_segments(&self) -> usize {
        let seg = self.segment_target.as_nanos().max(1);
        let for_parts = (self.part_listing_span().as_nanos().div_ceil(seg)) as usize;
        for_parts.max(2)
    }

    /// A PART-TARGET for `chunk`-long parts when a part at a GOP boundary can be up to
    /// `overshoot` longer: `chunk + overshoot`, checked so that regular `chunk`-long parts are
    /// still >= 85 % of it (§4.4.4.9). E.g. 200 ms chunks, one 30 fps frame of overshoot ->
    /// 233.334 ms (rounded up to the microsecond).
    pub fn part_target_for(chunk: Duration, overshoot: Duration) -> Result<Duration, HlsError> {
        let pt_us = (chunk + overshoot).as_nanos().div_ceil(1_000) as u64;
        let pt = Duration::from_micros(pt_us);
        // 85 % floor, exact in integers: chunk * 100 >= pt * 85.
        if chunk.as_nanos() * 100 < pt.as_nanos() * 85 {
            return Err(HlsError::InvalidConfig(format!(
                "{chunk:?} chunks are under 85% of a {pt:?} PART-TARGET; \
                 shorten the overshoot or lengthen the chunks"
            )));
        }
        Ok(pt)
    }

    /// Checks the spec's constraints between the parameters.
    pub fn validate(&self) -> Result<(), HlsError> {
        let bad = |m: String| Err(HlsError::InvalidConfig(m));
        if self.part_target < Duration::from_millis(10) {
            return bad(format!("part_target {:?} is below 10 ms", self.part_target));
        }
        if self.segment_target > Duration::from_secs(60) {
            return bad(format!(
                "segment_target {:?} is above 60 s",
                self.segment_target
            ));
        }
        if self.part_target > self.segment_target {
            return bad(format!(
                "part_target {:?} is longer than segment_target {:?}",
                self.part_target, self.segment_target
            ));
        }
        if self.window_segments == 0 || self.window_segments > 10_000 {
            return bad(format!(
                "window_segments {} is not in 1..=10000",
                self.window_segments
            ));
        }
        // §6.2.2: a live playlist must not get shorter than three target durations.
        let window = self.segment_target * self.window_segments as u32;
        if window < self.target_duration_dur() * 3 {
            return bad(format!(
                "{} segments of {:?} are shorter than three target durations ({} s)",
                self.window_segments,
                self.segment_target,
                3 * self.target_duration()
            ));
        }
        // A client following a preload hint over a segment boundary asks for last complete + 2.
        if self.max_msn_ahead < 2 {
            return bad(format!(
                "max_msn_ahead {} is below 2; clients legitimately ask for the segment after the \
                 open one",
                self.max_msn_ahead
            ));
        }
        if let Some(skip) = self.can_skip_until
            && skip < self.target_duration_dur() * 6
        {
            return bad(format!(
                "can_skip_until {skip:?} is below six target durations ({} s)",
                6 * self.target_duration()
            ));
        }
        Ok(())
    }
}

/// One rung of a room's ABR ladder, as advertised in the multivariant playlist.
#[derive(Clone, Debug, PartialEq)]
pub struct RungInfo {
    /// Path segment of the rung (`720p`): `[A-Za-z0-9_-]`, 1..=64 characters.
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// Peak bit rate of the rung's segments, video + audio (`BANDWIDTH`).
    pub bandwidth_bps: u64,
    /// Average bit rate (`AVERAGE-BANDWIDTH`).
    pub average_bandwidth_bps: u64,
    /// RFC 6381 codecs of every format in the segments, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
}

impl RungInfo {
    pub fn validate(&self) -> Result<(), HlsError> {
        let bad = |m: String| {
            Err(HlsError::InvalidConfig(format!(
                "rung {:?}: {m}",
                self.name
            )))
        };
        if !is_path_token(&self.name) {
            return bad("name must be 1..=64 of [A-Za-z0-9_-]".into());
        }
        if self.width == 0 || self.height == 0 {
            return bad("resolution must be non-zero".into());
        }
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 1000.0) {
            return bad(format!("fps {} is not in (0, 1000]", self.fps));
        }
        if self.bandwidth_bps == 0 || self.average_bandwidth_bps == 0 {
            return bad("bandwidths must be non-zero".into());
        }
        if self.average_bandwidth_bps > self.bandwidth_bps {
            return bad("average bandwidth is above the peak bandwidth".into());
        }
        // CODECS is a quoted-string: no quotes, no control characters (§4.2).
        let codecs_ok = !self.codecs.is_empty()
            && self
                .codecs
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"');
        if !codecs_ok {
            return bad(format!(
                "codecs {:?} is not a list of RFC 6381 codecs",
                self.codecs
            ));
        }
        Ok(())
    }
}

/// `[A-Za-z0-9_-]{1,64}`: safe as a path segment (no `.`, so never `..`).
pub(crate) fn is_path_token(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A request for a media playlist with its delivery directives (§6.2.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlaylistRequest {
    /// `_HLS_msn`: block until this segment (or part of it) exists.
    pub msn: Option<u64>,
    /// `_HLS_part`: with `msn`, block until this part of segment `msn` exists.
    pub part: Option<u64>,
    /// `_HLS_skip=YES` (or `v2`): answer with a delta update.
    pub skip: bool,
}

impl PlaylistRequest {
    /// Parses the query string of a playlist URL (without the `?`). Unknown parameters are
    /// ignored (cache busters); malformed or repeated directives and `_HLS_part` without
    /// `_HLS_msn` are [`HlsError::BadRequest`] (§6.2.5.2: "MUST return Bad Request").
    pub fn from_query(query: &str) -> Result<PlaylistRequest, HlsError> {
        let mut req = PlaylistRequest::default();
        let (mut seen_msn, mut seen_part, mut seen_skip) = (false, false, false);
        let once = |seen: &mut bool, key: &str| {
            if std::mem::replace(seen, true) {
                Err(HlsError::BadRequest(format!("{key} given twice")))
            } else {
                Ok(())
            }
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "_HLS_msn" => {
                    once(&mut seen_msn, key)?;
                    req.msn = Some(parse_directive_number(key, value)?);
                }
                "_HLS_part" => {
                    once(&mut seen_part, key)?;
                    req.part = Some(parse_directive_number(key, value)?);
                }
                "_HLS_skip" => {
                    once(&mut seen_skip, key)?;
                    req.skip = match value {
                        "YES" | "v2" => true,
                        _ => {
                            return Err(HlsError::BadRequest(format!(
                                "_HLS_skip={value:?} is neither YES nor v2"
                            )));
                        }
                    };
                }
                _ => {}
            }
        }
        if req.part.is_some() && req.msn.is_none() {
            return Err(HlsError::BadRequest("_HLS_part without _HLS_msn".into()));
        }
        Ok(req)
    }
}

fn parse_directive_number(key: &str, value: &str) -> Result<u64, HlsError> {
    parse_number(value).ok_or_else(|| HlsError::BadRequest(format!("{key}={value:?}")))
}

/// Longest accepted decimal number: far beyond any real MSN (a 1 s segment a second for 30
/// million years) and below 2^53, so JavaScript clients see exact values.
const MAX_DIGITS: usize = 15;

/// A canonical decimal: ASCII digits only, no sign, no leading zero (so one resource has one
/// URI), at most [`MAX_DIGITS`] digits.
fn parse_number(s: &str) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.len() <= MAX_DIGITS
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// A resource inside a rung's directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `index.m3u8`
    Playlist,
    /// `init.mp4` (version 0) or `init{v}.mp4` (after the `v`-th init change, v >= 1).
    Init(u32),
    /// `seg{msn}.m4s`
    Segment(u64),
    /// `part{msn}.{index}.m4s`
    Part(u64, u64),
}

impl Resource {
    /// The relative URI used in playlists; `parse_resource(&r.uri()) == Some(r)`.
    pub fn uri(&self) -> String {
        match self {
            Resource::Playlist => "index.m3u8".to_string(),
            Resource::Init(0) => "init.mp4".to_string(),
            Resource::Init(v) => format!("init{v}.mp4"),
            Resource::Segment(msn) => format!("seg{msn}.m4s"),
            Resource::Part(msn, i) => format!("part{msn}.{i}.m4s"),
        }
    }
}

/// Parses the last component of a rung URL into a [`Resource`]; anything else is `None`.
pub fn parse_resource(name: &str) -> Option<Resource> {
    if name == "index.m3u8" {
        return Some(Resource::Playlist);
    }
    if name == "init.mp4" {
        return Some(Resource::Init(0));
    }
    if let Some(v) = name
        .strip_prefix("init")
        .and_then(|r| r.strip_suffix(".mp4"))
    {
        let v = parse_number(v)?;
        return u32::try_from(v)
            .ok()
            .filter(|&v| v >= 1)
            .map(Resource::Init);
    }
    if let Some(msn) = name
        .strip_prefix("seg")
        .and_then(|r| r.strip_suffix(".m4s"))
    {
        return parse_number(msn).map(Resource::Segment);
    }
    if let Some(rest) = name
        .strip_prefix("part")
        .and_then(|r| r.strip_suffix(".m4s"))
    {
        let (msn, idx) = rest.split_once('.')?;
        return Some(Resource::Part(parse_number(msn)?, parse_number(idx)?));
    }
    None
}

/// A parsed `/live/...` path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HlsPath<'a> {
    /// `/live/{room}/index.m3u8`
    Multivariant { room: &'a str },
    /// `/live/{room}/{rung}/{resource}`
    Rung {
        room: &'a str,
        rung: &'a str,
        resource: Resource,
    },
}

/// Parses a request path (without query) under `/live/`. Room and rung names must be
/// `[A-Za-z0-9_-]{1,64}`; anything else (extra slashes, `..`, percent-escapes) is `None`.
pub fn parse_path(path: &str) -> Option<HlsPath<'_>> {
    let rest = path.strip_prefix("/live/")?;
    let mut it = rest.split('/');
    let room = it.next().filter(|r| is_path_token(r))?;
    let second = it.next()?;
    match (it.next(), it.next()) {
        (None, _) => (second == "index.m3u8").then_some(HlsPath::Multivariant { room }),
        (Some(name), None) if is_path_token(second) => Some(HlsPath::Rung {
            room,
            rung: second,
            resource: parse_resource(name)?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_derives_spec_values() {
        let c = HlsConfig::default();
        c.validate().unwrap();
        assert_eq!(c.target_duration(), 1);
        assert_eq!(c.part_hold_back(), Duration::from_millis(400));
        assert_eq!(c.blocking_timeout(), Duration::from_secs(3));
        assert_eq!(c.advance_part_limit(), 15);
        assert_eq!(c.retain_extra_segments(), 3);
    }

    #[test]
    fn target_duration_is_ceiling_and_at_least_one() {
        let mut c = HlsConfig {
            segment_target: Duration::from_millis(500),
            ..HlsConfig::default()
        };
        assert_eq!(c.target_duration(), 1);
        c.segment_target = Duration::from_millis(2001);
        assert_eq!(c.target_duration(), 3);
        c.segment_target = Duration::from_secs(2);
        assert_eq!(c.target_duration(), 2);
    }

    #[test]
    fn config_validation_rejects_spec_violations() {
        let ok = HlsConfig::default();
        let cases = [
            HlsConfig {
                part_target: Duration::from_millis(1),
                ..ok.clone()
            },
            HlsConfig {
                part_target: Duration::from_secs(2),
                ..ok.clone()
            },
            HlsConfig {
                window_segments: 2,
                ..ok.clone()
            },
            HlsConfig {
                window_segments: 0,
                ..ok.clone()
            },
            HlsConfig {
                max_msn_ahead: 1,
                ..ok.clone()
            },
            HlsConfig {
                can_skip_until: Some(Duration::from_secs(5)),
                ..ok.clone()
            },
            HlsConfig {
                segment_target: Duration::from_secs(61),
                ..ok.clone()
            },
        ];
        for c in cases {
            assert!(
                matches!(c.validate(), Err(HlsError::InvalidConfig(_))),
                "{c:?}"
            );
        }
        HlsConfig {
            can_skip_until: None,
            ..ok.clone()
        }
        .validate()
        .unwrap();
        HlsConfig {
            window_segments: 3,
            can_skip_until: None,
            ..ok
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn part_target_for_gop_overshoot() {
        let frame = Duration::from_nanos(33_333_334);
        let pt = HlsConfig::part_target_for(Duration::from_millis(200), frame).unwrap();
        assert_eq!(pt, Duration::from_micros(233_334));
        // Two frames of overshoot would push regular parts under 85 %.
        assert!(HlsConfig::part_target_for(Duration::from_millis(200), frame * 2).is_err());
        let cfg = HlsConfig {
            part_target: pt,
            ..HlsConfig::default()
        };
        cfg.validate().unwrap();
        assert_eq!(cfg.advance_part_limit(), 12);
    }

    #[test]
    fn parse_resource_accepts_the_naming_scheme() {
        assert_eq!(parse_resource("index.m3u8"), Some(Resource::Playlist));
        assert_eq!(parse_resource("init.mp4"), Some(Resource::Init(0)));
        assert_eq!(parse_resource("init3.mp4"), Some(Resource::Init(3)));
        assert_eq!(parse_resource("seg0.m4s"), Some(Resource::Segment(0)));
        assert_eq!(parse_resource("seg12.m4s"), Some(Resource::Segment(12)));
        assert_eq!(parse_resource("part13.2.m4s"), Some(Resource::Part(13, 2)));
        assert_eq!(parse_resource("part0.0.m4s"), Some(Resource::Part(0, 0)));
        for r in [
            Resource::Playlist,
            Resource::Init(0),
            Resource::Init(7),
            Resource::Segment(86_400),
            Resource::Part(5, 4),
        ] {
            assert_eq!(parse_resource(&r.uri()), Some(r));
        }
    }

    #[test]
    fn parse_resource_rejects_everything_else() {
        for bad in [
            "../x",
            "..",
            "",
            "seg-1.m4s",
            "seg+1.m4s",
            "seg.m4s",
            "seg01.m4s",
            "seg1.m4s.m4s",
            "seg1.mp4",
            "seg1",
            "part1.m4s",
            "part1..m4s",
            "part.1.m4s",
            "part1.2.3.m4s",
            "part1.-2.m4s",
            "part01.2.m4s",
            "seg99999999999999999999999.m4s",
            "seg18446744073709551616.m4s",
            "seg1000000000000000.m4s",
            "part1.99999999999999999999.m4s",
            "init0.mp4",
            "init01.mp4",
            "init99999999999.mp4",
            "init.m4s",
            "index.m3u",
            "INDEX.M3U8",
            "seg 1.m4s",
            "seg1.m4s/",
            "../seg1.m4s",
            "seg%31.m4s",
            "seg１.m4s",
        ] {
            assert_eq!(parse_resource(bad), None, "{bad:?}");
        }
        // 15 digits is the longest accepted number.
        assert_eq!(
            parse_resource("seg999999999999999.m4s"),
            Some(Resource::Segment(999_999_999_999_999))
        );
    }

    #[test]
    fn parse_path_routes_and_rejects_traversal() {
        assert_eq!(
            parse_path("/live/r1/index.m3u8"),
            Some(HlsPath::Multivariant { room: "r1" })
        );
        assert_eq!(
            parse_path("/live/r1/720p/part3.1.m4s"),
            Some(HlsPath::Rung {
                room: "r1",
                rung: "720p",
                resource: Resource::Part(3, 1)
            })
        );
        for bad in [
            "/live/r1/../x/index.m3u8",
            "/live/../r1/720p/index.m3u8",
            "/live/r1/720p/../index.m3u8",
            "/live/r1//index.m3u8",
            "/live/r1/720p/seg1.m4s/x",
            "/live/r1/seg1.m4s",
            "/live//720p/index.m3u8",
            "/other/r1/index.m3u8",
            "/live/r1",
            "/live/r1/720p",
            "/live/r.1/720p/index.m3u8",
        ] {
            assert_eq!(parse_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn playlist_request_from_query() {
        assert_eq!(
            PlaylistRequest::from_query("").unwrap(),
            PlaylistRequest::default()
        );
        assert_eq!(
            PlaylistRequest::from_query("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES&t=99").unwrap(),
            PlaylistRequest {
                msn: Some(12),
                part: Some(3),
                skip: true
            }
        );
        assert_eq!(
            PlaylistRequest::from_query("_HLS_skip=v2").unwrap(),
            PlaylistRequest {
                msn: None,
                part: None,
                skip: true
            }
        );
        for bad in [
            "_HLS_part=1",
            "_HLS_msn=-1",
            "_HLS_msn=",
            "_HLS_msn=x",
            "_HLS_msn=1&_HLS_msn=2",
            "_HLS_msn=1&_HLS_part=99999999999999999999",
            "_HLS_skip=NO",
        ] {
            let err = PlaylistRequest::from_query(bad).unwrap_err();
            assert_eq!(err.http_status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn rung_validation() {
        let ok = RungInfo {
            name: "720p".into(),
            width: 1280,
            height: 720,
            fps: 30.0,
            bandwidth_bps: 3_000_000,
            average_bandwidth_bps: 2_500_000,
            codecs: "avc1.64001f,mp4a.40.2".into(),
        };
        ok.validate().unwrap();
        for bad in [
            RungInfo {
                name: "..".into(),
                ..ok.clone()
            },
            RungInfo {
                name: "a/b".into(),
                ..ok.clone()
            },
            RungInfo {
                codecs: "avc1\"x".into(),
                ..ok.clone()
            },
            RungInfo {
                codecs: String::new(),
                ..ok.clone()
            },
            RungInfo {
                fps: f64::NAN,
                ..ok.clone()
            },
            RungInfo {
                average_bandwidth_bps: 4_000_000,
                ..ok.clone()
            },
            RungInfo {
                width: 0,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_statuses() {
        assert_eq!(
            HlsError::TooFarAhead {
                requested: 9,
                live_edge: 1
            }
            .http_status(),
            400
        );
        assert_eq!(HlsError::NoSuchResource.http_status(), 404);
        assert_eq!(HlsError::Timeout.http_status(), 503);
        let msg = HlsError::TooFarAhead {
            requested: 9,
            live_edge: 1,
        }
        .to_string();
        assert!(
            msg.contains("_HLS_msn=9") && msg.contains("segment 1"),
            "{msg}"
        );
    }
}
