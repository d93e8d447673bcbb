//! Live ingest: one RTMP listener and one SRT listener for the whole process, routing every
//! publisher to a seat of a room by name and publish key.
//!
//! The protocol modules (`rtmp`, `srt`) speak their protocol and nothing else: they turn a
//! publisher's connection into an ordered byte stream in a container GStreamer demuxes (FLV for
//! RTMP, MPEG-TS for SRT) and hand it to a `PublishSink` that the `IngestRouter` gave them. The
//! router (the engine) decides who may publish where; the seat turns the bytes into pictures.

pub mod keys;
pub mod retime;
pub mod rtmp;
pub mod srt;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

pub use bytes::Bytes;

/// Which listener a publisher came through, and so the container of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// FLV tags (with the FLV file header first).
    Rtmp,
    /// MPEG-TS packets.
    Srt,
    /// WebRTC (WHIP): depayloaded elementary streams, not bytes.
    Whip,
}

impl Protocol {
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Srt => "srt",
            Protocol::Whip => "whip",
        }
    }
}

/// A publish request as the protocol saw it.
#[derive(Clone, Debug)]
pub struct PublishRequest {
    pub protocol: Protocol,
    /// RTMP: the application name (from the connect URL). SRT: empty.
    pub app: String,
    /// RTMP: the stream name / stream key as sent by the publisher. SRT: the stream id.
    pub name: String,
    pub peer: SocketAddr,
}

/// Why a publish request or a running publication was refused or ended by the engine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed publish target: {0}")]
    Malformed(String),
    #[error("unknown room {0:?}")]
    UnknownRoom(String),
    #[error("room {room:?} has no seat {seat:?}")]
    UnknownSeat { room: String, seat: String },
    #[error("wrong publish key for seat {0:?}")]
    BadKey(String),
    #[error("seat {0:?} already has a live publisher")]
    Busy(String),
    #[error("seat {0:?} is not a publish seat")]
    NotPublish(String),
    #[error("the seat is gone")]
    Gone,
    #[error("{0}")]
    Other(String),
}

impl Refusal {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::UnknownRoom(_) => "unknown_room",
            Refusal::UnknownSeat { .. } => "unknown_seat",
            Refusal::BadKey(_) => "bad_key",
            Refusal::Busy(_) => "busy",
            Refusal::NotPublish(_) => "not_publish",
            Refusal::Gone => "gone",
            Refusal::Other(_) => "other",
        }
    }
}

/// Where an accepted publisher's bytes go. Called from the connection's task, in order.
pub trait PublishSink: Send {
    /// Delivers the next bytes of the stream. An error ends the connection (the seat was
    /// removed, or a newer publisher took over).
    fn push(&mut self, data: Bytes) -> Result<(), Refusal>;
    /// The publisher is gone: clean end, network error, timeout or protocol violation.
    fn end(&mut self, reason: &str);
}

/// Decides whether a publish request may go ahead, and where its bytes go.
pub trait IngestRouter: Send + Sync + 'static {
    fn publish(&self, req: &PublishRequest) -> Result<Box<dyn PublishSink>, Refusal>;
}

/// Limits that keep one bad client from costing the process more than its share.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections per listener; more are closed at once.
    pub max_connections: usize,
    /// Time to complete the handshake and the publish request.
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Largest RTMP chunk size a peer may set, and largest message a peer may announce.
    pub max_chunk_size: u32,
    pub max_message_len: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            // Encoders use 128..=65536; a 4 MiB message holds any sane keyframe. Together they
            // bound a connection's buffering to about 4.2 MiB.
            max_chunk_size: 1 << 16,
            max_message_len: 4 << 20,
        }
    }
}

/// Counters of one listener, for metrics. Refusals are counted by `Refusal::label` and by the
/// listener's own reasons (`timeout`, `protocol`, `too_many`).
#[derive(Debug, Default)]
pub struct Counters {
    pub connections_total: AtomicU64,
    pub connections_open: AtomicU64,
    pub publishes_accepted: AtomicU64,
    pub bytes_in: AtomicU64,
    refused: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Counters {
    pub fn refuse(&self, label: &'static str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(label)
            .or_default() += 1;
    }

    pub fn refused(&self) -> Vec<(&'static str, u64)> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    pub fn opened(&self) {
        self.connections_total.fetch_add(1, Relaxed);
        self.connections_open.fetch_add(1, Relaxed);
    }

    pub fn closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }
}
