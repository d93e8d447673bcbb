//! Control plane benchmarks, against an in-process `showmix serve` on loopback:
//!
//! 1. Layout-switch latency: 100 `PUT /v1/rooms/{room}/layout` in a live PK room (pk ↔ grid-4),
//!    from the API response reaching the client to the first frame with the new layout
//!    (a) leaving the mixer and (b) leaving the top rung's encoder. Median and p99; target
//!    p99 ≤ 2 frame intervals (66.7 ms at 30 fps).
//! 2. The API under load: 1,000 `GET /v1/rooms/{room}` per second for 10 s over keep-alive
//!    connections while the room runs. p99 latency (target ≤ 10 ms) and whether the room
//!    dropped output frames (mixed frames against the clock, late input frames).
//!
//! Run: `cargo bench -p showmix-benches --bench control_plane`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use showmix::api::http::request;
use showmix::config::Config;
use showmix::presets::Presets;
use showmix::service::Engine;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

async fn put_layout(addr: SocketAddr, name: &str) -> Result<Instant> {
    let (st, _, b) = request(
        addr,
        "PUT",
        "/v1/rooms/bench/layout",
        None,
        Some(format!("\"{name}\"").into_bytes()),
    )
    .await?;
    anyhow::ensure!(
        st == 200,
        "layout switch failed ({st}): {}",
        String::from_utf8_lossy(&b)
    );
    Ok(Instant::now())
}

async fn switch_latency(addr: SocketAddr, engine: Arc<Engine>) -> Result<()> {
    let mut mixed = Vec::new();
    let mut encoded = Vec::new();
    let layouts = ["grid-4", "pk"];
    for i in 0..100 {
        let responded = put_layout(addr, layouts[i % 2]).await?;
        // Let the frame go through; a switch every 150 ms is still a live show's pace.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut rec = None;
        engine.for_each_room(|_, room| rec = room.layout_control().switches().last().copied());
        let rec = rec.context("no switch recorded")?;
        let ms = |t: Option<Instant>| {
            t.map(|t| t.saturating_duration_since(responded).as_secs_f64() * 1000.0)
        };
        mixed.push(ms(rec.mixed_at).context("switch not mixed")?);
        encoded.push(ms(rec.encoded_at).context("switch not encoded")?);
    }
    let frame = 1000.0 / 30.0;
    println!("\nLayout switch, 100 switches pk <-> grid-4, from the API response (ms):");
    println!("{:<28} {:>8} {:>8} {:>8}", "", "median", "p99", "max");
    for (name, v) in [
        ("first mixed frame", &mut mixed),
        ("first encoded frame (720p)", &mut encoded),
    ] {
        let max = v.iter().cloned().fold(0.0, f64::max);
        println!(
            "{name:<28} {:>8.1} {:>8.1} {:>8.1}",
            percentile(v, 0.5),
            percentile(v, 0.99),
            max
        );
    }
    println!("target: p99 <= 2 frame intervals = {:.1} ms", 2.0 * frame);
    Ok(())
}

/// One keep-alive connection sending a GET every `every`, for `total`.
async fn load_worker(
    addr: SocketAddr,
    every: Duration,
    total: Duration,
) -> Result<(Vec<f64>, usize)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + total;
    let mut lat = Vec::new();
    let mut errors = 0;
    while Instant::now() < end {
        tick.tick().await;
        let req = hyper::Request::get("/v1/rooms/bench")
            .header("host", addr.to_string())
            .body(Full::new(Bytes::new()))?;
        let t = Instant::now();
        let resp = sender.send_request(req).await?;
        let ok = resp.status() == 200;
        let _ = resp.into_body().collect().await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        if !ok {
            errors += 1;
        }
    }
    Ok((lat, errors))
}

async fn api_load(addr: SocketAddr, engine: Arc<Engine>) -> Result<()> {
    let workers = 10;
    let rate_per_worker = 100.0;
    let total = Duration::from_secs(10);
    let snapshot = |e: &Engine| {
        let mut v = (0u64, 0u64, 0u64);
        e.for_each_room(|_, r| {
            v.0 = r.mixed_frames();
            v.1 = r.seat_stats().iter().map(|s| s.frames_dropped).sum();
            v.2 = r.rung_stats().iter().map(|s| s.frames).min().unwrap_or(0);
        });
        v
    };
    let before = snapshot(&engine);
    let t0 = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            tokio::spawn(load_worker(
                addr,
                Duration::from_secs_f64(1.0 / rate_per_worker),
                total,
            ))
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.await??;
        lat.extend(l);
        errors += e;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let after = snapshot(&engine);
    let n = lat.len();
    println!(
        "\nAPI under load: GET /v1/rooms/{{room}}, {workers} keep-alive connections, 10 s, room live:"
    );
    println!(
        "requests {n} ({:.0}/s), errors {errors}, latency ms: median {:.2}, p99 {:.2}, max {:.2}",
        n as f64 / elapsed,
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        lat.iter().cloned().fold(0.0, f64::max)
    );
    let mixed = after.0 - before.0;
    let expected = elapsed * 30.0;
    println!(
        "mixed frames {mixed} in {elapsed:.2} s (clock says {expected:.0}); late input frames {}; slowest rung encoded {}",
        after.1 - before.1,
        after.2 - before.2
    );
    println!("target: p99 <= 10 ms, no dropped output frames");
    Ok(())
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    showmix::init()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            rtmp_listen: "off".into(),
            srt_listen: "off".into(),
            ..Config::default()
        };
        let bound = showmix::serve::bind(&config).await?;
        let addr = bound.api_addr().context("no API address")?;
        let engine = Arc::new(Engine::new(config, Presets::embedded()?));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(showmix::serve::run(engine.clone(), bound, async {
            let _ = rx.await;
        }));
        let body = json!({"id": "bench", "layout": "pk", "ladder": "showroom-720p", "seats": [
            {"id": "a", "source": "test:smpte"}, {"id": "b", "source": "test:ball"},
            {"id": "c", "source": "test:red"}, {"id": "d", "source": "test:blue"}]});
        let (st, _, b) = request(
            addr,
            "POST",
            "/v1/rooms",
            None,
            Some(serde_json::to_vec(&body)?),
        )
        .await?;
        anyhow::ensure!(st == 201, "room: {}", String::from_utf8_lossy(&b));
        tokio::time::sleep(Duration::from_secs(2)).await;
        switch_latency(addr, engine.clone()).await?;
        api_load(addr, engine.clone()).await?;
        let _ = tx.send(());
        let _ = server.await;
        Ok(())
    })
}
