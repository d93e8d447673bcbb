//! The references an encode test measures against: the source decoded once, normalised to the
//! ladder's canvas (I420, canvas size and frame rate), and scaled to every rung size by
//! `showmixscale` (the room's own rung scaler: Catmull-Rom luma, Lanczos-3 chroma). Each size
//! is written as packed I420 frames, which both the encoders and the metrics read, so neither
//! decodes the source again.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;
use gst_video::prelude::*;

use crate::pipeline::{capsfilter, make, queue};
use crate::source::Source;

/// One reference file to write.
#[derive(Clone, Debug)]
pub struct Target {
    pub width: u32,
    pub height: u32,
    pub path: PathBuf,
}

/// The stated filter, for the report.
pub const SCALING_FILTER: &str =
    "showmixscale (the room's rung scaler): Catmull-Rom luma, Lanczos-3 chroma, from the canvas";

/// How long the source may go without producing a frame before it counts as stuck.
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

fn i420_caps(width: u32, height: u32, fps: Option<u32>) -> gst::Caps {
    let mut b = gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::I420)
        .width(width as i32)
        .height(height as i32)
        .pixel_aspect_ratio(gst::Fraction::new(1, 1));
    if let Some(f) = fps {
        b = b.framerate(gst::Fraction::new(f as i32, 1));
    }
    b.build()
}

/// Decodes `source` once and writes up to `max_frames` frames to every target. Returns the
/// number of frames written (fewer when the source is shorter).
pub fn render(
    label: &str,
    source: &Source,
    canvas: (u32, u32, u32),
    targets: &[Target],
    max_frames: u64,
    cancel: &AtomicBool,
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    crate::init()?;
    let (cw, ch, fps) = canvas;
    let pipeline = gst::Pipeline::with_name("encode-test-reference");
    let canvas_caps = capsfilter(Some("canvas"), &i420_caps(cw, ch, Some(fps)))?;
    let tee = make("tee", Some("rungs"))?;
    pipeline.add_many([&canvas_caps, &tee])?;
    canvas_caps.link(&tee)?;
    match source {
        Source::Test { pattern, .. } => {
            let src = make("videotestsrc", Some("src"))?;
            src.set_property_from_str("pattern", pattern);
            src.set_property("num-buffers", i32::try_from(max_frames).unwrap_or(i32::MAX));
            pipeline.add(&src)?;
            src.link(&canvas_caps)?;
        }
        Source::File(_) | Source::Uri(_) => {
            let uri = match source {
                Source::File(p) => {
                    if !p.is_file() {
                        bail!(
                            "source {label}: file {} does not exist or is not a file",
                            p.display()
                        );
                    }
                    let abs = std::path::absolute(p)?;
                    gst::glib::filename_to_uri(&abs, None)?.to_string()
                }
                Source::Uri(u) => u.clone(),
                _ => unreachable!("matched above"),
            };
            let dec = make("uridecodebin", Some("src"))?;
            dec.set_property("uri", &uri);
            let convert = make("videoconvert", Some("convert"))?;
            let rate = make("videorate", Some("rate"))?;
            let scale = make("showmixscale", Some("canvas-scale"))?;
            pipeline.add_many([&dec, &convert, &rate, &scale])?;
            gst::Element::link_many([&convert, &rate, &scale, &canvas_caps])?;
            let bin = pipeline.clone().upcast::<gst::Bin>();
            let convert_weak = convert.downgrade();
            dec.connect_pad_added(move |_, pad| {
                let is_video = pad
                    .current_caps()
                    .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
                    .unwrap_or(false);
                let sink = convert_weak.upgrade().and_then(|c| c.static_pad("sink"));
                match sink {
                    Some(sink) if is_video && !sink.is_linked() => {
                        let _ = pad.link(&sink);
                    }
                    _ => crate::pipeline::drain(&bin, pad),
                }
            });
        }
        Source::Publish => bail!("source {label}: publish sources need showmix serve"),
    }
    let mut sinks = Vec::new();
    let mut files = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let q = queue(Some(&format!("q{i}")), gst::ClockTime::from_seconds(1))?;
        let scale = make("showmixscale", Some(&format!("scale{i}")))?;
        let caps = capsfilter(
            Some(&format!("caps{i}")),
            &i420_caps(t.width, t.height, None),
        )?;
        let sink = gst_app::AppSink::builder()
            .name(format!("sink{i}"))
            .sync(false)
            .max_buffers(4)
            .enable_last_sample(false)
            .build();
        pipeline.add_many([&q, &scale, &caps, sink.upcast_ref()])?;
        gst::Element::link_many([&tee, &q, &scale, &caps, sink.upcast_ref()])?;
        sinks.push(sink);
        let f =
            File::create(&t.path).with_context(|| format!("cannot write {}", t.path.display()))?;
        files.push(BufWriter::with_capacity(1 << 20, f));
    }
    let bus = pipeline
        .bus()
        .ok_or_else(|| anyhow!("pipeline without a bus"))?;
    let result = (|| -> Result<u64> {
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            anyhow!("source {label} does not start (is it media GStreamer decodes?)")
        })?;
        let mut frames = 0u64;
        'frames: while frames < max_frames {
            for (i, sink) in sinks.iter().enumerate() {
                let started = Instant::now();
                let sample = loop {
                    if cancel.load(Ordering::Relaxed) {
                        bail!("cancelled");
                    }
                    if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
                        && let gst::MessageView::Error(e) = msg.view()
                    {
                        bail!("source {label} does not decode: {}", e.error());
                    }
                    if let Some(s) = sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) {
                        break s;
                    }
                    if sink.is_eos() {
                        break 'frames;
                    }
                    if started.elapsed() > FRAME_TIMEOUT {
                        bail!(
                            "source {label} produced no frame for {} s",
                            FRAME_TIMEOUT.as_secs()
                        );
                    }
                };
                write_frame(&sample, &mut files[i])
                    .with_context(|| format!("cannot write {}", targets[i].path.display()))?;
            }
            frames += 1;
            progress(frames);
        }
        Ok(frames)
    })();
    let _ = pipeline.set_state(gst::State::Null);
    let frames = result?;
    for (f, t) in files.iter_mut().zip(targets) {
        f.flush()
            .and_then(|_| f.get_ref().sync_data())
            .with_context(|| format!("cannot write {}", t.path.display()))?;
    }
    if frames == 0 {
        bail!("source {label} does not decode: it produced no video frame");
    }
    Ok(frames)
}

/// Writes one frame as packed I420 (rows without stride padding).
fn write_frame(sample: &gst::Sample, out: &mut impl Write) -> Result<()> {
    let caps = sample.caps().ok_or_else(|| anyhow!("frame without caps"))?;
    let info = gst_video::VideoInfo::from_caps(caps)?;
    let buffer = sample
        .buffer()
        .ok_or_else(|| anyhow!("sample without a buffer"))?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        .map_err(|_| anyhow!("cannot map a frame"))?;
    for plane in 0..3u32 {
        let data = frame.plane_data(plane)?;
        let stride = frame.plane_stride()[plane as usize] as usize;
        let (w, h) = if plane == 0 {
            (info.width() as usize, info.height() as usize)
        } else {
            (
                (info.width() as usize).div_ceil(2),
                (info.height() as usize).div_ceil(2),
            )
        };
        for y in 0..h {
            out.write_all(&data[y * stride..y * stride + w])?;
        }
    }
    Ok(())
}
