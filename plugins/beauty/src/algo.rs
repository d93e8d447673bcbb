//! Pixel math of the beauty filter, with no GStreamer types: it works on 8-bit 4:2:0 planes
//! (a luma plane plus planar or interleaved chroma) given as slices and strides, in place.
//!
//! Method, per frame:
//!
//! 1. **Analysis grid.** Luma is box-downsampled by a factor `s` (2, 4 or 8, picked from the
//!    frame size so the grid stays around 130..270 rows), keeping per cell the mean of `Y`
//!    and of `Y²` over its full-resolution pixels (so fine texture counts in the variance);
//!    chroma is downsampled to the same grid. Steps 2-3 run on that grid in `f32`.
//! 2. **Skin mask.** A soft skin likelihood from YCbCr: hue angle in the Cb/Cr plane, chroma
//!    saturation and a luma floor, each through a linear ramp; box-smoothed and re-stretched.
//! 3. **Guided filter** on luma (self-guided, He et al., "fast" variant on the grid): box
//!    means of `Y` and `Y²` give the local variance; `a = var² / (var² + eps²)` (a steeper
//!    edge test than the classic `var / (var + eps)`), `b = (1 - a)·mean`, both box-averaged
//!    again. Smoothing (weighted by the mask) and sharpening (weighted by its complement) are
//!    folded into one per-cell linear model `out = A·Y + B + G·detail(Y)`. Computed row by
//!    row with ring buffers so the working set stays in cache.
//! 4. **Full-resolution luma pass.** `A`, `B`, `G` are bilinearly upsampled row by row and
//!    applied to every pixel with a cored 4-neighbour detail term (unsharp masking) and the
//!    lightening tone curve (a cubic in normalised luma), in one branch-free loop per row.
//! 5. **Chroma pass** (redness): the mask is upsampled to chroma resolution; Cr is raised
//!    (and Cb lowered a little) in proportion to it.
//!
//! Memory traffic is one read of the luma plane for the analysis, one read/write for the
//! output and, with redness, one read/write of the chroma planes; the grid work is small.
//! All scratch memory is allocated in [`Beauty::new`]: [`Beauty::process`] never allocates.
//! The hot loops have hand-written AVX2 versions (module `x86`, picked at run time; the
//! luma kernel in 16-bit fixed point); the portable loops are the reference and the
//! fallback on other CPUs.

use std::fmt;

/// Contrast variant of the lightening tone curve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Contrast {
    /// Lifts shadows more than mid-tones: brighter and flatter.
    Low,
    /// Lifts mid-tones, keeps black and white points.
    #[default]
    Normal,
    /// Lifts mid-tones and adds an S-curve: brighter with more contrast.
    High,
}

/// User levels of the filter. Every level is clamped to 0..=1 (NaN counts as 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Levels {
    /// Edge-preserving skin smoothing.
    pub smoothness: f32,
    /// Brightening tone curve applied to the whole picture's luma.
    pub lightening: f32,
    /// Shape of the lightening curve.
    pub contrast: Contrast,
    /// Shift of skin chroma toward red.
    pub redness: f32,
    /// Unsharp masking of what is not skin.
    pub sharpness: f32,
    /// When true, smoothing and redness act on skin only and sharpening on the rest; when false
    /// every pixel counts as skin for smoothing and redness and sharpening acts everywhere.
    pub skin_mask: bool,
}

impl Default for Levels {
    fn default() -> Self {
        Self::OFF
    }
}

impl Levels {
    /// Every level at 0: the filter leaves frames untouched.
    pub const OFF: Levels = Levels {
        smoothness: 0.0,
        lightening: 0.0,
        contrast: Contrast::Normal,
        redness: 0.0,
        sharpness: 0.0,
        skin_mask: true,
    };

    /// The `showroom` preset of the engine (the levels the speed target is measured with).
    pub const SHOWROOM: Levels = Levels {
        smoothness: 0.6,
        lightening: 0.3,
        contrast: Contrast::Normal,
        redness: 0.2,
        sharpness: 0.3,
        skin_mask: true,
    };

    /// Levels clamped to 0..=1, NaN as 0.
    pub fn sanitized(&self) -> Levels {
        fn c(v: f32) -> f32 {
            if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) }
        }
        Levels {
            smoothness: c(self.smoothness),
            lightening: c(self.lightening),
            contrast: self.contrast,
            redness: c(self.redness),
            sharpness: c(self.sharpness),
            skin_mask: self.skin_mask,
        }
    }

    /// True when processing would not change a pixel (all levels 0).
    pub fn is_identity(&self) -> bool {
        let l = self.sanitized();
        l.smoothness == 0.0 && l.lightening == 0.0 && l.redness == 0.0 && l.sharpness == 0.0
    }
}

/// Chroma planes of a 4:2:0 frame.
pub enum Chroma<'a> {
    /// Separate Cb and Cr planes (I420; YV12 with the planes swapped by the caller).
    Planar {
        u: &'a mut [u8],
        u_stride: usize,
        v: &'a mut [u8],
        v_stride: usize,
    },
    /// One interleaved plane: CbCr (NV12) or CrCb when `v_first` (NV21).
    Interleaved {
        uv: &'a mut [u8],
        stride: usize,
        v_first: bool,
    },
}

/// The planes of one 4:2:0 8-bit frame, processed in place.
pub struct Planes<'a> {
    pub y: &'a mut [u8],
    pub y_stride: usize,
    pub chroma: Chroma<'a>,
}

/// A plane that cannot hold the frame the processor was configured for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaneError {
    pub plane: &'static str,
    pub stride: usize,
    pub len: usize,
    pub row_bytes: usize,
    pub rows: usize,
}

impl fmt::Display for PlaneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} plane too small: {} bytes with stride {} for {} rows of {} bytes",
            self.plane, self.len, self.stride, self.rows, self.row_bytes
        )
    }
}

impl std::error::Error for PlaneError {}

fn check_plane(
    plane: &'static str,
    len: usize,
    stride: usize,
    row_bytes: usize,
    rows: usize,
) -> Result<(), PlaneError> {
    let err = || PlaneError {
        plane,
        stride,
        len,
        row_bytes,
        rows,
    };
    if rows == 0 || row_bytes == 0 {
        return Ok(());
    }
    if stride < row_bytes {
        return Err(err());
    }
    let needed = (rows - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(row_bytes))
        .ok_or_else(err)?;
    if len < needed { Err(err()) } else { Ok(()) }
}

// Tuning constants. Luma codes are 8-bit limited range (16..235), chroma centred on 128.

/// Radius, in analysis cells, of the guided filter's box means (window 2r+1 cells).
const GUIDED_RADIUS: usize = 1;
/// Radius, in analysis cells, of the skin-mask smoothing.
const MASK_RADIUS: usize = 2;
/// Largest box radius in use (sizes the scratch row).
const MAX_RADIUS: usize = 2;
/// Guided-filter range parameter: `eps = (EPS_SIGMA_BASE + EPS_SIGMA_GAIN·smoothness)²`, in
/// luma codes² (the edge test is `var² / (var² + eps²)`). Texture whose local standard
/// deviation is well below the sigma is flattened, edges well above it are kept.
const EPS_SIGMA_BASE: f32 = 4.0;
const EPS_SIGMA_GAIN: f32 = 16.0;
/// Smoothing blend `t = min(1, SMOOTH_BLEND_GAIN·smoothness)·mask`.
const SMOOTH_BLEND_GAIN: f32 = 2.0;
/// Gain of the 4-neighbour unsharp term at sharpness 1.
const SHARP_GAIN: f32 = 1.6;
/// Detail below this amplitude (codes) is treated as noise and not amplified (coring).
const SHARP_CORING: f32 = 1.5;
/// Chroma shift at redness 1 for a full-skin pixel, in code values.
const REDNESS_CR: f32 = 10.0;
const REDNESS_CB: f32 = 2.0;
/// Lightening curve: `x + L·x(1-x)·(LIGHT_LIFT + c·(2x-1))` on normalised limited-range luma,
/// with `c` per contrast variant. Both terms vanish at black and white, so the curve never
/// pushes a pixel to white that was not there, and it is monotonic (slope at white
/// `1 - LIGHT_LIFT - c >= 0.2`).
const LIGHT_LIFT: f32 = 0.5;
const CONTRAST_LOW: f32 = -0.25;
const CONTRAST_HIGH: f32 = 0.3;

/// Skin model in the Cb/Cr plane: hue angle (degrees from +Cb toward +Cr), full weight
/// between `HUE_FULL_LO` and `HUE_FULL_HI`, zero outside `HUE_ZERO_LO..HUE_ZERO_HI`. Skin of
/// most complexions sits around 120..140° (complexion mostly changes luma and
/// saturation, not hue); blond/brown hair and olive objects above 145°,
/// saturated reds and oranges below.
const HUE_ZERO_LO: f32 = 105.0;
const HUE_FULL_LO: f32 = 115.0;
const HUE_FULL_HI: f32 = 140.0;
const HUE_ZERO_HI: f32 = 150.0;
/// Chroma saturation (distance from neutral in code values): greys below, vivid objects above.
const SAT_ZERO_LO: f32 = 6.0;
const SAT_FULL_LO: f32 = 12.0;
const SAT_FULL_HI: f32 = 45.0;
const SAT_ZERO_HI: f32 = 60.0;
/// Luma floor: pupils, deep shadows and black clothes are not smoothed.
const LUMA_ZERO: f32 = 30.0;
const LUMA_FULL: f32 = 55.0;
/// After box smoothing the mask is stretched so that skin interiors reach 1 again.
const MASK_LOW: f32 = 0.1;
const MASK_HIGH: f32 = 0.7;

#[inline(always)]
fn clamp01(v: f32) -> f32 {
    v.clamp(0.0, 1.0)
}

/// Lightening tone curve, as the polynomial `v + x·(c1 + x·(c2 + x·c3))` with
/// `x = clamp((v - 16) / 219, 0, 1)` (normalised limited-range luma): the expanded form of
/// `219·x(1-x)·(lift + contrast·(2x-1))`, three multiply-adds per pixel.
#[derive(Clone, Copy, Debug)]
struct Curve {
    c1: f32,
    c2: f32,
    c3: f32,
}

impl Curve {
    const SCALE: f32 = 1.0 / 219.0;
    const OFFSET: f32 = -16.0 / 219.0;

    fn new(levels: &Levels) -> Curve {
        let c = match levels.contrast {
            Contrast::Low => CONTRAST_LOW,
            Contrast::Normal => 0.0,
            Contrast::High => CONTRAST_HIGH,
        };
        let lift = LIGHT_LIFT * levels.lightening;
        let contrast = c * levels.lightening;
        let (p, q) = (lift - contrast, 2.0 * contrast);
        Curve {
            c1: 219.0 * p,
            c2: 219.0 * (q - p),
            c3: -219.0 * q,
        }
    }

