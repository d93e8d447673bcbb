//! RTMP listener: accepts publishers (ffmpeg, OBS, hardware encoders) on one TCP socket, runs
//! the RTMP handshake and session with `rml_rtmp`, asks the `IngestRouter` whether a publish
//! may go ahead, and turns the accepted stream into an FLV byte stream for the seat's
//! `PublishSink`.
//!
//! This file owns:
//! - the accept loop with its connection cap, and one task per connection with the handshake,
//!   idle and write timeouts (`serve`);
//! - the FLV framing of RTMP audio/video/metadata messages (`FLV_HEADER`, `flv_tag`,
//!   `on_metadata_body`);
//! - `ChunkGuard`, a pre-parser that sees every byte before `rml_rtmp` does and closes the
//!   connection on input that would make `rml_rtmp` allocate without bound, panic, recurse
//!   without bound or keep state without bound (absurd chunk sizes and message lengths,
//!   interleaved chunk streams, deep AMF0 nesting, short commands, endless `createStream`).
//!
//! Refusals are counted on `Counters` with the router's labels and this listener's own:
//! `too_many` (connection cap), `timeout` (handshake/publish not done in time, idle publisher,
//! peer that does not read), `protocol` (anything the peer sent that is not acceptable RTMP).

use std::future::Future;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use super::{Counters, IngestRouter, Limits, Protocol, PublishRequest, PublishSink, Refusal};

/// Re-exported so that sinks can be written against this module without a direct dependency on
/// `bytes` (the end-to-end test crate has none).
pub use bytes::Bytes;

/// FLV file header: "FLV", version 1, flags audio+video (0x05), header size 9, then
/// PreviousTagSize0 = 0.
pub const FLV_HEADER: [u8; 13] = [b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0];
/// FLV tag types.
pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 32 * 1024;
/// After a refusal or a clean end, how long we keep reading (and discarding) so that the close
/// is a FIN and the peer gets to read our last message, not a reset.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 256 * 1024;
/// How long `serve` waits for connections to wind down after shutdown before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Accepts RTMP publishers on `listener` until `shutdown` resolves, then closes every
/// connection (their sinks get `end("listener shut down")`) and returns.
///
/// Each connection runs in its own task. `router.publish` and `PublishSink::push` are called
/// from that task (a tokio worker), so they must not block.
pub async fn serve(
    listener: TcpListener,
    router: Arc<dyn IngestRouter>,
    limits: Limits,
    counters: Arc<Counters>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let open = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, "rtmp ingest listening");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            // Reap finished connections so the set does not grow with every connection served.
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    tracing::error!("rtmp connection task panicked");
                }
            }
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("rtmp accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                counters.opened();
                if open.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
                    open.fetch_sub(1, Ordering::AcqRel);
                    counters.refuse("too_many");
                    counters.closed();
                    tracing::warn!(
                        %peer,
                        max = limits.max_connections,
                        "rtmp connection refused: too many connections"
                    );
                    drop(stream);
                    continue;
                }
                let slot = Slot {
                    open: open.clone(),
                    counters: counters.clone(),
                };
                let conn = Conn {
                    peer,
                    router: router.clone(),
                    limits: limits.clone(),
                    counters: counters.clone(),
                    publication: None,
                    target: String::new(),
                    handshake_deadline: Instant::now() + limits.handshake_timeout,
                };
                tasks.spawn(connection(stream, conn, stop_rx.clone(), slot));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!("rtmp connections did not close in time; aborting them");
        tasks.shutdown().await;
    }
    tracing::info!(addr = ?local, "rtmp ingest stopped");
}

/// One admitted connection's place under the cap; released however the task ends.
struct Slot {
    open: Arc<AtomicUsize>,
    counters: Arc<Counters>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.counters.closed();
    }
}

/// An accepted publication. `end` reaches the sink exactly once: explicitly when the
/// connection ends, or from `Drop` if the task is aborted or panics.
struct Publication {
    sink: Box<dyn PublishSink>,
    ended: bool,
    /// Timestamp of the last audio/video tag, for metadata tags that arrive mid-stream.
    last_ts: u32,
}

impl Publication {
    fn end(&mut self, reason: &str) {
        if !self.ended {
            self.ended = true;
            self.sink.end(reason);
        }
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        self.end("connection dropped");
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// The peer closed the socket.
    Closed,
    /// The publisher ended its publication (deleteStream, closeStream, FCUnpublish).
    Finished,
    /// Handshake/publish not done in time, idle publisher, or a peer that does not read.
    Timeout(&'static str),
    /// The peer sent something we do not accept.
    Protocol(String),
    /// The router refused the publish request.
    Refused(Refusal),
    /// The sink refused more bytes (seat removed, publisher taken over).
    SinkGone(Refusal),
    Io(std::io::Error),
    Shutdown,
}

impl End {
    /// Whether the socket is still in a state where a polite close is worth it.
    fn linger(&self) -> bool {
        matches!(self, End::Finished | End::Refused(_) | End::SinkGone(_))
    }
}

struct Conn {
    peer: SocketAddr,
    router: Arc<dyn IngestRouter>,
    limits: Limits,
    counters: Arc<Counters>,
    publication: Option<Publication>,
    /// "app/name" of the publish request, without the query (it holds the key), for logs.
    target: String,
    /// Handshake and publish request must both be done by then.
    handshake_deadline: Instant,
}

async fn connection(
    mut stream: TcpStream,
    mut conn: Conn,
    mut stop: watch::Receiver<bool>,
    _slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let end = tokio::select! {
        end = conn.run(&mut stream) => end,
        // Also resolves (with an error) when `serve` is gone.
        _ = stop.wait_for(|stop| *stop) => End::Shutdown,
    };
    let linger = end.linger();
    conn.finish(end);
    if linger {
        polite_close(&mut stream).await;
    }
}

/// Half-closes and reads until the peer closes (bounded in time and bytes), so our last
/// message (an `_error`, say) is not thrown away by a reset.
async fn polite_close(stream: &mut TcpStream) {
    let deadline = Instant::now() + LINGER;
    let _ = timeout_at(deadline, stream.shutdown()).await;
    let mut buf = [0u8; 4096];
    let mut seen = 0;
    while seen < LINGER_BYTES {
        match timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen += n,
            _ => break,
        }
    }
}

impl Conn {
    async fn run(&mut self, stream: &mut TcpStream) -> End {
        let mut buf = vec![0u8; READ_CHUNK];

        let mut handshake = Handshake::new(PeerType::Server);
        let leftover = loop {
            let n = match self.read(stream, &mut buf).await {
                Ok(n) => n,
                Err(end) => return end,
            };
            match handshake.process_bytes(&buf[..n]) {
                Err(e) => return End::Protocol(format!("handshake failed: {e:?}")),
                Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                    if let Err(end) = self.write(stream, &response_bytes).await {
                        return end;
                    }
                }
                Ok(HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                }) => {
                    if let Err(end) = self.write(stream, &response_bytes).await {
                        return end;
                    }
                    break remaining_bytes;
                }
            }
        };

