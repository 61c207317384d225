//! The context tracker: a session's main chain, call by call.
//!
//! In: a session's lines in the order they were written, each as its facts ([`Entry`])
//! and its research features ([`LineFeatures`]), through [`ContextTracker::push`]. Out:
//! a [`Snapshot`] after each main-chain API call (a response seen for the first time,
//! by its `message.id` + `requestId` identity, not a sub-agent's, not synthetic), and at
//! the end a [`SessionRecord`]: the snapshots, the compactions, and the session's steps
//! (prompts, tool calls, results, replies) for the analyses of [`super`].
//!
//! **Composition.** The growth of a call is the change in prompt tokens (input + cache
//! read + cache write) since the previous call: the ground truth. What was added in
//! between (the lines after the previous call's first line: its own output, tool
//! results, prompts, attachments, meta lines) is known by size in bytes. Each added part
//! is estimated at [`BYTES_PER_TOKEN`] bytes a token; when the estimates fit in the
//! growth, each part gets its estimate and the rest is `other` (what the transcript does
//! not show: system reminders, tool definitions, the system prompt on the first call);
//! when they do not fit, the growth is split between the parts in proportion to their
//! sizes (largest remainders, so the parts are whole tokens) and `other` is 0. A growth
//! that is not positive (after a compaction, or a cache that shrank) is all `dropped`.
//! So the parts always sum to the growth exactly.
//!
//! ```
//! use claude_sessions::research::{ContextTracker, LineFeatures};
//! use claude_sessions::transcript::{entry::Entry, parse_line};
//!
//! let lines = [
//!     r#"{"type":"user","sessionId":"s","uuid":"u1","timestamp":"2026-01-01T00:00:00Z","message":{"role":"user","content":"Fix the build please, it fails in src/lib.rs"}}"#,
//!     r#"{"type":"assistant","sessionId":"s","requestId":"r1","timestamp":"2026-01-01T00:00:01Z","message":{"id":"m1","model":"claude-sonnet-4-5","role":"assistant","content":[{"type":"text","text":"Looking."}],"usage":{"input_tokens":10,"cache_creation_input_tokens":5000,"cache_read_input_tokens":0,"output_tokens":20}}}"#,
//!     r#"{"type":"assistant","sessionId":"s","requestId":"r2","timestamp":"2026-01-01T00:00:02Z","message":{"id":"m2","model":"claude-sonnet-4-5","role":"assistant","content":[{"type":"text","text":"Done."}],"usage":{"input_tokens":10,"cache_creation_input_tokens":30,"cache_read_input_tokens":5000,"output_tokens":5}}}"#,
//! ];
//! let mut tracker = ContextTracker::new("s");
//! let mut snaps = Vec::new();
//! for l in lines {
//!     let e = Entry::from_line(&parse_line(l.as_bytes()).unwrap());
//!     snaps.extend(tracker.push(&e, &LineFeatures::read(l, &e)));
//! }
//! assert_eq!(snaps.len(), 2);
//! assert_eq!((snaps[0].context_tokens, snaps[1].context_tokens), (5010, 5040));
//! assert_eq!(snaps[1].growth, 30);
//! assert_eq!(snaps[1].composition.iter().map(|p| p.tokens).sum::<i64>(), 30);
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::features::{LineFeatures, PromptFeatures, ResultFeatures, Source, UseFeatures};
use super::tokens::TokenSet;
use crate::transcript::entry::{Entry, Kind, Millis};

/// Bytes of JSON text taken for one token when a growth is split (English and code
/// run at 3.5–4.5 characters a token; JSON escapes add a little).
pub const BYTES_PER_TOKEN: u64 = 4;
/// The context window assumed (tokens) until a prompt shows a larger one.
pub const DEFAULT_WINDOW: u64 = 200_000;
/// The window once a prompt was larger than [`DEFAULT_WINDOW`] (the 1M-token option).
pub const LONG_WINDOW: u64 = 1_000_000;

/// One part of a call's growth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    /// `tool_result:<tool>`, `user_text`, `assistant_output`, `attachment`, `meta`,
    /// `other` (not in the transcript) or `dropped` (a growth that is not positive).
    pub source: String,
    /// Bytes of the transcript behind this part (0 for `other` and `dropped`).
    pub bytes: u64,
    /// Tokens of the growth given to it.
    pub tokens: i64,
}

