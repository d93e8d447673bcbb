//! Push outputs against real peers on 127.0.0.1: nginx with the RTMP module (stopped, paused
//! and restarted under the push), ffmpeg as an SRT listener and as an SRT caller, and a port
//! where nothing listens. What the peers received is read back with ffprobe. Every test builds
//! its own small live "room" (test sources, x264, AAC, tees with another output on them),
//! checks that the room keeps running whatever the destination does, bounds its own time and
//! kills the processes it started.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use gst::prelude::*;
use showmix::push::{Backoff, PushOutput, PushState, PushStatus, parse_push_url};
use showmix_tests::nginx::Nginx;
use showmix_tests::*;

// ---------------------------------------------------------------------------------------------
// A small live room: test sources encoded like a room's rung and audio, on tees

struct Room {
    pipeline: gst::Pipeline,
    vtee: gst::Element,
    atee: gst::Element,
    /// Video buffers into the rung tee.
    video_in: Arc<AtomicU64>,
    /// Buffers reaching the room's other output (a fakesink on the same tees).
    other_out: Arc<AtomicU64>,
}

impl Room {
    /// `pattern`/`kbps`: videotestsrc pattern and x264 bitrate (snow at a high bitrate fills
    /// socket buffers fast).
    fn new(pattern: &str, kbps: u32) -> Room {
        showmix::init().expect("GStreamer initialises");
        let desc = format!(
            "videotestsrc is-live=true pattern={pattern} \
               ! video/x-raw,width=320,height=180,framerate=30/1 \
               ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate={kbps} \
               ! h264parse ! tee name=vtee ! queue ! fakesink name=other sync=false async=false \
             audiotestsrc is-live=true wave=sine freq=440 \
               ! audioconvert ! audio/x-raw,rate=48000,channels=2 \
               ! avenc_aac ! aacparse ! tee name=atee ! queue ! fakesink sync=false async=false"
        );
        let pipeline = gst::parse::launch(&desc)
            .expect("room pipeline builds")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        let vtee = pipeline.by_name("vtee").expect("vtee");
        let atee = pipeline.by_name("atee").expect("atee");
        let video_in = Arc::new(AtomicU64::new(0));
        let other_out = Arc::new(AtomicU64::new(0));
        let count = |pad: gst::Pad, n: &Arc<AtomicU64>| {
            let n = n.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                n.fetch_add(1, Relaxed);
                gst::PadProbeReturn::Ok
            });
        };
        count(vtee.static_pad("sink").unwrap(), &video_in);
        count(
            pipeline
                .by_name("other")
                .unwrap()
                .static_pad("sink")
                .unwrap(),
            &other_out,
        );
        Room {
            pipeline,
            vtee,
            atee,
            video_in,
            other_out,
        }
    }

    fn play(&self) {
        self.pipeline
            .set_state(gst::State::Playing)
            .expect("room plays");
    }

    fn attach(&self, id: &str, url: &str, backoff: Backoff) -> PushOutput {
        let target = parse_push_url(url).expect("valid URL");
        PushOutput::attach(
            &self.pipeline,
            id,
            "room-test",
            &self.vtee,
            &self.atee,
            target,
            backoff,
        )
        .expect("push output attaches")
    }

    /// The room is healthy: playing, no error on its bus, and media flowing through the rung
    /// tee and into the other output (both counters move within `within`).
    fn assert_flowing(&self, within: Duration) {
        let bus = self.pipeline.bus().unwrap();
        if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            panic!("the room's bus has an error: {m:?}");
        }
        let (_, state, _) = self.pipeline.state(gst::ClockTime::ZERO);
        assert_eq!(state, gst::State::Playing, "the room is not playing");
        let (v0, o0) = (self.video_in.load(Relaxed), self.other_out.load(Relaxed));
        wait_until("room media flowing", within, || {
            (self.video_in.load(Relaxed) >= v0 + 10 && self.other_out.load(Relaxed) >= o0 + 10)
                .then_some(())
        });
    }

    fn push_elements_left(&self, id: &str) -> Vec<String> {
        self.pipeline
            .children()
            .iter()
            .map(|e| e.name().to_string())
            .filter(|n| n.starts_with(&format!("push-{id}-")))
            .collect()
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

// ---------------------------------------------------------------------------------------------
// Peers

/// A child process killed when the test ends.
struct Proc(Option<Child>);

impl Proc {
    /// Waits for the process to exit by itself; None when it is still running at the limit.
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        let c = self.0.as_mut()?;
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                self.0 = None;
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(e) = self.0.as_mut().and_then(|c| c.stderr.as_mut()) {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a command with a time limit (killed at the limit); its stdout, or an error with its
/// stderr.
fn run_limited(cmd: &mut Command, limit: Duration) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?} ran over {} s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if status.success() {
        Ok(out)
    } else {
        Err(format!("{cmd:?} failed ({status}): {err}"))
    }
}

/// Codec names ffprobe finds at `url` (a live RTMP stream): ffprobe is a real player's demuxer,
/// not our code.
fn probe_codecs(url: &str) -> Vec<String> {
    let out = run_limited(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rw_timeout",
            "8000000",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            url,
        ]),
        Duration::from_secs(12),
    )
    .unwrap_or_else(|e| panic!("ffprobe cannot read {url}: {e}"));
    let mut codecs: Vec<String> = out
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    codecs.sort();
    codecs
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 20 ms until it gives a value; panics after `limit`.
fn wait_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {} s waiting for {what}",
            limit.as_secs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_status(
    push: &PushOutput,
    what: &str,
    limit: Duration,
    f: impl Fn(&PushStatus) -> bool,
) -> PushStatus {
    let mut last = None;
    let deadline = Instant::now() + limit;
    loop {
        let s = push.status();
        if f(&s) {
            return s;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {} s waiting for {what}; last status {:?}",
                limit.as_secs(),
                last.unwrap_or(s)
            );
        }
        last = Some(s);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Established TCP connections to 127.0.0.1:`port` (client side), from /proc/net/tcp.
fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[2] == remote && f[3] == "01"
        })
        .count()
}

