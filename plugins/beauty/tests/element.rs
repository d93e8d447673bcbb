//! Element-level tests of `showmixbeauty` through real GStreamer (gst_check::Harness):
//! registration and properties, exact pass-through at level 0 (and base-class passthrough),
//! property changes taking effect on the next frame while PLAYING, every supported format,
//! odd / tiny / 4K sizes, and refusal of unsupported caps.

mod common;

use common::*;
use gst::glib;
use gst::prelude::*;
use gst_base::prelude::*;
use gst_video::VideoFormat;

const FORMATS: [VideoFormat; 4] = [
    VideoFormat::I420,
    VideoFormat::Yv12,
    VideoFormat::Nv12,
    VideoFormat::Nv21,
];

fn is_passthrough(h: &gst_check::Harness) -> bool {
    h.element()
        .unwrap()
        .downcast::<gst_base::BaseTransform>()
        .unwrap()
        .is_passthrough()
}

#[test]
fn registers_with_documented_properties() {
    init();
    let factory = gst::ElementFactory::find("showmixbeauty").expect("element registered");
    assert_eq!(factory.plugin_name().as_deref(), Some("showmixbeauty"));
    let el = factory.create().build().unwrap();
    for name in ["smoothness", "lightening", "redness", "sharpness"] {
        let pspec = el.find_property(name).unwrap();
        let p = pspec.downcast_ref::<glib::ParamSpecDouble>().unwrap();
        assert_eq!(
            (p.minimum(), p.maximum(), p.default_value()),
            (0.0, 1.0, 0.0)
        );
        assert!(pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING));
        assert!(!pspec.blurb().unwrap_or_default().is_empty());
    }
    assert!(el.property::<bool>("skin-mask"));
    el.set_property_from_str("lightening-contrast", "high");
    assert_eq!(
        el.property::<gstshowmixbeauty::Contrast>("lightening-contrast"),
        gstshowmixbeauty::Contrast::High
    );
    assert_eq!(el.property::<u64>("frames-processed"), 0);
}

#[test]
fn zero_levels_pass_through_exactly_in_every_format() {
    let input = face();
    for format in FORMATS {
        let mut h = harness(format, input.w, input.h, &[]);
        assert!(
            is_passthrough(&h),
            "{format:?}: all-zero must be passthrough"
        );
        let buf = to_buffer(&input, format);
        let bytes_in = buf.map_readable().unwrap().to_vec();
        let out = h.push_and_pull(buf).unwrap();
        assert_eq!(
            out.map_readable().unwrap().as_slice(),
            &bytes_in[..],
            "{format:?}"
        );
        let el = h.element().unwrap();
        assert_eq!(el.property::<u64>("frames-processed"), 0);
    }
}

#[test]
fn zero_levels_are_exact_even_without_passthrough() {
    // skin-mask off / contrast changes alone do not leave passthrough; levels stay 0.
    let input = face();
    let mut h = harness(VideoFormat::Nv12, input.w, input.h, &[]);
    h.element().unwrap().set_property("skin-mask", false);
    h.element()
        .unwrap()
        .set_property_from_str("lightening-contrast", "low");
    let out = h
        .push_and_pull(to_buffer(&input, VideoFormat::Nv12))
        .unwrap();
    assert_eq!(
        from_buffer(&out, VideoFormat::Nv12, input.w, input.h),
        input
    );
}

#[test]
fn formats_agree_with_each_other() {
    let input = face();
    let reference = run(&input, VideoFormat::I420, SHOWROOM);
    assert_ne!(reference, input, "showroom levels change the picture");
    for format in [VideoFormat::Yv12, VideoFormat::Nv12, VideoFormat::Nv21] {
        assert_eq!(run(&input, format, SHOWROOM), reference, "{format:?}");
    }
}

