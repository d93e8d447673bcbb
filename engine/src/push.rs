//! Push outputs: one rung and the room's audio sent to an RTMP(S) or SRT destination (a CDN
//! ingest), retried with exponential backoff, never holding up the room.
//!
//! ```text
//!  room pipeline                                          worker thread (one per output)
//!  rung tee ─ leaky queue ─ appsink ─┐                    ┌──────────────────────────────────────────┐
//!                                    ├─ bounded channel ─▶│ keyframe gate, timestamp rebase          │
//!  audio tee ─ leaky queue ─ appsink ┘  (drop when full)  │ own pipeline per connection attempt:     │
//!                                                         │ appsrc ─ h264parse ─┐                    │
//!                                                         │                     ├ flvmux ─ rtmp2sink │
//!                                                         │ appsrc ─ aacparse ──┘ (mpegtsmux─srtsink)│
//!                                                         └──────────────────────────────────────────┘
//! ```
//!
//! Isolation: the room only ever sees two leaky queues and two appsinks that never block (their
//! callbacks `try_send` into a bounded channel and count what does not fit). Each connection
//! attempt is a separate `gst::Pipeline` owned by the worker, so a refused, dropped or stalled
//! connection posts its error on that pipeline's bus, never on the room's. Tearing an attempt
//! down happens on a helper thread with a time limit: a sink stuck in the network cannot hold
//! the worker, let alone the room.
//!
//! Failure detection, per attempt:
//! - errors on the attempt's bus (connection refused, reset, closed, TLS, publish refused);
//! - a stall: media was handed to the attempt but no buffer entered the network sink for
//!   [`STALL_TIMEOUT`] (`rtmp2sink` blocks in its render function while its connection queue is
//!   full, `srtsink` while the socket is not writable; both also wait there while connecting,
//!   so the same rule bounds a connection that never completes).
//!
//! A failed attempt is retried after a [`Backoff`] delay (1 s doubling to 30 s by default); a
//! connection that stayed up for [`STABLE_AFTER`] resets the delay to its initial value. Every
//! attempt starts on a video keyframe with timestamps rebased so the session starts near 0
//! (audio and video by the same offset; audio before the keyframe dropped), because a CDN sees
//! each connection as a new stream.
//!
//! SRT listener mode (`?mode=listener`) inverts the roles: the worker listens and a remote
//! caller pulls. The output is `connecting` while no caller is connected and `live` while one
//! is; a caller leaving is not a failure.

use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;

use crate::pipeline::make;
use crate::pipeline::tap::Tap;

/// How long media may wait without any buffer entering the network sink before the attempt
/// is declared stalled (or, before it connected, timed out) and torn down.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection that stays up this long resets the backoff to its initial delay.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// How often the worker looks at its attempt (bus, progress) when no media arrives.
const TICK: Duration = Duration::from_millis(50);
/// Samples in flight between the room's appsinks and the worker (about 3 s of 30 fps video
/// plus 48 kHz AAC).
const CHANNEL_CAPACITY: usize = 256;
/// Media queued inside an attempt's appsrc beyond which new media is dropped (the stall rule
/// ends such an attempt soon after).
const MAX_QUEUED_TIME: gst::ClockTime = gst::ClockTime::from_seconds(3);
const MAX_QUEUED_BYTES: u64 = 32 * 1024 * 1024;
/// Recent audio kept while no attempt runs, so a new attempt has the audio of its first
/// keyframe's time (audio is encoded faster than video and arrives first). About 2.7 s.
const AUDIO_BACKLOG: usize = 128;
/// How long an ending stream may take to drain to the destination after EOS.
const EOS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an attempt's pipeline may take to stop before it is left to stop on its own.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound on one worker step that is not a teardown (a state change to PLAYING resolving
/// an SRT host name, a batch of samples).
const STEP_ALLOWANCE: Duration = Duration::from_secs(2);
/// After the room's video ended, how long to wait for its audio to end too.
const AUDIO_EOS_GRACE: Duration = Duration::from_secs(1);
/// Longest URL accepted.
const MAX_URL_LEN: usize = 2048;

// ---------------------------------------------------------------------------------------------
// Destinations

/// The transport a push output uses: RTMP or RTMPS (FLV), or SRT (MPEG-TS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushProtocol {
    Rtmp,
    Srt,
}

/// A validated destination.
#[derive(Clone, Debug, PartialEq)]
pub struct PushTarget {
    pub url: String,
    pub protocol: PushProtocol,
}

/// Validates a destination URL: `rtmp://host[:port]/app/stream...`, `rtmps://...`,
/// `srt://host:port[?streamid=...&latency=...&mode=caller|listener&passphrase=...&pbkeylen=...]`.
/// Errors name what is wrong and what is allowed; they never repeat the stream key or the
/// passphrase.
pub fn parse_push_url(url: &str) -> Result<PushTarget, String> {
    let dest = Dest::parse(url)?;
    Ok(PushTarget {
        url: url.to_owned(),
        protocol: dest.protocol(),
    })
}

/// What the worker needs to connect, parsed from the URL.
#[derive(Clone, Debug, PartialEq)]
enum Dest {
    /// The URL goes to `rtmp2sink` as it is (it splits the application and the stream key at
    /// the last `/` and handles `rtmps` itself). `shown` is the URL without the stream key.
    Rtmp {
        url: String,
        shown: String,
    },
    Srt(SrtParams),
}

#[derive(Clone, Debug, PartialEq)]
struct SrtParams {
    /// Host name or address (IPv6 in brackets).
    host: String,
    port: u16,
    listener: bool,
    streamid: Option<String>,
    latency_ms: Option<u32>,
    passphrase: Option<String>,
    pbkeylen: Option<u32>,
}

impl SrtParams {
    fn uri(&self) -> String {
        format!("srt://{}:{}", self.host, self.port)
    }
}

const EXPECTED: &str = "expected rtmp://host[:port]/app/stream, rtmps://host[:port]/app/stream \
                        or srt://host:port[?streamid=...&latency=...&mode=caller|listener&passphrase=...]";
const SRT_KEYS: &str = "streamid, latency, mode, passphrase, pbkeylen";

impl PushTarget {
    /// The destination without its secrets (stream key, passphrase), for the API and logs.
    pub fn redacted(&self) -> String {
        Dest::parse(&self.url).map_or_else(|_| "(invalid URL)".to_owned(), |d| d.shown())
    }
}

impl Dest {
    fn protocol(&self) -> PushProtocol {
        match self {
            Dest::Rtmp { .. } => PushProtocol::Rtmp,
            Dest::Srt(_) => PushProtocol::Srt,
        }
    }

    /// The destination for logs, without secrets.
    fn shown(&self) -> String {
        match self {
            Dest::Rtmp { shown, .. } => shown.clone(),
            Dest::Srt(p) => format!(
                "{} ({})",
                p.uri(),
                if p.listener { "listener" } else { "caller" }
            ),
        }
    }

    fn parse(url: &str) -> Result<Dest, String> {
        if url.is_empty() {
            return Err(format!("the URL is empty; {EXPECTED}"));
        }
        if url.len() > MAX_URL_LEN {
            return Err(format!(
                "the URL is {} characters long; at most {MAX_URL_LEN} are allowed",
                url.len()
            ));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(
                "the URL contains a space or a control character; percent-encode it (a space is %20)"
                    .into(),
            );
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("the URL has no scheme; {EXPECTED}"));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "rtmp" | "rtmps" => parse_rtmp(&scheme.to_ascii_lowercase(), url, rest),
            "srt" => parse_srt(rest).map(Dest::Srt),
            other => Err(format!(
                "unsupported scheme {other:?}: use rtmp://, rtmps:// or srt://"
            )),
        }
    }
}

