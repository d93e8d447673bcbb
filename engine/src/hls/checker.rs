//! Test-side playlist checker: parses the media and multivariant playlists this module renders
//! and verifies RFC 8216bis rules on each playlist and across reloads. Written independently of
//! the renderer (it only sees the text), strict about unknown tags so that typos fail.

use std::collections::BTreeMap;

use super::{HlsConfig, Resource, parse_resource};

/// Float slack for durations printed with microsecond precision.
const EPS: f64 = 1e-6;

#[derive(Clone, Debug, PartialEq)]
pub struct PartEntry {
    pub uri: String,
    pub duration_s: f64,
    pub independent: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SegmentEntry {
    pub msn: u64,
    pub uri: String,
    pub duration_s: f64,
    pub pdt: Option<String>,
    /// Effective EXT-X-MAP URI (None: inherited from skipped segments in a delta update).
    pub map: Option<String>,
    pub discontinuity: bool,
    pub parts: Vec<PartEntry>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MediaPlaylist {
    pub version: u32,
    pub target_duration: u64,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub can_block_reload: bool,
    pub part_hold_back: Option<f64>,
    pub can_skip_until: Option<f64>,
    pub part_target: Option<f64>,
    pub skipped: u64,
    pub segments: Vec<SegmentEntry>,
    /// The open segment: its tags and parts (no EXTINF yet).
    pub open_pdt: Option<String>,
    pub open_map: Option<String>,
    pub open_discontinuity: bool,
    pub open_parts: Vec<PartEntry>,
    pub hint: Option<String>,
    pub endlist: bool,
    /// EXT-X-RENDITION-REPORT: (URI, LAST-MSN, LAST-PART).
    pub reports: Vec<(String, u64, u64)>,
}

fn attrs(list: &str) -> Result<BTreeMap<String, String>, String> {
    // attribute-list: NAME=value pairs separated by commas; quoted strings may contain commas.
    let mut out = BTreeMap::new();
    let mut rest = list;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or(format!("bad attribute list {list:?}"))?;
        let (value, after) = if let Some(q) = after.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or(format!("unterminated quote in {list:?}"))?;
            (&after[..end + 2], &q[end + 1..])
        } else {
            after.split_once(',').map_or((after, ""), |(v, r)| (v, r))
        };
        let after = after.strip_prefix(',').unwrap_or(after);
        if out.insert(name.to_string(), value.to_string()).is_some() {
            return Err(format!("attribute {name} twice in {list:?}"));
        }
        rest = after;
    }
    Ok(out)
}

fn unquote(v: &str) -> Result<String, String> {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .map(str::to_string)
        .ok_or(format!("{v:?} is not a quoted-string"))
}

fn float(v: &str) -> Result<f64, String> {
    let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !ok {
        return Err(format!("{v:?} is not a decimal-floating-point"));
    }
    v.parse().map_err(|_| format!("{v:?} is not a number"))
}

fn int(v: &str) -> Result<u64, String> {
    v.parse()
        .map_err(|_| format!("{v:?} is not a decimal-integer"))
}

fn part_entry(list: &str) -> Result<PartEntry, String> {
    let a = attrs(list)?;
    for k in a.keys() {
        if !["DURATION", "URI", "INDEPENDENT"].contains(&k.as_str()) {
            return Err(format!("unexpected EXT-X-PART attribute {k}"));
        }
    }
    let independent = match a.get("INDEPENDENT").map(String::as_str) {
        None => false,
        Some("YES") => true,
        Some(v) => return Err(format!("INDEPENDENT={v}")),
    };
    Ok(PartEntry {
        uri: unquote(a.get("URI").ok_or("EXT-X-PART without URI")?)?,
        duration_s: float(a.get("DURATION").ok_or("EXT-X-PART without DURATION")?)?,
        independent,
    })
}

