//! Helpers for end-to-end tests and benchmarks: generate small media with ffmpeg, read outputs
//! back with ffprobe/ffmpeg (real peers, not our own code), find the `showmix` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

pub mod nginx;
pub mod probes;
pub mod process;
pub mod publisher;
pub mod server;
pub mod stamp;
pub mod webrtc;

/// Runs a command and fails with its stderr when it does not succeed.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Path to a freshly built `showmix` binary (built once per test process).
pub fn showmix_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = workspace_root();
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "showmix", "--bin", "showmix"])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building showmix failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("debug/showmix")
    })
    .clone()
}

/// Path to the release `showmix` binary, built here (benchmarks measure optimised encoders).
pub fn showmix_release_bin() -> Result<PathBuf> {
    let root = workspace_root();
    let st = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "showmix",
            "--bin",
            "showmix",
        ])
        .current_dir(&root)
        .status()?;
    if !st.success() {
        anyhow::bail!("building showmix (release) failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release/showmix"))
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

/// A clip of a solid colour with a tone, H.264 + AAC in MP4.
pub fn solid_clip(
    path: &Path,
    colour: &str,
    secs: f64,
    w: u32,
    h: u32,
    fps: u32,
    tone_hz: u32,
) -> Result<()> {
    run(Command::new("ffmpeg").args([
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        &format!("color=c={colour}:s={w}x{h}:r={fps}:d={secs}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=f={tone_hz}:d={secs}:sample_rate=48000"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        &fps.to_string(),
        "-pix_fmt",
        "yuv420p",
        // Tag the colours: untagged video taller than 576 lines is read as BT.709 by GStreamer
        // and as BT.601 by ffmpeg.
        "-colorspace",
        "smpte170m",
        "-color_primaries",
        "smpte170m",
        "-color_trc",
        "smpte170m",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        "-shortest",
        path.to_str().context("utf-8 path")?,
    ]))?;
    Ok(())
}

/// A moving picture (test source with motion and texture) for quality measurements.
pub fn motion_clip(
    path: &Path,
    pattern: &str,
    secs: f64,
    w: u32,
    h: u32,
    fps: u32,
    tone_hz: u32,
) -> Result<()> {
    run(Command::new("ffmpeg").args([
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        &format!("{pattern}=s={w}x{h}:r={fps}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=f={tone_hz}:sample_rate=48000"),
        "-t",
        &secs.to_string(),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "18",
        "-g",
        &fps.to_string(),
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-shortest",
        path.to_str().context("utf-8 path")?,
    ]))?;
    Ok(())
}

/// A camera-like clip: the shared face photograph, scaled up and panned, with a tone. Real
/// texture and motion, so encoders and scalers work as they do on hosts.
pub fn photo_pan_clip(
    path: &Path,
    secs: f64,
    w: u32,
    h: u32,
    fps: u32,
    tone_hz: u32,
) -> Result<()> {
    let photo = testdata("face-astronaut-512.png");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-loop", "1", "-framerate", &fps.to_string(), "-i"])
        .arg(&photo)
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("sine=f={tone_hz}:sample_rate=48000"),
            "-t",
            &secs.to_string(),
            "-vf",
            &format!(
                "scale={sw}:-2:flags=lanczos,crop={w}:{h}:x='(iw-{w})/2+(iw-{w})/2*sin(t/2)':y='(ih-{h})/2+(ih-{h})/3*cos(t/3)',format=yuv420p",
                sw = w * 3 / 2
            ),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "18",
            "-g",
            &fps.to_string(),
            "-colorspace",
            "bt709",
            "-color_primaries",
            "bt709",
            "-color_trc",
            "bt709",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
        ])
        .arg(path))?;
    Ok(())
}

#[derive(Clone, Debug, PartialEq)]
pub struct Packet {
    pub pts: f64,
    pub key: bool,
    /// Bytes of the packet.
    pub size: u64,
}

