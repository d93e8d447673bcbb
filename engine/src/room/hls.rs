//! LL-HLS packaging of a room: one fragmented-MP4 muxer per rung, fed the rung's encoded video
//! and the room's encoded audio (muxed together: every rung carries the audio, so there is no
//! separate audio rendition and no rendition group to keep in step), cut in 1 s fragments on
//! the GOP (the segments) made of 200 ms chunks (the parts).
//!
//! The muxer is gst-plugin-fmp4's `isofmp4mux`: `cmafmux` from the same plugin writes CMAF
//! track files, one track each, so it cannot carry the audio next to the video; `isofmp4mux`
//! is the same fragment and chunk machinery with several tracks. An appsink hands each chunk to the plain-
//! Rust store in `crate::hls`, which the HTTP layer serves with blocking reloads.
//!
//! ```text
//! rung tee ─ queue ─┐
//!                   ├─ isofmp4mux ─ appsink ──▶ hls::Track (parts, segments, playlists)
//! audio tee ─ queue ┘
//! ```
//!
//! The branch never holds up the room: its queues are leaky, so a packager that falls behind
//! drops media (and the store starts a new part) instead of stalling the encoders.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use gst::prelude::*;

use crate::hls::{HlsConfig, HlsRoom, PartIn, RungInfo};
use crate::pipeline::{make, queue};
use crate::presets::Ladder;

/// Codec strings per rung (video) and for the audio, once known.
type Codecs = Arc<Mutex<(Vec<Option<String>>, Option<String>)>>;

/// What the room keeps to describe its HLS presentation.
pub struct Packager {
    pub room: Arc<HlsRoom>,
    /// RFC 6381 codec strings learned from the encoders' caps (video per rung, then audio).
    codecs: Codecs,
    ladder: Ladder,
}

fn guess_codecs() -> String {
    "avc1.64001f,mp4a.40.2".into()
}

impl Packager {
    /// Builds the packaging branches. `rung_tees` are (rung name, encoded tee, parser or
    /// encoder src pad) in ladder order.
    pub fn build(
        pipeline: &gst::Pipeline,
        ladder: &Ladder,
        rung_tees: &[(String, gst::Element, gst::Pad)],
        audio_tee: &gst::Element,
        audio_src: &gst::Pad,
        started: SystemTime,
    ) -> Result<Packager> {
        let frame = Duration::from_nanos(1_000_000_000 / u64::from(ladder.canvas.fps.max(1)));
        let cfg = HlsConfig {
            // A part ending on a late keyframe may run one frame over 200 ms.
            part_target: HlsConfig::part_target_for(Duration::from_millis(200), frame)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            segment_target: Duration::from_secs_f64(ladder.gop_seconds),
            ..HlsConfig::default()
        };
        let rungs: Vec<RungInfo> = ladder
            .rungs
            .iter()
            .map(|r| rung_info(ladder, r, guess_codecs()))
            .collect();
        let room = Arc::new(HlsRoom::new(cfg, rungs).map_err(|e| anyhow::anyhow!("{e}"))?);
        let codecs = Arc::new(Mutex::new((vec![None; rung_tees.len()], None)));

        // Learn the codec strings from the caps the encoders settle on.
        let learn = |pad: &gst::Pad, slot: Option<usize>| {
            let codecs = codecs.clone();
            pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                if let Some(ev) = info.event()
                    && let gst::EventView::Caps(c) = ev.view()
                    && let Ok(s) = gst_pbutils::functions::codec_utils_caps_get_mime_codec(c.caps())
                {
                    let mut g = codecs.lock().unwrap_or_else(|e| e.into_inner());
                    match slot {
                        Some(i) => g.0[i] = Some(s.to_string()),
                        None => g.1 = Some(s.to_string()),
                    }
                }
                gst::PadProbeReturn::Ok
            });
        };
        learn(audio_src, None);

        // Wall-clock time of running time 0, read off the pipeline clock by the first sample
        // of any rung (`started` until the pipeline runs) and shared by all of them:
        // PROGRAM-DATE-TIME is then the time a frame was due in the mix, whatever happened
        // between building the room and starting it, and the same frame has the same PDT on
        // every rung.
        let anchor = std::sync::Arc::new(std::sync::OnceLock::new());
        for (i, (name, tee, src)) in rung_tees.iter().enumerate() {
            learn(src, Some(i));
            let leaky = |n: &str| -> Result<gst::Element> {
                let q = queue(
                    Some(&format!("hls-{n}-{name}")),
                    gst::ClockTime::from_seconds(2),
                )?;
                q.set_property_from_str("leaky", "downstream");
                Ok(q)
            };
            let vq = leaky("vq")?;
            let aq = leaky("aq")?;
            let mux = make("isofmp4mux", Some(&format!("hls-mux-{name}")))?;
            mux.set_property(
                "fragment-duration",
                gst::ClockTime::from_seconds_f64(ladder.gop_seconds).nseconds(),
            );
            mux.set_property(
                "chunk-duration",
                gst::ClockTime::from_mseconds(200).nseconds(),
            );
            let sink = gst_app::AppSink::builder()
                .name(format!("hls-sink-{name}"))
                .sync(false)
                .async_(false)
                .buffer_list(true)
                .build();
            pipeline.add_many([&vq, &aq, &mux, sink.upcast_ref()])?;
            tee.link(&vq)?;
            audio_tee.link(&aq)?;
            vq.link(&mux)?;
            aq.link(&mux)?;
            mux.link(&sink)?;
            let track = room
                .track(name)
                .cloned()
                .with_context(|| format!("no HLS track for rung {name}"))?;
            let anchor = anchor.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let zero = *anchor.get_or_init(|| wall_clock_at_zero(sink, started));
                        push_chunk(&track, &sample, zero);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        Ok(Packager {
            room,
            codecs,
            ladder: ladder.clone(),
        })
    }

    /// The multivariant playlist, with the codecs the encoders actually produce.
    pub fn multivariant(&self) -> String {
        let g = self.codecs.lock().unwrap_or_else(|e| e.into_inner());
        let rungs: Vec<RungInfo> = self
            .ladder
            .rungs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let codecs = match (g.0.get(i).cloned().flatten(), g.1.clone()) {
                    (Some(v), Some(a)) => format!("{v},{a}"),
                    _ => guess_codecs(),
                };
                rung_info(&self.ladder, r, codecs)
            })
            .collect();
        crate::hls::multivariant(&rungs)
    }
}

