//! Shared helpers of the beauty tests: the face test image as I420, the regions file, frames
//! in and out of GStreamer buffers, image metrics (high-frequency energy, SSIM) and PNG output
//! under `<target>/beauty/`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Once;

use gst_check::Harness;
use gst_video::prelude::*;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstshowmixbeauty::plugin_register_static().unwrap();
    });
}

/// An 8-bit 4:2:0 frame with tightly packed planes.
#[derive(Clone, Debug, PartialEq)]
pub struct Yuv {
    pub w: usize,
    pub h: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl Yuv {
    pub fn cw(&self) -> usize {
        self.w.div_ceil(2)
    }
    pub fn ch(&self) -> usize {
        self.h.div_ceil(2)
    }
    pub fn yat(&self, x: usize, y: usize) -> u8 {
        self.y[y * self.w + x]
    }

    /// BT.601 limited-range conversion of packed RGB, chroma averaged over 2×2 blocks.
    pub fn from_rgb(rgb: &[u8], w: usize, h: usize) -> Yuv {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut out = Yuv {
            w,
            h,
            y: vec![0; w * h],
            u: vec![0; cw * ch],
            v: vec![0; cw * ch],
        };
        let mut su = vec![0f32; cw * ch];
        let mut sv = vec![0f32; cw * ch];
        let mut n = vec![0f32; cw * ch];
        for yy in 0..h {
            for xx in 0..w {
                let p = &rgb[(yy * w + xx) * 3..][..3];
                let (r, g, b) = (p[0] as f32, p[1] as f32, p[2] as f32);
                let y = 16.0 + 0.256_789 * r + 0.504_129 * g + 0.097_906 * b;
                let u = 128.0 - 0.148_223 * r - 0.290_992 * g + 0.439_215 * b;
                let v = 128.0 + 0.439_215 * r - 0.367_789 * g - 0.071_426 * b;
                out.y[yy * w + xx] = y.round().clamp(0.0, 255.0) as u8;
                let c = (yy / 2) * cw + xx / 2;
                su[c] += u;
                sv[c] += v;
                n[c] += 1.0;
            }
        }
        for i in 0..cw * ch {
            out.u[i] = (su[i] / n[i]).round().clamp(0.0, 255.0) as u8;
            out.v[i] = (sv[i] / n[i]).round().clamp(0.0, 255.0) as u8;
        }
        out
    }

    /// Packed RGB (nearest chroma), for PNG output.
    pub fn to_rgb(&self) -> Vec<u8> {
        let cw = self.cw();
        let mut rgb = Vec::with_capacity(self.w * self.h * 3);
        for yy in 0..self.h {
            for xx in 0..self.w {
                let c = (yy / 2) * cw + xx / 2;
                let y = 1.164_383 * (self.y[yy * self.w + xx] as f32 - 16.0);
                let u = self.u[c] as f32 - 128.0;
                let v = self.v[c] as f32 - 128.0;
                let r = y + 1.596_027 * v;
                let g = y - 0.391_762 * u - 0.812_968 * v;
                let b = y + 2.017_232 * u;
                for ch in [r, g, b] {
                    rgb.push(ch.round().clamp(0.0, 255.0) as u8);
                }
            }
        }
        rgb
    }

    /// Bilinear resize (all planes), used to make frames of other sizes from the face image.
    pub fn resized(&self, w: usize, h: usize) -> Yuv {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        Yuv {
            w,
            h,
            y: resize_plane(&self.y, self.w, self.h, w, h),
            u: resize_plane(&self.u, self.cw(), self.ch(), cw, ch),
            v: resize_plane(&self.v, self.cw(), self.ch(), cw, ch),
        }
    }
}

pub fn resize_plane(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
    let mut out = vec![0u8; dw * dh];
    for y in 0..dh {
        let fy = ((y as f32 + 0.5) * sh as f32 / dh as f32 - 0.5).clamp(0.0, (sh - 1) as f32);
        let y0 = fy as usize;
        let y1 = (y0 + 1).min(sh - 1);
        let wy = fy - y0 as f32;
        for x in 0..dw {
            let fx = ((x as f32 + 0.5) * sw as f32 / dw as f32 - 0.5).clamp(0.0, (sw - 1) as f32);
            let x0 = fx as usize;
            let x1 = (x0 + 1).min(sw - 1);
            let wx = fx - x0 as f32;
            let p = |xx: usize, yy: usize| src[yy * sw + xx] as f32;
            let top = p(x0, y0) + wx * (p(x1, y0) - p(x0, y0));
            let bot = p(x0, y1) + wx * (p(x1, y1) - p(x0, y1));
            out[y * dw + x] = (top + wy * (bot - top)).round() as u8;
        }
    }
    out
}

pub fn testdata_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

/// The 512×512 face photograph as I420.
pub fn face() -> Yuv {
    let path = testdata_dir().join("face-astronaut-512.png");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let rgb: Vec<u8> = match info.color_type {
        png::ColorType::Rgb => buf[..w * h * 3].to_vec(),
        png::ColorType::Rgba => buf[..w * h * 4]
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        png::ColorType::Grayscale => buf[..w * h].iter().flat_map(|&g| [g, g, g]).collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    Yuv::from_rgb(&rgb, w, h)
}

/// A named box `(x, y, w, h)` of the regions file.
#[derive(Clone, Debug)]
pub struct Region {
    pub name: String,
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

pub struct Regions {
    pub skin: Vec<Region>,
    pub facial_detail: Vec<Region>,
    pub not_skin: Vec<Region>,
}

pub fn regions() -> Regions {
    let path = testdata_dir().join("face-astronaut-512.regions.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let group = |name: &str| -> Vec<Region> {
        json[name]
            .as_object()
            .unwrap_or_else(|| panic!("no group {name}"))
            .iter()
            .map(|(k, v)| {
                let b: Vec<usize> = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_u64().unwrap() as usize)
                    .collect();
                Region {
                    name: k.clone(),
                    x: b[0],
                    y: b[1],
                    w: b[2],
                    h: b[3],
                }
            })
            .collect()
    };
    Regions {
        skin: group("skin"),
        facial_detail: group("facial_detail"),
        not_skin: group("not_skin"),
    }
}

/// Separable [1 4 6 4 1]/16 blur (σ ≈ 1) with clamped edges.
pub fn blur5(p: &[u8], w: usize, h: usize) -> Vec<f32> {
    const K: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
    let mut tmp = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            for (k, c) in K.iter().enumerate() {
                let xx = (x as isize + k as isize - 2).clamp(0, w as isize - 1) as usize;
                s += c * p[y * w + xx] as f32;
            }
            tmp[y * w + x] = s;
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            for (k, c) in K.iter().enumerate() {
                let yy = (y as isize + k as isize - 2).clamp(0, h as isize - 1) as usize;
                s += c * tmp[yy * w + x];
            }
            out[y * w + x] = s;
        }
    }
    out
}

