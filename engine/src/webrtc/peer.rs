//! One WebRTC peer: a `webrtcbin` in a pipeline of its own, answering one offer.
//!
//! Negotiation is non-trickle on our side (RFC 9725 allows it): the answer goes out once ICE
//! gathering has finished, carrying every candidate, so clients need no PATCH to reach us.
//! Candidates the client trickles later are added as they come.
//!
//! Threads: webrtcbin runs its promises and signals on its own threads; this module turns them
//! into blocking calls with deadlines (`answer`) and into `PeerEvent`s for the session's owner.
//! State changes of the pipeline are only made from the owner's thread, never from a webrtcbin
//! callback (that deadlocks in GStreamer).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::glib;
use gst::prelude::*;

use super::ice::IceConfig;
use crate::pipeline::make;

/// What a peer reports to its owner, from webrtcbin's threads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// ICE and DTLS are up: media flows.
    Connected,
    /// ICE lost the other side for now (it may come back).
    Disconnected,
    /// The connection failed or the pipeline errored, with the reason.
    Failed(String),
}

pub type OnEvent = Arc<dyn Fn(PeerEvent) + Send + Sync>;

/// Longest wait for ICE gathering before the answer goes out with what it has.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for one webrtcbin promise (set description, create answer).
const PROMISE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Peer {
    pipeline: gst::Pipeline,
    webrtcbin: gst::Element,
    stopped: bool,
}

