//! showmix beauty filter: the `showmixbeauty` GStreamer element (skin smoothing, lightening,
//! redness, sharpening on 8-bit 4:2:0 video, in place) and its plugin.
//!
//! Linked into an application (showmix does this at start-up): call [`plugin_register_static`]
//! once after `gst::init()`, or [`register`] to add the element to a plugin of your own. The
//! crate is built as an rlib only; it is not shipped as a loadable `.so`.
//!
//! [`algo`] holds the pixel math without GStreamer types; see plugins/beauty/README.md.

use gst::glib;

pub mod algo;
mod beauty;

pub use beauty::{BeautyFilter, Contrast};

/// Register the `showmixbeauty` element in `plugin` (for applications that bundle elements
/// into a plugin of their own; most callers want [`plugin_register_static`]).
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    beauty::register(plugin)
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    beauty::register(plugin)
}

gst::plugin_define!(
    showmixbeauty,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    // GStreamer only knows a fixed list of licence names; the crate is MIT OR Apache-2.0.
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    "showmix",
    env!("CARGO_PKG_REPOSITORY")
);