#[test]
fn property_changes_take_effect_on_the_next_frame() {
    let input = face();
    let format = VideoFormat::I420;
    let mut h = harness(format, input.w, input.h, &[]);
    let el = h.element().unwrap();
    let push = |h: &mut gst_check::Harness| {
        let out = h.push_and_pull(to_buffer(&input, format)).unwrap();
        from_buffer(&out, format, input.w, input.h)
    };

    assert_eq!(push(&mut h), input);
    el.set_property("smoothness", 1.0);
    assert!(!is_passthrough(&h));
    let smoothed = push(&mut h);
    assert_ne!(
        smoothed.y, input.y,
        "smoothness applies to the very next frame"
    );
    assert_eq!(el.property::<u64>("frames-processed"), 1);

    el.set_property("lightening", 0.5);
    let lit = push(&mut h);
    assert!(mean_luma(&lit, &regions().skin) > mean_luma(&smoothed, &regions().skin) + 3.0);

    el.set_property("redness", 1.0);
    let red = push(&mut h);
    assert!(mean_cr(&red, &regions().skin) > mean_cr(&lit, &regions().skin) + 3.0);

    // Back to 0: exact again from the next frame, and passthrough.
    for p in ["smoothness", "lightening", "redness"] {
        el.set_property(p, 0.0);
    }
    assert!(is_passthrough(&h));
    assert_eq!(push(&mut h), input);
    assert_eq!(el.property::<u64>("frames-processed"), 3);
}

#[test]
fn odd_tiny_and_large_sizes() {
    let face = face();
    for (w, h) in [
        (641, 359),
        (2, 2),
        (1, 1),
        (3, 7),
        (17, 2),
        (1921, 1081),
        (3840, 2160),
    ] {
        let input = face.resized(w, h);
        for format in [VideoFormat::I420, VideoFormat::Nv12] {
            // Level 0: exact.
            assert_eq!(run(&input, format, &[]), input, "{format:?} {w}x{h} at 0");
            // Everything on: no panic, right size, and a visible change on real content.
            let mut hr = harness(format, w, h, SHOWROOM);
            let buf = to_buffer(&input, format);
            let size = buf.size();
            let out = hr.push_and_pull(buf).unwrap();
            assert_eq!(out.size(), size, "{format:?} {w}x{h}");
            let out = from_buffer(&out, format, w, h);
            if w * h >= 64 * 64 {
                assert_ne!(out.y, input.y, "{format:?} {w}x{h}");
            }
            let el = hr.element().unwrap();
            assert_eq!(el.property::<u64>("frames-processed"), 1);
        }
    }
}

#[test]
fn refuses_unsupported_caps() {
    init();
    let mut h = gst_check::Harness::new("showmixbeauty");
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "RGBx")
        .field("width", 64i32)
        .field("height", 64i32)
        .field("framerate", gst::Fraction::new(30, 1))
        .build();
    h.set_src_caps(caps);
    h.play();
    let buffer = gst::Buffer::with_size(64 * 64 * 4).unwrap();
    assert_eq!(h.push(buffer), Err(gst::FlowError::NotNegotiated));

    let sink = h.element().unwrap().static_pad("sink").unwrap();
    let templ = sink.pad_template_caps();
    for f in ["I420", "YV12", "NV12", "NV21"] {
        let c = gst::Caps::builder("video/x-raw").field("format", f).build();
        assert!(templ.can_intersect(&c), "{f}");
    }
}

#[test]
fn runs_in_a_parsed_pipeline() {
    init();
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=5 pattern=smpte ! video/x-raw,format=NV12,width=320,height=240 \
         ! showmixbeauty name=b smoothness=0.6 lightening=0.3 redness=0.2 sharpness=0.3 \
           lightening-contrast=high ! fakesink",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("pipeline finished");
    assert_eq!(msg.type_(), gst::MessageType::Eos, "{msg:?}");
    let b = pipeline.by_name("b").unwrap();
    assert_eq!(b.property::<u64>("frames-processed"), 5);
    pipeline.set_state(gst::State::Null).unwrap();
}
