//! The encode-test report: its versioned schema (`report.json`), the per-frame table
//! (`frames.csv`), and the numbers derived from the encodes (per-rung aggregates, BD-rates,
//! convex hulls). Plain Rust: the media side fills [`Encode`] and [`FrameRow`] values in.
//! The schema is documented in docs/encode-test.md; bump [`SCHEMA_VERSION`] on any change
//! that is not a pure addition.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::bdrate::{self, RdPoint};

pub const SCHEMA: &str = "showmix.encode-test";
pub const SCHEMA_VERSION: u32 = 2;
/// Per-frame PSNR of identical frames is infinite; JSON has no infinity, so PSNR is capped.
pub const PSNR_CAP_DB: f64 = 100.0;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub schema_version: u32,
    pub showmix_version: String,
    /// False when the run was interrupted (Ctrl-C) or an encode failed: what is here is
    /// what finished.
    pub complete: bool,
    pub settings: Settings,
    pub notes: Vec<String>,
    pub sources: Vec<SourceInfo>,
    pub encodes: Vec<Encode>,
    pub bd_rates: Vec<BdRate>,
    pub hulls: Vec<Hull>,
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    pub ladder: String,
    pub canvas_width: u32,
    pub canvas_height: u32,
    pub fps: u32,
    pub gop_frames: u32,
    /// Live constraints: zero-latency tuning, no B-frames, fixed GOP.
    pub live: bool,
    pub codecs: Vec<String>,
    pub speeds: Vec<String>,
    /// Bitrates every rung is encoded at; empty: each rung at its ladder bitrate.
    pub bitrates_kbps: Vec<u32>,
    /// Constant-quality values every rung is encoded at (`--crf`); empty: bitrate targets.
    #[serde(default)]
    pub crf: Vec<u32>,
    pub duration_seconds: f64,
    pub metrics: Vec<String>,
    pub reference: Option<String>,
    pub jobs: usize,
    pub scenario: Option<String>,
    /// How the source is scaled to each rung before encoding and as the metrics' reference.
    pub scaling_filter: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SourceInfo {
    pub id: String,
    pub source: String,
    pub frames: u64,
    pub content_seconds: f64,
}

/// One encode of one source at one rung, codec, speed and bitrate.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Encode {
    pub id: String,
    pub source: String,
    /// "showmix" (the engine's GStreamer encoders) or "ffmpeg" (the ffmpeg CLI reference).
    pub encoder: String,
    pub codec: String,
    pub speed: String,
    pub rung: String,
    pub width: u32,
    pub height: u32,
    /// The bitrate target; 0 when the encode is constant quality (`crf`).
    pub target_kbps: u32,
    /// Constant quality on the encoder's own scale, when `--crf` was given.
    #[serde(default)]
    pub crf: Option<u32>,
    pub file: String,
    pub frames: u64,
    pub keyframes: u64,
    /// Keyframe positions (frame numbers).
    pub keyframe_frames: Vec<u64>,
    /// Bytes of video packets (without the container).
    pub video_bytes: u64,
    /// `video_bytes * 8 / (frames / fps)` in kbit/s.
    pub bitrate_kbps: f64,
    /// PSNR of the mean luma MSE over all frames (dB).
    pub psnr_y: Option<f64>,
    /// PSNR of the mean of (6·MSE_Y + MSE_U + MSE_V) / 8.
    pub psnr_yuv: Option<f64>,
    /// Mean per-frame SSIM, all planes (libavfilter's "All").
    pub ssim: Option<f64>,
    pub ssim_y: Option<f64>,
    pub vmaf: Option<f64>,
    pub speed_stats: Option<SpeedStats>,
    pub error: Option<String>,
}

impl Encode {
    /// What the encode aimed at: `300 kbit/s` or `crf 23`.
    pub fn target(&self) -> String {
        match self.crf {
            Some(q) => format!("crf {q}"),
            None => format!("{} kbit/s", self.target_kbps),
        }
    }
}