/// High-frequency luma energy in a box: mean |Y - blur(Y)|.
pub fn hf_energy(img: &Yuv, r: &Region) -> f64 {
    let b = blur5(&img.y, img.w, img.h);
    let mut sum = 0.0;
    for y in r.y..r.y + r.h {
        for x in r.x..r.x + r.w {
            sum += (img.yat(x, y) as f32 - b[y * img.w + x]).abs() as f64;
        }
    }
    sum / (r.w * r.h) as f64
}

/// Summed high-frequency energy over several boxes (pixel-weighted mean).
pub fn hf_energy_all(img: &Yuv, rs: &[Region]) -> f64 {
    let n: usize = rs.iter().map(|r| r.w * r.h).sum();
    rs.iter()
        .map(|r| hf_energy(img, r) * (r.w * r.h) as f64)
        .sum::<f64>()
        / n as f64
}

/// Mean SSIM of luma over a box (Gaussian window σ = 1.5, 11×11, standard constants).
pub fn ssim(a: &Yuv, b: &Yuv, r: &Region) -> f64 {
    let (w, h) = (a.w, a.h);
    let k: Vec<f64> = (-5..=5)
        .map(|i: i32| (-(i * i) as f64 / (2.0 * 1.5 * 1.5)).exp())
        .collect();
    let ks: f64 = k.iter().sum();
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let mut total = 0.0;
    for y in r.y..r.y + r.h {
        for x in r.x..r.x + r.w {
            let (mut ma, mut mb, mut saa, mut sbb, mut sab, mut wsum) =
                (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
            for (j, kj) in k.iter().enumerate() {
                let yy = y as isize + j as isize - 5;
                if yy < 0 || yy >= h as isize {
                    continue;
                }
                for (i, ki) in k.iter().enumerate() {
                    let xx = x as isize + i as isize - 5;
                    if xx < 0 || xx >= w as isize {
                        continue;
                    }
                    let wgt = kj * ki / (ks * ks);
                    let idx = yy as usize * w + xx as usize;
                    let (pa, pb) = (a.y[idx] as f64, b.y[idx] as f64);
                    ma += wgt * pa;
                    mb += wgt * pb;
                    saa += wgt * pa * pa;
                    sbb += wgt * pb * pb;
                    sab += wgt * pa * pb;
                    wsum += wgt;
                }
            }
            let (ma, mb) = (ma / wsum, mb / wsum);
            let va = saa / wsum - ma * ma;
            let vb = sbb / wsum - mb * mb;
            let cov = sab / wsum - ma * mb;
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
        }
    }
    total / (r.w * r.h) as f64
}

/// Mean of a plane over a box given in luma coordinates (chroma planes: halved).
pub fn mean_luma(img: &Yuv, rs: &[Region]) -> f64 {
    let (mut s, mut n) = (0.0, 0.0);
    for r in rs {
        for y in r.y..r.y + r.h {
            for x in r.x..r.x + r.w {
                s += img.yat(x, y) as f64;
                n += 1.0;
            }
        }
    }
    s / n
}

/// Chroma samples covered by a luma box.
fn chroma_cells(img: &Yuv, r: &Region) -> impl Iterator<Item = usize> + use<> {
    let cw = img.cw();
    let (x0, x1, y0, y1) = (
        r.x / 2,
        (r.x + r.w).div_ceil(2),
        r.y / 2,
        (r.y + r.h).div_ceil(2),
    );
    (y0..y1).flat_map(move |y| (x0..x1).map(move |x| y * cw + x))
}

pub fn mean_cr(img: &Yuv, rs: &[Region]) -> f64 {
    let (mut s, mut n) = (0.0, 0.0);
    for r in rs {
        for i in chroma_cells(img, r) {
            s += img.v[i] as f64;
            n += 1.0;
        }
    }
    s / n
}

/// Mean absolute chroma change (Cb and Cr averaged) over a box.
pub fn chroma_change(a: &Yuv, b: &Yuv, r: &Region) -> f64 {
    let (mut s, mut n) = (0.0, 0.0);
    for i in chroma_cells(a, r) {
        s += (a.u[i] as f64 - b.u[i] as f64).abs() + (a.v[i] as f64 - b.v[i] as f64).abs();
        n += 2.0;
    }
    s / n
}

/// Output directory for images a person can look at: `<target>/beauty/`.
pub fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("beauty");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

pub fn write_png(name: &str, rgb: &[u8], w: usize, h: usize) -> PathBuf {
    let path = out_dir().join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(rgb).unwrap();
    path
}

/// Before | after side by side.
pub fn save_side_by_side(name: &str, before: &Yuv, after: &Yuv) -> PathBuf {
    let (w, h) = (before.w, before.h);
    let (a, b) = (before.to_rgb(), after.to_rgb());
    let gap = 8;
    let ow = 2 * w + gap;
    let mut rgb = vec![255u8; ow * h * 3];
    for y in 0..h {
        rgb[y * ow * 3..][..w * 3].copy_from_slice(&a[y * w * 3..][..w * 3]);
        rgb[(y * ow + w + gap) * 3..][..w * 3].copy_from_slice(&b[y * w * 3..][..w * 3]);
    }
    write_png(name, &rgb, ow, h)
}

pub fn caps(format: &str, w: usize, h: usize) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", format)
        .field("width", w as i32)
        .field("height", h as i32)
        .field("framerate", gst::Fraction::new(30, 1))
        .build()
}

