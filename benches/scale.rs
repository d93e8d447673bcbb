//! Rung scaling: `showmixscale`'s resampler against swscale (ffmpeg's `scale` filter, what a
//! user would otherwise run) and GStreamer's `videoscale` (what it replaced), per frame, one
//! thread, 1280x720 I420 → each rung size of the showroom-720p ladder; plus the PSNR of the
//! showmix and ffmpeg pictures against ffmpeg's Lanczos downscale of the same frame.
//!
//! The frame is ffmpeg's `testsrc2` (sharp colour edges, text, gradients: the hard case).
//! showmix is timed in process on the plane slices (best of 5 runs of 200 frames). ffmpeg
//! and gst-launch read a file of the frame repeated 10 times, looped to N = 300 frames,
//! once with the scaler and once without; the scaler's cost is the difference of the child
//! processes' user CPU time (getrusage(RUSAGE_CHILDREN)), best of 5, divided by N. On a
//! shared VM these subtractions vary by ±30 % between runs: run it twice.
//!
//! Run: `cargo bench -p showmix-benches --bench scale`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gstshowmixscale::resample::{Kernel, PlaneScaler};

const SRC: (usize, usize) = (1280, 720);
const RUNGS: [(usize, usize); 2] = [(854, 480), (640, 360)];
/// Frames in the raw file the external tools loop over.
const LOOPED: usize = 10;

fn chroma(w: usize, h: usize) -> (usize, usize) {
    (w.div_ceil(2), h.div_ceil(2))
}

fn i420_len(w: usize, h: usize) -> usize {
    let (cw, ch) = chroma(w, h);
    w * h + 2 * cw * ch
}

fn ffmpeg_frame(w: usize, h: usize, vf: &str) -> Result<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={}x{}:rate=30", SRC.0, SRC.1))
        .args([
            "-frames:v",
            "1",
            "-vf",
            vf,
            "-pix_fmt",
            "yuv420p",
            "-f",
            "rawvideo",
            "-",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("ffmpeg")?;
    if !out.status.success() || out.stdout.len() != i420_len(w, h) {
        bail!("ffmpeg gave {} bytes for {w}x{h} ({vf})", out.stdout.len());
    }
    Ok(out.stdout)
}

struct Scaler {
    luma: PlaneScaler,
    chroma: PlaneScaler,
}

impl Scaler {
    fn new() -> Self {
        // The element's defaults.
        Self {
            luma: PlaneScaler::new(Kernel::CatmullRom),
            chroma: PlaneScaler::new(Kernel::Lanczos3),
        }
    }

    fn run(&mut self, src: &[u8], dst: &mut [u8], (dw, dh): (usize, usize)) -> Result<()> {
        let (sw, sh) = SRC;
        let ((scw, sch), (dcw, dch)) = (chroma(sw, sh), chroma(dw, dh));
        let (sy, su) = src.split_at(sw * sh);
        let (su, sv) = su.split_at(scw * sch);
        let (dy, du) = dst.split_at_mut(dw * dh);
        let (du, dv) = du.split_at_mut(dcw * dch);
        self.luma.scale(sy, (sw, sh, sw), dy, (dw, dh, dw))?;
        self.chroma
            .scale(su, (scw, sch, scw), du, (dcw, dch, dcw))?;
        self.chroma
            .scale(sv, (scw, sch, scw), dv, (dcw, dch, dcw))?;
        Ok(())
    }
}

fn showmix_ms(src: &[u8], size: (usize, usize)) -> Result<f64> {
    let mut s = Scaler::new();
    let mut dst = vec![0u8; i420_len(size.0, size.1)];
    s.run(src, &mut dst, size)?; // weights and scratch
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..200 {
            s.run(std::hint::black_box(src), &mut dst, size)?;
            std::hint::black_box(&dst);
        }
        best = best.min(t.elapsed());
    }
    Ok(best.as_secs_f64() * 1e3 / 200.0)
}

/// User CPU of one child run, best of 5.
fn best_child(mut cmd: impl FnMut() -> Command) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let before = showmix_tests::children_cpu().0;
        let st = cmd().stdin(Stdio::null()).stdout(Stdio::null()).status()?;
        if !st.success() {
            bail!("{:?} failed", cmd());
        }
        best = best.min(showmix_tests::children_cpu().0.saturating_sub(before));
    }
    Ok(best)
}

