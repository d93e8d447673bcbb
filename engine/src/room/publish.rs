//! Publish seats: a seat whose media comes from a live publisher (RTMP, SRT or WHIP).
//!
//! The seat owns its mixer pads for its whole life; each accepted publisher gets its own bin
//! (`pipeline::publisher`) linked to them, and loses it when it leaves. Between publishers the
//! compositor pad keeps the last frame (held for `hold_last_frame`, then the placeholder) and
//! the audio mixer plays silence, so the mix and every output go on untouched.
//!
//! Rules: the key must match (constant time); a second publisher on a seat whose publisher is
//! alive is refused; on a stalled seat it takes over. A publisher is cut off when its stream
//! carries an unsupported codec, shows no decodable picture within `KEYFRAME_TIMEOUT`, or
//! queues more than `MAX_QUEUED_BYTES` (the seat cannot keep up): memory stays bounded.
//!
//! Lock order: the room's `seats` lock is never held while a publisher bin changes state,
//! because the bin's streaming threads may call back into the room.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gst::prelude::*;

use super::{Inner, Room, Seat, SeatSpec, SeatState, lock};
use crate::ingest::retime::Stream;
use crate::ingest::{Protocol, PublishSink, Refusal, keys};
use crate::pipeline::publisher;
use crate::room::stats::SeatCounters;

/// A publisher that has shown no decodable picture by then is cut off.
pub const KEYFRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes a publisher may have queued in front of its demuxer.
pub const MAX_QUEUED_BYTES: u64 = 8 << 20;

pub(super) struct LivePublisher {
    generation: u64,
    bin: gst::Bin,
    protocol: Protocol,
    peer: SocketAddr,
    connected_at: Instant,
    /// Set when the publisher must go (unsupported codec, decode error); its sink reports it.
    failure: Arc<Mutex<Option<String>>>,
}

pub(super) struct PublishState {
    pub(super) key: String,
    pub(super) live: Option<LivePublisher>,
    next_generation: u64,
    /// Why the last publisher failed; cleared when the next one is accepted.
    failed: Option<String>,
}

/// What the API shows about a publish seat.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PublishInfo {
    pub key: String,
    /// `rtmp`, `srt` or `whip` while a publisher is connected.
    pub publisher: Option<&'static str>,
    pub peer: Option<String>,
    pub connected_seconds: Option<f64>,
    pub publishes: u64,
    pub stalls: u64,
}

impl PublishState {
    fn new() -> Self {
        Self {
            key: crate::api::model::random_id(),
            live: None,
            next_generation: 1,
            failed: None,
        }
    }

    /// Marks the live publisher (if any) as failed; its sink ends the connection. The first
    /// reason wins: a refused codec is followed by the demuxer's own "not linked" error,
    /// which says less.
    pub(super) fn fail(&mut self, reason: &str) {
        if self.failed.is_some() && self.live.is_some() {
            return;
        }
        self.failed = Some(reason.to_owned());
        if let Some(l) = &self.live {
            *lock(&l.failure) = Some(reason.to_owned());
        }
    }

    /// The seat's state from its publisher and the age of its last frame.
    pub(super) fn state(
        &self,
        since_last_video: Option<Duration>,
        stall: Duration,
        hold: Duration,
    ) -> SeatState {
        if let Some(r) = &self.failed {
            return SeatState::Failed(r.clone());
        }
        match (&self.live, since_last_video) {
            (None, Some(d)) if d <= stall + hold => SeatState::Stalled,
            (None, _) => SeatState::Waiting,
            (Some(_), None) => SeatState::Waiting,
            // The last frame is older than this publisher: it is the previous one's, so this
            // publisher has shown nothing yet.
            (Some(l), Some(d)) if d > l.connected_at.elapsed() => SeatState::Waiting,
            (Some(_), Some(d)) if d > stall => SeatState::Stalled,
            (Some(_), Some(_)) => SeatState::Connected,
        }
    }
}

