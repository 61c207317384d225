//! The model's count of facts: an independent reading of complete transcript
//! lines as `serde_json::Value`s, written from `docs/transcript-format.md`
//! (§5 dedup, §6 sub-agents, §7 API errors, §8 compaction) in the manner of
//! `tests/it/oracle.rs`, never through the crate's parser.
//!
//! Rules (each fact counted once, whatever number of lines or files carry it):
//! * A line counts only if it is JSON of type `user`, `assistant` or `system`
//!   and belongs to a session: its `sessionId`, else the session the file's
//!   place in the tree names (`<slug>/<session>.jsonl`, `<session>/subagents/…`).
//! * Responses: assistant lines with a string `message.id` and an object
//!   `message.usage`, not `<synthetic>` and not `isApiErrorMessage`; key =
//!   `message.id` + `requestId`; tokens = the field-wise maximum over the key's
//!   lines (input, output, cache_read, cache_creation); one request per key.
//! * Tool calls: `tool_use` blocks (with `id` and `name`) of such assistant lines, by `id`.
//! * Tool errors: `tool_result` blocks with `is_error: true` of user lines, by `tool_use_id`.
//! * Prompts: user lines of a main session file, not sidechain, meta or compact
//!   summary, without tool results, whose first text (or image) block or string
//!   content is not text Claude Code writes itself; by `uuid`.
//! * API errors: assistant lines marked `isApiErrorMessage`, or `<synthetic>`
//!   with a text starting `API Error`; `system` lines of subtype `api_error`; by `uuid`.
//! * Compactions: `system` lines of subtype `compact_boundary`, by `uuid`.
//! * Sessions started: distinct sessions of lines that carry any of the facts
//!   above or a `cwd`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// What a file is, from its place in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Main,
    Subagent,
    Compaction,
}

/// The file a line was read from, as far as facts depend on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind {
    pub role: Role,
    /// The session the layout names (main file stem, or the folder above `subagents/`).
    pub session: Option<String>,
}

/// Totals of every counter the model predicts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Facts {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
    pub requests: u64,
    pub tool_calls: u64,
    pub tool_errors: u64,
    pub prompts: u64,
    pub api_errors: u64,
    pub compactions: u64,
    pub sessions: u64,
}

impl Facts {
    pub fn named(&self) -> [(&'static str, u64); 11] {
        [
            ("tokens{type=input}", self.input),
            ("tokens{type=output}", self.output),
            ("tokens{type=cache_read}", self.cache_read),
            ("tokens{type=cache_creation}", self.cache_creation),
            ("api_requests", self.requests),
            ("tool_calls", self.tool_calls),
            ("tool_errors", self.tool_errors),
            ("prompts", self.prompts),
            ("api_errors", self.api_errors),
            ("compactions", self.compactions),
            ("sessions_started", self.sessions),
        ]
    }
}

/// User text Claude Code writes itself: such a line is no prompt (restated from
/// the format notes, as `tests/it/oracle.rs` does, not taken from the crate).
const NOT_PROMPTS: &[&str] = &[
    "<local-command-stdout>",
    "<local-command-stderr>",
    "<local-command-caveat>",
    "[Request interrupted",
    "<bash-stdout>",
    "<bash-stderr>",
];

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key) == Some(&Value::Bool(true))
}

fn blocks(msg: &Value) -> &[Value] {
    match msg.get("content") {
        Some(Value::Array(b)) => b,
        _ => &[],
    }
}

/// The first text of a message: its string content, or its first text block.
fn first_text(msg: &Value) -> Option<&str> {
    match msg.get("content") {
        Some(Value::String(s)) => Some(s),
        Some(Value::Array(b)) => b.iter().find_map(|b| text(b, "text")),
        _ => None,
    }
}

