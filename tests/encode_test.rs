//! `showmix encode-test` end to end: real encodes of a short generated 360p source through
//! every codec, read back with ffprobe (not our own code); quality monotone in bitrate; BD-rate
//! of the anchor against itself 0; the HTML report opened in headless Chromium; bad input
//! refused with one line. Every run of the binary has a deadline.

#[path = "browser/driver.rs"]
#[allow(dead_code)] // each user takes the part it needs
mod driver;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use showmix_tests::{motion_clip, run_showmix, video_packets};

const LADDER_360P: &str = r#"description = "encode-test 360p30"
gop_seconds = 1.0
[canvas]
width = 640
height = 360
fps = 30
[video]
codec = "h264"
speed = "veryfast"
[[rungs]]
name = "360p"
width = 640
height = 360
bitrate_kbps = 600
"#;

const CODECS: &str = "h264,h265,av1,vp9,vp8";
const BITRATES: [u32; 3] = [100, 600, 6000];

/// Runs showmix with a deadline; returns (exit code, stdout, stderr).
fn showmix(args: &[&str], deadline: Duration) -> (i32, String, String) {
    run_showmix(args, deadline)
}

struct Experiment {
    _dir: tempfile::TempDir,
    out: PathBuf,
    report: Value,
}

/// One experiment shared by the tests that read its results: 2 s of a moving 360p test
/// picture, every codec at 100, 600 and 6000 kbit/s.
fn experiment() -> &'static Experiment {
    static E: OnceLock<Experiment> = OnceLock::new();
    E.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.mp4");
        motion_clip(&src, "testsrc2", 2.0, 640, 360, 30, 440).unwrap();
        let ladder = dir.path().join("ladder.toml");
        std::fs::write(&ladder, LADDER_360P).unwrap();
        let out = dir.path().join("out");
        let rates: Vec<String> = BITRATES.iter().map(|b| b.to_string()).collect();
        let (code, stdout, stderr) = showmix(
            &[
                "encode-test",
                src.to_str().unwrap(),
                "--ladder",
                ladder.to_str().unwrap(),
                "--codecs",
                CODECS,
                "--bitrates",
                &rates.join(","),
                "--duration",
                "2s",
                "--jobs",
                "2",
                "--out",
                out.to_str().unwrap(),
            ],
            Duration::from_secs(900),
        );
        assert_eq!(code, 0, "encode-test failed:\n{stdout}\n{stderr}");
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        Experiment {
            _dir: dir,
            out,
            report,
        }
    })
}

fn n_codecs() -> usize {
    CODECS.split(',').count()
}

fn encodes(r: &Value) -> &Vec<Value> {
    r["encodes"].as_array().expect("encodes")
}

/// (bytes of video packets, packets) as ffprobe reads the file.
fn ffprobe_video_bytes(path: &Path) -> (u64, u64) {
    let packets = video_packets(path).expect("ffprobe");
    (packets.iter().map(|p| p.size).sum(), packets.len() as u64)
}

