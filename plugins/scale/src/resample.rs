//! Plane resampling without GStreamer types: strided 8-bit planes resized by a separable
//! convolution in 14-bit fixed point.
//!
//! Method: a vertical pass (each output row a weighted sum of source rows: one
//! multiply-add per tap over whole rows, which the compiler turns into AVX2 or SSE2 code),
//! then the horizontal pass done the same way on the transposed picture, and a transpose
//! back. Row-wise passes vectorise across the full width, which a per-pixel horizontal dot
//! product on one-byte samples does not: that is where GStreamer's scalar N-tap path (and
//! `fast_image_resize`'s one-channel path, tried first) spend their time.
//!
//! Pixel centres of the whole picture are aligned (output pixel i sits at source position
//! (i + 0.5) * in / out - 0.5, as in swscale and GStreamer's video-scaler); when
//! downscaling, the kernel is widened by the ratio so it low-passes instead of aliasing;
//! taps that fall outside the picture are folded onto the edge pixel. Rows are slices of
//! `width` bytes at `stride` intervals: padding at the end of each row is never read or
//! written. Weights and scratch buffers are computed on a size change only, never per frame.

/// The resampling kernel of a plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Triangle, radius 1 (widened with the scale factor when downscaling).
    Bilinear,
    /// Catmull-Rom cubic (B=0, C=0.5), radius 2.
    CatmullRom,
    /// Mitchell-Netravali cubic (B=C=1/3), radius 2: softer, less ringing.
    Mitchell,
    /// Lanczos with 3 lobes, radius 3.
    Lanczos3,
}

