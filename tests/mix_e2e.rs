//! End-to-end: real GStreamer mixing real media, outputs read back with ffprobe and ffmpeg.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use showmix::geometry::Rect;
use showmix::mix::{self, MixArgs};
use showmix::presets::Presets;
use showmix::room::{OutputKind, OutputSpec, Room, RoomSpec, RoomState, SeatSpec};
use showmix::source::Source;
use showmix_tests::*;

fn presets() -> Presets {
    Presets::embedded().expect("presets")
}

fn mix_args(layout: &str, seats: &[(&str, String)], duration: Option<f64>, out: &Path) -> MixArgs {
    MixArgs {
        layout: layout.into(),
        ladder: "showroom-720p".into(),
        seats: seats
            .iter()
            .map(|(id, s)| (id.to_string(), s.clone()))
            .collect(),
        duration,
        out: out.to_owned(),
        progress: false,
    }
}

/// Every rung: right size, `frames` frames, keyframes at the same instants, audio of the right
/// length. Returns the keyframe times of the top rung.
fn check_rungs(out: &Path, frames: usize, secs: f64) -> Vec<f64> {
    let ladder = presets().ladder("showroom-720p").unwrap();
    let mut key_times: Option<Vec<f64>> = None;
    for r in &ladder.rungs {
        let file = out.join(format!("{}.mp4", r.name));
        let s = streams(&file).unwrap();
        let (codec, w, h, _) = s.video.clone().expect("video stream");
        assert_eq!(
            (codec.as_str(), w, h),
            ("h264", r.width, r.height),
            "{}",
            r.name
        );
        let (acodec, rate, ch, adur) = s.audio.clone().expect("audio stream");
        assert_eq!((acodec.as_str(), rate, ch), ("aac", 48_000, 2));
        assert!(
            (adur - secs).abs() < 0.1,
            "audio of {} lasts {adur} s, wanted {secs}",
            r.name
        );
        let packets = video_packets(&file).unwrap();
        assert_eq!(packets.len(), frames, "{} frames", r.name);
        let keys: Vec<f64> = packets.iter().filter(|p| p.key).map(|p| p.pts).collect();
        assert!(
            keys.len() >= (secs as usize).max(1),
            "{}: one keyframe per GOP: {keys:?}",
            r.name
        );
        match &key_times {
            None => key_times = Some(keys),
            Some(k) => assert_eq!(k, &keys, "{} keyframes differ from the top rung", r.name),
        }
    }
    key_times.unwrap()
}

/// The colour at the centre of each tile, on every rung (tiles scaled to the rung).
fn check_tiles(out: &Path, t: f64, layout: &str, colours: &[&str]) {
    let p = presets();
    let ladder = p.ladder("showroom-720p").unwrap();
    let l = p.layout(layout).unwrap();
    for r in &ladder.rungs {
        let frame = frame_at(&out.join(format!("{}.mp4", r.name)), t).unwrap();
        for (i, tile) in l
            .tiles(r.width, r.height)
            .iter()
            .enumerate()
            .take(colours.len())
        {
            let (x, y) = tile.rect.centre();
            let got = frame.px(x, y);
            let want = rgb_of(colours[i]);
            assert!(
                near(got, want, 40),
                "{layout} {} slot {i} at ({x},{y}) is {got:?}, wanted {} {want:?}",
                r.name,
                colours[i]
            );
        }
    }
}

#[test]
fn pk_of_two_test_sources() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pk");
    let seats = [
        ("host", "test:red".to_string()),
        ("rival", "test:blue?tone=880".to_string()),
    ];
    let report = mix::run(
        &mix_args("pk", &seats, Some(2.0), &out),
        &presets(),
        &AtomicBool::new(false),
    )
    .unwrap();
    let keys = check_rungs(&out, 60, 2.0);
    // 1 s GOP; video starts after the AAC priming delay (1024 samples = 21.3 ms) so it lines
    // up with the audio.
    assert_eq!(keys.len(), 2);
    assert!((keys[0] - 0.0213).abs() < 0.002, "{keys:?}");
    assert!((keys[1] - keys[0] - 1.0).abs() < 1e-6, "{keys:?}");
    check_tiles(&out, 1.5, "pk", &["red", "blue"]);
    // The report matches what ffprobe sees.
    assert_eq!(report.rungs.len(), 3);
    for r in &report.rungs {
        assert_eq!(r.summary.frames, 60);
        assert_eq!(r.summary.keyframes, 2);
        assert!(r.file.is_file());
    }
    assert!((report.content_seconds - 2.0).abs() < 1e-9);
    assert!(report.wall_seconds > 0.0 && report.cpu_seconds > 0.0 && report.realtime_factor > 0.0);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["rungs"][1]["name"], "480p");
    assert_eq!(json["rungs"][1]["width"], 854);
    assert!(json["realtime_factor"].as_f64().unwrap() > 0.0);
}

