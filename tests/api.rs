//! The control plane over real HTTP: an in-process server on an ephemeral port, driven by a
//! real HTTP/1.1 client; the shutdown test runs the binary and sends it SIGTERM.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use showmix::api::http::request;
use showmix::presets::Presets;
use showmix_tests::server::*;
use showmix_tests::*;

fn room_body(id: &str, layout: &str, seats: &[(&str, &str)]) -> Value {
    json!({
        "id": id,
        "layout": layout,
        "ladder": "showroom-720p",
        "seats": seats.iter().map(|(i, s)| json!({"id": i, "source": s})).collect::<Vec<_>>(),
    })
}

fn decode_jpeg(jpeg: &[u8]) -> Frame {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.jpg");
    std::fs::write(&f, jpeg).unwrap();
    decode_image(&f).unwrap()
}

fn check_colours(frame: &Frame, layout: &str, colours: &[&str]) -> Result<(), String> {
    let tiles = Presets::embedded()
        .unwrap()
        .layout(layout)
        .unwrap()
        .tiles(frame.width, frame.height);
    for (i, c) in colours.iter().enumerate() {
        let (x, y) = tiles[i].rect.centre();
        let got = frame.px(x, y);
        if !near(got, rgb_of(c), 48) {
            return Err(format!(
                "{layout}: slot {i} at ({x},{y}) is {got:?}, wanted {c}"
            ));
        }
    }
    Ok(())
}

#[test]
fn room_lifecycle_and_live_control() {
    let s = Server::start(|_| {});
    let (st, v) = s.json("GET", "/healthz", None);
    assert_eq!((st, v["status"].as_str()), (200, Some("ok")));
    let (st, _) = s.json("GET", "/readyz", None);
    assert_eq!(st, 200);
    let (st, v) = s.json("GET", "/v1/presets", None);
    assert_eq!(st, 200);
    assert!(
        v["layouts"]["pk"]["slots"].is_array() && v["ladders"]["showroom-720p"]["rungs"].is_array()
    );
    assert!(v["beauty"]["natural"]["smoothness"].is_number());

    let (st, room) = s.json(
        "POST",
        "/v1/rooms",
        Some(room_body("show", "single", &[("host", "test:red")])),
    );
    assert_eq!(st, 201, "{room}");
    assert_eq!(room["id"], "show");
    assert_eq!(
        room["canvas"],
        json!({"width": 1280, "height": 720, "fps": 30})
    );
    assert_eq!(room["layout"]["name"], "single");
    assert_eq!(room["seats"][0]["slot"], 0);
    wait_for("room live", || {
        s.json("GET", "/v1/rooms/show", None).1["state"] == "live"
    });

    // PK starts: a second seat, then the pk layout.
    let (st, v) = s.json(
        "POST",
        "/v1/rooms/show/seats",
        Some(json!({"id": "rival", "source": "test:blue", "volume": 0.8})),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["seats"][1]["id"], "rival");
    assert_eq!(v["seats"][1]["slot"], 1);
    let (st, v) = s.json("PUT", "/v1/rooms/show/layout", Some(json!("pk")));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["layout"]["name"], "pk");
    // Shows in the snapshot within 200 ms of the response.
    std::thread::sleep(Duration::from_millis(200));
    let (st, ct, jpeg) = s.call("GET", "/v1/rooms/show/snapshot.jpg", Some(TOKEN), None);
    assert_eq!((st, ct.as_str()), (200, "image/jpeg"));
    check_colours(&decode_jpeg(&jpeg), "pk", &["red", "blue"]).unwrap();

    // Custom layout object: rival on the left, host on the right, contained.
    let custom = json!({"background": "#00ff00", "slots": [
        {"x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0},
        {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0}]});
    let (st, v) = s.json("PUT", "/v1/rooms/show/layout", Some(custom));
    assert_eq!(st, 200, "{v}");
    std::thread::sleep(Duration::from_millis(200));
    let (_, _, jpeg) = s.call(
        "GET",
        "/v1/rooms/show/snapshot.jpg?width=640",
        Some(TOKEN),
        None,
    );
    let f = decode_jpeg(&jpeg);
    assert_eq!((f.width, f.height), (640, 360));
    assert!(near(f.px(480, 180), rgb_of("red"), 48) && near(f.px(160, 180), rgb_of("blue"), 48));

    // Seat changes: move, volume, mute, beauty by preset.
    let (st, v) = s.json(
        "PATCH",
        "/v1/rooms/show/seats/rival",
        Some(json!({"volume": 1.5, "muted": true, "beauty": "natural", "slot": 3})),
    );
    assert_eq!(st, 200, "{v}");
    let rival = &v["seats"][1];
    assert_eq!(
        (
            rival["volume"].as_f64(),
            rival["muted"].as_bool(),
            rival["slot"].as_u64()
        ),
        (Some(1.5), Some(true), Some(3))
    );
    assert_eq!(rival["beauty"]["name"], "natural");

    // Stats move.
    wait_for("rung fps", || {
        let (_, st) = s.json("GET", "/v1/rooms/show/stats", None);
        st["rungs"][0]["encoded_fps"].as_f64().unwrap_or(0.0) > 20.0
    });
    let (_, stats) = s.json("GET", "/v1/rooms/show/stats", None);
    assert_eq!(stats["seats"][0]["state"], "connected");
    assert!(
        stats["seats"][0]["input_fps"].as_f64().unwrap() > 20.0,
        "{stats}"
    );
    assert!(
        stats["seats"][0]["audio_level_dbfs"].as_f64().unwrap() > -40.0,
        "{stats}"
    );
    assert_eq!(stats["rungs"].as_array().unwrap().len(), 3);
    assert!(stats["rungs"][0]["keyframes"].as_u64().unwrap() >= 1);
    assert!(
        stats["last_layout_change"]["mix_latency_ms"]
            .as_f64()
            .unwrap()
            < 1000.0
    );

    let (st, v) = s.json("DELETE", "/v1/rooms/show/seats/rival", None);
    assert_eq!(st, 200);
    assert_eq!(v["seats"].as_array().unwrap().len(), 1);
    let (st, v) = s.json("GET", "/v1/rooms", None);
    assert_eq!((st, v["rooms"].as_array().unwrap().len()), (200, 1));
    let (st, _) = s.json("DELETE", "/v1/rooms/show", None);
    assert_eq!(st, 204);
    let (st, v) = s.json("GET", "/v1/rooms/show", None);
    assert_eq!((st, v["error"].as_str()), (404, Some("not_found")));
}

