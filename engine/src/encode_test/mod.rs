//! `showmix encode-test`: the ladder-tuning experiment in one command. Sources × codecs ×
//! speeds × rungs × bitrates are encoded through the engine's own encoders, each in its own
//! child process (its rusage is its speed), scored against the source scaled to the rung
//! (PSNR, SSIM through libavfilter), and written up as `report.json`, `frames.csv`,
//! `report.html` and SVG charts, with BD-rates against the first codec and convex hulls
//! across rungs.
//!
//! Parts: argument checks (`plan`), BD-rate and hulls (`bdrate`), the report schema and
//! derived numbers (`report`), charts and page (`charts`) are plain Rust; the references
//! (`reference`, GStreamer), the encodes (`worker`, child processes) and the metrics
//! (`metrics`, ffmpeg-next) touch media. This module runs the experiment.

pub mod bdrate;
pub mod charts;
pub mod metrics;
pub mod plan;
pub mod reference;
pub mod report;
pub mod worker;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::presets::Presets;
use crate::presets::ladder::{Speed, VideoCodec};
use crate::source::Source;
use plan::{Metric, Scenario};
use report::{Encode, FrameRow, Report, Settings, SourceInfo, SpeedStats};
use worker::{EncodeSpec, Rate, Running};

/// The command's arguments, as given.
#[derive(Clone, Debug)]
pub struct Args {
    pub sources: Vec<String>,
    pub ladder: String,
    pub codecs: String,
    /// Default: the ladder's own speed.
    pub speeds: Option<String>,
    /// Default: every rung at its ladder bitrate.
    pub bitrates: Option<String>,
    /// Constant-quality values instead of bitrates (exclusive with `bitrates`).
    pub crf: Option<String>,
    pub duration: String,
    pub metrics: String,
    pub reference: Option<String>,
    pub out: PathBuf,
    pub jobs: usize,
    pub scenario: Option<String>,
    /// Drop the live constraints (zero-latency, no B-frames).
    pub no_live: bool,
    pub progress: bool,
    /// The showmix binary that runs the encodes (`encode-test-worker`).
    pub worker_exe: PathBuf,
}

/// The pk intermediate's bitrate: the room's mix is captured as near-lossless H.264.
const PK_INTERMEDIATE_KBPS: u32 = 50_000;

struct Job {
    spec: EncodeSpec,
    encode: Encode,
    ffmpeg: bool,
    reference: PathBuf,
}

struct Shared {
    report: Report,
    rows: HashMap<String, Vec<FrameRow>>,
    csv: BufWriter<File>,
    /// Encodes in the report.json on disk.
    json_encodes: usize,
}

