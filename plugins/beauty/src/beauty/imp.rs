//! `showmixbeauty` subclass of `GstVideoFilter`: properties, caps, and the per-frame call into
//! [`crate::algo::Beauty`], in place.
//!
//! Locking: `settings` (user properties) and `state` (per-caps processor and scratch memory)
//! are never held at the same time. The streaming thread copies the levels out of `settings`
//! and releases it before locking `state`, so a property change never waits for a frame and
//! takes effect on the next frame. When every level is 0 the element switches the base class
//! to passthrough: buffers then go through without being mapped or made writable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::BaseTransformMode;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use super::Contrast;
use crate::algo::{self, Chroma, Levels, Planes};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "showmixbeauty",
        gst::DebugColorFlags::empty(),
        Some("showmix beauty filter"),
    )
});

const PROP_SMOOTHNESS: &str = "smoothness";
const PROP_LIGHTENING: &str = "lightening";
const PROP_LIGHTENING_CONTRAST: &str = "lightening-contrast";
const PROP_REDNESS: &str = "redness";
const PROP_SHARPNESS: &str = "sharpness";
const PROP_SKIN_MASK: &str = "skin-mask";
const PROP_FRAMES_PROCESSED: &str = "frames-processed";

const DEFAULT_SMOOTHNESS: f64 = 0.0;
const DEFAULT_LIGHTENING: f64 = 0.0;
const DEFAULT_LIGHTENING_CONTRAST: Contrast = Contrast::Normal;
const DEFAULT_REDNESS: f64 = 0.0;
const DEFAULT_SHARPNESS: f64 = 0.0;
const DEFAULT_SKIN_MASK: bool = true;

/// Formats the element processes: 8-bit 4:2:0, planar or semi-planar.
const FORMATS: [gst_video::VideoFormat; 4] = [
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Yv12,
    gst_video::VideoFormat::Nv12,
    gst_video::VideoFormat::Nv21,
];

#[derive(Debug, Clone, Copy)]
struct Settings {
    smoothness: f64,
    lightening: f64,
    lightening_contrast: Contrast,
    redness: f64,
    sharpness: f64,
    skin_mask: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            smoothness: DEFAULT_SMOOTHNESS,
            lightening: DEFAULT_LIGHTENING,
            lightening_contrast: DEFAULT_LIGHTENING_CONTRAST,
            redness: DEFAULT_REDNESS,
            sharpness: DEFAULT_SHARPNESS,
            skin_mask: DEFAULT_SKIN_MASK,
        }
    }
}

impl Settings {
    fn levels(&self) -> Levels {
        Levels {
            smoothness: self.smoothness as f32,
            lightening: self.lightening as f32,
            contrast: self.lightening_contrast.into(),
            redness: self.redness as f32,
            sharpness: self.sharpness as f32,
            skin_mask: self.skin_mask,
        }
    }
}

/// Per-caps runtime state: the processor owns all scratch memory for the negotiated size.
struct State {
    format: gst_video::VideoFormat,
    beauty: algo::Beauty,
}

#[derive(Default)]
pub struct BeautyFilter {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    frames_processed: AtomicU64,
}

