//! Realtime events: what sessions do, as it happens.
//!
//! In: facts the aggregator accepted (deduplicated, so an event is never sent
//! twice for the same response or tool call) and lifecycle changes from its
//! ticks. Out: immutable, serializable [`Event`]s on a [`Bus`]: a bounded
//! broadcast channel (a subscriber that falls behind loses the oldest events
//! and is told how many, it never makes memory grow) plus a bounded ring of
//! recent events for `Last-Event-ID` resumption.
//!
//! Events carry ids, names, counts and times. Text (prompts, replies, tool
//! input and output, command lines and file paths) only when the consumer
//! asked for it ([`Detail`]).
//!
//! Programs usually get events through [`SessionWatcher`](crate::watcher::SessionWatcher);
//! a [`Bus`] can also be fed and read directly:
//!
//! ```
//! use claude_sessions::events::{Bus, Event, Filter, Kind};
//!
//! let bus = Bus::new(16, 100);
//! let mut rx = bus.subscribe();
//! let idle = |session: &str| Event {
//!     id: 0, // numbered by the bus
//!     ts_ms: 1_700_000_000_000,
//!     session_id: session.into(),
//!     project: "app".into(),
//!     agent_id: None,
//!     trace_id: None,
//!     span_id: None,
//!     kind: Kind::SessionIdle {},
//! };
//! assert_eq!(bus.publish(idle("s1")), 1);
//! assert_eq!(bus.publish(idle("s2")), 2);
//! assert_eq!(rx.try_recv().unwrap().session_id, "s1");
//! // A client that saw event 1 resumes after it (SSE `Last-Event-ID`).
//! let (missed, gap) = bus.since(1);
//! assert_eq!((missed.len(), gap), (1, false));
//! let only_s2 = Filter::from_pairs([("session", "s2")]).unwrap();
//! assert!(only_s2.matches(&missed[0]));
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::transcript::entry::Millis;

mod kind;
mod select;
pub use kind::{EndReason, Kind, Usage};
pub use select::{EventKind, Selector};

/// One thing that happened in a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number on this bus (SSE `id`), increasing.
    pub id: u64,
    /// Transcript time (ms since the epoch) of the line, or of the tick for lifecycle events.
    pub ts_ms: Millis,
    /// The session (`sessionId`); empty for [`Kind::Error`].
    pub session_id: String,
    /// The session's `project` label, as on the metrics (for usage: the project where
    /// the response was first counted); empty for [`Kind::Error`].
    pub project: String,
    /// The sub-agent a line came from (`None`: the main conversation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The trace of the turn the event belongs to (32 hex digits), when OTLP traces are on
    /// and the turn is traced: the id its spans carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The span the event belongs to (16 hex digits): the tool call's span for tool events,
    /// else the turn's root span. Set with `trace_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// What happened, with its fields (serialized flat, with a `type` field).
    #[serde(flatten)]
    pub kind: Kind,
}

pub use crate::rules::tool::ToolCategory;

/// How much text events carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Detail {
    /// Tool summaries: the command, file path, URL or pattern of a call.
    pub summaries: bool,
    /// Prompt text, tool inputs and outputs (capped at `max_bytes`).
    pub content: bool,
    /// Each text is cut to this many bytes (at a character boundary; at least 16).
    pub max_bytes: usize,
}

/// A predicate over events; all parts must hold (empty parts hold for all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `project` labels; any of them.
    pub projects: Vec<String>,
    /// Session ids; any of them.
    pub sessions: Vec<String>,
    /// Kind names ([`Kind::NAMES`]); any of them.
    pub kinds: Vec<String>,
    /// Tool names (`Bash`, `mcp__github__create_issue`) or categories (`shell`, `mcp`, `file_write`…).
    pub tools: Vec<String>,
    /// `Some(true)`: sub-agent events only; `Some(false)`: main conversation only.
    pub subagent: Option<bool>,
}

impl Filter {
    /// Whether `e` passes every part of the filter.
    pub fn matches(&self, e: &Event) -> bool {
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        any(&self.projects, &e.project)
            && any(&self.sessions, &e.session_id)
            && any(&self.kinds, e.kind.name())
            && (self.tools.is_empty()
                || e.kind
                    .tool()
                    .is_some_and(|t| self.tools.iter().any(|x| x == t || x == ToolCategory::of(t).as_str())))
            && self.subagent.is_none_or(|sub| sub == e.agent_id.is_some())
    }

