//! WebRTC benchmarks, measured from outside: headless Chromium (tests/browser/rtc.js) publishes
//! over WHIP and watches over WHEP; an in-process `showmix serve` in between.
//!
//! 1. Glass to glass: the publisher page stamps the wall clock into every frame it draws
//!    (tests/browser/stamp.js) and sends it over WHIP into a `single` room; a viewer page plays
//!    the room over WHEP and reads the stamp of every presented frame
//!    (`requestVideoFrameCallback`): latency = wall clock at presentation - stamp. Median and
//!    p95; target median <= 300 ms, p95 <= 400 ms. In the same run, with the same publisher
//!    still on air, hls.js plays the room's LL-HLS and reads the same stamps: the ratio.
//!    The budget per stage comes from probes in the room reading the same stamp: decoded at
//!    the seat (browser capture + encode + network + jitter buffer + depayload + decode),
//!    mixed (compositor), encoded (top rung's x264), presented (packetize + network + the
//!    browser's jitter buffer, decode and render).
//! 2. WHIP join: offer POSTed (the page's clock) -> first mixed frame showing the seat's picture
//!    (a probe on the compositor's output reading the stamp); 10 joins; target median <= 300 ms.
//! 3. Viewer cost: this process's CPU (the whole server) with a 720p30 room and 0, 10 and 50
//!    WHEP viewers (webrtcbin peers in a child process that take the RTP and drop it), 15 s
//!    each; cores per added viewer; target <= 0.005.
//!
//! Run: `cargo bench -p showmix-benches --bench webrtc` (about 3 minutes; `SHOWMIX_BENCH_QUICK=1`
//! for a shorter run; `SHOWMIX_BENCH_PARTS=g2g,join,cost` picks parts). Each part's room is
//! ended before the next starts. Writes `target/bench/webrtc.json`.

#[path = "../tests/browser/driver.rs"]
#[allow(dead_code)] // each user takes the part it needs
mod driver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use showmix_tests::probes::{Probes, lock, room_pipeline};
use showmix_tests::server::Server;
use showmix_tests::stamp::{CENTRE, Region};

const VIEWERS_ENV: &str = "SHOWMIX_BENCH_VIEWERS";

fn quick() -> bool {
    std::env::var_os("SHOWMIX_BENCH_QUICK").is_some()
}

fn quantile(v: &[f64], p: f64) -> f64 {
    driver::quantile(v, p)
}

fn stats(v: &[f64]) -> Value {
    json!({"n": v.len(), "median": quantile(v, 0.5), "p95": quantile(v, 0.95),
           "min": quantile(v, 0.0), "max": quantile(v, 1.0)})
}

fn seat_ingest(s: &Server, room: &str, seat: &str) -> Result<Value> {
    let (_, v) = s.json("GET", &format!("/v1/rooms/{room}"), None);
    v["seats"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == seat))
        .map(|x| x["ingest"].clone())
        .context("seat")
}

fn create(s: &Server, body: Value) -> Result<Value> {
    let (st, v) = s.json("POST", "/v1/rooms", Some(body));
    ensure!(st == 201, "create room: {v}");
    Ok(v)
}

fn frames_latency(frames: &Value) -> Vec<f64> {
    frames
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["stampLatencyMs"].as_f64())
                .collect()
        })
        .unwrap_or_default()
}

