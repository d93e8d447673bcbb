//! WebRTC for the people on camera: WHIP publishers into seats (RFC 9725) and WHEP viewers of a
//! room's mix, on GStreamer's `webrtcbin` (libnice ICE, DTLS-SRTP). No RTP, SRTP, ICE or DTLS
//! is written here: showmix decides what to accept, wires webrtcbin to the room, and owns the
//! sessions' lifecycle.
//!
//! - `sdp`: reading offers and choosing codecs (plain Rust).
//! - `ice`: the ICE settings operators configure (servers, UDP ports, addresses) (plain Rust).
//! - `peer`: one webrtcbin in its own pipeline: offer in, answer with every candidate out, ICE
//!   state, trickle candidates, teardown.
//! - `ingest`: a WHIP session: depayload what the publisher sends and hand it to the seat.
//! - `playback`: a WHEP viewer: the room's encoded rung and Opus audio, payloaded per viewer.
//! - `sessions`: every session by id, the limits, the ICE timeout, the counters.
//!
//! Each session has its own pipeline: a peer that misbehaves (DTLS failure, ICE that never
//! completes, a network that stalls) fails on its own bus and is torn down without touching
//! the room's pipeline, which only ever sees appsrc/appsink hand-offs.

pub mod ice;
pub mod ingest;
mod nice;
pub mod peer;
pub mod playback;
pub mod sdp;
pub mod sessions;

pub use ice::IceConfig;
/// Binds a webrtcbin's ICE agent to these local addresses (for peers built outside showmix,
/// such as test clients, that must use the same addresses as the server).
pub use nice::bind_addresses;
pub use sessions::{SessionKind, Sessions, WebrtcError};
