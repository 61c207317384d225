//! Typed, composable selections of events for the library:
//! [`EventKind`] names a kind without its fields, and a [`Selector`] is built
//! from typed constructors that compose with [`Selector::and`],
//! [`Selector::or`] and [`Selector::not`].
//!
//! ```
//! use claude_sessions::events::{EventKind, Selector, ToolCategory};
//!
//! // Shell or file-writing tool calls of the main conversation, in project `app`.
//! let risky = Selector::kind(EventKind::ToolUse)
//!     .and(Selector::category(ToolCategory::Shell).or(Selector::category(ToolCategory::FileWrite)))
//!     .and(Selector::main())
//!     .and(Selector::project("app"));
//! // Everything but the noisy context bookkeeping.
//! let quiet = Selector::kind(EventKind::ContextGrowth).not();
//! # let _ = (risky, quiet);
//! ```

use super::{Event, Filter, Kind, ToolCategory};

/// The kind of an event, without its fields (what [`Kind`] carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A typed prompt or an API response (or a later line of one that adds tokens).
    Message,
    /// A tool call.
    ToolUse,
    /// A tool call's result.
    ToolResult,
    /// A session's first line.
    SessionStart,
    /// No activity for the idle timeout.
    SessionIdle,
    /// Activity again after idleness or end.
    SessionResume,
    /// No activity for the end timeout, or its Claude Code process exited.
    SessionEnd,
    /// A `Task`/`Agent` call started a sub-agent.
    AgentSpawn,
    /// A context compaction.
    Compaction,
    /// An API error in the transcript.
    ApiError,
    /// The main conversation's context changed size.
    ContextGrowth,
    /// A tool call matched a rule.
    RuleMatch,
    /// A tool call waits for a person's decision.
    ApprovalPending,
    /// A pending approval was allowed, denied or expired.
    ApprovalDecided,
    /// A person paused the session.
    SessionPaused,
    /// A paused session was resumed.
    SessionResumed,
    /// A note for Claude was queued.
    NoteQueued,
    /// A queued note was handed to a hook.
    NoteDelivered,
    /// A problem of the watcher itself (never transcript content).
    Error,
}

impl EventKind {
    /// Every kind, in the order of the README's table.
    pub const ALL: [EventKind; 19] = [
        EventKind::Message,
        EventKind::ToolUse,
        EventKind::ToolResult,
        EventKind::SessionStart,
        EventKind::SessionIdle,
        EventKind::SessionResume,
        EventKind::SessionEnd,
        EventKind::AgentSpawn,
        EventKind::Compaction,
        EventKind::ApiError,
        EventKind::ContextGrowth,
        EventKind::RuleMatch,
        EventKind::ApprovalPending,
        EventKind::ApprovalDecided,
        EventKind::SessionPaused,
        EventKind::SessionResumed,
        EventKind::NoteQueued,
        EventKind::NoteDelivered,
        EventKind::Error,
    ];

    /// The `type` name on the wire (`tool_use`, `session_end`, …).
    pub fn name(self) -> &'static str {
        Kind::NAMES[self as usize]
    }

    /// The kind named `name` on the wire.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl Kind {
    /// This event's kind, without its fields.
    pub fn kind(&self) -> EventKind {
        EventKind::from_name(self.name()).expect("every kind has a name")
    }
}

/// Which events a handler or a stream gets: built from typed constructors,
/// combined with [`and`](Selector::and), [`or`](Selector::or) and
/// [`not`](Selector::not). The default selects every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Selector {
    /// Every event.
    #[default]
    All,
    /// Events of one kind.
    Kind(EventKind),
    /// Events of a project (its label, as on `/metrics`).
    Project(String),
    /// Events of one session (sub-agents' events carry their parent's session id).
    Session(String),
    /// Tool events (`tool_use`, `tool_result`, `rule_match`) of a tool, by name.
    Tool(String),
    /// Tool events of a category of tools.
    Category(ToolCategory),
    /// Events of the main conversation (not of a sub-agent).
    Main,
    /// Events of sub-agents.
    Subagent,
    /// Both hold.
    And(Box<Selector>, Box<Selector>),
    /// Either holds.
    Or(Box<Selector>, Box<Selector>),
    /// It does not hold.
    Not(Box<Selector>),
    /// A [`Filter`] (as parsed from a query string or flags) holds.
    Filter(Filter),
}

