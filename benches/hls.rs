//! LL-HLS benchmarks, against an in-process `showmix serve` on loopback, one run each:
//!
//! (a) Latency from a frame leaving the mix to hls.js playing it in headless Chromium
//!     (`tests/browser/play.js`): `Date.now() - hls.playingDate` (PROGRAM-DATE-TIME) sampled
//!     for 20 s at the live edge of a PK room; median and p95, target <= 1.5 s. The PDT itself
//!     is checked in-process: probes note the wall-clock time each frame leaves the mix (tee
//!     `mix`) and the running time of each segment's first chunk at the HLS appsink, so the
//!     PDT the playlist announces can be compared with when that frame was really mixed. The
//!     reference is what a user would pick instead: ffmpeg mixing two live test sources
//!     (`hstack`) into 1 s fMP4 HLS segments (`-f hls -hls_time 1`), served by a static
//!     server, played by the same page. Its latency is read from a wall-clock stamp ffmpeg
//!     burns into each frame when it is made (`setpts=RTCTIME` + `geq`), not from its PDT.
//! (b) Blocking playlist reload: for ~200 parts (three rungs at once, one keep-alive client
//!     each), the client reads the preload hint (msn, part), asks
//!     `index.m3u8?_HLS_msn=M&_HLS_part=P`, and a waiter on the engine's own `Track::wait_for`
//!     stamps when the part is published; the figure is response received - part published.
//!     Target p99 <= 10 ms.
//! (c) Packaging cost: process CPU of the same PK room with LL-HLS on and off
//!     (`{"kind":"hls","enabled":false}`), 10 s each, alternating, two rounds; and the CPU of
//!     the packager's own threads per rung (`hls-vq-*`, `hls-aq-*`, `hls-mux-*`: leaky queues,
//!     isofmp4mux and the appsink callback into the store). Compared with ffmpeg repackaging
//!     the same encoded rung into fMP4 HLS (`-c copy -f hls -hls_segment_type fmp4`): CPU per
//!     second of content.
//!
//! Needs ffmpeg, /usr/bin/chromium and `tests/browser/node_modules` (`make browser-deps`).
//! Run: `cargo bench -p showmix-benches --bench hls`.

#[path = "../tests/browser/driver.rs"]
#[allow(dead_code)] // each user takes the part it needs
mod driver;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use driver::{Play, quantile, series};
use gst::prelude::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use showmix::api::http::request;
use showmix::config::Config;
use showmix::presets::Presets;
use showmix::service::Engine;

const RUNGS: [&str; 3] = ["720p", "480p", "360p"];

// ---------------------------------------------------------------------------------------------
// Small helpers

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Signed milliseconds from `b` to `a` (a - b).
fn sys_diff_ms(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => ms(d),
        Err(e) => -ms(e.duration()),
    }
}

fn stats_line(v: &[f64]) -> String {
    format!(
        "n {:>4}  median {:>8.1}  p95 {:>8.1}  p99 {:>8.1}  max {:>8.1}",
        v.len(),
        quantile(v, 0.5),
        quantile(v, 0.95),
        quantile(v, 0.99),
        v.iter().cloned().fold(f64::NAN, f64::max)
    )
}

/// `YYYY-MM-DDThh:mm:ss.sssZ` (as the engine writes EXT-X-PROGRAM-DATE-TIME) to SystemTime.
fn parse_pdt(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    // Days from civil (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60;
    Some(UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_secs_f64(sec))
}

/// MSN -> PROGRAM-DATE-TIME of every segment a media playlist lists (complete or open).
fn playlist_pdts(text: &str) -> BTreeMap<u64, SystemTime> {
    let mut out = BTreeMap::new();
    let mut pending = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pending = parse_pdt(v);
            continue;
        }
        let msn = if let Some(u) = line
            .strip_prefix("seg")
            .and_then(|r| r.strip_suffix(".m4s"))
        {
            u.parse::<u64>().ok()
        } else if line.starts_with("#EXT-X-PART:") {
            line.split("URI=\"part")
                .nth(1)
                .and_then(|r| r.split('.').next())
                .and_then(|m| m.parse::<u64>().ok())
        } else {
            None
        };
        if let (Some(n), Some(p)) = (msn, pending) {
            out.insert(n, p);
            pending = None;
        }
    }
    out
}

/// The `EXT-X-PRELOAD-HINT` part of a media playlist.
fn preload_hint(text: &str) -> Option<(u64, u64)> {
    let line = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))?;
    let uri = line.split("URI=\"part").nth(1)?.split(".m4s").next()?;
    let (m, p) = uri.split_once('.')?;
    Some((m.parse().ok()?, p.parse().ok()?))
}

