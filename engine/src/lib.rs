//! showmix: a live-streaming broadcast and transcoding engine.
//!
//! Rooms mix their seats (hosts, co-hosts, guests) into a layout on a canvas and encode an
//! adaptive-bitrate ladder from it. The crate is split so that everything that needs no
//! GStreamer — layout math (`geometry`), presets and their validation (`presets`), source
//! strings (`source`), room specs (`room::spec`) — is plain Rust with unit tests, while graph
//! building (`pipeline`) and lifecycle control (`room`) are separate layers on top.

pub mod api;
pub mod config;
pub mod cpu;
pub mod encode_test;
pub mod geometry;
pub mod hls;
pub mod ingest;
pub mod memory;
pub mod metrics;
pub mod mix;
pub mod outdir;
pub mod pipeline;
pub mod presets;
pub mod push;
pub mod record;
pub mod room;
pub mod serve;
pub mod service;
pub mod source;
pub mod webrtc;

use std::sync::OnceLock;

/// Initialises GStreamer once per process and registers the elements showmix links in
/// statically (rav1e's AV1 encoder, the fragmented-MP4 muxers, the beauty filter, the rung scaler). Safe to call many times.
pub fn init() -> anyhow::Result<()> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        gst::init().map_err(|e| format!("GStreamer does not initialise: {e}"))?;
        gstrav1e::plugin_register_static().map_err(|e| format!("cannot register rav1enc: {e}"))?;
        gstfmp4::plugin_register_static().map_err(|e| format!("cannot register cmafmux: {e}"))?;
        gstshowmixbeauty::plugin_register_static()
            .map_err(|e| format!("cannot register showmixbeauty: {e}"))?;
        gstshowmixscale::plugin_register_static()
            .map_err(|e| format!("cannot register showmixscale: {e}"))?;
        Ok(())
    })
    .clone()
    .map_err(anyhow::Error::msg)
}