/// Runs the experiment; the report is written even when it ends early (Ctrl-C or a failed
/// encode), and then an error says so.
pub fn run(args: &Args, presets: &Presets, cancel: &AtomicBool) -> Result<Report> {
    // Every argument first: nothing runs on a bad command line.
    let scenario = plan::parse_scenario(args.scenario.as_deref(), args.sources.len())?;
    let codecs = plan::parse_codecs(&args.codecs)?;
    let ladder = presets.ladder(&args.ladder)?;
    let speeds = match &args.speeds {
        Some(s) => plan::parse_speeds(s)?,
        None => vec![ladder.video.speed],
    };
    let bitrates = args
        .bitrates
        .as_deref()
        .map(plan::parse_bitrates)
        .transpose()?;
    if bitrates.is_some() && args.crf.is_some() {
        bail!(
            "--bitrates and --crf exclude each other (give one: bitrate targets or constant quality)"
        );
    }
    let crfs = args
        .crf
        .as_deref()
        .map(|s| plan::parse_crf(s, &codecs))
        .transpose()?;
    let duration = plan::parse_duration(&args.duration)?;
    let metrics = plan::parse_metrics(&args.metrics)?;
    let ffmpeg_ref = plan::parse_reference(args.reference.as_deref())?;
    let jobs_n = plan::check_jobs(args.jobs)?;
    let sources: Vec<Source> = args
        .sources
        .iter()
        .map(|s| Source::parse(s).map_err(|e| anyhow!("source {s:?}: {e}")))
        .collect::<Result<_>>()?;
    for (s, raw) in sources.iter().zip(&args.sources) {
        if matches!(s, Source::Publish) {
            bail!(
                "source {raw:?}: publish sources need a live publisher (allowed here: files, URIs, test:<pattern>)"
            );
        }
    }
    for c in &codecs {
        worker::check_encoder(*c)?;
    }
    if ffmpeg_ref {
        check_ffmpeg()?;
    }
    metrics::init()?;

    let fps = ladder.canvas.fps;
    let max_frames = (duration * f64::from(fps)).round().max(1.0) as u64;
    let live = !args.no_live;
    let mut notes = Vec::new();
    let vmaf_wanted = metrics.contains(&Metric::Vmaf);
    if vmaf_wanted {
        if metrics::vmaf_available() {
            notes.push("vmaf: this libavfilter has libvmaf, but showmix does not read its scores yet; VMAF columns are empty".into());
        } else {
            notes.push("vmaf: not available (this FFmpeg's libavfilter is built without libvmaf, as Debian 12's is); VMAF columns and VMAF BD-rates are empty".into());
        }
    }
    notes.push(format!(
        "PSNR: per rung from the mean MSE over all frames (capped at {} dB); PSNR-YUV weights Y:U:V as 6:1:1; SSIM: mean of libavfilter's per-frame \"All\"",
        report::PSNR_CAP_DB
    ));
    notes.push(
        "bitrate: video packet bytes × 8 / (frames / fps), without container overhead".into(),
    );

    let out = &args.out;
    for d in [
        out.clone(),
        out.join("ref"),
        out.join("encodes"),
        out.join("logs"),
    ] {
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let settings = Settings {
        ladder: ladder.name.clone(),
        canvas_width: ladder.canvas.width,
        canvas_height: ladder.canvas.height,
        fps,
        gop_frames: ladder.gop_frames(),
        live,
        codecs: codecs.iter().map(|c| c.as_str().to_owned()).collect(),
        speeds: speeds.iter().map(|s| s.as_str().to_owned()).collect(),
        bitrates_kbps: bitrates.clone().unwrap_or_default(),
        crf: crfs.clone().unwrap_or_default(),
        duration_seconds: duration,
        metrics: metrics.iter().map(|m| m.as_str().to_owned()).collect(),
        reference: ffmpeg_ref.then(|| "ffmpeg".to_owned()),
        jobs: jobs_n,
        scenario: scenario.map(|_| "pk".to_owned()),
        scaling_filter: reference::SCALING_FILTER.to_owned(),
    };
    let csv_path = out.join("frames.csv");
    let mut csv = BufWriter::new(
        File::create(&csv_path).with_context(|| format!("cannot write {}", csv_path.display()))?,
    );
    writeln!(csv, "{}", report::CSV_HEADER)
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    let shared = Mutex::new(Shared {
        report: Report {
            schema: report::SCHEMA.into(),
            schema_version: report::SCHEMA_VERSION,
            showmix_version: env!("CARGO_PKG_VERSION").into(),
            complete: false,
            settings,
            notes,
            sources: Vec::new(),
            encodes: Vec::new(),
            bd_rates: Vec::new(),
            hulls: Vec::new(),
            errors: Vec::new(),
        },
        rows: HashMap::new(),
        csv,
        json_encodes: 0,
    });

    let multi = progress_multi(args.progress);

    // Sources: (label, source) to render; the pk scenario first mixes through a room.
    let mut to_render: Vec<(String, String, Source)> = Vec::new();
    match scenario {
        Some(Scenario::Pk) => {
            let file = mix_pk(args, presets, &ladder, duration, cancel)?;
            let label = "pk".to_owned();
            to_render.push((
                label,
                format!("pk({}, {})", args.sources[0], args.sources[1]),
                Source::File(file),
            ));
        }
        None => {
            for (i, (raw, s)) in args.sources.iter().zip(&sources).enumerate() {
                let mut label = plan::source_label(raw);
                if to_render.iter().any(|(l, _, _)| *l == label) {
                    label = format!("{label}-{i}");
                }
                to_render.push((label, raw.clone(), s.clone()));
            }
        }
    }
    // Rung sizes, once each.
    let mut sizes: Vec<(u32, u32)> = Vec::new();
    for r in &ladder.rungs {
        if !sizes.contains(&(r.width, r.height)) {
            sizes.push((r.width, r.height));
        }
    }
    let ref_path =
        |label: &str, (w, h): (u32, u32)| out.join("ref").join(format!("{label}-{w}x{h}.yuv"));
    for (label, raw, source) in &to_render {
        let targets: Vec<reference::Target> = sizes
            .iter()
            .map(|&(width, height)| reference::Target {
                width,
                height,
                path: ref_path(label, (width, height)),
            })
            .collect();
        let bar = multi.as_ref().map(|m| {
            let b = m.add(indicatif::ProgressBar::new(max_frames));
            b.set_style(bar_style());
            b.set_message(format!("decoding {raw}"));
            b
        });
        let frames = reference::render(
            label,
            source,
            (ladder.canvas.width, ladder.canvas.height, fps),
            &targets,
            max_frames,
            cancel,
            |n| {
                if let Some(b) = &bar {
                    b.set_position(n);
                }
            },
        );
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let frames = match frames {
            Ok(f) => f,
            Err(e) => {
                let mut sh = lock(&shared);
                sh.report.errors.push(format!("{e:#}"));
                finish(out, &mut sh, &[])?;
                return Err(e);
            }
        };
        lock(&shared).report.sources.push(SourceInfo {
            id: label.clone(),
            source: raw.clone(),
            frames,
            content_seconds: frames as f64 / f64::from(fps),
        });
    }

    // The encodes, in a stable order.
    let mut queue: Vec<Job> = Vec::new();
    for (label, _, _) in &to_render {
        for &codec in &codecs {
            for &speed in &speeds {
                for rung in &ladder.rungs {
                    let rates: Vec<Rate> = match (&crfs, &bitrates) {
                        (Some(q), _) => q.iter().map(|&q| Rate::Crf(q)).collect(),
                        (None, Some(b)) => b.iter().map(|&k| Rate::Kbps(k)).collect(),
                        (None, None) => vec![Rate::Kbps(rung.bitrate_kbps)],
                    };
                    for rate in rates {
                        for ffmpeg in [false, true] {
                            if ffmpeg && !ffmpeg_ref {
                                continue;
                            }
                            queue.push(job(
                                out,
                                label,
                                codec,
                                speed,
                                rung,
                                rate,
                                fps,
                                ladder.gop_frames(),
                                live,
                                ffmpeg,
                                ref_path(label, (rung.width, rung.height)),
                            ));
                        }
                    }
                }
            }
        }
    }
    let total = queue.len();
    let queue = Mutex::new(
        queue
            .into_iter()
            .collect::<std::collections::VecDeque<Job>>(),
    );
    let running = Running::default();
    let done = AtomicUsize::new(0);
    let overall = multi.as_ref().map(|m| {
        let b = m.add(indicatif::ProgressBar::new(total as u64));
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "encodes {pos}/{len} [{bar:30}] {elapsed_precise} (eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let first_write_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let wanted = metrics::Wanted {
        psnr: metrics.contains(&Metric::Psnr),
        ssim: metrics.contains(&Metric::Ssim),
    };
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for _ in 0..jobs_n {
            handles.push(scope.spawn(|| {
                loop {
                    if cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let Some(job) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                        break;
                    };
                    let bar = multi.as_ref().map(|m| {
                        let b = m.add(indicatif::ProgressBar::new(max_frames));
                        b.set_style(bar_style());
                        b.set_message(job.encode.id.clone());
                        b
                    });
                    let (encode, rows) = run_job(args, job, fps, wanted, &running, cancel, |n| {
                        if let Some(b) = &bar {
                            b.set_position(n);
                        }
                    });
                    if let Some(b) = bar {
                        b.finish_and_clear();
                    }
                    if cancel.load(Ordering::Relaxed) && encode.error.is_some() {
                        // Killed by our own Ctrl-C handling: not a result.
                        break;
                    }
                    let mut sh = lock(&shared);
                    if let Err(e) = record(out, &mut sh, encode, rows) {
                        let mut slot = first_write_error.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(e);
                        cancel.store(true, Ordering::Relaxed);
                    }
                    drop(sh);
                    done.fetch_add(1, Ordering::Relaxed);
                    if let Some(b) = &overall {
                        b.inc(1);
                    }
                }
            }));
        }
        while handles.iter().any(|h| !h.is_finished()) {
            if cancel.load(Ordering::Relaxed) {
                running.terminate_all();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    if let Some(b) = overall {
        b.finish_and_clear();
    }
    if let Some(e) = first_write_error
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
    {
        // A full disk or a lost directory: the last report.json written (through a rename, so
        // never half a file) keeps every encode finished before.
        let kept = lock(&shared).json_encodes;
        return Err(e.context(format!(
            "stopped: the report cannot be updated; {} keeps the {kept} finished encode(s)",
            out.join("report.json").display()
        )));
    }
    let finished = done.load(Ordering::Relaxed);
    let mut sh = lock(&shared);
    let failed = sh
        .report
        .encodes
        .iter()
        .filter(|e| e.error.is_some())
        .count();
    sh.report.complete = finished == total && failed == 0;
    let metric_names: Vec<&str> = if vmaf_wanted {
        vec!["psnr_y", "vmaf"]
    } else {
        vec!["psnr_y"]
    };
    let codec_names = sh.report.settings.codecs.clone();
    let (bds, hulls) = report::derive(&sh.report.encodes, &codec_names, &metric_names);
    sh.report.bd_rates = bds;
    sh.report.hulls = hulls;
    let rows = std::mem::take(&mut sh.rows);
    finish(out, &mut sh, &[&rows])?;
    let rep = sh.report.clone();
    drop(sh);
    if finished < total {
        bail!(
            "interrupted after {finished} of {total} encodes; partial report in {}",
            out.join("report.json").display()
        );
    }
    if failed > 0 {
        let first = rep
            .encodes
            .iter()
            .find_map(|e| e.error.as_ref().map(|m| format!("{}: {m}", e.id)))
            .unwrap_or_default();
        bail!(
            "{failed} of {total} encodes failed (first: {first}); report in {}",
            out.join("report.json").display()
        );
    }
    Ok(rep)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[allow(clippy::too_many_arguments)]
fn job(
    out: &Path,
    label: &str,
    codec: VideoCodec,
    speed: Speed,
    rung: &crate::presets::ladder::Rung,
    rate: Rate,
    fps: u32,
    gop: u32,
    live: bool,
    ffmpeg: bool,
    reference: PathBuf,
) -> Job {
    let encoder = if ffmpeg { "ffmpeg" } else { "showmix" };
    let id = format!(
        "{label}-{}-{}-{}-{rate}{}",
        codec.as_str(),
        speed.as_str(),
        rung.name,
        if ffmpeg { "-ffmpeg" } else { "" }
    );
    let file = out
        .join("encodes")
        .join(format!("{id}.{}", worker::file_ext(codec)));
    Job {
        spec: EncodeSpec {
            codec,
            speed,
            width: rung.width,
            height: rung.height,
            fps,
            gop_frames: gop,
            rate,
            live,
            input: reference.clone(),
            output: file.clone(),
        },
        encode: Encode {
            id,
            source: label.to_owned(),
            encoder: encoder.into(),
            codec: codec.as_str().into(),
            speed: speed.as_str().into(),
            rung: rung.name.clone(),
            width: rung.width,
            height: rung.height,
            target_kbps: rate.kbps().unwrap_or(0),
            crf: rate.crf(),
            file: file
                .strip_prefix(out)
                .unwrap_or(&file)
                .display()
                .to_string(),
            ..Default::default()
        },
        ffmpeg,
        reference,
    }
}

/// Encodes in a child process, then measures; errors land in the encode, not the run.
fn run_job(
    args: &Args,
    job: Job,
    fps: u32,
    wanted: metrics::Wanted,
    running: &Running,
    cancel: &AtomicBool,
    on_frames: impl FnMut(u64),
) -> (Encode, Vec<FrameRow>) {
    let mut e = job.encode;
    let log = args.out.join("logs").join(format!("{}.log", e.id));
    let (program, argv) = if job.ffmpeg {
        (PathBuf::from("ffmpeg"), job.spec.ffmpeg_args())
    } else {
        (args.worker_exe.clone(), job.spec.worker_args())
    };
    let usage = match worker::run_child(&program, &argv, &log, running, on_frames) {
        Ok(u) => u,
        Err(err) => {
            e.error = Some(format!("{err:#}"));
            return (e, Vec::new());
        }
    };
    let rows = match metrics::measure(
        &job.spec.output,
        &metrics::RawRef {
            path: &job.reference,
            width: job.spec.width,
            height: job.spec.height,
            fps,
        },
        wanted,
        cancel,
    ) {
        Ok(r) => r,
        Err(err) => {
            e.error = Some(format!("{err:#}"));
            return (e, Vec::new());
        }
    };
    report::summarise(&mut e, &rows, fps);
    let content = e.frames as f64 / f64::from(fps.max(1));
    let r3 = |v: f64| (v * 1000.0).round() / 1000.0;
    e.speed_stats = Some(SpeedStats {
        wall_seconds: r3(usage.wall_seconds),
        cpu_seconds: r3(usage.cpu_seconds),
        cpu_per_content_second: r3(if content > 0.0 {
            usage.cpu_seconds / content
        } else {
            0.0
        }),
        fps: r3(if usage.wall_seconds > 0.0 {
            e.frames as f64 / usage.wall_seconds
        } else {
            0.0
        }),
        realtime_factor: r3(if usage.wall_seconds > 0.0 {
            content / usage.wall_seconds
        } else {
            0.0
        }),
        peak_rss_kib: usage.peak_rss_kib,
    });
    (e, rows)
}

/// Adds a finished encode, appends its frames and rewrites the partial report.
fn record(out: &Path, sh: &mut Shared, e: Encode, rows: Vec<FrameRow>) -> Result<()> {
    let csv_path = out.join("frames.csv");
    report::write_csv_rows(&mut sh.csv, &e, &rows)
        .and_then(|_| sh.csv.flush())
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    if let Some(err) = &e.error {
        sh.report.errors.push(format!("{}: {err}", e.id));
    }
    sh.rows.insert(e.id.clone(), rows);
    sh.report.encodes.push(e);
    report::write_json(out, &sh.report)?;
    sh.json_encodes = sh.report.encodes.len();
    Ok(())
}

/// Writes report.json, then the charts and report.html.
fn finish(out: &Path, sh: &mut Shared, rows: &[&HashMap<String, Vec<FrameRow>>]) -> Result<()> {
    let csv_path = out.join("frames.csv");
    sh.csv
        .flush()
        .and_then(|_| sh.csv.get_ref().sync_data())
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    report::write_json(out, &sh.report)?;
    let empty = HashMap::new();
    let rows = rows.first().copied().unwrap_or(&empty);
    let list = charts::write_charts(out, &sh.report, rows)?;
    let page = charts::html(&sh.report, &list);
    let path = out.join("report.html");
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))
}

/// `--scenario pk`: the two sources mixed through the real room pipeline (layout pk, the
/// ladder's canvas) into a near-lossless H.264 file that becomes the source.
fn mix_pk(
    args: &Args,
    presets: &Presets,
    ladder: &crate::presets::Ladder,
    duration: f64,
    cancel: &AtomicBool,
) -> Result<PathBuf> {
    let dir = args.out.join("ref").join("pk-mix");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let toml_path = args.out.join("ref").join("pk-ladder.toml");
    let mut l = ladder.clone();
    l.name = "pk-intermediate".into();
    l.video.codec = VideoCodec::H264;
    l.video.speed = Speed::Veryfast;
    l.rungs = vec![crate::presets::ladder::Rung {
        name: "canvas".into(),
        width: ladder.canvas.width,
        height: ladder.canvas.height,
        bitrate_kbps: PK_INTERMEDIATE_KBPS,
    }];
    let text = toml::to_string(&l).context("cannot write the pk ladder")?;
    std::fs::write(&toml_path, text)
        .with_context(|| format!("cannot write {}", toml_path.display()))?;
    let m = crate::mix::MixArgs {
        layout: "pk".into(),
        ladder: toml_path.display().to_string(),
        seats: vec![
            ("host".into(), args.sources[0].clone()),
            ("rival".into(), args.sources[1].clone()),
        ],
        duration: Some(duration),
        out: dir.clone(),
        progress: args.progress,
    };
    let rep = crate::mix::run(&m, presets, cancel).context("--scenario pk: the room mix failed")?;
    rep.rungs
        .first()
        .map(|r| r.file.clone())
        .ok_or_else(|| anyhow!("--scenario pk: the room wrote no file"))
}

fn check_ffmpeg() -> Result<()> {
    let ok = std::process::Command::new("ffmpeg")
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!("--reference ffmpeg needs the ffmpeg command (install the Debian package ffmpeg)");
    }
    Ok(())
}

fn progress_multi(enabled: bool) -> Option<indicatif::MultiProgress> {
    use std::io::IsTerminal;
    (enabled && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new)
}

fn bar_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template("{msg:48} [{bar:30}] {pos}/{len} frames (eta {eta})")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
}

/// A one-line summary per encode for the terminal.
pub fn summary_lines(r: &Report) -> Vec<String> {
    r.encodes
        .iter()
        .map(|e| match &e.error {
            Some(err) => format!("{:<48} failed: {err}", e.id),
            None => format!(
                "{:<48} {:>8.1} kbit/s  PSNR-Y {:>6}  SSIM {:>6}  {:>6} CPU s/s",
                e.id,
                e.bitrate_kbps,
                e.psnr_y
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "-".into()),
                e.ssim
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into()),
                e.speed_stats
                    .as_ref()
                    .map(|s| format!("{:.3}", s.cpu_per_content_second))
                    .unwrap_or_else(|| "-".into()),
            ),
        })
        .collect()
}
