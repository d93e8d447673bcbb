//! A room: one GStreamer pipeline that mixes its seats on a canvas and encodes the ladder, and
//! the lifecycle around it (start, live changes, stop with finalised outputs, failure).
//!
//! ```text
//!  seat bins ──video──▶ compositor ─▶ I420 canvas ─▶ tee ─▶ [scale] ─▶ enc ─▶ parse ─▶ tee ─▶ outputs
//!            ──audio──▶ audiomixer ─▶ F32 48k ─────▶ enc ─▶ parse ─▶ tee ─────────────────────▶ outputs
//! ```
//!
//! Rooms are independent: each has its own pipeline, bus thread and clock base, and nothing a
//! seat or an output does can reach another room. A seat whose source fails is removed from
//! the mix and marked failed; the room keeps going.

pub mod hls;
mod outputs;
mod publish;
pub mod spec;
pub use publish::PublishInfo;
pub mod stats;
mod webrtc;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;

use crate::pipeline::{
    audio_caps, canvas_caps, capsfilter, encode, make, mixer::LayoutControl, queue, seat,
};
use crate::presets::{Ladder, Layout};
pub use outputs::{OutputInfo, OutputStatus};
pub use spec::{OutputKind, OutputSpec, RoomSpec, SeatSpec, SpecError, check_output};
use stats::{RateMeter, RungCounters, RungSummary, SeatCounters};

/// Where a room is in its life.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum RoomState {
    Starting,
    Live,
    Stopping,
    /// Ended cleanly: every output finalised.
    Stopped,
    Failed(String),
}

/// Where a seat is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum SeatState {
    /// Media is flowing.
    Connected,
    /// No media yet, or the source has ended: the tile shows the placeholder.
    Waiting,
    /// Media stopped arriving: the tile holds the last frame, then shows the placeholder.
    Stalled,
    Failed(String),
}

impl SeatState {
    /// The state's name and, for failures, the reason.
    pub fn parts(&self) -> (&'static str, Option<String>) {
        match self {
            SeatState::Connected => ("connected", None),
            SeatState::Waiting => ("waiting", None),
            SeatState::Stalled => ("stalled", None),
            SeatState::Failed(r) => ("failed", Some(r.clone())),
        }
    }
}

fn seat_state_name<S: serde::Serializer>(s: &SeatState, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.parts().0)
}

struct Seat {
    spec: SeatSpec,
    /// The source bin; `None` for publish seats, whose media comes from their publisher.
    bin: Option<gst::Bin>,
    comp_pad: gst::Pad,
    mix_pad: gst::Pad,
    placeholder: Option<(gst::Bin, gst::Pad)>,
    counters: Arc<SeatCounters>,
    state: SeatState,
    /// Publish seats: the key publishers must give, and the live publisher if any.
    publish: Option<publish::PublishState>,
    /// Prescale and beauty at the end of the seat's video chain.
    filter: crate::pipeline::beauty::SeatFilter,
}

struct Rung {
    name: String,
    width: u32,
    height: u32,
    counters: Arc<RungCounters>,
    /// Encoded video, for outputs to branch from.
    tee: gst::Element,
}

/// Stops the mix at a running time: the first video frame and the first audio buffer at or
/// past it are replaced by EOS, so every output ends at the same instant and is finalised.
struct StopGate {
    stop_at_ns: AtomicU64,
}

impl StopGate {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            stop_at_ns: AtomicU64::new(u64::MAX),
        })
    }

    fn set(&self, at: gst::ClockTime) {
        self.stop_at_ns.fetch_min(at.nseconds(), Relaxed);
    }

    fn attach(self: &Arc<Self>, pad: &gst::Pad) {
        let gate = self.clone();
        let ended = AtomicBool::new(false);
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let stop = gate.stop_at_ns.load(Relaxed);
            if stop == u64::MAX {
                return gst::PadProbeReturn::Ok;
            }
            if ended.load(Relaxed) {
                return gst::PadProbeReturn::Drop;
            }
            let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
                return gst::PadProbeReturn::Ok;
            };
            let rt = pad
                .sticky_event::<gst::event::Segment>(0)
                .and_then(|ev| {
                    ev.segment()
                        .downcast_ref::<gst::ClockTime>()
                        .and_then(|s| s.to_running_time(pts))
                })
                .unwrap_or(pts);
            if rt.nseconds() >= stop {
                ended.store(true, Relaxed);
                pad.push_event(gst::event::Eos::new());
                return gst::PadProbeReturn::Drop;
            }
            gst::PadProbeReturn::Ok
        });
    }
}

struct Status {
    state: RoomState,
    /// Set once the bus thread has put the pipeline to NULL.
    finished: bool,
}

struct Inner {
    id: String,
    pipeline: gst::Pipeline,
    live: bool,
    ladder: Ladder,
    layout: LayoutControl,
    compositor: gst::Element,
    audiomixer: gst::Element,
    seats: Mutex<BTreeMap<String, Seat>>,
    rungs: Vec<Rung>,
    gate: Arc<StopGate>,
    /// Offline rooms with finite seats stop when the last of them ends.
    stop_when_finite_seats_end: bool,
    status: Mutex<Status>,
    changed: Condvar,
    started: Instant,
    /// Outputs in the order they were added.
    outputs: Mutex<Vec<outputs::LiveOutput>>,
    /// Encoded audio, for outputs added live.
    audio_tee: gst::Element,
    push_backoff: crate::push::Backoff,
    rates: Mutex<Rates>,
    /// Keeps the last mixed frame (live rooms), for snapshots.
    snapshot: Option<gst::Element>,
    timing: SeatTiming,
    /// Sends work to the room's own thread (see `Event`).
    events: Mutex<Option<std::sync::mpsc::Sender<Event>>>,
    /// LL-HLS packaging, when the room has it.
    hls: Option<Arc<hls::Packager>>,
    /// The mixed audio before encoding.
    raw_audio_tee: gst::Element,
    /// Keyframes on demand for WebRTC viewers.
    keyframes: Arc<webrtc::KeyframeForcer>,
    /// WebRTC playback branches, built when the first viewer comes.
    webrtc: Mutex<webrtc::WebrtcTaps>,
    /// The room's streaming threads, for CPU per room (see `crate::cpu`).
    threads: crate::cpu::RoomThreads,
}

/// When a seat counts as stalled, and how long its tile holds the last frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeatTiming {
    pub stall_timeout: Duration,
    pub hold_last_frame: Duration,
}

impl Default for SeatTiming {
    fn default() -> Self {
        Self {
            stall_timeout: Duration::from_millis(500),
            hold_last_frame: HOLD_LAST_FRAME,
        }
    }
}

/// Rates sampled from the counters about once a second by the bus thread.
#[derive(Default)]
struct Rates {
    seat_fps: BTreeMap<String, RateMeter>,
    seat_bytes: BTreeMap<String, RateMeter>,
    rung_fps: Vec<RateMeter>,
    rung_bytes: Vec<RateMeter>,
    mix_fps: RateMeter,
}

/// A seat's live figures, for stats.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SeatStats {
    pub id: String,
    #[serde(serialize_with = "seat_state_name")]
    pub state: SeatState,
    pub input_fps: f64,
    /// Encoded input bitrate, for seats fed by a publisher (RTMP/SRT).
    pub input_bitrate_kbps: Option<f64>,
    pub frames_received: u64,
    pub frames_dropped: u64,
    pub audio_level_dbfs: f64,
    /// Times the seat's input stalled.
    pub stalls: u64,
}