fn parse_rtmp(scheme: &str, url: &str, rest: &str) -> Result<Dest, String> {
    if rest.contains('#') {
        return Err(
            "RTMP URLs cannot contain '#'; percent-encode it (%23) if the stream key has one"
                .into(),
        );
    }
    let Some(slash) = rest.find('/') else {
        return Err(format!(
            "the URL has no application and stream key: expected {scheme}://host[:port]/app/stream"
        ));
    };
    let authority = &rest[..slash];
    if authority.contains('?') {
        return Err(format!(
            "a query ('?') must come after the stream key: expected {scheme}://host[:port]/app/stream"
        ));
    }
    let hp = parse_authority(authority, scheme)?;
    if let Some(user) = &hp.userinfo {
        match user.split_once(':') {
            Some((u, p)) if !u.is_empty() && !p.is_empty() => {}
            _ => {
                return Err(
                    "user info before '@' must be user:password (both non-empty)".to_owned(),
                );
            }
        }
    }
    let path = &rest[slash + 1..];
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    if query.is_some_and(|q| q.contains('/')) {
        return Err("the query after '?' cannot contain '/'".into());
    }
    let Some(sep) = path.rfind('/') else {
        return Err(format!(
            "the URL has no stream key: expected {scheme}://host[:port]/app/stream (the stream key is the last part of the path)"
        ));
    };
    let (app, stream) = (&path[..sep], &path[sep + 1..]);
    if app.is_empty() || app.split('/').any(str::is_empty) {
        return Err(format!(
            "the application name is empty or has an empty part ('//'): expected {scheme}://host[:port]/app/stream"
        ));
    }
    if stream.is_empty() {
        return Err(format!(
            "the stream key (the last part of the path) is empty: expected {scheme}://host[:port]/app/stream"
        ));
    }
    let port = hp.port.map(|p| format!(":{p}")).unwrap_or_default();
    Ok(Dest::Rtmp {
        url: url.to_owned(),
        shown: format!("{scheme}://{}{port}/{app}/…", hp.host),
    })
}

fn parse_srt(rest: &str) -> Result<SrtParams, String> {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('#') {
        return Err("the host part of an SRT URL cannot contain '#'".into());
    }
    let hp = parse_authority(authority, "srt")?;
    if hp.userinfo.is_some() {
        return Err(
            "SRT URLs take no user info before '@'; use passphrase=... in the query".into(),
        );
    }
    let Some(port) = hp.port else {
        return Err("the SRT URL has no port: expected srt://host:port".into());
    };
    let tail = &rest[end..];
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, q),
        None => (tail, ""),
    };
    if !path.is_empty() && path != "/" {
        return Err(
            "SRT URLs have no path after the port; pass a stream id as ?streamid=...".into(),
        );
    }
    let mut p = SrtParams {
        host: hp.host,
        port,
        listener: false,
        streamid: None,
        latency_ms: None,
        passphrase: None,
        pbkeylen: None,
    };
    let mut seen: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let Some((key, raw)) = pair.split_once('=') else {
            let key: String = pair.chars().take(40).collect();
            return Err(format!(
                "SRT parameter {key:?} has no value (write name=value; allowed: {SRT_KEYS})"
            ));
        };
        if seen.contains(&key) {
            return Err(format!("SRT parameter {key:?} is given twice"));
        }
        let value = percent_decode(raw, key)?;
        match key {
            "streamid" => {
                if value.len() > 512 {
                    return Err(format!(
                        "streamid is {} bytes long; SRT allows at most 512",
                        value.len()
                    ));
                }
                p.streamid = Some(value);
            }
            "latency" => {
                let ms = value
                    .parse::<u32>()
                    .ok()
                    .filter(|ms| *ms <= 60_000 && value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        format!("latency {value:?} is not a number of milliseconds from 0 to 60000")
                    })?;
                p.latency_ms = Some(ms);
            }
            "mode" => match value.to_ascii_lowercase().as_str() {
                "caller" => p.listener = false,
                "listener" => p.listener = true,
                "rendezvous" => {
                    return Err(
                        "SRT mode rendezvous is not supported; use caller or listener".into(),
                    );
                }
                _ => return Err(format!("SRT mode {value:?} is not caller or listener")),
            },
            "passphrase" => {
                let n = value.chars().count();
                if !(10..=79).contains(&n) {
                    return Err(format!(
                        "the passphrase has {n} characters; SRT needs 10 to 79"
                    ));
                }
                p.passphrase = Some(value);
            }
            "pbkeylen" => {
                let len = match value.as_str() {
                    "16" => 16,
                    "24" => 24,
                    "32" => 32,
                    _ => {
                        return Err(format!(
                            "pbkeylen {value:?} is not 16, 24 or 32 (bytes of AES key)"
                        ));
                    }
                };
                p.pbkeylen = Some(len);
            }
            other => {
                let other: String = other.chars().take(40).collect();
                return Err(format!(
                    "unknown SRT parameter {other:?}; allowed: {SRT_KEYS}"
                ));
            }
        }
        seen.push(key);
    }
    if p.pbkeylen.is_some() && p.passphrase.is_none() {
        return Err("pbkeylen needs a passphrase".into());
    }
    Ok(p)
}

struct HostPort {
    host: String,
    port: Option<u16>,
    userinfo: Option<String>,
}

fn parse_authority(authority: &str, scheme: &str) -> Result<HostPort, String> {
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_owned()), h),
        None => (None, authority),
    };
    if hostport.is_empty() {
        return Err(format!("the URL has no host: expected {scheme}://host..."));
    }
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err("an IPv6 address opened with '[' is not closed with ']'".into());
        };
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{addr:?} is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("only :port may follow an IPv6 address in brackets")?,
            ),
        };
        (format!("[{addr}]"), port)
    } else {
        let (host, port) = match hostport.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err("an IPv6 address must be written in brackets, e.g. [::1]".into());
            }
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        check_hostname(host, scheme)?;
        (host.to_owned(), port)
    };
    let port = port.map(parse_port).transpose()?;
    Ok(HostPort {
        host,
        port,
        userinfo,
    })
}

fn parse_port(p: &str) -> Result<u16, String> {
    if p.is_empty() {
        return Err("the port after ':' is empty".into());
    }
    p.parse::<u16>()
        .ok()
        .filter(|n| *n > 0 && p.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("port {p:?} is not a number from 1 to 65535"))
}

fn check_hostname(h: &str, scheme: &str) -> Result<(), String> {
    if h.is_empty() {
        return Err(format!("the URL has no host: expected {scheme}://host..."));
    }
    if h.len() > 253 {
        return Err("the host name is longer than 253 characters".into());
    }
    for label in h.split('.') {
        if label.is_empty() {
            return Err(format!(
                "host {h:?} has an empty label (two dots in a row, or a dot at an end)"
            ));
        }
        if label.len() > 63 {
            return Err(format!("host {h:?} has a label longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(format!(
                "host {h:?} is not a host name or an IPv4 address (letters, digits, '-' and '.'; IPv6 in brackets)"
            ));
        }
    }
    Ok(())
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+`).
fn percent_decode(s: &str, what: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let byte = b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    format!("{what} has a bad percent escape (write %XX with two hex digits)")
                })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{what} is not UTF-8 once percent-decoded"))
}

// ---------------------------------------------------------------------------------------------
// Backoff

/// Delays between connection attempts: `initial` after the first failure, doubled after each
/// further consecutive failure, never more than `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failed attempts (1 for the first failure):
    /// `initial * 2^(failures-1)`, capped at `max`. A `max` below `initial` caps at `initial`;
    /// 0 failures counts as 1.
    pub fn delay(&self, failures: u32) -> Duration {
        let cap = self.max.max(self.initial);
        let exp = failures.saturating_sub(1);
        if exp >= 32 {
            return cap;
        }
        self.initial
            .checked_mul(1u32 << exp)
            .map_or(cap, |d| d.min(cap))
    }
}