/// Pack a frame into a buffer of `format` (I420, YV12, NV12 or NV21) with GStreamer's strides.
pub fn to_buffer(img: &Yuv, format: gst_video::VideoFormat) -> gst::Buffer {
    let info = gst_video::VideoInfo::builder(format, img.w as u32, img.h as u32)
        .build()
        .unwrap();
    let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
    {
        let buf = buffer.get_mut().unwrap();
        let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info).unwrap();
        let (cw, ch) = (img.cw(), img.ch());
        let strides: Vec<usize> = frame.plane_stride().iter().map(|&s| s as usize).collect();
        let [p0, p1, p2, _] = frame.planes_data_mut();
        for r in 0..img.h {
            p0[r * strides[0]..][..img.w].copy_from_slice(&img.y[r * img.w..][..img.w]);
        }
        use gst_video::VideoFormat as F;
        for r in 0..ch {
            let (u, v) = (&img.u[r * cw..][..cw], &img.v[r * cw..][..cw]);
            match format {
                F::I420 => {
                    p1[r * strides[1]..][..cw].copy_from_slice(u);
                    p2[r * strides[2]..][..cw].copy_from_slice(v);
                }
                F::Yv12 => {
                    p1[r * strides[1]..][..cw].copy_from_slice(v);
                    p2[r * strides[2]..][..cw].copy_from_slice(u);
                }
                F::Nv12 | F::Nv21 => {
                    let row = &mut p1[r * strides[1]..][..2 * cw];
                    for (i, p) in row.chunks_exact_mut(2).enumerate() {
                        let (a, b) = if format == F::Nv12 {
                            (u[i], v[i])
                        } else {
                            (v[i], u[i])
                        };
                        p[0] = a;
                        p[1] = b;
                    }
                }
                other => panic!("unsupported {other:?}"),
            }
        }
    }
    buffer
}