/// Kills a child process (by its id) on every path.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The in-process server

struct Bench {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    engine: Arc<Engine>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Bench {
    fn start() -> Result<Bench> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("server")
            .enable_all()
            .build()?;
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            rtmp_listen: "off".into(),
            srt_listen: "off".into(),
            ..Config::default()
        };
        let bound = rt.block_on(showmix::serve::bind(&config))?;
        let addr = bound.api_addr().context("no API address")?;
        let engine = Arc::new(Engine::new(config, Presets::embedded()?));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = rt.spawn(showmix::serve::run(engine.clone(), bound, async {
            let _ = rx.await;
        }));
        Ok(Bench {
            rt,
            addr,
            engine,
            stop: Some(tx),
            server: Some(server),
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Bytes)> {
        let body = body.map(|v| serde_json::to_vec(&v)).transpose()?;
        let (st, _, b) = self.rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                request(self.addr, method, path, None, body),
            )
            .await
            .context("request took over 30 s")?
        })?;
        Ok((st, b))
    }

    /// A live PK room with two test patterns on `showroom-720p`, LL-HLS on or off; returns
    /// once its HLS tracks have media (or after 2 s without HLS).
    fn room(&self, id: &str, hls: bool) -> Result<()> {
        let mut body = json!({"id": id, "layout": "pk", "ladder": "showroom-720p", "seats": [
            {"id": "a", "source": "test:smpte"}, {"id": "b", "source": "test:ball"}]});
        if !hls {
            body["outputs"] = json!([{"kind": "hls", "enabled": false}]);
        }
        let (st, b) = self.call("POST", "/v1/rooms", Some(body))?;
        ensure!(st == 201, "room {id}: {st} {}", String::from_utf8_lossy(&b));
        if hls {
            let by = Instant::now() + Duration::from_secs(30);
            loop {
                let ready = self
                    .engine
                    .hls(id)
                    .is_some_and(|p| p.room.tracks().all(|t| t.is_ready()));
                if ready {
                    break;
                }
                ensure!(Instant::now() < by, "room {id}: no HLS media within 30 s");
                std::thread::sleep(Duration::from_millis(100));
            }
        } else {
            std::thread::sleep(Duration::from_secs(2));
        }
        Ok(())
    }

    fn delete(&self, id: &str) -> Result<()> {
        let (st, b) = self.call("DELETE", &format!("/v1/rooms/{id}"), None)?;
        ensure!(
            (200..300).contains(&st),
            "delete {id}: {st} {}",
            String::from_utf8_lossy(&b)
        );
        Ok(())
    }

    fn pipeline(&self, id: &str) -> Option<gst::Pipeline> {
        let mut p = None;
        self.engine.for_each_room(|rid, room| {
            if rid == id {
                p = Some(room.pipeline().clone());
            }
        });
        p
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(20), h).await });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (a) Latency

/// Running time of `pts` on `pad` (its sticky segment), in ns.
fn running_ns(pad: &gst::Pad, pts: gst::ClockTime) -> Option<u64> {
    let ev = pad.sticky_event::<gst::event::Segment>(0)?;
    let seg = ev.segment().downcast_ref::<gst::ClockTime>()?.clone();
    seg.to_running_time(pts).map(|t| t.nseconds())
}

/// What the probes saw: when each frame left the mix, and each segment's first chunk at the
/// 720p HLS appsink.
#[derive(Default)]
struct PdtProbe {
    /// (running time ns, wall clock) of frames leaving the mix, last 40 s.
    mixed: VecDeque<(u64, SystemTime)>,
    /// MSN -> (running time ns of the chunk's first sample, wall clock at the appsink).
    segments: BTreeMap<u64, (u64, SystemTime)>,
}

