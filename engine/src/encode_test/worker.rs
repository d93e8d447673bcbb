//! One encode per child process, so its CPU time and peak memory are its own (read from the
//! child's rusage by `wait4`) however many encodes run in parallel. The child is either
//! `showmix encode-test-worker` (the engine's own encoders, built by
//! [`crate::pipeline::encode::video_encoder`] from a one-rung ladder) or, for
//! `--reference ffmpeg`, the ffmpeg CLI with the same settings. Both print `frame=N` lines on
//! stdout for the progress bar.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;

use crate::pipeline::{encode, make, set_number};
use crate::presets::ladder::{Audio, Canvas, Ladder, Rung, Speed, Video, VideoCodec};

/// Everything one encode needs; the same values drive the engine and the ffmpeg reference.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodeSpec {
    pub codec: VideoCodec,
    pub speed: Speed,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub gop_frames: u32,
    pub rate: Rate,
    /// Zero-latency tuning and no B-frames; off: the encoders' defaults (B-frames allowed).
    pub live: bool,
    /// Packed I420 frames.
    pub input: PathBuf,
    pub output: PathBuf,
}

/// How one encode is rate-controlled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    /// A bitrate target in kbit/s (the ladder's rate control: x264 ABR with VBV, libvpx CBR).
    Kbps(u32),
    /// Constant quality on the encoder's own scale (see [`super::plan::crf_range`]).
    Crf(u32),
}

impl Rate {
    pub fn kbps(self) -> Option<u32> {
        match self {
            Rate::Kbps(k) => Some(k),
            Rate::Crf(_) => None,
        }
    }

    pub fn crf(self) -> Option<u32> {
        match self {
            Rate::Crf(q) => Some(q),
            Rate::Kbps(_) => None,
        }
    }
}

impl std::fmt::Display for Rate {
    /// As it appears in encode ids: `300k`, `crf23`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::Kbps(k) => write!(f, "{k}k"),
            Rate::Crf(q) => write!(f, "crf{q}"),
        }
    }
}

/// The bitrate cap of libvpx's constrained-quality mode under `--crf` (GStreamer's vpxenc has
/// no pure constant-quality mode): far above what any rung spends, so the level decides.
const VPX_CQ_CAP_KBPS: u32 = 100_000;

/// B-frames when live constraints are off.
const OFFLINE_BFRAMES: u32 = 3;

impl EncodeSpec {
    /// The one-rung ladder the engine's encoder factory takes.
    pub fn ladder(&self) -> Ladder {
        Ladder {
            name: "encode-test".into(),
            description: String::new(),
            canvas: Canvas {
                width: self.width,
                height: self.height,
                fps: self.fps,
            },
            gop_seconds: f64::from(self.gop_frames) / f64::from(self.fps.max(1)),
            video: Video {
                codec: self.codec,
                speed: self.speed,
                zerolatency: self.live,
                bframes: if self.live { 0 } else { OFFLINE_BFRAMES },
            },
            rungs: vec![self.rung()],
            audio: Audio::default(),
        }
    }

    fn rung(&self) -> Rung {
        Rung {
            name: format!("{}p", self.height),
            width: self.width,
            height: self.height,
            // Under constant quality the encoder's bitrate is replaced by `constant_quality`.
            bitrate_kbps: self.rate.kbps().unwrap_or(0),
        }
    }

    /// Arguments of `showmix encode-test-worker`.
    pub fn worker_args(&self) -> Vec<String> {
        let mut a = vec![
            "encode-test-worker".to_string(),
            format!("--codec={}", self.codec.as_str()),
            format!("--speed={}", self.speed.as_str()),
            format!("--width={}", self.width),
            format!("--height={}", self.height),
            format!("--fps={}", self.fps),
            format!("--gop={}", self.gop_frames),
            match self.rate {
                Rate::Kbps(k) => format!("--bitrate={k}"),
                Rate::Crf(q) => format!("--crf={q}"),
            },
            format!("--input={}", self.input.display()),
            format!("--output={}", self.output.display()),
        ];
        if !self.live {
            a.push("--no-live".into());
        }
        a
    }

