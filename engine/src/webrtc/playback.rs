//! WHEP playback: the room's encoded picture and Opus audio, encoded once for the room and
//! payloaded per viewer.
//!
//! ```text
//! room: rung tee ─ leaky queue ─ appsink ─┐            per viewer (own pipeline):
//!       raw audio ─ opusenc ─── appsink ──┴▶ Hub ──▶ feed pad ─ rtph264pay ─┬─ webrtcbin ─▶ network
//!                                                  feed pad ─ rtpopuspay ──┘
//! ```
//!
//! The hub hands each encoded buffer (a reference, never a copy) to every viewer. It pushes
//! straight into each viewer's payloader from the tap's own thread, through a pad of the
//! viewer's pipeline that belongs to no element: no queue and no thread per viewer, so a
//! viewer costs its payloading, SRTP and send, not two thread wake-ups per buffer. Nothing on
//! that path blocks (libnice sends without blocking and drops what the socket refuses), and
//! the tap's queue is leaky, so a slow viewer never holds up the room. A viewer starts on a
//! keyframe once its connection is up (the hub asks the room for one then, when the next is
//! far away). Each viewer's timestamps start at its own pipeline's clock, so RTP and RTCP
//! sender reports stay consistent between its audio and video.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use gst::prelude::*;

use super::peer::{OnEvent, Peer, PeerEvent, rtp_caps};
use super::sdp::{Choice, Kind};
use crate::pipeline::make;

/// One viewer's end of the hub.
pub struct ViewerFeed {
    video: FeedPad,
    audio: Option<FeedPad>,
    /// The viewer's pipeline: its clock and base time give the timestamps.
    pipeline: gst::Pipeline,
    state: Mutex<FeedState>,
    closed: AtomicBool,
    /// ICE and DTLS are up: what the feed sends now reaches the viewer.
    connected: Arc<AtomicBool>,
    pub sent_video: AtomicU64,
    pub dropped_video: AtomicU64,
}

#[derive(Default)]
struct FeedState {
    /// Room running time (ns) minus viewer running time (ns), set on the first keyframe.
    offset: Option<i64>,
    /// Video was dropped (or never started): wait for a keyframe.
    need_key: bool,
}

/// A source pad outside any element, linked to a payloader of the viewer's pipeline: the
/// hub pushes into it. Sends the sticky events (stream start, caps, segment) itself.
struct FeedPad {
    pad: gst::Pad,
    /// The caps last sent; `None` before the first buffer.
    caps: Mutex<Option<gst::Caps>>,
    /// A push failed (the viewer's pipeline is stopping): nothing more goes in.
    dead: AtomicBool,
}

impl FeedPad {
    fn new(name: &str, on_upstream: impl Fn(&gst::Event) + Send + Sync + 'static) -> FeedPad {
        let pad = gst::Pad::builder(gst::PadDirection::Src)
            .name(name)
            .event_function(move |_, _, ev| {
                on_upstream(&ev);
                true
            })
            .query_function(|pad, _, q| gst::Pad::query_default(pad, None::<&gst::Object>, q))
            .build();
        FeedPad {
            pad,
            caps: Mutex::new(None),
            dead: AtomicBool::new(false),
        }
    }

    fn push(&self, buffer: gst::Buffer, caps: &gst::CapsRef) {
        if self.dead.load(Relaxed) {
            return;
        }
        {
            let mut c = self.caps.lock().unwrap_or_else(|e| e.into_inner());
            if c.as_deref() != Some(caps) {
                let owned = caps.to_owned();
                if c.is_none() {
                    let _ = self.pad.set_active(true);
                    self.pad
                        .push_event(gst::event::StreamStart::new(&self.pad.name()));
                    self.pad.push_event(gst::event::Caps::new(&owned));
                    self.pad
                        .push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                            gst::ClockTime,
                        >::new()));
                } else {
                    self.pad.push_event(gst::event::Caps::new(&owned));
                }
                *c = Some(owned);
            }
        }
        if let Err(e) = self.pad.push(buffer)
            && e != gst::FlowError::NotLinked
        {
            self.dead.store(true, Relaxed);
        }
    }
}

