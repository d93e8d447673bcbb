//! The operator console end to end, against an in-process `showmix serve` with a real PK room
//! (a test pattern host and an ffmpeg RTMP publisher as the rival):
//!
//! - the console's files and event stream over plain HTTP: headers (CSP, caching, SPA
//!   fallback), the token required on the stream, one snapshot a second with CPU per room;
//! - headless Chromium (playwright-core, `tests/browser/console.js`) doing what an operator
//!   does: a wrong token, login, the room in the list, the room's preview, pk → single and back
//!   (read from the preview's decoded frames), resizing and dragging a tile in the editor
//!   (checked with the API and the room's snapshot), a beauty slider (checked with the API), and
//!   an API error next to its control (checked against the API's own answer).
//!
//! Screenshots of the main pages go to `target/console-screenshots/` (not committed). Needs
//! `/usr/bin/chromium`, the npm packages of `tests/browser` (`make browser-deps`) and the
//! console built into the binary (`make console`); `make test` does all three.

#[path = "browser/driver.rs"]
#[allow(dead_code)] // each user takes the part it needs
mod driver;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use showmix_tests::publisher::Publisher;
use showmix_tests::server::{Server, TOKEN, wait_for};

fn console_built() {
    assert!(
        showmix::api::console::built(),
        "the console is not built into this binary: run `make console` (make test does) and rebuild"
    );
}

fn header<'a>(h: &'a showmix_tests::server::hyper_headers::HeaderMap, k: &str) -> &'a str {
    h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// Reads `GET /v1/events` for `for_` on a raw socket; returns the status line and the events.
fn read_events(s: &Server, token: Option<&str>, for_: Duration) -> (String, Vec<(String, Value)>) {
    let mut c = std::net::TcpStream::connect(s.addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        c,
        "GET /v1/events HTTP/1.1\r\nhost: {}\r\n{auth}\r\n",
        s.addr
    )
    .expect("write");
    let mut buf = Vec::new();
    let t0 = Instant::now();
    let mut chunk = [0u8; 65536];
    while t0.elapsed() < for_ {
        match c.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let mut events = Vec::new();
    // Chunked transfer: events are whole within the body; pick `event:`/`data:` pairs.
    let mut name = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("event: ") {
            name = Some(n.to_owned());
        } else if let (Some(d), Some(n)) = (line.strip_prefix("data: "), name.take()) {
            events.push((n, serde_json::from_str(d).unwrap_or(Value::Null)));
        }
    }
    (status, events)
}

fn seat<'a>(room: &'a Value, id: &str) -> &'a Value {
    room["seats"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no seat {id} in {room}"))
}

/// A pk room: `test:smpte` host, the rival an ffmpeg RTMP publisher of red. Returns the
/// publisher (killed on drop) once the rival is live.
fn pk_room(s: &Server, id: &str) -> Publisher {
    let (st, v) = s.json(
        "POST",
        "/v1/rooms",
        Some(
            json!({"id": id, "layout": "pk", "ladder": "showroom-720p", "seats": [
            {"id": "host", "source": "test:smpte"}, {"id": "rival", "source": "publish"}]}),
        ),
    );
    assert_eq!(st, 201, "{v}");
    let url = seat(&v, "rival")["ingest"]["rtmp"]
        .as_str()
        .expect("rtmp url")
        .to_owned();
    let publisher = Publisher::start(&url, "red", 660, &[]);
    wait_for("the rival publishing", || {
        let (_, v) = s.json("GET", &format!("/v1/rooms/{id}"), None);
        seat(&v, "rival")["state"] == "connected"
    });
    publisher
}

