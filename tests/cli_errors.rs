//! `showmix` refuses bad input with a clear message and a non-zero exit: never a panic, never a
//! hang. Each case runs the real binary.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use showmix_tests::{run_showmix, showmix_bin, solid_clip};

/// Runs showmix with a time bound; returns (exit code, stderr).
fn showmix(args: &[&str]) -> (i32, String) {
    let (code, _, stderr) = run_showmix(args, Duration::from_secs(60));
    (code, stderr)
}

fn refuses(args: &[&str], message: &str) {
    let (code, stderr) = showmix(args);
    assert_ne!(code, 0, "showmix {args:?} should fail");
    assert!(
        stderr.contains(message),
        "showmix {args:?}: wanted {message:?} in: {stderr}"
    );
}

fn out_dir(d: &Path) -> String {
    d.join("out").to_string_lossy().into_owned()
}

#[test]
fn missing_file() {
    let d = tempfile::tempdir().unwrap();
    refuses(
        &[
            "mix",
            "--seat",
            "host=/no/such/clip.mp4",
            "--out",
            &out_dir(d.path()),
        ],
        "file /no/such/clip.mp4 does not exist",
    );
}

#[test]
fn undecodable_file() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("noise.mp4");
    std::fs::write(
        &f,
        (0..200_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    refuses(
        &[
            "mix",
            "--seat",
            &format!("host={}", f.display()),
            "--out",
            &out_dir(d.path()),
        ],
        "is not media GStreamer can decode",
    );
}

#[test]
fn unknown_presets() {
    let d = tempfile::tempdir().unwrap();
    refuses(
        &[
            "mix",
            "--layout",
            "triangle",
            "--seat",
            "a=test:red",
            "--out",
            &out_dir(d.path()),
        ],
        "unknown layout preset \"triangle\" (available: cohost, grid-4, grid-9, matchmaking-3, matchmaking-7, pip-1v1, pk, single)",
    );
    refuses(
        &[
            "mix",
            "--ladder",
            "8k",
            "--seat",
            "a=test:red",
            "--out",
            &out_dir(d.path()),
        ],
        "unknown ladder preset \"8k\"",
    );
    refuses(&["presets", "show", "nope"], "unknown any preset \"nope\"");
}

#[test]
fn layout_with_slot_out_of_range() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("wide.toml");
    std::fs::write(&f, "[[slots]]\nx = 0.5\ny = 0.0\nw = 0.75\nh = 1.0\n").unwrap();
    refuses(
        &[
            "mix",
            "--layout",
            f.to_str().unwrap(),
            "--seat",
            "a=test:red",
            "--out",
            &out_dir(d.path()),
        ],
        "slots[0].w: 0.75 is out of range (allowed 0 < w and x + w <= 1)",
    );
}

#[test]
fn more_seats_than_slots() {
    let d = tempfile::tempdir().unwrap();
    refuses(
        &[
            "mix",
            "--layout",
            "pk",
            "--seat",
            "a=test:red",
            "--seat",
            "b=test:blue",
            "--seat",
            "c=test:green",
            "--out",
            &out_dir(d.path()),
        ],
        "3 seats but layout \"pk\" has 2 slots",
    );
}

fn ladder_file(dir: &Path, canvas: (u32, u32), rung: (u32, u32)) -> String {
    let f = dir.join("ladder.toml");
    std::fs::write(
        &f,
        format!(
            "[canvas]\nwidth = {}\nheight = {}\nfps = 30\n\n[[rungs]]\nname = \"top\"\nwidth = {}\nheight = {}\nbitrate_kbps = 1000\n",
            canvas.0, canvas.1, rung.0, rung.1
        ),
    )
    .unwrap();
    f.to_string_lossy().into_owned()
}

#[test]
fn odd_or_zero_canvas() {
    let d = tempfile::tempdir().unwrap();
    let l = ladder_file(d.path(), (1281, 720), (640, 360));
    refuses(
        &[
            "mix",
            "--ladder",
            &l,
            "--seat",
            "a=test:red",
            "--out",
            &out_dir(d.path()),
        ],
        "canvas.width: 1281 must be even",
    );
    let l = ladder_file(d.path(), (1280, 0), (640, 360));
    refuses(
        &[
            "mix",
            "--ladder",
            &l,
            "--seat",
            "a=test:red",
            "--out",
            &out_dir(d.path()),
        ],
        "canvas.height: 0 is out of range (allowed 16..=4320)",
    );
}

