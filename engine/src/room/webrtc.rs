//! The room's side of WHEP playback: taps on the rungs viewers watch, one Opus encoder for the
//! room's audio, and keyframes on demand for viewers who join.
//!
//! Nothing here exists until the first viewer asks: a room without WebRTC viewers runs exactly
//! as before. Taps are built once per rung and kept for the room's life; the Opus branch is
//! shut by a valve while no viewer watches, so it costs nothing then.
//!
//! Keyframes: a viewer can only start on one. Rather than make it wait up to a GOP, the room
//! asks every encoder for a keyframe at once (a force-key-unit event on the canvas, before the
//! ladder splits, so rungs stay aligned), but only early in a GOP, at most once a second:
//! LL-HLS segments then last under 1.5 GOPs, which keeps their durations within the target
//! (§4.4.3.1), and a burst of viewers does not turn into a burst of keyframes. Late in a GOP
//! the viewer waits for the natural keyframe, at most half a GOP away.

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

/// Forces a keyframe on every rung at once, early in a GOP (see the module doc).
pub(super) struct KeyframeForcer {
    requested: AtomicBool,
    /// (frames since the last IDR, when a keyframe was last forced).
    state: Mutex<(Option<u32>, Option<Instant>)>,
    gop: u32,
    pub forced: std::sync::atomic::AtomicU64,
}

impl KeyframeForcer {
    pub(super) fn new(gop_frames: u32) -> Arc<Self> {
        Arc::new(Self {
            requested: AtomicBool::new(false),
            state: Mutex::new((None, None)),
            gop: gop_frames.max(1),
            forced: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub(super) fn request(&self) {
        self.requested.store(true, Relaxed);
    }

    /// Watches the canvas (every frame every encoder gets) and pushes the request in front of
    /// the frame that should become a keyframe.
    pub(super) fn attach(self: &Arc<Self>, canvas_src: &gst::Pad) {
        let me = self.clone();
        canvas_src.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
            let mut st = lock(&me.state);
            // The encoders' first frame is an IDR, and then every `gop` frames after the last.
            let since = match st.0 {
                None => 0,
                Some(n) if n + 1 >= me.gop => 0,
                Some(n) => n + 1,
            };
            st.0 = Some(since);
            if since == 0 {
                // A natural keyframe: it serves whoever was waiting.
                me.requested.store(false, Relaxed);
                return gst::PadProbeReturn::Ok;
            }
            if !me.requested.load(Relaxed) {
                return gst::PadProbeReturn::Ok;
            }
            if since >= me.gop / 2 {
                // The next one is at most half a GOP away.
                me.requested.store(false, Relaxed);
                return gst::PadProbeReturn::Ok;
            }
            if st.1.is_some_and(|t| t.elapsed() < MIN_FORCED_INTERVAL) {
                return gst::PadProbeReturn::Ok;
            }
            me.requested.store(false, Relaxed);
            st.0 = Some(0);
            st.1 = Some(Instant::now());
            drop(st);
            me.forced.fetch_add(1, Relaxed);
            let ev = gst_video::DownstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            pad.push_event(ev);
            gst::PadProbeReturn::Ok
        });
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
