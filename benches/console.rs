//! The operator console, measured from outside: headless Chromium (tests/browser/console.js)
//! against an in-process `showmix serve` with real rooms.
//!
//! 1. First preview frame: page load (navigation start, the token already in the tab's
//!    session storage as after a login) to the first presented frame of the room's preview
//!    (`requestVideoFrameCallback`), forced to LL-HLS (hls.js) and to WHEP; each run a fresh
//!    browser context. One live PK room (the previewed one) runs meanwhile. Median and p95;
//!    targets LL-HLS <= 1500 ms, WHEP <= 500 ms.
//! 2. Server cost: this process's CPU (the whole server: the browser is another process) and
//!    its HTTP requests per second (from `/metrics`, less the benchmark's own scrapes) with two
//!    live PK rooms and no console, then 10 consoles on the room list (the event stream only),
//!    then 10 on a room page (event stream + WHEP preview each). Windows of 20 s.
//! 3. The event streams alone: the same CPU with 0 and 10 raw SSE readers in this process (no
//!    browser competing for the cores), bytes per stream, and the time to build one snapshot.
//!
//! Run: `cargo bench -p showmix-benches --bench console` (about 3 minutes;
//! `SHOWMIX_BENCH_QUICK=1` for a shorter run, `SHOWMIX_BENCH_PARTS=first-frame,cost,streams` to pick). Writes `target/bench/console.json`. On the 2-core
//! VM the 10 browser tabs compete with the server for the cores: the CPU figures are the
//! server's own, but its frame pacing suffers with them.

#[path = "../tests/browser/driver.rs"]
#[allow(dead_code)] // each user takes the part it needs
mod driver;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use showmix_tests::server::{Server, TOKEN};

fn quick() -> bool {
    std::env::var_os("SHOWMIX_BENCH_QUICK").is_some()
}

fn stats(v: &[f64]) -> Value {
    json!({"n": v.len(), "median": driver::quantile(v, 0.5), "p95": driver::quantile(v, 0.95),
           "min": driver::quantile(v, 0.0), "max": driver::quantile(v, 1.0)})
}

fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}

fn create(s: &Server, id: &str) -> Result<Value> {
    let (st, v) = s.json(
        "POST",
        "/v1/rooms",
        Some(json!({"id": id, "layout": "pk", "ladder": "showroom-720p", "seats": [
            {"id": "host", "source": "test:smpte"}, {"id": "rival", "source": "test:ball?tone=660"}]})),
    );
    ensure!(st == 201, "create room: {v}");
    Ok(v)
}

fn base(s: &Server) -> String {
    format!("http://{}", s.addr)
}