#[test]
fn rung_larger_than_canvas() {
    let d = tempfile::tempdir().unwrap();
    let l = ladder_file(d.path(), (1280, 720), (1920, 1080));
    refuses(
        &[
            "mix",
            "--ladder",
            &l,
            "--seat",
            "a=test:red",
            "--out",
            &out_dir(d.path()),
        ],
        "rungs[0].width: 1920x1080 is larger than the canvas 1280x720",
    );
}

#[test]
fn bad_seat_arguments() {
    let d = tempfile::tempdir().unwrap();
    refuses(
        &["mix", "--seat", "host", "--out", &out_dir(d.path())],
        "is not of the form <id>=<source>",
    );
    refuses(
        &[
            "mix",
            "--seat",
            "host=test:purple",
            "--out",
            &out_dir(d.path()),
        ],
        "unknown test pattern \"purple\"",
    );
    refuses(
        &["mix", "--seat", "a/b=test:red", "--out", &out_dir(d.path())],
        "is not a valid name",
    );
    refuses(
        &[
            "mix",
            "--seat",
            "a=test:red",
            "--duration",
            "0",
            "--out",
            &out_dir(d.path()),
        ],
        "--duration 0 is out of range (allowed 0 < seconds <= 86400)",
    );
}

#[test]
fn unwritable_output_directory() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    refuses(
        &[
            "mix",
            "--seat",
            "a=test:red",
            "--duration",
            "1",
            "--out",
            &file.join("sub").to_string_lossy(),
        ],
        "cannot create directory",
    );
}

/// The binary end to end: a file seat, the mix ends with the file, files and report exist.
#[test]
fn mix_command_writes_rungs_and_report() {
    let d = tempfile::tempdir().unwrap();
    let clip = d.path().join("host.mp4");
    solid_clip(&clip, "red", 1.0, 640, 360, 30, 440).unwrap();
    let out = d.path().join("out");
    let (code, stderr) = showmix(&[
        "mix",
        "--layout",
        "single",
        "--ladder",
        "showroom-720p",
        "--seat",
        &format!("host={}", clip.display()),
        "--out",
        &out.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    for f in ["720p.mp4", "480p.mp4", "360p.mp4", "report.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["rungs"][0]["frames"], 30);
    assert_eq!(report["rungs"][2]["height"], 360);
}

/// A live mix of test sources runs until SIGINT and still finalises playable files.
#[test]
fn live_mix_finalises_on_sigint() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let mut child = Command::new(showmix_bin())
        .args([
            "mix",
            "--layout",
            "pk",
            "--seat",
            "a=test:red",
            "--seat",
            "b=test:blue",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc_kill(child.id() as i32, 2) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "showmix did not exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success());
    let s = showmix_tests::streams(&out.join("720p.mp4")).unwrap();
    let dur = s.video.unwrap().3;
    assert!(dur > 1.0, "recorded {dur} s");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn serve_refuses_bad_configuration_all_at_once() {
    refuses(
        &["serve", "--listen", "0.0.0.0:18099"],
        "api_token: is required to listen on 0.0.0.0:18099",
    );
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("c.toml");
    std::fs::write(
        &f,
        "max_rooms = 0\nmax_body_bytes = 10\nrequest_timeout_ms = 1\n",
    )
    .unwrap();
    let (code, stderr) = showmix(&[
        "serve",
        "--config",
        f.to_str().unwrap(),
        "--listen",
        "nowhere",
    ]);
    assert_ne!(code, 0);
    for needle in [
        "max_rooms: 0 is out of range (allowed 1..=1000)",
        "max_body_bytes: 10 is out of range",
        "request_timeout_ms: 1 is out of range",
        "listen: \"nowhere\" is not an address",
    ] {
        assert!(stderr.contains(needle), "wanted {needle:?} in {stderr}");
    }
    refuses(
        &["serve", "--config", "/no/such/showmix.toml"],
        "/no/such/showmix.toml: cannot read",
    );
}