impl Kernel {
    fn radius(self) -> f64 {
        match self {
            Kernel::Bilinear => 1.0,
            Kernel::CatmullRom | Kernel::Mitchell => 2.0,
            Kernel::Lanczos3 => 3.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        let x = x.abs();
        let cubic = |b: f64, c: f64| {
            if x < 1.0 {
                ((12.0 - 9.0 * b - 6.0 * c) * x * x * x
                    + (-18.0 + 12.0 * b + 6.0 * c) * x * x
                    + (6.0 - 2.0 * b))
                    / 6.0
            } else if x < 2.0 {
                ((-b - 6.0 * c) * x * x * x
                    + (6.0 * b + 30.0 * c) * x * x
                    + (-12.0 * b - 48.0 * c) * x
                    + (8.0 * b + 24.0 * c))
                    / 6.0
            } else {
                0.0
            }
        };
        match self {
            Kernel::Bilinear => (1.0 - x).max(0.0),
            Kernel::CatmullRom => cubic(0.0, 0.5),
            Kernel::Mitchell => cubic(1.0 / 3.0, 1.0 / 3.0),
            Kernel::Lanczos3 => {
                if x < 1e-9 {
                    1.0
                } else if x < 3.0 {
                    let px = std::f64::consts::PI * x;
                    3.0 * px.sin() * (px / 3.0).sin() / (px * px)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Why a plane could not be resampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaneError {
    /// The slice is shorter than `stride * (height - 1) + width`, or the stride is under the width.
    TooShort {
        width: usize,
        height: usize,
        stride: usize,
        len: usize,
    },
}

impl std::fmt::Display for PlaneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlaneError::TooShort {
                width,
                height,
                stride,
                len,
            } => write!(
                f,
                "plane of {width}x{height} with stride {stride} needs at least \
                 {} bytes, got {len}",
                needed(*width, *height, *stride)
            ),
        }
    }
}

impl std::error::Error for PlaneError {}

fn needed(width: usize, height: usize, stride: usize) -> usize {
    if height == 0 {
        0
    } else {
        stride * (height - 1) + width
    }
}

fn check(width: usize, height: usize, stride: usize, len: usize) -> Result<(), PlaneError> {
    if stride < width || len < needed(width, height, stride) {
        return Err(PlaneError::TooShort {
            width,
            height,
            stride,
            len,
        });
    }
    Ok(())
}

/// Fixed-point weights: 1.0 is `ONE`.
const SHIFT: u32 = 14;
const ONE: i32 = 1 << SHIFT;

/// One axis of a resize: for output i, `taps` weights applied to source samples
/// `start[i] .. start[i] + taps`.
#[derive(Debug, Clone, PartialEq)]
struct Taps {
    src: usize,
    dst: usize,
    taps: usize,
    start: Vec<usize>,
    weights: Vec<i32>,
    /// One past the last sample any window reads: how long a row the pass needs.
    end: usize,
}

impl Taps {
    /// `pad`: the tap count is rounded up to a multiple of it (zero weights), for SIMD that
    /// reads taps in fixed groups. With `pad` 1 every window lies inside the source; with a
    /// larger `pad` a window may run up to `pad - 1` samples past its end (zero weights):
    /// the caller gives the pass rows that long.
    fn new(kernel: Kernel, src: usize, dst: usize, pad: usize) -> Self {
        let ratio = src as f64 / dst as f64;
        let widen = ratio.max(1.0);
        let reach = kernel.radius() * widen;
        // Folded weights of every output: (first sample, weights from there).
        let mut windows: Vec<(usize, Vec<f64>)> = Vec::with_capacity(dst);
        let mut acc = vec![0f64; src];
        for i in 0..dst {
            let centre = (i as f64 + 0.5) * ratio - 0.5;
            let lo = (centre - reach).floor() as isize;
            let hi = (centre + reach).ceil() as isize;
            // Fold taps outside the picture onto its edge pixels.
            let (mut min_p, mut max_p) = (usize::MAX, 0usize);
            for p in lo..=hi {
                let w = kernel.eval((p as f64 - centre) / widen);
                if w == 0.0 {
                    continue;
                }
                let q = p.clamp(0, src as isize - 1) as usize;
                acc[q] += w;
                min_p = min_p.min(q);
                max_p = max_p.max(q);
            }
            if min_p == usize::MAX {
                // Unreachable for the kernels above (the centre tap is never 0): nearest.
                let q = (centre.round().max(0.0) as usize).min(src - 1);
                acc[q] = 1.0;
                (min_p, max_p) = (q, q);
            }
            let sum: f64 = acc[min_p..=max_p].iter().sum();
            windows.push((min_p, acc[min_p..=max_p].iter().map(|w| w / sum).collect()));
            acc[min_p..=max_p].fill(0.0);
        }
        let span = windows.iter().map(|w| w.1.len()).max().unwrap_or(1);
        let taps = if pad > 1 {
            span.div_ceil(pad) * pad
        } else {
            span
        };
        let mut start = Vec::with_capacity(dst);
        let mut weights = Vec::with_capacity(dst * taps);
        for (first, ws) in windows {
            // Inside the source where possible (always, unpadded: span <= src).
            let s = first.min(src.saturating_sub(taps));
            let row_start = weights.len();
            weights.resize(row_start + taps, 0);
            let row = &mut weights[row_start..];
            let mut total = 0;
            for (k, w) in ws.iter().enumerate() {
                let v = (w * ONE as f64).round() as i32;
                row[first - s + k] = v;
                total += v;
            }
            // Rounding leftovers go to the largest weight so flat pictures stay exact.
            if let Some(big) = (0..taps).max_by_key(|&k| row[k]) {
                row[big] += ONE - total;
            }
            start.push(s);
        }
        let end = start.iter().max().map_or(src, |&s| (s + taps).max(src));
        Self {
            src,
            dst,
            taps,
            start,
            weights,
            end,
        }
    }
}

/// Fraction bits of the 16-bit intermediate between the two passes: values keep the
/// overshoot of the kernels' negative lobes (no clipping until the end) and 6 bits below
/// the code value. -512.0 ..= 511.98 fits, far beyond what any kernel here reaches.
const MID_BITS: u32 = 6;

/// A sample type a pass reads or writes.
trait Sample: Copy + Default {
    fn get(self) -> i32;
    /// From an accumulator holding `ONE` * value, in this type's fixed point.
    fn put(acc: i32, shift: u32) -> Self;
    /// From an already shifted value (saturated to 16 bits).
    fn from_i16(v: i16) -> Self;
    /// Fraction bits of this type.
    const FRAC: u32;
}

impl Sample for u8 {
    #[inline(always)]
    fn get(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn put(acc: i32, shift: u32) -> Self {
        ((acc + (1 << (shift - 1))) >> shift).clamp(0, 255) as u8
    }
    #[inline(always)]
    fn from_i16(v: i16) -> Self {
        v.clamp(0, 255) as u8
    }
    const FRAC: u32 = 0;
}

impl Sample for i16 {
    #[inline(always)]
    fn get(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn put(acc: i32, shift: u32) -> Self {
        ((acc + (1 << (shift - 1))) >> shift).clamp(i16::MIN as i32, i16::MAX as i32) as i16
    }
    #[inline(always)]
    fn from_i16(v: i16) -> Self {
        v
    }
    const FRAC: u32 = MID_BITS;
}

/// Output rows as weighted sums of input rows: `dst` row i = sum over k of
/// `weights[i][k] * src row (start[i] + k)`, each row `width` samples.
///
/// Columns go in blocks of `L` with the block's accumulators in registers across all taps
/// (a row-at-a-time accumulator in memory spent most of its time loading and storing it);
/// the tail of each row goes through `acc`.
#[inline(always)]
fn rows_pass<I: Sample, O: Sample>(
    t: &Taps,
    src: &[I],
    src_stride: usize,
    width: usize,
    dst: &mut [O],
    dst_stride: usize,
    acc: &mut [i32],
) {
    const L: usize = 32;
    let shift = SHIFT + I::FRAC - O::FRAC;
    for i in 0..t.dst {
        let weights = &t.weights[i * t.taps..(i + 1) * t.taps];
        let first = t.start[i] * src_stride;
        let out_row = &mut dst[i * dst_stride..i * dst_stride + width];
        let mut x = 0;
        while x + L <= width {
            let mut a = [0i32; L];
            for (k, &w) in weights.iter().enumerate() {
                if w == 0 {
                    continue;
                }
                let off = first + k * src_stride + x;
                let row: &[I; L] = src[off..off + L].try_into().expect("L samples");
                for (a, p) in a.iter_mut().zip(row) {
                    *a += w * p.get();
                }
            }
            let out: &mut [O; L] = (&mut out_row[x..x + L]).try_into().expect("L samples");
            for (o, &a) in out.iter_mut().zip(&a) {
                *o = O::put(a, shift);
            }
            x += L;
        }
        row_tail(
            weights,
            src,
            first + x,
            src_stride,
            &mut out_row[x..],
            acc,
            shift,
        );
    }
}

/// Columns `out.len()` wide from `first` on (the rest of a row the block loops left): one
/// accumulator per column in `acc`, taps one after the other.
#[inline(always)]
fn row_tail<I: Sample, O: Sample>(
    weights: &[i32],
    src: &[I],
    first: usize,
    src_stride: usize,
    out: &mut [O],
    acc: &mut [i32],
    shift: u32,
) {
    let n = out.len();
    if n == 0 {
        return;
    }
    let acc = &mut acc[..n];
    acc.fill(0);
    for (k, &w) in weights.iter().enumerate() {
        let off = first + k * src_stride;
        for (a, p) in acc.iter_mut().zip(&src[off..off + n]) {
            *a += w * p.get();
        }
    }
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = O::put(a, shift);
    }
}

/// AVX2 vertical pass from bytes: taps in pairs, the two rows' bytes interleaved so one
/// `pmaddwd` does two taps for 8 pixels (the plain loop's `pmulld` does one tap, at twice
/// the cost). 16 pixels per step, accumulators in registers; the row tail goes through
/// `row_tail`. At most 32 taps.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rows_u8_avx2<O: Sample>(
    t: &Taps,
    src: &[u8],
    src_stride: usize,
    width: usize,
    dst: &mut [O],
    dst_stride: usize,
    acc: &mut [i32],
) {
    use std::arch::x86_64::*;
    let shift = SHIFT - O::FRAC;
    let n = t.taps;
    let body = width - width % 16;
    let round = _mm256_set1_epi32(1 << (shift - 1));
    let count = _mm_cvtsi32_si128(shift as i32);
    for i in 0..t.dst {
        let weights = &t.weights[i * n..(i + 1) * n];
        let first = t.start[i] * src_stride;
        let row = |k: usize| &src[first + k * src_stride..first + k * src_stride + width];
        // The rows of this output and the weights paired for `pmaddwd`, once per output row.
        let mut pairs: [(&[u8], &[u8], __m256i); 16] = [(&[], &[], _mm256_setzero_si256()); 16];
        let np = n.div_ceil(2);
        for (j, pair) in pairs.iter_mut().enumerate().take(np) {
            let (k0, k1) = (2 * j, 2 * j + 1);
            let (w0, w1) = (weights[k0], weights.get(k1).copied().unwrap_or(0));
            let r1 = if k1 < n { row(k1) } else { row(k0) };
            *pair = (row(k0), r1, _mm256_set1_epi32((w1 << 16) | (w0 & 0xffff)));
        }
        let out_row = &mut dst[i * dst_stride..i * dst_stride + width];
        let mut x = 0;
        while x < body {
            let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            for &(r0, r1, w) in &pairs[..np] {
                let (r0, r1) = (&r0[x..x + 16], &r1[x..x + 16]);
                // SAFETY: r0 and r1 are 16-byte slices; loadu needs no alignment. (An odd
                // last tap pairs its row with itself at weight 0.)
                let (b0, b1) = unsafe {
                    (
                        _mm_loadu_si128(r0.as_ptr().cast()),
                        _mm_loadu_si128(r1.as_ptr().cast()),
                    )
                };
                lo = _mm256_add_epi32(
                    lo,
                    _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(b0, b1)), w),
                );
                hi = _mm256_add_epi32(
                    hi,
                    _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(b0, b1)), w),
                );
            }
            let lo = _mm256_sra_epi32(_mm256_add_epi32(lo, round), count);
            let hi = _mm256_sra_epi32(_mm256_add_epi32(hi, round), count);
            // packs works per 128-bit lane: [lo0-3 hi0-3 | lo4-7 hi4-7] -> reorder quads.
            let v = _mm256_permute4x64_epi64::<0xD8>(_mm256_packs_epi32(lo, hi));
            let mut a = [0i16; 16];
            // SAFETY: a holds 16 i16: one 32-byte store.
            unsafe { _mm256_storeu_si256(a.as_mut_ptr().cast(), v) };
            for (o, &v) in out_row[x..x + 16].iter_mut().zip(&a) {
                *o = O::from_i16(v);
            }
            x += 16;
        }
        row_tail(
            weights,
            src,
            first + body,
            src_stride,
            &mut out_row[body..],
            acc,
            shift,
        );
    }
}

