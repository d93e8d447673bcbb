//! WHIP and WHEP against real, non-browser WebRTC peers on loopback: GStreamer's own
//! `whipclientsink` publishes into seats (H.264 and VP8), `whepclientsrc` plays rooms; refusals
//! are checked over real HTTP with real offers (from webrtcbin). The browser side is
//! `webrtc_browser.rs`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use showmix_tests::server::*;
use showmix_tests::webrtc::{WhepClient, WhipClient, gstreamer_offer};
use showmix_tests::*;

fn server(tweak: impl FnOnce(&mut showmix::config::Config)) -> Server {
    Server::start(|c| {
        c.rtmp_listen = "off".into();
        c.srt_listen = "off".into();
        c.hold_last_frame_ms = 300;
        tweak(c);
    })
}

fn create(s: &Server, body: Value) -> Value {
    let (st, v) = s.json("POST", "/v1/rooms", Some(body));
    assert_eq!(st, 201, "{v}");
    v
}

fn seat<'a>(room: &'a Value, id: &str) -> &'a Value {
    room["seats"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no seat {id} in {room}"))
}

fn room(s: &Server, id: &str) -> Value {
    s.json("GET", &format!("/v1/rooms/{id}"), None).1
}

fn seat_state(s: &Server, room_id: &str, id: &str) -> String {
    seat(&room(s, room_id), id)["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn tile_colour(s: &Server, room: &str, layout: &str, slot: usize) -> [u8; 3] {
    let f = s.snapshot(room);
    let tiles = showmix::presets::Presets::embedded()
        .unwrap()
        .layout(layout)
        .unwrap()
        .tiles(f.width, f.height);
    let (x, y) = tiles[slot].rect.centre();
    f.px(x, y)
}

fn metric(s: &Server, prefix: &str) -> f64 {
    let (_, _, m) = s.call("GET", "/metrics", None, None);
    String::from_utf8(m)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits (bounded) for `f`; panics with `what` and the last value seen.
fn eventually<T: std::fmt::Debug>(what: &str, within: Duration, mut f: impl FnMut() -> (bool, T)) {
    let t = Instant::now();
    loop {
        let (ok, seen) = f();
        if ok {
            return;
        }
        assert!(
            t.elapsed() < within,
            "timed out waiting for {what}: last {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn post_offer(
    s: &Server,
    path: &str,
    bearer: Option<&str>,
    ctype: &str,
    sdp: &str,
) -> (u16, String, Option<String>) {
    let auth = bearer.map(|k| format!("Bearer {k}"));
    let mut h: Vec<(&str, &str)> = vec![("content-type", ctype)];
    if let Some(a) = &auth {
        h.push(("authorization", a));
    }
    let (st, headers, body) = s.raw("POST", path, &h, Some(sdp.as_bytes().to_vec()));
    let location = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (st, String::from_utf8_lossy(&body).into_owned(), location)
}

fn publish_room(s: &Server, id: &str, layout: &str) -> String {
    let v = create(
        s,
        json!({"id": id, "layout": layout, "ladder": "showroom-720p",
               "seats": [{"id": "host", "source": "publish"}, {"id": "rival", "source": "test:smpte"}]}),
    );
    let ingest = &seat(&v, "host")["ingest"];
    assert_eq!(
        ingest["whip"].as_str().unwrap(),
        format!("http://127.0.0.1:{}/whip/{id}/host", s.addr.port()),
        "the room JSON shows the WHIP endpoint next to rtmp/srt: {ingest}"
    );
    ingest["key"].as_str().unwrap().to_owned()
}

#[test]
fn whip_refusals_are_clear_and_counted() {
    let s = server(|c| c.max_body_bytes = 16 * 1024);
    let key = publish_room(&s, "r1", "pk");
    let offer = gstreamer_offer().expect("an offer from webrtcbin");
    let path = "/whip/r1/host";
    let sdp = "application/sdp";

    let (st, body, _) = post_offer(&s, path, Some(&key), "application/json", &offer);
    assert_eq!(st, 415, "{body}");
    assert!(body.contains("application/sdp"), "{body}");
    let (st, body, _) = post_offer(&s, path, None, sdp, &offer);
    assert_eq!(st, 401, "{body}");
    assert!(body.contains("Bearer"), "{body}");
    let (st, body, _) = post_offer(
        &s,
        path,
        Some("0123456789abcdef0123456789abcdef"),
        sdp,
        &offer,
    );
    assert_eq!(st, 403, "{body}");
    let (st, body, _) = post_offer(&s, path, Some(&key), sdp, "this is not sdp");
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("v=0"), "{body}");
    let (st, body, _) = post_offer(&s, "/whip/nope/host", Some(&key), sdp, &offer);
    assert_eq!(st, 404, "{body}");
    let (st, body, _) = post_offer(&s, "/whip/r1/nobody", Some(&key), sdp, &offer);
    assert_eq!(st, 404, "{body}");
    let (st, body, _) = post_offer(&s, "/whip/r1/rival", Some(&key), sdp, &offer);
    assert_eq!(st, 409, "a test seat takes no publisher: {body}");
    let (st, body, _) = post_offer(&s, "/whip/r1/../x", Some(&key), sdp, &offer);
    assert_eq!(st, 404, "{body}");
    // Video only in a codec showmix does not take: 406 naming what it takes.
    let av1 = offer.replace("H264/90000", "AV1/90000");
    let (st, body, _) = post_offer(&s, path, Some(&key), sdp, &av1);
    assert_eq!(st, 406, "{body}");
    assert!(
        body.contains("VP8") && body.contains("H264") && body.contains("AV1"),
        "{body}"
    );
    // Audio only: a seat shows a picture.
    let audio_only: String = {
        let i = offer.find("m=video").expect("video section");
        let j = offer[i..].find("m=audio").map(|j| i + j);
        match j {
            Some(j) => format!("{}{}", &offer[..i], &offer[j..]),
            None => offer[..i].to_owned(),
        }
    };
    let (st, body, _) = post_offer(&s, path, Some(&key), sdp, &audio_only);
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("video"), "{body}");
    let huge = format!("{offer}{}", "a=x-padding:0123456789\r\n".repeat(1000));
    let (st, body, _) = post_offer(&s, path, Some(&key), sdp, &huge);
    assert_eq!(st, 413, "{body}");
    // Methods and sessions that do not exist.
    let (st, _, _) = s.raw("GET", path, &[], None);
    assert_eq!(st, 405);
    let (st, _, _) = s.raw("DELETE", "/whip/r1/host/0123456789abcdef", &[], None);
    assert_eq!(st, 404);
    let (st, headers, _) = s.raw("OPTIONS", path, &[], None);
    assert_eq!(st, 204);
    let expose = headers
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(expose.contains("Location") && expose.contains("ETag") && expose.contains("Link"));

    for (reason, n) in [
        ("unauthorized", 1.0),
        ("bad_key", 1.0),
        ("malformed", 1.0),
        ("unknown_room", 1.0),
        ("unknown_seat", 1.0),
        ("not_publish", 1.0),
        ("unsupported", 1.0),
        ("no_media", 1.0),
    ] {
        let m = metric(
            &s,
            &format!("showmix_ingest_refused_total{{protocol=\"whip\",reason=\"{reason}\"}}"),
        );
        assert_eq!(m, n, "refusals counted as {reason}");
    }
    // The room was never touched by any of it.
    assert_eq!(seat_state(&s, "r1", "host"), "waiting");
    assert_eq!(room(&s, "r1")["state"], "live");
}

#[test]
fn gstreamer_publishers_over_whip_attach_drop_reattach_and_take_over() {
    let s = server(|_| {});
    let key = publish_room(&s, "r2", "pk");
    let endpoint = format!("http://127.0.0.1:{}/whip/r2/host", s.addr.port());

    // H.264 from webrtcsink: the seat goes live and shows its picture.
    let first = WhipClient::start(&endpoint, &key, "red", "video/x-h264").expect("whipclientsink");
    eventually(
        "the WHIP publisher's picture",
        Duration::from_secs(20),
        || {
            let st = seat_state(&s, "r2", "host");
            let c = tile_colour(&s, "r2", "pk", 0);
            (
                st == "connected" && near(c, rgb_of("red"), 60),
                (st, c, first.errors()),
            )
        },
    );
    let v = room(&s, "r2");
    assert_eq!(seat(&v, "host")["ingest"]["publisher"], "whip", "{v}");
    assert_eq!(
        metric(&s, "showmix_webrtc_sessions_open{kind=\"whip\"}"),
        1.0
    );

    // A second publisher while the first is live: refused (409), the first stays.
    let busy = WhipClient::start(&endpoint, &key, "green", "video/x-h264").expect("whipclientsink");
    eventually(
        "the second publisher refused",
        Duration::from_secs(30),
        || {
            let m = metric(
                &s,
                "showmix_ingest_refused_total{protocol=\"whip\",reason=\"busy\"}",
            );
            (m == 1.0, m)
        },
    );
    drop(busy);
    assert_eq!(seat_state(&s, "r2", "host"), "connected");
    assert!(near(tile_colour(&s, "r2", "pk", 0), rgb_of("red"), 60));

    // The publisher leaves (whipclientsink DELETEs its session): the seat waits...
    drop(first);
    eventually(
        "the session ended by DELETE",
        Duration::from_secs(10),
        || {
            let open = metric(&s, "showmix_webrtc_sessions_open{kind=\"whip\"}");
            let ended = metric(
                &s,
                "showmix_webrtc_ended_total{kind=\"whip\",reason=\"deleted\"}",
            );
            (open == 0.0 && ended == 1.0, (open, ended))
        },
    );
    eventually(
        "the seat without its publisher",
        Duration::from_secs(10),
        || {
            let st = seat_state(&s, "r2", "host");
            (st == "waiting" || st == "stalled", st)
        },
    );

    // ... and comes back with the same key, over VP8 this time: re-attached.
    let back = WhipClient::start(&endpoint, &key, "blue", "video/x-vp8").expect("whipclientsink");
    eventually(
        "the returning VP8 publisher's picture",
        Duration::from_secs(20),
        || {
            let st = seat_state(&s, "r2", "host");
            let c = tile_colour(&s, "r2", "pk", 0);
            (
                st == "connected" && near(c, rgb_of("blue"), 60),
                (st, c, back.errors()),
            )
        },
    );

    // Its encoder freezes (connection up, no media): the seat stalls and a newcomer with the
    // key takes it over.
    back.freeze();
    eventually(
        "the frozen publisher's seat stalled",
        Duration::from_secs(10),
        || {
            let st = seat_state(&s, "r2", "host");
            (st == "stalled" || st == "waiting", st)
        },
    );
    let taker =
        WhipClient::start(&endpoint, &key, "white", "video/x-h264").expect("whipclientsink");
    eventually("the takeover's picture", Duration::from_secs(20), || {
        let st = seat_state(&s, "r2", "host");
        let c = tile_colour(&s, "r2", "pk", 0);
        (
            st == "connected" && near(c, rgb_of("white"), 60),
            (st, c, taker.errors()),
        )
    });
    // The other seat was never disturbed, and the room is live.
    assert_eq!(seat_state(&s, "r2", "rival"), "connected");
    assert_eq!(room(&s, "r2")["state"], "live");
    drop(back);
    drop(taker);
}

#[test]
fn a_session_whose_ice_never_connects_is_torn_down_and_frees_the_seat() {
    let s = server(|c| c.webrtc_connect_timeout_ms = 1500);
    let key = publish_room(&s, "r3", "single");
    // A real offer from a peer that never takes the answer: ICE can never complete.
    let offer = gstreamer_offer().expect("offer");
    let (st, body, location) =
        post_offer(&s, "/whip/r3/host", Some(&key), "application/sdp", &offer);
    assert_eq!(st, 201, "{body}");
    assert!(body.starts_with("v=0"), "{body}");
    assert!(
        body.contains("a=candidate"),
        "the answer carries candidates: {body}"
    );
    assert!(
        location
            .as_deref()
            .unwrap_or_default()
            .starts_with("/whip/r3/host/")
    );
    assert_eq!(
        metric(&s, "showmix_webrtc_sessions_open{kind=\"whip\"}"),
        1.0
    );
    eventually("the ICE deadline", Duration::from_secs(10), || {
        let ended = metric(
            &s,
            "showmix_webrtc_ended_total{kind=\"whip\",reason=\"ice_timeout\"}",
        );
        let open = metric(&s, "showmix_webrtc_sessions_open{kind=\"whip\"}");
        (ended == 1.0 && open == 0.0, (ended, open))
    });
    // The seat is free again: a new offer is answered, not refused as busy.
    let (st, body, location) =
        post_offer(&s, "/whip/r3/host", Some(&key), "application/sdp", &offer);
    assert_eq!(st, 201, "{body}");
    let location = location.expect("location");
    // Trickle: the right content type is taken, a wrong one refused; DELETE ends it.
    let frag = "a=ice-ufrag:zzzz\r\na=ice-pwd:zzzzzzzzzzzzzzzzzzzzzzzz\r\n";
    let (st, _, _) = s.raw(
        "PATCH",
        &location,
        &[("content-type", "text/plain")],
        Some(b"x".to_vec()),
    );
    assert_eq!(st, 415);
    let (st, _, body) = s.raw(
        "PATCH",
        &location,
        &[("content-type", "application/trickle-ice-sdpfrag")],
        Some(frag.as_bytes().to_vec()),
    );
    assert_eq!(
        st,
        422,
        "an ICE restart is refused: {}",
        String::from_utf8_lossy(&body)
    );
    let (st, _, _) = s.raw("DELETE", &location, &[], None);
    assert_eq!(st, 200);
    let (st, _, _) = s.raw("DELETE", &location, &[], None);
    assert_eq!(st, 404, "a session ends once");
    eventually("the deleted session gone", Duration::from_secs(5), || {
        let open = metric(&s, "showmix_webrtc_sessions_open{kind=\"whip\"}");
        (open == 0.0, open)
    });
    assert_eq!(room(&s, "r3")["state"], "live");
}

#[test]
fn whep_viewers_see_the_mix_and_hear_it() {
    let s = server(|_| {});
    create(
        &s,
        json!({"id": "r4", "layout": "pk", "ladder": "showroom-720p",
               "seats": [{"id": "a", "source": "test:red?tone=440"}, {"id": "b", "source": "test:blue?tone=0"}]}),
    );
    let v = room(&s, "r4");
    let whep = v["playback"]["whep"]
        .as_str()
        .expect("playback.whep")
        .to_owned();
    assert!(whep.ends_with("/live/r4/whep"), "{whep}");
    let viewer = WhepClient::start(&whep, None).expect("whepclientsrc");
    let second = WhepClient::start(&whep, None).expect("whepclientsrc");
    eventually("frames at both viewers", Duration::from_secs(20), || {
        let n = (viewer.frames(), second.frames());
        (
            n.0 > 60 && n.1 > 60,
            (n, viewer.errors.lock().unwrap().clone()),
        )
    });
    let f = viewer.last_frame().expect("a frame");
    assert!(
        near(f.px(80, 90), rgb_of("red"), 60),
        "left tile {:?}",
        f.px(80, 90)
    );
    assert!(
        near(f.px(240, 90), rgb_of("blue"), 60),
        "right tile {:?}",
        f.px(240, 90)
    );
    eventually(
        "the room's tone at the viewer",
        Duration::from_secs(10),
        || {
            let l = viewer.audio_level_dbfs();
            (l.is_some_and(|l| l > -40.0), (l, viewer.errors()))
        },
    );
    assert_eq!(metric(&s, "showmix_room_webrtc_viewers{room=\"r4\"}"), 2.0);
    // The layout switches under the viewers.
    let (st, _) = s.json("PUT", "/v1/rooms/r4/layout", Some(json!("single")));
    assert_eq!(st, 200);
    eventually("the switch at the viewer", Duration::from_secs(10), || {
        let f = viewer.last_frame().expect("frame");
        let (l, r) = (f.px(80, 90), f.px(240, 90));
        (
            near(l, rgb_of("red"), 60) && near(r, rgb_of("red"), 60),
            (l, r),
        )
    });
    drop(viewer);
    drop(second);
    eventually("viewers gone", Duration::from_secs(10), || {
        let n = metric(&s, "showmix_room_webrtc_viewers{room=\"r4\"}");
        (n == 0.0, n)
    });
}

#[test]
fn whep_refusals_and_playback_tokens() {
    let s = server(|c| c.playback_tokens = "on".into());
    create(
        &s,
        json!({"id": "r5", "layout": "single", "ladder": "showroom-720p",
               "seats": [{"id": "a", "source": "test:smpte"}]}),
    );
    let whep = room(&s, "r5")["playback"]["whep"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        whep.contains("/live/r5~"),
        "tokens ride in the path: {whep}"
    );
    let path = whep
        .split_once(&format!("{}", s.addr.port()))
        .unwrap()
        .1
        .to_owned();
    let offer = gstreamer_offer().expect("offer");
    // A sendonly offer cannot view.
    let sendonly = offer.replace("a=sendrecv", "a=sendonly");
    let (st, body, _) = post_offer(&s, &path, None, "application/sdp", &sendonly);
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("receive video"), "{body}");
    let (st, body, _) = post_offer(&s, "/live/r5/whep", None, "application/sdp", &offer);
    assert_eq!(st, 403, "no token: {body}");
    let (st, body, _) = post_offer(&s, "/live/r5~1-00/whep", None, "application/sdp", &offer);
    assert_eq!(st, 403, "bad token: {body}");
    let (st, body, _) = post_offer(
        &s,
        &path.replace("/whep", "/4k/whep"),
        None,
        "application/sdp",
        &offer,
    );
    assert_eq!(st, 404, "unknown rung: {body}");
    assert!(body.contains("720p"), "names the rungs: {body}");
    let (st, _, _) = post_offer(&s, &path, None, "application/sdp", "garbage");
    assert_eq!(st, 400);
    let (st, _, _) = post_offer(&s, &path, None, "text/plain", &offer);
    assert_eq!(st, 415);
    // With the token, a real viewer plays; the token may also come as a Bearer header.
    let token = path
        .split('~')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let base = format!("http://127.0.0.1:{}/live/r5/360p/whep", s.addr.port());
    let viewer = WhepClient::start(&base, Some(&token)).expect("whepclientsrc");
    eventually("frames of the 360p rung", Duration::from_secs(20), || {
        (
            viewer.frames() > 30,
            (viewer.frames(), viewer.errors.lock().unwrap().clone()),
        )
    });
    assert_eq!(
        metric(
            &s,
            "showmix_webrtc_refused_total{kind=\"whep\",reason=\"token\"}"
        ),
        2.0
    );
}

/// A joining viewer gets a keyframe forced on every rung at once (not the next natural one),
/// and the forced keyframe does not split LL-HLS segments: the muxer keeps its own fragment
/// boundaries. (On GStreamer 1.22 a force-key-unit event through the canvas's pad offset used to
/// reach the encoders with running time 0 and be dropped, and an untimed one waited behind
/// the muxer's own requests: no keyframe was ever forced.)
#[test]
fn a_joining_viewer_gets_a_forced_keyframe_and_segments_stay_whole() {
    use std::sync::{Arc, Mutex};
    let s = server(|_| {});
    create(
        &s,
        json!({"id": "kf", "layout": "pk", "ladder": "showroom-720p",
               "seats": [{"id": "a", "source": "test:smpte"}, {"id": "b", "source": "test:ball"}]}),
    );
    // Keyframes as each rung's encoder puts them out (PTS), from the room's own pipeline.
    let p = probes::room_pipeline(&s, "kf").unwrap();
    use gst::prelude::*;
    let keys: Arc<Mutex<Vec<(String, gst::ClockTime)>>> = Arc::default();
    for rung in ["720p", "480p", "360p"] {
        let tee = p.by_name(&format!("rung-{rung}")).expect("rung tee");
        let (keys, rung) = (keys.clone(), rung.to_owned());
        tee.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(b) = info.buffer()
                    && !b.flags().contains(gst::BufferFlags::DELTA_UNIT)
                    && let Some(pts) = b.pts()
                {
                    probes::lock(&keys).push((rung.clone(), pts));
                }
                gst::PadProbeReturn::Ok
            });
    }
    let top = |keys: &[(String, gst::ClockTime)]| -> Vec<gst::ClockTime> {
        keys.iter()
            .filter(|(r, _)| r == "720p")
            .map(|(_, t)| *t)
            .collect()
    };
    eventually("two natural keyframes", Duration::from_secs(20), || {
        let n = top(&probes::lock(&keys)).len();
        (n >= 2, n)
    });
    let whep = room(&s, "kf")["playback"]["whep"]
        .as_str()
        .unwrap()
        .to_owned();
    // A join within 150 ms of a natural keyframe waits for it instead: try a few.
    let forced_metric = "showmix_room_keyframes_forced_total{room=\"kf\"}";
    for _ in 0..6 {
        let viewer = WhepClient::start(&whep, None).expect("whepclientsrc");
        eventually("frames at the viewer", Duration::from_secs(20), || {
            (viewer.frames() > 0, viewer.errors())
        });
        drop(viewer);
        if metric(&s, forced_metric) >= 1.0 {
            break;
        }
        // Past the room's one-forced-keyframe-a-second limit.
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert!(
        metric(&s, forced_metric) >= 1.0,
        "no join forced a keyframe"
    );
    // Two more seconds of stream, so the segment holding the forced keyframe is complete.
    std::thread::sleep(Duration::from_secs(2));
    let keys = probes::lock(&keys).clone();
    let t = top(&keys);
    // The natural keyframes are 1 s (the GOP) apart; the forced one falls between two.
    let off_grid: Vec<gst::ClockTime> = t
        .windows(2)
        .filter(|w| w[1] - w[0] < gst::ClockTime::from_mseconds(900))
        .map(|w| w[1])
        .collect();
    assert!(
        !off_grid.is_empty(),
        "no keyframe between the natural ones: {t:?}"
    );
    // On every rung at the same frame (aligned rungs).
    for k in &off_grid {
        for rung in ["480p", "360p"] {
            assert!(
                keys.iter().any(|(r, pts)| r == rung && pts == k),
                "{rung} has no keyframe at {k} (720p's forced one): {keys:?}"
            );
        }
    }
    // LL-HLS: segments and parts keep their target durations.
    let (st, _, body) = s.call("GET", "/live/kf/720p/index.m3u8", None, None);
    assert_eq!(st, 200);
    let text = String::from_utf8(body).unwrap();
    let attr = |line: &str, key: &str| -> Option<String> {
        line.split(',')
            .find_map(|kv| kv.split_once('=').filter(|(k, _)| k.ends_with(key)))
            .map(|(_, v)| v.to_owned())
    };
    let mut target = 0.0;
    let mut parts = 0;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d: f64 = v.trim_end_matches(',').parse().unwrap();
            assert!(d.round() <= target, "a segment lasts {d} s:\n{text}");
        } else if line.starts_with("#EXT-X-PART:") {
            let d: f64 = attr(line, "DURATION").unwrap().parse().unwrap();
            assert!(d <= 0.25, "a part lasts {d} s:\n{text}");
            parts += 1;
        }
    }
    assert!(target >= 1.0 && parts > 0, "{text}");
}
