//! Live ingest benchmarks, against an in-process `showmix serve` with its RTMP listener on
//! loopback and real ffmpeg publishers:
//!
//! 1. Join time: from the publisher's TCP connection being accepted to the first mixed frame
//!    that shows its picture, for a publisher that starts with a keyframe (720p30 red,
//!    libx264 ultrafast/zerolatency, `-g 30`, `-re`, AAC) into a `single` room on a black
//!    background; median and p95; target median <= 300 ms. Three sets: 20 re-joins (the seat
//!    had a publisher before, as on a reconnect) with ffmpeg's default TCP options; 10
//!    re-joins with `-tcp_nodelay 1`; 8 joins into a freshly added seat with `-tcp_nodelay 1`.
//!    Each split into: accept -> publisher bin added (RTMP handshake and commands) -> publish
//!    accepted -> first bytes after it (ffmpeg's encoders are up and it writes its header) ->
//!    first decoded frame entering the seat's compositor pad (`frames_received > 0`) -> first
//!    mixed frame showing it.
//! 2. Stall detection: from the publisher's last packet to the placeholder in the mix
//!    (`hold_last_frame_ms = 0`, `stall_timeout_ms = 500`); target <= 500 ms + 2 frames.
//!    (a) SIGKILL: the OS closes the socket (disconnect), after each of the 20 re-joins;
//!    (b) SIGSTOP: the TCP connection stays open and nothing more comes (true stall
//!    detection), 10 trials.
//! 3. CPU per live seat at 720p30 (~2.5 Mbit/s H.264 + AAC): the engine's process CPU
//!    (`getrusage(RUSAGE_SELF)`) in a grid-4 room with 1 and 4 publishers minus the same room
//!    with none, per seat, with a per-thread breakdown (`/proc/self/task`); next to ffmpeg
//!    decoding the same stream (`-f null -`, and with a scale to the tile size; child rusage)
//!    per second of content.
//!
//! How instants are taken: mixed frames by a buffer probe on the compositor's src pad (centre
//! pixel, Y plane: red ~81, black 16); frames entering the mix by a probe on the seat's
//! compositor sink pad; the publisher's bin by the pipeline's `element-added`; the accept,
//! publish and first-bytes instants by a thread polling the RTMP listener's counters every
//! 0.25 ms (its real resolution is reported).
//!
//! Run: `cargo bench -p showmix-benches --bench ingest` (about 2 minutes). Writes
//! `target/bench/ingest.json`.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use gst::prelude::*;
use gst_video::prelude::*;
use serde_json::{Value, json};
use showmix::api::http::request;
use showmix::config::Config;
use showmix::ingest::Counters;
use showmix::presets::Presets;
use showmix::service::Engine;

const JOINS: usize = 20;
const STOP_TRIALS: usize = 10;
const FRESH: usize = 8;
const STALL_TIMEOUT_MS: u64 = 500;
const FPS: f64 = 30.0;
const CPU_WINDOW: Duration = Duration::from_secs(10);
const CLIP_SECS: u32 = 10;

/// Raw libc calls the benchmark needs (process CPU time, signals), declared here so the
/// benches crate needs no new dependency. x86_64/aarch64 Linux layouts.
mod sys {
    pub const RUSAGE_SELF: i32 = 0;
    pub const RUSAGE_CHILDREN: i32 = -1;
    pub const SIGSTOP: i32 = 19;

    /// `struct rusage`: two `timeval`s, then 14 `long`s.
    #[repr(C)]
    #[derive(Default)]
    pub struct Rusage {
        pub utime: [i64; 2],
        pub stime: [i64; 2],
        pub rest: [i64; 14],
    }

    unsafe extern "C" {
        pub fn getrusage(who: i32, usage: *mut Rusage) -> i32;
        pub fn kill(pid: i32, sig: i32) -> i32;
        pub fn sysconf(name: i32) -> i64;
    }
    pub const SC_CLK_TCK: i32 = 2;
}

/// User + system CPU seconds of this process (`RUSAGE_SELF`) or its reaped children.
fn cpu_seconds(who: i32) -> f64 {
    let mut u = sys::Rusage::default();
    // SAFETY: `u` is a valid, writable `struct rusage`; `who` is RUSAGE_SELF or _CHILDREN.
    let rc = unsafe { sys::getrusage(who, &mut u) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: [i64; 2]| t[0] as f64 + t[1] as f64 / 1e6;
    tv(u.utime) + tv(u.stime)
}

/// CPU seconds of each live thread of this process by thread id: (name with digits
/// dropped, seconds), from `/proc/self/task/*/stat`.
fn thread_cpu() -> HashMap<u64, (String, f64)> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { sys::sysconf(sys::SC_CLK_TCK) }.max(1) as f64;
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<u64>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ppid ...": comm may hold anything, so cut at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name: String = stat[open + 1..close]
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime are fields 14 and 15 of the line, 12th and 13th after the comm.
        out.insert(tid, (name, (ticks(11) + ticks(12)) / hz));
    }
    out
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn ms(from: Instant, to: Instant) -> f64 {
    if to >= from {
        to.duration_since(from).as_secs_f64() * 1000.0
    } else {
        -(from.duration_since(to).as_secs_f64() * 1000.0)
    }
}

/// Waits (polling every 2 ms) until `f` gives a value.
fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// An ffmpeg child, SIGKILLed and reaped on drop.
struct Publisher(Child);