impl ViewerFeed {
    fn running_now(&self) -> Option<i64> {
        let clock = self.pipeline.clock()?;
        let base = self.pipeline.base_time()?;
        Some(clock.time().nseconds() as i64 - base.nseconds() as i64)
    }

    /// Sends a picture, once the viewer is connected, from its first keyframe on (asked for
    /// once at the connection: the room keeps the request until one comes out).
    fn push_video(&self, running_ns: i64, buffer: &gst::Buffer, caps: &gst::CapsRef) {
        if self.closed.load(Relaxed) || !self.connected.load(Relaxed) {
            return;
        }
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let out = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.need_key && !key {
                self.dropped_video.fetch_add(1, Relaxed);
                return;
            }
            if st.offset.is_none() {
                let Some(now) = self.running_now() else {
                    return;
                };
                st.offset = Some(running_ns - now);
            }
            if st.need_key {
                tracing::debug!(viewer = %self.pipeline.name(), "video starts on a keyframe");
            }
            st.need_key = false;
            match st.offset.map(|o| running_ns - o).filter(|t| *t >= 0) {
                Some(t) => t,
                None => return,
            }
        };
        self.video.push(retimed(buffer, out), caps);
        self.sent_video.fetch_add(1, Relaxed);
    }

    fn push_audio(&self, running_ns: i64, buffer: &gst::Buffer, caps: &gst::CapsRef) {
        let Some(audio) = &self.audio else {
            return;
        };
        if self.closed.load(Relaxed) {
            return;
        }
        // Audio starts with the first picture.
        let Some(out) = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .offset
            .map(|o| running_ns - o)
            .filter(|t| *t >= 0)
        else {
            return;
        };
        audio.push(retimed(buffer, out), caps);
    }
}

/// The buffer (shared, not copied) with a new PTS and no DTS.
fn retimed(buffer: &gst::Buffer, pts_ns: i64) -> gst::Buffer {
    let mut b = buffer.clone();
    let m = b.make_mut();
    m.set_pts(gst::ClockTime::from_nseconds(pts_ns as u64));
    m.set_dts(gst::ClockTime::NONE);
    b
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
        for v in self.viewers() {
            v.push_video(rt - self.video_advance_ns, &buffer, caps);
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
        // Until ICE and DTLS are up, webrtcbin drops what it is given: a keyframe sent then
        // is lost, and the viewer waits for the next one (a GOP, or a PLI the rate limit may
        // refuse). So the feed starts at the connection, with a keyframe asked for then.
        let connected = Arc::new(AtomicBool::new(false));
        let on_event: OnEvent = {
            let connected = connected.clone();
            let hub = Arc::downgrade(&hub);
            Arc::new(move |ev| {
                if ev == PeerEvent::Connected
                    && !connected.swap(true, Relaxed)
                    && let Some(h) = hub.upgrade()
                {
                    (h.request_keyframe)();
                }
                on_event(ev)
            })
        };
        let peer = Peer::new(name, ice, on_event)?;
        let pipeline = peer.pipeline().clone();
        let w = peer.webrtcbin().clone();
        let mut video = None;
        let mut audio = None;
        for c in choices {
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
            pipeline.add(&pay)?;
            // Keyframe requests from the viewer (PLI/FIR) come up to the feed pad.
            let weak = Arc::downgrade(&hub);
            let feed = FeedPad::new(&format!("feed-{}", c.kind), move |ev| {
                if gst_video::ForceKeyUnitEvent::is(ev)
                    && let Some(h) = weak.upgrade()
                {
                    (h.request_keyframe)();
                }
            });
            feed.pad
                .link(&pay.static_pad("sink").context("payloader sink")?)
                .map_err(|e| anyhow!("cannot link the feed to the payloader: {e:?}"))?;
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
                Kind::Video => video = Some(feed),
                _ => audio = Some(feed),
            }
        }
        let video = video.context("no video chosen")?;
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
            connected,
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
        for f in [Some(&self.feed.video), self.feed.audio.as_ref()]
            .into_iter()
            .flatten()
        {
            let _ = f.pad.set_active(false);
        }
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
