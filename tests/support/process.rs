//! `showmix serve` as its own process (the release build, as users run it) for benchmarks that
//! measure the whole process from outside: its RSS and CPU from /proc, its API over HTTP.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use showmix::api::http::request;

pub fn free_tcp_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn free_udp_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The engine as a user runs it, in its own process; killed on drop.
pub struct ServeProcess {
    pub child: Child,
    pub api: SocketAddr,
    token: String,
    rt: tokio::runtime::Runtime,
    log: std::path::PathBuf,
}

impl ServeProcess {
    pub fn start(dir: &Path, api: u16, rtmp: u16, srt: u16, token: &str) -> Result<ServeProcess> {
        let bin = crate::showmix_release_bin()?;
        let log = dir.join("showmix.log");
        let child = Command::new(bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{api}")])
            .args(["--api-token", token])
            .args(["--rtmp-listen", &format!("127.0.0.1:{rtmp}")])
            .args(["--srt-listen", &format!("127.0.0.1:{srt}")])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("showmix serve starts")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut e = ServeProcess {
            token: token.to_owned(),
            child,
            api: SocketAddr::from(([127, 0, 0, 1], api)),
            rt,
            log,
        };
        let t = Instant::now();
        loop {
            if let Ok((200, _, _)) = e.call("GET", "/healthz", None) {
                return Ok(e);
            }
            if let Some(st) = e.child.try_wait()? {
                bail!("showmix serve exited ({st}): {}", e.log_tail());
            }
            ensure!(
                t.elapsed() < Duration::from_secs(20),
                "showmix serve not healthy within 20 s: {}",
                e.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, String, Vec<u8>)> {
        let body = body.map(|v| v.to_string().into_bytes());
        let (s, ct, b) = self.rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(10),
                request(self.api, method, path, Some(&self.token), body),
            )
            .await
        })??;
        Ok((s, ct, b.to_vec()))
    }

    pub fn json(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let (s, _, b) = self.call(method, path, body)?;
        Ok((s, serde_json::from_slice(&b).unwrap_or(Value::Null)))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident set of a process, from /proc.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")
}

/// User + system CPU seconds of a process, from /proc.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &s[s.rfind(')').context("stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}