        let (mut session, initial) = match ServerSession::new(ServerSessionConfig::new()) {
            Ok(x) => x,
            Err(e) => return End::Protocol(format!("cannot start the rtmp session: {e:?}")),
        };
        let mut out = Vec::new();
        for r in initial {
            if let ServerSessionResult::OutboundResponse(p) = r {
                out.extend_from_slice(&p.bytes);
            }
        }
        let mut guard = ChunkGuard::new(self.limits.max_chunk_size, self.limits.max_message_len);
        let mut input: &[u8] = &leftover;
        loop {
            let result = if input.is_empty() {
                Ok(())
            } else {
                self.input(&mut session, &mut guard, input, &mut out)
            };
            // Responses first: a refusal's `_error` must reach the peer before we close.
            if !out.is_empty() {
                let sent = self.write(stream, &out).await;
                out.clear();
                if let Err(end) = sent {
                    return result.err().unwrap_or(end);
                }
            }
            if let Err(end) = result {
                return end;
            }
            let n = match self.read(stream, &mut buf).await {
                Ok(n) => n,
                Err(end) => return end,
            };
            input = &buf[..n];
        }
    }

    /// Before the publish is accepted, the handshake deadline; after, the idle timeout.
    fn deadline(&self) -> (Instant, &'static str) {
        if self.publication.is_some() {
            (Instant::now() + self.limits.idle_timeout, "idle timeout")
        } else {
            (self.handshake_deadline, "handshake timeout")
        }
    }

    async fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> Result<usize, End> {
        let (deadline, what) = self.deadline();
        match timeout_at(deadline, stream.read(buf)).await {
            Err(_) => Err(End::Timeout(what)),
            Ok(Err(e)) => Err(End::Io(e)),
            Ok(Ok(0)) => Err(End::Closed),
            Ok(Ok(n)) => {
                self.counters
                    .bytes_in
                    .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(n)
            }
        }
    }

    async fn write(&mut self, stream: &mut TcpStream, bytes: &[u8]) -> Result<(), End> {
        if bytes.is_empty() {
            return Ok(());
        }
        // A peer that does not read our responses must not hold the connection forever.
        let (deadline, what) = self.deadline();
        match timeout_at(deadline, stream.write_all(bytes)).await {
            Err(_) => Err(End::Timeout(what)),
            Ok(Err(e)) => Err(End::Io(e)),
            Ok(Ok(())) => Ok(()),
        }
    }
}

