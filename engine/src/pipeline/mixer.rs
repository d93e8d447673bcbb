//! The layout applier: puts every seat's compositor pad where the current layout says, once
//! per output frame, from the compositor's own `samples-selected` signal.
//!
//! That signal fires in the aggregating thread after the input frames for an output frame are
//! chosen and before any of them is converted, so every change made here (a new layout, a seat
//! moved to another slot, a seat losing its picture) lands on exactly one output frame for all
//! seats at once: no half-switched frames, no restart, no dropped frames.
//!
//! Crop for `cover` uses the compositor pad's `converter-config` (GstVideoConverter's
//! `src-x/src-y/src-width/src-height`), so a seat is cropped and scaled in a single pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst_base::prelude::*;

use crate::geometry::{self, Fit, Rect};
use crate::presets::layout::{Layout, Tile};

/// What the applier last set on a pad, to skip property writes that change nothing (a new
/// `converter-config` makes the compositor rebuild its converter).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Applied {
    dst: Rect,
    src: Rect,
    in_size: (i32, i32),
    alpha: f64,
    zorder: u32,
}

const HIDDEN: Applied = Applied {
    dst: Rect::new(0, 0, 0, 0),
    src: Rect::new(0, 0, 0, 0),
    in_size: (0, 0),
    alpha: 0.0,
    zorder: 0,
};

/// A seat as the applier sees it.
struct SeatPads {
    slot: Option<usize>,
    pad: gst::Pad,
    /// Compositor pad of the seat's placeholder image, when it has one.
    placeholder: Option<gst::Pad>,
    applied: Option<Applied>,
    placeholder_applied: Option<Applied>,
    /// Set by the room when the seat's input is known to be gone (stalled, failed).
    force_placeholder: bool,
}

/// What the room can read back about layout switches.
#[derive(Clone, Copy, Debug, Default)]
pub struct SwitchRecord {
    /// Generation of the layout (1 for the layout the room started with).
    pub generation: u64,
    /// PTS of the first output frame with this layout.
    pub pts: Option<gst::ClockTime>,
    /// From `set_layout` to that frame being mixed.
    pub latency: Option<Duration>,
    /// From `set_layout` to that frame leaving the top rung's encoder.
    pub output_latency: Option<Duration>,
    /// When the frame was mixed and when it left the encoder (for benchmarks that measure
    /// from an API response rather than from the call).
    pub mixed_at: Option<Instant>,
    pub encoded_at: Option<Instant>,
}

struct State {
    canvas: (u32, u32),
    layout: Layout,
    tiles: Vec<Tile>,
    seats: HashMap<String, SeatPads>,
    generation: u64,
    applied_generation: u64,
    requested_at: Option<Instant>,
    switches: Vec<SwitchRecord>,
    frames: u64,
    /// The full-canvas background pad and the solid-colour source feeding it.
    background: Option<(gst::Pad, gst::Element)>,
    requested_at_for_output: Option<Instant>,
    /// PTS of the last switch's first frame, until it leaves the encoder.
    pending_output: Option<(gst::ClockTime, Option<Instant>)>,
}

/// Shared handle to the applier; cheap to clone.
#[derive(Clone)]
pub struct LayoutControl {
    state: Arc<Mutex<State>>,
}

/// How many switch records to keep (for stats and tests).
const SWITCH_HISTORY: usize = 256;

