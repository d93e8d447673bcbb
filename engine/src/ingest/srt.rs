//! SRT listener: one UDP port for every seat, publishers routed by their stream id.
//!
//! A caller (ffmpeg/libsrt, GStreamer `srtsink`, OBS) connects in caller mode with a stream id in
//! the SRT access-control syntax, `#!::r=<room>/<seat>,m=publish,s=<key>`. The handshake is held
//! until the [`IngestRouter`] has seen the raw stream id (as `PublishRequest::name`, `app` empty):
//! a refusal becomes an SRT rejection carrying a reason code, so the caller fails at connect time
//! instead of streaming into the void. Parsing the stream id is the engine's job (`keys.rs`).
//!
//! Once accepted, every data packet's payload (MPEG-TS, usually 7 × 188 bytes) goes to the seat's
//! [`PublishSink`] in order, after SRT's receive latency (TSBPD, [`DEFAULT_LATENCY`]) has given
//! lost packets a chance to be retransmitted.
//!
//! Built on `srt-tokio`'s multiplexing listener, which owns the UDP socket and runs the handshake;
//! this module adds routing, limits, counters and the shutdown.
//!
//! Usage:
//! ```no_run
//! # async fn f(router: std::sync::Arc<dyn showmix::ingest::IngestRouter>) -> anyhow::Result<()> {
//! use showmix::ingest::{Counters, Limits, srt::SrtIngest};
//! let ingest = SrtIngest::bind("0.0.0.0:9000".parse()?).await?;
//! println!("SRT on {}", ingest.local_addr());
//! let counters = std::sync::Arc::new(Counters::default());
//! ingest.run(router, Limits::default(), counters, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::options::{ByteCount, SocketOptions};
use srt_tokio::{ConnectionRequest, SrtIncoming, SrtListener, SrtSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::{Counters, IngestRouter, Limits, Protocol, PublishRequest, PublishSink, Refusal};

/// The payload type [`PublishSink::push`] takes, re-exported so that sinks can be written without
/// depending on the `bytes` crate directly.
pub use bytes::Bytes;

/// Receive latency (SRTO_RCVLATENCY) used by [`SrtIngest::bind`]: libsrt's own default for live
/// mode, enough for a few retransmissions on a path with tens of milliseconds of RTT. The
/// effective latency is the larger of this and the caller's own setting.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(120);

/// Kernel receive buffer asked for the shared UDP socket. Every publisher's packets queue here
/// while the listener task is busy, so the 64 KiB default would drop packets under load. The
/// kernel caps it at `net.core.rmem_max` without failing.
const UDP_RECV_BUFFER: u64 = 8 << 20;

/// Longest stream id shown in log lines.
const LOG_ID_MAX: usize = 120;

/// A bound SRT listener that has not started serving yet.
///
/// Binding and serving are separate so that a caller binding port 0 can learn the port first.
pub struct SrtIngest {
    listener: SrtListener,
    incoming: SrtIncoming,
    local_addr: SocketAddr,
    latency: Duration,
}

impl std::fmt::Debug for SrtIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtIngest")
            .field("local_addr", &self.local_addr)
            .field("latency", &self.latency)
            .finish_non_exhaustive()
    }
}

/// Binds `addr` and serves SRT publishers until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    router: Arc<dyn IngestRouter>,
    limits: Limits,
    counters: Arc<Counters>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    SrtIngest::bind(addr)
        .await?
        .run(router, limits, counters, shutdown)
        .await
}