#[test]
fn single_and_grid_of_files_end_with_the_longest() {
    let dir = tempfile::tempdir().unwrap();
    let colours = ["red", "lime", "blue", "white"];
    let mut seats = Vec::new();
    for (i, c) in colours.iter().enumerate() {
        let f = dir.path().join(format!("{c}.mp4"));
        // Different lengths and shapes: the 3 s one decides the end; a portrait input gets
        // cropped to fill its landscape tile.
        let (w, h) = if i == 1 { (360, 640) } else { (640, 360) };
        solid_clip(
            &f,
            c,
            if i == 2 { 3.0 } else { 2.0 },
            w,
            h,
            30,
            300 + 100 * i as u32,
        )
        .unwrap();
        seats.push((["a", "b", "c", "d"][i], f.to_string_lossy().into_owned()));
    }
    let out = dir.path().join("grid");
    mix::run(
        &mix_args("grid-4", &seats, None, &out),
        &presets(),
        &AtomicBool::new(false),
    )
    .unwrap();
    check_rungs(&out, 90, 3.0);
    check_tiles(&out, 1.0, "grid-4", &colours);
    // After the 2 s clips end their tiles show the background (black); the 3 s one goes on.
    check_tiles(&out, 2.6, "grid-4", &["black", "black", "blue", "black"]);

    let out = dir.path().join("single");
    mix::run(
        &mix_args("single", &seats[..1], None, &out),
        &presets(),
        &AtomicBool::new(false),
    )
    .unwrap();
    check_rungs(&out, 60, 2.0);
    check_tiles(&out, 1.0, "single", &["red"]);
}

fn room_spec(layout: &str, seats: &[(&str, &str)], out: &Path) -> RoomSpec {
    let p = presets();
    RoomSpec {
        id: "live".into(),
        ladder: p.ladder("showroom-720p").unwrap(),
        layout: p.layout(layout).unwrap(),
        seats: seats
            .iter()
            .map(|(id, src)| SeatSpec::new(*id, Source::parse(src).unwrap()))
            .collect(),
        outputs: vec![OutputSpec {
            id: "file".into(),
            kind: OutputKind::File {
                dir: out.to_owned(),
            },
        }],
        live: true,
        timing: Default::default(),
        push_backoff: Default::default(),
        hls: false,
    }
}

