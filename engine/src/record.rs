//! Recording outputs: chosen rungs with the room's audio to fragmented MP4 files, rolled every
//! N minutes, crash-safe up to the last complete fragment.
//!
//! ```text
//! rung tee ─ leaky queue ─ [parser] ─┐
//!                                    ├─ isofmp4mux ─ appsink ──▶ RollingWriter ──▶ files
//! audio tee ─ leaky queue ─ [parser] ┘   (1 s fragments)          (plain Rust)
//! ```
//!
//! Two layers, as for LL-HLS (`room/hls.rs`):
//!
//! * **GStreamer** ([`RecordOutput`]): one branch per recorded rung. gst-plugin-fmp4's
//!   `isofmp4mux` (several tracks in one file, unlike `cmafmux`) pushes one buffer list per
//!   fragment (no `chunk-duration`): the init segment (`ftyp`+`moov`, flagged
//!   `HEADER|DISCONT`) in front of the first fragment and again after every caps change
//!   (`header-update-mode=caps`: a caps change is a new init, not an error), then the fragment
//!   header (`moof` + `mdat` header, flagged `HEADER`, with the fragment's duration; without
//!   `DELTA_UNIT` when it starts a fragment) and the samples. The muxer only ever starts a
//!   fragment on a GOP's keyframe (it dequeues whole GOPs), so "starts a fragment" is
//!   "starts with a keyframe". It does not ask the encoders for keyframes
//!   (`send-force-keyunit=false`): the room's encoders are shared by every output and keep
//!   their fixed GOP. A parser per branch (chosen from the tee's caps) converts whatever
//!   stream format the room's tee carries (H.264 byte-stream for an MPEG-TS push, ADTS…)
//!   into what the muxer needs, so the branch never constrains the room's negotiation. The
//!   queues are leaky: a slow disk drops media from the recording, never stalls the room.
//! * **Plain Rust** ([`RollingWriter`]): turns init segments and fragments into files.
//!
//! # Files
//!
//! `<dir>/<room>/<rung>/<UTC start yyyymmddThhmmssZ>-<output id>-<seq>.mp4`, `seq` a
//! five-digit counter per output and rung (`20250314T091500Z-rec1-00001.mp4`). Names sort by
//! start time; the id and the counter make them unique. The start time is the wall-clock time
//! of the file's first fragment. Each file is the init segment followed by whole fragments in
//! order, so it is a valid fragmented MP4 at every fragment boundary: no `moov` rewrite, no
//! index to finish. A file is rolled when it holds at least the segment duration and the next
//! fragment starts with a keyframe, or at once when the init segment changes (new caps).
//!
//! # Durability
//!
//! * Each fragment is written with one `write` (the whole `moof`+`mdat`), straight to the file
//!   descriptor (no user-space buffer to flush), with its `moof` box typed `free`; a second,
//!   4-byte write then types it `moof`, which commits the fragment. After `kill -9` the kernel
//!   still has every byte written, so a file is its committed fragments, possibly followed by
//!   a `free` box and a short `mdat` that every reader skips. Why not the plain single write:
//!   a signal can stop a `write` at any page boundary, and ffmpeg (5.1) rejects the whole file
//!   when it ends inside a `moof` (`tests/record.rs` shows the commit keeps such cuts
//!   playable).
//! * A file is created as `.<name>.part`, gets the init segment and its first fragment in a
//!   single write, `fdatasync`, and only then its final name (rename, then `fsync` of the
//!   directory). So every `*.mp4` in the tree plays at least one fragment, even after a crash
//!   or a power cut right after it appeared. A crash before that leaves a hidden `.part`.
//! * `fdatasync` every [`SYNC_EVERY`] (5 s) of media, and `fsync` when a file is closed (roll,
//!   EOS, detach, failure of another rung). This bounds what a power cut or kernel crash can
//!   lose to about 5 s per file, while costing one disk flush per 5 s per rung rather than one
//!   per fragment (a flush is a journal commit: milliseconds on SSD, tens of ms on busy or
//!   network disks, and it blocks the muxer's thread — never the room, which the leaky
//!   queues protect). Process crashes need no flush at all: the page cache survives them.
//!
//! # Failures
//!
//! Any error creating, writing, syncing or renaming (`ENOSPC`, `EDQUOT`, `EACCES`, `EROFS`,
//! `EIO`…) puts the output in [`RecordState::Failed`] with a reason that names the file and the
//! OS error ("disk full writing /rec/r1/720p/….mp4: No space left on device (os error 28)").
//! Every rung stops writing (files already written stay valid); the appsinks keep accepting and
//! dropping, so the room runs on. The muxer never sees an error flow.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use gst::prelude::*;

use crate::pipeline::{make, queue};

/// Default length of a recording file.
pub const DEFAULT_SEGMENT: Duration = Duration::from_secs(10 * 60);
/// Media written between two `fdatasync`s of the open file.
pub const SYNC_EVERY: Duration = Duration::from_secs(5);
/// Target fragment duration: the room's GOP (a longer GOP makes fragments of one GOP).
const FRAGMENT: gst::ClockTime = gst::ClockTime::from_seconds(1);
/// How much media the branch queues buffer before dropping (a disk stall up to this long
/// loses nothing).
const QUEUE_TIME: gst::ClockTime = gst::ClockTime::from_seconds(5);
/// Detach: how long to wait for the tees to let go of the branch, then for the files to be
/// finished after EOS.
const UNLINK_TIMEOUT: Duration = Duration::from_secs(2);
const EOS_TIMEOUT: Duration = Duration::from_secs(5);
/// How many names to try when a file name is already taken.
const NAME_ATTEMPTS: u64 = 1000;

#[derive(Clone, Debug, PartialEq)]
pub struct RecordConfig {
    /// Root directory; files go to `<dir>/<room>/<rung>/`.
    pub dir: PathBuf,
    /// Length of a file (rolled on the first keyframe at or after it). Default 10 min.
    pub segment: Duration,
}

