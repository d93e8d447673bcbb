//! The RTMP listener against real peers on 127.0.0.1: ffmpeg publishes a generated clip to an
//! in-process listener behind a test router and what arrives is checked with ffprobe and
//! GStreamer's flvdemux; hand-made clients (raw TCP, handshake and chunks written here) check
//! the exact FLV framing, the end of a publication, and every refusal: bad key, unknown app,
//! garbage, truncated handshake, silence, absurd chunk sizes and message lengths, too many
//! connections, idle publishers, a second publish, a sink that refuses. Every test bounds its
//! time and kills the processes it started.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use showmix::ingest::rtmp::{self, Bytes, FLV_HEADER, TAG_AUDIO, TAG_VIDEO, flv_tag};
use showmix::ingest::{Counters, IngestRouter, Limits, PublishRequest, PublishSink, Refusal};
use showmix_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep, timeout};

/// Every test finishes within this.
const TEST_LIMIT: Duration = Duration::from_secs(30);

async fn bounded<F: Future>(f: F) -> F::Output {
    timeout(TEST_LIMIT, f)
        .await
        .expect("test ran over its time")
}

// ---------------------------------------------------------------------------------------------
// Test router and sink

/// One accepted publication as the sink saw it.
#[derive(Default, Clone)]
struct Publication {
    data: Vec<u8>,
    pushes: usize,
    ends: Vec<String>,
}

#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<PublishRequest>>,
    pubs: Mutex<Vec<Arc<Mutex<Publication>>>>,
}

impl Seen {
    fn pubs(&self) -> Vec<Publication> {
        self.pubs
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.lock().unwrap().clone())
            .collect()
    }
}

/// Accepts app `room1`, name `host?key=good`; its sinks refuse after `refuse_after` pushes.
struct TestRouter {
    seen: Arc<Seen>,
    refuse_after: Option<usize>,
}

impl IngestRouter for TestRouter {
    fn publish(&self, req: &PublishRequest) -> Result<Box<dyn PublishSink>, Refusal> {
        self.seen.requests.lock().unwrap().push(req.clone());
        assert_eq!(req.protocol, showmix::ingest::Protocol::Rtmp);
        assert!(req.peer.ip().is_loopback());
        if req.app != "room1" {
            return Err(Refusal::UnknownRoom(req.app.clone()));
        }
        let (seat, query) = req.name.split_once('?').unwrap_or((&req.name, ""));
        if seat != "host" {
            return Err(Refusal::UnknownSeat {
                room: req.app.clone(),
                seat: seat.into(),
            });
        }
        if query != "key=good" {
            return Err(Refusal::BadKey(seat.into()));
        }
        let publication = Arc::new(Mutex::new(Publication::default()));
        self.seen.pubs.lock().unwrap().push(publication.clone());
        Ok(Box::new(TestSink {
            publication,
            refuse_after: self.refuse_after,
        }))
    }
}

struct TestSink {
    publication: Arc<Mutex<Publication>>,
    refuse_after: Option<usize>,
}

impl PublishSink for TestSink {
    fn push(&mut self, data: Bytes) -> Result<(), Refusal> {
        let mut p = self.publication.lock().unwrap();
        assert!(p.ends.is_empty(), "push after end");
        if self.refuse_after.is_some_and(|n| p.pushes >= n) {
            return Err(Refusal::Busy("host".into()));
        }
        p.pushes += 1;
        p.data.extend_from_slice(&data);
        Ok(())
    }

    fn end(&mut self, reason: &str) {
        self.publication.lock().unwrap().ends.push(reason.into());
    }
}

// ---------------------------------------------------------------------------------------------
// Listener harness

struct Listener {
    addr: SocketAddr,
    seen: Arc<Seen>,
    counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    async fn start(limits: Limits, refuse_after: Option<usize>) -> Listener {
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let counters = Arc::new(Counters::default());
        let router = Arc::new(TestRouter {
            seen: seen.clone(),
            refuse_after,
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rtmp::serve(
            socket,
            router,
            limits,
            counters.clone(),
            async {
                let _ = rx.await;
            },
        ));
        Listener {
            addr,
            seen,
            counters,
            stop: Some(tx),
            task,
        }
    }

    fn url(&self, app: &str, name: &str) -> String {
        format!("rtmp://{}/{app}/{name}", self.addr)
    }

    fn refused(&self, label: &str) -> u64 {
        self.counters
            .refused()
            .into_iter()
            .find(|(l, _)| *l == label)
            .map_or(0, |(_, n)| n)
    }

    fn refused_total(&self) -> u64 {
        self.counters.refused().iter().map(|(_, n)| n).sum()
    }

    async fn wait_refused(&self, label: &str, n: u64) {
        wait_until(&format!("{n} refusals {label:?}"), || {
            self.refused(label) >= n
        })
        .await;
    }

    /// Stops the listener; what the router saw stays readable.
    async fn stop(mut self) -> Arc<Seen> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve does not panic");
        self.seen.clone()
    }
}

