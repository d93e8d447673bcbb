//! The engine as the control plane sees it: the set of live rooms with their limits, and the
//! views (JSON) of rooms, seats, outputs and stats. Every operation here may block on
//! GStreamer state changes; the HTTP layer calls them from blocking threads.
//!
//! Rooms are held behind their own lock: an operation on one room never waits for another.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

use crate::api::model::{
    ApiError, CreateRoom, SeatPatch, SeatRequest, random_id, resolve_beauty, resolve_ladder,
    resolve_layout,
};
use crate::api::token::TokenSigner;
use crate::config::Config;
use crate::ingest::{Counters, IngestRouter, Protocol, PublishRequest, PublishSink, Refusal, keys};
use crate::presets::ladder::Canvas;
use crate::presets::validate::is_valid_name;
use crate::presets::{Beauty, Ladder, Layout, Presets};
use crate::room::{OutputKind, Room, RoomSpec, RoomState, RungStats, SeatState, SeatStats};

mod webrtc;
pub use webrtc::SdpAnswer;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One room in the registry. `room` is `None` once it has been stopped.
pub struct RoomEntry {
    id: String,
    room: Mutex<Option<Room>>,
    created: SystemTime,
    /// The final state, once stopped.
    ended: Mutex<Option<RoomState>>,
}

pub struct Engine {
    pub config: Config,
    pub presets: Presets,
    rooms: Mutex<BTreeMap<String, Arc<RoomEntry>>>,
    accepting: AtomicBool,
    /// Rooms that ended on their own or were deleted, for metrics.
    pub rooms_ended: AtomicU64,
    /// Ingest listener counters, for metrics.
    pub rtmp_counters: Arc<Counters>,
    pub srt_counters: Arc<Counters>,
    /// Ports the ingest listeners are bound to (known once they are).
    ingest_ports: Mutex<IngestPorts>,
    /// Signs and checks LL-HLS playback tokens.
    pub playback_signer: TokenSigner,
    /// WebRTC sessions: WHIP publishers and WHEP viewers.
    pub webrtc: Arc<crate::webrtc::Sessions>,
    /// CPU per room, sampled by the events ticker (`console_tick`).
    cpu: Mutex<crate::cpu::CpuMeter>,
    /// Each room's figures over the last minutes, for the console's charts.
    history: Mutex<BTreeMap<String, std::collections::VecDeque<HistoryPoint>>>,
}

/// Samples kept per room for the console's chart: five minutes at one a second.
pub const HISTORY_POINTS: usize = 300;

/// One second of a room, for the console's chart.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HistoryPoint {
    /// Unix milliseconds.
    pub t: u64,
    /// All rungs together, kbit/s.
    pub kbps: f64,
    pub fps: f64,
    pub cpu: Option<f64>,
}

