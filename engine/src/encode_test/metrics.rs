//! Quality of one encode against its reference, through libavfilter (ffmpeg-next): the
//! encoded file is demuxed and decoded once, each decoded frame is paired with the raw
//! reference frame of the same number (read from the reference file, never decoded again),
//! and libavfilter's `psnr` and `ssim` filters score the pair. Their per-frame results come
//! back as frame metadata (`lavfi.psnr.mse.y`, `lavfi.ssim.All`, …), not as log text.
//!
//! VMAF needs libavfilter built with libvmaf; Debian 12's is not, and [`vmaf_available`]
//! says so, so the report can.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use ffmpeg_next as ff;

use super::report::FrameRow;

/// Initialises libav* once and quiets its log (errors surface through our own messages).
pub fn init() -> Result<()> {
    static INIT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        ff::init().map_err(|e| format!("FFmpeg libraries do not initialise: {e}"))?;
        ff::log::set_level(ff::log::Level::Fatal);
        Ok(())
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Whether this libavfilter has the libvmaf filter.
pub fn vmaf_available() -> bool {
    init().is_ok() && ff::filter::find("libvmaf").is_some()
}

/// Which metrics to compute.
#[derive(Clone, Copy, Debug)]
pub struct Wanted {
    pub psnr: bool,
    pub ssim: bool,
}

/// The raw reference: packed I420 frames of `width`×`height`.
#[derive(Clone, Debug)]
pub struct RawRef<'a> {
    pub path: &'a Path,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// One encode's frames: sizes, keyframes, and the metrics asked for.
pub fn measure(
    encoded: &Path,
    reference: &RawRef,
    wanted: Wanted,
    cancel: &AtomicBool,
) -> Result<Vec<FrameRow>> {
    init()?;
    let mut input = ff::format::input(&encoded)
        .with_context(|| format!("cannot open {} for decoding", encoded.display()))?;
    let stream = input
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| anyhow!("{} has no video stream", encoded.display()))?;
    let index = stream.index();
    let tb = stream.time_base();
    let ctx = ff::codec::context::Context::from_parameters(stream.parameters())?;
    let mut decoder = ctx
        .decoder()
        .video()
        .with_context(|| format!("no FFmpeg decoder for {}", encoded.display()))?;

    let mut refs = RefReader::open(reference)?;
    let mut scorer: Option<Scorer> = None;
    let mut rows: Vec<FrameRow> = Vec::new();
    // (pts, bytes, key) of every packet; frames come out in presentation order, so the n-th
    // frame is the packet with the n-th smallest pts.
    let mut packets: Vec<(i64, u64, bool)> = Vec::new();
    let mut decoded = ff::frame::Video::empty();
    let mut n: u64 = 0;

    let mut drain = |decoder: &mut ff::decoder::Video,
                     scorer: &mut Option<Scorer>,
                     rows: &mut Vec<FrameRow>,
                     refs: &mut RefReader|
     -> Result<()> {
        while decoder.receive_frame(&mut decoded).is_ok() {
            if decoded.width() != reference.width || decoded.height() != reference.height {
                bail!(
                    "{} decodes to {}x{}, the reference is {}x{}",
                    encoded.display(),
                    decoded.width(),
                    decoded.height(),
                    reference.width,
                    reference.height
                );
            }
            let Some(mut reff) = refs.next()? else {
                // More encoded frames than reference frames: nothing to compare them with.
                continue;
            };
            decoded.set_pts(Some(n as i64));
            reff.set_pts(Some(n as i64));
            rows.push(FrameRow {
                frame: n,
                seconds: n as f64 / f64::from(reference.fps.max(1)),
                ..Default::default()
            });
            if wanted.psnr || wanted.ssim {
                if scorer.is_none() {
                    *scorer = Some(Scorer::new(&decoded, reference, wanted)?);
                }
                if let Some(s) = scorer.as_mut() {
                    s.push(&decoded, &reff, rows)?;
                }
            }
            n += 1;
        }
        Ok(())
    };

    for (s, packet) in input.packets() {
        if cancel.load(Ordering::Relaxed) {
            bail!("cancelled");
        }
        if s.index() != index {
            continue;
        }
        packets.push((
            packet
                .pts()
                .or(packet.dts())
                .unwrap_or(packets.len() as i64),
            packet.size() as u64,
            packet.is_key(),
        ));
        decoder
            .send_packet(&packet)
            .with_context(|| format!("{} does not decode", encoded.display()))?;
        drain(&mut decoder, &mut scorer, &mut rows, &mut refs)?;
    }
    decoder.send_eof()?;
    drain(&mut decoder, &mut scorer, &mut rows, &mut refs)?;
    if let Some(s) = scorer.as_mut() {
        s.finish(&mut rows)?;
    }
    let _ = tb;
    packets.sort_by_key(|p| p.0);
    for (row, p) in rows.iter_mut().zip(&packets) {
        row.bytes = p.1;
        row.key = p.2;
    }
    if rows.is_empty() {
        bail!("{} has no decodable video frames", encoded.display());
    }
    Ok(rows)
}

