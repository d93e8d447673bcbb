//! A WHIP session: the publisher's WebRTC media, depayloaded in the session's own pipeline and
//! handed to its seat as elementary streams with running-time timestamps.
//!
//! ```text
//! webrtcbin ─┬─ rtph264depay | rtpvp8depay ─ appsink ─▶ MediaSink (the seat's publisher bin)
//!            └─ rtpopusdepay ─────────────── appsink ─▶
//! ```
//!
//! The depayloaders ask the publisher for a keyframe when packets are lost and hold back the
//! rest of a broken GOP, so the seat's decoder only sees what it can decode. The jitter buffer
//! (webrtcbin's `latency`) passes in-order packets at once; it only waits on a gap.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use gst::prelude::*;

use super::peer::{OnEvent, Peer, PeerEvent, rtp_caps};
use super::sdp::{Choice, Kind};
use crate::ingest::Refusal;
use crate::ingest::retime::Stream;
use crate::pipeline::make;

/// Where a WebRTC publisher's media goes (the room's side of the hand-off).
pub trait MediaSink: Send {
    /// One access unit (video) or packet (audio), timestamped in the session's running time.
    /// An error ends the session (the seat was removed, the publisher was cut off).
    fn push(
        &mut self,
        stream: Stream,
        buffer: gst::Buffer,
        caps: &gst::CapsRef,
    ) -> Result<(), Refusal>;
    /// The session is over.
    fn end(&mut self, reason: &str);
}

type SharedSink = Arc<Mutex<Option<Box<dyn MediaSink>>>>;

pub struct IngestSession {
    peer: Peer,
    sink: SharedSink,
}

impl IngestSession {
    /// Builds the session, answers `offer` with the `choices` (from `sdp::choose_whip`) and
    /// returns the answer. Media starts flowing into `sink` once ICE and DTLS are up.
    pub fn start(
        name: &str,
        ice: &super::IceConfig,
        offer: &str,
        choices: &[Choice],
        sink: Box<dyn MediaSink>,
        counters: Arc<crate::ingest::Counters>,
        on_event: OnEvent,
    ) -> Result<(IngestSession, String)> {
        let peer = Peer::new(name, ice, on_event.clone())?;
        let sink: SharedSink = Arc::new(Mutex::new(Some(sink)));
        let pipeline = peer.pipeline().downgrade();
        let s = sink.clone();
        let ev = on_event;
        peer.webrtcbin().connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            let Some(pipeline) = pipeline.upgrade() else {
                return;
            };
            if let Err(e) = depayload(&pipeline, pad, s.clone(), counters.clone(), ev.clone()) {
                ev(PeerEvent::Failed(format!(
                    "cannot take the publisher's media: {e:#}"
                )));
            }
        });
        peer.start()?;
        let answer = peer.answer(offer, |w| {
            for c in choices {
                let caps = rtp_caps(c.kind, &c.codec);
                let t = w.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                    "add-transceiver",
                    &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
                );
                t.set_property("codec-preferences", &caps);
                if c.kind == Kind::Video {
                    t.set_property("do-nack", true);
                }
            }
            Ok(())
        })?;
        Ok((IngestSession { peer, sink }, answer))
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Ends the session: the pipeline stops, then the seat learns the publisher is gone.
    pub fn stop(&mut self, reason: &str) {
        self.peer.stop();
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut s) = sink {
            s.end(reason);
        }
    }
}

impl Drop for IngestSession {
    fn drop(&mut self) {
        self.stop("session closed");
    }
}

/// webrtcbin's new src pad (one per received stream) → depayloader → appsink → the seat.
fn depayload(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    sink: SharedSink,
    counters: Arc<crate::ingest::Counters>,
    on_event: OnEvent,
) -> Result<()> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let s = caps.structure(0).context("stream without caps")?;
    let encoding = s
        .get::<&str>("encoding-name")
        .map_err(|_| anyhow!("stream without an encoding name"))?
        .to_ascii_uppercase();
    let (depay, out_caps, stream) = match encoding.as_str() {
        "H264" => (
            "rtph264depay",
            gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
            Stream::Video,
        ),
        "VP8" => (
            "rtpvp8depay",
            gst::Caps::builder("video/x-vp8").build(),
            Stream::Video,
        ),
        "OPUS" => (
            "rtpopusdepay",
            gst::Caps::builder("audio/x-opus").build(),
            Stream::Audio,
        ),
        other => {
            // Not negotiated by us; drained so webrtcbin is not stuck on an unlinked pad.
            tracing::warn!("WHIP publisher sends {other}, which was not negotiated; ignored");
            let q = make("fakesink", None)?;
            q.set_property("sync", false);
            q.set_property("async", false);
            pipeline.add(&q)?;
            q.sync_state_with_parent()?;
            pad.link(&q.static_pad("sink").context("fakesink pad")?)?;
            return Ok(());
        }
    };
    let d = make(depay, None)?;
    for p in ["request-keyframe", "wait-for-keyframe"] {
        if d.find_property(p).is_some() {
            d.set_property(p, true);
        }
    }
    let appsink = gst_app::AppSink::builder()
        .caps(&out_caps)
        .sync(false)
        .async_(false)
        .enable_last_sample(false)
        .max_buffers(1)
        .build();
    let ev = on_event;
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let Ok(sample) = appsink.pull_sample() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                if let Some(b) = sample.buffer() {
                    counters
                        .bytes_in
                        .fetch_add(b.size() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                deliver(&sink, stream, &sample, &ev);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.add_many([&d, appsink.upcast_ref()])?;
    d.link(&appsink)?;
    appsink.sync_state_with_parent()?;
    d.sync_state_with_parent()?;
    pad.link(&d.static_pad("sink").context("depayloader sink")?)?;
    Ok(())
}

/// Hands one sample to the seat with its running time as PTS (the seat's retimer puts it on
/// the room's clock). A refusal ends the session.
fn deliver(sink: &SharedSink, stream: Stream, sample: &gst::Sample, on_event: &OnEvent) {
    let (Some(buffer), Some(caps)) = (sample.buffer_owned(), sample.caps()) else {
        return;
    };
    let running = buffer.pts().and_then(|pts| {
        sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>())
            .and_then(|s| s.to_running_time(pts))
    });
    let Some(running) = running else {
        return;
    };
    let mut buffer = buffer;
    {
        let b = buffer.make_mut();
        b.set_pts(running);
        b.set_dts(gst::ClockTime::NONE);
    }
    let mut g = sink.lock().unwrap_or_else(|e| e.into_inner());
    let Some(s) = g.as_mut() else {
        return;
    };
    if let Err(e) = s.push(stream, buffer, caps) {
        // Ended by the seat: give it nothing more, and let the owner close the session.
        let ended = g.take();
        drop(g);
        if let Some(mut s) = ended {
            s.end(&e.to_string());
        }
        on_event(PeerEvent::Failed(format!(
            "the seat ended the publisher: {e}"
        )));
    }
}
