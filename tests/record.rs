//! Recording outputs on a real GStreamer pipeline (live test sources, x264, AAC), read back by
//! real players (ffprobe/ffmpeg): rolled files that join without a gap, files that survive
//! `kill -9` up to their last complete fragment, and failures that leave the room running.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use showmix::record::{
    FsStorage, RecordConfig, RecordFile, RecordOutput, RecordState, RecordStatus, Storage,
};
use showmix_tests::{run, streams};

/// Set (to the recording directory) in the child process of the `kill -9` test.
const CHILD_ENV: &str = "SHOWMIX_RECORD_TEST_CHILD_DIR";
const CHILD_TEST: &str = "child_records_until_killed";
const FPS: f64 = 30.0;

// ----------------------------------------------------------------------------------------
// A small live "room": test sources, x264 (1 s GOP) and AAC into tees, like a room's rungs.
// ----------------------------------------------------------------------------------------

struct Live {
    pipeline: gst::Pipeline,
    /// Buffers seen by a plain branch off the top rung's tee (the rest of the room).
    watched: Arc<AtomicU64>,
}

impl Live {
    /// `rungs`: 1 (320x180) or 2 (plus 160x90). `watch`: a fakesink branch off the top rung,
    /// and tees that carry the stream formats of an MPEG-TS output (H.264 byte-stream, ADTS),
    /// which the muxer does not take.
    fn new(rungs: usize, watch: bool) -> Live {
        showmix::init().unwrap();
        let (vformat, aformat) = if watch {
            (
                "! video/x-h264,stream-format=byte-stream,alignment=au ",
                "! audio/mpeg,stream-format=adts ",
            )
        } else {
            ("", "")
        };
        let mut desc = format!(
            "videotestsrc is-live=true pattern=ball \
             ! video/x-raw,format=I420,width=320,height=180,framerate=30/1 ! tee name=raw \
             raw. ! queue ! x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast \
               bitrate=400 ! h264parse {vformat} ! tee name=v180 allow-not-linked=true \
             audiotestsrc is-live=true wave=sine freq=440 \
             ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! avenc_aac ! aacparse \
             {aformat} ! tee name=audio allow-not-linked=true ",
        );
        if rungs > 1 {
            desc.push_str(
                "raw. ! queue ! videoscale ! video/x-raw,width=160,height=90 \
                 ! x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast bitrate=150 \
                 ! h264parse ! tee name=v90 allow-not-linked=true ",
            );
        }
        if watch {
            desc.push_str("v180. ! queue ! fakesink name=watch sync=false async=false ");
        }
        let pipeline = gst::parse::launch(&desc)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let watched = Arc::new(AtomicU64::new(0));
        if watch {
            let n = watched.clone();
            pipeline
                .by_name("watch")
                .unwrap()
                .static_pad("sink")
                .unwrap()
                .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    n.fetch_add(1, Ordering::SeqCst);
                    gst::PadProbeReturn::Ok
                });
        }
        Live { pipeline, watched }
    }

    fn el(&self, name: &str) -> gst::Element {
        self.pipeline.by_name(name).unwrap()
    }

    fn rungs(&self, names: &[&str]) -> Vec<(String, gst::Element)> {
        names.iter().map(|n| (n.to_string(), self.el(n))).collect()
    }

    fn play(&self) {
        self.pipeline.set_state(gst::State::Playing).unwrap();
    }

    /// Stops with EOS like a room does; true when EOS reached every sink in time.
    fn stop_with_eos(&self, timeout: Duration) -> bool {
        self.pipeline.send_event(gst::event::Eos::new());
        let bus = self.pipeline.bus().unwrap();
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => true,
            Some(gst::MessageView::Error(e)) => panic!("pipeline error: {e:?}"),
            _ => false,
        }
    }

    /// Errors posted so far.
    fn errors(&self) -> Vec<String> {
        let bus = self.pipeline.bus().unwrap();
        let mut v = Vec::new();
        while let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = m.view() {
                v.push(format!(
                    "{}: {}",
                    m.src().map(|s| s.name()).unwrap_or_default(),
                    e.error()
                ));
            }
        }
        v
    }

    /// Names of the pipeline's elements that belong to recording outputs.
    fn rec_elements(&self) -> Vec<String> {
        self.pipeline
            .children()
            .iter()
            .map(|e| e.name().to_string())
            .filter(|n| n.starts_with("rec-"))
            .collect()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

// ----------------------------------------------------------------------------------------
// Reading the files back.
// ----------------------------------------------------------------------------------------

/// `*.mp4` files of a directory, sorted by name (= by start).
fn mp4s(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "mp4"))
        .collect();
    v.sort();
    v
}

