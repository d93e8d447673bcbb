//! The `showmixscale` element: public type, filter enum and registration. The subclass lives
//! in `imp.rs`, the plane math in `crate::resample`.

use gst::glib;
use gst::prelude::*;

use crate::resample::Kernel;

mod imp;

/// Resampling kernel (`luma-filter` and `chroma-filter` properties).
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstShowmixScaleFilter")]
pub enum Filter {
    #[enum_value(name = "Bilinear (widened when downscaling)", nick = "bilinear")]
    Bilinear = 0,
    #[enum_value(name = "Catmull-Rom cubic", nick = "catrom")]
    CatmullRom = 1,
    #[enum_value(name = "Mitchell-Netravali cubic", nick = "mitchell")]
    Mitchell = 2,
    #[enum_value(name = "Lanczos, 3 lobes", nick = "lanczos3")]
    Lanczos3 = 3,
}

impl From<Filter> for Kernel {
    fn from(f: Filter) -> Self {
        match f {
            Filter::Bilinear => Kernel::Bilinear,
            Filter::CatmullRom => Kernel::CatmullRom,
            Filter::Mitchell => Kernel::Mitchell,
            Filter::Lanczos3 => Kernel::Lanczos3,
        }
    }
}

glib::wrapper! {
    /// `showmixscale`: resizes I420, YV12, Y42B and Y444 video to the size downstream asks for
    /// (stretching, no borders: the caller picks sizes of the same aspect ratio), keeping
    /// format, colorimetry, chroma siting and frame rate. Pixel centres of the whole picture
    /// are aligned, as swscale and videoscale do; every plane is resampled separably with
    /// SIMD (AVX2 / SSE4.1 / NEON) convolution. Same size in and out: passthrough.
    pub struct Scale(ObjectSubclass<imp::Scale>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Register the `showmixscale` element in `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Filter::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "showmixscale",
        gst::Rank::NONE,
        Scale::static_type(),
    )
}
