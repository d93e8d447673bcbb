//! LL-HLS served by `showmix serve`: playlists checked against the spec's rules while the room
//! runs, blocking reloads, and real players (ffprobe/ffmpeg) reading every rung.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use showmix_tests::server::*;
use showmix_tests::*;

fn start_room(s: &Server, id: &str) -> String {
    let (st, v) = s.json(
        "POST",
        "/v1/rooms",
        Some(json!({"id": id, "layout": "pk", "seats": [
            {"id": "a", "source": "test:red"}, {"id": "b", "source": "test:blue"}]})),
    );
    assert_eq!(st, 201, "{v}");
    v["playback"]["hls"]
        .as_str()
        .expect("playback.hls")
        .to_owned()
}

fn get(s: &Server, path: &str) -> (u16, HashMap<String, String>, Vec<u8>) {
    let (st, ct, body) = s.call("GET", path, None, None);
    let mut h = HashMap::new();
    h.insert("content-type".to_owned(), ct);
    (st, h, body)
}

/// What the checker needs from a media playlist.
#[derive(Debug, Default)]
struct Media {
    target: f64,
    part_target: f64,
    hold_back: f64,
    sequence: u64,
    segments: Vec<(u64, f64)>,
    parts: Vec<(u64, u64, f64, bool)>,
    hint: Option<(u64, u64)>,
    /// The playlist as served, for failure messages.
    text: String,
}

fn attr<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split([':', ','])
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"'))
}

fn part_uri(u: &str) -> (u64, u64) {
    let x = u.trim_start_matches("part").trim_end_matches(".m4s");
    let (m, p) = x.split_once('.').expect("partM.P");
    (m.parse().unwrap(), p.parse().unwrap())
}

fn parse_media(text: &str) -> Media {
    let mut m = Media {
        text: text.to_owned(),
        ..Media::default()
    };
    assert!(text.starts_with("#EXTM3U"), "{text}");
    let mut msn = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            m.target = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            m.sequence = v.parse().unwrap();
            msn = Some(m.sequence);
        } else if line.starts_with("#EXT-X-PART-INF:") {
            m.part_target = attr(line, "PART-TARGET").unwrap().parse().unwrap();
        } else if line.starts_with("#EXT-X-SERVER-CONTROL:") {
            assert_eq!(attr(line, "CAN-BLOCK-RELOAD"), Some("YES"));
            m.hold_back = attr(line, "PART-HOLD-BACK").unwrap().parse().unwrap();
        } else if line.starts_with("#EXT-X-PART:") {
            let (pm, pi) = part_uri(attr(line, "URI").unwrap());
            let d: f64 = attr(line, "DURATION").unwrap().parse().unwrap();
            m.parts.push((pm, pi, d, line.contains("INDEPENDENT=YES")));
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d: f64 = v.trim_end_matches(',').parse().unwrap();
            let n = msn.expect("media sequence first");
            m.segments.push((n, d));
            msn = Some(n + 1);
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") {
            m.hint = Some(part_uri(attr(line, "URI").unwrap()));
        }
    }
    m
}

/// The spec's rules a playlist must keep (RFC 8216bis §4.4.3.1, §4.4.4.9, §4.4.5.2).
fn check(m: &Media) {
    assert!(m.target >= 1.0);
    assert!(
        m.part_target > 0.0 && m.hold_back >= 2.0 * m.part_target,
        "{m:?}"
    );
    for (n, d) in &m.segments {
        assert!(
            d.round() <= m.target,
            "segment {n} lasts {d} > TARGETDURATION {}",
            m.target
        );
    }
    for (pm, pi, d, _) in &m.parts {
        assert!(
            *d <= m.part_target + 1e-6,
            "part {pm}.{pi} lasts {d} > PART-TARGET {}",
            m.part_target
        );
    }
    for w in m.segments.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "media sequence continuity");
    }
    // The first part of every segment starts on a keyframe.
    for (pm, pi, _, independent) in &m.parts {
        if *pi == 0 {
            assert!(independent, "part {pm}.0 is not INDEPENDENT");
        }
    }
    // The preload hint names the part after the last listed one.
    let Some(&(lm, li, _, _)) = m.parts.last() else {
        panic!("no parts listed in\n{}", m.text)
    };
    let hint = m
        .hint
        .unwrap_or_else(|| panic!("no preload hint in\n{}", m.text));
    assert!(
        hint == (lm, li + 1) || hint == (lm + 1, 0),
        "hint {hint:?} after {lm}.{li}"
    );
}