/// Top-level boxes of an MP4 as (type, offset, size), and where its last complete fragment
/// (`mdat`) ends — the init segment's end when there is none. Stops at a box cut short.
fn boxes(data: &[u8]) -> (Vec<(String, usize, usize)>, usize) {
    let mut v = Vec::new();
    let mut pos = 0;
    let mut complete = 0;
    while data.len() - pos >= 8 {
        let mut size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned();
        if size == 1 {
            if data.len() - pos < 16 {
                break;
            }
            size = u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap()) as usize;
        } else if size == 0 {
            size = data.len() - pos;
        }
        if size < 8 || size > data.len() - pos {
            break;
        }
        if kind == "mdat" || kind == "moov" {
            complete = pos + size;
        }
        v.push((kind, pos, size));
        pos += size;
    }
    (v, complete)
}

#[derive(Debug, Clone, Copy)]
struct Packet {
    pts: f64,
    dur: f64,
    key: bool,
}

fn packets(path: &Path, stream: &str) -> Vec<Packet> {
    let out = run(Command::new("ffprobe").args([
        "-v",
        "error",
        "-select_streams",
        stream,
        "-show_entries",
        "packet=pts_time,duration_time,flags",
        "-of",
        "csv=p=0",
        path.to_str().unwrap(),
    ]))
    .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Packet {
                pts: f[0].parse().unwrap_or_else(|_| panic!("pts in {l:?}")),
                dur: f[1].parse().unwrap_or_else(|_| panic!("duration in {l:?}")),
                key: f[2].contains('K'),
            }
        })
        .collect()
}

