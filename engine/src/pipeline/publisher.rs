//! A publisher's bin: the byte stream from one RTMP or SRT connection (demuxed), or the
//! elementary streams of one WebRTC (WHIP) session (already depayloaded), parsed and decoded
//! into the same two pads a seat bin has (`video` raw, `audio` F32 48 kHz stereo), with
//! timestamps put on the room's clock.
//!
//! One bin per connection: a reconnecting publisher gets a fresh demuxer and decoders (its new
//! stream starts with new headers), while the seat keeps its mixer pads, so the tile and the
//! mix never notice anything but a pause.
//!
//! ```text
//! appsrc (FLV | MPEG-TS bytes) ─ flvdemux | tsdemux ─┬─ h264parse|h265parse ─ avdec ─ queue ─ [retime] ─▶ video
//!                                                    └─ aacparse ─ avdec_aac ─ convert ─ resample ─ level ─ queue ─ [retime] ─▶ audio
//! appsrc "video" (H.264 AU | VP8) ─ h264parse ─ avdec_h264 | vp8dec ─ queue ─ [retime] ─▶ video   (WHIP)
//! appsrc "audio" (Opus) ─ opusdec ─ convert ─ resample ─ level ─ queue ─ [retime] ─▶ audio
//! ```

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use gst::prelude::*;

use super::seat::{MIX_CHANNELS, MIX_RATE};
use super::{audio_caps, capsfilter, make, queue};
use crate::ingest::Protocol;
use crate::ingest::retime::{Retimer, Stream};

/// How far ahead of "now" decoded frames are placed: absorbs decode and network jitter. RTMP
/// and SRT deliver whatever TCP or the SRT buffer hands over, in bursts; WebRTC media comes
/// out of a jitter buffer already paced, so it needs only room for decoding.
pub const LEAD_MS: u64 = 60;
pub const WEBRTC_LEAD_MS: u64 = 20;

pub struct PublisherBin {
    pub bin: gst::Bin,
    pub feed: Feed,
    pub video: gst::Pad,
    pub audio: gst::Pad,
}

/// What a publisher's connection delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A container byte stream: FLV (RTMP) or MPEG-TS (SRT).
    Container(Protocol),
    /// Depayloaded WebRTC media: the video codec, and whether Opus audio comes too.
    Webrtc { video: WebrtcVideo, audio: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebrtcVideo {
    /// H.264 byte-stream access units.
    H264,
    Vp8,
}

impl Input {
    /// How far ahead of "now" this input's frames are placed.
    pub fn lead_ms(&self) -> u64 {
        match self {
            Input::Container(_) => LEAD_MS,
            Input::Webrtc { .. } => WEBRTC_LEAD_MS,
        }
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            Input::Container(p) => *p,
            Input::Webrtc { .. } => Protocol::Whip,
        }
    }
}

/// Where the connection's data enters the bin.
pub enum Feed {
    Bytes(gst_app::AppSrc),
    Media {
        video: gst_app::AppSrc,
        audio: Option<gst_app::AppSrc>,
    },
}

/// Called from a streaming thread when the stream carries something the seat cannot show.
pub type OnUnsupported = Arc<dyn Fn(String) + Send + Sync>;

fn allowed(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Rtmp => "H.264 video and AAC audio over RTMP",
        Protocol::Srt => "H.264 or H.265 video and AAC audio over SRT",
        Protocol::Whip => crate::webrtc::sdp::WHIP_SUPPORTED,
    }
}

/// Describes caps for an error message: the media type plus the fields that tell codecs apart.
fn describe(caps: &gst::CapsRef) -> String {
    let Some(s) = caps.structure(0) else {
        return "unknown".into();
    };
    let mut d = s.name().to_string();
    for f in ["mpegversion", "codecid", "format", "stream-format"] {
        if let Ok(v) = s.value(f) {
            d.push_str(&format!(" {f}={v:?}"));
        }
    }
    d
}

