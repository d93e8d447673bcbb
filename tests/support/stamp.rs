//! The wall-clock stamp of `tests/browser/stamp.js`, in Rust: drawn into the luma plane of
//! frames made by GStreamer publishers, and read back from frames inside the server (probes
//! that split glass-to-glass latency into stages). 24 bits of (wall clock ms mod 2^24) and a
//! 4-bit check (nibble sum mod 16, XOR 0b1010: a flat picture never passes), as 28 black/white
//! blocks across a region given in fractions of the frame.

use std::time::{SystemTime, UNIX_EPOCH};

pub const BITS: usize = 28;

/// Where the stamp sits in a frame, in fractions 0..1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Region {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// The region the benchmarks use: a band across the middle, inside any `cover` crop of a
/// 16:9 picture into a tile half as wide.
pub const CENTRE: Region = Region {
    x: 0.3,
    y: 0.45,
    w: 0.4,
    h: 0.1,
};

impl Region {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"x": self.x, "y": self.y, "w": self.w, "h": self.h})
    }
}

/// Wall clock now, ms since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

pub fn bits(ms: u64) -> [bool; BITS] {
    let v = (ms % (1 << 24)) as u32;
    let check = ((0..6).map(|i| (v >> (4 * i)) & 15).sum::<u32>() & 15) ^ 10;
    let mut out = [false; BITS];
    for (b, o) in out.iter_mut().enumerate().take(24) {
        *o = (v >> b) & 1 == 1;
    }
    for b in 0..4 {
        out[24 + b] = (check >> b) & 1 == 1;
    }
    out
}

pub fn decode(bits: &[bool; BITS]) -> Option<u32> {
    let v: u32 = (0..24).filter(|b| bits[*b]).map(|b| 1 << b).sum();
    let check: u32 = (0..4).filter(|b| bits[24 + b]).map(|b| 1 << b).sum();
    let sum = ((0..6).map(|i| (v >> (4 * i)) & 15).sum::<u32>() & 15) ^ 10;
    (sum == check).then_some(v)
}

/// Draws the stamp of `ms` into an 8-bit luma plane (white 235, black 16: video range).
pub fn draw(luma: &mut [u8], width: usize, height: usize, stride: usize, r: Region, ms: u64) {
    let b = bits(ms);
    let x0 = r.x * width as f64;
    let bw = r.w * width as f64 / BITS as f64;
    let y0 = (r.y * height as f64).round() as usize;
    let y1 = ((r.y + r.h) * height as f64).round() as usize;
    for (i, bit) in b.iter().enumerate() {
        let xa = (x0 + i as f64 * bw).round() as usize;
        let xb = (x0 + (i + 1) as f64 * bw).round() as usize;
        let v = if *bit { 235 } else { 16 };
        for y in y0..y1.min(height) {
            let row = &mut luma[y * stride..y * stride + width];
            row[xa.min(width)..xb.min(width)].fill(v);
        }
    }
}

/// Reads a stamp from an 8-bit luma plane; `None` when the check fails.
pub fn read(luma: &[u8], width: usize, height: usize, stride: usize, r: Region) -> Option<u32> {
    let y = ((r.y + r.h / 2.0) * height as f64) as usize;
    let bw = r.w * width as f64 / BITS as f64;
    let mut b = [false; BITS];
    for (i, o) in b.iter_mut().enumerate() {
        let x = (r.x * width as f64 + (i as f64 + 0.5) * bw) as usize;
        *o = *luma.get(y * stride + x)? > 128;
    }
    decode(&b)
}

/// Latency in ms of a stamp read at wall clock `now_ms` (both mod 2^24).
pub fn latency_ms(stamp: u32, now_ms: u64) -> i64 {
    let mut d = (now_ms % (1 << 24)) as i64 - i64::from(stamp);
    if d < -(1 << 23) {
        d += 1 << 24;
    }
    if d > 1 << 23 {
        d -= 1 << 24;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_at_several_sizes() {
        for (w, h) in [(1280, 720), (640, 360), (854, 480)] {
            let mut luma = vec![100u8; w * h];
            let ms = 1_796_564_045_982;
            draw(&mut luma, w, h, w, CENTRE, ms);
            assert_eq!(read(&luma, w, h, w, CENTRE), Some((ms % (1 << 24)) as u32));
        }
    }

    #[test]
    fn flat_pictures_are_not_stamps() {
        assert_eq!(decode(&[false; BITS]), None);
        assert_eq!(decode(&[true; BITS]), None);
    }

    #[test]
    fn the_check_catches_a_flipped_bit() {
        let mut b = bits(123_456);
        b[3] = !b[3];
        assert_eq!(decode(&b), None);
    }

    #[test]
    fn latency_across_the_wrap() {
        assert_eq!(latency_ms((1 << 24) - 10, 5), 15);
        assert_eq!(latency_ms(100, 350), 250);
    }
}
