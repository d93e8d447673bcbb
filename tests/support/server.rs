//! An in-process `showmix serve` for end-to-end tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use showmix::api::http::request;

/// The header map `raw` returns.
pub mod hyper_headers {
    pub use showmix::api::http::HeaderMap;
}
use showmix::config::Config;
use showmix::presets::Presets;
use showmix::service::Engine;

use super::{Frame, decode_image};

pub const TOKEN: &str = "test-token-0123456789";

/// `showmix serve` in this process: API (and, if asked, RTMP/SRT ingest) on ephemeral
/// loopback ports, with a real HTTP client.
pub struct Server {
    pub addr: SocketAddr,
    pub rtmp: Option<SocketAddr>,
    pub srt: Option<SocketAddr>,
    /// The engine, for benchmarks that probe a room's pipeline.
    pub engine: Arc<Engine>,
    pub rt: tokio::runtime::Runtime,
    /// The server's data directory (its `data_dir`, removed with the server), under which
    /// `file`/`record` outputs may write.
    pub data: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<std::sync::mpsc::Receiver<()>>,
}

impl Server {
    /// Starts with a token, ingest off; `tweak` changes the configuration first.
    pub fn start(tweak: impl FnOnce(&mut Config)) -> Server {
        showmix::init().expect("GStreamer");
        // The engine's warnings and errors go to stderr (shown when a test fails, and in CI
        // logs); SHOWMIX_TEST_LOG takes a filter like RUST_LOG for more.
        let filter = tracing_subscriber::EnvFilter::try_from_env("SHOWMIX_TEST_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
        let data = tempfile::tempdir().expect("data dir");
        let mut config = Config {
            data_dir: data.path().to_owned(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            api_token: Some(TOKEN.into()),
            rtmp_listen: "off".into(),
            srt_listen: "off".into(),
            ..Config::default()
        };
        tweak(&mut config);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let bound = rt.block_on(showmix::serve::bind(&config)).expect("bind");
        let addr = bound.api_addr().expect("api addr");
        let (rtmp, srt) = (bound.rtmp_addr(), bound.srt_addr());
        let engine = Arc::new(Engine::new(config, Presets::embedded().expect("presets")));
        let served = engine.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            showmix::serve::run(served, bound, async {
                let _ = rx.await;
            })
            .await;
            let _ = done_tx.send(());
        });
        Server {
            addr,
            rtmp,
            srt,
            engine,
            rt,
            data,
            stop: Some(tx),
            done: Some(done_rx),
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, String, Vec<u8>) {
        let (s, ct, b) = self
            .rt
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(30),
                    request(self.addr, method, path, token, body),
                )
                .await
            })
            .expect("request within 30 s")
            .expect("request");
        (s, ct, b.to_vec())
    }

    /// Any request, with its own headers; returns the response headers too.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> (u16, hyper_headers::HeaderMap, Vec<u8>) {
        let (s, h, b) = self
            .rt
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(30),
                    showmix::api::http::request_with(self.addr, method, path, headers, body),
                )
                .await
            })
            .expect("request within 30 s")
            .expect("request");
        (s, h, b.to_vec())
    }

    /// Authorised JSON call.
    pub fn json(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (s, _, b) = self.call(
            method,
            path,
            Some(TOKEN),
            body.map(|v| serde_json::to_vec(&v).expect("json")),
        );
        let v = if b.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&b).unwrap_or(Value::Null)
        };
        (s, v)
    }

    /// The current snapshot, decoded.
    pub fn snapshot(&self, room: &str) -> Frame {
        let path = format!("/v1/rooms/{room}/snapshot.jpg");
        let mut tries = 0;
        let jpeg = loop {
            let (st, _, body) = self.call("GET", &path, Some(TOKEN), None);
            // 503 until the first frame is mixed.
            if st == 503 && tries < 50 {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            assert_eq!(st, 200, "snapshot: {}", String::from_utf8_lossy(&body));
            break body;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("s.jpg");
        std::fs::write(&f, &jpeg).expect("write");
        decode_image(&f).expect("decode snapshot")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = done.recv_timeout(Duration::from_secs(20));
        }
    }
}

/// Waits up to 30 s (CI machines are slow and shared) for `f` to hold.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
