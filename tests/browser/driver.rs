//! Runs the browser scripts in `tests/browser` (through playwright-core, in headless Chromium)
//! as child processes with a hard time limit, and returns their report: `play.js` (hls.js) for
//! `tests/hls_browser.rs` and `benches/hls.rs`, `rtc.js` (WHIP/WHEP pages) for
//! `tests/webrtc_browser.rs` and `benches/webrtc.rs`, `console.js` (the operator console) for
//! `tests/console.rs` and `benches/console.rs` (all include this file with `#[path]`).
//!
//! The child is ended on every path: past the limit it gets SIGTERM (play.js closes the browser
//! and exits), then SIGKILL; Chromium exits by itself when its DevTools pipe to node closes.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// `tests/browser` in the workspace.
pub fn browser_dir() -> PathBuf {
    showmix_tests::workspace_root().join("tests/browser")
}

/// Node, Chromium and the npm packages are there; otherwise says how to get them.
pub fn check_ready() -> Result<()> {
    let dir = browser_dir();
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        bail!(
            "{} is missing: `make deps` installs Debian's chromium (ops/packages.txt)",
            chromium.display()
        );
    }
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        bail!("node is not on PATH (Node.js 20 or later is needed for tests/browser)");
    }
    for pkg in ["hls.js", "playwright-core"] {
        if !dir.join("node_modules").join(pkg).is_dir() {
            bail!(
                "{pkg} is not installed in {}: run `make browser-deps` (npm ci --prefix tests/browser)",
                dir.display()
            );
        }
    }
    Ok(())
}

/// What to play and how.
#[derive(Clone, Debug)]
pub struct Play {
    /// A playlist URL, or a path under the page's own server (`/ref/index.m3u8` with `serve`).
    pub src: String,
    /// A directory to serve under `/ref/`.
    pub serve: Option<PathBuf>,
    pub warmup_s: f64,
    pub seconds: f64,
    pub sample_ms: u64,
    /// Switch rungs a third into the sampling and wait for the switch.
    pub switch: bool,
    /// Read the wall-clock stamp burnt into the picture.
    pub clock: bool,
    /// play.js's own deadline; the child is killed 10 s after it.
    pub deadline_s: u64,
    /// Extra hls.js configuration over `{lowLatencyMode: true}`.
    pub hls_config: Option<Value>,
    /// A region holding a `stamp.js` stamp: every presented frame's latency in `stamps`.
    pub stamp: Option<Value>,
}

impl Play {
    pub fn new(src: impl Into<String>) -> Play {
        Play {
            src: src.into(),
            serve: None,
            warmup_s: 2.0,
            seconds: 6.0,
            sample_ms: 250,
            switch: false,
            clock: false,
            deadline_s: 60,
            hls_config: None,
            stamp: None,
        }
    }
}

/// Ends the child on every path (panics included).
struct Reaper(Child);

impl Reaper {
    fn stop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let by = Instant::now() + Duration::from_secs(5);
            while Instant::now() < by && matches!(self.0.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.stop();
    }
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The player's report (`RESULT` line of play.js) and its log (stderr).
pub struct Report {
    pub result: Value,
    pub log: String,
}

/// Runs play.js and waits for its report, at most `deadline_s + 10` seconds.
pub fn play(p: &Play) -> Result<Report> {
    let mut args: Vec<String> = vec![
        "--src".into(),
        p.src.clone(),
        "--warmup".into(),
        p.warmup_s.to_string(),
        "--seconds".into(),
        p.seconds.to_string(),
        "--sample-ms".into(),
        p.sample_ms.to_string(),
        "--deadline".into(),
        p.deadline_s.to_string(),
    ];
    if let Some(d) = &p.serve {
        args.push("--serve".into());
        args.push(d.display().to_string());
    }
    if let Some(c) = &p.hls_config {
        args.push("--config".into());
        args.push(c.to_string());
    }
    if let Some(r) = &p.stamp {
        args.push("--stamp".into());
        args.push(r.to_string());
    }
    if p.switch {
        args.push("--switch".into());
    }
    if p.clock {
        args.push("--clock".into());
    }
    run_node("play.js", &args, p.deadline_s)
}

/// Runs rtc.js with `plan` (see the script's header) and waits for its report.
pub fn rtc(plan: &Value) -> Result<Report> {
    let deadline = plan["deadline"].as_u64().unwrap_or(60);
    run_node("rtc.js", &["--plan".into(), plan.to_string()], deadline)
}

/// Runs console.js with `plan` (see the script's header) and waits for its report.
pub fn console(plan: &Value) -> Result<Report> {
    let deadline = plan["deadline"].as_u64().unwrap_or(90);
    run_node("console.js", &["--plan".into(), plan.to_string()], deadline)
}

/// Opens an encode-test report page with report.js and screenshots it to `shot`.
pub fn report_page(
    page: &std::path::Path,
    shot: &std::path::Path,
    deadline_s: u64,
) -> Result<Report> {
    run_node(
        "report.js",
        &[
            "--page".into(),
            page.display().to_string(),
            "--shot".into(),
            shot.display().to_string(),
            "--deadline".into(),
            deadline_s.to_string(),
        ],
        deadline_s,
    )
}

/// Runs a script of `tests/browser` with node; kills it 10 s past `deadline_s`.
fn run_node(script: &str, args: &[String], deadline_s: u64) -> Result<Report> {
    let dir = browser_dir();
    let mut cmd = Command::new("node");
    cmd.arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().context("cannot start node")?;
    let mut child = Reaper(child);
    let out = reader(child.0.stdout.take().context("stdout")?);
    let err = reader(child.0.stderr.take().context("stderr")?);
    let limit = Duration::from_secs(deadline_s + 10);
    let t0 = Instant::now();
    let mut timed_out = false;
    while matches!(child.0.try_wait(), Ok(None)) {
        if t0.elapsed() > limit {
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.stop();
    let (out, log) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if timed_out {
        bail!("{script} did not finish within {limit:?}; killed. Its log:\n{log}");
    }
    let line = out
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| format!("{script} printed no result; stdout:\n{out}\nlog:\n{log}"))?;
    let result: Value = serde_json::from_str(line).context("the result is not JSON")?;
    Ok(Report { result, log })
}

/// A numeric field of every sample that has it.
pub fn series(result: &Value, key: &str) -> Vec<f64> {
    result["samples"]
        .as_array()
        .map(|v| v.iter().filter_map(|s| s[key].as_f64()).collect())
        .unwrap_or_default()
}

/// The `p` quantile (0..=1) by nearest rank; NaN when empty.
pub fn quantile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}