fn glass_to_glass(s: &Server) -> Result<Value> {
    let v = create(
        s,
        json!({"id": "g2g", "layout": "single", "ladder": "showroom-720p",
               "seats": [{"id": "host", "source": "publish"}]}),
    )?;
    let probes = Arc::new(Probes::default());
    probes.attach(&room_pipeline(s, "g2g")?, "720p")?;
    let ingest = seat_ingest(s, "g2g", "host")?;
    let seconds = if quick() { 6 } else { 15 };
    let region: Region = CENTRE;
    let plan = json!({
        "deadline": 150,
        "publishers": [{"whip": ingest["whip"], "key": ingest["key"], "source": "stamp", "region": region.json()}],
        "viewers": [{"whep": v["playback"]["whep"], "stamp": region.json()}],
        "warmup": 3,
        "seconds": seconds,
        "hls": [{"src": v["playback"]["hls"], "stamp": region.json(), "warmup": 6, "seconds": seconds}],
    });
    // The probes' figures: cleared once the publisher is on air and the viewer watches (the
    // stages inside the room do not depend on who watches), read at the end.
    let p2 = probes.clone();
    let clearer = std::thread::spawn(move || {
        // rtc.js: browser start, publisher connect, viewer first frame, warmup (3 s).
        std::thread::sleep(Duration::from_secs(6));
        p2.clear();
    });
    let report = driver::rtc(&plan)?;
    let _ = clearer.join();
    let r = &report.result;
    ensure!(r["ok"] == true, "rtc.js: {}\n{}", r["error"], report.log);
    let webrtc = frames_latency(&r["viewers"][0]["frames"]);
    let hls: Vec<f64> = r["hls"][0]["stamps"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["ms"].as_f64()).collect())
        .unwrap_or_default();
    ensure!(
        webrtc.len() > 30,
        "too few stamps read over WebRTC: {}",
        webrtc.len()
    );
    ensure!(
        hls.len() > 30,
        "too few stamps read over LL-HLS: {}",
        hls.len()
    );
    let seat = lock(&probes.seat).clone();
    let mixed = lock(&probes.mixed).clone();
    let encoded = lock(&probes.encoded).clone();
    let (ms, mm, me, mp) = (
        quantile(&seat, 0.5),
        quantile(&mixed, 0.5),
        quantile(&encoded, 0.5),
        quantile(&webrtc, 0.5),
    );
    let publisher = &r["publishers"][0]["stats"]["outbound-rtp-video"];
    let viewer = &r["viewers"][0]["stats"]["inbound-rtp-video"];
    let jb = viewer["jitterBufferDelay"].as_f64().unwrap_or(f64::NAN)
        / viewer["jitterBufferEmittedCount"]
            .as_f64()
            .unwrap_or(f64::NAN)
        * 1000.0;
    println!(
        "(1) glass to glass, publisher clock -> presented frame (Chromium WHIP -> showmix -> Chromium WHEP)"
    );
    println!(
        "    WebRTC: median {:.0} ms  p95 {:.0}  (n={}; target median <= 300, p95 <= 400)",
        mp,
        quantile(&webrtc, 0.95),
        webrtc.len()
    );
    println!(
        "    LL-HLS (hls.js, same room, same publisher): median {:.0} ms  p95 {:.0}  (n={})",
        quantile(&hls, 0.5),
        quantile(&hls, 0.95),
        hls.len()
    );
    println!("    WebRTC / LL-HLS: {:.2}", mp / quantile(&hls, 0.5));
    println!("    budget (medians, each from the publisher's stamp):");
    println!(
        "      capture -> decoded at the seat   {ms:>5.0} ms  (browser encode, network, jitter buffer, depayload, decode)"
    );
    println!(
        "      seat -> mixed                    {:>5.0} ms  (compositor deadline, lead)",
        mm - ms
    );
    println!(
        "      mixed -> encoded (720p)          {:>5.0} ms  (x264 zerolatency)",
        me - mm
    );
    println!(
        "      encoded -> presented             {:>5.0} ms  (payload, network, browser jitter buffer ~{jb:.0} ms, decode, render)",
        mp - me
    );
    println!(
        "    publisher sent {}x{}, viewer got {}x{}",
        publisher["frameWidth"],
        publisher["frameHeight"],
        viewer["frameWidth"],
        viewer["frameHeight"]
    );
    Ok(json!({
        "webrtc_ms": stats(&webrtc), "llhls_ms": stats(&hls),
        "ratio_webrtc_over_llhls": mp / quantile(&hls, 0.5),
        "budget_ms": {"capture_to_seat": ms, "seat_to_mixed": mm - ms, "mixed_to_encoded": me - mm,
                      "encoded_to_presented": mp - me, "viewer_jitter_buffer": jb},
        "probes_ms": {"seat": stats(&seat), "mixed": stats(&mixed), "encoded": stats(&encoded)},
        "publisher": publisher, "viewer": viewer,
    }))
}