fn expect_error(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
    status: u16,
    needle: &str,
) {
    let (st, ct, b) = s.call(method, path, token, body);
    let v: Value = serde_json::from_slice(&b)
        .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {}", String::from_utf8_lossy(&b)));
    assert_eq!(st, status, "{method} {path}: {v}");
    assert_eq!(ct, "application/json");
    assert!(v["error"].is_string(), "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains(needle),
        "{method} {path}: wanted {needle:?} in {msg:?}"
    );
}

#[test]
fn every_error_case() {
    let s = Server::start(|c| c.max_rooms = 2);
    let t = Some(TOKEN);
    let body = |v: Value| Some(serde_json::to_vec(&v).unwrap());
    // Auth.
    expect_error(&s, "GET", "/v1/rooms", None, None, 401, "bearer token");
    expect_error(
        &s,
        "GET",
        "/v1/rooms",
        Some("wrong-token-0123456789"),
        None,
        401,
        "bearer token",
    );
    expect_error(
        &s,
        "GET",
        "/v1/rooms",
        Some(&TOKEN[..TOKEN.len() - 1]),
        None,
        401,
        "bearer token",
    );
    // The console's event stream is an API route like the others.
    expect_error(&s, "GET", "/v1/events", None, None, 401, "bearer token");
    // Open routes need no token.
    assert_eq!(s.call("GET", "/metrics", None, None).0, 200);
    // Malformed JSON, wrong types, unknown fields.
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        Some(b"{not json".to_vec()),
        400,
        "not valid JSON",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        Some(vec![0xff, 0xfe, 0x00]),
        400,
        "not valid JSON",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(json!({"seats": "host"})),
        422,
        "seats:",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(json!({"id": 5})),
        422,
        "id:",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(json!({"colour": "red"})),
        422,
        "unknown field `colour`",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(json!({"seats": [{"id": "a", "source": "test:red", "volum": 1}]})),
        422,
        "unknown field `volum`",
    );
    // Values out of range name the field.
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(json!({"seats": [{"id": "a", "source": "test:red", "volume": 5}]})),
        422,
        "seats[0].volume: 5 is out of range (allowed 0..=2)",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(json!({"seats": [{"id": "a", "source": "test:red", "beauty": {"smoothness": 2}}]})),
        422,
        "seats[0].beauty.smoothness: 2 is out of range",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(json!({"canvas": {"width": 1281, "height": 720, "fps": 30}})),
        422,
        "canvas.width: 1281 must be even",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(json!({"seats": [{"id": "a", "source": "test:mauve"}]})),
        422,
        "unknown test pattern",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(json!({"seats": [{"id": "a", "source": "/no/such.mp4"}]})),
        422,
        "does not exist",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(json!({"id": "../../etc"})),
        422,
        "not a valid room id",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(json!({"layout": "../pk.toml"})),
        422,
        "preset name",
    );
    // Unknown presets.
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(json!({"layout": "hexagon"})),
        404,
        "unknown layout preset \"hexagon\"",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(json!({"ladder": "8k"})),
        404,
        "unknown ladder preset",
    );
    // Huge body.
    let huge = json!({"id": "x", "pad": "y".repeat(70 * 1024)});
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(huge),
        413,
        "over the limit of 65536 bytes",
    );
    // Unknown rooms, seats, routes; traversal in ids; wrong methods.
    expect_error(&s, "GET", "/v1/rooms/nope", t, None, 404, "no room");
    expect_error(
        &s,
        "GET",
        "/v1/rooms/..%2F..%2Fetc",
        t,
        None,
        404,
        "room ids are",
    );
    expect_error(
        &s,
        "GET",
        "/v1/rooms/a.b/stats",
        t,
        None,
        404,
        "room ids are",
    );
    expect_error(
        &s,
        "DELETE",
        "/v1/rooms/r/seats/..",
        t,
        None,
        404,
        "seat ids are",
    );
    expect_error(
        &s,
        "GET",
        "/v1/rooms/r/../../etc/passwd",
        t,
        None,
        404,
        "no route",
    );
    expect_error(&s, "GET", "/v2", t, None, 404, "no route");
    expect_error(&s, "PATCH", "/v1/rooms", t, None, 405, "allowed: GET, POST");

    // Conflicts and limits on real rooms.
    let (st, _) = s.json(
        "POST",
        "/v1/rooms",
        Some(room_body("a", "pk", &[("h", "test:red")])),
    );
    assert_eq!(st, 201);
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(room_body("a", "pk", &[])),
        409,
        "already exists",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms/a/seats",
        t,
        body(json!({"id": "h", "source": "test:blue"})),
        409,
        "already exists",
    );
    expect_error(
        &s,
        "POST",
        "/v1/rooms/a/seats",
        t,
        body(json!({"id": "g", "source": "test:blue", "slot": 0})),
        409,
        "slot 0 is taken",
    );
    expect_error(
        &s,
        "PATCH",
        "/v1/rooms/a/seats/nobody",
        t,
        body(json!({"volume": 1})),
        404,
        "no seat",
    );
    expect_error(
        &s,
        "PATCH",
        "/v1/rooms/a/seats/h",
        t,
        body(json!({"volume": -1})),
        422,
        "volume: -1 is out of range",
    );
    expect_error(
        &s,
        "PATCH",
        "/v1/rooms/a/seats/h",
        t,
        body(json!({"beauty": "glam"})),
        404,
        "unknown beauty preset",
    );
    expect_error(
        &s,
        "PATCH",
        "/v1/rooms/a/seats/h",
        t,
        body(json!({"loud": true})),
        422,
        "unknown field `loud`",
    );
    expect_error(
        &s,
        "PUT",
        "/v1/rooms/a/layout",
        t,
        body(json!({"slots": []})),
        422,
        "layout.slots: has 0 slots",
    );
    expect_error(
        &s,
        "PUT",
        "/v1/rooms/a/layout",
        t,
        body(json!(42)),
        422,
        "preset name",
    );
    expect_error(
        &s,
        "GET",
        "/v1/rooms/a/snapshot.jpg?width=5",
        t,
        None,
        422,
        "width: 5 is out of range",
    );
    expect_error(
        &s,
        "GET",
        "/v1/rooms/a/snapshot.jpg?width=big",
        t,
        None,
        422,
        "not a whole number",
    );
    let (st, _) = s.json("POST", "/v1/rooms", Some(room_body("b", "single", &[])));
    assert_eq!(st, 201);
    expect_error(
        &s,
        "POST",
        "/v1/rooms",
        t,
        body(room_body("c", "single", &[])),
        503,
        "room limit (2)",
    );
    // The rooms survived all of it.
    assert_eq!(
        s.json("GET", "/v1/rooms", None).1["rooms"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // No 500 anywhere.
    let (_, _, m) = s.call("GET", "/metrics", None, None);
    let m = String::from_utf8(m).unwrap();
    assert!(!m.contains("status=\"500\""), "{m}");
}

#[test]
fn two_rooms_are_independent() {
    let s = Server::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.mp4");
    std::fs::write(&garbage, vec![7u8; 50_000]).unwrap();
    assert_eq!(
        s.json(
            "POST",
            "/v1/rooms",
            Some(room_body("one", "pk", &[("h", "test:red")]))
        )
        .0,
        201
    );
    assert_eq!(
        s.json(
            "POST",
            "/v1/rooms",
            Some(room_body("two", "pk", &[("h", "test:green")]))
        )
        .0,
        201
    );
    let frames = |id: &str| {
        s.json("GET", &format!("/v1/rooms/{id}/stats"), None).1["mixed_frames"]
            .as_u64()
            .unwrap_or(0)
    };
    wait_for("both mixing", || frames("one") > 10 && frames("two") > 10);
    // Break room two with an undecodable seat: the seat fails, both rooms go on.
    let (st, _) = s.json(
        "POST",
        "/v1/rooms/two/seats",
        Some(json!({"id": "bad", "source": garbage})),
    );
    assert_eq!(st, 201);
    wait_for("bad seat failed", || {
        let v = s.json("GET", "/v1/rooms/two", None).1;
        v["seats"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == "bad" && x["state"] == "failed")
    });
    let before = frames("one");
    assert_eq!(s.json("DELETE", "/v1/rooms/two", None).0, 204);
    wait_for("room one keeps mixing", || frames("one") > before + 15);
    assert_eq!(s.json("GET", "/v1/rooms/one", None).1["state"], "live");
    let (_, _, jpeg) = s.call("GET", "/v1/rooms/one/snapshot.jpg", Some(TOKEN), None);
    check_colours(&decode_jpeg(&jpeg), "pk", &["red"]).unwrap();
}

/// Parses Prometheus text: every sample line is `name{labels} value` with a number.
fn prometheus(text: &str) -> std::collections::HashMap<String, f64> {
    let mut m = std::collections::HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            assert!(
                line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "{line}"
            );
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let name_ok = key
            .split('{')
            .next()
            .unwrap()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
        assert!(name_ok, "bad metric name in {line:?}");
        if let Some(labels) = key.split_once('{').map(|(_, l)| l) {
            assert!(labels.ends_with('}'), "{line}");
        }
        m.insert(
            key.to_owned(),
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        );
    }
    m
}