impl RecordConfig {
    /// A configuration with the default segment length.
    pub fn new(dir: impl Into<PathBuf>) -> RecordConfig {
        RecordConfig {
            dir: dir.into(),
            segment: DEFAULT_SEGMENT,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    Recording,
    Failed,
    Finished,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RecordStatus {
    pub state: RecordState,
    /// Why the output failed (names the file and the OS error).
    pub reason: Option<String>,
    /// Every file made so far (final names), per rung in order.
    pub files: Vec<PathBuf>,
    /// Bytes written to files (init segments included).
    pub bytes_written: u64,
    /// Fragments written.
    pub fragments: u64,
}

impl RecordStatus {
    fn new() -> RecordStatus {
        RecordStatus {
            state: RecordState::Recording,
            reason: None,
            files: Vec::new(),
            bytes_written: 0,
            fragments: 0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plain Rust: storage and the rolling writer.
// ---------------------------------------------------------------------------------------------

/// Where recording files are made. [`FsStorage`] is the real file system; tests (and callers
/// with special needs) inject others, e.g. one that hands out `/dev/full`.
pub trait Storage: Send + Sync {
    /// Creates (or truncates) the file at `path`, creating its directory if needed.
    fn create(&self, path: &Path) -> io::Result<Box<dyn RecordFile>>;
    /// Gives a file its final name, durably (the directory entry is synced). Fails with
    /// `AlreadyExists` when `to` exists.
    fn publish(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file that will not be published (best effort).
    fn discard(&self, path: &Path);
}

/// An open recording file.
pub trait RecordFile: Send {
    /// Appends `data` with one write (no user-space buffering).
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Overwrites bytes already written at `offset` (the 4-byte fragment commit).
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// `fdatasync`: the data written so far is on disk.
    fn sync_data(&mut self) -> io::Result<()>;
    /// `fsync`: data and metadata are on disk (before closing).
    fn sync_all(&mut self) -> io::Result<()>;
}

impl RecordFile for File {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_all(data)?;
        self.flush()
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, data, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn sync_all(&mut self) -> io::Result<()> {
        File::sync_all(self)
    }
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsStorage;

impl Storage for FsStorage {
    fn create(&self, path: &Path) -> io::Result<Box<dyn RecordFile>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(f))
    }

    fn publish(&self, from: &Path, to: &Path) -> io::Result<()> {
        // Names carry the output id and a counter: only a previous run of the same output in
        // the same second can collide, and this check catches it.
        if std::fs::symlink_metadata(to).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", to.display()),
            ));
        }
        std::fs::rename(from, to)?;
        if let Some(dir) = to.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    fn discard(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
    }
}

/// A clear reason for an I/O failure: what went wrong, doing what, on which file.
pub fn describe_io_error(doing: &str, path: &Path, e: &io::Error) -> String {
    let what = match e.raw_os_error() {
        Some(libc::ENOSPC) => "disk full",
        Some(libc::EDQUOT) => "disk quota exceeded",
        Some(libc::EACCES) | Some(libc::EPERM) => "permission denied",
        Some(libc::EROFS) => "read-only file system",
        Some(libc::EIO) => "I/O error",
        Some(libc::EFBIG) => "file too large",
        _ => "failed",
    };
    format!("{what} {doing} {}: {e}", path.display())
}

/// A path component made from a name: letters, digits, `.`, `_`, `-` kept, anything else
/// (separators included) replaced by `_`; never empty, `.` or `..`.
pub fn path_component(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        "_".repeat(s.len().max(1))
    } else {
        s
    }
}

/// `yyyymmddThhmmssZ` of a time (UTC, whole seconds; times before 1970 read as 1970).
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

/// The name of a recording file (see the module docs).
pub fn file_name(start: SystemTime, tag: &str, seq: u64) -> String {
    format!("{}-{tag}-{seq:05}.mp4", utc_stamp(start))
}

/// One fragment as the muxer made it.
#[derive(Clone, Copy, Debug)]
pub struct Fragment<'a> {
    /// `moof` + `mdat` (complete).
    pub data: &'a [u8],
    /// Media duration of the fragment.
    pub duration: Duration,
    /// The fragment starts with a keyframe (a file may start here).
    pub keyframe: bool,
}

struct OpenFile {
    file: Box<dyn RecordFile>,
    path: PathBuf,
    /// Bytes in the file.
    len: u64,
    /// Media in the file.
    media: Duration,
    /// Media written since the last sync.
    unsynced: Duration,
}

/// Writes one rung's recording: init segment + complete fragments per file, rolled on
/// keyframes once a file holds the segment duration. Not tied to GStreamer.
pub struct RollingWriter {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    tag: String,
    segment: Duration,
    sync_every: Duration,
    init: Option<Vec<u8>>,
    /// The init changed since the open file began: the next fragment starts a new file.
    init_changed: bool,
    current: Option<OpenFile>,
    seq: u64,
    status: Arc<Mutex<RecordStatus>>,
}

impl fmt::Debug for RollingWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollingWriter")
            .field("dir", &self.dir)
            .field("tag", &self.tag)
            .field("segment", &self.segment)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RollingWriter {
    /// Files go to `dir`, named with `tag` (made a safe path component).
    pub fn new(
        storage: Arc<dyn Storage>,
        dir: PathBuf,
        tag: &str,
        segment: Duration,
        sync_every: Duration,
    ) -> RollingWriter {
        RollingWriter {
            storage,
            dir,
            tag: path_component(tag),
            segment,
            sync_every,
            init: None,
            init_changed: false,
            current: None,
            seq: 0,
            status: Arc::new(Mutex::new(RecordStatus::new())),
        }
    }

    /// A handle on the writer's status that never waits for its I/O.
    pub fn status_handle(&self) -> Arc<Mutex<RecordStatus>> {
        self.status.clone()
    }

    pub fn status(&self) -> RecordStatus {
        lock(&self.status).clone()
    }

    pub fn state(&self) -> RecordState {
        lock(&self.status).state
    }

    /// A new init segment (`ftyp`+`moov`). When it differs from the current one, the next
    /// fragment starts a new file.
    pub fn set_init(&mut self, init: &[u8]) {
        if self.state() != RecordState::Recording || self.init.as_deref() == Some(init) {
            return;
        }
        self.init = Some(init.to_vec());
        self.init_changed = true;
    }

    /// Writes a fragment, rolling to a new file first when due. Returns the failure reason
    /// when this call failed the writer; fragments are dropped once it has failed or finished,
    /// and before the first init segment.
    pub fn push(&mut self, frag: Fragment<'_>, now: SystemTime) -> Result<(), String> {
        if self.state() != RecordState::Recording || frag.data.is_empty() {
            return Ok(());
        }
        let Some(init) = self.init.clone() else {
            return Ok(());
        };
        let roll = match &self.current {
            None => true,
            Some(cur) => self.init_changed || (frag.keyframe && cur.media >= self.segment),
        };
        if roll {
            if let Some(cur) = self.current.take() {
                self.close(cur)?;
            }
            return self.open(&init, frag, now);
        }
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        if let Err(e) = append_committed(cur.file.as_mut(), cur.len, frag.data) {
            let reason = describe_io_error("writing", &cur.path, &e);
            return Err(self.fail(reason));
        }
        cur.len += frag.data.len() as u64;
        cur.media += frag.duration;
        cur.unsynced += frag.duration;
        if cur.unsynced >= self.sync_every {
            cur.unsynced = Duration::ZERO;
            if let Err(e) = cur.file.sync_data() {
                let reason = describe_io_error("syncing", &cur.path, &e);
                return Err(self.fail(reason));
            }
        }
        let mut st = lock(&self.status);
        st.bytes_written += frag.data.len() as u64;
        st.fragments += 1;
        Ok(())
    }

    /// Fails the writer for a reason found elsewhere (the open file is closed, synced).
    pub fn abort(&mut self, reason: &str) {
        if self.state() == RecordState::Recording {
            self.fail(reason.to_owned());
        }
    }

    /// Closes the open file (synced) and finishes: nothing more is written.
    pub fn finish(&mut self) {
        if self.state() != RecordState::Recording {
            return;
        }
        if let Some(cur) = self.current.take()
            && self.close(cur).is_err()
        {
            return;
        }
        lock(&self.status).state = RecordState::Finished;
    }

    fn close(&mut self, mut cur: OpenFile) -> Result<(), String> {
        match cur.file.sync_all() {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(describe_io_error("syncing", &cur.path, &e))),
        }
    }

    /// Starts a file with `init` and its first fragment: written under a hidden name in one
    /// write, synced, then renamed (see the module docs).
    fn open(&mut self, init: &[u8], frag: Fragment<'_>, now: SystemTime) -> Result<(), String> {
        self.seq += 1;
        let name = file_name(now, &self.tag, self.seq);
        let part = self.dir.join(format!(".{name}.part"));
        let mut file = match self.storage.create(&part) {
            Ok(f) => f,
            Err(e) => return Err(self.fail(describe_io_error("creating", &part, &e))),
        };
        let mut first = Vec::with_capacity(init.len() + frag.data.len());
        first.extend_from_slice(init);
        first.extend_from_slice(frag.data);
        if let Err(e) = append_committed(file.as_mut(), 0, &first).and_then(|()| file.sync_data()) {
            drop(file);
            self.storage.discard(&part);
            return Err(self.fail(describe_io_error("writing", &part, &e)));
        }
        let mut path = self.dir.join(&name);
        let mut attempts = 0;
        loop {
            match self.storage.publish(&part, &path) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < NAME_ATTEMPTS => {
                    attempts += 1;
                    self.seq += 1;
                    path = self.dir.join(file_name(now, &self.tag, self.seq));
                }
                Err(e) => {
                    drop(file);
                    self.storage.discard(&part);
                    return Err(self.fail(describe_io_error("naming", &path, &e)));
                }
            }
        }
        tracing::debug!(file = %path.display(), "recording file started");
        self.init_changed = false;
        self.current = Some(OpenFile {
            file,
            path: path.clone(),
            len: first.len() as u64,
            media: frag.duration,
            unsynced: Duration::ZERO,
        });
        let mut st = lock(&self.status);
        st.files.push(path);
        st.bytes_written += first.len() as u64;
        st.fragments += 1;
        Ok(())
    }