/// pk → grid-4 → single in a running live room: each switch shows on exactly the frame the
/// room reports, the frame before still shows the old layout, and no frame is missing.
#[test]
fn live_layout_switch_is_frame_accurate_and_gap_free() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live");
    let colours = ["red", "green", "blue", "white"];
    let seats: Vec<(&str, String)> = ["a", "b", "c", "d"]
        .iter()
        .zip(colours)
        .map(|(id, c)| (*id, format!("test:{c}")))
        .collect();
    let seat_refs: Vec<(&str, &str)> = seats.iter().map(|(i, s)| (*i, s.as_str())).collect();
    let mut room = Room::start(room_spec("pk", &seat_refs, &out)).unwrap();
    let p = presets();
    std::thread::sleep(Duration::from_millis(1200));
    room.set_layout(p.layout("grid-4").unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    room.set_layout(p.layout("single").unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(room.stop(Duration::from_secs(10)), RoomState::Stopped);

    let switches = room.layout_control().switches();
    assert_eq!(switches.len(), 3, "{switches:?}");
    let file = out.join("720p.mp4");
    let packets = video_packets(&file).unwrap();
    // Gap-free: every frame 1/30 s after the previous one.
    let mut pts: Vec<f64> = packets.iter().map(|p| p.pts).collect();
    pts.sort_by(f64::total_cmp);
    for w in pts.windows(2) {
        let d = w[1] - w[0];
        assert!(
            (d - 1.0 / 30.0).abs() < 0.002,
            "gap of {d} s between {} and {}",
            w[0],
            w[1]
        );
    }
    assert!(pts.len() >= 80, "{} frames", pts.len());
    let frames = decode_frames(&file).unwrap();
    assert_eq!(frames.len(), pts.len());
    let first_pts = switches[0].pts.unwrap().nseconds() as f64 / 1e9;
    let index_of = |i: usize| -> usize {
        let t = switches[i].pts.unwrap().nseconds() as f64 / 1e9 - first_pts;
        (t * 30.0).round() as usize
    };
    let expect = |frame: &Frame, layout: &str, cols: &[&str]| {
        let tiles = p.layout(layout).unwrap().tiles(1280, 720);
        for (i, c) in cols.iter().enumerate() {
            let Rect { .. } = tiles[i].rect;
            let (x, y) = tiles[i].rect.centre();
            let got = frame.px(x, y);
            assert!(
                near(got, rgb_of(c), 40),
                "{layout}: slot {i} shows {got:?}, wanted {c}"
            );
        }
    };
    let g = index_of(1);
    let s = index_of(2);
    assert!(
        g > 10 && s > g + 10 && s + 10 < frames.len(),
        "switch frames {g} {s} of {}",
        frames.len()
    );
    expect(&frames[g - 1], "pk", &colours[..2]);
    expect(&frames[g], "grid-4", &colours);
    expect(&frames[s - 1], "grid-4", &colours);
    expect(&frames[s], "single", &colours[..1]);
    for sw in &switches[1..] {
        let l = sw.latency.unwrap();
        assert!(
            l < Duration::from_millis(500),
            "switch took {l:?} to reach the mix"
        );
    }
}

/// Seats join and leave a live room, volume and slot changes apply, nothing stops.
#[test]
fn live_seats_join_move_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seats");
    let mut room = Room::start(room_spec("grid-4", &[("a", "test:red")], &out)).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    room.add_seat(SeatSpec::new("b", Source::parse("test:blue").unwrap()))
        .unwrap();
    assert!(
        room.add_seat(SeatSpec::new("b", Source::parse("test:blue").unwrap()))
            .is_err(),
        "duplicate id"
    );
    std::thread::sleep(Duration::from_millis(800));
    room.set_seat_slot("b", Some(3)).unwrap();
    assert!(room.set_seat_slot("a", Some(3)).is_err(), "slot taken");
    room.set_seat_audio("a", Some(0.5), Some(true)).unwrap();
    assert!(room.set_seat_audio("a", Some(3.0), None).is_err());
    std::thread::sleep(Duration::from_millis(800));
    room.remove_seat("a").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(room.seat_ids(), ["b"]);
    assert_eq!(room.stop(Duration::from_secs(10)), RoomState::Stopped);
    let file = out.join("720p.mp4");
    let dur = streams(&file).unwrap().video.unwrap().3;
    assert!(dur > 2.5, "{dur}");
    let tiles = presets().layout("grid-4").unwrap().tiles(1280, 720);
    let last = frame_at(&file, dur - 0.2).unwrap();
    let (x, y) = tiles[3].rect.centre();
    assert!(near(last.px(x, y), rgb_of("blue"), 40), "b moved to slot 3");
    let (x, y) = tiles[0].rect.centre();
    assert!(near(last.px(x, y), rgb_of("black"), 40), "a left");
}

/// Two rooms at once: a failing seat in one does not touch the other.
#[test]
fn a_failing_seat_stays_in_its_room() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("garbage.mp4");
    std::fs::write(&bad, vec![0x5au8; 100_000]).unwrap();
    let mut a = Room::start(room_spec(
        "pk",
        &[("ok", "test:red")],
        &dir.path().join("a"),
    ))
    .unwrap();
    let mut spec = room_spec("pk", &[("ok", "test:green")], &dir.path().join("b"));
    spec.id = "other".into();
    let mut b = Room::start(spec).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    b.add_seat(SeatSpec::new("bad", Source::File(bad))).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let before = b.mixed_frames();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        b.mixed_frames() >= before + 10,
        "room b keeps mixing after its seat failed"
    );
    let states = b.seats();
    let bad_state = &states.iter().find(|(s, _)| s.id == "bad").unwrap().1;
    assert!(
        matches!(bad_state, showmix::room::SeatState::Failed(_)),
        "{bad_state:?}"
    );
    assert_eq!(b.state(), RoomState::Live);
    assert_eq!(a.state(), RoomState::Live);
    assert_eq!(a.stop(Duration::from_secs(10)), RoomState::Stopped);
    assert_eq!(b.stop(Duration::from_secs(10)), RoomState::Stopped);
    for d in ["a", "b"] {
        let dur = streams(&dir.path().join(d).join("720p.mp4"))
            .unwrap()
            .video
            .unwrap()
            .3;
        assert!(dur > 1.5, "room {d} recorded {dur} s");
    }
}

