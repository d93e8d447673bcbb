//! Layout math: normalised slot rectangles to even pixel rectangles on a canvas, and the
//! crop (`cover`) or letterbox (`contain`) placement of an input picture inside a tile.
//!
//! No GStreamer types here: the compositor glue in `pipeline::mixer` turns these rectangles
//! into pad properties. Every rectangle is even-aligned so that 4:2:0 chroma planes line up
//! and adjacent tiles share their edges exactly (no seams, no overlaps).

use serde::{Deserialize, Serialize};

/// A rectangle in pixels. `x`/`y` may be negative only for input crops, never for tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

impl Rect {
    pub const fn new(x: i32, y: i32, w: i32, h: i32) -> Self {
        Self { x, y, w, h }
    }

    /// Centre point, for tests and snapshots.
    pub fn centre(&self) -> (i32, i32) {
        (self.x + self.w / 2, self.y + self.h / 2)
    }

    pub fn is_empty(&self) -> bool {
        self.w <= 0 || self.h <= 0
    }
}

/// How an input picture fills its tile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Scale to fill the tile and crop what overflows (centre crop).
    #[default]
    Cover,
    /// Scale to fit inside the tile; the rest of the tile shows the background.
    Contain,
}

/// Where an input goes on the canvas: the part of the input to use (`src`, in input pixels)
/// and where it lands (`dst`, in canvas pixels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub src: Rect,
    pub dst: Rect,
}

/// Rounds to the nearest even integer (ties away from zero).
fn round_even(v: f64) -> i32 {
    ((v / 2.0).round() * 2.0) as i32
}

/// Maps a normalised rectangle (0..1 on both axes) onto a canvas, snapping both edges to even
/// pixels. Snapping the edges rather than the size is what makes neighbouring tiles meet
/// exactly: `pk` on 1280 wide gives 0..640 and 640..1280.
pub fn tile_rect(x: f64, y: f64, w: f64, h: f64, canvas_w: u32, canvas_h: u32) -> Rect {
    let (cw, ch) = (f64::from(canvas_w), f64::from(canvas_h));
    let x0 = round_even(x * cw).clamp(0, canvas_w as i32);
    let y0 = round_even(y * ch).clamp(0, canvas_h as i32);
    let x1 = round_even((x + w) * cw).clamp(x0, canvas_w as i32);
    let y1 = round_even((y + h) * ch).clamp(y0, canvas_h as i32);
    Rect::new(x0, y0, x1 - x0, y1 - y0)
}

/// Places an input of `in_w`×`in_h` pixels with pixel aspect ratio `par` (n/d) in `tile`.
///
/// `cover` keeps the whole tile and crops the input around its centre; `contain` keeps the
/// whole input and centres it in the tile. Crop offsets are even so chroma stays aligned.
/// Returns `None` for an empty tile or input.
pub fn place(fit: Fit, tile: Rect, in_w: u32, in_h: u32, par: (u32, u32)) -> Option<Placement> {
    if tile.is_empty() || in_w == 0 || in_h == 0 || par.0 == 0 || par.1 == 0 {
        return None;
    }
    let (iw, ih) = (f64::from(in_w), f64::from(in_h));
    // Display width of the input, so anamorphic inputs keep their shape.
    let disp_w = iw * f64::from(par.0) / f64::from(par.1);
    let (tw, th) = (f64::from(tile.w), f64::from(tile.h));
    let input_aspect = disp_w / ih;
    let tile_aspect = tw / th;
    match fit {
        Fit::Cover => {
            let full = Rect::new(0, 0, in_w as i32, in_h as i32);
            let src = if input_aspect > tile_aspect {
                // Input is wider: keep full height, crop the sides.
                let keep_disp_w = ih * tile_aspect;
                let keep_w = (keep_disp_w * f64::from(par.1) / f64::from(par.0)).min(iw);
                let w = round_even(keep_w).clamp(2.min(in_w as i32), in_w as i32);
                let x = round_even((iw - f64::from(w)) / 2.0).clamp(0, in_w as i32 - w);
                Rect::new(x, 0, w, in_h as i32)
            } else if input_aspect < tile_aspect {
                // Input is taller: keep full width, crop top and bottom.
                let keep_h = (disp_w / tile_aspect).min(ih);
                let h = round_even(keep_h).clamp(2.min(in_h as i32), in_h as i32);
                let y = round_even((ih - f64::from(h)) / 2.0).clamp(0, in_h as i32 - h);
                Rect::new(0, y, in_w as i32, h)
            } else {
                full
            };
            Some(Placement { src, dst: tile })
        }
        Fit::Contain => {
            let scale = (tw / disp_w).min(th / ih);
            let w = round_even(disp_w * scale).clamp(2.min(tile.w), tile.w);
            let h = round_even(ih * scale).clamp(2.min(tile.h), tile.h);
            let x = tile.x + round_even(f64::from(tile.w - w) / 2.0);
            let y = tile.y + round_even(f64::from(tile.h - h) / 2.0);
            Some(Placement {
                src: Rect::new(0, 0, in_w as i32, in_h as i32),
                dst: Rect::new(x, y, w, h),
            })
        }
    }
}