impl Inner {
    pub(super) fn attach_publish_seat(self: &Arc<Self>, spec: SeatSpec) -> anyhow::Result<()> {
        let (comp_pad, mix_pad) = self.request_mixer_pads(&spec)?;
        let placeholder = match &spec.placeholder {
            Some(path) => Some(self.attach_placeholder(&spec.id, path)?),
            None => None,
        };
        self.layout.add_seat(
            &spec.id,
            spec.slot,
            comp_pad.clone(),
            placeholder.as_ref().map(|(_, p)| p.clone()),
        );
        let id = spec.id.clone();
        let filter = crate::pipeline::beauty::SeatFilter::default();
        filter.set_tile(self.tile_target(&id));
        lock(&self.seats).insert(
            id,
            Seat {
                spec,
                bin: None,
                comp_pad,
                mix_pad,
                placeholder: placeholder.clone(),
                counters: Arc::new(SeatCounters::new()),
                state: SeatState::Waiting,
                publish: Some(PublishState::new()),
                filter,
            },
        );
        if let Some((bin, _)) = &placeholder {
            bin.sync_state_with_parent()?;
        }
        Ok(())
    }

    /// Stops a publisher's bin and takes it out of the pipeline, on the room's own thread so
    /// it cannot race the pipeline's shutdown; inline once that thread is gone. Never called
    /// with the seats lock held, nor from the room's thread.
    pub(super) fn teardown_publisher(&self, p: LivePublisher) {
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let sender = lock(&self.events).clone();
        let p = match sender {
            Some(tx) => match tx.send(super::Event::Teardown {
                publisher: p,
                done: done_tx,
            }) {
                Ok(()) => match done_rx.recv_timeout(Duration::from_secs(10)) {
                    Ok(()) => return,
                    // The thread ended with the request unhandled: the request (and the
                    // publisher) went with it, and the pipeline is down; nothing to do.
                    Err(_) => return,
                },
                Err(std::sync::mpsc::SendError(super::Event::Teardown { publisher, .. })) => {
                    publisher
                }
                Err(_) => return,
            },
            None => p,
        };
        self.teardown_now(p);
    }

    /// The teardown itself: stop every element (decoders plugged in late included), unlink,
    /// remove.
    pub(super) fn teardown_now(&self, p: LivePublisher) {
        // Once the room is stopping the mixer no longer consumes, so the publisher's threads
        // may be parked in the mixer's pads and a bin-level state change would wait on them
        // forever. The pipeline going to NULL flushes those pads first: leave it to that.
        if self.stopping() {
            return;
        }
        let _ = p.bin.set_state(gst::State::Null);
        let mut it = p.bin.iterate_recurse();
        while let Ok(Some(e)) = it.next() {
            let _ = e.set_state(gst::State::Null);
        }
        for pad in p.bin.src_pads() {
            if let Some(peer) = pad.peer() {
                let _ = pad.unlink(&peer);
            }
        }
        let _ = self.pipeline.remove(&p.bin);
        tracing::info!(room = %self.id, bin = %p.bin.name(), peer = %p.peer, "publisher detached");
    }

    /// The publisher of `generation` left (or was cut off).
    fn end_publisher(&self, seat: &str, generation: u64, reason: &str) {
        let taken = {
            let mut seats = lock(&self.seats);
            seats
                .get_mut(seat)
                .and_then(|s| s.publish.as_mut())
                .and_then(|p| match &p.live {
                    Some(l) if l.generation == generation => p.live.take(),
                    _ => None,
                })
        };
        if let Some(p) = taken {
            tracing::info!(room = %self.id, seat, "publisher left: {reason}");
            self.teardown_publisher(p);
        }
    }