    /// The same encode through the ffmpeg CLI: same rate control (x264enc's default is ABR
    /// with a VBV of the bitrate over 600 ms; libvpx CBR), same GOP, same speed mapping.
    pub fn ffmpeg_args(&self) -> Vec<String> {
        let s = |v: &str| v.to_string();
        let gop = self.gop_frames;
        let mut a: Vec<String> = vec![
            s("-hide_banner"),
            s("-nostdin"),
            s("-loglevel"),
            s("error"),
            s("-nostats"),
            s("-progress"),
            s("pipe:1"),
            s("-y"),
            s("-f"),
            s("rawvideo"),
            s("-pix_fmt"),
            s("yuv420p"),
            s("-s"),
            format!("{}x{}", self.width, self.height),
            s("-r"),
            self.fps.to_string(),
            s("-i"),
            self.input.display().to_string(),
            s("-an"),
        ];
        let bframes = if self.live { 0 } else { OFFLINE_BFRAMES };
        // x264 and x265: same preset names and zero-latency tune.
        if let Some(lib) = match self.codec {
            VideoCodec::H264 => Some("libx264"),
            VideoCodec::H265 => Some("libx265"),
            _ => None,
        } {
            a.extend([s("-c:v"), s(lib), s("-preset"), s(self.speed.as_str())]);
            if self.live {
                a.extend([s("-tune"), s("zerolatency")]);
            }
        }
        match self.codec {
            VideoCodec::H264 => {
                match self.rate {
                    Rate::Crf(q) => a.extend([s("-crf"), q.to_string()]),
                    Rate::Kbps(kbps) => a.extend([
                        s("-b:v"),
                        format!("{kbps}k"),
                        s("-maxrate"),
                        format!("{kbps}k"),
                        s("-bufsize"),
                        format!("{}k", kbps * 6 / 10),
                    ]),
                }
                a.extend([
                    s("-bf"),
                    bframes.to_string(),
                    s("-g"),
                    gop.to_string(),
                    s("-keyint_min"),
                    gop.to_string(),
                    s("-sc_threshold"),
                    s("0"),
                ]);
            }
            VideoCodec::H265 => {
                match self.rate {
                    Rate::Crf(q) => a.extend([s("-crf"), q.to_string()]),
                    Rate::Kbps(kbps) => a.extend([s("-b:v"), format!("{kbps}k")]),
                }
                a.extend([
                    s("-x265-params"),
                    format!(
                        "log-level=error:keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"
                    ),
                ]);
            }
            VideoCodec::Av1 => {
                a.extend([
                    s("-c:v"),
                    s("librav1e"),
                    s("-speed"),
                    rav1e_speed(self.speed).to_string(),
                ]);
                match self.rate {
                    Rate::Crf(q) => a.extend([s("-qp"), q.to_string()]),
                    Rate::Kbps(kbps) => a.extend([s("-b:v"), format!("{kbps}k")]),
                }
                a.extend([s("-g"), gop.to_string(), s("-keyint_min"), gop.to_string()]);
                if self.live {
                    a.extend([s("-rav1e-params"), s("low_latency=true")]);
                }
            }
            VideoCodec::Vp8 | VideoCodec::Vp9 => {
                let lib = if self.codec == VideoCodec::Vp8 {
                    "libvpx"
                } else {
                    "libvpx-vp9"
                };
                a.extend([
                    s("-c:v"),
                    s(lib),
                    s("-deadline"),
                    s("realtime"),
                    s("-cpu-used"),
                    vpx_cpu_used(self.speed).to_string(),
                ]);
                match self.rate {
                    // Constrained quality under a cap no rung reaches, as the engine does.
                    Rate::Crf(q) => a.extend([
                        s("-crf"),
                        q.to_string(),
                        s("-b:v"),
                        format!("{VPX_CQ_CAP_KBPS}k"),
                    ]),
                    Rate::Kbps(kbps) => a.extend([
                        s("-b:v"),
                        format!("{kbps}k"),
                        s("-minrate"),
                        format!("{kbps}k"),
                        s("-maxrate"),
                        format!("{kbps}k"),
                    ]),
                }
                a.extend([
                    s("-g"),
                    gop.to_string(),
                    s("-keyint_min"),
                    gop.to_string(),
                    s("-lag-in-frames"),
                    s("0"),
                    s("-threads"),
                    s("2"),
                ]);
            }
        }
        a.push(self.output.display().to_string());
        a
    }
}