    /// Both must hold.
    pub fn and(mut self, other: &Filter) -> Filter {
        let narrow = |a: &mut Vec<String>, b: &[String]| {
            if a.is_empty() {
                a.extend_from_slice(b);
            } else if !b.is_empty() {
                a.retain(|x| b.contains(x));
                if a.is_empty() {
                    // Disjoint: nothing matches.
                    a.push("\u{0}".into());
                }
            }
        };
        narrow(&mut self.projects, &other.projects);
        narrow(&mut self.sessions, &other.sessions);
        narrow(&mut self.kinds, &other.kinds);
        narrow(&mut self.tools, &other.tools);
        self.subagent = match (self.subagent, other.subagent) {
            (Some(a), Some(b)) if a != b => Some(a), // contradictory: keep one; nothing both
            (a, b) => a.or(b),
        };
        self
    }

    /// Parse `key=value` pairs as in a query string or repeated flags:
    /// `project`, `session`, `type` (or `kind`), `tool`, `agent` (`main`/`subagent`).
    /// Values may be comma-separated.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Filter, String> {
        let mut f = Filter::default();
        for (k, v) in pairs {
            let values = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
            match k {
                "project" => f.projects.extend(values),
                "session" => f.sessions.extend(values),
                "type" | "kind" => {
                    for t in values {
                        if !Kind::NAMES.contains(&t.as_str()) {
                            return Err(format!("unknown event type {t:?}; one of {}", Kind::NAMES.join(", ")));
                        }
                        f.kinds.push(t);
                    }
                }
                "tool" => f.tools.extend(values),
                "agent" => {
                    f.subagent = match v {
                        "main" => Some(false),
                        "subagent" => Some(true),
                        "" | "any" => None,
                        _ => return Err(format!("agent={v:?}: use main, subagent or any")),
                    }
                }
                _ => {}
            }
        }
        Ok(f)
    }
}

/// Where the aggregator sends events (the bus's `publish`). Must not block.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// Counters of the bus, for self-metrics.
#[derive(Debug, Default)]
pub struct BusStats {
    /// Events published since the bus was made.
    pub published: AtomicU64,
    /// Events a slow subscriber missed (summed over subscribers).
    pub lagged: AtomicU64,
    /// Handler panics caught by callback dispatch.
    pub handler_panics: AtomicU64,
}

/// A bounded broadcast of events with a bounded replay ring.
pub struct Bus {
    tx: tokio::sync::broadcast::Sender<Arc<Event>>,
    ring: Mutex<VecDeque<Arc<Event>>>,
    ring_cap: usize,
    next: AtomicU64,
    /// The bus's counters, shared with whoever reports them.
    pub stats: Arc<BusStats>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("next", &self.next).finish()
    }
}

impl Bus {
    /// `capacity`: events a subscriber may fall behind before it lags; `ring`: events kept for resumption.
    pub fn new(capacity: usize, ring: usize) -> Arc<Bus> {
        let (tx, _) = tokio::sync::broadcast::channel(capacity.max(1));
        Arc::new(Bus {
            tx,
            ring: Mutex::new(VecDeque::with_capacity(ring.min(4096))),
            ring_cap: ring.max(1),
            next: AtomicU64::new(1),
            stats: Arc::default(),
        })
    }

    /// Number the event and send it to every subscriber. Never blocks.
    pub fn publish(&self, mut e: Event) -> u64 {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        // Numbered under the ring's lock: the ring stays in id order.
        e.id = self.next.fetch_add(1, Ordering::Relaxed);
        let id = e.id;
        let e = Arc::new(e);
        if ring.len() == self.ring_cap {
            ring.pop_front();
        }
        ring.push_back(Arc::clone(&e));
        drop(ring);
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(e);
        id
    }

    /// The sink to hand to the aggregator.
    pub fn sink(self: &Arc<Bus>) -> EventSink {
        let bus = Arc::clone(self);
        Arc::new(move |e| {
            bus.publish(e);
        })
    }

    /// Receive every event published from now on. A receiver more than `capacity`
    /// events behind loses the oldest and gets `RecvError::Lagged(n)` once.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Events after `last_id` still in the ring, and whether some were already gone.
    pub fn since(&self, last_id: u64) -> (Vec<Arc<Event>>, bool) {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let missed = ring.front().is_some_and(|e| e.id > last_id + 1);
        (ring.iter().filter(|e| e.id > last_id).cloned().collect(), missed)
    }