fn rows<O: Sample>(
    t: &Taps,
    src: &[u8],
    src_stride: usize,
    width: usize,
    dst: &mut [O],
    dst_stride: usize,
    acc: &mut [i32],
) {
    // (More than 32 taps, from downscales beyond 5:1 with Lanczos, take the plain loop.)
    #[cfg(target_arch = "x86_64")]
    if t.taps <= 32 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above); the function is otherwise safe.
        unsafe { rows_u8_avx2(t, src, src_stride, width, dst, dst_stride, acc) };
        return;
    }
    rows_pass(t, src, src_stride, width, dst, dst_stride, acc)
}

/// One output of the horizontal pass: sum over k of `w[x][k] * src[start[x] + k]`, from the
/// 16-bit intermediate to a byte.
#[inline(always)]
fn hdot(t: &Taps, w16: &[i16], src: &[i16], x: usize) -> u8 {
    let (n, st) = (t.taps, t.start[x]);
    let acc: i32 = w16[x * n..x * n + n]
        .iter()
        .zip(&src[st..st + n])
        .map(|(&w, &p)| w as i32 * p as i32)
        .sum();
    u8::put(acc, SHIFT + MID_BITS)
}

/// Horizontal pass of one row. `src` must hold `t.end` samples.
fn hrow_scalar(t: &Taps, w16: &[i16], src: &[i16], dst: &mut [u8]) {
    for (x, o) in dst.iter_mut().enumerate().take(t.dst) {
        *o = hdot(t, w16, src, x);
    }
}