/// The context after one main-chain API call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// The call's position among the session's main-chain calls, from 0.
    pub index: usize,
    /// When its first line was written (ms since the epoch).
    pub ts_ms: Option<Millis>,
    /// The model that answered.
    pub model: String,
    /// Prompt tokens of the call: input + cache read + cache write.
    pub context_tokens: u64,
    /// Its uncached input tokens.
    pub input_tokens: u64,
    /// Its cache reads.
    pub cache_read_tokens: u64,
    /// Its cache writes.
    pub cache_creation_tokens: u64,
    /// Of those, written to the 1-hour cache (priced apart).
    pub cache_creation_1h_tokens: u64,
    /// Its output tokens: in a snapshot from [`ContextTracker::push`], as its first line
    /// says; in [`SessionRecord::calls`], the largest count of all its lines.
    pub output_tokens: u64,
    /// Priced as a fast response.
    pub fast: bool,
    /// Uncached input tokens of the main chain so far, this call included.
    pub input_total: u64,
    /// Output tokens of the main chain so far (each response at its largest count seen
    /// by now; this call's as its first line says).
    pub output_total: u64,
    /// The window assumed ([`DEFAULT_WINDOW`], or [`LONG_WINDOW`] once a prompt was larger).
    pub window: u64,
    /// `context_tokens / window`.
    pub utilization: f64,
    /// Tool calls of the main chain without a result yet.
    pub pending_tool_calls: usize,
    /// Sub-agents (Task/Agent calls) without a result yet.
    pub active_subagents: usize,
    /// Change in context tokens since the previous call (the first call: its whole context).
    pub growth: i64,
    /// What the growth was made of; the parts sum to `growth`.
    pub composition: Vec<Part>,
    /// A compaction happened between the previous call and this one.
    pub after_compaction: bool,
}

/// One compaction of the main chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compaction {
    /// When the boundary was written.
    pub ts_ms: Option<Millis>,
    /// `auto` or `manual`.
    pub trigger: &'static str,
    /// The boundary's own `preTokens`.
    pub tokens_before: Option<u64>,
    /// The next call's prompt tokens (`None` when no call followed).
    pub tokens_after: Option<u64>,
    /// Index of the first call after it (`None` when no call followed).
    pub next_call: Option<usize>,
    /// Calls before it (its position in the session).
    pub calls_before: usize,
    /// The model of the last call before it.
    pub model: Option<String>,
    /// The Claude Code version written on the boundary.
    pub version: Option<String>,
    /// Utilization when it fired: `tokens_before / window`.
    pub utilization: Option<f64>,
}

/// One thing that happened in the main chain, in order (what the analyses read).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A prompt the person typed.
    Prompt {
        /// When.
        ts_ms: Option<Millis>,
        /// Its features.
        features: PromptFeatures,
        /// Calls made before it.
        calls_before: usize,
        /// Its text, when asked for ([`LineFeatures::keep_prompt_text`]).
        text: Option<Box<str>>,
    },
    /// A response's text (one per line of text).
    Reply {
        /// When.
        ts_ms: Option<Millis>,
        /// The call it belongs to.
        call: usize,
        /// Its salient tokens.
        tokens: TokenSet,
    },
    /// A tool call.
    ToolUse {
        /// When.
        ts_ms: Option<Millis>,
        /// The call that made it.
        call: usize,
        /// Its features.
        features: UseFeatures,
    },
    /// A tool's result.
    ToolResult {
        /// When.
        ts_ms: Option<Millis>,
        /// The tool (`?` when its call was not seen).
        tool: String,
        /// Its features.
        features: ResultFeatures,
    },
    /// A compaction (index into [`SessionRecord::compactions`]).
    Compaction(usize),
}

/// Everything the tracker kept of one session.
#[derive(Debug, Clone, Default)]
pub struct SessionRecord {
    /// The session's id.
    pub session_id: String,
    /// One snapshot per main-chain call.
    pub calls: Vec<Snapshot>,
    /// The compactions.
    pub compactions: Vec<Compaction>,
    /// The main chain's steps, in order.
    pub steps: Vec<Step>,
    /// First and last time seen.
    pub first_ts: Option<Millis>,
    /// Last time seen.
    pub last_ts: Option<Millis>,
    /// The working directory of its first line with one.
    pub cwd: Option<String>,
    /// The git branch of its first line with one.
    pub git_branch: Option<String>,
    /// Uncached input tokens of all its main-chain calls.
    pub input_total: u64,
    /// Output tokens of all its main-chain calls (each at its largest count).
    pub output_total: u64,
}

/// Follows one session's main chain; see the module doc.
#[derive(Debug)]
pub struct ContextTracker {
    record: SessionRecord,
    window: u64,
    /// Responses seen (identity key) → the largest output count seen, and the call's index.
    responses: HashMap<u64, (u64, usize)>,
    input_total: u64,
    output_total: u64,
    /// What was added since the previous call, by source key, in bytes.
    added: BTreeMap<String, u64>,
    /// Tool calls without a result: id → (tool, sub-agent call).
    pending: HashMap<Box<str>, (Box<str>, bool)>,
    /// Tool names by call id (results name their call).
    tools: HashMap<Box<str>, Box<str>>,
    prompts_seen: HashSet<u64>,
    compaction_pending: Option<usize>,
    /// Calls that run tests and have no result yet.
    test_calls: HashSet<Box<str>>,
}

