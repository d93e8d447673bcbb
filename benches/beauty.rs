//! Cost of the `showmixbeauty` filter per frame (showroom levels, single thread) next to
//! ffmpeg's `bilateral` filter on the same frames, at 1280x720 and 1920x1080.
//!
//! Frames are the face test photograph (tests/data) stretched to the frame size. Two
//! showmix figures are measured with criterion: `algo` (the pixel processor alone, on plane
//! slices) and `element` (a buffer pushed through the GStreamer element: mapping and the
//! base-class path included; this is the figure compared). ffmpeg runs on N raw yuv420p
//! frames from a temp file with `-threads 1 -filter_threads 1`, once with the bilateral
//! filter and once with `-vf null`; its per-frame filter cost is the difference of the child
//! processes' user CPU time (getrusage(RUSAGE_CHILDREN)), best of a few runs, divided by N.
//! A summary table is printed at the end.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use gst::prelude::*;
use gst_video::prelude::*;
use gstshowmixbeauty::algo::{Beauty, Chroma, Levels, Planes};

const SIZES: [(usize, usize); 2] = [(1280, 720), (1920, 1080)];
const SHOWROOM: [(&str, f64); 4] = [
    ("smoothness", 0.6),
    ("lightening", 0.3),
    ("redness", 0.2),
    ("sharpness", 0.3),
];

/// A tightly packed I420 frame.
#[derive(Clone)]
struct Frame {
    w: usize,
    h: usize,
    data: Vec<u8>,
}

impl Frame {
    fn planes(&mut self) -> Planes<'_> {
        let (w, h) = (self.w, self.h);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (y, rest) = self.data.split_at_mut(w * h);
        let (u, v) = rest.split_at_mut(cw * ch);
        Planes {
            y,
            y_stride: w,
            chroma: Chroma::Planar {
                u,
                u_stride: cw,
                v,
                v_stride: cw,
            },
        }
    }
}

fn face_rgb() -> (Vec<u8>, usize, usize) {
    let path = showmix_tests::testdata("face-astronaut-512.png");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let step = info.color_type.samples();
    let rgb = buf[..w * h * step]
        .chunks_exact(step)
        .flat_map(|p| [p[0], p[1 % step], p[2 % step]])
        .collect();
    (rgb, w, h)
}

/// The face photograph stretched (bilinear) to w×h, BT.601 limited-range I420.
fn make_frame(w: usize, h: usize) -> Frame {
    let (rgb, sw, sh) = face_rgb();
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut data = vec![0u8; w * h + 2 * cw * ch];
    let mut cu = vec![0f32; cw * ch];
    let mut cv = vec![0f32; cw * ch];
    let mut cn = vec![0f32; cw * ch];
    for y in 0..h {
        let fy = ((y as f32 + 0.5) * sh as f32 / h as f32 - 0.5).clamp(0.0, (sh - 1) as f32);
        let (y0, wy) = (fy as usize, fy - fy.floor());
        let y1 = (y0 + 1).min(sh - 1);
        for x in 0..w {
            let fx = ((x as f32 + 0.5) * sw as f32 / w as f32 - 0.5).clamp(0.0, (sw - 1) as f32);
            let (x0, wx) = (fx as usize, fx - fx.floor());
            let x1 = (x0 + 1).min(sw - 1);
            let px = |xx: usize, yy: usize, c: usize| rgb[(yy * sw + xx) * 3 + c] as f32;
            let s = |c: usize| {
                let top = px(x0, y0, c) + wx * (px(x1, y0, c) - px(x0, y0, c));
                let bot = px(x0, y1, c) + wx * (px(x1, y1, c) - px(x0, y1, c));
                top + wy * (bot - top)
            };
            let (r, g, b) = (s(0), s(1), s(2));
            data[y * w + x] = (16.0 + 0.2568 * r + 0.5041 * g + 0.0979 * b).round() as u8;
            let c = (y / 2) * cw + x / 2;
            cu[c] += 128.0 - 0.1482 * r - 0.2910 * g + 0.4392 * b;
            cv[c] += 128.0 + 0.4392 * r - 0.3678 * g - 0.0714 * b;
            cn[c] += 1.0;
        }
    }
    for i in 0..cw * ch {
        data[w * h + i] = (cu[i] / cn[i]).round() as u8;
        data[w * h + cw * ch + i] = (cv[i] / cn[i]).round() as u8;
    }
    Frame { w, h, data }
}