/// Unpack a buffer of `format` into a tightly packed frame.
pub fn from_buffer(
    buffer: &gst::BufferRef,
    format: gst_video::VideoFormat,
    w: usize,
    h: usize,
) -> Yuv {
    let info = gst_video::VideoInfo::builder(format, w as u32, h as u32)
        .build()
        .unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).unwrap();
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let strides: Vec<usize> = frame.plane_stride().iter().map(|&s| s as usize).collect();
    let [p0, p1, p2, _] = frame.planes_data();
    let mut img = Yuv {
        w,
        h,
        y: vec![0; w * h],
        u: vec![0; cw * ch],
        v: vec![0; cw * ch],
    };
    for r in 0..h {
        img.y[r * w..][..w].copy_from_slice(&p0[r * strides[0]..][..w]);
    }
    use gst_video::VideoFormat as F;
    for r in 0..ch {
        for i in 0..cw {
            let (u, v) = match format {
                F::I420 => (p1[r * strides[1] + i], p2[r * strides[2] + i]),
                F::Yv12 => (p2[r * strides[2] + i], p1[r * strides[1] + i]),
                F::Nv12 => (p1[r * strides[1] + 2 * i], p1[r * strides[1] + 2 * i + 1]),
                F::Nv21 => (p1[r * strides[1] + 2 * i + 1], p1[r * strides[1] + 2 * i]),
                other => panic!("unsupported {other:?}"),
            };
            img.u[r * cw + i] = u;
            img.v[r * cw + i] = v;
        }
    }
    img
}

/// A harness around a fresh `showmixbeauty` with `props` set, negotiated for `format` w×h.
pub fn harness(
    format: gst_video::VideoFormat,
    w: usize,
    h: usize,
    props: &[(&str, f64)],
) -> Harness {
    init();
    let mut h_ = Harness::new("showmixbeauty");
    {
        let el = h_.element().unwrap();
        for (k, v) in props {
            el.set_property(k, v);
        }
    }
    let c = caps(format.to_str(), w, h);
    h_.set_caps(c.clone(), c);
    h_.play();
    h_
}

/// Run one frame through a fresh element with the given levels.
pub fn run(img: &Yuv, format: gst_video::VideoFormat, props: &[(&str, f64)]) -> Yuv {
    let mut h = harness(format, img.w, img.h, props);
    let out = h.push_and_pull(to_buffer(img, format)).unwrap();
    from_buffer(&out, format, img.w, img.h)
}

pub const SHOWROOM: &[(&str, f64)] = &[
    ("smoothness", 0.6),
    ("lightening", 0.3),
    ("redness", 0.2),
    ("sharpness", 0.3),
];