/// The same with SSSE3: each output's taps in groups of 8 by `pmaddwd` (two products per
/// 32-bit lane), four outputs reduced together by `phaddd`, packed to bytes: the shape of
/// swscale's horizontal scaler. `N` (8 or 16) is `t.taps`, a constant so the tap loop
/// unrolls; the caller has checked that every window fits in `src`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
fn hrow_ssse3<const N: usize>(t: &Taps, w16: &[i16], src: &[i16], dst: &mut [u8]) {
    use std::arch::x86_64::*;
    let w16 = &w16[..t.dst * N];
    let dst = &mut dst[..t.dst];
    let round = _mm_set1_epi32(1 << (SHIFT + MID_BITS - 1));
    let out = |x: usize| -> __m128i {
        let st = t.start[x];
        let p = &src[st..st + N];
        let w = &w16[x * N..x * N + N];
        let mut a = _mm_setzero_si128();
        for c in 0..N / 8 {
            // SAFETY: p and w hold N samples and c * 8 + 8 <= N: both loads read 8 i16
            // inside their slices; loadu has no alignment requirement.
            let (p, q) = unsafe {
                (
                    _mm_loadu_si128(p.as_ptr().add(c * 8).cast()),
                    _mm_loadu_si128(w.as_ptr().add(c * 8).cast()),
                )
            };
            a = _mm_add_epi32(a, _mm_madd_epi16(p, q));
        }
        a
    };
    let mut x = 0;
    while x + 4 <= t.dst {
        let h = _mm_hadd_epi32(
            _mm_hadd_epi32(out(x), out(x + 1)),
            _mm_hadd_epi32(out(x + 2), out(x + 3)),
        );
        let v = _mm_srai_epi32::<{ (SHIFT + MID_BITS) as i32 }>(_mm_add_epi32(h, round));
        let v = _mm_packus_epi16(_mm_packs_epi32(v, v), _mm_setzero_si128());
        let bytes = (_mm_cvtsi128_si32(v) as u32).to_le_bytes();
        dst[x..x + 4].copy_from_slice(&bytes);
        x += 4;
    }
    for x in x..t.dst {
        dst[x] = hdot(t, w16, src, x);
    }
}

