//! Putting a publisher's timestamps on the room's clock.
//!
//! A publisher's timestamps are its own: they start anywhere, jump when an encoder restarts or
//! pauses, wrap after 2^32 ms (RTMP), drift against our clock, and arrive with network jitter.
//! The mix needs every frame at a running time just ahead of "now". The retimer keeps one
//! offset per publisher (shared by its audio and video, so they stay in sync), anchored on the
//! first decoded buffer, and:
//! - keeps the source's own spacing (so jitter in arrival does not become jitter in the mix);
//! - slews the offset by at most 1 ms per buffer when the output drifts out of a window around
//!   the target (clock drift between the encoder and us);
//! - re-anchors at once when the output lands more than `jump` away from the target (a
//!   timestamp jump, a wrap, a paused and resumed encoder);
//! - never lets a stream go backwards.

/// Which of a publisher's streams a timestamp belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Video = 0,
    Audio = 1,
}

#[derive(Clone, Debug)]
pub struct Retimer {
    /// Output = input + offset (ns).
    offset: Option<i64>,
    /// How far ahead of "now" outputs are placed: room for decode jitter.
    lead: i64,
    /// Drift tolerated before slewing starts.
    window: i64,
    /// Beyond this the source jumped: re-anchor.
    jump: i64,
    last: [Option<u64>; 2],
    pub reanchors: u64,
}

const MS: i64 = 1_000_000;

impl Retimer {
    pub fn new(lead_ms: u64) -> Self {
        Self {
            offset: None,
            lead: lead_ms as i64 * MS,
            window: 150 * MS,
            jump: 1_000 * MS,
            last: [None; 2],
            reanchors: 0,
        }
    }

    /// Maps a source running time `input` (ns) arriving at room running time `now` (ns).
    pub fn map(&mut self, stream: Stream, input: u64, now: u64) -> u64 {
        let target = now as i64 + self.lead;
        let input = input as i64;
        let offset = self.offset.get_or_insert(target - input);
        let mut out = input + *offset;
        let dev = out - target;
        if dev.abs() > self.jump {
            *offset = target - input;
            out = target;
            self.reanchors += 1;
        } else if dev.abs() > self.window {
            // Slew towards the window, a millisecond at a time: invisible, but enough to
            // follow any realistic clock drift.
            let step = dev.signum() * MS.min(dev.abs() - self.window);
            *offset -= step;
            out -= step;
        }
        let out = out.max(0) as u64;
        let slot = &mut self.last[stream as usize];
        let out = match *slot {
            Some(prev) if out <= prev => prev + 1,
            _ => out,
        };
        *slot = Some(out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: u64 = 33_333_333;

    #[test]
    fn first_buffer_lands_just_ahead_of_now() {
        let mut r = Retimer::new(50);
        let out = r.map(Stream::Video, 5_000_000_000, 1_000_000_000);
        assert_eq!(out, 1_050_000_000);
    }

    #[test]
    fn source_spacing_survives_arrival_jitter() {
        let mut r = Retimer::new(50);
        let base = 10 * 1_000_000_000u64;
        let mut prev = None;
        for i in 0..100u64 {
            // Arrival jitters by up to ±40 ms; the source timestamps are regular.
            let jitter = ((i * 7919) % 80) as i64 - 40;
            let now = (i * F) as i64 + jitter * MS + 1_000_000_000;
            let out = r.map(Stream::Video, base + i * F, now as u64);
            if let Some(p) = prev {
                assert_eq!(out - p, F, "frame {i}");
            }
            prev = Some(out);
        }
        assert_eq!(r.reanchors, 0);
    }

    #[test]
    fn audio_and_video_share_the_offset() {
        let mut r = Retimer::new(50);
        let v = r.map(Stream::Video, 2_000_000_000, 500_000_000);
        // Audio of the same instant, arriving 20 ms later.
        let a = r.map(Stream::Audio, 2_000_000_000, 520_000_000);
        assert_eq!(a, v);
    }

    #[test]
    fn jumps_and_wraps_reanchor() {
        let mut r = Retimer::new(50);
        r.map(Stream::Video, 4_294_960_000 * MS as u64, 0);
        // The 32-bit millisecond clock wraps: the next frame is at 0.
        let out = r.map(Stream::Video, 0, F);
        assert_eq!(out, F + 50 * MS as u64);
        assert_eq!(r.reanchors, 1);
        // A paused encoder resumes 5 s later with timestamps that did not move.
        let out = r.map(Stream::Video, F, 5_000_000_000);
        assert_eq!(out, 5_050_000_000);
        assert_eq!(r.reanchors, 2);
    }

    #[test]
    fn drift_is_slewed_not_jumped() {
        let mut r = Retimer::new(50);
        // The encoder's clock runs 1% fast: its timestamps advance 1% faster than ours.
        let mut outs = Vec::new();
        for i in 0..3000u64 {
            let now = i * F;
            let input = now + now / 100;
            outs.push((r.map(Stream::Video, input, now), now));
        }
        assert_eq!(r.reanchors, 0);
        for (out, now) in outs.iter().skip(1000) {
            let dev = *out as i64 - (*now as i64 + 50 * MS);
            assert!(dev.abs() <= 160 * MS, "deviation {} ms", dev / MS);
        }
        for w in outs.windows(2) {
            assert!(w[1].0 > w[0].0, "monotonic");
        }
    }

    #[test]
    fn never_backwards() {
        let mut r = Retimer::new(50);
        let a = r.map(Stream::Audio, 1_000_000_000, 0);
        let b = r.map(Stream::Audio, 999_000_000, 0);
        assert!(b > a);
    }
}
