//! Live PK rooms against ffmpeg, whole processes measured from outside in one run.
//!
//! showmix: one `showmix serve` process (release build) with N `pk` rooms on the
//! `showroom-720p` ladder (LL-HLS on, as every room has), each fed by two RTMP publishers
//! (`ffmpeg -re -stream_loop -1 -c copy` of busy 1280x720 30 fps H.264+AAC clips: a moving
//! test pattern and a panned photograph). ffmpeg: N processes doing the same live mix from the
//! same clips at their native rate (`-re`), writing fMP4 HLS of the three rungs (see
//! pk_ffmpeg.rs for the settings). For each N: CPU of the whole showmix process and of the N
//! ffmpeg processes over the same window, per room, the ratio, and whether every room kept
//! realtime (mixed and encoded frames per second ≥ 29 of 30). The publishers' own CPU is not
//! counted (they copy packets; ffmpeg reads the files itself).
//!
//! Realtime: every seat's publisher frames get into the mix at ≥ 29 fps (the mixer itself runs
//! on the clock whatever its inputs do) and every rung encodes ≥ 29 fps; for ffmpeg, output
//! frames less the duplicates it inserts when it falls behind.
//!
//! Density: rooms are added one at a time until a room misses realtime, for both tools
//! (SHOWMIX_BENCH_DENSITY=0 skips it).
//!
//! Run: `cargo bench -p showmix-benches --bench pk_live` (SHOWMIX_BENCH_ROOMS=1,2 room counts,
//! SHOWMIX_BENCH_SECONDS=20 measuring window after 10 s of warm-up). Writes
//! `target/bench/pk_live.json`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use showmix::presets::Presets;
use showmix_tests::process::{ServeProcess, cpu_seconds, free_tcp_port, free_udp_port};
use showmix_tests::{motion_clip, photo_pan_clip};

mod pk_ffmpeg;
use pk_ffmpeg::Rungs;

