//! `showmixscale` in real GStreamer pipelines: caps negotiation to the size downstream asks
//! for (formats, colorimetry and frame rate kept), passthrough at equal size, odd and tiny
//! sizes, refusal of formats it does not handle, and the picture it produces (tile colours
//! land where they should, against videoscale on the same frame).

use gst::prelude::*;

fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstshowmixscale::plugin_register_static().unwrap();
    });
}

/// Runs `videotestsrc num-buffers=2 pattern=… ! caps_in ! <scaler> ! caps_out ! appsink` and
/// returns the caps and the mapped bytes of the last sample.
fn run(
    scaler: &str,
    pattern: &str,
    caps_in: &str,
    caps_out: &str,
) -> Result<(gst::Caps, Vec<u8>), String> {
    init();
    let desc = format!(
        "videotestsrc num-buffers=2 pattern={pattern} ! {caps_in} ! {scaler} name=s ! {caps_out} ! appsink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let mut last = None;
    let bus = pipeline.bus().unwrap();
    while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(5)) {
        last = Some(s);
    }
    let err = bus
        .iter_filtered(&[gst::MessageType::Error])
        .next()
        .and_then(|m| match m.view() {
            gst::MessageView::Error(e) => Some(format!("{} ({:?})", e.error(), e.debug())),
            _ => None,
        });
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(e) = err {
        return Err(e);
    }
    let sample = last.ok_or("no sample")?;
    let caps = sample.caps().ok_or("no caps")?.to_owned();
    let buf = sample.buffer().ok_or("no buffer")?;
    let map = buf.map_readable().map_err(|e| e.to_string())?;
    Ok((caps, map.to_vec()))
}

fn size(caps: &gst::Caps) -> (i32, i32) {
    let s = caps.structure(0).unwrap();
    (s.get("width").unwrap(), s.get("height").unwrap())
}

#[test]
fn scales_to_the_size_downstream_asks_for_and_keeps_the_rest() {
    for format in ["I420", "YV12", "Y42B", "Y444"] {
        let (caps, data) = run(
            "showmixscale",
            "smpte",
            &format!("video/x-raw,format={format},width=1280,height=720,framerate=30/1,colorimetry=bt709,chroma-site=mpeg2"),
            "video/x-raw,width=854,height=480",
        )
        .unwrap();
        let s = caps.structure(0).unwrap();
        assert_eq!(size(&caps), (854, 480), "{format}");
        assert_eq!(s.get::<&str>("format").unwrap(), format);
        assert_eq!(s.get::<&str>("colorimetry").unwrap(), "bt709");
        assert_eq!(s.get::<&str>("chroma-site").unwrap(), "mpeg2");
        assert_eq!(
            s.get::<gst::Fraction>("framerate").unwrap(),
            gst::Fraction::new(30, 1)
        );
        let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
        assert_eq!(data.len(), info.size(), "{format}");
    }
}

#[test]
fn equal_sizes_pass_through_untouched() {
    let caps = "video/x-raw,format=I420,width=320,height=240,framerate=30/1";
    let (_, direct) = run("identity", "ball", caps, caps).unwrap();
    let (_, scaled) = run("showmixscale", "ball", caps, caps).unwrap();
    assert_eq!(direct, scaled);
}

#[test]
fn odd_and_tiny_sizes_negotiate_and_flow() {
    for (w, h, ow, oh) in [
        (641, 361, 427, 241),
        (2, 2, 1, 1),
        (1, 1, 7, 5),
        (1280, 720, 3840, 2160),
    ] {
        let (caps, data) = run(
            "showmixscale",
            "snow",
            &format!("video/x-raw,format=I420,width={w},height={h},framerate=30/1"),
            &format!("video/x-raw,width={ow},height={oh}"),
        )
        .unwrap_or_else(|e| panic!("{w}x{h} -> {ow}x{oh}: {e}"));
        assert_eq!(size(&caps), (ow, oh));
        assert_eq!(
            data.len(),
            gst_video::VideoInfo::from_caps(&caps).unwrap().size()
        );
    }
}