/// rav1e speed as the engine maps it (10 fastest .. 0 slowest; veryfast → 8).
fn rav1e_speed(speed: Speed) -> u32 {
    10u32.saturating_sub(speed.index()).max(1)
}

/// libvpx realtime cpu-used as the engine maps it.
fn vpx_cpu_used(speed: Speed) -> i64 {
    8 - i64::from(speed.index())
}

/// The container extension the engine writes for a codec.
pub fn file_ext(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::Vp8 | VideoCodec::Vp9 => "mkv",
        _ => "mp4",
    }
}

/// Checks that the encoder element for `codec` exists, with the error naming its package.
pub fn check_encoder(codec: VideoCodec) -> Result<()> {
    crate::init()?;
    let spec = EncodeSpec {
        codec,
        speed: Speed::Veryfast,
        width: 64,
        height: 64,
        fps: 30,
        gop_frames: 30,
        rate: Rate::Kbps(300),
        live: true,
        input: PathBuf::new(),
        output: PathBuf::new(),
    };
    encode::video_encoder(&spec.ladder(), &spec.rung(), "probe")
        .map(|_| ())
        .with_context(|| format!("codec {} cannot be used", codec.as_str()))
}

/// The body of `showmix encode-test-worker`: raw frames → engine encoder → parser → file.
pub fn run_worker(spec: &EncodeSpec) -> Result<u64> {
    crate::init()?;
    let ladder = spec.ladder();
    let pipeline = gst::Pipeline::with_name("encode-test-worker");
    let src = make("filesrc", Some("src"))?;
    src.set_property("location", spec.input.display().to_string());
    let parse = make("rawvideoparse", Some("raw"))?;
    parse.set_property_from_str("format", "i420");
    set_number(&parse, "width", i64::from(spec.width))?;
    set_number(&parse, "height", i64::from(spec.height))?;
    parse.set_property("framerate", gst::Fraction::new(spec.fps as i32, 1));
    // The raw file is packed I420 (reference.rs writes rows without padding); rawvideoparse's
    // default layout pads rows to 4 bytes, which shears every width that is not a multiple of
    // 8 (854-wide 480p rungs), so the layout is given explicitly.
    let (strides, offsets, frame_size) = packed_i420_layout(spec.width, spec.height);
    parse.set_property("plane-strides", gst::Array::new(strides));
    parse.set_property("plane-offsets", gst::Array::new(offsets));
    parse.set_property("frame-size", frame_size);
    let enc = encode::video_encoder(&ladder, &spec.rung(), "venc")?;
    if let Rate::Crf(q) = spec.rate {
        constant_quality(&enc, spec.codec, q)?;
    }
    let vparse = encode::video_parser(spec.codec, "vparse")?;
    let (mux, _) = encode::file_muxer(spec.codec, "mux")?;
    let sink = make("filesink", Some("sink"))?;
    sink.set_property("location", spec.output.display().to_string());
    let mut chain = vec![src, parse, enc.clone()];
    chain.extend(vparse);
    chain.extend([mux, sink]);
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;

    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    if let Some(pad) = enc.static_pad("src") {
        let frames = frames.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let n = frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(5) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "frame={n}");
                let _ = out.flush();
            }
            gst::PadProbeReturn::Ok
        });
    }
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| anyhow!("the encode pipeline does not start"))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| anyhow!("pipeline without a bus"))?;
    let mut result = Ok(());
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                let from = e.src().map(|s| s.name().to_string()).unwrap_or_default();
                result = Err(anyhow!("{from}: {}", e.error()));
                break;
            }
            _ => {}
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    let n = frames.load(std::sync::atomic::Ordering::Relaxed);
    println!("frame={n}");
    Ok(n)
}