/// AVX2, for 16 or 32 taps: eight outputs per step, one output per register (`pmaddwd`
/// over 16 taps), reduced by `phaddd` within lanes and the two lanes summed at the end.
/// (8 taps, two outputs per register, measured slower than SSSE3 and is left to it.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn hrow_avx2<const N: usize>(t: &Taps, w16: &[i16], src: &[i16], dst: &mut [u8]) {
    use std::arch::x86_64::*;
    let w16 = &w16[..t.dst * N];
    let dst = &mut dst[..t.dst];
    let round = _mm256_set1_epi32(1 << (SHIFT + MID_BITS - 1));
    let mut x = 0;
    while x + 8 <= t.dst {
        // m[j] = output x+j: 8 partial sums over its two lanes.
        let m: [__m256i; 8] = std::array::from_fn(|j| {
            let st = t.start[x + j];
            let (p, w) = (&src[st..st + N], &w16[(x + j) * N..(x + j + 1) * N]);
            let mut a = _mm256_setzero_si256();
            for c in 0..N / 16 {
                // SAFETY: p and w hold N samples, c * 16 + 16 <= N.
                unsafe {
                    a = _mm256_add_epi32(
                        a,
                        _mm256_madd_epi16(
                            _mm256_loadu_si256(p.as_ptr().add(c * 16).cast()),
                            _mm256_loadu_si256(w.as_ptr().add(c * 16).cast()),
                        ),
                    );
                }
            }
            a
        });
        let lo = _mm256_hadd_epi32(_mm256_hadd_epi32(m[0], m[1]), _mm256_hadd_epi32(m[2], m[3]));
        let hi = _mm256_hadd_epi32(_mm256_hadd_epi32(m[4], m[5]), _mm256_hadd_epi32(m[6], m[7]));
        // Lane sums: [x..x+4 | x+4..x+8] in order.
        let a = _mm256_add_epi32(
            _mm256_permute2x128_si256::<0x20>(lo, hi),
            _mm256_permute2x128_si256::<0x31>(lo, hi),
        );
        let sums = _mm256_srai_epi32::<{ (SHIFT + MID_BITS) as i32 }>(_mm256_add_epi32(a, round));
        let w = _mm256_packs_epi32(sums, sums);
        let b = _mm256_packus_epi16(w, w);
        let (l, h) = (_mm256_castsi256_si128(b), _mm256_extracti128_si256::<1>(b));
        let out = (_mm_cvtsi128_si64(_mm_unpacklo_epi32(l, h)) as u64).to_le_bytes();
        dst[x..x + 8].copy_from_slice(&out);
        x += 8;
    }
    for x in x..t.dst {
        dst[x] = hdot(t, w16, src, x);
    }
}

