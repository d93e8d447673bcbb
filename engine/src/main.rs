//! The `showmix` command: parse arguments, load presets, run the subcommand, exit non-zero with
//! a one-line reason on any error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use showmix::mix::{self, MixArgs};
use showmix::presets::Presets;

#[derive(Parser)]
#[command(
    name = "showmix",
    version,
    about = "Live-streaming mixing and ABR transcoding engine"
)]
struct Cli {
    /// Directory of user presets (layouts/, ladders/, beauty/) overriding the embedded ones.
    #[arg(long, global = true, env = "SHOWMIX_PRESETS_DIR")]
    presets_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mix seats into a layout and encode the ladder to <out>/<rung>.mp4 plus report.json.
    Mix {
        /// Layout preset name or TOML file.
        #[arg(long, default_value = "single")]
        layout: String,
        /// Ladder preset name or TOML file.
        #[arg(long, default_value = "showroom-720p")]
        ladder: String,
        /// A seat as <id>=<source>: test:<pattern>[?tone=Hz], a file path or a URI. Seat order
        /// is slot order.
        #[arg(long = "seat", required = true, value_name = "ID=SOURCE")]
        seats: Vec<String>,
        /// Seconds to mix; default: until the longest file ends (or Ctrl-C for test sources).
        #[arg(long)]
        duration: Option<f64>,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Encode sources through codecs × speeds × rungs × bitrates; report bitrate, quality
    /// (PSNR, SSIM, VMAF where available), speed, BD-rates and charts in <out>.
    EncodeTest {
        /// Files, URIs or test:<pattern> sources (two with --scenario pk).
        #[arg(required = true, value_name = "SOURCE")]
        sources: Vec<String>,
        /// Ladder preset name or TOML file: the canvas, rungs, GOP and default speed.
        #[arg(long, default_value = "showroom-720p")]
        ladder: String,
        /// Codecs, comma-separated: h264, h265, av1, vp9, vp8. BD-rates are against the first.
        #[arg(long, default_value = "h264")]
        codecs: String,
        /// Speed presets (x264 names, mapped per encoder as the ladders do); default: the ladder's.
        #[arg(long = "speed")]
        speeds: Option<String>,
        /// Bitrates in kbit/s, increasing, each rung encoded at each; default: the ladder's.
        #[arg(long)]
        bitrates: Option<String>,
        /// Constant quality instead of bitrates, increasing, on each encoder's own scale
        /// (h264 CRF 0..=50, h265 CRF 0..=51, vp8/vp9 cq-level 0..=63, av1 quantizer 0..=255).
        #[arg(long)]
        crf: Option<String>,
        /// How much of each source: 10s, 2.5, 1500ms.
        #[arg(long, default_value = "10s")]
        duration: String,
        /// Metrics: psnr, ssim, vmaf.
        #[arg(long, default_value = "psnr,ssim,vmaf")]
        metrics: String,
        /// Also encode through this reference tool with the same settings: ffmpeg.
        #[arg(long)]
        reference: Option<String>,
        /// Output directory (created if missing).
        #[arg(long, default_value = "encode-test")]
        out: PathBuf,
        /// Encodes run in parallel (each in its own process).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Mix the sources through the room pipeline first: pk (two sources side by side).
        #[arg(long)]
        scenario: Option<String>,
        /// Drop the live constraints (zero-latency tuning, no B-frames); the GOP stays fixed.
        #[arg(long)]
        no_live: bool,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
    },
    /// One encode of an encode test (run by encode-test in a child process).
    #[command(hide = true)]
    EncodeTestWorker {
        #[arg(long)]
        codec: String,
        #[arg(long)]
        speed: String,
        #[arg(long)]
        width: u32,
        #[arg(long)]
        height: u32,
        #[arg(long)]
        fps: u32,
        #[arg(long)]
        gop: u32,
        #[arg(long, required_unless_present = "crf", conflicts_with = "crf")]
        bitrate: Option<u32>,
        #[arg(long)]
        crf: Option<u32>,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        #[arg(long)]
        no_live: bool,
    },
    /// Run the engine with its HTTP control plane until SIGINT/SIGTERM.
    Serve {
        /// Configuration file (TOML); SHOWMIX_* variables and flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// API address, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
        /// Bearer token required on /v1 (required off loopback).
        #[arg(long)]
        api_token: Option<String>,
        /// RTMP ingest listener, <ip>:<port> or off (default 0.0.0.0:1935).
        #[arg(long)]
        rtmp_listen: Option<String>,
        /// SRT ingest listener, <ip>:<port> or off (default 0.0.0.0:9000).
        #[arg(long)]
        srt_listen: Option<String>,
        /// Directory file outputs and recordings write under by default (./showmix-data).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Create the demo room (pk of two test patterns) through the API, writing to DIR.
        #[arg(long, value_name = "DIR")]
        demo: Option<PathBuf>,
    },
    /// List the presets, or print one.
    Presets {
        #[command(subcommand)]
        action: Option<PresetsAction>,
    },
}

#[derive(Subcommand)]
enum PresetsAction {
    /// List every layout, ladder and beauty preset.
    List,
    /// Print a preset as TOML.
    Show { name: String },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHOWMIX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("showmix: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Command::Serve {
        config,
        listen,
        api_token,
        rtmp_listen,
        srt_listen,
        data_dir,
        demo,
    } = cli.command
    {
        // Before any thread exists (GStreamer's, tokio's): see memory.rs.
        showmix::memory::tune_allocator();
        let flags = showmix::config::Flags {
            listen,
            api_token,
            rtmp_listen,
            srt_listen,
            data_dir,
        };
        let cfg = showmix::config::Config::load(config.as_deref(), &showmix::config::Env, &flags)?;
        let dir = cli.presets_dir.clone().or_else(|| cfg.presets_dir.clone());
        let presets = Presets::load(dir.as_deref())?;
        return showmix::serve::main(cfg, presets, demo);
    }
    if let Command::EncodeTestWorker {
        codec,
        speed,
        width,
        height,
        fps,
        gop,
        bitrate,
        crf,
        input,
        output,
        no_live,
    } = cli.command
    {
        use showmix::encode_test::{plan, worker};
        let spec = worker::EncodeSpec {
            codec: *plan::parse_codecs(&codec)?.first().context("no codec")?,
            speed: *plan::parse_speeds(&speed)?.first().context("no speed")?,
            width,
            height,
            fps,
            gop_frames: gop,
            rate: match (crf, bitrate) {
                (Some(q), _) => worker::Rate::Crf(q),
                (None, k) => worker::Rate::Kbps(k.context("--bitrate or --crf is required")?),
            },
            live: !no_live,
            input,
            output,
        };
        worker::run_worker(&spec)?;
        return Ok(());
    }
    let presets = Presets::load(cli.presets_dir.as_deref())?;
    match cli.command {
        Command::Serve { .. } | Command::EncodeTestWorker { .. } => {
            unreachable!("handled above")
        }
        Command::EncodeTest {
            sources,
            ladder,
            codecs,
            speeds,
            bitrates,
            crf,
            duration,
            metrics,
            reference,
            out,
            jobs,
            scenario,
            no_live,
            quiet,
        } => {
            let args = showmix::encode_test::Args {
                sources,
                ladder,
                codecs,
                speeds,
                bitrates,
                crf,
                duration,
                metrics,
                reference,
                out,
                jobs,
                scenario,
                no_live,
                progress: !quiet,
                worker_exe: std::env::current_exe()
                    .context("cannot find the showmix binary for the encode workers")?,
            };
            let cancel = Arc::new(AtomicBool::new(false));
            watch_signals(cancel.clone())?;
            let report = showmix::encode_test::run(&args, &presets, &cancel)?;
            for line in showmix::encode_test::summary_lines(&report) {
                println!("{line}");
            }
            println!(
                "report: {} (and report.json, frames.csv)",
                args.out.join("report.html").display()
            );
            Ok(())
        }
        Command::Presets { action } => match action.unwrap_or(PresetsAction::List) {
            PresetsAction::List => {
                print_list(
                    "layouts",
                    presets.layouts.iter().map(|(n, l)| (n, &l.description)),
                );
                print_list(
                    "ladders",
                    presets.ladders.iter().map(|(n, l)| (n, &l.description)),
                );
                print_list(
                    "beauty",
                    presets.beauty.iter().map(|(n, b)| (n, &b.description)),
                );
                Ok(())
            }
            PresetsAction::Show { name } => {
                print!("{}", presets.show(&name)?);
                Ok(())
            }
        },
        Command::Mix {
            layout,
            ladder,
            seats,
            duration,
            out,
            quiet,
        } => {
            let seats = seats
                .iter()
                .map(|s| mix::parse_seat_arg(s))
                .collect::<Result<Vec<_>>>()?;
            let args = MixArgs {
                layout,
                ladder,
                seats,
                duration,
                out,
                progress: !quiet,
            };
            let cancel = Arc::new(AtomicBool::new(false));
            watch_signals(cancel.clone())?;
            let report = mix::run(&args, &presets, &cancel)?;
            for r in &report.rungs {
                println!(
                    "{:>6} {}x{} {} frames {} keyframes {:.0} kbit/s -> {}",
                    r.summary.name,
                    r.summary.width,
                    r.summary.height,
                    r.summary.frames,
                    r.summary.keyframes,
                    r.summary.avg_bitrate_kbps,
                    r.file.display()
                );
            }
            println!(
                "{:.2} s of content in {:.2} s ({:.2}x realtime), {:.2} CPU s; report: {}",
                report.content_seconds,
                report.wall_seconds,
                report.realtime_factor,
                report.cpu_seconds,
                args.out.join("report.json").display()
            );
            Ok(())
        }
    }
}

fn print_list<'a>(title: &str, items: impl Iterator<Item = (&'a String, &'a String)>) {
    println!("{title}:");
    for (name, desc) in items {
        println!("  {name:<16} {desc}");
    }
}

/// Sets `flag` on SIGINT or SIGTERM, so long runs end by finalising their outputs.
fn watch_signals(flag: Arc<AtomicBool>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal watcher")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                flag.store(true, Ordering::Relaxed);
            })
        })?;
    Ok(())
}