/// Lock that survives a poisoned mutex: the data stays consistent (plain values and scratch
/// buffers that are fully rewritten every frame).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BeautyFilter {
    /// Passthrough when no level would change a pixel, so the base class skips the buffer.
    fn update_passthrough(&self) {
        let identity = lock(&self.settings).levels().is_identity();
        let obj = self.obj();
        if obj.is_passthrough() != identity {
            gst::debug!(CAT, imp = self, "passthrough {identity}");
            obj.set_passthrough(identity);
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for BeautyFilter {
    const NAME: &'static str = "GstShowmixBeauty";
    type Type = super::BeautyFilter;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for BeautyFilter {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecDouble::builder(PROP_SMOOTHNESS)
                    .nick("Smoothness")
                    .blurb(
                        "Edge-preserving skin smoothing (guided filter through the skin mask), \
                         0 = off, 1 = strongest",
                    )
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_SMOOTHNESS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder(PROP_LIGHTENING)
                    .nick("Lightening")
                    .blurb(
                        "Brightening tone curve on the whole picture's luma (black and white \
                         points kept), 0 = off, 1 = strongest",
                    )
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_LIGHTENING)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default(
                    PROP_LIGHTENING_CONTRAST,
                    DEFAULT_LIGHTENING_CONTRAST,
                )
                .nick("Lightening contrast")
                .blurb("Shape of the lightening curve: low (flatter), normal, high (S-curve)")
                .mutable_playing()
                .build(),
                glib::ParamSpecDouble::builder(PROP_REDNESS)
                    .nick("Redness")
                    .blurb("Rosier skin: shifts skin chroma toward red, 0 = off, 1 = strongest")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_REDNESS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder(PROP_SHARPNESS)
                    .nick("Sharpness")
                    .blurb(
                        "Unsharp masking of what is not skin (eyes, hair, clothes, background), \
                         0 = off, 1 = strongest",
                    )
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_SHARPNESS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder(PROP_SKIN_MASK)
                    .nick("Skin mask")
                    .blurb(
                        "Restrict smoothing and redness to skin (YCbCr skin model) and \
                         sharpening to the rest; when false they act on the whole picture",
                    )
                    .default_value(DEFAULT_SKIN_MASK)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder(PROP_FRAMES_PROCESSED)
                    .nick("Frames processed")
                    .blurb("Frames the filter has modified (passthrough frames are not counted)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        {
            let mut settings = lock(&self.settings);
            // The GValue type is checked by GObject against the pspec before we get here.
            match pspec.name() {
                PROP_SMOOTHNESS => settings.smoothness = value.get().unwrap_or(DEFAULT_SMOOTHNESS),
                PROP_LIGHTENING => settings.lightening = value.get().unwrap_or(DEFAULT_LIGHTENING),
                PROP_LIGHTENING_CONTRAST => {
                    settings.lightening_contrast =
                        value.get().unwrap_or(DEFAULT_LIGHTENING_CONTRAST)
                }
                PROP_REDNESS => settings.redness = value.get().unwrap_or(DEFAULT_REDNESS),
                PROP_SHARPNESS => settings.sharpness = value.get().unwrap_or(DEFAULT_SHARPNESS),
                PROP_SKIN_MASK => settings.skin_mask = value.get().unwrap_or(DEFAULT_SKIN_MASK),
                other => {
                    gst::warning!(CAT, imp = self, "unknown property {other}");
                    return;
                }
            }
            gst::debug!(CAT, imp = self, "{} = {:?}", pspec.name(), value);
        }
        self.update_passthrough();
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == PROP_FRAMES_PROCESSED {
            return self.frames_processed.load(Ordering::Relaxed).to_value();
        }
        let settings = lock(&self.settings);
        match pspec.name() {
            PROP_SMOOTHNESS => settings.smoothness.to_value(),
            PROP_LIGHTENING => settings.lightening.to_value(),
            PROP_LIGHTENING_CONTRAST => settings.lightening_contrast.to_value(),
            PROP_REDNESS => settings.redness.to_value(),
            PROP_SHARPNESS => settings.sharpness.to_value(),
            PROP_SKIN_MASK => settings.skin_mask.to_value(),
            // GObject only asks for properties we installed.
            _ => pspec.default_value().clone(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.update_passthrough();
    }
}

impl GstObjectImpl for BeautyFilter {}

impl ElementImpl for BeautyFilter {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "showmix beauty filter",
                "Filter/Effect/Video",
                "Skin smoothing (guided filter through a YCbCr skin mask), lightening tone \
                 curve, redness and sharpening, in place on I420/YV12/NV12/NV21",
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

impl BaseTransformImpl for BeautyFilter {
    const MODE: BaseTransformMode = BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    // In passthrough (all levels 0) do not even map the buffer.
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.frames_processed.store(0, Ordering::Relaxed);
        self.update_passthrough();
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }
}

impl VideoFilterImpl for BeautyFilter {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        let format = in_info.format();
        if !FORMATS.contains(&format) {
            return Err(gst::loggable_error!(CAT, "unsupported format {format:?}"));
        }
        let (w, h) = (in_info.width() as usize, in_info.height() as usize);
        {
            let mut state = lock(&self.state);
            // Scratch memory is sized here, on caps changes only, never per frame.
            let keep = state
                .as_ref()
                .is_some_and(|s| s.beauty.width() == w && s.beauty.height() == h);
            if keep {
                if let Some(s) = state.as_mut() {
                    s.format = format;
                }
            } else {
                let beauty = algo::Beauty::new(w, h);
                gst::info!(CAT, imp = self, "configured {format:?} {w}x{h}: {beauty:?}");
                *state = Some(State { format, beauty });
            }
        }
        self.update_passthrough();
        self.parent_set_info(incaps, in_info, outcaps, out_info)
    }

    fn transform_frame_ip(
        &self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let levels = lock(&self.settings).levels();
        if levels.is_identity() {
            return Ok(gst::FlowSuccess::Ok);
        }
        let mut state = lock(&self.state);
        let Some(state) = state.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["No caps set"]);
            return Err(gst::FlowError::NotNegotiated);
        };
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        if state.beauty.width() != w || state.beauty.height() != h || state.format != frame.format()
        {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                [
                    "Frame {:?} {w}x{h} does not match the negotiated {:?} {}x{}",
                    frame.format(),
                    state.format,
                    state.beauty.width(),
                    state.beauty.height()
                ]
            );
            return Err(gst::FlowError::NotNegotiated);
        }
        // Copied so the planes can be borrowed mutably below.
        let strides: [i32; 4] =
            std::array::from_fn(|i| frame.plane_stride().get(i).copied().unwrap_or(0));
        let stride = |i: usize| -> Result<usize, gst::FlowError> {
            strides
                .get(i)
                .and_then(|&s| usize::try_from(s).ok())
                .ok_or_else(|| {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        ["Unusable stride for plane {i}: {strides:?}"]
                    );
                    gst::FlowError::Error
                })
        };
        let format = state.format;
        let planar = matches!(
            format,
            gst_video::VideoFormat::I420 | gst_video::VideoFormat::Yv12
        );
        let (s0, s1, s2) = (stride(0)?, stride(1)?, if planar { stride(2)? } else { 0 });
        let [p0, p1, p2, _] = frame.planes_data_mut();
        let planes = match format {
            gst_video::VideoFormat::I420 | gst_video::VideoFormat::Yv12 => {
                let (u, u_stride, v, v_stride) = if format == gst_video::VideoFormat::I420 {
                    (p1, s1, p2, s2)
                } else {
                    (p2, s2, p1, s1)
                };
                Planes {
                    y: p0,
                    y_stride: s0,
                    chroma: Chroma::Planar {
                        u,
                        u_stride,
                        v,
                        v_stride,
                    },
                }
            }
            _ => Planes {
                y: p0,
                y_stride: s0,
                chroma: Chroma::Interleaved {
                    uv: p1,
                    stride: s1,
                    v_first: format == gst_video::VideoFormat::Nv21,
                },
            },
        };
        state.beauty.process(planes, &levels).map_err(|err| {
            gst::element_imp_error!(self, gst::StreamError::Format, ["{err}"]);
            gst::FlowError::Error
        })?;
        self.frames_processed.fetch_add(1, Ordering::Relaxed);
        Ok(gst::FlowSuccess::Ok)
    }
}
