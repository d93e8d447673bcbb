//! Picture-quality tests of `showmixbeauty` on the face photograph, through real GStreamer
//! (gst_check::Harness): smoothing acts on skin and spares detail, lightening, redness and
//! sharpening move the right statistics in the right boxes, monotonically with the level.
//! Before/after images are written to `<target>/beauty/` for a person to look at.

mod common;

use common::*;
use gst::prelude::*;
use gst_video::VideoFormat;

fn smooth(level: f64) -> Yuv {
    run(&face(), VideoFormat::I420, &[("smoothness", level)])
}

#[test]
fn smoothing_flattens_skin_and_keeps_detail() {
    let regions = regions();
    let input = face();
    let e0 = hf_energy_all(&input, &regions.skin);
    let mut last = e0;
    for level in [0.25, 0.5, 0.75, 1.0] {
        let out = smooth(level);
        let e = hf_energy_all(&out, &regions.skin);
        let drop = 1.0 - e / e0;
        println!(
            "smoothness {level}: skin HF {e0:.3} -> {e:.3} (drop {:.0}%)",
            drop * 100.0
        );
        for r in &regions.skin {
            println!(
                "  {:14} HF {:.3} -> {:.3}",
                r.name,
                hf_energy(&input, r),
                hf_energy(&out, r)
            );
        }
        for r in regions.facial_detail.iter().chain(&regions.not_skin) {
            println!("  {:14} SSIM {:.4}", r.name, ssim(&input, &out, r));
        }
        assert!(e < last, "smoothing must grow with the level ({level})");
        last = e;
        if level == 0.5 {
            assert!(drop >= 0.20, "skin HF drop at 0.5: {drop:.3}");
        }
        if level == 1.0 {
            assert!(drop >= 0.50, "skin HF drop at 1.0: {drop:.3}");
            for r in &regions.facial_detail {
                let s = ssim(&input, &out, r);
                assert!(s >= 0.90, "{}: SSIM {s:.4}", r.name);
            }
            for r in &regions.not_skin {
                let s = ssim(&input, &out, r);
                assert!(s >= 0.97, "{}: SSIM {s:.4}", r.name);
            }
            let path = save_side_by_side("smoothness-1.0.png", &input, &out);
            println!("wrote {}", path.display());
        }
    }
}

#[test]
fn showroom_preset_before_after() {
    let input = face();
    let out = run(&input, VideoFormat::I420, SHOWROOM);
    let path = save_side_by_side("showroom.png", &input, &out);
    println!("wrote {}", path.display());
    // Also a crop of the face at 2× for a closer look.
    let crop = |img: &Yuv| {
        let mut c = Yuv {
            w: 160,
            h: 160,
            y: vec![0; 160 * 160],
            u: vec![0; 80 * 80],
            v: vec![0; 80 * 80],
        };
        for y in 0..160 {
            for x in 0..160 {
                c.y[y * 160 + x] = img.yat(150 + x, 30 + y);
            }
        }
        for y in 0..80 {
            for x in 0..80 {
                c.u[y * 80 + x] = img.u[(15 + y) * img.cw() + 75 + x];
                c.v[y * 80 + x] = img.v[(15 + y) * img.cw() + 75 + x];
            }
        }
        c.resized(320, 320)
    };
    let path = save_side_by_side("showroom-face-2x.png", &crop(&input), &crop(&out));
    println!("wrote {}", path.display());
}