fn limits() -> Limits {
    Limits {
        max_connections: 16,
        handshake_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        max_chunk_size: 1 << 20,
        max_message_len: 8 << 20,
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// ffmpeg / GStreamer peers

/// A child process killed (and reaped) however the test ends.
struct Proc(Child);

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        Proc(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        )
    }

    async fn wait(mut self, limit: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.0.stderr.take() {
                    use std::io::Read as _;
                    let _ = e.read_to_string(&mut err);
                }
                return (status, err);
            }
            assert!(Instant::now() < deadline, "child ran over {limit:?}");
            sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ffmpeg_publish(clip: &Path, url: &str) -> Proc {
    Proc::spawn(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-v", "error", "-re", "-i"])
            .arg(clip)
            .args(["-c", "copy", "-f", "flv", url]),
    )
}

fn clip(dir: &Path) -> PathBuf {
    let path = dir.join("clip.mp4");
    solid_clip(&path, "red", 2.0, 320, 240, 25, 440).unwrap();
    path
}

/// Format duration as ffprobe reports it.
fn format_duration(path: &Path) -> f64 {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path))
    .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// ffmpeg publishes the clip; checks what reached the sink. Returns the FLV path.
async fn publish_clip_and_check(l: &Listener, dir: &Path, clip: &Path) -> PathBuf {
    let before = l.seen.pubs().len();
    let (status, err) = ffmpeg_publish(clip, &l.url("room1", "host?key=good"))
        .wait(Duration::from_secs(20))
        .await;
    assert!(status.success(), "ffmpeg failed: {err}");
    // The publication ends with the connection (FCUnpublish/deleteStream, then close).
    wait_until("the publication to end", || {
        l.seen
            .pubs()
            .get(before)
            .is_some_and(|p| !p.ends.is_empty())
    })
    .await;
    let p = &l.seen.pubs()[before];
    assert_eq!(p.ends, ["publisher finished"], "end() exactly once");
    assert!(p.data.starts_with(&FLV_HEADER));

    let flv = dir.join(format!("got{before}.flv"));
    std::fs::write(&flv, &p.data).unwrap();
    let s = streams(&flv).unwrap();
    let (vcodec, w, h, _) = s.video.clone().expect("a video stream");
    let (acodec, rate, _, _) = s.audio.clone().expect("an audio stream");
    assert_eq!((vcodec.as_str(), w, h), ("h264", 320, 240), "{s:?}");
    assert_eq!((acodec.as_str(), rate), ("aac", 48000), "{s:?}");
    let dur = format_duration(&flv);
    assert!((dur - 2.0).abs() <= 0.2, "duration {dur}");
    let frames = frame_count(&flv).unwrap();
    assert!((48..=52).contains(&frames), "{frames} video frames");
    flv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publish_arrives_as_flv() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let clip = clip(dir.path());
        let l = Listener::start(limits(), None).await;
        let flv = publish_clip_and_check(&l, dir.path(), &clip).await;

        let reqs = l.seen.requests.lock().unwrap().clone();
        assert_eq!(reqs.len(), 1);
        assert_eq!(
            (reqs[0].app.as_str(), reqs[0].name.as_str()),
            ("room1", "host?key=good")
        );
        assert_eq!(l.counters.publishes_accepted.load(Relaxed), 1);
        assert!(l.counters.bytes_in.load(Relaxed) > l.seen.pubs()[0].data.len() as u64 / 2);
        assert_eq!(l.refused_total(), 0, "{:?}", l.counters.refused());

        // GStreamer's flvdemux decodes it too (what the engine's seats use).
        let status = Command::new("gst-launch-1.0")
            .args(["-q", "filesrc"])
            .arg(format!("location={}", flv.display()))
            .args([
                "!",
                "flvdemux",
                "name=d",
                "d.video",
                "!",
                "queue",
                "!",
                "h264parse",
                "!",
                "avdec_h264",
                "!",
                "fakesink",
                "d.audio",
                "!",
                "queue",
                "!",
                "aacparse",
                "!",
                "avdec_aac",
                "!",
                "fakesink",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "gst-launch flvdemux failed");

        wait_until("the connection to close", || {
            l.counters.connections_open.load(Relaxed) == 0
        })
        .await;
        l.stop().await;
    })
    .await;
}

