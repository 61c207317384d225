//! The kinds of [`Event`](super::Event): what happened, with its fields, serialized flat
//! with a `type` field; and the small types they carry ([`Usage`], [`EndReason`]).

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use super::Event;
use super::ToolCategory;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// No activity for the end timeout (`--end-timeout`, default 30 minutes).
    IdleTimeout,
    /// The Claude Code process running in the session's folder exited.
    ProcessExit,
}

/// Token counts: on a `message` event, what its line adds to the token counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache (5-minute and 1-hour writes together).
    pub cache_creation: u64,
}

/// What an [`Event`] says happened; `type` in JSON is [`Kind::name`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kind {
    /// A prompt typed by the user, or an API response.
    Message {
        /// `user` (a prompt) or `assistant` (a response).
        role: String,
        /// The response's model (assistant messages).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        /// What this line adds to the token counters (assistant messages).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
        /// What this line adds to the cost counter, in USD; `None` for a model without a price.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
        /// The prompt's text (content opt-in only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// A later line of a response already announced: Claude Code writes one
        /// line per content block, and a later one may carry a larger usage.
        /// `usage` and `cost_usd` are then what this line adds.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        continued: bool,
    },
    /// A tool call, seen for the first time.
    ToolUse {
        /// The call's id (`tool_use.id`), named again by its result.
        tool_use_id: String,
        /// The tool's name (`Bash`, `mcp__github__create_issue`).
        name: String,
        /// What kind of tool it is.
        category: ToolCategory,
        /// The command, file path, URL or pattern (summaries or content opt-in).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
        /// The whole input as JSON text, capped (content opt-in only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
    },
    /// A tool call's result, seen for the first time.
    ToolResult {
        /// The call it answers.
        tool_use_id: String,
        /// The call's tool name (its metric label, or `unknown`, when the call was not seen).
        name: String,
        /// The result says the call failed.
        is_error: bool,
        /// Size of the result as written in the transcript (content opt-in only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_bytes: Option<u64>,
        /// From its `tool_use` to this result (transcript times).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<i64>,
        /// The result's text, capped (content opt-in only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
    },
    /// A session seen for the first time ever (not when a forgotten one comes back).
    SessionStart {
        /// Its working folder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
        /// Its git branch at its first line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        git_branch: Option<String>,
    },
    /// No activity for the idle timeout (`--idle-timeout`, default 5 minutes).
    SessionIdle {},
    /// New activity in an idle or ended session.
    SessionResume {},
    /// The session ended.
    SessionEnd {
        /// Why.
        reason: EndReason,
    },
    /// A sub-agent started by a `Task`/`Agent` tool call.
    AgentSpawn {
        /// The `Task`/`Agent` call that starts it.
        tool_use_id: String,
        /// `subagent_type` asked for (`general-purpose` when none).
        agent_type: String,
        /// The call's description (summaries or content opt-in).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// The conversation was compacted (summarized to free context).
    Compaction {
        /// `manual` (`/compact`) or `auto`.
        trigger: String,
        /// Context size before, in tokens, as the transcript says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens_before: Option<u64>,
        /// Context size after, in tokens, when the transcript says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens_after: Option<u64>,
    },
    /// An API error Claude Code recorded.
    ApiError {
        /// The error's kind, as on `claude_sessions_api_errors_total` (`rate_limit`, `overloaded`…).
        kind: String,
    },
    /// The main conversation's context grew (or shrank, negative) by `tokens_added`.
    ContextGrowth {
        /// Change in context size, in tokens.
        tokens_added: i64,
        /// `response` (a new API call's prompt) or `compaction`.
        source: String,
        /// Context size after the change, in tokens.
        cumulative: u64,
        /// For a `response`: the change split by what was added since the previous call
        /// (`tool_result:<tool>`, `user_text`, `assistant_output`, `attachment`, `meta`,
        /// `other`, or `dropped` when the context did not grow); the parts sum to
        /// `tokens_added`, and `claude_sessions_context_added_tokens_total` counts the
        /// positive ones (docs/research.md, Context tracker).
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        parts: std::collections::BTreeMap<String, i64>,
    },
    /// A tool call tripped a rule (see `rules/`); one event per rule.
    RuleMatch {
        /// The rule's name.
        rule: String,
        /// The rule's severity (`info`, `warning`, `critical`).
        severity: String,
        /// The call that tripped it.
        tool_use_id: String,
        /// The call's tool name.
        tool: String,
    },
    /// A tool call waits for a person's decision (a rule's `approve` action; see `control`).
    ApprovalPending {
        /// The approval's id (`POST /api/approvals/{id}` decides it).
        approval_id: String,
        /// The call's tool name.
        tool: String,
        /// The command, path or pattern, cut to 200 bytes: the person deciding must see it.
        summary: String,
        /// The rule that asked for the approval.
        rule: String,
        /// The rule's reason.
        reason: String,
        /// Claude Code's id of the call, when the hook knew it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_use_id: Option<String>,
    },
    /// A pending approval was allowed, denied or expired.
    ApprovalDecided {
        /// The approval's id.
        approval_id: String,
        /// The call's tool name.
        tool: String,
        /// `allowed`, `denied` or `expired`.
        state: String,
        /// The reason given with the decision (cut to 200 bytes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// `console`, `cli`, `api`; `hook` or `daemon` for an expiry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decided_by: Option<String>,
    },
    /// A person paused the session: its tool calls are denied with the message.
    SessionPaused {
        /// The person's message (cut to 200 bytes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A paused session was resumed.
    SessionResumed {},
    /// A person queued a note for Claude in the session.
    NoteQueued {
        /// The note's id.
        note_id: String,
        /// What the person wrote (cut to 200 bytes).
        text: String,
    },
    /// A hook took a queued note to hand it to Claude.
    NoteDelivered {
        /// The note's id.
        note_id: String,
    },
    /// A problem of the watcher itself (unreadable file or folder…), never transcript content.
    Error {
        /// What went wrong, naming files, never their content.
        message: String,
    },
}

impl Kind {
    /// The `type` name (`tool_use`, `session_end`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Message { .. } => "message",
            Kind::ToolUse { .. } => "tool_use",
            Kind::ToolResult { .. } => "tool_result",
            Kind::SessionStart { .. } => "session_start",
            Kind::SessionIdle {} => "session_idle",
            Kind::SessionResume {} => "session_resume",
            Kind::SessionEnd { .. } => "session_end",
            Kind::AgentSpawn { .. } => "agent_spawn",
            Kind::Compaction { .. } => "compaction",
            Kind::ApiError { .. } => "api_error",
            Kind::ContextGrowth { .. } => "context_growth",
            Kind::RuleMatch { .. } => "rule_match",
            Kind::ApprovalPending { .. } => "approval_pending",
            Kind::ApprovalDecided { .. } => "approval_decided",
            Kind::SessionPaused { .. } => "session_paused",
            Kind::SessionResumed {} => "session_resumed",
            Kind::NoteQueued { .. } => "note_queued",
            Kind::NoteDelivered { .. } => "note_delivered",
            Kind::Error { .. } => "error",
        }
    }

    /// Every kind name, for `--help` and validation.
    pub const NAMES: &'static [&'static str] = &[
        "message",
        "tool_use",
        "tool_result",
        "session_start",
        "session_idle",
        "session_resume",
        "session_end",
        "agent_spawn",
        "compaction",
        "api_error",
        "context_growth",
        "rule_match",
        "approval_pending",
        "approval_decided",
        "session_paused",
        "session_resumed",
        "note_queued",
        "note_delivered",
        "error",
    ];

    /// The tool name of tool events.
    pub fn tool(&self) -> Option<&str> {
        match self {
            Kind::ToolUse { name, .. } | Kind::ToolResult { name, .. } => Some(name),
            Kind::RuleMatch { tool, .. } | Kind::ApprovalPending { tool, .. } | Kind::ApprovalDecided { tool, .. } => {
                Some(tool)
            }
            _ => None,
        }
    }
}