pub fn build(
    name: &str,
    input: Input,
    element: &gst::Element,
    on_unsupported: OnUnsupported,
    filter: &super::beauty::SeatFilter,
    beauty: &crate::presets::Beauty,
) -> Result<PublisherBin> {
    let bin = gst::Bin::builder().name(name).build();
    bin.set_property("async-handling", true);
    let aq = queue(Some("aqueue"), gst::ClockTime::from_mseconds(500))?;
    let aconv = make("audioconvert", Some("aconv"))?;
    let ares = make("audioresample", Some("ares"))?;
    let acaps = capsfilter(Some("acaps"), &audio_caps(MIX_RATE, MIX_CHANNELS))?;
    let level = make("level", Some("level"))?;
    level.set_property("interval", gst::ClockTime::from_mseconds(200).nseconds());
    level.set_property("post-messages", true);
    bin.add_many([&aconv, &ares, &acaps, &level, &aq])?;
    let (vin, vq) = filter.build(&bin, beauty)?;
    gst::Element::link_many([&aconv, &ares, &acaps, &level, &aq])?;

    let video = gst::GhostPad::with_target(&vq.static_pad("src").context("queue src")?)?;
    video.set_property("name", "video");
    let audio = gst::GhostPad::with_target(&aq.static_pad("src").context("queue src")?)?;
    audio.set_property("name", "audio");
    bin.add_pad(&video)?;
    bin.add_pad(&audio)?;

    let vsink = vin.static_pad("sink").context("converter sink")?;
    let asink = aconv.static_pad("sink").context("audioconvert sink")?;
    let feed = match input {
        Input::Container(protocol) => demuxed(&bin, protocol, on_unsupported, vsink, asink)?,
        Input::Webrtc { video, audio } => {
            let src = |n: &str| {
                gst_app::AppSrc::builder()
                    .name(n)
                    .format(gst::Format::Time)
                    .is_live(true)
                    .block(false)
                    .build()
            };
            let vsrc = src("ingest-video");
            bin.add(&vsrc)?;
            let (parser, decoder) = match video {
                WebrtcVideo::H264 => (Some("h264parse"), "avdec_h264"),
                WebrtcVideo::Vp8 => (None, "vp8dec"),
            };
            decode_chain(
                &bin,
                parser,
                decoder,
                &vsrc.static_pad("src").context("appsrc src")?,
                &vsink,
            )?;
            let asrc = if audio {
                let a = src("ingest-audio");
                bin.add(&a)?;
                decode_chain(
                    &bin,
                    None,
                    "opusdec",
                    &a.static_pad("src").context("appsrc src")?,
                    &asink,
                )?;
                Some(a)
            } else {
                None
            };
            Feed::Media {
                video: vsrc,
                audio: asrc,
            }
        }
    };

    let lead = input.lead_ms();
    install_retiming(
        element,
        lead,
        &[
            (video.upcast_ref(), Stream::Video),
            (audio.upcast_ref(), Stream::Audio),
        ],
    );
    for pad in [video.upcast_ref::<gst::Pad>(), audio.upcast_ref()] {
        answer_latency(pad, lead);
    }
    Ok(PublisherBin {
        bin,
        feed,
        video: video.upcast(),
        audio: audio.upcast(),
    })
}

/// `[parser ─] decoder` from `src` to `target`, added to a bin that may already run.
fn decode_chain(
    bin: &gst::Bin,
    parser: Option<&str>,
    decoder: &str,
    src: &gst::Pad,
    target: &gst::Pad,
) -> Result<()> {
    let d = make(decoder, None)?;
    if d.find_property("output-corrupt").is_some() {
        // A stream that starts mid-GOP shows nothing rather than grey smears.
        d.set_property("output-corrupt", false);
    }
    bin.add(&d)?;
    d.static_pad("src").context("decoder src")?.link(target)?;
    let first = match parser {
        Some(p) => {
            let p = make(p, None)?;
            bin.add(&p)?;
            p.link(&d)?;
            p.sync_state_with_parent()?;
            p
        }
        None => d.clone(),
    };
    d.sync_state_with_parent()?;
    src.link(&first.static_pad("sink").context("parser sink")?)?;
    Ok(())
}

