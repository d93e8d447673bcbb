//! Seat sources: the one string a user gives for where a seat's picture and sound come from,
//! the same in the CLI (`--seat host=test:red`) and the HTTP API (`"source": "test:red"`).
//!
//! - `test:<pattern>[?tone=<Hz>]`: a live test picture (any videotestsrc pattern) and tone;
//!   `tone=0` is silence.
//! - `publish`: a live publisher over RTMP or SRT (the seat gets a publish key; `showmix serve`);
//! - a URI that decodebin handles (`file://`, `http://`, `rtsp://`, …);
//! - anything else is a path to a media file.

use std::fmt;
use std::path::PathBuf;

/// videotestsrc's pattern names (GStreamer 1.22).
pub const TEST_PATTERNS: &[&str] = &[
    "smpte",
    "snow",
    "black",
    "white",
    "red",
    "green",
    "blue",
    "checkers-1",
    "checkers-2",
    "checkers-4",
    "checkers-8",
    "circular",
    "blink",
    "smpte75",
    "zone-plate",
    "gamut",
    "chroma-zone-plate",
    "solid-color",
    "ball",
    "smpte100",
    "bar",
    "pinwheel",
    "spokes",
    "gradient",
    "colors",
    "smpte-rp-219",
];

pub const DEFAULT_TONE_HZ: u32 = 440;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Test { pattern: String, tone_hz: u32 },
    Publish,
    Uri(String),
    File(PathBuf),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("source is empty (allowed: publish, test:<pattern>, a file path, or a URI)")]
    Empty,
    #[error("unknown test pattern {0:?} (allowed: {patterns})", patterns = TEST_PATTERNS.join(", "))]
    Pattern(String),
    #[error("test source option {0:?} is not understood (allowed: tone=<0 or 20..=20000 Hz>)")]
    Option(String),
    #[error("file {0:?} does not exist or is not a file")]
    Missing(PathBuf),
}

impl Source {
    pub fn parse(s: &str) -> Result<Source, SourceError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(SourceError::Empty);
        }
        if s == "publish" {
            return Ok(Source::Publish);
        }
        if let Some(rest) = s.strip_prefix("test:") {
            let (pattern, query) = rest.split_once('?').unwrap_or((rest, ""));
            if !TEST_PATTERNS.contains(&pattern) {
                return Err(SourceError::Pattern(pattern.to_owned()));
            }
            let mut tone_hz = DEFAULT_TONE_HZ;
            for kv in query.split('&').filter(|kv| !kv.is_empty()) {
                match kv.split_once('=') {
                    Some(("tone", v)) => match v.parse::<u32>() {
                        Ok(hz) if hz == 0 || (20..=20_000).contains(&hz) => tone_hz = hz,
                        _ => return Err(SourceError::Option(kv.to_owned())),
                    },
                    _ => return Err(SourceError::Option(kv.to_owned())),
                }
            }
            return Ok(Source::Test {
                pattern: pattern.to_owned(),
                tone_hz,
            });
        }
        if let Some((scheme, _)) = s.split_once("://")
            && !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        {
            return Ok(Source::Uri(s.to_owned()));
        }
        Ok(Source::File(PathBuf::from(s)))
    }

    /// Checks what can be checked before the pipeline runs: local files exist.
    pub fn check(&self) -> Result<(), SourceError> {
        match self {
            Source::File(p) if !p.is_file() => Err(SourceError::Missing(p.clone())),
            _ => Ok(()),
        }
    }

    /// Test sources and publishers are endless; files and URIs end.
    pub fn is_endless(&self) -> bool {
        matches!(self, Source::Test { .. } | Source::Publish)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Test { pattern, tone_hz } if *tone_hz == DEFAULT_TONE_HZ => {
                write!(f, "test:{pattern}")
            }
            Source::Test { pattern, tone_hz } => write!(f, "test:{pattern}?tone={tone_hz}"),
            Source::Publish => f.write_str("publish"),
            Source::Uri(u) => f.write_str(u),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_sources() {
        assert_eq!(
            Source::parse("test:red").unwrap(),
            Source::Test {
                pattern: "red".into(),
                tone_hz: 440
            }
        );
        assert_eq!(
            Source::parse("test:ball?tone=880").unwrap(),
            Source::Test {
                pattern: "ball".into(),
                tone_hz: 880
            }
        );
        assert_eq!(
            Source::parse("test:ball?tone=880").unwrap().to_string(),
            "test:ball?tone=880"
        );
        assert_eq!(
            Source::parse("test:red?tone=0").unwrap().to_string(),
            "test:red?tone=0"
        );
    }

    #[test]
    fn bad_test_sources() {
        let e = Source::parse("test:purple").unwrap_err().to_string();
        assert!(
            e.contains("unknown test pattern \"purple\" (allowed: smpte, snow"),
            "{e}"
        );
        assert!(matches!(
            Source::parse("test:red?tone=5"),
            Err(SourceError::Option(_))
        ));
        assert!(matches!(
            Source::parse("test:red?volume=1"),
            Err(SourceError::Option(_))
        ));
        assert!(matches!(Source::parse("   "), Err(SourceError::Empty)));
        assert_eq!(Source::parse("publish").unwrap(), Source::Publish);
        assert_eq!(Source::Publish.to_string(), "publish");
    }

    #[test]
    fn uris_and_files() {
        assert_eq!(
            Source::parse("rtsp://cam/1").unwrap(),
            Source::Uri("rtsp://cam/1".into())
        );
        assert_eq!(
            Source::parse("file:///tmp/a.mp4").unwrap(),
            Source::Uri("file:///tmp/a.mp4".into())
        );
        let f = Source::parse("/no/such/file.mp4").unwrap();
        assert_eq!(f, Source::File("/no/such/file.mp4".into()));
        assert!(
            f.check()
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
        assert!(!f.is_endless());
    }
}