    /// Fails the writer: the open file is closed (synced, best effort) and nothing more is
    /// written.
    fn fail(&mut self, reason: String) -> String {
        if let Some(mut cur) = self.current.take() {
            let _ = cur.file.sync_all();
        }
        tracing::error!(dir = %self.dir.display(), "recording failed: {reason}");
        let mut st = lock(&self.status);
        st.state = RecordState::Failed;
        st.reason = Some(reason.clone());
        reason
    }
}

/// Where the type of the first top-level `moof` box of `data` is, if it has one whole.
fn moof_type_at(data: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    while data.len().saturating_sub(pos) >= 8 {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().ok()?) as usize;
        if size < 8 || size > data.len() - pos {
            return None;
        }
        if &data[pos + 4..pos + 8] == b"moof" {
            return Some(pos + 4);
        }
        pos += size;
    }
    None
}

/// Appends muxer output at `len` (the file's size) so that the file is valid whenever the
/// process dies: the data goes out with its `moof` typed `free` (a box every reader skips),
/// then one 4-byte write turns it into `moof` (half done, it is an unknown box type, skipped
/// too). A cut inside the first write leaves a `free` box and a short `mdat`, which players
/// ignore; a cut inside a `moof` would not be: ffmpeg (5.1) rejects the whole file when a
/// `moof` ends early, and a signal can stop a `write` at any page boundary.
fn append_committed(file: &mut dyn RecordFile, len: u64, data: &[u8]) -> io::Result<()> {
    let Some(at) = moof_type_at(data) else {
        return file.append(data);
    };
    let mut hidden = data.to_vec();
    hidden[at..at + 4].copy_from_slice(b"free");
    file.append(&hidden)?;
    file.write_at(len + at as u64, b"moof")
}

impl Drop for RollingWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// GStreamer: the branches.
// ---------------------------------------------------------------------------------------------

/// Set by a branch's appsink when its EOS has been handled (files closed).
#[derive(Default)]
struct Done {
    flag: Mutex<bool>,
    cond: Condvar,
}

