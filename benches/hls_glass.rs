//! LL-HLS glass to glass, the whole path a viewer sees: a publisher stamps the wall clock into
//! every frame as its live source makes it (tests/support/probes.rs: GStreamer, x264
//! `zerolatency`, AAC) and publishes over SRT or RTMP into a `single` room of an in-process
//! `showmix serve`; hls.js in headless Chromium (tests/browser/rtc.js + player.html, configured
//! as the README tells users) plays the room's LL-HLS and reads the stamp of every presented
//! frame (`requestVideoFrameCallback`): latency = wall clock at presentation - stamp. Median
//! and p95 per protocol; target median <= 1.0 s.
//!
//! The budget per stage comes from probes in the room reading the same stamp: decoded at the
//! seat (publisher encode + network + ingest buffering + demux + decode), mixed (compositor),
//! encoded (top rung's x264), and the rest (fMP4 part, playlist, hls.js's hold-back behind the
//! live edge, its buffer, decode and render). hls.js's own latency estimate is reported beside.
//!
//! Run: `cargo bench -p showmix-benches --bench hls_glass` (about a minute per protocol;
//! `SHOWMIX_BENCH_PARTS=srt,rtmp` picks protocols, `SHOWMIX_BENCH_SECONDS` the sampling time).
//! Writes `target/bench/hls_glass.json`.

#[path = "../tests/browser/driver.rs"]
#[allow(dead_code)] // each user takes the part it needs
mod driver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use showmix_tests::probes::{Probes, StampPublisher, lock, room_pipeline};
use showmix_tests::server::Server;
use showmix_tests::stamp::CENTRE;

fn stats(v: &[f64]) -> Value {
    json!({"n": v.len(), "median": driver::quantile(v, 0.5), "p95": driver::quantile(v, 0.95),
           "min": driver::quantile(v, 0.0), "max": driver::quantile(v, 1.0)})
}

fn seat(s: &Server, room: &str) -> Result<Value> {
    let (_, v) = s.json("GET", &format!("/v1/rooms/{room}"), None);
    v["seats"]
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .context("seat")
}

