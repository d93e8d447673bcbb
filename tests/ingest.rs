//! Live ingest end to end: real ffmpeg publishers over RTMP and SRT on loopback into the seats
//! of a room served in this process; the mix read back through snapshots, stats and outputs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use showmix_tests::publisher::Publisher;
use showmix_tests::server::*;
use showmix_tests::*;

fn server(hold_ms: u64) -> Server {
    Server::start(|c| {
        c.rtmp_listen = "127.0.0.1:0".into();
        c.srt_listen = "127.0.0.1:0".into();
        c.hold_last_frame_ms = hold_ms;
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

fn seat_state(s: &Server, room: &str, id: &str) -> String {
    let v = s.json("GET", &format!("/v1/rooms/{room}"), None).1;
    seat(&v, id)["state"]
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

#[test]
fn rtmp_and_srt_publishers_appear_in_pk() {
    let s = server(1000);
    let room = create(
        &s,
        json!({"id": "pk1", "layout": "pk", "seats": [
            {"id": "host", "source": "publish"}, {"id": "guest", "source": "publish"}]}),
    );
    let host = seat(&room, "host");
    let guest = seat(&room, "guest");
    assert_eq!(host["state"], "waiting");
    let rtmp = host["ingest"]["rtmp"]
        .as_str()
        .expect("rtmp url")
        .to_owned();
    let srt = guest["ingest"]["srt"].as_str().expect("srt url").to_owned();
    assert!(
        rtmp.starts_with("rtmp://127.0.0.1:") && rtmp.contains("/pk1/host?key="),
        "{rtmp}"
    );
    assert!(srt.contains("streamid="), "{srt}");
    assert_eq!(
        host["ingest"]["rtmp_server"].as_str().unwrap().to_owned()
            + "/"
            + host["ingest"]["rtmp_stream_key"].as_str().unwrap(),
        rtmp,
        "OBS server + stream key make the same URL"
    );
    let _a = Publisher::start(&rtmp, "red", 440, &[]);
    let _b = Publisher::start(&srt, "blue", 880, &[]);
    wait_for("both seats connected", || {
        seat_state(&s, "pk1", "host") == "connected"
            && seat_state(&s, "pk1", "guest") == "connected"
    });
    wait_for("both colours in the pk mix", || {
        near(tile_colour(&s, "pk1", "pk", 0), rgb_of("red"), 48)
            && near(tile_colour(&s, "pk1", "pk", 1), rgb_of("blue"), 48)
    });
    wait_for("audio levels", || {
        let st = s.json("GET", "/v1/rooms/pk1/stats", None).1;
        st["seats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["audio_level_dbfs"].as_f64().unwrap_or(-120.0) > -40.0)
    });
    wait_for("input bitrates", || {
        let st = s.json("GET", "/v1/rooms/pk1/stats", None).1;
        st["seats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["input_bitrate_kbps"].as_f64().unwrap_or(0.0) > 20.0)
    });
    let v = s.json("GET", "/v1/rooms/pk1", None).1;
    assert_eq!(seat(&v, "host")["ingest"]["publisher"], "rtmp");
    assert_eq!(seat(&v, "guest")["ingest"]["publisher"], "srt");
    assert!(metric(&s, "showmix_ingest_publishes_total") >= 2.0);
}

#[test]
fn a_dropped_publisher_shows_the_placeholder_and_comes_back_by_itself() {
    let s = server(300);
    let room = create(
        &s,
        json!({"id": "r", "layout": "pk", "seats": [
            {"id": "host", "source": "publish"}, {"id": "other", "source": "test:green"}]}),
    );
    let url = seat(&room, "host")["ingest"]["rtmp"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut p = Publisher::start(&url, "red", 440, &[]);
    wait_for("red tile", || {
        near(tile_colour(&s, "r", "pk", 0), rgb_of("red"), 48)
    });
    let frames = |s: &Server| {
        s.json("GET", "/v1/rooms/r/stats", None).1["mixed_frames"]
            .as_u64()
            .unwrap()
    };
    let before = frames(&s);
    let _ = p.0.kill();
    let _ = p.0.wait();
    let killed = Instant::now();
    // Within 1 s: the placeholder (the background) in the tile, the other seat untouched.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        near(tile_colour(&s, "r", "pk", 0), rgb_of("black"), 48),
        "placeholder after {:?}",
        killed.elapsed()
    );
    assert!(near(tile_colour(&s, "r", "pk", 1), rgb_of("green"), 48));
    assert!(["stalled", "waiting"].contains(&seat_state(&s, "r", "host").as_str()));
    // The mix kept its frame rate through the drop.
    let after = frames(&s);
    let secs = killed.elapsed().as_secs_f64() + 0.2;
    assert!(
        after - before >= (secs * 30.0 * 0.8) as u64,
        "mixed {} frames in ~{secs:.1} s",
        after - before
    );
    // The publisher comes back: no API call, the tile comes back.
    let _p2 = Publisher::start(&url, "red", 440, &[]);
    wait_for("red again", || {
        near(tile_colour(&s, "r", "pk", 0), rgb_of("red"), 48)
    });
    let v = s.json("GET", "/v1/rooms/r", None).1;
    assert_eq!(seat(&v, "host")["ingest"]["publishes"], 2);
    assert!(seat(&v, "host")["ingest"]["stalls"].as_u64().unwrap() >= 1);
    assert!(metric(&s, "showmix_seat_stalls_total{room=\"r\",seat=\"host\"}") >= 1.0);
}

fn refused(url: &str, s: &Server, reason: &str) {
    let before = metric(
        s,
        &format!("showmix_ingest_refused_total{{protocol=\"rtmp\",reason=\"{reason}\"}}"),
    );
    let mut p = Publisher::start(url, "red", 440, &[]);
    let status = p
        .wait_exit(Duration::from_secs(15))
        .expect("ffmpeg gives up when refused");
    assert!(!status.success());
    let after = metric(
        s,
        &format!("showmix_ingest_refused_total{{protocol=\"rtmp\",reason=\"{reason}\"}}"),
    );
    assert!(after > before, "refusal {reason} counted");
}

#[test]
fn wrong_key_unknown_room_and_unknown_seat_are_refused() {
    let s = server(1000);
    let room = create(
        &s,
        json!({"id": "k", "seats": [{"id": "host", "source": "publish"}]}),
    );
    let url = seat(&room, "host")["ingest"]["rtmp"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = s.rtmp.unwrap().port();
    refused(&url.replace("key=", "key=x"), &s, "bad_key");
    refused(
        &format!("rtmp://127.0.0.1:{port}/nope/host?key=abc"),
        &s,
        "unknown_room",
    );
    refused(
        &format!("rtmp://127.0.0.1:{port}/k/ghost?key=abc"),
        &s,
        "unknown_seat",
    );
    refused(&format!("rtmp://127.0.0.1:{port}/k/host"), &s, "malformed");
    // Rotating the key: the old one stops working.
    let (st, v) = s.json("POST", "/v1/rooms/k/seats/host/key", None);
    assert_eq!(st, 200, "{v}");
    assert_ne!(v["key"], seat(&room, "host")["ingest"]["key"]);
    refused(&url, &s, "bad_key");
    let _p = Publisher::start(v["rtmp"].as_str().unwrap(), "red", 440, &[]);
    wait_for("new key works", || {
        seat_state(&s, "k", "host") == "connected"
    });
    assert_eq!(s.json("GET", "/v1/rooms/k", None).1["state"], "live");
}

#[test]
fn a_second_publisher_on_a_live_seat_is_refused() {
    let s = server(1000);
    let room = create(
        &s,
        json!({"id": "b", "seats": [{"id": "host", "source": "publish"}]}),
    );
    let url = seat(&room, "host")["ingest"]["rtmp"]
        .as_str()
        .unwrap()
        .to_owned();
    let _first = Publisher::start(&url, "red", 440, &[]);
    wait_for("connected", || seat_state(&s, "b", "host") == "connected");
    refused(&url, &s, "busy");
    // The first publisher is still the one in the tile.
    assert!(near(tile_colour(&s, "b", "single", 0), rgb_of("red"), 48));
}

#[test]
fn an_unsupported_codec_fails_the_seat_not_the_room() {
    let s = server(1000);
    let room = create(
        &s,
        json!({"id": "c", "layout": "pk", "seats": [
            {"id": "host", "source": "publish"}, {"id": "other", "source": "test:green"}]}),
    );
    let url = seat(&room, "host")["ingest"]["rtmp"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-v",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "color=c=red:s=320x240:r=30",
        "-t",
        "20",
    ])
    .args(["-c:v", "flv1", "-an", "-f", "flv", &url])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _p = Publisher(cmd.spawn().unwrap());
    wait_for("seat failed", || seat_state(&s, "c", "host") == "failed");
    let v = s.json("GET", "/v1/rooms/c", None).1;
    let reason = seat(&v, "host")["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("unsupported codec video/x-flash-video"),
        "{reason}"
    );
    assert!(
        reason.contains("allowed: H.264 video and AAC audio over RTMP"),
        "{reason}"
    );
    assert_eq!(v["state"], "live");
    assert!(near(tile_colour(&s, "c", "pk", 1), rgb_of("green"), 48));
}

#[test]
fn a_stream_without_keyframes_is_cut_off() {
    let s = server(1000);
    let room = create(
        &s,
        json!({"id": "n", "seats": [{"id": "host", "source": "publish"}]}),
    );
    let url = seat(&room, "host")["ingest"]["rtmp"]
        .as_str()
        .unwrap()
        .to_owned();
    // Drop every IDR slice (NAL type 5): the decoder never gets a picture to start from.
    let mut p = Publisher::start(&url, "red", 440, &["-bsf:v", "filter_units=remove_types=5"]);
    let status = p
        .wait_exit(Duration::from_secs(20))
        .expect("cut off within 20 s");
    assert!(!status.success());
    let v = s.json("GET", "/v1/rooms/n", None).1;
    let reason = seat(&v, "host")["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("no decodable video"), "{v}");
    assert_eq!(v["state"], "live");
}

#[test]
fn garbage_on_the_ingest_ports_does_not_reach_the_room() {
    use std::io::Write;
    let s = server(1000);
    create(
        &s,
        json!({"id": "g", "seats": [{"id": "host", "source": "test:red"}]}),
    );
    let frames = |s: &Server| {
        s.json("GET", "/v1/rooms/g/stats", None).1["mixed_frames"]
            .as_u64()
            .unwrap()
    };
    let before = frames(&s);
    for i in 0..20u32 {
        if let Ok(mut t) = std::net::TcpStream::connect(s.rtmp.unwrap()) {
            let junk: Vec<u8> = (0..4096u32)
                .map(|j| ((i * 31 + j * 7) % 256) as u8)
                .collect();
            let _ = t.write_all(&junk);
        }
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = u.send_to(&[0xff; 1316], s.srt.unwrap());
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(frames(&s) >= before + 30, "the room kept mixing");
    assert_eq!(s.json("GET", "/v1/rooms/g", None).1["state"], "live");
    assert!(metric(&s, "showmix_ingest_refused_total{protocol=\"rtmp\"") >= 1.0);
}

/// Flash + beep every second from an RTMP publisher; at the output, flash onsets and beep
/// onsets line up within ±40 ms.
#[test]
fn audio_stays_in_sync_with_video() {
    let s = server(1000);
    let out = s.data.path().join("sync");
    let room = create(
        &s,
        json!({"id": "av", "seats": [{"id": "host", "source": "publish"}],
               "outputs": [{"kind": "file", "dir": out}]}),
    );
    let url = seat(&room, "host")["ingest"]["rtmp"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .arg("color=c=black:s=320x240:r=30,geq=lum='if(lt(mod(T\\,1)\\,0.1)\\,235\\,16)':cb=128:cr=128")
        .args(["-f", "lavfi", "-i"])
        // Evaluated per sample: the beep starts on the exact sample of each second.
        .arg("aevalsrc=exprs='if(lt(mod(t\\,1)\\,0.1)\\,0.5*sin(2*PI*1000*t)\\,0)':s=48000:c=stereo")
        .args(["-t", "8", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30"])
        .args(["-c:a", "aac", "-b:a", "96k", "-f", "flv", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut p = Publisher(cmd.spawn().unwrap());
    p.wait_exit(Duration::from_secs(20))
        .expect("publisher finishes");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.json("DELETE", "/v1/rooms/av", None).0, 204);
    let file = out.join("360p.mp4");
    let flashes = flash_onsets(&file);
    let beeps = beep_onsets(&file);
    assert!(flashes.len() >= 5, "flashes {flashes:?}");
    assert!(beeps.len() >= 5, "beeps {beeps:?}");
    let mut offsets = Vec::new();
    for f in &flashes {
        if let Some(b) = beeps
            .iter()
            .min_by(|a, b| (*a - f).abs().total_cmp(&(*b - f).abs()))
            && (b - f).abs() < 0.5
        {
            offsets.push(b - f);
        }
    }
    assert!(offsets.len() >= 5, "{flashes:?} {beeps:?}");
    let mean = offsets.iter().sum::<f64>() / offsets.len() as f64;
    eprintln!("A/V offsets (audio - video, s): {offsets:?}, mean {mean:.3}");
    assert!(
        mean.abs() <= 0.040,
        "audio is {:.0} ms off video",
        mean * 1000.0
    );
}

/// Times (s) where the picture turns bright.
fn flash_onsets(file: &std::path::Path) -> Vec<f64> {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-show_entries",
            "frame=pts_time:frame_tags=lavfi.signalstats.YAVG",
            "-of",
            "csv=p=0",
        ])
        .arg(format!("movie={},signalstats", file.display())))
    .unwrap();
    let mut onsets = Vec::new();
    let mut bright = false;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = line.split(',');
        let (Some(t), Some(y)) = (it.next(), it.next()) else {
            continue;
        };
        let (Ok(t), Ok(y)) = (t.parse::<f64>(), y.parse::<f64>()) else {
            continue;
        };
        if y > 120.0 && !bright {
            onsets.push(t);
        }
        bright = y > 120.0;
    }
    onsets
}

/// Times (s) where the audio turns loud, at 5 ms resolution.
fn beep_onsets(file: &std::path::Path) -> Vec<f64> {
    let out = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-vn", "-ac", "1", "-ar", "48000", "-f", "s16le", "-"]))
    .unwrap();
    let samples: Vec<i16> = out
        .stdout
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let first_pts = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a",
            "-show_entries",
            "stream=start_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file))
    .ok()
    .and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<f64>()
            .ok()
    })
    .unwrap_or(0.0);
    let win = 240;
    let mut onsets = Vec::new();
    let mut loud = false;
    for (i, w) in samples.chunks(win).enumerate() {
        let rms =
            (w.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / w.len() as f64).sqrt();
        let now = rms > 1000.0;
        if now && !loud {
            onsets.push(first_pts + (i * win) as f64 / 48_000.0);
        }
        loud = now;
    }
    onsets
}