impl Done {
    fn set(&self) {
        *lock(&self.flag) = true;
        self.cond.notify_all();
    }
    fn is_set(&self) -> bool {
        *lock(&self.flag)
    }
    /// Waits until set or `deadline`; true when set.
    fn wait_until(&self, deadline: Instant) -> bool {
        let mut g = lock(&self.flag);
        while !*g {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self
                .cond
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// A tee request pad and the branch queue's sink pad it feeds.
struct TeeLink {
    tee: gst::Element,
    tee_pad: gst::Pad,
    queue_sink: gst::Pad,
}

struct Branch {
    rung: String,
    /// Every element of the branch, upstream first.
    elements: Vec<gst::Element>,
    links: Vec<TeeLink>,
    writer: Arc<Mutex<RollingWriter>>,
    status: Arc<Mutex<RecordStatus>>,
    done: Arc<Done>,
    /// Shared by the output's branches: one failing stops them all.
    output_failed: Arc<AtomicBool>,
}

/// A recording output attached to a room's pipeline.
pub struct RecordOutput {
    id: String,
    branches: Vec<Branch>,
}

impl fmt::Debug for RecordOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordOutput")
            .field("id", &self.id)
            .field(
                "rungs",
                &self.branches.iter().map(|b| &b.rung).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Checks that `dir` exists or can be created and that files can be written in it.
fn check_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create recording directory {}: {e}", dir.display()))?;
    let probe = dir.join(format!(".record-probe-{}", std::process::id()));
    let res = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .and_then(|mut f| f.write_all(b"showmix"));
    let _ = std::fs::remove_file(&probe);
    res.map_err(|e| anyhow::anyhow!("recording directory {} is not writable: {e}", dir.display()))
}

/// The parser that turns what a tee carries into what `isofmp4mux` takes (H.264/H.265
/// `avc`/`hvc` with codec data, raw AAC…), from the tee's caps (or, before they are fixed,
/// from what its upstream can produce). `None` when no parser is needed or known.
fn parser_for(tee: &gst::Element) -> Option<&'static str> {
    let pad = tee.static_pad("sink")?;
    let caps = pad
        .current_caps()
        .or_else(|| pad.peer().map(|p| p.query_caps(None)))?;
    let s = caps.structure(0)?;
    match s.name().as_str() {
        "video/x-h264" => Some("h264parse"),
        "video/x-h265" => Some("h265parse"),
        "video/x-av1" => Some("av1parse"),
        "audio/mpeg" if s.get::<i32>("mpegversion").map(|v| v != 1).unwrap_or(true) => {
            Some("aacparse")
        }
        "audio/x-opus" => Some("opusparse"),
        _ => None,
    }
}

/// The wall-clock time at which a fragment's media started: now, minus how far the pipeline's
/// running time is past the fragment's.
fn fragment_wallclock(
    sink: &gst_app::AppSink,
    sample: &gst::Sample,
    pts: Option<gst::ClockTime>,
) -> SystemTime {
    let now = SystemTime::now();
    let running = pts.and_then(|p| {
        sample.segment().and_then(|seg| {
            seg.downcast_ref::<gst::ClockTime>()
                .and_then(|s| s.to_running_time(p))
        })
    });
    match (running, sink.current_running_time()) {
        (Some(r), Some(c)) if c >= r => now
            .checked_sub(Duration::from_nanos((c - r).nseconds()))
            .unwrap_or(now),
        _ => now,
    }
}

/// One muxer output (a buffer list): [init] + fragment header + samples.
fn handle_sample(
    sink: &gst_app::AppSink,
    sample: &gst::Sample,
    writer: &Mutex<RollingWriter>,
    output_failed: &AtomicBool,
) {
    let mut w = lock(writer);
    if w.state() != RecordState::Recording {
        return;
    }
    if output_failed.load(Ordering::SeqCst) {
        // Another rung failed: the output stops; this rung's file is closed cleanly.
        w.finish();
        return;
    }
    let mut buffers: Vec<gst::Buffer> = Vec::new();
    if let Some(list) = sample.buffer_list() {
        buffers.extend(list.iter_owned());
    } else if let Some(b) = sample.buffer_owned() {
        buffers.push(b);
    }
    let total: usize = buffers.iter().map(|b| b.size()).sum();
    let mut data = Vec::with_capacity(total);
    let mut duration = None;
    let mut pts = None;
    let mut keyframe = false;
    for b in &buffers {
        let flags = b.flags();
        let Ok(map) = b.map_readable() else {
            tracing::warn!("recording: unreadable buffer from the muxer, fragment dropped");
            return;
        };
        // The init segment is `HEADER|DISCONT`; its content (an `ftyp` first) makes sure.
        if flags.contains(gst::BufferFlags::HEADER) && map.get(4..8) == Some(b"ftyp".as_slice()) {
            w.set_init(map.as_slice());
            continue;
        }
        if flags.contains(gst::BufferFlags::HEADER) && duration.is_none() {
            keyframe = !flags.contains(gst::BufferFlags::DELTA_UNIT);
            duration = Some(b.duration().unwrap_or(gst::ClockTime::ZERO));
            pts = b.pts();
        }
        data.extend_from_slice(map.as_slice());
    }
    let Some(duration) = duration else {
        return;
    };
    let now = fragment_wallclock(sink, sample, pts);
    let frag = Fragment {
        data: &data,
        duration: Duration::from_nanos(duration.nseconds()),
        keyframe,
    };
    if w.push(frag, now).is_err() {
        output_failed.store(true, Ordering::SeqCst);
    }
}

impl RecordOutput {
    /// `rungs`: (rung name, the rung's encoded-video tee) for each rung to record. Checks up
    /// front that `cfg.dir` can be created and written (error names the directory and the OS
    /// error). Element names prefixed "rec-{id}-" (unique per output id).
    pub fn attach(
        pipeline: &gst::Pipeline,
        id: &str,
        room: &str,
        rungs: &[(String, gst::Element)],
        audio_tee: &gst::Element,
        cfg: RecordConfig,
    ) -> Result<RecordOutput> {
        Self::attach_with_storage(
            pipeline,
            id,
            room,
            rungs,
            audio_tee,
            cfg,
            Arc::new(FsStorage),
        )
    }

    /// [`attach`](Self::attach) with the files made by `storage` (the directories are still
    /// checked on the real file system).
    pub fn attach_with_storage(
        pipeline: &gst::Pipeline,
        id: &str,
        room: &str,
        rungs: &[(String, gst::Element)],
        audio_tee: &gst::Element,
        cfg: RecordConfig,
        storage: Arc<dyn Storage>,
    ) -> Result<RecordOutput> {
        if rungs.is_empty() {
            bail!("record output {id:?}: no rung to record");
        }
        if cfg.segment.is_zero() {
            bail!("record output {id:?}: the segment duration must be above zero");
        }
        for (i, (name, _)) in rungs.iter().enumerate() {
            if rungs[..i].iter().any(|(n, _)| n == name) {
                bail!("record output {id:?}: rung {name:?} is listed twice");
            }
        }
        let room_dir = cfg.dir.join(path_component(room));
        let dirs: Vec<PathBuf> = rungs
            .iter()
            .map(|(name, _)| room_dir.join(path_component(name)))
            .collect();
        check_dir(&cfg.dir).map_err(|e| anyhow::anyhow!("record output {id:?}: {e}"))?;
        for d in &dirs {
            check_dir(d).map_err(|e| anyhow::anyhow!("record output {id:?}: {e}"))?;
        }
        let audio_parser = parser_for(audio_tee);
        let output_failed = Arc::new(AtomicBool::new(false));
        let mut out = RecordOutput {
            id: id.to_owned(),
            branches: Vec::new(),
        };
        for ((name, tee), dir) in rungs.iter().zip(dirs) {
            let writer = RollingWriter::new(storage.clone(), dir, id, cfg.segment, SYNC_EVERY);
            match build_branch(
                pipeline,
                id,
                name,
                tee,
                audio_tee,
                audio_parser,
                writer,
                output_failed.clone(),
            ) {
                Ok(b) => out.branches.push(b),
                Err(e) => {
                    for b in out.branches.drain(..) {
                        teardown(pipeline, b);
                    }
                    return Err(anyhow::anyhow!(
                        "record output {id:?}, rung {name:?}: {e:#}"
                    ));
                }
            }
        }
        tracing::info!(room, output = id, "recording attached");
        Ok(out)
    }

    pub fn status(&self) -> RecordStatus {
        let mut out = RecordStatus::new();
        let mut failed = false;
        let mut finished = true;
        for b in &self.branches {
            let st = lock(&b.status).clone();
            match st.state {
                RecordState::Failed => {
                    if !failed {
                        out.reason = st.reason;
                    }
                    failed = true;
                }
                RecordState::Recording => finished = false,
                RecordState::Finished => {}
            }
            out.files.extend(st.files);
            out.bytes_written += st.bytes_written;
            out.fragments += st.fragments;
        }
        out.state = if failed {
            RecordState::Failed
        } else if finished {
            RecordState::Finished
        } else {
            RecordState::Recording
        };
        out
    }

    /// For the room's bus handler: when `element` (an error message's source) belongs to this
    /// output, marks the output failed with `error` and returns true; the room should then
    /// keep running (the branch's queues are leaky, nothing upstream waits for it).
    pub fn claim_error(&self, element: &str, error: &str) -> bool {
        let ours = self
            .branches
            .iter()
            .any(|b| b.elements.iter().any(|e| e.name() == element));
        if !ours {
            return false;
        }
        let reason = format!("GStreamer error in {element}: {error}");
        if let Some(b) = self.branches.first() {
            b.output_failed.store(true, Ordering::SeqCst);
        }
        for b in &self.branches {
            lock(&b.writer).abort(&reason);
        }
        true
    }

    /// Ends the recording cleanly: EOS into the branch, waits (bounded, a few seconds) until
    /// the files are flushed, then unlinks from the tees, sets the elements to NULL and
    /// removes them. In that order for the data; the tees let go of the branch first (each
    /// when its pad is idle), so no buffer races the EOS and the room never waits. When the
    /// pipeline is not playing (or the room's own EOS already finished the files) there is no
    /// EOS to wait for: the files are closed with what they hold.
    pub fn detach(self, pipeline: &gst::Pipeline) {
        // Let go of the tees first, each on an idle moment of its pad, so no buffer races the
        // EOS below and the room's other branches never wait.
        for b in &self.branches {
            for l in &b.links {
                unlink_when_idle(&l.tee_pad, &l.queue_sink);
            }
        }
        let (_, state, _) = pipeline.state(gst::ClockTime::ZERO);
        let playing = state == gst::State::Playing;
        let deadline = Instant::now() + EOS_TIMEOUT;
        for b in &self.branches {
            if !playing || b.done.is_set() {
                continue;
            }
            let mut sent = true;
            for l in &b.links {
                sent &= l.queue_sink.send_event(gst::event::Eos::new());
            }
            if sent && !b.done.wait_until(deadline) {
                tracing::warn!(
                    output = self.id,
                    rung = b.rung,
                    "recording did not finish within {EOS_TIMEOUT:?}; closing its file as is"
                );
            }
        }
        for b in self.branches {
            teardown(pipeline, b);
        }
    }
}

/// Builds one rung's branch and links it to the tees (last, so nothing flows into a branch
/// that is not complete and in the pipeline's state).
#[allow(clippy::too_many_arguments)]
fn build_branch(
    pipeline: &gst::Pipeline,
    id: &str,
    rung: &str,
    video_tee: &gst::Element,
    audio_tee: &gst::Element,
    audio_parser: Option<&'static str>,
    writer: RollingWriter,
    output_failed: Arc<AtomicBool>,
) -> Result<Branch> {
    let n = |what: &str| format!("rec-{id}-{what}-{rung}");
    let status = writer.status_handle();
    let writer = Arc::new(Mutex::new(writer));
    let done = Arc::new(Done::default());
    let mut branch = Branch {
        rung: rung.to_owned(),
        elements: Vec::new(),
        links: Vec::new(),
        writer: writer.clone(),
        status,
        done: done.clone(),
        output_failed: output_failed.clone(),
    };
    let res = (|| -> Result<()> {
        let leaky = |what: &str| -> Result<gst::Element> {
            let q = queue(Some(&n(what)), QUEUE_TIME)?;
            q.set_property_from_str("leaky", "downstream");
            Ok(q)
        };
        let vq = leaky("vq")?;
        let aq = leaky("aq")?;
        let vparse = parser_for(video_tee)
            .map(|f| make(f, Some(&n("vparse"))))
            .transpose()?;
        let aparse = audio_parser
            .map(|f| make(f, Some(&n("aparse"))))
            .transpose()?;
        let mux = make("isofmp4mux", Some(&n("mux")))?;
        mux.set_property("fragment-duration", FRAGMENT.nseconds());
        mux.set_property_from_str("header-update-mode", "caps");
        mux.set_property("send-force-keyunit", false);
        let sink = gst_app::AppSink::builder()
            .name(n("sink"))
            .sync(false)
            .async_(false)
            .buffer_list(true)
            .enable_last_sample(false)
            .build();
        let writer_cb = writer.clone();
        let failed_cb = output_failed.clone();
        let writer_eos = writer.clone();
        let done_eos = done.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    // Never an error flow: a failed recording drops, the room runs on.
                    if let Ok(sample) = sink.pull_sample() {
                        handle_sample(sink, &sample, &writer_cb, &failed_cb);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .eos(move |_| {
                    lock(&writer_eos).finish();
                    done_eos.set();
                })
                .build(),
        );

        let mut video_chain = vec![vq.clone()];
        video_chain.extend(vparse);
        let mut audio_chain = vec![aq.clone()];
        audio_chain.extend(aparse);
        let sink_el: gst::Element = sink.upcast();
        branch.elements.extend(video_chain.iter().cloned());
        branch.elements.extend(audio_chain.iter().cloned());
        branch.elements.push(mux.clone());
        branch.elements.push(sink_el.clone());
        for e in &branch.elements {
            pipeline
                .add(e)
                .with_context(|| format!("cannot add element {} to the pipeline", e.name()))?;
        }
        gst::Element::link_many(&video_chain)?;
        gst::Element::link_many(&audio_chain)?;
        video_chain
            .last()
            .context("video chain")?
            .link(&mux)
            .context("cannot link the video to isofmp4mux")?;
        audio_chain
            .last()
            .context("audio chain")?
            .link(&mux)
            .context("cannot link the audio to isofmp4mux")?;
        mux.link(&sink_el)?;
        // Downstream first, so each element is running before data reaches it.
        for e in branch.elements.iter().rev() {
            e.sync_state_with_parent()
                .with_context(|| format!("{} does not follow the pipeline's state", e.name()))?;
        }
        for (tee, q) in [(video_tee, &vq), (audio_tee, &aq)] {
            let queue_sink = q.static_pad("sink").context("queue sink pad")?;
            let tee_pad = tee
                .request_pad_simple("src_%u")
                .with_context(|| format!("tee {} gives no pad", tee.name()))?;
            branch.links.push(TeeLink {
                tee: tee.clone(),
                tee_pad: tee_pad.clone(),
                queue_sink: queue_sink.clone(),
            });
            tee_pad
                .link(&queue_sink)
                .with_context(|| format!("cannot link tee {} to {}", tee.name(), q.name()))?;
        }
        Ok(())
    })();
    match res {
        Ok(()) => Ok(branch),
        Err(e) => {
            teardown(pipeline, branch);
            Err(e)
        }
    }
}

/// Unlinks a tee pad from the branch when the pad is idle (bounded wait; unlinks anyway after
/// it).
fn unlink_when_idle(tee_pad: &gst::Pad, queue_sink: &gst::Pad) {
    if !tee_pad.is_linked() {
        return;
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let sink = queue_sink.clone();
    let probe = tee_pad.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
        let _ = pad.unlink(&sink);
        let _ = tx.try_send(());
        gst::PadProbeReturn::Remove
    });
    if probe.is_some() && rx.recv_timeout(UNLINK_TIMEOUT).is_err() {
        tracing::warn!(pad = %tee_pad.name(), "tee pad never idle; unlinking anyway");
        let _ = tee_pad.unlink(queue_sink);
    }
}

/// Takes a branch out of the pipeline: unlinked and released from the tees, elements to NULL
/// and removed, files closed.
fn teardown(pipeline: &gst::Pipeline, b: Branch) {
    for l in &b.links {
        unlink_when_idle(&l.tee_pad, &l.queue_sink);
        l.tee.release_request_pad(&l.tee_pad);
    }
    for e in &b.elements {
        let _ = e.set_state(gst::State::Null);
    }
    for e in &b.elements {
        if e.parent()
            .is_some_and(|p| &p == pipeline.upcast_ref::<gst::Object>())
        {
            let _ = pipeline.remove(e);
        }
    }
    lock(&b.writer).finish();
    b.done.set();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    const INIT: &[u8] = b"\0\0\0\x10ftypiso6\0\0\0\0\0\0\0\x08moov";
    const SEG: Duration = Duration::from_secs(2);

    fn t0() -> SystemTime {
        // 2024-02-29T12:34:56Z
        UNIX_EPOCH + Duration::from_secs(1_709_210_096)
    }

    fn frag(i: u8, keyframe: bool) -> Vec<u8> {
        let mut v = b"\0\0\0\x10moof".to_vec();
        v.extend_from_slice(&[i; 8]);
        v.extend_from_slice(&[0, 0, 0, 9]);
        v.extend_from_slice(b"mdat");
        v.push(if keyframe { b'K' } else { b'd' });
        v
    }

    fn push(w: &mut RollingWriter, i: u8, keyframe: bool, secs: u64) -> Result<(), String> {
        let data = frag(i, keyframe);
        w.push(
            Fragment {
                data: &data,
                duration: Duration::from_secs(1),
                keyframe,
            },
            t0() + Duration::from_secs(secs),
        )
    }

    fn writer(dir: &Path, storage: Arc<dyn Storage>) -> RollingWriter {
        RollingWriter::new(storage, dir.to_owned(), "rec1", SEG, SYNC_EVERY)
    }

    fn mp4s(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn outputs_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<RecordOutput>();
        send_sync::<Mutex<RollingWriter>>();
    }

    #[test]
    fn dates_and_names() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(utc_stamp(t0()), "20240229T123456Z");
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229T000000Z"
        );
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
            "20991231T235959Z"
        );
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(1_735_689_599)),
            "20241231T235959Z"
        );
        assert_eq!(
            file_name(t0(), "rec1", 7),
            "20240229T123456Z-rec1-00007.mp4"
        );
        assert_eq!(path_component("720p"), "720p");
        assert_eq!(path_component("a/b c"), "a_b_c");
        assert_eq!(path_component(".."), "__");
        assert_eq!(path_component(""), "_");
        assert_eq!(path_component("été"), "_t_");
    }

    #[test]
    fn every_file_is_init_plus_whole_fragments_and_rolls_only_on_keyframes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("room/720p");
        let mut w = writer(&dir, Arc::new(FsStorage));
        // Fragments before any init cannot be written.
        push(&mut w, 0, true, 0).unwrap();
        assert!(w.status().files.is_empty());
        w.set_init(INIT);
        // key(1s) key(2s) | delta: not a roll point although 2 s are in | key → file 2.
        push(&mut w, 1, true, 0).unwrap();
        push(&mut w, 2, true, 1).unwrap();
        push(&mut w, 3, false, 2).unwrap();
        push(&mut w, 4, true, 3).unwrap();
        push(&mut w, 5, false, 4).unwrap();
        push(&mut w, 6, true, 5).unwrap();
        // File 3 gets a fragment, then EOS.
        push(&mut w, 7, true, 6).unwrap();
        w.finish();
        assert_eq!(w.state(), RecordState::Finished);
        // Nothing after finishing.
        push(&mut w, 8, true, 7).unwrap();

        let files = mp4s(&dir);
        let st = w.status();
        assert_eq!(st.files, files, "status lists the files made, in order");
        assert_eq!(files.len(), 3, "{files:?}");
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "20240229T123456Z-rec1-00001.mp4",
                "20240229T123459Z-rec1-00002.mp4",
                "20240229T123501Z-rec1-00003.mp4",
            ]
        );
        let expect = |frags: &[(u8, bool)]| {
            let mut v = INIT.to_vec();
            for &(i, k) in frags {
                v.extend(frag(i, k));
            }
            v
        };
        assert_eq!(
            std::fs::read(&files[0]).unwrap(),
            expect(&[(1, true), (2, true), (3, false)])
        );
        assert_eq!(
            std::fs::read(&files[1]).unwrap(),
            expect(&[(4, true), (5, false)])
        );
        assert_eq!(
            std::fs::read(&files[2]).unwrap(),
            expect(&[(6, true), (7, true)])
        );
        assert_eq!(st.fragments, 7);
        let on_disk: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert_eq!(st.bytes_written, on_disk);
        // No hidden leftovers.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
    }

    #[test]
    fn a_new_init_starts_a_new_file_an_identical_one_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = writer(tmp.path(), Arc::new(FsStorage));
        w.set_init(INIT);
        push(&mut w, 1, true, 0).unwrap();
        w.set_init(INIT);
        push(&mut w, 2, false, 1).unwrap();
        assert_eq!(w.status().files.len(), 1);
        let init2 = b"\0\0\0\x10ftypiso6\0\0\0\0\0\0\0\x08MOOV";
        w.set_init(init2);
        // A caps change rolls even without a keyframe and before the segment is full.
        push(&mut w, 3, false, 2).unwrap();
        drop(w);
        let files = mp4s(tmp.path());
        assert_eq!(files.len(), 2);
        let second = std::fs::read(&files[1]).unwrap();
        assert!(second.starts_with(init2));
        assert_eq!(&second[init2.len()..], frag(3, false).as_slice());
    }

    #[test]
    fn names_taken_by_an_earlier_run_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let taken = tmp.path().join(file_name(t0(), "rec1", 1));
        std::fs::write(&taken, b"earlier").unwrap();
        let mut w = writer(tmp.path(), Arc::new(FsStorage));
        w.set_init(INIT);
        push(&mut w, 1, true, 0).unwrap();
        assert_eq!(std::fs::read(&taken).unwrap(), b"earlier");
        assert_eq!(
            w.status().files,
            [tmp.path().join(file_name(t0(), "rec1", 2))]
        );
    }

    /// Real files, with an I/O error injected on the n-th append (counting from 1).
    struct FailingStorage {
        appends: Arc<AtomicUsize>,
        fail_at: usize,
        errno: i32,
        syncs: Arc<AtomicUsize>,
    }

    struct FailingFile {
        inner: File,
        appends: Arc<AtomicUsize>,
        fail_at: usize,
        errno: i32,
        syncs: Arc<AtomicUsize>,
    }

    impl Storage for FailingStorage {
        fn create(&self, path: &Path) -> io::Result<Box<dyn RecordFile>> {
            let inner = File::create(path)?;
            Ok(Box::new(FailingFile {
                inner,
                appends: self.appends.clone(),
                fail_at: self.fail_at,
                errno: self.errno,
                syncs: self.syncs.clone(),
            }))
        }
        fn publish(&self, from: &Path, to: &Path) -> io::Result<()> {
            FsStorage.publish(from, to)
        }
        fn discard(&self, path: &Path) {
            FsStorage.discard(path)
        }
    }

    impl RecordFile for FailingFile {
        fn append(&mut self, data: &[u8]) -> io::Result<()> {
            if self.appends.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
                return Err(io::Error::from_raw_os_error(self.errno));
            }
            self.inner.append(data)
        }
        fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
            self.inner.write_at(offset, data)
        }
        fn sync_data(&mut self) -> io::Result<()> {
            self.syncs.fetch_add(1, Ordering::SeqCst);
            self.inner.sync_data()
        }
        fn sync_all(&mut self) -> io::Result<()> {
            self.syncs.fetch_add(1, Ordering::SeqCst);
            self.inner.sync_all()
        }
    }

    fn failing(fail_at: usize, errno: i32) -> (Arc<FailingStorage>, Arc<AtomicUsize>) {
        let appends = Arc::new(AtomicUsize::new(0));
        (
            Arc::new(FailingStorage {
                appends: appends.clone(),
                fail_at,
                errno,
                syncs: Arc::new(AtomicUsize::new(0)),
            }),
            appends,
        )
    }

    #[test]
    fn enospc_mid_file_fails_with_the_reason_and_stops_writing() {
        let tmp = tempfile::tempdir().unwrap();
        let (storage, appends) = failing(3, libc::ENOSPC);
        let mut w = writer(tmp.path(), storage);
        w.set_init(INIT);
        push(&mut w, 1, true, 0).unwrap();
        push(&mut w, 2, false, 1).unwrap();
        let reason = push(&mut w, 3, false, 2).unwrap_err();
        let file = &w.status().files[0];
        assert_eq!(
            reason,
            format!(
                "disk full writing {}: No space left on device (os error 28)",
                file.display()
            )
        );
        let st = w.status();
        assert_eq!(st.state, RecordState::Failed);
        assert_eq!(st.reason.as_deref(), Some(reason.as_str()));
        assert_eq!(st.fragments, 2);
        // Dropped from now on: no more writes, no new file, finish keeps the failure.
        push(&mut w, 4, true, 3).unwrap();
        push(&mut w, 5, true, 9).unwrap();
        w.finish();
        assert_eq!(appends.load(Ordering::SeqCst), 3);
        assert_eq!(w.state(), RecordState::Failed);
        assert_eq!(mp4s(tmp.path()).len(), 1);
        let mut expect = INIT.to_vec();
        expect.extend(frag(1, true));
        expect.extend(frag(2, false));
        assert_eq!(std::fs::read(file).unwrap(), expect);
    }

    #[test]
    fn eacces_on_a_new_file_fails_and_leaves_no_part_file() {
        let tmp = tempfile::tempdir().unwrap();
        // Appends: file 1 = 1 (init+frag) + 1; file 2's first write fails.
        let (storage, _) = failing(3, libc::EACCES);
        let mut w = writer(tmp.path(), storage);
        w.set_init(INIT);
        push(&mut w, 1, true, 0).unwrap();
        push(&mut w, 2, false, 1).unwrap();
        let reason = push(&mut w, 3, true, 2).unwrap_err();
        assert!(reason.starts_with("permission denied writing "), "{reason}");
        assert!(
            reason.contains(".20240229T123458Z-rec1-00002.mp4.part"),
            "{reason}"
        );
        assert!(
            reason.ends_with("Permission denied (os error 13)"),
            "{reason}"
        );
        assert_eq!(w.state(), RecordState::Failed);
        assert_eq!(w.status().files.len(), 1);
        assert_eq!(mp4s(tmp.path()).len(), 1, "the half-made file is removed");
    }

    #[test]
    fn dev_full_is_a_clear_disk_full_failure() {
        struct DevFull;
        impl Storage for DevFull {
            fn create(&self, _: &Path) -> io::Result<Box<dyn RecordFile>> {
                Ok(Box::new(File::options().write(true).open("/dev/full")?))
            }
            fn publish(&self, _: &Path, _: &Path) -> io::Result<()> {
                Ok(())
            }
            fn discard(&self, _: &Path) {}
        }
        let tmp = tempfile::tempdir().unwrap();
        let mut w = writer(tmp.path(), Arc::new(DevFull));
        w.set_init(INIT);
        let reason = push(&mut w, 1, true, 0).unwrap_err();
        assert!(reason.starts_with("disk full writing "), "{reason}");
        assert!(reason.contains("No space left on device"), "{reason}");
        let st = w.status();
        assert_eq!(
            (st.state, st.fragments, st.bytes_written),
            (RecordState::Failed, 0, 0)
        );
    }

    #[test]
    fn an_unusable_directory_fails_at_creation() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let mut w = writer(&file.join("720p"), Arc::new(FsStorage));
        w.set_init(INIT);
        let reason = push(&mut w, 1, true, 0).unwrap_err();
        assert!(reason.starts_with("failed creating "), "{reason}");
        assert!(reason.contains("plain-file/720p/."), "{reason}");
        assert!(reason.contains("Not a directory"), "{reason}");
        assert!(check_dir(&file.join("720p")).is_err());
        let e = check_dir(&file.join("720p")).unwrap_err().to_string();
        assert!(e.contains(&file.join("720p").display().to_string()), "{e}");
    }

    #[test]
    fn syncs_every_few_seconds_of_media_and_on_close() {
        let tmp = tempfile::tempdir().unwrap();
        let (storage, _) = failing(usize::MAX, 0);
        let syncs = storage.syncs.clone();
        let mut w = RollingWriter::new(
            storage,
            tmp.path().to_owned(),
            "rec1",
            Duration::from_secs(3600),
            Duration::from_secs(5),
        );
        w.set_init(INIT);
        // Opening a file syncs once (before it is named).
        push(&mut w, 0, true, 0).unwrap();
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
        for i in 1..=4 {
            push(&mut w, i, false, u64::from(i)).unwrap();
        }
        assert_eq!(syncs.load(Ordering::SeqCst), 1, "4 s unsynced");
        push(&mut w, 5, false, 5).unwrap();
        assert_eq!(syncs.load(Ordering::SeqCst), 2, "5 s: synced");
        for i in 6..=14 {
            push(&mut w, i, false, u64::from(i)).unwrap();
        }
        assert_eq!(syncs.load(Ordering::SeqCst), 3);
        w.finish();
        assert_eq!(syncs.load(Ordering::SeqCst), 4, "closing syncs");
    }

    /// Every write the writer makes, in order, per file.
    #[derive(Clone, Debug)]
    enum Op {
        Append(Vec<u8>),
        WriteAt(u64, Vec<u8>),
    }

    /// Real files, every write recorded as (index of the file in creation order, write).
    #[derive(Default)]
    struct Journal {
        files: AtomicUsize,
        ops: Arc<Mutex<Vec<(usize, Op)>>>,
    }

    struct JournalFile {
        index: usize,
        inner: File,
        ops: Arc<Mutex<Vec<(usize, Op)>>>,
    }

    impl Storage for Journal {
        fn create(&self, path: &Path) -> io::Result<Box<dyn RecordFile>> {
            Ok(Box::new(JournalFile {
                index: self.files.fetch_add(1, Ordering::SeqCst),
                inner: File::create(path)?,
                ops: self.ops.clone(),
            }))
        }
        fn publish(&self, from: &Path, to: &Path) -> io::Result<()> {
            FsStorage.publish(from, to)
        }
        fn discard(&self, path: &Path) {
            FsStorage.discard(path)
        }
    }

    impl RecordFile for JournalFile {
        fn append(&mut self, data: &[u8]) -> io::Result<()> {
            lock(&self.ops).push((self.index, Op::Append(data.to_vec())));
            self.inner.append(data)
        }
        fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
            lock(&self.ops).push((self.index, Op::WriteAt(offset, data.to_vec())));
            self.inner.write_at(offset, data)
        }
        fn sync_data(&mut self) -> io::Result<()> {
            self.inner.sync_data()
        }
        fn sync_all(&mut self) -> io::Result<()> {
            self.inner.sync_all()
        }
    }

    /// Top-level boxes of `data`: (type, complete), stopping at the first one cut short.
    fn top_boxes(data: &[u8]) -> Vec<([u8; 4], bool)> {
        let mut v = Vec::new();
        let mut pos = 0;
        while data.len() - pos >= 8 {
            let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
            assert!(size >= 8, "bad box size");
            let whole = size <= data.len() - pos;
            v.push((kind, whole));
            if !whole {
                break;
            }
            pos += size;
        }
        v
    }

    #[test]
    fn a_file_cut_at_any_byte_holds_only_whole_fragments() {
        let tmp = tempfile::tempdir().unwrap();
        let journal = Journal::default();
        let ops = journal.ops.clone();
        let mut w = writer(tmp.path(), Arc::new(journal));
        w.set_init(INIT);
        // The muxer may put a `styp` in front of the `moof`.
        let mut styp_frag = b"\0\0\0\x0cstypmsdh".to_vec();
        styp_frag.extend(frag(9, true));
        push(&mut w, 1, true, 0).unwrap();
        push(&mut w, 2, false, 1).unwrap();
        w.push(
            Fragment {
                data: &styp_frag,
                duration: Duration::from_secs(1),
                keyframe: false,
            },
            t0(),
        )
        .unwrap();
        push(&mut w, 3, true, 3).unwrap();
        push(&mut w, 4, false, 4).unwrap();
        let files = w.status().files;
        drop(w);
        let ops = lock(&ops).clone();
        assert_eq!(
            files.len(),
            2,
            "two files (rolled at the keyframe after 2 s)"
        );
        let mut checked = 0;
        for (index, file) in files.iter().enumerate() {
            let ops: Vec<&Op> = ops
                .iter()
                .filter(|(i, _)| *i == index)
                .map(|(_, o)| o)
                .collect();
            // The file as the process left it, dying inside op `i` after `cut` of its bytes.
            let mut content: Vec<u8> = Vec::new();
            let mut committed = 0;
            for op in &ops {
                let (at, bytes) = match op {
                    Op::Append(b) => (content.len(), b.clone()),
                    Op::WriteAt(o, b) => (*o as usize, b.clone()),
                };
                for cut in 0..=bytes.len() {
                    let mut state = content.clone();
                    state.resize(state.len().max(at + cut), 0);
                    state[at..at + cut].copy_from_slice(&bytes[..cut]);
                    let boxes = top_boxes(&state);
                    let moofs = boxes.iter().filter(|b| &b.0 == b"moof").count();
                    for (i, (kind, whole)) in boxes.iter().enumerate() {
                        if kind == b"moof" {
                            assert!(*whole, "{}: a moof cut short", file.display());
                            assert_eq!(
                                boxes.get(i + 1),
                                Some(&(*b"mdat", true)),
                                "{}: a moof without its whole mdat",
                                file.display()
                            );
                        }
                    }
                    let done = if cut == bytes.len() && matches!(op, Op::WriteAt(..)) {
                        committed + 1
                    } else {
                        committed
                    };
                    assert_eq!(moofs, done, "{}: committed fragments", file.display());
                    checked += 1;
                }
                if matches!(op, Op::WriteAt(..)) {
                    committed += 1;
                }
                content.resize(content.len().max(at + bytes.len()), 0);
                content[at..at + bytes.len()].copy_from_slice(&bytes);
            }
            assert_eq!(content, std::fs::read(file).unwrap());
            assert!(committed >= 2);
        }
        assert!(checked > 200, "{checked} cuts");
    }

    #[test]
    fn fsstorage_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let e = FsStorage.publish(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).unwrap(), b"b");
    }
}