fn hrow(t: &Taps, w16: &[i16], src: &[i16], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above); the functions are otherwise safe.
        match t.taps {
            16 => return unsafe { hrow_avx2::<16>(t, w16, src, dst) },
            32 => return unsafe { hrow_avx2::<32>(t, w16, src, dst) },
            _ => {}
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("ssse3") {
        // SAFETY: the CPU has SSSE3 (checked just above); the functions are otherwise safe.
        match t.taps {
            8 => return unsafe { hrow_ssse3::<8>(t, w16, src, dst) },
            16 => return unsafe { hrow_ssse3::<16>(t, w16, src, dst) },
            _ => {}
        }
    }
    hrow_scalar(t, w16, src, dst)
}

/// Resamples one plane at a time with a kernel; keeps weights and scratch buffers between
/// frames (no per-frame allocation while the sizes stay the same).
#[derive(Debug)]
pub struct PlaneScaler {
    kernel: Kernel,
    vertical: Option<Taps>,
    horizontal: Option<(Taps, Vec<i16>)>,
    /// Vertical pass output: `dh` rows of `sw` 16-bit samples plus room for the horizontal
    /// taps' padding, and one row of accumulators.
    mid: Vec<i16>,
    acc: Vec<i32>,
}

fn grow<T: Default + Clone>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

impl PlaneScaler {
    pub fn new(kernel: Kernel) -> Self {
        Self {
            kernel,
            vertical: None,
            horizontal: None,
            mid: Vec::new(),
            acc: Vec::new(),
        }
    }