impl Conn {
    /// Hands the peer's bytes to the guard, then to the session, and acts on what comes out.
    fn input(
        &mut self,
        session: &mut ServerSession,
        guard: &mut ChunkGuard,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), End> {
        let cuts = guard
            .feed(bytes)
            .map_err(|e| End::Protocol(e.to_string()))?;
        // The session drops media for a stream whose publish is not accepted yet, so hand it
        // the bytes one command at a time: a pipelined publish is accepted before the media
        // that follows it is parsed.
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            if cut <= start {
                continue;
            }
            let segment = &bytes[start..cut];
            start = cut;
            // The guard rules out every panic we know of in rml_rtmp; this catches the rest so
            // that a peer can cost us its connection, never the listener.
            let results = match catch_unwind(AssertUnwindSafe(|| session.handle_input(segment))) {
                Ok(Ok(results)) => results,
                Ok(Err(e)) => return Err(End::Protocol(format!("rtmp session: {e:?}"))),
                Err(_) => return Err(End::Protocol("rtmp session failed on peer input".into())),
            };
            for result in results {
                match result {
                    ServerSessionResult::OutboundResponse(p) => out.extend_from_slice(&p.bytes),
                    ServerSessionResult::RaisedEvent(event) => self.event(session, event, out)?,
                    ServerSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
        }
        Ok(())
    }

    fn event(
        &mut self,
        session: &mut ServerSession,
        event: ServerSessionEvent,
        out: &mut Vec<u8>,
    ) -> Result<(), End> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                tracing::debug!(peer = %self.peer, app = %app_name, "rtmp connect");
                let results = session
                    .accept_request(request_id)
                    .map_err(|e| End::Protocol(format!("connect: {e:?}")))?;
                outbound(results, out);
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => self.publish(session, request_id, app_name, stream_key, out)?,
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => self.media(TAG_AUDIO, timestamp.value, &data)?,
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => self.media(TAG_VIDEO, timestamp.value, &data)?,
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                let ts = self.publication.as_ref().map_or(0, |p| p.last_ts);
                self.media(TAG_SCRIPT, ts, &on_metadata_body(&metadata))?;
            }
            ServerSessionEvent::PublishStreamFinished { .. } => return Err(End::Finished),
            ServerSessionEvent::UnhandleableAmf0Command { command_name, .. }
                if command_name == "FCUnpublish" && self.publication.is_some() =>
            {
                return Err(End::Finished);
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let results = session
                    .reject_request(
                        request_id,
                        "NetStream.Play.Failed",
                        "this is an ingest server",
                    )
                    .map_err(|e| End::Protocol(format!("play: {e:?}")))?;
                outbound(results, out);
                return Err(End::Protocol(
                    "play requested on the ingest listener".into(),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn publish(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        app: String,
        name: String,
        out: &mut Vec<u8>,
    ) -> Result<(), End> {
        let target = format!("{app}/{}", public_name(&name));
        if self.publication.is_some() {
            // One connection feeds one seat; the first publication goes on.
            tracing::warn!(
                peer = %self.peer, first = %self.target, second = %target,
                "rtmp: second publish on one connection refused"
            );
            self.counters.refuse("protocol");
            let results = session
                .reject_request(
                    request_id,
                    "NetStream.Publish.BadName",
                    "one publish per connection",
                )
                .map_err(|e| End::Protocol(format!("publish: {e:?}")))?;
            outbound(results, out);
            return Ok(());
        }
        self.target = target;
        let req = PublishRequest {
            protocol: Protocol::Rtmp,
            app,
            name,
            peer: self.peer,
        };
        match self.router.publish(&req) {
            Err(refusal) => {
                let results = session
                    .reject_request(request_id, refusal_code(&refusal), &refusal.to_string())
                    .map_err(|e| End::Protocol(format!("publish: {e:?}")))?;
                outbound(results, out);
                Err(End::Refused(refusal))
            }
            Ok(sink) => {
                let results = session
                    .accept_request(request_id)
                    .map_err(|e| End::Protocol(format!("publish: {e:?}")))?;
                outbound(results, out);
                self.counters
                    .publishes_accepted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(peer = %self.peer, target = %self.target, "rtmp publish accepted");
                let publication = self.publication.insert(Publication {
                    sink,
                    ended: false,
                    last_ts: 0,
                });
                publication
                    .sink
                    .push(Bytes::from_static(&FLV_HEADER))
                    .map_err(End::SinkGone)
            }
        }
    }

    /// One RTMP audio/video/metadata message → one FLV tag to the sink.
    fn media(&mut self, tag_type: u8, ts: u32, body: &[u8]) -> Result<(), End> {
        // The session only raises media for the stream whose publish we accepted.
        let Some(publication) = self.publication.as_mut() else {
            return Ok(());
        };
        if tag_type != TAG_SCRIPT {
            publication.last_ts = ts;
        }
        // Bodies come from 24-bit RTMP message lengths, so they always fit an FLV tag.
        let Some(tag) = flv_tag(tag_type, ts, body) else {
            return Err(End::Protocol("message too large for an flv tag".into()));
        };
        publication.sink.push(tag).map_err(End::SinkGone)
    }

    /// Counts, logs and ends the publication, once per connection.
    fn finish(&mut self, end: End) {
        let peer = self.peer;
        let target = if self.target.is_empty() {
            "-"
        } else {
            self.target.as_str()
        };
        let reason = match &end {
            End::Closed => {
                if self.publication.is_some() {
                    tracing::info!(%peer, %target, "rtmp publisher disconnected");
                } else {
                    tracing::debug!(%peer, "rtmp peer closed before publishing");
                }
                "connection closed".to_owned()
            }
            End::Finished => {
                tracing::info!(%peer, %target, "rtmp publish finished");
                "publisher finished".to_owned()
            }
            End::Timeout(what) => {
                self.counters.refuse("timeout");
                tracing::warn!(%peer, %target, "rtmp connection closed: {what}");
                (*what).to_owned()
            }
            End::Protocol(msg) => {
                self.counters.refuse("protocol");
                tracing::warn!(%peer, %target, "rtmp connection closed: protocol error: {msg}");
                format!("protocol error: {msg}")
            }
            End::Refused(refusal) => {
                self.counters.refuse(refusal.label());
                tracing::warn!(%peer, %target, "rtmp publish refused: {refusal}");
                format!("refused: {refusal}")
            }
            End::SinkGone(refusal) => {
                tracing::info!(%peer, %target, "rtmp publisher dropped by the engine: {refusal}");
                format!("sink closed: {refusal}")
            }
            End::Io(e) => {
                tracing::info!(%peer, %target, "rtmp connection failed: {e}");
                format!("network error: {e}")
            }
            End::Shutdown => {
                tracing::debug!(%peer, %target, "rtmp connection closed: shutdown");
                "listener shut down".to_owned()
            }
        };
        if let Some(publication) = self.publication.as_mut() {
            publication.end(&reason);
        }
    }
}

fn outbound(results: Vec<ServerSessionResult>, out: &mut Vec<u8>) {
    for r in results {
        if let ServerSessionResult::OutboundResponse(p) = r {
            out.extend_from_slice(&p.bytes);
        }
    }
}

/// The stream name without its query string: the publish key must not reach the logs.
fn public_name(name: &str) -> &str {
    name.split_once('?').map_or(name, |(n, _)| n)
}

/// The NetStream status code a refused publisher sees.
fn refusal_code(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::BadKey(_) | Refusal::NotPublish(_) | Refusal::Other(_) => {
            "NetStream.Publish.Denied"
        }
        Refusal::Malformed(_)
        | Refusal::UnknownRoom(_)
        | Refusal::UnknownSeat { .. }
        | Refusal::Busy(_)
        | Refusal::Gone => "NetStream.Publish.BadName",
    }
}

// ---------------------------------------------------------------------------------------------
// FLV framing

/// One FLV tag: 11-byte tag header (type, 24-bit data size, 24-bit timestamp + 8-bit extended
/// timestamp, stream id 0), the body as-is, then the 4-byte PreviousTagSize (11 + body).
/// `None` if the body does not fit the 24-bit size field.
pub fn flv_tag(tag_type: u8, timestamp_ms: u32, body: &[u8]) -> Option<Bytes> {
    let size = u32::try_from(body.len()).ok().filter(|n| *n <= 0xff_ffff)?;
    let mut tag = BytesMut::with_capacity(11 + body.len() + 4);
    tag.put_u8(tag_type);
    tag.put_slice(&size.to_be_bytes()[1..]);
    tag.put_slice(&timestamp_ms.to_be_bytes()[1..]);
    tag.put_u8((timestamp_ms >> 24) as u8);
    tag.put_slice(&[0, 0, 0]);
    tag.put_slice(body);
    tag.put_u32(11 + size);
    Some(tag.freeze())
}

/// The body of an `onMetaData` script tag (AMF0 string + ECMA array) built from the metadata
/// the publisher sent with `@setDataFrame` (rml_rtmp hands it over parsed, keeping the
/// standard fields).
pub fn on_metadata_body(m: &StreamMetadata) -> Vec<u8> {
    let mut numbers: Vec<(&str, f64)> = Vec::new();
    let mut push = |key, value: Option<f64>| {
        if let Some(v) = value {
            numbers.push((key, v));
        }
    };
    push("width", m.video_width.map(f64::from));
    push("height", m.video_height.map(f64::from));
    push("videocodecid", m.video_codec_id.map(f64::from));
    push("videodatarate", m.video_bitrate_kbps.map(f64::from));
    push("framerate", m.video_frame_rate.map(f64::from));
    push("audiocodecid", m.audio_codec_id.map(f64::from));
    push("audiodatarate", m.audio_bitrate_kbps.map(f64::from));
    push("audiosamplerate", m.audio_sample_rate.map(f64::from));
    push("audiochannels", m.audio_channels.map(f64::from));
    // AMF0 short strings carry at most 65535 bytes.
    let encoder = m.encoder.as_deref().filter(|e| e.len() <= 0xffff);
    let count =
        numbers.len() + usize::from(m.audio_is_stereo.is_some()) + usize::from(encoder.is_some());

    let mut b = Vec::with_capacity(64 + 24 * count);
    amf0_string(&mut b, "onMetaData");
    b.push(AMF0_ECMA_ARRAY);
    b.extend_from_slice(&(count as u32).to_be_bytes());
    for (key, value) in numbers {
        amf0_key(&mut b, key);
        b.push(AMF0_NUMBER);
        b.extend_from_slice(&value.to_be_bytes());
    }
    if let Some(stereo) = m.audio_is_stereo {
        amf0_key(&mut b, "stereo");
        b.push(AMF0_BOOLEAN);
        b.push(u8::from(stereo));
    }
    if let Some(encoder) = encoder {
        amf0_key(&mut b, "encoder");
        amf0_string(&mut b, encoder);
    }
    b.extend_from_slice(&[0, 0, AMF0_OBJECT_END]);
    b
}

/// Key of an AMF0 object property (callers pass at most 65535 bytes).
fn amf0_key(b: &mut Vec<u8>, key: &str) {
    b.extend_from_slice(&(key.len() as u16).to_be_bytes());
    b.extend_from_slice(key.as_bytes());
}

fn amf0_string(b: &mut Vec<u8>, s: &str) {
    b.push(AMF0_STRING);
    amf0_key(b, s);
}

const AMF0_NUMBER: u8 = 0x00;
const AMF0_BOOLEAN: u8 = 0x01;
const AMF0_STRING: u8 = 0x02;
const AMF0_OBJECT: u8 = 0x03;
const AMF0_NULL: u8 = 0x05;
const AMF0_UNDEFINED: u8 = 0x06;
const AMF0_ECMA_ARRAY: u8 = 0x08;
const AMF0_OBJECT_END: u8 = 0x09;
const AMF0_STRICT_ARRAY: u8 = 0x0a;

// ---------------------------------------------------------------------------------------------
// Chunk pre-parser

/// The chunk size every RTMP peer starts with.
const INITIAL_CHUNK_SIZE: u32 = 128;
/// Distinct chunk streams a peer may use (encoders use a handful; each costs state here and
/// in rml_rtmp).
const MAX_CHUNK_STREAMS: usize = 64;
/// Largest command/data (AMF) message: these are reassembled here to be checked. ffmpeg's and
/// OBS's metadata are well under 1 KiB.
const MAX_AMF_MESSAGE: u32 = 64 * 1024;
/// Nesting of AMF0 objects/arrays (rml_amf0 recurses per level; onMetaData nests 2-3 deep).
const MAX_AMF_DEPTH: usize = 32;
/// `createStream` commands per connection (rml_rtmp keeps every created stream until
/// deleteStream; a publisher needs one).
const MAX_CREATE_STREAM: u32 = 16;
/// Longest chunk header: 3-byte basic header, 11-byte type 0 header, 4-byte extended timestamp.
const MAX_HEADER: usize = 18;
const EXTENDED_TIMESTAMP: u32 = 0xff_ffff;

/// Why the pre-parser refused the peer's bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk size {0} is out of range (limit {1})")]
    ChunkSize(u32, u32),
    #[error("message length {0} is above the limit {1}")]
    MessageLength(u32, u32),
    #[error("command/data message of {0} bytes is too long")]
    AmfTooLong(u32),
    #[error("chunk on stream {0} refers to a previous header that was never sent")]
    NoPreviousHeader(u32),
    #[error("chunk on stream {0} interrupts the unfinished message on stream {1}")]
    Interleaved(u32, u32),
    #[error("more than {MAX_CHUNK_STREAMS} chunk streams")]
    TooManyChunkStreams,
    #[error("extended timestamp {0} below 0xffffff in a delta header")]
    BadExtendedTimestamp(u32),
    #[error("malformed set-chunk-size message")]
    BadSetChunkSize,
    #[error("malformed AMF0: {0}")]
    Amf(&'static str),
    #[error("more than {MAX_CREATE_STREAM} createStream commands")]
    TooManyStreams,
}

/// What the guard remembers per chunk stream: the fields later headers may leave out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkStream {
    pub length: u32,
    pub type_id: u8,
    /// The 24-bit timestamp (or delta) field of the last type 0/1/2 header; 0xffffff means
    /// every chunk on this stream, type 3 included, carries an extended timestamp.
    pub ts_field: u32,
}

/// A parsed chunk header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Header type (0 full, 1 no stream id, 2 timestamp delta only, 3 none).
    pub fmt: u8,
    pub csid: u32,
    /// The chunk stream's fields after this header.
    pub stream: ChunkStream,
    pub extended_ts: Option<u32>,
    /// Header length in bytes.
    pub len: usize,
}