fn first_frame(s: &Server, preview: &str, runs: usize) -> Result<Value> {
    let report = driver::console(&json!({
        "mode": "first-frame", "base": base(s), "token": TOKEN, "room": "ff",
        "preview": preview, "runs": runs, "deadline": 40 + 10 * runs,
    }))?;
    let r = &report.result;
    ensure!(r["ok"] == true, "console.js: {r}\n{}", report.log);
    let all = r["runs"].as_array().context("runs")?;
    let failed = all.iter().filter(|x| !x["error"].is_null()).count();
    let runs: Vec<&Value> = all.iter().filter(|x| x["error"].is_null()).collect();
    ensure!(!runs.is_empty(), "no run showed a frame: {r}");
    for run in &runs {
        ensure!(
            run["mode"] == preview,
            "the preview fell back from {preview}: {run}"
        );
    }
    let ms: Vec<f64> = runs
        .iter()
        .filter_map(|x| x["firstFrame"].as_f64())
        .collect();
    // Where the time goes: the median of each milestone (ms since navigation start).
    let mut names: Vec<String> = runs
        .iter()
        .filter_map(|x| x["timeline"].as_object())
        .flat_map(|o| o.keys().cloned())
        .chain(["domContentLoaded".to_owned()])
        .collect();
    names.sort();
    names.dedup();
    let mut milestones = serde_json::Map::new();
    for n in &names {
        let v: Vec<f64> = runs
            .iter()
            .filter_map(|x| x["timeline"][n].as_f64().or(x[n].as_f64()))
            .collect();
        milestones.insert(n.clone(), json!(driver::quantile(&v, 0.5)));
    }
    let mut order: Vec<(&String, f64)> = milestones
        .iter()
        .map(|(k, v)| (k, v.as_f64().unwrap_or(f64::NAN)))
        .collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1));
    println!(
        "    {preview} milestones (median ms since load): {}",
        order
            .iter()
            .map(|(k, v)| format!("{k} {v:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut out = stats(&ms);
    out["milestones_median_ms"] = Value::Object(milestones);
    out["runs_without_a_frame_in_15s"] = json!(failed);
    if failed > 0 {
        println!(
            "    {preview}: {failed} of {} runs showed no frame within 15 s",
            all.len()
        );
    }
    Ok(out)
}

/// Every second: (unix ms, this process's CPU seconds, HTTP requests served so far).
type Samples = Arc<Mutex<Vec<(f64, f64, f64)>>>;

/// CPU (cores) and requests per second between two unix-ms instants, from the samples; each
/// sample's own `/metrics` scrape is taken off.
fn window(samples: &Samples, from: f64, to: f64) -> Result<(f64, f64, f64)> {
    let s = samples.lock().unwrap_or_else(|e| e.into_inner());
    let inside: Vec<&(f64, f64, f64)> = s.iter().filter(|x| x.0 >= from && x.0 <= to).collect();
    ensure!(inside.len() >= 3, "too few samples in the window");
    let (a, b) = (inside[0], inside[inside.len() - 1]);
    let secs = (b.0 - a.0) / 1000.0;
    let scrapes = (inside.len() - 1) as f64;
    Ok((
        (b.1 - a.1) / secs,
        (b.2 - a.2 - scrapes).max(0.0) / secs,
        secs,
    ))
}

fn server_cost(s: &Server, samples: &Samples, secs: u64) -> Result<Value> {
    let mut out = Vec::new();
    // No console.
    let t0 = unix_ms();
    std::thread::sleep(Duration::from_secs(secs));
    let (cores, rps, w) = window(samples, t0, unix_ms())?;
    println!(
        "    no console:              server {cores:.3} cores, {rps:.2} requests/s ({w:.0} s)"
    );
    out.push(json!({"consoles": 0, "page": null, "cores": cores, "requests_per_second": rps}));
    for (page, preview) in [("list", None), ("room", Some("whep"))] {
        let report = driver::console(&json!({
            "mode": "open", "base": base(s), "token": TOKEN, "room": "ff", "page": page,
            "preview": preview, "pages": 10, "seconds": secs + 4, "deadline": secs + 120,
        }))?;
        let r = &report.result;
        ensure!(r["ok"] == true, "console.js: {r}\n{}", report.log);
        // From 3 s after every tab was up (previews settled) to the end.
        let from = r["openedAt"].as_f64().context("openedAt")? + 3000.0;
        let to = r["closedAt"].as_f64().context("closedAt")?;
        let (cores, rps, w) = window(samples, from, to)?;
        println!(
            "    10 consoles on the {page:<4}:  server {cores:.3} cores, {rps:.2} requests/s ({w:.0} s), previews {}",
            r["modes"]
        );
        out.push(
            json!({"consoles": 10, "page": page, "preview": preview, "cores": cores,
                        "requests_per_second": rps, "modes": r["modes"]}),
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    let base = out[0]["cores"].as_f64().unwrap_or(0.0);
    for o in out.iter_mut().skip(1) {
        let c = o["cores"].as_f64().unwrap_or(0.0);
        o["added_cores"] = json!(c - base);
        o["added_cores_per_console"] = json!((c - base) / 10.0);
    }
    Ok(Value::Array(out))
}

/// The event streams alone, without browsers competing for the cores: the server's CPU with
/// 0 and `n` raw SSE readers, the bytes each receives, and the cost of one tick's snapshot.
fn streams(s: &Server, n: usize, secs: u64) -> Result<Value> {
    use std::io::{Read, Write};
    // One tick's snapshot for every subscriber, built here on this thread.
    let t0 = Instant::now();
    let mut size = 0;
    for _ in 0..50 {
        size = s.engine.console_snapshot().len();
    }
    let build_ms = t0.elapsed().as_secs_f64() * 1000.0 / 50.0;
    let measure = |readers: usize| -> Result<(f64, u64)> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut threads = Vec::new();
        for _ in 0..readers {
            let mut c = std::net::TcpStream::connect(s.addr)?;
            c.set_read_timeout(Some(Duration::from_millis(200)))?;
            write!(
                c,
                "GET /v1/events HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\n\r\n",
                s.addr
            )?;
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let mut total = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(k) = c.read(&mut buf) {
                        if k == 0 {
                            break;
                        }
                        total += k as u64;
                    }
                }
                total
            }));
        }
        std::thread::sleep(Duration::from_secs(2));
        let (c0, t0) = (cpu_seconds(), Instant::now());
        std::thread::sleep(Duration::from_secs(secs));
        let cores = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let bytes: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        Ok((cores, bytes / readers.max(1) as u64))
    };
    let (none, _) = measure(0)?;
    let (with, bytes) = measure(n)?;
    let per_stream_bps = bytes as f64 / (secs + 2) as f64;
    println!(
        "    raw streams: server {none:.3} cores with none, {with:.3} with {n} ({:+.4} cores per stream); \
         snapshot {size} bytes built in {build_ms:.2} ms once a tick; {per_stream_bps:.0} B/s per stream",
        (with - none) / n as f64
    );
    Ok(json!({"streams": n, "cores_none": none, "cores_with": with,
              "cores_per_stream": (with - none) / n as f64, "snapshot_bytes": size,
              "snapshot_build_ms": build_ms, "bytes_per_second_per_stream": per_stream_bps}))
}

