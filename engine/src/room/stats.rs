//! Counters a room keeps while it runs, updated from pad probes with atomics (no locks on the
//! streaming threads), and the plain summaries read from them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use serde::Serialize;

/// Encoded output of one rung.
#[derive(Default, Debug)]
pub struct RungCounters {
    pub frames: AtomicU64,
    pub keyframes: AtomicU64,
    pub bytes: AtomicU64,
    /// PTS of the first and the last frame (ns, running time), `u64::MAX` before any.
    pub first_pts: AtomicU64,
    pub last_pts: AtomicU64,
}

impl RungCounters {
    pub fn new() -> Self {
        Self {
            first_pts: AtomicU64::new(u64::MAX),
            last_pts: AtomicU64::new(u64::MAX),
            ..Default::default()
        }
    }

    pub fn record(&self, pts: Option<u64>, size: usize, keyframe: bool) {
        self.frames.fetch_add(1, Relaxed);
        self.bytes.fetch_add(size as u64, Relaxed);
        if keyframe {
            self.keyframes.fetch_add(1, Relaxed);
        }
        if let Some(p) = pts {
            let _ = self
                .first_pts
                .compare_exchange(u64::MAX, p, Relaxed, Relaxed);
            self.last_pts.store(p, Relaxed);
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RungSummary {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    /// Average bitrate over the encoded duration (frames / fps), kbit/s.
    pub avg_bitrate_kbps: f64,
}

impl RungSummary {
    pub fn from_counters(name: &str, width: u32, height: u32, fps: u32, c: &RungCounters) -> Self {
        let frames = c.frames.load(Relaxed);
        let bytes = c.bytes.load(Relaxed);
        let secs = frames as f64 / f64::from(fps.max(1));
        Self {
            name: name.to_owned(),
            width,
            height,
            frames,
            keyframes: c.keyframes.load(Relaxed),
            bytes,
            avg_bitrate_kbps: if secs > 0.0 {
                (bytes as f64 * 8.0 / secs / 1000.0 * 10.0).round() / 10.0
            } else {
                0.0
            },
        }
    }
}

/// What the level meter reports for silence.
pub const SILENCE_DBFS: f64 = -120.0;

/// Frames (or bytes) per second between two samples of a counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Rate {
    pub per_second: f64,
}

/// Turns a counter into a rate, sampled about once a second.
#[derive(Debug, Default)]
pub struct RateMeter {
    last: Option<(Instant, u64)>,
    pub rate: f64,
}

impl RateMeter {
    pub fn sample(&mut self, now: Instant, value: u64) {
        if let Some((t, v)) = self.last {
            let dt = now.duration_since(t).as_secs_f64();
            if dt < 0.5 {
                return;
            }
            self.rate = value.saturating_sub(v) as f64 / dt;
        }
        self.last = Some((now, value));
    }
}

/// Input of one seat, counted at the seat bin's output.
#[derive(Debug)]
pub struct SeatCounters {
    pub video_frames: AtomicU64,
    pub audio_buffers: AtomicU64,
    pub video_eos: AtomicBool,
    pub audio_eos: AtomicBool,
    /// End (pts + duration, running time in ns) of the last video and audio buffers.
    pub video_end_ns: AtomicU64,
    pub audio_end_ns: AtomicU64,
    /// Milliseconds since `epoch` of the last video buffer; 0 before any.
    pub last_video_ms: AtomicU64,
    /// Video frames that arrived too late for the mix (live rooms).
    pub late_frames: AtomicU64,
    /// Times the seat went from receiving media to stalled.
    pub stalls: AtomicU64,
    /// Publishers accepted on this seat.
    pub publishes: AtomicU64,
    /// Bytes received from this seat's publishers (the encoded input).
    pub bytes_in: AtomicU64,
    /// Loudest channel's RMS over the last level interval, dBFS, as f64 bits.
    pub audio_level_bits: AtomicU64,
    epoch: Instant,
}

impl SeatCounters {
    pub fn new() -> Self {
        Self {
            video_frames: AtomicU64::new(0),
            audio_buffers: AtomicU64::new(0),
            video_eos: AtomicBool::new(false),
            audio_eos: AtomicBool::new(false),
            video_end_ns: AtomicU64::new(0),
            audio_end_ns: AtomicU64::new(0),
            last_video_ms: AtomicU64::new(0),
            late_frames: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            publishes: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            audio_level_bits: AtomicU64::new(SILENCE_DBFS.to_bits()),
            epoch: Instant::now(),
        }
    }

    pub fn mark_video(&self, end_ns: Option<u64>) {
        self.video_frames.fetch_add(1, Relaxed);
        self.last_video_ms
            .store(self.epoch.elapsed().as_millis() as u64 + 1, Relaxed);
        if let Some(e) = end_ns {
            self.video_end_ns.fetch_max(e, Relaxed);
        }
    }

    pub fn mark_audio(&self, end_ns: Option<u64>) {
        self.audio_buffers.fetch_add(1, Relaxed);
        if let Some(e) = end_ns {
            self.audio_end_ns.fetch_max(e, Relaxed);
        }
    }

    /// Where this seat's media ends: its video if it has any (the mix is cut on frames), else
    /// its audio.
    pub fn end_ns(&self) -> u64 {
        match self.video_end_ns.load(Relaxed) {
            0 => self.audio_end_ns.load(Relaxed),
            v => v,
        }
    }

    pub fn audio_level_dbfs(&self) -> f64 {
        f64::from_bits(self.audio_level_bits.load(Relaxed))
    }

    pub fn set_audio_level_dbfs(&self, db: f64) {
        let db = if db.is_finite() {
            db.max(SILENCE_DBFS)
        } else {
            SILENCE_DBFS
        };
        self.audio_level_bits.store(db.to_bits(), Relaxed);
    }

    /// The seat's media is over for the mix: its video has ended (the mix is cut on frames,
    /// and must be cut before the compositor moves past the last frame), or it had no video
    /// and its audio has ended.
    pub fn ended(&self) -> bool {
        self.video_eos.load(Relaxed)
            && (self.video_frames.load(Relaxed) > 0 || self.audio_eos.load(Relaxed))
    }

    /// How long since the last video frame arrived; `None` before the first.
    pub fn since_last_video(&self) -> Option<std::time::Duration> {
        match self.last_video_ms.load(Relaxed) {
            0 => None,
            ms => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(std::time::Duration::from_millis(ms - 1)),
            ),
        }
    }
}

impl Default for SeatCounters {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rung_summary() {
        let c = RungCounters::new();
        for i in 0..60u64 {
            c.record(Some(i * 33_333_333), 10_000, i % 30 == 0);
        }
        let s = RungSummary::from_counters("720p", 1280, 720, 30, &c);
        assert_eq!(s.frames, 60);
        assert_eq!(s.keyframes, 2);
        // 600 kB in 2 s = 2400 kbit/s.
        assert_eq!(s.avg_bitrate_kbps, 2400.0);
        assert_eq!(c.first_pts.load(Relaxed), 0);
    }

    #[test]
    fn rate_meter() {
        let mut m = RateMeter::default();
        let t = Instant::now();
        m.sample(t, 0);
        m.sample(t + std::time::Duration::from_millis(100), 5);
        assert_eq!(m.rate, 0.0, "too soon to tell");
        m.sample(t + std::time::Duration::from_secs(2), 60);
        assert_eq!(m.rate, 30.0);
    }

    #[test]
    fn seat_liveness() {
        let s = SeatCounters::new();
        assert!(s.since_last_video().is_none());
        s.mark_video(Some(40));
        s.mark_audio(Some(20));
        assert_eq!(s.end_ns(), 40);
        assert!(s.since_last_video().unwrap() < std::time::Duration::from_secs(1));
        assert!(!s.ended());
        s.video_eos.store(true, Relaxed);
        assert!(s.ended(), "video decides once there was video");
        let audio_only = SeatCounters::new();
        audio_only.video_eos.store(true, Relaxed);
        assert!(!audio_only.ended());
        audio_only.audio_eos.store(true, Relaxed);
        assert!(audio_only.ended());
    }
}