fn joins(s: &Server) -> Result<Value> {
    create(
        s,
        json!({"id": "join", "layout": "single", "ladder": "showroom-720p",
               "seats": [{"id": "host", "source": "publish"}]}),
    )?;
    let probes = Arc::new(Probes::default());
    probes.attach(&room_pipeline(s, "join")?, "720p")?;
    let ingest = seat_ingest(s, "join", "host")?;
    let n = if quick() { 4 } else { 10 };
    let mut joins = Vec::new();
    let mut answers = Vec::new();
    for i in 0..n {
        probes.clear();
        let plan = json!({
            "deadline": 60,
            "publishers": [{"whip": ingest["whip"], "key": ingest["key"], "source": "stamp", "region": CENTRE.json()}],
            "warmup": 0, "seconds": 1,
        });
        let report = driver::rtc(&plan)?;
        let r = &report.result;
        ensure!(r["ok"] == true, "join {i}: {}\n{}", r["error"], report.log);
        let st = &r["publishers"][0]["state"];
        let posted = st["postedWall"].as_f64().context("postedWall")?;
        let mixed = lock(&probes.first_mixed).context("no mixed frame with the stamp")? as f64;
        joins.push(mixed - posted);
        answers.push(st["answerMs"].as_f64().unwrap_or(f64::NAN));
        // Gone before the next join: the tile back to the placeholder.
        let by = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, v) = s.json("GET", "/v1/rooms/join", None);
            let state = v["seats"][0]["state"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if state == "waiting" {
                break;
            }
            if Instant::now() > by {
                bail!("the seat did not free up after join {i}: {state}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    println!(
        "(2) WHIP join: offer POSTed -> first mixed frame with the seat's picture ({n} joins)"
    );
    println!(
        "    median {:.0} ms  p95 {:.0}  (target median <= 300); of which the POST's answer: median {:.0} ms",
        quantile(&joins, 0.5),
        quantile(&joins, 0.95),
        quantile(&answers, 0.5)
    );
    Ok(json!({"join_ms": stats(&joins), "answer_ms": stats(&answers)}))
}

fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// The viewers' child process: `n` light WHEP viewers until stdin closes.
fn viewers_child(n: usize, url: &str) -> Result<()> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(showmix_tests::webrtc::WhepClient::start_with(
            url, None, false,
        )?);
    }
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let got: Vec<u64> = v.iter().map(|c| c.frames()).collect();
    println!("PACKETS {}", serde_json::to_string(&got)?);
    Ok(())
}