impl ContextTracker {
    /// A tracker for the session `session_id`.
    pub fn new(session_id: &str) -> ContextTracker {
        ContextTracker {
            record: SessionRecord { session_id: session_id.to_owned(), ..SessionRecord::default() },
            window: DEFAULT_WINDOW,
            responses: HashMap::new(),
            input_total: 0,
            output_total: 0,
            added: BTreeMap::new(),
            pending: HashMap::new(),
            tools: HashMap::new(),
            prompts_seen: HashSet::new(),
            compaction_pending: None,
            test_calls: HashSet::new(),
        }
    }

    /// Whether the tool call `id`, still without a result, runs tests (a result's test
    /// markers matter only then: [`LineFeatures::read_for`]).
    pub fn is_test_call(&self, id: &str) -> bool {
        self.test_calls.contains(id)
    }

    /// The calls seen so far.
    pub fn calls(&self) -> &[Snapshot] {
        &self.record.calls
    }

    /// Read the session's next line; the snapshot when it starts a main-chain call.
    /// Sub-agent lines (`isSidechain`) are not the main chain: they are ignored.
    pub fn push(&mut self, e: &Entry, f: &LineFeatures) -> Option<Snapshot> {
        if e.sidechain || e.kind == Kind::Progress {
            return None;
        }
        if let Some(ts) = e.timestamp {
            self.record.first_ts = Some(self.record.first_ts.map_or(ts, |t| t.min(ts)));
            self.record.last_ts = Some(self.record.last_ts.map_or(ts, |t| t.max(ts)));
        }
        if self.record.cwd.is_none() {
            self.record.cwd = e.cwd.as_deref().map(str::to_owned);
        }
        if self.record.git_branch.is_none() {
            self.record.git_branch = e.git_branch.as_deref().filter(|b| !b.is_empty()).map(str::to_owned);
        }
        if let Some(c) = &e.compaction {
            self.compaction(e, c.manual, c.pre_tokens, f);
            return None;
        }
        let mut snapshot = None;
        if let Some(r) = &e.response {
            match self.responses.get_mut(&r.key) {
                Some((out, i)) => {
                    if r.tokens.output > *out {
                        self.output_total += r.tokens.output - *out;
                        *out = r.tokens.output;
                        self.record.calls[*i].output_tokens = *out;
                    }
                }
                None => {
                    self.responses.insert(r.key, (r.tokens.output, self.record.calls.len()));
                    self.input_total += r.tokens.input;
                    self.output_total += r.tokens.output;
                    snapshot = Some(self.call(e, r));
                }
            }
        }
        let call = self.record.calls.len().saturating_sub(1);
        // What this line adds counts toward the next call.
        for (source, bytes) in &f.added {
            *self.added.entry(source_key(*source)).or_default() += bytes;
        }
        for u in &f.tool_uses {
            if u.test_command {
                self.test_calls.insert(u.id.clone());
            }
            self.pending.insert(u.id.clone(), (u.name.clone(), matches!(&*u.name, "Task" | "Agent")));
            self.tools.insert(u.id.clone(), u.name.clone());
            self.record.steps.push(Step::ToolUse { ts_ms: e.timestamp, call, features: u.clone() });
        }
        if !f.reply.is_empty() {
            self.record.steps.push(Step::Reply { ts_ms: e.timestamp, call, tokens: f.reply.clone() });
        }
        for r in &f.tool_results {
            self.pending.remove(&r.tool_use_id);
            self.test_calls.remove(&r.tool_use_id);
            let tool = self.tools.get(&r.tool_use_id).map_or("?", |t| t);
            *self.added.entry(format!("tool_result:{tool}")).or_default() += r.bytes;
            self.record.steps.push(Step::ToolResult { ts_ms: e.timestamp, tool: tool.to_owned(), features: r.clone() });
        }
        if e.prompt
            && let Some(p) = f.prompt
            && e.uuid.is_none_or(|u| self.prompts_seen.insert(u))
        {
            self.record.steps.push(Step::Prompt {
                ts_ms: e.timestamp,
                features: p,
                calls_before: self.record.calls.len(),
                text: f.prompt_text.clone(),
            });
        }
        snapshot
    }

    /// The record of everything pushed.
    pub fn finish(mut self) -> SessionRecord {
        self.record.input_total = self.input_total;
        self.record.output_total = self.output_total;
        self.record
    }