    /// From a streaming thread: the publisher of `generation` cannot be shown.
    fn fail_publisher(&self, seat: &str, generation: u64, reason: String) {
        let mut seats = lock(&self.seats);
        if let Some(p) = seats.get_mut(seat).and_then(|s| s.publish.as_mut())
            && p.live.as_ref().is_some_and(|l| l.generation == generation)
        {
            tracing::warn!(room = %self.id, seat, "publisher refused: {reason}");
            p.fail(&reason);
        }
    }
}

impl Room {
    /// Accepts a publisher on a publish seat, or says why not.
    pub fn attach_publisher(
        &self,
        seat_id: &str,
        key: &str,
        input: publisher::Input,
        peer: SocketAddr,
    ) -> Result<SeatSink, Refusal> {
        let inner = &self.inner;
        let protocol = input.protocol();
        let stall = inner.timing.stall_timeout;
        // Phase 1, locked: check, decide a takeover, reserve a generation.
        let (generation, old, comp_pad, mix_pad, counters, filter, beauty) = {
            let mut seats = lock(&inner.seats);
            let seat = seats.get_mut(seat_id).ok_or_else(|| Refusal::UnknownSeat {
                room: inner.id.clone(),
                seat: seat_id.to_owned(),
            })?;
            let since = seat.counters.since_last_video();
            let p = seat
                .publish
                .as_mut()
                .ok_or_else(|| Refusal::NotPublish(seat_id.to_owned()))?;
            if !keys::key_matches(key, &p.key) {
                return Err(Refusal::BadKey(seat_id.to_owned()));
            }
            if let Some(l) = &p.live {
                // Alive: its media is flowing, or it connected moments ago and has not shown a
                // picture yet. Otherwise it is stalled (or failed) and the newcomer takes over.
                let own_media = d_after(since, l.connected_at);
                let flowing = own_media && since.is_some_and(|d| d <= stall);
                let fresh = !own_media && l.connected_at.elapsed() < KEYFRAME_TIMEOUT;
                if lock(&l.failure).is_none() && (flowing || fresh) {
                    return Err(Refusal::Busy(seat_id.to_owned()));
                }
            }
            let generation = p.next_generation;
            p.next_generation += 1;
            p.failed = None;
            (
                generation,
                p.live.take(),
                seat.comp_pad.clone(),
                seat.mix_pad.clone(),
                seat.counters.clone(),
                seat.filter.clone(),
                seat.spec.beauty.clone(),
            )
        };
        if let Some(old) = old {
            tracing::info!(room = %inner.id, seat = seat_id, "a new publisher takes over a stalled seat");
            inner.teardown_publisher(old);
        }
        // Phase 2, unlocked: build and link the publisher's bin.
        let failure: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let weak: Weak<Inner> = Arc::downgrade(inner);
        let seat_name = seat_id.to_owned();
        let on_unsupported: publisher::OnUnsupported = Arc::new(move |reason: String| {
            if let Some(inner) = weak.upgrade() {
                inner.fail_publisher(&seat_name, generation, reason);
            }
        });
        let name = format!("seat-{seat_id}~{generation}");
        let pb = publisher::build(
            &name,
            input,
            inner.pipeline.upcast_ref(),
            on_unsupported,
            &filter,
            &beauty,
        )
        .map_err(|e| Refusal::Other(format!("cannot build the ingest pipeline: {e:#}")))?;
        let link = || -> anyhow::Result<()> {
            inner.pipeline.add(&pb.bin)?;
            pb.video.link(&comp_pad)?;
            pb.audio.link(&mix_pad)?;
            Ok(())
        };
        if let Err(e) = link() {
            let _ = inner.pipeline.remove(&pb.bin);
            return Err(Refusal::Other(format!("cannot link the publisher: {e:#}")));
        }
        inner.count_seat(seat_id, &pb.video, &pb.audio, &counters);
        let live = LivePublisher {
            generation,
            bin: pb.bin.clone(),
            protocol,
            peer,
            connected_at: Instant::now(),
            failure: failure.clone(),
        };
        // Phase 3, locked: install it, unless the seat went away meanwhile.
        let installed = {
            let mut seats = lock(&inner.seats);
            match seats.get_mut(seat_id).and_then(|s| s.publish.as_mut()) {
                Some(p) if p.live.is_none() => {
                    p.live = Some(live);
                    None
                }
                _ => Some(live),
            }
        };
        if let Some(live) = installed {
            inner.teardown_publisher(live);
            return Err(Refusal::Gone);
        }
        if pb.bin.sync_state_with_parent().is_err() {
            inner.end_publisher(seat_id, generation, "does not start");
            return Err(Refusal::Other("the ingest pipeline does not start".into()));
        }
        counters.publishes.fetch_add(1, Relaxed);
        tracing::info!(room = %inner.id, seat = seat_id, %peer, protocol = protocol.as_str(), "publisher accepted");
        Ok(SeatSink {
            inner: Arc::downgrade(inner),
            seat: seat_id.to_owned(),
            generation,
            feed: pb.feed,
            caps: [None, None],
            failure,
            connected_at: Instant::now(),
            counters: counters.clone(),
            frames_at_start: counters.video_frames.load(Relaxed),
            ended: false,
        })
    }

