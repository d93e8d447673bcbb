//! Prometheus text exposition of the engine: rooms, seats by state, frames in/out/dropped,
//! encoder fps and bitrate per rung, HTTP requests by route and status, process CPU and
//! resident memory. Rendered on demand from the rooms' own counters; the only state kept here
//! is the HTTP request counts.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::service::{Engine, seat_state};

/// (route template, method, status).
type RequestKey = (&'static str, String, u16);

/// HTTP request counts by route, method and status, with total handling time.
#[derive(Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<RequestKey, (u64, f64)>>,
    /// Open `/v1/events` streams (the hub's count, see `api::events`).
    pub event_streams: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl HttpMetrics {
    /// Metrics whose `showmix_event_streams` reads `event_streams`.
    pub fn with_event_streams(
        event_streams: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> Self {
        Self {
            event_streams,
            ..Default::default()
        }
    }

    pub fn record(&self, route: &'static str, method: &str, status: u16, seconds: f64) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry((route, method.to_owned(), status)).or_default();
        e.0 += 1;
        e.1 += seconds;
    }
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Resident set size in bytes, from /proc.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

pub fn render(engine: &Engine, http: &HttpMetrics) -> String {
    let mut out = String::with_capacity(4096);
    let mut rooms = 0u64;
    let mut seats_by_state: BTreeMap<&'static str, u64> =
        ["connected", "waiting", "stalled", "failed"]
            .into_iter()
            .map(|s| (s, 0))
            .collect();
    let mut frames_in = Vec::new();
    let mut frames_dropped = Vec::new();
    let mut stalls = Vec::new();
    let mut audio_level = Vec::new();
    let mut frames_out = Vec::new();
    let mut rung_fps = Vec::new();
    let mut rung_kbps = Vec::new();
    let mut rung_frames = Vec::new();
    let mut rung_keyframes = Vec::new();
    engine.for_each_room(|id, room| {
        rooms += 1;
        frames_out.push((id.to_owned(), room.mixed_frames()));
        for s in room.seat_stats() {
            *seats_by_state.entry(seat_state(&s.state).0).or_default() += 1;
            let l = format!("room=\"{}\",seat=\"{}\"", label(id), label(&s.id));
            frames_in.push((l.clone(), s.frames_received));
            frames_dropped.push((l.clone(), s.frames_dropped));
            stalls.push((l.clone(), s.stalls));
            audio_level.push((l, s.audio_level_dbfs));
        }
        for r in room.rung_stats() {
            let l = format!("room=\"{}\",rung=\"{}\"", label(id), label(&r.name));
            rung_fps.push((l.clone(), r.encoded_fps));
            rung_kbps.push((l.clone(), r.bitrate_kbps));
            rung_frames.push((l.clone(), r.frames));
            rung_keyframes.push((l, r.keyframes));
        }
    });

    header(&mut out, "showmix_rooms", "gauge", "Rooms running.");
    let _ = writeln!(out, "showmix_rooms {rooms}");
    header(&mut out, "showmix_seats", "gauge", "Seats by state.");
    for (state, n) in &seats_by_state {
        let _ = writeln!(out, "showmix_seats{{state=\"{state}\"}} {n}");
    }
    header(
        &mut out,
        "showmix_seat_frames_received_total",
        "counter",
        "Video frames received per seat.",
    );
    for (l, v) in &frames_in {
        let _ = writeln!(out, "showmix_seat_frames_received_total{{{l}}} {v}");
    }
    header(
        &mut out,
        "showmix_seat_frames_dropped_total",
        "counter",
        "Video frames per seat that arrived too late for the mix.",
    );
    for (l, v) in &frames_dropped {
        let _ = writeln!(out, "showmix_seat_frames_dropped_total{{{l}}} {v}");
    }
    header(
        &mut out,
        "showmix_seat_audio_level_dbfs",
        "gauge",
        "Seat audio RMS level, dBFS.",
    );
    for (l, v) in &audio_level {
        let _ = writeln!(out, "showmix_seat_audio_level_dbfs{{{l}}} {v}");
    }
    header(
        &mut out,
        "showmix_seat_stalls_total",
        "counter",
        "Times each seat stalled (input stopped).",
    );
    for (l, v) in &stalls {
        let _ = writeln!(out, "showmix_seat_stalls_total{{{l}}} {v}");
    }
    header(
        &mut out,
        "showmix_mix_frames_total",
        "counter",
        "Frames mixed per room.",
    );
    for (id, v) in &frames_out {
        let _ = writeln!(
            out,
            "showmix_mix_frames_total{{room=\"{}\"}} {v}",
            label(id)
        );
    }
    header(
        &mut out,
        "showmix_rung_frames_total",
        "counter",
        "Frames encoded per rung.",
    );
    for (l, v) in &rung_frames {
        let _ = writeln!(out, "showmix_rung_frames_total{{{l}}} {v}");
    }
    header(
        &mut out,
        "showmix_rung_keyframes_total",
        "counter",
        "Keyframes encoded per rung.",
    );
    for (l, v) in &rung_keyframes {
        let _ = writeln!(out, "showmix_rung_keyframes_total{{{l}}} {v}");
    }
    header(
        &mut out,
        "showmix_rung_fps",
        "gauge",
        "Encoded frames per second per rung.",
    );
    for (l, v) in &rung_fps {
        let _ = writeln!(out, "showmix_rung_fps{{{l}}} {v}");
    }
    header(
        &mut out,
        "showmix_rung_bitrate_kbps",
        "gauge",
        "Encoded video bitrate per rung, kbit/s.",
    );
    for (l, v) in &rung_kbps {
        let _ = writeln!(out, "showmix_rung_bitrate_kbps{{{l}}} {v}");
    }
    header(
        &mut out,
        "showmix_rooms_ended_total",
        "counter",
        "Rooms stopped since start.",
    );
    let _ = writeln!(
        out,
        "showmix_rooms_ended_total {}",
        engine
            .rooms_ended
            .load(std::sync::atomic::Ordering::Relaxed)
    );

    header(
        &mut out,
        "showmix_ingest_connections_total",
        "counter",
        "Ingest connections accepted by the listener.",
    );
    header(
        &mut out,
        "showmix_ingest_connections_open",
        "gauge",
        "Ingest connections open.",
    );
    header(
        &mut out,
        "showmix_ingest_publishes_total",
        "counter",
        "Publishers accepted into seats.",
    );
    header(
        &mut out,
        "showmix_ingest_bytes_total",
        "counter",
        "Bytes received from publishers.",
    );
    header(
        &mut out,
        "showmix_ingest_refused_total",
        "counter",
        "Ingest connections refused or cut off, by reason.",
    );
    for (proto, c) in [
        ("rtmp", &engine.rtmp_counters),
        ("srt", &engine.srt_counters),
        ("whip", &engine.webrtc.whip.io),
    ] {
        use std::sync::atomic::Ordering::Relaxed;
        let _ = writeln!(
            out,
            "showmix_ingest_connections_total{{protocol=\"{proto}\"}} {}",
            c.connections_total.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "showmix_ingest_connections_open{{protocol=\"{proto}\"}} {}",
            c.connections_open.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "showmix_ingest_publishes_total{{protocol=\"{proto}\"}} {}",
            c.publishes_accepted.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "showmix_ingest_bytes_total{{protocol=\"{proto}\"}} {}",
            c.bytes_in.load(Relaxed)
        );
        for (reason, n) in c.refused() {
            let _ = writeln!(
                out,
                "showmix_ingest_refused_total{{protocol=\"{proto}\",reason=\"{reason}\"}} {n}"
            );
        }
    }
    webrtc(&mut out, engine);
    header(
        &mut out,
        "showmix_event_streams",
        "gauge",
        "Open /v1/events streams (console tabs share one per browser).",
    );
    let _ = writeln!(
        out,
        "showmix_event_streams {}",
        http.event_streams.load(std::sync::atomic::Ordering::SeqCst)
    );
    header(
        &mut out,
        "showmix_http_requests_total",
        "counter",
        "HTTP requests by route, method and status.",
    );
    let reqs = http
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for ((route, method, status), (n, _)) in &reqs {
        let _ = writeln!(
            out,
            "showmix_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
        );
    }
    header(
        &mut out,
        "showmix_http_request_seconds_sum",
        "counter",
        "Total time spent handling requests, by route.",
    );
    let mut by_route: BTreeMap<&str, f64> = BTreeMap::new();
    for ((route, _, _), (_, secs)) in &reqs {
        *by_route.entry(route).or_default() += secs;
    }
    for (route, secs) in by_route {
        let _ = writeln!(
            out,
            "showmix_http_request_seconds_sum{{route=\"{route}\"}} {secs:.6}"
        );
    }

    header(
        &mut out,
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time of the process.",
    );
    let _ = writeln!(
        out,
        "process_cpu_seconds_total {:.3}",
        crate::mix::process_cpu_time().as_secs_f64()
    );
    if let Some(rss) = resident_bytes() {
        header(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the process.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    out
}

/// WebRTC sessions (WHIP publishers, WHEP viewers) and viewers per room.
fn webrtc(out: &mut String, engine: &Engine) {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &engine.webrtc;
    header(
        out,
        "showmix_webrtc_offers_total",
        "counter",
        "WebRTC offers received (WHIP publishers, WHEP viewers).",
    );
    header(
        out,
        "showmix_webrtc_sessions_open",
        "gauge",
        "WebRTC sessions open.",
    );
    header(
        out,
        "showmix_webrtc_sessions_total",
        "counter",
        "WebRTC sessions created (offer answered).",
    );
    header(
        out,
        "showmix_webrtc_connected_total",
        "counter",
        "WebRTC sessions that connected (ICE and DTLS up).",
    );
    header(
        out,
        "showmix_webrtc_refused_total",
        "counter",
        "WebRTC offers refused, by reason.",
    );
    header(
        out,
        "showmix_webrtc_ended_total",
        "counter",
        "WebRTC sessions ended, by reason (deleted, failed, ice_timeout, disconnected, room_ended, shutdown).",
    );
    for (kind, c) in [("whip", &s.whip), ("whep", &s.whep)] {
        let _ = writeln!(
            out,
            "showmix_webrtc_offers_total{{kind=\"{kind}\"}} {}",
            c.io.connections_total.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "showmix_webrtc_sessions_open{{kind=\"{kind}\"}} {}",
            c.io.connections_open.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "showmix_webrtc_sessions_total{{kind=\"{kind}\"}} {}",
            c.io.publishes_accepted.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "showmix_webrtc_connected_total{{kind=\"{kind}\"}} {}",
            c.connected_total.load(Relaxed)
        );
        for (reason, n) in c.io.refused() {
            let _ = writeln!(
                out,
                "showmix_webrtc_refused_total{{kind=\"{kind}\",reason=\"{reason}\"}} {n}"
            );
        }
        for (reason, n) in c.ended_by() {
            let _ = writeln!(
                out,
                "showmix_webrtc_ended_total{{kind=\"{kind}\",reason=\"{reason}\"}} {n}"
            );
        }
    }
    header(
        out,
        "showmix_room_webrtc_viewers",
        "gauge",
        "WHEP viewers watching the room now.",
    );
    header(
        out,
        "showmix_room_keyframes_forced_total",
        "counter",
        "Keyframes forced on every rung for joining WebRTC viewers.",
    );
    engine.for_each_room(|id, room| {
        let _ = writeln!(
            out,
            "showmix_room_webrtc_viewers{{room=\"{id}\"}} {}",
            room.whep_viewers()
        );
        let _ = writeln!(
            out,
            "showmix_room_keyframes_forced_total{{room=\"{id}\"}} {}",
            room.forced_keyframes()
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }

    #[test]
    fn renders_without_rooms() {
        let engine = Engine::new(
            crate::config::Config::default(),
            crate::presets::Presets::embedded().unwrap(),
        );
        let http = HttpMetrics::default();
        http.record("/v1/rooms", "GET", 200, 0.001);
        let text = render(&engine, &http);
        assert!(text.contains("showmix_rooms 0\n"), "{text}");
        assert!(text.contains("showmix_seats{state=\"stalled\"} 0"));
        assert!(text.contains(
            "showmix_http_requests_total{route=\"/v1/rooms\",method=\"GET\",status=\"200\"} 1"
        ));
        assert!(text.contains("process_cpu_seconds_total "));
        assert!(resident_bytes().unwrap() > 1_000_000);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