fn attach_pdt_probe(b: &Bench, id: &str) -> Result<Arc<Mutex<PdtProbe>>> {
    let pipeline = b.pipeline(id).context("room pipeline")?;
    let probe = Arc::new(Mutex::new(PdtProbe::default()));
    let tee = pipeline.by_name("mix").context("no mix tee")?;
    let p = probe.clone();
    tee.static_pad("sink").context("mix tee sink")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |pad, info| {
            let now = SystemTime::now();
            if let Some(r) = info
                .buffer()
                .and_then(|b| b.pts())
                .and_then(|pts| running_ns(pad, pts))
            {
                let mut g = p.lock().unwrap();
                g.mixed.push_back((r, now));
                if g.mixed.len() > 1200 {
                    g.mixed.pop_front();
                }
            }
            gst::PadProbeReturn::Ok
        },
    );
    let sink = pipeline
        .by_name("hls-sink-720p")
        .context("no 720p HLS appsink")?;
    let track = b
        .engine
        .hls(id)
        .and_then(|pk| pk.room.track("720p").cloned())
        .context("no 720p track")?;
    let p = probe.clone();
    sink.static_pad("sink").context("appsink sink")?.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |pad, info| {
            let now = SystemTime::now();
            let mut bufs: Vec<gst::Buffer> = Vec::new();
            if let Some(l) = info.buffer_list() {
                bufs.extend(l.iter_owned());
            } else if let Some(b) = info.buffer() {
                bufs.push(b.clone());
            }
            // The chunk header (moof): HEADER without DISCONT (that is the init segment);
            // a keyframe chunk (not DELTA_UNIT) opens a segment.
            let head = bufs.iter().find(|b| {
                b.flags().contains(gst::BufferFlags::HEADER)
                    && !b.flags().contains(gst::BufferFlags::DISCONT)
            });
            if let Some(h) = head
                && !h.flags().contains(gst::BufferFlags::DELTA_UNIT)
                && let Some(r) = h.pts().and_then(|pts| running_ns(pad, pts))
            {
                // This chunk is pushed right after the probe and closes the open segment:
                // it opens the next MSN.
                let msn = track.stats().live_msn + 1;
                p.lock().unwrap().segments.insert(msn, (r, now));
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(probe)
}

struct PdtCheck {
    /// PDT - wall clock when the segment's first frame left the mix, per segment (ms).
    bias_ms: Vec<f64>,
    /// Wall clock when the segment's first chunk reached the store - when its first frame left
    /// the mix (ms): the server's share of the latency, at a part's start.
    mix_to_store_ms: Vec<f64>,
    /// Running time of the segment's first sample - that of the nearest mixed frame (ms):
    /// non-zero when the chunk starts with audio.
    start_offset_ms: Vec<f64>,
    /// Segments with no mixed frame within 200 ms of their first sample.
    unmatched: usize,
}

fn check_pdt(b: &Bench, id: &str, probe: &Mutex<PdtProbe>) -> Result<PdtCheck> {
    let (st, text) = b.call("GET", &format!("/live/{id}/720p/index.m3u8"), None)?;
    ensure!(st == 200, "playlist: {st}");
    let pdts = playlist_pdts(&String::from_utf8_lossy(&text));
    let g = probe.lock().unwrap();
    let mut out = PdtCheck {
        bias_ms: Vec::new(),
        mix_to_store_ms: Vec::new(),
        start_offset_ms: Vec::new(),
        unmatched: 0,
    };
    for (msn, pdt) in &pdts {
        let Some(&(r, stored)) = g.segments.get(msn) else {
            continue;
        };
        // The mixed frame nearest in running time (encoders keep running time). The chunk may
        // start with an audio sample a little before the keyframe: the wall-clock time of the
        // mix at running time r is that frame's, moved by the difference.
        match g
            .mixed
            .iter()
            .min_by_key(|(mr, _)| mr.abs_diff(r))
            .filter(|(mr, _)| mr.abs_diff(r) < 200_000_000)
        {
            Some(&(mr, wall)) => {
                let off_ms = (r as f64 - mr as f64) / 1e6;
                let mixed_at_ms = sys_diff_ms(*pdt, wall) - off_ms;
                out.bias_ms.push(mixed_at_ms);
                out.mix_to_store_ms.push(sys_diff_ms(stored, wall) - off_ms);
                out.start_offset_ms.push(off_ms);
            }
            None => out.unmatched += 1,
        }
    }
    Ok(out)
}

struct Latency {
    pdt_ms: Vec<f64>,
    hls_latency_s: Vec<f64>,
    clock_ms: Vec<f64>,
    startup_ms: f64,
    stalls: u64,
    errors: u64,
    heights: Vec<f64>,
    forward_s: Vec<f64>,
}

fn latency_of(report: &driver::Report) -> Result<Latency> {
    let r = &report.result;
    if r["ok"].as_bool() != Some(true) || !r["fatal"].is_null() {
        bail!("player failed: {r:#}\nlog:\n{}", report.log);
    }
    Ok(Latency {
        pdt_ms: series(r, "pdtLatencyMs"),
        hls_latency_s: series(r, "latency"),
        clock_ms: series(r, "clockLatencyMs"),
        startup_ms: r["startupMs"].as_f64().unwrap_or(f64::NAN),
        stalls: r["waiting"].as_u64().unwrap_or(0),
        errors: r["errorCount"].as_u64().unwrap_or(0),
        heights: series(r, "height"),
        forward_s: series(r, "forwardBuffer"),
    })
}

struct LatencyResults {
    showmix: Latency,
    /// The same with hls.js's catch-up (`maxLiveSyncPlaybackRate: 1.5`).
    catch_up: Latency,
    pdt: PdtCheck,
    reference: Option<Latency>,
    reference_note: String,
}

const SAMPLE_S: f64 = 20.0;

fn bench_latency(b: &Bench) -> Result<LatencyResults> {
    println!(
        "\n(a) latency: PK room -> hls.js in headless Chromium, {SAMPLE_S} s at the live edge"
    );
    b.room("lat", true)?;
    let probe = attach_pdt_probe(b, "lat")?;
    let url = format!("http://{}/live/lat/index.m3u8", b.addr);
    let mut runs = Vec::new();
    for (name, config) in [
        ("defaults", None),
        ("catch-up", Some(json!({"maxLiveSyncPlaybackRate": 1.5}))),
    ] {
        let report = driver::play(&Play {
            warmup_s: 5.0,
            seconds: SAMPLE_S,
            sample_ms: 200,
            deadline_s: 90,
            hls_config: config,
            ..Play::new(url.clone())
        })?;
        let l = latency_of(&report)?;
        println!(
            "showmix, hls.js {name}: startup {:.0} ms, stalls {}, hls.js errors {} (non-fatal), \
             heights played {:?}, buffer ahead median {:.2} s",
            l.startup_ms,
            l.stalls,
            l.errors,
            {
                let mut h: Vec<u64> = l.heights.iter().map(|h| *h as u64).collect();
                h.dedup();
                h
            },
            quantile(&l.forward_s, 0.5)
        );
        runs.push(l);
    }
    let pdt = check_pdt(b, "lat", &probe)?;
    b.delete("lat")?;
    let catch_up = runs.pop().context("run")?;
    let showmix = runs.pop().context("run")?;

    // The reference: ffmpeg, 1 s fMP4 HLS, same player page.
    let (reference, reference_note) = match reference_latency() {
        Ok(l) => (Some(l), String::new()),
        Err(e) => (None, format!("{e:#}")),
    };
    Ok(LatencyResults {
        showmix,
        catch_up,
        pdt,
        reference,
        reference_note,
    })
}

/// ffmpeg's command for the reference: two live test sources side by side (a PK mix), a
/// wall-clock stamp burnt in when each frame is made, x264 with the same settings as the
/// ladder's top rung, 1 s fMP4 HLS segments.
fn ffmpeg_reference(dir: &Path) -> Command {
    // Bit b of (wall clock ms mod 2^32) as a white (1) or black (0) 16x16 block, left to right.
    let geq =
        "lum='255*mod(floor(mod(T*1000\\,4294967296)/pow(2\\,floor(X/16)))\\,2)':cb=128:cr=128";
    let graph = format!(
        "[0:v][1:v]hstack,format=yuv420p,settb=AVTB,setpts=RTCTIME,split[m][c];\
         [c]crop=512:16:0:0,geq={geq}[code];[m][code]overlay=0:0,setpts=N/30/TB[v]"
    );
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(["-re", "-f", "lavfi", "-i", "testsrc2=s=640x720:r=30"])
        .args(["-re", "-f", "lavfi", "-i", "smptebars=s=640x720:r=30"])
        .args(["-re", "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000"])
        .args(["-filter_complex", &graph, "-map", "[v]", "-map", "2:a"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-sc_threshold",
            "0",
            "-bf",
            "0",
        ])
        .args(["-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "2500k"])
        .args(["-c:a", "aac", "-b:a", "128k", "-ar", "48000"])
        .args(["-f", "hls", "-hls_time", "1", "-hls_list_size", "10"])
        .args([
            "-hls_flags",
            "delete_segments+independent_segments+program_date_time+temp_file",
        ])
        .args(["-hls_segment_type", "fmp4"])
        .arg(dir.join("index.m3u8"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn reference_latency() -> Result<Latency> {
    let dir = tempfile::tempdir()?;
    let child = ffmpeg_reference(dir.path())
        .spawn()
        .context("cannot start ffmpeg")?;
    let mut ff = Reaped(child);
    // hls.js joins a regular live playlist three segments behind its end: wait for five.
    let by = Instant::now() + Duration::from_secs(30);
    loop {
        let n = std::fs::read_to_string(dir.path().join("index.m3u8"))
            .map(|t| t.matches("#EXTINF").count())
            .unwrap_or(0);
        if n >= 5 {
            break;
        }
        if let Ok(Some(st)) = ff.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = ff.0.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            bail!("ffmpeg exited ({st}): {err}");
        }
        ensure!(Instant::now() < by, "ffmpeg wrote no playlist within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = driver::play(&Play {
        serve: Some(dir.path().to_owned()),
        warmup_s: 5.0,
        seconds: SAMPLE_S,
        sample_ms: 200,
        clock: true,
        deadline_s: 90,
        ..Play::new("/ref/index.m3u8")
    });
    drop(ff);
    let l = latency_of(&report?)?;
    ensure!(
        !l.clock_ms.is_empty(),
        "no clock stamp read from the reference"
    );
    Ok(l)
}

// ---------------------------------------------------------------------------------------------
// (b) Blocking playlist reload

struct ReloadSample {
    /// Response received - part published (ms).
    after_publish_ms: f64,
    /// Response received - request sent (ms): the request did block.
    blocked_ms: f64,
}

async fn get_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    path: &str,
) -> Result<(u16, Bytes)> {
    let req = hyper::Request::get(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    let st = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((st, body))
}

async fn reload_worker(
    addr: SocketAddr,
    room: String,
    rung: &'static str,
    track: Arc<showmix::hls::Track>,
    n: usize,
) -> Result<(Vec<ReloadSample>, usize)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let base = format!("/live/{room}/{rung}/index.m3u8");
    let mut out = Vec::new();
    let mut not_blocking = 0;
    let end = Instant::now() + Duration::from_secs(120);
    while out.len() < n && Instant::now() < end {
        let (st, body) = get_on(&mut sender, addr, &base).await?;
        ensure!(st == 200, "{base}: {st}");
        let (m, p) = preload_hint(&String::from_utf8_lossy(&body)).context("no preload hint")?;
        // Stamp the publication of that part from the engine's own store.
        let t = track.clone();
        let waiter = tokio::spawn(async move {
            let armed = Instant::now();
            let r = t.wait_for(m, Some(p)).await;
            (armed, Instant::now(), r)
        });
        let sent = Instant::now();
        let (st, body) = get_on(
            &mut sender,
            addr,
            &format!("{base}?_HLS_msn={m}&_HLS_part={p}"),
        )
        .await?;
        let received = Instant::now();
        ensure!(st == 200, "blocking reload {m}.{p} on {rung}: {st}");
        let (armed, published, r) = waiter.await?;
        r.map_err(|e| anyhow::anyhow!("wait_for({m}, {p}): {e}"))?;
        let text = String::from_utf8_lossy(&body);
        ensure!(
            text.contains(&format!("part{m}.{p}.m4s"))
                || text.contains(&format!("part{}.0.m4s", m + 1)),
            "the answer to {m}.{p} does not list it:\n{text}"
        );
        if published.duration_since(armed) < Duration::from_millis(1)
            || received.duration_since(sent) < Duration::from_millis(1)
        {
            // The part was out before the request: nothing was blocked.
            not_blocking += 1;
            continue;
        }
        out.push(ReloadSample {
            after_publish_ms: if received >= published {
                ms(received - published)
            } else {
                -ms(published - received)
            },
            blocked_ms: ms(received - sent),
        });
    }
    Ok((out, not_blocking))
}

fn bench_reload(b: &Bench) -> Result<BTreeMap<&'static str, (Vec<ReloadSample>, usize)>> {
    println!("\n(b) blocking playlist reload: response received - part published");
    b.room("br", true)?;
    std::thread::sleep(Duration::from_secs(2));
    let pkg = b.engine.hls("br").context("no HLS for br")?;
    // The client side gets its own runtime and threads, as a player in another process would.
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()?;
    let per_rung = 70;
    let results = client.block_on(async {
        let mut handles = Vec::new();
        for rung in RUNGS {
            let track = pkg.room.track(rung).cloned().context("track")?;
            handles.push((
                rung,
                tokio::spawn(reload_worker(b.addr, "br".into(), rung, track, per_rung)),
            ));
        }
        let mut out = BTreeMap::new();
        for (rung, h) in handles {
            out.insert(rung, h.await??);
        }
        anyhow::Ok(out)
    })?;
    drop(client);
    b.delete("br")?;
    Ok(results)
}

// ---------------------------------------------------------------------------------------------
// (c) Packaging cost

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (comm, fields after the comm) of a /proc stat file.
fn stat_fields(text: &str) -> Option<(String, Vec<u64>)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    // Fields from 3 (state) on; state is not a number: keep a 0 in its place.
    let rest = text[close + 1..]
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    Some((comm, rest))
}

/// (utime + stime, cutime + cstime) of this process, in ticks.
fn process_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f = stat_fields(&text).map(|(_, f)| f).unwrap_or_default();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    // Fields 14..17 of stat(5): utime, stime, cutime, cstime (index 11.. after the comm).
    (at(11) + at(12), at(13) + at(14))
}

/// tid -> (name, utime + stime ticks) of every thread of this process.
fn thread_ticks() -> HashMap<u64, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(tid) = e.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(e.path().join("stat"))
            && let Some((comm, f)) = stat_fields(&text)
        {
            let t = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
            out.insert(tid, (comm, t));
        }
    }
    out
}

