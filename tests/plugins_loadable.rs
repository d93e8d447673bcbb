//! The Rust elements are usable outside showmix: the `.so` files cargo builds (the plugin
//! crates are `cdylib` + `rlib`) load in GStreamer's own tools through `GST_PLUGIN_PATH`,
//! `gst-inspect-1.0` lists their properties, and `gst-launch-1.0` runs them.
//!
//! The plugins are taken from the directory cargo wrote this test's profile to (`make test`
//! builds the workspace's libraries first; `make plugins` copies the release ones to
//! `target/gst-plugins/`). Each run gets its own plugin directory and registry file, so the
//! user's GStreamer registry is never touched and nothing else in `target/` is scanned.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/`, the parent of the `deps/` directory this test binary runs from.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_owned()
}

/// A directory holding only our two plugins, and a registry file of its own.
fn plugin_env() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for name in ["libgstshowmixbeauty.so", "libgstshowmixscale.so"] {
        let built = profile_dir().join(name);
        assert!(
            built.is_file(),
            "{} is missing: the plugin crates must build as cdylib \
             (`cargo build --workspace`, which `make test` runs first)",
            built.display()
        );
        std::fs::copy(&built, plugins.join(name)).unwrap();
    }
    (dir, plugins)
}

/// Runs a GStreamer tool with only our plugins added, killed after 60 s. Its output must be
/// small (it is read after the exit): pictures go to files.
fn gst_tool(tool: &str, args: &[&str], plugins: &Path, registry: &Path) -> Output {
    let mut child = Command::new(tool)
        .args(args)
        .env("GST_PLUGIN_PATH", plugins)
        .env("GST_REGISTRY", registry)
        // A fresh registry file otherwise forks a scanner per plugin; inline is enough here.
        .env("GST_REGISTRY_FORK", "no")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e} (Debian package gstreamer1.0-tools)"));
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{tool} {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn gst_inspect_lists_both_elements_and_their_properties() {
    let (dir, plugins) = plugin_env();
    let registry = dir.path().join("registry.bin");

    let o = gst_tool("gst-inspect-1.0", &["showmixbeauty"], &plugins, &registry);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("libgstshowmixbeauty.so"),
        "loaded from our .so: {out}"
    );
    for prop in [
        "smoothness",
        "lightening",
        "lightening-contrast",
        "redness",
        "sharpness",
        "skin-mask",
    ] {
        assert!(out.contains(prop), "property {prop} listed: {out}");
    }

    let o = gst_tool("gst-inspect-1.0", &["showmixscale"], &plugins, &registry);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("libgstshowmixscale.so"), "{out}");
    for prop in ["luma-filter", "chroma-filter"] {
        assert!(out.contains(prop), "property {prop} listed: {out}");
    }

    // An element that does not exist is still an error with our plugins on the path.
    let o = gst_tool(
        "gst-inspect-1.0",
        &["showmixnosuchthing"],
        &plugins,
        &registry,
    );
    assert!(!o.status.success(), "{}", text(&o));
}

#[test]
fn gst_launch_runs_the_beauty_filter_and_the_scaler() {
    let (dir, plugins) = plugin_env();
    let registry = dir.path().join("registry.bin");
    let o = gst_tool(
        "gst-launch-1.0",
        &[
            "-q",
            "videotestsrc",
            "num-buffers=30",
            "!",
            "showmixbeauty",
            "smoothness=1",
            "!",
            "fakesink",
        ],
        &plugins,
        &registry,
    );
    assert!(o.status.success(), "{}", text(&o));

    // The filter really processes frames: with smoothing on, its output differs from its
    // input (checksums of the 10th frame through identity before and after the filter).
    let frame_sum = |filter: &str| {
        let mut args: Vec<String> = [
            "-q",
            "videotestsrc",
            "pattern=snow",
            "num-buffers=10",
            "!",
            "video/x-raw,format=I420,width=320,height=240",
            "!",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(filter.split_whitespace().map(str::to_owned));
        let out = dir.path().join("frames.yuv");
        args.extend([
            "!".to_owned(),
            "filesink".to_owned(),
            format!("location={}", out.display()),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = gst_tool("gst-launch-1.0", &args, &plugins, &registry);
        assert!(o.status.success(), "{filter}: {}", text(&o));
        let frames = std::fs::read(&out).unwrap();
        assert_eq!(frames.len(), 10 * 320 * 240 * 3 / 2, "{filter}");
        frames
    };
    let plain = frame_sum("identity");
    let smoothed = frame_sum("showmixbeauty smoothness=1 skin-mask=false");
    assert_ne!(plain, smoothed, "smoothness=1 changes the picture");
    let off = frame_sum("showmixbeauty smoothness=0");
    assert_eq!(plain, off, "level 0 passes frames through untouched");

    // The scaler halves the picture.
    let scaled = dir.path().join("scaled.yuv");
    let o = gst_tool(
        "gst-launch-1.0",
        &[
            "-q",
            "videotestsrc",
            "num-buffers=5",
            "!",
            "video/x-raw,format=I420,width=640,height=360",
            "!",
            "showmixscale",
            "!",
            "video/x-raw,width=320,height=180",
            "!",
            "filesink",
            &format!("location={}", scaled.display()),
        ],
        &plugins,
        &registry,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&scaled).unwrap().len(), 5 * 320 * 180 * 3 / 2);
}