/// The container case: appsrc ─ demuxer, whose streams get their decoders as they appear.
fn demuxed(
    bin: &gst::Bin,
    protocol: Protocol,
    on_unsupported: OnUnsupported,
    vsink: gst::Pad,
    asink: gst::Pad,
) -> Result<Feed> {
    let caps = match protocol {
        Protocol::Rtmp => gst::Caps::builder("video/x-flv").build(),
        _ => gst::Caps::builder("video/mpegts")
            .field("systemstream", true)
            .field("packetsize", 188i32)
            .build(),
    };
    let appsrc = gst_app::AppSrc::builder()
        .name("ingest")
        .caps(&caps)
        .format(gst::Format::Bytes)
        .is_live(true)
        .block(false)
        .build();
    let demux = match protocol {
        Protocol::Rtmp => make("flvdemux", Some("demux"))?,
        _ => make("tsdemux", Some("demux"))?,
    };
    bin.add_many([appsrc.upcast_ref(), &demux])?;
    appsrc.link(&demux)?;
    let bin_weak = bin.downgrade();
    demux.connect_pad_added(move |_, pad| {
        let Some(bin) = bin_weak.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let Some(s) = caps.structure(0) else {
            return;
        };
        let chain: Option<(&str, &str, &gst::Pad)> = match s.name().as_str() {
            "video/x-h264" => Some(("h264parse", "avdec_h264", &vsink)),
            "video/x-h265" if protocol == Protocol::Srt => {
                Some(("h265parse", "avdec_h265", &vsink))
            }
            "audio/mpeg" if s.get::<i32>("mpegversion").is_ok_and(|v| v == 4 || v == 2) => {
                Some(("aacparse", "avdec_aac", &asink))
            }
            _ => None,
        };
        let Some((parser, decoder, target)) = chain else {
            on_unsupported(format!(
                "unsupported codec {} (allowed: {})",
                describe(&caps),
                allowed(protocol)
            ));
            // Drain it, so the demuxer stops on our terms rather than with "not linked".
            super::drain(&bin, pad);
            return;
        };
        if target.is_linked() {
            return; // a second stream of the same kind: ignored
        }
        if let Err(e) = decode_chain(&bin, Some(parser), decoder, pad, target) {
            on_unsupported(format!("cannot decode {}: {e:#}", describe(&caps)));
        }
    });
    Ok(Feed::Bytes(appsrc))
}

/// The bin's buffers leave timed `lead_ms` ahead of "now", whatever the decoders and demuxer
/// upstream report (a threaded H.264 decoder alone claims several frames): that is the latency
/// the mixers must plan for. Answering with the upstream figure would delay the whole room by
/// it, and with a bounded queue in between could make the latency impossible to configure.
fn answer_latency(pad: &gst::Pad, lead_ms: u64) {
    pad.add_probe(gst::PadProbeType::QUERY_UPSTREAM, move |_pad, info| {
        let Some(q) = info.query_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        if let gst::QueryViewMut::Latency(l) = q.view_mut() {
            l.set(
                true,
                gst::ClockTime::from_mseconds(lead_ms),
                gst::ClockTime::NONE,
            );
            return gst::PadProbeReturn::Handled;
        }
        gst::PadProbeReturn::Ok
    });
}

/// Rewrites timestamps leaving the bin onto the room's running time (see `ingest::retime`).
/// The source's segment stays as it is: the new running time is mapped back into it, so every
/// element and probe downstream agrees on what a timestamp means.
fn install_retiming(element: &gst::Element, lead_ms: u64, pads: &[(&gst::Pad, Stream)]) {
    let retimer = Arc::new(Mutex::new(Retimer::new(lead_ms)));
    for (pad, stream) in pads {
        let retimer = retimer.clone();
        let element = element.downgrade();
        let stream = *stream;
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(gst::PadProbeData::Buffer(buf)) = &mut info.data else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(pts) = buf.pts() else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(seg) = pad.sticky_event::<gst::event::Segment>(0) else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(seg) = seg.segment().downcast_ref::<gst::ClockTime>().cloned() else {
                return gst::PadProbeReturn::Ok;
            };
            let input = seg.to_running_time(pts).unwrap_or(pts);
            let now = element
                .upgrade()
                .and_then(|e| e.current_running_time())
                .unwrap_or(gst::ClockTime::ZERO);
            let out = retimer.lock().unwrap_or_else(|e| e.into_inner()).map(
                stream,
                input.nseconds(),
                now.nseconds(),
            );
            let Some(new_pts) = seg.position_from_running_time(gst::ClockTime::from_nseconds(out))
            else {
                // Before the segment's base: leave it to the mixer to drop.
                return gst::PadProbeReturn::Ok;
            };
            let b = buf.make_mut();
            b.set_pts(new_pts);
            b.set_dts(gst::ClockTime::NONE);
            gst::PadProbeReturn::Ok
        });
    }
}
