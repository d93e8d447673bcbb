//! Playlist rendering: the LL-HLS media playlist of a track (full or delta update) and the
//! multivariant playlist of a ladder, per RFC 8216bis. Regular HLS clients ignore the LL tags
//! (`EXT-X-PART`, `EXT-X-PRELOAD-HINT`, ...) and still see a normal live playlist of segments.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::track::{Segment, State};
use super::{HlsConfig, Resource, RungInfo};

/// `EXT-X-MAP` outside an I-frame playlist needs version 6 (§8); `EXT-X-SKIP` needs 9.
const VERSION: u32 = 6;
const VERSION_WITH_SKIP: u32 = 9;

/// Renders a track's media playlist; `skip` asks for a delta update (§6.2.5.1), which is only
/// produced when something can be skipped (otherwise the full playlist is a valid answer).
pub(crate) fn render_media(st: &State, cfg: &HlsConfig, skip: bool) -> String {
    let listed: Vec<&Segment> = st.listed().collect();
    let skipped = if skip && !st.ended {
        skippable(&listed, cfg)
    } else {
        0
    };

    let mut out = String::with_capacity(256 + 160 * listed.len());
    let version = if skipped > 0 {
        VERSION_WITH_SKIP
    } else {
        VERSION
    };
    // Writing to a String cannot fail.
    let _ = writeln!(out, "#EXTM3U\n#EXT-X-VERSION:{version}");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", cfg.target_duration());
    out.push_str("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=");
    push_secs(&mut out, cfg.part_hold_back());
    if let Some(until) = cfg.can_skip_until {
        out.push_str(",CAN-SKIP-UNTIL=");
        push_secs(&mut out, until);
    }
    out.push_str("\n#EXT-X-PART-INF:PART-TARGET=");
    push_secs(&mut out, cfg.part_target);
    let _ = writeln!(out, "\n#EXT-X-MEDIA-SEQUENCE:{}", st.first_listed);
    if st.any_discontinuity {
        // §6.2.2: required once a discontinuity may slide out of the window.
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            st.discontinuity_sequence()
        );
    }
    // The init in effect for the first rendered segment is known to the client from the skipped
    // ones; EXT-X-MAP is only repeated where it changes.
    let mut current_init = None;
    if skipped > 0 {
        let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        current_init = Some(listed[skipped - 1].init_version);
    }

    // §6.2.2: EXT-X-PART tags SHOULD go once they are more than three target durations from the
    // end of the playlist; keep whole segments' parts whose first part is within that span.
    let open_duration = st.open.as_ref().map_or(Duration::ZERO, |s| s.duration);
    let span = cfg.part_listing_span();
    let mut from_end = open_duration;
    let mut first_with_parts = listed.len();
    for (i, seg) in listed.iter().enumerate().rev() {
        from_end += seg.duration;
        if from_end > span {
            break;
        }
        first_with_parts = i;
    }

    for (i, seg) in listed.iter().enumerate().skip(skipped) {
        segment_tags(&mut out, seg, &mut current_init);
        if i >= first_with_parts {
            part_tags(&mut out, seg);
        }
        out.push_str("#EXTINF:");
        push_secs(&mut out, seg.duration);
        let _ = writeln!(out, ",\n{}", Resource::Segment(seg.msn).uri());
    }
    if let Some(open) = &st.open {
        // The open segment's tags go before its first EXT-X-PART (§4.4.4.9).
        segment_tags(&mut out, open, &mut current_init);
        part_tags(&mut out, open);
    }
    if st.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    } else {
        let (msn, index) = st.next_part_hint(cfg);
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
            Resource::Part(msn, index).uri()
        );
    }
    out
}

/// Leading listed segments that end at least CAN-SKIP-UNTIL before the end of the last complete
/// segment (§6.2.5.1: "further from the end of the last Media Segment than the Skip Boundary";
/// measured from the last complete segment, which skips no more than the spec allows).
fn skippable(listed: &[&Segment], cfg: &HlsConfig) -> usize {
    let Some(until) = cfg.can_skip_until else {
        return 0;
    };
    let total: Duration = listed.iter().map(|s| s.duration).sum();
    let mut ended_at = Duration::ZERO;
    listed
        .iter()
        .take_while(|s| {
            ended_at += s.duration;
            total - ended_at >= until
        })
        .count()
}