/// Parses one chunk header from the start of `buf`. `Ok(None)`: more bytes needed.
/// `previous` gives what was last seen on a chunk stream (types 1-3 inherit from it).
pub fn parse_chunk_header(
    buf: &[u8],
    previous: impl Fn(u32) -> Option<ChunkStream>,
) -> Result<Option<ChunkHeader>, ChunkError> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    let fmt = b0 >> 6;
    let (csid, basic) = match b0 & 0x3f {
        0 => match buf.get(1) {
            Some(&b1) => (u32::from(b1) + 64, 2),
            None => return Ok(None),
        },
        1 => match (buf.get(1), buf.get(2)) {
            (Some(&b1), Some(&b2)) => (u32::from(b2) * 256 + u32::from(b1) + 64, 3),
            _ => return Ok(None),
        },
        x => (u32::from(x), 1),
    };
    let prev = previous(csid);
    if fmt != 0 && prev.is_none() {
        return Err(ChunkError::NoPreviousHeader(csid));
    }
    let message_header = [11, 7, 3, 0][usize::from(fmt)];
    let Some(h) = buf.get(basic..basic + message_header) else {
        return Ok(None);
    };
    let u24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
    let stream = match (fmt, prev) {
        (0, _) => ChunkStream {
            ts_field: u24(&h[0..3]),
            length: u24(&h[3..6]),
            type_id: h[6],
        },
        (1, Some(_)) => ChunkStream {
            ts_field: u24(&h[0..3]),
            length: u24(&h[3..6]),
            type_id: h[6],
        },
        (2, Some(p)) => ChunkStream {
            ts_field: u24(&h[0..3]),
            ..p
        },
        (_, Some(p)) => p,
        (_, None) => return Err(ChunkError::NoPreviousHeader(csid)),
    };
    let mut len = basic + message_header;
    let extended_ts = if stream.ts_field >= EXTENDED_TIMESTAMP {
        let Some(e) = buf.get(len..len + 4) else {
            return Ok(None);
        };
        len += 4;
        Some(u32::from_be_bytes([e[0], e[1], e[2], e[3]]))
    } else {
        None
    };
    Ok(Some(ChunkHeader {
        fmt,
        csid,
        stream,
        extended_ts,
        len,
    }))
}

/// The message being received.
#[derive(Debug)]
struct Partial {
    csid: u32,
    type_id: u8,
    length: u32,
    received: u32,
    /// The body, kept for the messages that are checked here (control, command, data).
    body: Option<Vec<u8>>,
}

/// Sees every byte of the chunk stream before rml_rtmp does and refuses what rml_rtmp would
/// mishandle. It mirrors rml_rtmp's ChunkDeserializer (one message in assembly at a time,
/// chunk size changes applied between messages) and keeps O(1) state: no media payload is
/// buffered, only headers (≤ 18 bytes) and control/command/data messages (≤ 64 KiB).
///
/// Why: rml_rtmp accepts chunk sizes up to 2^31-1 and reserves a whole message (up to 16 MiB)
/// per chunk stream message; an unfinished message interrupted by another chunk stream makes
/// it compute a negative remaining length (a panic, or in release a wrapped huge reserve that
/// aborts the process); a delta extended timestamp below 0xffffff underflows; AMF0 values nest
/// by recursion (a few KiB of nesting overflows the stack); a command of fewer than three AMF
/// values and a short `@setDataFrame` index out of bounds; every `createStream` is kept.
#[derive(Debug)]
pub struct ChunkGuard {
    max_chunk_size: u32,
    max_message_len: u32,
    chunk_size: u32,
    streams: Vec<(u32, ChunkStream)>,
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// Payload bytes of the current chunk still to come; `None` while reading a header.
    chunk_left: Option<u32>,
    message: Option<Partial>,
    create_streams: u32,
    cuts: Vec<usize>,
}