/// Decodes a file's video with ffmpeg: (frames decoded, everything ffmpeg reported at level
/// error). Does not fail on errors: callers decide which they tolerate.
fn decode(path: &Path) -> (usize, String) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-f", "framecrc", "-"])
        .output()
        .unwrap();
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    (frames, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Asserts ffprobe reads H.264 at `size` and stereo 48 kHz AAC.
fn assert_streams(path: &Path, size: (u32, u32)) {
    let s = streams(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let (vc, w, h, _) = s
        .video
        .unwrap_or_else(|| panic!("{}: no video", path.display()));
    let (ac, rate, ch, _) = s
        .audio
        .unwrap_or_else(|| panic!("{}: no audio", path.display()));
    assert_eq!(
        (vc.as_str(), w, h),
        ("h264", size.0, size.1),
        "{}",
        path.display()
    );
    assert_eq!(
        (ac.as_str(), rate, ch),
        ("aac", 48_000, 2),
        "{}",
        path.display()
    );
}

/// A complete recording file: ftyp, moov, then whole fragments, nothing cut.
fn assert_complete(path: &Path) {
    let data = std::fs::read(path).unwrap();
    let (bx, complete) = boxes(&data);
    let kinds: Vec<&str> = bx.iter().map(|b| b.0.as_str()).collect();
    assert_eq!(
        &kinds[..2],
        ["ftyp", "moov"],
        "{}: {kinds:?}",
        path.display()
    );
    assert_eq!(complete, data.len(), "{}: cut tail", path.display());
    assert_eq!(kinds.last(), Some(&"mdat"), "{}", path.display());
    assert!(kinds.contains(&"moof"), "{}", path.display());
}

/// Proves a file plays up to its last complete fragment: the file cut there decodes with no
/// error at all, and the file as it is decodes at least as many frames (errors, if any, come
/// from the cut tail only). Returns the frames of the complete fragments.
fn assert_plays_to_last_fragment(path: &Path, size: (u32, u32)) -> usize {
    let data = std::fs::read(path).unwrap();
    let (_, complete) = boxes(&data);
    let clean = path.with_extension("clean.mp4.check");
    std::fs::write(&clean, &data[..complete]).unwrap();
    assert_streams(&clean, size);
    let (frames, errors) = decode(&clean);
    assert!(errors.is_empty(), "{}: {errors}", clean.display());
    assert_eq!(
        frames,
        packets(&clean, "v:0").len(),
        "{}: every complete frame decodes",
        clean.display()
    );
    let _ = std::fs::remove_file(&clean);
    assert_streams(path, size);
    let (all, _) = decode(path);
    assert!(
        all >= frames,
        "{}: {all} frames decode from the file, {frames} from its complete fragments",
        path.display()
    );
    frames
}

// ----------------------------------------------------------------------------------------
// (a) rolled files, two rungs, attached before start, stopped with EOS.
// ----------------------------------------------------------------------------------------

#[test]
fn rolls_into_playable_files_that_join_without_a_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let live = Live::new(2, false);
    let cfg = RecordConfig {
        dir: tmp.path().join("rec"),
        segment: Duration::from_secs(2),
    };
    let out = RecordOutput::attach(
        &live.pipeline,
        "r1",
        "room-a",
        &live.rungs(&["v180", "v90"]),
        &live.el("audio"),
        cfg,
    )
    .unwrap();
    assert_eq!(out.status().state, RecordState::Recording);
    // Each branch parses what its tees carry, so it never constrains the room's negotiation.
    for e in ["rec-r1-vparse-v180", "rec-r1-aparse-v90", "rec-r1-mux-v90"] {
        assert!(live.rec_elements().iter().any(|n| n == e), "{e}");
    }
    live.play();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        out.status().state,
        RecordState::Recording,
        "{:?}",
        out.status()
    );
    assert!(live.stop_with_eos(Duration::from_secs(10)), "EOS in time");
    let st: RecordStatus = out.status();
    assert_eq!(st.state, RecordState::Finished, "{st:?}");
    let t = Instant::now();
    out.detach(&live.pipeline);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "detach after EOS is quick"
    );
    assert!(live.rec_elements().is_empty(), "{:?}", live.rec_elements());

    let mut listed = st.files.clone();
    listed.sort();
    let mut on_disk = Vec::new();
    let mut bytes = 0;
    for (rung, size) in [("v180", (320, 180)), ("v90", (160, 90))] {
        let dir = tmp.path().join("rec/room-a").join(rung);
        let files = mp4s(&dir);
        assert!(files.len() >= 2, "{rung}: {files:?}");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            files.len(),
            "{rung}: nothing but the recording files"
        );
        let mut prev: Option<(Packet, Packet)> = None;
        let mut total = 0.0;
        for (i, f) in files.iter().enumerate() {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            // yyyymmddThhmmssZ-r1-00001.mp4
            assert_eq!(name.len(), 16 + 4 + 5 + 4, "{name}");
            assert!(name.ends_with(&format!("Z-r1-{:05}.mp4", i + 1)), "{name}");
            assert_complete(f);
            assert_streams(f, size);
            let v = packets(f, "v:0");
            let a = packets(f, "a:0");
            assert!(v[0].key, "{name} starts with a keyframe");
            let (frames, errors) = decode(f);
            assert!(errors.is_empty(), "{name}: {errors}");
            assert_eq!(frames, v.len(), "{name}");
            let vlast = *v.last().unwrap();
            let dur = vlast.pts + vlast.dur - v[0].pts;
            total += dur;
            if i + 1 < files.len() {
                assert!(
                    (1.99..=3.05).contains(&dur),
                    "{name}: {dur:.3} s, wanted the 2 s segment rounded up to a 1 s GOP"
                );
            }
            // The next file starts where the previous one ended: no frame or sample missing.
            if let Some((pv, pa)) = prev {
                assert!(
                    (v[0].pts - (pv.pts + pv.dur)).abs() < 0.002,
                    "{name}: video starts at {:.4}, previous file ended at {:.4}",
                    v[0].pts,
                    pv.pts + pv.dur
                );
                assert!(
                    (a[0].pts - (pa.pts + pa.dur)).abs() < 0.002,
                    "{name}: audio starts at {:.4}, previous file ended at {:.4}",
                    a[0].pts,
                    pa.pts + pa.dur
                );
            }
            assert!(
                (v.len() as f64 - dur * FPS).abs() < 1.5,
                "{name}: {} frames in {dur:.3} s",
                v.len()
            );
            prev = Some((vlast, *a.last().unwrap()));
            bytes += std::fs::metadata(f).unwrap().len();
        }
        assert!(
            (3.0..=6.0).contains(&total),
            "{rung}: {total:.2} s recorded in a 5 s run"
        );
        on_disk.extend(files);
    }
    on_disk.sort();
    assert_eq!(listed, on_disk, "status lists every file");
    assert_eq!(st.bytes_written, bytes);

    // Wherever the process dies while writing a fragment, the file plays its committed
    // fragments: the fragment goes out with its `moof` typed `free`, then is committed by
    // retyping it (see `record.rs`). These are the states the writer can leave behind while
    // writing the second fragment of the first file.
    let first = &mp4s(&tmp.path().join("rec/room-a/v180"))[0];
    let data = std::fs::read(first).unwrap();
    let (bx, _) = boxes(&data);
    let moofs: Vec<&(String, usize, usize)> = bx.iter().filter(|b| b.0 == "moof").collect();
    assert!(moofs.len() >= 2);
    let (_, moof, moof_len) = *moofs[1];
    let (_, mdat, mdat_len) = *bx.iter().find(|b| b.1 == moof + moof_len).unwrap();
    assert_eq!(bx.iter().find(|b| b.1 == mdat).unwrap().0, "mdat");
    let end = mdat + mdat_len;
    let with_type = |kind: &[u8; 4], cut: usize| {
        let mut v = data[..cut].to_vec();
        if cut >= moof + 8 {
            v[moof + 4..moof + 8].copy_from_slice(kind);
        }
        v
    };
    let committed = tmp.path().join("committed.mp4");
    std::fs::write(&committed, &data[..moof]).unwrap();
    let (expected, errors) = decode(&committed);
    assert!(
        errors.is_empty() && expected >= 25,
        "{expected} frames: {errors}"
    );
    let states = [
        ("inside the moof's header", with_type(b"free", moof + 6)),
        ("inside the moof", with_type(b"free", moof + moof_len / 2)),
        ("inside the mdat", with_type(b"free", mdat + mdat_len / 3)),
        ("written, not committed", with_type(b"free", end)),
        ("half committed", with_type(b"mree", end)),
    ];
    for (what, bytes) in states {
        let f = tmp.path().join("state.mp4");
        std::fs::write(&f, &bytes).unwrap();
        let frames = assert_plays_to_last_fragment(&f, (320, 180));
        assert_eq!(frames, expected, "died {what}");
        assert_eq!(decode(&f), (expected, String::new()), "died {what}");
    }
    // Committed, the fragment plays.
    let f = tmp.path().join("state.mp4");
    std::fs::write(&f, &data[..end]).unwrap();
    assert!(assert_plays_to_last_fragment(&f, (320, 180)) > expected);
}