    /// Whether `key` may publish into `seat_id` at all (the seat exists, takes publishers, and
    /// the key is its key); says nothing of a live publisher there.
    pub fn check_publish_key(&self, seat_id: &str, key: &str) -> Result<(), Refusal> {
        let seats = lock(&self.inner.seats);
        let seat = seats.get(seat_id).ok_or_else(|| Refusal::UnknownSeat {
            room: self.inner.id.clone(),
            seat: seat_id.to_owned(),
        })?;
        let p = seat
            .publish
            .as_ref()
            .ok_or_else(|| Refusal::NotPublish(seat_id.to_owned()))?;
        if !keys::key_matches(key, &p.key) {
            return Err(Refusal::BadKey(seat_id.to_owned()));
        }
        Ok(())
    }

    /// A new publish key for a seat. The live publisher stays; new connections need the new key.
    pub fn rotate_key(&self, seat_id: &str) -> anyhow::Result<String> {
        let mut seats = lock(&self.inner.seats);
        let seat = seats
            .get_mut(seat_id)
            .ok_or_else(|| anyhow::anyhow!("no seat {seat_id:?}"))?;
        let p = seat
            .publish
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("seat {seat_id:?} is not a publish seat"))?;
        p.key = crate::api::model::random_id();
        Ok(p.key.clone())
    }

    /// Publish details of a seat, if it is a publish seat.
    pub fn publish_info(&self, seat_id: &str) -> Option<PublishInfo> {
        let seats = lock(&self.inner.seats);
        let seat = seats.get(seat_id)?;
        let p = seat.publish.as_ref()?;
        Some(PublishInfo {
            key: p.key.clone(),
            publisher: p.live.as_ref().map(|l| l.protocol.as_str()),
            peer: p.live.as_ref().map(|l| l.peer.to_string()),
            connected_seconds: p
                .live
                .as_ref()
                .map(|l| (l.connected_at.elapsed().as_secs_f64() * 10.0).round() / 10.0),
            publishes: seat.counters.publishes.load(Relaxed),
            stalls: seat.counters.stalls.load(Relaxed),
        })
    }
}

/// True when the last frame arrived after the publisher connected (it is this publisher's).
fn d_after(since: Option<Duration>, connected_at: Instant) -> bool {
    since.is_some_and(|d| d <= connected_at.elapsed())
}