async fn refused_publish(l: &Listener, clip: &Path, app: &str, name: &str) {
    let (status, err) = ffmpeg_publish(clip, &l.url(app, name))
        .wait(Duration::from_secs(20))
        .await;
    assert!(!status.success(), "ffmpeg should fail");
    assert!(!err.is_empty());
    assert!(l.seen.pubs().is_empty());
    assert_eq!(l.counters.publishes_accepted.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let clip = clip(dir.path());
        let l = Listener::start(limits(), None).await;
        refused_publish(&l, &clip, "room1", "host?key=bad").await;
        l.wait_refused("bad_key", 1).await;
        assert_eq!(l.refused_total(), 1, "{:?}", l.counters.refused());
        l.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_app_is_refused() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let clip = clip(dir.path());
        let l = Listener::start(limits(), None).await;
        refused_publish(&l, &clip, "nosuchroom", "host?key=good").await;
        l.wait_refused("unknown_room", 1).await;
        assert_eq!(l.refused_total(), 1, "{:?}", l.counters.refused());
        l.stop().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Hand-made peers

/// Reads until the peer closes (EOF or reset); how long that took. Panics after `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 8192];
    loop {
        match timeout(limit.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// Whether the peer closes within `limit` (false: still open).
async fn closes_within(s: &mut TcpStream, limit: Duration) -> bool {
    let start = Instant::now();
    let mut buf = [0u8; 8192];
    loop {
        match timeout(limit.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Deterministic noise.
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Resident set size of this test process.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// A minimal RTMP client: plain handshake, one chunk size, type 0 headers, AMF0 by hand.
struct RawClient {
    s: TcpStream,
    /// Everything the server sent after the handshake.
    got: Vec<u8>,
}

fn amf_str(b: &mut Vec<u8>, s: &str) {
    b.push(0x02);
    b.extend_from_slice(&(s.len() as u16).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn amf_num(b: &mut Vec<u8>, n: f64) {
    b.push(0x00);
    b.extend_from_slice(&n.to_be_bytes());
}

/// A type 0 chunk header (with the extended timestamp when needed).
fn header0(csid: u8, ts: u32, len: usize, type_id: u8, stream: u32) -> Vec<u8> {
    let mut h = vec![csid];
    h.extend_from_slice(&ts.min(0xff_ffff).to_be_bytes()[1..]);
    h.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    h.push(type_id);
    h.extend_from_slice(&stream.to_le_bytes());
    if ts >= 0xff_ffff {
        h.extend_from_slice(&ts.to_be_bytes());
    }
    h
}

impl RawClient {
    /// Connects and completes the handshake (the original, digest-less one).
    async fn connect(addr: SocketAddr) -> RawClient {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut c01 = vec![3u8];
        c01.extend_from_slice(&[0; 8]);
        c01.extend_from_slice(&noise(1528, 7));
        s.write_all(&c01).await.unwrap();
        let mut s012 = vec![0u8; 1 + 1536 * 2];
        s.read_exact(&mut s012).await.unwrap();
        assert_eq!(s012[0], 3);
        // C2 echoes S1.
        s.write_all(&s012[1..1537]).await.unwrap();
        RawClient { s, got: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// One message in one chunk (the chunk size is raised first by `start`).
    async fn message(&mut self, csid: u8, ts: u32, type_id: u8, stream: u32, body: &[u8]) {
        let mut b = header0(csid, ts, body.len(), type_id, stream);
        b.extend_from_slice(body);
        self.send(&b).await;
    }

    async fn command(&mut self, stream: u32, name: &str, txn: f64, args: &[&str]) {
        let mut b = Vec::new();
        amf_str(&mut b, name);
        amf_num(&mut b, txn);
        b.push(0x05);
        for a in args {
            amf_str(&mut b, a);
        }
        self.message(3, 0, 20, stream, &b).await;
    }

    /// Raises the chunk size, connects to `app`, creates stream 1 and publishes `name` on it;
    /// all pipelined in one go, as a hasty client would.
    async fn start(&mut self, app: &str, name: &str) {
        let mut b = header0(2, 0, 4, 1, 0);
        b.extend_from_slice(&65536u32.to_be_bytes());
        // connect(1, {app: <app>})
        let mut body = Vec::new();
        amf_str(&mut body, "connect");
        amf_num(&mut body, 1.0);
        body.push(0x03);
        body.extend_from_slice(&3u16.to_be_bytes());
        body.extend_from_slice(b"app");
        amf_str(&mut body, app);
        body.extend_from_slice(&[0, 0, 0x09]);
        b.extend_from_slice(&header0(3, 0, body.len(), 20, 0));
        b.extend_from_slice(&body);
        self.send(&b).await;
        self.command(0, "createStream", 2.0, &[]).await;
        self.command(1, "publish", 3.0, &[name, "live"]).await;
    }

    /// Reads until the server's responses contain `what`.
    async fn expect(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 4096];
        while !self.got.windows(what.len()).any(|w| w == what.as_bytes()) {
            let n = timeout(deadline - Instant::now(), self.s.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {what:?} from the server"))
                .unwrap();
            assert!(n > 0, "closed before {what:?}");
            self.got.extend_from_slice(&buf[..n]);
        }
    }
}

/// A video tag body: `kind` is the FLV frame type/codec byte (0x17 AVC keyframe, 0x27 AVC
/// inter frame); `n == 0` makes it a sequence header. The payload is noise: the listener
/// passes bodies through without looking inside.
fn video_body(kind: u8, n: usize) -> Vec<u8> {
    let mut b = vec![kind, if n == 0 { 0 } else { 1 }, 0, 0, 0];
    b.extend_from_slice(&noise(n, u64::from(kind) + n as u64 + 1));
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flv_framing_is_exact_and_the_end_is_reported_once() {
    bounded(async {
        let l = Listener::start(limits(), None).await;
        let mut c = RawClient::connect(l.addr).await;
        c.start("room1", "host?key=good").await;
        c.expect("NetStream.Publish.Start").await;

        // Media, including timestamps past 24 bits and a message bigger than 64 KiB (split
        // into chunks by hand).
        let sent: Vec<(u8, u32, Vec<u8>)> = vec![
            (TAG_VIDEO, 0, video_body(0x17, 0)),
            (TAG_AUDIO, 0, vec![0xaf, 0, 0x11, 0x90]),
            (TAG_VIDEO, 0, video_body(0x17, 5000)),
            (TAG_AUDIO, 21, vec![0xaf, 1, 1, 2, 3]),
            (TAG_VIDEO, 40, video_body(0x27, 300)),
            (TAG_VIDEO, 0x0123_4567, video_body(0x27, 10)),
            (TAG_AUDIO, 0xfedc_ba98, vec![0xaf, 1, 9]),
        ];
        for (t, ts, body) in &sent {
            let csid = if *t == TAG_VIDEO { 6 } else { 4 };
            c.message(csid, *ts, *t, 1, body).await;
        }
        let big = video_body(0x17, 100_000);
        let mut b = header0(6, 80, big.len(), TAG_VIDEO, 1);
        for (i, part) in big.chunks(65536).enumerate() {
            if i > 0 {
                b.push(0xc6);
            }
            b.extend_from_slice(part);
        }
        c.send(&b).await;
        c.command(1, "FCUnpublish", 5.0, &["host?key=good"]).await;
        c.command(0, "deleteStream", 6.0, &[]).await;
        closed_within(&mut c.s, Duration::from_secs(3)).await;

        let mut want = FLV_HEADER.to_vec();
        for (t, ts, body) in &sent {
            want.extend_from_slice(&flv_tag(*t, *ts, body).unwrap());
        }
        want.extend_from_slice(&flv_tag(TAG_VIDEO, 80, &big).unwrap());
        wait_until("the end", || l.seen.pubs()[0].ends.len() == 1).await;
        let p = &l.seen.pubs()[0];
        assert_eq!(p.data.len(), want.len());
        assert!(p.data == want, "the FLV stream differs");
        assert_eq!(p.ends, ["publisher finished"]);
        assert_eq!(l.refused_total(), 0, "{:?}", l.counters.refused());
        let seen = l.stop().await;
        // Nothing ends twice, even after shutdown.
        assert_eq!(seen.pubs()[0].ends.len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_fail_the_handshake() {
    bounded(async {
        let l = Listener::start(limits(), None).await;
        let mut s = TcpStream::connect(l.addr).await.unwrap();
        let mut junk = noise(4096, 42);
        junk[0] = 0x47; // not RTMP version 3
        let _ = s.write_all(&junk).await;
        closed_within(&mut s, Duration::from_secs(2)).await;
        l.wait_refused("protocol", 1).await;
        assert_eq!(l.refused_total(), 1, "{:?}", l.counters.refused());

        // Garbage after a good handshake fails in the chunk stream instead.
        let mut c = RawClient::connect(l.addr).await;
        c.send(&[0x45; 64]).await; // type 1 header on a chunk stream never opened
        closed_within(&mut c.s, Duration::from_secs(2)).await;
        l.wait_refused("protocol", 2).await;
        l.stop().await;
    })
    .await;
}

/// Handshake and publish within `handshake`, publishers idle for 500 ms are closed.
fn short_limits(handshake: Duration) -> Limits {
    Limits {
        handshake_timeout: handshake,
        idle_timeout: Duration::from_millis(500),
        ..limits()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_handshake_times_out() {
    bounded(async {
        let l = Listener::start(short_limits(Duration::from_millis(500)), None).await;
        let mut s = TcpStream::connect(l.addr).await.unwrap();
        let mut c01 = vec![3u8];
        c01.extend_from_slice(&noise(768, 1));
        s.write_all(&c01).await.unwrap();
        let took = closed_within(&mut s, Duration::from_secs(3)).await;
        assert!(took >= Duration::from_millis(400), "closed after {took:?}");
        l.wait_refused("timeout", 1).await;
        assert_eq!(l.refused_total(), 1, "{:?}", l.counters.refused());
        l.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_times_out() {
    bounded(async {
        let l = Listener::start(short_limits(Duration::from_secs(1)), None).await;
        let mut s = TcpStream::connect(l.addr).await.unwrap();
        let took = closed_within(&mut s, Duration::from_secs(3)).await;
        assert!(took >= Duration::from_millis(900), "closed after {took:?}");
        l.wait_refused("timeout", 1).await;

        // A handshake alone is not enough: the publish must come within the same time.
        let mut c = RawClient::connect(l.addr).await;
        closed_within(&mut c.s, Duration::from_secs(3)).await;
        l.wait_refused("timeout", 2).await;
        assert_eq!(l.refused_total(), 2, "{:?}", l.counters.refused());
        l.stop().await;
    })
    .await;
}

/// Sends `bytes` then up to `extra` bytes of junk as fast as the server takes them; returns
/// when the server has closed. Checks that this process did not grow by 50 MB meanwhile.
async fn hostile_stream(l: &Listener, bytes: &[u8], extra: usize) {
    let rss0 = rss_bytes();
    let mut c = RawClient::connect(l.addr).await;
    c.send(bytes).await;
    let junk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < extra {
        match timeout(Duration::from_secs(2), c.s.write_all(&junk)).await {
            Ok(Ok(())) => sent += junk.len(),
            _ => break,
        }
    }
    closed_within(&mut c.s, Duration::from_secs(3)).await;
    let grown = rss_bytes().saturating_sub(rss0);
    assert!(grown < 50 << 20, "RSS grew by {} MB", grown >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_chunk_size_is_refused_without_allocating() {
    bounded(async {
        let l = Listener::start(limits(), None).await;
        // Set Chunk Size 0x7fffffff, then a 16 MiB video message header and its payload.
        let mut b = header0(2, 0, 4, 1, 0);
        b.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
        b.extend_from_slice(&header0(6, 0, 0xff_ffff, 9, 1));
        hostile_stream(&l, &b, 64 << 20).await;
        l.wait_refused("protocol", 1).await;
        assert_eq!(l.refused_total(), 1, "{:?}", l.counters.refused());
        l.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_message_length_is_refused_without_allocating() {
    bounded(async {
        let l = Listener::start(limits(), None).await;
        // A chunk size within limits, then a message announced at 16 MiB (limit 8 MiB).
        let mut b = header0(2, 0, 4, 1, 0);
        b.extend_from_slice(&(1u32 << 20).to_be_bytes());
        b.extend_from_slice(&header0(6, 0, 0xff_ffff, 9, 1));
        hostile_stream(&l, &b, 64 << 20).await;
        l.wait_refused("protocol", 1).await;

        // Deeply nested AMF0 in a command (rml_amf0 would recurse once per level).
        let mut body = Vec::new();
        amf_str(&mut body, "connect");
        amf_num(&mut body, 1.0);
        for _ in 0..20_000 {
            body.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
        }
        let mut b = header0(2, 0, 4, 1, 0);
        b.extend_from_slice(&(1u32 << 20).to_be_bytes());
        b.extend_from_slice(&header0(3, 0, body.len(), 20, 0));
        b.extend_from_slice(&body);
        hostile_stream(&l, &b, 0).await;
        l.wait_refused("protocol", 2).await;
        assert_eq!(l.refused_total(), 2, "{:?}", l.counters.refused());
        l.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once() {
    bounded(async {
        let l = Listener::start(
            Limits {
                max_connections: 4,
                handshake_timeout: Duration::from_secs(5),
                ..limits()
            },
            None,
        )
        .await;
        let mut conns = Vec::new();
        for _ in 0..10 {
            conns.push(TcpStream::connect(l.addr).await.unwrap());
        }
        // Watch all of them at once for a second: the extra ones close right away, the
        // admitted ones wait for their handshake (5 s).
        let watchers: Vec<_> = conns
            .into_iter()
            .map(|mut s| {
                tokio::spawn(async move {
                    let closed = closes_within(&mut s, Duration::from_secs(1)).await;
                    (closed, s)
                })
            })
            .collect();
        let mut closed = 0;
        let mut conns = Vec::new();
        for w in watchers {
            let (c, s) = w.await.unwrap();
            closed += usize::from(c);
            conns.push(s);
        }
        assert_eq!(closed, 6, "connections closed at once");
        assert_eq!(l.refused("too_many"), 6);
        assert_eq!(l.counters.connections_open.load(Relaxed), 4);
        // The admitted ones still run into their own timeout later.
        for s in &mut conns {
            closed_within(s, Duration::from_secs(5)).await;
        }
        l.wait_refused("timeout", 4).await;
        wait_until("all closed", || {
            l.counters.connections_open.load(Relaxed) == 0
        })
        .await;
        assert_eq!(l.counters.connections_total.load(Relaxed), 10);
        // And once they are gone, new connections are admitted again.
        let mut c = RawClient::connect(l.addr).await;
        c.start("room1", "host?key=good").await;
        c.expect("NetStream.Publish.Start").await;
        let seen = l.stop().await;
        assert_eq!(seen.pubs()[0].ends, ["listener shut down"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_publisher_is_closed() {
    bounded(async {
        let l = Listener::start(short_limits(Duration::from_secs(5)), None).await;
        let mut c = RawClient::connect(l.addr).await;
        c.start("room1", "host?key=good").await;
        c.expect("NetStream.Publish.Start").await;
        c.message(6, 0, TAG_VIDEO, 1, &video_body(0x17, 0)).await;
        let took = closed_within(&mut c.s, Duration::from_secs(3)).await;
        assert!(took >= Duration::from_millis(400), "closed after {took:?}");
        wait_until("the end", || l.seen.pubs()[0].ends.len() == 1).await;
        let p = &l.seen.pubs()[0];
        assert_eq!(p.ends, ["idle timeout"]);
        assert_eq!(p.pushes, 2, "FLV header and one tag");
        assert_eq!(l.refused("timeout"), 1);
        l.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publish_on_a_connection_is_refused() {
    bounded(async {
        let l = Listener::start(limits(), None).await;
        let mut c = RawClient::connect(l.addr).await;
        c.start("room1", "host?key=good").await;
        c.expect("NetStream.Publish.Start").await;
        c.command(0, "createStream", 4.0, &[]).await;
        c.command(2, "publish", 5.0, &["host?key=good", "live"])
            .await;
        c.expect("one publish per connection").await;
        l.wait_refused("protocol", 1).await;
        // The first publication goes on.
        c.message(6, 0, TAG_VIDEO, 1, &video_body(0x17, 0)).await;
        c.message(6, 40, TAG_VIDEO, 2, &video_body(0x17, 0)).await; // on the refused stream
        c.message(6, 40, TAG_VIDEO, 1, &video_body(0x27, 9)).await;
        wait_until("two tags", || l.seen.pubs()[0].pushes == 3).await;
        assert_eq!(l.seen.pubs().len(), 1);
        assert_eq!(l.seen.requests.lock().unwrap().len(), 1);
        assert!(l.seen.pubs()[0].ends.is_empty());
        drop(c);
        wait_until("the end", || l.seen.pubs()[0].ends.len() == 1).await;
        assert_eq!(l.seen.pubs()[0].ends, ["connection closed"]);
        l.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_refusal_closes_the_connection() {
    bounded(async {
        let l = Listener::start(limits(), Some(3)).await;
        let mut c = RawClient::connect(l.addr).await;
        c.start("room1", "host?key=good").await;
        c.expect("NetStream.Publish.Start").await;
        for i in 0..5 {
            c.message(6, i * 40, TAG_VIDEO, 1, &video_body(0x27, 10))
                .await;
        }
        closed_within(&mut c.s, Duration::from_secs(3)).await;
        wait_until("the end", || l.seen.pubs()[0].ends.len() == 1).await;
        let p = &l.seen.pubs()[0];
        assert_eq!(p.pushes, 3);
        assert_eq!(p.ends.len(), 1);
        assert!(p.ends[0].starts_with("sink closed"), "{:?}", p.ends);
        let seen = l.stop().await;
        assert_eq!(seen.pubs()[0].ends.len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_survives_abuse_and_still_serves_a_publisher() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let clip = clip(dir.path());
        let l = Listener::start(
            Limits {
                max_connections: 6,
                handshake_timeout: Duration::from_secs(1),
                ..limits()
            },
            None,
        )
        .await;
        // At once: garbage, a truncated handshake, silence, an absurd chunk size; then a burst
        // of connections beyond the cap, then a refused key.
        let addr = l.addr;
        let garbage = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut junk = noise(10_000, 3);
            junk[0] = 0x47;
            let _ = s.write_all(&junk).await;
            closed_within(&mut s, Duration::from_secs(3)).await;
        });
        let truncated = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&[3; 700]).await.unwrap();
            closed_within(&mut s, Duration::from_secs(3)).await;
        });
        let silent = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            closed_within(&mut s, Duration::from_secs(3)).await;
        });
        let absurd = tokio::spawn(async move {
            let mut c = RawClient::connect(addr).await;
            let mut b = header0(2, 0, 4, 1, 0);
            b.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
            b.extend_from_slice(&header0(6, 0, 0xff_ffff, 9, 1));
            c.send(&b).await;
            closed_within(&mut c.s, Duration::from_secs(3)).await;
        });
        for t in [garbage, truncated, silent, absurd] {
            t.await.unwrap();
        }
        wait_until("all closed", || {
            l.counters.connections_open.load(Relaxed) == 0
        })
        .await;
        let mut burst = Vec::new();
        for _ in 0..20 {
            burst.push(TcpStream::connect(addr).await.unwrap());
        }
        for s in &mut burst {
            closed_within(s, Duration::from_secs(3)).await;
        }
        refused_publish(&l, &clip, "room1", "host?key=nope").await;
        wait_until("all closed", || {
            l.counters.connections_open.load(Relaxed) == 0
        })
        .await;
        assert_eq!(l.refused("protocol"), 2, "{:?}", l.counters.refused());
        assert_eq!(l.refused("timeout"), 2 + 6, "{:?}", l.counters.refused());
        assert_eq!(l.refused("too_many"), 14, "{:?}", l.counters.refused());
        assert_eq!(l.refused("bad_key"), 1);

        // The listener is undisturbed: a good publisher still gets through, whole.
        publish_clip_and_check(&l, dir.path(), &clip).await;
        l.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_connections_and_ends_publications() {
    bounded(async {
        let l = Listener::start(limits(), None).await;
        let mut c = RawClient::connect(l.addr).await;
        c.start("room1", "host?key=good").await;
        c.expect("NetStream.Publish.Start").await;
        let mut idle = TcpStream::connect(l.addr).await.unwrap();
        let seen = l.seen.clone();
        let counters = l.counters.clone();
        let addr = l.addr;
        l.stop().await;
        closed_within(&mut c.s, Duration::from_secs(2)).await;
        closed_within(&mut idle, Duration::from_secs(2)).await;
        assert_eq!(seen.pubs()[0].ends, ["listener shut down"]);
        assert_eq!(counters.connections_open.load(Relaxed), 0);
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    })
    .await;
}
