//! Per-session event history: what `GET /api/sessions/{id}/events` answers.
//!
//! In: every event published on the [`Bus`] (one subscription, fed by a task of the
//! server's runtime). Out: the latest [`PER_SESSION`] events of each of the
//! [`SESSIONS`] sessions with the most recent events, at most [`TOTAL`] events in all,
//! so that the console can draw the timeline of a session opened after it started. The
//! bus's own replay ring is shared by all sessions (10,000 events): one busy session
//! pushes a quiet one's past out of it, this does not.
//!
//! Bounded like everything fed by the bus: the events are the bus's own `Arc`s (no
//! copy), the least recently active session is forgotten first, and a subscription that
//! lags catches up from the bus's ring; what neither holds any more is marked
//! `truncated`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use crate::events::{Bus, Event, Filter};

/// Events kept per session (the latest).
pub const PER_SESSION: usize = 5000;
/// Sessions kept (those with the latest events).
pub const SESSIONS: usize = 64;
/// Events kept in all.
pub const TOTAL: usize = 100_000;

/// The recent events of the recent sessions.
#[derive(Debug)]
pub struct History {
    inner: Mutex<Inner>,
    bus: Arc<Bus>,
    /// The subscription, made at [`History::new`] (before any event is published) and
    /// taken by [`History::start`].
    rx: Mutex<Option<Receiver<Arc<Event>>>>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<String, Kept>,
    total: usize,
    /// The latest event id seen.
    last_id: u64,
}

#[derive(Debug, Default)]
struct Kept {
    events: VecDeque<Arc<Event>>,
    /// Some of the session's events are no longer here.
    truncated: bool,
}

/// One session's kept events, as `GET /api/sessions/{id}/events` answers.
#[derive(Debug, serde::Serialize)]
pub struct Page {
    /// The session.
    pub session_id: String,
    /// Its kept events, oldest first.
    pub events: Vec<Arc<Event>>,
    /// The latest event id the history had seen (of any session): resume `/api/events` after it.
    pub last_event_id: u64,
    /// Earlier events of the session are missing (over [`PER_SESSION`], or lost before they were kept).
    pub truncated: bool,
    /// Only for a [`Select`]ed page: kept events that match it precede its first event (ask
    /// again with `before` = that event's id). Absent from the plain answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub more: Option<bool>,
}

/// A page of a session's kept events: `GET /api/sessions/{id}/events?limit=N&before=ID&type=…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Select {
    /// At most this many (the latest that match).
    pub limit: Option<usize>,
    /// Only events with a smaller id.
    pub before: Option<u64>,
    /// Only events of these types, tools or lanes (`type`, `tool`, `agent` as in `/api/events`).
    pub filter: Filter,
}

impl Select {
    /// From query pairs: `None` when none of `limit`, `before`, `type`/`kind`, `tool`, `agent`
    /// is given (the plain answer); an error for a bad value (`limit` must be at least 1,
    /// `before` an event id, `type` a known event type).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Result<Option<Select>, String> {
        let mut sel = Select::default();
        let mut any = false;
        for (k, v) in pairs.clone() {
            match k {
                "limit" => {
                    sel.limit =
                        Some(v.parse().ok().filter(|n| *n > 0).ok_or(format!("limit={v:?}: a whole number >= 1"))?);
                }
                "before" => sel.before = Some(v.parse().map_err(|_| format!("before={v:?}: an event id"))?),
                "type" | "kind" | "tool" | "agent" => {}
                _ => continue,
            }
            any = true;
        }
        let only = pairs.into_iter().filter(|(k, _)| matches!(*k, "type" | "kind" | "tool" | "agent"));
        sel.filter = Filter::from_pairs(only)?;
        Ok(any.then_some(sel))
    }
}

impl History {
    /// A history subscribed to `bus` from now on; [`History::start`] starts reading.
    pub fn new(bus: &Arc<Bus>) -> Arc<History> {
        Arc::new(History { inner: Mutex::default(), bus: Arc::clone(bus), rx: Mutex::new(Some(bus.subscribe())) })
    }

