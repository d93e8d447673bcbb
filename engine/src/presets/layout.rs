//! Layouts: where each slot of a room sits on the canvas, in normalised coordinates.
//!
//! A layout is a list of slots (slot 0 is the host) plus a background colour. A layout may
//! carry a `portrait` variant used on canvases taller than wide; presets like `pk` need one
//! because two full-height halves of a 9:16 canvas are unwatchable strips.

use serde::{Deserialize, Serialize};

use super::validate::{Checker, Invalid};
use crate::geometry::{self, Fit, Rect};

/// Most slots a layout may have (grids up to 4×4).
pub const MAX_SLOTS: usize = 16;

/// One tile of a layout, normalised to the canvas (0..1 on both axes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// Stacking order: higher draws on top.
    #[serde(default)]
    pub z: u32,
    /// Opacity 0..1.
    #[serde(default = "one")]
    pub alpha: f64,
    #[serde(default)]
    pub fit: Fit,
}

fn one() -> f64 {
    1.0
}

/// An RGB colour written `#rrggbb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Colour {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

impl Colour {
    pub const BLACK: Colour = Colour { r: 0, g: 0, b: 0 };

    pub fn parse(s: &str) -> Option<Colour> {
        let hex = s.strip_prefix('#')?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let v = u32::from_str_radix(hex, 16).ok()?;
        Some(Colour {
            r: (v >> 16) as u8,
            g: (v >> 8) as u8,
            b: v as u8,
        })
    }

    /// 0xAARRGGBB, opaque, as GStreamer's test source takes it.
    pub fn argb(&self) -> u32 {
        0xff00_0000 | (u32::from(self.r) << 16) | (u32::from(self.g) << 8) | u32::from(self.b)
    }
}

impl std::fmt::Display for Colour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }
}

impl Serialize for Colour {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Colour {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Colour::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "background {s:?} is not a colour (allowed: \"#rrggbb\", e.g. \"#101018\")"
            ))
        })
    }
}

/// Slots used on portrait canvases, when they differ from the landscape ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub slots: Vec<Slot>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Filled from the file name for presets; free for inline layouts.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "black")]
    pub background: Colour,
    pub slots: Vec<Slot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portrait: Option<Variant>,
}

fn black() -> Colour {
    Colour::BLACK
}

/// A slot resolved onto a concrete canvas.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tile {
    pub rect: Rect,
    pub z: u32,
    pub alpha: f64,
    pub fit: Fit,
}

impl Layout {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::new();
        check_slots(&mut c, "slots", &self.slots);
        if let Some(p) = &self.portrait {
            check_slots(&mut c, "portrait.slots", &p.slots);
            if p.slots.len() != self.slots.len() {
                c.fail(
                    "portrait.slots",
                    format!(
                        "has {} slots but slots has {} (a portrait variant must have the same slots)",
                        p.slots.len(),
                        self.slots.len()
                    ),
                );
            }
        }
        c.finish()
    }

    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The slots to use on a canvas of this shape.
    pub fn slots_for(&self, canvas_w: u32, canvas_h: u32) -> &[Slot] {
        match &self.portrait {
            Some(p) if canvas_h > canvas_w => &p.slots,
            _ => &self.slots,
        }
    }

    /// Every slot as a pixel tile on the given canvas, in slot order.
    pub fn tiles(&self, canvas_w: u32, canvas_h: u32) -> Vec<Tile> {
        self.slots_for(canvas_w, canvas_h)
            .iter()
            .map(|s| Tile {
                rect: geometry::tile_rect(s.x, s.y, s.w, s.h, canvas_w, canvas_h),
                z: s.z,
                alpha: s.alpha,
                fit: s.fit,
            })
            .collect()
    }
}

fn check_slots(c: &mut Checker, field: &str, slots: &[Slot]) {
    if slots.is_empty() || slots.len() > MAX_SLOTS {
        c.fail(
            field,
            format!(
                "has {} slots (allowed 1..={MAX_SLOTS}; slot 0 is the host)",
                slots.len()
            ),
        );
    }
    for (i, s) in slots.iter().enumerate() {
        let f = |name: &str| format!("{field}[{i}].{name}");
        c.range_f64(f("x"), s.x, 0.0, 1.0);
        c.range_f64(f("y"), s.y, 0.0, 1.0);
        if !(s.w.is_finite() && s.w > 0.0 && s.x + s.w <= 1.0 + 1e-9) {
            c.fail(
                f("w"),
                format!("{} is out of range (allowed 0 < w and x + w <= 1)", s.w),
            );
        }
        if !(s.h.is_finite() && s.h > 0.0 && s.y + s.h <= 1.0 + 1e-9) {
            c.fail(
                f("h"),
                format!("{} is out of range (allowed 0 < h and y + h <= 1)", s.h),
            );
        }
        c.range_u32(f("z"), s.z, 0, 1000);
        c.range_f64(f("alpha"), s.alpha, 0.0, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(x: f64, y: f64, w: f64, h: f64) -> Slot {
        Slot {
            x,
            y,
            w,
            h,
            z: 0,
            alpha: 1.0,
            fit: Fit::Cover,
        }
    }

    #[test]
    fn colour_round_trip() {
        let c = Colour::parse("#10a0ff").unwrap();
        assert_eq!((c.r, c.g, c.b), (0x10, 0xa0, 0xff));
        assert_eq!(c.to_string(), "#10a0ff");
        assert_eq!(c.argb(), 0xff10a0ff);
        assert!(Colour::parse("10a0ff").is_none());
        assert!(Colour::parse("#10a0f").is_none());
        assert!(Colour::parse("#10a0fg").is_none());
    }

    #[test]
    fn rejects_out_of_canvas_slot() {
        let l = Layout {
            name: "x".into(),
            description: String::new(),
            background: Colour::BLACK,
            slots: vec![slot(0.6, 0.0, 0.5, 1.0), slot(0.0, -0.1, 0.5, 0.5)],
            portrait: None,
        };
        let e = l.validate().unwrap_err().to_string();
        assert!(e.contains("slots[0].w: 0.5 is out of range"), "{e}");
        assert!(e.contains("slots[1].y: -0.1 is out of range"), "{e}");
    }

    #[test]
    fn rejects_empty_and_mismatched_portrait() {
        let l = Layout {
            name: "x".into(),
            description: String::new(),
            background: Colour::BLACK,
            slots: vec![slot(0.0, 0.0, 1.0, 1.0)],
            portrait: Some(Variant { slots: vec![] }),
        };
        let e = l.validate().unwrap_err().to_string();
        assert!(e.contains("portrait.slots: has 0 slots"), "{e}");
    }

    #[test]
    fn unknown_field_is_an_error() {
        let r: Result<Layout, _> = toml::from_str(
            "slots = [{ x = 0.0, y = 0.0, w = 1.0, h = 1.0, width = 3 }]\nbackground = \"#000000\"",
        );
        let e = r.unwrap_err().to_string();
        assert!(e.contains("unknown field `width`"), "{e}");
    }
}