// ----------------------------------------------------------------------------------------
// (b) kill -9.
// ----------------------------------------------------------------------------------------

/// Kills (SIGKILL) and reaps the child when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run by `kill_9_leaves_every_file_playable_up_to_its_last_complete_fragment` in a child
/// process: records until killed (and gives up after 90 s, so it never outlives a dead parent
/// for long). Not a test of its own: does nothing when run otherwise.
#[test]
#[ignore = "child process of the kill -9 test"]
fn child_records_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        eprintln!("{CHILD_TEST} only runs as the kill -9 test's child ({CHILD_ENV} unset)");
        return;
    };
    let live = Live::new(1, false);
    let _out = RecordOutput::attach(
        &live.pipeline,
        "k9",
        "room-k",
        &live.rungs(&["v180"]),
        &live.el("audio"),
        RecordConfig {
            dir: PathBuf::from(dir),
            segment: Duration::from_secs(2),
        },
    )
    .unwrap();
    live.play();
    std::thread::sleep(Duration::from_secs(90));
    std::process::exit(3);
}

#[test]
fn kill_9_leaves_every_file_playable_up_to_its_last_complete_fragment() {
    let tmp = tempfile::tempdir().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--ignored"])
        .env(CHILD_ENV, tmp.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let dir = tmp.path().join("room-k/v180");
    // Two files: the first holds its 2 s and is closed, the second is being written.
    let ready = wait_for(Duration::from_secs(40), || {
        mp4s(&dir).len() >= 2 || child.0.try_wait().ok().flatten().is_some()
    });
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the child stopped on its own"
    );
    assert!(ready, "no second file in 40 s: {:?}", mp4s(&dir));
    // Somewhere inside the second file's next fragment.
    std::thread::sleep(Duration::from_millis(1300));
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status:?}"
    );

    let files = mp4s(&dir);
    assert!(files.len() >= 2, "{files:?}");
    let mut total = 0;
    for (i, f) in files.iter().enumerate() {
        if i + 1 < files.len() {
            // Closed before the kill: whole.
            assert_complete(f);
        }
        let frames = assert_plays_to_last_fragment(f, (320, 180));
        assert!(frames >= 25, "{}: {frames} frames", f.display());
        if i == 0 {
            assert!(
                frames as f64 >= 2.0 * FPS - 1.0,
                "first file: {frames} frames"
            );
        }
        total += frames;
    }
    assert!(total as f64 >= 3.0 * FPS - 1.0, "{total} frames in all");
}