    #[inline(always)]
    fn apply(&self, v: f32) -> f32 {
        let x = clamp01(v * Self::SCALE + Self::OFFSET);
        v + x * (self.c1 + x * (self.c2 + x * self.c3))
    }
}

/// Round to nearest (ties to even) and clamp to 0..=255. Adding 1.5·2²³ leaves the rounded
/// integer in the low mantissa bits: unlike `as i32` (saturating, scalarised by LLVM) this
/// stays a plain vector add and pack.
#[inline(always)]
fn round_u8(v: f32) -> u8 {
    const MAGIC: f32 = 12_582_912.0;
    (v.clamp(0.0, 255.0) + MAGIC).to_bits() as u8
}

/// Subsampling factor of the analysis grid for a frame size.
fn grid_factor(width: usize, height: usize) -> usize {
    match width.min(height) {
        0..=576 => 2,
        577..=1200 => 4,
        _ => 8,
    }
}

/// Bilinear upsampling geometry along one axis: analysis cells of `factor` pixels, sampled at
/// pixel centres.
#[inline]
fn lerp_pos(i: usize, factor: usize, cells: usize) -> (usize, usize, f32) {
    let v = (i as f32 + 0.5) / factor as f32 - 0.5;
    if v <= 0.0 || cells <= 1 {
        return (0, 0, 0.0);
    }
    let j0 = v as usize;
    if j0 >= cells - 1 {
        return (cells - 1, cells - 1, 0.0);
    }
    (j0, j0 + 1, v - j0 as f32)
}

/// Upsample one row of analysis cells to `dst.len()` pixels (`factor` pixels per cell,
/// linear interpolation between cell centres, clamped at the ends).
#[inline(always)]
fn upsample_row(src: &[f32], dst: &mut [f32], factor: usize, avx2: bool) {
    match factor {
        1 => {
            let n = dst.len().min(src.len());
            dst[..n].copy_from_slice(&src[..n]);
            if let Some(&last) = src.last() {
                dst[n..].fill(last);
            }
        }
        2 => upsample_row_n::<2>(src, dst, avx2),
        4 => upsample_row_n::<4>(src, dst, avx2),
        _ => upsample_row_n::<8>(src, dst, avx2),
    }
}

#[inline(always)]
fn upsample_row_n<const S: usize>(src: &[f32], dst: &mut [f32], avx2: bool) {
    let (Some(&first), Some(&last)) = (src.first(), src.last()) else {
        return;
    };
    let n = dst.len();
    // Pixel S/2 + k of a cell pair sits at weight (k + 0.5)/S between the two centres.
    let weights: [f32; S] = std::array::from_fn(|k| (k as f32 + 0.5) / S as f32);
    let head = (S / 2).min(n);
    dst[..head].fill(first);
    let pairs = src.len() - 1;
    let full = ((n - head) / S).min(pairs);
    let body_end = head + full * S;
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is only true when the CPU reports AVX2 and FMA.
        done = unsafe { x86::upsample_body::<S>(src, &mut dst[head..body_end], full) };
    }
    let _ = avx2;
    for (chunk, pair) in dst[head + done * S..body_end]
        .chunks_exact_mut(S)
        .zip(src[done..].windows(2))
    {
        let a = pair[0];
        let d = pair[1] - a;
        for k in 0..S {
            chunk[k] = a + weights[k] * d;
        }
    }
    let mut x = body_end;
    if full < pairs && x < n {
        // A partial last block: the frame edge falls between two cell centres.
        let a = src[full];
        let d = src[full + 1] - a;
        for (o, w) in dst[x..].iter_mut().zip(weights.iter()) {
            *o = a + w * d;
        }
        x = (x + S).min(n);
    }
    dst[x..].fill(last);
}

/// Box filter with edge replication over a `w`×`h` grid: `dst = post(mean over (2r+1)²
/// cells)`. `col` must hold `w` values and `row` `w + 2r`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn box_filter(
    src: &[f32],
    dst: &mut [f32],
    w: usize,
    h: usize,
    r: usize,
    col: &mut [f32],
    row: &mut [f32],
    post: impl Fn(f32) -> f32,
) {
    let inv = 1.0 / ((2 * r + 1) * (2 * r + 1)) as f32;
    let col = &mut col[..w];
    let row = &mut row[..w + 2 * r];
    for y in 0..h {
        // Vertical sum of 2r+1 rows (clamped) for every column.
        let first = y.saturating_sub(r);
        col.copy_from_slice(&src[first * w..first * w + w]);
        for k in 1..=2 * r {
            let yy = (y + k).saturating_sub(r).min(h - 1);
            for (c, s) in col.iter_mut().zip(&src[yy * w..yy * w + w]) {
                *c += s;
            }
        }
        box_row(col, row, r, &mut dst[y * w..y * w + w], inv, &post);
    }
}

/// Horizontal box sum of `col` (edges replicated, `row` is `col.len() + 2r` scratch), times
/// `inv`, through `post`, into `out`.
#[inline(always)]
fn box_row(
    col: &[f32],
    row: &mut [f32],
    r: usize,
    out: &mut [f32],
    inv: f32,
    post: &impl Fn(f32) -> f32,
) {
    let w = col.len();
    let row = &mut row[..w + 2 * r];
    row[..r].fill(col[0]);
    row[r..r + w].copy_from_slice(col);
    row[r + w..].fill(col[w - 1]);
    let out = &mut out[..w];
    out.copy_from_slice(&row[..w]);
    for k in 1..=2 * r {
        for (o, s) in out.iter_mut().zip(&row[k..k + w]) {
            *o += s;
        }
    }
    for o in out.iter_mut() {
        *o = post(*o * inv);
    }
}

/// Skin likelihood of one analysis cell from its mean Y, Cb, Cr.
#[inline(always)]
fn skin_likelihood(y: f32, cb: f32, cr: f32, k: &SkinConsts) -> f32 {
    let u = cb - 128.0;
    let v = cr - 128.0;
    let sat = (u * u + v * v).sqrt();
    let inv = 1.0 / sat.max(1.0);
    // sin(θ - θ_zero_lo) and sin(θ_zero_hi - θ): positive inside the hue window.
    let s_lo = (v * k.cos_lo - u * k.sin_lo) * inv;
    let s_hi = (u * k.sin_hi - v * k.cos_hi) * inv;
    let hue = clamp01(s_lo * k.ramp_lo) * clamp01(s_hi * k.ramp_hi);
    let sat_w = clamp01((sat - SAT_ZERO_LO) * (1.0 / (SAT_FULL_LO - SAT_ZERO_LO)))
        * clamp01((SAT_ZERO_HI - sat) * (1.0 / (SAT_ZERO_HI - SAT_FULL_HI)));
    let luma_w = clamp01((y - LUMA_ZERO) * (1.0 / (LUMA_FULL - LUMA_ZERO)));
    hue * sat_w * luma_w
}

struct SkinConsts {
    cos_lo: f32,
    sin_lo: f32,
    cos_hi: f32,
    sin_hi: f32,
    ramp_lo: f32,
    ramp_hi: f32,
}

impl SkinConsts {
    fn new() -> Self {
        let (sin_lo, cos_lo) = HUE_ZERO_LO.to_radians().sin_cos();
        let (sin_hi, cos_hi) = HUE_ZERO_HI.to_radians().sin_cos();
        Self {
            cos_lo,
            sin_lo,
            cos_hi,
            sin_hi,
            ramp_lo: 1.0 / (HUE_FULL_LO - HUE_ZERO_LO).to_radians().sin(),
            ramp_hi: 1.0 / (HUE_ZERO_HI - HUE_FULL_HI).to_radians().sin(),
        }
    }
}

/// One field of the per-pixel model (A, B or G) upsampled to full width for the current pair
/// of analysis rows: `base` at the upper row, `delta` to the lower one. `hi` keeps the lower
/// row so that moving down one analysis row costs one upsampling, not two.
struct FieldRows {
    base: Vec<f32>,
    hi: Vec<f32>,
    delta: Vec<f32>,
    /// `base` and `delta` in 16-bit fixed point (scale given to `update`), for the AVX2
    /// luma kernel.
    base_q: Vec<i16>,
    delta_q: Vec<i16>,
}

impl FieldRows {
    fn new(n: usize) -> Self {
        FieldRows {
            base: vec![0.0; n],
            hi: vec![0.0; n],
            delta: vec![0.0; n],
            base_q: vec![0; n],
            delta_q: vec![0; n],
        }
    }

    /// Make the rows describe analysis rows `j0`→`j1` of `field`, given the pair they held;
    /// with `quant`, also fill the fixed-point rows (AVX2 only).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        field: &[f32],
        lw: usize,
        factor: usize,
        held: Option<(usize, usize)>,
        j0: usize,
        j1: usize,
        avx2: bool,
        quant: Option<f32>,
    ) {
        match held {
            Some((_, h1)) if h1 == j0 => std::mem::swap(&mut self.base, &mut self.hi),
            _ => upsample_row(&field[j0 * lw..j0 * lw + lw], &mut self.base, factor, avx2),
        }
        upsample_row(&field[j1 * lw..j1 * lw + lw], &mut self.hi, factor, avx2);
        for ((d, &h), &b) in self.delta.iter_mut().zip(&self.hi).zip(&self.base) {
            *d = h - b;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2 && let Some(scale) = quant {
            // SAFETY: `avx2` is only true when the CPU reports AVX2 and FMA.
            unsafe {
                x86::quantize(&self.base, &mut self.base_q, scale);
                x86::quantize(&self.delta, &mut self.delta_q, scale);
            }
        }
        let _ = quant;
    }
}

/// The beauty filter for one frame geometry, with all its scratch memory.
pub struct Beauty {
    width: usize,
    height: usize,
    cw: usize,
    ch: usize,
    /// Analysis grid: `factor` luma pixels per cell side, `lw`×`lh` cells.
    factor: usize,
    lw: usize,
    lh: usize,
    use_avx2: bool,
    skin: SkinConsts,

    // Analysis grid planes (lw*lh).
    lo_y: Vec<f32>,
    lo_yy: Vec<f32>,
    lo_cb: Vec<f32>,
    lo_cr: Vec<f32>,
    mask: Vec<f32>,
    mean_i: Vec<f32>,
    mean_ii: Vec<f32>,
    coef_a: Vec<f32>,
    coef_b: Vec<f32>,
    field_a: Vec<f32>,
    field_b: Vec<f32>,
    field_g: Vec<f32>,
    box_col: Vec<f32>,
    box_row: Vec<f32>,