#[test]
fn console_files_and_event_stream_over_http() {
    console_built();
    let s = Server::start(|c| c.rtmp_listen = "127.0.0.1:0".into());
    let _rival = pk_room(&s, "pk");

    // The page: no-cache, strict CSP; the console's own paths get the same page.
    let (st, h, index) = s.raw("GET", "/console/", &[], None);
    assert_eq!(st, 200);
    assert_eq!(header(&h, "cache-control"), "no-cache");
    assert!(header(&h, "content-type").starts_with("text/html"));
    let csp = header(&h, "content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let index = String::from_utf8_lossy(&index).into_owned();
    let (st, _, page) = s.raw("GET", "/console/rooms/pk", &[], None);
    assert_eq!(
        (st, String::from_utf8_lossy(&page)),
        (200, index.clone().into())
    );
    let (st, h, _) = s.raw("GET", "/console", &[], None);
    assert_eq!((st, header(&h, "location")), (308, "/console/"));
    // Every script the page loads is a hashed asset cached for good; no inline script.
    let scripts: Vec<&str> = index
        .split("src=\"")
        .skip(1)
        .filter_map(|r| r.split('"').next())
        .collect();
    assert!(!scripts.is_empty(), "{index}");
    assert!(!index.contains("<script>"), "inline script: {index}");
    for src in scripts {
        assert!(src.starts_with("/console/assets/"), "{src}");
        let (st, h, body) = s.raw("GET", src, &[], None);
        assert_eq!(st, 200, "{src}");
        assert!(header(&h, "content-type").starts_with("text/javascript"));
        assert_eq!(
            header(&h, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert!(body.len() > 1000);
    }
    let (st, _, _) = s.raw("GET", "/console/assets/missing-0000.js", &[], None);
    assert_eq!(st, 404);

    // The event stream: the token is required.
    let (status, events) = read_events(&s, None, Duration::from_millis(500));
    assert!(status.contains(" 401 "), "{status}");
    assert!(events.is_empty());
    let (status, _) = read_events(
        &s,
        Some("wrong-token-0123456789"),
        Duration::from_millis(500),
    );
    assert!(status.contains(" 401 "), "{status}");

    // With it: history, the latest snapshot at once, then one a second.
    let (status, events) = read_events(&s, Some(TOKEN), Duration::from_millis(3500));
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(
        events.first().map(|e| e.0.as_str()),
        Some("history"),
        "{events:?}"
    );
    let rooms: Vec<&Value> = events
        .iter()
        .filter(|e| e.0 == "rooms")
        .map(|e| &e.1)
        .collect();
    assert!(
        (3..=6).contains(&rooms.len()),
        "{} snapshots in 3.5 s: {events:?}",
        rooms.len()
    );
    let last = rooms.last().unwrap();
    let room = &last["rooms"][0];
    assert_eq!(room["id"], "pk");
    assert_eq!(room["layout"]["name"], "pk");
    assert_eq!(room["seats"].as_array().map(Vec::len), Some(2));
    let cpu = room["stats"]["cpu_percent"].as_f64();
    assert!(
        cpu.is_some_and(|c| c > 1.0),
        "a live 720p room uses CPU: {cpu:?}"
    );
    assert!(last["process_cpu_percent"].as_f64() >= cpu);
    // Snapshots a second apart, not per subscriber or per request.
    let times: Vec<f64> = rooms.iter().filter_map(|r| r["time"].as_f64()).collect();
    for w in times.windows(2).skip(1) {
        assert!(
            (700.0..1400.0).contains(&(w[1] - w[0])),
            "snapshot interval {:?}",
            w
        );
    }
    // The same figures in the stats route.
    let (st, v) = s.json("GET", "/v1/rooms/pk/stats", None);
    assert_eq!(st, 200);
    assert!(v["cpu_percent"].as_f64().is_some(), "{v}");
    assert_eq!(v["whep_viewers"], 0);
    drop(s);
}

#[test]
fn operator_runs_a_pk_room_from_the_console() {
    console_built();
    driver::check_ready().expect("browser test prerequisites");
    let s = Server::start(|c| c.rtmp_listen = "127.0.0.1:0".into());
    let _rival = pk_room(&s, "show");
    let shots = showmix_tests::workspace_root().join("target/console-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let bad_push = "http://example.invalid/live";

    let report = driver::console(&json!({
        "mode": "e2e",
        "base": format!("http://{}", s.addr),
        "token": TOKEN,
        "wrongToken": "wrong-token-0123456789",
        "room": "show",
        "shots": shots,
        "badPushUrl": bad_push,
        "deadline": 120,
    }))
    .unwrap_or_else(|e| panic!("console.js: {e:#}"));
    let r = &report.result;
    let context = || format!("{r:#}\nconsole.js log:\n{}", report.log);
    assert_eq!(r["ok"], true, "{}", context());
    // The closed page ended its WHEP session itself (pagehide), not by the server's timeout.
    let closed = Instant::now();
    wait_for("the preview's WHEP session to end", || {
        s.json("GET", "/v1/rooms/show/stats", None).1["whep_viewers"] == 0
    });
    let whep_gone = closed.elapsed();
    assert!(
        whep_gone < Duration::from_secs(3),
        "WHEP viewer left after {whep_gone:?}"
    );

    // A wrong token: the API's own words under the form.
    let (st, _, body) = s.call("GET", "/v1/presets", Some("wrong-token-0123456789"), None);
    assert_eq!(st, 401);
    let api: Value = serde_json::from_slice(&body).expect("error json");
    assert_eq!(r["loginError"], api["message"], "{}", context());
    assert_eq!(r["tokenInUrl"], false);

    // The room in the list: state, layout, seats and CPU (the test waits for a figure).
    let row = r["roomRow"].as_str().unwrap_or_default();
    for want in ["show", "live", "pk", "%"] {
        assert!(row.contains(want), "{want:?} not in the row {row:?}");
    }

    // A second tab in the same browser shows the room from the first tab's stream.
    let row2 = r["secondTabRow"].as_str().unwrap_or_default();
    assert!(
        row2.contains("show") && row2.contains("pk"),
        "{}",
        context()
    );
    assert_eq!(r["streamsWithTwoTabs"], 1, "{}", context());

    // The preview played (WHEP on loopback) and showed the rival's red on the right, then lost
    // it with pk -> single, and got it back with pk.
    let mode = r["preview"]["mode"].as_str().unwrap_or_default();
    assert!(mode == "whep" || mode == "hls", "{}", context());
    assert!(r["preview"]["firstFrame"].as_f64().is_some_and(|t| t > 0.0));
    // Loaded straight on the room page, the preview took the offer started at load.
    assert!(r["direct"]["timeline"]["warm"].is_number(), "{}", context());
    let rgb = |v: &Value| {
        [
            v["r"].as_f64().unwrap_or(-1.0),
            v["g"].as_f64().unwrap_or(-1.0),
            v["b"].as_f64().unwrap_or(-1.0),
        ]
    };
    let is_red = |c: [f64; 3]| c[0] > 140.0 && c[1] < 100.0 && c[2] < 100.0;
    assert!(is_red(rgb(&r["before"]["right"])), "{}", context());
    assert!(
        !is_red(rgb(&r["before"]["left"])),
        "host on the left: {}",
        context()
    );
    assert!(!is_red(rgb(&r["single"]["right"])), "{}", context());
    let moved = rgb(&r["before"]["right"])
        .iter()
        .zip(rgb(&r["single"]["right"]))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(moved > 60.0, "the right half did not change: {}", context());
    assert!(is_red(rgb(&r["backToPk"]["right"])), "{}", context());

    // The editor: tile 1 resized to 0.25 x 0.5 and dragged to (0.6, 0.3), as the API says...
    assert!(r["editorError"].is_null(), "{}", context());
    let (_, room) = s.json("GET", "/v1/rooms/show", None);
    let slot = &room["layout"]["slots"][1];
    let near = |k: &str, want: f64| {
        let got = slot[k].as_f64().unwrap_or(f64::NAN);
        assert!(
            (got - want).abs() < 0.02,
            "slot 1 {k} = {got}, want {want}: {room}"
        );
    };
    near("x", 0.6);
    near("y", 0.3);
    near("w", 0.25);
    near("h", 0.5);
    assert_eq!(room["layout"]["slots"][0]["w"], 1.0 / 2.0);
    // ... and as the mix shows: red inside the new tile, the background where it was.
    let mut frame = s.snapshot("show");
    let px = |f: &showmix_tests::Frame, x: f64, y: f64| {
        f.px((x * f.width as f64) as i32, (y * f.height as f64) as i32)
    };
    wait_for("the moved tile in the snapshot", || {
        frame = s.snapshot("show");
        showmix_tests::near(px(&frame, 0.72, 0.55), [255, 0, 0], 60)
    });
    assert!(
        showmix_tests::near(px(&frame, 0.75, 0.12), [0, 0, 0], 40),
        "the vacated area is not background: {:?}",
        px(&frame, 0.75, 0.12)
    );
    assert!(!showmix_tests::near(
        px(&frame, 0.55, 0.12),
        [255, 0, 0],
        60
    ));

    // Beauty: six steps of the host's smoothness slider, applied through the API.
    assert_eq!(r["smoothnessBefore"], 0.0);
    let host = seat(&room, "host");
    let smooth = host["beauty"]["smoothness"].as_f64().unwrap_or(-1.0);
    assert!(
        (smooth - 0.3).abs() < 1e-6,
        "host beauty {}",
        host["beauty"]
    );
    assert_eq!(seat(&room, "rival")["beauty"]["smoothness"], 0.0);

    // An API error next to the control that caused it, in the API's words.
    let (st, v) = s.json(
        "POST",
        "/v1/rooms/show/outputs",
        Some(json!({"kind": "rtmp", "id": "bad-push", "url": bad_push})),
    );
    assert_eq!(st, 422, "{v}");
    assert_eq!(r["outputError"], v["message"], "{}", context());
    assert_eq!(r["outputErrorInForm"], 1);
    assert!(
        room["outputs"].as_array().is_some_and(Vec::is_empty),
        "{room}"
    );

    for shot in [
        "login-error.png",
        "rooms.png",
        "room.png",
        "editor.png",
        "outputs.png",
    ] {
        let len = std::fs::metadata(shots.join(shot)).map(|m| m.len());
        assert!(
            len.as_ref().is_ok_and(|l| *l > 5000),
            "screenshot {shot}: {len:?}"
        );
    }
    eprintln!(
        "console: preview {mode}, first frame {} ms after load, pk -> single seen in {} ms, \
         WHEP session gone {whep_gone:?} after the browser; screenshots in {}; page errors: {}",
        r["preview"]["firstFrame"],
        r["singleMs"],
        shots.display(),
        r["consoleErrors"]
    );
    drop(s);
}