impl LayoutControl {
    pub fn new(canvas: (u32, u32), layout: Layout) -> Self {
        let tiles = layout.tiles(canvas.0, canvas.1);
        Self {
            state: Arc::new(Mutex::new(State {
                canvas,
                layout,
                tiles,
                seats: HashMap::new(),
                generation: 1,
                applied_generation: 0,
                requested_at: Some(Instant::now()),
                switches: Vec::new(),
                frames: 0,
                background: None,
                requested_at_for_output: None,
                pending_output: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hooks the applier to a compositor. Call once, before the pipeline runs.
    pub fn attach(&self, compositor: &gst::Element) {
        compositor.set_property("emit-signals", true);
        let this = self.clone();
        let agg = compositor
            .clone()
            .downcast::<gst_base::Aggregator>()
            .expect("compositor is an aggregator");
        agg.connect_samples_selected(move |_agg, _segment, pts, _dts, _dur, _info| {
            this.apply(pts);
        });
    }

    /// Replaces the layout; takes effect on the next output frame. Returns its generation.
    pub fn set_layout(&self, layout: Layout) -> u64 {
        let mut s = self.lock();
        s.tiles = layout.tiles(s.canvas.0, s.canvas.1);
        s.layout = layout;
        s.generation += 1;
        s.requested_at = Some(Instant::now());
        s.generation
    }

    pub fn layout(&self) -> Layout {
        self.lock().layout.clone()
    }

    /// The pad under every tile, fed by a solid-colour source whose colour follows the layout.
    pub fn set_background(&self, pad: gst::Pad, source: gst::Element) {
        let mut s = self.lock();
        pad.set_property("xpos", 0i32);
        pad.set_property("ypos", 0i32);
        pad.set_property("width", s.canvas.0 as i32);
        pad.set_property("height", s.canvas.1 as i32);
        pad.set_property("zorder", 0u32);
        source.set_property("foreground-color", s.layout.background.argb());
        s.background = Some((pad, source));
    }

    pub fn add_seat(
        &self,
        id: &str,
        slot: Option<usize>,
        pad: gst::Pad,
        placeholder: Option<gst::Pad>,
    ) {
        // Hidden until the first frame places it.
        pad.set_property("alpha", 0.0f64);
        if let Some(p) = &placeholder {
            p.set_property("alpha", 0.0f64);
        }
        self.lock().seats.insert(
            id.to_owned(),
            SeatPads {
                slot,
                pad,
                placeholder,
                applied: None,
                placeholder_applied: None,
                force_placeholder: false,
            },
        );
    }

    /// Gives a seat a new placeholder pad (or none).
    pub fn set_placeholder(&self, id: &str, pad: Option<gst::Pad>) {
        if let Some(p) = &pad {
            p.set_property("alpha", 0.0f64);
        }
        if let Some(seat) = self.lock().seats.get_mut(id) {
            seat.placeholder = pad;
            seat.placeholder_applied = None;
        }
    }

    pub fn remove_seat(&self, id: &str) {
        self.lock().seats.remove(id);
    }

    pub fn set_slot(&self, id: &str, slot: Option<usize>) {
        if let Some(seat) = self.lock().seats.get_mut(id) {
            seat.slot = slot;
        }
    }

    /// Shows the placeholder instead of the seat's picture even if the compositor still holds
    /// a frame of it (used for stalled inputs once their hold time is over).
    pub fn set_force_placeholder(&self, id: &str, on: bool) {
        if let Some(seat) = self.lock().seats.get_mut(id) {
            seat.force_placeholder = on;
        }
    }

    /// Called with each encoded frame of the top rung: closes the last switch's output latency.
    pub fn on_encoded(&self, pts: gst::ClockTime) {
        let mut s = self.lock();
        if let Some((switch_pts, at)) = s.pending_output
            && pts >= switch_pts
        {
            s.pending_output = None;
            if let Some(last) = s.switches.last_mut() {
                last.encoded_at = Some(Instant::now());
                last.output_latency = at.map(|t| t.elapsed());
            }
        }
    }

    /// Layout switches so far, oldest first.
    pub fn switches(&self) -> Vec<SwitchRecord> {
        self.lock().switches.clone()
    }

    /// Output frames mixed so far.
    pub fn frames(&self) -> u64 {
        self.lock().frames
    }

    /// A seat's tile on the current layout, if the layout has its slot.
    pub fn seat_tile(&self, id: &str) -> Option<Tile> {
        let s = self.lock();
        let slot = s.seats.get(id)?.slot?;
        s.tiles.get(slot).copied()
    }

    /// The tile of each seat on the current layout (for snapshots and tests).
    pub fn seat_tiles(&self) -> HashMap<String, Rect> {
        let s = self.lock();
        s.seats
            .iter()
            .filter_map(|(id, seat)| Some((id.clone(), s.tiles.get(seat.slot?)?.rect)))
            .collect()
    }

    fn apply(&self, pts: Option<gst::ClockTime>) {
        let mut guard = self.lock();
        let s = &mut *guard;
        s.frames += 1;
        if s.applied_generation != s.generation {
            s.applied_generation = s.generation;
            s.requested_at_for_output = s.requested_at;
            let latency = s.requested_at.take().map(|t| t.elapsed());
            if s.switches.len() == SWITCH_HISTORY {
                s.switches.remove(0);
            }
            s.switches.push(SwitchRecord {
                generation: s.generation,
                pts,
                latency,
                output_latency: None,
                mixed_at: Some(Instant::now()),
                encoded_at: None,
            });
            s.pending_output = pts.map(|p| (p, s.requested_at_for_output.take()));
            if let Some((_, src)) = &s.background {
                src.set_property("foreground-color", s.layout.background.argb());
            }
        }
        for seat in s.seats.values_mut() {
            let tile = seat.slot.and_then(|i| s.tiles.get(i)).copied();
            let has_picture = !seat.force_placeholder && has_current_buffer(&seat.pad);
            let want = match tile {
                Some(t) if has_picture => placement(&seat.pad, &t, t.fit),
                _ => None,
            };
            seat.applied = Some(write(&seat.pad, seat.applied, want.unwrap_or(HIDDEN)));
            if let Some(ph) = &seat.placeholder {
                let want = match tile {
                    Some(t) if want.is_none() => placement(ph, &t, Fit::Cover),
                    _ => None,
                };
                seat.placeholder_applied =
                    Some(write(ph, seat.placeholder_applied, want.unwrap_or(HIDDEN)));
            }
        }
    }
}

/// Where a pad's current input goes in a tile, or `None` if its size is not known yet.
fn placement(pad: &gst::Pad, tile: &Tile, fit: Fit) -> Option<Applied> {
    let vpad = pad.downcast_ref::<gst_video::VideoAggregatorPad>()?;
    let info = gst_video::prelude::VideoAggregatorPadExtManual::video_info(vpad)?;
    let par = info.par();
    let par = (par.numer().max(1) as u32, par.denom().max(1) as u32);
    let p = geometry::place(fit, tile.rect, info.width(), info.height(), par)?;
    Some(Applied {
        dst: p.dst,
        src: p.src,
        in_size: (info.width() as i32, info.height() as i32),
        alpha: tile.alpha,
        // 0 is the background's.
        zorder: tile.z + 1,
    })
}

fn has_current_buffer(pad: &gst::Pad) -> bool {
    let Some(vpad) = pad.downcast_ref::<gst_video::VideoAggregatorPad>() else {
        return false;
    };
    // SAFETY: a plain getter on a live pad object; called from the aggregating thread, which is
    // the context the compositor documents for it (samples-selected).
    unsafe {
        use glib::translate::{ToGlibPtr, from_glib};
        from_glib(gst_video::ffi::gst_video_aggregator_pad_has_current_buffer(
            vpad.to_glib_none().0,
        ))
    }
}

/// Writes the properties that differ from what was last applied; returns the new state.
fn write(pad: &gst::Pad, last: Option<Applied>, want: Applied) -> Applied {
    if last == Some(want) {
        return want;
    }
    if want.alpha == 0.0 {
        // Hidden: only alpha matters, and the compositor skips the pad entirely.
        if last.is_none_or(|l| l.alpha != 0.0) {
            pad.set_property("alpha", 0.0f64);
        }
        return Applied {
            alpha: 0.0,
            ..last.unwrap_or(HIDDEN)
        };
    }
    let last = last.unwrap_or(HIDDEN);
    if last.src != want.src || last.in_size != want.in_size {
        let full = want.src == Rect::new(0, 0, want.in_size.0, want.in_size.1);
        // No crop: no config at all. The compositor converts every frame of a pad that has
        // one, even an empty one; without it a seat that arrives at its tile's size and the
        // canvas's colour (what the seat's prescaler delivers) is blended as it is.
        let cfg = (!full).then(|| {
            gst::Structure::builder("GstVideoConverter")
                .field("GstVideoConverter.src-x", want.src.x)
                .field("GstVideoConverter.src-y", want.src.y)
                .field("GstVideoConverter.src-width", want.src.w)
                .field("GstVideoConverter.src-height", want.src.h)
                .build()
        });
        pad.set_property("converter-config", cfg.as_ref());
    }
    if last.dst != want.dst {
        pad.set_property("xpos", want.dst.x);
        pad.set_property("ypos", want.dst.y);
        pad.set_property("width", want.dst.w);
        pad.set_property("height", want.dst.h);
    }
    if last.zorder != want.zorder {
        pad.set_property("zorder", want.zorder);
    }
    if last.alpha != want.alpha {
        pad.set_property("alpha", want.alpha);
    }
    want
}
