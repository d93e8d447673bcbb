//! `showmix mix`: a one-shot room. Mixes the given seats with a layout, encodes the ladder to
//! `<out>/<rung>.mp4` and writes `<out>/report.json` (per rung: resolution, frames, average
//! bitrate, keyframes; wall and CPU time; realtime factor). Also the engine behind encode tests.
//!
//! It runs offline (as fast as the machine allows) unless every seat is an endless test source
//! and no duration is given: then it runs live until cancelled, and still finalises its files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::presets::Presets;
use crate::room::stats::RungSummary;
use crate::room::{OutputKind, OutputSpec, Room, RoomSpec, RoomState, SeatSpec};
use crate::source::Source;

#[derive(Clone, Debug)]
pub struct MixArgs {
    pub layout: String,
    pub ladder: String,
    /// `(id, source)` in slot order.
    pub seats: Vec<(String, String)>,
    pub duration: Option<f64>,
    pub out: PathBuf,
    pub progress: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub layout: String,
    pub ladder: String,
    pub seats: Vec<ReportSeat>,
    pub rungs: Vec<ReportRung>,
    /// Seconds of mixed content.
    pub content_seconds: f64,
    pub wall_seconds: f64,
    /// User + system CPU of the whole process.
    pub cpu_seconds: f64,
    /// Content seconds per wall second.
    pub realtime_factor: f64,
    /// CPU seconds per second of content.
    pub cpu_per_content_second: f64,
    pub live: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportSeat {
    pub id: String,
    pub source: String,
    pub slot: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportRung {
    #[serde(flatten)]
    pub summary: RungSummary,
    pub file: PathBuf,
}

/// Parses `id=source`.
pub fn parse_seat_arg(arg: &str) -> Result<(String, String)> {
    match arg.split_once('=') {
        Some((id, src)) if !id.is_empty() && !src.is_empty() => Ok((id.to_owned(), src.to_owned())),
        _ => bail!(
            "--seat {arg:?} is not of the form <id>=<source> (e.g. host=test:red or guest=clip.mp4)"
        ),
    }
}

/// CPU time (user + system) of this process so far.
pub fn process_cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Checks that a file or URI source is media GStreamer can decode, and returns its duration.
fn discover(id: &str, source: &Source) -> Result<Option<Duration>> {
    let uri = match source {
        Source::Test { .. } => return Ok(None),
        Source::Publish => {
            bail!("seat {id:?}: publish seats need a live publisher: use showmix serve")
        }
        Source::File(p) => {
            if !p.is_file() {
                bail!(
                    "seat {id:?}: file {} does not exist or is not a file",
                    p.display()
                );
            }
            let abs = std::path::absolute(p)?;
            gst::glib::filename_to_uri(&abs, None)?.to_string()
        }
        Source::Uri(u) => u.clone(),
    };
    let disc = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(15))
        .context("cannot create a media discoverer")?;
    let info = disc.discover_uri(&uri).map_err(|e| {
        anyhow::anyhow!("seat {id:?}: {source} is not media GStreamer can decode: {e}")
    })?;
    if info.video_streams().is_empty() && info.audio_streams().is_empty() {
        bail!("seat {id:?}: {source} has neither video nor audio");
    }
    Ok(info.duration().map(|d| Duration::from_nanos(d.nseconds())))
}

/// Runs the mix to the end (or until `cancel` is set) and writes the report.
pub fn run(args: &MixArgs, presets: &Presets, cancel: &AtomicBool) -> Result<Report> {
    crate::init()?;
    let layout = presets.layout(&args.layout)?;
    let ladder = presets.ladder(&args.ladder)?;
    if let Some(d) = args.duration
        && !(d.is_finite() && d > 0.0 && d <= 86_400.0)
    {
        bail!("--duration {d} is out of range (allowed 0 < seconds <= 86400)");
    }
    if args.seats.is_empty() {
        bail!("no seats: give at least one --seat <id>=<source>");
    }
    if args.seats.len() > layout.slot_count() {
        bail!(
            "{} seats but layout {:?} has {} slots (seat order is slot order: give at most {} seats or pick a larger layout)",
            args.seats.len(),
            layout.name,
            layout.slot_count(),
            layout.slot_count()
        );
    }
    let mut seats = Vec::new();
    let mut longest: Option<Duration> = None;
    for (slot, (id, src)) in args.seats.iter().enumerate() {
        let source = Source::parse(src).with_context(|| format!("seat {id:?}"))?;
        if let Some(d) = discover(id, &source)? {
            longest = Some(longest.map_or(d, |l| l.max(d)));
        }
        seats.push(SeatSpec {
            slot: Some(slot),
            ..SeatSpec::new(id.clone(), source)
        });
    }
    let endless = seats.iter().all(|s| s.source.is_endless());
    let live = endless && args.duration.is_none();
    let spec = RoomSpec {
        id: "mix".into(),
        ladder: ladder.clone(),
        layout: layout.clone(),
        seats,
        outputs: vec![OutputSpec {
            id: "file".into(),
            kind: OutputKind::File {
                dir: args.out.clone(),
            },
        }],
        live,
        timing: Default::default(),
        push_backoff: Default::default(),
        hls: false,
    };
    let seats_report: Vec<ReportSeat> = spec
        .seats
        .iter()
        .map(|s| ReportSeat {
            id: s.id.clone(),
            source: s.source.to_string(),
            slot: s.slot.unwrap_or_default(),
        })
        .collect();

    let wall = Instant::now();
    let cpu0 = process_cpu_time();
    let mut room = Room::start(spec)?;
    let target =
        args.duration
            .map(Duration::from_secs_f64)
            .or(if endless { None } else { longest });
    if let Some(d) = args.duration {
        room.stop_at(gst::ClockTime::from_nseconds(
            Duration::from_secs_f64(d).as_nanos() as u64,
        ));
    }
    let bar = progress_bar(args.progress, target);
    let state = loop {
        if let Some(s) = room.wait(Some(Duration::from_millis(200))) {
            break s;
        }
        if let Some(b) = &bar {
            let pos = room.position().map(|p| p.mseconds()).unwrap_or(0);
            b.set_position(pos);
        }
        if cancel.load(Ordering::Relaxed) {
            break room.stop(Duration::from_secs(10));
        }
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let RoomState::Failed(reason) = &state {
        bail!("mix failed: {reason}");
    }
    let wall_s = wall.elapsed().as_secs_f64();
    let cpu_s = (process_cpu_time().saturating_sub(cpu0)).as_secs_f64();
    let fps = f64::from(ladder.canvas.fps);
    let rungs: Vec<ReportRung> = room
        .rung_summaries()
        .into_iter()
        .map(|summary| ReportRung {
            file: args
                .out
                .join(format!("{}.{}", summary.name, file_ext(&ladder))),
            summary,
        })
        .collect();
    let content = rungs
        .first()
        .map(|r| r.summary.frames as f64 / fps)
        .unwrap_or(0.0);
    let report = Report {
        layout: layout.name.clone(),
        ladder: ladder.name.clone(),
        seats: seats_report,
        rungs,
        content_seconds: round3(content),
        wall_seconds: round3(wall_s),
        cpu_seconds: round3(cpu_s),
        realtime_factor: round3(if wall_s > 0.0 { content / wall_s } else { 0.0 }),
        cpu_per_content_second: round3(if content > 0.0 { cpu_s / content } else { 0.0 }),
        live,
    };
    write_report(&args.out, &report)?;
    Ok(report)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn file_ext(ladder: &crate::presets::Ladder) -> &'static str {
    use crate::presets::ladder::VideoCodec;
    match ladder.video.codec {
        VideoCodec::Vp8 | VideoCodec::Vp9 => "mkv",
        _ => "mp4",
    }
}

fn write_report(dir: &Path, report: &Report) -> Result<()> {
    let path = dir.join("report.json");
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

fn progress_bar(enabled: bool, target: Option<Duration>) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match target {
        Some(t) => {
            let b = indicatif::ProgressBar::new(t.as_millis() as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} mixing [{bar:40}] {msg} {elapsed_precise} (eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        }
        None => {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_message("mixing live; Ctrl-C ends and finalises the files");
            b
        }
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seat_args() {
        assert_eq!(
            parse_seat_arg("host=test:red").unwrap(),
            ("host".into(), "test:red".into())
        );
        assert_eq!(
            parse_seat_arg("g=rtsp://x/y?a=b").unwrap(),
            ("g".into(), "rtsp://x/y?a=b".into())
        );
        assert!(parse_seat_arg("host").is_err());
        assert!(parse_seat_arg("=test:red").is_err());
        assert!(parse_seat_arg("host=").is_err());
    }

    #[test]
    fn cpu_time_moves() {
        let a = process_cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_time() > a);
    }
}
