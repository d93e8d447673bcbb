//! Every WebRTC session of the process (WHIP publishers and WHEP viewers) by id: the session
//! limit, the ICE deadline, teardown on failure, and the counters `/metrics` shows.
//!
//! Sessions are closed on a thread of their own (never on a webrtcbin thread, where stopping
//! the pipeline would deadlock, and never on another session's time): a publisher's teardown
//! waits for its room, and one slow room must not hold up anyone else's.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::ice::IceConfig;
use super::ingest::IngestSession;
use super::peer::{OnEvent, PeerEvent};
use super::playback::Viewer;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A peer that lost ICE for this long is gone (browsers give up after about 30 s; a publisher
/// whose seat shows a frozen picture for that long is worse than one that re-joins).
const DISCONNECTED_TIMEOUT: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(250);

/// What a session serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionKind {
    Whip { room: String, seat: String },
    Whep { room: String, rung: Option<String> },
}

impl SessionKind {
    pub fn room(&self) -> &str {
        match self {
            SessionKind::Whip { room, .. } | SessionKind::Whep { room, .. } => room,
        }
    }
    fn label(&self) -> &'static str {
        match self {
            SessionKind::Whip { .. } => "whip",
            SessionKind::Whep { .. } => "whep",
        }
    }
}

/// A WebRTC request that cannot be served, with its HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WebrtcError {
    pub status: u16,
    /// Counter label (`malformed`, `unsupported`, `limit`, ...).
    pub reason: &'static str,
    pub message: String,
}

impl WebrtcError {
    pub fn new(status: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
        }
    }
}

enum Live {
    Whip(IngestSession),
    Whep(Viewer),
}

impl Live {
    fn stop(&mut self, reason: &str) {
        match self {
            Live::Whip(s) => s.stop(reason),
            Live::Whep(v) => v.stop(),
        }
    }
    fn add_candidate(&self, mline: u32, line: &str) {
        match self {
            Live::Whip(s) => s.peer().add_candidate(mline, line),
            Live::Whep(v) => v.peer().add_candidate(mline, line),
        }
    }
}

struct Entry {
    kind: SessionKind,
    created: Instant,
    connected: AtomicBool,
    disconnected_since: Mutex<Option<Instant>>,
    /// ICE username fragment of the offer: a PATCH with another asks for an ICE restart.
    ufrag: Option<String>,
    /// The offer, for mapping trickled candidates to m-lines.
    offer: super::sdp::Offer,
    live: Mutex<Option<Live>>,
}

/// Per-kind counters for `/metrics`. `io` has the same meaning as an ingest listener's
/// (offers received, sessions open and accepted, media bytes, refusals by reason), so WHIP
/// shows up next to RTMP and SRT.
#[derive(Debug, Default)]
pub struct KindCounters {
    pub io: Arc<crate::ingest::Counters>,
    /// Sessions that reached ICE+DTLS connected.
    pub connected_total: AtomicU64,
    ended: Mutex<BTreeMap<&'static str, u64>>,
}

impl KindCounters {
    fn ended(&self, reason: &'static str) {
        *lock(&self.ended).entry(reason).or_default() += 1;
    }
    /// Sessions ended, by why: `deleted`, `failed`, `ice_timeout`, `disconnected`, ...
    pub fn ended_by(&self) -> Vec<(&'static str, u64)> {
        lock(&self.ended).iter().map(|(k, v)| (*k, *v)).collect()
    }
}

enum Msg {
    Close {
        id: String,
        why: &'static str,
        reason: String,
    },
}

/// The session registry.
pub struct Sessions {
    pub ice: IceConfig,
    max: usize,
    map: Mutex<HashMap<String, Arc<Entry>>>,
    pub whip: KindCounters,
    pub whep: KindCounters,
    tx: Mutex<Option<Sender<Msg>>>,
    reaper: OnceLock<()>,
}

/// A session just created: its id and the SDP answer.
pub struct Created {
    pub id: String,
    pub answer: String,
}

impl Sessions {
    pub fn new(ice: IceConfig, max: usize) -> Arc<Sessions> {
        Arc::new(Sessions {
            ice,
            max,
            map: Mutex::new(HashMap::new()),
            whip: KindCounters::default(),
            whep: KindCounters::default(),
            tx: Mutex::new(None),
            reaper: OnceLock::new(),
        })
    }