/// Turns the engine's encoder from its bitrate target to constant quality `q` (the live
/// settings, GOP and speed stay as the ladder set them), matching what `ffmpeg_args` asks of
/// ffmpeg's wrappers.
fn constant_quality(enc: &gst::Element, codec: VideoCodec, q: u32) -> Result<()> {
    match codec {
        VideoCodec::H264 => {
            // CRF; x264enc keeps its bitrate as a VBV maximum unless the buffer is 0, which
            // x264 reads as no VBV (as ffmpeg's -crf alone).
            enc.set_property_from_str("pass", "qual");
            set_number(enc, "quantizer", i64::from(q))?;
            set_number(enc, "vbv-buf-capacity", 0)?;
        }
        VideoCodec::H265 => {
            // x265 parses the option string after x265enc's own ABR settings: crf wins.
            let opts: String = enc.property("option-string");
            let opts = if opts.is_empty() {
                format!("crf={q}")
            } else {
                format!("{opts}:crf={q}")
            };
            enc.set_property("option-string", opts);
        }
        VideoCodec::Av1 => {
            // No bitrate target: rav1e encodes at the fixed quantizer.
            set_number(enc, "bitrate", 0)?;
            set_number(enc, "quantizer", i64::from(q))?;
        }
        VideoCodec::Vp8 | VideoCodec::Vp9 => {
            enc.set_property_from_str("end-usage", "cq");
            set_number(enc, "cq-level", i64::from(q))?;
            set_number(enc, "target-bitrate", i64::from(VPX_CQ_CAP_KBPS) * 1000)?;
        }
    }
    Ok(())
}

/// Strides, plane offsets and frame size of packed I420 (chroma planes of ⌈w/2⌉ × ⌈h/2⌉).
fn packed_i420_layout(width: u32, height: u32) -> ([i32; 3], [i32; 3], u32) {
    let (w, h) = (width as i32, height as i32);
    let (cw, ch) = ((w + 1) / 2, (h + 1) / 2);
    let luma = w * h;
    let chroma = cw * ch;
    (
        [w, cw, cw],
        [0, luma, luma + chroma],
        (luma + 2 * chroma) as u32,
    )
}

/// What a child process cost, from its own rusage.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub peak_rss_kib: u64,
}

/// Child processes running now, so Ctrl-C can end them (only ours, by pid).
#[derive(Default)]
pub struct Running(Mutex<Vec<u32>>);