    fn compaction(&mut self, e: &Entry, manual: bool, pre: Option<u64>, f: &LineFeatures) {
        let model = self.record.calls.last().map(|c| c.model.clone());
        self.record.compactions.push(Compaction {
            ts_ms: e.timestamp,
            trigger: if manual { "manual" } else { "auto" },
            tokens_before: pre,
            tokens_after: None,
            next_call: None,
            calls_before: self.record.calls.len(),
            model,
            version: f.version.as_deref().map(str::to_owned),
            utilization: pre.map(|p| p as f64 / self.window as f64),
        });
        self.compaction_pending = Some(self.record.compactions.len() - 1);
        self.record.steps.push(Step::Compaction(self.record.compactions.len() - 1));
    }

    fn call(&mut self, e: &Entry, r: &crate::transcript::entry::Response) -> Snapshot {
        let ctx = r.tokens.prompt();
        if ctx > DEFAULT_WINDOW {
            self.window = LONG_WINDOW;
        }
        let index = self.record.calls.len();
        let prev = self.record.calls.last().map_or(0, |c| c.context_tokens);
        let growth = ctx as i64 - prev as i64;
        let added = std::mem::take(&mut self.added);
        let composition = split(growth, &added);
        let after_compaction = match self.compaction_pending.take() {
            Some(i) => {
                let c = &mut self.record.compactions[i];
                c.tokens_after = Some(ctx);
                c.next_call = Some(index);
                true
            }
            None => false,
        };
        let (pending, agents) = (self.pending.len(), self.pending.values().filter(|(_, a)| *a).count());
        let s = Snapshot {
            index,
            ts_ms: e.timestamp,
            model: r.model.to_string(),
            context_tokens: ctx,
            input_tokens: r.tokens.input,
            cache_read_tokens: r.tokens.cache_read,
            cache_creation_tokens: r.tokens.cache_creation,
            cache_creation_1h_tokens: r.tokens.cache_creation_1h,
            output_tokens: r.tokens.output,
            fast: r.fast,
            input_total: self.input_total,
            output_total: self.output_total,
            window: self.window,
            utilization: ctx as f64 / self.window as f64,
            pending_tool_calls: pending,
            active_subagents: agents,
            growth,
            composition,
            after_compaction,
        };
        self.record.calls.push(s.clone());
        s
    }
}

fn source_key(s: Source) -> String {
    match s {
        Source::ToolResult => "tool_result:?",
        Source::UserText => "user_text",
        Source::AssistantOutput => "assistant_output",
        Source::Attachment => "attachment",
        Source::Meta => "meta",
    }
    .to_owned()
}

/// Split `growth` between the `added` parts (bytes by source); see the module doc.
pub fn split(growth: i64, added: &BTreeMap<String, u64>) -> Vec<Part> {
    let part = |source: &str, bytes: u64, tokens: i64| Part { source: source.to_owned(), bytes, tokens };
    if growth <= 0 {
        return vec![part("dropped", 0, growth)];
    }
    let g = growth as u64;
    let parts: Vec<(&String, u64)> = added.iter().filter(|(_, b)| **b > 0).map(|(k, b)| (k, *b)).collect();
    // In u128: sizes restored from a checkpoint can be anything.
    let bytes: u128 = parts.iter().map(|(_, b)| u128::from(*b)).sum();
    let estimate: u128 = parts.iter().map(|(_, b)| u128::from(b.div_ceil(BYTES_PER_TOKEN))).sum();
    let mut out: Vec<Part> = if estimate <= u128::from(g) {
        parts.iter().map(|(k, b)| part(k, *b, b.div_ceil(BYTES_PER_TOKEN) as i64)).collect()
    } else {
        // In proportion to bytes, by largest remainder.
        let mut shares: Vec<(usize, u64, u128)> = parts
            .iter()
            .enumerate()
            .map(|(i, (_, b))| {
                let exact = u128::from(g) * u128::from(*b);
                (i, (exact / bytes) as u64, exact % bytes)
            })
            .collect();
        let mut left = g - shares.iter().map(|s| s.1).sum::<u64>();
        let mut order: Vec<usize> = (0..shares.len()).collect();
        order.sort_by(|a, b| shares[*b].2.cmp(&shares[*a].2).then(a.cmp(b)));
        for i in order {
            if left == 0 {
                break;
            }
            shares[i].1 += 1;
            left -= 1;
        }
        shares.iter().map(|(i, t, _)| part(parts[*i].0, parts[*i].1, *t as i64)).collect()
    };
    let given: i64 = out.iter().map(|p| p.tokens).sum();
    if given < growth {
        out.push(part("other", 0, growth - given));
    }
    out.retain(|p| p.tokens != 0 || p.source == "other");
    out
}

#[cfg(test)]
mod tests;
