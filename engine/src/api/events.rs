//! `GET /v1/events`: server-sent events for the operator console (and any other client that
//! sends the bearer token; browsers read it with `fetch()`, since `EventSource` cannot send an
//! `Authorization` header and the token must never travel in a URL).
//!
//! One ticker computes the snapshot once a second for every subscriber together (the JSON is
//! built once and the same bytes go to each stream); nothing is built while nobody listens. A
//! stream gets `retry`, the history of the last minutes and the latest snapshot at once, then
//! each new one. Subscribers are capped; a stream is counted until its body is dropped (the
//! client went away), and every stream ends when the server shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use tokio::sync::watch;

use super::model::ApiError;

/// At most this many event streams at once (each console tab holds one).
pub const MAX_SUBSCRIBERS: usize = 64;

/// How often the ticker runs.
pub const TICK: Duration = Duration::from_secs(1);

/// One server-sent event: `event: <name>` and the data on one line (JSON has no raw newlines).
pub fn frame(event: &str, data: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(data.len() + event.len() + 16);
    b.extend_from_slice(b"event: ");
    b.extend_from_slice(event.as_bytes());
    b.extend_from_slice(b"\ndata: ");
    // A newline in the data would end the field: JSON from serde_json has none, but be sure.
    b.extend(data.iter().map(|&c| if c == b'\n' { b' ' } else { c }));
    b.extend_from_slice(b"\n\n");
    Bytes::from(b)
}

/// The latest snapshot event and when it was made.
#[derive(Clone, Debug)]
pub struct Latest {
    pub at: Instant,
    pub event: Bytes,
}

pub struct EventHub {
    rx: watch::Receiver<Option<Latest>>,
    subscribers: Arc<AtomicUsize>,
    max: usize,
}

/// The ticker's end of the hub: publishing, and ending every stream when dropped.
pub struct Publisher {
    tx: watch::Sender<Option<Latest>>,
    subscribers: Arc<AtomicUsize>,
}

impl Publisher {
    pub fn subscribers(&self) -> usize {
        self.subscribers.load(SeqCst)
    }

    pub fn publish(&self, event: Bytes) {
        self.tx.send_replace(Some(Latest {
            at: Instant::now(),
            event,
        }));
    }
}

/// Counts a stream while it lives.
pub struct Subscription(Arc<AtomicUsize>);

impl Drop for Subscription {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

pub type EventBody = StreamBody<
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>,
>;

impl EventHub {
    pub fn new(max: usize) -> (EventHub, Publisher) {
        let (tx, rx) = watch::channel(None);
        let subscribers = Arc::new(AtomicUsize::new(0));
        (
            EventHub {
                rx,
                subscribers: subscribers.clone(),
                max,
            },
            Publisher { tx, subscribers },
        )
    }

    pub fn subscribers(&self) -> usize {
        self.subscribers.load(SeqCst)
    }

    /// The live count of streams, for metrics.
    pub fn counter(&self) -> Arc<AtomicUsize> {
        self.subscribers.clone()
    }

    /// Takes a place among the subscribers, or 503 when they are all taken.
    pub fn subscribe(&self) -> Result<Subscription, ApiError> {
        let prev = self.subscribers.fetch_add(1, SeqCst);
        if prev >= self.max {
            self.subscribers.fetch_sub(1, SeqCst);
            return Err(ApiError::unavailable(format!(
                "at the limit of {} event streams: close a console first",
                self.max
            )));
        }
        Ok(Subscription(self.subscribers.clone()))
    }

    /// The latest snapshot if it is fresh (made within two ticks).
    pub fn fresh(&self) -> Option<Bytes> {
        self.rx
            .borrow()
            .as_ref()
            .filter(|l| l.at.elapsed() < 2 * TICK)
            .map(|l| l.event.clone())
    }

    /// A stream that sends `prelude` and then every snapshot published after this call.
    pub fn stream(&self, sub: Subscription, prelude: Vec<Bytes>) -> EventBody {
        let mut rx = self.rx.clone();
        rx.mark_unchanged();
        let prelude: std::collections::VecDeque<Bytes> = prelude.into();
        let s = futures::stream::unfold((rx, sub, prelude), |(mut rx, sub, mut pre)| async move {
            if let Some(b) = pre.pop_front() {
                return Some((Ok(Frame::data(b)), (rx, sub, pre)));
            }
            // Err: the ticker ended (shutdown): the stream ends.
            rx.changed().await.ok()?;
            let b = rx.borrow_and_update().as_ref().map(|l| l.event.clone())?;
            Some((Ok(Frame::data(b)), (rx, sub, pre)))
        });
        StreamBody::new(Box::pin(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use http_body_util::BodyExt;

    #[test]
    fn frames_are_single_line_events() {
        assert_eq!(
            &frame("rooms", b"{\"a\":1}")[..],
            b"event: rooms\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(&frame("x", b"a\nb")[..], b"event: x\ndata: a b\n\n");
    }

    #[tokio::test]
    async fn subscribers_are_capped_and_released_on_drop() {
        let (hub, publisher) = EventHub::new(2);
        let a = hub.subscribe().unwrap();
        let b = hub.subscribe().unwrap();
        assert_eq!(hub.subscribe().err().map(|e| e.status), Some(503));
        assert_eq!(publisher.subscribers(), 2);
        let body = hub.stream(a, vec![]);
        drop(body);
        drop(b);
        assert_eq!(publisher.subscribers(), 0);
        assert!(hub.subscribe().is_ok());
    }

    async fn next(s: &mut EventBody) -> Option<Bytes> {
        s.frame().await.map(|f| f.unwrap().into_data().unwrap())
    }

    #[tokio::test]
    async fn one_published_snapshot_reaches_every_stream_then_shutdown_ends_them() {
        let (hub, publisher) = EventHub::new(8);
        publisher.publish(Bytes::from_static(b"old"));
        assert_eq!(hub.fresh().as_deref(), Some(&b"old"[..]));
        let mut s1 = hub.stream(hub.subscribe().unwrap(), vec![Bytes::from_static(b"hi")]);
        let mut s2 = hub.stream(hub.subscribe().unwrap(), vec![]);
        assert_eq!(next(&mut s1).await.as_deref(), Some(&b"hi"[..]));
        publisher.publish(Bytes::from_static(b"new"));
        assert_eq!(next(&mut s1).await.as_deref(), Some(&b"new"[..]));
        assert_eq!(
            next(&mut s2).await.as_deref(),
            Some(&b"new"[..]),
            "not the old one"
        );
        drop(publisher);
        assert_eq!(next(&mut s1).await, None);
        assert_eq!(s2.into_data_stream().next().await.map(|r| r.is_ok()), None);
        assert_eq!(hub.subscribers(), 0);
    }
}
