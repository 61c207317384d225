//! One session's state, its snapshot, and the project labels sessions get.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ProjectLabel;
use crate::state::metrics;
use crate::transcript::entry::{Millis, Tokens};

/// Where a session is in its lifecycle: active → idle → ended; new activity makes it active again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Activity within the idle timeout.
    Active,
    /// Quiet for the idle timeout.
    Idle,
    /// Quiet for the end timeout, or its Claude Code process exited.
    Ended,
}

/// One session (its main file plus its sub-agents and compaction calls).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// The session id (`sessionId`).
    pub id: String,
    /// Shared: every line of the session labels its counters with it.
    pub project: Arc<str>,
    /// The projects folder its first line was read from (`-w-app`).
    pub slug: String,
    /// The git branch of its latest main-chain line that named one.
    pub git_branch: Option<String>,
    /// Its earliest line's transcript time, ms since the epoch (`Millis::MAX` until a stamped line).
    pub first_ms: Millis,
    /// Its latest line's transcript time, ms since the epoch.
    pub last_ms: Millis,
    /// Its lifecycle state.
    pub state: State,
    /// Models of its responses (label values), sorted and distinct (a short list:
    /// a set's first node holds room for eleven).
    pub models: Vec<Arc<str>>,
    /// Prompts typed (distinct by line `uuid`).
    pub prompts: u64,
    /// Distinct API responses counted under it.
    pub api_requests: u64,
    /// Distinct tool calls.
    pub tool_calls: u64,
    /// Tool results marked as errors.
    pub tool_errors: u64,
    /// API errors recorded.
    pub api_errors: u64,
    /// Sub-agents started (`Task`/`Agent` calls).
    pub subagents: u64,
    /// Compactions.
    pub compactions: u64,
    /// Tokens of the responses counted under it (each at its largest usage).
    pub tokens: Tokens,
    /// Their cost, in USD.
    pub cost_usd: f64,
    /// Prompt size of the latest main-chain call (reset by compaction).
    pub context_tokens: u64,
    /// 200k, or 1M once a prompt larger than 200k has been seen.
    pub context_window: u64,
    /// The model of its latest main-chain response.
    pub last_model: Option<Arc<str>>,
    /// Working directory (from the first line that has one).
    #[serde(default)]
    pub cwd: Option<String>,
    /// A Claude Code process was seen running in `cwd` (the process check).
    #[serde(default)]
    pub attached: bool,
    /// Tokens and cost per model (for per-session OTLP series).
    #[serde(default)]
    /// (A short list, not a map: a map's first node holds room for 11 entries, ~1 KiB a session.)
    pub by_model: Vec<(Arc<str>, Tokens, f64)>,
    /// Lines written by its edits (from tool results).
    #[serde(default)]
    pub lines_added: u64,
    /// Lines removed by its edits.
    #[serde(default)]
    pub lines_removed: u64,
    /// The open turn's start (see [`Aggregator::end_turn`]): one model of a turn for the
    /// turn-duration histogram and the traces.
    pub(super) turn_start_ms: Option<Millis>,
    /// The open turn's latest activity: a user, assistant or system line of any chain.
    pub(super) turn_last_ms: Millis,
    /// What its main chain added since its latest call, in bytes by source (the sizes
    /// the next call's growth is split by: `research::tracker::split`).
    #[serde(default)]
    pub(super) context_added: std::collections::BTreeMap<String, u64>,
    /// A line of its main chain was read (false: only sub-agent or compaction files,
    /// the main transcript is elsewhere; its prompts and context are unknown).
    #[serde(default = "yes")]
    pub main_chain: bool,
}

fn yes() -> bool {
    true
}

impl Session {
    /// The share of the context window its latest main-chain prompt filled (0..=1, or above
    /// when the window is guessed too small).
    pub fn context_utilization(&self) -> f64 {
        self.context_tokens as f64 / self.context_window.max(1) as f64
    }

    /// An immutable, serializable copy of the session's state.
    pub fn snapshot(&self) -> SessionSnapshot {
        SessionSnapshot {
            id: self.id.clone(),
            project: self.project.to_string(),
            cwd: self.cwd.clone(),
            git_branch: self.git_branch.clone(),
            state: self.state,
            first_ms: (self.first_ms != Millis::MAX).then_some(self.first_ms),
            last_ms: self.last_ms,
            duration_ms: if self.first_ms <= self.last_ms { self.last_ms - self.first_ms } else { 0 },
            models: self.models.iter().map(|m| m.to_string()).collect(),
            prompts: self.prompts,
            api_requests: self.api_requests,
            tool_calls: self.tool_calls,
            tool_errors: self.tool_errors,
            api_errors: self.api_errors,
            subagents: self.subagents,
            compactions: self.compactions,
            tokens: crate::events::Usage {
                input: self.tokens.input,
                output: self.tokens.output,
                cache_read: self.tokens.cache_read,
                cache_creation: self.tokens.cache_creation,
            },
            cost_usd: self.cost_usd,
            context_tokens: self.context_tokens,
            context_window: self.context_window,
            context_utilization: self.context_utilization(),
            lines_added: self.lines_added,
            lines_removed: self.lines_removed,
            main_chain: self.main_chain,
        }
    }
}