fn tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "showmix=info".into()))
        .try_init();
}

// ---------------------------------------------------------------------------------------------
// Tests

/// The scenario: push to nginx, stop nginx for 5 s, start it again, and the push comes
/// back by itself; the room never notices.
#[test]
fn rtmp_push_comes_back_after_the_server_restarts() {
    tracing();
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let mut nginx = Nginx::start(dir.path(), port);
    let room = Room::new("smpte", 300);
    let url = format!("rtmp://127.0.0.1:{port}/live/test");
    // Attached before the room starts.
    let push = room.attach("restart", &url, Backoff::default());
    room.play();

    let st = wait_status(&push, "live", Duration::from_secs(10), |s| {
        s.state == PushState::Live
    });
    assert_eq!((st.connects, st.retries), (1, 0), "{st:?}");
    assert_eq!(
        probe_codecs(&url),
        ["aac", "h264"],
        "what nginx serves back"
    );
    let st = push.status();
    assert!(st.bytes_sent > 10_000, "{st:?}");
    assert_eq!(st.state, PushState::Live);

    // Stop nginx for 5 s.
    nginx.stop();
    let down_at = Instant::now();
    let st = wait_status(
        &push,
        "retrying after nginx died",
        Duration::from_secs(10),
        |s| s.state == PushState::Retrying && s.retries > 0,
    );
    let reason = st.last_error.clone().expect("a failure has a reason");
    assert!(!reason.is_empty());
    assert!(st.next_retry_ms.is_some(), "{st:?}");
    room.assert_flowing(Duration::from_secs(3));
    while down_at.elapsed() < Duration::from_secs(5) {
        let s = push.status();
        assert_ne!(s.state, PushState::Live, "live with no server: {s:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = push.status();
    assert!(st.retries >= 2, "attempts while nginx was down: {st:?}");
    room.assert_flowing(Duration::from_secs(3));

    // Start it again on the same port: the push comes back by itself.
    let _nginx = Nginx::start(dir.path(), port);
    let st = wait_status(&push, "live again", Duration::from_secs(15), |s| {
        s.state == PushState::Live
    });
    assert_eq!(st.connects, 2, "{st:?}");
    assert!(
        st.last_error.is_some(),
        "the last failure stays visible: {st:?}"
    );
    assert_eq!(
        probe_codecs(&url),
        ["aac", "h264"],
        "what nginx serves after the restart"
    );
    room.assert_flowing(Duration::from_secs(3));

    // Detaching removes every trace from the room, which keeps running.
    push.detach(&room.pipeline);
    assert!(room.push_elements_left("restart").is_empty());
    assert_eq!(
        room.vtee.src_pads().len(),
        1,
        "only the room's own output is left"
    );
    assert_eq!(room.atee.src_pads().len(), 1);
    room.assert_flowing(Duration::from_secs(3));
}

/// A paused server (SIGSTOP: connection open, nothing read) is a stall: detected, torn down,
/// retried, and the push recovers once the server runs again.
#[test]
fn stalled_rtmp_server_is_detected_and_recovered_from() {
    tracing();
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let nginx = Nginx::start(dir.path(), port);
    // Noise at 8 Mbit/s fills the socket buffers in seconds.
    let room = Room::new("snow", 8000);
    room.play();
    let url = format!("rtmp://127.0.0.1:{port}/live/stall");
    let backoff = Backoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(2),
    };
    // Attached while the room is playing.
    let push = room.attach("stall", &url, backoff);
    wait_status(&push, "live", Duration::from_secs(10), |s| {
        s.state == PushState::Live
    });

    nginx.signal("-STOP");
    let st = wait_status(&push, "the stall detected", Duration::from_secs(25), |s| {
        s.state != PushState::Live && s.retries > 0
    });
    let reason = st.last_error.clone().unwrap_or_default();
    assert!(
        reason.starts_with("stalled: no data went out for 5 s"),
        "{reason:?}"
    );
    room.assert_flowing(Duration::from_secs(3));
    // The next attempt connects (the kernel accepts) but its handshake is never answered.
    let st = wait_status(&push, "a retry timing out", Duration::from_secs(15), |s| {
        s.retries >= 2
    });
    let reason = st.last_error.clone().unwrap_or_default();
    assert!(reason.starts_with("no connection after"), "{reason:?}");
    assert_ne!(st.state, PushState::Live, "{st:?}");
    room.assert_flowing(Duration::from_secs(3));

    nginx.signal("-CONT");
    let st = wait_status(
        &push,
        "live after the server resumed",
        Duration::from_secs(15),
        |s| s.state == PushState::Live && s.connects >= 2,
    );
    assert!(st.retries >= 1, "{st:?}");
    room.assert_flowing(Duration::from_secs(3));
    push.detach(&room.pipeline);
    assert!(room.push_elements_left("stall").is_empty());
}

/// Two destinations on one room: one works, one refuses. The refusing one retries with a
/// growing delay; the working one and the room are untouched.
#[test]
fn refused_destination_backs_off_beside_a_working_one() {
    tracing();
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let _nginx = Nginx::start(dir.path(), port);
    let refused_port = free_tcp_port();
    let room = Room::new("ball", 300);
    room.play();

    let good_url = format!("rtmp://127.0.0.1:{port}/live/good");
    let good = room.attach("good", &good_url, Backoff::default());
    let backoff = Backoff {
        initial: Duration::from_millis(400),
        max: Duration::from_millis(1600),
    };
    let bad = room.attach(
        "refused",
        &format!("rtmp://127.0.0.1:{refused_port}/live/bad"),
        backoff,
    );

    // The largest next_retry_ms seen for each retry count: the delay just scheduled.
    let mut seen: Vec<u64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = bad.status();
        assert_ne!(s.state, PushState::Live, "nothing listens there: {s:?}");
        if s.state == PushState::Retrying
            && let Some(ms) = s.next_retry_ms
        {
            let k = s.retries as usize;
            if seen.len() < k {
                seen.resize(k, 0);
            }
            seen[k - 1] = seen[k - 1].max(ms);
            assert!(s.last_error.is_some(), "{s:?}");
        }
        let g = good.status();
        assert_eq!(g.retries, 0, "the working destination never failed: {g:?}");
        if seen.len() >= 4 && seen[3] > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "too few retries: {seen:?} {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // 400, 800, 1600, 1600 ms: each observed delay is within its step of the schedule.
    let schedule = [400u64, 800, 1600, 1600];
    for (k, (&got, &want)) in seen.iter().zip(&schedule).enumerate() {
        assert!(
            got <= want,
            "retry {}: {got} ms > {want} ms ({seen:?})",
            k + 1
        );
    }
    assert!(seen[1] > 400 && seen[2] > 800, "the delay grows: {seen:?}");
    assert!(seen[3] > 800, "the delay stays at its cap: {seen:?}");
    let reason = bad.status().last_error.unwrap();
    assert!(
        reason.to_lowercase().contains("connect") || reason.to_lowercase().contains("refused"),
        "{reason:?}"
    );

    let g = good.status();
    assert_eq!(
        (g.state, g.connects, g.retries),
        (PushState::Live, 1, 0),
        "{g:?}"
    );
    assert_eq!(probe_codecs(&good_url), ["aac", "h264"]);
    room.assert_flowing(Duration::from_secs(3));

    // Bad attaches fail with a reason and leave the room as it was.
    let pads = room.vtee.src_pads().len();
    let again = PushOutput::attach(
        &room.pipeline,
        "good",
        "room-test",
        &room.vtee,
        &room.atee,
        parse_push_url(&good_url).unwrap(),
        Backoff::default(),
    );
    let e = format!(
        "{:#}",
        again.err().expect("a second output with the same id")
    );
    assert!(e.contains("is the id unique"), "{e}");
    let unchecked = showmix::push::PushTarget {
        url: "rtmp://127.0.0.1/live".into(),
        protocol: showmix::push::PushProtocol::Rtmp,
    };
    let bad_url = PushOutput::attach(
        &room.pipeline,
        "unchecked",
        "room-test",
        &room.vtee,
        &room.atee,
        unchecked,
        Backoff::default(),
    );
    let e = format!("{:#}", bad_url.err().expect("an invalid URL"));
    assert!(
        e.contains("invalid destination") && e.contains("stream key"),
        "{e}"
    );
    assert_eq!(room.vtee.src_pads().len(), pads);
    assert!(room.push_elements_left("unchecked").is_empty());
    assert_eq!(good.status().state, PushState::Live);

    // Dropping the outputs stops their workers, which close their connections.
    assert_eq!(established_to(port), 1, "the working push's connection");
    drop(bad);
    drop(good);
    assert_eq!(
        established_to(port),
        0,
        "the connection closed with its worker"
    );
    room.assert_flowing(Duration::from_secs(3));
}

/// SRT caller to ffmpeg listening: MPEG-TS with H.264 and AAC arrives, and the room's end
/// reaches ffmpeg as a clean end of stream.
#[test]
fn srt_push_reaches_a_listener_and_ends_with_the_room() {
    tracing();
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let out = dir.path().join("received.ts");
    let mut ffmpeg = Proc(Some(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(format!("srt://127.0.0.1:{port}?mode=listener"))
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffmpeg runs"),
    ));
    let room = Room::new("smpte", 300);
    room.play();
    // Until ffmpeg listens, attempts fail and are retried quickly.
    let push = room.attach(
        "srt",
        &format!("srt://127.0.0.1:{port}?latency=120&streamid=room-test"),
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(1),
        },
    );
    let st = wait_status(&push, "live", Duration::from_secs(15), |s| {
        s.state == PushState::Live
    });
    assert_eq!(st.connects, 1, "{st:?}");
    wait_status(&push, "3 s of media sent", Duration::from_secs(10), |s| {
        s.bytes_sent > 3 * 300_000 / 8
    });
    room.assert_flowing(Duration::from_secs(3));

    // The room ends: EOS through the tees reaches the push, which ends the SRT stream.
    room.pipeline.send_event(gst::event::Eos::new());
    wait_status(
        &push,
        "stopped after the room's EOS",
        Duration::from_secs(10),
        |s| s.state == PushState::Stopped,
    );
    let exit = ffmpeg.wait_exit(Duration::from_secs(10));
    assert!(
        exit.is_some(),
        "ffmpeg did not see the end of the stream: {}",
        ffmpeg.stderr()
    );
    let s = streams(&out).expect("ffprobe reads what ffmpeg received");
    let (vcodec, w, h, _) = s.video.clone().expect("video received");
    assert_eq!((vcodec.as_str(), w, h), ("h264", 320, 180));
    let (acodec, rate, channels, _) = s.audio.clone().expect("audio received");
    assert_eq!((acodec.as_str(), rate, channels), ("aac", 48000, 2));
    let packets = video_packets(&out).expect("video packets");
    assert!(packets.len() >= 45, "{} video packets", packets.len());
    assert!(packets[0].key, "the stream starts on a keyframe");
    push.detach(&room.pipeline);
    assert!(room.push_elements_left("srt").is_empty());
}