/// Where a publisher's connection delivers its bytes (RTMP, SRT) or its depayloaded media
/// (WHIP). The same checks apply to both: a failed publisher, a seat that cannot keep up, no
/// decodable picture within `KEYFRAME_TIMEOUT`.
pub struct SeatSink {
    inner: Weak<Inner>,
    seat: String,
    generation: u64,
    feed: publisher::Feed,
    /// The caps last set on the video and audio appsrcs (WHIP).
    caps: [Option<gst::Caps>; 2],
    failure: Arc<Mutex<Option<String>>>,
    connected_at: Instant,
    counters: Arc<SeatCounters>,
    frames_at_start: u64,
    ended: bool,
}

impl SeatSink {
    fn cut_off(&self, reason: String) -> Refusal {
        *lock(&self.failure) = Some(reason.clone());
        if let Some(inner) = self.inner.upgrade() {
            inner.fail_publisher(&self.seat, self.generation, reason.clone());
        }
        Refusal::Other(reason)
    }

    /// Whether the publisher may go on delivering into `src`.
    fn check(&self, src: &gst_app::AppSrc) -> Result<(), Refusal> {
        if let Some(r) = lock(&self.failure).clone() {
            return Err(Refusal::Other(r));
        }
        if src.current_level_bytes() > MAX_QUEUED_BYTES {
            return Err(self.cut_off(format!(
                "the seat cannot keep up: more than {} MB queued",
                MAX_QUEUED_BYTES >> 20
            )));
        }
        if self.connected_at.elapsed() > KEYFRAME_TIMEOUT
            && self.counters.video_frames.load(Relaxed) == self.frames_at_start
        {
            return Err(self.cut_off(format!(
                "no decodable video within {} s (no keyframe, or no video)",
                KEYFRAME_TIMEOUT.as_secs()
            )));
        }
        Ok(())
    }

    fn finish(&mut self, reason: &str) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        if let publisher::Feed::Media { video, audio } = &self.feed {
            let _ = video.end_of_stream();
            if let Some(a) = audio {
                let _ = a.end_of_stream();
            }
        }
        if let Some(inner) = self.inner.upgrade() {
            crate::service::blocking_ok(|| {
                inner.end_publisher(&self.seat, self.generation, reason)
            });
        }
    }
}

impl PublishSink for SeatSink {
    fn push(&mut self, data: Bytes) -> Result<(), Refusal> {
        let publisher::Feed::Bytes(appsrc) = &self.feed else {
            return Err(Refusal::Other(
                "this publisher delivers media, not bytes".into(),
            ));
        };
        self.check(appsrc)?;
        self.counters.bytes_in.fetch_add(data.len() as u64, Relaxed);
        appsrc
            .push_buffer(gst::Buffer::from_slice(data))
            .map(|_| ())
            .map_err(|_| Refusal::Gone)
    }

    fn end(&mut self, reason: &str) {
        self.finish(reason);
    }
}

impl crate::webrtc::ingest::MediaSink for SeatSink {
    fn push(
        &mut self,
        stream: Stream,
        buffer: gst::Buffer,
        caps: &gst::CapsRef,
    ) -> Result<(), Refusal> {
        let publisher::Feed::Media { video, audio } = &self.feed else {
            return Err(Refusal::Other(
                "this publisher delivers bytes, not media".into(),
            ));
        };
        let src = match stream {
            Stream::Video => video,
            Stream::Audio => match audio {
                Some(a) => a,
                // The answer accepted no audio: nothing to do with it.
                None => return Ok(()),
            },
        };
        self.check(src)?;
        let slot = &mut self.caps[stream as usize];
        if slot.as_deref() != Some(caps) {
            let c = caps.to_owned();
            src.set_caps(Some(&c));
            *slot = Some(c);
        }
        self.counters
            .bytes_in
            .fetch_add(buffer.size() as u64, Relaxed);
        src.push_buffer(buffer)
            .map(|_| ())
            .map_err(|_| Refusal::Gone)
    }

    fn end(&mut self, reason: &str) {
        self.finish(reason);
    }
}

impl Drop for SeatSink {
    fn drop(&mut self) {
        self.finish("connection dropped");
    }
}