/// A session's state at one moment (`GET /api/sessions/{id}`, `sessions --json`, the library).
///
/// Fields mean what the same fields of [`Session`] mean; times are transcript times in
/// ms since the epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSnapshot {
    /// The session id.
    pub id: String,
    /// Its `project` label.
    pub project: String,
    /// Its working folder.
    pub cwd: Option<String>,
    /// Its latest git branch.
    pub git_branch: Option<String>,
    /// Its lifecycle state.
    pub state: State,
    /// Its earliest line's time (`None`: no stamped line yet).
    pub first_ms: Option<Millis>,
    /// Its latest line's time.
    pub last_ms: Millis,
    /// `last_ms - first_ms` (0 without a first line).
    pub duration_ms: Millis,
    /// Models of its responses, sorted.
    pub models: Vec<String>,
    /// Prompts typed.
    pub prompts: u64,
    /// Distinct API responses.
    pub api_requests: u64,
    /// Distinct tool calls.
    pub tool_calls: u64,
    /// Tool results marked as errors.
    pub tool_errors: u64,
    /// API errors.
    pub api_errors: u64,
    /// Sub-agents started.
    pub subagents: u64,
    /// Compactions.
    pub compactions: u64,
    /// Tokens by type.
    pub tokens: crate::events::Usage,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Prompt size of the latest main-chain call, in tokens.
    pub context_tokens: u64,
    /// The context window assumed, in tokens (200k, or 1M once a larger prompt was seen).
    pub context_window: u64,
    /// `context_tokens / context_window`.
    pub context_utilization: f64,
    /// Lines written by its edits.
    pub lines_added: u64,
    /// Lines removed by its edits.
    pub lines_removed: u64,
    /// A line of its main chain was read; false: only its sub-agents' files were (the
    /// main transcript is not in the projects folders), so `prompts` and the context
    /// figures are unknown, not zero.
    #[serde(default = "yes")]
    pub main_chain: bool,
}

/// A tool call waiting for its result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Pending {
    pub(super) tool: String,
    pub(super) at: Option<Millis>,
    pub(super) session: String,
    /// The tool's own name (`tool` is the label: MCP tools fold to their server).
    #[serde(default)]
    pub(super) name: String,
}

/// `cwd` → unique project label: the shortest suffix of the working directory (a
/// worktree's repository) that no other directory has taken.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Projects {
    by_key: HashMap<String, String>,
    taken: HashSet<String>,
}

impl Projects {
    /// The label of a session in `cwd` (`slug`: its project folder's name), as `mode` says.
    pub fn label(&mut self, mode: ProjectLabel, cwd: Option<&str>, slug: &str) -> String {
        match mode {
            ProjectLabel::None => return String::new(),
            ProjectLabel::Slug => return metrics::label_value(slug),
            ProjectLabel::Basename => {}
        }
        let path = cwd.map(strip_worktree).unwrap_or(slug).trim_end_matches(['/', '\\']);
        if let Some(l) = self.by_key.get(path) {
            return l.clone();
        }
        // Shortest unique suffix of the path: `app`, then `work/app`, ...
        let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
        let mut label = metrics::label_value(path);
        for n in 1..=parts.len() {
            let candidate = metrics::label_value(&parts[parts.len() - n..].join("/"));
            if !self.taken.contains(&candidate) {
                label = candidate;
                break;
            }
        }
        self.taken.insert(label.clone());
        self.by_key.insert(path.to_owned(), label.clone());
        label
    }
}

/// `<repo>/.claude/worktrees/agent-x/...` → `<repo>`: worktree sub-agents belong to the repo.
fn strip_worktree(cwd: &str) -> &str {
    match cwd.find("/.claude/worktrees/") {
        Some(i) => &cwd[..i],
        None => cwd,
    }
}

/// `mcp__server__tool` → `mcp:server`; other names as they are.
pub fn tool_label(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("mcp__") {
        let server = rest.split("__").next().unwrap_or(rest);
        return metrics::label_value(&format!("mcp:{server}"));
    }
    metrics::label_value(name)
}

pub(super) const DEFAULT_WINDOW: u64 = 200_000;
pub(super) const LONG_WINDOW: u64 = 1_000_000;
