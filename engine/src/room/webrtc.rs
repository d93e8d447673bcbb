//! The room's side of WHEP playback: taps on the rungs viewers watch, one Opus encoder for the
//! room's audio, and keyframes on demand for viewers who join.
//!
//! Nothing here exists until the first viewer asks: a room without WebRTC viewers runs exactly
//! as before. Taps are built once per rung and kept for the room's life; the Opus branch is
//! shut by a valve while no viewer watches, so it costs nothing then.
//!
//! Keyframes: a viewer can only start on one. Rather than make it wait up to a GOP, the room
//! asks every encoder for a keyframe at once (a force-key-unit event on the canvas, before the
//! ladder splits, so rungs stay aligned), unless the natural one is under 150 ms away, and at
//! most once a second, so a burst of viewers does not turn into a burst of keyframes (at worst
//! one extra per GOP). LL-HLS segment durations do not move: `isofmp4mux` closes fragments at
//! its own boundaries, and a forced keyframe stays inside one.
//!
//! Two things in GStreamer 1.22 had kept forced keyframes from ever happening (measured: a
//! viewer joining early in a GOP waited 0.6–0.9 s for the natural keyframe):
//! - A force-key-unit event pushed through a pad with an offset (the canvas has one: the
//!   audio priming delay) reaches `GstVideoEncoder` with running time 0, which it discards as
//!   older than its last keyframe. So the event goes into the mix tee's sink pad instead, just
//!   after the offset, with the running time the frame has there.
//! - An event without a running time ("as soon as possible") waits behind `isofmp4mux`'s own
//!   timed requests for the next fragment boundary (`GstVideoEncoder` stops at the first
//!   request still in the future). So the event names the frame's running time.
//!
//! Where the GOP stands comes from the top rung's encoded output (the keyframes that actually
//! came out, the muxer's and ours), counted on from there in canvas frames.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gst::prelude::*;

use super::{Inner, lock};
use crate::pipeline::tap::Tap;
use crate::pipeline::{capsfilter, make, queue, set_number};
use crate::presets::ladder::VideoCodec;
use crate::webrtc::playback::Hub;

/// Opus for WebRTC viewers: 20 ms frames, 96 kbit/s stereo (music and voices).
const OPUS_BITRATE: i64 = 96_000;
/// At most one forced keyframe per this long.
const MIN_FORCED_INTERVAL: Duration = Duration::from_secs(1);
/// A viewer waits for the natural keyframe when it is at most this far away.
const NATURAL_SOON: Duration = Duration::from_millis(150);

