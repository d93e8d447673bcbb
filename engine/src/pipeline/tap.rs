//! A tap on a running room: tee → leaky queue → appsink, one per stream, added to a pipeline
//! that may already be playing and removed without disturbing it. Push outputs and WebRTC
//! playback take the room's encoded media this way: the queue is leaky and the appsink never
//! blocks, so a consumer that falls behind loses media instead of holding up the room.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use gst::prelude::*;

use super::queue;

/// How much media the room-side leaky queues hold.
const TAP_QUEUE: gst::ClockTime = gst::ClockTime::from_seconds(1);
/// How long removal waits for a tee pad to be idle before unlinking it anyway.
const UNLINK_TIMEOUT: Duration = Duration::from_secs(1);

struct TeeLink {
    tee: gst::Element,
    tee_pad: gst::Pad,
    queue_sink: gst::Pad,
}

/// The elements a tap adds to the room pipeline.
pub struct Tap {
    elements: Vec<gst::Element>,
    links: Vec<TeeLink>,
}

impl Tap {
    /// One branch per `(tee, stream name, callbacks)`; elements are named
    /// `{prefix}-{stream}-queue` / `-sink`, so the prefix must be unique within the pipeline.
    pub fn build(
        pipeline: &gst::Pipeline,
        prefix: &str,
        streams: Vec<(&gst::Element, &str, gst_app::AppSinkCallbacks)>,
    ) -> Result<Tap> {
        let mut tap = Tap {
            elements: Vec::new(),
            links: Vec::new(),
        };
        let res = (|| -> Result<()> {
            for (tee, name, callbacks) in streams {
                let tee: &gst::Element = tee;
                let q = queue(Some(&format!("{prefix}-{name}-queue")), TAP_QUEUE)?;
                q.set_property_from_str("leaky", "downstream");
                let sink = gst_app::AppSink::builder()
                    .name(format!("{prefix}-{name}-sink"))
                    .sync(false)
                    .async_(false)
                    .enable_last_sample(false)
                    .callbacks(callbacks)
                    .build();
                let sink: gst::Element = sink.upcast();
                for e in [&q, &sink] {
                    pipeline.add(e).with_context(|| {
                        format!(
                            "cannot add {} to the room pipeline (is the id unique?)",
                            e.name()
                        )
                    })?;
                    tap.elements.push(e.clone());
                }
                q.link(&sink)?;
                // Downstream first, so each element runs before data reaches it.
                sink.sync_state_with_parent()
                    .with_context(|| format!("{} does not follow the room's state", sink.name()))?;
                q.sync_state_with_parent()
                    .with_context(|| format!("{} does not follow the room's state", q.name()))?;
                let queue_sink = q.static_pad("sink").context("queue has no sink pad")?;
                let tee_pad = tee
                    .request_pad_simple("src_%u")
                    .with_context(|| format!("tee {} gives no pad", tee.name()))?;
                tap.links.push(TeeLink {
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
            Ok(()) => Ok(tap),
            Err(e) => {
                tap.remove(pipeline);
                Err(e)
            }
        }
    }

    /// Unlinks the branches from their tees (when idle), stops and removes their elements.
    pub fn remove(self, pipeline: &gst::Pipeline) {
        for l in &self.links {
            unlink_when_idle(&l.tee_pad, &l.queue_sink);
            l.tee.release_request_pad(&l.tee_pad);
        }
        for e in &self.elements {
            let _ = e.set_state(gst::State::Null);
        }
        for e in &self.elements {
            if e.parent().as_ref() == Some(pipeline.upcast_ref::<gst::Object>()) {
                let _ = pipeline.remove(e);
            }
        }
    }
}

/// Unlinks a tee pad from the branch when the pad is idle (bounded wait; unlinks anyway after
/// it: the branch's queue never blocks, so the pad is idle within a buffer's push).
fn unlink_when_idle(tee_pad: &gst::Pad, queue_sink: &gst::Pad) {
    if !tee_pad.is_linked() {
        return;
    }
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    let sink = queue_sink.clone();
    let probe = tee_pad.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
        let _ = pad.unlink(&sink);
        let _ = tx.try_send(());
        gst::PadProbeReturn::Remove
    });
    if probe.is_some() && rx.recv_timeout(UNLINK_TIMEOUT).is_err() {
        tracing::warn!(pad = %tee_pad.name(), "tee pad never idle; unlinking anyway");
    }
    if tee_pad.is_linked() {
        let _ = tee_pad.unlink(queue_sink);
    }
}