    // Downsampling accumulators (one row of sums over `factor` rows).
    acc_y: Vec<u16>,
    acc_yy: Vec<u32>,
    acc_cb: Vec<u16>,
    acc_cr: Vec<u16>,

    // Full-resolution row scratch.
    rows_a: FieldRows,
    rows_b: FieldRows,
    rows_g: FieldRows,
    prev_row: Vec<u8>,
    cur_row: Vec<u8>,
    mask_rows: FieldRows,
}

impl fmt::Debug for Beauty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Beauty")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("factor", &self.factor)
            .field("grid", &(self.lw, self.lh))
            .field("avx2", &self.use_avx2)
            .finish()
    }
}

impl Beauty {
    /// A processor for `width`×`height` 4:2:0 frames. Allocates all scratch memory.
    pub fn new(width: usize, height: usize) -> Beauty {
        let cw = width.div_ceil(2);
        let ch = height.div_ceil(2);
        let factor = grid_factor(width, height);
        let lw = width.div_ceil(factor);
        let lh = height.div_ceil(factor);
        let cells = lw * lh;
        let grid = || vec![0.0f32; cells];
        Beauty {
            width,
            height,
            cw,
            ch,
            factor,
            lw,
            lh,
            use_avx2: detect_avx2(),
            skin: SkinConsts::new(),
            lo_y: grid(),
            lo_yy: grid(),
            lo_cb: grid(),
            lo_cr: grid(),
            mask: grid(),
            mean_i: grid(),
            mean_ii: grid(),
            coef_a: grid(),
            coef_b: grid(),
            field_a: grid(),
            field_b: grid(),
            field_g: grid(),
            box_col: vec![0.0; lw],
            box_row: vec![0.0; lw + 2 * MAX_RADIUS],
            acc_y: vec![0; width],
            acc_yy: vec![0; width],
            acc_cb: vec![0; cw],
            acc_cr: vec![0; cw],
            rows_a: FieldRows::new(width),
            rows_b: FieldRows::new(width),
            rows_g: FieldRows::new(width),
            prev_row: vec![0; width + 2],
            cur_row: vec![0; width + 2],
            mask_rows: FieldRows::new(cw),
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Luma pixels per analysis cell side.
    pub fn grid_factor(&self) -> usize {
        self.factor
    }

    /// Allow or forbid the AVX2 build of the pipeline (it is used only when the CPU has it);
    /// the portable build gives the same output up to float rounding.
    pub fn set_simd(&mut self, enabled: bool) {
        self.use_avx2 = enabled && detect_avx2();
    }

    /// The skin mask of the last processed frame on the analysis grid (`lw`×`lh`, row-major),
    /// for inspection; only meaningful after a frame processed with `skin_mask` on.
    pub fn mask(&self) -> (&[f32], usize, usize) {
        (&self.mask, self.lw, self.lh)
    }

    /// Check that `planes` can hold a frame of this processor's size.
    pub fn check(&self, planes: &Planes<'_>) -> Result<(), PlaneError> {
        let (w, h, cw, ch) = (self.width, self.height, self.cw, self.ch);
        check_plane("Y", planes.y.len(), planes.y_stride, w, h)?;
        match &planes.chroma {
            Chroma::Planar {
                u,
                u_stride,
                v,
                v_stride,
            } => {
                check_plane("U", u.len(), *u_stride, cw, ch)?;
                check_plane("V", v.len(), *v_stride, cw, ch)
            }
            Chroma::Interleaved { uv, stride, .. } => {
                check_plane("UV", uv.len(), *stride, 2 * cw, ch)
            }
        }
    }

    /// Process one frame in place. Does nothing (not even reading) when all levels are 0.
    pub fn process(&mut self, planes: Planes<'_>, levels: &Levels) -> Result<(), PlaneError> {
        let lv = levels.sanitized();
        if lv.is_identity() || self.width == 0 || self.height == 0 {
            return Ok(());
        }
        self.check(&planes)?;
        #[cfg(target_arch = "x86_64")]
        if self.use_avx2 {
            // SAFETY: `use_avx2` is only set when the CPU reports AVX2 and FMA.
            unsafe { self.run_avx2(planes, &lv) };
            return Ok(());
        }
        self.run(planes, &lv);
        Ok(())
    }

    /// The whole pipeline compiled for AVX2 (everything below is inlined into it).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn run_avx2(&mut self, planes: Planes<'_>, lv: &Levels) {
        self.run(planes, lv)
    }

    #[inline(always)]
    fn run(&mut self, planes: Planes<'_>, lv: &Levels) {
        let Planes {
            y,
            y_stride,
            chroma,
        } = planes;
        let luma_model = lv.smoothness > 0.0 || lv.sharpness > 0.0;
        let need_mask = lv.skin_mask && (luma_model || lv.redness > 0.0);

        if luma_model || need_mask {
            self.downsample_luma(y, y_stride, lv.smoothness > 0.0);
        }
        if need_mask {
            self.downsample_chroma(&chroma);
            self.compute_mask();
        }
        if luma_model {
            self.compute_model(lv);
            self.luma_pass(y, y_stride, lv);
        } else if lv.lightening > 0.0 {
            self.lightening_pass(y, y_stride, lv);
        }
        if lv.redness > 0.0 {
            self.redness_pass(chroma, lv);
        }
    }

    /// Cell means of Y (and of Y² when `squares`) on the analysis grid.
    #[inline(always)]
    fn downsample_luma(&mut self, y: &[u8], stride: usize, squares: bool) {
        let (w, h, s) = (self.width, self.height, self.factor);
        let sq = if squares {
            Some((&mut self.lo_yy[..], &mut self.acc_yy[..]))
        } else {
            None
        };
        downsample_plane(
            self.use_avx2,
            y,
            stride,
            w,
            h,
            s,
            &mut self.lo_y,
            &mut self.acc_y,
            sq,
        );
    }

    /// Cell means of Cb and Cr on the analysis grid (chroma is already at half resolution).
    #[inline(always)]
    fn downsample_chroma(&mut self, chroma: &Chroma<'_>) {
        let (cw, ch) = (self.cw, self.ch);
        let f = self.factor / 2;
        let (u, u_stride, v, v_stride) = match chroma {
            Chroma::Planar {
                u,
                u_stride,
                v,
                v_stride,
            } => (&**u, *u_stride, &**v, *v_stride),
            Chroma::Interleaved {
                uv,
                stride,
                v_first,
            } => {
                self.downsample_interleaved(uv, *stride, *v_first);
                return;
            }
        };
        let avx2 = self.use_avx2;
        downsample_plane(
            avx2,
            u,
            u_stride,
            cw,
            ch,
            f,
            &mut self.lo_cb,
            &mut self.acc_cb,
            None,
        );
        downsample_plane(
            avx2,
            v,
            v_stride,
            cw,
            ch,
            f,
            &mut self.lo_cr,
            &mut self.acc_cr,
            None,
        );
    }

    /// [`Self::downsample_chroma`] for NV12/NV21 (portable code).
    #[inline(always)]
    fn downsample_interleaved(&mut self, uv: &[u8], stride: usize, v_first: bool) {
        let (cw, ch, lw) = (self.cw, self.ch, self.lw);
        let f = self.factor / 2;
        let acc_cb = &mut self.acc_cb[..cw];
        let acc_cr = &mut self.acc_cr[..cw];
        for (ly, (out_cb, out_cr)) in self
            .lo_cb
            .chunks_exact_mut(lw)
            .zip(self.lo_cr.chunks_exact_mut(lw))
            .enumerate()
        {
            let r0 = ly * f;
            let r1 = (r0 + f).min(ch);
            acc_cb.fill(0);
            acc_cr.fill(0);
            let (acc0, acc1) = if v_first {
                (&mut *acc_cr, &mut *acc_cb)
            } else {
                (&mut *acc_cb, &mut *acc_cr)
            };
            for r in r0..r1 {
                let row = &uv[r * stride..r * stride + 2 * cw];
                for ((a, b), p) in acc0
                    .iter_mut()
                    .zip(acc1.iter_mut())
                    .zip(row.chunks_exact(2))
                {
                    *a += p[0] as u16;
                    *b += p[1] as u16;
                }
            }
            let rows = r1 - r0;
            reduce_cells(acc_cb, out_cb, f, rows);
            reduce_cells(acc_cr, out_cr, f, rows);
        }
    }

    /// Pointwise skin likelihood, box-smoothed and re-stretched.
    #[inline(always)]
    fn compute_mask(&mut self) {
        let k = &self.skin;
        for (((m, &y), &cb), &cr) in self
            .coef_a
            .iter_mut()
            .zip(&self.lo_y)
            .zip(&self.lo_cb)
            .zip(&self.lo_cr)
        {
            *m = skin_likelihood(y, cb, cr, k);
        }
        let k = 1.0 / (MASK_HIGH - MASK_LOW);
        box_filter(
            &self.coef_a,
            &mut self.mask,
            self.lw,
            self.lh,
            MASK_RADIUS,
            &mut self.box_col,
            &mut self.box_row,
            |m| clamp01((m - MASK_LOW) * k),
        );
    }

    /// Per-cell linear model `A·Y + B + G·detail` from the guided filter and the mask.
    #[inline(always)]
    fn compute_model(&mut self, lv: &Levels) {
        let (lw, lh, r) = (self.lw, self.lh, GUIDED_RADIUS);
        let n = lw * lh;
        let use_mask = lv.skin_mask;
        let sharp = SHARP_GAIN * lv.sharpness;
        let (field_a, field_b, field_g) = (
            &mut self.field_a[..n],
            &mut self.field_b[..n],
            &mut self.field_g[..n],
        );
        let mask = &self.mask[..n];
        if lv.smoothness <= 0.0 {
            field_a.fill(1.0);
            field_b.fill(0.0);
            if use_mask {
                for (g, &m) in field_g.iter_mut().zip(mask) {
                    *g = sharp * (1.0 - m);
                }
            } else {
                field_g.fill(sharp);
            }
            return;
        }
        let sigma = EPS_SIGMA_BASE + EPS_SIGMA_GAIN * lv.smoothness;
        // Compared as squared variances: see `a` below.
        let eps2 = (sigma * sigma) * (sigma * sigma);
        // The blend reaches full strength at half the level; above that the level only
        // raises eps (what counts as texture rather than an edge).
        let blend = (lv.smoothness * SMOOTH_BLEND_GAIN).min(1.0);
        let inv = 1.0 / ((2 * r + 1) * (2 * r + 1)) as f32;
        let id = |v: f32| v;
        // Streamed row by row so the working set stays in cache: the guided filter's
        // coefficient rows a/b live in a ring of 2r+1 rows, each computed once from the box
        // means of Y and Y² around it, and the final box over a/b feeds the fields directly.
        let ring = 2 * r + 1;
        let mut computed = 0; // a/b rows computed so far
        for y in 0..lh {
            let need = (y + r).min(lh - 1);
            while computed <= need {
                let k = computed;
                // Box means of Y and Y² for row k.
                let (mi, mii) = (&mut self.mean_i[..lw], &mut self.mean_ii[..lw]);
                for (src, dst) in [(&self.lo_y, &mut *mi), (&self.lo_yy, &mut *mii)] {
                    let col = &mut self.box_col[..lw];
                    col.fill(0.0);
                    for d in 0..ring {
                        let kk = (k + d).saturating_sub(r).min(lh - 1);
                        for (c, v) in col.iter_mut().zip(&src[kk * lw..kk * lw + lw]) {
                            *c += v;
                        }
                    }
                    box_row(col, &mut self.box_row, r, dst, inv, &id);
                }
                let slot = (k % ring) * lw;
                let (ra, rb) = (
                    &mut self.coef_a[slot..slot + lw],
                    &mut self.coef_b[slot..slot + lw],
                );
                for (((a, b), &mi), &mii) in ra.iter_mut().zip(rb.iter_mut()).zip(&*mi).zip(&*mii) {
                    let var = (mii - mi * mi).max(0.0);
                    // A steeper edge test than the classic var/(var+eps): skin texture well
                    // below eps is flattened fully, eyes/teeth/hair edges above it kept fully.
                    let v2 = var * var;
                    let ca = v2 / (v2 + eps2);
                    *a = ca;
                    *b = (1.0 - ca) * mi;
                }
                computed += 1;
            }
            // Box means of a and b around row y, then the fields of row y.
            let (ma, mb) = (&mut self.mean_i[..lw], &mut self.mean_ii[..lw]);
            for (src, dst) in [(&self.coef_a, &mut *ma), (&self.coef_b, &mut *mb)] {
                let col = &mut self.box_col[..lw];
                col.fill(0.0);
                for d in 0..ring {
                    let kk = (y + d).saturating_sub(r).min(lh - 1);
                    let slot = (kk % ring) * lw;
                    for (c, v) in col.iter_mut().zip(&src[slot..slot + lw]) {
                        *c += v;
                    }
                }
                box_row(col, &mut self.box_row, r, dst, inv, &id);
            }
            let row = y * lw..y * lw + lw;
            let (fa, fb, fg) = (
                &mut field_a[row.clone()],
                &mut field_b[row.clone()],
                &mut field_g[row.clone()],
            );
            if use_mask {
                let m = &mask[row];
                for i in 0..lw {
                    let t = blend * m[i];
                    fa[i] = 1.0 + t * (ma[i] - 1.0);
                    fb[i] = t * mb[i];
                    fg[i] = sharp * (1.0 - m[i]);
                }
            } else {
                for i in 0..lw {
                    fa[i] = 1.0 + blend * (ma[i] - 1.0);
                    fb[i] = blend * mb[i];
                }
                fg.fill(sharp);
            }
        }
    }

    #[inline(always)]
    fn luma_pass(&mut self, y: &mut [u8], stride: usize, lv: &Levels) {
        let (w, h, lw, factor) = (self.width, self.height, self.lw, self.factor);
        let avx2 = self.use_avx2;
        let curve = Curve::new(lv);
        let sharp = lv.sharpness > 0.0;
        let light = lv.lightening > 0.0;
        let mut held = None;
        // Original rows with one replicated pixel each side, since the output overwrites the
        // plane and the detail term needs the unmodified neighbours.
        load_padded(&mut self.cur_row, &y[..w]);
        self.prev_row.copy_from_slice(&self.cur_row);
        for r in 0..h {
            let (j0, j1, wy) = lerp_pos(r, factor, self.lh);
            if held != Some((j0, j1)) {
                let (qa, qb, qg) = (Q_A, Q_B, Q_G);
                self.rows_a
                    .update(&self.field_a, lw, factor, held, j0, j1, avx2, Some(qa));
                self.rows_b
                    .update(&self.field_b, lw, factor, held, j0, j1, avx2, Some(qb));
                self.rows_g
                    .update(&self.field_g, lw, factor, held, j0, j1, avx2, Some(qg));
                held = Some((j0, j1));
            }
            let next = (r + 1).min(h - 1);
            let (head, tail) = y.split_at_mut(next * stride);
            // `down` is the original next row (not yet written); for the last row it is the
            // row itself, taken from the saved copy.
            let (out, down): (&mut [u8], &[u8]) = if next > r {
                (&mut head[r * stride..r * stride + w], &tail[..w])
            } else {
                (&mut tail[..w], &self.cur_row[1..w + 1])
            };
            let rows = RowArgs {
                left: &self.cur_row[..w],
                center: &self.cur_row[1..w + 1],
                right: &self.cur_row[2..w + 2],
                up: &self.prev_row[1..w + 1],
                down,
                a0: &self.rows_a.base,
                da: &self.rows_a.delta,
                b0: &self.rows_b.base,
                db: &self.rows_b.delta,
                g0: &self.rows_g.base,
                dg: &self.rows_g.delta,
                wy,
                curve,
            };
            #[allow(unused_mut)]
            let mut done = 0;
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                let q = x86::FixedRow {
                    a0: &self.rows_a.base_q,
                    da: &self.rows_a.delta_q,
                    b0: &self.rows_b.base_q,
                    db: &self.rows_b.delta_q,
                    g0: &self.rows_g.base_q,
                    dg: &self.rows_g.delta_q,
                };
                // SAFETY: `avx2` is only true when the CPU reports AVX2 and FMA.
                done = unsafe { x86::luma_row_fixed_dispatch(sharp, light, out, &rows, &q) };
            }
            if done < w {
                luma_row_portable(sharp, light, &mut out[done..], &rows.from(done));
            }
            // Slide the window: the current original row becomes the previous one.
            std::mem::swap(&mut self.prev_row, &mut self.cur_row);
            if next > r {
                load_padded(&mut self.cur_row, &y[next * stride..next * stride + w]);
            }
        }
    }