/// Count the facts of `lines` (complete lines, without their newline).
pub fn count<'a>(lines: impl IntoIterator<Item = (&'a Kind, &'a [u8])>) -> Facts {
    let mut usage: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    let mut tools = BTreeSet::new();
    let mut errors = BTreeSet::new();
    let mut prompts = BTreeSet::new();
    let mut api_errors = BTreeSet::new();
    let mut compactions = BTreeSet::new();
    let mut sessions = BTreeSet::new();
    for (kind, bytes) in lines {
        let Ok(v) = serde_json::from_slice::<Value>(bytes) else { continue };
        let ty = text(&v, "type").unwrap_or("");
        if !matches!(ty, "user" | "assistant" | "system") {
            continue;
        }
        let Some(session) = text(&v, "sessionId").or(kind.session.as_deref()) else { continue };
        let uuid = text(&v, "uuid").map(str::to_owned);
        let mut effect = v.get("cwd").is_some_and(Value::is_string);
        let msg = v.get("message").unwrap_or(&Value::Null);
        match ty {
            "assistant" => {
                let model = text(msg, "model").unwrap_or("unknown");
                if flag(&v, "isApiErrorMessage") || model == "<synthetic>" {
                    if flag(&v, "isApiErrorMessage") || first_text(msg).is_some_and(|t| t.starts_with("API Error")) {
                        api_errors.insert(uuid);
                        effect = true;
                    }
                } else {
                    if let (Some(id), Some(u)) = (text(msg, "id"), msg.get("usage").filter(|u| u.is_object())) {
                        let key = match text(&v, "requestId") {
                            Some(r) => format!("{id}\u{0}{r}"),
                            None => id.to_owned(),
                        };
                        let f = |n: &str| u.get(n).and_then(Value::as_u64).unwrap_or(0);
                        let now = [
                            f("input_tokens"),
                            f("output_tokens"),
                            f("cache_read_input_tokens"),
                            f("cache_creation_input_tokens"),
                        ];
                        let max = usage.entry(key).or_default();
                        for (m, n) in max.iter_mut().zip(now) {
                            *m = (*m).max(n);
                        }
                        effect = true;
                    }
                    for b in blocks(msg) {
                        if text(b, "type") == Some("tool_use")
                            && let (Some(id), Some(_)) = (text(b, "id"), text(b, "name"))
                        {
                            tools.insert(id.to_owned());
                            effect = true;
                        }
                    }
                }
            }
            "user" => {
                let mut results = false;
                for b in blocks(msg) {
                    if text(b, "type") == Some("tool_result")
                        && let Some(id) = text(b, "tool_use_id")
                    {
                        results = true;
                        if flag(b, "is_error") {
                            errors.insert(id.to_owned());
                        }
                    }
                }
                effect |= results;
                // The first text or image block (or string content) is what was typed.
                let (has_text, head) = match msg.get("content") {
                    Some(Value::String(s)) => (true, Some(s.as_str())),
                    Some(Value::Array(b)) => {
                        match b.iter().find(|b| matches!(text(b, "type"), Some("text" | "image"))) {
                            Some(b) => (true, text(b, "text")),
                            None => (false, None),
                        }
                    }
                    _ => (false, None),
                };
                let prompt = has_text
                    && !results
                    && !flag(&v, "isSidechain")
                    && !flag(&v, "isMeta")
                    && !flag(&v, "isCompactSummary")
                    && !head.is_some_and(|h| NOT_PROMPTS.iter().any(|p| h.starts_with(p)));
                if prompt {
                    effect = true;
                    if kind.role == Role::Main {
                        prompts.insert(uuid);
                    }
                }
            }
            _ => match text(&v, "subtype") {
                Some("compact_boundary") => {
                    compactions.insert(uuid);
                    effect = true;
                }
                Some("api_error") => {
                    api_errors.insert(uuid);
                    effect = true;
                }
                _ => {}
            },
        }
        if effect {
            sessions.insert(session.to_owned());
        }
    }
    let mut f = Facts {
        requests: usage.len() as u64,
        tool_calls: tools.len() as u64,
        tool_errors: errors.len() as u64,
        prompts: prompts.len() as u64,
        api_errors: api_errors.len() as u64,
        compactions: compactions.len() as u64,
        sessions: sessions.len() as u64,
        ..Facts::default()
    };
    for [i, o, r, c] in usage.into_values() {
        f.input += i;
        f.output += o;
        f.cache_read += r;
        f.cache_creation += c;
    }
    f
}
