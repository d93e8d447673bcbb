//! A room's outputs while it runs: file outputs (set at creation), push outputs to CDNs and
//! recordings (added and removed live). Each branches off the rung tees and the audio tee;
//! push and record branches are built by `crate::push` and `crate::record`, which keep a
//! failing destination or disk away from the room.

use std::path::PathBuf;

use anyhow::{Result, bail};

use super::spec::{OutputKind, OutputSpec};
use crate::push::{Backoff, PushOutput, PushStatus};
use crate::record::{RecordConfig, RecordOutput, RecordStatus};

/// What an output is doing, for the API.
#[derive(Clone, Debug)]
pub enum OutputStatus {
    /// Files written by a file output (final once the room has stopped).
    File {
        files: Vec<PathBuf>,
    },
    Push(PushStatus),
    Record(RecordStatus),
}

/// An output as the API shows it.
#[derive(Clone, Debug)]
pub struct OutputInfo {
    pub spec: OutputSpec,
    pub status: OutputStatus,
}

pub(super) enum Runtime {
    File(Vec<PathBuf>),
    Push(PushOutput),
    Record(RecordOutput),
}

pub(super) struct LiveOutput {
    pub spec: OutputSpec,
    pub runtime: Runtime,
}

impl LiveOutput {
    pub fn info(&self) -> OutputInfo {
        OutputInfo {
            spec: self.spec.clone(),
            status: match &self.runtime {
                Runtime::File(files) => OutputStatus::File {
                    files: files.clone(),
                },
                Runtime::Push(p) => OutputStatus::Push(p.status()),
                Runtime::Record(r) => OutputStatus::Record(r.status()),
            },
        }
    }

    /// Marks the output failed if `element` is one of its own (recordings only: a push
    /// branch in the room is queues and appsinks; its network side has its own pipeline).
    pub fn claim_error(&self, element: &str, error: &str) -> bool {
        match &self.runtime {
            Runtime::Record(r) => r.claim_error(element, error),
            Runtime::File(_) | Runtime::Push(_) => false,
        }
    }

    /// Takes the branch out of the pipeline (push: ends the destination stream; record:
    /// finishes the files). File outputs cannot be removed from a running room.
    pub fn detach(self, pipeline: &gst::Pipeline) {
        match self.runtime {
            Runtime::File(_) => {}
            Runtime::Push(p) => p.detach(pipeline),
            Runtime::Record(r) => r.detach(pipeline),
        }
    }
}

/// The tees outputs branch from.
pub(super) struct Taps<'a> {
    pub room: &'a str,
    pub pipeline: &'a gst::Pipeline,
    /// (rung name, encoded video tee), in ladder order.
    pub rungs: Vec<(String, gst::Element)>,
    pub audio: &'a gst::Element,
    pub backoff: Backoff,
}

impl Taps<'_> {
    fn rung(&self, name: &str) -> Result<gst::Element> {
        match self.rungs.iter().find(|(n, _)| n == name) {
            Some((_, tee)) => Ok(tee.clone()),
            None => bail!("no rung {name:?} in room {}", self.room),
        }
    }

    /// Builds a push or record output. File outputs are built with the pipeline.
    pub fn attach(&self, spec: &OutputSpec) -> Result<LiveOutput> {
        let runtime = match &spec.kind {
            OutputKind::File { .. } => {
                bail!("file outputs are set when the room is created; add a record output instead")
            }
            OutputKind::Push { target, rung } => Runtime::Push(PushOutput::attach(
                self.pipeline,
                &spec.id,
                self.room,
                &self.rung(rung)?,
                self.audio,
                target.clone(),
                self.backoff,
            )?),
            OutputKind::Record {
                dir,
                rungs,
                segment,
            } => {
                let chosen = rungs
                    .iter()
                    .map(|r| Ok((r.clone(), self.rung(r)?)))
                    .collect::<Result<Vec<_>>>()?;
                Runtime::Record(RecordOutput::attach(
                    self.pipeline,
                    &spec.id,
                    self.room,
                    &chosen,
                    self.audio,
                    RecordConfig {
                        dir: dir.clone(),
                        segment: *segment,
                    },
                )?)
            }
        };
        Ok(LiveOutput {
            spec: spec.clone(),
            runtime,
        })
    }
}