fn main() -> Result<()> {
    driver::check_ready()?;
    ensure!(
        showmix::api::console::built(),
        "the console is not built into this binary: run `make console` and rebuild"
    );
    let s = Server::start(|_| {});
    // Part 1 with the previewed room alone: an operator's browser runs on their own machine,
    // and on this 2-core VM a second room's encoders (about 0.9 cores) would come out of the
    // browser's share, timing Chromium's starvation rather than the console.
    create(&s, "ff")?;
    std::thread::sleep(Duration::from_secs(3));

    let part = |p: &str| {
        std::env::var("SHOWMIX_BENCH_PARTS")
            .map(|v| v.split(',').any(|x| x.trim() == p))
            .unwrap_or(true)
    };
    let runs = if quick() { 3 } else { 8 };
    let (mut hls, mut whep, mut cost) = (Value::Null, Value::Null, Value::Null);
    if part("first-frame") {
        println!("(1) page load -> first preview frame, {runs} runs each");
        hls = first_frame(&s, "hls", runs)?;
        println!(
            "    LL-HLS (hls.js): median {:.0} ms, p95 {:.0} ms (target <= 1500)",
            hls["median"].as_f64().unwrap_or(f64::NAN),
            hls["p95"].as_f64().unwrap_or(f64::NAN)
        );
        whep = first_frame(&s, "whep", runs)?;
        println!(
            "    WHEP:            median {:.0} ms, p95 {:.0} ms (target <= 500)",
            whep["median"].as_f64().unwrap_or(f64::NAN),
            whep["p95"].as_f64().unwrap_or(f64::NAN)
        );
    }
    create(&s, "other")?;
    std::thread::sleep(Duration::from_secs(3));
    if part("cost") {
        println!("(2) server cost of open consoles, two live PK rooms (720p30 ladders)");
        let samples: Samples = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let (samples, stop) = (samples.clone(), stop.clone());
            let addr = s.addr;
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let next = Instant::now();
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let text = rt
                        .block_on(showmix::api::http::request(
                            addr, "GET", "/metrics", None, None,
                        ))
                        .map(|r| String::from_utf8_lossy(&r.2).into_owned())
                        .unwrap_or_default();
                    let total: f64 = text
                        .lines()
                        .filter(|l| l.starts_with("showmix_http_requests_total{"))
                        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                        .sum();
                    samples.lock().unwrap_or_else(|e| e.into_inner()).push((
                        unix_ms(),
                        cpu_seconds(),
                        total,
                    ));
                    n += 1;
                    let due = next + Duration::from_secs(u64::from(n));
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
            })
        };
        let measured = server_cost(&s, &samples, if quick() { 8 } else { 20 });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = sampler.join();
        cost = measured?;
    }

    let mut raw = Value::Null;
    if part("streams") {
        println!("(3) the event streams alone (raw SSE readers in this process, no browser)");
        raw = streams(&s, 10, if quick() { 8 } else { 20 })?;
    }
    let out = json!({"first_frame_ms": {"hls": hls, "whep": whep}, "server_cost": cost,
                     "raw_streams": raw,
                     "loadavg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()});
    let dir = showmix_tests::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("console.json"),
        serde_json::to_string_pretty(&out)?,
    )?;
    println!("wrote target/bench/console.json");
    for room in ["ff", "other"] {
        s.json("DELETE", &format!("/v1/rooms/{room}"), None);
    }
    Ok(())
}
