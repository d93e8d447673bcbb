//! Probes that read the wall-clock stamp (`stamp.rs`) inside a room's pipeline, splitting
//! glass-to-glass latency into stages: decoded at the seat (compositor sink pads), mixed (the
//! canvas), encoded (a rung's tee, matched by running time); and a GStreamer publisher that
//! stamps every frame it makes and sends it over RTMP or SRT.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use gst::prelude::*;
use gst_video::prelude::*;

use crate::server::Server;
use crate::stamp::{self, CENTRE};

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stamp latencies seen by probes inside the room: at the seat's compositor pad, at the
/// compositor's output, at the top rung's encoder output.
#[derive(Default)]
pub struct Probes {
    pub seat: Mutex<Vec<f64>>,
    pub mixed: Mutex<Vec<f64>>,
    pub encoded: Mutex<Vec<f64>>,
    /// Canvas running time (ns) -> stamp, to find a frame again after the encoder.
    by_running_time: Mutex<std::collections::VecDeque<(u64, u32)>>,
    /// Wall clock (ms) of the first mixed frame with a stamp since `arm`.
    pub first_mixed: Mutex<Option<u64>>,
}

/// The stamp in a raw frame on `pad`, if there is one.
pub fn read_luma(pad: &gst::Pad, buf: &gst::BufferRef) -> Option<u32> {
    let caps = pad.current_caps()?;
    let vi = gst_video::VideoInfo::from_caps(&caps).ok()?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &vi).ok()?;
    let stride = frame.plane_stride()[0] as usize;
    let luma = frame.plane_data(0).ok()?;
    stamp::read(
        luma,
        vi.width() as usize,
        vi.height() as usize,
        stride,
        CENTRE,
    )
}

/// A buffer's running time on `pad` (its offset included), ns.
pub fn running_ns(pad: &gst::Pad, buf: &gst::BufferRef) -> Option<u64> {
    let seg = pad.sticky_event::<gst::event::Segment>(0)?;
    let seg = seg.segment().downcast_ref::<gst::ClockTime>()?.clone();
    let rt = seg.to_running_time(buf.pts()?)?;
    u64::try_from(rt.nseconds() as i64 + pad.offset()).ok()
}

