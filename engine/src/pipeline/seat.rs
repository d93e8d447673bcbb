//! A seat's source bin: turns a `Source` into two always-present pads, `video` (raw video in
//! whatever size the source has) and `audio` (F32 48 kHz stereo), that the room links to the
//! compositor and the audio mixer.
//!
//! Cropping and scaling into the tile happen in the compositor (one conversion per frame), so
//! the bin does no picture work of its own. In live rooms the bin's pads carry an offset that
//! puts the source's first buffer at the room's current running time: a seat that joins a
//! room an hour in shows up now, not an hour late.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use gst::prelude::*;

use super::{audio_caps, capsfilter, make, queue};
use crate::source::Source;

/// Sample rate and channels of every seat's audio, and of the mix.
pub const MIX_RATE: u32 = 48_000;
pub const MIX_CHANNELS: u32 = 2;

/// Size of test pictures: a typical camera, so `cover` crops behave as they will with hosts.
const TEST_WIDTH: i32 = 1280;
const TEST_HEIGHT: i32 = 720;

pub struct SeatBin {
    pub bin: gst::Bin,
    pub video: gst::Pad,
    pub audio: gst::Pad,
}

/// Builds the bin for a source. `fps` is the canvas rate (test pictures run at it); `live`
/// makes test sources run against the clock (for rooms) or as fast as possible (for offline
/// `showmix mix` runs).
pub fn build(
    seat_id: &str,
    source: &Source,
    fps: u32,
    live: bool,
    filter: &super::beauty::SeatFilter,
    beauty: &crate::presets::Beauty,
) -> Result<SeatBin> {
    let bin = gst::Bin::builder().name(format!("seat-{seat_id}")).build();
    // A decoder that never prerolls (a broken file) must not hold the room's pipeline in a
    // pending state change: the seat bin settles its children's async changes itself.
    bin.set_property("async-handling", true);
    let video = gst::GhostPad::builder(gst::PadDirection::Src)
        .name("video")
        .build();
    let audio = gst::GhostPad::builder(gst::PadDirection::Src)
        .name("audio")
        .build();
    match source {
        Source::Publish => {
            anyhow::bail!(
                "seat {seat_id:?}: publish seats get their media from a publisher, not a bin"
            )
        }
        Source::Test { pattern, tone_hz } => {
            let vsrc = make("videotestsrc", Some("vsrc"))?;
            vsrc.set_property_from_str("pattern", pattern);
            vsrc.set_property("is-live", live);
            let vcaps = capsfilter(
                Some("vcaps"),
                &gst::Caps::builder("video/x-raw")
                    .field("format", "I420")
                    .field("width", TEST_WIDTH)
                    .field("height", TEST_HEIGHT)
                    .field("framerate", gst::Fraction::new(fps as i32, 1))
                    .build(),
            )?;
            let asrc = make("audiotestsrc", Some("asrc"))?;
            asrc.set_property("is-live", live);
            if *tone_hz == 0 {
                asrc.set_property_from_str("wave", "silence");
            } else {
                asrc.set_property("freq", f64::from(*tone_hz));
                asrc.set_property("volume", 0.2f64);
            }
            // 20 ms buffers: the audio mixer's granularity, and low latency when live.
            asrc.set_property("samplesperbuffer", (MIX_RATE / 50) as i32);
            let acaps = capsfilter(Some("acaps"), &audio_caps(MIX_RATE, MIX_CHANNELS))?;
            let level = level()?;
            let aq = queue(Some("aqueue"), gst::ClockTime::from_mseconds(500))?;
            bin.add_many([&vsrc, &vcaps, &asrc, &acaps, &level, &aq])?;
            let (vin, vq) = filter.build(&bin, beauty)?;
            gst::Element::link_many([&vsrc, &vcaps, &vin])?;
            gst::Element::link_many([&asrc, &acaps, &level, &aq])?;
            video.set_target(Some(&vq.static_pad("src").context("queue src")?))?;
            audio.set_target(Some(&aq.static_pad("src").context("queue src")?))?;
        }
        Source::File(_) | Source::Uri(_) => {
            let uri = match source {
                Source::File(p) => {
                    let abs = std::path::absolute(p)
                        .with_context(|| format!("cannot resolve path {}", p.display()))?;
                    gst::glib::filename_to_uri(&abs, None)
                        .with_context(|| format!("cannot make a URI of {}", abs.display()))?
                        .to_string()
                }
                Source::Uri(u) => u.clone(),
                Source::Test { .. } | Source::Publish => unreachable!("handled above"),
            };
            let dec = make("uridecodebin", Some("decode"))?;
            dec.set_property("uri", &uri);
            let aconv = make("audioconvert", Some("aconv"))?;
            let ares = make("audioresample", Some("ares"))?;
            let acaps = capsfilter(Some("acaps"), &audio_caps(MIX_RATE, MIX_CHANNELS))?;
            let level = level()?;
            let aq = queue(Some("aqueue"), gst::ClockTime::from_mseconds(500))?;
            bin.add_many([&dec, &aconv, &ares, &acaps, &level, &aq])?;
            let (vin, vq) = filter.build(&bin, beauty)?;
            gst::Element::link_many([&aconv, &ares, &acaps, &level, &aq])?;
            video.set_target(Some(&vq.static_pad("src").context("queue src")?))?;
            audio.set_target(Some(&aq.static_pad("src").context("queue src")?))?;
            let vsink = vin.static_pad("sink").context("converter sink")?;
            let asink = aconv.static_pad("sink").context("audioconvert sink")?;
            let bin_weak = bin.downgrade();
            dec.connect_pad_added(move |_dec, pad| {
                let Some(caps) = pad.current_caps().or_else(|| Some(pad.query_caps(None))) else {
                    return;
                };
                let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
                    return;
                };
                let target = if name.starts_with("video/") {
                    &vsink
                } else if name.starts_with("audio/") {
                    &asink
                } else {
                    return;
                };
                if target.is_linked() {
                    // A second stream of the same kind: drain it so the decoder does not stall.
                    if let Some(bin) = bin_weak.upgrade() {
                        super::drain(&bin, pad);
                    }
                    return;
                }
                if let Err(e) = pad.link(target) {
                    tracing::warn!("seat: cannot link decoded {name}: {e:?}");
                }
            });
            // A file without audio (or video) still has to end that side of the seat, or the
            // mixer would wait for it forever.
            let vsink = vin.static_pad("sink").context("converter sink")?;
            let asink = aconv.static_pad("sink").context("audioconvert sink")?;
            dec.connect_no_more_pads(move |_| {
                for p in [&vsink, &asink] {
                    if !p.is_linked() {
                        end_unfed_pad(p);
                    }
                }
            });
        }
    }
    video.set_active(true).ok();
    audio.set_active(true).ok();
    bin.add_pad(&video)?;
    bin.add_pad(&audio)?;
    Ok(SeatBin {
        bin,
        video: video.upcast(),
        audio: audio.upcast(),
    })
}