/// The rung a packager thread works for (`hls-vq-720p:src`, `hls-mux-720p:sr`), if it is one.
fn packager_rung(comm: &str) -> Option<&'static str> {
    let rest = ["hls-vq-", "hls-aq-", "hls-mux-"]
        .iter()
        .find_map(|p| comm.strip_prefix(p))?;
    let rung = rest.split(':').next()?;
    RUNGS.iter().copied().find(|r| *r == rung)
}

struct CpuWindow {
    hls: bool,
    wall_s: f64,
    /// Process CPU seconds.
    cpu_s: f64,
    /// Packager threads' CPU seconds per rung.
    packager_s: BTreeMap<&'static str, f64>,
    packager_threads: Vec<String>,
}

const CPU_WINDOW_S: u64 = 10;

fn cpu_window(b: &Bench, hls: bool, tck: f64, grab: Option<&Path>) -> Result<CpuWindow> {
    b.room("cpu", hls)?;
    // Let the encoders settle (rate control, first keyframes).
    std::thread::sleep(Duration::from_secs(3));
    let (t0, p0, th0) = (Instant::now(), process_ticks().0, thread_ticks());
    std::thread::sleep(Duration::from_secs(CPU_WINDOW_S));
    let (t1, p1, th1) = (Instant::now(), process_ticks().0, thread_ticks());
    let mut packager_s: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut packager_threads = Vec::new();
    for (tid, (comm, ticks)) in &th1 {
        if let Some(rung) = packager_rung(comm) {
            let before = th0.get(tid).map_or(0, |(_, t)| *t);
            *packager_s.entry(rung).or_default() += (ticks - before) as f64 / tck;
            packager_threads.push(comm.clone());
        }
    }
    packager_threads.sort();
    if let Some(dest) = grab {
        grab_rung(b, "cpu", "720p", dest)?;
    }
    b.delete("cpu")?;
    Ok(CpuWindow {
        hls,
        wall_s: (t1 - t0).as_secs_f64(),
        cpu_s: (p1 - p0) as f64 / tck,
        packager_s,
        packager_threads,
    })
}