impl Publisher {
    /// A 720p30 solid-colour picture with a tone, encoded live; starts with a keyframe.
    fn solid(url: &str, colour: Colour, nodelay: bool) -> Result<Publisher> {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-re", "-f", "lavfi", "-i"])
            .arg(format!("color=c={}:s=1280x720:r=30", colour.name()))
            .args(["-f", "lavfi", "-i", "sine=f=440:sample_rate=48000"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args([
                "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k",
            ]);
        if nodelay {
            // ffmpeg's TCP client leaves Nagle's algorithm on unless asked.
            cmd.args(["-tcp_nodelay", "1"]);
        }
        cmd.args(["-f", "flv", url]);
        Self::spawn(cmd)
    }

    /// The same file over and over, in real time, without re-encoding.
    fn looped(clip: &std::path::Path, url: &str) -> Result<Publisher> {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-re", "-stream_loop", "-1", "-i"])
            .arg(clip)
            .args(["-c", "copy", "-f", "flv", url]);
        Self::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Result<Publisher> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok(Publisher(cmd.spawn().context("ffmpeg starts")?))
    }

    fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own, not yet reaped, child.
        unsafe {
            sys::kill(self.0.id() as i32, sig);
        }
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the centre of a mixed frame shows. Publishers alternate red and blue, so a frame left
/// over from the previous publisher is told apart from the new one's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Colour {
    Black,
    Blue,
    Red,
}

impl Colour {
    /// From BT.601 limited-range luma: black 16, blue 41, red 81.
    fn of_luma(y: u8) -> Colour {
        match y {
            0..28 => Colour::Black,
            28..61 => Colour::Blue,
            _ => Colour::Red,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Colour::Black => "black",
            Colour::Blue => "blue",
            Colour::Red => "red",
        }
    }
}

/// What the probes saw in the room's pipeline.
#[derive(Default)]
struct Watch {
    /// Changes of the centre of mixed frames leaving the compositor: (when, colour).
    mix: Mutex<Vec<(Instant, Colour)>>,
    /// Buffers entering the mix on a seat's compositor pad: the first since `arm`, the last.
    seat_first: Mutex<Option<Instant>>,
    seat_last: Mutex<Option<Instant>>,
    /// A publisher's bin added to the room's pipeline (inside `attach_publisher`), first
    /// since `arm`.
    bin_added: Mutex<Option<Instant>>,
    compositor: Mutex<Option<gst::Element>>,
    probed: Mutex<Vec<gst::Pad>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Watch {
    fn arm(&self) {
        *lock(&self.seat_first) = None;
        *lock(&self.bin_added) = None;
    }

    /// The first mixed frame at or after `t` that turned `colour`.
    fn turned(&self, colour: Colour, t: Instant) -> Option<Instant> {
        lock(&self.mix)
            .iter()
            .find(|(w, c)| *c == colour && *w >= t)
            .map(|(w, _)| *w)
    }

    fn shows(&self) -> Colour {
        lock(&self.mix).last().map_or(Colour::Black, |(_, c)| *c)
    }

    /// Probes the compositor of `pipeline` (its output, its seat pads) and the pipeline's
    /// publisher bins coming in.
    fn attach(self: &Arc<Self>, pipeline: &gst::Pipeline) -> Result<()> {
        let comp = pipeline
            .by_name("compositor")
            .context("no compositor in the room")?;
        let w = self.clone();
        comp.static_pad("src").context("compositor src")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |pad, info| {
                let (Some(buf), Some(caps)) = (info.buffer(), pad.current_caps()) else {
                    return gst::PadProbeReturn::Ok;
                };
                let Ok(vi) = gst_video::VideoInfo::from_caps(&caps) else {
                    return gst::PadProbeReturn::Ok;
                };
                let Ok(frame) = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &vi) else {
                    return gst::PadProbeReturn::Ok;
                };
                let stride = frame.plane_stride()[0] as usize;
                let (x, y) = (vi.width() as usize / 2, vi.height() as usize / 2);
                let Some(&luma) = frame.plane_data(0).ok().and_then(|d| d.get(y * stride + x))
                else {
                    return gst::PadProbeReturn::Ok;
                };
                let colour = Colour::of_luma(luma);
                let mut mix = lock(&w.mix);
                if mix.last().is_none_or(|(_, c)| *c != colour) {
                    mix.push((Instant::now(), colour));
                }
                gst::PadProbeReturn::Ok
            },
        );
        let w = self.clone();
        pipeline.connect_element_added(move |_, e| {
            if e.name().starts_with("seat-") {
                lock(&w.bin_added).get_or_insert_with(Instant::now);
            }
        });
        *lock(&self.compositor) = Some(comp);
        ensure!(self.probe_seats() == 1, "expected one seat pad");
        Ok(())
    }

    /// Probes the compositor's seat pads (all but the background's) not probed yet; returns
    /// how many it found.
    fn probe_seats(self: &Arc<Self>) -> usize {
        let Some(comp) = lock(&self.compositor).clone() else {
            return 0;
        };
        let mut probed = lock(&self.probed);
        let mut found = 0;
        for pad in comp.sink_pads() {
            let upstream = pad
                .peer()
                .and_then(|p| p.parent_element())
                .map(|e| e.name().to_string());
            if upstream.as_deref() == Some("background-caps") || probed.contains(&pad) {
                continue;
            }
            found += 1;
            let w = self.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                let now = Instant::now();
                lock(&w.seat_first).get_or_insert(now);
                *lock(&w.seat_last) = Some(now);
                gst::PadProbeReturn::Ok
            });
            probed.push(pad);
        }
        found
    }
}

/// Instants of the RTMP listener's counters changing, and of the room's seat turning
/// `connected`, first since `reset`.
#[derive(Default, Clone, Copy, Debug)]
struct IngestTimes {
    accepted: Option<Instant>,
    published: Option<Instant>,
    /// First bytes read after the publish was accepted: ffmpeg writing its FLV header and
    /// first packets, once its encoders are up.
    media: Option<Instant>,
    /// The room's periodic check (`tick`, at least every 100 ms) set the seat `connected`.
    connected: Option<Instant>,
    /// Longest time between two looks at the counters: the instants' resolution.
    max_gap_ms: f64,
}