impl ChunkGuard {
    pub fn new(max_chunk_size: u32, max_message_len: u32) -> Self {
        Self {
            max_chunk_size,
            max_message_len,
            chunk_size: INITIAL_CHUNK_SIZE,
            streams: Vec::new(),
            header: [0; MAX_HEADER],
            header_len: 0,
            chunk_left: None,
            message: None,
            create_streams: 0,
            cuts: Vec::new(),
        }
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Checks the next bytes of the stream. On success returns the offsets in `bytes` just
    /// after each complete command message (AMF0 types 20 and 17), where the caller may split
    /// the input to act on a command before the bytes that follow it.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<&[usize], ChunkError> {
        self.cuts.clear();
        let mut i = 0;
        while i < bytes.len() {
            match self.chunk_left {
                None => {
                    // Headers are tiny: collect them byte by byte until they parse.
                    self.header[self.header_len] = bytes[i];
                    self.header_len += 1;
                    i += 1;
                    let streams = &self.streams;
                    let parsed = parse_chunk_header(&self.header[..self.header_len], |csid| {
                        lookup(streams, csid)
                    })?;
                    if let Some(h) = parsed {
                        self.header_len = 0;
                        let n = self.start_chunk(&h)?;
                        self.chunk_left = Some(n);
                        if n == 0 {
                            self.end_chunk(0, i)?;
                        }
                    } else if self.header_len == MAX_HEADER {
                        // Cannot happen: every header is complete within 18 bytes.
                        return Err(ChunkError::Amf("chunk header overflow"));
                    }
                }
                Some(left) => {
                    let take = (bytes.len() - i).min(left as usize);
                    if let Some(body) = self.message.as_mut().and_then(|m| m.body.as_mut()) {
                        body.extend_from_slice(&bytes[i..i + take]);
                    }
                    i += take;
                    let left = left - take as u32;
                    self.chunk_left = Some(left);
                    if left == 0 {
                        let chunk = self.chunk_len_done();
                        self.end_chunk(chunk, i)?;
                    }
                }
            }
        }
        Ok(&self.cuts)
    }

    /// Length of the chunk whose payload just completed.
    fn chunk_len_done(&self) -> u32 {
        self.message
            .as_ref()
            .map_or(0, |m| (m.length - m.received).min(self.chunk_size))
    }

    /// Validates a header against the message in assembly; returns the chunk's payload length.
    fn start_chunk(&mut self, h: &ChunkHeader) -> Result<u32, ChunkError> {
        if let Some(m) = &self.message {
            // rml_rtmp assembles one message at a time: the rest of it must follow, in type 3
            // chunks on the same chunk stream.
            if h.fmt != 3 || h.csid != m.csid {
                return Err(ChunkError::Interleaved(h.csid, m.csid));
            }
            return Ok((m.length - m.received).min(self.chunk_size));
        }
        if h.fmt != 0
            && let Some(ext) = h.extended_ts
            && ext < EXTENDED_TIMESTAMP
        {
            return Err(ChunkError::BadExtendedTimestamp(ext));
        }
        if h.stream.length > self.max_message_len {
            return Err(ChunkError::MessageLength(
                h.stream.length,
                self.max_message_len,
            ));
        }
        match self.streams.iter().position(|(c, _)| *c == h.csid) {
            Some(i) => self.streams[i].1 = h.stream,
            None if self.streams.len() >= MAX_CHUNK_STREAMS => {
                return Err(ChunkError::TooManyChunkStreams);
            }
            None => self.streams.push((h.csid, h.stream)),
        }
        let keep = matches!(h.stream.type_id, 1 | 15 | 17 | 18 | 20);
        if keep && h.stream.length > MAX_AMF_MESSAGE {
            return Err(ChunkError::AmfTooLong(h.stream.length));
        }
        self.message = Some(Partial {
            csid: h.csid,
            type_id: h.stream.type_id,
            length: h.stream.length,
            received: 0,
            body: keep.then(|| Vec::with_capacity(h.stream.length as usize)),
        });
        Ok(h.stream.length.min(self.chunk_size))
    }