#[test]
fn metrics_parse_and_move() {
    let s = Server::start(|_| {});
    let scrape =
        || prometheus(&String::from_utf8(s.call("GET", "/metrics", None, None).2).unwrap());
    let m0 = scrape();
    assert_eq!(m0["showmix_rooms"], 0.0);
    assert!(m0["process_resident_memory_bytes"] > 0.0);
    assert_eq!(
        s.json(
            "POST",
            "/v1/rooms",
            Some(room_body("m", "single", &[("h", "test:red")]))
        )
        .0,
        201
    );
    wait_for("frames", || {
        scrape()
            .get("showmix_mix_frames_total{room=\"m\"}")
            .copied()
            .unwrap_or(0.0)
            > 10.0
    });
    let m1 = scrape();
    std::thread::sleep(Duration::from_millis(1500));
    let m2 = scrape();
    assert_eq!(m2["showmix_rooms"], 1.0);
    assert_eq!(m2["showmix_seats{state=\"connected\"}"], 1.0);
    for k in [
        "showmix_mix_frames_total{room=\"m\"}",
        "showmix_seat_frames_received_total{room=\"m\",seat=\"h\"}",
        "showmix_rung_frames_total{room=\"m\",rung=\"360p\"}",
        "process_cpu_seconds_total",
    ] {
        assert!(m2[k] > m1[k], "{k} did not move: {} -> {}", m1[k], m2[k]);
    }
    assert!(m2["showmix_rung_fps{room=\"m\",rung=\"720p\"}"] > 20.0);
    assert!(
        m2["showmix_http_requests_total{route=\"/v1/rooms\",method=\"POST\",status=\"201\"}"]
            >= 1.0
    );
}