struct IngestPoller {
    times: Arc<Mutex<IngestTimes>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl IngestPoller {
    fn start(engine: Arc<Engine>) -> IngestPoller {
        let times = Arc::new(Mutex::new(IngestTimes::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (times.clone(), stop.clone());
        let c: Arc<Counters> = engine.rtmp_counters.clone();
        let thread = std::thread::spawn(move || {
            let mut round = 0u64;
            let mut conns = c.connections_total.load(Relaxed);
            let mut pubs = c.publishes_accepted.load(Relaxed);
            let mut bytes_after_publish: Option<u64> = None;
            let mut last = Instant::now();
            while !s.load(Relaxed) {
                let now = Instant::now();
                let (nc, np, nb) = (
                    c.connections_total.load(Relaxed),
                    c.publishes_accepted.load(Relaxed),
                    c.bytes_in.load(Relaxed),
                );
                let mut times = lock(&t);
                times.max_gap_ms = times.max_gap_ms.max(ms(last, now));
                last = now;
                if nc != conns {
                    conns = nc;
                    times.accepted.get_or_insert(now);
                }
                if np != pubs {
                    pubs = np;
                    times.published.get_or_insert(now);
                    bytes_after_publish = Some(nb);
                } else if let Some(b) = bytes_after_publish
                    && nb > b
                {
                    bytes_after_publish = None;
                    times.media.get_or_insert(now);
                }
                let look = times.connected.is_none() && times.accepted.is_some();
                drop(times);
                // The seat's state lives under the room's seats lock: look every 1 ms only.
                round += 1;
                if look && round.is_multiple_of(4) {
                    let mut connected = false;
                    engine.for_each_room(|_, room| {
                        connected |= room
                            .seats()
                            .iter()
                            .any(|(_, st)| st.parts().0 == "connected");
                    });
                    if connected {
                        lock(&t).connected.get_or_insert(now);
                    }
                }
                std::thread::sleep(Duration::from_micros(250));
            }
        });
        IngestPoller {
            times,
            stop,
            thread: Some(thread),
        }
    }

    fn reset(&self) {
        *lock(&self.times) = IngestTimes::default();
    }

    fn get(&self) -> IngestTimes {
        *lock(&self.times)
    }
}

impl Drop for IngestPoller {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The API of the in-process server.
struct Api {
    rt: tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let body = body.map(|b| serde_json::to_vec(&b)).transpose()?;
        let (st, _, b) = self.rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                request(self.addr, method, path, None, body),
            )
            .await
        })??;
        let v = serde_json::from_slice(&b).unwrap_or(Value::Null);
        Ok((st, v))
    }

    fn create(&self, body: Value) -> Result<Value> {
        let (st, v) = self.call("POST", "/v1/rooms", Some(body))?;
        ensure!(st == 201, "create room ({st}): {v}");
        Ok(v)
    }

    fn delete(&self, room: &str) -> Result<()> {
        let (st, v) = self.call("DELETE", &format!("/v1/rooms/{room}"), None)?;
        ensure!(st == 204, "delete room ({st}): {v}");
        Ok(())
    }