/// Inputs with B-frames carry an edit list (their segment starts after zero): the mix must end
/// exactly on their last frame, not one edit later with black frames.
#[test]
fn inputs_with_an_edit_list_end_on_their_last_frame() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("bframes.mp4");
    motion_clip(&clip, "testsrc2", 2.0, 640, 360, 30, 440).unwrap();
    assert_eq!(frame_count(&clip).unwrap(), 60);
    let out = dir.path().join("out");
    let seats = [("a", clip.to_string_lossy().into_owned())];
    mix::run(
        &mix_args("single", &seats, None, &out),
        &presets(),
        &AtomicBool::new(false),
    )
    .unwrap();
    for r in ["720p", "480p", "360p"] {
        assert_eq!(
            frame_count(&out.join(format!("{r}.mp4"))).unwrap(),
            60,
            "{r}"
        );
    }
    // The last frame is picture, not background.
    let last = frame_at(&out.join("720p.mp4"), 1.95).unwrap();
    assert!(
        !near(last.px(640, 360), rgb_of("black"), 20),
        "last frame is black"
    );
}

/// Beauty runs per seat at the seat's tile size, and changes live.
#[test]
fn beauty_runs_at_tile_size_and_changes_live() {
    use gst::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let p = presets();
    let mut spec = room_spec("grid-4", &[("a", "test:smpte")], &dir.path().join("b"));
    spec.seats[0].beauty = p.beauty("showroom").unwrap();
    let mut room = Room::start(spec).unwrap();
    let f = room
        .pipeline()
        .by_name("seat-a")
        .and_then(|b| b.downcast::<gst::Bin>().ok())
        .and_then(|b| b.by_name("beauty"))
        .expect("the seat has a beauty filter");
    let processed = || f.property::<u64>("frames-processed");
    let sink_size = || {
        let caps = f.static_pad("sink").unwrap().current_caps().unwrap();
        let s = caps.structure(0).unwrap();
        (
            s.get::<i32>("width").unwrap(),
            s.get::<i32>("height").unwrap(),
        )
    };
    std::thread::sleep(Duration::from_millis(1500));
    let n1 = processed();
    assert!(n1 > 10, "beauty processed {n1} frames");
    // A 1280x720 test picture in a 640x360 grid tile is filtered at 640x360.
    assert_eq!(sink_size(), (640, 360));
    // Switched off live: the filter stops touching frames.
    room.set_seat_beauty("a", p.beauty("off").unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let n2 = processed();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(n2, processed(), "off is a pass-through");
    // On again, at the new tile size after a switch to single (the full canvas).
    room.set_seat_beauty("a", p.beauty("natural").unwrap())
        .unwrap();
    room.set_layout(p.layout("single").unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(processed() > n2);
    assert_eq!(sink_size(), (1280, 720));
    assert_eq!(room.stop(Duration::from_secs(10)), RoomState::Stopped);
}

/// Seats are scaled down to their tile by showmixscale before the compositor, beauty or not,
/// and follow layout switches; the compositor then only crops and places.
#[test]
fn seats_reach_the_compositor_at_their_tile_size() {
    use gst::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let p = presets();
    let spec = room_spec("grid-4", &[("a", "test:smpte")], &dir.path().join("s"));
    let mut room = Room::start(spec).unwrap();
    let seat = room
        .pipeline()
        .by_name("seat-a")
        .and_then(|b| b.downcast::<gst::Bin>().ok())
        .expect("the seat's bin");
    let scaler = seat
        .by_name("prescale-scale")
        .expect("a showmixscale prescaler");
    assert_eq!(
        scaler.factory().map(|f| f.name().to_string()).as_deref(),
        Some("showmixscale")
    );
    let q = seat.by_name("vqueue").expect("the seat's queue");
    let size = || {
        let caps = q.static_pad("sink")?.current_caps()?;
        let s = caps.structure(0)?;
        Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?))
    };
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        size(),
        Some((640, 360)),
        "720p test picture in a 640x360 tile"
    );
    // At the canvas's colour description: below 720 lines GStreamer would otherwise assume
    // BT.601 and the compositor would re-matrix every frame of the tile.
    let caps = q.static_pad("sink").unwrap().current_caps().unwrap();
    let s = caps.structure(0).unwrap();
    assert_eq!(s.get::<&str>("colorimetry").ok(), Some("bt709"), "{caps}");
    assert_eq!(s.get::<&str>("chroma-site").ok(), Some("mpeg2"), "{caps}");
    room.set_layout(p.layout("single").unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(size(), Some((1280, 720)), "full canvas: no scaling");
    room.set_layout(p.layout("grid-9").unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let (w, h) = size().unwrap();
    assert!((426..=428).contains(&w) && h == 240, "grid-9 tile: {w}x{h}");
    assert_eq!(room.stop(Duration::from_secs(10)), RoomState::Stopped);
}