#[test]
fn playlists_follow_the_spec_while_the_room_runs() {
    let s = Server::start(|_| {});
    let url = start_room(&s, "ll");
    assert!(url.ends_with("/live/ll/index.m3u8"), "{url}");
    let (st, h, body) = get(&s, "/live/ll/index.m3u8");
    assert_eq!(st, 200);
    assert_eq!(h["content-type"], "application/vnd.apple.mpegurl");
    let multi = String::from_utf8(body).unwrap();
    for rung in ["720p", "480p", "360p"] {
        assert!(multi.contains(&format!("{rung}/index.m3u8")), "{multi}");
    }
    for attr in [
        "BANDWIDTH=",
        "AVERAGE-BANDWIDTH=",
        "RESOLUTION=1280x720",
        "FRAME-RATE=30.000",
        "CODECS=\"avc1.",
    ] {
        assert!(multi.contains(attr), "{attr} missing in {multi}");
    }
    let mut last_seq = 0;
    let mut last_segments: Vec<(u64, f64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        let (st, _, body) = get(&s, "/live/ll/720p/index.m3u8");
        assert_eq!(st, 200);
        let m = parse_media(&String::from_utf8(body).unwrap());
        check(&m);
        assert!(m.sequence >= last_seq, "media sequence went back");
        // Segments already listed never change.
        for (n, d) in &m.segments {
            if let Some((_, old)) = last_segments.iter().find(|(o, _)| o == n) {
                assert_eq!(old, d, "segment {n} changed");
            }
        }
        last_seq = m.sequence;
        last_segments = m.segments.clone();
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(last_segments.len() >= 3, "{last_segments:?}");
}

#[test]
fn blocking_reload_returns_when_the_part_exists() {
    let s = Server::start(|_| {});
    start_room(&s, "br");
    let (_, _, body) = get(&s, "/live/br/720p/index.m3u8");
    let m = parse_media(&String::from_utf8(body).unwrap());
    let (hm, hp) = m.hint.expect("hint");
    let t = Instant::now();
    let (st, _, body) = get(
        &s,
        &format!("/live/br/720p/index.m3u8?_HLS_msn={hm}&_HLS_part={hp}"),
    );
    let waited = t.elapsed();
    assert_eq!(st, 200);
    let m2 = parse_media(&String::from_utf8(body).unwrap());
    assert!(
        m2.parts.iter().any(|(a, b, _, _)| (*a, *b) == (hm, hp))
            || m2.segments.iter().any(|(n, _)| *n == hm),
        "the answer lists the part it waited for"
    );
    // It waited for the part, not for a timeout (3 target durations).
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    // The preload-hinted part itself is served (blocking until it exists).
    let (st, h, part) = get(
        &s,
        &format!(
            "/live/br/720p/part{}.{}.m4s",
            m2.hint.unwrap().0,
            m2.hint.unwrap().1
        ),
    );
    assert_eq!(st, 200);
    assert_eq!(h["content-type"], "video/mp4");
    assert!(
        &part[4..8] == b"moof" || &part[4..8] == b"styp",
        "a fragment: {:?}",
        &part[..8]
    );
    // Too far ahead: 400.
    let (st, _, _) = get(
        &s,
        &format!("/live/br/720p/index.m3u8?_HLS_msn={}", hm + 50),
    );
    assert_eq!(st, 400);
    // _HLS_part without _HLS_msn: 400. Unknown rung and objects: 404.
    assert_eq!(get(&s, "/live/br/720p/index.m3u8?_HLS_part=1").0, 400);
    assert_eq!(get(&s, "/live/br/999p/index.m3u8").0, 404);
    assert_eq!(get(&s, "/live/br/720p/../../v1/rooms").0, 404);
    assert_eq!(get(&s, "/live/nope/index.m3u8").0, 404);
}

#[test]
fn players_read_every_rung_and_see_the_layout() {
    let s = Server::start(|_| {});
    let url = start_room(&s, "pl");
    std::thread::sleep(Duration::from_secs(3));
    let out = run(std::process::Command::new("ffprobe").args([
        "-v",
        "error",
        "-show_entries",
        "stream=codec_name,width,height",
        "-of",
        "csv=p=0",
        &url,
    ]))
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for dims in ["h264,1280,720", "h264,854,480", "h264,640,360"] {
        assert!(
            text.contains(dims),
            "{dims} missing: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(text.contains("aac"), "{text}");
    // A decoded frame of the 360p rung shows the pk layout.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("f.png");
    let rung = url.replace("index.m3u8", "360p/index.m3u8");
    // From the live edge, as a viewer joins (the oldest segment holds the room's first frames,
    // from before the seats' pictures arrived).
    run(std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-live_start_index",
            "-1",
            "-i",
            &rung,
            "-frames:v",
            "1",
        ])
        .arg(&png))
    .unwrap();
    let f = decode_image(&png).unwrap();
    assert!(
        near(f.px(160, 180), rgb_of("red"), 48),
        "{:?}",
        f.px(160, 180)
    );
    assert!(
        near(f.px(480, 180), rgb_of("blue"), 48),
        "{:?}",
        f.px(480, 180)
    );
}

#[test]
fn hls_can_be_turned_off_per_room() {
    let s = Server::start(|_| {});
    let (st, v) = s.json(
        "POST",
        "/v1/rooms",
        Some(
            json!({"id": "quiet", "seats": [{"id": "a", "source": "test:red"}],
                    "outputs": [{"kind": "hls", "enabled": false}]}),
        ),
    );
    assert_eq!(st, 201, "{v}");
    assert!(v["playback"]["hls"].is_null());
    assert_eq!(get(&s, "/live/quiet/index.m3u8").0, 404);
}

#[test]
fn playback_tokens_guard_every_object() {
    const SECRET: &str = "a-playback-secret-for-tests";
    let s = Server::start(|c| {
        c.playback_tokens = "on".into();
        c.playback_secret = Some(SECRET.into());
    });
    let url = start_room(&s, "tk");
    // The room hands out a URL with a token in the room segment.
    let path = url
        .split_once("/live/")
        .map(|(_, p)| format!("/live/{p}"))
        .unwrap();
    assert!(path.starts_with("/live/tk~"), "{path}");
    let base = path.trim_end_matches("index.m3u8").to_owned();
    let (st, _, body) = get(&s, &path);
    assert_eq!(st, 200);
    assert!(String::from_utf8(body).unwrap().contains("720p/index.m3u8"));
    // Relative URIs carry the token to the media playlist and the init segment.
    assert_eq!(get(&s, &format!("{base}720p/index.m3u8")).0, 200);
    assert_eq!(get(&s, &format!("{base}720p/init.mp4")).0, 200);
    // No token, a token for another room, a tampered one, an expired one: 403.
    assert_eq!(get(&s, "/live/tk/index.m3u8").0, 403);
    assert_eq!(get(&s, "/live/tk/720p/index.m3u8").0, 403);
    let signer = showmix::api::token::TokenSigner::new(SECRET.as_bytes());
    let now = std::time::SystemTime::now();
    let (other, _) = signer.mint("other", now, Duration::from_secs(600));
    assert_eq!(get(&s, &format!("/live/tk~{other}/index.m3u8")).0, 403);
    let token = base.trim_start_matches("/live/tk~").trim_end_matches('/');
    let tampered = format!("{}0", &token[..token.len() - 1]);
    let tampered = if tampered == token {
        format!("{}1", &token[..token.len() - 1])
    } else {
        tampered
    };
    assert_eq!(get(&s, &format!("/live/tk~{tampered}/index.m3u8")).0, 403);
    let (expired, _) = signer.mint(
        "tk",
        now - Duration::from_secs(3600),
        Duration::from_secs(60),
    );
    let (st, _, body) = get(&s, &format!("/live/tk~{expired}/index.m3u8"));
    assert_eq!(st, 403);
    assert!(String::from_utf8_lossy(&body).contains("expired"));
    // A backend can mint its own (same construction) or ask the API.
    let (mine, _) = signer.mint("tk", now, Duration::from_secs(120));
    assert_eq!(get(&s, &format!("/live/tk~{mine}/index.m3u8")).0, 200);
    let (st, v) = s.json(
        "POST",
        "/v1/rooms/tk/playback-token",
        Some(json!({"ttl_seconds": 300})),
    );
    assert_eq!(st, 201, "{v}");
    let minted = v["token"].as_str().unwrap();
    assert!(v["hls"].as_str().unwrap().contains(minted));
    let expires = v["expires_at"].as_u64().unwrap();
    let unix = now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(
        (unix + 299..=unix + 302).contains(&expires),
        "{expires} vs {unix}"
    );
    assert_eq!(get(&s, &format!("/live/tk~{minted}/index.m3u8")).0, 200);
    let (st, v) = s.json(
        "POST",
        "/v1/rooms/tk/playback-token",
        Some(json!({"ttl_seconds": 5})),
    );
    assert_eq!(st, 422, "{v}");
    assert!(v.to_string().contains("ttl_seconds"), "{v}");
}

#[test]
fn playback_is_open_on_loopback_by_default() {
    let s = Server::start(|_| {});
    let url = start_room(&s, "open");
    assert!(!url.contains('~'), "{url}");
    assert_eq!(get(&s, "/live/open/index.m3u8").0, 200);
}