/// The rung's init segment and every complete segment its playlist lists, as one fragmented
/// MP4 file: the same encoded rung, for ffmpeg to repackage.
fn grab_rung(b: &Bench, room: &str, rung: &str, dest: &Path) -> Result<()> {
    let (st, text) = b.call("GET", &format!("/live/{room}/{rung}/index.m3u8"), None)?;
    ensure!(st == 200, "playlist {st}");
    let text = String::from_utf8_lossy(&text);
    let (st, init) = b.call("GET", &format!("/live/{room}/{rung}/init.mp4"), None)?;
    ensure!(st == 200, "init {st}");
    let mut file = init.to_vec();
    let mut n = 0;
    for seg in text
        .lines()
        .filter(|l| l.starts_with("seg") && l.ends_with(".m4s"))
    {
        let (st, body) = b.call("GET", &format!("/live/{room}/{rung}/{seg}"), None)?;
        ensure!(st == 200, "{seg}: {st}");
        file.extend_from_slice(&body);
        n += 1;
    }
    ensure!(n >= 5, "only {n} segments listed");
    std::fs::write(dest, file)?;
    Ok(())
}

/// ffmpeg repackaging `input` (played `loops + 1` times; at its real-time pace with `live`, as
/// a live repackager would) into fMP4 HLS: (CPU seconds, content seconds).
fn ffmpeg_repackage(input: &Path, loops: u32, live: bool, tck: f64) -> Result<(f64, f64)> {
    let probe = showmix_tests::run(Command::new("ffprobe").args([
        "-v",
        "error",
        "-show_entries",
        "format=duration",
        "-of",
        "csv=p=0",
        input.to_str().context("utf-8 path")?,
    ]))?;
    let dur: f64 = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .context("input duration")?;
    let out = tempfile::tempdir()?;
    let before = process_ticks().1;
    showmix_tests::run(
        Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-nostdin",
                "-stream_loop",
                &loops.to_string(),
            ])
            .args(if live { &["-re"][..] } else { &[][..] })
            .arg("-i")
            .arg(input)
            .args([
                "-c",
                "copy",
                "-f",
                "hls",
                "-hls_time",
                "1",
                "-hls_list_size",
                "10",
            ])
            .args(["-hls_flags", "delete_segments+independent_segments"])
            .args(["-hls_segment_type", "fmp4"])
            .arg(out.path().join("index.m3u8")),
    )?;
    let after = process_ticks().1;
    Ok(((after - before) as f64 / tck, dur * f64::from(loops + 1)))
}