#[test]
fn unsupported_formats_are_refused_at_negotiation() {
    let e = run(
        "showmixscale",
        "smpte",
        "video/x-raw,format=NV12,width=64,height=64,framerate=30/1",
        "video/x-raw,width=32,height=32",
    )
    .unwrap_err();
    assert!(
        e.contains("can't handle caps") || e.contains("not-negotiated"),
        "{e}"
    );
}

/// Mean of a luma rectangle and the chroma under it, from an I420 frame.
fn mean_yuv(
    data: &[u8],
    w: usize,
    h: usize,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
) -> [f64; 3] {
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w as u32, h as u32)
        .build()
        .unwrap();
    let mut out = [0.0; 3];
    for (p, o) in out.iter_mut().enumerate() {
        let stride = info.stride()[p] as usize;
        let off = info.offset()[p];
        let div = if p == 0 { 1 } else { 2 };
        let (mut sum, mut n) = (0.0, 0.0);
        for y in y0 / div..y1 / div {
            for x in x0 / div..x1 / div {
                sum += data[off + y * stride + x] as f64;
                n += 1.0;
            }
        }
        *o = sum / n;
    }
    out
}

#[test]
fn bars_keep_their_place_and_colour() {
    // SMPTE bars at 1280x720 → 854x480: the middle of each of the seven top bars has the
    // source bar's colour within a code value (no shift, no colour conversion: videoscale
    // here re-matrixes bt709 to the caps' default and moves colours by up to 29 codes).
    let caps_in = "video/x-raw,format=I420,width=1280,height=720,framerate=30/1";
    let caps_out = "video/x-raw,width=854,height=480";
    let (_, ours) = run("showmixscale", "smpte", caps_in, caps_out).unwrap();
    let (_, source) = run("identity", "smpte", caps_in, caps_in).unwrap();
    for bar in 0..7 {
        let (cx, sx) = ((bar * 2 + 1) * 854 / 14, (bar * 2 + 1) * 1280 / 14);
        let a = mean_yuv(&ours, 854, 480, (cx - 20, 100, cx + 20, 200));
        let b = mean_yuv(&source, 1280, 720, (sx - 30, 150, sx + 30, 300));
        for p in 0..3 {
            assert!(
                (a[p] - b[p]).abs() <= 1.0,
                "bar {bar} plane {p}: {a:?} vs source {b:?}"
            );
        }
    }
}

#[test]
fn filters_are_properties_changeable_while_playing() {
    init();
    let el = gst::ElementFactory::make("showmixscale").build().unwrap();
    assert_eq!(
        el.property_value("luma-filter")
            .get::<gstshowmixscale::Filter>()
            .unwrap(),
        gstshowmixscale::Filter::CatmullRom
    );
    assert_eq!(
        el.property_value("chroma-filter")
            .get::<gstshowmixscale::Filter>()
            .unwrap(),
        gstshowmixscale::Filter::Lanczos3
    );
    el.set_property_from_str("luma-filter", "lanczos3");
    assert_eq!(
        el.property_value("luma-filter")
            .get::<gstshowmixscale::Filter>()
            .unwrap(),
        gstshowmixscale::Filter::Lanczos3
    );
    let pspec = el.find_property("chroma-filter").unwrap();
    assert!(pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING));
    // Bilinear and Lanczos give different pictures of the same bars: the property is used.
    let caps_in = "video/x-raw,format=I420,width=1280,height=720,framerate=30/1";
    let caps_out = "video/x-raw,width=640,height=360";
    let (_, a) = run(
        "showmixscale luma-filter=bilinear",
        "pinwheel",
        caps_in,
        caps_out,
    )
    .unwrap();
    let (_, b) = run(
        "showmixscale luma-filter=lanczos3",
        "pinwheel",
        caps_in,
        caps_out,
    )
    .unwrap();
    let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert!(differing > 1000, "only {differing} bytes differ");
}