    /// Lightening alone: a 256-entry LUT of the tone curve.
    #[inline(always)]
    fn lightening_pass(&mut self, y: &mut [u8], stride: usize, lv: &Levels) {
        let curve = Curve::new(lv);
        let lut: [u8; 256] = std::array::from_fn(|v| round_u8(curve.apply(v as f32)));
        let w = self.width;
        for r in 0..self.height {
            for p in &mut y[r * stride..r * stride + w] {
                *p = lut[*p as usize];
            }
        }
    }

    #[inline(always)]
    fn redness_pass(&mut self, chroma: Chroma<'_>, lv: &Levels) {
        let (cw, ch, lw, lh) = (self.cw, self.ch, self.lw, self.lh);
        let f = self.factor / 2;
        let avx2 = self.use_avx2;
        let shift = RednessShift {
            cr_add: REDNESS_CR * lv.redness,
            cb_sub: REDNESS_CB * lv.redness,
        };
        let use_mask = lv.skin_mask;
        if !use_mask {
            self.mask_rows.base.fill(1.0);
            self.mask_rows.delta.fill(0.0);
        }
        let mut held = None;
        let mut chroma = chroma;
        for r in 0..ch {
            let (j0, j1, wy) = lerp_pos(r, f, lh);
            if use_mask && held != Some((j0, j1)) {
                self.mask_rows
                    .update(&self.mask, lw, f, held, j0, j1, avx2, None);
                held = Some((j0, j1));
            }
            let m0 = &self.mask_rows.base[..cw];
            let dm = &self.mask_rows.delta[..cw];
            match &mut chroma {
                Chroma::Planar {
                    u,
                    u_stride,
                    v,
                    v_stride,
                } => {
                    let ur = &mut u[r * *u_stride..r * *u_stride + cw];
                    let vr = &mut v[r * *v_stride..r * *v_stride + cw];
                    redness_planar(avx2, ur, vr, m0, dm, wy, shift);
                }
                Chroma::Interleaved {
                    uv,
                    stride,
                    v_first,
                } => {
                    let row = &mut uv[r * *stride..r * *stride + 2 * cw];
                    redness_interleaved(avx2, row, m0, dm, wy, shift, *v_first);
                }
            }
        }
    }
}

fn detect_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Box-downsample a `w`×`h` plane by `s` into cell means (`out`, `lw`×`lh` row-major), and
/// the cell means of squares into `sq.0` when given (`sq.1` is its `w`-long accumulator).
/// Uses the AVX2 kernel for whole 32-pixel blocks when allowed, portable code for the rest.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn downsample_plane(
    avx2: bool,
    src: &[u8],
    stride: usize,
    w: usize,
    h: usize,
    s: usize,
    out: &mut [f32],
    acc: &mut [u16],
    mut sq: Option<(&mut [f32], &mut [u32])>,
) {
    let lw = w.div_ceil(s);
    let acc = &mut acc[..w];
    for (ly, out_row) in out.chunks_exact_mut(lw).enumerate() {
        let r0 = ly * s;
        let r1 = (r0 + s).min(h);
        let mut sq_row = sq
            .as_mut()
            .map(|(o, a)| (&mut o[ly * lw..ly * lw + lw], &mut a[..w]));
        #[allow(unused_mut)]
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if avx2 && matches!(s, 2 | 4 | 8) {
            // SAFETY: `avx2` is only true when the CPU reports AVX2 and FMA.
            done = unsafe {
                x86::downsample_cells(
                    src,
                    stride,
                    r0,
                    r1,
                    w,
                    s,
                    out_row,
                    sq_row.as_mut().map(|(o, _)| &mut **o),
                )
            };
        }
        let _ = avx2;
        if done >= lw {
            continue;
        }
        // Portable code for the cells the kernel left (or all of them).
        let x0 = done * s;
        let acc = &mut acc[x0..];
        let first = &src[r0 * stride + x0..r0 * stride + w];
        for (a, &p) in acc.iter_mut().zip(first) {
            *a = p as u16;
        }
        if let Some((_, acc_sq)) = sq_row.as_mut() {
            for (q, &p) in acc_sq[x0..].iter_mut().zip(first) {
                *q = p as u32 * p as u32;
            }
        }
        for r in r0 + 1..r1 {
            let row = &src[r * stride + x0..r * stride + w];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += p as u16;
            }
            if let Some((_, acc_sq)) = sq_row.as_mut() {
                for (q, &p) in acc_sq[x0..].iter_mut().zip(row) {
                    *q += p as u32 * p as u32;
                }
            }
        }
        let rows = r1 - r0;
        reduce_cells(acc, &mut out_row[done..], s, rows);
        if let Some((o, acc_sq)) = sq_row {
            reduce_cells(&acc_sq[x0..], &mut o[done..], s, rows);
        }
    }
}