    /// (state, publisher protocol or null) of a seat.
    fn seat(&self, room: &str, seat: &str) -> Result<(String, Value)> {
        let (_, v) = self.call("GET", &format!("/v1/rooms/{room}"), None)?;
        let s = v["seats"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["id"] == seat))
            .with_context(|| format!("no seat {seat} in {v}"))?;
        Ok((
            s["state"].as_str().unwrap_or_default().to_owned(),
            s["ingest"]["publisher"].clone(),
        ))
    }

    /// Per seat: (frames_received, frames_dropped); and the room's mixed frames.
    fn frames(&self, room: &str) -> Result<(Vec<(u64, u64)>, u64)> {
        let (_, v) = self.call("GET", &format!("/v1/rooms/{room}/stats"), None)?;
        let seats = v["seats"]
            .as_array()
            .context("stats without seats")?
            .iter()
            .map(|s| {
                (
                    s["frames_received"].as_u64().unwrap_or(0),
                    s["frames_dropped"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        Ok((seats, v["mixed_frames"].as_u64().unwrap_or(0)))
    }
}

fn rtmp_url(room: &Value, seat: &str) -> Result<String> {
    room["seats"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == seat))
        .and_then(|s| s["ingest"]["rtmp"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("no RTMP URL for seat {seat} in {room}"))
}

/// One join, measured from the instants the poller and the probes recorded (ms).
#[derive(Clone, Copy, Debug)]
struct JoinSample {
    spawn_to_accept: f64,
    /// RTMP handshake, connect, createStream, publish: until the seat's bin is built.
    accept_to_bin: f64,
    /// The rest of `attach_publisher` (link, start the bin) and the publish reply.
    bin_to_publish: f64,
    publish_to_media: f64,
    media_to_seat_frame: f64,
    seat_frame_to_mix: f64,
    /// Seat frame -> the room's tick calling the seat `connected` (which lifts the placeholder
    /// a re-joining seat had), and from there to the mixed frame.
    seat_frame_to_connected: f64,
    connected_to_mix: f64,
    /// The headline figure: accept -> first mixed frame showing the seat.
    join: f64,
    /// Accept -> first frame entering the seat's compositor pad (frames_received > 0).
    accept_to_seat_frame: f64,
    /// Resolution of the listener-counter instants during this join.
    poll_gap: f64,
    /// The previous publisher's last frame shown again before the new one: for how long
    /// (ms), and how old it was when it came back (ms).
    stale: Option<(f64, f64)>,
}

impl JoinSample {
    fn line(&self) -> String {
        format!(
            "{:6.1} ms  (spawn->accept {:5.1} | accept->bin {:5.1} | ->publish ok {:5.1} | ->first bytes {:5.1} | ->seat frame {:5.1} | ->mixed {:5.1} [->connected {:5.1}, ->mixed {:5.1}])",
            self.join,
            self.spawn_to_accept,
            self.accept_to_bin,
            self.bin_to_publish,
            self.publish_to_media,
            self.media_to_seat_frame,
            self.seat_frame_to_mix,
            self.seat_frame_to_connected,
            self.connected_to_mix
        ) + &self.stale.map_or(String::new(), |(d, age)| {
            format!("  STALE: the previous publisher's last frame ({age:.0} ms old) shown for {d:.0} ms first")
        })
    }
}

/// Starts a publisher of `colour` and waits for its picture in the mix.
fn join(
    url: &str,
    colour: Colour,
    nodelay: bool,
    watch: &Watch,
    poller: &IngestPoller,
) -> Result<(Publisher, JoinSample)> {
    ensure!(
        watch.shows() == Colour::Black,
        "the tile is not black before the join"
    );
    let previous_last = *lock(&watch.seat_last);
    watch.arm();
    poller.reset();
    let spawned = Instant::now();
    let p = Publisher::solid(url, colour, nodelay)?;
    let red = wait_for("the seat in the mix", Duration::from_secs(10), || {
        watch.turned(colour, spawned)
    })?;
    // Anything else than black before it is a frame left over from the previous publisher.
    let stale = {
        let mix = lock(&watch.mix);
        let i = mix
            .iter()
            .position(|(w, c)| *w >= spawned && *w < red && *c != Colour::Black);
        i.map(|i| {
            let until = mix.get(i + 1).map_or(red, |x| x.0);
            let age = previous_last.map_or(f64::NAN, |l| ms(l, mix[i].0));
            (ms(mix[i].0, until), age)
        })
    };
    // The poller runs behind the probes by up to one poll.
    let t = wait_for("the listener's counters", Duration::from_secs(1), || {
        let t = poller.get();
        (t.accepted.is_some()
            && t.published.is_some()
            && t.media.is_some()
            && t.connected.is_some())
        .then_some(t)
    })
    .with_context(|| format!("poller saw {:?}", poller.get()))?;
    let accepted = t.accepted.context("connection not seen")?;
    let published = t.published.context("publish not seen")?;
    let media = t.media.context("media not seen")?;
    let connected = t.connected.context("seat never connected")?;
    let bin = lock(&watch.bin_added).context("no publisher bin added")?;
    let seat = lock(&watch.seat_first).context("no frame entered the seat's pad")?;
    Ok((
        p,
        JoinSample {
            spawn_to_accept: ms(spawned, accepted),
            accept_to_bin: ms(accepted, bin),
            bin_to_publish: ms(bin, published),
            publish_to_media: ms(published, media),
            media_to_seat_frame: ms(media, seat),
            seat_frame_to_mix: ms(seat, red),
            seat_frame_to_connected: ms(seat, connected),
            connected_to_mix: ms(connected, red),
            join: ms(accepted, red),
            accept_to_seat_frame: ms(accepted, seat),
            poll_gap: t.max_gap_ms,
            stale,
        },
    ))
}

/// Waits until the seat has no publisher and the tile is black.
fn settle(api: &Api, watch: &Watch, room: &str, seat: &str) -> Result<()> {
    wait_for("the seat to be free", Duration::from_secs(10), || {
        let (state, publisher) = api.seat(room, seat).ok()?;
        (state != "connected" && publisher.is_null() && watch.shows() == Colour::Black)
            .then_some(())
    })?;
    std::thread::sleep(Duration::from_millis(300));
    Ok(())
}

/// One stall: SIGSTOP (connection stays open) or SIGKILL (the OS closes it) the publisher,
/// time the placeholder. Returns (last packet -> placeholder, last frame into the mix ->
/// placeholder), ms.
fn stall(mut p: Publisher, watch: &Watch, sigstop: bool) -> Result<(f64, f64)> {
    ensure!(watch.shows() != Colour::Black, "the seat is not in the mix");
    let t0 = Instant::now();
    if sigstop {
        p.signal(sys::SIGSTOP);
    } else {
        let _ = p.0.kill();
    }
    let black = wait_for("the placeholder", Duration::from_secs(10), || {
        watch.turned(Colour::Black, t0)
    })?;
    let last = lock(&watch.seat_last).context("no seat frame")?;
    p.kill();
    Ok((ms(t0, black), ms(last, black)))
}

struct Stats {
    median: f64,
    p95: f64,
    max: f64,
}

fn stats(v: &[f64]) -> Stats {
    Stats {
        median: percentile(v, 0.5),
        p95: percentile(v, 0.95),
        max: max(v),
    }
}

fn stats_json(v: &[f64]) -> Value {
    let s = stats(v);
    json!({"median_ms": round1(s.median), "p95_ms": round1(s.p95), "max_ms": round1(s.max),
           "min_ms": round1(v.iter().copied().fold(f64::NAN, f64::min)),
           "samples": v.iter().map(|x| round1(*x)).collect::<Vec<_>>()})
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn joins_json(joins: &[JoinSample], what: &str) -> Value {
    let col = |f: fn(&JoinSample) -> f64| joins.iter().map(f).collect::<Vec<_>>();
    json!({
        "what": what,
        "accept_to_mixed": stats_json(&col(|j| j.join)),
        "accept_to_seat_frame": stats_json(&col(|j| j.accept_to_seat_frame)),
        "counter_poll_gap_ms": {"median": round1(percentile(&col(|j| j.poll_gap), 0.5)), "max": round1(max(&col(|j| j.poll_gap)))},
        "stale_frame_flashes": {
            "what": "joins where the previous publisher's last frame came back before the new publisher's first (publishers alternate red and blue)",
            "count": joins.iter().filter(|j| j.stale.is_some()).count(),
            "shown_ms": joins.iter().filter_map(|j| j.stale).map(|s| round1(s.0)).collect::<Vec<_>>(),
            "age_ms": joins.iter().filter_map(|j| j.stale).map(|s| round1(s.1)).collect::<Vec<_>>(),
        },
        "split": {
            "spawn_to_accept": stats_json(&col(|j| j.spawn_to_accept)),
            "accept_to_bin_added": stats_json(&col(|j| j.accept_to_bin)),
            "bin_added_to_publish_accepted": stats_json(&col(|j| j.bin_to_publish)),
            "publish_to_first_bytes": stats_json(&col(|j| j.publish_to_media)),
            "first_bytes_to_seat_frame": stats_json(&col(|j| j.media_to_seat_frame)),
            "seat_frame_to_mixed": stats_json(&col(|j| j.seat_frame_to_mix)),
            "seat_frame_to_seat_connected": stats_json(&col(|j| j.seat_frame_to_connected)),
            "seat_connected_to_mixed": stats_json(&col(|j| j.connected_to_mix)),
        },
    })
}

fn join_and_stall(api: &Api, engine: &Arc<Engine>) -> Result<Value> {
    let room = api.create(json!({"id": "join", "layout": "single",
        "seats": [{"id": "host", "source": "publish"}]}))?;
    let url = rtmp_url(&room, "host")?;
    let watch = Arc::new(Watch::default());
    let mut pipeline = None;
    engine.for_each_room(|id, r| {
        if id == "join" {
            pipeline = Some(r.pipeline().clone());
        }
    });
    watch.attach(&pipeline.context("room not found")?)?;
    let poller = IngestPoller::start(engine.clone());
    // The room runs and its tile is black.
    wait_for("mixed frames", Duration::from_secs(10), || {
        (!lock(&watch.mix).is_empty()).then_some(())
    })?;
    std::thread::sleep(Duration::from_millis(500));

    // Publishers alternate red and blue.
    let mut n = 0;
    let mut next_colour = || {
        n += 1;
        if n % 2 == 1 {
            Colour::Red
        } else {
            Colour::Blue
        }
    };
    // Seat "host" has a publisher before every join but the first: these are re-joins.
    println!(
        "\n[1+2a] {JOINS} joins into seat `host` (720p30 red/blue, keyframe first, ffmpeg defaults), each SIGKILLed after 1 s"
    );
    let mut joins = Vec::new();
    let mut kill = Vec::new();
    for i in 0..JOINS {
        let (p, j) = join(&url, next_colour(), false, &watch, &poller)?;
        std::thread::sleep(Duration::from_secs(1));
        let (s, internal) = stall(p, &watch, false)?;
        println!(
            "  join {i:>2}: {};  kill->placeholder {s:5.1} ms (last frame in {internal:5.1})",
            j.line()
        );
        joins.push(j);
        kill.push((s, internal));
        settle(api, &watch, "join", "host")?;
    }

    println!(
        "\n[2b] {STOP_TRIALS} stalls with the connection open (SIGSTOP after 1 s live); publishers with -tcp_nodelay 1"
    );
    let mut stop = Vec::new();
    let mut nodelay = Vec::new();
    for i in 0..STOP_TRIALS {
        let (p, j) = join(&url, next_colour(), true, &watch, &poller)?;
        std::thread::sleep(Duration::from_secs(1));
        let (s, internal) = stall(p, &watch, true)?;
        println!(
            "  stall {i:>2}: stop->placeholder {s:6.1} ms (last frame in {internal:6.1});  its join: {}",
            j.line()
        );
        stop.push((s, internal));
        nodelay.push(j);
        settle(api, &watch, "join", "host")?;
    }

    // A new seat each time: no earlier publisher, so no stale "stalled" state to clear.
    println!("\n[1b] {FRESH} joins into a fresh seat (-tcp_nodelay 1)");
    let mut fresh = Vec::new();
    let mut seat = "host".to_owned();
    for i in 0..FRESH {
        let (st, v) = api.call("DELETE", &format!("/v1/rooms/join/seats/{seat}"), None)?;
        ensure!(st == 204 || st == 200, "delete seat ({st}): {v}");
        seat = format!("fresh{i}");
        let (st, room) = api.call(
            "POST",
            "/v1/rooms/join/seats",
            Some(json!({"id": seat, "source": "publish", "slot": 0})),
        )?;
        ensure!(st == 201 || st == 200, "add seat ({st}): {room}");
        ensure!(watch.probe_seats() == 1, "the new seat's pad not found");
        std::thread::sleep(Duration::from_millis(300));
        let (mut p, j) = join(
            &rtmp_url(&room, &seat)?,
            next_colour(),
            true,
            &watch,
            &poller,
        )?;
        println!("  join {i:>2}: {}", j.line());
        fresh.push(j);
        std::thread::sleep(Duration::from_millis(300));
        p.kill();
        settle(api, &watch, "join", &seat)?;
    }
    drop(poller);
    api.delete("join")?;

    let frame = 1000.0 / FPS;
    Ok(json!({
        "join": {
            "method": "accept (RTMP listener connections_total, polled every 0.25 ms) -> first compositor output frame whose centre pixel has the publisher's colour; splits from the listener's publishes_accepted and bytes_in counters, the pipeline's element-added signal and a probe on the seat's compositor sink pad",
            "publisher": "ffmpeg -re lavfi color=red|blue (alternating) 1280x720@30 + sine, libx264 ultrafast zerolatency -g 30, AAC 96k, FLV over RTMP",
            "target_median_ms": 300.0,
            "rejoin_ffmpeg_defaults": joins_json(&joins, "the publisher returns to a seat that had one (what a reconnect is); ffmpeg's default TCP options (Nagle on)"),
            "rejoin_tcp_nodelay": joins_json(&nodelay, "as above, ffmpeg with -tcp_nodelay 1 (the joins of the SIGSTOP trials)"),
            "fresh_seat_tcp_nodelay": joins_json(&fresh, "the first publisher of a newly added seat; ffmpeg with -tcp_nodelay 1"),
        },
        "stall_disconnect": {
            "method": "SIGKILL of the publisher (the OS closes the socket) -> first output frame with the placeholder; hold_last_frame_ms = 0",
            "target_ms": STALL_TIMEOUT_MS as f64 + 2.0 * frame,
            "kill_to_placeholder": stats_json(&kill.iter().map(|x| x.0).collect::<Vec<_>>()),
            "last_frame_in_to_placeholder": stats_json(&kill.iter().map(|x| x.1).collect::<Vec<_>>()),
        },
        "stall_open_connection": {
            "method": "SIGSTOP of the publisher (the connection stays open) -> first output frame with the placeholder; stall_timeout_ms = 500, hold_last_frame_ms = 0",
            "target_ms": STALL_TIMEOUT_MS as f64 + 2.0 * frame,
            "stop_to_placeholder": stats_json(&stop.iter().map(|x| x.0).collect::<Vec<_>>()),
            "last_frame_in_to_placeholder": stats_json(&stop.iter().map(|x| x.1).collect::<Vec<_>>()),
        },
    }))
}

/// A 720p30 H.264 (~2.5 Mbit/s, 2 s GOP, no B-frames) + AAC clip, as a camera encoder sends.
fn make_clip(path: &std::path::Path) -> Result<f64> {
    showmix_tests::run(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=s=1280x720:r=30:d={CLIP_SECS}"))
            .args(["-f", "lavfi", "-i"])
            .arg(format!("sine=f=440:sample_rate=48000:d={CLIP_SECS}"))
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
            ])
            .args(["-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "2500k"])
            .args([
                "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
            ])
            .args(["-shortest", "-f", "flv"])
            .arg(path),
    )?;
    let bytes = std::fs::metadata(path)?.len();
    Ok(bytes as f64 * 8.0 / f64::from(CLIP_SECS) / 1000.0)
}

/// ffmpeg's CPU seconds (user + system, from its rusage when reaped) for `args`.
fn ffmpeg_cpu(args: &[&str]) -> Result<f64> {
    let before = cpu_seconds(sys::RUSAGE_CHILDREN);
    showmix_tests::run(Command::new("ffmpeg").args(args))?;
    Ok(cpu_seconds(sys::RUSAGE_CHILDREN) - before)
}

/// What a thread (by name) does for a publish seat.
fn thread_role(name: &str) -> &'static str {
    match name {
        "ingest:src" => {
            "publisher bin: demux, parse, H.264 + AAC decode (libav's threads inherit the name), audio chain"
        }
        "tokio-rt-worker" => "RTMP connection tasks (chunk parsing, FLV tags) and the API",
        "compositor:src" => "compositor's aggregating thread",
        "vqueue:src" | "aqueue:src" => "publisher bin's output queues (retiming probes)",
        n if n.starts_with("pool-") => {
            "GLib thread pool: the compositor's video-converter workers (scale into the tile)"
        }
        _ => "",
    }
}

/// One measuring window: engine CPU per wall second, and what the seats received.
struct Window {
    cpu_per_s: f64,
    /// CPU per wall second by thread name, for the threads alive at the end of the window.
    threads: BTreeMap<String, f64>,
    seat_fps: Vec<f64>,
    late: u64,
    mix_fps: f64,
}

fn window(api: &Api, room: &str) -> Result<Window> {
    let (f0, m0) = api.frames(room)?;
    let th0 = thread_cpu();
    let (c0, t0) = (cpu_seconds(sys::RUSAGE_SELF), Instant::now());
    std::thread::sleep(CPU_WINDOW);
    let (c1, t1) = (cpu_seconds(sys::RUSAGE_SELF), Instant::now());
    let th1 = thread_cpu();
    let (f1, m1) = api.frames(room)?;
    let secs = t1.duration_since(t0).as_secs_f64();
    let mut threads = BTreeMap::new();
    for (tid, (name, cpu)) in th1 {
        let before = th0.get(&tid).map_or(0.0, |t| t.1);
        *threads.entry(name).or_insert(0.0) += (cpu - before) / secs;
    }
    Ok(Window {
        cpu_per_s: (c1 - c0) / secs,
        threads,
        seat_fps: f0
            .iter()
            .zip(&f1)
            .map(|(a, b)| (b.0 - a.0) as f64 / secs)
            .collect(),
        late: f0.iter().zip(&f1).map(|(a, b)| b.1 - a.1).sum(),
        mix_fps: (m1 - m0) as f64 / secs,
    })
}

fn cpu_per_seat(api: &Api) -> Result<Value> {
    let dir = tempfile::tempdir()?;
    let clip = dir.path().join("cam720p30.flv");
    let kbps = make_clip(&clip)?;
    println!("\n[3] CPU per live seat: clip 1280x720@30 H.264 + AAC, {kbps:.0} kbit/s total");

    // One cheap rung: the encoder's cost depends on the picture (4 busy tiles cost it more
    // than a black canvas), so a full ladder would leak into the per-seat figure.
    let ladder = json!({"canvas": {"width": 1280, "height": 720, "fps": 30},
        "video": {"speed": "ultrafast"},
        "rungs": [{"name": "180p", "width": 320, "height": 180, "bitrate_kbps": 300}]});
    let ids = ["a", "b", "c", "d"];
    let room = api.create(json!({"id": "cpu", "layout": "grid-4", "ladder": ladder,
        "seats": ids.iter().map(|s| json!({"id": s, "source": "publish"})).collect::<Vec<_>>()}))?;
    let urls = ids
        .iter()
        .map(|s| rtmp_url(&room, s))
        .collect::<Result<Vec<_>>>()?;
    std::thread::sleep(Duration::from_secs(2));
    let base = window(api, "cpu")?;
    println!(
        "  baseline (no publisher): {:.1}% of a core, mix {:.1} fps",
        base.cpu_per_s * 100.0,
        base.mix_fps
    );
    let mut publishers = vec![Publisher::looped(&clip, &urls[0])?];
    let warm = |api: &Api, n: usize| -> Result<()> {
        wait_for("publishers connected", Duration::from_secs(15), || {
            ids[..n]
                .iter()
                .all(|s| api.seat("cpu", s).is_ok_and(|(st, _)| st == "connected"))
                .then_some(())
        })?;
        std::thread::sleep(Duration::from_secs(2));
        Ok(())
    };
    warm(api, 1)?;
    let one = window(api, "cpu")?;
    for url in &urls[1..] {
        publishers.push(Publisher::looped(&clip, url)?);
    }
    warm(api, 4)?;
    let four = window(api, "cpu")?;
    drop(publishers);
    api.delete("cpu")?;
    for (n, w) in [(1, &one), (4, &four)] {
        println!(
            "  {n} publisher(s): {:.1}% of a core, seat fps {:?}, late frames {}, mix {:.1} fps",
            w.cpu_per_s * 100.0,
            w.seat_fps
                .iter()
                .map(|f| (f * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            w.late,
            w.mix_fps
        );
    }
    let seat1 = one.cpu_per_s - base.cpu_per_s;
    let seat4 = (four.cpu_per_s - base.cpu_per_s) / 4.0;
    // Where it goes: CPU by thread name, (4 publishers - baseline) / 4.
    let mut by_thread: Vec<(String, f64)> = four
        .threads
        .iter()
        .map(|(n, c)| {
            (
                n.clone(),
                (c - base.threads.get(n).copied().unwrap_or(0.0)) / 4.0,
            )
        })
        .filter(|(_, c)| c.abs() >= 0.0005)
        .collect();
    by_thread.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("  per seat by thread name (4 publishers minus baseline, / 4), cores:");
    for (n, c) in by_thread.iter().take(12) {
        println!("    {n:<18} {c:6.3}  {}", thread_role(n));
    }

    // ffmpeg decoding the same stream (video and audio), as fast as it can; per content second.
    let content = 2.0 * f64::from(CLIP_SECS);
    let clip_s = clip.to_str().context("path")?;
    let decode = ffmpeg_cpu(&[
        "-v",
        "error",
        "-stream_loop",
        "1",
        "-i",
        clip_s,
        "-f",
        "null",
        "-",
    ])? / content;
    let decode_scale = ffmpeg_cpu(&[
        "-v",
        "error",
        "-stream_loop",
        "1",
        "-i",
        clip_s,
        "-vf",
        "scale=640:360",
        "-f",
        "null",
        "-",
    ])? / content;
    println!(
        "  ffmpeg decode: {:.1}% of a core per second of content; decode + scale to 640x360: {:.1}%",
        decode * 100.0,
        decode_scale * 100.0
    );
    Ok(json!({
        "stream": {"width": 1280, "height": 720, "fps": 30, "codec": "H.264 (libx264 veryfast zerolatency, 2 s GOP) + AAC 128k", "kbps": kbps.round()},
        "method": "engine: getrusage(RUSAGE_SELF) over 10 s windows in a grid-4 room (1280x720 canvas, one 320x180 ultrafast rung) with 0, 1 and 4 RTMP publishers (ffmpeg -re -c copy, separate processes); per seat = (window - baseline) / seats. ffmpeg: child rusage of `ffmpeg -i clip -f null -` over 20 s of content",
        "baseline_cores": round3(base.cpu_per_s),
        "one_seat_cores": round3(one.cpu_per_s),
        "four_seats_cores": round3(four.cpu_per_s),
        "per_seat_cores_n1": round3(seat1),
        "per_seat_cores_n4": round3(seat4),
        "per_seat_cores_n4_by_thread": by_thread.iter().take(12).map(|(n, c)| json!({"thread": n, "cores": round3(*c), "role": thread_role(n)})).collect::<Vec<_>>(),
        "seat_fps_n1": one.seat_fps.first().map(|f| round1(*f)),
        "seat_fps_n4": four.seat_fps.iter().map(|f| round1(*f)).collect::<Vec<_>>(),
        "late_frames_n4": four.late,
        "ffmpeg_decode_cores_per_content_second": round3(decode),
        "ffmpeg_decode_scale_cores_per_content_second": round3(decode_scale),
        "ratio_n1_vs_ffmpeg_decode": round3(seat1 / decode),
        "ratio_n4_vs_ffmpeg_decode": round3(seat4 / decode),
        "ratio_n4_vs_ffmpeg_decode_scale": round3(seat4 / decode_scale),
    }))
}

fn summary(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let frame = 1000.0 / FPS;
    let stall_target = STALL_TIMEOUT_MS as f64 + 2.0 * frame;
    println!("\n=== Ingest summary (ms) ===");
    println!(
        "{:<50} {:>8} {:>8} {:>8}   target",
        "", "median", "p95", "max"
    );
    let row = |name: &str, s: &Value, target: &str| {
        let mark = match target.strip_prefix("median <= ") {
            Some(t) => {
                if f(&s["median_ms"]) <= t.parse::<f64>().unwrap_or(0.0) {
                    "  ok"
                } else {
                    "  MISSED"
                }
            }
            None => match target.strip_prefix("max <= ") {
                Some(t) if f(&s["max_ms"]) <= t.parse::<f64>().unwrap_or(0.0) => "  ok",
                Some(_) => "  MISSED",
                None => "",
            },
        };
        println!(
            "{name:<50} {:>8.1} {:>8.1} {:>8.1}   {target}{mark}",
            f(&s["median_ms"]),
            f(&s["p95_ms"]),
            f(&s["max_ms"])
        );
    };
    for (key, title, n) in [
        (
            "rejoin_ffmpeg_defaults",
            "join, re-join, ffmpeg defaults",
            JOINS,
        ),
        (
            "rejoin_tcp_nodelay",
            "join, re-join, -tcp_nodelay 1",
            STOP_TRIALS,
        ),
        (
            "fresh_seat_tcp_nodelay",
            "join, fresh seat, -tcp_nodelay 1",
            FRESH,
        ),
    ] {
        let j = &r["join"][key];
        let sp = &j["split"];
        row(
            &format!("{title} ({n}): accept -> mixed"),
            &j["accept_to_mixed"],
            "median <= 300",
        );
        row(
            "  accept -> frame at the seat",
            &j["accept_to_seat_frame"],
            "",
        );
        row(
            "    accept -> bin added (RTMP commands)",
            &sp["accept_to_bin_added"],
            "",
        );
        row(
            "    bin added -> publish accepted",
            &sp["bin_added_to_publish_accepted"],
            "",
        );
        row(
            "    publish -> first bytes (ffmpeg encoders)",
            &sp["publish_to_first_bytes"],
            "",
        );
        row(
            "    first bytes -> seat frame (demux+decode)",
            &sp["first_bytes_to_seat_frame"],
            "",
        );
        row(
            "  seat frame -> first mixed frame",
            &sp["seat_frame_to_mixed"],
            "",
        );
        row(
            "    seat frame -> seat `connected` (room tick)",
            &sp["seat_frame_to_seat_connected"],
            "",
        );
        row(
            "    seat `connected` -> first mixed frame",
            &sp["seat_connected_to_mixed"],
            "",
        );
        row(
            "  (spawn -> accept: outside the window)",
            &sp["spawn_to_accept"],
            "",
        );
        let st = &j["stale_frame_flashes"];
        println!(
            "  previous publisher's last frame shown first: {} of {n} joins (shown ms {}, age ms {})",
            st["count"], st["shown_ms"], st["age_ms"]
        );
    }
    let t = format!("max <= {stall_target:.0}");
    row(
        "stall, disconnect: SIGKILL -> placeholder",
        &r["stall_disconnect"]["kill_to_placeholder"],
        &t,
    );
    row(
        "  last frame in -> placeholder",
        &r["stall_disconnect"]["last_frame_in_to_placeholder"],
        "",
    );
    row(
        "stall, connection open: SIGSTOP -> placeholder",
        &r["stall_open_connection"]["stop_to_placeholder"],
        &t,
    );
    row(
        "  last frame in -> placeholder",
        &r["stall_open_connection"]["last_frame_in_to_placeholder"],
        "",
    );
    let c = &r["cpu"];
    println!(
        "\nCPU, 720p30 H.264 {} kbit/s (cores = CPU seconds per second):",
        f(&c["stream"]["kbps"])
    );
    println!(
        "  engine baseline (grid-4, no publishers)   {:.3}",
        f(&c["baseline_cores"])
    );
    println!(
        "  engine per seat, 1 publisher              {:.3}",
        f(&c["per_seat_cores_n1"])
    );
    println!(
        "  engine per seat, 4 publishers             {:.3}",
        f(&c["per_seat_cores_n4"])
    );
    println!(
        "  ffmpeg decode per content second          {:.3}",
        f(&c["ffmpeg_decode_cores_per_content_second"])
    );
    println!(
        "  ffmpeg decode + scale 640x360             {:.3}",
        f(&c["ffmpeg_decode_scale_cores_per_content_second"])
    );
    println!(
        "  ratio engine/ffmpeg decode: n=1 {:.2}x, n=4 {:.2}x (n=4 vs decode+scale {:.2}x)",
        f(&c["ratio_n1_vs_ffmpeg_decode"]),
        f(&c["ratio_n4_vs_ffmpeg_decode"]),
        f(&c["ratio_n4_vs_ffmpeg_decode_scale"])
    );
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let started = Instant::now();
    showmix::init()?;
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        rtmp_listen: "127.0.0.1:0".into(),
        srt_listen: "off".into(),
        stall_timeout_ms: STALL_TIMEOUT_MS,
        hold_last_frame_ms: 0,
        ..Config::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let bound = rt.block_on(showmix::serve::bind(&config))?;
    let addr = bound.api_addr().context("no API address")?;
    let engine = Arc::new(Engine::new(config, Presets::embedded()?));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(showmix::serve::run(engine.clone(), bound, async {
        let _ = rx.await;
    }));
    let api = Api { rt, addr };

    let result = (|| -> Result<Value> {
        let mut r = join_and_stall(&api, &engine)?;
        r["cpu"] = cpu_per_seat(&api)?;
        Ok(r)
    })();

    let _ = tx.send(());
    let _ = api.rt.block_on(server);
    let mut r = result?;
    r["load_average"] = json!(
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    r["cpus"] = json!(std::thread::available_parallelism().map_or(0, |n| n.get()));
    r["run_seconds"] = json!(round1(started.elapsed().as_secs_f64()));
    summary(&r);
    let target = showmix_tests::workspace_root().join("target/bench");
    std::fs::create_dir_all(&target)?;
    std::fs::write(
        target.join("ingest.json"),
        serde_json::to_string_pretty(&r)? + "\n",
    )?;
    println!(
        "\nwritten: target/bench/ingest.json ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