fn run(s: &Server, proto: &str, seconds: u64) -> Result<Value> {
    let room = format!("g2g-{proto}");
    let (st, v) = s.json(
        "POST",
        "/v1/rooms",
        Some(
            json!({"id": room, "layout": "single", "ladder": "showroom-720p",
                    "seats": [{"id": "host", "source": "publish"}]}),
        ),
    );
    ensure!(st == 201, "create room: {v}");
    let ingest = seat(s, &room)?["ingest"].clone();
    let key = ingest["key"].as_str().context("key")?;
    let publisher = match proto {
        "rtmp" => StampPublisher::start(ingest["rtmp"].as_str().context("rtmp url")?, None, 0)?,
        "srt" => {
            let addr = s.srt.context("srt listener")?;
            let id = format!("#!::r={room}/host,m=publish,s={key}");
            // 120 ms, what tests/support/publisher.rs and common OBS/ffmpeg setups use.
            StampPublisher::start(&format!("srt://{addr}"), Some(&id), 120)?
        }
        other => bail!("unknown protocol {other} (allowed: srt, rtmp)"),
    };
    let t = Instant::now();
    while seat(s, &room)?["state"] != "connected" {
        if let Some(e) = publisher.error() {
            bail!("{proto} publisher: {e}");
        }
        ensure!(
            t.elapsed() < Duration::from_secs(15),
            "{proto} seat not connected within 15 s: {}",
            seat(s, &room)?
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let probes = Arc::new(Probes::default());
    probes.attach(&room_pipeline(s, &room)?, "720p")?;
    let players: Vec<Value> = [false, true]
        .iter()
        .map(|seek| {
            json!({"src": v["playback"]["hls"], "stamp": CENTRE.json(), "warmup": 6,
                   "seconds": seconds, "config": {"maxLiveSyncPlaybackRate": 1.5},
                   "seekToLive": seek})
        })
        .collect();
    let plan = json!({"deadline": 2 * seconds + 80, "hls": players});
    let report = driver::rtc(&plan)?;
    let r = &report.result;
    ensure!(r["ok"] == true, "rtc.js: {}\n{}", r["error"], report.log);
    let (seat_ms, mixed, encoded) = (
        lock(&probes.seat).clone(),
        lock(&probes.mixed).clone(),
        lock(&probes.encoded).clone(),
    );
    let med = |v: &[f64]| driver::quantile(v, 0.5);
    println!(
        "  {proto}: in the room (medians): capture -> decoded at the seat {:.0} ms | -> mixed \
         +{:.0} | -> encoded 720p +{:.0}",
        med(&seat_ms),
        med(&mixed) - med(&seat_ms),
        med(&encoded) - med(&mixed),
    );
    let mut players = Vec::new();
    for (hls, name) in r["hls"].as_array().into_iter().flatten().zip([
        "hls.js as configured in the README, without the seek",
        "hls.js + one seek to liveSyncPosition after start (the README's player)",
    ]) {
        let g2g: Vec<f64> = hls["stamps"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["ms"].as_f64()).collect())
            .unwrap_or_default();
        ensure!(g2g.len() > 30, "{name}: too few stamps read: {}", g2g.len());
        let sample = |key: &str| -> Vec<f64> {
            hls["samples"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x[key].as_f64()).collect())
                .unwrap_or_default()
        };
        let estimate: Vec<f64> = sample("latency").iter().map(|s| s * 1000.0).collect();
        let (target, forward) = (sample("targetLatency"), sample("forwardBuffer"));
        let total = med(&g2g);
        println!(
            "    {name}: glass to glass median {:.0} ms  p95 {:.0}  (n={}); -> presented +{:.0} \
             (hls.js: latency estimate {:.0} ms, target {:.0} ms, forward buffer {:.0} ms, \
             stalls {}, seeks {})",
            total,
            driver::quantile(&g2g, 0.95),
            g2g.len(),
            total - med(&encoded),
            med(&estimate),
            med(&target) * 1000.0,
            med(&forward) * 1000.0,
            hls["waiting"],
            hls["liveSeeks"],
        );
        players.push(json!({
            "player": name,
            "glass_to_glass_ms": stats(&g2g),
            "hlsjs_latency_estimate_ms": stats(&estimate),
            "hlsjs_target_latency_s": stats(&target),
            "hlsjs_forward_buffer_s": stats(&forward),
            "startup_ms": hls["startupMs"],
            "stalls": hls["waiting"],
            "player_errors": hls["errors"],
        }));
    }
    drop(publisher);
    let (st, v) = s.json("DELETE", &format!("/v1/rooms/{room}"), None);
    ensure!((200..300).contains(&st), "delete room: {st} {v}");
    Ok(json!({
        "players": players,
        "stages_ms": {"seat": stats(&seat_ms), "mixed": stats(&mixed), "encoded": stats(&encoded)},
    }))
}

fn main() -> Result<()> {
    driver::check_ready()?;
    let seconds = std::env::var("SHOWMIX_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let parts = std::env::var("SHOWMIX_BENCH_PARTS").unwrap_or_else(|_| "srt,rtmp".into());
    let s = Server::start(|c| {
        c.rtmp_listen = "127.0.0.1:0".into();
        c.srt_listen = "127.0.0.1:0".into();
    });
    println!(
        "LL-HLS glass to glass (stamping publisher -> showmix single room, showroom-720p -> hls.js)"
    );
    let mut out = serde_json::Map::new();
    for proto in parts.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        out.insert(proto.to_owned(), run(&s, proto, seconds)?);
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&path)?;
    std::fs::write(
        path.join("hls_glass.json"),
        serde_json::to_vec_pretty(&Value::Object(out))?,
    )?;
    Ok(())
}
