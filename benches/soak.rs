//! Soak: one live PK room in a `showmix serve` process (release build, its own process, measured
//! from outside) for 30 minutes by default, while everything around it misbehaves:
//! - the host (RTMP) and the rival (SRT) publishers drop and come back, on different periods;
//! - the CDN (nginx-rtmp, the room's RTMP push) is killed and restarted;
//! - garbage arrives on the ingest ports (random bytes on RTMP, a half-open RTMP handshake that
//!   stalls, random datagrams on SRT) and on the API port.
//!
//! Measured: the process's RSS every 10 s (flat within ±5 % of its level after warm-up), its
//! CPU, the LL-HLS media playlist polled every 200 ms (longest time without a new part, target
//! ≤ 2 s; media sequence never going back), the push back after every CDN restart (room JSON
//! `live` with a new connect, and nginx serving the stream to ffprobe), each publisher back in
//! its seat after each drop, and a clean exit on SIGTERM at the end.
//!
//! Run: `cargo bench -p showmix-benches --bench soak` (30 min), shorter with
//! `-- --minutes 5` or `SHOWMIX_SOAK_MINUTES=5`. Writes `target/bench/soak.json`.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use showmix::api::http::request;
use showmix_tests::nginx::Nginx;
use showmix_tests::process::{ServeProcess, cpu_seconds, free_tcp_port, free_udp_port, rss_kib};
use showmix_tests::publisher::Publisher;

const TOKEN: &str = "soak-token-0123456789abcdef";
const ROOM: &str = "soak";
const RUNG: &str = "720p";
const SAMPLE: Duration = Duration::from_secs(10);
/// Playlist stalls before this are start-up: the room's first parts, publishers' first
/// connects (reported apart from the soak's own figure).
const STARTUP: Duration = Duration::from_secs(20);
/// Samples before this are warm-up (encoders' lookahead, first segments, allocator arenas).
const WARMUP: Duration = Duration::from_secs(120);

fn minutes() -> Result<f64> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--minutes" {
            let v = args.next().context("--minutes needs a number")?;
            return v
                .parse()
                .with_context(|| format!("--minutes {v:?}: not a number of minutes"));
        }
    }
    match std::env::var("SHOWMIX_SOAK_MINUTES") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("SHOWMIX_SOAK_MINUTES={v:?}: not a number of minutes")),
        Err(_) => Ok(30.0),
    }
}

fn room(e: &ServeProcess) -> Result<Value> {
    let (st, v) = e.json("GET", &format!("/v1/rooms/{ROOM}"), None)?;
    ensure!(st == 200, "GET room: {st} {v}");
    Ok(v)
}

/// What the playlist poller saw.
#[derive(Default)]
struct PlaylistWatch {
    polls: u64,
    errors: u64,
    /// Longest time the newest part stayed the same, and when it ended (s from start).
    longest_stall: Duration,
    /// The same in the first seconds, while publishers first connect (reported apart).
    startup_stall: Duration,
    longest_stall_at: f64,
    stalls_over_2s: u64,
    sequence_went_back: u64,
    discontinuities_seen: u64,
    last_error: Option<String>,
}