impl Selector {
    /// Events of kind `k`.
    pub fn kind(k: EventKind) -> Selector {
        Selector::Kind(k)
    }

    /// Events of project `p`.
    pub fn project(p: impl Into<String>) -> Selector {
        Selector::Project(p.into())
    }

    /// Events of session `id`.
    pub fn session(id: impl Into<String>) -> Selector {
        Selector::Session(id.into())
    }

    /// Tool events of the tool named `name` (`Bash`, `mcp__github__create_issue`).
    pub fn tool(name: impl Into<String>) -> Selector {
        Selector::Tool(name.into())
    }

    /// Tool events of a category of tools.
    pub fn category(c: ToolCategory) -> Selector {
        Selector::Category(c)
    }

    /// Events of the main conversation.
    pub fn main() -> Selector {
        Selector::Main
    }

    /// Events of sub-agents.
    pub fn subagent() -> Selector {
        Selector::Subagent
    }

    /// Both this and `other` hold.
    pub fn and(self, other: Selector) -> Selector {
        match (self, other) {
            (Selector::All, o) | (o, Selector::All) => o,
            (a, b) => Selector::And(Box::new(a), Box::new(b)),
        }
    }

    /// This or `other` holds.
    pub fn or(self, other: Selector) -> Selector {
        Selector::Or(Box::new(self), Box::new(other))
    }

    /// This does not hold.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Selector {
        Selector::Not(Box::new(self))
    }

    /// Whether `e` is selected.
    pub fn matches(&self, e: &Event) -> bool {
        match self {
            Selector::All => true,
            Selector::Kind(k) => e.kind.name() == k.name(),
            Selector::Project(p) => e.project == *p,
            Selector::Session(s) => e.session_id == *s,
            Selector::Tool(t) => e.kind.tool() == Some(t.as_str()),
            Selector::Category(c) => e.kind.tool().is_some_and(|t| ToolCategory::of(t) == *c),
            Selector::Main => e.agent_id.is_none(),
            Selector::Subagent => e.agent_id.is_some(),
            Selector::And(a, b) => a.matches(e) && b.matches(e),
            Selector::Or(a, b) => a.matches(e) || b.matches(e),
            Selector::Not(a) => !a.matches(e),
            Selector::Filter(f) => f.matches(e),
        }
    }
}

impl From<EventKind> for Selector {
    fn from(k: EventKind) -> Selector {
        Selector::Kind(k)
    }
}

impl From<Filter> for Selector {
    fn from(f: Filter) -> Selector {
        Selector::Filter(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::events::tests::tool as tool_use;

    fn ev(agent: Option<&str>, kind: Kind) -> Event {
        crate::events::tests::ev(kind, agent)
    }

    #[test]
    fn kinds_and_their_names_agree() {
        assert_eq!(EventKind::ALL.len(), Kind::NAMES.len());
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_name(k.name()), Some(k));
        }
        assert_eq!(tool_use("Bash").kind(), EventKind::ToolUse);
    }

    #[test]
    fn selectors_compose() {
        let shell_main =
            Selector::kind(EventKind::ToolUse).and(Selector::category(ToolCategory::Shell)).and(Selector::main());
        assert!(shell_main.matches(&ev(None, tool_use("Bash"))));
        assert!(!shell_main.matches(&ev(Some("a1"), tool_use("Bash"))));
        assert!(!shell_main.matches(&ev(None, tool_use("Read"))));
        let either = Selector::tool("Read").or(Selector::tool("Bash"));
        assert!(either.matches(&ev(None, tool_use("Read"))) && either.matches(&ev(None, tool_use("Bash"))));
        assert!(!either.clone().not().matches(&ev(None, tool_use("Bash"))));
        assert!(Selector::project("app").and(Selector::session("s")).matches(&ev(None, tool_use("Bash"))));
        assert!(!Selector::project("other").matches(&ev(None, tool_use("Bash"))));
        assert_eq!(Selector::All.and(Selector::main()), Selector::Main);
        let f = Filter::from_pairs([("agent", "subagent")]).unwrap();
        assert!(Selector::from(f).matches(&ev(Some("a1"), tool_use("Bash"))));
    }
}
