//! Every metric family, declared once: name, unit, help, labels, type and buckets.
//!
//! The order of each table is the order of exposition and of the Store's
//! vectors (a family's index is its enum discriminant); the checkpoint finds
//! families by name ([`super::persist`]), so the order may change.

use super::text;

/// A declared family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Only grows (kept across restarts in the checkpoint).
    Counter,
    /// Computed from live state at each refresh; not checkpointed.
    Gauge,
    /// Observations counted in fixed buckets (kept across restarts).
    Histogram,
}

/// A metric family's declaration.
#[derive(Debug)]
pub struct Def {
    /// Full name without `_total` (counters) and without the unit suffix.
    pub base: &'static str,
    /// Unit suffix of the exposed name (`usd`, `seconds`, `tokens`, `ratio`), if any.
    pub unit: Option<&'static str>,
    /// The `# HELP` text: one line.
    pub help: &'static str,
    /// Label names in the order of a series key's values; open ones (see
    /// `OPEN_LABELS`) fold into `other` at the series cap.
    pub labels: &'static [&'static str],
    /// The family's type.
    pub kind: Type,
    /// Histogram upper bounds in exposed units, increasing, without `+Inf`; empty for others.
    pub buckets: &'static [f64],
}

impl Def {
    /// Stored value × scale = exposed value. Counters of USD are summed in
    /// whole nano-dollars and histograms of seconds in whole milliseconds, so a
    /// sum is exact and does not depend on the order of its terms: after a
    /// crash, lines re-read in another order give the very same value, never
    /// one a rounding step below what was already served.
    pub fn scale(&self) -> f64 {
        match (self.kind, self.unit) {
            (Type::Counter, Some("usd")) => 1e-9,
            (Type::Histogram, Some("seconds")) => 1e-3,
            _ => 1.0,
        }
    }

    /// The name as Prometheus shows it (with unit, and `_total` for counters).
    pub fn exposed_name(&self) -> String {
        let mut n = self.family_name();
        if self.kind == Type::Counter {
            n.push_str("_total");
        }
        n
    }

    /// The name of the family in OpenMetrics `# TYPE` lines: with its unit, without `_total`.
    pub(crate) fn family_name(&self) -> String {
        match self.unit {
            Some(u) => format!("{}_{u}", self.base),
            None => self.base.to_owned(),
        }
    }

    /// Write this family's header; `name` is [`Def::family_name`].
    pub(crate) fn write_header(&self, w: &mut text::Writer, name: &str) {
        let kind = match self.kind {
            Type::Counter => text::Kind::Counter,
            Type::Gauge => text::Kind::Gauge,
            Type::Histogram => text::Kind::Histogram,
        };
        w.family(&text::Family { name, kind, help: self.help, unit: self.unit });
    }
}

macro_rules! families {
    ($(#[$doc:meta])* $enum:ident, $table:ident, $kind:expr, { $($var:ident => ($base:literal, $unit:expr, $labels:expr, $buckets:expr, $help:expr)),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $enum { $(#[doc = concat!("The `", $base, "` family; what it counts is its [`Def::help`].")] $var),* }
        /// The declarations, indexed by the enum's discriminant.
        pub static $table: &[Def] = &[$(Def { base: $base, unit: $unit, help: $help, labels: $labels, kind: $kind, buckets: $buckets }),*];
        impl $enum {
            /// This family's declaration.
            pub fn def(self) -> &'static Def { &$table[self as usize] }
        }
    };
}

const SECONDS_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];
const SESSION_BUCKETS: &[f64] = &[60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0];
pub(super) const TURN_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0];
const CONTEXT_BUCKETS: &[f64] = &[
    1000.0,
    5000.0,
    10_000.0,
    20_000.0,
    50_000.0,
    100_000.0,
    150_000.0,
    200_000.0,
    300_000.0,
    500_000.0,
    750_000.0,
    1_000_000.0,
];
const LAG_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

