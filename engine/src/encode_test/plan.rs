//! What an encode test will do, from its arguments: the lists are parsed and checked here
//! (plain Rust, no media) and every mistake is one line naming the value and what is allowed.

use crate::presets::ladder::{Speed, VideoCodec};

pub const CODECS: &[VideoCodec] = &[
    VideoCodec::H264,
    VideoCodec::H265,
    VideoCodec::Av1,
    VideoCodec::Vp9,
    VideoCodec::Vp8,
];
pub const SPEEDS: &[Speed] = &[
    Speed::Ultrafast,
    Speed::Superfast,
    Speed::Veryfast,
    Speed::Faster,
    Speed::Fast,
    Speed::Medium,
    Speed::Slow,
    Speed::Slower,
    Speed::Veryslow,
];
pub const METRICS: &[Metric] = &[Metric::Psnr, Metric::Ssim, Metric::Vmaf];
pub const MAX_DURATION_S: f64 = 3600.0;
pub const MAX_JOBS: usize = 64;
pub const MIN_KBPS: u32 = 50;
pub const MAX_KBPS: u32 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Psnr,
    Ssim,
    Vmaf,
}

impl Metric {
    pub fn as_str(&self) -> &'static str {
        match self {
            Metric::Psnr => "psnr",
            Metric::Ssim => "ssim",
            Metric::Vmaf => "vmaf",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Two sources mixed side by side through the real room pipeline (layout `pk`).
    Pk,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("unknown codec {0:?} in --codecs (allowed: {list})", list = names(CODECS.iter().map(|c| c.as_str())))]
    Codec(String),
    #[error("unknown speed preset {0:?} in --speed (allowed: {list})", list = names(SPEEDS.iter().map(|s| s.as_str())))]
    Speed(String),
    #[error("unknown metric {0:?} in --metrics (allowed: psnr, ssim, vmaf)")]
    Metric(String),
    #[error("--{0} lists {1:?} twice (give each value once)")]
    Duplicate(&'static str, String),
    #[error("--{0} is empty (give a comma-separated list)")]
    Empty(&'static str),
    #[error(
        "--bitrates {0:?} is not a number of kbit/s (allowed: increasing whole numbers {MIN_KBPS}..={MAX_KBPS}, e.g. 300,600,1200,2500)"
    )]
    BitrateNumber(String),
    #[error(
        "--bitrates {0} is out of range (allowed: increasing whole numbers {MIN_KBPS}..={MAX_KBPS} kbit/s)"
    )]
    BitrateRange(u32),
    #[error(
        "--bitrates is not increasing: {1} comes after {0} (give the bitrates in increasing order)"
    )]
    BitrateOrder(u32, u32),
    #[error(
        "--duration {0:?} is not understood (allowed: 0 < duration <= {MAX_DURATION_S} s, e.g. 10s, 2.5, 1500ms)"
    )]
    Duration(String),
    #[error("--reference {0:?} is not known (allowed: ffmpeg)")]
    Reference(String),
    #[error("--scenario {0:?} is not known (allowed: pk)")]
    Scenario(String),
    #[error("--scenario pk mixes two sources: give exactly two, got {0}")]
    ScenarioSources(usize),
    #[error(
        "--crf {0:?} is not a number (allowed: increasing whole numbers on each encoder's own scale: h264 0..=50, h265 0..=51, vp8/vp9 0..=63, av1 0..=255 (rav1e's quantizer), e.g. 20,26,32)"
    )]
    CrfNumber(String),
    #[error("--crf {value} is out of range for {codec} (allowed: {lo}..={hi})")]
    CrfRange {
        codec: &'static str,
        value: u32,
        lo: u32,
        hi: u32,
    },
    #[error("--crf is not increasing: {1} comes after {0} (give the values in increasing order)")]
    CrfOrder(u32, u32),
    #[error("--jobs {0} is out of range (allowed 1..={MAX_JOBS})")]
    Jobs(usize),
    #[error("no sources: give at least one file, URI or test:<pattern>")]
    NoSources,
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

fn items<'a>(flag: &'static str, s: &'a str) -> Result<Vec<&'a str>, PlanError> {
    let v: Vec<&str> = s.split(',').map(str::trim).collect();
    if v.iter().all(|x| x.is_empty()) {
        return Err(PlanError::Empty(flag));
    }
    for (i, x) in v.iter().enumerate() {
        if v[..i].contains(x) {
            return Err(PlanError::Duplicate(flag, (*x).to_owned()));
        }
    }
    Ok(v)
}

pub fn parse_codecs(s: &str) -> Result<Vec<VideoCodec>, PlanError> {
    items("codecs", s)?
        .into_iter()
        .map(|x| {
            CODECS
                .iter()
                .copied()
                .find(|c| c.as_str() == x.to_ascii_lowercase())
                .ok_or_else(|| PlanError::Codec(x.to_owned()))
        })
        .collect()
}