impl Probes {
    /// Probes on the compositor's pads, the canvas and the `top` rung's encoded tee.
    pub fn attach(self: &Arc<Self>, pipeline: &gst::Pipeline, top: &str) -> Result<()> {
        let comp = pipeline.by_name("compositor").context("compositor")?;
        // The seat's pad: the one fed by a publisher bin (`seat-…`), not the background.
        for pad in comp.sink_pads() {
            let me = self.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                if let Some(b) = info.buffer()
                    && let Some(s) = read_luma(pad, b)
                {
                    lock(&me.seat).push(stamp::latency_ms(s, stamp::now_ms()) as f64);
                }
                gst::PadProbeReturn::Ok
            });
        }
        let canvas = pipeline.by_name("canvas").context("canvas caps")?;
        let me = self.clone();
        canvas.static_pad("src").context("canvas src")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |pad, info| {
                if let Some(b) = info.buffer()
                    && let Some(s) = read_luma(pad, b)
                {
                    let now = stamp::now_ms();
                    lock(&me.mixed).push(stamp::latency_ms(s, now) as f64);
                    lock(&me.first_mixed).get_or_insert(now);
                    if let Some(rt) = running_ns(pad, b) {
                        let mut q = lock(&me.by_running_time);
                        q.push_back((rt, s));
                        while q.len() > 120 {
                            q.pop_front();
                        }
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
        let top = pipeline
            .by_name(&format!("rung-{top}"))
            .with_context(|| format!("rung {top}"))?;
        let me = self.clone();
        top.static_pad("sink").context("rung tee sink")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |pad, info| {
                if let Some(b) = info.buffer()
                    && let Some(rt) = running_ns(pad, b)
                {
                    let q = lock(&me.by_running_time);
                    if let Some((_, s)) = q.iter().find(|(t, _)| t.abs_diff(rt) < 2_000_000) {
                        lock(&me.encoded).push(stamp::latency_ms(*s, stamp::now_ms()) as f64);
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
        Ok(())
    }

    pub fn clear(&self) {
        lock(&self.seat).clear();
        lock(&self.mixed).clear();
        lock(&self.encoded).clear();
        *lock(&self.first_mixed) = None;
    }
}

/// A room's pipeline, for probes.
pub fn room_pipeline(s: &Server, room: &str) -> Result<gst::Pipeline> {
    let mut p = None;
    s.engine.for_each_room(|id, r| {
        if id == room {
            p = Some(r.pipeline().clone());
        }
    });
    p.context("room not found")
}

/// A live publisher in this process: a black 640x360 30 fps picture with the wall clock
/// stamped into every frame as the source makes it (the "capture" time), H.264 (x264
/// `ultrafast`/`zerolatency`, GOP 30) and AAC, over RTMP (FLV, `rtmp2sink`) or SRT (MPEG-TS,
/// `srtsink` as caller with `srt_latency_ms`). Stopped on drop.
pub struct StampPublisher {
    pipeline: gst::Pipeline,
}

impl StampPublisher {
    /// `url` is the seat's `ingest.rtmp` (`rtmp://…?key=…`) or, for SRT, `srt://host:port`
    /// with the stream id given apart (the seat's `#!::r=…,m=publish,s=…`).
    pub fn start(url: &str, srt_streamid: Option<&str>, srt_latency_ms: u32) -> Result<Self> {
        let sink = if url.starts_with("srt://") {
            format!(
                "mpegtsmux name=mux alignment=7 ! srtsink name=out uri=\"{url}\" mode=caller \
                 latency={srt_latency_ms} wait-for-connection=false sync=false"
            )
        } else {
            format!(
                "flvmux name=mux streamable=true ! rtmp2sink name=out location=\"{url}\" sync=false"
            )
        };
        let desc = format!(
            "videotestsrc is-live=true pattern=black name=src \
             ! video/x-raw,format=I420,width=640,height=360,framerate=30/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=1500 \
             ! video/x-h264,profile=high ! h264parse config-interval=-1 ! queue ! mux. \
             audiotestsrc is-live=true wave=silence samplesperbuffer=960 \
             ! audio/x-raw,rate=48000,channels=2 ! avenc_aac bitrate=96000 ! aacparse \
             ! queue ! mux. {sink}"
        );
        let pipeline = gst::parse::launch(&desc)
            .context("publisher pipeline")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
        if let Some(id) = srt_streamid {
            pipeline
                .by_name("out")
                .context("srtsink")?
                .set_property("streamid", id);
        }
        let src = pipeline.by_name("src").context("videotestsrc")?;
        src.static_pad("src").context("src pad")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |pad, info| {
                let Some(caps) = pad.current_caps() else {
                    return gst::PadProbeReturn::Ok;
                };
                let Ok(vi) = gst_video::VideoInfo::from_caps(&caps) else {
                    return gst::PadProbeReturn::Ok;
                };
                if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data {
                    let buf = buffer.make_mut();
                    if let Ok(mut frame) =
                        gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &vi)
                    {
                        let stride = frame.plane_stride()[0] as usize;
                        let (w, h) = (vi.width() as usize, vi.height() as usize);
                        if let Ok(luma) = frame.plane_data_mut(0) {
                            stamp::draw(luma, w, h, stride, CENTRE, stamp::now_ms());
                        }
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
        pipeline
            .set_state(gst::State::Playing)
            .context("publisher does not start")?;
        Ok(StampPublisher { pipeline })
    }

    /// The first error on the publisher's bus, if any.
    pub fn error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        while let Some(m) = bus.pop() {
            if let gst::MessageView::Error(e) = m.view() {
                return Some(format!("{} ({:?})", e.error(), e.debug()));
            }
        }
        None
    }
}

impl Drop for StampPublisher {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