impl SrtIngest {
    /// Binds the UDP port (port 0 picks a free one) with [`DEFAULT_LATENCY`].
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        Self::bind_with_latency(addr, DEFAULT_LATENCY).await
    }

    /// Binds the UDP port with the given receive latency.
    pub async fn bind_with_latency(addr: SocketAddr, latency: Duration) -> anyhow::Result<Self> {
        let mut options = SocketOptions::default();
        options.connect.local = addr;
        options.connect.udp_recv_buffer_size = ByteCount(UDP_RECV_BUFFER);
        options.receiver.latency = latency;
        // Bind the socket ourselves: srt-tokio's listener does not report the port it got.
        let socket = srt_tokio::bind_socket(&options)
            .await
            .with_context(|| format!("cannot bind the SRT port {addr}"))?;
        let local_addr = socket.local_addr().context("SRT socket address")?;
        let (listener, incoming) = SrtListener::builder()
            .set(|o| *o = options)
            .socket(socket)
            .bind(local_addr)
            .await
            .with_context(|| format!("cannot start the SRT listener on {local_addr}"))?;
        Ok(Self {
            listener,
            incoming,
            local_addr,
            latency,
        })
    }

    /// The address actually bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The receive latency this listener asks for.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// Serves publishers until `shutdown` completes, then ends every publication
    /// (`sink.end("shutdown")`) and releases the port. Fails only if the listener itself dies.
    pub async fn run(
        self,
        router: Arc<dyn IngestRouter>,
        limits: Limits,
        counters: Arc<Counters>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            mut incoming,
            local_addr,
            latency,
        } = self;
        info!(%local_addr, ?latency, "SRT ingest listening");
        let ctx = Arc::new(Ctx {
            router,
            limits,
            counters,
            active: Arc::new(AtomicUsize::new(0)),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let requests = incoming.incoming();

        let result = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break Ok(()),
                // Reap finished connections so the set stays small on a long-running listener.
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(e) = done
                        && e.is_panic()
                    {
                        warn!(%local_addr, "SRT connection task panicked");
                    }
                }
                request = requests.next() => match request {
                    Some(request) => {
                        // Every request gets its own task: answering one awaits the listener
                        // task, which may itself be waiting for us to take the next request.
                        let admitted = ctx.admit();
                        tasks.spawn(connection(request, ctx.clone(), admitted, stop_rx.clone()));
                    }
                    None => break Err(anyhow::anyhow!("the SRT listener on {local_addr} stopped")),
                },
            }
        };

        let _ = stop_tx.send(true);
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done
                && e.is_panic()
            {
                warn!(%local_addr, "SRT connection task panicked");
            }
        }
        drop(incoming);
        // `SrtListener::close` panics if the listener task died; contain that in a task.
        let mut listener = listener;
        let _ = tokio::spawn(async move { listener.close().await }).await;
        info!(%local_addr, "SRT ingest stopped");
        result
    }
}

/// What every connection task shares.
struct Ctx {
    router: Arc<dyn IngestRouter>,
    limits: Limits,
    counters: Arc<Counters>,
    /// Connections holding a slot (being answered or publishing), for `max_connections`.
    active: Arc<AtomicUsize>,
}

impl Ctx {
    /// Counts a new connection request and takes a slot for it if one is free. Called only from
    /// the accept loop, so the check and the increment cannot race with another admission.
    fn admit(&self) -> Slot {
        self.counters.opened();
        let slot = self.active.load(Relaxed) < self.limits.max_connections;
        if slot {
            self.active.fetch_add(1, Relaxed);
        }
        Slot {
            active: slot.then(|| self.active.clone()),
            counters: self.counters.clone(),
        }
    }
}

/// A connection's place in the counts; released when the connection task ends, even by panic.
struct Slot {
    /// `None` when the listener was full.
    active: Option<Arc<AtomicUsize>>,
    counters: Arc<Counters>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(active) = &self.active {
            active.fetch_sub(1, Relaxed);
        }
        self.counters.closed();
    }
}

/// Answers one connection request and, if accepted, pumps its data into the seat.
async fn connection(
    request: ConnectionRequest,
    ctx: Arc<Ctx>,
    slot: Slot,
    stop: watch::Receiver<bool>,
) {
    let peer = request.remote();
    let stream_id = request
        .stream_id()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    let shown = redact(&stream_id);
    let answer = ctx.limits.handshake_timeout;

    if slot.active.is_none() {
        ctx.counters.refuse("too_many");
        warn!(%peer, stream_id = %shown, max = ctx.limits.max_connections, "SRT publisher refused: too many connections");
        let reason = RejectReason::Server(ServerRejectReason::Overload);
        let _ = tokio::time::timeout(answer, request.reject(reason)).await;
        return;
    }

    let req = PublishRequest {
        protocol: Protocol::Srt,
        app: String::new(),
        name: stream_id,
        peer,
    };
    let mut sink = match ctx.router.publish(&req) {
        Ok(sink) => sink,
        Err(refusal) => {
            ctx.counters.refuse(refusal.label());
            warn!(%peer, stream_id = %shown, %refusal, "SRT publisher refused");
            let _ = tokio::time::timeout(answer, request.reject(reject_reason(&refusal))).await;
            return;
        }
    };

    // Accepting completes the handshake in the listener task; bound it in case that task is gone.
    let mut socket = match tokio::time::timeout(answer, request.accept(None)).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(e)) => {
            ctx.counters.refuse("protocol");
            warn!(%peer, stream_id = %shown, error = %e, "SRT handshake failed");
            sink.end(&format!("handshake failed: {e}"));
            return;
        }
        Err(_) => {
            ctx.counters.refuse("timeout");
            warn!(%peer, stream_id = %shown, "SRT handshake timed out");
            sink.end("handshake timeout");
            return;
        }
    };
    ctx.counters.publishes_accepted.fetch_add(1, Relaxed);
    info!(
        %peer,
        stream_id = %shown,
        latency = ?socket.settings().recv_tsbpd_latency,
        "SRT publisher accepted"
    );

    let reason = pump(&mut socket, sink.as_mut(), &ctx, stop).await;
    info!(%peer, stream_id = %shown, %reason, "SRT publisher ended");
    sink.end(&reason);
    // Dropping the socket sends the peer a shutdown if it is still there.
    drop(socket);
    drop(slot);
}

