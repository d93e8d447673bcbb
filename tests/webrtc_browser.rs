//! WebRTC in a real browser: headless Debian Chromium (playwright-core, `tests/browser/rtc.js`)
//! publishes its fake camera and microphone over WHIP into one seat of a PK room while ffmpeg
//! publishes red and a tone over RTMP into the other; a second Chromium page plays the room
//! over WHEP and reads every presented frame. Checked from the decoded frames: the camera in
//! the left tile, red in the right one; and audio arrives. Latency is measured by
//! `cargo bench -p showmix-benches --bench webrtc`, not asserted here.
//!
//! Needs `/usr/bin/chromium` (ops/packages.txt) and the npm packages in `tests/browser`
//! (`make browser-deps`, which `make test` runs).

#[path = "browser/driver.rs"]
#[allow(dead_code)] // each user takes the part it needs
mod driver;

use serde_json::{Value, json};
use showmix_tests::publisher::Publisher;
use showmix_tests::server::Server;

fn seat<'a>(room: &'a Value, id: &str) -> &'a Value {
    room["seats"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no seat {id} in {room}"))
}

/// A probe's colour in a frame, as rtc.html reports it.
fn probe(frame: &Value, name: &str) -> (f64, f64, f64, f64) {
    let p = &frame["probes"][name];
    (
        p["r"].as_f64().unwrap_or(-1.0),
        p["g"].as_f64().unwrap_or(-1.0),
        p["b"].as_f64().unwrap_or(-1.0),
        p["lumaStd"].as_f64().unwrap_or(-1.0),
    )
}

#[test]
fn chromium_publishes_over_whip_into_a_pk_and_watches_it_over_whep() {
    driver::check_ready().expect("browser test prerequisites");
    let s = Server::start(|c| c.rtmp_listen = "127.0.0.1:0".into());
    let (st, v) = s.json(
        "POST",
        "/v1/rooms",
        Some(
            json!({"id": "pk", "layout": "pk", "ladder": "showroom-720p", "seats": [
            {"id": "host", "source": "publish"}, {"id": "rival", "source": "publish"}]}),
        ),
    );
    assert_eq!(st, 201, "{v}");
    let host = &seat(&v, "host")["ingest"];
    let rival = &seat(&v, "rival")["ingest"];
    let _rtmp = Publisher::start(rival["rtmp"].as_str().expect("rtmp url"), "red", 660, &[]);
    let whep = v["playback"]["whep"].as_str().expect("playback.whep");

    // PK tiles: the left and right halves; probes well inside each.
    let left = json!({"name": "left", "x": 0.1, "y": 0.25, "w": 0.3, "h": 0.5});
    let right = json!({"name": "right", "x": 0.6, "y": 0.25, "w": 0.3, "h": 0.5});
    let report = driver::rtc(&json!({
        "deadline": 90,
        "publishers": [{"whip": host["whip"], "key": host["key"], "source": "camera"}],
        "viewers": [{"whep": whep, "probes": [left, right]}],
        "warmup": 2,
        "seconds": 4,
    }))
    .expect("rtc.js ran");
    let r = &report.result;
    assert_eq!(r["ok"], true, "{}\nlog:\n{}", r["error"], report.log);
    let publisher = &r["publishers"][0];
    assert_eq!(publisher["negotiation"]["status"], 201, "{publisher}");
    let viewer = &r["viewers"][0];
    assert_eq!(viewer["negotiation"]["status"], 201, "{viewer}");

    let frames = viewer["frames"].as_array().expect("frames");
    assert!(
        frames.len() > 30,
        "frames presented: {}; the viewer's RTP: {}",
        frames.len(),
        viewer["stats"]
    );
    let mut camera = 0;
    let mut not_camera = Vec::new();
    for f in frames {
        let (lr, lg, lb, lstd) = probe(f, "left");
        let (rr, rg, rb, _) = probe(f, "right");
        // Right tile: the RTMP publisher's red.
        assert!(
            rr > 150.0 && rg < 90.0 && rb < 90.0,
            "right tile not red: {f}"
        );
        // Left tile: Chromium's fake camera (a moving picture on green-grey), neither the
        // placeholder (background colour, flat) nor red.
        let red = lr > 150.0 && lg < 90.0 && lb < 90.0;
        if !red && lstd > 5.0 {
            camera += 1;
        } else if not_camera.len() < 5 {
            not_camera.push(format!("rgb {lr:.0} {lg:.0} {lb:.0} luma std {lstd:.1}"));
        }
    }
    assert!(
        camera * 10 >= frames.len() * 9,
        "the camera shows in the left tile in {camera} of {} frames; others: {not_camera:?}",
        frames.len()
    );
    // Audio: the viewer decodes the mix (the RTMP tone and the fake microphone's beeps).
    let audio = &viewer["stats"]["inbound-rtp-audio"];
    assert!(
        audio["totalAudioEnergy"].as_f64().unwrap_or(0.0) > 0.0,
        "no audio energy at the viewer: {audio}"
    );
    let video = &viewer["stats"]["inbound-rtp-video"];
    assert_eq!(video["frameWidth"], 1280, "the top rung: {video}");
    // Both sessions ended by DELETE.
    assert_eq!(publisher["deleteStatus"], 200);
    assert_eq!(viewer["deleteStatus"], 200);
    let (_, _, m) = s.call("GET", "/metrics", None, None);
    let m = String::from_utf8(m).unwrap();
    assert!(
        m.contains("showmix_webrtc_connected_total{kind=\"whip\"} 1"),
        "{m}"
    );
    assert!(m.contains("showmix_webrtc_connected_total{kind=\"whep\"} 1"));
}
