//! Bjøntegaard delta rate and the rate–quality convex hull: plain numbers in, plain numbers
//! out, no media.
//!
//! BD-rate follows G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves",
//! VCEG-M33, Austin, April 2001: fit log(rate) as a cubic polynomial of quality for each curve,
//! integrate both over the quality interval the curves share, and turn the mean difference of
//! the logs back into a percentage. A negative value means the test codec needs less rate
//! than the anchor for the same quality.

/// Why a BD-rate could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BdError {
    #[error("{0} points on a curve (BD-rate needs at least 2 per codec)")]
    TooFewPoints(usize),
    #[error("a rate is not a positive number (BD-rate works on log(rate))")]
    BadRate,
    #[error("a quality value is not a finite number")]
    BadQuality,
    #[error("the two curves share no quality range")]
    NoOverlap,
    #[error("all points of a curve have the same quality")]
    Degenerate,
}

/// One rate–quality point: rate in any unit (the same for both curves), quality in any
/// higher-is-better metric (PSNR dB, VMAF).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RdPoint {
    pub rate: f64,
    pub quality: f64,
}

/// BD-rate of `test` against `anchor`, in percent.
pub fn bd_rate(anchor: &[RdPoint], test: &[RdPoint]) -> Result<f64, BdError> {
    for curve in [anchor, test] {
        if curve.len() < 2 {
            return Err(BdError::TooFewPoints(curve.len()));
        }
        if curve.iter().any(|p| !(p.rate.is_finite() && p.rate > 0.0)) {
            return Err(BdError::BadRate);
        }
        if curve.iter().any(|p| !p.quality.is_finite()) {
            return Err(BdError::BadQuality);
        }
    }
    let (lo_a, hi_a) = range(anchor);
    let (lo_t, hi_t) = range(test);
    let lo = lo_a.max(lo_t);
    let hi = hi_a.min(hi_t);
    if hi - lo <= 1e-12 {
        return Err(BdError::NoOverlap);
    }
    let fa = LogRateFit::new(anchor)?;
    let ft = LogRateFit::new(test)?;
    let mean_diff = (ft.integral(lo, hi) - fa.integral(lo, hi)) / (hi - lo);
    Ok((mean_diff.exp() - 1.0) * 100.0)
}

fn range(c: &[RdPoint]) -> (f64, f64) {
    c.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.quality), hi.max(p.quality))
        })
}

/// log(rate) = poly(t), t = (quality - centre) / scale: least squares of degree
/// min(3, points - 1). Centring and scaling keep the normal equations well conditioned
/// (PSNR around 40 raised to the sixth power otherwise swamps the fit).
struct LogRateFit {
    centre: f64,
    scale: f64,
    /// Coefficients, lowest power first.
    coef: Vec<f64>,
}

impl LogRateFit {
    fn new(c: &[RdPoint]) -> Result<Self, BdError> {
        let n = c.len() as f64;
        let centre = c.iter().map(|p| p.quality).sum::<f64>() / n;
        let scale = (c.iter().map(|p| (p.quality - centre).powi(2)).sum::<f64>() / n).sqrt();
        if scale <= 1e-12 {
            return Err(BdError::Degenerate);
        }
        let degree = (c.len() - 1).min(3);
        let m = degree + 1;
        // Normal equations A^T A x = A^T y.
        let mut ata = vec![vec![0.0; m]; m];
        let mut aty = vec![0.0; m];
        for p in c {
            let t = (p.quality - centre) / scale;
            let y = p.rate.ln();
            let pows: Vec<f64> = (0..m).map(|k| t.powi(k as i32)).collect();
            for i in 0..m {
                aty[i] += pows[i] * y;
                for j in 0..m {
                    ata[i][j] += pows[i] * pows[j];
                }
            }
        }
        let coef = solve(ata, aty).ok_or(BdError::Degenerate)?;
        Ok(Self {
            centre,
            scale,
            coef,
        })
    }

    /// ∫ log(rate) d(quality) from `lo` to `hi`.
    fn integral(&self, lo: f64, hi: f64) -> f64 {
        let anti = |q: f64| {
            let t = (q - self.centre) / self.scale;
            self.coef
                .iter()
                .enumerate()
                .map(|(k, c)| c * t.powi(k as i32 + 1) / (k as f64 + 1.0))
                .sum::<f64>()
        };
        // d(quality) = scale · dt
        self.scale * (anti(hi) - anti(lo))
    }
}

/// Gaussian elimination with partial pivoting; None when singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col].clone();
            for (x, p) in a[row].iter_mut().zip(&pivot_row).skip(col) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// The upper convex hull of rate–quality points in (log rate, quality), restricted to points