struct CpuResults {
    windows: Vec<CpuWindow>,
    /// ffmpeg as fast as it goes over 60 passes of the rung, and at the real-time pace over one.
    ffmpeg: std::result::Result<(f64, f64), String>,
    ffmpeg_live: std::result::Result<(f64, f64), String>,
    tck: f64,
}

fn bench_cpu(b: &Bench) -> Result<CpuResults> {
    println!(
        "\n(c) packaging cost: the PK room with LL-HLS on / off, {CPU_WINDOW_S} s each, 2 rounds"
    );
    let tck = clk_tck();
    let dir = tempfile::tempdir()?;
    let rung_file = dir.path().join("720p.mp4");
    let mut windows = Vec::new();
    for round in 0..2 {
        for hls in [true, false] {
            let grab = (round == 0 && hls).then_some(rung_file.as_path());
            let w = cpu_window(b, hls, tck, grab)?;
            println!(
                "round {round} hls {:<5}: process {:.2} cores, packager threads {:.3} cores {:?}",
                if hls { "on" } else { "off" },
                w.cpu_s / w.wall_s,
                w.packager_s.values().sum::<f64>() / w.wall_s,
                w.packager_threads
            );
            windows.push(w);
        }
    }
    let ffmpeg = ffmpeg_repackage(&rung_file, 59, false, tck).map_err(|e| format!("{e:#}"));
    let ffmpeg_live = ffmpeg_repackage(&rung_file, 0, true, tck).map_err(|e| format!("{e:#}"));
    Ok(CpuResults {
        windows,
        ffmpeg,
        ffmpeg_live,
        tck,
    })
}

