//! WebRTC peers for tests and benches, from gst-plugins-rs (registered statically here, never
//! in the engine): `whipclientsink` publishes test sources over WHIP, `whepclientsrc` plays a
//! room over WHEP into an appsink. Both are real, independent WebRTC stacks (webrtcsink and
//! webrtcsrc on webrtcbin), talking to showmix over loopback HTTP and UDP.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Once};

use anyhow::{Context, Result, anyhow};

use gst::prelude::*;

use super::Frame;

/// Registers gst-plugins-rs' WebRTC elements in this process (once).
pub fn register_peers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        showmix::init().expect("GStreamer");
        gstrswebrtc::plugin_register_static().expect("register the rswebrtc elements");
    });
}

/// libnice waits 200 ms for a UPnP router before it finishes gathering: not here.
fn no_upnp(webrtcbin: &gst::Element) {
    let ice = webrtcbin.property::<gst::glib::Object>("ice-agent");
    if ice.find_property("agent").is_some() {
        ice.property::<gst::glib::Object>("agent")
            .set_property("upnp", false);
    }
}

/// Errors posted on a peer's bus, for assertions.
fn watch_errors(pipeline: &gst::Pipeline) -> Arc<Mutex<Vec<String>>> {
    let errors = Arc::new(Mutex::new(Vec::new()));
    if let Some(bus) = pipeline.bus() {
        let e = errors.clone();
        bus.set_sync_handler(move |_, msg| {
            if let gst::MessageView::Error(err) = msg.view() {
                e.lock()
                    .unwrap()
                    .push(format!("{} ({:?})", err.error(), err.debug()));
            }
            gst::BusSyncReply::Drop
        });
    }
    errors
}

/// A WHIP publisher: a live test pattern (640x360, 30 fps) and a sine tone, encoded and sent by
/// `whipclientsink`.
pub struct WhipClient {
    pipeline: gst::Pipeline,
    pub errors: Arc<Mutex<Vec<String>>>,
}

impl WhipClient {
    /// `codec`: `video/x-h264` or `video/x-vp8`.
    pub fn start(endpoint: &str, key: &str, pattern: &str, codec: &str) -> Result<WhipClient> {
        register_peers();
        let desc = format!(
            "videotestsrc is-live=true pattern={pattern} ! \
             video/x-raw,width=640,height=360,framerate=30/1 ! queue ! ws. \
             audiotestsrc is-live=true wave=sine freq=660 volume=0.3 ! queue ! ws. \
             whipclientsink name=ws"
        );
        let pipeline = gst::parse::launch(&desc)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("not a pipeline"))?;
        let ws = pipeline.by_name("ws").context("whipclientsink")?;
        ws.set_property("video-caps", gst::Caps::builder(codec).build());
        ws.set_property("stun-server", None::<String>);
        ws.set_property_from_str("congestion-control", "disabled");
        // Host candidates on loopback, like the server's in these tests.
        ws.connect("consumer-added", false, |args| {
            if let Some(w) = args.get(2).and_then(|v| v.get::<gst::Element>().ok()) {
                let _ = showmix::webrtc::bind_addresses(&w, &["127.0.0.1".parse().expect("ip")]);
                no_upnp(&w);
            }
            None
        });
        let signaller = ws.property::<gst::glib::Object>("signaller");
        signaller.set_property("whip-endpoint", endpoint);
        signaller.set_property("auth-token", key);
        let errors = watch_errors(&pipeline);
        pipeline.set_state(gst::State::Playing)?;
        Ok(WhipClient { pipeline, errors })
    }

    /// Stops sending media but keeps the connection (a publisher whose encoder froze).
    pub fn freeze(&self) {
        let _ = self.pipeline.set_state(gst::State::Paused);
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }
}

