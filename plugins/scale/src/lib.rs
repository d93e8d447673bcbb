//! showmix rung scaler: the `showmixscale` GStreamer element (8-bit planar YUV resized with
//! SIMD separable convolution, Catmull-Rom on luma and Lanczos-3 on chroma by default) and
//! its plugin.
//!
//! Why not `videoscale`: on 1.22 its horizontal N-tap path is scalar C and its chroma planes
//! go through the converter's chroma resampler (linear by default, whatever `method` says).
//! Scaling a 720p canvas to the 480p and 360p rungs took 15 % of a PK room's CPU with it,
//! three times what swscale needs; this element takes a fraction of that, with chroma as
//! sharp as swscale's. See plugins/scale/README.md for the figures.
//!
//! Linked into an application (showmix does this at start-up): call [`plugin_register_static`]
//! once after `gst::init()`. [`resample`] holds the plane math without GStreamer types.

use gst::glib;

pub mod resample;
mod scale;

pub use scale::{Filter, Scale};

/// Register the `showmixscale` element in `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    scale::register(plugin)
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    scale::register(plugin)
}

gst::plugin_define!(
    showmixscale,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    "showmix",
    env!("CARGO_PKG_REPOSITORY")
);
