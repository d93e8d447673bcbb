//! The encode-test experiment: `showmix encode-test` against the same experiment scripted with
//! ffmpeg, as an engineer would otherwise run it: per rung an ffmpeg encode from the source
//! file, then `ffmpeg -lavfi psnr/ssim` against the source (decoding both again).
//!
//! 4 codecs (h264, h265, vp9, av1) × 4 bitrates (150, 300, 600, 1200 kbit/s) of a 3 s 360p30
//! moving test picture, 1 s GOP, veryfast, live constraints, PSNR and SSIM, one encode at a
//! time on both sides. Reports wall time and CPU (children's rusage) of each and the wall ratio
//! (target ≤ 0.8).
//!
//! Run: `cargo bench -p showmix-benches --bench encode_test` (SHOWMIX_BENCH_SECONDS=N to change
//! the clip length, default 3).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use showmix::encode_test::worker::{EncodeSpec, Rate};
use showmix::presets::ladder::{Speed, VideoCodec};
use showmix_tests::{motion_clip, run};

const CODECS: [VideoCodec; 4] = [
    VideoCodec::H264,
    VideoCodec::H265,
    VideoCodec::Vp9,
    VideoCodec::Av1,
];
const BITRATES: [u32; 4] = [150, 300, 600, 1200];

fn children_cpu() -> Duration {
    let (user, sys) = showmix_tests::children_cpu();
    user + sys
}

fn scripted_ffmpeg(src: &Path, dir: &Path, secs: f64) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for codec in CODECS {
        for kbps in BITRATES {
            let ext = showmix::encode_test::worker::file_ext(codec);
            let out = dir.join(format!("{}-{kbps}.{ext}", codec.as_str()));
            let spec = EncodeSpec {
                codec,
                speed: Speed::Veryfast,
                width: 640,
                height: 360,
                fps: 30,
                gop_frames: 30,
                rate: Rate::Kbps(kbps),
                live: true,
                input: src.to_owned(),
                output: out.clone(),
            };
            // The same encoder settings as the reference encodes, from the source file.
            let mut args = spec.ffmpeg_args();
            let i = args.iter().position(|a| a == "-i").context("-i")?;
            // Drop the raw-input options (-f rawvideo … -r 30) before -i: the source is a file.
            let first = args.iter().position(|a| a == "-f").context("-f")?;
            args.drain(first..i);
            args.retain(|a| a != "-progress" && a != "pipe:1");
            // -t goes before the output name.
            let mut a: Vec<String> = args;
            let outname = a.pop().context("output")?;
            a.extend(["-t".into(), secs.to_string(), outname]);
            run(Command::new("ffmpeg").args(&a))?;
            run(Command::new("ffmpeg").args([
                "-v",
                "error",
                "-i",
                out.to_str().context("utf-8")?,
                "-t",
                &secs.to_string(),
                "-i",
                src.to_str().context("utf-8")?,
                "-lavfi",
                "[0:v]split[a][b];[1:v]split[c][d];[a][c]psnr=stats_file=-[p];[b][d]ssim=stats_file=-[s];[p][s]hstack",
                "-f",
                "null",
                "-",
            ]))?;
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let secs: f64 = std::env::var("SHOWMIX_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    let showmix = showmix_tests::showmix_release_bin()?;
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("src.mp4");
    motion_clip(&src, "testsrc2", secs, 640, 360, 30, 440)?;
    let ladder = dir.path().join("ladder.toml");
    std::fs::write(
        &ladder,
        "gop_seconds = 1.0\n[canvas]\nwidth = 640\nheight = 360\nfps = 30\n[[rungs]]\nname = \"360p\"\nwidth = 640\nheight = 360\nbitrate_kbps = 600\n",
    )?;
    let rates: Vec<String> = BITRATES.iter().map(|b| b.to_string()).collect();
    let codecs: Vec<&str> = CODECS.iter().map(|c| c.as_str()).collect();

    let cpu0 = children_cpu();
    let t0 = Instant::now();
    run(Command::new(&showmix).args([
        "encode-test",
        src.to_str().context("utf-8")?,
        "--ladder",
        ladder.to_str().context("utf-8")?,
        "--codecs",
        &codecs.join(","),
        "--speed",
        "veryfast",
        "--bitrates",
        &rates.join(","),
        "--duration",
        &format!("{secs}s"),
        "--metrics",
        "psnr,ssim",
        "--jobs",
        "1",
        "--quiet",
        "--out",
        dir.path().join("showmix").to_str().context("utf-8")?,
    ]))?;
    let sm_wall = t0.elapsed().as_secs_f64();
    let sm_cpu = (children_cpu() - cpu0).as_secs_f64();

    let cpu1 = children_cpu();
    let t1 = Instant::now();
    scripted_ffmpeg(&src, &dir.path().join("ffmpeg"), secs)?;
    let ff_wall = t1.elapsed().as_secs_f64();
    let ff_cpu = (children_cpu() - cpu1).as_secs_f64();

    println!(
        "encode_test: {} codecs x {} bitrates, {secs} s of 640x360@30, psnr+ssim, one encode at a time",
        CODECS.len(),
        BITRATES.len()
    );
    println!("  showmix encode-test : wall {sm_wall:7.2} s  CPU {sm_cpu:7.2} s");
    println!("  scripted ffmpeg     : wall {ff_wall:7.2} s  CPU {ff_cpu:7.2} s");
    println!(
        "  ratio showmix/ffmpeg: wall {:.3}  CPU {:.3}  (target wall <= 0.8)",
        sm_wall / ff_wall,
        sm_cpu / ff_cpu
    );
    Ok(())
}
