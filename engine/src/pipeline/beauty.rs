//! The end of every seat's video chain: convert to I420, scale down to the size the seat's
//! tile needs, then the beauty filter, then the queue into the compositor.
//!
//! ```text
//! decoded video ─ videoconvert ─ showmixscale ─ capsfilter "prescale" ─ showmixbeauty ─ queue ─▶
//! ```
//!
//! Every downscale happens here, in `showmixscale` (SIMD, Catmull-Rom/Lanczos), so the
//! compositor only crops and places: its own converter scales with GStreamer's scalar
//! N-tap code, which cost a 720p seat in a 2×2 grid about 2 ms a frame. Beauty then runs where
//! it costs least for the picture the viewer sees: on the seat's picture at its tile size (a
//! 720p camera in a 2×2 grid is filtered at 640×360); with beauty off the filter passes
//! buffers through untouched. Seats smaller than their tile are left alone (the compositor
//! upscales them). The compositor places whatever size arrives, so a prescale change
//! mid-stream never moves a tile.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use gst::prelude::*;

use super::{make, queue};
use crate::geometry::{self, Fit};
use crate::presets::Beauty;

/// How long a seat's tile must stay put before its prescaler takes the new size (see
/// `set_tile`).
const RESIZE_AFTER_SWITCH: gst::ClockTime = gst::ClockTime::from_mseconds(200);

/// What the prescaler aims at, kept per seat across publishers.
#[derive(Default)]
struct Target {
    input: Option<(u32, u32)>,
    tile: Option<(Fit, u32, u32)>,
    /// Bumped by every tile change: a deferred resize applies only if it is still the latest.
    generation: u64,
}

/// The current chain's prescale capsfilter and beauty element.
type Elements = Option<(gst::Element, gst::Element)>;

/// The live-adjustable part of a seat's video chain.
#[derive(Clone, Default)]
pub struct SeatFilter {
    inner: Arc<Mutex<(Target, Elements)>>,
}

impl SeatFilter {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Target, Elements)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Builds the chain into `bin`; returns (first element, queue). The filter takes over
    /// (a reconnecting publisher gets a new chain with the same settings).
    pub fn build(&self, bin: &gst::Bin, beauty: &Beauty) -> Result<(gst::Element, gst::Element)> {
        let convert = make("videoconvert", Some("prescale-convert"))?;
        let scale = make("showmixscale", Some("prescale-scale"))?;
        let caps = make("capsfilter", Some("prescale"))?;
        let filter = make("showmixbeauty", Some("beauty"))?;
        let q = queue(Some("vqueue"), gst::ClockTime::from_mseconds(500))?;
        bin.add_many([&convert, &scale, &caps, &filter, &q])?;
        gst::Element::link_many([&convert, &scale, &caps, &filter, &q])?;
        apply_beauty(&filter, beauty);
        // Learn the input size from the caps arriving at the converter.
        let this = self.clone();
        if let Some(sink) = convert.static_pad("sink") {
            sink.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                if let Some(ev) = info.event()
                    && let gst::EventView::Caps(c) = ev.view()
                    && let Ok(vi) = gst_video::VideoInfo::from_caps(c.caps())
                {
                    this.set_input(vi.width(), vi.height());
                }
                gst::PadProbeReturn::Ok
            });
        }
        {
            let mut g = self.lock();
            g.1 = Some((caps.clone(), filter.clone()));
        }
        self.apply();
        Ok((convert, q))
    }

    fn set_input(&self, w: u32, h: u32) {
        let changed = {
            let mut g = self.lock();
            let changed = g.0.input != Some((w, h));
            g.0.input = Some((w, h));
            changed
        };
        if changed {
            self.apply();
        }
    }

    /// The seat's tile on the current layout (or none: off-screen).
    ///
    /// A seat's first placement applies at once. After that (a layout switch, a seat moving)
    /// the new size is applied once the tile has stayed the same for `RESIZE_AFTER_SWITCH`.
    /// Applied at once, the seats' renegotiation held the switch's own frame back (measured:
    /// switch-to-mixed median 52 ms instead of 16; the seat's first frame of the new size
    /// comes late and the live compositor waits for it up to its latency). Deferred, the
    /// compositor first scales the frames of the old size into the new tile, so the switch
    /// shows on its frame, and the seat's size change lands later where a late input costs
    /// nothing visible; while switches keep coming faster than that, it waits for the last.
    pub fn set_tile(&self, tile: Option<(Fit, u32, u32)>) {
        let (first, generation) = {
            let mut g = self.lock();
            let first = g.0.tile.is_none();
            g.0.tile = tile;
            g.0.generation += 1;
            (first, g.0.generation)
        };
        if first {
            self.apply();
            return;
        }
        let clock = gst::SystemClock::obtain();
        let id = clock.new_single_shot_id(clock.time() + RESIZE_AFTER_SWITCH);
        let this = self.clone();
        let scheduled = id.wait_async(move |_, _, _| {
            if this.lock().0.generation == generation {
                this.apply();
            }
        });
        if scheduled.is_err() {
            self.apply();
        }
    }

    /// New beauty levels, applied on the next frame.
    pub fn set_beauty(&self, beauty: &Beauty) {
        let filter = {
            let g = self.lock();
            g.1.as_ref().map(|(_, f)| f.clone())
        };
        if let Some(f) = filter {
            apply_beauty(&f, beauty);
        }
    }

    fn apply(&self) {
        let (caps_el, caps) = {
            let g = self.lock();
            let Some((caps_el, _)) = &g.1 else {
                return;
            };
            // The canvas's colour description, whatever the size: without it a seat scaled
            // below 720 lines is taken as BT.601 by the compositor, which then converts its
            // matrix on every frame (wrong colours, and a conversion pass per tile).
            let mut b = gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("colorimetry", super::CANVAS_COLORIMETRY)
                .field("chroma-site", super::CANVAS_CHROMA_SITE);
            if let (Some((iw, ih)), Some((fit, tw, th))) = (g.0.input, g.0.tile) {
                let (w, h) = geometry::prescale_size(fit, tw, th, iw, ih);
                if (w, h) != (iw, ih) {
                    b = b.field("width", w as i32).field("height", h as i32);
                }
            }
            (caps_el.clone(), b.build())
        };
        let current = caps_el.property::<Option<gst::Caps>>("caps");
        if current.as_ref() != Some(&caps) {
            caps_el.set_property("caps", &caps);
        }
    }
}

/// Sets the beauty filter's levels from a preset.
pub fn apply_beauty(filter: &gst::Element, b: &Beauty) {
    filter.set_property("smoothness", b.smoothness);
    filter.set_property("lightening", b.lightening);
    filter.set_property_from_str("lightening-contrast", b.lightening_contrast.as_str());
    filter.set_property("redness", b.redness);
    filter.set_property("sharpness", b.sharpness);
    filter.set_property("skin-mask", b.skin_mask);
}
