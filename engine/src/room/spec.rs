//! What a room is made of, as plain data: canvas and ladder, layout, seats, outputs. Built by
//! the CLI and by the HTTP API, validated here once for both.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::presets::validate::{Checker, Invalid};
use crate::presets::{Beauty, Ladder, Layout};
use crate::source::Source;

#[derive(Clone, Debug, PartialEq)]
pub struct SeatSpec {
    pub id: String,
    pub source: Source,
    /// Slot on the layout; `None` takes the first free one.
    pub slot: Option<usize>,
    /// 0..=2 (1 is unchanged).
    pub volume: f64,
    pub muted: bool,
    pub beauty: Beauty,
    /// Image shown in the seat's tile when it has no picture; without one the tile shows the
    /// background colour.
    pub placeholder: Option<PathBuf>,
}

impl SeatSpec {
    pub fn new(id: impl Into<String>, source: Source) -> Self {
        Self {
            id: id.into(),
            source,
            slot: None,
            volume: 1.0,
            muted: false,
            beauty: Beauty::default(),
            placeholder: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum OutputKind {
    /// `<dir>/<rung>.mp4` for every rung, video plus the mixed audio.
    File { dir: PathBuf },
    /// One rung and the audio pushed to an RTMP(S) or SRT destination (a CDN), retried with
    /// backoff when the destination fails.
    Push {
        target: crate::push::PushTarget,
        rung: String,
    },
    /// Rungs with the audio recorded to fragmented MP4 files rolled every `segment`.
    Record {
        dir: PathBuf,
        rungs: Vec<String>,
        segment: std::time::Duration,
    },
}

impl OutputKind {
    pub fn name(&self) -> &'static str {
        match self {
            OutputKind::File { .. } => "file",
            OutputKind::Push { target, .. } => match target.protocol {
                crate::push::PushProtocol::Rtmp => "rtmp",
                crate::push::PushProtocol::Srt => "srt",
            },
            OutputKind::Record { .. } => "record",
        }
    }
}

/// Longest recording file, minutes.
pub const MAX_SEGMENT_MINUTES: u64 = 24 * 60;

/// Checks an output against the ladder it would take rungs from.
pub fn check_output(c: &mut Checker, prefix: &str, o: &OutputSpec, ladder: &Ladder) {
    c.name(format!("{prefix}.id"), &o.id);
    let names: Vec<&str> = ladder.rungs.iter().map(|r| r.name.as_str()).collect();
    let known = |c: &mut Checker, field: String, rung: &str| {
        if !names.contains(&rung) {
            c.fail(
                field,
                format!(
                    "{rung:?} is not a rung of this room (allowed: {})",
                    names.join(", ")
                ),
            );
        }
    };
    match &o.kind {
        OutputKind::File { .. } => {}
        OutputKind::Push { rung, .. } => {
            known(c, format!("{prefix}.rung"), rung);
            use crate::presets::ladder::{AudioCodec, VideoCodec};
            if ladder.video.codec != VideoCodec::H264 || ladder.audio.codec != AudioCodec::Aac {
                c.fail(
                    format!("{prefix}.kind"),
                    format!(
                        "push outputs carry H.264 video and AAC audio; this room's ladder is {:?} + {:?}",
                        ladder.video.codec, ladder.audio.codec
                    ),
                );
            }
        }
        OutputKind::Record { rungs, segment, .. } => {
            if rungs.is_empty() {
                c.fail(format!("{prefix}.rungs"), "must name at least one rung");
            }
            let mut seen = HashSet::new();
            for (i, r) in rungs.iter().enumerate() {
                known(c, format!("{prefix}.rungs[{i}]"), r);
                if !seen.insert(r) {
                    c.fail(
                        format!("{prefix}.rungs[{i}]"),
                        format!("{r:?} is listed twice"),
                    );
                }
            }
            let minutes = segment.as_secs() / 60;
            if segment.as_secs() % 60 != 0 || !(1..=MAX_SEGMENT_MINUTES).contains(&minutes) {
                c.fail(
                    format!("{prefix}.segment_minutes"),
                    format!(
                        "{:?} is out of range (allowed 1..={MAX_SEGMENT_MINUTES} whole minutes)",
                        segment
                    ),
                );
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutputSpec {
    pub id: String,
    pub kind: OutputKind,
}

#[derive(Clone, Debug)]
pub struct RoomSpec {
    pub id: String,
    pub ladder: Ladder,
    pub layout: Layout,
    pub seats: Vec<SeatSpec>,
    pub outputs: Vec<OutputSpec>,
    /// Live rooms run against the clock (servers, and `showmix mix` on endless sources);
    /// offline rooms run as fast as the machine allows (encode tests on files).
    pub live: bool,
    pub timing: super::SeatTiming,
    /// Retry schedule of push outputs whose destination fails.
    pub push_backoff: crate::push::Backoff,
    /// Package the ladder as LL-HLS (served by `showmix serve` under `/live/{room}/`).
    pub hls: bool,
}

/// Errors that are the caller's: the API maps them to 409 (conflicts) or 422 (values).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("{0}")]
    Conflict(String),
}

pub const MAX_VOLUME: f64 = 2.0;

/// Checks one seat's own values (not how it fits in a room).
pub fn check_seat(c: &mut Checker, prefix: &str, seat: &SeatSpec) {
    c.name(format!("{prefix}.id"), &seat.id);
    c.range_f64(format!("{prefix}.volume"), seat.volume, 0.0, MAX_VOLUME);
    if let Err(e) = seat.beauty.validate() {
        c.nest(&format!("{prefix}.beauty"), e);
    }
    if let Err(e) = seat.source.check() {
        c.fail(format!("{prefix}.source"), e.to_string());
    }
    if let Some(p) = &seat.placeholder
        && !p.is_file()
    {
        c.fail(
            format!("{prefix}.placeholder"),
            format!("image {} does not exist or is not a file", p.display()),
        );
    }
}

impl RoomSpec {
    /// Validates the room and assigns a slot to every seat that has none (first free slot in
    /// seat order).
    pub fn resolve(&mut self) -> Result<(), SpecError> {
        let mut c = Checker::new();
        c.name("id", &self.id);
        if let Err(e) = self.ladder.validate() {
            c.nest("ladder", e);
        }
        if let Err(e) = self.layout.validate() {
            c.nest("layout", e);
        }
        // Seats may sit in slots the current layout does not show (a co-host waiting for the
        // switch to `pk`); they are off-screen until a layout has their slot.
        let slots = crate::presets::layout::MAX_SLOTS;
        if self.seats.len() > slots {
            c.fail(
                "seats",
                format!("{} seats (allowed at most {slots})", self.seats.len()),
            );
        }
        for (i, s) in self.seats.iter().enumerate() {
            check_seat(&mut c, &format!("seats[{i}]"), s);
            if let Some(slot) = s.slot
                && slot >= slots
            {
                c.fail(
                    format!("seats[{i}].slot"),
                    format!("{slot} is out of range (allowed 0..={})", slots - 1),
                );
            }
        }
        for (i, o) in self.outputs.iter().enumerate() {
            check_output(&mut c, &format!("outputs[{i}]"), o, &self.ladder);
        }
        c.finish()?;

        let mut ids = HashSet::new();
        for s in &self.seats {
            if !ids.insert(s.id.as_str()) {
                return Err(SpecError::Conflict(format!(
                    "seat id {:?} is used twice",
                    s.id
                )));
            }
        }
        let mut out_ids = HashSet::new();
        for o in &self.outputs {
            if !out_ids.insert(o.id.as_str()) {
                return Err(SpecError::Conflict(format!(
                    "output id {:?} is used twice",
                    o.id
                )));
            }
        }
        let mut taken = vec![false; slots];
        for s in &self.seats {
            if let Some(slot) = s.slot {
                if taken[slot] {
                    return Err(SpecError::Conflict(format!(
                        "slot {slot} is taken twice (seat {:?})",
                        s.id
                    )));
                }
                taken[slot] = true;
            }
        }
        for s in &mut self.seats {
            if s.slot.is_none() {
                let free = taken.iter().position(|t| !t).ok_or_else(|| {
                    SpecError::Conflict(format!("no free slot for seat {:?}", s.id))
                })?;
                taken[free] = true;
                s.slot = Some(free);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::Presets;

    fn spec(layout: &str, seats: &[(&str, Option<usize>)]) -> RoomSpec {
        let p = Presets::embedded().unwrap();
        RoomSpec {
            id: "r1".into(),
            ladder: p.ladder("showroom-720p").unwrap(),
            layout: p.layout(layout).unwrap(),
            seats: seats
                .iter()
                .map(|(id, slot)| SeatSpec {
                    slot: *slot,
                    ..SeatSpec::new(*id, Source::parse("test:red").unwrap())
                })
                .collect(),
            outputs: vec![],
            live: false,
            timing: Default::default(),
            push_backoff: Default::default(),
            hls: false,
        }
    }

    #[test]
    fn assigns_free_slots_in_order() {
        let mut s = spec("grid-4", &[("a", Some(2)), ("b", None), ("c", None)]);
        s.resolve().unwrap();
        let slots: Vec<usize> = s.seats.iter().map(|s| s.slot.unwrap()).collect();
        assert_eq!(slots, [2, 0, 1]);
    }

    #[test]
    fn seats_beyond_the_layout_wait_off_screen() {
        let mut s = spec("pk", &[("a", None), ("b", None), ("c", None)]);
        s.resolve().unwrap();
        assert_eq!(s.seats[2].slot, Some(2));
    }

    #[test]
    fn slot_out_of_range_and_bad_id() {
        let mut s = spec("pk", &[("a", Some(16)), ("b/../x", None)]);
        let e = s.resolve().unwrap_err().to_string();
        assert!(
            e.contains("seats[0].slot: 16 is out of range (allowed 0..=15)"),
            "{e}"
        );
        assert!(e.contains("seats[1].id"), "{e}");
    }

    #[test]
    fn conflicts() {
        let mut s = spec("pk", &[("a", Some(1)), ("b", Some(1))]);
        assert!(matches!(s.resolve(), Err(SpecError::Conflict(_))));
        let mut s = spec("pk", &[("a", None), ("a", None)]);
        assert!(matches!(s.resolve(), Err(SpecError::Conflict(_))));
    }

    #[test]
    fn volume_range() {
        let mut s = spec("pk", &[("a", None)]);
        s.seats[0].volume = 2.5;
        let e = s.resolve().unwrap_err().to_string();
        assert!(
            e.contains("seats[0].volume: 2.5 is out of range (allowed 0..=2)"),
            "{e}"
        );
    }
}