/// Runs the showmix binary with a deadline (killed past it, which fails the test); returns
/// (exit code, stdout, stderr). Output is read while it runs, so a chatty run cannot block on
/// a full pipe. A panic in showmix fails the test too.
pub fn run_showmix(args: &[&str], deadline: std::time::Duration) -> (i32, String, String) {
    use std::process::Stdio;
    let child = Command::new(showmix_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("showmix starts");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(deadline) {
        Ok(out) => out.expect("showmix output"),
        Err(_) => {
            // SAFETY: kill(2) on our own child, which has not been reaped (its waiter thread
            // has not returned).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let out = rx.recv().expect("waiter").expect("output");
            panic!(
                "showmix {args:?} did not finish within {deadline:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "showmix {args:?} panicked: {stderr}"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// Video packets of a file in decode order, as ffprobe sees them.
pub fn video_packets(path: &Path) -> Result<Vec<Packet>> {
    let out = run(Command::new("ffprobe").args([
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time,flags,size",
        "-of",
        "csv=p=0",
        path.to_str().context("utf-8 path")?,
    ]))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        // ffprobe prints the entries in its own order: pts_time, size, flags.
        let mut f = line.split(',');
        let (pts, size, flags) = (f.next(), f.next(), f.next());
        let (Some(pts), Some(size), Some(flags)) = (pts, size, flags) else {
            bail!("not pts,size,flags: {line:?}");
        };
        v.push(Packet {
            pts: pts.parse().with_context(|| format!("pts {pts:?}"))?,
            key: flags.contains('K'),
            size: size.parse().with_context(|| format!("size {size:?}"))?,
        });
    }
    Ok(v)
}

/// Stream facts from ffprobe: (codec, width, height, duration) of the first video stream and
/// (codec, sample rate, channels, duration) of the first audio stream.
#[derive(Clone, Debug, Default)]
pub struct Streams {
    pub video: Option<(String, u32, u32, f64)>,
    pub audio: Option<(String, u32, u32, f64)>,
}

pub fn streams(path: &Path) -> Result<Streams> {
    let out = run(Command::new("ffprobe").args([
        "-v",
        "error",
        "-show_entries",
        "stream=codec_type,codec_name,width,height,sample_rate,channels,duration",
        "-of",
        "json",
        path.to_str().context("utf-8 path")?,
    ]))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut s = Streams::default();
    for st in v["streams"].as_array().context("streams")? {
        let codec = st["codec_name"].as_str().unwrap_or_default().to_owned();
        let dur: f64 = st["duration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0.0);
        match st["codec_type"].as_str() {
            Some("video") if s.video.is_none() => {
                s.video = Some((
                    codec,
                    st["width"].as_u64().unwrap_or(0) as u32,
                    st["height"].as_u64().unwrap_or(0) as u32,
                    dur,
                ));
            }
            Some("audio") if s.audio.is_none() => {
                let rate = st["sample_rate"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                s.audio = Some((
                    codec,
                    rate,
                    st["channels"].as_u64().unwrap_or(0) as u32,
                    dur,
                ));
            }
            _ => {}
        }
    }
    Ok(s)
}

/// One decoded RGB frame.
#[derive(Clone)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Frame {
    pub fn px(&self, x: i32, y: i32) -> [u8; 3] {
        let i = ((y as u32 * self.width + x as u32) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

/// Decodes every frame of a file's video to RGB (keep files small).
pub fn decode_frames(path: &Path) -> Result<Vec<Frame>> {
    let s = streams(path)?;
    let (_, w, h, _) = s.video.context("no video stream")?;
    let out = run(Command::new("ffmpeg").args([
        "-v",
        "error",
        "-i",
        path.to_str().context("utf-8 path")?,
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-fps_mode",
        "passthrough",
        "-",
    ]))?;
    let size = (w * h * 3) as usize;
    Ok(out
        .stdout
        .chunks_exact(size)
        .map(|c| Frame {
            width: w,
            height: h,
            rgb: c.to_vec(),
        })
        .collect())
}

/// The frame shown at `t` seconds.
pub fn frame_at(path: &Path, t: f64) -> Result<Frame> {
    let s = streams(path)?;
    let (_, w, h, _) = s.video.context("no video stream")?;
    let out = run(Command::new("ffmpeg").args([
        "-v",
        "error",
        "-ss",
        &format!("{t:.3}"),
        "-i",
        path.to_str().context("utf-8 path")?,
        "-frames:v",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]))?;
    if out.stdout.len() < (w * h * 3) as usize {
        bail!("no frame at {t} s in {}", path.display());
    }
    Ok(Frame {
        width: w,
        height: h,
        rgb: out.stdout,
    })
}

/// Decoded video frames in a file.
pub fn frame_count(path: &Path) -> Result<usize> {
    let out = run(Command::new("ffprobe").args([
        "-v",
        "error",
        "-count_frames",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=nb_read_frames",
        "-of",
        "csv=p=0",
        path.to_str().context("utf-8 path")?,
    ]))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// Decodes an image file (JPEG, PNG) to RGB.
pub fn decode_image(path: &Path) -> Result<Frame> {
    let s = streams(path)?;
    let (_, w, h, _) = s.video.context("not an image")?;
    let out = run(Command::new("ffmpeg").args([
        "-v",
        "error",
        "-i",
        path.to_str().context("utf-8 path")?,
        "-frames:v",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]))?;
    if out.stdout.len() < (w * h * 3) as usize {
        bail!(
            "{} decoded to {} bytes, wanted {}",
            path.display(),
            out.stdout.len(),
            w * h * 3
        );
    }
    Ok(Frame {
        width: w,
        height: h,
        rgb: out.stdout,
    })
}

/// Named colours as ffmpeg's `color` source and videotestsrc draw them, in RGB.
pub fn rgb_of(name: &str) -> [u8; 3] {
    match name {
        "red" => [255, 0, 0],
        "green" => [0, 255, 0],
        "lime" => [0, 255, 0],
        "blue" => [0, 0, 255],
        "white" => [255, 255, 255],
        "black" => [0, 0, 0],
        "yellow" => [255, 255, 0],
        "magenta" => [255, 0, 255],
        "cyan" => [0, 255, 255],
        _ => panic!("unknown colour {name}"),
    }
}

/// True when two colours are within `tol` on every channel (codecs shift colours a little).
pub fn near(a: [u8; 3], b: [u8; 3], tol: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tol)
}

/// Mean of `ffmpeg -lavfi psnr` (luma+chroma average) between two files of the same size,
/// frame by frame in decode order (timestamps rewritten to frame numbers, so container
/// timestamp rounding cannot pair the wrong frames). Both must have the same frame count.
pub fn psnr(distorted: &Path, reference: &Path) -> Result<f64> {
    let (a, b) = (frame_count(distorted)?, frame_count(reference)?);
    if a != b {
        bail!(
            "{} has {a} frames but {} has {b}",
            distorted.display(),
            reference.display()
        );
    }
    let out = run(Command::new("ffmpeg").args([
        "-v",
        "info",
        "-nostats",
        "-i",
        distorted.to_str().context("utf-8")?,
        "-i",
        reference.to_str().context("utf-8")?,
        "-lavfi",
        "[0:v]setpts=N/(30*TB)[a];[1:v]setpts=N/(30*TB)[b];[a][b]psnr",
        "-f",
        "null",
        "-",
    ]))?;
    let text = String::from_utf8_lossy(&out.stderr);
    let avg = text
        .lines()
        .filter_map(|l| l.split("average:").nth(1))
        .next_back()
        .context("ffmpeg printed no PSNR")?;
    let v = avg.split_whitespace().next().context("psnr value")?;
    if v == "inf" {
        return Ok(100.0);
    }
    Ok(v.parse()?)
}

/// CPU time used so far by this process's waited-for children: (user, system). For
/// benchmarks that time a tool run as a child process.
pub fn children_cpu() -> (std::time::Duration, std::time::Duration) {
    // SAFETY: getrusage only writes the zero-initialised struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| {
        std::time::Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000)
    };
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// A file of the repository's test data (`tests/data`).
pub fn testdata(name: &str) -> PathBuf {
    workspace_root().join("tests/data").join(name)
}