    /// The id the next event will get.
    pub fn next_id(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }
}

/// A short description of a tool call's input: the command, path, URL or pattern.
pub fn summarize(tool: &str, input: &serde_json::Value, max: usize) -> Option<String> {
    let field = |k: &str| input.get(k).and_then(|v| v.as_str());
    let s = match tool {
        "Bash" => field("command"),
        "Read" | "Write" | "Edit" | "MultiEdit" | "NotebookEdit" | "NotebookRead" => {
            field("file_path").or(field("notebook_path"))
        }
        "Glob" | "Grep" => field("pattern"),
        "WebFetch" => field("url"),
        "WebSearch" => field("query"),
        "Task" | "Agent" => field("description"),
        _ => field("file_path").or(field("path")).or(field("url")).or(field("command")),
    }?;
    let first = s.lines().next().unwrap_or("");
    Some(crate::transcript::entry::cap_text(first, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn ev(kind: Kind, agent: Option<&str>) -> Event {
        Event {
            id: 0,
            ts_ms: 1,
            session_id: "s".into(),
            project: "app".into(),
            agent_id: agent.map(Into::into),
            trace_id: None,
            span_id: None,
            kind,
        }
    }

    pub(super) fn tool(name: &str) -> Kind {
        Kind::ToolUse {
            tool_use_id: "t".into(),
            name: name.into(),
            category: ToolCategory::of(name),
            summary: None,
            input: None,
        }
    }

    #[test]
    fn events_serialize_flat_with_a_type() {
        let json = serde_json::to_value(ev(tool("Bash"), None)).unwrap();
        assert_eq!(json["type"], "tool_use");
        assert_eq!(json["category"], "shell");
        assert_eq!(json["session_id"], "s");
        assert!(json.get("agent_id").is_none() && json.get("summary").is_none());
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, ev(tool("Bash"), None));
        let end = serde_json::to_value(ev(Kind::SessionEnd { reason: EndReason::ProcessExit }, None)).unwrap();
        assert_eq!(end["reason"], "process_exit");
    }

    #[test]
    fn filters_compose() {
        let f = Filter::from_pairs([("tool", "shell,mcp"), ("agent", "main")]).unwrap();
        assert!(f.matches(&ev(tool("Bash"), None)));
        assert!(f.matches(&ev(tool("mcp__github__create_issue"), None)));
        assert!(!f.matches(&ev(tool("Bash"), Some("a1"))), "sub-agent excluded");
        assert!(!f.matches(&ev(tool("Read"), None)));
        assert!(!f.matches(&ev(Kind::SessionIdle {}, None)), "tool filters keep tool events only");
        let g = f.clone().and(&Filter::from_pairs([("tool", "Bash")]).unwrap());
        assert!(!g.matches(&ev(tool("mcp__x__y"), None)), "intersection: {g:?}");
        assert!(Filter::from_pairs([("type", "nope")]).is_err());
        assert!(Filter::default().matches(&ev(Kind::SessionIdle {}, Some("a"))));
    }

    #[test]
    fn the_bus_numbers_events_and_resumes_from_its_ring() {
        let bus = Bus::new(4, 3);
        let mut rx = bus.subscribe();
        for _ in 0..5 {
            bus.publish(ev(Kind::SessionIdle {}, None));
        }
        let (after2, missed) = bus.since(2);
        assert_eq!(after2.iter().map(|e| e.id).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert!(!missed);
        assert!(bus.since(0).1, "event 1 fell out of the ring");
        // The subscriber never read: it lags by one and then gets the newest four.
        assert!(matches!(rx.try_recv(), Err(tokio::sync::broadcast::error::TryRecvError::Lagged(1))));
        assert_eq!(rx.try_recv().unwrap().id, 2);
    }

    #[test]
    fn summaries_pick_the_telling_field() {
        let v = serde_json::json!({"command": "cargo test\n--all", "description": "x"});
        assert_eq!(summarize("Bash", &v, 100).as_deref(), Some("cargo test"));
        let v = serde_json::json!({"file_path": "/w/app/src/main.rs", "content": "..."});
        assert_eq!(summarize("Write", &v, 100).as_deref(), Some("/w/app/src/main.rs"));
        assert_eq!(summarize("TodoWrite", &serde_json::json!({"todos": []}), 100), None);
    }
}
