//! `showmixscale` subclass of `GstVideoFilter`: properties, size-changing caps negotiation and
//! the per-frame call into [`crate::resample::PlaneScaler`].
//!
//! Locking: `settings` is copied out and released before `state` is taken, so a property
//! change never waits for a frame; it applies from the next frame on.

use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::BaseTransformMode;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use super::Filter;
use crate::resample::PlaneScaler;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "showmixscale",
        gst::DebugColorFlags::empty(),
        Some("showmix rung scaler"),
    )
});

const PROP_LUMA_FILTER: &str = "luma-filter";
const PROP_CHROMA_FILTER: &str = "chroma-filter";
const DEFAULT_LUMA: Filter = Filter::CatmullRom;
const DEFAULT_CHROMA: Filter = Filter::Lanczos3;

/// Three-plane 8-bit YUV: plane 0 is luma, planes 1 and 2 chroma of equal size.
const FORMATS: [gst_video::VideoFormat; 4] = [
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Yv12,
    gst_video::VideoFormat::Y42b,
    gst_video::VideoFormat::Y444,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    luma: Filter,
    chroma: Filter,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            luma: DEFAULT_LUMA,
            chroma: DEFAULT_CHROMA,
        }
    }
}

#[derive(Debug)]
struct State {
    settings: Settings,
    luma: PlaneScaler,
    chroma: PlaneScaler,
}

impl State {
    fn new(settings: Settings) -> Self {
        Self {
            settings,
            luma: PlaneScaler::new(settings.luma.into()),
            chroma: PlaneScaler::new(settings.chroma.into()),
        }
    }
}

#[derive(Default)]
pub struct Scale {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[glib::object_subclass]
impl ObjectSubclass for Scale {
    const NAME: &'static str = "GstShowmixScale";
    type Type = super::Scale;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for Scale {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecEnum::builder_with_default(PROP_LUMA_FILTER, DEFAULT_LUMA)
                    .nick("Luma filter")
                    .blurb("Resampling kernel of the luma plane (catrom: sharp as a bicubic)")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default(PROP_CHROMA_FILTER, DEFAULT_CHROMA)
                    .nick("Chroma filter")
                    .blurb(
                        "Resampling kernel of the chroma planes (lanczos3: colour edges stay \
                         as sharp as swscale's; the planes are a quarter of the pixels)",
                    )
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            PROP_LUMA_FILTER => s.luma = value.get().unwrap_or(DEFAULT_LUMA),
            PROP_CHROMA_FILTER => s.chroma = value.get().unwrap_or(DEFAULT_CHROMA),
            other => gst::warning!(CAT, imp = self, "no property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            PROP_LUMA_FILTER => s.luma.to_value(),
            PROP_CHROMA_FILTER => s.chroma.to_value(),
            other => {
                gst::warning!(CAT, imp = self, "no property {other}");
                pspec.default_value().clone()
            }
        }
    }
}

impl GstObjectImpl for Scale {}

impl ElementImpl for Scale {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "showmix scaler",
                "Filter/Converter/Video/Scaler",
                "Resizes 8-bit planar YUV (I420/YV12/Y42B/Y444) with SIMD separable \
                 convolution: Catmull-Rom luma, Lanczos-3 chroma by default",
                "showmix developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS)
                .build();
            let mut templates = Vec::with_capacity(2);
            for (name, direction) in [
                ("src", gst::PadDirection::Src),
                ("sink", gst::PadDirection::Sink),
            ] {
                match gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &caps) {
                    Ok(t) => templates.push(t),
                    Err(err) => gst::error!(CAT, "pad template {name}: {err}"),
                }
            }
            templates
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for Scale {
    const MODE: BaseTransformMode = BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = true;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    /// Any size on the other side, everything else (format, colorimetry, chroma siting,
    /// frame rate) unchanged. The unchanged caps come first so equal sizes pass through.
    fn transform_caps(
        &self,
        _direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let mut any_size = caps.clone();
        for s in any_size.make_mut().iter_mut() {
            s.set("width", gst::IntRange::new(1, i32::MAX));
            s.set("height", gst::IntRange::new(1, i32::MAX));
            s.remove_field("pixel-aspect-ratio");
        }
        let mut out = caps.clone();
        out.merge(any_size);
        Some(match filter {
            Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
            None => out,
        })
    }

    /// Sizes downstream leaves open are taken as close to the input's as allowed.
    fn fixate_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        othercaps: gst::Caps,
    ) -> gst::Caps {
        let mut othercaps = othercaps;
        othercaps.truncate();
        if let (Some(ins), Some(outs)) = (caps.structure(0), othercaps.make_mut().structure_mut(0))
        {
            for field in ["width", "height"] {
                if let Ok(v) = ins.get::<i32>(field) {
                    outs.fixate_field_nearest_int(field, v);
                }
            }
            if outs.has_field("pixel-aspect-ratio") {
                let par = ins
                    .get::<gst::Fraction>("pixel-aspect-ratio")
                    .unwrap_or(gst::Fraction::new(1, 1));
                outs.fixate_field_nearest_fraction("pixel-aspect-ratio", par);
            }
        }
        self.parent_fixate_caps(direction, caps, othercaps)
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }
}

impl VideoFilterImpl for Scale {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        if in_info.format() != out_info.format() || !FORMATS.contains(&in_info.format()) {
            return Err(gst::loggable_error!(
                CAT,
                "cannot scale {:?} to {:?}: in and out must be the same of {FORMATS:?}",
                in_info.format(),
                out_info.format()
            ));
        }
        gst::info!(
            CAT,
            imp = self,
            "{:?} {}x{} -> {}x{}",
            in_info.format(),
            in_info.width(),
            in_info.height(),
            out_info.width(),
            out_info.height()
        );
        self.parent_set_info(incaps, in_info, outcaps, out_info)
    }

    fn transform_frame(
        &self,
        inframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
        outframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = *lock(&self.settings);
        let mut state = lock(&self.state);
        if state.as_ref().is_none_or(|s| s.settings != settings) {
            *state = Some(State::new(settings));
        }
        let Some(state) = state.as_mut() else {
            return Err(gst::FlowError::Error);
        };
        // Every plane's (width, height, stride) on both sides, read before the output
        // planes are borrowed mutably (fixed arrays: nothing allocated per frame).
        let dims = |info: &gst_video::VideoInfo, strides: &[i32]| -> [(usize, usize, usize); 3] {
            std::array::from_fn(|p| {
                let stride = strides.get(p).copied().unwrap_or(0);
                (
                    info.comp_width(p as u8) as usize,
                    info.comp_height(p as u8) as usize,
                    usize::try_from(stride).unwrap_or(0),
                )
            })
        };
        let src_dims = dims(inframe.info(), inframe.plane_stride());
        let dst_dims = dims(outframe.info(), outframe.plane_stride());
        let fail = |what: std::fmt::Arguments| {
            gst::element_imp_error!(self, gst::StreamError::Format, ["{}", what]);
            gst::FlowError::Error
        };
        for plane in 0..inframe.n_planes().min(3) {
            let p = plane as usize;
            let src = inframe
                .plane_data(plane)
                .map_err(|e| fail(format_args!("input plane {plane}: {e}")))?;
            let dst = outframe
                .plane_data_mut(plane)
                .map_err(|e| fail(format_args!("output plane {plane}: {e}")))?;
            let scaler = if plane == 0 {
                &mut state.luma
            } else {
                &mut state.chroma
            };
            scaler
                .scale(src, src_dims[p], dst, dst_dims[p])
                .map_err(|e| fail(format_args!("plane {plane}: {e}")))?;
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