impl Drop for WhipClient {
    /// whipclientsink ends its session with DELETE when it stops.
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A WHEP viewer on GStreamer's webrtcbin (recvonly H.264 with packetization-mode 1 and Opus;
/// `whepclientsrc` offers only mode-0 H.264, which cannot carry a 720p picture): the offer is
/// POSTed to the endpoint, the answer applied; decoded video is scaled to 320x180 RGB in an
/// appsink (frames counted, the last kept) and decoded audio measured by `level`.
pub struct WhepClient {
    pipeline: gst::Pipeline,
    pub frames: Arc<AtomicU64>,
    last: Arc<Mutex<Option<Frame>>>,
    /// Loudest channel's RMS (dBFS) of the last audio level message.
    audio_level: Arc<Mutex<Option<f64>>>,
    pub errors: Arc<Mutex<Vec<String>>>,
    /// The session's resource, for DELETE.
    location: Option<(std::net::SocketAddr, String)>,
}

/// The video branch: depayload, decode, scale to 320x180 RGB, appsink.
fn video_branch(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    frames: Arc<AtomicU64>,
    last: Arc<Mutex<Option<Frame>>>,
) -> Result<()> {
    let bin = gst::parse::bin_from_description(
        "rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! videoscale ! \
         video/x-raw,format=RGB,width=320,height=180 ! appsink name=v sync=false",
        true,
    )?;
    let sink = bin
        .by_name("v")
        .context("appsink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| anyhow!("not an appsink"))?;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(b) = sample.buffer()
                    && let Ok(map) = b.map_readable()
                {
                    *last.lock().unwrap() = Some(Frame {
                        width: 320,
                        height: 180,
                        rgb: map.as_slice().to_vec(),
                    });
                }
                frames.fetch_add(1, Relaxed);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.add(&bin)?;
    bin.sync_state_with_parent()?;
    pad.link(&bin.static_pad("sink").context("bin sink")?)?;
    Ok(())
}

/// Received RTP into a fakesink, counted into `count` if given.
fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad, count: Option<Arc<AtomicU64>>) -> Result<()> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()?;
    pipeline.add(&sink)?;
    sink.sync_state_with_parent()?;
    if let Some(c) = count {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            c.fetch_add(1, Relaxed);
            gst::PadProbeReturn::Ok
        });
    }
    pad.link(&sink.static_pad("sink").context("fakesink pad")?)?;
    Ok(())
}

fn audio_branch(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<()> {
    let bin = gst::parse::bin_from_description(
        "rtpopusdepay ! opusdec ! audioconvert ! level interval=100000000 post-messages=true ! \
         fakesink sync=false",
        true,
    )?;
    pipeline.add(&bin)?;
    bin.sync_state_with_parent()?;
    pad.link(&bin.static_pad("sink").context("bin sink")?)?;
    Ok(())
}

/// Offers from `w`, waits for every candidate, returns the offer's text.
fn local_offer(w: &gst::Element) -> Result<String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let promise = gst::Promise::with_change_func(move |r| {
        let _ = tx.send(r.ok().flatten().map(|s| s.to_owned()));
    });
    w.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    let reply = rx
        .recv_timeout(std::time::Duration::from_secs(10))?
        .context("no offer")?;
    let offer = reply
        .get::<gst_webrtc::WebRTCSessionDescription>("offer")
        .map_err(|_| anyhow!("no offer in the reply"))?;
    w.emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
    let by = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while w.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
        != gst_webrtc::WebRTCICEGatheringState::Complete
        && std::time::Instant::now() < by
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let local = w
        .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
        .context("no local description")?;
    local.sdp().as_text().map_err(|_| anyhow!("offer text"))
}

/// POSTs an SDP offer (blocking); (status, Location, body).
pub fn post_sdp(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
    sdp: &str,
) -> Result<(u16, Option<String>, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h: Vec<(&str, &str)> = vec![("content-type", "application/sdp")];
    if let Some(a) = &auth {
        h.push(("authorization", a));
    }
    let (st, headers, body) = rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            showmix::api::http::request_with(addr, "POST", path, &h, Some(sdp.as_bytes().to_vec())),
        )
        .await
    })??;
    let location = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((st, location, String::from_utf8_lossy(&body).into_owned()))
}

/// `http://host:port/path` → (address, path).
fn split_url(url: &str) -> Result<(std::net::SocketAddr, String)> {
    let rest = url.strip_prefix("http://").context("an http:// URL")?;
    let (hostport, path) = rest.split_once('/').context("a path")?;
    Ok((hostport.parse()?, format!("/{path}")))
}

impl WhepClient {
    pub fn start(endpoint: &str, token: Option<&str>) -> Result<WhepClient> {
        Self::start_with(endpoint, token, true)
    }