/// SRT listener mode: the push listens and a caller (ffmpeg) pulls; the caller leaving is not
/// a failure.
#[test]
fn srt_listener_mode_serves_a_caller() {
    tracing();
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let room = Room::new("smpte", 300);
    room.play();
    let push = room.attach(
        "srt-listen",
        &format!("srt://127.0.0.1:{port}?mode=listener"),
        Backoff::default(),
    );
    // Listening, nobody connected yet.
    std::thread::sleep(Duration::from_millis(1500));
    let st = push.status();
    assert_eq!(
        (st.state, st.retries, st.connects),
        (PushState::Connecting, 0, 0),
        "{st:?}"
    );

    let out = dir.path().join("pulled.ts");
    let mut ffmpeg = Proc(Some(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(format!("srt://127.0.0.1:{port}?mode=caller"))
            .args(["-t", "3", "-c", "copy", "-f", "mpegts"])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffmpeg runs"),
    ));
    let st = wait_status(&push, "live with a caller", Duration::from_secs(10), |s| {
        s.state == PushState::Live
    });
    assert_eq!(st.connects, 1);
    let exit = ffmpeg.wait_exit(Duration::from_secs(15));
    assert!(
        exit.is_some_and(|s| s.success()),
        "ffmpeg did not finish: {exit:?} {}",
        ffmpeg.stderr()
    );
    let st = wait_status(
        &push,
        "waiting for a caller again",
        Duration::from_secs(10),
        |s| s.state == PushState::Connecting,
    );
    assert_eq!(st.retries, 0, "a caller leaving is not a failure: {st:?}");
    assert!(st.bytes_sent > 0, "{st:?}");
    let s = streams(&out).expect("ffprobe reads what ffmpeg pulled");
    assert_eq!(s.video.expect("video").0, "h264");
    assert_eq!(s.audio.expect("audio").0, "aac");
    room.assert_flowing(Duration::from_secs(3));
    push.detach(&room.pipeline);
}