/// Waits for a webrtcbin promise; its reply, or why there is none.
fn wait_promise(what: &str, f: impl FnOnce(gst::Promise)) -> Result<Option<gst::Structure>> {
    let (tx, rx) = mpsc::sync_channel(1);
    let promise = gst::Promise::with_change_func(move |reply| {
        let r = match reply {
            Ok(Some(s)) => Ok(Some(s.to_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("{e:?}")),
        };
        let _ = tx.try_send(r);
    });
    f(promise);
    let reply = rx
        .recv_timeout(PROMISE_TIMEOUT)
        .map_err(|_| anyhow!("{what}: webrtcbin did not answer within {PROMISE_TIMEOUT:?}"))?
        .map_err(|e| anyhow!("{what}: {e}"))?;
    if let Some(s) = &reply
        && let Ok(err) = s.get::<glib::Error>("error")
    {
        bail!("{what}: {}", err.message());
    }
    Ok(reply)
}

impl Peer {
    /// A pipeline with a configured webrtcbin, not yet started. `name` names both (logs).
    pub fn new(name: &str, ice: &IceConfig, on_event: OnEvent) -> Result<Peer> {
        let pipeline = gst::Pipeline::builder().name(name).build();
        let webrtcbin = make("webrtcbin", Some("webrtc"))?;
        webrtcbin.set_property_from_str("bundle-policy", "max-bundle");
        webrtcbin.set_property("latency", ice.jitter_buffer.as_millis() as u32);
        for s in &ice.servers {
            match s.kind {
                super::ice::ServerKind::Stun => {
                    webrtcbin.set_property("stun-server", s.gst_uri());
                }
                _ => {
                    let _ = webrtcbin.emit_by_name::<bool>("add-turn-server", &[&s.gst_uri()]);
                }
            }
        }
        let agent = webrtcbin.property::<glib::Object>("ice-agent");
        if let Some((min, max)) = ice.udp_ports {
            // max first: min may not exceed the current max.
            agent.set_property("max-rtp-port", u32::from(max));
            agent.set_property("min-rtp-port", u32::from(min));
        }
        if agent.find_property("ice-tcp").is_some() {
            // Media over UDP only: the firewall opens one UDP range, nothing else.
            agent.set_property("ice-tcp", false);
        }
        super::nice::bind_addresses(&webrtcbin, &ice.addresses).map_err(|e| anyhow!(e))?;
        if agent.find_property("agent").is_some() {
            let nice = agent.property::<glib::Object>("agent");
            if nice.find_property("upnp").is_some() {
                // libnice asks the LAN's router for a port mapping first and finishes gathering
                // only when that times out (200 ms): a server has no router to ask, and every
                // answer waited for it.
                nice.set_property("upnp", false);
            }
        }
        pipeline.add(&webrtcbin)?;

        let ev = on_event.clone();
        webrtcbin.connect_notify(Some("connection-state"), move |w, _| {
            let s = w.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
            match s {
                gst_webrtc::WebRTCPeerConnectionState::Connected => ev(PeerEvent::Connected),
                gst_webrtc::WebRTCPeerConnectionState::Disconnected => ev(PeerEvent::Disconnected),
                gst_webrtc::WebRTCPeerConnectionState::Failed => ev(PeerEvent::Failed(
                    "the connection failed (ICE or DTLS)".into(),
                )),
                gst_webrtc::WebRTCPeerConnectionState::Closed => {
                    ev(PeerEvent::Failed("the connection was closed".into()))
                }
                _ => {}
            }
        });
        let ev = on_event;
        let bus = pipeline.bus().context("pipeline without a bus")?;
        bus.set_sync_handler(move |_, msg| {
            if let gst::MessageView::Error(e) = msg.view() {
                ev(PeerEvent::Failed(e.error().to_string()));
            }
            gst::BusSyncReply::Drop
        });
        Ok(Peer {
            pipeline,
            webrtcbin,
            stopped: false,
        })
    }

    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    pub fn webrtcbin(&self) -> &gst::Element {
        &self.webrtcbin
    }

    pub fn start(&self) -> Result<()> {
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| anyhow!("the WebRTC pipeline does not start: {e}"))?;
        Ok(())
    }

    /// Takes `offer`, lets `prepare` set up the transceivers (it runs after the remote
    /// description is set), answers, and returns the answer's SDP once ICE gathering is done.
    pub fn answer(
        &self,
        offer: &str,
        prepare: impl FnOnce(&gst::Element) -> Result<()>,
    ) -> Result<String> {
        let sdp = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
            .map_err(|_| anyhow!("GStreamer cannot parse the offer"))?;
        let offer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, sdp);
        let w = &self.webrtcbin;
        let t0 = Instant::now();
        wait_promise("set-remote-description", |p| {
            w.emit_by_name::<()>("set-remote-description", &[&offer, &p]);
        })?;
        prepare(w)?;
        let reply = wait_promise("create-answer", |p| {
            w.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &p]);
        })?
        .context("create-answer gave no answer")?;
        let answer = reply
            .get::<gst_webrtc::WebRTCSessionDescription>("answer")
            .map_err(|_| anyhow!("create-answer gave no answer"))?;
        // Gathering starts with the local description: watch for its end first.
        let (tx, rx) = mpsc::sync_channel::<()>(1);
        let tx = Mutex::new(Some(tx));
        let handler = w.connect_notify(Some("ice-gathering-state"), move |w, _| {
            if w.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
                == gst_webrtc::WebRTCICEGatheringState::Complete
                && let Some(tx) = tx.lock().unwrap_or_else(|e| e.into_inner()).take()
            {
                let _ = tx.try_send(());
            }
        });
        let set = wait_promise("set-local-description", |p| {
            w.emit_by_name::<()>("set-local-description", &[&answer, &p]);
        });
        let started = Instant::now();
        let answered = started - t0;
        let complete = || {
            w.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
                == gst_webrtc::WebRTCICEGatheringState::Complete
        };
        if set.is_ok() && !complete() {
            let _ = rx.recv_timeout(GATHER_TIMEOUT);
        }
        w.disconnect(handler);
        set?;
        tracing::debug!(
            peer = %self.pipeline.name(),
            "answered in {:?}, ICE gathering {:?} more",
            answered,
            started.elapsed()
        );
        if !complete() {
            tracing::warn!(
                peer = %self.pipeline.name(),
                "ICE gathering not complete after {:?}; answering with the candidates so far",
                started.elapsed()
            );
        }
        let local = w
            .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
            .context("webrtcbin has no local description")?;
        local
            .sdp()
            .as_text()
            .map_err(|_| anyhow!("cannot write the answer"))
    }

    /// Adds a candidate the client trickled (`candidate:…` on m-line `mline`).
    pub fn add_candidate(&self, mline: u32, line: &str) {
        self.webrtcbin
            .emit_by_name::<()>("add-ice-candidate", &[&mline, &line]);
    }

    /// Stops the pipeline. Call from the owner's thread, never from a webrtcbin callback.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// RTP caps for a chosen codec, as webrtcbin's codec preferences and payloaders want them.
pub fn rtp_caps(kind: super::sdp::Kind, codec: &super::sdp::Codec) -> gst::Caps {
    let media = match kind {
        super::sdp::Kind::Audio => "audio",
        _ => "video",
    };
    let mut s = gst::Structure::builder("application/x-rtp")
        .field("media", media)
        .field("encoding-name", codec.name.to_ascii_uppercase())
        .field("payload", i32::from(codec.pt))
        .field("clock-rate", codec.clock_rate as i32);
    if let Some(p) = &codec.params {
        s = s.field("encoding-params", p.as_str());
    }
    for (k, v) in &codec.fmtp {
        // The fmtp parameters webrtcbin and the payloaders know; others stay out of the caps.
        if matches!(
            k.as_str(),
            "packetization-mode"
                | "profile-level-id"
                | "level-asymmetry-allowed"
                | "minptime"
                | "useinbandfec"
                | "stereo"
                | "sprop-stereo"
        ) {
            s = s.field(k.as_str(), v.as_str());
        }
    }
    if kind == super::sdp::Kind::Video {
        s = s
            .field("rtcp-fb-nack", true)
            .field("rtcp-fb-nack-pli", true)
            .field("rtcp-fb-ccm-fir", true);
    }
    gst::Caps::builder_full().structure(s.build()).build()
}
