//! The `showmixbeauty` element: public type, property enum and registration. The subclass
//! (properties, caps, per-frame glue) lives in `imp.rs`, the pixel math in `crate::algo`.

use gst::glib;
use gst::prelude::*;

mod imp;

/// Shape of the lightening tone curve (`lightening-contrast` property).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstShowmixBeautyContrast")]
pub enum Contrast {
    #[enum_value(name = "Low: lift shadows most, flatter picture", nick = "low")]
    Low = 0,
    #[default]
    #[enum_value(name = "Normal: lift mid-tones, keep black and white", nick = "normal")]
    Normal = 1,
    #[enum_value(
        name = "High: lift mid-tones with an S-curve, more contrast",
        nick = "high"
    )]
    High = 2,
}

impl From<Contrast> for crate::algo::Contrast {
    fn from(c: Contrast) -> Self {
        match c {
            Contrast::Low => crate::algo::Contrast::Low,
            Contrast::Normal => crate::algo::Contrast::Normal,
            Contrast::High => crate::algo::Contrast::High,
        }
    }
}

glib::wrapper! {
    /// `showmixbeauty`: beauty filter for 8-bit 4:2:0 video (I420, YV12, NV12, NV21; any
    /// size), in place, single-threaded.
    ///
    /// Method: a skin mask from YCbCr (hue angle, saturation and luma ramps on a 2/4/8×
    /// downsampled grid, box-smoothed); edge-preserving smoothing by a guided filter on luma
    /// computed on that grid (box means of Y and Y², O(1) per pixel) and applied at full
    /// resolution through the mask; unsharp masking (4-neighbour, cored) outside the mask;
    /// a tone-curve polynomial for lightening (low / normal / high contrast); a Cr/Cb shift
    /// toward red on skin for redness. All levels at 0 is an exact pass-through (base-class
    /// passthrough). Details in `crate::algo` and plugins/beauty/README.md.
    pub struct BeautyFilter(ObjectSubclass<imp::BeautyFilter>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Register the `showmixbeauty` element in `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Contrast::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "showmixbeauty",
        gst::Rank::NONE,
        BeautyFilter::static_type(),
    )
}