pub fn parse_speeds(s: &str) -> Result<Vec<Speed>, PlanError> {
    items("speed", s)?
        .into_iter()
        .map(|x| {
            SPEEDS
                .iter()
                .copied()
                .find(|c| c.as_str() == x.to_ascii_lowercase())
                .ok_or_else(|| PlanError::Speed(x.to_owned()))
        })
        .collect()
}

pub fn parse_metrics(s: &str) -> Result<Vec<Metric>, PlanError> {
    items("metrics", s)?
        .into_iter()
        .map(|x| {
            METRICS
                .iter()
                .copied()
                .find(|m| m.as_str() == x.to_ascii_lowercase())
                .ok_or_else(|| PlanError::Metric(x.to_owned()))
        })
        .collect()
}

/// Strictly increasing positive kbit/s.
pub fn parse_bitrates(s: &str) -> Result<Vec<u32>, PlanError> {
    let mut out: Vec<u32> = Vec::new();
    for x in items("bitrates", s)? {
        let v: u32 = x
            .strip_suffix('k')
            .unwrap_or(x)
            .parse()
            .map_err(|_| PlanError::BitrateNumber(x.to_owned()))?;
        if !(MIN_KBPS..=MAX_KBPS).contains(&v) {
            return Err(PlanError::BitrateRange(v));
        }
        if let Some(&last) = out.last()
            && v <= last
        {
            return Err(PlanError::BitrateOrder(last, v));
        }
        out.push(v);
    }
    Ok(out)
}

/// The range of a codec's constant-quality value as `--crf` takes it, on the encoder's own
/// scale: x264's CRF (x264enc's `quantizer` in `pass=qual`, whose maximum is 50), x265's `crf`,
/// libvpx's `cq-level` (constrained quality under a cap far above any rung, as GStreamer's
/// vpxenc has no pure Q mode), rav1e's `quantizer` with no bitrate target.
pub fn crf_range(codec: VideoCodec) -> (u32, u32) {
    match codec {
        VideoCodec::H264 => (0, 50),
        VideoCodec::H265 => (0, 51),
        VideoCodec::Vp8 | VideoCodec::Vp9 => (0, 63),
        VideoCodec::Av1 => (0, 255),
    }
}

/// Strictly increasing constant-quality values, each within every chosen codec's range.
pub fn parse_crf(s: &str, codecs: &[VideoCodec]) -> Result<Vec<u32>, PlanError> {
    let mut out: Vec<u32> = Vec::new();
    for x in items("crf", s)? {
        let v: u32 = x.parse().map_err(|_| PlanError::CrfNumber(x.to_owned()))?;
        for c in codecs {
            let (lo, hi) = crf_range(*c);
            if !(lo..=hi).contains(&v) {
                return Err(PlanError::CrfRange {
                    codec: c.as_str(),
                    value: v,
                    lo,
                    hi,
                });
            }
        }
        if let Some(&last) = out.last()
            && v <= last
        {
            return Err(PlanError::CrfOrder(last, v));
        }
        out.push(v);
    }
    Ok(out)
}

/// `10s`, `2.5`, `1500ms` → seconds.
pub fn parse_duration(s: &str) -> Result<f64, PlanError> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| PlanError::Duration(s.to_owned()))?;
    let v = v * scale;
    if !(v.is_finite() && v > 0.0 && v <= MAX_DURATION_S) {
        return Err(PlanError::Duration(s.to_owned()));
    }
    Ok(v)
}

pub fn parse_reference(s: Option<&str>) -> Result<bool, PlanError> {
    match s {
        None => Ok(false),
        Some("ffmpeg") => Ok(true),
        Some(o) => Err(PlanError::Reference(o.to_owned())),
    }
}

pub fn parse_scenario(s: Option<&str>, sources: usize) -> Result<Option<Scenario>, PlanError> {
    if sources == 0 {
        return Err(PlanError::NoSources);
    }
    match s {
        None => Ok(None),
        Some("pk") if sources == 2 => Ok(Some(Scenario::Pk)),
        Some("pk") => Err(PlanError::ScenarioSources(sources)),
        Some(o) => Err(PlanError::Scenario(o.to_owned())),
    }
}

pub fn check_jobs(jobs: usize) -> Result<usize, PlanError> {
    if (1..=MAX_JOBS).contains(&jobs) {
        Ok(jobs)
    } else {
        Err(PlanError::Jobs(jobs))
    }
}