/// The size to scale an input to before it reaches its tile: just big enough for the tile
/// (covering it for `cover`, fitting in it for `contain`), with the input's shape, even, and
/// never larger than the input. Work done on the picture before mixing (the beauty filter)
/// is then done on the pixels the viewer sees, not on the camera's.
pub fn prescale_size(fit: Fit, tile_w: u32, tile_h: u32, in_w: u32, in_h: u32) -> (u32, u32) {
    if tile_w == 0 || tile_h == 0 || in_w == 0 || in_h == 0 {
        return (in_w, in_h);
    }
    let sx = f64::from(tile_w) / f64::from(in_w);
    let sy = f64::from(tile_h) / f64::from(in_h);
    let s = match fit {
        Fit::Cover => sx.max(sy),
        Fit::Contain => sx.min(sy),
    }
    .min(1.0);
    let w = (round_even(f64::from(in_w) * s).max(2) as u32).min(in_w);
    let h = (round_even(f64::from(in_h) * s).max(2) as u32).min(in_h);
    (w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_meet_exactly() {
        let l = tile_rect(0.0, 0.0, 0.5, 1.0, 1280, 720);
        let r = tile_rect(0.5, 0.0, 0.5, 1.0, 1280, 720);
        assert_eq!(l, Rect::new(0, 0, 640, 720));
        assert_eq!(r, Rect::new(640, 0, 640, 720));
    }

    #[test]
    fn thirds_are_even_and_cover_the_canvas() {
        // 3x3 on 1280x720: edges at 1280/3 = 426.67 → 426, 853.33 → 854.
        let xs: Vec<Rect> = (0..3)
            .map(|i| tile_rect(f64::from(i) / 3.0, 0.0, 1.0 / 3.0, 1.0 / 3.0, 1280, 720))
            .collect();
        assert_eq!(xs[0].x, 0);
        assert_eq!(xs[0].x + xs[0].w, xs[1].x);
        assert_eq!(xs[1].x + xs[1].w, xs[2].x);
        assert_eq!(xs[2].x + xs[2].w, 1280);
        for r in &xs {
            assert_eq!(r.x % 2, 0);
            assert_eq!(r.w % 2, 0);
            assert_eq!(r.h % 2, 0);
        }
    }

    #[test]
    fn odd_canvas_edges_clamp_inside() {
        let r = tile_rect(0.0, 0.0, 1.0, 1.0, 1279, 719);
        assert!(r.x + r.w <= 1279 && r.y + r.h <= 719);
    }

    #[test]
    fn cover_crops_sides_of_wide_input() {
        let tile = Rect::new(640, 0, 640, 720);
        let p = place(Fit::Cover, tile, 1280, 720, (1, 1)).unwrap();
        assert_eq!(p.src, Rect::new(320, 0, 640, 720));
        assert_eq!(p.dst, tile);
    }

    #[test]
    fn cover_crops_top_and_bottom_of_tall_input() {
        let tile = Rect::new(0, 0, 1280, 720);
        let p = place(Fit::Cover, tile, 720, 1280, (1, 1)).unwrap();
        // 720 wide at 16:9 keeps 405 rows → 406 even; centred.
        assert_eq!(p.src.w, 720);
        assert_eq!(p.src.h, 406);
        assert_eq!(p.src.y, 438);
    }

    #[test]
    fn contain_letterboxes_inside_tile() {
        let tile = Rect::new(0, 0, 640, 720);
        let p = place(Fit::Contain, tile, 1280, 720, (1, 1)).unwrap();
        assert_eq!(p.src, Rect::new(0, 0, 1280, 720));
        assert_eq!(p.dst, Rect::new(0, 180, 640, 360));
    }

    #[test]
    fn contain_pillarboxes_tall_input() {
        let tile = Rect::new(0, 0, 1280, 720);
        let p = place(Fit::Contain, tile, 720, 1280, (1, 1)).unwrap();
        assert_eq!(p.dst.h, 720);
        assert_eq!(p.dst.w, 406); // 720 * 9/16 = 405 → 406 even
        assert_eq!(p.dst.x, 438);
    }

    #[test]
    fn same_aspect_needs_no_crop() {
        let tile = Rect::new(0, 0, 640, 360);
        let p = place(Fit::Cover, tile, 1920, 1080, (1, 1)).unwrap();
        assert_eq!(p.src, Rect::new(0, 0, 1920, 1080));
    }

    #[test]
    fn anamorphic_input_uses_display_aspect() {
        // 1440x1080 with PAR 4/3 displays as 1920x1080 (16:9): no crop in a 16:9 tile.
        let tile = Rect::new(0, 0, 1280, 720);
        let p = place(Fit::Cover, tile, 1440, 1080, (4, 3)).unwrap();
        assert_eq!(p.src, Rect::new(0, 0, 1440, 1080));
    }

    #[test]
    fn prescale_sizes() {
        // A 720p camera in a 640x360 grid tile: a quarter of the pixels.
        assert_eq!(prescale_size(Fit::Cover, 640, 360, 1280, 720), (640, 360));
        // In a pk half (640x720), cover needs the full height: no reduction.
        assert_eq!(prescale_size(Fit::Cover, 640, 720, 1280, 720), (1280, 720));
        // Contain in the same half: fit the width.
        assert_eq!(prescale_size(Fit::Contain, 640, 720, 1280, 720), (640, 360));
        // Never upscale.
        assert_eq!(prescale_size(Fit::Cover, 1920, 1080, 640, 360), (640, 360));
        // A portrait phone in a small landscape co-host tile keeps its shape.
        assert_eq!(prescale_size(Fit::Cover, 320, 180, 720, 1280), (320, 568));
    }

    #[test]
    fn degenerate_inputs_give_none() {
        let tile = Rect::new(0, 0, 0, 720);
        assert!(place(Fit::Cover, tile, 1280, 720, (1, 1)).is_none());
        let tile = Rect::new(0, 0, 640, 720);
        assert!(place(Fit::Cover, tile, 0, 720, (1, 1)).is_none());
        assert!(place(Fit::Contain, tile, 1280, 720, (0, 1)).is_none());
    }

    #[test]
    fn tiny_inputs_stay_valid() {
        let tile = Rect::new(0, 0, 640, 720);
        let p = place(Fit::Cover, tile, 2, 2, (1, 1)).unwrap();
        assert!(p.src.w >= 1 && p.src.h >= 1);
        assert!(p.src.x >= 0 && p.src.x + p.src.w <= 2);
    }
}