// ---------------------------------------------------------------------------------------------

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    driver::check_ready()?;
    showmix::init()?;
    let t0 = Instant::now();
    let b = Bench::start()?;
    let lat = bench_latency(&b)?;
    let reload = bench_reload(&b)?;
    let cpu = bench_cpu(&b)?;
    drop(b);
    summary(&lat, &reload, &cpu);
    println!("\n(bench ran {:.0} s)", t0.elapsed().as_secs_f64());
    Ok(())
}

fn summary(
    lat: &LatencyResults,
    reload: &BTreeMap<&'static str, (Vec<ReloadSample>, usize)>,
    cpu: &CpuResults,
) {
    println!("\n================ LL-HLS benchmark summary ================");
    // (a)
    let s = &lat.showmix;
    let pdt_s: Vec<f64> = s.pdt_ms.iter().map(|v| v / 1000.0).collect();
    let bias = quantile(&lat.pdt.bias_ms, 0.5);
    println!("(a) latency, frame mixed -> playing in hls.js (headless Chromium, loopback), s:");
    println!(
        "    showmix LL-HLS, now - PDT        median {:.3}  p95 {:.3}  (target <= 1.5; n {})",
        quantile(&pdt_s, 0.5),
        quantile(&pdt_s, 0.95),
        pdt_s.len()
    );
    println!(
        "    showmix LL-HLS, hls.latency      median {:.3}  p95 {:.3}",
        quantile(&s.hls_latency_s, 0.5),
        quantile(&s.hls_latency_s, 0.95)
    );
    println!(
        "    PDT check: PDT - wall clock the frame left the mix, ms: median {:.1} min {:.1} max {:.1} \
         ({} segments, {} unmatched)",
        bias,
        lat.pdt.bias_ms.iter().cloned().fold(f64::NAN, f64::min),
        lat.pdt.bias_ms.iter().cloned().fold(f64::NAN, f64::max),
        lat.pdt.bias_ms.len(),
        lat.pdt.unmatched
    );
    let corrected: Vec<f64> = pdt_s.iter().map(|v| v + bias / 1000.0).collect();
    if bias.is_finite() {
        println!(
            "    showmix, corrected by that bias  median {:.3}  p95 {:.3}",
            quantile(&corrected, 0.5),
            quantile(&corrected, 0.95)
        );
    }
    let cu: Vec<f64> = lat.catch_up.pdt_ms.iter().map(|v| v / 1000.0).collect();
    println!(
        "    with hls.js catch-up (maxLiveSyncPlaybackRate 1.5), now - PDT median {:.3}  p95 {:.3}  \
         (hls.latency median {:.3})",
        quantile(&cu, 0.5),
        quantile(&cu, 0.95),
        quantile(&lat.catch_up.hls_latency_s, 0.5)
    );
    println!(
        "    a segment's first sample is {:.1} ms (median) from the nearest mixed frame's running time",
        quantile(&lat.pdt.start_offset_ms, 0.5)
    );
    println!(
        "    server share (segment start mixed -> its first part in the store), ms: median {:.1} max {:.1}",
        quantile(&lat.pdt.mix_to_store_ms, 0.5),
        lat.pdt
            .mix_to_store_ms
            .iter()
            .cloned()
            .fold(f64::NAN, f64::max)
    );
    let showmix_median = if bias.is_finite() {
        quantile(&corrected, 0.5)
    } else {
        quantile(&pdt_s, 0.5)
    };
    match &lat.reference {
        Some(r) => {
            let clock: Vec<f64> = r.clock_ms.iter().map(|v| v / 1000.0).collect();
            let pdt: Vec<f64> = r.pdt_ms.iter().map(|v| v / 1000.0).collect();
            println!(
                "    ffmpeg 1 s fMP4 HLS, burnt-in clock median {:.3}  p95 {:.3}  (its own PDT says {:.3}; \
                 hls.latency {:.3}; startup {:.0} ms, stalls {})",
                quantile(&clock, 0.5),
                quantile(&clock, 0.95),
                quantile(&pdt, 0.5),
                quantile(&r.hls_latency_s, 0.5),
                r.startup_ms,
                r.stalls
            );
            println!(
                "    ratio showmix / ffmpeg (median, same hls.js defaults): {:.2}  (ffmpeg is {:.1}x showmix's latency)",
                showmix_median / quantile(&clock, 0.5),
                quantile(&clock, 0.5) / showmix_median
            );
        }
        None => println!("    ffmpeg reference failed: {}", lat.reference_note),
    }
    // (b)
    println!(
        "(b) blocking playlist reload, response received - part published (Track::wait_for), ms:"
    );
    let mut all = Vec::new();
    for (rung, (v, skipped)) in reload {
        let after: Vec<f64> = v.iter().map(|s| s.after_publish_ms).collect();
        let blocked: Vec<f64> = v.iter().map(|s| s.blocked_ms).collect();
        println!(
            "    {rung:<5} {}  (blocked median {:.0} ms; {skipped} requests not blocking, left out)",
            stats_line(&after),
            quantile(&blocked, 0.5)
        );
        all.extend(after);
    }
    println!("    all   {}  (target p99 <= 10 ms)", stats_line(&all));
    println!(
        "    ffmpeg's HLS has no blocking reload: a player polls (hls.js: every target duration when the playlist did not change), so a new segment waits ~0.5 s on average to be seen."
    );
    // (c)
    let on: Vec<&CpuWindow> = cpu.windows.iter().filter(|w| w.hls).collect();
    let off: Vec<&CpuWindow> = cpu.windows.iter().filter(|w| !w.hls).collect();
    let cores = |ws: &[&CpuWindow]| {
        ws.iter().map(|w| w.cpu_s).sum::<f64>() / ws.iter().map(|w| w.wall_s).sum::<f64>()
    };
    let (c_on, c_off) = (cores(&on), cores(&off));
    println!(
        "(c) packaging cost (CPU clock ticks of {:.0} Hz; cores = CPU s per content s):",
        cpu.tck
    );
    println!(
        "    room with LL-HLS {:.3} cores, without {:.3}: difference {:.3} cores ({:.1} % of the room; {:.4} per rung)",
        c_on,
        c_off,
        c_on - c_off,
        100.0 * (c_on - c_off) / c_on,
        (c_on - c_off) / 3.0
    );
    let on_wall: f64 = on.iter().map(|w| w.wall_s).sum();
    for rung in RUNGS {
        let s: f64 = on
            .iter()
            .map(|w| w.packager_s.get(rung).copied().unwrap_or(0.0))
            .sum();
        println!(
            "    packager threads {rung:<5} {:.4} cores = {:.2} % of the room",
            s / on_wall,
            100.0 * s / on_wall / c_on
        );
    }
    let per_rung_threads: f64 = on
        .iter()
        .map(|w| w.packager_s.values().sum::<f64>())
        .sum::<f64>()
        / on_wall
        / 3.0;
    for (how, r) in [
        ("as fast as it goes", &cpu.ffmpeg),
        ("at the live pace (-re)", &cpu.ffmpeg_live),
    ] {
        match r {
            Ok((cpu_s, content_s)) => {
                let ff = cpu_s / content_s;
                println!(
                    "    ffmpeg -c copy -f hls (fMP4), same 720p rung, {how}: {cpu_s:.2} CPU s for \
                     {content_s:.0} s = {ff:.4} cores; showmix packager per rung / ffmpeg = {:.2}",
                    per_rung_threads / ff
                );
            }
            Err(e) => println!("    ffmpeg repackaging ({how}) failed: {e}"),
        }
    }
    println!("===========================================================");
}