/// Reads packed I420 frames into FFmpeg frames.
struct RefReader {
    file: BufReader<File>,
    width: u32,
    height: u32,
    buf: Vec<u8>,
}

impl RefReader {
    fn open(r: &RawRef) -> Result<Self> {
        let file = File::open(r.path)
            .with_context(|| format!("cannot open the reference {}", r.path.display()))?;
        Ok(Self {
            file: BufReader::with_capacity(1 << 20, file),
            width: r.width,
            height: r.height,
            buf: vec![0; i420_size(r.width, r.height)],
        })
    }

    fn next(&mut self) -> Result<Option<ff::frame::Video>> {
        match self.file.read_exact(&mut self.buf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e).context("cannot read the reference frames"),
        }
        let mut f = ff::frame::Video::new(ff::format::Pixel::YUV420P, self.width, self.height);
        let mut off = 0;
        for plane in 0..3 {
            let w = f.plane_width(plane) as usize;
            let h = f.plane_height(plane) as usize;
            let stride = f.stride(plane);
            let data = f.data_mut(plane);
            for y in 0..h {
                data[y * stride..y * stride + w].copy_from_slice(&self.buf[off..off + w]);
                off += w;
            }
        }
        Ok(Some(f))
    }
}

/// Bytes of one packed I420 frame.
pub fn i420_size(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
}

/// The libavfilter graph `[main][ref] → psnr → ssim → sink`.
struct Scorer {
    graph: ff::filter::Graph,
}

impl Scorer {
    fn new(first: &ff::frame::Video, r: &RawRef, wanted: Wanted) -> Result<Self> {
        let mut graph = ff::filter::Graph::new();
        let buffer = ff::filter::find("buffer")
            .ok_or_else(|| anyhow!("libavfilter has no buffer source"))?;
        let sink = ff::filter::find("buffersink")
            .ok_or_else(|| anyhow!("libavfilter has no buffersink"))?;
        let main_fmt: ff::ffi::AVPixelFormat = first.format().into();
        let args = |fmt: i32| {
            format!(
                "video_size={}x{}:pix_fmt={fmt}:time_base=1/{}:pixel_aspect=1/1",
                r.width,
                r.height,
                r.fps.max(1)
            )
        };
        graph.add(&buffer, "main", &args(main_fmt as i32))?;
        let ref_fmt: ff::ffi::AVPixelFormat = ff::format::Pixel::YUV420P.into();
        graph.add(&buffer, "ref", &args(ref_fmt as i32))?;
        graph.add(&sink, "out", "")?;
        let spec = match (wanted.psnr, wanted.ssim) {
            (true, true) => {
                "[main]format=yuv420p[m0];[ref]split=2[r1][r2];[m0][r1]psnr[m1];[m1][r2]ssim[out]"
            }
            (true, false) => "[main]format=yuv420p[m0];[m0][ref]psnr[out]",
            _ => "[main]format=yuv420p[m0];[m0][ref]ssim[out]",
        };
        graph
            .output("main", 0)?
            .output("ref", 0)?
            .input("out", 0)?
            .parse(spec)
            .context("cannot build the psnr/ssim filter graph")?;
        graph
            .validate()
            .context("cannot configure the psnr/ssim filter graph")?;
        Ok(Self { graph })
    }

    fn push(
        &mut self,
        main: &ff::frame::Video,
        reference: &ff::frame::Video,
        rows: &mut [FrameRow],
    ) -> Result<()> {
        self.ctx("main")?.source().add(main)?;
        self.ctx("ref")?.source().add(reference)?;
        self.pull(rows)
    }

    fn finish(&mut self, rows: &mut [FrameRow]) -> Result<()> {
        self.ctx("main")?.source().flush()?;
        self.ctx("ref")?.source().flush()?;
        self.pull(rows)
    }

    fn ctx(&mut self, name: &str) -> Result<ff::filter::Context> {
        self.graph
            .get(name)
            .ok_or_else(|| anyhow!("filter {name} missing from the graph"))
    }

    fn pull(&mut self, rows: &mut [FrameRow]) -> Result<()> {
        let mut out = ff::frame::Video::empty();
        let mut sink = self.ctx("out")?;
        while sink.sink().frame(&mut out).is_ok() {
            let Some(row) = out
                .pts()
                .and_then(|p| usize::try_from(p).ok())
                .and_then(|i| rows.get_mut(i))
            else {
                continue;
            };
            let md = out.metadata();
            let num = |k: &str| md.get(k).and_then(|v| v.trim().parse::<f64>().ok());
            row.mse_y = num("lavfi.psnr.mse.y");
            row.mse_u = num("lavfi.psnr.mse.u");
            row.mse_v = num("lavfi.psnr.mse.v");
            row.ssim_y = num("lavfi.ssim.Y");
            row.ssim_all = num("lavfi.ssim.All");
        }
        Ok(())
    }
}