/// Polls the rung's media playlist every 200 ms (plain GETs, as a CDN edge or a player without
/// blocking reloads would) and records how long the newest part stays unchanged.
fn watch_playlist(
    api: SocketAddr,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> Arc<Mutex<PlaylistWatch>> {
    let w = Arc::new(Mutex::new(PlaylistWatch::default()));
    let out = w.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let path = format!("/live/{ROOM}/{RUNG}/index.m3u8");
        let (mut newest, mut changed) = (String::new(), Instant::now());
        let mut last_seq: Option<u64> = None;
        while !stop.load(Relaxed) {
            let r = rt.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    request(api, "GET", &path, None, None),
                )
                .await
            });
            let mut g = w.lock().expect("watch");
            g.polls += 1;
            match r {
                Ok(Ok((200, _, body))) => {
                    let text = String::from_utf8_lossy(&body);
                    let last = text
                        .lines()
                        .rev()
                        .find(|l| {
                            l.starts_with("#EXT-X-PART:") || (!l.is_empty() && !l.starts_with('#'))
                        })
                        .unwrap_or("")
                        .to_owned();
                    let seq = text
                        .lines()
                        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    if let (Some(a), Some(b)) = (last_seq, seq)
                        && b < a
                    {
                        g.sequence_went_back += 1;
                    }
                    last_seq = seq.or(last_seq);
                    g.discontinuities_seen = g
                        .discontinuities_seen
                        .max(text.matches("#EXT-X-DISCONTINUITY\n").count() as u64);
                    if last != newest {
                        let gap = changed.elapsed();
                        let steady = !newest.is_empty() && start.elapsed() >= STARTUP;
                        if !steady {
                            g.startup_stall = g.startup_stall.max(gap);
                        } else if gap > g.longest_stall {
                            g.longest_stall = gap;
                            g.longest_stall_at = start.elapsed().as_secs_f64();
                        }
                        if steady && gap > Duration::from_secs(2) {
                            g.stalls_over_2s += 1;
                        }
                        newest = last;
                        changed = Instant::now();
                    }
                }
                Ok(Ok((st, _, body))) => {
                    g.errors += 1;
                    g.last_error = Some(format!("{st}: {}", String::from_utf8_lossy(&body)));
                }
                Ok(Err(e)) => {
                    g.errors += 1;
                    g.last_error = Some(e.to_string());
                }
                Err(_) => {
                    g.errors += 1;
                    g.last_error = Some("no answer within 5 s".into());
                }
            }
            // A stall still going on counts too.
            let gap = changed.elapsed();
            if gap > g.longest_stall && !newest.is_empty() && start.elapsed() >= STARTUP {
                g.longest_stall = gap;
                g.longest_stall_at = start.elapsed().as_secs_f64();
            }
            drop(g);
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    out
}

/// Garbage on every port the engine listens on. Returns what was sent, for the report.
fn garbage(rtmp: u16, srt: u16, api: u16, round: u64) -> Vec<&'static str> {
    let mut noise = vec![0u8; 4096];
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ round;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut sent = Vec::new();
    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", rtmp)) {
        let _ = s.write_all(&noise);
        sent.push("rtmp: 4 KiB of random bytes");
    }
    // A handshake that starts right (C0 = 3, C1) and then stalls for 8 s, holding the socket.
    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", rtmp)) {
        let _ = s.write_all(&[3]);
        let _ = s.write_all(&noise[..1536]);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(8));
            drop(s);
        });
        sent.push("rtmp: half handshake held 8 s");
    }
    if let Ok(u) = UdpSocket::bind("127.0.0.1:0") {
        for chunk in noise.chunks(1316).take(3) {
            let _ = u.send_to(chunk, ("127.0.0.1", srt));
        }
        // Something shaped like an SRT induction (control bit set) with a random body.
        let mut induction = noise[..64].to_vec();
        induction[0] = 0x80;
        let _ = u.send_to(&induction, ("127.0.0.1", srt));
        sent.push("srt: random datagrams and a fake induction");
    }
    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", api)) {
        let _ = s.write_all(b"GET /v1/rooms HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n");
        let _ = s.write_all(&noise[..512]);
        sent.push("api: malformed HTTP");
    }
    sent
}

fn quantile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[derive(Clone, Copy, Debug)]
enum Event {
    HostDrop,
    HostBack,
    RivalDrop,
    RivalBack,
    CdnDown,
    CdnUp,
    Garbage,
}