/// What the console's event stream sends every second.
#[derive(Clone, Debug, Serialize)]
pub struct ConsoleSnapshot {
    /// Unix milliseconds.
    pub time: u64,
    /// The whole process, percent of one core.
    pub process_cpu_percent: f64,
    pub rooms: Vec<ConsoleRoom>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConsoleRoom {
    #[serde(flatten)]
    pub room: RoomView,
    pub stats: StatsView,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Appends a point, keeping the last `HISTORY_POINTS`.
pub fn push_history(h: &mut std::collections::VecDeque<HistoryPoint>, p: HistoryPoint) {
    h.push_back(p);
    while h.len() > HISTORY_POINTS {
        h.pop_front();
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct IngestPorts {
    pub rtmp: Option<u16>,
    pub srt: Option<u16>,
    /// The API's (and playback's) HTTP port.
    pub api: Option<u16>,
}

/// Where a publish seat's publisher connects, as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct IngestView {
    /// Complete URL ffmpeg can publish to (`-f flv`).
    pub rtmp: Option<String>,
    /// The same for OBS: server URL and stream key.
    pub rtmp_server: Option<String>,
    pub rtmp_stream_key: Option<String>,
    /// Complete URL ffmpeg can publish to (`-f mpegts`).
    pub srt: Option<String>,
    pub srt_stream_id: String,
    /// WHIP endpoint (RFC 9725) for browsers and OBS: POST an SDP offer with
    /// `Authorization: Bearer <key>`.
    pub whip: Option<String>,
    pub key: String,
    #[serde(flatten)]
    pub publisher: crate::room::PublishInfo,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeatView {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest: Option<IngestView>,
    pub source: String,
    pub slot: Option<usize>,
    pub volume: f64,
    pub muted: bool,
    pub beauty: Beauty,
    pub placeholder: Option<PathBuf>,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OutputView {
    pub id: String,
    /// `file`, `rtmp`, `srt` or `record`.
    pub kind: &'static str,
    /// file: `running`, `finalising`, `finished`, `failed`; rtmp/srt: `connecting`, `live`,
    /// `retrying`, `stopped`; record: `recording`, `failed`, `finished`.
    pub state: String,
    /// Why the output failed or last lost its destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Rungs the output carries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rungs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PathBuf>,
    /// Push outputs: connection attempts that failed, successful connects, bytes sent, and
    /// when the next attempt is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connects: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_retry_ms: Option<u64>,
    /// Recording: segment length in minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_minutes: Option<u64>,
}

fn output_view(o: crate::room::OutputInfo, room_state: &RoomState) -> OutputView {
    use crate::room::OutputStatus;
    let mut v = OutputView {
        id: o.spec.id.clone(),
        kind: o.spec.kind.name(),
        state: String::new(),
        reason: None,
        dir: None,
        url: None,
        rungs: Vec::new(),
        files: Vec::new(),
        retries: None,
        connects: None,
        bytes: None,
        next_retry_ms: None,
        segment_minutes: None,
    };
    match &o.spec.kind {
        OutputKind::File { dir } => v.dir = Some(dir.clone()),
        OutputKind::Push { target, rung } => {
            // Stream keys and passphrases stay out of the API.
            v.url = Some(target.redacted());
            v.rungs = vec![rung.clone()];
        }
        OutputKind::Record {
            dir,
            rungs,
            segment,
        } => {
            v.dir = Some(dir.clone());
            v.rungs = rungs.clone();
            v.segment_minutes = Some(segment.as_secs() / 60);
        }
    }
    match o.status {
        OutputStatus::File { files } => {
            v.state = match room_state {
                RoomState::Starting | RoomState::Live => "running",
                RoomState::Stopping => "finalising",
                RoomState::Stopped => "finished",
                RoomState::Failed(_) => "failed",
            }
            .into();
            v.files = files;
        }
        OutputStatus::Push(p) => {
            v.state = enum_name(&p.state);
            v.reason = p.last_error;
            v.retries = Some(p.retries);
            v.connects = Some(p.connects);
            v.bytes = Some(p.bytes_sent);
            v.next_retry_ms = p.next_retry_ms;
        }
        OutputStatus::Record(r) => {
            v.state = enum_name(&r.state);
            v.reason = r.reason;
            v.files = r.files;
            v.bytes = Some(r.bytes_written);
        }
    }
    v
}

/// The snake_case name serde gives a unit enum variant.
fn enum_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RoomView {
    pub id: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub canvas: Canvas,
    pub layout: Layout,
    pub ladder: Ladder,
    pub seats: Vec<SeatView>,
    pub outputs: Vec<OutputView>,
    /// Where viewers play the room.
    pub playback: Playback,
    pub created_at: u64,
    pub uptime_seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Playback {
    /// LL-HLS multivariant playlist, when the room has LL-HLS (with a playback token in the
    /// path when tokens are required).
    pub hls: Option<String>,
    /// WHEP endpoint (WebRTC playback of the top rung; `/live/{room}/{rung}/whep` for another),
    /// with the same token as `hls`.
    pub whep: Option<String>,
    /// When the token in `hls` expires (Unix seconds); absent without tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// A playback token minted by the API.
#[derive(Clone, Debug, Serialize)]
pub struct PlaybackToken {
    pub token: String,
    pub expires_at: u64,
    pub hls: String,
    pub whep: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayoutChange {
    pub generation: u64,
    /// From the API call to the first mixed frame with the new layout.
    pub mix_latency_ms: Option<f64>,
    /// From the API call to that frame leaving the top rung's encoder.
    pub output_latency_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StatsView {
    pub room: String,
    pub state: &'static str,
    pub uptime_seconds: f64,
    pub mixed_frames: u64,
    pub mix_fps: f64,
    pub seats: Vec<SeatStats>,
    pub rungs: Vec<RungStats>,
    pub last_layout_change: Option<LayoutChange>,
    /// The room's threads (mixing, encoding, packaging), percent of one core over the last
    /// second; `null` until the first two samples (see `crate::cpu`).
    pub cpu_percent: Option<f64>,
    /// WebRTC (WHEP) viewers watching now.
    pub whep_viewers: usize,
}

fn room_state(s: &RoomState) -> (&'static str, Option<String>) {
    match s {
        RoomState::Starting => ("starting", None),
        RoomState::Live => ("live", None),
        RoomState::Stopping => ("stopping", None),
        RoomState::Stopped => ("stopped", None),
        RoomState::Failed(r) => ("failed", Some(r.clone())),
    }
}

pub fn seat_state(s: &SeatState) -> (&'static str, Option<String>) {
    s.parts()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

impl Engine {
    pub fn new(config: Config, presets: Presets) -> Self {
        let secret = config
            .playback_secret
            .clone()
            .unwrap_or_else(|| crate::api::model::random_id() + &crate::api::model::random_id());
        Self {
            playback_signer: TokenSigner::new(secret.as_bytes()),
            webrtc: crate::webrtc::Sessions::new(config.ice(), config.max_webrtc_sessions as usize),
            config,
            presets,
            rooms: Mutex::new(BTreeMap::new()),
            accepting: AtomicBool::new(true),
            rooms_ended: AtomicU64::new(0),
            rtmp_counters: Arc::new(Counters::default()),
            srt_counters: Arc::new(Counters::default()),
            ingest_ports: Mutex::new(IngestPorts::default()),
            cpu: Mutex::new(crate::cpu::CpuMeter::default()),
            history: Mutex::new(BTreeMap::new()),
        }
    }

    /// Once a second (the events ticker): samples CPU per room and keeps each room's history;
    /// with `build`, returns the snapshot for the event streams, as JSON.
    pub fn console_tick(&self, build: bool) -> Option<Vec<u8>> {
        let mut threads = BTreeMap::new();
        self.for_each_room(|id, r| {
            threads.insert(id.to_owned(), r.threads());
        });
        lock(&self.cpu).sample(&threads);
        let t = unix_ms();
        let mut rooms = Vec::new();
        let mut points = Vec::new();
        for id in threads.keys() {
            let Ok(stats) = self.stats(id) else { continue };
            points.push((
                id.clone(),
                HistoryPoint {
                    t,
                    kbps: (stats.rungs.iter().map(|r| r.bitrate_kbps).sum::<f64>() * 10.0).round()
                        / 10.0,
                    fps: stats.mix_fps,
                    cpu: stats.cpu_percent,
                },
            ));
            if build && let Ok(room) = self.get(id) {
                rooms.push(ConsoleRoom { room, stats });
            }
        }
        {
            let mut h = lock(&self.history);
            h.retain(|id, _| threads.contains_key(id));
            for (id, p) in points {
                push_history(h.entry(id).or_default(), p);
            }
        }
        build.then(|| self.snapshot_json(t, rooms))
    }

    /// The snapshot now, from the last CPU sample (for a stream that starts between ticks).
    pub fn console_snapshot(&self) -> Vec<u8> {
        let rooms = self
            .room_ids()
            .into_iter()
            .filter_map(|id| {
                let stats = self.stats(&id).ok()?;
                let room = self.get(&id).ok()?;
                Some(ConsoleRoom { room, stats })
            })
            .collect();
        self.snapshot_json(unix_ms(), rooms)
    }

    fn snapshot_json(&self, time: u64, rooms: Vec<ConsoleRoom>) -> Vec<u8> {
        serde_json::to_vec(&ConsoleSnapshot {
            time,
            process_cpu_percent: lock(&self.cpu).process,
            rooms,
        })
        .unwrap_or_default()
    }

    /// Every room's history, as JSON: `{"rooms": {"<id>": [points]}}`.
    pub fn console_history(&self) -> Vec<u8> {
        let h = lock(&self.history);
        serde_json::to_vec(&serde_json::json!({ "rooms": &*h })).unwrap_or_default()
    }

    /// Adds a push or record output to a running room.
    pub fn add_output(
        &self,
        room: &str,
        req: crate::api::model::OutputRequest,
    ) -> Result<OutputView, ApiError> {
        self.with_room(room, |r| {
            let index = r.outputs().len();
            let spec = req.into_spec(&self.config, "output", index, r.ladder())?;
            let info = r.add_output(spec).map_err(|e| match e {
                crate::room::SpecError::Invalid(i) => ApiError::invalid(i.to_string()),
                crate::room::SpecError::Conflict(m) => ApiError::conflict(m),
            })?;
            Ok(output_view(info, &r.state()))
        })
    }

    /// Removes an output from a running room; returns what it last reported.
    pub fn remove_output(&self, room: &str, output: &str) -> Result<OutputView, ApiError> {
        self.with_room(room, |r| {
            match r.remove_output(output).map_err(|e| match e {
                crate::room::SpecError::Invalid(i) => ApiError::invalid(i.to_string()),
                crate::room::SpecError::Conflict(m) => ApiError::conflict(m),
            })? {
                Some(info) => Ok(output_view(info, &r.state())),
                None => Err(ApiError::not_found(format!(
                    "room {room:?} has no output {output:?}"
                ))),
            }
        })
    }

    /// Where viewers play `room` (a fresh token in the URLs when tokens are required).
    fn playback(&self, room: &str, has_hls: bool, ttl: Option<Duration>) -> Playback {
        let Some(port) = lock(&self.ingest_ports).api else {
            return Playback {
                hls: None,
                whep: None,
                expires_at: None,
            };
        };
        let host = self.config.public_host();
        let (segment, expires_at) = if !self.config.playback_tokens_required() && ttl.is_none() {
            (room.to_owned(), None)
        } else {
            let (token, expires_at) = self.playback_signer.mint(
                room,
                SystemTime::now(),
                ttl.unwrap_or_else(|| self.config.playback_token_ttl()),
            );
            (format!("{room}~{token}"), Some(expires_at))
        };
        Playback {
            hls: has_hls.then(|| format!("http://{host}:{port}/live/{segment}/index.m3u8")),
            whep: Some(format!("http://{host}:{port}/live/{segment}/whep")),
            expires_at,
        }
    }

    /// Mints a playback token for `room` valid for `ttl` (the configured lifetime if `None`).
    pub fn playback_token(
        &self,
        room: &str,
        ttl: Option<Duration>,
    ) -> Result<PlaybackToken, ApiError> {
        let has_hls = self.with_room(room, |r| Ok(r.hls().is_some()))?;
        if !has_hls {
            return Err(ApiError::conflict(format!(
                "room {room:?} has no LL-HLS playback (created with hls disabled)"
            )));
        }
        let ttl = ttl.unwrap_or_else(|| self.config.playback_token_ttl());
        let p = self.playback(room, true, Some(ttl));
        let hls = p.hls.unwrap_or_default();
        let whep = p.whep.unwrap_or_default();
        let token = hls
            .split_once('~')
            .and_then(|(_, t)| t.split_once('/'))
            .map(|(t, _)| t.to_owned())
            .unwrap_or_default();
        Ok(PlaybackToken {
            token,
            expires_at: p.expires_at.unwrap_or_default(),
            hls,
            whep,
        })
    }

    /// Records where the ingest listeners are (for the URLs the API shows).
    pub fn set_ingest_ports(&self, ports: IngestPorts) {
        *lock(&self.ingest_ports) = ports;
    }

    fn ingest_view(&self, room: &str, seat: &str, info: crate::room::PublishInfo) -> IngestView {
        let host = self.config.public_host();
        let ports = *lock(&self.ingest_ports);
        let key = info.key.clone();
        IngestView {
            rtmp: ports
                .rtmp
                .map(|p| keys::rtmp_url(&host, p, room, seat, &key)),
            rtmp_server: ports.rtmp.map(|p| format!("rtmp://{host}:{p}/{room}")),
            rtmp_stream_key: ports.rtmp.map(|_| format!("{seat}?key={key}")),
            srt: ports.srt.map(|p| keys::srt_url(&host, p, room, seat, &key)),
            srt_stream_id: keys::srt_stream_id(room, seat, &key),
            whip: ports
                .api
                .map(|p| format!("http://{host}:{p}/whip/{room}/{seat}")),
            key,
            publisher: info,
        }
    }

    /// A new publish key for a seat; returns the seat's ingest details.
    pub fn rotate_key(&self, id: &str, seat: &str) -> Result<IngestView, ApiError> {
        let info = self.with_room(id, |room| {
            if !room.seat_ids().iter().any(|s| s == seat) {
                return Err(ApiError::not_found(format!(
                    "room {id:?} has no seat {seat:?}"
                )));
            }
            room.rotate_key(seat)
                .map_err(|e| ApiError::conflict(format!("{e:#}")))?;
            room.publish_info(seat)
                .ok_or_else(|| ApiError::conflict(format!("seat {seat:?} is not a publish seat")))
        })?;
        Ok(self.ingest_view(id, seat, info))
    }

    /// Ready when GStreamer is initialised and rooms are accepted.
    pub fn ready(&self) -> bool {
        self.accepting.load(Relaxed) && crate::init().is_ok()
    }

    fn entry(&self, id: &str) -> Result<Arc<RoomEntry>, ApiError> {
        lock(&self.rooms)
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no room {id:?}")))
    }

    /// Runs `f` on a room that is still running.
    fn with_room<T>(
        &self,
        id: &str,
        f: impl FnOnce(&Room) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let entry = self.entry(id)?;
        let guard = lock(&entry.room);
        match guard.as_ref() {
            Some(room) => f(room),
            None => Err(ApiError::conflict(format!("room {id:?} has ended"))),
        }
    }

    pub fn create_room(&self, req: CreateRoom) -> Result<RoomView, ApiError> {
        if !self.accepting.load(Relaxed) {
            return Err(ApiError::unavailable("the engine is shutting down"));
        }
        let id = req.id.unwrap_or_else(random_id);
        if !is_valid_name(&id) {
            return Err(ApiError::invalid(format!(
                "id: {id:?} is not a valid room id (allowed: 1 to 64 of A-Z a-z 0-9 _ -)"
            )));
        }
        let ladder = resolve_ladder(&self.presets, req.ladder, req.canvas)?;
        let layout = resolve_layout(
            &self.presets,
            req.layout.unwrap_or_else(|| Value::String("single".into())),
        )?;
        if req.seats.len() > self.config.max_seats_per_room as usize {
            return Err(ApiError::invalid(format!(
                "seats: {} seats (allowed at most {} per room)",
                req.seats.len(),
                self.config.max_seats_per_room
            )));
        }
        let seats = req
            .seats
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.into_spec(&self.presets, &format!("seats[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let hls = !req.outputs.iter().any(|o| {
            matches!(
                o,
                crate::api::model::OutputRequest::Hls { enabled: false, .. }
            )
        });
        let outputs = req
            .outputs
            .into_iter()
            .filter(|o| !matches!(o, crate::api::model::OutputRequest::Hls { .. }))
            .enumerate()
            .map(|(i, o)| o.into_spec(&self.config, &format!("outputs[{i}]"), i, &ladder))
            .collect::<Result<Vec<_>, _>>()?;
        let mut spec = RoomSpec {
            id: id.clone(),
            ladder,
            layout,
            seats,
            outputs,
            live: true,
            timing: self.config.timing(),
            push_backoff: self.config.push_backoff(),
            hls,
        };
        spec.resolve()?;
        // Reserve the id and a place under the limit before the (slow) start.
        let entry = Arc::new(RoomEntry {
            id: id.clone(),
            room: Mutex::new(None),
            created: SystemTime::now(),
            ended: Mutex::new(None),
        });
        let mut room_slot = lock(&entry.room);
        {
            let mut rooms = lock(&self.rooms);
            if rooms.contains_key(&id) {
                return Err(ApiError::conflict(format!("room {id:?} already exists")));
            }
            if rooms.len() >= self.config.max_rooms as usize {
                return Err(ApiError::unavailable(format!(
                    "at the room limit ({}): delete a room first",
                    self.config.max_rooms
                )));
            }
            rooms.insert(id.clone(), entry.clone());
        }
        match Room::start(spec) {
            Ok(room) => {
                *room_slot = Some(room);
                drop(room_slot);
                self.view_entry(&entry)
            }
            Err(e) => {
                drop(room_slot);
                lock(&self.rooms).remove(&id);
                let msg = format!("{e:#}");
                if let Some(spec) = e.downcast_ref::<crate::room::SpecError>() {
                    return Err(match spec {
                        crate::room::SpecError::Invalid(i) => ApiError::invalid(i.to_string()),
                        crate::room::SpecError::Conflict(m) => ApiError::conflict(m.clone()),
                    });
                }
                if msg.contains("cannot create directory") {
                    return Err(ApiError::invalid(msg));
                }
                Err(ApiError::internal(format!(
                    "room {id:?} does not start: {msg}"
                )))
            }
        }
    }

    pub fn room_ids(&self) -> Vec<String> {
        lock(&self.rooms).keys().cloned().collect()
    }

    pub fn list(&self) -> Vec<RoomView> {
        let entries: Vec<Arc<RoomEntry>> = lock(&self.rooms).values().cloned().collect();
        entries
            .iter()
            .filter_map(|e| self.view_entry(e).ok())
            .collect()
    }

    pub fn get(&self, id: &str) -> Result<RoomView, ApiError> {
        let entry = self.entry(id)?;
        self.view_entry(&entry)
    }

    fn view_entry(&self, e: &RoomEntry) -> Result<RoomView, ApiError> {
        let guard = lock(&e.room);
        let Some(room) = guard.as_ref() else {
            return Err(ApiError::not_found(format!("room {:?} has ended", e.id)));
        };
        let (state, reason) = room_state(&room.state());
        let seats = room
            .seats()
            .into_iter()
            .map(|(spec, st)| {
                let (state, reason) = seat_state(&st);
                SeatView {
                    ingest: room
                        .publish_info(&spec.id)
                        .map(|info| self.ingest_view(&e.id, &spec.id, info)),
                    id: spec.id,
                    source: spec.source.to_string(),
                    slot: spec.slot,
                    volume: spec.volume,
                    muted: spec.muted,
                    beauty: spec.beauty,
                    placeholder: spec.placeholder,
                    state,
                    reason,
                }
            })
            .collect();
        let room_state = room.state();
        let outputs = room
            .outputs()
            .into_iter()
            .map(|o| output_view(o, &room_state))
            .collect();
        Ok(RoomView {
            id: e.id.clone(),
            state,
            reason,
            canvas: room.ladder().canvas.clone(),
            layout: room.layout(),
            ladder: room.ladder().clone(),
            seats,
            outputs,
            playback: self.playback(&e.id, room.hls().is_some(), None),
            created_at: e
                .created
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
            uptime_seconds: (room.uptime().as_secs_f64() * 10.0).round() / 10.0,
        })
    }

    /// Stops a room (finalising its outputs) and removes it.
    pub fn delete(&self, id: &str) -> Result<(), ApiError> {
        let entry = lock(&self.rooms)
            .remove(id)
            .ok_or_else(|| ApiError::not_found(format!("no room {id:?}")))?;
        let grace = self.config.shutdown_grace();
        self.webrtc.close_room(id);
        stop_entry(&entry, grace);
        self.rooms_ended.fetch_add(1, Relaxed);
        Ok(())
    }

    pub fn set_layout(&self, id: &str, body: Value) -> Result<RoomView, ApiError> {
        let layout = resolve_layout(&self.presets, body)?;
        self.with_room(id, |room| {
            room.set_layout(layout)
                .map_err(|e| ApiError::invalid(e.to_string()))?;
            Ok(())
        })?;
        self.get(id)
    }

    pub fn add_seat(&self, id: &str, req: SeatRequest) -> Result<RoomView, ApiError> {
        let spec = req.into_spec(&self.presets, "seat")?;
        self.with_room(id, |room| {
            if room.seat_ids().len() >= self.config.max_seats_per_room as usize {
                return Err(ApiError::unavailable(format!(
                    "room {id:?} is at the seat limit ({})",
                    self.config.max_seats_per_room
                )));
            }
            room.add_seat(spec)?;
            Ok(())
        })?;
        self.get(id)
    }

    pub fn patch_seat(&self, id: &str, seat: &str, patch: SeatPatch) -> Result<RoomView, ApiError> {
        let beauty = match patch.beauty {
            Some(v) => Some(resolve_beauty(&self.presets, "beauty", v)?),
            None => None,
        };
        if let Some(v) = patch.volume
            && !(0.0..=crate::room::spec::MAX_VOLUME).contains(&v)
        {
            return Err(ApiError::invalid(format!(
                "volume: {v} is out of range (allowed 0..=2)"
            )));
        }
        if let Some(Some(s)) = patch.slot
            && s >= crate::presets::layout::MAX_SLOTS
        {
            return Err(ApiError::invalid(format!(
                "slot: {s} is out of range (allowed 0..={})",
                crate::presets::layout::MAX_SLOTS - 1
            )));
        }
        let placeholder = match patch.placeholder {
            Some(p) if !std::path::Path::new(&p).is_file() => {
                return Err(ApiError::invalid(format!(
                    "placeholder: image {p} does not exist or is not a file"
                )));
            }
            p => p.map(PathBuf::from),
        };
        self.with_room(id, |room| {
            if !room.seat_ids().iter().any(|s| s == seat) {
                return Err(ApiError::not_found(format!(
                    "room {id:?} has no seat {seat:?}"
                )));
            }
            if let Some(slot) = patch.slot {
                room.set_seat_slot(seat, slot)?;
            }
            if patch.volume.is_some() || patch.muted.is_some() {
                room.set_seat_audio(seat, patch.volume, patch.muted)
                    .map_err(|e| ApiError::invalid(e.to_string()))?;
            }
            if let Some(b) = beauty {
                room.set_seat_beauty(seat, b)
                    .map_err(|e| ApiError::invalid(e.to_string()))?;
            }
            if let Some(p) = placeholder {
                room.set_seat_placeholder(seat, Some(p))
                    .map_err(|e| ApiError::invalid(format!("placeholder: {e:#}")))?;
            }
            Ok(())
        })?;
        self.get(id)
    }

    pub fn remove_seat(&self, id: &str, seat: &str) -> Result<RoomView, ApiError> {
        self.with_room(id, |room| {
            room.remove_seat(seat)
                .map_err(|_| ApiError::not_found(format!("room {id:?} has no seat {seat:?}")))
        })?;
        self.get(id)
    }

    pub fn stats(&self, id: &str) -> Result<StatsView, ApiError> {
        self.with_room(id, |room| {
            let (state, _) = room_state(&room.state());
            let last = room
                .layout_control()
                .switches()
                .last()
                .map(|s| LayoutChange {
                    generation: s.generation,
                    mix_latency_ms: s.latency.map(ms),
                    output_latency_ms: s.output_latency.map(ms),
                });
            Ok(StatsView {
                room: id.to_owned(),
                state,
                uptime_seconds: (room.uptime().as_secs_f64() * 10.0).round() / 10.0,
                mixed_frames: room.mixed_frames(),
                mix_fps: room.mix_fps(),
                seats: room.seat_stats(),
                rungs: room.rung_stats(),
                last_layout_change: last,
                cpu_percent: lock(&self.cpu).rooms.get(id).copied(),
                whep_viewers: room.whep_viewers(),
            })
        })
    }

    pub fn snapshot(&self, id: &str, width: Option<u32>) -> Result<Vec<u8>, ApiError> {
        self.with_room(id, |room| {
            room.snapshot_jpeg(width)
                .map_err(|e| ApiError::internal(format!("{e:#}")))?
                .ok_or_else(|| ApiError::unavailable("no frame mixed yet; try again shortly"))
        })
    }

    /// A room's LL-HLS packager, for the playback routes.
    pub fn hls(&self, id: &str) -> Option<Arc<crate::room::hls::Packager>> {
        self.with_room(id, |room| Ok(room.hls())).ok().flatten()
    }

    /// For metrics: every running room's figures, without holding the registry lock while
    /// reading them.
    pub fn for_each_room(&self, mut f: impl FnMut(&str, &Room)) {
        let entries: Vec<Arc<RoomEntry>> = lock(&self.rooms).values().cloned().collect();
        for e in entries {
            if let Some(room) = lock(&e.room).as_ref() {
                f(&e.id, room);
            }
        }
    }

    /// Stops accepting rooms and ends every room cleanly, in parallel, within `grace`.
    pub fn shutdown(&self, grace: Duration) {
        self.accepting.store(false, Relaxed);
        self.webrtc.close_all("shutdown");
        let entries: Vec<Arc<RoomEntry>> = std::mem::take(&mut *lock(&self.rooms))
            .into_values()
            .collect();
        let handles: Vec<_> = entries
            .into_iter()
            .map(|e| std::thread::spawn(move || stop_entry(&e, grace)))
            .collect();
        for h in handles {
            let _ = h.join();
        }
    }
}

fn stop_entry(entry: &RoomEntry, grace: Duration) {
    let room = lock(&entry.room).take();
    if let Some(mut room) = room {
        let state = room.stop(grace);
        *lock(&entry.ended) = Some(state);
    }
}

impl IngestRouter for Engine {
    fn publish(&self, req: &PublishRequest) -> Result<Box<dyn PublishSink>, Refusal> {
        let t = match req.protocol {
            Protocol::Rtmp => keys::parse_rtmp(&req.app, &req.name)?,
            Protocol::Srt => keys::parse_srt(&req.name)?,
            Protocol::Whip => {
                return Err(Refusal::Malformed(
                    "WHIP publishers come through the HTTP API".into(),
                ));
            }
        };
        let entry = lock(&self.rooms)
            .get(&t.room)
            .cloned()
            .ok_or_else(|| Refusal::UnknownRoom(t.room.clone()))?;
        let guard = lock(&entry.room);
        let room = guard.as_ref().ok_or(Refusal::Gone)?;
        // Building and starting the publisher's bin touches GStreamer state: let the async
        // runtime move other tasks off this worker meanwhile.
        blocking_ok(|| {
            room.attach_publisher(
                &t.seat,
                &t.key,
                crate::pipeline::publisher::Input::Container(req.protocol),
                req.peer,
            )
        })
        .map(|s| Box::new(s) as Box<dyn PublishSink>)
    }
}

/// Runs `f`, telling a multi-threaded tokio runtime (if we are on one) that it may block.
pub(crate) fn blocking_ok<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