/// A rung's live figures, for stats.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RungStats {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub encoded_fps: f64,
    pub bitrate_kbps: f64,
    pub frames: u64,
    pub keyframes: u64,
}

/// A running room. Dropping it stops the pipeline without finalising: call `stop` first.
pub struct Room {
    inner: Arc<Inner>,
    bus_thread: Option<JoinHandle<()>>,
}

/// How long a seat's input may stall before its tile gives up the last frame.
pub const HOLD_LAST_FRAME: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Room {
    /// Builds the room's pipeline from a resolved spec and starts it.
    pub fn start(mut spec: RoomSpec) -> Result<Room> {
        spec.resolve()?;
        crate::init()?;
        let ladder = spec.ladder.clone();
        let canvas = (ladder.canvas.width, ladder.canvas.height);
        let fps = ladder.canvas.fps;
        let pipeline = gst::Pipeline::builder()
            .name(format!("room-{}", spec.id))
            .build();

        // Video: background + compositor + canvas caps.
        let compositor = make("compositor", Some("compositor"))?;
        compositor.set_property_from_str("background", "black");
        if spec.live {
            // One frame of slack for inputs that arrive late.
            compositor.set_property(
                "latency",
                gst::ClockTime::SECOND.nseconds() / u64::from(fps),
            );
        }
        let canvas_caps = capsfilter(Some("canvas"), &canvas_caps(canvas.0, canvas.1, fps))?;
        let mix_tee = make("tee", Some("mix"))?;
        pipeline.add_many([&compositor, &canvas_caps, &mix_tee])?;
        gst::Element::link_many([&compositor, &canvas_caps, &mix_tee])?;

        let layout = LayoutControl::new(canvas, spec.layout.clone());
        layout.attach(&compositor);
        // The background: a solid-colour live source, which also keeps a live mix on the clock
        // whatever the seats do, and follows the layout's colour. An offline mix on black needs
        // none: the compositor's own black background costs nothing.
        if spec.live || spec.layout.background != crate::presets::layout::Colour::BLACK {
            let bg = make("videotestsrc", Some("background"))?;
            bg.set_property_from_str("pattern", "solid-color");
            bg.set_property("is-live", spec.live);
            let bg_caps = capsfilter(
                Some("background-caps"),
                &crate::pipeline::canvas_caps(canvas.0, canvas.1, fps),
            )?;
            pipeline.add_many([&bg, &bg_caps])?;
            bg.link(&bg_caps)?;
            let bg_pad = compositor
                .request_pad_simple("sink_%u")
                .context("compositor background pad")?;
            bg_caps.static_pad("src").context("bg src")?.link(&bg_pad)?;
            layout.set_background(bg_pad, bg.clone());
        }

        // Audio: mixer + mixing caps.
        let audiomixer = make("audiomixer", Some("audiomixer"))?;
        if spec.live {
            audiomixer.set_property("latency", gst::ClockTime::from_mseconds(20).nseconds());
        }
        let mix_caps = capsfilter(
            Some("mix-caps"),
            &audio_caps(seat::MIX_RATE, seat::MIX_CHANNELS),
        )?;
        let aconv = make("audioconvert", Some("aenc-convert"))?;
        let ares = make("audioresample", Some("aenc-resample"))?;
        let aenc_caps = capsfilter(
            Some("aenc-caps"),
            &gst::Caps::builder("audio/x-raw")
                .field("rate", ladder.audio.sample_rate as i32)
                .field("channels", ladder.audio.channels as i32)
                .build(),
        )?;
        let (aenc, aparse) = encode::audio_encoder(&ladder.audio)?;
        let aq = queue(Some("aenc-queue"), gst::ClockTime::SECOND)?;
        // The mixed audio before encoding, for outputs that need another codec (WebRTC: Opus).
        let raw_audio_tee = make("tee", Some("audio-raw"))?;
        raw_audio_tee.set_property("allow-not-linked", true);
        let audio_tee = make("tee", Some("audio"))?;
        audio_tee.set_property("allow-not-linked", true);
        pipeline.add_many([
            &audiomixer,
            &mix_caps,
            &raw_audio_tee,
            &aq,
            &aconv,
            &ares,
            &aenc_caps,
            &aenc,
            &audio_tee,
        ])?;
        gst::Element::link_many([
            &audiomixer,
            &mix_caps,
            &raw_audio_tee,
            &aq,
            &aconv,
            &ares,
            &aenc_caps,
            &aenc,
        ])?;
        if let Some(p) = &aparse {
            pipeline.add(p)?;
            gst::Element::link_many([&aenc, p, &audio_tee])?;
        } else {
            aenc.link(&audio_tee)?;
        }

        if spec.live {
            // A silent live input: the audio mix runs on the clock even when every seat is a
            // publisher that has not connected (or just left), instead of waiting for data
            // and parking the seats' threads in its pads.
            let bed = make("audiotestsrc", Some("audio-bed"))?;
            bed.set_property("is-live", true);
            bed.set_property_from_str("wave", "silence");
            bed.set_property("samplesperbuffer", (seat::MIX_RATE / 50) as i32);
            let bed_caps = capsfilter(
                Some("audio-bed-caps"),
                &audio_caps(seat::MIX_RATE, seat::MIX_CHANNELS),
            )?;
            pipeline.add_many([&bed, &bed_caps])?;
            bed.link(&bed_caps)?;
            let pad = audiomixer
                .request_pad_simple("sink_%u")
                .context("audiomixer bed pad")?;
            bed_caps.static_pad("src").context("bed src")?.link(&pad)?;
        }
        // Video waits for the audio encoder's priming samples (see `audio_encoder_delay`).
        canvas_caps
            .static_pad("src")
            .context("canvas src")?
            .set_offset(encode::audio_encoder_delay(&ladder.audio).nseconds() as i64);
        monotonic_guard(&compositor, &spec.id);
        monotonic_guard(&audiomixer, &spec.id);
        let gate = StopGate::new();
        gate.attach(&canvas_caps.static_pad("src").context("canvas src")?);
        let keyframes = webrtc::KeyframeForcer::new(ladder.gop_frames(), ladder.canvas.fps);
        keyframes.attach(
            &canvas_caps.static_pad("src").context("canvas src")?,
            &mix_tee.static_pad("sink").context("mix tee sink")?,
        );
        gate.attach(&mix_caps.static_pad("src").context("mix caps src")?);

        let rungs = build_ladder(&pipeline, &mix_tee, &ladder)?;
        // When a layout switch reaches the encoded output of the top rung.
        if let Some(top) = rungs
            .iter()
            .max_by_key(|r| u64::from(r.width) * u64::from(r.height))
        {
            keyframes.observe(&top.tee.static_pad("sink").context("rung tee sink")?);
            let ctl = layout.clone();
            top.tee
                .static_pad("sink")
                .context("rung tee sink")?
                .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                    if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                        ctl.on_encoded(pts);
                    }
                    gst::PadProbeReturn::Ok
                });
        }

        let mut live_outputs = Vec::new();
        for out in &spec.outputs {
            let built = match &out.kind {
                OutputKind::File { dir } => outputs::LiveOutput {
                    spec: out.clone(),
                    runtime: outputs::Runtime::File(add_file_output(
                        &pipeline, &out.id, dir, &ladder, &rungs, &audio_tee,
                    )?),
                },
                _ => {
                    taps(&spec.id, &pipeline, &rungs, &audio_tee, spec.push_backoff).attach(out)?
                }
            };
            live_outputs.push(built);
        }

        let hls = if spec.hls && spec.live {
            let tees: Vec<(String, gst::Element, gst::Pad)> = rungs
                .iter()
                .map(|r| {
                    let pad = r.tee.static_pad("sink").context("rung tee sink")?;
                    Ok((r.name.clone(), r.tee.clone(), pad))
                })
                .collect::<Result<_>>()?;
            let audio_pad = audio_tee.static_pad("sink").context("audio tee sink")?;
            Some(Arc::new(hls::Packager::build(
                &pipeline,
                &ladder,
                &tees,
                &audio_tee,
                &audio_pad,
                std::time::SystemTime::now(),
            )?))
        } else {
            None
        };
        let snapshot = if spec.live {
            Some(add_snapshot_sink(&pipeline, &mix_tee)?)
        } else {
            None
        };

        let (events_tx, events_rx) = std::sync::mpsc::channel::<Event>();
        let stop_when_finite_seats_end =
            !spec.live && spec.seats.iter().any(|s| !s.source.is_endless());
        let inner = Arc::new(Inner {
            id: spec.id.clone(),
            pipeline: pipeline.clone(),
            live: spec.live,
            ladder,
            layout,
            compositor,
            audiomixer,
            seats: Mutex::new(BTreeMap::new()),
            rungs,
            gate,
            stop_when_finite_seats_end,
            status: Mutex::new(Status {
                state: RoomState::Starting,
                finished: false,
            }),
            changed: Condvar::new(),
            started: Instant::now(),
            outputs: Mutex::new(live_outputs),
            audio_tee: audio_tee.clone(),
            push_backoff: spec.push_backoff,
            rates: Mutex::new(Rates::default()),
            snapshot,
            timing: spec.timing,
            events: Mutex::new(Some(events_tx.clone())),
            hls,
            raw_audio_tee,
            keyframes,
            webrtc: Mutex::new(webrtc::WebrtcTaps::default()),
            threads: crate::cpu::RoomThreads::default(),
        });
        for s in spec.seats {
            inner.attach_seat(s)?;
        }

        let bus = pipeline.bus().context("pipeline has no bus")?;
        let (tx, rx) = (events_tx, events_rx);
        let pipeline_obj = pipeline.clone().upcast::<gst::Object>();
        let threads = inner.threads.clone();
        bus.set_sync_handler(move |_, msg| {
            // Posted from the streaming thread itself as it starts: that thread is the room's.
            if let gst::MessageView::StreamStatus(s) = msg.view() {
                if s.get().0 == gst::StreamStatusType::Enter {
                    threads.register_current();
                }
                return gst::BusSyncReply::Drop;
            }
            let seat = match msg.view() {
                gst::MessageView::Error(_)
                | gst::MessageView::Warning(_)
                | gst::MessageView::Element(_) => msg.src().and_then(|s| seat_of(s, &pipeline_obj)),
                _ => None,
            };
            let _ = tx.send(Event::Bus {
                msg: msg.clone(),
                seat,
            });
            gst::BusSyncReply::Drop
        });
        let weak = Arc::downgrade(&inner);
        let bus_thread = std::thread::Builder::new()
            .name(format!("room-{}", spec.id))
            .spawn(move || bus_loop(rx, weak))?;
        if spec.live {
            fix_base_time(&pipeline);
        }
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            bail!("room {}: pipeline does not start: {e}", spec.id);
        }
        Ok(Room {
            inner,
            bus_thread: Some(bus_thread),
        })
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The room's streaming threads, for CPU per room.
    pub fn threads(&self) -> crate::cpu::RoomThreads {
        self.inner.threads.clone()
    }

    pub fn ladder(&self) -> &Ladder {
        &self.inner.ladder
    }

    /// Every output with what it is doing.
    pub fn outputs(&self) -> Vec<OutputInfo> {
        lock(&self.inner.outputs)
            .iter()
            .map(outputs::LiveOutput::info)
            .collect()
    }

    /// Adds a push or record output to the running room.
    pub fn add_output(&self, spec: OutputSpec) -> std::result::Result<OutputInfo, SpecError> {
        let mut c = crate::presets::validate::Checker::new();
        check_output(&mut c, "output", &spec, &self.inner.ladder);
        c.finish()?;
        if matches!(spec.kind, OutputKind::File { .. }) {
            return Err(SpecError::Conflict(
                "file outputs are set when the room is created; add a record output instead".into(),
            ));
        }
        let mut outs = lock(&self.inner.outputs);
        if outs.iter().any(|o| o.spec.id == spec.id) {
            return Err(SpecError::Conflict(format!(
                "output id {:?} is already used in room {}",
                spec.id, self.inner.id
            )));
        }
        let built = taps(
            &self.inner.id,
            &self.inner.pipeline,
            &self.inner.rungs,
            &self.inner.audio_tee,
            self.inner.push_backoff,
        )
        .attach(&spec)
        .map_err(|e| SpecError::Conflict(format!("output {:?}: {e:#}", spec.id)))?;
        let info = built.info();
        outs.push(built);
        Ok(info)
    }

    /// Removes an output from the running room (a push ends its stream, a recording finishes
    /// its files). Returns what it last reported, or `None` if there is no such output.
    pub fn remove_output(&self, id: &str) -> std::result::Result<Option<OutputInfo>, SpecError> {
        let out = {
            let mut outs = lock(&self.inner.outputs);
            let Some(i) = outs.iter().position(|o| o.spec.id == id) else {
                return Ok(None);
            };
            if matches!(outs[i].spec.kind, OutputKind::File { .. }) {
                return Err(SpecError::Conflict(format!(
                    "output {id:?} is a file output: it ends with the room"
                )));
            }
            outs.remove(i)
        };
        let info = out.info();
        out.detach(&self.inner.pipeline);
        Ok(Some(info))
    }

    pub fn state(&self) -> RoomState {
        lock(&self.inner.status).state.clone()
    }

    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.inner.pipeline
    }

    /// The mixed picture, before scaling, for snapshots and tests.
    pub fn mix_tee(&self) -> Option<gst::Element> {
        self.inner.pipeline.by_name("mix")
    }

    pub fn layout(&self) -> Layout {
        self.inner.layout.layout()
    }

    /// The hub WebRTC viewers of `rung` (default: the top rung) join; built on first use.
    pub fn whep_hub(&self, rung: Option<&str>) -> Result<Arc<crate::webrtc::playback::Hub>> {
        self.inner.whep_hub(rung)
    }

    /// WebRTC viewers now watching.
    pub fn whep_viewers(&self) -> usize {
        self.inner.whep_viewers()
    }

    /// Keyframes forced for WebRTC viewers so far.
    pub fn forced_keyframes(&self) -> u64 {
        self.inner.keyframes.forced.load(Relaxed)
    }

    /// The room's LL-HLS presentation, if it has one.
    pub fn hls(&self) -> Option<Arc<hls::Packager>> {
        self.inner.hls.clone()
    }

    pub fn layout_control(&self) -> &LayoutControl {
        &self.inner.layout
    }

    /// Switches the layout live; it shows from the next mixed frame. Returns its generation.
    pub fn set_layout(&self, layout: Layout) -> Result<u64> {
        layout.validate()?;
        let generation = self.inner.layout.set_layout(layout);
        self.inner.retarget_filters();
        Ok(generation)
    }

    /// Adds a seat to the running room.
    pub fn add_seat(&self, mut seat: SeatSpec) -> Result<(), SpecError> {
        let mut c = crate::presets::validate::Checker::new();
        spec::check_seat(&mut c, "seat", &seat);
        c.finish()?;
        let slots = self.inner.layout.layout().slot_count();
        {
            let seats = lock(&self.inner.seats);
            if seats.contains_key(&seat.id) {
                return Err(SpecError::Conflict(format!(
                    "seat {:?} already exists",
                    seat.id
                )));
            }
            let taken: Vec<usize> = seats.values().filter_map(|s| s.spec.slot).collect();
            match seat.slot {
                Some(s) if taken.contains(&s) => {
                    return Err(SpecError::Conflict(format!("slot {s} is taken")));
                }
                Some(_) => {}
                None => {
                    seat.slot = Some((0..).find(|i| !taken.contains(i)).unwrap_or(0));
                }
            }
            if let Some(s) = seat.slot
                && s >= crate::presets::layout::MAX_SLOTS
            {
                return Err(SpecError::Invalid(crate::presets::Invalid(vec![
                    crate::presets::FieldError {
                        field: "slot".into(),
                        message: format!(
                            "{s} is out of range (allowed 0..={}; the current layout shows slots 0..={})",
                            crate::presets::layout::MAX_SLOTS - 1,
                            slots.saturating_sub(1)
                        ),
                    },
                ])));
            }
        }
        self.inner
            .attach_seat(seat)
            .map_err(|e| SpecError::Conflict(format!("cannot add seat: {e:#}")))
    }

    /// Removes a seat from the running room.
    pub fn remove_seat(&self, id: &str) -> Result<()> {
        let seat = lock(&self.inner.seats)
            .remove(id)
            .ok_or_else(|| anyhow!("no seat {id:?}"))?;
        self.inner.detach_seat(id, seat);
        Ok(())
    }

    /// Moves a seat to another slot (or off the layout with `None`).
    pub fn set_seat_slot(&self, id: &str, slot: Option<usize>) -> Result<(), SpecError> {
        let mut seats = lock(&self.inner.seats);
        if let Some(s) = slot
            && seats
                .iter()
                .any(|(other, seat)| other != id && seat.spec.slot == Some(s))
        {
            return Err(SpecError::Conflict(format!("slot {s} is taken")));
        }
        let seat = seats
            .get_mut(id)
            .ok_or_else(|| SpecError::Conflict(format!("no seat {id:?}")))?;
        seat.spec.slot = slot;
        self.inner.layout.set_slot(id, slot);
        seat.filter.set_tile(self.inner.tile_target(id));
        Ok(())
    }

    /// Sets a seat's volume (0..=2) and mute; applies to the next mixed audio buffer.
    pub fn set_seat_audio(&self, id: &str, volume: Option<f64>, muted: Option<bool>) -> Result<()> {
        let mut seats = lock(&self.inner.seats);
        let seat = seats.get_mut(id).ok_or_else(|| anyhow!("no seat {id:?}"))?;
        if let Some(v) = volume {
            if !(0.0..=spec::MAX_VOLUME).contains(&v) {
                bail!("volume {v} is out of range (allowed 0..=2)");
            }
            seat.spec.volume = v;
            seat.mix_pad.set_property("volume", v);
        }
        if let Some(m) = muted {
            seat.spec.muted = m;
            seat.mix_pad.set_property("mute", m);
        }
        Ok(())
    }

    /// Sets a seat's beauty levels; the seat's filter takes them on its next frame.
    pub fn set_seat_beauty(&self, id: &str, beauty: crate::presets::Beauty) -> Result<()> {
        beauty.validate()?;
        let mut seats = lock(&self.inner.seats);
        let seat = seats.get_mut(id).ok_or_else(|| anyhow!("no seat {id:?}"))?;
        seat.filter.set_beauty(&beauty);
        seat.spec.beauty = beauty;
        Ok(())
    }

    /// Replaces (or removes) the image a seat's tile shows when the seat has no picture.
    pub fn set_seat_placeholder(&self, id: &str, image: Option<PathBuf>) -> Result<()> {
        let old = {
            let mut seats = lock(&self.inner.seats);
            let seat = seats.get_mut(id).ok_or_else(|| anyhow!("no seat {id:?}"))?;
            seat.spec.placeholder = image.clone();
            seat.placeholder.take()
        };
        if let Some((bin, pad)) = old {
            self.inner.layout.set_placeholder(id, None);
            self.inner.compositor.release_request_pad(&pad);
            let _ = bin.set_state(gst::State::Null);
            let _ = self.inner.pipeline.remove(&bin);
        }
        if let Some(path) = image {
            let (bin, pad) = self.inner.attach_placeholder(id, &path)?;
            self.inner.layout.set_placeholder(id, Some(pad.clone()));
            bin.sync_state_with_parent()?;
            if let Some(seat) = lock(&self.inner.seats).get_mut(id) {
                seat.placeholder = Some((bin, pad));
            }
        }
        Ok(())
    }

    pub fn seat_ids(&self) -> Vec<String> {
        lock(&self.inner.seats).keys().cloned().collect()
    }

    /// Every seat's spec and state, in id order.
    pub fn seats(&self) -> Vec<(SeatSpec, SeatState)> {
        lock(&self.inner.seats)
            .values()
            .map(|s| (s.spec.clone(), s.state.clone()))
            .collect()
    }

    /// Output frames mixed so far.
    pub fn mixed_frames(&self) -> u64 {
        self.inner.layout.frames()
    }

    /// Current position of the mix (running time of the last mixed frame).
    pub fn position(&self) -> Option<gst::ClockTime> {
        let frames = self.mixed_frames();
        (frames > 0).then(|| {
            gst::ClockTime::from_nseconds(
                frames * gst::ClockTime::SECOND.nseconds()
                    / u64::from(self.inner.ladder.canvas.fps),
            )
        })
    }

    /// Per-rung encoded counts so far.
    pub fn rung_summaries(&self) -> Vec<RungSummary> {
        let fps = self.inner.ladder.canvas.fps;
        self.inner
            .rungs
            .iter()
            .map(|r| RungSummary::from_counters(&r.name, r.width, r.height, fps, &r.counters))
            .collect()
    }

    /// Live per-seat figures, in id order.
    pub fn seat_stats(&self) -> Vec<SeatStats> {
        let rates = lock(&self.inner.rates);
        lock(&self.inner.seats)
            .iter()
            .map(|(id, s)| SeatStats {
                id: id.clone(),
                state: s.state.clone(),
                input_fps: round1(rates.seat_fps.get(id).map_or(0.0, |m| m.rate)),
                input_bitrate_kbps: s.publish.as_ref().map(|_| {
                    round1(
                        rates
                            .seat_bytes
                            .get(id)
                            .map_or(0.0, |m| m.rate * 8.0 / 1000.0),
                    )
                }),
                frames_received: s.counters.video_frames.load(Relaxed),
                frames_dropped: s.counters.late_frames.load(Relaxed),
                stalls: s.counters.stalls.load(Relaxed),
                audio_level_dbfs: round1(s.counters.audio_level_dbfs()),
            })
            .collect()
    }

    /// Live per-rung figures, in ladder order.
    pub fn rung_stats(&self) -> Vec<RungStats> {
        let rates = lock(&self.inner.rates);
        self.inner
            .rungs
            .iter()
            .enumerate()
            .map(|(i, r)| RungStats {
                name: r.name.clone(),
                width: r.width,
                height: r.height,
                encoded_fps: round1(rates.rung_fps.get(i).map_or(0.0, |m| m.rate)),
                bitrate_kbps: round1(
                    rates
                        .rung_bytes
                        .get(i)
                        .map_or(0.0, |m| m.rate * 8.0 / 1000.0),
                ),
                frames: r.counters.frames.load(Relaxed),
                keyframes: r.counters.keyframes.load(Relaxed),
            })
            .collect()
    }

    /// Mixed frames per second over the last second.
    pub fn mix_fps(&self) -> f64 {
        round1(lock(&self.inner.rates).mix_fps.rate)
    }

    /// The current mixed frame as JPEG, `width` pixels wide (keeping the aspect) or at canvas
    /// size. Live rooms only; `None` before the first frame.
    pub fn snapshot_jpeg(&self, width: Option<u32>) -> Result<Option<Vec<u8>>> {
        let Some(sink) = &self.inner.snapshot else {
            bail!(
                "room {} has no snapshot (offline rooms keep none)",
                self.inner.id
            );
        };
        let Some(sample) = sink.property::<Option<gst::Sample>>("last-sample") else {
            return Ok(None);
        };
        let (cw, ch) = (
            self.inner.ladder.canvas.width,
            self.inner.ladder.canvas.height,
        );
        let w = width.unwrap_or(cw).clamp(16, cw);
        let h = ((u64::from(w) * u64::from(ch) / u64::from(cw)) as u32).max(2) & !1;
        let caps = gst::Caps::builder("image/jpeg")
            .field("width", w as i32)
            .field("height", h as i32)
            .build();
        let jpeg = gst_video::convert_sample(&sample, &caps, Some(gst::ClockTime::from_seconds(5)))
            .map_err(|e| anyhow!("cannot encode the snapshot: {e}"))?;
        let buf = jpeg.buffer().context("snapshot has no buffer")?;
        let map = buf
            .map_readable()
            .map_err(|_| anyhow!("snapshot buffer unreadable"))?;
        Ok(Some(map.as_slice().to_vec()))
    }

    /// Stops the mix at `at` (running time). Offline rooms use this for `--duration`.
    pub fn stop_at(&self, at: gst::ClockTime) {
        self.inner.gate.set(at);
    }

    /// Blocks until the room has ended (EOS reached every output, or it failed) or `timeout`
    /// passed. Returns the final state, or `None` on timeout.
    pub fn wait(&self, timeout: Option<Duration>) -> Option<RoomState> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = lock(&self.inner.status);
        while !st.finished {
            match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return None;
                    }
                    st = self
                        .inner
                        .changed
                        .wait_timeout(st, d - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                None => {
                    st = self
                        .inner
                        .changed
                        .wait(st)
                        .unwrap_or_else(|e| e.into_inner());
                }
            }
        }
        Some(st.state.clone())
    }

    /// Ends the room cleanly: the mix stops at the next frame, every output gets EOS and is
    /// finalised. Waits up to `grace`; past it the pipeline is torn down anyway and the room is
    /// marked failed.
    pub fn stop(&mut self, grace: Duration) -> RoomState {
        {
            let mut st = lock(&self.inner.status);
            if !st.finished {
                st.state = RoomState::Stopping;
            }
        }
        self.inner.gate.set(gst::ClockTime::ZERO);
        let state = match self.wait(Some(grace)) {
            Some(s) => s,
            None => {
                let msg = format!("outputs did not finalise within {grace:?}");
                tracing::error!(room = %self.inner.id, "{msg}");
                let _ = self.inner.pipeline.set_state(gst::State::Null);
                self.inner.finish(RoomState::Failed(msg.clone()));
                RoomState::Failed(msg)
            }
        };
        if let Some(t) = self.bus_thread.take() {
            let _ = t.join();
        }
        state
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        let _ = self.inner.pipeline.set_state(gst::State::Null);
        self.inner.finish(RoomState::Stopped);
        if let Some(t) = self.bus_thread.take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    /// Hands an element error to the output that owns the element; `true` if one did.
    fn claim_output_error(&self, element: &str, error: &str) -> bool {
        lock(&self.outputs)
            .iter()
            .any(|o| o.claim_error(element, error))
    }

    /// Where a seat's prescaler should aim: its tile's fit and size, if on screen.
    fn tile_target(&self, id: &str) -> Option<(crate::geometry::Fit, u32, u32)> {
        self.layout
            .seat_tile(id)
            .map(|t| (t.fit, t.rect.w.max(0) as u32, t.rect.h.max(0) as u32))
    }

    /// After a layout change: every seat's prescaler follows its new tile.
    fn retarget_filters(&self) {
        let seats: Vec<(String, crate::pipeline::beauty::SeatFilter)> = lock(&self.seats)
            .iter()
            .map(|(id, s)| (id.clone(), s.filter.clone()))
            .collect();
        for (id, f) in seats {
            f.set_tile(self.tile_target(&id));
        }
    }

    /// The room is ending: its mix has been told to stop, or it has stopped.
    fn stopping(&self) -> bool {
        self.gate.stop_at_ns.load(Relaxed) != u64::MAX || lock(&self.status).finished
    }

    fn finish(&self, state: RoomState) {
        if let Some(h) = &self.hls {
            h.room.finish();
        }
        let mut st = lock(&self.status);
        if !st.finished {
            st.finished = true;
            if !matches!(st.state, RoomState::Failed(_)) {
                st.state = state;
            }
        }
        self.changed.notify_all();
    }

    fn set_state(&self, state: RoomState) {
        let mut st = lock(&self.status);
        if !st.finished && !matches!(st.state, RoomState::Failed(_) | RoomState::Stopping) {
            st.state = state;
        }
    }

    /// Builds a seat's bin and links it into the mix.
    fn attach_seat(self: &Arc<Self>, spec: SeatSpec) -> Result<()> {
        if spec.source == crate::source::Source::Publish {
            return self.attach_publish_seat(spec);
        }
        let fps = self.ladder.canvas.fps;
        let filter = crate::pipeline::beauty::SeatFilter::default();
        let sb = seat::build(
            &spec.id,
            &spec.source,
            fps,
            self.live,
            &filter,
            &spec.beauty,
        )?;
        let (comp_pad, mix_pad) = self.request_mixer_pads(&spec)?;
        self.pipeline.add(&sb.bin)?;
        sb.video.link(&comp_pad)?;
        sb.audio.link(&mix_pad)?;
        let counters = Arc::new(SeatCounters::new());
        self.count_seat(&spec.id, &sb.video, &sb.audio, &counters);
        if self.live {
            seat::align_to_now(self.pipeline.upcast_ref(), &[&sb.video, &sb.audio]);
        }
        let placeholder = match &spec.placeholder {
            Some(path) => Some(self.attach_placeholder(&spec.id, path)?),
            None => None,
        };
        self.layout.add_seat(
            &spec.id,
            spec.slot,
            comp_pad.clone(),
            placeholder.as_ref().map(|(_, p)| p.clone()),
        );
        filter.set_tile(self.tile_target(&spec.id));
        let id = spec.id.clone();
        lock(&self.seats).insert(
            id.clone(),
            Seat {
                spec,
                bin: Some(sb.bin.clone()),
                comp_pad,
                mix_pad,
                placeholder: placeholder.clone(),
                counters,
                state: SeatState::Waiting,
                publish: None,
                filter: filter.clone(),
            },
        );
        if let Some((bin, _)) = &placeholder {
            bin.sync_state_with_parent()?;
        }
        sb.bin
            .sync_state_with_parent()
            .with_context(|| format!("seat {id:?} does not start"))?;
        Ok(())
    }

    /// A seat's compositor and audio-mixer pads, with its volume and mute applied.
    fn request_mixer_pads(&self, spec: &SeatSpec) -> Result<(gst::Pad, gst::Pad)> {
        let comp_pad = self
            .compositor
            .request_pad_simple("sink_%u")
            .context("compositor pad")?;
        let mix_pad = self
            .audiomixer
            .request_pad_simple("sink_%u")
            .context("audiomixer pad")?;
        mix_pad.set_property("volume", spec.volume);
        mix_pad.set_property("mute", spec.muted);
        Ok((comp_pad, mix_pad))
    }

    /// Counts the seat's buffers, notices when its source ends, and (live rooms) counts frames
    /// that arrive too late for the mix, which the compositor drops.
    fn count_seat(
        self: &Arc<Self>,
        id: &str,
        video: &gst::Pad,
        audio: &gst::Pad,
        counters: &Arc<SeatCounters>,
    ) {
        let frame_ns = gst::ClockTime::SECOND.nseconds() / u64::from(self.ladder.canvas.fps.max(1));
        for (pad, is_video) in [(video, true), (audio, false)] {
            let c = counters.clone();
            let weak = Arc::downgrade(self);
            let id = id.to_owned();
            let live = self.live;
            let pipeline = self.pipeline.downgrade();
            pad.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |pad, info| {
                    if let Some(b) = info.buffer() {
                        let end = buffer_end_running_time(pad, b);
                        if is_video {
                            if live
                                && let (Some(end), Some(now)) = (
                                    end,
                                    pipeline.upgrade().and_then(|p| p.current_running_time()),
                                )
                                && end + 3 * frame_ns < now.nseconds()
                            {
                                c.late_frames.fetch_add(1, Relaxed);
                            }
                            c.mark_video(end);
                        } else {
                            c.mark_audio(end);
                        }
                    } else if let Some(ev) = info.event()
                        && ev.type_() == gst::EventType::Eos
                    {
                        if is_video {
                            c.video_eos.store(true, Relaxed);
                        } else {
                            c.audio_eos.store(true, Relaxed);
                        }
                        if let Some(inner) = weak.upgrade() {
                            inner.on_seat_input_ended(&id);
                        }
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
    }

    /// Offline rooms end when their last finite seat ends (the longest file).
    fn on_seat_input_ended(&self, _id: &str) {
        if !self.stop_when_finite_seats_end {
            return;
        }
        let seats = lock(&self.seats);
        let finite: Vec<&Seat> = seats
            .values()
            .filter(|s| !s.spec.source.is_endless())
            .collect();
        if finite.iter().all(|s| s.counters.ended()) {
            let end = finite
                .iter()
                .map(|s| s.counters.end_ns())
                .max()
                .unwrap_or(0);
            self.gate.set(gst::ClockTime::from_nseconds(end));
        }
    }

    fn attach_placeholder(&self, id: &str, path: &std::path::Path) -> Result<(gst::Bin, gst::Pad)> {
        let bin = gst::Bin::builder()
            .name(format!("placeholder-{id}"))
            .build();
        let src = make("filesrc", None)?;
        src.set_property("location", path);
        let dec = make("decodebin", None)?;
        let conv = make("videoconvert", None)?;
        let freeze = make("imagefreeze", None)?;
        freeze.set_property("is-live", self.live);
        let caps = capsfilter(
            None,
            &gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        )?;
        let caps_rate = capsfilter(
            None,
            &gst::Caps::builder("video/x-raw")
                .field(
                    "framerate",
                    gst::Fraction::new(self.ladder.canvas.fps as i32, 1),
                )
                .build(),
        )?;
        bin.add_many([&src, &dec, &conv, &caps, &freeze, &caps_rate])?;
        src.link(&dec)?;
        gst::Element::link_many([&conv, &caps, &freeze, &caps_rate])?;
        let conv_sink = conv.static_pad("sink").context("videoconvert sink")?;
        dec.connect_pad_added(move |_, pad| {
            if !conv_sink.is_linked() {
                let _ = pad.link(&conv_sink);
            }
        });
        let ghost = gst::GhostPad::with_target(&caps_rate.static_pad("src").context("caps src")?)?;
        bin.add_pad(&ghost)?;
        self.pipeline.add(&bin)?;
        let pad = self
            .compositor
            .request_pad_simple("sink_%u")
            .context("compositor pad")?;
        ghost.link(&pad)?;
        if self.live {
            seat::align_to_now(self.pipeline.upcast_ref(), &[ghost.upcast_ref()]);
        }
        Ok((bin, pad))
    }

    /// Takes a seat out of the mix: releasing the mixer pads first wakes any streaming thread
    /// blocked in them, so stopping the bin cannot deadlock.
    fn detach_seat(&self, id: &str, seat: Seat) {
        self.layout.remove_seat(id);
        self.compositor.release_request_pad(&seat.comp_pad);
        self.audiomixer.release_request_pad(&seat.mix_pad);
        if let Some(bin) = &seat.bin {
            let _ = bin.set_state(gst::State::Null);
            let _ = self.pipeline.remove(bin);
        }
        if let Some(p) = seat.publish.and_then(|mut p| p.live.take()) {
            self.teardown_publisher(p);
        }
        if let Some((bin, pad)) = seat.placeholder {
            self.compositor.release_request_pad(&pad);
            let _ = bin.set_state(gst::State::Null);
            let _ = self.pipeline.remove(&bin);
        }
    }

    /// A seat's source failed: the seat leaves the mix, the room goes on. A publish seat only
    /// loses its publisher: the next one may do better.
    fn fail_seat(&self, id: &str, reason: String) {
        let seat = {
            let mut seats = lock(&self.seats);
            let Some(seat) = seats.get_mut(id) else {
                return;
            };
            if let Some(p) = seat.publish.as_mut() {
                p.fail(&reason);
                seat.state = SeatState::Failed(reason.clone());
                tracing::warn!(room = %self.id, seat = id, "publisher failed: {reason}");
                return;
            }
            if matches!(seat.state, SeatState::Failed(_)) {
                return;
            }
            seat.state = SeatState::Failed(reason.clone());
            // Keep the entry (for the API) but take its elements out of the pipeline.
            Seat {
                spec: seat.spec.clone(),
                bin: seat.bin.clone(),
                comp_pad: seat.comp_pad.clone(),
                mix_pad: seat.mix_pad.clone(),
                placeholder: seat.placeholder.take(),
                counters: seat.counters.clone(),
                state: seat.state.clone(),
                publish: None,
                filter: seat.filter.clone(),
            }
        };
        tracing::warn!(room = %self.id, seat = id, "seat failed: {reason}");
        self.detach_seat(id, seat);
        self.on_seat_input_ended(id);
    }

    /// Periodic: seat states from their counters, placeholders for stalled seats, rates.
    fn tick(&self) {
        let now = Instant::now();
        {
            let mut rates = lock(&self.rates);
            rates.mix_fps.sample(now, self.layout.frames());
            rates
                .rung_fps
                .resize_with(self.rungs.len(), RateMeter::default);
            rates
                .rung_bytes
                .resize_with(self.rungs.len(), RateMeter::default);
            for (i, r) in self.rungs.iter().enumerate() {
                rates.rung_fps[i].sample(now, r.counters.frames.load(Relaxed));
                rates.rung_bytes[i].sample(now, r.counters.bytes.load(Relaxed));
            }
            let seats = lock(&self.seats);
            rates.seat_fps.retain(|id, _| seats.contains_key(id));
            rates.seat_bytes.retain(|id, _| seats.contains_key(id));
            for (id, seat) in seats.iter() {
                rates
                    .seat_fps
                    .entry(id.clone())
                    .or_default()
                    .sample(now, seat.counters.video_frames.load(Relaxed));
                rates
                    .seat_bytes
                    .entry(id.clone())
                    .or_default()
                    .sample(now, seat.counters.bytes_in.load(Relaxed));
            }
        }
        let stall = self.timing.stall_timeout;
        let hold = self.timing.hold_last_frame;
        let mut seats = lock(&self.seats);
        for (id, seat) in seats.iter_mut() {
            let c = &seat.counters;
            let since = c.since_last_video();
            let new = match &seat.publish {
                Some(p) => p.state(since, stall, hold),
                None if matches!(seat.state, SeatState::Failed(_)) => continue,
                None if c.video_eos.load(Relaxed) => SeatState::Waiting,
                None => match since {
                    None => SeatState::Waiting,
                    Some(d) if d > stall => SeatState::Stalled,
                    Some(_) => SeatState::Connected,
                },
            };
            if new == SeatState::Stalled && seat.state != SeatState::Stalled {
                c.stalls.fetch_add(1, Relaxed);
            }
            // The tile holds the last frame for `hold` after the last media, then shows the
            // placeholder; a publish seat without a live publisher stops holding at once when
            // its hold is over too.
            let gone = seat
                .publish
                .as_ref()
                .is_some_and(|p| p.live.is_none() || matches!(new, SeatState::Failed(_)));
            let hold_over = since.is_none_or(|d| d > hold);
            // A publish seat that is not showing its own live media shows the placeholder once
            // the hold is over (a returning publisher never brings back the previous one's
            // last frame).
            let not_live = seat.publish.is_some() && new != SeatState::Connected;
            let force = self.live && hold_over && (new == SeatState::Stalled || gone || not_live);
            self.layout.set_force_placeholder(id, force);
            seat.state = new;
        }
    }
}

/// Where a buffer ends on the room's clock: segment start and pad offset applied, which is
/// what the mixers compare against the canvas timeline. Files with an edit list start their
/// segment after zero, so stream time would be off by the edit.
fn buffer_end_running_time(pad: &gst::Pad, b: &gst::BufferRef) -> Option<u64> {
    let pts = b.pts()?;
    let ev = pad.sticky_event::<gst::event::Segment>(0)?;
    let seg = ev.segment().downcast_ref::<gst::ClockTime>()?;
    let rt = seg.to_running_time(pts + b.duration().unwrap_or_default())?;
    u64::try_from(rt.nseconds() as i64 + pad.offset()).ok()
}

/// The seat an element belongs to, if any: the `seat-<id>` (or `placeholder-<id>`) bin right
/// under the pipeline among its ancestors. Must run while the element is still in the
/// hierarchy, which is why it runs in the bus's sync handler.
fn seat_of(obj: &gst::Object, pipeline: &gst::Object) -> Option<String> {
    let mut cur = Some(obj.clone());
    while let Some(o) = cur {
        let parent = o.parent();
        if parent.as_ref() == Some(pipeline) {
            let name = o.name();
            // Publisher bins are `seat-<id>~<generation>`.
            return name
                .strip_prefix("seat-")
                .or_else(|| name.strip_prefix("placeholder-"))
                .map(|s| s.split('~').next().unwrap_or(s).to_owned());
        }
        cur = parent;
    }
    None
}

/// A bus message and, for errors, the seat it came from (found while the hierarchy was intact).
/// What the room's own thread handles, in order: bus messages (with the seat they came from,
/// found while the hierarchy was intact) and publisher teardowns. Doing every state change of
/// a room's elements on that one thread is what keeps a teardown from racing the pipeline's
/// own shutdown (two threads changing the same bin's state can deadlock in GStreamer).
enum Event {
    Bus {
        msg: gst::Message,
        seat: Option<String>,
    },
    Teardown {
        publisher: publish::LivePublisher,
        done: std::sync::mpsc::SyncSender<()>,
    },
}

fn bus_loop(rx: std::sync::mpsc::Receiver<Event>, room: std::sync::Weak<Inner>) {
    loop {
        // 20 ms: stall detection and placeholder changes are checked this often.
        let posted = match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(p) => Some(p),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let Some(inner) = room.upgrade() else {
            return;
        };
        if lock(&inner.status).finished {
            return;
        }
        inner.tick();
        let (msg, seat) = match posted {
            None => continue,
            Some(Event::Teardown { publisher, done }) => {
                inner.teardown_now(publisher);
                let _ = done.send(());
                continue;
            }
            Some(Event::Bus { msg, seat }) => (msg, seat),
        };
        use gst::MessageView;
        match msg.view() {
            MessageView::Eos(_) => {
                let _ = inner.pipeline.set_state(gst::State::Null);
                inner.finish(RoomState::Stopped);
                return;
            }
            MessageView::Error(err) => {
                let src = msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                let reason = format!("{} ({src})", err.error());
                if let Some(seat) = seat {
                    inner.fail_seat(&seat, reason);
                    continue;
                }
                // A recording's own element failing is the recording's failure, not the room's.
                let element = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                if inner.claim_output_error(&element, &err.error().to_string()) {
                    tracing::warn!(room = %inner.id, "output failed: {reason}");
                    continue;
                }
                tracing::error!(room = %inner.id, "room failed: {reason}; debug: {:?}", err.debug());
                {
                    let mut st = lock(&inner.status);
                    st.state = RoomState::Failed(reason);
                }
                let _ = inner.pipeline.set_state(gst::State::Null);
                inner.finish(RoomState::Stopped);
                return;
            }
            MessageView::Warning(w) => {
                tracing::warn!(room = %inner.id, "{} ({:?})", w.error(), w.debug());
            }
            MessageView::StateChanged(sc)
                if msg.src() == Some(inner.pipeline.upcast_ref())
                    && sc.current() == gst::State::Playing =>
            {
                inner.set_state(RoomState::Live);
            }
            MessageView::Latency(_) => {
                let _ = inner.pipeline.recalculate_latency();
            }
            MessageView::Element(el) => {
                if let (Some(seat), Some(st)) = (seat, el.structure())
                    && st.name() == "level"
                    && let Ok(rms) = st.get::<gst::glib::ValueArray>("rms")
                {
                    let loudest = rms
                        .iter()
                        .filter_map(|v| v.get::<f64>().ok())
                        .fold(f64::NEG_INFINITY, f64::max);
                    if let Some(s) = lock(&inner.seats).get(&seat) {
                        s.counters.set_audio_level_dbfs(loudest);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Drops output buffers of a mixer that do not move forward in time.
///
/// GStreamer's aggregator (1.22) picks its start time when the first input buffer arrives and
/// moves its output position back to it (`start-time-selection=zero`: to 0). A live mix whose
/// inputs are slower to start than its latency has by then produced a few frames on timeout,
/// so it produces them again: the same timestamps twice. Encoders pass that on and the
/// fragmented-MP4 muxer refuses it, failing the room. Dropping the repeats keeps every output
/// strictly increasing; what was mixed before the inputs arrived stays as the first frames.
fn monotonic_guard(mixer: &gst::Element, room: &str) {
    let Some(pad) = mixer.static_pad("src") else {
        return;
    };
    let room = room.to_owned();
    let what = mixer.name();
    // (last PTS pushed, buffers dropped); only the mixer's streaming thread takes it.
    let state = Mutex::new((None::<gst::ClockTime>, 0u64));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
            return gst::PadProbeReturn::Ok;
        };
        let mut st = lock(&state);
        let (last, dropped) = &mut *st;
        if let Some(l) = *last
            && pts <= l
        {
            *dropped += 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    room,
                    "{what}: output went back to {pts} after {l}; dropped {dropped} repeated buffers"
                );
            }
            return gst::PadProbeReturn::Drop;
        }
        *last = Some(pts);
        gst::PadProbeReturn::Ok
    });
}

/// Gives a live pipeline its clock and base time before it starts, instead of at the switch to
/// PLAYING.
///
/// A pipeline normally hands its clock to every element first and their base time after, one
/// element at a time. The aggregators (compositor, audiomixer) already run their timeout loop
/// in PAUSED; one that wakes in between sees a clock with a base time of zero, takes every
/// deadline as hours overdue and produces frames from nothing, then rewinds to the start when
/// the first real input arrives: two output frames with the same timestamp, which the
/// fragmented-MP4 muxer refuses (the room failed at start on busy machines). With the base time
/// fixed up front (and the pipeline told not to recompute it) every element has it before it
/// can see the clock.
fn fix_base_time(pipeline: &gst::Pipeline) {
    let clock = gst::SystemClock::obtain();
    pipeline.use_clock(Some(&clock));
    pipeline.set_start_time(gst::ClockTime::NONE);
    pipeline.set_base_time(clock.time());
}

/// Scales and encodes every rung, each from the canvas. (Scaling 360p from the 480p picture
/// saves a little CPU but compounds two resamplings: it measured 2.3 dB lower than scaling
/// from the canvas, 0.7 dB under ffmpeg.)
fn build_ladder(
    pipeline: &gst::Pipeline,
    mix_tee: &gst::Element,
    ladder: &Ladder,
) -> Result<Vec<Rung>> {
    let mut rungs = Vec::new();
    let (cw, ch) = (ladder.canvas.width, ladder.canvas.height);
    for r in ladder.rungs_by_size() {
        let n = &r.name;
        let q = queue(Some(&format!("scale-queue-{n}")), gst::ClockTime::SECOND)?;
        pipeline.add(&q)?;
        mix_tee.link(&q)?;
        let mut last = q.clone();
        if (r.width, r.height) != (cw, ch) {
            // showmixscale (plugins/scale): Catmull-Rom luma, Lanczos-3 chroma, SIMD. It
            // replaced videoscale, whose scalar 6-tap path made rung scaling 15 % of a PK
            // room's CPU and whose chroma (linear whatever `method` says) measured 10 dB under
            // swscale. Rung sizes are rounded to even pixels (854x480 is not exactly 16:9):
            // it stretches by that fraction of a pixel, no border lines.
            let scale = make("showmixscale", Some(&format!("scale-{n}")))?;
            let caps = capsfilter(
                Some(&format!("size-{n}")),
                &crate::pipeline::rung_caps(r.width, r.height),
            )?;
            pipeline.add_many([&scale, &caps])?;
            gst::Element::link_many([&last, &scale, &caps])?;
            last = caps;
        }
        let enc_q = queue(Some(&format!("enc-queue-{n}")), gst::ClockTime::SECOND)?;
        let enc = encode::video_encoder(ladder, r, &format!("enc-{n}"))?;
        let parse = encode::video_parser(ladder.video.codec, &format!("parse-{n}"))?;
        let tee = make("tee", Some(&format!("rung-{n}")))?;
        tee.set_property("allow-not-linked", true);
        pipeline.add_many([&enc_q, &enc, &tee])?;
        gst::Element::link_many([&last, &enc_q, &enc])?;
        let enc_out = match &parse {
            Some(p) => {
                pipeline.add(p)?;
                enc.link(p)?;
                p.clone()
            }
            None => enc.clone(),
        };
        enc_out.link(&tee)?;
        let counters = Arc::new(RungCounters::new());
        let c = counters.clone();
        enc_out.static_pad("src").context("encoder src")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |_, info| {
                if let Some(b) = info.buffer() {
                    c.record(
                        b.pts().map(|p| p.nseconds()),
                        b.size(),
                        !b.flags().contains(gst::BufferFlags::DELTA_UNIT),
                    );
                }
                gst::PadProbeReturn::Ok
            },
        );
        rungs.push(Rung {
            name: n.clone(),
            width: r.width,
            height: r.height,
            counters,
            tee,
        });
    }
    // Keep the ladder's order for reports.
    rungs.sort_by_key(|r| ladder.rungs.iter().position(|x| x.name == r.name));
    Ok(rungs)
}

/// `<dir>/<rung>.mp4` for every rung: the rung's video and the mixed audio.
fn add_file_output(
    pipeline: &gst::Pipeline,
    id: &str,
    dir: &std::path::Path,
    ladder: &Ladder,
    rungs: &[Rung],
    audio_tee: &gst::Element,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("output {id:?}: cannot create directory {}", dir.display()))?;
    let mut files = Vec::new();
    for r in rungs {
        let n = &r.name;
        let (mux, ext) = encode::file_muxer(ladder.video.codec, &format!("{id}-mux-{n}"))?;
        let path = dir.join(format!("{n}.{ext}"));
        let sink = make("filesink", Some(&format!("{id}-sink-{n}")))?;
        sink.set_property("location", &path);
        sink.set_property("async", false);
        let vq = queue(
            Some(&format!("{id}-vq-{n}")),
            gst::ClockTime::from_seconds(2),
        )?;
        let aq = queue(
            Some(&format!("{id}-aq-{n}")),
            gst::ClockTime::from_seconds(2),
        )?;
        pipeline.add_many([&mux, &sink, &vq, &aq])?;
        r.tee.link(&vq)?;
        audio_tee.link(&aq)?;
        vq.link(&mux)?;
        aq.link(&mux)?;
        mux.link(&sink)?;
        files.push(path);
    }
    Ok(files)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn taps<'a>(
    room: &'a str,
    pipeline: &'a gst::Pipeline,
    rungs: &[Rung],
    audio: &'a gst::Element,
    backoff: crate::push::Backoff,
) -> outputs::Taps<'a> {
    outputs::Taps {
        room,
        pipeline,
        rungs: rungs
            .iter()
            .map(|r| (r.name.clone(), r.tee.clone()))
            .collect(),
        audio,
        backoff,
    }
}

/// A leaky branch off the mix that keeps the last frame for snapshots: it never holds up the
/// mix (the queue drops old frames), and the sink neither syncs nor prerolls.
fn add_snapshot_sink(pipeline: &gst::Pipeline, mix_tee: &gst::Element) -> Result<gst::Element> {
    let q = make("queue", Some("snapshot-queue"))?;
    q.set_property("max-size-buffers", 1u32);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
    q.set_property_from_str("leaky", "downstream");
    let sink = make("fakesink", Some("snapshot"))?;
    sink.set_property("sync", false);
    sink.set_property("async", false);
    sink.set_property("enable-last-sample", true);
    pipeline.add_many([&q, &sink])?;
    mix_tee.link(&q)?;
    q.link(&sink)?;
    Ok(sink)
}