families!(
    /// Counter families (kept across restarts; series only grow).
    Counter, COUNTERS, Type::Counter, {
    SessionsStarted => ("claude_sessions_sessions_started", None, &["project"], &[], "Sessions seen for the first time."),
    Prompts => ("claude_sessions_prompts", None, &["project"], &[], "Prompts typed by the user (main chain, not tool results or meta lines)."),
    ApiRequests => ("claude_sessions_api_requests", None, &["project", "model", "query_source"], &[], "Distinct API responses (deduplicated by message id and request id)."),
    Tokens => ("claude_sessions_tokens", None, &["project", "model", "query_source", "type"], &[], "Tokens of deduplicated API responses by type (input, output, cache_read, cache_creation)."),
    Cost => ("claude_sessions_cost", Some("usd"), &["project", "model", "query_source"], &[], "Estimated cost in USD from the price table (0 for unpriced models)."),
    ToolCalls => ("claude_sessions_tool_calls", None, &["project", "tool"], &[], "Tool calls requested by the model (MCP tools collapse to mcp:<server>)."),
    ToolErrors => ("claude_sessions_tool_errors", None, &["project", "tool"], &[], "Tool results marked is_error."),
    ApiErrors => ("claude_sessions_api_errors", None, &["project", "model", "kind"], &[], "API errors recorded in transcripts (synthetic error replies, system api_error lines)."),
    SubagentsStarted => ("claude_sessions_subagents_started", None, &["project", "agent_type"], &[], "Sub-agents started through the Task/Agent tool."),
    Compactions => ("claude_sessions_compactions", None, &["project", "trigger"], &[], "Context compactions (compact_boundary records)."),
    ContextAdded => ("claude_sessions_context_added", Some("tokens"), &["project", "source"], &[], "Growth of main-chain contexts in tokens, split by what was added since the previous call (tool_result:<tool>, user_text, assistant_output, attachment, meta, other); see docs/research.md."),
    LinesOfCode => ("claude_sessions_lines_of_code", None, &["project", "type"], &[], "Lines added and removed by edit tools (from structured patches)."),
    UnpricedRequests => ("claude_sessions_unpriced_requests", None, &["model"], &[], "API responses whose model has no price (their cost counts as 0)."),
    BytesRead => ("claude_sessions_exporter_bytes_read", None, &[], &[], "Bytes read from transcript files."),
    Lines => ("claude_sessions_exporter_lines", None, &["result"], &[], "Transcript lines read, by result (ok, malformed, unknown_type, oversized)."),
    Truncations => ("claude_sessions_exporter_truncations", None, &[], &[], "Files that shrank and were read again from the start."),
    Rotations => ("claude_sessions_exporter_rotations", None, &[], &[], "Files replaced (new inode or new first line) and read again from the start."),
    ReadErrors => ("claude_sessions_exporter_read_errors", None, &["kind"], &[], "Errors reading transcript files and folders."),
    SeriesOverflow => ("claude_sessions_exporter_series_overflow", None, &["metric"], &[], "Label sets folded into 'other' because a metric reached its series cap."),
    CheckpointWrites => ("claude_sessions_exporter_checkpoint_writes", None, &["result"], &[], "Checkpoint writes by result (ok, error)."),
    DedupEvictions => ("claude_sessions_exporter_dedup_evictions", None, &[], &[], "Keys dropped from the bounded deduplication window."),
    RuleMatches => ("claude_sessions_rule_matches", None, &["rule", "severity"], &[], "Tool calls that matched a rule (rules file), by rule and severity."),
    EventsPublished => ("claude_sessions_exporter_events_published", None, &[], &[], "Realtime events published (to /api/events, webhooks and library subscribers)."),
    EventsLagged => ("claude_sessions_exporter_events_lagged", None, &[], &[], "Realtime events a slow subscriber (an SSE client, a webhook, a library stream) missed because it fell behind."),
});

families!(
    /// Histogram families (kept across restarts, except the process-local event lag).
    Histogram, HISTOGRAMS, Type::Histogram, {
    SessionDuration => ("claude_sessions_session_duration", Some("seconds"), &["project"], SESSION_BUCKETS, "Duration of ended sessions, first to last record."),
    ToolDuration => ("claude_sessions_tool_duration", Some("seconds"), &["tool"], SECONDS_BUCKETS, "Time from a tool call to its result (transcript timestamps)."),
    ContextTokens => ("claude_sessions_context", Some("tokens"), &["model"], CONTEXT_BUCKETS, "Prompt size (input + cache writes + cache reads) of each main-chain API call."),
    TurnDuration => ("claude_sessions_turn_duration", Some("seconds"), &["project"], TURN_BUCKETS, "Time from a turn's start (a prompt, or activity with no turn open) to its last activity; a turn ends at the next prompt, at idleness with no tool call of it running, or at session end."),
    EventLag => ("claude_sessions_exporter_event_lag", Some("seconds"), &[], LAG_BUCKETS, "Time from a transcript write (file mtime) to its effect being visible in metrics (this process only)."),
});

families!(
    /// Gauge families (recomputed from live state; not checkpointed).
    Gauge, GAUGES, Type::Gauge, {
    Sessions => ("claude_sessions_sessions", None, &["project", "state"], &[], "Live sessions by state (active, idle)."),
    ContextUtilization => ("claude_sessions_context_utilization", Some("ratio"), &["project"], &[], "Highest context-window utilization among the project's live sessions."),
    LastActivity => ("claude_sessions_last_activity_timestamp", Some("seconds"), &["project"], &[], "Unix time of the project's latest transcript record."),
    ToolCallsPending => ("claude_sessions_tool_calls_pending", None, &["project", "tool"], &[], "Tool calls of live sessions still waiting for their result."),
    ToolCallOldestPending => ("claude_sessions_tool_call_oldest_pending", Some("seconds"), &["project", "tool"], &[], "Age of the oldest tool call still waiting for its result (a stuck command shows here)."),
    BuildInfo => ("claude_sessions_exporter_build_info", None, &["version", "revision"], &[], "Build information; the value is 1."),
    FilesTracked => ("claude_sessions_exporter_files_tracked", None, &[], &[], "Transcript files being followed."),
    CaughtUp => ("claude_sessions_exporter_caught_up", None, &[], &[], "1 once the existing history has been read."),
    DedupWindow => ("claude_sessions_exporter_dedup_window_keys", None, &[], &[], "Keys held in the deduplication window."),
});

/// All declared families, in exposition order.
pub fn all_defs() -> impl Iterator<Item = &'static Def> {
    COUNTERS.iter().chain(HISTOGRAMS.iter()).chain(GAUGES.iter())
}