#[inline(always)]
fn load_padded(dst: &mut [u8], src: &[u8]) {
    let w = src.len();
    dst[1..w + 1].copy_from_slice(src);
    dst[0] = src[0];
    dst[w + 1] = src[w - 1];
}

/// Sum groups of `s` columns (the last group may be partial) over `rows` rows into means.
#[inline(always)]
fn reduce_cells<T: Copy + Into<u32>>(acc: &[T], out: &mut [f32], s: usize, rows: usize) {
    match s {
        1 => reduce_cells_n::<T, 1>(acc, out, rows),
        2 => reduce_cells_n::<T, 2>(acc, out, rows),
        4 => reduce_cells_n::<T, 4>(acc, out, rows),
        _ => reduce_cells_n::<T, 8>(acc, out, rows),
    }
}

#[inline(always)]
fn reduce_cells_n<T: Copy + Into<u32>, const S: usize>(acc: &[T], out: &mut [f32], rows: usize) {
    let inv = 1.0 / (rows * S) as f32;
    let chunks = acc.chunks_exact(S);
    let rem = chunks.remainder();
    let full = acc.len() / S;
    for (o, g) in out.iter_mut().zip(chunks) {
        let mut sum = 0u32;
        for &v in g {
            sum += v.into();
        }
        *o = sum as f32 * inv;
    }
    if !rem.is_empty()
        && let Some(o) = out.get_mut(full)
    {
        let sum: u32 = rem.iter().map(|&v| v.into()).sum();
        *o = sum as f32 / (rows * rem.len()) as f32;
    }
}

/// Inputs of one full-resolution luma row.
struct RowArgs<'a> {
    left: &'a [u8],
    center: &'a [u8],
    right: &'a [u8],
    up: &'a [u8],
    down: &'a [u8],
    a0: &'a [f32],
    da: &'a [f32],
    b0: &'a [f32],
    db: &'a [f32],
    g0: &'a [f32],
    dg: &'a [f32],
    wy: f32,
    curve: Curve,
}

/// The portable row kernel for the given switches (AVX2 machines use
/// `x86::luma_row_fixed` for all whole blocks of 16 pixels and this for the rest).
#[inline(always)]
fn luma_row_portable(sharp: bool, light: bool, out: &mut [u8], rows: &RowArgs<'_>) {
    match (sharp, light) {
        (true, true) => luma_row::<true, true>(out, rows),
        (true, false) => luma_row::<true, false>(out, rows),
        (false, true) => luma_row::<false, true>(out, rows),
        (false, false) => luma_row::<false, false>(out, rows),
    }
}

impl<'a> RowArgs<'a> {
    /// The same row from pixel `x` on.
    fn from(&self, x: usize) -> RowArgs<'a> {
        RowArgs {
            left: &self.left[x..],
            center: &self.center[x..],
            right: &self.right[x..],
            up: &self.up[x..],
            down: &self.down[x..],
            a0: &self.a0[x..],
            da: &self.da[x..],
            b0: &self.b0[x..],
            db: &self.db[x..],
            g0: &self.g0[x..],
            dg: &self.dg[x..],
            wy: self.wy,
            curve: self.curve,
        }
    }
}

/// Fixed-point scales of the model rows for the AVX2 kernel: A in Q14 (A is in 0..=1), B in
/// Q4 (1/16 code), G in Q12 (G <= SHARP_GAIN).
const Q_A: f32 = 16384.0;
const Q_B: f32 = 16.0;
const Q_G: f32 = 4096.0;

/// `out = curve(A·Y + B + G·core(Y - mean of 4 neighbours))`, A/B/G interpolated between the
/// two upsampled analysis rows. Branch-free over the row so it vectorises.
#[inline(always)]
fn luma_row<const SHARP: bool, const LIGHT: bool>(out: &mut [u8], a: &RowArgs<'_>) {
    let n = out.len();
    let (left, center, right, up, down) = (
        &a.left[..n],
        &a.center[..n],
        &a.right[..n],
        &a.up[..n],
        &a.down[..n],
    );
    let (a0, da, b0, db, g0, dg) = (
        &a.a0[..n],
        &a.da[..n],
        &a.b0[..n],
        &a.db[..n],
        &a.g0[..n],
        &a.dg[..n],
    );
    let wy = a.wy;
    let curve = a.curve;
    for x in 0..n {
        let c = center[x] as f32;
        let ka = a0[x] + wy * da[x];
        let kb = b0[x] + wy * db[x];
        let mut v = ka * c + kb;
        if SHARP {
            let kg = g0[x] + wy * dg[x];
            let nb = (left[x] as u16 + right[x] as u16 + up[x] as u16 + down[x] as u16) as f32;
            let d = c - 0.25 * nb;
            // Coring: film grain and sensor noise stay as they are.
            v += kg * (d - d.clamp(-SHARP_CORING, SHARP_CORING));
        }
        if LIGHT {
            v = curve.apply(v);
        }
        out[x] = round_u8(v);
    }
}

/// Redness amounts at full mask, in code values: added to Cr, subtracted from Cb.
#[derive(Clone, Copy, Debug)]
struct RednessShift {
    cr_add: f32,
    cb_sub: f32,
}

/// Shift one planar chroma row: `Cr += round(m·cr_add)`, `Cb -= round(m·cb_sub)`, saturating,
/// with the mask `m` interpolated between two upsampled rows.
#[inline(always)]
fn redness_planar(
    avx2: bool,
    u: &mut [u8],
    v: &mut [u8],
    m0: &[f32],
    dm: &[f32],
    wy: f32,
    k: RednessShift,
) {
    let n = u.len().min(v.len()).min(m0.len()).min(dm.len());
    let (u, v, m0, dm) = (&mut u[..n], &mut v[..n], &m0[..n], &dm[..n]);
    #[allow(unused_mut)]
    let mut x = 0;
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is only true when the CPU reports AVX2 and FMA.
        x = unsafe { x86::redness_planar(u, v, m0, dm, wy, k) };
    }
    let _ = avx2;
    for i in x..n {
        let m = m0[i] + wy * dm[i];
        v[i] = v[i].saturating_add(round_u8(m * k.cr_add));
        u[i] = u[i].saturating_sub(round_u8(m * k.cb_sub));
    }
}

/// [`redness_planar`] for an interleaved CbCr (or CrCb when `v_first`) row.
#[inline(always)]
fn redness_interleaved(
    avx2: bool,
    row: &mut [u8],
    m0: &[f32],
    dm: &[f32],
    wy: f32,
    k: RednessShift,
    v_first: bool,
) {
    let n = (row.len() / 2).min(m0.len()).min(dm.len());
    #[allow(unused_mut)]
    let mut x = 0;
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is only true when the CPU reports AVX2 and FMA.
        x = unsafe {
            x86::redness_interleaved(&mut row[..2 * n], &m0[..n], &dm[..n], wy, k, v_first)
        };
    }
    let _ = avx2;
    let (icb, icr) = if v_first { (1, 0) } else { (0, 1) };
    for ((p, &b), &d) in row[2 * x..2 * n]
        .chunks_exact_mut(2)
        .zip(&m0[x..n])
        .zip(&dm[x..n])
    {
        let m = b + wy * d;
        p[icr] = p[icr].saturating_add(round_u8(m * k.cr_add));
        p[icb] = p[icb].saturating_sub(round_u8(m * k.cb_sub));
    }
}