/// The scenario through the API, on a real room: a `rtmp` output to nginx, nginx
/// stopped for 5 s and started again. The push comes back by itself and the room's LL-HLS
/// never pauses: its playlist gains parts at the pace of the clock all the way through.
#[test]
fn room_push_survives_a_cdn_restart_while_ll_hls_keeps_going() {
    use serde_json::json;
    use showmix_tests::server::Server;
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let mut nginx = Nginx::start(dir.path(), port);
    let s = Server::start(|_| {});
    let (st, v) = s.json(
        "POST",
        "/v1/rooms",
        Some(json!({"id": "cdn", "layout": "pk",
            "seats": [{"id": "a", "source": "test:red"}, {"id": "b", "source": "test:blue"}],
            "outputs": [{"kind": "rtmp", "id": "up", "url": format!("rtmp://127.0.0.1:{port}/live/show"), "rung": "360p"}]})),
    );
    assert_eq!(st, 201, "{v}");
    let output = |s: &Server| {
        let (_, v) = s.json("GET", "/v1/rooms/cdn", None);
        v["outputs"][0].clone()
    };
    wait_until("the push to go live", Duration::from_secs(20), || {
        (output(&s)["state"] == "live").then_some(())
    });
    assert_eq!(
        probe_codecs(&format!("rtmp://127.0.0.1:{port}/live/show")),
        ["aac", "h264"]
    );
    // The LL-HLS edge: (media sequence number, part index) of the preload hint.
    let edge = |s: &Server| -> f64 {
        let (st, _, body) = s.call("GET", "/live/cdn/720p/index.m3u8", None, None);
        assert_eq!(st, 200);
        let text = String::from_utf8(body).unwrap();
        let hint = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part"))
            .unwrap_or_else(|| panic!("no preload hint in\n{text}"));
        let (m, rest) = hint.split_once('.').unwrap();
        let p: f64 = rest.split_once('.').unwrap().0.parse().unwrap();
        // Parts are ~0.2 s in 1 s segments: position in seconds, roughly.
        m.parse::<f64>().unwrap() + p * 0.2
    };
    nginx.stop();
    let stopped = Instant::now();
    let start_edge = edge(&s);
    let mut samples = Vec::new();
    while stopped.elapsed() < Duration::from_secs(5) {
        samples.push((stopped.elapsed().as_secs_f64(), edge(&s)));
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = output(&s);
    assert!(
        out["state"] == "retrying" || out["state"] == "connecting",
        "{out}"
    );
    assert!(out["retries"].as_u64().unwrap() >= 1, "{out}");
    // LL-HLS kept pace with the clock during the outage: no stretch of more than 1 s without
    // the edge moving, and about 5 s of media added in 5 s.
    let mut last_move = (0.0, start_edge);
    for &(t, e) in &samples {
        if e > last_move.1 {
            last_move = (t, e);
        }
        assert!(
            t - last_move.0 <= 1.0,
            "LL-HLS paused at {t:.2} s: {samples:?}"
        );
    }
    let gained = samples.last().unwrap().1 - start_edge;
    assert!(
        gained >= 3.5,
        "only {gained:.1} s of media in 5 s: {samples:?}"
    );
    let mut nginx = Nginx::start(dir.path(), port);
    let back = wait_until("the push to come back", Duration::from_secs(45), || {
        let o = output(&s);
        (o["state"] == "live" && o["connects"].as_u64() >= Some(2)).then_some(o)
    });
    assert!(back["retries"].as_u64().unwrap() >= 1, "{back}");
    assert_eq!(
        probe_codecs(&format!("rtmp://127.0.0.1:{port}/live/show")),
        ["aac", "h264"]
    );
    let (_, v) = s.json("GET", "/v1/rooms/cdn", None);
    assert_eq!(v["state"], "live", "{v}");
    nginx.stop();
}