/// where more rate buys more quality: the rungs worth offering when several resolutions cover
/// the same bitrates. Returns indices into `points`, by increasing rate.
pub fn convex_hull(points: &[RdPoint]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].rate > 0.0 && points[i].rate.is_finite())
        .filter(|&i| points[i].quality.is_finite())
        .collect();
    // Increasing rate; at equal rate the better quality first, so the worse one is dominated.
    order.sort_by(|&a, &b| {
        points[a]
            .rate
            .total_cmp(&points[b].rate)
            .then(points[b].quality.total_cmp(&points[a].quality))
    });
    // Pareto front: each kept point has strictly more quality than every cheaper one.
    let mut front: Vec<usize> = Vec::new();
    for i in order {
        if front.last().is_none_or(|&l| {
            points[i].quality > points[l].quality && points[i].rate > points[l].rate
        }) {
            front.push(i);
        }
    }
    let xy = |i: usize| (points[i].rate.ln(), points[i].quality);
    let mut hull: Vec<usize> = Vec::new();
    for i in front {
        while hull.len() >= 2 {
            let (ax, ay) = xy(hull[hull.len() - 2]);
            let (bx, by) = xy(hull[hull.len() - 1]);
            let (cx, cy) = xy(i);
            // b is on or under the segment a→c: not on the upper hull (a small tolerance, as
            // log rates of doubling bitrates are collinear only up to rounding).
            let cross = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
            if cross >= -1e-9 {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(i);
    }
    hull
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(rates: &[f64], q: &[f64]) -> Vec<RdPoint> {
        rates
            .iter()
            .zip(q)
            .map(|(&rate, &quality)| RdPoint { rate, quality })
            .collect()
    }

    // The worked example of the FAU-LMS `bjontegaard` package (README and example_usage.py,
    // "Test data for test case 1", libx265 measured with ffmpeg; github.com/FAU-LMS/bjontegaard,
    // BSD-3-Clause): the anchor and test curves below.
    const RATE_ANCHOR: [f64; 4] = [9487.76, 4593.60, 2486.44, 1358.24];
    const PSNR_ANCHOR: [f64; 4] = [40.037, 38.615, 36.845, 34.851];
    const RATE_TEST: [f64; 4] = [9787.80, 4469.00, 2451.52, 1356.24];
    const PSNR_TEST: [f64; 4] = [40.121, 38.651, 36.970, 34.987];

    #[test]
    fn published_example_vceg_m33() {
        let a = curve(&RATE_ANCHOR, &PSNR_ANCHOR);
        let t = curve(&RATE_TEST, &PSNR_TEST);
        let bd = bd_rate(&a, &t).unwrap();
        // VCEG-M33 cubic fit of this pair as evaluated independently (numpy polyfit/polyint
        // of the classic bjontegaard_metric BD_RATE): -4.420462706090111 %.
        assert!((bd - -4.420462706090111).abs() < 1e-6, "{bd}");
    }

    #[test]
    fn against_itself_is_zero() {
        let a = curve(&RATE_ANCHOR, &PSNR_ANCHOR);
        assert!(bd_rate(&a, &a).unwrap().abs() < 1e-9);
    }

    #[test]
    fn a_constant_rate_ratio_is_exact() {
        // Same quality at 90 % of the rate everywhere: exactly -10 %, whatever the fit.
        let a = curve(&RATE_ANCHOR, &PSNR_ANCHOR);
        let cheaper: Vec<f64> = RATE_ANCHOR.iter().map(|r| r * 0.9).collect();
        let t = curve(&cheaper, &PSNR_ANCHOR);
        let bd = bd_rate(&a, &t).unwrap();
        assert!((bd - -10.0).abs() < 1e-9, "{bd}");
        // And the other way round, +11.1 %.
        let back = bd_rate(&t, &a).unwrap();
        assert!((back - (1.0 / 0.9 - 1.0) * 100.0).abs() < 1e-9, "{back}");
    }

    #[test]
    fn two_points_fit_a_line() {
        let a = curve(&[100.0, 400.0], &[30.0, 40.0]);
        let t = curve(&[200.0, 800.0], &[30.0, 40.0]);
        assert!((bd_rate(&a, &t).unwrap() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn bad_curves_are_errors() {
        let a = curve(&RATE_ANCHOR, &PSNR_ANCHOR);
        assert_eq!(
            bd_rate(&a, &curve(&[100.0], &[30.0])),
            Err(BdError::TooFewPoints(1))
        );
        assert_eq!(
            bd_rate(&a, &curve(&[0.0, 10.0], &[30.0, 31.0])),
            Err(BdError::BadRate)
        );
        assert_eq!(
            bd_rate(&a, &curve(&[100.0, 200.0], &[20.0, 25.0])),
            Err(BdError::NoOverlap)
        );
    }

    #[test]
    fn hull_across_resolutions() {
        // Two rungs over the same bitrates: 360p wins at low rates, 720p at high ones; a 720p
        // point at 300 kbps is worse than 360p there, and the 360p point at 2500 kbps is
        // dominated by 720p at 1200 (more quality for less rate).
        let pts = curve(
            &[300.0, 600.0, 1200.0, 2500.0, 300.0, 600.0, 1200.0, 2500.0],
            //  360p: 300   600   1200  2500 | 720p: 300  600   1200  2500
            &[33.0, 36.0, 37.0, 37.6, 31.0, 35.0, 38.2, 40.5],
        );
        assert_eq!(convex_hull(&pts), vec![0, 1, 6, 7]);
    }

    #[test]
    fn hull_drops_points_under_a_chord() {
        // In log2 rate: x = 0, 1, 2; the middle point lies under the chord (30 → 40 gives 35
        // at x = 1) and is removed; a point on the chord goes too.
        let pts = curve(&[100.0, 200.0, 400.0], &[30.0, 34.0, 40.0]);
        assert_eq!(convex_hull(&pts), vec![0, 2]);
        let on = curve(&[100.0, 200.0, 400.0], &[30.0, 35.0, 40.0]);
        assert_eq!(convex_hull(&on), vec![0, 2]);
        let above = curve(&[100.0, 200.0, 400.0], &[30.0, 36.0, 40.0]);
        assert_eq!(convex_hull(&above), vec![0, 1, 2]);
    }
}