    /// `decode: false`: a light viewer that takes the RTP (ICE, DTLS, SRTP, jitter buffer)
    /// and throws it away, for load tests with many viewers in one process; `frames` then
    /// counts video RTP packets.
    pub fn start_with(endpoint: &str, token: Option<&str>, decode: bool) -> Result<WhepClient> {
        register_peers();
        let pipeline = gst::Pipeline::new();
        let w = gst::ElementFactory::make("webrtcbin").build()?;
        w.set_property_from_str("bundle-policy", "max-bundle");
        showmix::webrtc::bind_addresses(&w, &["127.0.0.1".parse()?]).map_err(|e| anyhow!(e))?;
        no_upnp(&w);
        pipeline.add(&w)?;
        for caps in [
            "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,\
             packetization-mode=(string)1,profile-level-id=(string)42e01f",
            "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,\
             encoding-params=(string)2,minptime=(string)10,useinbandfec=(string)1",
        ] {
            let caps: gst::Caps = caps.parse()?;
            w.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                "add-transceiver",
                &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
            );
        }
        let frames = Arc::new(AtomicU64::new(0));
        let last: Arc<Mutex<Option<Frame>>> = Arc::default();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let weak = pipeline.downgrade();
        let (f, l, e) = (frames.clone(), last.clone(), errors.clone());
        w.connect_pad_added(move |_, pad| {
            let Some(p) = weak.upgrade() else { return };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let video = caps
                .structure(0)
                .and_then(|s| s.get::<&str>("media").ok())
                .is_some_and(|m| m == "video");
            let r = if !decode {
                discard(&p, pad, video.then(|| f.clone()))
            } else if video {
                video_branch(&p, pad, f.clone(), l.clone())
            } else {
                audio_branch(&p, pad)
            };
            if let Err(err) = r {
                e.lock().unwrap().push(format!("{err:#}"));
            }
        });
        let audio_level: Arc<Mutex<Option<f64>>> = Arc::default();
        if let Some(bus) = pipeline.bus() {
            let (e, a) = (errors.clone(), audio_level.clone());
            bus.set_sync_handler(move |_, msg| {
                match msg.view() {
                    gst::MessageView::Error(err) => {
                        e.lock()
                            .unwrap()
                            .push(format!("{} ({:?})", err.error(), err.debug()))
                    }
                    gst::MessageView::Element(el) => {
                        if let Some(st) = el.structure()
                            && st.name() == "level"
                            && let Ok(rms) = st.get::<gst::glib::ValueArray>("rms")
                        {
                            let loudest = rms
                                .iter()
                                .filter_map(|v| v.get::<f64>().ok())
                                .fold(f64::NEG_INFINITY, f64::max);
                            *a.lock().unwrap() = Some(loudest);
                        }
                    }
                    _ => {}
                }
                gst::BusSyncReply::Drop
            });
        }
        pipeline.set_state(gst::State::Playing)?;
        let mut client = WhepClient {
            pipeline,
            frames,
            last,
            audio_level,
            errors,
            location: None,
        };
        let offer = local_offer(&w)?;
        let (addr, path) = split_url(endpoint)?;
        let (st, location, body) = post_sdp(addr, &path, token, &offer)?;
        if st != 201 {
            anyhow::bail!("WHEP POST {endpoint}: {st} {body}");
        }
        let sdp = gst_sdp::SDPMessage::parse_buffer(body.as_bytes())
            .map_err(|_| anyhow!("the answer is not SDP"))?;
        let answer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, sdp);
        w.emit_by_name::<()>("set-remote-description", &[&answer, &None::<gst::Promise>]);
        client.location = location.map(|l| (addr, l));
        Ok(client)
    }

    pub fn frames(&self) -> u64 {
        self.frames.load(Relaxed)
    }

    pub fn last_frame(&self) -> Option<Frame> {
        self.last.lock().unwrap().clone()
    }

    pub fn audio_level_dbfs(&self) -> Option<f64> {
        *self.audio_level.lock().unwrap()
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }
}

impl Drop for WhepClient {
    /// Ends the session as a client should: DELETE, then stop.
    fn drop(&mut self) {
        if let Some((addr, path)) = self.location.take()
            && let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        {
            let _ = rt.block_on(async {
                tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    showmix::api::http::request_with(addr, "DELETE", &path, &[], None),
                )
                .await
            });
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A real SDP offer (sendonly H.264 + Opus, every candidate) from a webrtcbin that will never
/// take an answer: for refusals and for sessions whose ICE never completes.
pub fn gstreamer_offer() -> Result<String> {
    register_peers();
    let pipeline = gst::parse::launch(
        "videotestsrc is-live=true ! x264enc tune=zerolatency ! rtph264pay ! \
         application/x-rtp,media=video,encoding-name=H264,payload=102,\
         packetization-mode=(string)1 ! webrtcbin name=w \
         audiotestsrc is-live=true ! opusenc ! rtpopuspay ! \
         application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! w.",
    )?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow!("not a pipeline"))?;
    let w = pipeline.by_name("w").context("webrtcbin")?;
    w.set_property_from_str("bundle-policy", "max-bundle");
    pipeline.set_state(gst::State::Playing)?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let promise = gst::Promise::with_change_func(move |r| {
        let _ = tx.send(r.ok().flatten().map(|s| s.to_owned()));
    });
    w.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    let reply = rx
        .recv_timeout(std::time::Duration::from_secs(10))?
        .context("no offer")?;
    let offer = reply
        .get::<gst_webrtc::WebRTCSessionDescription>("offer")
        .map_err(|_| anyhow!("no offer in the reply"))?;
    let text = offer.sdp().as_text().map_err(|_| anyhow!("offer text"))?;
    let _ = pipeline.set_state(gst::State::Null);
    Ok(text)
}
