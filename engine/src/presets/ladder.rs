//! Ladders: the canvas a room mixes on and the adaptive-bitrate renditions ("rungs") encoded
//! from it, with one GOP length shared by every rung so keyframes line up and players can
//! switch between rungs at any segment boundary.

use serde::{Deserialize, Serialize};

use super::validate::{Checker, Invalid};

pub const MAX_RUNGS: usize = 8;
pub const MAX_WIDTH: u32 = 7680;
pub const MAX_HEIGHT: u32 = 4320;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    /// Frames per second (integer; 1..=120).
    pub fps: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    #[default]
    H264,
    H265,
    Av1,
    Vp8,
    Vp9,
}

impl VideoCodec {
    pub fn as_str(&self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::H265 => "h265",
            VideoCodec::Av1 => "av1",
            VideoCodec::Vp8 => "vp8",
            VideoCodec::Vp9 => "vp9",
        }
    }
}

/// Encoder speed on x264's familiar scale; mapped onto each encoder's own knob.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speed {
    Ultrafast,
    Superfast,
    #[default]
    Veryfast,
    Faster,
    Fast,
    Medium,
    Slow,
    Slower,
    Veryslow,
}

impl Speed {
    pub fn as_str(&self) -> &'static str {
        match self {
            Speed::Ultrafast => "ultrafast",
            Speed::Superfast => "superfast",
            Speed::Veryfast => "veryfast",
            Speed::Faster => "faster",
            Speed::Fast => "fast",
            Speed::Medium => "medium",
            Speed::Slow => "slow",
            Speed::Slower => "slower",
            Speed::Veryslow => "veryslow",
        }
    }

    /// 0 (fastest) ..= 8 (slowest).
    pub fn index(&self) -> u32 {
        *self as u32
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Video {
    #[serde(default)]
    pub codec: VideoCodec,
    #[serde(default)]
    pub speed: Speed,
    /// Zero-latency tuning: no lookahead, no frame reordering, sliced threads.
    #[serde(default = "yes")]
    pub zerolatency: bool,
    #[serde(default)]
    pub bframes: u32,
}

impl Default for Video {
    fn default() -> Self {
        Self {
            codec: VideoCodec::H264,
            speed: Speed::Veryfast,
            zerolatency: true,
            bframes: 0,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub bitrate_kbps: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    #[default]
    Aac,
    Opus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audio {
    #[serde(default)]
    pub codec: AudioCodec,
    #[serde(default = "default_audio_bitrate")]
    pub bitrate_kbps: u32,
    #[serde(default = "default_rate")]
    pub sample_rate: u32,
    #[serde(default = "default_channels")]
    pub channels: u32,
}

impl Default for Audio {
    fn default() -> Self {
        Self {
            codec: AudioCodec::Aac,
            bitrate_kbps: default_audio_bitrate(),
            sample_rate: default_rate(),
            channels: default_channels(),
        }
    }
}

fn default_audio_bitrate() -> u32 {
    128
}
fn default_rate() -> u32 {
    48_000
}
fn default_channels() -> u32 {
    2
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ladder {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub canvas: Canvas,
    /// Keyframe interval in seconds, the same on every rung.
    #[serde(default = "default_gop")]
    pub gop_seconds: f64,
    #[serde(default)]
    pub video: Video,
    pub rungs: Vec<Rung>,
    #[serde(default)]
    pub audio: Audio,
}

fn default_gop() -> f64 {
    1.0
}

impl Ladder {
    /// Frames between keyframes.
    pub fn gop_frames(&self) -> u32 {
        (self.gop_seconds * f64::from(self.canvas.fps))
            .round()
            .max(1.0) as u32
    }

    pub fn rung(&self, name: &str) -> Option<&Rung> {
        self.rungs.iter().find(|r| r.name == name)
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::new();
        let cv = &self.canvas;
        c.range_u32("canvas.width", cv.width, 16, MAX_WIDTH);
        c.even("canvas.width", cv.width);
        c.range_u32("canvas.height", cv.height, 16, MAX_HEIGHT);
        c.even("canvas.height", cv.height);
        c.range_u32("canvas.fps", cv.fps, 1, 120);
        c.range_f64("gop_seconds", self.gop_seconds, 0.1, 20.0);
        if self.gop_seconds.is_finite() && cv.fps > 0 {
            let frames = self.gop_seconds * f64::from(cv.fps);
            if (frames - frames.round()).abs() > 1e-6 {
                c.fail(
                    "gop_seconds",
                    format!(
                        "{} s is not a whole number of frames at {} fps (allowed: a multiple of 1/{} s)",
                        self.gop_seconds, cv.fps, cv.fps
                    ),
                );
            }
        }
        c.range_u32("video.bframes", self.video.bframes, 0, 4);
        if self.rungs.is_empty() || self.rungs.len() > MAX_RUNGS {
            c.fail(
                "rungs",
                format!("has {} rungs (allowed 1..={MAX_RUNGS})", self.rungs.len()),
            );
        }
        for (i, r) in self.rungs.iter().enumerate() {
            let f = |n: &str| format!("rungs[{i}].{n}");
            c.name(f("name"), &r.name);
            if self.rungs[..i].iter().any(|o| o.name == r.name) {
                c.fail(
                    f("name"),
                    format!("{:?} is used twice (rung names must be unique)", r.name),
                );
            }
            c.range_u32(f("width"), r.width, 16, cv.width.max(16));
            c.even(f("width"), r.width);
            c.range_u32(f("height"), r.height, 16, cv.height.max(16));
            c.even(f("height"), r.height);
            if r.width > cv.width || r.height > cv.height {
                c.fail(
                    f("width"),
                    format!(
                        "{}x{} is larger than the canvas {}x{} (a rung may not upscale the mix)",
                        r.width, r.height, cv.width, cv.height
                    ),
                );
            }
            c.range_u32(f("bitrate_kbps"), r.bitrate_kbps, 50, 100_000);
        }
        let a = &self.audio;
        c.range_u32("audio.bitrate_kbps", a.bitrate_kbps, 16, 512);
        if a.sample_rate != 48_000 && a.sample_rate != 44_100 {
            c.fail(
                "audio.sample_rate",
                format!(
                    "{} is not supported (allowed 44100 or 48000)",
                    a.sample_rate
                ),
            );
        }
        if a.codec == AudioCodec::Opus && a.sample_rate != 48_000 {
            c.fail("audio.sample_rate", "opus needs 48000");
        }
        c.range_u32("audio.channels", a.channels, 1, 2);
        c.finish()
    }

    /// Rungs from the largest to the smallest.
    pub fn rungs_by_size(&self) -> Vec<&Rung> {
        let mut v: Vec<&Rung> = self.rungs.iter().collect();
        v.sort_by_key(|r| std::cmp::Reverse(u64::from(r.width) * u64::from(r.height)));
        v
    }

    /// The rung considered the top one (largest); `rung` defaults for outputs.
    pub fn top_rung(&self) -> Option<&Rung> {
        self.rungs_by_size().into_iter().next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> Ladder {
        Ladder {
            name: "t".into(),
            description: String::new(),
            canvas: Canvas {
                width: 1280,
                height: 720,
                fps: 30,
            },
            gop_seconds: 1.0,
            video: Video::default(),
            rungs: vec![
                Rung {
                    name: "720p".into(),
                    width: 1280,
                    height: 720,
                    bitrate_kbps: 2500,
                },
                Rung {
                    name: "360p".into(),
                    width: 640,
                    height: 360,
                    bitrate_kbps: 600,
                },
            ],
            audio: Audio::default(),
        }
    }

    #[test]
    fn valid_ladder() {
        ladder().validate().unwrap();
        assert_eq!(ladder().gop_frames(), 30);
    }

    #[test]
    fn odd_and_zero_canvas() {
        let mut l = ladder();
        l.canvas.width = 1281;
        l.canvas.height = 0;
        let e = l.validate().unwrap_err().to_string();
        assert!(e.contains("canvas.width: 1281 must be even"), "{e}");
        assert!(e.contains("canvas.height: 0 is out of range"), "{e}");
    }

    #[test]
    fn rung_larger_than_canvas() {
        let mut l = ladder();
        l.rungs[1].width = 1920;
        l.rungs[1].height = 1080;
        let e = l.validate().unwrap_err().to_string();
        assert!(
            e.contains("rungs[1].width: 1920x1080 is larger than the canvas 1280x720"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_rung_names_and_bad_gop() {
        let mut l = ladder();
        l.rungs[1].name = "720p".into();
        l.gop_seconds = 0.45;
        let e = l.validate().unwrap_err().to_string();
        assert!(e.contains("used twice"), "{e}");
        assert!(
            e.contains("gop_seconds: 0.45 s is not a whole number of frames"),
            "{e}"
        );
    }

    #[test]
    fn order_by_size() {
        let l = ladder();
        let names: Vec<&str> = l.rungs_by_size().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["720p", "360p"]);
        assert_eq!(l.top_rung().unwrap().name, "720p");
    }
}