/// The event plan for a run of `total`: each kind on its own period, so they overlap in
/// changing ways.
fn schedule(total: Duration) -> Vec<(Duration, Event)> {
    let mut v = Vec::new();
    let end = total.saturating_sub(Duration::from_secs(20));
    let mut every = |first: u64, period: u64, ev: Event, back: Option<(u64, Event)>| {
        let mut t = Duration::from_secs(first);
        while t < end {
            v.push((t, ev));
            if let Some((after, ev2)) = back {
                v.push((t + Duration::from_secs(after), ev2));
            }
            t += Duration::from_secs(period);
        }
    };
    every(45, 70, Event::HostDrop, Some((8, Event::HostBack)));
    every(80, 95, Event::RivalDrop, Some((12, Event::RivalBack)));
    every(100, 170, Event::CdnDown, Some((5, Event::CdnUp)));
    every(20, 25, Event::Garbage, None);
    v.sort_by_key(|e| e.0);
    v
}

fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: only run for real.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let minutes = minutes()?;
    ensure!(
        minutes >= 3.0,
        "--minutes {minutes}: at least 3 (warm-up is 2 minutes)"
    );
    let total = Duration::from_secs_f64(minutes * 60.0);
    let dir = tempfile::tempdir()?;
    let (api, rtmp, srt, cdn) = (
        free_tcp_port()?,
        free_tcp_port()?,
        free_udp_port()?,
        free_tcp_port()?,
    );
    let cdn_dir = dir.path().join("cdn");
    std::fs::create_dir_all(&cdn_dir)?;
    let mut nginx = Nginx::start(&cdn_dir, cdn);
    let engine = ServeProcess::start(dir.path(), api, rtmp, srt, TOKEN)?;
    println!(
        "soak: {minutes} min, showmix serve pid {} (api {api}, rtmp {rtmp}, srt {srt}), CDN nginx-rtmp on {cdn}",
        engine.pid()
    );
    let cdn_url = format!("rtmp://127.0.0.1:{cdn}/live/soak");
    let (st, v) = engine.json(
        "POST",
        "/v1/rooms",
        Some(json!({
            "id": ROOM, "layout": "pk", "ladder": "showroom-720p",
            "seats": [{"id": "host", "source": "publish"}, {"id": "rival", "source": "publish"}],
            "outputs": [{"kind": "rtmp", "id": "cdn", "url": cdn_url, "rung": RUNG}]
        })),
    )?;
    ensure!(st == 201, "create room: {st} {v}");
    let seat_ingest = |room: &Value, seat: &str| -> Option<Value> {
        room["seats"]
            .as_array()?
            .iter()
            .find(|s| s["id"] == seat)
            .map(|s| s["ingest"].clone())
    };
    let host_url = seat_ingest(&v, "host").and_then(|i| i["rtmp"].as_str().map(String::from));
    let rival_url = seat_ingest(&v, "rival").and_then(|i| i["srt"].as_str().map(String::from));
    let (host_url, rival_url) = (
        host_url.context("host RTMP URL")?,
        rival_url.context("rival SRT URL")?,
    );
    let seat_state = |seat: &str| -> String {
        room(&engine)
            .ok()
            .and_then(|r| {
                r["seats"]
                    .as_array()?
                    .iter()
                    .find(|s| s["id"] == seat)
                    .and_then(|s| s["state"].as_str().map(String::from))
            })
            .unwrap_or_default()
    };
    let push = || -> (String, u64) {
        room(&engine)
            .ok()
            .and_then(|r| {
                let o = r["outputs"]
                    .as_array()?
                    .iter()
                    .find(|o| o["id"] == "cdn")?
                    .clone();
                Some((
                    o["state"].as_str().unwrap_or("").to_owned(),
                    o["connects"].as_u64().unwrap_or(0),
                ))
            })
            .unwrap_or_default()
    };
    let mut host = Some(Publisher::start(&host_url, "red", 440, &[]));
    let mut rival = Some(Publisher::start(&rival_url, "blue", 660, &[]));

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let watch = watch_playlist(engine.api, start, stop.clone());

    let plan = schedule(total);
    let mut next = 0;
    let mut samples: Vec<(f64, u64, f64)> = Vec::new(); // (t s, RSS KiB, CPU s)
    let mut next_sample = Duration::ZERO;
    // Pending checks: (what, since, deadline) for a publisher back in its seat or the push back.
    let mut host_back: Option<Instant> = None;
    let mut rival_back: Option<Instant> = None;
    let mut cdn_up: Option<(Instant, u64)> = None;
    let (mut host_returns, mut rival_returns, mut cdn_returns) =
        (Vec::<f64>::new(), Vec::<f64>::new(), Vec::<f64>::new());
    let mut cdn_served = Vec::<bool>::new();
    let mut failures: Vec<String> = Vec::new();
    let mut garbage_rounds = 0u64;
    let mut garbage_kinds: Vec<&str> = Vec::new();
    while start.elapsed() < total {
        let now = start.elapsed();
        if let Some(st) = engine_exited(&engine) {
            bail!(
                "showmix serve died ({st}) at {:.0} s: {}",
                now.as_secs_f64(),
                engine.log_tail()
            );
        }
        if now >= next_sample {
            let rss = rss_kib(engine.pid())?;
            samples.push((now.as_secs_f64(), rss, cpu_seconds(engine.pid())?));
            eprintln!(
                "  {:>5.0} s  RSS {:.1} MiB",
                now.as_secs_f64(),
                rss as f64 / 1024.0
            );
            next_sample += SAMPLE;
        }
        while next < plan.len() && plan[next].0 <= now {
            let ev = plan[next].1;
            next += 1;
            match ev {
                Event::HostDrop => host = None,
                Event::HostBack => {
                    host = Some(Publisher::start(&host_url, "red", 440, &[]));
                    host_back = Some(Instant::now());
                }
                Event::RivalDrop => rival = None,
                Event::RivalBack => {
                    rival = Some(Publisher::start(&rival_url, "blue", 660, &[]));
                    rival_back = Some(Instant::now());
                }
                Event::CdnDown => nginx.stop(),
                Event::CdnUp => {
                    let before = push().1;
                    nginx = Nginx::start(&cdn_dir, cdn);
                    cdn_up = Some((Instant::now(), before));
                }
                Event::Garbage => {
                    garbage_rounds += 1;
                    for k in garbage(rtmp, srt, api, garbage_rounds) {
                        if !garbage_kinds.contains(&k) {
                            garbage_kinds.push(k);
                        }
                    }
                }
            }
        }
        // Returns under way.
        for (pending, seat, returns) in [
            (&mut host_back, "host", &mut host_returns),
            (&mut rival_back, "rival", &mut rival_returns),
        ] {
            if let Some(t) = *pending {
                if seat_state(seat) == "connected" {
                    returns.push(t.elapsed().as_secs_f64());
                    *pending = None;
                } else if t.elapsed() > Duration::from_secs(20) {
                    failures.push(format!(
                        "{seat} publisher not back in its seat 20 s after reconnecting (at {:.0} s): {}",
                        now.as_secs_f64(),
                        seat_state(seat)
                    ));
                    *pending = None;
                }
            }
        }
        if let Some((t, before)) = cdn_up {
            let (state, connects) = push();
            if state == "live" && connects > before {
                cdn_returns.push(t.elapsed().as_secs_f64());
                cdn_served.push(cdn_serves(&format!("rtmp://127.0.0.1:{cdn}/live/soak")));
                cdn_up = None;
            } else if t.elapsed() > Duration::from_secs(45) {
                failures.push(format!(
                    "push not back 45 s after the CDN restarted (at {:.0} s): state {state}",
                    now.as_secs_f64()
                ));
                cdn_up = None;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop((host, rival));
    stop.store(true, Relaxed);
    let room = room(&engine)?;
    // SIGTERM: the room ends, the process exits on its own.
    let pid = engine.pid();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let t = Instant::now();
    let mut engine = engine;
    let exit = loop {
        if let Some(st) = engine.child.try_wait()? {
            break Some(st);
        }
        if t.elapsed() > Duration::from_secs(30) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let shutdown_s = t.elapsed().as_secs_f64();
    drop(nginx);

    // RSS against its level after warm-up: the median of the first minute after it.
    let after: Vec<&(f64, u64, f64)> = samples
        .iter()
        .filter(|s| s.0 >= WARMUP.as_secs_f64())
        .collect();
    ensure!(after.len() >= 4, "too few RSS samples after warm-up");
    let base_window: Vec<f64> = after
        .iter()
        .filter(|s| s.0 < WARMUP.as_secs_f64() + 60.0)
        .map(|s| s.1 as f64)
        .collect();
    let base = quantile(&base_window, 0.5);
    let dev: Vec<f64> = after
        .iter()
        .map(|s| (s.1 as f64 / base - 1.0) * 100.0)
        .collect();
    let (dev_min, dev_max) = (quantile(&dev, 0.0), quantile(&dev, 1.0));
    let last_dev = *dev.last().unwrap_or(&0.0);
    // Trend apart from swings: least-squares slope of RSS over time after warm-up, and the
    // median of the last quarter against the median of the first quarter after warm-up.
    let slope_mib_per_hour = {
        let n = after.len() as f64;
        let (mt, mr) = (
            after.iter().map(|s| s.0).sum::<f64>() / n,
            after.iter().map(|s| s.1 as f64).sum::<f64>() / n,
        );
        let cov: f64 = after.iter().map(|s| (s.0 - mt) * (s.1 as f64 - mr)).sum();
        let var: f64 = after.iter().map(|s| (s.0 - mt).powi(2)).sum();
        cov / var * 3600.0 / 1024.0
    };
    let quarter = (after.len() / 4).max(1);
    let q_first: Vec<f64> = after[..quarter].iter().map(|s| s.1 as f64).collect();
    let q_last: Vec<f64> = after[after.len() - quarter..]
        .iter()
        .map(|s| s.1 as f64)
        .collect();
    let quarters_percent = (quantile(&q_last, 0.5) / quantile(&q_first, 0.5) - 1.0) * 100.0;
    let (t0, c0) = (samples[0].0, samples[0].2);
    let (t1, c1) = (
        samples.last().map(|s| s.0).unwrap_or(t0),
        samples.last().map(|s| s.2).unwrap_or(c0),
    );
    let cores = if t1 > t0 {
        (c1 - c0) / (t1 - t0)
    } else {
        f64::NAN
    };
    let w = watch.lock().expect("watch");
    let push_final = room["outputs"]
        .as_array()
        .and_then(|a| a.iter().find(|o| o["id"] == "cdn"))
        .cloned();

    let rss_ok = dev_min >= -5.0 && dev_max <= 5.0;
    let stall_ok = w.longest_stall <= Duration::from_secs(2) && w.errors == 0;
    let push_ok = !cdn_returns.is_empty() && cdn_served.iter().all(|&b| b);
    let exit_ok = exit.map(|s| s.success()).unwrap_or(false);
    if !rss_ok {
        failures.push(format!(
            "RSS moved {dev_min:+.1} % .. {dev_max:+.1} % (allowed ±5 %)"
        ));
    }
    if !stall_ok {
        failures.push(format!(
            "playlist: longest stall {:.2} s at {:.0} s, {} failed polls ({:?})",
            w.longest_stall.as_secs_f64(),
            w.longest_stall_at,
            w.errors,
            w.last_error
        ));
    }
    if w.sequence_went_back > 0 {
        failures.push(format!(
            "media sequence went back {} times",
            w.sequence_went_back
        ));
    }
    if !push_ok {
        failures.push(format!(
            "push: back {cdn_returns:?}, nginx served {cdn_served:?}"
        ));
    }
    if !exit_ok {
        failures.push(format!("SIGTERM: exit {exit:?} after {shutdown_s:.1} s"));
    }
    let report = json!({
        "minutes": minutes,
        "rss": {
            "samples_kib": samples.iter().map(|s| json!([s.0.round(), s.1])).collect::<Vec<_>>(),
            "baseline_kib": base, "deviation_percent": {"min": dev_min, "max": dev_max, "last": last_dev},
            "flat_within_5_percent": rss_ok,
            "slope_mib_per_hour": slope_mib_per_hour,
            "last_quarter_vs_first_quarter_percent": quarters_percent,
        },
        "cpu_cores": cores,
        "playlist": {
            "polls": w.polls, "failed_polls": w.errors, "longest_stall_s": w.longest_stall.as_secs_f64(),
            "longest_stall_at_s": w.longest_stall_at,
            "startup_longest_stall_s": w.startup_stall.as_secs_f64(), "stalls_over_2s": w.stalls_over_2s,
            "sequence_went_back": w.sequence_went_back, "discontinuities_in_window_max": w.discontinuities_seen,
        },
        "publishers": {
            "host_rtmp_back_s": host_returns, "rival_srt_back_s": rival_returns,
        },
        "cdn": {"restarts": cdn_returns.len(), "push_back_s": cdn_returns, "nginx_served_after": cdn_served,
                "final": push_final},
        "garbage": {"rounds": garbage_rounds, "kinds": garbage_kinds},
        "shutdown": {"exit": exit.map(|s| s.to_string()), "seconds": shutdown_s},
        "failures": failures,
    });
    let out = showmix_tests::workspace_root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("soak.json"), serde_json::to_vec_pretty(&report)?)?;
    let med = |v: &[f64]| quantile(v, 0.5);
    println!(
        "  RSS: baseline {:.1} MiB after {} s warm-up; {:+.1} % .. {:+.1} % over the run, {:+.1} % at the end (target ±5 %)",
        base / 1024.0,
        WARMUP.as_secs(),
        dev_min,
        dev_max,
        last_dev
    );
    println!(
        "  RSS trend: {slope_mib_per_hour:+.1} MiB/hour (least squares), last quarter's median {quarters_percent:+.1} % against the first quarter's"
    );
    println!("  CPU: {cores:.3} cores (whole showmix process)");
    println!(
        "  LL-HLS playlist: {} polls, longest time without a new part {:.2} s after the first {} s (target ≤ 2 s; {:.2} s in them), {} over 2 s, {} failed polls, sequence back {}",
        w.polls,
        w.longest_stall.as_secs_f64(),
        STARTUP.as_secs(),
        w.startup_stall.as_secs_f64(),
        w.stalls_over_2s,
        w.errors,
        w.sequence_went_back
    );
    println!(
        "  publishers: host (RTMP) back {} times, median {:.2} s, max {:.2} s; rival (SRT) back {} times, median {:.2} s, max {:.2} s",
        host_returns.len(),
        med(&host_returns),
        quantile(&host_returns, 1.0),
        rival_returns.len(),
        med(&rival_returns),
        quantile(&rival_returns, 1.0)
    );
    println!(
        "  CDN restarts: {}, push back after median {:.2} s, max {:.2} s; nginx served the stream after each: {}",
        cdn_returns.len(),
        med(&cdn_returns),
        quantile(&cdn_returns, 1.0),
        cdn_served.iter().all(|&b| b)
    );
    println!(
        "  garbage rounds: {garbage_rounds} ({})",
        garbage_kinds.join("; ")
    );
    println!("  SIGTERM: {exit:?} after {shutdown_s:.2} s");
    if !failures.is_empty() {
        bail!("soak failed:\n  {}", failures.join("\n  "));
    }
    println!("soak: all targets met (target/bench/soak.json)");
    Ok(())
}

fn engine_exited(e: &ServeProcess) -> Option<String> {
    // try_wait needs &mut; /proc tells whether the pid is still ours and alive.
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", e.pid())) else {
        return Some("gone".into());
    };
    let state = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
    (state == Some('Z')).then(|| "exited".to_owned())
}

/// Whether nginx serves the pushed stream to a player (ffprobe reads its streams).
fn cdn_serves(url: &str) -> bool {
    Command::new("timeout")
        .args([
            "15",
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
        ])
        .arg(url)
        .output()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout);
            s.contains("video") && s.contains("audio")
        })
        .unwrap_or(false)
}