// ---------------------------------------------------------------------------------------------
// Status

/// What a push output is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushState {
    /// Waiting for a keyframe, connecting, or (SRT listener) waiting for a caller.
    Connecting,
    /// Connected; media is flowing.
    Live,
    /// The last attempt failed; the next one starts after the backoff delay, on a keyframe.
    Retrying,
    /// Detached, or the room ended.
    Stopped,
}

/// A push output's state and counters.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PushStatus {
    pub state: PushState,
    /// Connection attempts that failed (refused, dropped, stalled, timed out).
    pub retries: u64,
    /// Connections that went live.
    pub connects: u64,
    /// Why the last attempt failed (kept after a later success).
    pub last_error: Option<String>,
    /// Muxed bytes handed to the network sink while connected, all connections together.
    pub bytes_sent: u64,
    /// Buffers dropped because the destination could not keep up (the channel from the room
    /// or the attempt's queue was full, then video until the next keyframe). Media that
    /// arrives while no connection is up is not counted.
    pub dropped_buffers: u64,
    /// While retrying: milliseconds until the next attempt may start (it starts on the next
    /// keyframe after that).
    pub next_retry_ms: Option<u64>,
}

struct Inner {
    state: PushState,
    retries: u64,
    connects: u64,
    last_error: Option<String>,
    next_attempt: Option<Instant>,
}

/// State shared by the room-side callbacks, the worker and `status()`.
struct Shared {
    inner: Mutex<Inner>,
    bytes_sent: AtomicU64,
    dropped: AtomicU64,
    video_eos: AtomicBool,
    audio_eos: AtomicBool,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            inner: Mutex::new(Inner {
                state: PushState::Connecting,
                retries: 0,
                connects: 0,
                last_error: None,
                next_attempt: None,
            }),
            bytes_sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            video_eos: AtomicBool::new(false),
            audio_eos: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn drop_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn status(&self) -> PushStatus {
        let g = self.lock();
        let now = Instant::now();
        PushStatus {
            state: g.state,
            retries: g.retries,
            connects: g.connects,
            last_error: g.last_error.clone(),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            dropped_buffers: self.dropped.load(Ordering::Relaxed),
            next_retry_ms: match (g.state, g.next_attempt) {
                (PushState::Retrying, Some(t)) => {
                    Some(t.saturating_duration_since(now).as_millis() as u64)
                }
                _ => None,
            },
        }
    }
}

/// Stop requests to the worker and its "done" signal.
struct Control {
    stop: AtomicU8,
    done: Mutex<bool>,
    cv: Condvar,
}

const RUN: u8 = 0;
const STOP_GRACEFUL: u8 = 1;
const STOP_NOW: u8 = 2;

impl Control {
    fn new() -> Control {
        Control {
            stop: AtomicU8::new(RUN),
            done: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    fn request(&self, how: u8) {
        self.stop.fetch_max(how, Ordering::SeqCst);
    }

    fn set_done(&self) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    /// True when the worker finished within `limit`.
    fn wait_done(&self, limit: Duration) -> bool {
        let g = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .cv
            .wait_timeout_while(g, limit, |done| !*done)
            .unwrap_or_else(|e| e.into_inner());
        *g
    }
}

/// Marks the worker done however it leaves (return or panic).
struct DoneGuard(Arc<Control>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.0.set_done();
    }
}

// ---------------------------------------------------------------------------------------------
// The output

/// A push output attached to a room pipeline. Dropping it stops the worker (without ending the
/// destination stream cleanly: use [`PushOutput::detach`] for that).
pub struct PushOutput {
    id: String,
    room: String,
    shared: Arc<Shared>,
    control: Arc<Control>,
    worker: Option<JoinHandle<()>>,
    branch: Option<Tap>,
}

impl PushOutput {
    /// Adds the branch (`video_tee` and `audio_tee` → leaky queue → appsink) to `pipeline`,
    /// whether it is already playing or not yet started, and starts the worker that connects
    /// to `target`. `id` is the output id and `room` the room id (element names, logs); element
    /// names are `push-{id}-…`, so ids must be unique within the room.
    pub fn attach(
        pipeline: &gst::Pipeline,
        id: &str,
        room: &str,
        video_tee: &gst::Element,
        audio_tee: &gst::Element,
        target: PushTarget,
        backoff: Backoff,
    ) -> Result<PushOutput> {
        let dest = Dest::parse(&target.url)
            .map_err(|e| anyhow!("push output {id}: invalid destination: {e}"))?;
        if dest.protocol() != target.protocol {
            bail!(
                "push output {id}: the URL's scheme is {:?} but the target says {:?}",
                dest.protocol(),
                target.protocol
            );
        }
        // A missing plugin fails the attach, not every attempt.
        let factories: &[&str] = match dest {
            Dest::Rtmp { .. } => &["appsrc", "h264parse", "aacparse", "flvmux", "rtmp2sink"],
            Dest::Srt(_) => &["appsrc", "h264parse", "aacparse", "mpegtsmux", "srtsink"],
        };
        for f in factories {
            make(f, None).with_context(|| format!("push output {id}"))?;
        }

        // When the room already runs, its codecs are known: refuse what cannot be pushed.
        for (tee, track) in [(video_tee, Track::Video), (audio_tee, Track::Audio)] {
            if let Some(caps) = tee.static_pad("sink").and_then(|p| p.current_caps())
                && let Some(problem) = codec_problem(&caps, track)
            {
                bail!("push output {id}: {problem}");
            }
        }

        let shared = Arc::new(Shared::new());
        let control = Arc::new(Control::new());
        let (tx, rx) = mpsc::sync_channel(CHANNEL_CAPACITY);
        let feed = Feed {
            tx,
            shared: shared.clone(),
            video_gap: Arc::new(AtomicBool::new(false)),
        };
        let branch = Tap::build(
            pipeline,
            &format!("push-{id}"),
            vec![
                (video_tee, "video", feed.callbacks(Track::Video)),
                (audio_tee, "audio", feed.callbacks(Track::Audio)),
            ],
        )
        .with_context(|| format!("push output {id}: cannot branch off the room"))?;

        let worker = Worker {
            id: id.to_owned(),
            room: room.to_owned(),
            shown: dest.shown(),
            dest,
            backoff,
            rx,
            shared: shared.clone(),
            control: control.clone(),
            session: None,
            failures: 0,
            next_attempt: Instant::now(),
            backlog: VecDeque::new(),
            video_ended: false,
            audio_ended: false,
            video_eos_at: None,
            attempts: 0,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("push-{id}"))
            .spawn(move || worker.run());
        let handle = match spawned {
            Ok(h) => h,
            Err(e) => {
                branch.remove(pipeline);
                bail!("push output {id}: cannot start its worker thread: {e}");
            }
        };
        tracing::info!(room, output = id, "push output attached");
        Ok(PushOutput {
            id: id.to_owned(),
            room: room.to_owned(),
            shared,
            control,
            worker: Some(handle),
            branch: Some(branch),
        })
    }

    pub fn status(&self) -> PushStatus {
        self.shared.status()
    }