#[test]
fn every_codec_encodes_and_its_bitrate_matches_ffprobe() {
    let e = experiment();
    let r = &e.report;
    assert_eq!(r["schema"], "showmix.encode-test");
    assert_eq!(r["schema_version"], 2);
    assert_eq!(r["complete"], true);
    let es = encodes(r);
    assert_eq!(es.len(), n_codecs() * BITRATES.len());
    for enc in es {
        let id = enc["id"].as_str().unwrap();
        assert!(enc["error"].is_null(), "{id}: {}", enc["error"]);
        assert_eq!(enc["frames"], 60, "{id}");
        // Fixed 1 s GOP: keyframes at 0 and 30.
        assert_eq!(enc["keyframe_frames"], serde_json::json!([0, 30]), "{id}");
        let file = e.out.join(enc["file"].as_str().unwrap());
        let (bytes, packets) = ffprobe_video_bytes(&file);
        assert_eq!(packets, 60, "{id}: ffprobe packets");
        let ffprobe_kbps = bytes as f64 * 8.0 / 2.0 / 1000.0;
        let ours = enc["bitrate_kbps"].as_f64().unwrap();
        assert!(
            (ours - ffprobe_kbps).abs() <= ffprobe_kbps * 0.001 + 0.01,
            "{id}: report says {ours} kbit/s, ffprobe's packets {ffprobe_kbps}"
        );
        let speed = &enc["speed_stats"];
        assert!(speed["cpu_seconds"].as_f64().unwrap() > 0.0, "{id}");
        assert!(speed["peak_rss_kib"].as_u64().unwrap() > 1000, "{id}");
        assert!(speed["fps"].as_f64().unwrap() > 0.0, "{id}");
    }
    // frames.csv: a header and one row per frame of every encode.
    let csv = std::fs::read_to_string(e.out.join("frames.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 60 * es.len());
    // VMAF asked for by default and not in Debian's libavfilter: said so.
    let notes = r["notes"].to_string();
    assert!(notes.contains("vmaf"), "{notes}");
}

#[test]
fn quality_rises_with_bitrate_and_bd_rate_against_itself_is_zero() {
    let r = &experiment().report;
    let es = encodes(r);
    for codec in CODECS.split(',') {
        let mut psnr: Vec<(u64, f64)> = es
            .iter()
            .filter(|e| e["codec"] == codec)
            .map(|e| {
                (
                    e["target_kbps"].as_u64().unwrap(),
                    e["psnr_y"].as_f64().unwrap(),
                )
            })
            .collect();
        psnr.sort_by_key(|p| p.0);
        assert_eq!(psnr.len(), BITRATES.len());
        for w in psnr.windows(2) {
            assert!(
                w[1].1 > w[0].1,
                "{codec}: PSNR not rising with bitrate: {psnr:?}"
            );
        }
        assert!(
            psnr[0].1 < 36.0 && psnr[2].1 - psnr[0].1 > 10.0,
            "{codec} at 100 kbit/s is too good: {psnr:?}"
        );
        assert!(
            psnr[2].1 > 40.0,
            "{codec} at 6000 kbit/s is too poor: {psnr:?}"
        );
        // SSIM and YUV PSNR present and sane.
        for e in es.iter().filter(|e| e["codec"] == codec) {
            let ssim = e["ssim"].as_f64().unwrap();
            assert!(ssim > 0.5 && ssim <= 1.0, "{ssim}");
            assert!(e["psnr_yuv"].as_f64().unwrap() > 20.0);
        }
    }
    let bds = r["bd_rates"].as_array().unwrap();
    let anchor = bds
        .iter()
        .find(|b| b["codec"] == "h264" && b["metric"] == "psnr_y")
        .expect("anchor row");
    assert_eq!(anchor["percent"].as_f64(), Some(0.0));
    for b in bds.iter().filter(|b| b["metric"] == "psnr_y") {
        assert!(b["percent"].as_f64().is_some(), "{b}");
    }
    // No VMAF here: VMAF BD-rates are empty with a reason.
    let v = bds
        .iter()
        .find(|b| b["metric"] == "vmaf")
        .expect("vmaf rows");
    assert!(v["percent"].is_null() && v["note"].is_string(), "{v}");
}

#[test]
fn the_html_report_shows_its_charts_in_chromium() {
    driver::check_ready().expect("browser test prerequisites");
    let e = experiment();
    let shot = e.out.join("shot.png");
    let rep = driver::report_page(&e.out.join("report.html"), &shot, 60).unwrap();
    let r = &rep.result;
    assert_eq!(r["ok"], true, "{r}\n{}", rep.log);
    assert_eq!(r["title"], "showmix encode test");
    let imgs = r["images"].as_array().unwrap();
    // rate–distortion, one per-frame chart per codec, CPU.
    assert_eq!(imgs.len(), 1 + n_codecs() + 1, "{r}");
    for i in imgs {
        assert!(i["w"].as_u64().unwrap() > 100, "chart not loaded: {i}");
    }
    // The screenshot is not blank: many pixels that are neither white nor one flat colour.
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let data = &buf[..info.buffer_size()];
    let inked = data
        .chunks(px)
        .filter(|p| p[..3].iter().any(|&c| c < 200))
        .count();
    let total = data.len() / px;
    assert!(
        inked > total / 100,
        "screenshot nearly blank: {inked} of {total} pixels inked"
    );
    let mut colours: Vec<[u8; 3]> = data.chunks(px).map(|p| [p[0], p[1], p[2]]).collect();
    colours.sort();
    colours.dedup();
    assert!(colours.len() > 8, "{} colours only", colours.len());
}

/// A rung whose width is not a multiple of 8 (426 × 240: GStreamer pads such rows) encoded
/// well: a frame layout mismatch between the scaled source and the encoder shears the picture
/// and drops PSNR below 15 dB.
/// One short experiment of its own: 1 s of the moving 360p picture through `ladder_toml`, with
/// `args` after the common ones; returns the output directory (inside the returned temporary
/// directory) and its report.json.
fn one_second_run(
    ladder_toml: &str,
    args: &[&str],
    deadline: Duration,
) -> (tempfile::TempDir, PathBuf, Value) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.mp4");
    motion_clip(&src, "testsrc2", 1.0, 640, 360, 30, 440).unwrap();
    let ladder = dir.path().join("ladder.toml");
    std::fs::write(&ladder, ladder_toml).unwrap();
    let out = dir.path().join("out");
    let mut argv = vec![
        "encode-test",
        src.to_str().unwrap(),
        "--ladder",
        ladder.to_str().unwrap(),
        "--duration",
        "1s",
        "--metrics",
        "psnr",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    argv.extend_from_slice(args);
    let (code, stdout, stderr) = showmix(&argv, deadline);
    assert_eq!(code, 0, "encode-test failed:\n{stdout}\n{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    (dir, out, report)
}

#[test]
fn odd_width_rungs_are_not_sheared() {
    let ladder = LADDER_360P.replace(
        "name = \"360p\"\nwidth = 640\nheight = 360",
        "name = \"240p\"\nwidth = 426\nheight = 240",
    );
    let (_dir, _, report) = one_second_run(
        &ladder,
        &["--codecs", "h264,av1", "--bitrates", "3000"],
        Duration::from_secs(300),
    );
    let es = encodes(&report);
    assert_eq!(es.len(), 2);
    for e in es {
        assert_eq!(e["width"], 426, "{e}");
        let psnr = e["psnr_y"].as_f64().unwrap();
        assert!(psnr > 38.0, "{}: PSNR-Y {psnr} dB at 3 Mbit/s", e["id"]);
    }
}

fn refuses(args: &[&str], message: &str) {
    let (code, _, stderr) = showmix(args, Duration::from_secs(120));
    assert_ne!(code, 0, "showmix {args:?} should fail");
    assert!(
        stderr.contains(message),
        "showmix {args:?}: wanted {message:?} in: {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn bad_input_is_one_line_and_a_non_zero_exit() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let out = out.to_str().unwrap();
    let base = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = ["encode-test", "test:ball", "--duration", "1s", "--out", out]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let check = |extra: &[&'static str], message: &str| {
        let v = base(extra);
        let a: Vec<&str> = v.iter().map(String::as_str).collect();
        refuses(&a, message);
    };
    check(
        &["--codecs", "h264,h266"],
        "unknown codec \"h266\" in --codecs (allowed: h264, h265, av1, vp9, vp8)",
    );
    check(&["--speed", "warp"], "unknown speed preset \"warp\"");
    check(
        &["--metrics", "psnr,lpips"],
        "unknown metric \"lpips\" in --metrics (allowed: psnr, ssim, vmaf)",
    );
    check(
        &["--bitrates", "600,300"],
        "--bitrates is not increasing: 300 comes after 600",
    );
    check(&["--bitrates=-300"], "is not a number of kbit/s");
    check(&["--ladder", "no-such-ladder"], "no-such-ladder");
    check(
        &["--reference", "x264"],
        "--reference \"x264\" is not known (allowed: ffmpeg)",
    );
    check(
        &["--scenario", "pk"],
        "--scenario pk mixes two sources: give exactly two, got 1",
    );
    check(&["--jobs", "0"], "--jobs 0 is out of range");
    check(
        &["--codecs", "h264,vp9", "--crf", "20,60"],
        "--crf 60 is out of range for h264 (allowed: 0..=50)",
    );
    check(
        &["--crf", "30,20"],
        "--crf is not increasing: 20 comes after 30",
    );
    check(
        &["--crf", "23", "--bitrates", "300"],
        "--bitrates and --crf exclude each other",
    );
    // A file that is not media: one line, and the partial report is kept.
    let junk = d.path().join("junk.mp4");
    std::fs::write(&junk, b"this is not a video").unwrap();
    refuses(
        &[
            "encode-test",
            junk.to_str().unwrap(),
            "--duration",
            "1s",
            "--out",
            out,
        ],
        "does not decode",
    );
    let rep: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(out).join("report.json")).unwrap())
            .unwrap();
    assert_eq!(rep["complete"], false);
    assert!(
        rep["errors"][0]
            .as_str()
            .unwrap()
            .contains("does not decode")
    );
}

/// `--crf`: constant quality through the engine's encoders and ffmpeg's with the same settings;
/// a higher value spends fewer bits and loses quality, and the two tools agree on the rate.
#[test]
fn constant_quality_falls_with_crf_and_matches_ffmpeg() {
    let (_dir, out, report) = one_second_run(
        LADDER_360P,
        &[
            "--codecs",
            "h264,vp9",
            "--crf",
            "18,30,42",
            "--reference",
            "ffmpeg",
            "--jobs",
            "2",
        ],
        Duration::from_secs(600),
    );
    assert_eq!(report["schema_version"], 2);
    assert_eq!(report["settings"]["crf"], serde_json::json!([18, 30, 42]));
    let es = encodes(&report);
    assert_eq!(es.len(), 2 * 3 * 2);
    for codec in ["h264", "vp9"] {
        for encoder in ["showmix", "ffmpeg"] {
            let mut pts: Vec<(u64, f64, f64)> = es
                .iter()
                .filter(|e| e["codec"] == codec && e["encoder"] == encoder)
                .map(|e| {
                    assert_eq!(e["target_kbps"], 0, "{e}");
                    // The bitrate the report gives is what ffprobe reads from the file.
                    let (bytes, _) = ffprobe_video_bytes(&out.join(e["file"].as_str().unwrap()));
                    assert_eq!(bytes, e["video_bytes"].as_u64().unwrap(), "{}", e["id"]);
                    (
                        e["crf"].as_u64().unwrap(),
                        e["bitrate_kbps"].as_f64().unwrap(),
                        e["psnr_y"].as_f64().unwrap(),
                    )
                })
                .collect();
            pts.sort_by_key(|p| p.0);
            assert_eq!(pts.len(), 3, "{codec} {encoder}");
            for w in pts.windows(2) {
                assert!(
                    w[1].1 < w[0].1 && w[1].2 < w[0].2,
                    "{codec} {encoder}: crf {} → {} should lower rate and PSNR: {pts:?}",
                    w[0].0,
                    w[1].0
                );
            }
        }
        // Same settings, same library underneath: the rates agree closely.
        for q in [18, 30, 42] {
            let rate = |encoder: &str| {
                es.iter()
                    .find(|e| e["codec"] == codec && e["encoder"] == encoder && e["crf"] == q)
                    .and_then(|e| e["bitrate_kbps"].as_f64())
                    .unwrap()
            };
            let (ours, theirs) = (rate("showmix"), rate("ffmpeg"));
            assert!(
                (ours / theirs - 1.0).abs() < 0.1,
                "{codec} crf {q}: showmix {ours} kbit/s, ffmpeg {theirs} kbit/s"
            );
        }
    }
}

/// A disk that fills in the middle of the experiment: one line naming it, a non-zero exit, and
/// the report.json on disk keeps the encodes finished before. The full disk is a real one: a
/// 10.6 MB tmpfs in a private mount namespace (`unshare -rm`, no root needed), where the 1 s
/// 360p reference (9.9 MiB) leaves room for about one encode.
#[test]
fn a_full_disk_stops_with_one_line_and_keeps_the_finished_encodes() {
    let probe = std::process::Command::new("unshare")
        .args(["-rm", "true"])
        .status();
    assert!(
        matches!(probe, Ok(s) if s.success()),
        "this test needs a private mount namespace (unshare -rm, util-linux): {probe:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let ladder = dir.path().join("ladder.toml");
    std::fs::write(&ladder, LADDER_360P).unwrap();
    let mnt = dir.path().join("small-disk");
    std::fs::create_dir(&mnt).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=10600k tmpfs '{mnt}' && timeout 300 '{bin}' encode-test test:smpte --ladder '{ladder}' --bitrates 2000,4000,8000 --duration 1s --metrics psnr --quiet --out '{mnt}/out'; \
         echo \"exit=$?\" >&2",
        mnt = mnt.display(),
        bin = showmix_tests::showmix_bin().display(),
        ladder = ladder.display(),
    );
    // The report is read inside the namespace (the tmpfs vanishes with it).
    let script = format!("{script}; cat '{mnt}/out/report.json'", mnt = mnt.display());
    let out = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("exit=")).collect();
    assert!(
        stderr.contains("exit=1"),
        "wanted a non-zero exit: {stderr}"
    );
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains("No space left on device")
            && lines[0].contains("keeps the 1 finished encode(s)"),
        "{stderr}"
    );
    let json = &stdout[stdout.find('{').expect("report.json on the full disk")..];
    let report: Value = serde_json::from_str(json).unwrap();
    assert_eq!(report["complete"], false);
    let es = encodes(&report);
    assert_eq!(es.len(), 1, "{json}");
    assert!(es[0]["error"].is_null() && es[0]["psnr_y"].as_f64().unwrap() > 30.0);
}