fn segment_tags(out: &mut String, seg: &Segment, current_init: &mut Option<u32>) {
    if seg.discontinuity {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if *current_init != Some(seg.init_version) {
        let _ = writeln!(
            out,
            "#EXT-X-MAP:URI=\"{}\"",
            Resource::Init(seg.init_version).uri()
        );
        *current_init = Some(seg.init_version);
    }
    // On every segment: cheap, and keeps the wall-clock mapping exact across discontinuities.
    out.push_str("#EXT-X-PROGRAM-DATE-TIME:");
    push_pdt(out, seg.pdt);
    out.push('\n');
}

fn part_tags(out: &mut String, seg: &Segment) {
    for (i, part) in seg.parts.iter().enumerate() {
        out.push_str("#EXT-X-PART:DURATION=");
        push_secs(out, part.duration);
        let _ = write!(out, ",URI=\"{}\"", Resource::Part(seg.msn, i as u64).uri());
        if part.independent {
            out.push_str(",INDEPENDENT=YES");
        }
        out.push('\n');
    }
}

/// Seconds rounded to the microsecond, at least three decimals (`0.200`, `1.033333`). The same
/// rounding everywhere keeps comparisons honest: a part <= PART-TARGET prints <= it.
pub(crate) fn push_secs(out: &mut String, d: Duration) {
    let us = (d.as_nanos() + 500) / 1_000;
    let (secs, mut frac, mut digits) = (us / 1_000_000, us % 1_000_000, 6);
    while digits > 3 && frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    let _ = write!(out, "{secs}.{frac:0digits$}");
}

/// ISO 8601 UTC with milliseconds: `2023-11-14T22:13:20.000Z` (§4.4.4.6).
pub(crate) fn push_pdt(out: &mut String, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        d.subsec_millis()
    );
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The multivariant playlist of a ladder: one `EXT-X-STREAM-INF` per rung, highest bandwidth
/// first (clients start with the first listed variant unless they measure). Audio is muxed into
/// every rung, so there are no `EXT-X-MEDIA` renditions. `EXT-X-VERSION` is that of the media
/// playlists: it states the compatibility of "the Playlist file, its associated media, and its
/// server" (§4.4.1.2).
pub fn multivariant(rungs: &[RungInfo]) -> String {
    let mut sorted: Vec<&RungInfo> = rungs.iter().collect();
    sorted.sort_by(|a, b| {
        b.bandwidth_bps
            .cmp(&a.bandwidth_bps)
            .then(b.height.cmp(&a.height))
            .then(a.name.cmp(&b.name))
    });
    let mut out = String::with_capacity(64 + 160 * rungs.len());
    let _ = writeln!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:{VERSION}\n#EXT-X-INDEPENDENT-SEGMENTS"
    );
    for r in sorted {
        let _ = writeln!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},\
             FRAME-RATE={:.3},CODECS=\"{}\"\n{}/index.m3u8",
            r.bandwidth_bps, r.average_bandwidth_bps, r.width, r.height, r.fps, r.codecs, r.name
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::checker::{Checker, merge_delta, parse_media};
    use crate::hls::track::tests::{Feeder, T0, track, track_with};
    use crate::hls::{HlsConfig, PlaylistRequest};

    fn secs(d: Duration) -> String {
        let mut s = String::new();
        push_secs(&mut s, d);
        s
    }

    fn pdt(t: SystemTime) -> String {
        let mut s = String::new();
        push_pdt(&mut s, t);
        s
    }

    #[test]
    fn durations_have_at_least_three_decimals() {
        assert_eq!(secs(Duration::from_millis(200)), "0.200");
        assert_eq!(secs(Duration::from_secs(1)), "1.000");
        assert_eq!(secs(Duration::ZERO), "0.000");
        assert_eq!(secs(Duration::from_nanos(1_033_333_333)), "1.033333");
        assert_eq!(secs(Duration::from_micros(233_340)), "0.23334");
        assert_eq!(secs(Duration::from_nanos(199_999_999)), "0.200");
        assert_eq!(secs(Duration::from_nanos(200_000_499)), "0.200");
        assert_eq!(secs(Duration::from_nanos(200_000_500)), "0.200001");
        assert_eq!(secs(Duration::from_millis(6000)), "6.000");
        assert_eq!(secs(Duration::from_micros(12_345_670)), "12.34567");
    }

    #[test]
    fn program_date_time_is_iso8601_utc_with_millis() {
        assert_eq!(pdt(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            pdt(UNIX_EPOCH + Duration::from_secs(T0)),
            "2023-11-14T22:13:20.000Z"
        );
        // Leap day, end of day, millisecond truncation.
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199) + Duration::from_micros(999_999);
        assert_eq!(pdt(t), "2024-02-29T23:59:59.999Z");
        assert_eq!(
            pdt(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            pdt(UNIX_EPOCH + Duration::from_secs(4_102_444_800)),
            "2100-01-01T00:00:00.000Z"
        );
        assert_eq!(
            pdt(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn full_playlist_shape() {
        let t = track();
        Feeder::new().push(&t, 5 * 2 + 2);
        let text = t.media_playlist(PlaylistRequest::default());
        let expected_head = "#EXTM3U\n\
            #EXT-X-VERSION:6\n\
            #EXT-X-TARGETDURATION:1\n\
            #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.400,CAN-SKIP-UNTIL=6.000\n\
            #EXT-X-PART-INF:PART-TARGET=0.200\n\
            #EXT-X-MEDIA-SEQUENCE:0\n\
            #EXT-X-MAP:URI=\"init.mp4\"\n\
            #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
            #EXT-X-PART:DURATION=0.200,URI=\"part0.0.m4s\",INDEPENDENT=YES\n\
            #EXT-X-PART:DURATION=0.200,URI=\"part0.1.m4s\"\n";
        assert!(text.starts_with(expected_head), "{text}");
        let expected_tail = "#EXTINF:1.000,\n\
            seg1.m4s\n\
            #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
            #EXT-X-PART:DURATION=0.200,URI=\"part2.0.m4s\",INDEPENDENT=YES\n\
            #EXT-X-PART:DURATION=0.200,URI=\"part2.1.m4s\"\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part2.2.m4s\"\n";
        assert!(text.ends_with(expected_tail), "{text}");
        assert_eq!(text.matches("#EXT-X-MAP").count(), 1);
        Checker::new().check(&text, t.config()).unwrap();
    }

    #[test]
    fn regular_clients_see_a_plain_live_playlist() {
        // Strip every LL tag: what is left must be a valid RFC 8216 live playlist.
        let t = track();
        Feeder::new().push(&t, 5 * 14 + 3);
        let text = t.media_playlist(PlaylistRequest::default());
        let plain: Vec<&str> = text
            .lines()
            .filter(|l| {
                ![
                    "#EXT-X-PART",
                    "#EXT-X-PRELOAD-HINT",
                    "#EXT-X-SERVER-CONTROL",
                    "#EXT-X-SKIP",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            .collect();
        let uris: Vec<&str> = plain
            .iter()
            .copied()
            .filter(|l| !l.starts_with('#'))
            .collect();
        let expected: Vec<String> = (4..14).map(|m| format!("seg{m}.m4s")).collect();
        assert_eq!(uris, expected);
        assert_eq!(
            plain
                .iter()
                .filter(|l| l.starts_with("#EXTINF:1.000,"))
                .count(),
            10
        );
    }

    #[test]
    fn delta_update_skips_old_segments() {
        let t = track();
        let mut f = Feeder::new();
        f.push(&t, 5 * 20 + 2);
        let full = t.media_playlist(PlaylistRequest::default());
        let delta_req = PlaylistRequest {
            skip: true,
            ..PlaylistRequest::default()
        };
        let delta = t.media_playlist(delta_req);
        let cfg = t.config();
        let d = Checker::new()
            .check(&delta, cfg)
            .unwrap_or_else(|e| panic!("{e}\n{delta}"));
        // Segments 10..=19 listed; 10..=13 end 6 s or more before the end of segment 19.
        assert_eq!(d.version, 9);
        assert_eq!(d.skipped, 4);
        assert_eq!(d.media_sequence, 10);
        assert_eq!(d.segments.first().unwrap().msn, 14);
        assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"));
        assert!(
            !delta.contains("#EXT-X-MAP"),
            "the map applies to skipped segments:\n{delta}"
        );
        // The client's merge of the delta into its previous playlist is the full playlist.
        let previous = full.clone();
        let merged = merge_delta(&parse_media(&previous).unwrap(), &d).unwrap();
        assert_eq!(merged, parse_media(&full).unwrap());

        // ... also against an older playlist, within half the skip boundary (§6.3.7).
        let old = parse_media(&full).unwrap();
        f.push(&t, 5 * 3);
        let d2 = parse_media(&t.media_playlist(delta_req)).unwrap();
        let merged = merge_delta(&old, &d2).unwrap();
        assert_eq!(
            merged,
            parse_media(&t.media_playlist(PlaylistRequest::default())).unwrap()
        );
    }

    #[test]
    fn delta_update_falls_back_to_full() {
        let req = PlaylistRequest {
            skip: true,
            ..PlaylistRequest::default()
        };
        // Too short to skip anything: the full playlist is a valid answer.
        let t = track();
        Feeder::new().push(&t, 5 * 6);
        let text = t.media_playlist(req);
        assert!(!text.contains("EXT-X-SKIP") && text.contains("#EXT-X-VERSION:6"));
        // Not offered: _HLS_skip is ignored (§6.2.5.1).
        let t = track_with(HlsConfig {
            can_skip_until: None,
            ..HlsConfig::default()
        });
        Feeder::new().push(&t, 5 * 20);
        let text = t.media_playlist(req);
        assert!(!text.contains("SKIP"), "{text}");
        // Ended: ignored too.
        let t = track();
        Feeder::new().push(&t, 5 * 20);
        t.finish();
        assert!(!t.media_playlist(req).contains("EXT-X-SKIP"));
    }

    #[test]
    fn delta_update_reemits_a_changed_map() {
        let t = track();
        let mut f = Feeder::new();
        f.push(&t, 5 * 12);
        t.set_init(bytes::Bytes::from_static(b"other init"));
        // Segment 12 is the discontinuity; with 18 open, 8..=11 are skipped.
        f.push(&t, 5 * 6 + 1);
        let req = PlaylistRequest {
            skip: true,
            ..PlaylistRequest::default()
        };
        let delta = t.media_playlist(req);
        let d = Checker::new()
            .check(&delta, t.config())
            .unwrap_or_else(|e| panic!("{e}\n{delta}"));
        assert_eq!((d.skipped, d.segments[0].msn), (4, 12));
        // The first rendered segment after the skip is the discontinuity: it carries its map.
        assert!(
            delta.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init1.mp4\""),
            "{delta}"
        );
    }

    #[test]
    fn multivariant_lists_rungs_highest_first() {
        let rung = |name: &str, w, h, bw, avg| RungInfo {
            name: name.into(),
            width: w,
            height: h,
            fps: 30.0,
            bandwidth_bps: bw,
            average_bandwidth_bps: avg,
            codecs: "avc1.64001f,mp4a.40.2".into(),
        };
        let rungs = [
            rung("360p", 640, 360, 900_000, 800_000),
            rung("720p", 1280, 720, 3_200_000, 2_800_000),
            rung("480p", 854, 480, 1_600_000, 1_400_000),
        ];
        let text = multivariant(&rungs);
        let expected = "#EXTM3U\n\
            #EXT-X-VERSION:6\n\
            #EXT-X-INDEPENDENT-SEGMENTS\n\
            #EXT-X-STREAM-INF:BANDWIDTH=3200000,AVERAGE-BANDWIDTH=2800000,RESOLUTION=1280x720,\
            FRAME-RATE=30.000,CODECS=\"avc1.64001f,mp4a.40.2\"\n\
            720p/index.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1600000,AVERAGE-BANDWIDTH=1400000,RESOLUTION=854x480,\
            FRAME-RATE=30.000,CODECS=\"avc1.64001f,mp4a.40.2\"\n\
            480p/index.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000,RESOLUTION=640x360,\
            FRAME-RATE=30.000,CODECS=\"avc1.64001f,mp4a.40.2\"\n\
            360p/index.m3u8\n";
        assert_eq!(text, expected);
        let checked = crate::hls::checker::check_multivariant(&text).unwrap();
        assert_eq!(checked, vec!["720p", "480p", "360p"]);
        let fractional = RungInfo {
            fps: 29.97,
            ..rungs[0].clone()
        };
        assert!(multivariant(&[fractional]).contains("FRAME-RATE=29.970,"));
    }
}