impl Running {
    pub fn terminate_all(&self) {
        let pids = self.0.lock().map(|v| v.clone()).unwrap_or_default();
        for pid in pids {
            // SAFETY: kill(2) on a pid we spawned and have not reaped yet.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    fn add(&self, pid: u32) {
        if let Ok(mut v) = self.0.lock() {
            v.push(pid);
        }
    }
    fn remove(&self, pid: u32) {
        if let Ok(mut v) = self.0.lock() {
            v.retain(|&p| p != pid);
        }
    }
}

/// Runs `program args`, stderr to `log`, reporting `frame=N` lines; returns its rusage.
pub fn run_child(
    program: &Path,
    args: &[String],
    log: &Path,
    running: &Running,
    mut on_frames: impl FnMut(u64),
) -> Result<Usage> {
    let log_file = File::create(log).with_context(|| format!("cannot write {}", log.display()))?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let pid = child.id();
    running.add(pid);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line
                .strip_prefix("frame=")
                .and_then(|v| v.trim().parse().ok())
            {
                on_frames(n);
            }
        }
    }
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data wait4 fills; pid is our unreaped child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut ru) };
    running.remove(pid);
    let wall = started.elapsed().as_secs_f64();
    // Reaped by wait4: std must not wait again.
    std::mem::forget(child);
    if r < 0 {
        bail!(
            "cannot wait for {}: {}",
            program.display(),
            std::io::Error::last_os_error()
        );
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let usage = Usage {
        wall_seconds: wall,
        cpu_seconds: tv(ru.ru_utime) + tv(ru.ru_stime),
        peak_rss_kib: ru.ru_maxrss.max(0) as u64,
    };
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message")
            .trim()
            .to_string();
        let how = if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("exit status {}", libc::WEXITSTATUS(status))
        };
        bail!("{} failed ({how}): {last}", program.display());
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(codec: VideoCodec) -> EncodeSpec {
        EncodeSpec {
            codec,
            speed: Speed::Medium,
            width: 640,
            height: 360,
            fps: 30,
            gop_frames: 30,
            rate: Rate::Kbps(600),
            live: true,
            input: "in.yuv".into(),
            output: "out.mp4".into(),
        }
    }

    #[test]
    fn packed_layout_has_no_row_padding() {
        // 854 × 480: GStreamer's default layout would pad luma rows to 856 and chroma to 428.
        let (strides, offsets, size) = packed_i420_layout(854, 480);
        assert_eq!(strides, [854, 427, 427]);
        assert_eq!(offsets, [0, 409_920, 409_920 + 102_480]);
        assert_eq!(size, 614_880);
        // Odd sizes round chroma up, as the writer does.
        assert_eq!(packed_i420_layout(5, 3).2, 15 + 2 * 3 * 2);
    }

    #[test]
    fn one_rung_ladder_is_valid() {
        for c in [VideoCodec::H264, VideoCodec::Av1, VideoCodec::Vp9] {
            let l = spec(c).ladder();
            l.validate().unwrap();
            assert_eq!(l.gop_frames(), 30);
            assert_eq!(l.video.bframes, 0);
        }
        let mut s = spec(VideoCodec::H264);
        s.live = false;
        assert_eq!(s.ladder().video.bframes, OFFLINE_BFRAMES);
        assert!(!s.ladder().video.zerolatency);
    }

    #[test]
    fn ffmpeg_reference_settings() {
        let a = spec(VideoCodec::H264).ffmpeg_args().join(" ");
        assert!(a.contains("-c:v libx264 -preset medium -tune zerolatency -b:v 600k -maxrate 600k -bufsize 360k -bf 0 -g 30 -keyint_min 30 -sc_threshold 0"), "{a}");
        let a = spec(VideoCodec::H265).ffmpeg_args().join(" ");
        assert!(
            a.contains("-c:v libx265 -preset medium -tune zerolatency -b:v 600k -x265-params"),
            "{a}"
        );
        let a = spec(VideoCodec::Av1).ffmpeg_args().join(" ");
        // medium is index 5: rav1e speed 5, as the engine maps it.
        assert!(a.contains("-c:v librav1e -speed 5"), "{a}");
        let a = spec(VideoCodec::Vp9).ffmpeg_args().join(" ");
        assert!(
            a.contains("-c:v libvpx-vp9 -deadline realtime -cpu-used 3"),
            "{a}"
        );
        assert!(a.ends_with("out.mp4"));
    }

    #[test]
    fn constant_quality_reference_settings() {
        let with = |c, q| {
            let mut s = spec(c);
            s.rate = Rate::Crf(q);
            s.ffmpeg_args().join(" ")
        };
        let a = with(VideoCodec::H264, 23);
        assert!(a.contains("-tune zerolatency -crf 23 -bf 0 -g 30"), "{a}");
        assert!(!a.contains("-b:v") && !a.contains("-maxrate"), "{a}");
        let a = with(VideoCodec::H265, 28);
        assert!(a.contains("-crf 28 -x265-params"), "{a}");
        assert!(!a.contains("-b:v"), "{a}");
        let a = with(VideoCodec::Av1, 120);
        assert!(a.contains("-speed 5 -qp 120 -g 30"), "{a}");
        assert!(!a.contains("-b:v"), "{a}");
        let a = with(VideoCodec::Vp9, 40);
        assert!(a.contains("-crf 40 -b:v 100000k -g 30"), "{a}");
        assert!(!a.contains("-minrate"), "{a}");
        let mut s = spec(VideoCodec::Vp9);
        s.rate = Rate::Crf(40);
        assert!(s.worker_args().contains(&"--crf=40".to_string()));
        assert!(!s.worker_args().iter().any(|a| a.starts_with("--bitrate")));
        assert!(
            !spec(VideoCodec::Vp9)
                .worker_args()
                .iter()
                .any(|a| a.starts_with("--crf"))
        );
    }

    #[test]
    fn worker_args_round_trip_names() {
        let a = spec(VideoCodec::H265).worker_args();
        assert_eq!(a[0], "encode-test-worker");
        assert!(a.contains(&"--codec=h265".to_string()));
        assert!(!a.contains(&"--no-live".to_string()));
    }
}