    /// Resample `src` (`sw`x`sh`, rows `ss` bytes apart) into `dst` (`dw`x`dh`, rows `ds`
    /// apart).
    pub fn scale(
        &mut self,
        src: &[u8],
        (sw, sh, ss): (usize, usize, usize),
        dst: &mut [u8],
        (dw, dh, ds): (usize, usize, usize),
    ) -> Result<(), PlaneError> {
        check(sw, sh, ss, src.len())?;
        check(dw, dh, ds, dst.len())?;
        if sw == 0 || sh == 0 || dw == 0 || dh == 0 {
            return Ok(());
        }
        let kernel = self.kernel;
        grow(&mut self.acc, sw);
        if self
            .vertical
            .as_ref()
            .is_some_and(|t| t.src != sh || t.dst != dh)
        {
            self.vertical = None;
        }
        if self
            .horizontal
            .as_ref()
            .is_some_and(|(t, _)| t.src != sw || t.dst != dw)
        {
            self.horizontal = None;
        }
        if sw == dw {
            if sh == dh {
                for y in 0..dh {
                    dst[y * ds..y * ds + dw].copy_from_slice(&src[y * ss..y * ss + dw]);
                }
            } else {
                let v = self
                    .vertical
                    .get_or_insert_with(|| Taps::new(kernel, sh, dh, 1));
                rows::<u8>(v, src, ss, sw, dst, ds, &mut self.acc);
            }
            return Ok(());
        }
        let (h, w16) = self.horizontal.get_or_insert_with(|| {
            let t = Taps::new(kernel, sw, dw, 8);
            let w16 = t.weights.iter().map(|&w| w as i16).collect();
            (t, w16)
        });
        // Rows of the intermediate are long enough for the last window's padding.
        let mid_stride = h.end;
        grow(&mut self.mid, mid_stride * dh);
        if sh == dh {
            for y in 0..dh {
                let (m, r) = (&mut self.mid[y * mid_stride..][..sw], &src[y * ss..][..sw]);
                for (m, &b) in m.iter_mut().zip(r) {
                    *m = (b as i16) << MID_BITS;
                }
            }
        } else {
            let v = self
                .vertical
                .get_or_insert_with(|| Taps::new(kernel, sh, dh, 1));
            rows::<i16>(v, src, ss, sw, &mut self.mid, mid_stride, &mut self.acc);
        }
        for y in 0..dh {
            let row = &self.mid[y * mid_stride..(y + 1) * mid_stride];
            hrow(h, w16, row, &mut dst[y * ds..y * ds + dw]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(w: usize, h: usize, stride: usize, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        let mut v = vec![0xAAu8; stride * h];
        for y in 0..h {
            for x in 0..w {
                v[y * stride + x] = f(x, y);
            }
        }
        v
    }

    #[test]
    fn flat_planes_stay_flat_and_padding_is_untouched() {
        for k in [
            Kernel::Bilinear,
            Kernel::CatmullRom,
            Kernel::Mitchell,
            Kernel::Lanczos3,
        ] {
            let src = plane(1280, 720, 1280, |_, _| 77);
            let mut dst = vec![0x55u8; 856 * 480];
            PlaneScaler::new(k)
                .scale(&src, (1280, 720, 1280), &mut dst, (854, 480, 856))
                .unwrap();
            for y in 0..480 {
                assert!(
                    dst[y * 856..y * 856 + 854].iter().all(|&p| p == 77),
                    "{k:?} row {y}"
                );
                assert_eq!(
                    &dst[y * 856 + 854..y * 856 + 856],
                    &[0x55, 0x55],
                    "{k:?} padding"
                );
            }
        }
    }

    #[test]
    fn source_padding_is_never_read() {
        // Garbage (0xAA) in the source padding must not bleed into the right edge.
        let src = plane(427, 240, 448, |_, _| 16);
        let mut dst = vec![0u8; 320 * 180];
        PlaneScaler::new(Kernel::Lanczos3)
            .scale(&src, (427, 240, 448), &mut dst, (320, 180, 320))
            .unwrap();
        assert!(dst.iter().all(|&p| p == 16), "{:?}", &dst[310..320]);
    }

    #[test]
    fn a_ramp_keeps_its_geometry() {
        // A horizontal ramp 0..255 over the width maps to the same ramp at the new width
        // (centres aligned): the value at destination x is the source value at the matching
        // position, within a code value.
        // A steep ramp (4 codes per source pixel): a centre misalignment of a quarter of a
        // source pixel would already be a code off.
        let (sw, dw) = (64usize, 40usize);
        let src = plane(sw, 8, sw, |x, _| (x * 4) as u8);
        let mut dst = vec![0u8; dw * 4];
        PlaneScaler::new(Kernel::CatmullRom)
            .scale(&src, (sw, 8, sw), &mut dst, (dw, 4, dw))
            .unwrap();
        for x in 3..dw - 3 {
            let want = ((x as f64 + 0.5) * sw as f64 / dw as f64 - 0.5) * 4.0;
            let got = dst[dw + x] as f64;
            assert!((got - want).abs() <= 1.0, "x {x}: {got} vs {want}");
        }
    }

    /// Straightforward floating-point separable resize with the same kernel, rounding once.
    fn reference(
        k: Kernel,
        src: &[u8],
        (sw, sh): (usize, usize),
        (dw, dh): (usize, usize),
    ) -> Vec<f64> {
        // An axis that keeps its size is copied (Mitchell does not interpolate: applying it
        // at 1:1 would blur), as the scaler does.
        let axis = |n: usize, m: usize| -> Vec<Vec<(usize, f64)>> {
            if n == m {
                return (0..m).map(|i| vec![(i, 1.0)]).collect();
            }
            let ratio = n as f64 / m as f64;
            let widen = ratio.max(1.0);
            (0..m)
                .map(|i| {
                    let c = (i as f64 + 0.5) * ratio - 0.5;
                    let r = k.radius() * widen;
                    let mut v: Vec<(usize, f64)> = ((c - r).floor() as isize
                        ..=(c + r).ceil() as isize)
                        .map(|p| {
                            (
                                p.clamp(0, n as isize - 1) as usize,
                                k.eval((p as f64 - c) / widen),
                            )
                        })
                        .collect();
                    let sum: f64 = v.iter().map(|x| x.1).sum();
                    v.iter_mut().for_each(|x| x.1 /= sum);
                    v
                })
                .collect()
        };
        let (h, v) = (axis(sw, dw), axis(sh, dh));
        let mut out = vec![0.0; dw * dh];
        for y in 0..dh {
            for x in 0..dw {
                let mut s = 0.0;
                for &(py, wy) in &v[y] {
                    for &(px, wx) in &h[x] {
                        s += wy * wx * src[py * sw + px] as f64;
                    }
                }
                out[y * dw + x] = s.clamp(0.0, 255.0);
            }
        }
        out
    }

    #[test]
    fn matches_a_floating_point_reference() {
        // Noise is the worst case for the 8-bit intermediate between the two passes.
        let (sw, sh) = (96usize, 54usize);
        let mut seed = 12345u32;
        let src: Vec<u8> = (0..sw * sh)
            .map(|_| {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                (seed >> 24) as u8
            })
            .collect();
        for k in [
            Kernel::Bilinear,
            Kernel::CatmullRom,
            Kernel::Mitchell,
            Kernel::Lanczos3,
        ] {
            // Sizes cover 8- and 16-tap SIMD paths, row tails, upscales, one axis only, and
            // a 9:1 vertical Lanczos (55 taps: the plain loop), and a 4:1 horizontal Lanczos
            // (32 taps: the AVX2 path's widest).
            for (dw, dh) in [
                (64, 36),
                (48, 27),
                (128, 72),
                (96, 27),
                (40, 54),
                (37, 6),
                (90, 50),
                (24, 27),
            ] {
                let want = reference(k, &src, (sw, sh), (dw, dh));
                let mut got = vec![0u8; dw * dh];
                PlaneScaler::new(k)
                    .scale(&src, (sw, sh, sw), &mut got, (dw, dh, dw))
                    .unwrap();
                let mut worst = 0.0f64;
                for (g, w) in got.iter().zip(&want) {
                    worst = worst.max((*g as f64 - w).abs());
                }
                // One rounding between the passes, amplified at most by the second pass's
                // overshooting taps, plus the final rounding.
                assert!(worst <= 1.6, "{k:?} {sw}x{sh}->{dw}x{dh}: off by {worst}");
            }
        }
    }

    #[test]
    fn short_buffers_are_refused() {
        let src = vec![0u8; 100];
        let mut dst = vec![0u8; 100];
        let e = PlaneScaler::new(Kernel::CatmullRom)
            .scale(&src, (20, 10, 20), &mut dst, (10, 10, 10))
            .unwrap_err();
        assert!(
            e.to_string().contains("needs at least 200 bytes, got 100"),
            "{e}"
        );
        let e = PlaneScaler::new(Kernel::CatmullRom)
            .scale(&src, (10, 10, 8), &mut dst, (10, 10, 10))
            .unwrap_err();
        assert!(matches!(e, PlaneError::TooShort { .. }), "{e}");
    }

    #[test]
    fn odd_and_tiny_sizes_match_the_reference_and_keep_the_padding() {
        for (sw, sh, dw, dh) in [
            (1, 1, 2, 2),
            (3, 5, 1, 1),
            (2, 2, 7, 3),
            (641, 361, 427, 241),
        ] {
            let pixel = |x: usize, y: usize| ((x * 7 + y * 13) % 256) as u8;
            let src = plane(sw, sh, sw + 3, pixel);
            let packed = plane(sw, sh, sw, pixel);
            let want = reference(Kernel::Lanczos3, &packed, (sw, sh), (dw, dh));
            let mut dst = vec![0x55u8; (dw + 1) * dh];
            PlaneScaler::new(Kernel::Lanczos3)
                .scale(&src, (sw, sh, sw + 3), &mut dst, (dw, dh, dw + 1))
                .unwrap();
            for y in 0..dh {
                for x in 0..dw {
                    let (g, w) = (dst[y * (dw + 1) + x] as f64, want[y * dw + x]);
                    assert!(
                        (g - w).abs() <= 1.6,
                        "{sw}x{sh}->{dw}x{dh} at {x},{y}: {g} vs {w}"
                    );
                }
                assert_eq!(
                    dst[y * (dw + 1) + dw],
                    0x55,
                    "{sw}x{sh}->{dw}x{dh}: padding row {y}"
                );
            }
        }
    }
}
