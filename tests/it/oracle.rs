//! An independent, deliberately simple count of tokens and tool calls in a folder of
//! transcripts, written from `docs/transcript-format.md` (§5 dedup, §6 sub-agents, §7
//! synthetic messages) without looking at the crate's implementation. Tests compare the
//! binary's output (and ccusage's) with this.
//!
//! Rules:
//! * Tokens: top-level `type:"assistant"` lines with an object `message.usage` and a string
//!   `message.id`; `message.model == "<synthetic>"` and `isApiErrorMessage: true` excluded.
//!   Key = `message.id` + NUL + `requestId` (when `requestId` is a string), else `message.id`.
//!   Dedup is global over all files; per key the line with the largest
//!   input+output+cache_creation+cache_read wins, ties keep the first seen.
//!   Usage embedded in other line types (`progress` → `data.message.message.usage`) or in
//!   `toolUseResult` never counts, because only the top-level `message.usage` of assistant
//!   lines is read.
//! * Tool calls: `tool_use` blocks in `message.content` of assistant lines, unique by `id`.
//!   `mcp__<server>__<tool>` is labelled `mcp:<server>`.
//! * Tool errors: `tool_result` blocks with `is_error == true` in `message.content` of user
//!   lines, unique by `tool_use_id`, labelled like the matching `tool_use` (searched in the
//!   whole corpus), else `unknown`.
//!
//! Not applied (ccusage-only rules of §5.3, none of which changes the real corpus — checked):
//! required `timestamp`, dropping lines with JSON `null` ids/fields, the `/btw` sidechain
//! replay rule (match on `message.id` alone when a copy is a sidechain), and the tie-break
//! preferring the line carrying `usage.speed`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_creation: u64,
    pub cache_read: u64,
    /// Distinct dedup keys (API responses).
    pub requests: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Oracle {
    /// Per model (the kept line's `message.model`).
    pub tokens: BTreeMap<String, Tokens>,
    /// Per tool label: (calls, errors).
    pub tools: BTreeMap<String, (u64, u64)>,
}

/// Every `*.jsonl` file under `dir`, recursively, sorted by path.
pub fn jsonl_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "jsonl") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every line of every file that parses as JSON, in file order.
fn parsed_lines(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for path in jsonl_files(dir) {
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        for line in bytes.split(|b| *b == b'\n') {
            if let Ok(value) = serde_json::from_slice::<Value>(line) {
                out.push(value);
            }
        }
    }
    out
}

/// A numeric usage field; missing or not an unsigned integer → 0.
fn field(usage: &Value, name: &str) -> u64 {
    usage.get(name).and_then(Value::as_u64).unwrap_or(0)
}

fn usage_total(usage: &Value) -> u64 {
    field(usage, "input_tokens")
        + field(usage, "output_tokens")
        + field(usage, "cache_creation_input_tokens")
        + field(usage, "cache_read_input_tokens")
}

/// `mcp__<server>__<tool>` → `mcp:<server>`; anything else unchanged.
pub fn tool_label(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("mcp__")
        && let Some(end) = rest.find("__")
    {
        return format!("mcp:{}", &rest[..end]);
    }
    name.to_string()
}

fn line_type(line: &Value) -> Option<&str> {
    line.get("type").and_then(Value::as_str)
}

/// `message.content` when it is an array, else empty.
fn content_blocks(line: &Value) -> &[Value] {
    match line.get("message").and_then(|m| m.get("content")) {
        Some(Value::Array(blocks)) => blocks,
        _ => &[],
    }
}