#[test]
fn lightening_raises_skin_luma_without_clipping() {
    let regions = regions();
    let input = face();
    let white = |img: &Yuv| img.y.iter().filter(|&&p| p >= 235).count() as f64 / img.y.len() as f64;
    let (m0, w0) = (mean_luma(&input, &regions.skin), white(&input));
    for contrast in ["low", "normal", "high"] {
        let mut last = m0;
        for level in [0.25, 0.5, 0.75, 1.0] {
            let mut h = harness(
                VideoFormat::I420,
                input.w,
                input.h,
                &[("lightening", level)],
            );
            h.element()
                .unwrap()
                .set_property_from_str("lightening-contrast", contrast);
            let out = h
                .push_and_pull(to_buffer(&input, VideoFormat::I420))
                .unwrap();
            let out = from_buffer(&out, VideoFormat::I420, input.w, input.h);
            let (m, w) = (mean_luma(&out, &regions.skin), white(&out));
            println!(
                "lightening {level} {contrast}: skin Y {m0:.1} -> {m:.1}, white {:.3}% -> {:.3}%",
                w0 * 100.0,
                w * 100.0
            );
            assert!(m > last + 0.5, "skin luma must rise with the level");
            assert!(
                w - w0 <= 0.01,
                "clipped {:.3}% more to white",
                (w - w0) * 100.0
            );
            last = m;
            if level == 1.0 && contrast == "normal" {
                save_side_by_side("lightening-1.0.png", &input, &out);
            }
        }
    }
}

#[test]
fn redness_warms_skin_only() {
    let regions = regions();
    let input = face();
    let cr0 = mean_cr(&input, &regions.skin);
    let mut last = cr0;
    for level in [0.25, 0.5, 1.0] {
        let out = run(&input, VideoFormat::I420, &[("redness", level)]);
        let cr = mean_cr(&out, &regions.skin);
        println!("redness {level}: skin Cr {cr0:.2} -> {cr:.2}");
        assert!(cr > last + 0.5, "skin Cr must rise with the level");
        last = cr;
        assert_eq!(out.y, input.y, "redness leaves luma alone");
        for r in &regions.not_skin {
            let d = chroma_change(&input, &out, r);
            println!("  {:14} chroma change {d:.3}", r.name);
            assert!(d <= 1.0, "{}: chroma changed by {d:.3} on average", r.name);
        }
        if level == 1.0 {
            save_side_by_side("redness-1.0.png", &input, &out);
        }
    }
}

#[test]
fn sharpening_adds_detail_off_skin() {
    let regions = regions();
    let input = face();
    let e0 = hf_energy_all(&input, &regions.not_skin);
    let s0 = hf_energy_all(&input, &regions.skin);
    let mut last = e0;
    for level in [0.25, 0.5, 1.0] {
        let out = run(&input, VideoFormat::I420, &[("sharpness", level)]);
        let e = hf_energy_all(&out, &regions.not_skin);
        let s = hf_energy_all(&out, &regions.skin);
        println!("sharpness {level}: not-skin HF {e0:.3} -> {e:.3}, skin HF {s0:.3} -> {s:.3}");
        assert!(e > last * 1.05, "not-skin HF must rise with the level");
        last = e;
        if level == 1.0 {
            save_side_by_side("sharpness-1.0.png", &input, &out);
        }
    }
}

#[test]
fn skin_mask_off_smooths_everything() {
    let regions = regions();
    let input = face();
    let masked = run(&input, VideoFormat::I420, &[("smoothness", 1.0)]);
    let mut h = harness(VideoFormat::I420, input.w, input.h, &[("smoothness", 1.0)]);
    h.element().unwrap().set_property("skin-mask", false);
    let out = h
        .push_and_pull(to_buffer(&input, VideoFormat::I420))
        .unwrap();
    let unmasked = from_buffer(&out, VideoFormat::I420, input.w, input.h);
    let e0 = hf_energy_all(&input, &regions.not_skin);
    let (em, eu) = (
        hf_energy_all(&masked, &regions.not_skin),
        hf_energy_all(&unmasked, &regions.not_skin),
    );
    println!("not-skin HF {e0:.3}: masked {em:.3}, unmasked {eu:.3}");
    assert!(em > 0.95 * e0, "the mask keeps not-skin detail");
    assert!(
        eu < 0.9 * e0,
        "without the mask smoothing reaches not-skin areas"
    );
}