// ----------------------------------------------------------------------------------------
// (c) failures.
// ----------------------------------------------------------------------------------------

#[test]
fn an_unwritable_directory_is_refused_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let live = Live::new(1, false);
    // Root ignores permissions: a directory under a regular file cannot exist for anyone.
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let dir = file.join("recordings");
    let err = RecordOutput::attach(
        &live.pipeline,
        "r1",
        "room-a",
        &live.rungs(&["v180"]),
        &live.el("audio"),
        RecordConfig::new(&dir),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(err.contains("Not a directory"), "{err}");
    assert!(live.rec_elements().is_empty());
    assert_eq!(live.el("v180").src_pads().len(), 0);
    assert_eq!(live.el("audio").src_pads().len(), 0);
}

/// The real file system for the first file, then `/dev/full` (a real ENOSPC from the kernel).
struct FullAfterFirst {
    created: AtomicUsize,
}

impl Storage for FullAfterFirst {
    fn create(&self, path: &Path) -> io::Result<Box<dyn RecordFile>> {
        if self.created.fetch_add(1, Ordering::SeqCst) == 0 {
            FsStorage.create(path)
        } else {
            Ok(Box::new(
                std::fs::File::options().write(true).open("/dev/full")?,
            ))
        }
    }
    fn publish(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsStorage.publish(from, to)
    }
    fn discard(&self, path: &Path) {
        FsStorage.discard(path)
    }
}

#[test]
fn disk_full_mid_run_fails_the_output_and_the_room_keeps_running() {
    let tmp = tempfile::tempdir().unwrap();
    let live = Live::new(1, true);
    live.play();
    // The room runs before the recording starts; its tees carry H.264 byte-stream and ADTS
    // (the branch's parsers make them avc and raw AAC for the muxer).
    assert!(wait_for(Duration::from_secs(10), || live
        .watched
        .load(Ordering::SeqCst)
        >= 15));
    let caps = live.el("v180").static_pad("sink").unwrap().current_caps();
    let format = caps
        .as_ref()
        .and_then(|c| c.structure(0))
        .and_then(|s| s.get::<String>("stream-format").ok());
    assert_eq!(format.as_deref(), Some("byte-stream"), "{caps:?}");
    let caps = live.el("audio").static_pad("sink").unwrap().current_caps();
    let format = caps
        .as_ref()
        .and_then(|c| c.structure(0))
        .and_then(|s| s.get::<String>("stream-format").ok());
    assert_eq!(format.as_deref(), Some("adts"), "{caps:?}");
    let out = RecordOutput::attach_with_storage(
        &live.pipeline,
        "full",
        "room-f",
        &live.rungs(&["v180"]),
        &live.el("audio"),
        RecordConfig {
            dir: tmp.path().to_owned(),
            segment: Duration::from_secs(1),
        },
        Arc::new(FullAfterFirst {
            created: AtomicUsize::new(0),
        }),
    )
    .unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || out.status().state
            == RecordState::Failed),
        "{:?}",
        out.status()
    );
    let st = out.status();
    let reason = st.reason.clone().unwrap();
    let dir = tmp.path().join("room-f/v180");
    assert!(
        reason.starts_with(&format!("disk full writing {}/.", dir.display())),
        "{reason}"
    );
    assert!(
        reason.ends_with("No space left on device (os error 28)"),
        "{reason}"
    );
    // The file made before the disk filled is whole and plays.
    assert_eq!(st.files.len(), 1, "{st:?}");
    assert_eq!(mp4s(&dir), st.files);
    assert_complete(&st.files[0]);
    assert_streams(&st.files[0], (320, 180));
    let fragments = st.fragments;
    assert!(fragments >= 1);

    // The room keeps flowing, nothing more is written, no error reached the bus.
    let before = live.watched.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        live.watched.load(Ordering::SeqCst) >= before + 30,
        "the room stalled"
    );
    assert_eq!(out.status().fragments, fragments);
    assert_eq!(out.status().state, RecordState::Failed);
    assert_eq!(live.pipeline.current_state(), gst::State::Playing);
    assert!(live.errors().is_empty(), "{:?}", live.errors());

    let t = Instant::now();
    out.detach(&live.pipeline);
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(live.rec_elements().is_empty(), "{:?}", live.rec_elements());
    assert_eq!(
        live.el("v180").src_pads().len(),
        1,
        "only the room's branch"
    );
    let before = live.watched.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    assert!(live.watched.load(Ordering::SeqCst) >= before + 10);
    assert!(live.errors().is_empty(), "{:?}", live.errors());
}