pub fn count(dir: &Path) -> Oracle {
    let lines = parsed_lines(dir);

    // ---- tokens ----
    // dedup key -> (total, model, usage) of the kept line
    let mut kept: BTreeMap<String, (u64, String, Value)> = BTreeMap::new();
    for line in &lines {
        if line_type(line) != Some("assistant") {
            continue;
        }
        let Some(message) = line.get("message") else { continue };
        let Some(usage) = message.get("usage").filter(|u| u.is_object()) else { continue };
        let Some(id) = message.get("id").and_then(Value::as_str) else { continue };
        let model = message.get("model").and_then(Value::as_str).unwrap_or("unknown");
        if model == "<synthetic>" || line.get("isApiErrorMessage") == Some(&Value::Bool(true)) {
            continue;
        }
        let key = match line.get("requestId").and_then(Value::as_str) {
            Some(request) => format!("{id}\u{0}{request}"),
            None => id.to_string(),
        };
        let total = usage_total(usage);
        match kept.get(&key) {
            None => {
                kept.insert(key, (total, model.to_string(), usage.clone()));
            }
            Some((best, _, _)) if total > *best => {
                kept.insert(key, (total, model.to_string(), usage.clone()));
            }
            Some(_) => {} // smaller or equal: keep the first seen
        }
    }
    let mut tokens: BTreeMap<String, Tokens> = BTreeMap::new();
    for (_, model, usage) in kept.values() {
        let t = tokens.entry(model.clone()).or_default();
        t.input += field(usage, "input_tokens");
        t.output += field(usage, "output_tokens");
        t.cache_creation += field(usage, "cache_creation_input_tokens");
        t.cache_read += field(usage, "cache_read_input_tokens");
        t.requests += 1;
    }

    // ---- tools ----
    let mut label_of_use: BTreeMap<String, String> = BTreeMap::new(); // tool_use id -> label
    for line in &lines {
        if line_type(line) != Some("assistant") {
            continue;
        }
        for block in content_blocks(line) {
            if block.get("type").and_then(Value::as_str) != Some("tool_use") {
                continue;
            }
            let Some(id) = block.get("id").and_then(Value::as_str) else { continue };
            let name = block.get("name").and_then(Value::as_str).unwrap_or("");
            label_of_use.entry(id.to_string()).or_insert_with(|| tool_label(name));
        }
    }
    let mut errored: BTreeSet<String> = BTreeSet::new(); // tool_use_id of failed results
    for line in &lines {
        if line_type(line) != Some("user") {
            continue;
        }
        for block in content_blocks(line) {
            if block.get("type").and_then(Value::as_str) != Some("tool_result")
                || block.get("is_error") != Some(&Value::Bool(true))
            {
                continue;
            }
            if let Some(id) = block.get("tool_use_id").and_then(Value::as_str) {
                errored.insert(id.to_string());
            }
        }
    }
    let mut tools: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for label in label_of_use.values() {
        tools.entry(label.clone()).or_default().0 += 1;
    }
    for id in &errored {
        let label = label_of_use.get(id).cloned().unwrap_or_else(|| "unknown".to_string());
        tools.entry(label).or_default().1 += 1;
    }

    Oracle { tokens, tools }
}

/// Prefixes of user text that Claude Code writes itself (command output, interruptions):
/// such a user line is not a prompt (docs/transcript-format.md).
const NOT_PROMPTS: &[&str] = &[
    "<local-command-stdout>",
    "<local-command-stderr>",
    "<local-command-caveat>",
    "[Request interrupted",
    "<bash-stdout>",
    "<bash-stderr>",
];