fn rung_info(ladder: &Ladder, r: &crate::presets::ladder::Rung, codecs: String) -> RungInfo {
    let audio = u64::from(ladder.audio.bitrate_kbps) * 1000;
    let video = u64::from(r.bitrate_kbps) * 1000;
    RungInfo {
        name: r.name.clone(),
        width: r.width,
        height: r.height,
        fps: f64::from(ladder.canvas.fps),
        // x264's VBV lets single segments run above the average; 1.2x covers its buffer.
        bandwidth_bps: video * 6 / 5 + audio,
        average_bandwidth_bps: video + audio,
        codecs,
    }
}

/// The wall-clock time at which the pipeline's running time was 0.
fn wall_clock_at_zero(sink: &gst_app::AppSink, fallback: SystemTime) -> SystemTime {
    let (Some(clock), Some(base)) = (sink.clock(), sink.base_time()) else {
        return fallback;
    };
    let running = clock.time().saturating_sub(base);
    SystemTime::now()
        .checked_sub(Duration::from_nanos(running.nseconds()))
        .unwrap_or(fallback)
}

/// One muxer output list: [init segment] + chunk header (moof) + media. The header's flags
/// say whether the chunk starts a fragment (a segment, on a keyframe) or continues one.
fn push_chunk(track: &crate::hls::Track, sample: &gst::Sample, started: SystemTime) {
    let mut buffers: Vec<gst::Buffer> = Vec::new();
    if let Some(list) = sample.buffer_list() {
        buffers.extend(list.iter_owned());
    } else if let Some(b) = sample.buffer_owned() {
        buffers.push(b);
    }
    let mut data = Vec::new();
    let mut duration = None;
    let mut pts = None;
    let mut starts_segment = false;
    for b in &buffers {
        let flags = b.flags();
        let Ok(map) = b.map_readable() else {
            continue;
        };
        if flags.contains(gst::BufferFlags::HEADER | gst::BufferFlags::DISCONT) {
            track.set_init(bytes::Bytes::copy_from_slice(map.as_slice()));
            continue;
        }
        if flags.contains(gst::BufferFlags::HEADER) {
            starts_segment = !flags.contains(gst::BufferFlags::DELTA_UNIT);
            duration = b.duration();
            pts = b.pts();
        }
        data.extend_from_slice(map.as_slice());
    }
    let (Some(duration), false) = (duration, data.is_empty()) else {
        return;
    };
    // Encoders shift timestamps by 1000 hours (room for negative DTS): the wall-clock time of
    // a chunk comes from its running time, which the segment gives.
    let running = pts.and_then(|p| {
        sample.segment().and_then(|seg| {
            seg.downcast_ref::<gst::ClockTime>()
                .and_then(|s| s.to_running_time(p))
        })
    });
    let pdt = started + Duration::from_nanos(running.map(|p| p.nseconds()).unwrap_or(0));
    if let Err(e) = track.push_part(PartIn {
        data: bytes::Bytes::from(data),
        duration: Duration::from_nanos(duration.nseconds()),
        independent: starts_segment,
        starts_segment,
        program_date_time: pdt,
    }) {
        tracing::warn!(rung = track.name(), "HLS part refused: {e}");
    }
}