    /// Read the subscription on the current tokio runtime until the bus closes. Once.
    pub fn start(self: &Arc<History>) {
        let Some(mut rx) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) => me.record(e),
                    Err(RecvError::Lagged(_)) => {
                        // What the ring still has; events older than it are lost to us.
                        let last = me.inner.lock().unwrap_or_else(|p| p.into_inner()).last_id;
                        let (missed, gap) = me.bus.since(last);
                        if gap {
                            me.mark_all_truncated();
                        }
                        for e in missed {
                            me.record(e);
                        }
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    /// Keep `e` (events already seen, by id, are ignored: a catch-up may repeat some).
    pub fn record(&self, e: Arc<Event>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if e.id <= inner.last_id {
            return;
        }
        inner.last_id = e.id;
        if e.session_id.is_empty() {
            return;
        }
        let kept = inner.sessions.entry(e.session_id.clone()).or_default();
        kept.events.push_back(e);
        let mut dropped = 0;
        if kept.events.len() > PER_SESSION {
            kept.events.pop_front();
            kept.truncated = true;
            dropped = 1;
        }
        inner.total = inner.total + 1 - dropped;
        while inner.sessions.len() > SESSIONS || inner.total > TOTAL {
            // The session whose latest event is oldest goes first.
            let Some(oldest) = inner
                .sessions
                .iter()
                .min_by_key(|(_, k)| k.events.back().map_or(0, |e| e.id))
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            if let Some(k) = inner.sessions.remove(&oldest) {
                inner.total -= k.events.len();
            }
        }
    }

    fn mark_all_truncated(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for k in inner.sessions.values_mut() {
            k.truncated = true;
        }
    }

    /// The kept events of `session` (an empty page, marked truncated, for a session not kept).
    pub fn page(&self, session: &str) -> Page {
        self.select(session, None)
    }

    /// The kept events of `session` that `sel` picks, oldest first (all of them for `None`,
    /// as [`History::page`]): those before `sel.before` that match its filter, the latest
    /// `sel.limit` of them; `more` says whether earlier ones match too.
    pub fn select(&self, session: &str, sel: Option<&Select>) -> Page {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let kept = inner.sessions.get(session);
        let all = kept.map(|k| &k.events);
        let (events, more) = match (all, sel) {
            (None, s) => (Vec::new(), s.map(|_| false)),
            (Some(all), None) => (all.iter().cloned().collect(), None),
            (Some(all), Some(s)) => {
                // Kept in id order: the events before `before` are a prefix.
                let end = s.before.map_or(all.len(), |b| all.partition_point(|e| e.id < b));
                let mut older = all.range(..end).rev().filter(|e| s.filter.matches(e));
                let mut events: Vec<Arc<Event>> = older.by_ref().take(s.limit.unwrap_or(usize::MAX)).cloned().collect();
                events.reverse();
                (events, Some(older.next().is_some()))
            }
        };
        Page {
            session_id: session.to_owned(),
            events,
            last_event_id: inner.last_id,
            truncated: kept.is_none_or(|k| k.truncated),
            more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Kind;

    fn ev(bus: &Bus, session: &str) -> u64 {
        bus.publish(Event {
            id: 0,
            ts_ms: 1,
            session_id: session.into(),
            project: "p".into(),
            agent_id: None,
            trace_id: None,
            span_id: None,
            kind: Kind::SessionIdle {},
        })
    }

    #[tokio::test]
    async fn keeps_each_sessions_latest_events_within_bounds() {
        let bus = Bus::new(16, 100);
        let h = History::new(&bus);
        // Published before the task runs: the subscription made at `new` holds them.
        for _ in 0..3 {
            ev(&bus, "a");
        }
        h.start();
        for _ in 0..(PER_SESSION + 10) {
            ev(&bus, "b");
            tokio::task::yield_now().await;
        }
        ev(&bus, "a");
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while h.page("a").events.len() < 4 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("a's events kept");
        let a = h.page("a");
        assert_eq!(a.events.len(), 4);
        assert!(!a.truncated);
        assert!(a.events.windows(2).all(|w| w[0].id < w[1].id));
        let b = h.page("b");
        assert_eq!(b.events.len(), PER_SESSION);
        assert!(b.truncated);
        assert_eq!(b.events.last().unwrap().id, a.events[2].id + PER_SESSION as u64 + 10);
        assert_eq!(a.last_event_id, bus.next_id() - 1);
        assert!(h.page("nobody").truncated && h.page("nobody").events.is_empty());
    }

    #[test]
    fn forgets_the_least_recent_session_first() {
        let bus = Bus::new(16, 100);
        let h = History::new(&bus);
        for i in 0..=SESSIONS {
            let id = ev(&bus, &format!("s{i}"));
            h.record(Arc::clone(&bus.since(id - 1).0[0]));
        }
        assert!(h.page("s0").events.is_empty(), "the oldest went");
        assert_eq!(h.page("s1").events.len(), 1);
        assert_eq!(h.page(&format!("s{SESSIONS}")).events.len(), 1);
    }
}
