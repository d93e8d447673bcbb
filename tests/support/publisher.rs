//! A realtime ffmpeg publisher of a solid colour and a tone over RTMP or SRT, for tests that
//! need a real publisher in a seat. Killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The child is public for tests that start their own ffmpeg command line.
pub struct Publisher(pub Child);

impl Publisher {
    pub fn start(url: &str, colour: &str, tone: u32, extra_video: &[&str]) -> Publisher {
        let (format, url) = if url.starts_with("srt://") {
            ("mpegts", format!("{url}&pkt_size=1316&latency=120000"))
        } else {
            ("flv", url.to_owned())
        };
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-re", "-f", "lavfi", "-i"])
            .arg(format!("color=c={colour}:s=640x360:r=30"))
            .args(["-f", "lavfi", "-i"])
            .arg(format!("sine=f={tone}:sample_rate=48000"))
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                "30",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(extra_video)
            .args(["-c:a", "aac", "-b:a", "96k", "-f", format])
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Publisher(cmd.spawn().expect("ffmpeg starts"))
    }

    /// Waits for the publisher to exit on its own (refused); returns its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let t = Instant::now();
        while t.elapsed() < within {
            if let Some(s) = self.0.try_wait().expect("wait") {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