/// Hand-vectorised AVX2/FMA kernels for the hot loops, used when the CPU has them (checked
/// once per processor). They compute what the portable loops compute (the luma kernel in
/// 16-bit fixed point, within one code value); LLVM's auto-vectorisation of the portable
/// loops spends most of its time converting floats back to bytes 8 lanes at a time.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{RowArgs, SHARP_CORING};
    use std::arch::x86_64::*;

    /// Cell means over rows `r0..r1` for whole 32-pixel blocks of a row of cells of `s`
    /// (2, 4 or 8) pixels: sums stay in registers (16-bit lanes for values, `madd` pair sums
    /// for squares) and are reduced horizontally with `madd`/`hadd`. Returns how many cells
    /// it wrote; the caller does the rest.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn downsample_cells(
        src: &[u8],
        stride: usize,
        r0: usize,
        r1: usize,
        w: usize,
        s: usize,
        out: &mut [f32],
        mut out_sq: Option<&mut [f32]>,
    ) -> usize {
        let blocks = w / 32;
        let cells_per_block = 32 / s;
        let cells = blocks * cells_per_block;
        if blocks == 0
            || r1 <= r0
            || out.len() < cells
            || out_sq.as_ref().is_some_and(|o| o.len() < cells)
        {
            return 0;
        }
        // Every row r0..r1 must hold `w` bytes (slicing checks it before any raw load).
        let rows: [&[u8]; 8] = std::array::from_fn(|i| {
            let r = (r0 + i).min(r1 - 1);
            &src[r * stride..r * stride + w]
        });
        let nrows = (r1 - r0).min(8);
        let inv = _mm256_set1_ps(1.0 / (nrows * s) as f32);
        let ones = _mm256_set1_epi16(1);
        let order8 = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for bidx in 0..blocks {
            let x = bidx * 32;
            let mut sum_lo = _mm256_setzero_si256();
            let mut sum_hi = _mm256_setzero_si256();
            let mut sq_lo = _mm256_setzero_si256();
            let mut sq_hi = _mm256_setzero_si256();
            for row in &rows[..nrows] {
                // SAFETY: x + 32 <= w == row.len().
                let b = unsafe { _mm256_loadu_si256(row.as_ptr().add(x) as *const __m256i) };
                let lo = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(b));
                let hi = _mm256_cvtepu8_epi16(_mm256_extracti128_si256::<1>(b));
                sum_lo = _mm256_add_epi16(sum_lo, lo);
                sum_hi = _mm256_add_epi16(sum_hi, hi);
                if out_sq.is_some() {
                    sq_lo = _mm256_add_epi32(sq_lo, _mm256_madd_epi16(lo, lo));
                    sq_hi = _mm256_add_epi32(sq_hi, _mm256_madd_epi16(hi, hi));
                }
            }
            // Pair sums (i32) of pixels (0,1), (2,3)... of each half: already in order.
            let pair_lo = _mm256_madd_epi16(sum_lo, ones);
            let pair_hi = _mm256_madd_epi16(sum_hi, ones);
            let c0 = bidx * cells_per_block;
            store_cells(out, c0, s, pair_lo, pair_hi, inv, order8);
            if let Some(o) = out_sq.as_mut() {
                // The squares are already pair sums, laid out like `pair_lo`/`pair_hi`.
                store_cells(o, c0, s, sq_lo, sq_hi, inv, order8);
            }
        }
        cells
    }

    /// Reduce pair sums (pixels (0,1), (2,3)... of a 32-pixel block, low half in `lo`) to
    /// cells of `s` pixels and store their means (`inv` = 1 / pixels per cell) at `c0`.
    #[inline(always)]
    fn store_cells(
        dst: &mut [f32],
        c0: usize,
        s: usize,
        lo: __m256i,
        hi: __m256i,
        inv: __m256,
        order8: __m256i,
    ) {
        // SAFETY: only called from `downsample_cells` (AVX2 enabled), c0 + 32/s <= dst.len().
        unsafe {
            let p = dst.as_mut_ptr().add(c0);
            match s {
                2 => {
                    _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_cvtepi32_ps(lo), inv));
                    _mm256_storeu_ps(p.add(8), _mm256_mul_ps(_mm256_cvtepi32_ps(hi), inv));
                }
                4 => {
                    // hadd leaves 4-pixel cells as [0 1 4 5 | 2 3 6 7]: reorder the
                    // 64-bit pairs.
                    let q = _mm256_hadd_epi32(lo, hi);
                    let q = _mm256_permute4x64_epi64::<0b11_01_10_00>(q);
                    _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_cvtepi32_ps(q), inv));
                }
                _ => {
                    // Two hadds leave 8-pixel cells in dwords 0, 4, 1, 5.
                    let q = _mm256_hadd_epi32(lo, hi);
                    let o = _mm256_hadd_epi32(q, q);
                    let o = _mm256_permutevar8x32_epi32(o, order8);
                    let o = _mm_mul_ps(
                        _mm_cvtepi32_ps(_mm256_castsi256_si128(o)),
                        _mm256_castps256_ps128(inv),
                    );
                    _mm_storeu_ps(p, o);
                }
            }
        }
    }

    /// The interpolated body of [`super::upsample_row_n`] (`dst` starts at pixel S/2 and holds
    /// `full` cells of S pixels) for whole groups of 8 cells, with lane permutes instead of
    /// per-pixel gathers. Returns the number of cells written.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn upsample_body<const S: usize>(
        src: &[f32],
        dst: &mut [f32],
        full: usize,
    ) -> usize {
        let full = full.min(dst.len() / S).min(src.len().saturating_sub(1));
        // Output vector m (8 pixels) of a group of 8 cells: lane l is pixel 8m + l, which
        // reads cell (8m + l) / S with weight ((l % S) + 0.5) / S (8 is a multiple of S).
        let idx: [__m256i; 8] = std::array::from_fn(|m| {
            let c = |l: usize| ((m * 8 + l) / S) as i32;
            _mm256_setr_epi32(c(0), c(1), c(2), c(3), c(4), c(5), c(6), c(7))
        });
        let w = |l: usize| ((l % S) as f32 + 0.5) / S as f32;
        let wts = _mm256_setr_ps(w(0), w(1), w(2), w(3), w(4), w(5), w(6), w(7));
        let mut j = 0;
        while j + 8 <= full {
            // SAFETY: j + 8 <= full <= src.len() - 1, so src[j..j + 9] is in bounds; the
            // stores cover dst[j·S..(j + 8)·S] with (j + 8)·S <= full·S <= dst.len().
            unsafe {
                let a = _mm256_loadu_ps(src.as_ptr().add(j));
                let d = _mm256_sub_ps(_mm256_loadu_ps(src.as_ptr().add(j + 1)), a);
                let out = dst.as_mut_ptr().add(j * S);
                // 8 cells × S pixels = S output vectors.
                for (m, ix) in idx.iter().enumerate().take(S) {
                    let am = _mm256_permutevar8x32_ps(a, *ix);
                    let dmv = _mm256_permutevar8x32_ps(d, *ix);
                    _mm256_storeu_ps(out.add(8 * m), _mm256_fmadd_ps(wts, dmv, am));
                }
            }
            j += 8;
        }
        j
    }

    /// 16 floats (two vectors, already clamped to 0..=255) rounded and packed to 16 bytes.
    #[inline(always)]
    fn pack16(v0: __m256, v1: __m256) -> __m128i {
        // SAFETY: only called from functions compiled with AVX2.
        unsafe {
            let i0 = _mm256_cvtps_epi32(v0);
            let i1 = _mm256_cvtps_epi32(v1);
            // packus_epi32 interleaves 128-bit lanes: [i0 0-3, i1 0-3 | i0 4-7, i1 4-7];
            // packus_epi16 then leaves, in dwords, i0 0-3, i1 0-3, (dup), i0 4-7, ...
            let w = _mm256_packus_epi32(i0, i1);
            let b = _mm256_packus_epi16(w, w);
            let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_castsi256_si128(b)
        }
    }

    /// Rounded redness deltas (bytes) of 16 chroma samples: mask at `x`, times `amount`.
    #[inline(always)]
    fn deltas16(m: (__m256, __m256), amount: __m256) -> __m128i {
        // SAFETY: only called from functions compiled with AVX2.
        unsafe { pack16(_mm256_mul_ps(m.0, amount), _mm256_mul_ps(m.1, amount)) }
    }

    /// [`super::redness_planar`] for whole blocks of 16 samples; returns how many it did.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn redness_planar(
        u: &mut [u8],
        v: &mut [u8],
        m0: &[f32],
        dm: &[f32],
        wy: f32,
        k: super::RednessShift,
    ) -> usize {
        let n = u.len().min(v.len()).min(m0.len()).min(dm.len());
        let wyv = _mm256_set1_ps(wy);
        let (cr, cb) = (_mm256_set1_ps(k.cr_add), _mm256_set1_ps(k.cb_sub));
        let mut x = 0;
        while x + 16 <= n {
            // SAFETY: x + 16 <= n and every slice holds at least n elements.
            unsafe {
                let m = |o: usize| {
                    _mm256_fmadd_ps(
                        wyv,
                        _mm256_loadu_ps(dm.as_ptr().add(x + o)),
                        _mm256_loadu_ps(m0.as_ptr().add(x + o)),
                    )
                };
                let mm = (m(0), m(8));
                let pv = v.as_mut_ptr().add(x) as *mut __m128i;
                let pu = u.as_mut_ptr().add(x) as *mut __m128i;
                _mm_storeu_si128(pv, _mm_adds_epu8(_mm_loadu_si128(pv), deltas16(mm, cr)));
                _mm_storeu_si128(pu, _mm_subs_epu8(_mm_loadu_si128(pu), deltas16(mm, cb)));
            }
            x += 16;
        }
        x
    }

    /// [`super::redness_interleaved`] for whole blocks of 16 sample pairs; returns how many
    /// pairs it did.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn redness_interleaved(
        row: &mut [u8],
        m0: &[f32],
        dm: &[f32],
        wy: f32,
        k: super::RednessShift,
        v_first: bool,
    ) -> usize {
        let n = (row.len() / 2).min(m0.len()).min(dm.len());
        let wyv = _mm256_set1_ps(wy);
        let (cr, cb) = (_mm256_set1_ps(k.cr_add), _mm256_set1_ps(k.cb_sub));
        let zero = _mm_setzero_si128();
        // Spread 16 byte deltas over the Cr (or Cb) positions of 16 pairs.
        let spread = |d: __m128i, odd: bool| {
            let (lo, hi) = if odd {
                (_mm_unpacklo_epi8(zero, d), _mm_unpackhi_epi8(zero, d))
            } else {
                (_mm_unpacklo_epi8(d, zero), _mm_unpackhi_epi8(d, zero))
            };
            _mm256_set_m128i(hi, lo)
        };
        let mut x = 0;
        while x + 16 <= n {
            // SAFETY: x + 16 <= n: m0/dm hold n values, row holds 2n bytes.
            unsafe {
                let m = |o: usize| {
                    _mm256_fmadd_ps(
                        wyv,
                        _mm256_loadu_ps(dm.as_ptr().add(x + o)),
                        _mm256_loadu_ps(m0.as_ptr().add(x + o)),
                    )
                };
                let mm = (m(0), m(8));
                let add = spread(deltas16(mm, cr), !v_first);
                let sub = spread(deltas16(mm, cb), v_first);
                let p = row.as_mut_ptr().add(2 * x) as *mut __m256i;
                let px = _mm256_loadu_si256(p);
                _mm256_storeu_si256(p, _mm256_subs_epu8(_mm256_adds_epu8(px, add), sub));
            }
            x += 16;
        }
        x
    }

    /// `dst = round(src · scale)` as i16 (saturating), 16 values per step.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn quantize(src: &[f32], dst: &mut [i16], scale: f32) {
        let n = src.len().min(dst.len());
        let k = _mm256_set1_ps(scale);
        let mut x = 0;
        while x + 16 <= n {
            // SAFETY: x + 16 <= n <= both lengths.
            unsafe {
                let a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src.as_ptr().add(x)), k));
                let b =
                    _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src.as_ptr().add(x + 8)), k));
                // packs interleaves 128-bit lanes: [a0-3 b0-3 | a4-7 b4-7] -> a, b in order.
                let p = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(a, b));
                _mm256_storeu_si256(dst.as_mut_ptr().add(x) as *mut __m256i, p);
            }
            x += 16;
        }
        for (d, &v) in dst[x..n].iter_mut().zip(&src[x..n]) {
            *d = (v * scale).round().clamp(-32768.0, 32767.0) as i16;
        }
    }

    /// The model rows in fixed point (see `super::Q_A` etc.).
    pub(super) struct FixedRow<'a> {
        pub a0: &'a [i16],
        pub da: &'a [i16],
        pub b0: &'a [i16],
        pub db: &'a [i16],
        pub g0: &'a [i16],
        pub dg: &'a [i16],
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn luma_row_fixed_dispatch(
        sharp: bool,
        light: bool,
        out: &mut [u8],
        a: &RowArgs<'_>,
        q: &FixedRow<'_>,
    ) -> usize {
        match (sharp, light) {
            (true, true) => luma_row_fixed::<true, true>(out, a, q),
            (true, false) => luma_row_fixed::<true, false>(out, a, q),
            (false, true) => luma_row_fixed::<false, true>(out, a, q),
            (false, false) => luma_row_fixed::<false, false>(out, a, q),
        }
    }

    /// [`super::luma_row`] in 16-bit fixed point, 16 pixels per step with one vector per
    /// quantity (the float kernel needs two): values in Q4 (1/16 code), products by
    /// `mulhrs` (`(a·b + 2¹⁴) >> 15`). A is Q14, B Q4, G Q12, the row weight Q15 and the
    /// curve's normalised luma Q15. Returns the number of pixels written (a multiple of 16);
    /// the caller finishes the row with the float code. Differs from the float code by at
    /// most one code value (rounding).
    ///
    #[target_feature(enable = "avx2,fma")]
    fn luma_row_fixed<const SHARP: bool, const LIGHT: bool>(
        out: &mut [u8],
        a: &RowArgs<'_>,
        q: &FixedRow<'_>,
    ) -> usize {
        let n = out.len();
        // Bounds: every input is at least `n` long (slicing panics otherwise, before any
        // raw access), so loads at x..x+16 with x + 16 <= n stay inside.
        let (left, center, right, up, down) = (
            &a.left[..n],
            &a.center[..n],
            &a.right[..n],
            &a.up[..n],
            &a.down[..n],
        );
        let (a0, da, b0, db, g0, dg) = (
            &q.a0[..n],
            &q.da[..n],
            &q.b0[..n],
            &q.db[..n],
            &q.g0[..n],
            &q.dg[..n],
        );
        let wy = _mm256_set1_epi16((a.wy * 32768.0).round().clamp(0.0, 32767.0) as i16);
        let core = (SHARP_CORING * 4.0).round() as i16; // in quarter codes, like `d4`
        let (core_lo, core_hi) = (_mm256_set1_epi16(-core), _mm256_set1_epi16(core));
        let zero = _mm256_setzero_si256();
        let black = _mm256_set1_epi16(16 * 16);
        let range = _mm256_set1_epi16(219 * 16);
        // x = (v - 256) / 3504 (normalised limited-range luma) in Q12: mulhrs(xq·8, K) with
        // K = 4096·32768 / (3504·8).
        let to_x12 = _mm256_set1_epi16((4096.0f32 * 32768.0 / (3504.0 * 8.0)).round() as i16);
        let cq = |c: f32| _mm256_set1_epi16((c * 16.0).round().clamp(-32768.0, 32767.0) as i16);
        let (c1, c2, c3) = (cq(a.curve.c1), cq(a.curve.c2), cq(a.curve.c3));
        let round = _mm256_set1_epi16(8);
        let mut x = 0;
        while x + 16 <= n {
            // SAFETY: x + 16 <= n and all slices hold n elements (see above).
            unsafe {
                let ld8 = |s: &[u8]| {
                    _mm256_cvtepu8_epi16(_mm_loadu_si128(s.as_ptr().add(x) as *const __m128i))
                };
                let ld16 = |s: &[i16]| _mm256_loadu_si256(s.as_ptr().add(x) as *const __m256i);
                let c = ld8(center);
                let ka = _mm256_add_epi16(ld16(a0), _mm256_mulhrs_epi16(ld16(da), wy));
                let kb = _mm256_add_epi16(ld16(b0), _mm256_mulhrs_epi16(ld16(db), wy));
                // A(Q14)·(c·32) >> 15 = 16·A·c: Q4.
                let mut v =
                    _mm256_add_epi16(_mm256_mulhrs_epi16(ka, _mm256_slli_epi16::<5>(c)), kb);
                if SHARP {
                    let kg = _mm256_add_epi16(ld16(g0), _mm256_mulhrs_epi16(ld16(dg), wy));
                    let nb = _mm256_add_epi16(
                        _mm256_add_epi16(ld8(left), ld8(right)),
                        _mm256_add_epi16(ld8(up), ld8(down)),
                    );
                    // d4 = 4·(c - mean of 4) in quarter codes, cored.
                    let d4 = _mm256_sub_epi16(_mm256_slli_epi16::<2>(c), nb);
                    let cored = _mm256_sub_epi16(
                        d4,
                        _mm256_min_epi16(_mm256_max_epi16(d4, core_lo), core_hi),
                    );
                    // G(Q12)·(d4·32) >> 15 = 4·G·d4 = 16·G·d: Q4.
                    v = _mm256_add_epi16(v, _mm256_mulhrs_epi16(kg, _mm256_slli_epi16::<5>(cored)));
                }
                if LIGHT {
                    let xq =
                        _mm256_min_epi16(_mm256_max_epi16(_mm256_sub_epi16(v, black), zero), range);
                    // x in Q12, capped at 4095 so that Q15 (<< 3) fits in 16 bits.
                    let x12 = _mm256_mulhrs_epi16(_mm256_slli_epi16::<3>(xq), to_x12);
                    let x15 =
                        _mm256_slli_epi16::<3>(_mm256_min_epi16(x12, _mm256_set1_epi16(4095)));
                    let p = _mm256_add_epi16(c2, _mm256_mulhrs_epi16(c3, x15));
                    let p = _mm256_add_epi16(c1, _mm256_mulhrs_epi16(p, x15));
                    v = _mm256_add_epi16(v, _mm256_mulhrs_epi16(p, x15));
                }
                // Round Q4 to codes, saturate to 0..=255, keep the 16 bytes in order.
                let v = _mm256_srai_epi16::<4>(_mm256_add_epi16(v, round));
                let b = _mm256_permute4x64_epi64::<0b00_00_10_00>(_mm256_packus_epi16(v, v));
                _mm_storeu_si128(
                    out.as_mut_ptr().add(x) as *mut __m128i,
                    _mm256_castsi256_si128(b),
                );
            }
            x += 16;
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Img {
        w: usize,
        h: usize,
        y: Vec<u8>,
        u: Vec<u8>,
        v: Vec<u8>,
    }

    impl Img {
        fn new(w: usize, h: usize, f: impl Fn(usize, usize) -> (u8, u8, u8)) -> Img {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let mut img = Img {
                w,
                h,
                y: vec![0; w * h],
                u: vec![0; cw * ch],
                v: vec![0; cw * ch],
            };
            for r in 0..h {
                for c in 0..w {
                    let (y, u, v) = f(c, r);
                    img.y[r * w + c] = y;
                    if r % 2 == 0 && c % 2 == 0 {
                        img.u[(r / 2) * cw + c / 2] = u;
                        img.v[(r / 2) * cw + c / 2] = v;
                    }
                }
            }
            img
        }

        fn process(&mut self, levels: &Levels) {
            let cw = self.w.div_ceil(2);
            let mut b = Beauty::new(self.w, self.h);
            b.process(
                Planes {
                    y: &mut self.y,
                    y_stride: self.w,
                    chroma: Chroma::Planar {
                        u: &mut self.u,
                        u_stride: cw,
                        v: &mut self.v,
                        v_stride: cw,
                    },
                },
                levels,
            )
            .unwrap();
        }
    }

    /// Deterministic noise in -amp..=amp.
    fn noise(x: usize, y: usize, amp: i32) -> i32 {
        let mut h = (x as u32).wrapping_mul(0x9E37_79B1) ^ (y as u32).wrapping_mul(0x85EB_CA77);
        h ^= h >> 15;
        h = h.wrapping_mul(0x2C1B_3C6D);
        h ^= h >> 12;
        (h % (2 * amp as u32 + 1)) as i32 - amp
    }

    /// Skin-coloured noisy patch (hue ≈ 133°) on the left, neutral grey noise on the right.
    fn skin_and_grey(w: usize, h: usize) -> Img {
        Img::new(w, h, |x, y| {
            let n = noise(x, y, 8);
            if x < w / 2 {
                ((150 + n) as u8, 112, 146)
            } else {
                ((150 + n) as u8, 128, 128)
            }
        })
    }

    fn hf_energy(img: &Img, x0: usize, x1: usize, y0: usize, y1: usize) -> f64 {
        let mut e = 0.0;
        let mut n = 0.0;
        for y in y0.max(1)..y1.min(img.h - 1) {
            for x in x0.max(1)..x1.min(img.w - 1) {
                let p = |dx: isize, dy: isize| {
                    img.y[(y as isize + dy) as usize * img.w + (x as isize + dx) as usize] as f64
                };
                let lap = 4.0 * p(0, 0) - p(-1, 0) - p(1, 0) - p(0, -1) - p(0, 1);
                e += lap * lap;
                n += 1.0;
            }
        }
        e / n
    }

    #[test]
    fn zero_levels_do_not_touch_the_frame() {
        let mut img = skin_and_grey(64, 48);
        let before = (img.y.clone(), img.u.clone(), img.v.clone());
        img.process(&Levels::OFF);
        assert_eq!(before, (img.y, img.u, img.v));
    }

    #[test]
    fn zero_levels_need_no_valid_planes() {
        let mut b = Beauty::new(16, 16);
        let r = b.process(
            Planes {
                y: &mut [],
                y_stride: 0,
                chroma: Chroma::Interleaved {
                    uv: &mut [],
                    stride: 0,
                    v_first: false,
                },
            },
            &Levels::OFF,
        );
        assert!(r.is_ok());
    }

    #[test]
    fn short_planes_are_an_error_not_a_panic() {
        let mut b = Beauty::new(16, 16);
        let mut y = vec![0u8; 16 * 15];
        let mut uv = vec![0u8; 16 * 8];
        let r = b.process(
            Planes {
                y: &mut y,
                y_stride: 16,
                chroma: Chroma::Interleaved {
                    uv: &mut uv,
                    stride: 16,
                    v_first: false,
                },
            },
            &Levels::SHOWROOM,
        );
        assert_eq!(r.unwrap_err().plane, "Y");
    }

    #[test]
    fn smoothing_acts_on_skin_not_on_grey() {
        let mut img = skin_and_grey(128, 64);
        let skin0 = hf_energy(&img, 8, 56, 8, 56);
        let grey0 = hf_energy(&img, 72, 120, 8, 56);
        img.process(&Levels {
            smoothness: 1.0,
            ..Levels::OFF
        });
        let skin1 = hf_energy(&img, 8, 56, 8, 56);
        let grey1 = hf_energy(&img, 72, 120, 8, 56);
        assert!(skin1 < 0.3 * skin0, "skin {skin0} -> {skin1}");
        assert!((grey1 - grey0).abs() < 1e-9, "grey {grey0} -> {grey1}");
    }

    #[test]
    fn smoothing_without_mask_acts_everywhere() {
        let mut img = skin_and_grey(128, 64);
        let grey0 = hf_energy(&img, 72, 120, 8, 56);
        img.process(&Levels {
            smoothness: 1.0,
            skin_mask: false,
            ..Levels::OFF
        });
        assert!(hf_energy(&img, 72, 120, 8, 56) < 0.3 * grey0);
    }

    #[test]
    fn smoothing_keeps_strong_edges() {
        // A skin-coloured step of 80 codes: edge-preserving smoothing must keep it steep.
        let mut img = Img::new(64, 64, |x, _| (if x < 32 { 110 } else { 190 }, 112, 146));
        img.process(&Levels {
            smoothness: 1.0,
            ..Levels::OFF
        });
        let row = &img.y[32 * 64..33 * 64];
        assert!(row[29] < 120 && row[34] > 180, "{:?}", &row[26..38]);
    }

    #[test]
    fn smoothing_grows_with_level() {
        let mut last = f64::MAX;
        for s in [0.25, 0.5, 0.75, 1.0] {
            let mut img = skin_and_grey(96, 64);
            img.process(&Levels {
                smoothness: s,
                ..Levels::OFF
            });
            let e = hf_energy(&img, 8, 40, 8, 56);
            assert!(e < last, "level {s}: {e} !< {last}");
            last = e;
        }
    }

    #[test]
    fn sharpening_acts_off_skin_only() {
        let mut img = skin_and_grey(128, 64);
        let skin0 = hf_energy(&img, 8, 48, 8, 56);
        let grey0 = hf_energy(&img, 80, 120, 8, 56);
        img.process(&Levels {
            sharpness: 1.0,
            ..Levels::OFF
        });
        let skin1 = hf_energy(&img, 8, 48, 8, 56);
        let grey1 = hf_energy(&img, 80, 120, 8, 56);
        assert!(grey1 > 1.5 * grey0, "grey {grey0} -> {grey1}");
        assert!((skin1 - skin0).abs() < 1e-9, "skin {skin0} -> {skin1}");
    }

    #[test]
    fn lightening_curve_is_monotonic_and_keeps_end_points() {
        for contrast in [Contrast::Low, Contrast::Normal, Contrast::High] {
            for l in [0.25f32, 0.5, 1.0] {
                let c = Curve::new(&Levels {
                    lightening: l,
                    contrast,
                    ..Levels::OFF
                });
                let mut prev = -1.0;
                for v in 0..=255 {
                    let o = c.apply(v as f32);
                    assert!(o >= prev, "{contrast:?} {l}: not monotonic at {v}");
                    assert!(o >= v as f32 - 1e-3 || !(16..=235).contains(&v));
                    prev = o;
                }
                assert_eq!(round_u8(c.apply(16.0)), 16);
                assert_eq!(round_u8(c.apply(235.0)), 235);
                assert!(c.apply(126.0) > 130.0);
            }
        }
    }

    #[test]
    fn lightening_alone_uses_the_same_curve_as_the_full_pass() {
        let lv = Levels {
            lightening: 0.7,
            contrast: Contrast::High,
            ..Levels::OFF
        };
        let mut a = skin_and_grey(40, 30);
        a.process(&lv);
        let mut b = skin_and_grey(40, 30);
        // A vanishing sharpness forces the full pass; its G is ~0 so luma must match, up to
        // the rounding of the fixed-point AVX2 kernel (exactly with the portable code).
        b.process(&Levels {
            sharpness: 1e-9,
            ..lv
        });
        let diffs: Vec<u8> = a.y.iter().zip(&b.y).map(|(p, q)| p.abs_diff(*q)).collect();
        assert!(diffs.iter().all(|&d| d <= 1), "{diffs:?}");
        let mean = diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64;
        assert!(mean < 0.1, "mean difference {mean}");
        if !detect_avx2() {
            assert_eq!(a.y, b.y);
        }
    }

    #[test]
    fn redness_shifts_skin_chroma_only() {
        let mut img = skin_and_grey(128, 64);
        let before = (img.u.clone(), img.v.clone(), img.y.clone());
        img.process(&Levels {
            redness: 1.0,
            ..Levels::OFF
        });
        assert_eq!(img.y, before.2, "redness must not touch luma");
        let cw = 64;
        let at = |p: &[u8], x: usize, y: usize| p[y * cw + x] as i32;
        // Inside the skin half: Cr up, Cb down a little.
        assert_eq!(
            at(&img.v, 10, 16) - at(&before.1, 10, 16),
            REDNESS_CR as i32
        );
        assert!(at(&img.u, 10, 16) < at(&before.0, 10, 16));
        // Far inside the grey half: untouched.
        for x in 48..64 {
            assert_eq!(at(&img.v, x, 16), 128);
            assert_eq!(at(&img.u, x, 16), 128);
        }
    }

    #[test]
    fn nv12_and_i420_give_the_same_result() {
        let lv = Levels::SHOWROOM;
        let mut a = skin_and_grey(70, 42);
        a.process(&lv);
        let b0 = skin_and_grey(70, 42);
        let mut y = b0.y.clone();
        let mut uv: Vec<u8> = b0.u.iter().zip(&b0.v).flat_map(|(&u, &v)| [u, v]).collect();
        Beauty::new(70, 42)
            .process(
                Planes {
                    y: &mut y,
                    y_stride: 70,
                    chroma: Chroma::Interleaved {
                        uv: &mut uv,
                        stride: 70,
                        v_first: false,
                    },
                },
                &lv,
            )
            .unwrap();
        assert_eq!(a.y, y);
        let u: Vec<u8> = uv.iter().step_by(2).copied().collect();
        let v: Vec<u8> = uv.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(a.u, u);
        assert_eq!(a.v, v);
    }

    #[test]
    fn simd_and_portable_paths_agree() {
        let lv = Levels::SHOWROOM;
        let run = |simd: bool| {
            let mut img = skin_and_grey(200, 120);
            let mut b = Beauty::new(200, 120);
            b.set_simd(simd);
            b.process(
                Planes {
                    y: &mut img.y,
                    y_stride: 200,
                    chroma: Chroma::Planar {
                        u: &mut img.u,
                        u_stride: 100,
                        v: &mut img.v,
                        v_stride: 100,
                    },
                },
                &lv,
            )
            .unwrap();
            (img.y, img.u, img.v)
        };
        let (a, b) = (run(true), run(false));
        let max_diff = a.0.iter().zip(&b.0).map(|(p, q)| p.abs_diff(*q)).max();
        assert!(max_diff <= Some(1), "{max_diff:?}");
        assert_eq!(a.1, b.1);
        assert_eq!(a.2, b.2);
    }

    #[test]
    fn odd_and_tiny_sizes_with_padding() {
        for (w, h) in [
            (1usize, 1usize),
            (2, 2),
            (3, 5),
            (17, 9),
            (641, 359),
            (33, 1201),
        ] {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let (ys, cs) = (w + 7, 2 * cw + 3);
            let mut y = vec![120u8; ys * h];
            let mut uv = vec![0u8; cs * ch];
            for p in uv.chunks_exact_mut(2) {
                p[0] = 112;
                p[1] = 146;
            }
            let mut b = Beauty::new(w, h);
            b.process(
                Planes {
                    y: &mut y,
                    y_stride: ys,
                    chroma: Chroma::Interleaved {
                        uv: &mut uv,
                        stride: cs,
                        v_first: false,
                    },
                },
                &Levels {
                    smoothness: 1.0,
                    lightening: 1.0,
                    redness: 1.0,
                    sharpness: 1.0,
                    ..Levels::OFF
                },
            )
            .unwrap();
            // A flat skin frame stays flat (only the tone curve moves it) and padding is kept.
            let first = y[0];
            for r in 0..h {
                assert!(
                    y[r * ys..r * ys + w]
                        .iter()
                        .all(|&p| p.abs_diff(first) <= 1)
                );
                assert!(y[r * ys + w..(r + 1) * ys].iter().all(|&p| p == 120));
            }
            assert!(first > 120);
        }
    }

    #[test]
    fn downsampling_kernel_matches_portable_code() {
        for s in [2usize, 4, 8] {
            for (w, h) in [(100usize, 9usize), (67, 16), (301, 17), (32, 8)] {
                let stride = w + 5;
                let src: Vec<u8> = (0..stride * h)
                    .map(|i| (noise(i % stride, i / stride, 127) + 128) as u8)
                    .collect();
                let (lw, lh) = (w.div_ceil(s), h.div_ceil(s));
                let run = |avx2: bool| {
                    let mut out = vec![0f32; lw * lh];
                    let mut out_sq = vec![0f32; lw * lh];
                    let mut acc = vec![0u16; w];
                    let mut acc_sq = vec![0u32; w];
                    downsample_plane(
                        avx2 && detect_avx2(),
                        &src,
                        stride,
                        w,
                        h,
                        s,
                        &mut out,
                        &mut acc,
                        Some((&mut out_sq, &mut acc_sq)),
                    );
                    (out, out_sq)
                };
                let (a, b) = (run(true), run(false));
                for (p, q) in a.0.iter().zip(&b.0).chain(a.1.iter().zip(&b.1)) {
                    assert!(
                        (p - q).abs() <= 1e-3 * q.abs().max(1.0),
                        "s={s} {w}x{h}: {p} vs {q}"
                    );
                }
                // Spot check one full cell against a direct mean.
                let mut sum = 0.0;
                for r in 0..s.min(h) {
                    for c in 0..s {
                        sum += src[r * stride + c] as f32;
                    }
                }
                assert!((a.0[0] - sum / (s * s.min(h)) as f32).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn upsampling_reproduces_linear_ramps() {
        for s in [2usize, 4, 8] {
            for avx2 in [false, true] {
                let cells: Vec<f32> = (0..37).map(|j| j as f32 * s as f32).collect();
                let mut out = vec![0.0; 37 * s - 1];
                upsample_row(&cells, &mut out, s, avx2 && detect_avx2());
                // Cell j's centre is pixel s·j + (s-1)/2: a linear ramp maps to x - (s-1)/2.
                for (x, &o) in out.iter().enumerate() {
                    let want = (x as f32 - (s as f32 - 1.0) / 2.0).clamp(0.0, 36.0 * s as f32);
                    assert!(
                        (o - want).abs() < 1e-3,
                        "s={s} avx2={avx2} x={x}: {o} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn box_filter_means() {
        let (w, h) = (7, 5);
        let src: Vec<f32> = (0..w * h).map(|i| (i % 3) as f32).collect();
        let mut dst = vec![0.0; w * h];
        let (mut col, mut row) = (vec![0.0; w], vec![0.0; w + 4]);
        box_filter(&src, &mut dst, w, h, 2, &mut col, &mut row, |v| v);
        // Interior cell (3, 2): plain 5×5 mean.
        let mut sum = 0.0;
        for y in 0..5 {
            for x in 1..6 {
                sum += src[y * w + x];
            }
        }
        assert!((dst[2 * w + 3] - sum / 25.0).abs() < 1e-5);
        let flat = vec![3.0; w * h];
        box_filter(&flat, &mut dst, w, h, 2, &mut col, &mut row, |v| v);
        assert!(dst.iter().all(|&v| (v - 3.0).abs() < 1e-5));
    }
}