// ----------------------------------------------------------------------------------------
// (d) attached to a running room, detached while it runs.
// ----------------------------------------------------------------------------------------

#[test]
fn detach_while_running_finishes_the_file_and_leaves_the_room_running() {
    let tmp = tempfile::tempdir().unwrap();
    let live = Live::new(1, true);
    live.play();
    assert!(wait_for(Duration::from_secs(10), || live
        .watched
        .load(Ordering::SeqCst)
        >= 15));
    let out = RecordOutput::attach(
        &live.pipeline,
        "d1",
        "room-d",
        &live.rungs(&["v180"]),
        &live.el("audio"),
        RecordConfig::new(tmp.path()),
    )
    .unwrap();
    assert!(
        wait_for(Duration::from_secs(15), || out.status().fragments >= 2),
        "{:?}",
        out.status()
    );
    let written = out.status();
    assert_eq!(written.state, RecordState::Recording);
    let t = Instant::now();
    out.detach(&live.pipeline);
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(live.rec_elements().is_empty(), "{:?}", live.rec_elements());
    assert_eq!(live.el("v180").src_pads().len(), 1);
    assert_eq!(live.el("audio").src_pads().len(), 0);

    let files = mp4s(&tmp.path().join("room-d/v180"));
    assert_eq!(files, written.files, "one file, default 10 min segment");
    let f = &files[0];
    assert_complete(f);
    assert_streams(f, (320, 180));
    let (frames, errors) = decode(f);
    assert!(errors.is_empty(), "{errors}");
    // EOS flushed what the muxer held: more than the fragments seen before detaching.
    let v = packets(f, "v:0");
    assert_eq!(frames, v.len());
    assert!(v[0].key);
    assert!(
        frames as f64 >= written.fragments as f64 * FPS,
        "{frames} frames; {} fragments were written before detach",
        written.fragments
    );

    let before = live.watched.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    assert!(live.watched.load(Ordering::SeqCst) >= before + 10);
    assert!(live.errors().is_empty(), "{:?}", live.errors());
}

// ----------------------------------------------------------------------------------------
// (e) the room's hooks on a pipeline that never started.
// ----------------------------------------------------------------------------------------

#[test]
fn errors_of_its_elements_fail_the_output_and_detach_works_before_start() {
    let tmp = tempfile::tempdir().unwrap();
    let live = Live::new(2, false);
    let rungs = live.rungs(&["v180", "v90"]);
    let out = RecordOutput::attach(
        &live.pipeline,
        "e1",
        "room-e",
        &rungs,
        &live.el("audio"),
        RecordConfig::new(tmp.path()),
    )
    .unwrap();
    // A second output with an id that extends this one's.
    let other = RecordOutput::attach(
        &live.pipeline,
        "e1-b",
        "room-e",
        &rungs[..1],
        &live.el("audio"),
        RecordConfig::new(tmp.path()),
    )
    .unwrap();
    assert!(!out.claim_error("v180", "not ours"));
    assert!(!out.claim_error("rec-e1-b-mux-v180", "the other output's"));
    assert_eq!(out.status().state, RecordState::Recording);
    assert!(out.claim_error("rec-e1-mux-v90", "Internal data stream error."));
    let st = out.status();
    assert_eq!(st.state, RecordState::Failed);
    assert_eq!(
        st.reason.as_deref(),
        Some("GStreamer error in rec-e1-mux-v90: Internal data stream error.")
    );
    assert_eq!(other.status().state, RecordState::Recording);
    // Same element names again: refused, and nothing of the refused output is left behind.
    let err = RecordOutput::attach(
        &live.pipeline,
        "e1",
        "room-e",
        &rungs,
        &live.el("audio"),
        RecordConfig::new(tmp.path()),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("rec-e1-vq-v180"), "{err}");
    assert_eq!(live.el("v180").src_pads().len(), 2);

    let t = Instant::now();
    out.detach(&live.pipeline);
    other.detach(&live.pipeline);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(live.rec_elements().is_empty(), "{:?}", live.rec_elements());
    for tee in ["v180", "v90", "audio"] {
        assert_eq!(live.el(tee).src_pads().len(), 0, "{tee}");
    }
    assert!(mp4s(&tmp.path().join("room-e/v180")).is_empty());
}
