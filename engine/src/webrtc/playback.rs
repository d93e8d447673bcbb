//! WHEP playback: the room's encoded picture and Opus audio, encoded once for the room and
//! payloaded per viewer.
//!
//! ```text
//! room: rung tee ─ leaky queue ─ appsink ─┐            per viewer (own pipeline):
//!       raw audio ─ opusenc ─── appsink ──┴▶ Hub ──▶ appsrc ─ rtph264pay ─┬─ webrtcbin ─▶ network
//!                                                  appsrc ─ rtpopuspay ──┘
//! ```
//!
//! The hub hands each encoded buffer (a reference, never a copy) to every viewer's appsrcs.
//! A viewer starts on a keyframe (the hub asks the room for one when the next is far away) and,
//! when it cannot keep up, drops video up to the next keyframe rather than queue delay. Each
//! viewer's timestamps start at its own pipeline's clock, so RTP and RTCP sender reports stay
//! consistent between its audio and video.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use gst::prelude::*;

use super::peer::{OnEvent, Peer, rtp_caps};
use super::sdp::{Choice, Kind};
use crate::pipeline::make;

/// Queued media a viewer may hold before it counts as behind: 500 ms at any bitrate.
const MAX_QUEUED: gst::ClockTime = gst::ClockTime::from_mseconds(500);

/// One viewer's end of the hub.
pub struct ViewerFeed {
    video: gst_app::AppSrc,
    audio: Option<gst_app::AppSrc>,
    /// The viewer's pipeline: its clock and base time give the timestamps.
    pipeline: gst::Pipeline,
    state: Mutex<FeedState>,
    closed: AtomicBool,
    pub sent_video: AtomicU64,
    pub dropped_video: AtomicU64,
}

#[derive(Default)]
struct FeedState {
    /// Room running time (ns) minus viewer running time (ns), set on the first keyframe.
    offset: Option<i64>,
    /// Video was dropped (or never started): wait for a keyframe.
    need_key: bool,
    vcaps: Option<gst::Caps>,
    acaps: Option<gst::Caps>,
}

impl ViewerFeed {
    fn running_now(&self) -> Option<i64> {
        let clock = self.pipeline.clock()?;
        let base = self.pipeline.base_time()?;
        Some(clock.time().nseconds() as i64 - base.nseconds() as i64)
    }

    /// `true` when the feed wants a keyframe it does not have yet.
    fn push_video(&self, running_ns: i64, buffer: &gst::Buffer, caps: &gst::CapsRef) -> bool {
        if self.closed.load(Relaxed) {
            return false;
        }
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.need_key && !key {
            self.dropped_video.fetch_add(1, Relaxed);
            return true;
        }
        if self.video.current_level_time() > MAX_QUEUED {
            // Behind: skip to the next keyframe instead of building up delay.
            st.need_key = true;
            self.dropped_video.fetch_add(1, Relaxed);
            return true;
        }
        if st.offset.is_none() {
            let Some(now) = self.running_now() else {
                return true;
            };
            st.offset = Some(running_ns - now);
        }
        st.need_key = false;
        let Some(out) = st.offset.map(|o| running_ns - o).filter(|t| *t >= 0) else {
            return false;
        };
        if st.vcaps.as_deref() != Some(caps) {
            let c = caps.to_owned();
            self.video.set_caps(Some(&c));
            st.vcaps = Some(c);
        }
        drop(st);
        let mut b = buffer.clone();
        {
            let b = b.make_mut();
            b.set_pts(gst::ClockTime::from_nseconds(out as u64));
            b.set_dts(gst::ClockTime::NONE);
        }
        let _ = self.video.push_buffer(b);
        self.sent_video.fetch_add(1, Relaxed);
        false
    }