    /// Removes the branch from the room pipeline (tee pads released, elements to NULL and
    /// removed) and stops the worker, ending the destination stream with EOS when it is
    /// connected. Takes at most a few seconds, whatever the destination does.
    pub fn detach(mut self, pipeline: &gst::Pipeline) {
        if let Some(b) = self.branch.take() {
            b.remove(pipeline);
        }
        self.stop(true);
        tracing::info!(room = %self.room, output = %self.id, "push output detached");
    }

    fn stop(&mut self, graceful: bool) {
        let Some(handle) = self.worker.take() else {
            return;
        };
        self.control
            .request(if graceful { STOP_GRACEFUL } else { STOP_NOW });
        let limit = if graceful {
            EOS_TIMEOUT
        } else {
            Duration::ZERO
        } + TEARDOWN_TIMEOUT
            + STEP_ALLOWANCE;
        if self.control.wait_done(limit) {
            let _ = handle.join();
        } else {
            tracing::warn!(
                room = %self.room,
                output = %self.id,
                "push worker still busy after {} ms; left to finish on its own",
                limit.as_millis()
            );
        }
    }
}

impl Drop for PushOutput {
    fn drop(&mut self) {
        self.stop(false);
    }
}

// ---------------------------------------------------------------------------------------------
// Room side: tee → leaky queue → appsink, samples into the channel

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Track {
    Video,
    Audio,
}

enum Msg {
    Video(gst::Sample),
    Audio(gst::Sample),
}

/// The appsinks' side of the channel. Never blocks.
#[derive(Clone)]
struct Feed {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    /// Set when a video sample did not fit: the rest of its GOP is dropped too (a decoder
    /// cannot use it), up to the next keyframe.
    video_gap: Arc<AtomicBool>,
}

impl Feed {
    fn video(&self, sample: gst::Sample) {
        let key = sample
            .buffer()
            .is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT));
        if !key && self.video_gap.load(Ordering::Relaxed) {
            self.shared.drop_one();
            return;
        }
        match self.tx.try_send(Msg::Video(sample)) {
            Ok(()) => {
                if key {
                    self.video_gap.store(false, Ordering::Relaxed);
                }
            }
            Err(TrySendError::Full(_)) => {
                self.shared.drop_one();
                self.video_gap.store(true, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn audio(&self, sample: gst::Sample) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Msg::Audio(sample)) {
            self.shared.drop_one();
        }
    }

    fn eos(&self, track: Track) {
        let flag = match track {
            Track::Video => &self.shared.video_eos,
            Track::Audio => &self.shared.audio_eos,
        };
        flag.store(true, Ordering::SeqCst);
    }

    fn callbacks(&self, track: Track) -> gst_app::AppSinkCallbacks {
        let on_sample = self.clone();
        let on_eos = self.clone();
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                // Never return an error: it would fail the room's queue.
                if let Ok(sample) = sink.pull_sample() {
                    match track {
                        Track::Video => on_sample.video(sample),
                        Track::Audio => on_sample.audio(sample),
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .eos(move |_| on_eos.eos(track))
            .build()
    }
}

// ---------------------------------------------------------------------------------------------
// Worker: one thread per output, one pipeline per connection attempt

struct Worker {
    id: String,
    room: String,
    dest: Dest,
    shown: String,
    backoff: Backoff,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    control: Arc<Control>,
    session: Option<Session>,
    /// Consecutive failed attempts (reset by a connection that stayed up).
    failures: u32,
    /// No attempt starts before this.
    next_attempt: Instant,
    /// Recent audio while no attempt runs.
    backlog: VecDeque<gst::Sample>,
    video_ended: bool,
    audio_ended: bool,
    video_eos_at: Option<Instant>,
    attempts: u64,
}

impl Worker {
    fn run(mut self) {
        let _done = DoneGuard(self.control.clone());
        loop {
            match self.control.stop.load(Ordering::SeqCst) {
                RUN => {}
                STOP_GRACEFUL => return self.finish(true, "detached"),
                _ => return self.finish(false, "dropped"),
            }
            match self.rx.recv_timeout(TICK) {
                Ok(msg) => {
                    self.handle(msg);
                    self.drain(CHANNEL_CAPACITY);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return self.finish(true, "the room branch is gone");
                }
            }
            if self.room_ended() {
                return self.finish(true, "the room ended");
            }
            self.check();
        }
    }

    fn drain(&mut self, at_most: usize) {
        for _ in 0..at_most {
            match self.rx.try_recv() {
                Ok(msg) => self.handle(msg),
                Err(_) => break,
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Video(s) => self.video(s),
            Msg::Audio(s) => self.audio(s),
        }
    }

    /// Notices the room's EOS (after the media sent before it) and ends the attempt's tracks.
    /// True once the room has ended.
    fn room_ended(&mut self) -> bool {
        let v = self.shared.video_eos.load(Ordering::SeqCst);
        let a = self.shared.audio_eos.load(Ordering::SeqCst);
        if (v && !self.video_ended) || (a && !self.audio_ended) {
            // Everything sent before the EOS is in the channel already.
            self.drain(CHANNEL_CAPACITY);
        }
        if v && !self.video_ended {
            self.video_ended = true;
            self.video_eos_at = Some(Instant::now());
            if let Some(s) = &mut self.session {
                s.end_track(Track::Video);
            }
        }
        if a && !self.audio_ended {
            self.audio_ended = true;
            if let Some(s) = &mut self.session {
                s.end_track(Track::Audio);
            }
        }
        self.video_ended
            && (self.audio_ended
                || self
                    .video_eos_at
                    .is_some_and(|t| t.elapsed() >= AUDIO_EOS_GRACE))
    }

    fn video(&mut self, sample: gst::Sample) {
        if self.video_ended {
            return;
        }
        let Some(buf) = sample.buffer() else {
            return;
        };
        let key = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
        match &mut self.session {
            Some(s) => s.push_video(&sample, key, &self.shared),
            None if key && Instant::now() >= self.next_attempt => self.start(&sample),
            None => {}
        }
    }

    fn audio(&mut self, sample: gst::Sample) {
        if self.audio_ended {
            return;
        }
        match &mut self.session {
            Some(s) => s.push_audio(&sample, &self.shared),
            None => {
                if self.backlog.len() >= AUDIO_BACKLOG {
                    self.backlog.pop_front();
                }
                self.backlog.push_back(sample);
            }
        }
    }

    /// Starts an attempt on this keyframe.
    fn start(&mut self, key: &gst::Sample) {
        self.attempts += 1;
        {
            let mut g = self.shared.lock();
            g.state = PushState::Connecting;
            g.next_attempt = None;
        }
        let name = format!("push-{}-{}-{}", self.room, self.id, self.attempts);
        let backlog = std::mem::take(&mut self.backlog);
        match Session::start(&self.dest, &name, key, backlog, &self.shared) {
            Ok(mut s) => {
                if self.audio_ended {
                    // No more audio will come: the muxer must not wait for it.
                    s.end_track(Track::Audio);
                }
                tracing::info!(
                    room = %self.room,
                    output = %self.id,
                    dest = %self.shown,
                    attempt = self.attempts,
                    "push connecting"
                );
                self.session = Some(s);
            }
            Err(e) => self.failed(format!("{e:#}"), false),
        }
    }

    /// Looks at the running attempt: bus, connection, progress.
    fn check(&mut self) {
        let Some(s) = &mut self.session else {
            return;
        };
        match s.poll(Instant::now()) {
            Poll::Quiet => {}
            Poll::Live => {
                let mut g = self.shared.lock();
                g.state = PushState::Live;
                g.connects += 1;
                drop(g);
                tracing::info!(room = %self.room, output = %self.id, dest = %self.shown, "push live");
            }
            Poll::Waiting => {
                self.shared.lock().state = PushState::Connecting;
                tracing::info!(room = %self.room, output = %self.id, "push listener: caller left");
            }
            Poll::Failed(reason) => {
                let stable = s.stable();
                self.end_session(false);
                self.failed(reason, stable);
            }
        }
    }

    fn failed(&mut self, reason: String, after_stable_connection: bool) {
        if after_stable_connection {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        let delay = self.backoff.delay(self.failures);
        let now = Instant::now();
        // A configured delay too large for the clock waits a year instead of panicking.
        self.next_attempt = now
            .checked_add(delay)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        {
            let mut g = self.shared.lock();
            g.state = PushState::Retrying;
            g.retries += 1;
            g.last_error = Some(reason.clone());
            g.next_attempt = Some(self.next_attempt);
        }
        tracing::warn!(
            room = %self.room,
            output = %self.id,
            dest = %self.shown,
            retry_in_ms = delay.as_millis() as u64,
            "push destination failed: {reason}"
        );
    }

    fn end_session(&mut self, graceful: bool) {
        if let Some(s) = self.session.take() {
            s.close(graceful);
        }
    }

    fn finish(&mut self, graceful: bool, why: &str) {
        self.end_session(graceful);
        {
            let mut g = self.shared.lock();
            g.state = PushState::Stopped;
            g.next_attempt = None;
        }
        tracing::info!(room = %self.room, output = %self.id, "push stopped: {why}");
    }
}

enum Poll {
    Quiet,
    /// Just connected.
    Live,
    /// Was live, now waiting again (SRT listener: the caller left).
    Waiting,
    Failed(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SinkKind {
    Rtmp,
    SrtCaller,
    SrtListener,
}

/// Counters the network sink's pad probe and signals update.
#[derive(Default)]
struct SinkCounters {
    /// Buffers that entered the network sink (a sink blocked in the network stops this).
    buffers: AtomicU64,
    /// Connected: count bytes as sent.
    connected: AtomicBool,
    /// SRT listener: callers connected.
    callers: AtomicU64,
}

/// One connection attempt: its own pipeline.
struct Session {
    pipeline: gst::Pipeline,
    bus: gst::Bus,
    video: gst_app::AppSrc,
    audio: gst_app::AppSrc,
    sink: gst::Element,
    kind: SinkKind,
    counters: Arc<SinkCounters>,
    /// Room running time (ns) that becomes 0.
    base_ns: i64,
    /// Room running time (ns) of the first keyframe; earlier audio is dropped.
    start_ns: i64,
    vcaps: Option<gst::Caps>,
    acaps: Option<gst::Caps>,
    /// Video was dropped: wait for a keyframe.
    need_key: bool,
    started: Instant,
    live_since: Option<Instant>,
    seen_buffers: u64,
    last_progress: Instant,
    last_push: Option<Instant>,
    video_ended: bool,
    audio_ended: bool,
    eos_done: bool,
    /// Media this attempt cannot carry (a codec change): ends it at the next poll.
    fatal: Option<String>,
}

impl Session {
    fn start(
        dest: &Dest,
        name: &str,
        key: &gst::Sample,
        backlog: VecDeque<gst::Sample>,
        shared: &Arc<Shared>,
    ) -> Result<Session> {
        let buf = key.buffer().context("keyframe sample without a buffer")?;
        let caps = key.caps().context("video sample without caps")?;
        if let Some(problem) = codec_problem(caps, Track::Video) {
            bail!("{problem}");
        }
        let seg = time_segment(key);
        let pts = running_ns(seg, buf.pts()).context("keyframe without a timestamp")?;
        let dts = running_ns(seg, buf.dts()).unwrap_or(pts);
        let counters = Arc::new(SinkCounters::default());
        let Attempt {
            pipeline,
            video,
            audio,
            sink,
            kind,
        } = build_attempt(dest, name, &counters, shared)?;
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let bus_error = pipeline
                .bus()
                .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
                .and_then(|m| match m.view() {
                    gst::MessageView::Error(err) => Some(describe_error(err)),
                    _ => None,
                });
            shutdown(pipeline, name);
            return Err(anyhow!(
                bus_error.unwrap_or_else(|| format!("cannot start: {e}"))
            ));
        }
        let now = Instant::now();
        let mut s = Session {
            bus: pipeline.bus().context("pipeline without a bus")?,
            pipeline,
            video,
            audio,
            sink,
            kind,
            counters,
            base_ns: dts.min(pts),
            start_ns: pts,
            vcaps: None,
            acaps: None,
            need_key: false,
            started: now,
            live_since: None,
            seen_buffers: 0,
            last_progress: now,
            last_push: None,
            video_ended: false,
            audio_ended: false,
            eos_done: false,
            fatal: None,
        };
        s.push_video(key, true, shared);
        for a in &backlog {
            s.push_audio(a, shared);
        }
        Ok(s)
    }

    fn push_video(&mut self, sample: &gst::Sample, key: bool, shared: &Shared) {
        if self.video_ended {
            return;
        }
        if self.need_key && !key {
            shared.drop_one();
            return;
        }
        if over_limit(&self.video) {
            shared.drop_one();
            self.need_key = true;
            return;
        }
        let Some(buf) = rebase(sample, self.base_ns, self.base_ns) else {
            shared.drop_one();
            self.need_key = true;
            return;
        };
        if let Some(caps) = sample.caps()
            && self.vcaps.as_deref() != Some(caps)
        {
            if let Some(problem) = codec_problem(caps, Track::Video) {
                self.fatal.get_or_insert(problem);
                return;
            }
            let caps = caps.to_owned();
            self.video.set_caps(Some(&caps));
            self.vcaps = Some(caps);
        }
        self.need_key = false;
        let _ = self.video.push_buffer(buf);
        self.last_push = Some(Instant::now());
    }

    fn push_audio(&mut self, sample: &gst::Sample, shared: &Shared) {
        if self.audio_ended {
            return;
        }
        // Audio before the first keyframe has no picture to go with.
        let Some(buf) = rebase(sample, self.base_ns, self.start_ns) else {
            return;
        };
        if over_limit(&self.audio) {
            shared.drop_one();
            return;
        }
        if let Some(caps) = sample.caps()
            && self.acaps.as_deref() != Some(caps)
        {
            if let Some(problem) = codec_problem(caps, Track::Audio) {
                self.fatal.get_or_insert(problem);
                return;
            }
            let caps = caps.to_owned();
            self.audio.set_caps(Some(&caps));
            self.acaps = Some(caps);
        }
        let _ = self.audio.push_buffer(buf);
        self.last_push = Some(Instant::now());
    }

    fn end_track(&mut self, track: Track) {
        let (src, ended) = match track {
            Track::Video => (&self.video, &mut self.video_ended),
            Track::Audio => (&self.audio, &mut self.audio_ended),
        };
        if !*ended {
            *ended = true;
            let _ = src.end_of_stream();
        }
    }

    /// Live for long enough that its failure resets the backoff.
    fn stable(&self) -> bool {
        self.live_since.is_some_and(|t| t.elapsed() >= STABLE_AFTER)
    }

    fn connected(&self) -> bool {
        match self.kind {
            SinkKind::Rtmp => {
                // rtmp2sink has a connection (and counts its bytes) once publishing started.
                self.live_since.is_some()
                    || self
                        .sink
                        .property::<Option<gst::Structure>>("stats")
                        .and_then(|s| s.get::<u64>("out-bytes-total").ok())
                        .is_some_and(|n| n > 0)
            }
            // The first buffer's render returns only once the caller is connected.
            SinkKind::SrtCaller => self.seen_buffers >= 2,
            SinkKind::SrtListener => self.counters.callers.load(Ordering::SeqCst) > 0,
        }
    }

    fn poll(&mut self, now: Instant) -> Poll {
        if let Some(problem) = self.fatal.take() {
            return Poll::Failed(problem);
        }
        while let Some(msg) = self.bus.pop() {
            match msg.view() {
                gst::MessageView::Error(err) => return Poll::Failed(describe_error(err)),
                gst::MessageView::Eos(_) => self.eos_done = true,
                gst::MessageView::Warning(w) => {
                    tracing::debug!(pipeline = %self.pipeline.name(), "{} ({:?})", w.error(), w.debug());
                }
                _ => {}
            }
        }
        let n = self.counters.buffers.load(Ordering::SeqCst);
        if n != self.seen_buffers {
            self.seen_buffers = n;
            self.last_progress = now;
        }
        let connected = self.connected();
        let event = match (connected, self.live_since.is_some()) {
            (true, false) => {
                self.live_since = Some(now);
                self.counters.connected.store(true, Ordering::SeqCst);
                Poll::Live
            }
            (false, true) => {
                self.live_since = None;
                self.counters.connected.store(false, Ordering::SeqCst);
                Poll::Waiting
            }
            _ => Poll::Quiet,
        };
        if self.eos_done {
            return event;
        }
        let waiting = self.last_push.is_some_and(|p| {
            p > self.last_progress && now.duration_since(self.last_progress) >= STALL_TIMEOUT
        });
        if waiting {
            let secs = STALL_TIMEOUT.as_secs();
            return Poll::Failed(if self.live_since.is_some() {
                format!(
                    "stalled: no data went out for {secs} s (queued: video {} buffers, audio {} buffers)",
                    self.video.current_level_buffers(),
                    self.audio.current_level_buffers()
                )
            } else {
                format!(
                    "no connection after {} s",
                    now.duration_since(self.started).as_secs()
                )
            });
        }
        event
    }

    /// Ends the attempt: with EOS first when it is connected and `graceful` (so the
    /// destination sees a clean end), then its pipeline to NULL, each within a time limit.
    fn close(mut self, graceful: bool) {
        if graceful && self.live_since.is_some() && !self.eos_done {
            self.end_track(Track::Video);
            self.end_track(Track::Audio);
            let deadline = Instant::now() + EOS_TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    tracing::debug!(pipeline = %self.pipeline.name(), "EOS did not reach the destination in time");
                    break;
                }
                let msg = self.bus.timed_pop_filtered(
                    gst::ClockTime::from_nseconds(left.as_nanos() as u64),
                    &[gst::MessageType::Eos, gst::MessageType::Error],
                );
                match msg.as_ref().map(|m| m.view()) {
                    Some(gst::MessageView::Eos(_)) | None => break,
                    Some(gst::MessageView::Error(e)) => {
                        tracing::debug!(pipeline = %self.pipeline.name(), "error while ending: {}", describe_error(e));
                        break;
                    }
                    _ => {}
                }
            }
        }
        self.counters.connected.store(false, Ordering::SeqCst);
        let name = self.pipeline.name().to_string();
        shutdown(self.pipeline, &name);
    }
}

/// Builds one attempt's pipeline: appsrc ─ parser ─ mux ─ network sink, per track.
/// An attempt's pipeline and the elements the worker talks to.
struct Attempt {
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    audio: gst_app::AppSrc,
    sink: gst::Element,
    kind: SinkKind,
}

fn build_attempt(
    dest: &Dest,
    name: &str,
    counters: &Arc<SinkCounters>,
    shared: &Arc<Shared>,
) -> Result<Attempt> {
    let pipeline = gst::Pipeline::with_name(name);
    // Not live: the muxer waits for both tracks and interleaves them by timestamp; the worker
    // keeps the queues bounded and the stall rule catches a destination that stops taking data.
    let src = |n: &str| {
        gst_app::AppSrc::builder()
            .name(n)
            .format(gst::Format::Time)
            .is_live(false)
            .block(false)
            .max_bytes(0)
            .stream_type(gst_app::AppStreamType::Stream)
            .build()
    };
    let video = src("video");
    let audio = src("audio");
    let vparse = make("h264parse", Some("vparse"))?;
    // SPS/PPS before every IDR, for MPEG-TS receivers joining mid-stream.
    vparse.set_property("config-interval", -1i32);
    let aparse = make("aacparse", Some("aparse"))?;
    let (mux, sink, kind, vtmpl, atmpl) = match dest {
        Dest::Rtmp { url, .. } => {
            let mux = make("flvmux", Some("mux"))?;
            mux.set_property("streamable", true);
            let sink = make("rtmp2sink", Some("net"))?;
            sink.set_property("location", url);
            // Its own connect and socket timeout, longer than the stall rule so that rule
            // decides (the same way for RTMP and SRT) and this one is the backstop.
            sink.set_property("timeout", 2 * STALL_TIMEOUT.as_secs() as u32);
            (mux, sink, SinkKind::Rtmp, "video", "audio")
        }
        Dest::Srt(p) => {
            let mux = make("mpegtsmux", Some("mux"))?;
            // 7 TS packets: one SRT live-mode payload (1316 bytes).
            mux.set_property("alignment", 7i32);
            let sink = make("srtsink", Some("net"))?;
            sink.set_property("uri", p.uri());
            sink.set_property_from_str("mode", if p.listener { "listener" } else { "caller" });
            if p.listener {
                // GStreamer 1.22's srtsink binds to these in listener mode, not to the URI's.
                let addr = p.host.trim_start_matches('[').trim_end_matches(']');
                sink.set_property("localaddress", addr);
                sink.set_property("localport", u32::from(p.port));
            }
            // Caller: wait for the connection in render (bounded by SRT's connect timeout and
            // the stall rule). Listener: drop media while no caller is connected.
            sink.set_property("wait-for-connection", !p.listener);
            sink.set_property("auto-reconnect", false);
            // Wake up regularly so a teardown is never stuck in a poll.
            sink.set_property("poll-timeout", 100i32);
            if let Some(ms) = p.latency_ms {
                sink.set_property("latency", ms as i32);
            }
            if let Some(id) = &p.streamid {
                sink.set_property("streamid", id);
            }
            if let Some(pass) = &p.passphrase {
                sink.set_property("passphrase", pass);
            }
            if let Some(len) = p.pbkeylen {
                sink.set_property_from_str("pbkeylen", &len.to_string());
            }
            let kind = if p.listener {
                for (signal, delta) in [("caller-added", 1i64), ("caller-removed", -1)] {
                    let c = counters.clone();
                    sink.connect(signal, false, move |_| {
                        if delta > 0 {
                            c.callers.fetch_add(1, Ordering::SeqCst);
                        } else {
                            let _ =
                                c.callers
                                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                        Some(n.saturating_sub(1))
                                    });
                        }
                        None
                    });
                }
                SinkKind::SrtListener
            } else {
                SinkKind::SrtCaller
            };
            (mux, sink, kind, "sink_%d", "sink_%d")
        }
    };
    sink.set_property("sync", false);
    sink.set_property("async", false);
    pipeline.add_many([
        video.upcast_ref::<gst::Element>(),
        &vparse,
        audio.upcast_ref(),
        &aparse,
        &mux,
        &sink,
    ])?;
    video.link(&vparse)?;
    audio.link(&aparse)?;
    for (parse, tmpl) in [(&vparse, vtmpl), (&aparse, atmpl)] {
        let mux_pad = mux
            .request_pad_simple(tmpl)
            .with_context(|| format!("{} gives no {tmpl} pad", mux.name()))?;
        parse
            .static_pad("src")
            .context("parser without a src pad")?
            .link(&mux_pad)
            .with_context(|| format!("cannot link {} to {}", parse.name(), mux.name()))?;
    }
    mux.link(&sink)?;
    let c = counters.clone();
    let sh = shared.clone();
    sink.static_pad("sink")
        .context("network sink without a sink pad")?
        .add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            move |_, info| {
                let (n, bytes) = if let Some(b) = info.buffer() {
                    (1, b.size())
                } else if let Some(l) = info.buffer_list() {
                    (l.len() as u64, l.calculate_size())
                } else {
                    (0, 0)
                };
                c.buffers.fetch_add(n, Ordering::SeqCst);
                if c.connected.load(Ordering::SeqCst) {
                    sh.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
                }
                gst::PadProbeReturn::Ok
            },
        );
    Ok(Attempt {
        pipeline,
        video,
        audio,
        sink,
        kind,
    })
}

/// Sets an attempt's pipeline to NULL on a helper thread and waits for it at most
/// [`TEARDOWN_TIMEOUT`]; a pipeline that takes longer is left to stop on its own.
fn shutdown(pipeline: gst::Pipeline, name: &str) {
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    let p = pipeline.clone();
    let spawned = std::thread::Builder::new()
        .name("push-teardown".into())
        .spawn(move || {
            let _ = p.set_state(gst::State::Null);
            let _ = tx.send(());
        });
    match spawned {
        Ok(_) => {
            if rx.recv_timeout(TEARDOWN_TIMEOUT).is_err() {
                tracing::warn!(
                    pipeline = name,
                    "push attempt did not stop within {} ms; left to stop on its own",
                    TEARDOWN_TIMEOUT.as_millis()
                );
            }
        }
        Err(_) => {
            let _ = pipeline.set_state(gst::State::Null);
        }
    }
}

/// Why media with these caps cannot be pushed (FLV and our MPEG-TS path carry H.264 and AAC).
fn codec_problem(caps: &gst::CapsRef, track: Track) -> Option<String> {
    let s = caps.structure(0)?;
    let ok = match track {
        Track::Video => s.name() == "video/x-h264",
        Track::Audio => {
            s.name() == "audio/mpeg" && s.get::<i32>("mpegversion").is_ok_and(|v| v == 2 || v == 4)
        }
    };
    (!ok).then(|| match track {
        Track::Video => format!(
            "the rung is {}; push outputs carry H.264 video only",
            s.name()
        ),
        Track::Audio => format!(
            "the room's audio is {}; push outputs carry AAC audio only",
            s.name()
        ),
    })
}

fn over_limit(src: &gst_app::AppSrc) -> bool {
    src.current_level_time() > MAX_QUEUED_TIME || src.current_level_bytes() > MAX_QUEUED_BYTES
}

fn time_segment(sample: &gst::Sample) -> Option<&gst::FormattedSegment<gst::ClockTime>> {
    sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
}

/// A timestamp as running time in nanoseconds (negative before the segment's start).
fn running_ns(
    seg: Option<&gst::FormattedSegment<gst::ClockTime>>,
    ts: Option<gst::ClockTime>,
) -> Option<i64> {
    let ts = ts?;
    let Some(seg) = seg else {
        return i64::try_from(ts.nseconds()).ok();
    };
    match seg.to_running_time_full(ts)? {
        gst::format::Signed::Positive(t) => i64::try_from(t.nseconds()).ok(),
        gst::format::Signed::Negative(t) => i64::try_from(t.nseconds()).ok().map(|n| -n),
    }
}

/// The sample's buffer with its timestamps moved so that running time `base_ns` is 0; None
/// when it has no timestamp or its PTS is before `min_ns`.
fn rebase(sample: &gst::Sample, base_ns: i64, min_ns: i64) -> Option<gst::Buffer> {
    let seg = time_segment(sample);
    let mut buf = sample.buffer_owned()?;
    let pts = running_ns(seg, buf.pts())?;
    if pts < min_ns || pts < base_ns {
        return None;
    }
    let dts = running_ns(seg, buf.dts());
    {
        let b = buf.make_mut();
        b.set_pts(gst::ClockTime::from_nseconds((pts - base_ns) as u64));
        b.set_dts(dts.map(|d| gst::ClockTime::from_nseconds((d - base_ns).max(0) as u64)));
    }
    Some(buf)
}

/// An error message with its detail, without GStreamer's source locations.
fn describe_error(err: &gst::message::Error) -> String {
    let mut s = err.error().to_string();
    if let Some(debug) = err.debug() {
        let detail = debug
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.contains(".c(") && !l.starts_with("domain "));
        if let Some(d) = detail
            && !s.contains(d)
        {
            s = format!("{s}: {d}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> Dest {
        Dest::parse(url).unwrap_or_else(|e| panic!("{url} should parse: {e}"))
    }

    fn err(url: &str) -> String {
        match Dest::parse(url) {
            Ok(d) => panic!("{url} should not parse, got {d:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn rtmp_urls() {
        for url in [
            "rtmp://127.0.0.1/live/test",
            "rtmp://127.0.0.1:1935/live/test",
            "rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop",
            "rtmps://live-api-s.facebook.com:443/rtmp/FB-1234?s_bl=1&s_sc=5678",
            "rtmp://live.twitch.tv/app/live_123_abc",
            "rtmp://user:secret@cdn.example.com/app/inst/stream",
            "rtmp://[::1]:1935/live/test",
            "RTMP://Example.COM/live/test",
        ] {
            assert_eq!(ok(url).protocol(), PushProtocol::Rtmp, "{url}");
            let t = parse_push_url(url).unwrap();
            assert_eq!(t.url, url);
            assert_eq!(t.protocol, PushProtocol::Rtmp);
        }
        // Logs show the destination without its stream key.
        let d = ok("rtmp://a.rtmp.youtube.com:1935/live2/secret-key");
        assert_eq!(d.shown(), "rtmp://a.rtmp.youtube.com:1935/live2/…");
        assert!(!d.shown().contains("secret"));
        assert_eq!(
            ok("rtmps://h/a/b/c").shown(),
            "rtmps://h/a/b/…",
            "the application is everything up to the last '/'"
        );
    }

    #[test]
    fn bad_rtmp_urls_say_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("http://example.com/live/x", "unsupported scheme \"http\""),
            ("example.com/live/x", "no scheme"),
            ("rtmp://", "no application"),
            ("rtmp://host", "no application"),
            ("rtmp:///live/x", "no host"),
            ("rtmp://host/live", "no stream key"),
            ("rtmp://host/live/", "stream key"),
            ("rtmp://host//x", "application name is empty"),
            ("rtmp://host/a//x", "empty part"),
            ("rtmp://host:0/live/x", "from 1 to 65535"),
            ("rtmp://host:65536/live/x", "from 1 to 65535"),
            ("rtmp://host:+80/live/x", "from 1 to 65535"),
            ("rtmp://host:abc/live/x", "\"abc\" is not a number"),
            ("rtmp://host:/live/x", "port after ':' is empty"),
            ("rtmp://ho st/live/x", "space"),
            ("rtmp://host/live/x\n", "control character"),
            ("rtmp://host/live/x#y", "'#'"),
            ("rtmp://::1/live/x", "brackets"),
            ("rtmp://[::1/live/x", "not closed"),
            ("rtmp://[zz]/live/x", "not an IPv6 address"),
            ("rtmp://[::1]x/live/x", "only :port"),
            ("rtmp://ho_st!/live/x", "not a host name"),
            ("rtmp://a..b/live/x", "empty label"),
            ("rtmp://-a/live/x", "not a host name"),
            ("rtmp://host?x=1/live/x", "after the stream key"),
            ("rtmp://host/live/x?a=/b", "cannot contain '/'"),
            ("rtmp://user@host/live/x", "user:password"),
            ("rtmp://:pw@host/live/x", "user:password"),
        ];
        for (url, want) in cases {
            let e = err(url);
            assert!(e.contains(want), "{url:?}: {e:?} should mention {want:?}");
            assert_eq!(parse_push_url(url).unwrap_err(), e);
        }
        let long = format!("rtmp://host/live/{}", "k".repeat(3000));
        assert!(err(&long).contains("at most 2048"));
        // The message names what is allowed.
        assert!(err("udp://host:1").contains("rtmp://, rtmps:// or srt://"));
        // Secrets are not repeated.
        let e = err("rtmp://host/live/s3cr3t-key#x");
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn srt_urls() {
        let d = ok("srt://127.0.0.1:9000");
        assert_eq!(
            d,
            Dest::Srt(SrtParams {
                host: "127.0.0.1".into(),
                port: 9000,
                listener: false,
                streamid: None,
                latency_ms: None,
                passphrase: None,
                pbkeylen: None,
            })
        );
        let Dest::Srt(p) = ok(
            "srt://ingest.example.com:10080?streamid=%23!::r=live/abc,m=publish&latency=200&passphrase=0123456789abc&pbkeylen=32",
        ) else {
            panic!("not SRT")
        };
        assert_eq!(p.streamid.as_deref(), Some("#!::r=live/abc,m=publish"));
        assert_eq!(p.latency_ms, Some(200));
        assert_eq!(p.passphrase.as_deref(), Some("0123456789abc"));
        assert_eq!(p.pbkeylen, Some(32));
        assert!(!p.listener);
        assert_eq!(p.uri(), "srt://ingest.example.com:10080");
        // A raw '#' inside the query is part of the stream id.
        let Dest::Srt(p) = ok("srt://h:1?streamid=#!::r=a") else {
            panic!("not SRT")
        };
        assert_eq!(p.streamid.as_deref(), Some("#!::r=a"));
        let Dest::Srt(p) = ok("SRT://0.0.0.0:9000/?mode=listener") else {
            panic!("not SRT")
        };
        assert!(p.listener);
        assert_eq!(p.uri(), "srt://0.0.0.0:9000");
        let Dest::Srt(p) = ok("srt://[::1]:9000?mode=Caller") else {
            panic!("not SRT")
        };
        assert_eq!(p.uri(), "srt://[::1]:9000");
        assert!(!p.listener);
        let d = ok("srt://h:9000?passphrase=0123456789abc&mode=listener");
        assert!(!d.shown().contains("0123456789"));
        assert_eq!(d.shown(), "srt://h:9000 (listener)");
        assert_eq!(
            parse_push_url("srt://h:9").unwrap().protocol,
            PushProtocol::Srt
        );
    }

    #[test]
    fn bad_srt_urls_say_what_is_wrong() {
        let cases = [
            ("srt://host", "no port"),
            ("srt://:9000", "no host"),
            ("srt://host:9000/live", "no path"),
            (
                "srt://host:9000?foo=1",
                "unknown SRT parameter \"foo\"; allowed: streamid, latency, mode, passphrase, pbkeylen",
            ),
            ("srt://host:9000?latency", "has no value"),
            (
                "srt://host:9000?latency=abc",
                "milliseconds from 0 to 60000",
            ),
            (
                "srt://host:9000?latency=60001",
                "milliseconds from 0 to 60000",
            ),
            ("srt://host:9000?latency=-1", "milliseconds"),
            ("srt://host:9000?latency=1&latency=2", "given twice"),
            (
                "srt://host:9000?mode=rendezvous",
                "rendezvous is not supported",
            ),
            ("srt://host:9000?mode=push", "not caller or listener"),
            ("srt://host:9000?passphrase=short", "10 to 79"),
            ("srt://host:9000?pbkeylen=16", "needs a passphrase"),
            (
                "srt://host:9000?pbkeylen=8&passphrase=0123456789",
                "16, 24 or 32",
            ),
            ("srt://host:9000?streamid=%zz", "bad percent escape"),
            ("srt://host:9000?streamid=%4", "bad percent escape"),
            ("srt://host:9000?streamid=%ff", "not UTF-8"),
            ("srt://user@host:9000", "no user info"),
            ("srt://host:99999", "from 1 to 65535"),
            ("srt://ho#st:9000", "cannot contain '#'"),
        ];
        for (url, want) in cases {
            let e = err(url);
            assert!(e.contains(want), "{url:?}: {e:?} should mention {want:?}");
        }
        let long_id = format!("srt://h:1?streamid={}", "x".repeat(600));
        assert!(err(&long_id).contains("at most 512"));
        let e = err("srt://h:1?passphrase=tooshort");
        assert!(!e.contains("tooshort"), "{e}");
    }

    #[test]
    fn backoff_doubles_from_initial_to_max() {
        let b = Backoff::default();
        assert_eq!(b.initial, Duration::from_secs(1));
        assert_eq!(b.max, Duration::from_secs(30));
        let secs: Vec<u64> = (1..=8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.delay(0), Duration::from_secs(1));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(30));
        assert_eq!(b.delay(33), Duration::from_secs(30));

        let fast = Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(2),
        };
        let ms: Vec<u128> = (1..=6).map(|n| fast.delay(n).as_millis()).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 2000, 2000]);