/// The element between two plain pads: buffers pushed into it are processed synchronously in
/// the calling thread; the sink pad hands each buffer back so the next frame reuses it, as a
/// buffer pool would (allocating and freeing 1-3 MB per frame would otherwise be timed).
struct ElementRig {
    element: gst::Element,
    src: gst::Pad,
    info: gst_video::VideoInfo,
    _sink: gst::Pad,
    returned: mpsc::Receiver<gst::Buffer>,
}

impl ElementRig {
    fn new(w: usize, h: usize) -> ElementRig {
        let mut builder = gst::ElementFactory::make("showmixbeauty");
        for (k, v) in SHOWROOM {
            builder = builder.property(k, v);
        }
        let element = builder.build().expect("showmixbeauty element");
        let (tx, rx) = mpsc::channel();
        let src = gst::Pad::builder(gst::PadDirection::Src)
            .name("src")
            .build();
        let sink = gst::Pad::builder(gst::PadDirection::Sink)
            .name("sink")
            .chain_function(move |_, _, buffer| {
                let _ = tx.send(buffer);
                Ok(gst::FlowSuccess::Ok)
            })
            .build();
        src.link(&element.static_pad("sink").unwrap()).unwrap();
        element.static_pad("src").unwrap().link(&sink).unwrap();
        src.set_active(true).unwrap();
        sink.set_active(true).unwrap();
        element.set_state(gst::State::Playing).unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w as u32, h as u32)
            .fps(gst::Fraction::new(30, 1))
            .build()
            .unwrap();
        assert!(src.push_event(gst::event::StreamStart::new("beauty-bench")));
        assert!(src.push_event(gst::event::Caps::new(&info.to_caps().unwrap())));
        assert!(
            src.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                gst::ClockTime,
            >::new()))
        );
        ElementRig {
            element,
            src,
            info,
            _sink: sink,
            returned: rx,
        }
    }

    /// A buffer (the one handed back by the last push, else a new one) holding the frame in
    /// GStreamer's I420 layout (untimed setup).
    fn buffer(&self, frame: &Frame) -> gst::Buffer {
        let mut buffer = self
            .returned
            .try_recv()
            .unwrap_or_else(|_| gst::Buffer::with_size(self.info.size()).unwrap());
        {
            let buf = buffer.get_mut().unwrap();
            let mut vf =
                gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &self.info).unwrap();
            let (w, h) = (frame.w, frame.h);
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let strides: Vec<usize> = vf.plane_stride().iter().map(|&s| s as usize).collect();
            let [p0, p1, p2, _] = vf.planes_data_mut();
            let (y, rest) = frame.data.split_at(w * h);
            let (u, v) = rest.split_at(cw * ch);
            for r in 0..h {
                p0[r * strides[0]..][..w].copy_from_slice(&y[r * w..][..w]);
            }
            for r in 0..ch {
                p1[r * strides[1]..][..cw].copy_from_slice(&u[r * cw..][..cw]);
                p2[r * strides[2]..][..cw].copy_from_slice(&v[r * cw..][..cw]);
            }
        }
        buffer
    }
}

impl Drop for ElementRig {
    fn drop(&mut self) {
        let _ = self.element.set_state(gst::State::Null);
    }
}

thread_local! {
    /// Timed totals per (kind, size): (time, frames), for the summary table.
    static TOTALS: RefCell<BTreeMap<(String, String), (Duration, u64)>> =
        const { RefCell::new(BTreeMap::new()) };
}

fn record(kind: &str, size: &str, d: Duration, n: u64) {
    TOTALS.with(|t| {
        let mut t = t.borrow_mut();
        let e = t.entry((kind.into(), size.into())).or_default();
        e.0 += d;
        e.1 += n;
    });
}

fn ms_per_frame(kind: &str, size: &str) -> Option<f64> {
    TOTALS.with(|t| {
        t.borrow()
            .get(&(kind.into(), size.into()))
            .map(|(d, n)| d.as_secs_f64() * 1e3 / *n as f64)
    })
}