fn viewer_cost(s: &Server) -> Result<Value> {
    let v = create(
        s,
        json!({"id": "cost", "layout": "single", "ladder": "showroom-720p",
               "seats": [{"id": "a", "source": "test:ball"}]}),
    )?;
    let url = v["playback"]["whep"].as_str().context("whep")?.to_owned();
    let window = Duration::from_secs(if quick() { 6 } else { 15 });
    let counts: &[usize] = if quick() { &[0, 10] } else { &[0, 10, 50] };
    std::thread::sleep(Duration::from_secs(3));
    let mut results = Vec::new();
    for &n in counts {
        let mut child = None;
        if n > 0 {
            let c = std::process::Command::new(std::env::current_exe()?)
                .env(VIEWERS_ENV, n.to_string())
                .env("SHOWMIX_BENCH_WHEP", &url)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            child = Some(c);
            // Every viewer connected and receiving.
            let by = Instant::now() + Duration::from_secs(60);
            loop {
                let (_, _, text) = s.call("GET", "/metrics", None, None);
                let text = String::from_utf8_lossy(&text).into_owned();
                let watching = text
                    .lines()
                    .find(|l| l.starts_with("showmix_room_webrtc_viewers{room=\"cost\"}"))
                    .and_then(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
                    .unwrap_or(0);
                if watching >= n {
                    break;
                }
                ensure!(Instant::now() < by, "only {watching} of {n} viewers joined");
                std::thread::sleep(Duration::from_millis(200));
            }
            std::thread::sleep(Duration::from_secs(3));
        }
        let (c0, t0) = (cpu_seconds(), Instant::now());
        std::thread::sleep(window);
        let cores = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64();
        let mut packets = Vec::new();
        if let Some(mut c) = child {
            use std::io::{Read, Write};
            if let Some(mut stdin) = c.stdin.take() {
                let _ = stdin.write_all(b"\n");
            }
            let mut out = String::new();
            if let Some(mut o) = c.stdout.take() {
                let _ = o.read_to_string(&mut out);
            }
            let _ = c.wait();
            if let Some(line) = out.lines().find_map(|l| l.strip_prefix("PACKETS ")) {
                packets = serde_json::from_str::<Vec<u64>>(line).unwrap_or_default();
            }
            let starved = packets.iter().filter(|p| **p < 100).count();
            ensure!(
                packets.len() == n && starved == 0,
                "{starved} of {n} viewers got (almost) no video: {packets:?}"
            );
        }
        println!("    {n:>3} viewers: server {cores:.3} cores");
        results.push((n, cores, packets));
    }
    let base = results[0].1;
    let per: Vec<Value> = results
        .iter()
        .skip(1)
        .map(|(n, c, p)| {
            json!({"viewers": n, "cores": c, "cores_per_viewer": (c - base) / *n as f64,
                   "video_packets_min": p.iter().min(), "video_packets_max": p.iter().max()})
        })
        .collect();
    for p in &per {
        println!(
            "    per added viewer with {}: {:.4} cores (target <= 0.005)",
            p["viewers"],
            p["cores_per_viewer"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(json!({"baseline_cores": base, "with_viewers": per}))
}

fn main() -> Result<()> {
    if let Ok(n) = std::env::var(VIEWERS_ENV) {
        let url = std::env::var("SHOWMIX_BENCH_WHEP").context("SHOWMIX_BENCH_WHEP")?;
        return viewers_child(n.parse()?, &url);
    }
    driver::check_ready()?;
    let s = Server::start(|c| {
        c.hold_last_frame_ms = 0;
        c.max_webrtc_sessions = 200;
    });
    // Each part runs alone on the machine: its room is ended before the next part starts.
    let run = |part: &str| {
        std::env::var("SHOWMIX_BENCH_PARTS")
            .map(|v| v.split(',').any(|p| p.trim() == part))
            .unwrap_or(true)
    };
    let end = |room: &str| {
        s.json("DELETE", &format!("/v1/rooms/{room}"), None);
    };
    let mut g2g = Value::Null;
    if run("g2g") {
        g2g = glass_to_glass(&s)?;
        end("g2g");
    }
    let mut join = Value::Null;
    if run("join") {
        join = joins(&s)?;
        end("join");
    }
    let mut cost = Value::Null;
    if run("cost") {
        println!(
            "(3) viewer cost: the server's CPU (this process) with a 720p30 room and N WHEP viewers"
        );
        cost = viewer_cost(&s)?;
        end("cost");
    }
    let out = json!({"glass_to_glass": g2g, "whip_join": join, "viewer_cost": cost,
                     "loadavg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()});
    let dir = showmix_tests::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("webrtc.json"), serde_json::to_string_pretty(&out)?)?;
    println!("wrote target/bench/webrtc.json");
    Ok(())
}