const TOKEN: &str = "pk-live-token-0123456789";
const WARMUP: Duration = Duration::from_secs(10);
/// Frames per second a room must keep to count as realtime.
const REALTIME_FPS: f64 = 29.0;

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `ffmpeg -re -stream_loop -1 -c copy` of a clip to an RTMP URL: a publisher that costs
/// next to nothing.
fn publisher(clip: &Path, url: &str) -> Result<Proc> {
    Ok(Proc(
        Command::new("ffmpeg")
            .args(["-v", "error", "-re", "-stream_loop", "-1", "-i"])
            .arg(clip)
            .args(["-c", "copy", "-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("ffmpeg publisher starts")?,
    ))
}

/// One live ffmpeg PK mix writing fMP4 HLS per rung into `out`; progress (frame=) into
/// `out/progress`.
fn ffmpeg_live(a: &Path, b: &Path, out: &Path, r: &Rungs) -> Result<Proc> {
    std::fs::create_dir_all(out)?;
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-nostdin"]);
    for clip in [a, b] {
        cmd.args(["-re", "-stream_loop", "-1", "-i"]).arg(clip);
    }
    cmd.args(["-filter_complex", &pk_ffmpeg::filter_graph(r)]);
    let mut map = Vec::new();
    for i in 0..r.names.len() {
        cmd.args(["-map", &format!("[v{i}]"), "-map", &format!("[a{i}]")]);
        cmd.args([&format!("-c:v:{i}"), "libx264"]);
        cmd.args(pk_ffmpeg::x264_args(r.kbps[i], &format!(":v:{i}")));
        cmd.args([&format!("-c:a:{i}"), "aac", &format!("-b:a:{i}"), "128k"]);
        map.push(format!("v:{i},a:{i},name:{}", r.names[i]));
    }
    cmd.args(["-f", "hls", "-hls_time", "1", "-hls_list_size", "6"])
        .args(["-hls_flags", "delete_segments+independent_segments"])
        .args([
            "-hls_segment_type",
            "fmp4",
            "-master_pl_name",
            "master.m3u8",
        ])
        .args(["-var_stream_map", &map.join(" ")])
        .arg("-progress")
        .arg(out.join("progress"))
        .arg(out.join("%v.m3u8"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(out.join("stderr"))?);
    Ok(Proc(cmd.spawn().context("ffmpeg starts")?))
}

/// Frames ffmpeg's -progress last reported, less the duplicates it inserted to keep the output
/// rate (an overloaded ffmpeg repeats frames as the compositor does).
fn ffmpeg_frames(out: &Path) -> u64 {
    let text = std::fs::read_to_string(out.join("progress")).unwrap_or_default();
    let last = |key: &str| -> u64 {
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    last("frame=").saturating_sub(last("dup_frames="))
}

struct Clips {
    host: PathBuf,
    rival: PathBuf,
}

/// Per room: frames mixed, the fewest frames any rung encoded, and the fewest publisher
/// frames any seat got into the mix (received less dropped as late). The mixer runs on the
/// clock and repeats a seat's last picture when the seat falls behind, so only the last one
/// shows whether the room keeps up with its publishers.
fn room_frames(s: &ServeProcess, room: &str) -> Result<[u64; 3]> {
    let (st, v) = s.json("GET", &format!("/v1/rooms/{room}/stats"), None)?;
    ensure!(st == 200, "stats {room}: {st} {v}");
    let mixed = v["mixed_frames"].as_u64().context("mixed_frames")?;
    let min_of = |key: &str, f: &dyn Fn(&Value) -> Option<u64>| -> Result<u64> {
        v[key]
            .as_array()
            .context("stats")?
            .iter()
            .filter_map(f)
            .min()
            .with_context(|| format!("{key} in stats"))
    };
    let encoded = min_of("rungs", &|r| r["frames"].as_u64())?;
    let used = min_of("seats", &|x| {
        Some(
            x["frames_received"]
                .as_u64()?
                .saturating_sub(x["frames_dropped"].as_u64()?),
        )
    })?;
    Ok([mixed, encoded, used])
}

/// What one side cost for `n` rooms over the window.
struct Sample {
    cores: f64,
    /// Per room: the slowest of its frame rates over the window.
    fps: Vec<f64>,
}

impl Sample {
    fn realtime(&self) -> bool {
        self.fps.iter().all(|&f| f >= REALTIME_FPS)
    }

    fn json(&self, n: usize) -> Value {
        json!({"rooms": n, "cores": self.cores, "cores_per_room": self.cores / n as f64,
               "fps_per_room": self.fps, "realtime": self.realtime()})
    }
}

fn showmix_rooms(dir: &Path, clips: &Clips, n: usize, window: Duration) -> Result<Sample> {
    let (api, rtmp) = (free_tcp_port()?, free_tcp_port()?);
    let s = ServeProcess::start(dir, api, rtmp, free_udp_port()?, TOKEN)?;
    let mut pubs = Vec::new();
    let rooms: Vec<String> = (0..n).map(|i| format!("pk-{i}")).collect();
    for room in &rooms {
        let (st, v) = s.json(
            "POST",
            "/v1/rooms",
            Some(
                json!({"id": room, "layout": "pk", "ladder": "showroom-720p",
                        "seats": [{"id": "host", "source": "publish"},
                                  {"id": "rival", "source": "publish"}]}),
            ),
        )?;
        ensure!(st == 201, "create {room}: {st} {v}");
        for (seat, clip) in [("host", &clips.host), ("rival", &clips.rival)] {
            let url = v["seats"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["id"] == seat))
                .and_then(|x| x["ingest"]["rtmp"].as_str())
                .context("rtmp url")?;
            pubs.push(publisher(clip, url)?);
        }
    }
    let t = Instant::now();
    for room in &rooms {
        loop {
            let (_, v) = s.json("GET", &format!("/v1/rooms/{room}"), None)?;
            let seats = v["seats"].as_array().context("seats")?;
            if seats.iter().all(|x| x["state"] == "connected") {
                break;
            }
            ensure!(
                t.elapsed() < Duration::from_secs(30),
                "{room}: seats not connected within 30 s: {v}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    std::thread::sleep(WARMUP);
    let pid = s.pid();
    let before: Vec<[u64; 3]> = rooms
        .iter()
        .map(|r| room_frames(&s, r))
        .collect::<Result<_>>()?;
    let (c0, t0) = (cpu_seconds(pid)?, Instant::now());
    std::thread::sleep(window);
    let (c1, dt) = (cpu_seconds(pid)?, t0.elapsed().as_secs_f64());
    let after: Vec<[u64; 3]> = rooms
        .iter()
        .map(|r| room_frames(&s, r))
        .collect::<Result<_>>()?;
    let fps = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (0..3).map(|i| a[i] - b[i]).min().unwrap_or(0) as f64 / dt)
        .collect();
    drop(pubs);
    Ok(Sample {
        cores: (c1 - c0) / dt,
        fps,
    })
}

fn ffmpeg_rooms(
    dir: &Path,
    clips: &Clips,
    r: &Rungs,
    n: usize,
    window: Duration,
) -> Result<Sample> {
    let outs: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("ffmpeg-{i}"))).collect();
    let procs: Vec<Proc> = outs
        .iter()
        .map(|o| ffmpeg_live(&clips.host, &clips.rival, o, r))
        .collect::<Result<_>>()?;
    std::thread::sleep(WARMUP);
    let cpu = |procs: &[Proc]| -> Result<f64> { procs.iter().map(|p| cpu_seconds(p.0.id())).sum() };
    for (p, o) in procs.iter().zip(&outs) {
        ensure!(
            ffmpeg_frames(o) > 0,
            "ffmpeg {} produced nothing: {}",
            p.0.id(),
            std::fs::read_to_string(o.join("stderr")).unwrap_or_default()
        );
    }
    let before: Vec<u64> = outs.iter().map(|o| ffmpeg_frames(o)).collect();
    let (c0, t0) = (cpu(&procs)?, Instant::now());
    std::thread::sleep(window);
    let (c1, dt) = (cpu(&procs)?, t0.elapsed().as_secs_f64());
    let fps = outs
        .iter()
        .zip(&before)
        .map(|(o, b)| (ffmpeg_frames(o) - b) as f64 / dt)
        .collect();
    Ok(Sample {
        cores: (c1 - c0) / dt,
        fps,
    })
}

fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: only run for real.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let rooms: Vec<usize> = std::env::var("SHOWMIX_BENCH_ROOMS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .context("SHOWMIX_BENCH_ROOMS: room counts, e.g. 1,2")
        })
        .collect::<Result<_>>()?;
    let window = Duration::from_secs(env_or("SHOWMIX_BENCH_SECONDS", 20));
    let density = env_or("SHOWMIX_BENCH_DENSITY", 1) != 0;
    let dir = tempfile::tempdir()?;
    let clips = Clips {
        host: dir.path().join("host.mp4"),
        rival: dir.path().join("rival.mp4"),
    };
    eprintln!("generating two 10 s 1280x720 30 fps clips ...");
    motion_clip(&clips.host, "testsrc2", 10.0, 1280, 720, 30, 440)?;
    photo_pan_clip(&clips.rival, 10.0, 1280, 720, 30, 660)?;
    let presets = Presets::embedded()?;
    let rungs = Rungs::of(&presets.ladder("showroom-720p")?);

    println!(
        "\nLive PK rooms (2 RTMP publishers each, showroom-720p), CPU over {} s after {} s warm-up",
        window.as_secs(),
        WARMUP.as_secs()
    );
    println!(
        "{:>5} {:>14} {:>14} {:>8}  {:>22}",
        "rooms", "showmix cores", "ffmpeg cores", "ratio", "realtime (showmix/ffmpeg)"
    );
    let mut rows = Vec::new();
    for &n in &rooms {
        let ours = showmix_rooms(dir.path(), &clips, n, window)?;
        let theirs = ffmpeg_rooms(dir.path(), &clips, &rungs, n, window)?;
        println!(
            "{n:>5} {:>14.3} {:>14.3} {:>8.3}  {:>10} / {:<10}   fps {:?} / {:?}",
            ours.cores,
            theirs.cores,
            ours.cores / theirs.cores,
            ours.realtime(),
            theirs.realtime(),
            ours.fps
                .iter()
                .map(|f| (f * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            theirs
                .fps
                .iter()
                .map(|f| (f * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
        );
        rows.push(
            json!({"rooms": n, "showmix": ours.json(n), "ffmpeg": theirs.json(n),
                         "ratio": ours.cores / theirs.cores}),
        );
    }
    let mut dens = Value::Null;
    if density {
        // Add rooms until one misses realtime; the last count that kept it is the density.
        let mut kept = [0usize; 2];
        for (side, k) in kept.iter_mut().enumerate() {
            for n in 1..=8 {
                let s = if side == 0 {
                    showmix_rooms(dir.path(), &clips, n, window)?
                } else {
                    ffmpeg_rooms(dir.path(), &clips, &rungs, n, window)?
                };
                eprintln!(
                    "  density {}: {n} rooms, {:.3} cores, fps {:?}",
                    ["showmix", "ffmpeg"][side],
                    s.cores,
                    s.fps
                );
                if !s.realtime() {
                    break;
                }
                *k = n;
            }
        }
        println!(
            "rooms kept in realtime on this machine ({} cores): showmix {}, ffmpeg {}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            kept[0],
            kept[1]
        );
        dens = json!({"showmix": kept[0], "ffmpeg": kept[1]});
    }
    if rows.is_empty() {
        bail!("no room counts to run");
    }
    let target = showmix_tests::workspace_root().join("target/bench");
    std::fs::create_dir_all(&target)?;
    std::fs::write(
        target.join("pk_live.json"),
        serde_json::to_string_pretty(&json!({"window_s": window.as_secs(), "runs": rows,
                                             "density": dens}))?
            + "\n",
    )?;
    println!("written: target/bench/pk_live.json");
    Ok(())
}