/// Run ffmpeg over the raw file with `vf`; returns (user CPU time, wall time).
fn ffmpeg_run(
    path: &std::path::Path,
    w: usize,
    h: usize,
    vf: &str,
) -> Option<(Duration, Duration)> {
    let before = showmix_tests::children_cpu().0;
    let start = Instant::now();
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-loglevel", "error"])
        .args(["-threads", "1", "-filter_threads", "1"])
        .args([
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-s",
            &format!("{w}x{h}"),
        ])
        .arg("-i")
        .arg(path)
        .args(["-vf", vf, "-f", "null", "-"])
        .stdin(Stdio::null())
        .status()
        .ok()?;
    let wall = start.elapsed();
    if !status.success() {
        return None;
    }
    let user = showmix_tests::children_cpu().0.saturating_sub(before);
    Some((user, wall))
}

/// ffmpeg bilateral ms/frame (user CPU, bilateral minus null, best of `reps`).
fn ffmpeg_bilateral_ms(frame: &Frame, frames: usize, reps: usize) -> Option<f64> {
    let mut file = tempfile::NamedTempFile::new().ok()?;
    for _ in 0..frames {
        file.write_all(&frame.data).ok()?;
    }
    file.flush().ok()?;
    let (w, h) = (frame.w, frame.h);
    let best = |vf: &str| -> Option<Duration> {
        (0..reps)
            .map(|_| ffmpeg_run(file.path(), w, h, vf).map(|r| r.0))
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .min()
    };
    let bilateral = best("bilateral=sigmaS=4:sigmaR=0.1")?;
    let null = best("null")?;
    Some(bilateral.saturating_sub(null).as_secs_f64() * 1e3 / frames as f64)
}

fn bench(c: &mut Criterion) {
    gst::init().unwrap();
    gstshowmixbeauty::plugin_register_static().unwrap();
    let mut group = c.benchmark_group("beauty");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (w, h) in SIZES {
        let size = format!("{w}x{h}");
        let frame = make_frame(w, h);

        let mut beauty = Beauty::new(w, h);
        group.bench_function(BenchmarkId::new("algo", &size), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut work = frame.clone();
                for _ in 0..iters {
                    work.data.copy_from_slice(&frame.data);
                    let start = Instant::now();
                    beauty.process(work.planes(), &Levels::SHOWROOM).unwrap();
                    total += start.elapsed();
                }
                record("algo", &size, total, iters);
                total
            })
        });

        let rig = ElementRig::new(w, h);
        group.bench_function(BenchmarkId::new("element", &size), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let buffer = rig.buffer(&frame);
                    let start = Instant::now();
                    rig.src.push(buffer).unwrap();
                    total += start.elapsed();
                }
                record("element", &size, total, iters);
                total
            })
        });
        let processed: u64 = rig.element.property("frames-processed");
        assert!(processed > 0, "the element processed no frame");
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();

    println!();
    println!("ffmpeg bilateral: per-frame user CPU time, (bilateral - null) / N, best of 3 runs");
    let mut rows = Vec::new();
    for (w, h) in SIZES {
        let size = format!("{w}x{h}");
        let frame = make_frame(w, h);
        let n = if w * h > 1_000_000 { 40 } else { 60 };
        let ff = ffmpeg_bilateral_ms(&frame, n, 3);
        rows.push((size, ff));
    }
    println!();
    println!(
        "showmixbeauty (showroom levels, 1 thread) vs ffmpeg bilateral=sigmaS=4:sigmaR=0.1 (1 thread)"
    );
    println!(
        "{:<11} {:>14} {:>14} {:>16} {:>8}  target <= 0.20",
        "resolution", "element ms/fr", "algo ms/fr", "bilateral ms/fr", "ratio"
    );
    for (size, ff) in rows {
        let el = ms_per_frame("element", &size);
        let al = ms_per_frame("algo", &size);
        let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
        let ratio = match (el, ff) {
            (Some(e), Some(f)) if f > 0.0 => Some(e / f),
            _ => None,
        };
        println!(
            "{:<11} {:>14} {:>14} {:>16} {:>8}  {}",
            size,
            fmt(el),
            fmt(al),
            fmt(ff),
            ratio.map_or("n/a".into(), |r| format!("{r:.3}")),
            match ratio {
                Some(r) if r <= 0.2 => "met",
                Some(_) => "MISSED",
                None => "?",
            }
        );
    }
}