/// Parses a media playlist (syntax only; [`Checker::check`] applies the rules).
pub fn parse_media(text: &str) -> Result<MediaPlaylist, String> {
    let mut lines = text.lines();
    if lines.next() != Some("#EXTM3U") {
        return Err("first line is not #EXTM3U".into());
    }
    if !text.ends_with('\n') {
        return Err("no final newline".into());
    }
    let mut pl = MediaPlaylist {
        version: 0,
        target_duration: 0,
        media_sequence: 0,
        discontinuity_sequence: 0,
        can_block_reload: false,
        part_hold_back: None,
        can_skip_until: None,
        part_target: None,
        skipped: 0,
        segments: Vec::new(),
        open_pdt: None,
        open_map: None,
        open_discontinuity: false,
        open_parts: Vec::new(),
        hint: None,
        endlist: false,
        reports: Vec::new(),
    };
    let mut seen = BTreeMap::<&str, ()>::new();
    let mut once = |tag: &'static str| {
        if seen.insert(tag, ()).is_some() {
            Err(format!("{tag} appears twice"))
        } else {
            Ok(())
        }
    };
    let mut map: Option<String> = None;
    let mut extinf: Option<f64> = None;
    for line in lines {
        if line.is_empty() {
            return Err("empty line".into());
        }
        if !line.starts_with('#') {
            let duration_s = extinf
                .take()
                .ok_or(format!("URI {line:?} without EXTINF"))?;
            if pl.hint.is_some() {
                return Err("segment after EXT-X-PRELOAD-HINT".into());
            }
            let msn = pl.media_sequence + pl.skipped + pl.segments.len() as u64;
            pl.segments.push(SegmentEntry {
                msn,
                uri: line.to_string(),
                duration_s,
                pdt: pl.open_pdt.take(),
                map: map.clone(),
                discontinuity: std::mem::take(&mut pl.open_discontinuity),
                parts: std::mem::take(&mut pl.open_parts),
            });
            pl.open_map = None;
            continue;
        }
        let (tag, value) = line.split_once(':').unwrap_or((line, ""));
        match tag {
            "#EXT-X-VERSION" => {
                once("EXT-X-VERSION")?;
                pl.version = int(value)? as u32;
            }
            "#EXT-X-TARGETDURATION" => {
                once("EXT-X-TARGETDURATION")?;
                pl.target_duration = int(value)?;
            }
            "#EXT-X-MEDIA-SEQUENCE" => {
                once("EXT-X-MEDIA-SEQUENCE")?;
                if !pl.segments.is_empty() || !pl.open_parts.is_empty() {
                    return Err("EXT-X-MEDIA-SEQUENCE after a segment".into());
                }
                pl.media_sequence = int(value)?;
            }
            "#EXT-X-DISCONTINUITY-SEQUENCE" => {
                once("EXT-X-DISCONTINUITY-SEQUENCE")?;
                if !pl.segments.is_empty() || pl.open_discontinuity {
                    return Err("EXT-X-DISCONTINUITY-SEQUENCE after a segment".into());
                }
                pl.discontinuity_sequence = int(value)?;
            }
            "#EXT-X-SERVER-CONTROL" => {
                once("EXT-X-SERVER-CONTROL")?;
                for (k, v) in attrs(value)? {
                    match k.as_str() {
                        "CAN-BLOCK-RELOAD" if v == "YES" => pl.can_block_reload = true,
                        "PART-HOLD-BACK" => pl.part_hold_back = Some(float(&v)?),
                        "CAN-SKIP-UNTIL" => pl.can_skip_until = Some(float(&v)?),
                        _ => return Err(format!("unexpected EXT-X-SERVER-CONTROL {k}={v}")),
                    }
                }
            }
            "#EXT-X-PART-INF" => {
                once("EXT-X-PART-INF")?;
                let a = attrs(value)?;
                pl.part_target = Some(float(a.get("PART-TARGET").ok_or("no PART-TARGET")?)?);
            }
            "#EXT-X-SKIP" => {
                once("EXT-X-SKIP")?;
                if !pl.segments.is_empty() {
                    return Err("EXT-X-SKIP after a segment".into());
                }
                let a = attrs(value)?;
                pl.skipped = int(a.get("SKIPPED-SEGMENTS").ok_or("no SKIPPED-SEGMENTS")?)?;
            }
            "#EXT-X-MAP" => {
                let a = attrs(value)?;
                let uri = unquote(a.get("URI").ok_or("EXT-X-MAP without URI")?)?;
                if !pl.open_parts.is_empty() {
                    return Err("EXT-X-MAP after the segment's first EXT-X-PART".into());
                }
                map = Some(uri.clone());
                pl.open_map = Some(uri);
            }
            "#EXT-X-PROGRAM-DATE-TIME" => {
                if !pl.open_parts.is_empty() || pl.open_pdt.is_some() {
                    return Err("misplaced EXT-X-PROGRAM-DATE-TIME".into());
                }
                parse_pdt(value)?;
                pl.open_pdt = Some(value.to_string());
            }
            "#EXT-X-DISCONTINUITY" => {
                if !pl.open_parts.is_empty() {
                    return Err("EXT-X-DISCONTINUITY after the segment's first EXT-X-PART".into());
                }
                pl.open_discontinuity = true;
            }
            "#EXT-X-PART" => {
                if extinf.is_some() {
                    return Err("EXT-X-PART between EXTINF and URI".into());
                }
                pl.open_parts.push(part_entry(value)?);
            }
            "#EXTINF" => {
                let d = value.strip_suffix(',').ok_or("EXTINF without comma")?;
                extinf = Some(float(d)?);
            }
            "#EXT-X-PRELOAD-HINT" => {
                once("EXT-X-PRELOAD-HINT")?;
                let a = attrs(value)?;
                if a.get("TYPE").map(String::as_str) != Some("PART") {
                    return Err(format!("preload hint {value}"));
                }
                pl.hint = Some(unquote(a.get("URI").ok_or("hint without URI")?)?);
            }
            "#EXT-X-ENDLIST" => {
                once("EXT-X-ENDLIST")?;
                pl.endlist = true;
            }
            "#EXT-X-RENDITION-REPORT" => {
                let a = attrs(value)?;
                let uri = unquote(a.get("URI").ok_or("report without URI")?)?;
                let msn = int(a.get("LAST-MSN").ok_or("report without LAST-MSN")?)?;
                let part = int(a.get("LAST-PART").ok_or("report without LAST-PART")?)?;
                pl.reports.push((uri, msn, part));
            }
            _ => return Err(format!("unexpected line {line:?}")),
        }
    }
    if extinf.is_some() {
        return Err("EXTINF without URI".into());
    }
    if pl.open_map.is_none() && !pl.open_parts.is_empty() {
        pl.open_map = map;
    }
    Ok(pl)
}