    /// A chunk's payload of `len` bytes ended at offset `at` of the current input.
    fn end_chunk(&mut self, len: u32, at: usize) -> Result<(), ChunkError> {
        self.chunk_left = None;
        let Some(m) = self.message.as_mut() else {
            return Ok(());
        };
        m.received += len;
        if m.received < m.length {
            return Ok(());
        }
        let Some(m) = self.message.take() else {
            return Ok(());
        };
        let body = m.body.unwrap_or_default();
        match m.type_id {
            1 => {
                let size = body
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or(ChunkError::BadSetChunkSize)?;
                if size == 0 || size > self.max_chunk_size {
                    return Err(ChunkError::ChunkSize(size, self.max_chunk_size));
                }
                self.chunk_size = size;
            }
            17 | 20 => {
                // rml_rtmp strips the leading 0 byte of "AMF3" commands, as here.
                let amf = match (m.type_id, body.first()) {
                    (17, Some(0)) => &body[1..],
                    _ => &body[..],
                };
                let shape = amf0_shape(amf)?;
                if shape.values < 3 {
                    return Err(ChunkError::Amf("command with fewer than three values"));
                }
                if shape.first_string == Some(b"createStream".as_slice()) {
                    self.create_streams += 1;
                    if self.create_streams > MAX_CREATE_STREAM {
                        return Err(ChunkError::TooManyStreams);
                    }
                }
                self.cuts.push(at);
            }
            15 | 18 => {
                let shape = amf0_shape(&body)?;
                if shape.first_string == Some(b"@setDataFrame".as_slice()) && shape.values < 3 {
                    return Err(ChunkError::Amf("@setDataFrame without name and value"));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn lookup(streams: &[(u32, ChunkStream)], csid: u32) -> Option<ChunkStream> {
    streams.iter().find(|(c, _)| *c == csid).map(|(_, s)| *s)
}

/// What the guard needs to know of an AMF0 message.
#[derive(Debug, PartialEq, Eq)]
pub struct AmfShape<'a> {
    /// Top-level values, as rml_amf0 would return them (up to the end or a top-level 0x09).
    pub values: usize,
    /// The first top-level value, if it is a string.
    pub first_string: Option<&'a [u8]>,
}

/// Walks AMF0 values the way rml_amf0 parses them, without recursion, and refuses nesting
/// deeper than `MAX_AMF_DEPTH`, unknown markers and truncated values.
pub fn amf0_shape(data: &[u8]) -> Result<AmfShape<'_>, ChunkError> {
    enum Frame {
        Object,
        Array(u32),
    }
    let mut r = Reader { data, pos: 0 };
    let mut values = 0;
    let mut first_string = None;
    let mut stack: Vec<Frame> = Vec::new();
    while let Some(mut marker) = r.next_marker() {
        loop {
            // One value with `marker`; containers push a frame.
            match marker {
                AMF0_NUMBER => r.skip(8)?,
                AMF0_BOOLEAN => r.skip(1)?,
                AMF0_NULL | AMF0_UNDEFINED => {}
                AMF0_STRING => {
                    let n = r.u16()?;
                    let s = r.take(usize::from(n))?;
                    if stack.is_empty() && values == 0 {
                        first_string = Some(s);
                    }
                }
                AMF0_OBJECT | AMF0_ECMA_ARRAY | AMF0_STRICT_ARRAY => {
                    if stack.len() >= MAX_AMF_DEPTH {
                        return Err(ChunkError::Amf("nested too deep"));
                    }
                    stack.push(match marker {
                        AMF0_OBJECT => Frame::Object,
                        AMF0_ECMA_ARRAY => {
                            r.skip(4)?;
                            Frame::Object
                        }
                        _ => Frame::Array(r.u32()?),
                    });
                }
                _ => return Err(ChunkError::Amf("unknown marker")),
            }
            // The next value inside the innermost open container, closing finished ones.
            let next = loop {
                match stack.last_mut() {
                    None => break None,
                    Some(Frame::Object) => {
                        let key = r.u16()?;
                        if key == 0 {
                            if r.u8()? != AMF0_OBJECT_END {
                                return Err(ChunkError::Amf("empty property name"));
                            }
                            stack.pop();
                            continue;
                        }
                        r.skip(usize::from(key))?;
                        match r.next_marker() {
                            Some(m) => break Some(m),
                            None => return Err(ChunkError::Amf("property without value")),
                        }
                    }
                    Some(Frame::Array(left)) => {
                        if *left == 0 {
                            stack.pop();
                            continue;
                        }
                        *left -= 1;
                        match r.next_marker() {
                            Some(m) => break Some(m),
                            // rml_amf0 ends a strict array early at the end or an end marker.
                            None => {
                                stack.pop();
                                continue;
                            }
                        }
                    }
                }
            };
            match next {
                Some(m) => marker = m,
                None => break,
            }
        }
        values += 1;
    }
    Ok(AmfShape {
        values,
        first_string,
    })
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ChunkError> {
        let s = self
            .data
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or(ChunkError::Amf("truncated value"))?;
        self.pos += n;
        Ok(s)
    }
    fn skip(&mut self, n: usize) -> Result<(), ChunkError> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Result<u8, ChunkError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ChunkError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, ChunkError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// The next value's marker; `None` at the end of the data or at an object-end marker
    /// (both end a value list in rml_amf0).
    fn next_marker(&mut self) -> Option<u8> {
        let m = *self.data.get(self.pos)?;
        self.pos += 1;
        (m != AMF0_OBJECT_END).then_some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
    use rml_rtmp::messages::{MessagePayload, RtmpMessage};
    use rml_rtmp::rml_amf0::{self, Amf0Value};
    use rml_rtmp::time::RtmpTimestamp;
    use std::collections::HashMap;

    const MIB: u32 = 1 << 20;

    fn guard() -> ChunkGuard {
        ChunkGuard::new(MIB, 8 * MIB)
    }

    fn command(name: &str, txn: f64, args: Vec<Amf0Value>) -> RtmpMessage {
        RtmpMessage::Amf0Command {
            command_name: name.into(),
            transaction_id: txn,
            command_object: Amf0Value::Null,
            additional_arguments: args,
        }
    }

    fn payload(m: RtmpMessage, ts: u32, stream: u32) -> MessagePayload {
        MessagePayload::from_rtmp_message(m, RtmpTimestamp::new(ts), stream).unwrap()
    }

    /// A publisher's chunk stream as rml_rtmp's own serializer writes it (header compression,
    /// split messages, extended timestamps), and the messages in it.
    fn publisher_stream() -> (Vec<u8>, Vec<MessagePayload>, Vec<usize>) {
        let mut ser = ChunkSerializer::new();
        let mut bytes = Vec::new();
        let mut messages = Vec::new();
        let mut command_ends = Vec::new();
        let mut connect = HashMap::new();
        connect.insert("app".to_owned(), Amf0Value::Utf8String("room1".into()));
        let mut msgs = vec![
            payload(
                RtmpMessage::Amf0Command {
                    command_name: "connect".into(),
                    transaction_id: 1.0,
                    command_object: Amf0Value::Object(connect),
                    additional_arguments: vec![],
                },
                0,
                0,
            ),
            payload(command("createStream", 2.0, vec![]), 0, 0),
            payload(
                command(
                    "publish",
                    3.0,
                    vec![
                        Amf0Value::Utf8String("host?key=good".into()),
                        Amf0Value::Utf8String("live".into()),
                    ],
                ),
                0,
                1,
            ),
        ];
        let mut meta = HashMap::new();
        meta.insert("width".to_owned(), Amf0Value::Number(640.0));
        msgs.push(payload(
            RtmpMessage::Amf0Data {
                values: vec![
                    Amf0Value::Utf8String("@setDataFrame".into()),
                    Amf0Value::Utf8String("onMetaData".into()),
                    Amf0Value::Object(meta),
                ],
            },
            0,
            1,
        ));
        // Media around and past the 24-bit timestamp limit, some bigger than a chunk.
        for (i, ts) in [0u32, 33, 66, 0xff_fff0, 0x100_0010, 0x200_0000, 0x200_0021]
            .into_iter()
            .enumerate()
        {
            let video = vec![0x17; 100 + 3000 * (i % 3)];
            msgs.push(payload(
                RtmpMessage::VideoData {
                    data: Bytes::from(video),
                },
                ts,
                1,
            ));
            msgs.push(payload(
                RtmpMessage::AudioData {
                    data: Bytes::from(vec![0xaf; 200]),
                },
                ts,
                1,
            ));
        }
        for (i, m) in msgs.into_iter().enumerate() {
            if i == 2 {
                // Switch to a bigger chunk size mid-stream, as ffmpeg does.
                bytes.extend(
                    ser.set_max_chunk_size(4096, RtmpTimestamp::new(0))
                        .unwrap()
                        .bytes,
                );
                messages.push(payload(RtmpMessage::SetChunkSize { size: 4096 }, 0, 0));
            }
            bytes.extend(ser.serialize(&m, false, false).unwrap().bytes);
            if m.type_id == 20 {
                command_ends.push(bytes.len());
            }
            messages.push(m);
        }
        (bytes, messages, command_ends)
    }

    #[test]
    fn flv_header_is_version_1_audio_video() {
        assert_eq!(&FLV_HEADER[..3], b"FLV");
        assert_eq!(FLV_HEADER[3], 1);
        assert_eq!(FLV_HEADER[4], 0x05);
        assert_eq!(u32::from_be_bytes(FLV_HEADER[5..9].try_into().unwrap()), 9);
        assert_eq!(&FLV_HEADER[9..], &[0, 0, 0, 0]);
    }

    #[test]
    fn flv_tag_layout_with_extended_timestamp() {
        let tag = flv_tag(TAG_VIDEO, 0x1234_5678, &[1, 2, 3]).unwrap();
        assert_eq!(
            &tag[..],
            &[
                9, 0, 0, 3, 0x34, 0x56, 0x78, 0x12, 0, 0, 0, 1, 2, 3, 0, 0, 0, 14
            ]
        );
        let tag = flv_tag(TAG_AUDIO, 40, &[]).unwrap();
        assert_eq!(&tag[..], &[8, 0, 0, 0, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 11]);
    }

    #[test]
    fn flv_tag_refuses_bodies_beyond_24_bits() {
        assert!(flv_tag(TAG_VIDEO, 0, &vec![0; 0xff_ffff]).is_some());
        assert!(flv_tag(TAG_VIDEO, 0, &vec![0; 0x100_0000]).is_none());
    }

    #[test]
    fn on_metadata_is_an_amf0_string_and_ecma_array() {
        let mut m = StreamMetadata::new();
        m.video_width = Some(1280);
        m.video_height = Some(720);
        m.video_codec_id = Some(7);
        m.audio_sample_rate = Some(48000);
        m.audio_is_stereo = Some(true);
        m.encoder = Some("Lavf59".into());
        let body = on_metadata_body(&m);
        assert_eq!(body[13], AMF0_ECMA_ARRAY);
        assert_eq!(u32::from_be_bytes(body[14..18].try_into().unwrap()), 6);
        let values = rml_amf0::deserialize(&mut std::io::Cursor::new(&body)).unwrap();
        assert_eq!(values[0], Amf0Value::Utf8String("onMetaData".into()));
        let Amf0Value::Object(props) = &values[1] else {
            panic!("{values:?}");
        };
        assert_eq!(props["width"], Amf0Value::Number(1280.0));
        assert_eq!(props["height"], Amf0Value::Number(720.0));
        assert_eq!(props["videocodecid"], Amf0Value::Number(7.0));
        assert_eq!(props["audiosamplerate"], Amf0Value::Number(48000.0));
        assert_eq!(props["stereo"], Amf0Value::Boolean(true));
        assert_eq!(props["encoder"], Amf0Value::Utf8String("Lavf59".into()));
        assert_eq!(props.len(), 6);
        // The guard accepts it too.
        assert_eq!(amf0_shape(&body).unwrap().values, 2);
    }

    #[test]
    fn chunk_header_parses_incrementally_in_all_basic_header_forms() {
        let none = |_| None;
        // Type 0, csid 3, extended timestamp.
        let full = [3, 0xff, 0xff, 0xff, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        for n in 0..full.len() {
            assert_eq!(parse_chunk_header(&full[..n], none), Ok(None), "prefix {n}");
        }
        let h = parse_chunk_header(&full, none).unwrap().unwrap();
        assert_eq!((h.fmt, h.csid, h.len), (0, 3, 16));
        assert_eq!(h.extended_ts, Some(1));
        assert_eq!(h.stream.length, 4);
        assert_eq!(h.stream.type_id, 1);
        // 2-byte form (csid 64 + b1) and 3-byte form (64 + b1 + 256 * b2), type 3.
        let prev = |_| {
            Some(ChunkStream {
                length: 10,
                type_id: 9,
                ts_field: 5,
            })
        };
        let h = parse_chunk_header(&[0xc0, 10], prev).unwrap().unwrap();
        assert_eq!((h.fmt, h.csid, h.len, h.stream.length), (3, 74, 2, 10));
        assert_eq!(parse_chunk_header(&[0xc1, 1], prev), Ok(None));
        let h = parse_chunk_header(&[0xc1, 1, 2], prev).unwrap().unwrap();
        assert_eq!((h.csid, h.len), (64 + 1 + 512, 3));
        // Types 1-3 need a previous header on their chunk stream.
        assert_eq!(
            parse_chunk_header(&[0x45], none),
            Err(ChunkError::NoPreviousHeader(5))
        );
    }

    #[test]
    fn guard_accepts_what_rml_serializes_however_it_is_split() {
        let (bytes, messages, command_ends) = publisher_stream();
        // Whole, byte by byte, and in odd pieces: never an error, same command cuts.
        for piece in [bytes.len(), 1, 7, 129, 1000, 4097] {
            let mut g = guard();
            let mut cuts = Vec::new();
            for (k, part) in bytes.chunks(piece).enumerate() {
                let got = g.feed(part).unwrap();
                cuts.extend(got.iter().map(|c| c + k * piece));
            }
            assert_eq!(cuts, command_ends, "piece {piece}");
            assert_eq!(g.chunk_size(), 4096);
            assert!(g.message.is_none() && g.chunk_left.is_none());
        }
        // rml_rtmp reads the very same stream back.
        let mut de = ChunkDeserializer::new();
        let mut got = Vec::new();
        let mut input = &bytes[..];
        while let Some(m) = de.get_next_message(input).unwrap() {
            input = &[];
            if m.type_id == 1 {
                de.set_max_chunk_size(4096).unwrap();
            }
            got.push(m);
        }
        assert_eq!(got.len(), messages.len());
        for (a, b) in got.iter().zip(&messages) {
            assert_eq!(
                (a.type_id, a.timestamp, &a.data),
                (b.type_id, b.timestamp, &b.data)
            );
        }
    }

    /// A type 0 chunk header.
    fn header0(csid: u8, ts: u32, len: u32, type_id: u8, stream: u32) -> Vec<u8> {
        let mut h = vec![csid];
        h.extend_from_slice(&ts.min(0xff_ffff).to_be_bytes()[1..]);
        h.extend_from_slice(&len.to_be_bytes()[1..]);
        h.push(type_id);
        h.extend_from_slice(&stream.to_le_bytes());
        if ts >= 0xff_ffff {
            h.extend_from_slice(&ts.to_be_bytes());
        }
        h
    }

    fn set_chunk_size(size: u32) -> Vec<u8> {
        let mut b = header0(2, 0, 4, 1, 0);
        b.extend_from_slice(&size.to_be_bytes());
        b
    }

    #[test]
    fn guard_refuses_absurd_chunk_sizes() {
        let mut g = guard();
        assert_eq!(
            g.feed(&set_chunk_size(0x7fff_ffff)),
            Err(ChunkError::ChunkSize(0x7fff_ffff, MIB))
        );
        assert_eq!(
            guard().feed(&set_chunk_size(0)),
            Err(ChunkError::ChunkSize(0, MIB))
        );
        let mut g = guard();
        g.feed(&set_chunk_size(MIB)).unwrap();
        assert_eq!(g.chunk_size(), MIB);
    }

    #[test]
    fn guard_refuses_long_messages_at_the_header() {
        let mut g = guard();
        // Refused as soon as the header is complete, before any payload.
        assert_eq!(
            g.feed(&header0(4, 0, 0xff_ffff, 9, 1)),
            Err(ChunkError::MessageLength(0xff_ffff, 8 * MIB))
        );
        let mut g = guard();
        g.feed(&header0(4, 0, 8 * MIB, 9, 1)).unwrap();
        // A type 1 header may announce a new length too.
        let mut g = guard();
        let mut b = header0(4, 0, 1, 9, 1);
        b.push(0x17);
        b.extend_from_slice(&[0x44, 0, 0, 1, 0xff, 0xff, 0xff, 9]);
        assert_eq!(
            g.feed(&b),
            Err(ChunkError::MessageLength(0xff_ffff, 8 * MIB))
        );
        // Command/data messages are reassembled here, so they have a tighter bound.
        assert_eq!(
            guard().feed(&header0(3, 0, MAX_AMF_MESSAGE + 1, 20, 0)),
            Err(ChunkError::AmfTooLong(MAX_AMF_MESSAGE + 1))
        );
    }

    #[test]
    fn guard_refuses_interleaved_chunk_streams() {
        let mut g = guard();
        let mut b = header0(4, 0, 1000, 9, 1);
        b.extend_from_slice(&[0; 128]);
        g.feed(&b).unwrap();
        // Another chunk stream's message while video is half received.
        assert_eq!(
            g.feed(&header0(5, 0, 10, 8, 1)),
            Err(ChunkError::Interleaved(5, 4))
        );
        // A non-type-3 header on the same chunk stream is no continuation either.
        let mut g = guard();
        g.feed(&b).unwrap();
        assert_eq!(g.feed(&[0x84, 0, 0, 1]), Err(ChunkError::Interleaved(4, 4)));
        // The right continuation is fine.
        let mut g = guard();
        g.feed(&b).unwrap();
        let mut c = vec![0xc4];
        c.extend_from_slice(&[0; 128]);
        g.feed(&c).unwrap();
    }

    #[test]
    fn guard_refuses_an_underflowing_extended_timestamp() {
        let mut g = guard();
        let mut b = header0(4, 0, 1, 9, 1);
        b.push(0x17);
        // Type 2 with a delta of 0xffffff but an extended value below it.
        b.extend_from_slice(&[0x84, 0xff, 0xff, 0xff, 0, 0, 0, 5]);
        assert_eq!(g.feed(&b), Err(ChunkError::BadExtendedTimestamp(5)));
    }

    #[test]
    fn guard_bounds_chunk_streams() {
        let mut g = guard();
        for csid in 0..MAX_CHUNK_STREAMS as u8 {
            let mut b = vec![0, csid];
            b.extend_from_slice(&header0(0, 0, 0, 9, 1)[1..]);
            g.feed(&b).unwrap();
        }
        let mut b = vec![0, MAX_CHUNK_STREAMS as u8];
        b.extend_from_slice(&header0(0, 0, 0, 9, 1)[1..]);
        assert_eq!(g.feed(&b), Err(ChunkError::TooManyChunkStreams));
    }

    fn amf_message(type_id: u8, values: &[Amf0Value]) -> Vec<u8> {
        let body = rml_amf0::serialize(&values.to_vec()).unwrap();
        let mut b = header0(3, 0, body.len() as u32, type_id, 0);
        // Split into 128-byte chunks like a real peer.
        for (i, part) in body.chunks(128).enumerate() {
            if i > 0 {
                b.push(0xc3);
            }
            b.extend_from_slice(part);
        }
        b
    }

    #[test]
    fn guard_refuses_commands_rml_would_panic_on() {
        let s = |x: &str| Amf0Value::Utf8String(x.into());
        // rml_rtmp drains three values from every command.
        assert!(matches!(
            guard().feed(&amf_message(20, &[s("connect")])),
            Err(ChunkError::Amf(_))
        ));
        // ... and indexes past a short @setDataFrame.
        assert!(matches!(
            guard().feed(&amf_message(18, &[s("@setDataFrame"), s("onMetaData")])),
            Err(ChunkError::Amf(_))
        ));
        let mut g = guard();
        let ok = amf_message(
            18,
            &[
                s("@setDataFrame"),
                s("onMetaData"),
                Amf0Value::Object(HashMap::new()),
            ],
        );
        assert_eq!(g.feed(&ok), Ok(&[][..]));
        // Commands are cut points, and createStream is bounded.
        let cs = amf_message(
            20,
            &[s("createStream"), Amf0Value::Number(2.0), Amf0Value::Null],
        );
        let mut g = guard();
        for _ in 0..MAX_CREATE_STREAM {
            assert_eq!(g.feed(&cs), Ok(&[cs.len()][..]));
        }
        assert_eq!(g.feed(&cs), Err(ChunkError::TooManyStreams));
    }

    #[test]
    fn amf0_nesting_is_bounded_without_recursion() {
        // { a: { a: { ... } } } nested `depth` deep.
        let nested = |depth: usize| {
            let mut b = Vec::new();
            for _ in 0..depth {
                b.extend_from_slice(&[AMF0_OBJECT, 0, 1, b'a']);
            }
            b.push(AMF0_NULL);
            for _ in 0..depth {
                b.extend_from_slice(&[0, 0, AMF0_OBJECT_END]);
            }
            b
        };
        let ok = nested(MAX_AMF_DEPTH);
        assert_eq!(amf0_shape(&ok).unwrap().values, 1);
        assert_eq!(
            rml_amf0::deserialize(&mut std::io::Cursor::new(&ok))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            amf0_shape(&nested(MAX_AMF_DEPTH + 1)),
            Err(ChunkError::Amf("nested too deep"))
        );
        // A million levels of strict arrays: refused quickly, no stack involved.
        let mut deep = Vec::new();
        for _ in 0..1_000_000 {
            deep.extend_from_slice(&[AMF0_STRICT_ARRAY, 0, 0, 0, 1]);
        }
        assert_eq!(amf0_shape(&deep), Err(ChunkError::Amf("nested too deep")));
    }

    #[test]
    fn amf0_shape_follows_rml_amf0() {
        let values = vec![
            Amf0Value::Utf8String("publish".into()),
            Amf0Value::Number(3.0),
            Amf0Value::Null,
            Amf0Value::StrictArray(vec![Amf0Value::Boolean(true), Amf0Value::Undefined]),
            Amf0Value::Object(HashMap::from([(
                "k".to_owned(),
                Amf0Value::Object(HashMap::new()),
            )])),
        ];
        let bytes = rml_amf0::serialize(&values).unwrap();
        let shape = amf0_shape(&bytes).unwrap();
        assert_eq!(shape.values, 5);
        assert_eq!(shape.first_string, Some(b"publish".as_slice()));
        // A top-level end marker ends the list, as in rml_amf0.
        let mut cut = rml_amf0::serialize(&values[..2].to_vec()).unwrap();
        cut.push(AMF0_OBJECT_END);
        cut.push(0xee);
        assert_eq!(amf0_shape(&cut).unwrap().values, 2);
        assert_eq!(amf0_shape(&[0xee]), Err(ChunkError::Amf("unknown marker")));
        assert_eq!(
            amf0_shape(&[AMF0_STRING, 0, 9, b'x']),
            Err(ChunkError::Amf("truncated value"))
        );
    }

    #[test]
    fn public_name_hides_the_key() {
        assert_eq!(public_name("host?key=secret"), "host");
        assert_eq!(public_name("host"), "host");
    }
}