        // A huge initial delay does not overflow.
        let huge = Backoff {
            initial: Duration::from_secs(u64::MAX / 2),
            max: Duration::from_secs(u64::MAX),
        };
        assert_eq!(huge.delay(3), Duration::from_secs(u64::MAX));

        // max below initial: every delay is the initial one.
        let odd = Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(1),
        };
        assert_eq!(odd.delay(1), Duration::from_secs(5));
        assert_eq!(odd.delay(4), Duration::from_secs(5));
    }

    #[test]
    fn outputs_can_live_in_shared_room_state() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<PushOutput>();
        send_sync::<PushStatus>();
    }

    #[test]
    fn only_h264_and_aac_can_be_pushed() {
        crate::init().unwrap();
        let caps = |s: &str| s.parse::<gst::Caps>().unwrap();
        assert_eq!(
            codec_problem(&caps("video/x-h264, stream-format=avc"), Track::Video),
            None
        );
        let e = codec_problem(&caps("video/x-h265"), Track::Video).unwrap();
        assert_eq!(
            e,
            "the rung is video/x-h265; push outputs carry H.264 video only"
        );
        assert_eq!(
            codec_problem(&caps("audio/mpeg, mpegversion=4"), Track::Audio),
            None
        );
        let e = codec_problem(&caps("audio/x-opus"), Track::Audio).unwrap();
        assert!(e.contains("AAC audio only"), "{e}");
        assert!(codec_problem(&caps("audio/mpeg, mpegversion=1"), Track::Audio).is_some());
    }

    #[test]
    fn status_serialises_in_snake_case() {
        let shared = Shared::new();
        {
            let mut g = shared.lock();
            g.state = PushState::Retrying;
            g.retries = 3;
            g.next_attempt = Some(Instant::now() + Duration::from_secs(4));
            g.last_error = Some("Could not connect".into());
        }
        let st = shared.status();
        let ms = st.next_retry_ms.expect("retrying has a next retry");
        assert!(ms <= 4000 && ms > 3000, "{ms}");
        let v = serde_json::to_value(&st).unwrap();
        assert_eq!(v["state"], "retrying");
        assert_eq!(v["retries"], 3);
        assert_eq!(v["last_error"], "Could not connect");
        shared.lock().state = PushState::Live;
        assert_eq!(shared.status().next_retry_ms, None);
    }
}