/// SIGTERM: the server stops accepting, ends the room with EOS, and the MP4 it was writing
/// plays.
#[test]
fn graceful_shutdown_finalises_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(showmix_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--api-token", TOKEN])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let addr: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .parse()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Relative: under the data directory.
    let out = dir.path().join("rec");
    let mut body = room_body("rec", "pk", &[("h", "test:red"), ("g", "test:blue")]);
    body["outputs"] = json!([{"kind": "file", "dir": "rec"}]);
    let (st, _, b) = rt
        .block_on(request(
            addr,
            "POST",
            "/v1/rooms",
            Some(TOKEN),
            Some(serde_json::to_vec(&body).unwrap()),
        ))
        .unwrap();
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&b));
    std::thread::sleep(Duration::from_millis(2500));
    let t = Instant::now();
    // SAFETY: kill(2) on our own child.
    unsafe { kill(child.id() as i32, 15) };
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no exit within the grace period"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    for r in ["720p", "480p", "360p"] {
        let f = out.join(format!("{r}.mp4"));
        let st = streams(&f).unwrap();
        let dur = st.video.as_ref().unwrap().3;
        assert!(dur > 1.5, "{r}: {dur} s");
        assert!(st.audio.is_some(), "{r} has audio");
        assert!(frame_count(&f).unwrap() > 45);
    }
    // The port is closed.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Outputs over the API: a recording added at creation and one live, a push to a destination