/// The encode's own process, measured by its rusage (so parallel jobs do not mix).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SpeedStats {
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub cpu_per_content_second: f64,
    pub fps: f64,
    /// Content seconds per wall second.
    pub realtime_factor: f64,
    pub peak_rss_kib: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BdRate {
    pub source: String,
    pub encoder: String,
    pub speed: String,
    /// A rung name, or "hull" for the convex hull across rungs.
    pub rung: String,
    /// "psnr_y" or "vmaf".
    pub metric: String,
    pub anchor: String,
    pub codec: String,
    pub percent: Option<f64>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hull {
    pub source: String,
    pub encoder: String,
    pub codec: String,
    pub speed: String,
    /// Encode ids on the hull, by increasing bitrate.
    pub encodes: Vec<String>,
}

/// One row of frames.csv.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameRow {
    pub frame: u64,
    pub seconds: f64,
    pub bytes: u64,
    pub key: bool,
    pub mse_y: Option<f64>,
    pub mse_u: Option<f64>,
    pub mse_v: Option<f64>,
    pub ssim_y: Option<f64>,
    pub ssim_all: Option<f64>,
}

pub fn psnr(mse: f64) -> f64 {
    if mse <= 0.0 {
        return PSNR_CAP_DB;
    }
    (10.0 * (255.0f64 * 255.0 / mse).log10()).min(PSNR_CAP_DB)
}

fn weighted_mse(r: &FrameRow) -> Option<f64> {
    Some((6.0 * r.mse_y? + r.mse_u? + r.mse_v?) / 8.0)
}