/// Moves packets from the socket to the sink until one side ends; returns why.
async fn pump(
    socket: &mut SrtSocket,
    sink: &mut dyn PublishSink,
    ctx: &Ctx,
    mut stop: watch::Receiver<bool>,
) -> String {
    let idle = ctx.limits.idle_timeout;
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return "shutdown".into(),
            next = tokio::time::timeout(idle, socket.next()) => next,
        };
        let data = match next {
            // Keep-alives do not count: only payload resets the idle clock.
            Err(_) => {
                ctx.counters.refuse("timeout");
                return "idle timeout".into();
            }
            // srt-tokio ends the stream on the peer's shutdown and on its own peer-idle timeout
            // (5 s without any packet); it does not say which.
            Ok(None) => return "connection closed".into(),
            Ok(Some(Err(e))) => return format!("receive error: {e}"),
            Ok(Some(Ok((_, data)))) => data,
        };
        if data.is_empty() {
            continue;
        }
        ctx.counters.bytes_in.fetch_add(data.len() as u64, Relaxed);
        if let Err(refusal) = sink.push(data) {
            ctx.counters.refuse(refusal.label());
            return format!("ended by the engine: {refusal}");
        }
    }
}

/// The SRT rejection code for a refusal (libsrt's `SRT_REJX_*`, HTTP-like, shown by callers).
fn reject_reason(refusal: &Refusal) -> RejectReason {
    use ServerRejectReason::*;
    RejectReason::Server(match refusal {
        Refusal::Malformed(_) => BadRequest,
        Refusal::BadKey(_) => Unauthorized,
        Refusal::UnknownRoom(_) | Refusal::UnknownSeat { .. } | Refusal::Gone => Notfound,
        Refusal::Busy(_) => Conflict,
        Refusal::NotPublish(_) => BadMode,
        Refusal::Other(_) => Forbidden,
    })
}

/// The stream id for log lines: the publish key (`s=`) hidden, length bounded, control characters
/// escaped (it is peer-controlled text).
fn redact(stream_id: &str) -> String {
    let shown = match stream_id.strip_prefix("#!::") {
        Some(body) => {
            let fields: Vec<String> = body
                .split(',')
                .map(|kv| match kv.split_once('=') {
                    Some(("s", _)) => "s=***".to_owned(),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("#!::{}", fields.join(","))
        }
        None => stream_id.to_owned(),
    };
    let mut shown: String = shown.chars().take(LOG_ID_MAX).collect();
    if stream_id.chars().count() > LOG_ID_MAX {
        shown.push('…');
    }
    format!("{shown:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_key() {
        assert_eq!(
            redact("#!::r=room1/host,m=publish,s=0123abcd"),
            r##""#!::r=room1/host,m=publish,s=***""##
        );
        assert_eq!(redact("#!::s=secret,r=a/b"), r##""#!::s=***,r=a/b""##);
        assert_eq!(redact("plain\nid"), r#""plain\nid""#);
        assert!(redact(&"x".repeat(600)).len() < 200);
    }

    #[test]
    fn refusals_map_to_http_like_codes() {
        assert_eq!(
            reject_reason(&Refusal::BadKey("h".into())),
            RejectReason::Server(ServerRejectReason::Unauthorized)
        );
        assert_eq!(
            reject_reason(&Refusal::UnknownRoom("r".into())),
            RejectReason::Server(ServerRejectReason::Notfound)
        );
    }
}