/// Whether a user line's first text was typed by the user (not written by Claude Code).
pub fn typed_by_the_user(text: &str) -> bool {
    !NOT_PROMPTS.iter().any(|p| text.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::fixtures_dir;

    /// Runs the oracle on a temp folder holding only the given real fixture file.
    fn count_one(relative: &str) -> Oracle {
        let src = fixtures_dir().join("real").join(relative);
        let tmp = tempfile::tempdir().expect("temp dir");
        fs::copy(&src, tmp.path().join(src.file_name().unwrap())).expect("copy fixture");
        count(tmp.path())
    }

    #[test]
    fn oracle_cb2e607c_matches_documented_dedup_figures() {
        // transcript-format.md §5.2: 200 assistant lines → 80 responses; output 61,126 naive
        // vs 23,714 deduplicated; cache reads 8.5 M naive vs 3.48 M deduplicated.
        let o = count_one(
            "claude-code-log/projects/-Users-dain-workspace-coderabbit-review-helper/cb2e607c-c758-415a-8b45-c49e4631906a.jsonl",
        );
        assert_eq!(o.tokens.keys().collect::<Vec<_>>(), ["claude-sonnet-4-5-20250929"]);
        let t = o.tokens["claude-sonnet-4-5-20250929"];
        assert_eq!(t.requests, 80);
        assert_eq!(t.output, 23_714);
        // "3.48 M": stated to 0.01 M.
        assert!((3_475_000..3_485_000).contains(&t.cache_read), "cache_read {}", t.cache_read);
    }

    #[test]
    fn oracle_a7da6a22_keeps_max_output() {
        // §5.2: 177 assistant lines → 103 responses; first-line output 16,488 vs max 31,430.
        let o = count_one("claude-code-log/projects/-src-deep-manifest/a7da6a22-facc-4fcd-8bab-f83c87862004.jsonl");
        assert_eq!(o.tokens.keys().collect::<Vec<_>>(), ["claude-opus-4-5-20251101"]);
        let t = o.tokens["claude-opus-4-5-20251101"];
        assert_eq!(t.requests, 103);
        assert_eq!(t.output, 31_430);
    }

    #[test]
    fn oracle_ef958aa1_response_count() {
        // §5.2: 62 assistant lines → 17 responses.
        let o = count_one("claude-code-log/projects/-experiments-worktrees/ef958aa1-0e93-49f0-bb71-150f63befcd1.jsonl");
        assert_eq!(o.tokens.values().map(|t| t.requests).sum::<u64>(), 17);
    }

    #[test]
    fn oracle_ignores_progress_and_tool_result_usage_and_synthetic() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let lines = [
            // Two lines of one response: max wins.
            r#"{"type":"assistant","requestId":"req_1","message":{"id":"msg_1","model":"m","usage":{"input_tokens":3,"output_tokens":1,"cache_read_input_tokens":10}}}"#,
            r#"{"type":"assistant","requestId":"req_1","message":{"id":"msg_1","model":"m","usage":{"input_tokens":3,"output_tokens":7,"cache_read_input_tokens":10},"content":[{"type":"tool_use","id":"toolu_1","name":"mcp__github__get_issue","input":{}}]}}"#,
            // Same id, no requestId: a different key.
            r#"{"type":"assistant","message":{"id":"msg_1","model":"m","usage":{"output_tokens":2}}}"#,
            // Embedded copies never count.
            r#"{"type":"progress","data":{"message":{"type":"assistant","requestId":"req_9","message":{"id":"msg_9","model":"m","usage":{"output_tokens":1000}}}}}"#,
            r#"{"type":"user","toolUseResult":{"usage":{"output_tokens":1000}},"message":{"content":[{"type":"tool_result","tool_use_id":"toolu_1","is_error":true},{"type":"tool_result","tool_use_id":"toolu_x","is_error":true}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"toolu_1","is_error":true}]}}"#,
            // Synthetic / API error lines.
            r#"{"type":"assistant","isApiErrorMessage":true,"message":{"id":"u-1","model":"m","usage":{"output_tokens":50}}}"#,
            r#"{"type":"assistant","message":{"id":"u-2","model":"<synthetic>","usage":{"output_tokens":0}}}"#,
            "{not json",
        ];
        fs::write(tmp.path().join("a.jsonl"), lines.join("\n")).unwrap();
        let o = count(tmp.path());
        assert_eq!(
            o.tokens,
            BTreeMap::from([(
                "m".to_string(),
                Tokens { input: 3, output: 9, cache_creation: 0, cache_read: 10, requests: 2 }
            )])
        );
        assert_eq!(o.tools, BTreeMap::from([("mcp:github".to_string(), (1, 1)), ("unknown".to_string(), (0, 1))]));
    }
}