impl FrameRow {
    pub fn psnr_y(&self) -> Option<f64> {
        self.mse_y.map(psnr)
    }
    pub fn psnr_yuv(&self) -> Option<f64> {
        weighted_mse(self).map(psnr)
    }
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// Fills an encode's frame, size and quality figures from its per-frame rows.
pub fn summarise(e: &mut Encode, rows: &[FrameRow], fps: u32) {
    e.frames = rows.len() as u64;
    e.keyframe_frames = rows.iter().filter(|r| r.key).map(|r| r.frame).collect();
    e.keyframes = e.keyframe_frames.len() as u64;
    e.video_bytes = rows.iter().map(|r| r.bytes).sum();
    let seconds = rows.len() as f64 / f64::from(fps.max(1));
    e.bitrate_kbps = if seconds > 0.0 {
        round(e.video_bytes as f64 * 8.0 / seconds / 1000.0, 3)
    } else {
        0.0
    };
    let all = |f: fn(&FrameRow) -> Option<f64>| -> Option<f64> {
        let v: Option<Vec<f64>> = rows.iter().map(f).collect();
        v.and_then(|v| mean(v.into_iter()))
    };
    e.psnr_y = all(|r| r.mse_y).map(|m| round(psnr(m), 4));
    e.psnr_yuv = all(weighted_mse).map(|m| round(psnr(m), 4));
    e.ssim = all(|r| r.ssim_all).map(|s| round(s, 6));
    e.ssim_y = all(|r| r.ssim_y).map(|s| round(s, 6));
}

/// BD-rates of every codec against the first one, per (source, encoder, speed, rung) and,
/// when there are several rungs, on each codec's convex hull across them. Also returns the
/// hulls.
pub fn derive(encodes: &[Encode], codecs: &[String], metrics: &[&str]) -> (Vec<BdRate>, Vec<Hull>) {
    let ok: Vec<&Encode> = encodes.iter().filter(|e| e.error.is_none()).collect();
    let mut groups: Vec<(String, String, String)> = Vec::new();
    for e in &ok {
        let g = (e.source.clone(), e.encoder.clone(), e.speed.clone());
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut bds = Vec::new();
    let mut hulls = Vec::new();
    let Some(anchor) = codecs.first() else {
        return (bds, hulls);
    };
    for (source, encoder, speed) in groups {
        let in_group: Vec<&Encode> = ok
            .iter()
            .copied()
            .filter(|e| e.source == source && e.encoder == encoder && e.speed == speed)
            .collect();
        let mut rungs: Vec<String> = Vec::new();
        for e in &in_group {
            if !rungs.contains(&e.rung) {
                rungs.push(e.rung.clone());
            }
        }
        // Hulls per codec (over every rung), by PSNR-Y.
        let mut hull_of: Vec<(String, Vec<&Encode>)> = Vec::new();
        for codec in codecs {
            let pts: Vec<&Encode> = in_group
                .iter()
                .copied()
                .filter(|e| &e.codec == codec && e.psnr_y.is_some())
                .collect();
            let rd: Vec<RdPoint> = pts
                .iter()
                .map(|e| RdPoint {
                    rate: e.bitrate_kbps,
                    quality: e.psnr_y.unwrap_or_default(),
                })
                .collect();
            let on: Vec<&Encode> = bdrate::convex_hull(&rd)
                .into_iter()
                .map(|i| pts[i])
                .collect();
            if rungs.len() > 1 && !on.is_empty() {
                hulls.push(Hull {
                    source: source.clone(),
                    encoder: encoder.clone(),
                    codec: codec.clone(),
                    speed: speed.clone(),
                    encodes: on.iter().map(|e| e.id.clone()).collect(),
                });
            }
            hull_of.push((codec.clone(), on));
        }
        let mut scopes: Vec<(String, Vec<Vec<&Encode>>)> = rungs
            .iter()
            .map(|r| {
                let per_codec = codecs
                    .iter()
                    .map(|c| {
                        in_group
                            .iter()
                            .copied()
                            .filter(|e| &e.rung == r && &e.codec == c)
                            .collect()
                    })
                    .collect();
                (r.clone(), per_codec)
            })
            .collect();
        if rungs.len() > 1 {
            scopes.push((
                "hull".into(),
                hull_of.iter().map(|(_, v)| v.clone()).collect(),
            ));
        }
        for (rung, per_codec) in scopes {
            for metric in metrics {
                let q = |e: &Encode| match *metric {
                    "vmaf" => e.vmaf,
                    _ => e.psnr_y,
                };
                let curve = |es: &[&Encode]| -> Option<Vec<RdPoint>> {
                    es.iter()
                        .map(|e| {
                            q(e).map(|quality| RdPoint {
                                rate: e.bitrate_kbps,
                                quality,
                            })
                        })
                        .collect()
                };
                let anchor_curve = curve(&per_codec[0]);
                for (ci, codec) in codecs.iter().enumerate() {
                    let (percent, note) = match (&anchor_curve, curve(&per_codec[ci])) {
                        (Some(a), Some(t)) => match bdrate::bd_rate(a, &t) {
                            Ok(p) => (Some(round(p, 4)), None),
                            Err(e) => (None, Some(e.to_string())),
                        },
                        _ => (None, Some(format!("no {metric} values"))),
                    };
                    bds.push(BdRate {
                        source: source.clone(),
                        encoder: encoder.clone(),
                        speed: speed.clone(),
                        rung: rung.clone(),
                        metric: metric.to_string(),
                        anchor: anchor.clone(),
                        codec: codec.clone(),
                        percent,
                        note,
                    });
                }
            }
        }
    }
    (bds, hulls)
}

pub const CSV_HEADER: &str = "encode,source,encoder,codec,speed,rung,target_kbps,crf,frame,seconds,bytes,key,psnr_y,psnr_yuv,mse_y,mse_u,mse_v,ssim_y,ssim_all";

fn opt(v: Option<f64>, digits: i32) -> String {
    v.map(|x| round(x, digits).to_string()).unwrap_or_default()
}

/// Appends one encode's rows to frames.csv (CSV, RFC 4180; ids never contain commas).
pub fn write_csv_rows(w: &mut impl Write, e: &Encode, rows: &[FrameRow]) -> std::io::Result<()> {
    for r in rows {
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            e.id,
            csv_field(&e.source),
            e.encoder,
            e.codec,
            e.speed,
            e.rung,
            e.target_kbps,
            e.crf.map(|q| q.to_string()).unwrap_or_default(),
            r.frame,
            round(r.seconds, 4),
            r.bytes,
            u8::from(r.key),
            opt(r.psnr_y(), 4),
            opt(r.psnr_yuv(), 4),
            opt(r.mse_y, 4),
            opt(r.mse_u, 4),
            opt(r.mse_v, 4),
            opt(r.ssim_y, 6),
            opt(r.ssim_all, 6),
        )?;
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Writes `report.json` through a temporary file and a rename, so a reader (or a full disk)
/// never sees half a report.
pub fn write_json(dir: &Path, report: &Report) -> anyhow::Result<()> {
    use anyhow::Context;
    let path = dir.join("report.json");
    let tmp = dir.join(".report.json.part");
    let text = serde_json::to_string_pretty(report)? + "\n";
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(frame: u64, bytes: u64, key: bool, mse: f64) -> FrameRow {
        FrameRow {
            frame,
            seconds: frame as f64 / 30.0,
            bytes,
            key,
            mse_y: Some(mse),
            mse_u: Some(mse / 2.0),
            mse_v: Some(mse / 2.0),
            ssim_y: Some(0.9),
            ssim_all: Some(0.95),
        }
    }

    #[test]
    fn summary_numbers() {
        let rows: Vec<FrameRow> = (0..30).map(|i| row(i, 1000, i % 10 == 0, 6.5025)).collect();
        let mut e = Encode::default();
        summarise(&mut e, &rows, 30);
        assert_eq!(e.frames, 30);
        assert_eq!(e.keyframe_frames, vec![0, 10, 20]);
        // 30 000 bytes in one second.
        assert_eq!(e.bitrate_kbps, 240.0);
        // 255² / 6.5025 = 10000: 40 dB.
        assert_eq!(e.psnr_y, Some(40.0));
        // (6·6.5025 + 2·3.25125) / 8 = 5.6896875
        assert!((e.psnr_yuv.unwrap() - 10.0 * (65025.0f64 / 5.6896875).log10()).abs() < 1e-4);
        assert_eq!(e.ssim, Some(0.95));
    }

    #[test]
    fn psnr_is_capped() {
        assert_eq!(psnr(0.0), PSNR_CAP_DB);
        assert!((psnr(65025.0) - 0.0).abs() < 1e-12);
    }

    fn enc(codec: &str, rung: &str, kbps: f64, q: f64) -> Encode {
        Encode {
            id: format!("{codec}-{rung}-{kbps}"),
            source: "s".into(),
            encoder: "showmix".into(),
            codec: codec.into(),
            speed: "veryfast".into(),
            rung: rung.into(),
            bitrate_kbps: kbps,
            psnr_y: Some(q),
            ..Default::default()
        }
    }

    #[test]
    fn bd_rates_against_the_first_codec() {
        let mut es = Vec::new();
        for (k, q) in [(300.0, 32.0), (600.0, 35.0), (1200.0, 38.0), (2400.0, 40.0)] {
            es.push(enc("h264", "360p", k, q));
            es.push(enc("h265", "360p", k * 0.8, q));
        }
        let codecs = vec!["h264".to_string(), "h265".to_string()];
        let (bds, hulls) = derive(&es, &codecs, &["psnr_y", "vmaf"]);
        assert!(hulls.is_empty(), "one rung: no hull");
        let get = |codec: &str, metric: &str| {
            bds.iter()
                .find(|b| b.codec == codec && b.metric == metric)
                .unwrap()
                .clone()
        };
        assert_eq!(get("h264", "psnr_y").percent, Some(0.0));
        assert_eq!(get("h265", "psnr_y").percent, Some(-20.0));
        assert_eq!(get("h265", "vmaf").percent, None);
        assert_eq!(get("h265", "vmaf").note.as_deref(), Some("no vmaf values"));
    }

    #[test]
    fn hull_scope_with_several_rungs() {
        let mut es = Vec::new();
        for (k, lo, hi) in [
            (300.0, 33.0, 31.0),
            (600.0, 36.0, 35.0),
            (1200.0, 37.0, 38.2),
        ] {
            es.push(enc("h264", "360p", k, lo));
            es.push(enc("h264", "720p", k, hi));
        }
        let codecs = vec!["h264".to_string()];
        let (bds, hulls) = derive(&es, &codecs, &["psnr_y"]);
        assert_eq!(hulls.len(), 1);
        assert_eq!(
            hulls[0].encodes,
            ["h264-360p-300", "h264-360p-600", "h264-720p-1200"]
        );
        assert!(
            bds.iter()
                .any(|b| b.rung == "hull" && b.percent == Some(0.0))
        );
    }

    #[test]
    fn csv_rows() {
        let e = Encode {
            id: "a".into(),
            source: "test:ball".into(),
            encoder: "showmix".into(),
            codec: "h264".into(),
            speed: "veryfast".into(),
            rung: "360p".into(),
            target_kbps: 300,
            ..Default::default()
        };
        let mut out = Vec::new();
        write_csv_rows(&mut out, &e, &[row(0, 10, true, 6.5025)]).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("a,test:ball,showmix,h264,veryfast,360p,300,,0,0,10,1,40,"),
            "{s}"
        );
        assert_eq!(
            s.trim_end().split(',').count(),
            CSV_HEADER.split(',').count()
        );
    }
}