    fn push_audio(&self, running_ns: i64, buffer: &gst::Buffer, caps: &gst::CapsRef) {
        let Some(audio) = &self.audio else {
            return;
        };
        if self.closed.load(Relaxed) || audio.current_level_time() > MAX_QUEUED {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Audio starts with the first picture.
        let Some(out) = st.offset.map(|o| running_ns - o).filter(|t| *t >= 0) else {
            return;
        };
        if st.acaps.as_deref() != Some(caps) {
            let c = caps.to_owned();
            audio.set_caps(Some(&c));
            st.acaps = Some(c);
        }
        drop(st);
        let mut b = buffer.clone();
        {
            let b = b.make_mut();
            b.set_pts(gst::ClockTime::from_nseconds(out as u64));
            b.set_dts(gst::ClockTime::NONE);
        }
        let _ = audio.push_buffer(b);
    }
}

/// A sample's PTS as running time in nanoseconds.
fn running_ns(sample: &gst::Sample) -> Option<(gst::Buffer, i64)> {
    let buffer = sample.buffer_owned()?;
    let pts = buffer.pts()?;
    let seg = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let rt = seg.to_running_time_full(pts)?;
    let ns = match rt {
        gst::Signed::Positive(t) => t.nseconds() as i64,
        gst::Signed::Negative(t) => -(t.nseconds() as i64),
    };
    Some((buffer, ns))
}

/// The room's side: every viewer of one rung.
pub struct Hub {
    viewers: Mutex<Vec<Arc<ViewerFeed>>>,
    /// Asks the room's encoders for a keyframe (rate-limited by the room).
    request_keyframe: Box<dyn Fn() + Send + Sync>,
    /// Told when viewers come or go.
    on_viewers: Box<dyn Fn() + Send + Sync>,
    /// Subtracted from video timestamps: the room delays its picture by the AAC encoder's
    /// priming for its other outputs, which Opus does not need.
    video_advance_ns: i64,
    /// The H.264 profile the rung's encoder produces, once known.
    profile: Mutex<Option<String>>,
}

impl Hub {
    pub fn new(
        request_keyframe: Box<dyn Fn() + Send + Sync>,
        on_viewers: Box<dyn Fn() + Send + Sync>,
        video_advance: gst::ClockTime,
    ) -> Hub {
        Hub {
            viewers: Mutex::new(Vec::new()),
            request_keyframe,
            on_viewers,
            video_advance_ns: video_advance.nseconds() as i64,
            profile: Mutex::new(None),
        }
    }