/// `YYYY-MM-DDThh:mm:ss.sssZ` to milliseconds since the epoch.
pub fn parse_pdt(s: &str) -> Result<i64, String> {
    let err = || format!("bad PROGRAM-DATE-TIME {s:?}");
    let b = s.as_bytes();
    if b.len() != 24 || &s[4..5] != "-" || &s[7..8] != "-" || &s[10..11] != "T" || !s.ends_with('Z')
    {
        return Err(err());
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().map_err(|_| err());
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss, ms) = (n(11..13)?, n(14..16)?, n(17..19)?, n(20..23)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
        return Err(err());
    }
    // Days from civil (H. Hinnant), independent of the renderer's inverse.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

fn uri_of(r: Resource) -> String {
    r.uri()
}

/// Checks playlists one reload after another.
#[derive(Default)]
pub struct Checker {
    prev: Option<MediaPlaylist>,
    /// MSN -> discontinuity sequence number, as first seen.
    dsn: BTreeMap<u64, u64>,
}

impl Checker {
    pub fn new() -> Checker {
        Checker::default()
    }

    /// Parses `text` and checks the rules; `cfg` is what the server was configured with.
    pub fn check(&mut self, text: &str, cfg: &HlsConfig) -> Result<MediaPlaylist, String> {
        let pl = parse_media(text)?;
        check_rules(&pl, cfg)?;
        self.check_reload(&pl)?;
        self.prev = Some(pl.clone());
        Ok(pl)
    }

    fn check_reload(&mut self, pl: &MediaPlaylist) -> Result<(), String> {
        // Discontinuity sequence numbers never change for a segment (§6.2.2).
        let mut dsn = pl.discontinuity_sequence;
        for s in &pl.segments {
            dsn += u64::from(s.discontinuity);
            if let Some(old) = self.dsn.insert(s.msn, dsn)
                && old != dsn
            {
                return Err(format!("segment {} changed discontinuity number", s.msn));
            }
        }
        let Some(prev) = &self.prev else {
            return Ok(());
        };
        if pl.media_sequence < prev.media_sequence {
            return Err("EXT-X-MEDIA-SEQUENCE decreased".into());
        }
        if pl.discontinuity_sequence < prev.discontinuity_sequence {
            return Err("EXT-X-DISCONTINUITY-SEQUENCE decreased".into());
        }
        if pl.target_duration != prev.target_duration || pl.part_target != prev.part_target {
            return Err("target durations changed".into());
        }
        let last = |p: &MediaPlaylist| p.segments.last().map(|s| s.msn);
        if last(pl) < last(prev) {
            return Err("the playlist lost its last segment".into());
        }
        // Continuity: with a reload per push, no segment may be skipped unseen.
        if let Some(prev_last) = last(prev)
            && pl.media_sequence + pl.skipped > prev_last + 1
        {
            return Err(format!(
                "segments {}..{} were never listed",
                prev_last + 1,
                pl.media_sequence
            ));
        }
        for s in &pl.segments {
            if let Some(old) = prev.segments.iter().find(|o| o.msn == s.msn) {
                let same = old.uri == s.uri
                    && old.duration_s == s.duration_s
                    && old.pdt == s.pdt
                    && old.discontinuity == s.discontinuity;
                let parts_ok = old.parts.is_empty() || s.parts.is_empty() || old.parts == s.parts;
                if !same || !parts_ok {
                    return Err(format!("segment {} changed between reloads", s.msn));
                }
            }
        }
        Ok(())
    }
}

fn check_rules(pl: &MediaPlaylist, cfg: &HlsConfig) -> Result<(), String> {
    // Version: EXT-X-SKIP needs 9, EXT-X-MAP needs 6, and no higher than needed (§6.2.1).
    let want = if pl.skipped > 0 { 9 } else { 6 };
    if pl.version != want {
        return Err(format!(
            "EXT-X-VERSION {} where {want} is needed",
            pl.version
        ));
    }
    let td = pl.target_duration;
    if td < 1 || td != cfg.target_duration() {
        return Err(format!("EXT-X-TARGETDURATION {td}"));
    }
    for s in &pl.segments {
        // §4.4.3.1: rounded to the nearest integer, <= the target duration.
        if s.duration_s.round() as u64 > td {
            return Err(format!(
                "EXTINF {} of segment {} above {td}",
                s.duration_s, s.msn
            ));
        }
        if s.uri != uri_of(Resource::Segment(s.msn)) {
            return Err(format!("segment {} has URI {}", s.msn, s.uri));
        }
        if parse_resource(&s.uri) != Some(Resource::Segment(s.msn)) {
            return Err(format!("URI {} does not route", s.uri));
        }
    }

    // Server control.
    if !pl.can_block_reload {
        return Err("no CAN-BLOCK-RELOAD=YES".into());
    }
    let pt = pl.part_target.ok_or("no EXT-X-PART-INF")?;
    if (pt - cfg.part_target.as_secs_f64()).abs() > EPS {
        return Err(format!("PART-TARGET {pt} is not the configured one"));
    }
    let phb = pl.part_hold_back.ok_or("no PART-HOLD-BACK")?;
    // The spec's MUST (§4.4.3.8): at least twice the part target.
    if phb + EPS < 2.0 * pt {
        return Err(format!(
            "PART-HOLD-BACK {phb} is under 2 x PART-TARGET {pt}"
        ));
    }
    if let Some(skip) = pl.can_skip_until
        && skip + EPS < 6.0 * td as f64
    {
        return Err(format!("CAN-SKIP-UNTIL {skip} is under 6 target durations"));
    }
    if pl.skipped > 0 && pl.can_skip_until.is_none() {
        return Err("EXT-X-SKIP without CAN-SKIP-UNTIL".into());
    }

    // Parts: §4.4.4.9 bounds, URIs, and their sum.
    let check_parts = |msn: u64, parts: &[PartEntry], complete: bool| -> Result<(), String> {
        for (i, p) in parts.iter().enumerate() {
            if p.uri != uri_of(Resource::Part(msn, i as u64)) {
                return Err(format!("part {msn}.{i} has URI {}", p.uri));
            }
            if p.duration_s > pt + EPS {
                return Err(format!(
                    "part {} lasts {} > PART-TARGET {pt}",
                    p.uri, p.duration_s
                ));
            }
            // The final part of a segment is exempt from the floor; in the open segment the
            // last part may turn out to be final.
            let last = i + 1 == parts.len();
            if !p.independent && !last && p.duration_s + EPS < 0.85 * pt {
                return Err(format!(
                    "part {} lasts {} < 85% of {pt}",
                    p.uri, p.duration_s
                ));
            }
        }
        if complete && !parts.is_empty() {
            let sum: f64 = parts.iter().map(|p| p.duration_s).sum();
            let seg = pl
                .segments
                .iter()
                .find(|s| s.msn == msn)
                .expect("complete segment");
            if (sum - seg.duration_s).abs() > EPS * (parts.len() + 1) as f64 {
                return Err(format!(
                    "segment {msn}: parts sum to {sum}, EXTINF {}",
                    seg.duration_s
                ));
            }
        }
        Ok(())
    };
    for s in &pl.segments {
        check_parts(s.msn, &s.parts, true)?;
    }
    let open_msn = pl.media_sequence + pl.skipped + pl.segments.len() as u64;
    check_parts(open_msn, &pl.open_parts, false)?;

    // §6.2.2: EXT-X-PART only within three target durations of the end, contiguous to the end.
    let open_duration: f64 = pl.open_parts.iter().map(|p| p.duration_s).sum();
    let mut from_end = open_duration;
    let mut seen_without = false;
    for s in pl.segments.iter().rev() {
        from_end += s.duration_s;
        if s.parts.is_empty() {
            seen_without = true;
        } else if seen_without {
            return Err(format!("segment {} lists parts after one without", s.msn));
        } else if from_end > 3.0 * td as f64 + EPS {
            return Err(format!(
                "segment {} lists parts {from_end} s from the end",
                s.msn
            ));
        }
    }

    // Preload hint: the part after the last listed one, in the same or the next segment.
    let last_part = if !pl.open_parts.is_empty() {
        Some((open_msn, pl.open_parts.len() as u64 - 1))
    } else {
        pl.segments
            .last()
            .filter(|s| !s.parts.is_empty())
            .map(|s| (s.msn, s.parts.len() as u64 - 1))
    };
    match (&pl.hint, pl.endlist) {
        (Some(_), true) => return Err("EXT-X-PRELOAD-HINT with EXT-X-ENDLIST".into()),
        (None, false) => return Err("no EXT-X-PRELOAD-HINT".into()),
        (Some(hint), false) => {
            let ok: Vec<String> = match last_part {
                Some((m, i)) => vec![
                    uri_of(Resource::Part(m, i + 1)),
                    uri_of(Resource::Part(m + 1, 0)),
                ],
                None => vec![uri_of(Resource::Part(open_msn, 0))],
            };
            if !ok.contains(hint) {
                return Err(format!("hint {hint} is not the next part (one of {ok:?})"));
            }
        }
        (None, true) => {
            if !pl.open_parts.is_empty() {
                return Err("open parts after EXT-X-ENDLIST".into());
            }
        }
    }

    // Program date time: on the first segment and after discontinuities, and consistent with
    // the durations (ms precision, truncated).
    let first_has_pdt = pl
        .segments
        .first()
        .map_or(pl.open_pdt.is_some(), |s| s.pdt.is_some());
    if pl.skipped == 0 && !first_has_pdt && (!pl.segments.is_empty() || !pl.open_parts.is_empty()) {
        return Err("no EXT-X-PROGRAM-DATE-TIME on the first segment".into());
    }
    let mut expected: Option<f64> = None;
    for s in &pl.segments {
        if s.discontinuity && s.pdt.is_none() {
            return Err(format!("discontinuity segment {} without PDT", s.msn));
        }
        if let Some(pdt) = &s.pdt {
            let ms = parse_pdt(pdt)? as f64;
            if let Some(exp) = expected
                && !s.discontinuity
                && (ms - exp).abs() > 2.0
            {
                return Err(format!("PDT of segment {} is {ms}, expected {exp}", s.msn));
            }
            expected = Some(ms);
        }
        expected = expected.map(|e| e + s.duration_s * 1000.0);
    }
    if let (Some(pdt), Some(exp)) = (&pl.open_pdt, expected)
        && !pl.open_discontinuity
        && (parse_pdt(pdt)? as f64 - exp).abs() > 2.0
    {
        return Err("PDT of the open segment does not follow".into());
    }

    // Init: every segment has a map (a delta inherits it from the skipped ones).
    if pl.skipped == 0 {
        let first_map = pl.segments.first().map_or(&pl.open_map, |s| &s.map);
        if first_map.is_none() && (!pl.segments.is_empty() || !pl.open_parts.is_empty()) {
            return Err("no EXT-X-MAP before the first segment".into());
        }
    }
    for m in pl.segments.iter().filter_map(|s| s.map.as_ref()) {
        if !matches!(parse_resource(m), Some(Resource::Init(_))) {
            return Err(format!("map URI {m} does not route"));
        }
    }
    for p in pl
        .segments
        .iter()
        .flat_map(|s| &s.parts)
        .chain(&pl.open_parts)
    {
        if !matches!(parse_resource(&p.uri), Some(Resource::Part(..))) {
            return Err(format!("part URI {} does not route", p.uri));
        }
    }

    // §6.2.2: once segments were removed, the playlist is at least three target durations.
    let total: f64 = pl.segments.iter().map(|s| s.duration_s).sum();
    if pl.media_sequence > 0 && pl.skipped == 0 && total + EPS < 3.0 * td as f64 {
        return Err(format!(
            "playlist of {total} s is under three target durations"
        ));
    }
    // §6.2.5.1: only segments beyond the skip boundary may be skipped.
    if pl.skipped > 0 {
        let until = pl.can_skip_until.expect("checked above");
        if total + EPS < until {
            return Err(format!(
                "skipped segments within {total} s < CAN-SKIP-UNTIL {until}"
            ));
        }
    }
    Ok(())
}

/// A client's merge of a delta update into its previous full playlist (§6.3.7).
pub fn merge_delta(old: &MediaPlaylist, delta: &MediaPlaylist) -> Result<MediaPlaylist, String> {
    if delta.skipped == 0 {
        return Err("not a delta update".into());
    }
    let mut segments = Vec::new();
    for msn in delta.media_sequence..delta.media_sequence + delta.skipped {
        let mut s = old
            .segments
            .iter()
            .find(|s| s.msn == msn)
            .cloned()
            .ok_or(format!("skipped segment {msn} is not in the old playlist"))?;
        // Skipped segments are beyond the part-listing span: their EXT-X-PART tags are gone.
        s.parts.clear();
        segments.push(s);
    }
    segments.extend(delta.segments.iter().cloned());
    let mut map = None;
    for s in &mut segments {
        if s.map.is_none() {
            s.map = map.clone();
        }
        map = s.map.clone();
    }
    let mut merged = delta.clone();
    merged.version = old.version;
    merged.skipped = 0;
    merged.segments = segments;
    if merged.open_map.is_none() && !merged.open_parts.is_empty() {
        merged.open_map = map;
    }
    Ok(merged)
}

/// Checks a multivariant playlist; returns the variant names in order.
pub fn check_multivariant(text: &str) -> Result<Vec<String>, String> {
    let mut lines = text.lines();
    if lines.next() != Some("#EXTM3U") {
        return Err("first line is not #EXTM3U".into());
    }
    let mut names = Vec::new();
    let mut pending: Option<BTreeMap<String, String>> = None;
    let (mut version, mut independent) = (0, false);
    let mut last_bw = u64::MAX;
    for line in lines {
        if let Some(a) = pending.take() {
            let name = line
                .strip_suffix("/index.m3u8")
                .ok_or(format!("variant URI {line:?}"))?;
            if !super::is_path_token(name) {
                return Err(format!("variant URI {line:?}"));
            }
            let bw = int(a.get("BANDWIDTH").ok_or("no BANDWIDTH")?)?;
            let avg = int(a.get("AVERAGE-BANDWIDTH").ok_or("no AVERAGE-BANDWIDTH")?)?;
            if avg > bw || bw > last_bw {
                return Err(format!("bandwidths of {name} out of order"));
            }
            last_bw = bw;
            let res = a.get("RESOLUTION").ok_or("no RESOLUTION")?;
            let (w, h) = res.split_once('x').ok_or(format!("RESOLUTION={res}"))?;
            int(w)?;
            int(h)?;
            let fr = a.get("FRAME-RATE").ok_or("no FRAME-RATE")?;
            if float(fr)? <= 0.0 || fr.split_once('.').map(|(_, d)| d.len()) != Some(3) {
                return Err(format!("FRAME-RATE={fr}"));
            }
            let codecs = unquote(a.get("CODECS").ok_or("no CODECS")?)?;
            if codecs.is_empty() {
                return Err("empty CODECS".into());
            }
            names.push(name.to_string());
            continue;
        }
        let (tag, value) = line.split_once(':').unwrap_or((line, ""));
        match tag {
            "#EXT-X-VERSION" if version == 0 => version = int(value)?,
            "#EXT-X-INDEPENDENT-SEGMENTS" if !independent => independent = true,
            "#EXT-X-STREAM-INF" => pending = Some(attrs(value)?),
            _ => return Err(format!("unexpected line {line:?}")),
        }
    }
    if pending.is_some() {
        return Err("EXT-X-STREAM-INF without URI".into());
    }
    if version == 0 || !independent || names.is_empty() {
        return Err("missing version, INDEPENDENT-SEGMENTS or variants".into());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_catches_broken_playlists() {
        let cfg = HlsConfig::default();
        let good = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n\
            #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.400,CAN-SKIP-UNTIL=6.000\n\
            #EXT-X-PART-INF:PART-TARGET=0.200\n#EXT-X-MEDIA-SEQUENCE:0\n\
            #EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
            #EXT-X-PART:DURATION=0.200,URI=\"part0.0.m4s\",INDEPENDENT=YES\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part0.1.m4s\"\n";
        Checker::new().check(good, &cfg).unwrap();
        let broken = [
            good.replace("VERSION:6", "VERSION:9"),
            good.replace("PART-HOLD-BACK=0.400", "PART-HOLD-BACK=0.399"),
            good.replace("DURATION=0.200", "DURATION=0.201"),
            good.replace("part0.1.m4s", "part0.2.m4s"),
            good.replace("part0.0.m4s", "part1.0.m4s"),
            good.replace("CAN-SKIP-UNTIL=6.000", "CAN-SKIP-UNTIL=5.000"),
            good.replace("#EXT-X-MAP:URI=\"init.mp4\"\n", ""),
            good.replace("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n", ""),
            good.replace("20.000Z", "20Z"),
            good.replace("#EXT-X-PRELOAD-HINT", "#EXT-X-PRELOAD-HINTS"),
            good.replace("#EXTM3U\n", ""),
            format!("{good}#EXT-X-ENDLIST\n"),
        ];
        for b in broken {
            assert!(Checker::new().check(&b, &cfg).is_err(), "{b}");
        }
    }

    #[test]
    fn pdt_parser_round_trips_known_dates() {
        assert_eq!(parse_pdt("1970-01-01T00:00:00.000Z"), Ok(0));
        assert_eq!(parse_pdt("2023-11-14T22:13:20.005Z"), Ok(1_700_000_000_005));
        assert_eq!(parse_pdt("2024-02-29T23:59:59.999Z"), Ok(1_709_251_199_999));
        assert!(parse_pdt("2024-13-01T00:00:00.000Z").is_err());
    }
}
