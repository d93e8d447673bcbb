//! `showmix serve`: read and validate the configuration, start GStreamer and the API, run
//! until SIGINT/SIGTERM, then stop accepting requests and end every room cleanly (EOS, so
//! files are finalised) within the grace period.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::api::http;
use crate::config::Config;
use crate::presets::Presets;
use crate::service::Engine;

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Every listener of the process, bound (port 0 picks a free port).
pub struct Bound {
    pub api: TcpListener,
    pub rtmp: Option<TcpListener>,
    pub srt: Option<crate::ingest::srt::SrtIngest>,
}

impl Bound {
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.local_addr().ok()
    }
    pub fn rtmp_addr(&self) -> Option<SocketAddr> {
        self.rtmp.as_ref().and_then(|l| l.local_addr().ok())
    }
    pub fn srt_addr(&self) -> Option<SocketAddr> {
        self.srt.as_ref().map(|s| s.local_addr())
    }
}

/// Binds the API and the ingest listeners the configuration asks for.
pub async fn bind(config: &Config) -> Result<Bound> {
    let api = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (API)", config.listen))?;
    let rtmp = match config.rtmp_addr() {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen on {a} (RTMP ingest)"))?,
        ),
        None => None,
    };
    let srt = match config.srt_addr() {
        Some(a) => Some(
            crate::ingest::srt::SrtIngest::bind(a)
                .await
                .with_context(|| format!("cannot listen on {a} (SRT ingest)"))?,
        ),
        None => None,
    };
    Ok(Bound { api, rtmp, srt })
}

/// Runs the API and the ingest listeners until `shutdown`, then stops taking publishers and
/// requests and ends every room (EOS, outputs finalised) within the grace period.
pub async fn run(
    engine: Arc<Engine>,
    bound: Bound,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let grace = engine.config.shutdown_grace();
    engine.set_ingest_ports(crate::service::IngestPorts {
        rtmp: bound.rtmp_addr().map(|a| a.port()),
        srt: bound.srt_addr().map(|a| a.port()),
        api: bound.api_addr().map(|a| a.port()),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let limits = crate::ingest::Limits {
        max_connections: engine.config.max_ingest_connections as usize,
        ..Default::default()
    };
    let router: Arc<dyn crate::ingest::IngestRouter> = engine.clone();
    let mut ingest = tokio::task::JoinSet::new();
    if let Some(l) = bound.rtmp {
        ingest.spawn(crate::ingest::rtmp::serve(
            l,
            router.clone(),
            limits.clone(),
            engine.rtmp_counters.clone(),
            stopped(),
        ));
    }
    if let Some(s) = bound.srt {
        let (router, limits, counters, stop) = (
            router.clone(),
            limits.clone(),
            engine.srt_counters.clone(),
            stopped(),
        );
        ingest.spawn(async move {
            if let Err(e) = s.run(router, limits, counters, stop).await {
                tracing::error!("SRT ingest stopped: {e:#}");
            }
        });
    }
    let trimmer = tokio::spawn(crate::memory::trim_periodically());
    http::serve(engine.clone(), bound.api, shutdown, Duration::from_secs(2)).await;
    trimmer.abort();
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while ingest.join_next().await.is_some() {}
    })
    .await;
    tracing::info!("stopping every room (grace {grace:?})");
    let e = engine.clone();
    let stopping = tokio::task::spawn_blocking(move || e.shutdown(grace));
    if tokio::time::timeout(grace + Duration::from_secs(1), stopping)
        .await
        .is_err()
    {
        tracing::error!("rooms did not stop within {grace:?}");
    }
}

/// The demo room `make run` shows: two test patterns in `pk` on `showroom-720p`, written to
/// `dir`, created through the API like any operator would.
pub async fn create_demo_room(addr: SocketAddr, token: Option<&str>, dir: &Path) -> Result<()> {
    let body = serde_json::json!({
        "id": "demo",
        "layout": "pk",
        "ladder": "showroom-720p",
        "seats": [
            {"id": "host", "source": "test:smpte"},
            {"id": "rival", "source": "test:ball?tone=660"}
        ],
        "outputs": [{"id": "files", "kind": "file", "dir": dir}]
    });
    let (status, _, resp) = http::request(
        addr,
        "POST",
        "/v1/rooms",
        token,
        Some(serde_json::to_vec(&body)?),
    )
    .await?;
    if status != 201 {
        anyhow::bail!(
            "creating the demo room failed ({status}): {}",
            String::from_utf8_lossy(&resp)
        );
    }
    let auth = token
        .map(|t| format!(" -H 'Authorization: Bearer {t}'"))
        .unwrap_or_default();
    println!("showmix: demo room \"demo\" is live (pk of two test patterns, showroom-720p)");
    println!("  console:   http://{addr}/console/ (log in with the API token)");
    println!("  room:      curl{auth} http://{addr}/v1/rooms/demo");
    println!("  snapshot:  curl{auth} -o demo.jpg http://{addr}/v1/rooms/demo/snapshot.jpg");
    println!("  layout:    curl{auth} -X PUT -d '\"grid-4\"' http://{addr}/v1/rooms/demo/layout");
    println!(
        "  output:    {}/{{720p,480p,360p}}.mp4 (finalised when the room ends: Ctrl-C)",
        dir.display()
    );
    Ok(())
}

/// Blocking entry point for the binary.
pub fn main(mut config: Config, presets: Presets, demo: Option<PathBuf>) -> Result<()> {
    crate::init()?;
    // The demo's directory was named on the command line by the operator: it is an allowed
    // output root like the configured ones.
    if let Some(dir) = &demo {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--demo {}: cannot create it", dir.display()))?;
        config.output_roots.push(dir.clone());
    }
    // Fail at start-up, not on the first recording, when the data directory cannot be made.
    let roots = crate::outdir::OutputRoots::prepare(&config.data_dir, &config.output_roots)
        .map_err(anyhow::Error::msg)?;
    let roots = roots
        .roots()
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("showmix-api")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let bound = bind(&config).await?;
        let addr = bound.api_addr().context("API listener has no address")?;
        let token = config.api_token.clone();
        println!(
            "showmix: API on http://{addr} ({})",
            match &token {
                Some(t) => format!("token: {t}"),
                None => "no token: loopback only".into(),
            }
        );
        if let Some(a) = bound.rtmp_addr() {
            println!("showmix: RTMP ingest on {a}");
        }
        if let Some(a) = bound.srt_addr() {
            println!("showmix: SRT ingest on {a}");
        }
        println!("showmix: file outputs and recordings under {roots}");
        let engine = Arc::new(Engine::new(config, presets));
        if let Some(dir) = demo {
            let dir = std::path::absolute(&dir)?;
            let token = token.clone();
            tokio::spawn(async move {
                // The listener is bound already; the request waits in its backlog.
                if let Err(e) = create_demo_room(addr, token.as_deref(), &dir).await {
                    eprintln!("showmix: {e:#}");
                }
            });
        }
        run(engine, bound, signal()).await;
        println!("showmix: stopped");
        Ok(())
    })
}