    fn viewers(&self) -> Vec<Arc<ViewerFeed>> {
        self.viewers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn viewer_count(&self) -> usize {
        self.viewers.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// From the rung's appsink.
    pub fn on_video(&self, sample: &gst::Sample) {
        let Some((buffer, rt)) = running_ns(sample) else {
            return;
        };
        let Some(caps) = sample.caps() else {
            return;
        };
        if let Some(p) = caps
            .structure(0)
            .and_then(|s| s.get::<&str>("profile").ok())
        {
            let mut g = self.profile.lock().unwrap_or_else(|e| e.into_inner());
            if g.as_deref() != Some(p) {
                *g = Some(p.to_owned());
            }
        }
        let mut wants_key = false;
        for v in self.viewers() {
            wants_key |= v.push_video(rt - self.video_advance_ns, &buffer, caps);
        }
        if wants_key {
            (self.request_keyframe)();
        }
    }

    /// From the Opus appsink.
    pub fn on_audio(&self, sample: &gst::Sample) {
        let (Some((buffer, rt)), Some(caps)) = (running_ns(sample), sample.caps()) else {
            return;
        };
        for v in self.viewers() {
            v.push_audio(rt, &buffer, caps);
        }
    }

    /// The encoder's H.264 profile as GStreamer names it (`high`, `main`, ...), once seen.
    pub fn profile(&self) -> Option<String> {
        self.profile
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn add(&self, feed: Arc<ViewerFeed>) {
        self.viewers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(feed);
        (self.on_viewers)();
        (self.request_keyframe)();
    }

    pub fn remove(&self, feed: &Arc<ViewerFeed>) {
        feed.closed.store(true, Relaxed);
        self.viewers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|v| !Arc::ptr_eq(v, feed));
        (self.on_viewers)();
    }
}

/// A WHEP viewer: its peer and its end of the hub.
pub struct Viewer {
    peer: Peer,
    feed: Arc<ViewerFeed>,
    hub: Arc<Hub>,
}

impl Viewer {
    /// Builds the viewer's pipeline for the `choices` (from `sdp::choose_whep`), answers the
    /// offer, and joins the hub. Returns the viewer and the answer.
    pub fn start(
        name: &str,
        ice: &super::IceConfig,
        offer: &str,
        choices: &[Choice],
        hub: Arc<Hub>,
        on_event: OnEvent,
    ) -> Result<(Viewer, String)> {
        let peer = Peer::new(name, ice, on_event)?;
        let pipeline = peer.pipeline().clone();
        let w = peer.webrtcbin().clone();
        let mut video = None;
        let mut audio = None;
        for c in choices {
            let src = gst_app::AppSrc::builder()
                .format(gst::Format::Time)
                .is_live(true)
                .block(false)
                .build();
            let pay = match c.kind {
                Kind::Video => {
                    let p = make("rtph264pay", None)?;
                    p.set_property("config-interval", -1i32);
                    p.set_property_from_str("aggregate-mode", "zero-latency");
                    p
                }
                _ => make("rtpopuspay", None)?,
            };
            p_set_pt(&pay, c.codec.pt)?;
            pay.set_property("mtu", 1200u32);
            pipeline.add_many([src.upcast_ref(), &pay])?;
            src.link(&pay)?;
            let sinkpad = w
                .request_pad_simple("sink_%u")
                .context("webrtcbin gives no sink pad")?;
            pay.static_pad("src")
                .context("payloader src")?
                .link(&sinkpad)
                .map_err(|e| anyhow!("cannot link the payloader to webrtcbin: {e:?}"))?;
            let transceiver = sinkpad.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
            transceiver.set_direction(gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly);
            transceiver.set_property("codec-preferences", playback_caps(c));
            match c.kind {
                Kind::Video => video = Some(src),
                _ => audio = Some(src),
            }
        }
        let video = video.context("no video chosen")?;
        // Keyframe requests from the viewer (PLI/FIR) reach the appsrc as upstream events.
        if let Some(pad) = video.static_pad("src") {
            let hub = Arc::downgrade(&hub);
            pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                if let Some(ev) = info.event()
                    && gst_video::ForceKeyUnitEvent::is(ev)
                    && let Some(h) = hub.upgrade()
                {
                    (h.request_keyframe)();
                }
                gst::PadProbeReturn::Ok
            });
        }
        peer.start()?;
        let answer = peer.answer(offer, |_| Ok(()))?;
        let feed = Arc::new(ViewerFeed {
            video,
            audio,
            pipeline,
            state: Mutex::new(FeedState {
                need_key: true,
                ..FeedState::default()
            }),
            closed: AtomicBool::new(false),
            sent_video: AtomicU64::new(0),
            dropped_video: AtomicU64::new(0),
        });
        hub.add(feed.clone());
        Ok((Viewer { peer, feed, hub }, answer))
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    pub fn stop(&mut self) {
        self.hub.remove(&self.feed);
        self.peer.stop();
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn p_set_pt(pay: &gst::Element, pt: u8) -> Result<()> {
    crate::pipeline::set_number(pay, "pt", i64::from(pt))
}

/// The transceiver's codec preference for a viewer: the chosen payload type without the
/// profile fields, so the payloader's own caps (the encoder's real profile) fit it; the
/// answer still carries the profile-level-id the viewer offered.
fn playback_caps(c: &Choice) -> gst::Caps {
    let mut caps = rtp_caps(c.kind, &c.codec);
    if let Some(s) = caps.make_mut().structure_mut(0) {
        s.remove_fields(["profile-level-id", "level-asymmetry-allowed"]);
    }
    caps
}
