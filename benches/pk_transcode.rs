//! PK room transcode: showmix against the equivalent ffmpeg command, in one run, alternating.
//!
//! Two 1280x720 30 fps H.264+AAC inputs → `pk` (each input centre-cropped to its 640x720 half)
//! → `showroom-720p` ladder (720p 2500k, 480p 1200k, 360p 600k, x264 veryfast zerolatency,
//! no B-frames, 1 s GOP without scene cuts) + AAC 128k.
//!
//! Reports CPU seconds per second of content for both tools and their ratio, and the PSNR of
//! every rung of both against the same reference: the lossless mix (crop + hstack of the
//! decoded inputs, lanczos-scaled to the rung), so the comparison is at equal quality.
//!
//! Run: `cargo bench -p showmix-benches --bench pk_transcode` (SHOWMIX_BENCH_SECONDS=N to
//! change the clip length, default 10; SHOWMIX_BENCH_ROUNDS=N rounds, default 2).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use showmix::mix::{self, MixArgs};
use showmix::presets::Presets;
use showmix_tests::{motion_clip, photo_pan_clip, psnr, run};

mod pk_ffmpeg;
use pk_ffmpeg::Rungs;

fn children_cpu() -> Duration {
    let (user, sys) = showmix_tests::children_cpu();
    user + sys
}

fn ffmpeg_pk(a: &Path, b: &Path, out: &Path, r: &Rungs) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-i"])
        .arg(a)
        .arg("-i")
        .arg(b);
    cmd.args(["-filter_complex", &pk_ffmpeg::filter_graph(r)]);
    for i in 0..r.names.len() {
        cmd.args(["-map", &format!("[v{i}]"), "-map", &format!("[a{i}]")]);
        cmd.args(["-c:v", "libx264"]);
        cmd.args(pk_ffmpeg::x264_args(r.kbps[i], ":v"));
        cmd.args(["-c:a", "aac", "-b:a", "128k"]);
        cmd.arg(out.join(format!("{}.mp4", r.names[i])));
    }
    run(&mut cmd)?;
    Ok(())
}

/// The lossless mix at a rung's size, as a reference for PSNR.
fn reference(a: &Path, b: &Path, w: u32, h: u32, out: &Path) -> Result<PathBuf> {
    let path = out.join(format!("ref-{w}x{h}.mkv"));
    if !path.exists() {
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(a)
            .arg("-i")
            .arg(b)
            .args([
                "-filter_complex",
                &format!(
                    "[0:v]crop=640:720:320:0[l];[1:v]crop=640:720:320:0[r];[l][r]hstack=inputs=2,scale={w}:{h}:flags=lanczos"
                ),
                "-c:v",
                "ffv1",
                "-an",
            ])
            .arg(&path))?;
    }
    Ok(path)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: only run for real.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let secs: f64 = std::env::var("SHOWMIX_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let rounds: usize = std::env::var("SHOWMIX_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let dir = tempfile::tempdir()?;
    let a = dir.path().join("host.mp4");
    let b = dir.path().join("rival.mp4");
    eprintln!("generating two {secs} s 1280x720 30 fps inputs ...");
    motion_clip(&a, "testsrc2", secs, 1280, 720, 30, 440)?;
    photo_pan_clip(&b, secs, 1280, 720, 30, 660)?;

    let presets = Presets::embedded()?;
    let ladder = presets.ladder("showroom-720p")?;
    let rungs = Rungs::of(&ladder);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut ours_wall = Vec::new();
    let mut theirs_wall = Vec::new();
    for round in 0..rounds {
        let out = dir.path().join("showmix");
        let args = MixArgs {
            layout: "pk".into(),
            ladder: "showroom-720p".into(),
            seats: vec![
                ("host".into(), a.to_string_lossy().into_owned()),
                ("rival".into(), b.to_string_lossy().into_owned()),
            ],
            duration: None,
            out: out.clone(),
            progress: false,
        };
        let t = Instant::now();
        let report = mix::run(&args, &presets, &AtomicBool::new(false))?;
        ours_wall.push(t.elapsed().as_secs_f64());
        ours.push(report.cpu_seconds / report.content_seconds);

        let out = dir.path().join("ffmpeg");
        let c0 = children_cpu();
        let t = Instant::now();
        ffmpeg_pk(&a, &b, &out, &rungs)?;
        theirs_wall.push(t.elapsed().as_secs_f64());
        theirs.push((children_cpu() - c0).as_secs_f64() / secs);
        eprintln!(
            "round {}: showmix {:.3} CPU s/s, ffmpeg {:.3} CPU s/s",
            round + 1,
            ours[round],
            theirs[round]
        );
    }

    println!(
        "\nPK transcode, {secs} s of 2x 720p30 → pk → showroom-720p, {rounds} rounds (medians)"
    );
    let (o, f) = (median(&mut ours), median(&mut theirs));
    println!(
        "{:<28} {:>12} {:>12} {:>8}",
        "", "showmix", "ffmpeg", "ratio"
    );
    println!(
        "{:<28} {:>12.3} {:>12.3} {:>8.3}",
        "CPU s per content s",
        o,
        f,
        o / f
    );
    println!(
        "{:<28} {:>12.2} {:>12.2} {:>8.3}",
        "wall s",
        median(&mut ours_wall),
        median(&mut theirs_wall),
        median(&mut ours_wall) / median(&mut theirs_wall)
    );
    let mut json = serde_json::json!({
        "seconds": secs, "rounds": rounds,
        "cpu_per_content_second": {"showmix": o, "ffmpeg": f, "ratio": o / f},
        "rungs": [],
    });
    println!("\nPSNR against the lossless mix (dB):");
    println!(
        "{:<8} {:>10} {:>10} {:>8}",
        "rung", "showmix", "ffmpeg", "delta"
    );
    for (i, name) in rungs.names.iter().enumerate() {
        let (w, h) = rungs.dims[i];
        let reference = reference(&a, &b, w, h, dir.path())?;
        let ps = psnr(
            &dir.path().join("showmix").join(format!("{name}.mp4")),
            &reference,
        )
        .with_context(|| format!("psnr showmix {name}"))?;
        let pf = psnr(
            &dir.path().join("ffmpeg").join(format!("{name}.mp4")),
            &reference,
        )
        .with_context(|| format!("psnr ffmpeg {name}"))?;
        println!("{name:<8} {ps:>10.2} {pf:>10.2} {:>8.2}", ps - pf);
        json["rungs"]
            .as_array_mut()
            .context("rungs")?
            .push(serde_json::json!({"name": name, "psnr_showmix": ps, "psnr_ffmpeg": pf}));
    }
    let target = showmix_tests::workspace_root().join("target/bench");
    std::fs::create_dir_all(&target)?;
    std::fs::write(
        target.join("pk_transcode.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    println!("\nwritten: target/bench/pk_transcode.json");
    Ok(())
}