/// A file-name-safe label for a source: `test:ball` → `test-ball`, `/a/b/clip.mp4` → `clip`.
pub fn source_label(source: &str) -> String {
    let base = if source.starts_with("test:") || source.contains("://") {
        source.to_owned()
    } else {
        std::path::Path::new(source)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| source.to_owned())
    };
    let mut out: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() { "source".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crf_lists() {
        use VideoCodec::*;
        assert_eq!(
            parse_crf("20, 26,32", &[H264, H265]).unwrap(),
            vec![20, 26, 32]
        );
        assert_eq!(parse_crf("100,200", &[Av1]).unwrap(), vec![100, 200]);
        assert_eq!(
            parse_crf("20,60", &[H264, Vp9]).unwrap_err().to_string(),
            "--crf 60 is out of range for h264 (allowed: 0..=50)"
        );
        assert_eq!(
            parse_crf("30,20", &[H264]),
            Err(PlanError::CrfOrder(30, 20))
        );
        assert_eq!(
            parse_crf("20,20", &[H264]),
            Err(PlanError::Duplicate("crf", "20".into()))
        );
        assert!(matches!(
            parse_crf("23.5", &[H264]),
            Err(PlanError::CrfNumber(_))
        ));
        assert!(matches!(
            parse_crf("-1", &[H264]),
            Err(PlanError::CrfNumber(_))
        ));
        assert_eq!(parse_crf("", &[H264]), Err(PlanError::Empty("crf")));
        assert_eq!(
            parse_crf("30,64", &[Vp8]).unwrap_err().to_string(),
            "--crf 64 is out of range for vp8 (allowed: 0..=63)"
        );
    }

    #[test]
    fn codec_lists() {
        assert_eq!(
            parse_codecs("h264,H265, av1,vp9,vp8").unwrap(),
            CODECS.to_vec()
        );
        let e = parse_codecs("h264,h266").unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown codec \"h266\" in --codecs (allowed: h264, h265, av1, vp9, vp8)"
        );
        assert_eq!(
            parse_codecs("h264,h264"),
            Err(PlanError::Duplicate("codecs", "h264".into()))
        );
        assert_eq!(parse_codecs(""), Err(PlanError::Empty("codecs")));
    }

    #[test]
    fn speeds_and_metrics() {
        assert_eq!(
            parse_speeds("veryfast,medium").unwrap(),
            vec![Speed::Veryfast, Speed::Medium]
        );
        assert!(
            parse_speeds("ludicrous")
                .unwrap_err()
                .to_string()
                .contains("allowed: ultrafast, superfast, veryfast")
        );
        assert_eq!(parse_metrics("psnr,ssim,vmaf").unwrap(), METRICS.to_vec());
        assert_eq!(
            parse_metrics("psnr,butteraugli"),
            Err(PlanError::Metric("butteraugli".into()))
        );
    }

    #[test]
    fn bitrates() {
        assert_eq!(
            parse_bitrates("300,600,1200k,2500").unwrap(),
            vec![300, 600, 1200, 2500]
        );
        assert_eq!(
            parse_bitrates("600,300"),
            Err(PlanError::BitrateOrder(600, 300))
        );
        assert_eq!(
            parse_bitrates("300,300"),
            Err(PlanError::Duplicate("bitrates", "300".into()))
        );
        assert_eq!(parse_bitrates("0,300"), Err(PlanError::BitrateRange(0)));
        assert_eq!(
            parse_bitrates("-5"),
            Err(PlanError::BitrateNumber("-5".into()))
        );
        assert_eq!(
            parse_bitrates("1.5"),
            Err(PlanError::BitrateNumber("1.5".into()))
        );
        assert!(
            parse_bitrates("abc")
                .unwrap_err()
                .to_string()
                .contains("allowed: increasing whole numbers")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), 10.0);
        assert_eq!(parse_duration("2.5").unwrap(), 2.5);
        assert_eq!(parse_duration("1500ms").unwrap(), 1.5);
        for bad in ["0", "-1s", "soon", "inf", "7200s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reference_scenario_jobs() {
        assert!(parse_reference(Some("ffmpeg")).unwrap());
        assert!(!parse_reference(None).unwrap());
        assert!(parse_reference(Some("x264")).is_err());
        assert_eq!(parse_scenario(Some("pk"), 2).unwrap(), Some(Scenario::Pk));
        assert_eq!(
            parse_scenario(Some("pk"), 1),
            Err(PlanError::ScenarioSources(1))
        );
        assert_eq!(
            parse_scenario(Some("grid"), 2),
            Err(PlanError::Scenario("grid".into()))
        );
        assert_eq!(parse_scenario(None, 0), Err(PlanError::NoSources));
        assert_eq!(check_jobs(0), Err(PlanError::Jobs(0)));
        assert_eq!(check_jobs(2), Ok(2));
    }

    #[test]
    fn labels() {
        assert_eq!(source_label("test:ball"), "test-ball");
        assert_eq!(source_label("/a/b/My clip.mp4"), "My-clip");
        assert_eq!(source_label("test:red?tone=880"), "test-red-tone-880");
        assert_eq!(source_label("???"), "source");
    }
}