/// Forces a keyframe on every rung at once, unless the natural one is close (see the module
/// doc).
pub(super) struct KeyframeForcer {
    requested: AtomicBool,
    state: Mutex<ForcerState>,
    gop: u32,
    /// Frames within `NATURAL_SOON`.
    soon: u32,
    pub forced: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct ForcerState {
    /// Canvas frames since the last keyframe (seen at the encoder's output, or forced).
    since: Option<u32>,
    /// When a keyframe was last forced.
    last_forced: Option<Instant>,
}

impl KeyframeForcer {
    pub(super) fn new(gop_frames: u32, fps: u32) -> Arc<Self> {
        Arc::new(Self {
            requested: AtomicBool::new(false),
            state: Mutex::new(ForcerState::default()),
            gop: gop_frames.max(1),
            soon: (fps as f64 * NATURAL_SOON.as_secs_f64()).round() as u32,
            forced: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A viewer needs a keyframe; kept until one comes out or is forced.
    pub(super) fn request(&self) {
        self.requested.store(true, Relaxed);
    }

    /// Watches the canvas (every frame every encoder gets) and sends the request into
    /// `inject` (the sink pad of the element after the canvas) in front of the frame that
    /// should become a keyframe.
    pub(super) fn attach(self: &Arc<Self>, canvas_src: &gst::Pad, inject: &gst::Pad) {
        let me = self.clone();
        let inject = inject.clone();
        canvas_src.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let mut st = lock(&me.state);
            // Counted on from the last keyframe seen; a GOP after it the encoders place the
            // next one themselves (in case the output is not watched, or late).
            let since = match st.since {
                None => 0,
                Some(n) if n + 1 >= me.gop => 0,
                Some(n) => n + 1,
            };
            st.since = Some(since);
            if since == 0 {
                // A natural keyframe: it serves whoever was waiting.
                me.requested.store(false, Relaxed);
                return gst::PadProbeReturn::Ok;
            }
            if !me.requested.load(Relaxed) {
                return gst::PadProbeReturn::Ok;
            }
            if me.gop - since <= me.soon {
                // The natural one is about to come.
                me.requested.store(false, Relaxed);
                return gst::PadProbeReturn::Ok;
            }
            if st
                .last_forced
                .is_some_and(|t| t.elapsed() < MIN_FORCED_INTERVAL)
            {
                return gst::PadProbeReturn::Ok;
            }
            let Some(running_time) = info.buffer().and_then(|b| downstream_running_time(pad, b))
            else {
                return gst::PadProbeReturn::Ok;
            };
            me.requested.store(false, Relaxed);
            st.since = Some(0);
            st.last_forced = Some(Instant::now());
            drop(st);
            me.forced.fetch_add(1, Relaxed);
            tracing::debug!("keyframe forced {since} frames into the GOP");
            let ev = gst_video::DownstreamForceKeyUnitEvent::builder()
                .running_time(running_time)
                .all_headers(true)
                .build();
            inject.send_event(ev);
            gst::PadProbeReturn::Ok
        });
    }

    /// Watches an encoder's output: where its keyframes come out is where the GOP restarts.
    pub(super) fn observe(self: &Arc<Self>, encoded: &gst::Pad) {
        let me = self.clone();
        encoded.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if info
                .buffer()
                .is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT))
            {
                lock(&me.state).since = Some(0);
                me.requested.store(false, Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
    }
}

/// The running time `buffer` will have downstream of `pad`: its segment's, plus the pad's
/// offset (the encoders see the canvas shifted by the audio priming delay).
fn downstream_running_time(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<gst::ClockTime> {
    let seg = pad.sticky_event::<gst::event::Segment>(0)?;
    let seg = seg.segment().downcast_ref::<gst::ClockTime>()?;
    let rt = seg.to_running_time(buffer.pts()?)?;
    let offset = pad.offset();
    if offset >= 0 {
        Some(rt + gst::ClockTime::from_nseconds(offset as u64))
    } else {
        rt.checked_sub(gst::ClockTime::from_nseconds(offset.unsigned_abs()))
    }
}

/// The room's WebRTC playback branches, built on demand.
#[derive(Default)]
pub(super) struct WebrtcTaps {
    hubs: BTreeMap<String, Arc<Hub>>,
    taps: Vec<Tap>,
    opus: Option<Opus>,
}

struct Opus {
    valve: gst::Element,
    /// Every hub, for the audio appsink to feed.
    hubs: Arc<Mutex<Vec<Weak<Hub>>>>,
}

impl Inner {
    /// The hub viewers of `rung` (default: the top rung) join, built on first use.
    pub(super) fn whep_hub(self: &Arc<Self>, rung: Option<&str>) -> Result<Arc<Hub>> {
        if self.ladder.video.codec != VideoCodec::H264 {
            bail!(
                "WebRTC playback needs an H.264 ladder; room {} encodes {:?}",
                self.id,
                self.ladder.video.codec
            );
        }
        let r = match rung {
            Some(name) => self
                .rungs
                .iter()
                .find(|r| r.name == name)
                .with_context(|| {
                    format!(
                        "room {} has no rung {name:?} (rungs: {})",
                        self.id,
                        self.rungs
                            .iter()
                            .map(|r| r.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?,
            None => self
                .rungs
                .iter()
                .max_by_key(|r| u64::from(r.width) * u64::from(r.height))
                .context("room without rungs")?,
        };
        let mut w = lock(&self.webrtc);
        if let Some(h) = w.hubs.get(&r.name) {
            return Ok(h.clone());
        }
        if w.opus.is_none() {
            w.opus = Some(self.build_opus()?);
        }
        let forcer = Arc::downgrade(&self.keyframes);
        let me = Arc::downgrade(self);
        let hub = Arc::new(Hub::new(
            Box::new(move || {
                if let Some(f) = forcer.upgrade() {
                    f.request();
                }
            }),
            Box::new(move || {
                if let Some(inner) = me.upgrade() {
                    inner.update_opus_valve();
                }
            }),
            crate::pipeline::encode::audio_encoder_delay(&self.ladder.audio),
        ));
        let h = hub.clone();
        let callbacks = gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                if let Ok(s) = sink.pull_sample() {
                    h.on_video(&s);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build();
        let tap = Tap::build(
            &self.pipeline,
            &format!("webrtc-{}", r.name),
            vec![(&r.tee, "video", callbacks)],
        )?;
        w.taps.push(tap);
        if let Some(o) = &w.opus {
            lock(&o.hubs).push(Arc::downgrade(&hub));
        }
        w.hubs.insert(r.name.clone(), hub.clone());
        Ok(hub)
    }

    /// Opens the Opus valve while anyone watches, shuts it when nobody does.
    fn update_opus_valve(&self) {
        let w = lock(&self.webrtc);
        let watching = w.hubs.values().any(|h| h.viewer_count() > 0);
        if let Some(o) = &w.opus {
            o.valve.set_property("drop", !watching);
        }
    }

    /// raw audio tee ─ leaky queue ─ valve ─ convert ─ resample ─ opusenc ─ appsink.
    fn build_opus(&self) -> Result<Opus> {
        let q = queue(Some("webrtc-audio-queue"), gst::ClockTime::from_seconds(1))?;
        q.set_property_from_str("leaky", "downstream");
        let valve = make("valve", Some("webrtc-audio-valve"))?;
        valve.set_property("drop", true);
        // A shut valve must still pass EOS (sticky), or a room whose last WHEP viewer has left
        // never finalises its outputs when it stops.
        valve.set_property_from_str("drop-mode", "forward-sticky-events");
        let conv = make("audioconvert", Some("webrtc-audio-convert"))?;
        let res = make("audioresample", Some("webrtc-audio-resample"))?;
        let caps = capsfilter(
            Some("webrtc-audio-caps"),
            &gst::Caps::builder("audio/x-raw")
                .field("rate", 48_000i32)
                .field("channels", 2i32)
                .build(),
        )?;
        let enc = make("opusenc", Some("webrtc-audio-enc"))?;
        set_number(&enc, "bitrate", OPUS_BITRATE)?;
        enc.set_property_from_str("frame-size", "20");
        let hubs: Arc<Mutex<Vec<Weak<Hub>>>> = Arc::default();
        let feed = hubs.clone();
        let sink = gst_app::AppSink::builder()
            .name("webrtc-audio-sink")
            .sync(false)
            .async_(false)
            .enable_last_sample(false)
            .callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        if let Ok(s) = sink.pull_sample() {
                            let hubs: Vec<Arc<Hub>> =
                                lock(&feed).iter().filter_map(Weak::upgrade).collect();
                            for h in hubs {
                                h.on_audio(&s);
                            }
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            )
            .build();
        let elements = [&q, &valve, &conv, &res, &caps, &enc, sink.upcast_ref()];
        self.pipeline.add_many(elements)?;
        gst::Element::link_many(elements)?;
        for e in elements.iter().rev() {
            e.sync_state_with_parent()?;
        }
        let tee_pad = self
            .raw_audio_tee
            .request_pad_simple("src_%u")
            .context("the raw audio tee gives no pad")?;
        tee_pad.link(&q.static_pad("sink").context("queue sink")?)?;
        Ok(Opus { valve, hubs })
    }

    /// How many WebRTC viewers the room has, for stats.
    pub(super) fn whep_viewers(&self) -> usize {
        lock(&self.webrtc)
            .hubs
            .values()
            .map(|h| h.viewer_count())
            .sum()
    }
}