/// Audio level meter: posts the seat's RMS level (dBFS per channel) every 200 ms.
fn level() -> Result<gst::Element> {
    let l = make("level", Some("level"))?;
    l.set_property("interval", gst::ClockTime::from_mseconds(200).nseconds());
    l.set_property("post-messages", true);
    Ok(l)
}

/// Sends stream-start, a segment and EOS into a sink pad that will never see data.
fn end_unfed_pad(pad: &gst::Pad) {
    let id = format!("showmix-empty-{}", pad.name());
    let _ = pad.send_event(gst::event::StreamStart::new(&id));
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    let _ = pad.send_event(gst::event::Segment::new(&segment));
    let _ = pad.send_event(gst::event::Eos::new());
}

/// Puts the first buffer of a seat at the room's current running time, with the same offset
/// on video and audio so they stay in sync. For live rooms only.
pub fn align_to_now(element: &gst::Element, pads: &[&gst::Pad]) {
    let shared: Arc<Mutex<Option<i64>>> = Arc::new(Mutex::new(None));
    for pad in pads {
        let shared = shared.clone();
        let element = element.downgrade();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
                return gst::PadProbeReturn::Ok;
            };
            let mut offset = shared.lock().unwrap_or_else(|e| e.into_inner());
            let value = *offset.get_or_insert_with(|| {
                let now = element
                    .upgrade()
                    .and_then(|e| e.current_running_time())
                    .map(|t| t.nseconds() as i64)
                    .unwrap_or(0);
                now - pts.nseconds() as i64
            });
            pad.set_offset(value);
            gst::PadProbeReturn::Remove
        });
    }
}