    fn counters(&self, kind: &SessionKind) -> &KindCounters {
        match kind {
            SessionKind::Whip { .. } => &self.whip,
            SessionKind::Whep { .. } => &self.whep,
        }
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open sessions of `room` of the kind named `whip` / `whep`.
    pub fn count_in_room(&self, room: &str, kind: &str) -> usize {
        lock(&self.map)
            .values()
            .filter(|e| e.kind.room() == room && e.kind.label() == kind)
            .count()
    }

    /// An offer arrived (counted whatever becomes of it).
    pub fn offered(&self, kind: &SessionKind) {
        self.counters(kind)
            .io
            .connections_total
            .fetch_add(1, Relaxed);
    }

    /// Refuses a request, counted under `reason`.
    pub fn refuse(&self, kind: &SessionKind, e: WebrtcError) -> WebrtcError {
        self.counters(kind).io.refuse(e.reason);
        tracing::info!(
            kind = kind.label(),
            room = kind.room(),
            status = e.status,
            "offer refused: {}",
            e.message
        );
        e
    }

    /// The counters of a kind (`whip` or `whep`), for metrics and for sessions to count bytes.
    pub fn counters_of(&self, whip: bool) -> &KindCounters {
        if whip { &self.whip } else { &self.whep }
    }

    fn start_reaper(self: &Arc<Self>) {
        self.reaper.get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            *lock(&self.tx) = Some(tx);
            let weak = Arc::downgrade(self);
            let _ = std::thread::Builder::new()
                .name("webrtc-sessions".into())
                .spawn(move || reap(rx, weak));
        });
    }

    /// The callback a session's peer reports to.
    fn on_event(self: &Arc<Self>, id: &str) -> OnEvent {
        let weak = Arc::downgrade(self);
        let id = id.to_owned();
        Arc::new(move |ev| {
            let Some(me) = weak.upgrade() else {
                return;
            };
            let Some(entry) = lock(&me.map).get(&id).cloned() else {
                return;
            };
            tracing::debug!(session = %id, kind = entry.kind.label(), "peer: {ev:?}");
            match ev {
                PeerEvent::Connected => {
                    *lock(&entry.disconnected_since) = None;
                    if !entry.connected.swap(true, Relaxed) {
                        me.counters(&entry.kind)
                            .connected_total
                            .fetch_add(1, Relaxed);
                    }
                }
                PeerEvent::Disconnected => {
                    lock(&entry.disconnected_since).get_or_insert_with(Instant::now);
                }
                PeerEvent::Failed(reason) => me.close(&id, "failed", reason),
            }
        })
    }

    /// Registers a session: checks the limit, reserves an id, builds it with `build` (which
    /// gets the id and the event callback), and keeps it.
    pub fn create(
        self: &Arc<Self>,
        kind: SessionKind,
        offer: &super::sdp::Offer,
        build: impl FnOnce(&str, OnEvent) -> Result<(LiveSession, String), WebrtcError>,
    ) -> Result<Created, WebrtcError> {
        self.start_reaper();
        let id = crate::api::model::random_id();
        let entry = Arc::new(Entry {
            kind: kind.clone(),
            created: Instant::now(),
            connected: AtomicBool::new(false),
            disconnected_since: Mutex::new(None),
            ufrag: offer.ice_ufrag.clone(),
            offer: offer.clone(),
            live: Mutex::new(None),
        });
        {
            let mut map = lock(&self.map);
            if map.len() >= self.max {
                drop(map);
                return Err(self.refuse(
                    &kind,
                    WebrtcError::new(
                        503,
                        "limit",
                        format!(
                            "at the WebRTC session limit ({}); try again later",
                            self.max
                        ),
                    ),
                ));
            }
            map.insert(id.clone(), entry.clone());
        }
        let counters = self.counters(&kind);
        let built = build(&id, self.on_event(&id));
        match built {
            Ok((live, answer)) => {
                counters.io.publishes_accepted.fetch_add(1, Relaxed);
                counters.io.connections_open.fetch_add(1, Relaxed);
                *lock(&entry.live) = Some(live.0);
                Ok(Created { id, answer })
            }
            Err(e) => {
                lock(&self.map).remove(&id);
                Err(self.refuse(&kind, e))
            }
        }
    }

    /// Ends a session (DELETE). `None` when there is no such session of that kind and room.
    pub fn delete(&self, kind: &SessionKind, id: &str) -> Option<()> {
        let found = lock(&self.map).get(id).is_some_and(|e| &e.kind == kind);
        if !found {
            return None;
        }
        self.close(id, "deleted", "ended by the client (DELETE)".into());
        Some(())
    }

    /// Adds trickled candidates (PATCH). Errors: no session (404), ICE restart (422).
    pub fn trickle(&self, kind: &SessionKind, id: &str, fragment: &str) -> Result<(), WebrtcError> {
        let entry = lock(&self.map)
            .get(id)
            .filter(|e| &e.kind == kind)
            .cloned()
            .ok_or_else(|| {
                WebrtcError::new(404, "unknown_session", format!("no session {id:?}"))
            })?;
        let (candidates, restart) =
            super::sdp::parse_trickle(fragment, &entry.offer, entry.ufrag.as_deref())
                .map_err(|e| WebrtcError::new(400, "malformed", e.to_string()))?;
        if restart {
            return Err(WebrtcError::new(
                422,
                "ice_restart",
                "ICE restarts are not supported: end the session (DELETE) and publish again",
            ));
        }
        let live = lock(&entry.live);
        if let Some(l) = live.as_ref() {
            for c in &candidates {
                l.add_candidate(c.mline, &c.line);
            }
        }
        Ok(())
    }

    /// Closes a session on its own thread; counted under `why`.
    fn close(&self, id: &str, why: &'static str, reason: String) {
        if let Some(tx) = lock(&self.tx).as_ref() {
            let _ = tx.send(Msg::Close {
                id: id.to_owned(),
                why,
                reason,
            });
        }
    }

    fn close_now(&self, id: &str, why: &'static str, reason: &str) {
        let Some(entry) = lock(&self.map).remove(id) else {
            return;
        };
        let counters = self.counters(&entry.kind);
        counters.io.closed();
        counters.ended(why);
        tracing::info!(
            session = id,
            kind = entry.kind.label(),
            room = entry.kind.room(),
            "WebRTC session ends ({why}): {reason}"
        );
        let live = lock(&entry.live).take();
        if let Some(mut live) = live {
            let reason = reason.to_owned();
            let _ = std::thread::Builder::new()
                .name("webrtc-close".into())
                .spawn(move || live.stop(&reason));
        }
    }

    /// Ends every session (shutdown).
    pub fn close_all(&self, why: &'static str) {
        let ids: Vec<String> = lock(&self.map).keys().cloned().collect();
        for id in ids {
            self.close_now(&id, why, "the server is stopping");
        }
    }

    /// Ends every session of a room (the room is deleted).
    pub fn close_room(&self, room: &str) {
        let ids: Vec<String> = lock(&self.map)
            .iter()
            .filter(|(_, e)| e.kind.room() == room)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.close_now(&id, "room_ended", "the room ended");
        }
    }

    fn check_deadlines(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        for (id, e) in lock(&self.map).iter() {
            if !e.connected.load(Relaxed) && now - e.created > self.ice.connect_timeout {
                expired.push((
                    id.clone(),
                    "ice_timeout",
                    format!(
                        "ICE did not connect within {} ms",
                        self.ice.connect_timeout.as_millis()
                    ),
                ));
            } else if let Some(t) = *lock(&e.disconnected_since)
                && now - t > DISCONNECTED_TIMEOUT
            {
                expired.push((
                    id.clone(),
                    "disconnected",
                    format!(
                        "the peer was unreachable for {} s",
                        DISCONNECTED_TIMEOUT.as_secs()
                    ),
                ));
            }
        }
        for (id, why, reason) in expired {
            self.close_now(&id, why, &reason);
        }
    }
}

/// The live session `create`'s builder returns (opaque to callers).
pub struct LiveSession(Live);

impl LiveSession {
    pub fn whip(s: IngestSession) -> LiveSession {
        LiveSession(Live::Whip(s))
    }
    pub fn whep(v: Viewer) -> LiveSession {
        LiveSession(Live::Whep(v))
    }
}

fn reap(rx: Receiver<Msg>, sessions: std::sync::Weak<Sessions>) {
    loop {
        let msg = match rx.recv_timeout(TICK) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let Some(s) = sessions.upgrade() else {
            return;
        };
        if let Some(Msg::Close { id, why, reason }) = msg {
            s.close_now(&id, why, &reason);
        }
        s.check_deadlines();
    }
}