/// `--scenario pk`: two sources mixed through the real room pipeline (layout pk) become the
/// one source every codec encodes, for showmix and for the ffmpeg reference alike. Each encode
/// must show the host's picture in the pk layout's left tile and the rival's in the right one,
/// and be measured against the mix (high PSNR for flat colours at a generous bitrate).
#[test]
fn the_pk_scenario_encodes_what_a_pk_room_produces() {
    let dir = tempfile::tempdir().unwrap();
    let ladder = dir.path().join("ladder.toml");
    std::fs::write(&ladder, LADDER_360P).unwrap();
    let out = dir.path().join("out");
    let (code, stdout, stderr) = showmix(
        &[
            "encode-test",
            "test:red",
            "test:blue?tone=880",
            "--scenario",
            "pk",
            "--ladder",
            ladder.to_str().unwrap(),
            "--codecs",
            "h264,vp9",
            "--bitrates",
            "300,1500",
            "--duration",
            "1s",
            "--metrics",
            "psnr",
            "--reference",
            "ffmpeg",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(600),
    );
    assert_eq!(code, 0, "encode-test failed:\n{stdout}\n{stderr}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["settings"]["scenario"], "pk", "{}", r["settings"]);
    let sources = r["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1, "{sources:?}");
    assert_eq!(sources[0]["id"], "pk");
    assert_eq!(sources[0]["source"], "pk(test:red, test:blue?tone=880)");
    assert_eq!(sources[0]["frames"], 30);

    let layout = showmix::presets::Presets::embedded()
        .unwrap()
        .layout("pk")
        .unwrap();
    let tiles = layout.tiles(640, 360);
    let es = encodes(&r);
    // 2 codecs × 2 bitrates, through showmix and through ffmpeg.
    assert_eq!(es.len(), 8);
    for e in es {
        let id = e["id"].as_str().unwrap();
        assert!(e["error"].is_null(), "{id}: {}", e["error"]);
        assert_eq!(e["source"], "pk", "{id}");
        assert_eq!(e["frames"], 30, "{id}");
        let frame = showmix_tests::frame_at(&out.join(e["file"].as_str().unwrap()), 0.5).unwrap();
        for (tile, colour) in tiles.iter().zip(["red", "blue"]) {
            let (x, y) = tile.rect.centre();
            let got = frame.px(x, y);
            let want = showmix_tests::rgb_of(colour);
            assert!(
                showmix_tests::near(got, want, 40),
                "{id}: the tile at ({x},{y}) is {got:?}, wanted {colour} {want:?}"
            );
        }
        let psnr = e["psnr_y"].as_f64().unwrap();
        assert!(psnr > 35.0, "{id}: PSNR-Y {psnr} dB against the pk mix");
    }
    let encoders: Vec<&str> = es.iter().map(|e| e["encoder"].as_str().unwrap()).collect();
    assert_eq!(encoders.iter().filter(|&&e| e == "ffmpeg").count(), 4);
}
