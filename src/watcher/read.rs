//! What programs read: live session snapshots, and an async stream of the events
//! a selector selects.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio_stream::Stream;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::events::{Bus, BusStats, Event, Selector};
use crate::state::live::{Aggregator, SessionSnapshot};

/// Query live session state; each call takes a consistent snapshot.
#[derive(Clone)]
pub struct LiveSessions(Arc<Mutex<Aggregator>>);

impl LiveSessions {
    /// Sessions of the aggregator `agg` (an engine's [`crate::engine::Engine::aggregator`]).
    pub fn new(agg: Arc<Mutex<Aggregator>>) -> LiveSessions {
        LiveSessions(agg)
    }

    /// Every session still remembered (live, idle, and ended recently), latest activity first.
    pub fn list(&self) -> Vec<SessionSnapshot> {
        let agg = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<SessionSnapshot> = agg.sessions().map(|s| s.snapshot()).collect();
        v.sort_by(|a, b| b.last_ms.cmp(&a.last_ms).then_with(|| a.id.cmp(&b.id)));
        v
    }

    /// How many sessions were forgotten after `--session-retention` (their counts stay
    /// in the metrics; `scan --by session` lists them).
    pub fn forgotten(&self) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).forgotten_sessions()
    }

    /// The session `id` now, if still remembered.
    pub fn get(&self, id: &str) -> Option<SessionSnapshot> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).session(id).map(|s| s.snapshot())
    }
}

/// An async stream of events matching a filter. A subscriber that falls behind
/// skips the oldest events (counted in [`Stats::lagged`](super::Stats::lagged)).
pub struct EventStream {
    inner: BroadcastStream<Arc<Event>>,
    selector: Selector,
    stats: Arc<BusStats>,
}

impl EventStream {
    /// The events `selector` selects that `bus` publishes from now on.
    pub fn new(bus: &Bus, selector: impl Into<Selector>) -> EventStream {
        EventStream::from_receiver(bus.subscribe(), selector.into(), Arc::clone(&bus.stats))
    }

    pub(super) fn from_receiver(
        rx: tokio::sync::broadcast::Receiver<Arc<Event>>,
        selector: Selector,
        stats: Arc<BusStats>,
    ) -> EventStream {
        EventStream { inner: BroadcastStream::new(rx), selector, stats }
    }
}

impl Stream for EventStream {
    type Item = Arc<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(e))) => {
                    if self.selector.matches(&e) {
                        return Poll::Ready(Some(e));
                    }
                }
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(n)))) => {
                    self.stats.lagged.fetch_add(n, Ordering::Relaxed);
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
