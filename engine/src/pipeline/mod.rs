//! GStreamer graph building. Each submodule builds one part of a room's pipeline and returns
//! the elements and pads the room links together; none of them owns lifecycle or policy
//! (that is `room`), and none of them reads user input unvalidated (that is `presets`).

pub mod beauty;
pub mod encode;
pub mod mixer;
pub mod publisher;
pub mod seat;
pub mod tap;

use anyhow::{Context, Result};
use gst::prelude::*;

/// Which Debian package provides an element, for error messages that say what to install.
fn package_for(factory: &str) -> &'static str {
    match factory {
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "x265enc" | "srtsrc" | "srtsink" | "rtmp2sink" | "mpegtsmux" | "h265parse"
        | "h264parse" | "av1parse" | "opusparse" | "webrtcbin" => "gstreamer1.0-plugins-bad",
        "avenc_aac" | "avdec_h264" => "gstreamer1.0-libav",
        "vp8enc" | "vp9enc" | "mp4mux" | "qtmux" | "matroskamux" | "flvmux" | "imagefreeze"
        | "jpegenc" | "pngdec" | "aacparse" | "mpegaudioparse" => "gstreamer1.0-plugins-good",
        "textoverlay" => "gstreamer1.0-x",
        // Compiled into showmix and registered by `showmix::init()`: missing means init was
        // not called.
        "showmixbeauty" | "showmixscale" | "cmafmux" | "isofmp4mux" | "rav1enc" => {
            "nothing: it is built into showmix; call showmix::init() first"
        }
        _ => "gstreamer1.0-plugins-base",
    }
}

/// Creates an element, with an error that names the missing plugin package.
pub fn make(factory: &str, name: Option<&str>) -> Result<gst::Element> {
    let mut b = gst::ElementFactory::make(factory);
    if let Some(n) = name {
        b = b.name(n);
    }
    b.build().with_context(|| {
        format!(
            "GStreamer element {factory:?} is not available (install {})",
            package_for(factory)
        )
    })
}

/// Links a pad nobody will use to a fakesink in `bin`, so its element keeps running on our
/// terms (a demuxer or decoder whose pad is not linked stops with "not linked").
pub fn drain(bin: &gst::Bin, pad: &gst::Pad) {
    let Ok(sink) = make("fakesink", None) else {
        return;
    };
    sink.set_property("sync", false);
    sink.set_property("async", false);
    if bin.add(&sink).is_ok() {
        let _ = sink.sync_state_with_parent();
        if let Some(p) = sink.static_pad("sink") {
            let _ = pad.link(&p);
        }
    }
}

/// A capsfilter with the given caps.
pub fn capsfilter(name: Option<&str>, caps: &gst::Caps) -> Result<gst::Element> {
    let e = make("capsfilter", name)?;
    e.set_property("caps", caps);
    Ok(e)
}

/// A queue that decouples two threads. `max_time` bounds it in time (and leaves it unbounded
/// in buffers and bytes, which the time bound already caps).
pub fn queue(name: Option<&str>, max_time: gst::ClockTime) -> Result<gst::Element> {
    let q = make("queue", name)?;
    q.set_property("max-size-buffers", 0u32);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", max_time.nseconds());
    Ok(q)
}

/// The colour description of the mixed picture and everything scaled from or into it.
pub const CANVAS_COLORIMETRY: &str = "bt709";
pub const CANVAS_CHROMA_SITE: &str = "mpeg2";

/// Raw 4:2:0 video at a size and rate.
pub fn i420_caps(width: u32, height: u32, fps: Option<u32>) -> gst::Caps {
    let mut b = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", width as i32)
        .field("height", height as i32)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    if let Some(f) = fps {
        b = b.field("framerate", gst::Fraction::new(f as i32, 1));
    }
    b.build()
}

/// The mixed picture's caps: I420 with every field fixed, colour description included
/// (BT.709, MPEG-2 chroma siting, as the encoders signal it). Leaving colorimetry open lets the
/// compositor pick it from whichever input arrives first and renegotiate when the next one
/// does: a caps change a few frames into the stream that restarts every encoder, which then
/// emits two frames with the same timestamp.
pub fn canvas_caps(width: u32, height: u32, fps: u32) -> gst::Caps {
    with_canvas_colour(i420_caps(width, height, Some(fps)))
}

/// A scaled rung's caps: the canvas's colour description at another size. Without it
/// GStreamer picks the default for the size (BT.601 below 720 lines) and the scaler converts
/// the colour matrix too: slower, lossy, and a different picture from what ffmpeg's scaler
/// gives (which keeps the matrix), so SD rungs measured 10 dB lower against it.
pub fn rung_caps(width: u32, height: u32) -> gst::Caps {
    with_canvas_colour(i420_caps(width, height, None))
}

fn with_canvas_colour(mut caps: gst::Caps) -> gst::Caps {
    {
        let s = caps
            .make_mut()
            .structure_mut(0)
            .expect("i420_caps has a structure");
        s.set("colorimetry", CANVAS_COLORIMETRY);
        s.set("chroma-site", CANVAS_CHROMA_SITE);
    }
    caps
}

/// Interleaved float stereo (or mono) at a rate: the mixing format.
pub fn audio_caps(rate: u32, channels: u32) -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("layout", "interleaved")
        .field("rate", rate as i32)
        .field("channels", channels as i32)
        .build()
}

/// Sets a numeric property whatever integer or float type this GStreamer version gives it
/// (`avenc_aac`'s `bitrate` is `gint` in 1.22 and `gint64` later), clamped to the property's
/// range. Errors instead of panicking when the property does not exist or is not numeric.
pub fn set_number(e: &gst::Element, name: &str, v: i64) -> Result<()> {
    use gst::glib::{
        ParamSpecDouble, ParamSpecInt, ParamSpecInt64, ParamSpecUInt, ParamSpecUInt64,
    };
    let spec = e
        .find_property(name)
        .with_context(|| format!("element {} has no property {name:?}", e.name()))?;
    if let Some(p) = spec.downcast_ref::<ParamSpecInt>() {
        e.set_property(
            name,
            (v.clamp(i64::from(p.minimum()), i64::from(p.maximum()))) as i32,
        );
    } else if let Some(p) = spec.downcast_ref::<ParamSpecUInt>() {
        e.set_property(
            name,
            (v.clamp(i64::from(p.minimum()), i64::from(p.maximum()))) as u32,
        );
    } else if let Some(p) = spec.downcast_ref::<ParamSpecInt64>() {
        e.set_property(name, v.clamp(p.minimum(), p.maximum()));
    } else if let Some(p) = spec.downcast_ref::<ParamSpecUInt64>() {
        let v = (v.max(0) as u64).clamp(p.minimum(), p.maximum());
        e.set_property(name, v);
    } else if let Some(p) = spec.downcast_ref::<ParamSpecDouble>() {
        e.set_property(name, (v as f64).clamp(p.minimum(), p.maximum()));
    } else {
        anyhow::bail!("property {name:?} of {} is not numeric", e.name());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::package_for;

    #[test]
    fn missing_elements_name_the_package_that_ships_them() {
        assert_eq!(package_for("aacparse"), "gstreamer1.0-plugins-good");
        assert_eq!(package_for("opusparse"), "gstreamer1.0-plugins-bad");
        assert_eq!(package_for("x264enc"), "gstreamer1.0-plugins-ugly");
        assert!(package_for("showmixscale").contains("built into showmix"));
        assert_eq!(package_for("videotestsrc"), "gstreamer1.0-plugins-base");
    }
}