/// that refuses (retried, the room unaffected), removal finishing the files, and every bad
/// request with its status.
#[test]
fn outputs_are_added_and_removed_live() {
    let dir = tempfile::tempdir().unwrap();
    // An extra output root besides the server's data directory.
    let root = dir.path().canonicalize().unwrap();
    let extra = root.clone();
    let s = Server::start(move |c| c.output_roots = vec![extra]);
    let mut body = room_body("out", "pk", &[("a", "test:red"), ("b", "test:blue")]);
    body["outputs"] = json!([{"kind": "record", "id": "rec", "rungs": ["360p"],
                              "segment_minutes": 1, "dir": root.join("recs")}]);
    let (st, v) = s.json("POST", "/v1/rooms", Some(body));
    assert_eq!(st, 201, "{v}");
    let rec = &v["outputs"][0];
    assert_eq!(rec["kind"], "record", "{v}");
    assert_eq!(rec["state"], "recording", "{v}");
    assert_eq!(rec["rungs"], json!(["360p"]));
    assert_eq!(rec["segment_minutes"], 1);

    // A push to a port nobody listens on: retried with backoff, the room keeps mixing.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let (st, v) = s.json(
        "POST",
        "/v1/rooms/out/outputs",
        Some(
            json!({"kind": "rtmp", "id": "cdn", "url": format!("rtmp://127.0.0.1:{port}/live/x")}),
        ),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["kind"], "rtmp");
    assert_eq!(v["rungs"], json!(["720p"]), "the top rung by default: {v}");
    let frames_before = s.json("GET", "/v1/rooms/out/stats", None).1["rungs"][0]["frames"]
        .as_u64()
        .unwrap_or(0);
    let mut cdn = Value::Null;
    wait_for("the refused push to be retried", || {
        let (_, v) = s.json("GET", "/v1/rooms/out", None);
        if let Some(o) = v["outputs"]
            .as_array()
            .and_then(|a| a.iter().find(|o| o["id"] == "cdn"))
        {
            cdn = o.clone();
        }
        cdn["retries"].as_u64().unwrap_or(0) >= 1
    });
    assert_eq!(cdn["state"], "retrying", "{cdn}");
    assert!(cdn["reason"].is_string(), "{cdn}");
    std::thread::sleep(Duration::from_secs(2));
    let (_, stats) = s.json("GET", "/v1/rooms/out/stats", None);
    assert!(
        stats["rungs"][0]["frames"].as_u64().unwrap() > frames_before + 30,
        "the room keeps encoding: {stats}"
    );
    let (_, v) = s.json("GET", "/v1/rooms/out", None);
    assert_eq!(v["state"], "live", "{v}");

    // Bad requests.
    let path = "/v1/rooms/out/outputs";
    let post = |b: Value| Some(serde_json::to_vec(&b).unwrap());
    expect_error(
        &s,
        "POST",
        path,
        Some(TOKEN),
        post(json!({"kind": "rtmp", "url": "http://x/y"})),
        422,
        "url",
    );
    expect_error(
        &s,
        "POST",
        path,
        Some(TOKEN),
        post(json!({"kind": "srt", "url": "srt://127.0.0.1:9?streamid=x", "rung": "4k"})),
        422,
        "\"4k\" is not a rung of this room",
    );
    expect_error(
        &s,
        "POST",
        path,
        Some(TOKEN),
        post(json!({"kind": "record", "rungs": [], "dir": "r"})),
        422,
        "at least one rung",
    );
    expect_error(
        &s,
        "POST",
        path,
        Some(TOKEN),
        post(json!({"kind": "record", "segment_minutes": 0, "dir": "r"})),
        422,
        "segment_minutes",
    );
    expect_error(
        &s,
        "POST",
        path,
        Some(TOKEN),
        post(json!({"kind": "record", "id": "cdn", "dir": "r"})),
        409,
        "already used",
    );
    expect_error(
        &s,
        "POST",
        path,
        Some(TOKEN),
        post(json!({"kind": "file", "dir": "f"})),
        409,
        "file outputs are set when the room is created",
    );
    expect_error(
        &s,
        "POST",
        path,
        Some(TOKEN),
        post(json!({"kind": "record", "dir": "../escape"})),
        422,
        "'..'",
    );
    // Outside every root, directly or through a symlink in the data directory: 422 naming
    // the allowed roots.
    let data = s.data.path().canonicalize().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), data.join("elsewhere")).unwrap();
    for (dir, says) in [
        (outside.path().join("r").display().to_string(), "is outside"),
        ("elsewhere/r".to_owned(), "resolves to"),
    ] {
        let (st, v) = s.json(
            "POST",
            path,
            Some(json!({"kind": "record", "id": "sneaky", "dir": dir})),
        );
        assert_eq!(st, 422, "{dir}: {v}");
        let msg = v.to_string();
        assert!(msg.contains("output.dir") && msg.contains(says), "{msg}");
        assert!(
            msg.contains(&data.display().to_string()) && msg.contains(&root.display().to_string()),
            "the allowed roots are named: {msg}"
        );
    }
    assert!(
        std::fs::read_dir(outside.path()).unwrap().next().is_none(),
        "nothing was written outside"
    );
    expect_error(
        &s,
        "POST",
        path,
        Some(TOKEN),
        post(json!({"kind": "ftp", "url": "x"})),
        422,
        "kind",
    );
    expect_error(
        &s,
        "DELETE",
        "/v1/rooms/out/outputs/nope",
        Some(TOKEN),
        None,
        404,
        "no output",
    );

    // Removing the push ends it; removing the recording finishes its file, which plays.
    let (st, v) = s.json("DELETE", "/v1/rooms/out/outputs/cdn", None);
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.json("DELETE", "/v1/rooms/out/outputs/rec", None);
    assert_eq!(st, 200, "{v}");
    let files: Vec<std::path::PathBuf> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().into())
        .collect();
    assert_eq!(files.len(), 1, "{v}");
    assert!(files[0].starts_with(root.join("recs")), "{files:?}");
    let st = streams(&files[0]).unwrap();
    let (vc, w, h, vdur) = st.video.clone().expect("video");
    assert_eq!((vc.as_str(), w, h), ("h264", 640, 360), "{st:?}");
    assert_eq!(
        st.audio.as_ref().map(|a| a.0.as_str()),
        Some("aac"),
        "{st:?}"
    );
    assert!(vdur >= 1.0, "{st:?}");
    let (_, v) = s.json("GET", "/v1/rooms/out", None);
    assert_eq!(v["outputs"], json!([]), "{v}");
    assert_eq!(v["state"], "live", "{v}");
}