fn ffmpeg_ms(raw: &Path, n: usize, size: (usize, usize)) -> Result<f64> {
    let run = |vf: String| {
        let raw = raw.to_owned();
        move || {
            let mut c = Command::new("ffmpeg");
            c.args(["-v", "error", "-threads", "1", "-filter_threads", "1"])
                .args(["-stream_loop", &(n / LOOPED - 1).to_string()])
                .args([
                    "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "1280x720", "-i",
                ])
                .arg(&raw)
                .args(["-vf", &vf, "-f", "null", "-"]);
            c
        }
    };
    let with = best_child(run(format!("scale={}:{}", size.0, size.1)))?;
    let without = best_child(run("null".into()))?;
    Ok(with.saturating_sub(without).as_secs_f64() * 1e3 / n as f64)
}

fn videoscale_ms(raw: &Path, n: usize, size: (usize, usize)) -> Result<f64> {
    let run = |scale: Option<(usize, usize)>| {
        let raw = raw.to_owned();
        move || {
            let mut c = Command::new("gst-launch-1.0");
            // multifilesrc loops the file (stop-index counts files read).
            c.arg("-q").args([
                "multifilesrc",
                &format!("location={}", raw.display()),
                &format!("stop-index={}", n / LOOPED - 1),
                "!",
            ]);
            c.args([
                "rawvideoparse",
                "width=1280",
                "height=720",
                "format=i420",
                "!",
            ]);
            if let Some((w, h)) = scale {
                c.args([
                    "videoscale",
                    "method=catrom",
                    "add-borders=false",
                    "n-threads=1",
                    "!",
                ]);
                c.arg(format!("video/x-raw,width={w},height={h}")).arg("!");
            }
            c.args(["fakesink", "sync=false"]);
            c
        }
    };
    let with = best_child(run(Some(size)))?;
    let without = best_child(run(None))?;
    Ok(with.saturating_sub(without).as_secs_f64() * 1e3 / n as f64)
}

/// PSNR over all three planes together (ffmpeg's "average"), in dB.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-10)).log10()
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let src = ffmpeg_frame(SRC.0, SRC.1, "null")?;
    let n = 300;
    let mut raw = tempfile::NamedTempFile::new()?;
    for _ in 0..LOOPED {
        raw.write_all(&src)?;
    }
    raw.flush()?;
    println!("\nRung scaling, 1280x720 I420 testsrc2 frame, one thread, ms per frame");
    println!(
        "{:<10} {:>9} {:>9} {:>7} {:>11} {:>7} {:>13} {:>13}",
        "rung", "showmix", "ffmpeg", "ratio", "videoscale", "ratio", "PSNR showmix", "PSNR ffmpeg"
    );
    let mut json = Vec::new();
    for size in RUNGS {
        let ours = showmix_ms(&src, size)?;
        let ff = ffmpeg_ms(raw.path(), n, size)?;
        let vs = videoscale_ms(raw.path(), n, size)?;
        let reference = ffmpeg_frame(
            size.0,
            size.1,
            &format!("scale={}:{}:flags=lanczos", size.0, size.1),
        )?;
        let ff_pic = ffmpeg_frame(size.0, size.1, &format!("scale={}:{}", size.0, size.1))?;
        let mut our_pic = vec![0u8; i420_len(size.0, size.1)];
        Scaler::new().run(&src, &mut our_pic, size)?;
        let (p_ours, p_ff) = (psnr(&our_pic, &reference), psnr(&ff_pic, &reference));
        let name = format!("{}x{}", size.0, size.1);
        println!(
            "{name:<10} {ours:>9.3} {ff:>9.3} {:>7.2} {vs:>11.3} {:>7.2} {p_ours:>13.2} {p_ff:>13.2}",
            ours / ff,
            ours / vs
        );
        json.push(serde_json::json!({
            "rung": name, "showmix_ms": ours, "ffmpeg_ms": ff, "videoscale_ms": vs,
            "ratio_ffmpeg": ours / ff, "ratio_videoscale": ours / vs,
            "psnr_showmix": p_ours, "psnr_ffmpeg": p_ff,
        }));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("scale.json"), serde_json::to_string_pretty(&json)?)?;
    println!("\nwritten: target/bench/scale.json");
    Ok(())
}
