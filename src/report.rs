//! `scan` reports: totals by model, tool and project, as JSON or a table.
//!
//! In: an aggregator after a full pass. Out: a [`Report`] built only from the
//! counters that `/metrics` exposes, so the two can never disagree.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::state::live::Aggregator;
use crate::state::metrics::Counter;

/// API usage of one model or one project (sums of the `/metrics` counters, all query sources).
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Usage {
    /// Distinct API responses (`claude_sessions_api_requests_total`).
    pub requests: u64,
    /// Input tokens (`claude_sessions_tokens_total{type="input"}`).
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Tokens written to the prompt cache.
    pub cache_creation: u64,
    /// Tokens read from the prompt cache.
    pub cache_read: u64,
    /// Estimated cost in USD from the price table (unpriced models count 0).
    pub cost_usd: f64,
}

/// Calls of one tool (MCP tools as `mcp:<server>`).
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct ToolCounts {
    /// Calls the model requested.
    pub calls: u64,
    /// Results marked `is_error`.
    pub errors: u64,
}

/// Transcript lines read, by result (`claude_sessions_exporter_lines_total`).
#[derive(Debug, Default, Serialize)]
pub struct Lines {
    /// Parsed and applied.
    pub ok: u64,
    /// Not parseable as a transcript record (bad JSON, wrong shape).
    pub malformed: u64,
    /// A record of a type this version does not know (skipped).
    pub unknown_type: u64,
    /// Longer than `--max-line-bytes` (skipped unread).
    pub oversized: u64,
}

/// The totals of one pass (`scan --format json` serializes it as is).
#[derive(Debug, Serialize)]
pub struct Report {
    /// This program's version.
    pub version: &'static str,
    /// Transcript files read.
    pub files: usize,
    /// Bytes read from them.
    pub bytes: u64,
    /// Lines read, by result.
    pub lines: Lines,
    /// Sessions seen.
    pub sessions: u64,
    /// Prompts typed by the user.
    pub prompts: u64,
    /// Usage by model name.
    pub models: BTreeMap<String, Usage>,
    /// Calls by tool name.
    pub tools: BTreeMap<String, ToolCounts>,
    /// Usage by project label.
    pub projects: BTreeMap<String, Usage>,
    /// Models with no price in the table (their cost counts as 0), sorted.
    pub unpriced_models: Vec<String>,
}

impl Report {
    /// The report of `agg`'s counters after a pass over `files` files.
    pub fn from_aggregator(agg: &Aggregator, files: usize) -> Report {
        let s = &agg.store;
        let mut models: BTreeMap<String, Usage> = BTreeMap::new();
        let mut projects: BTreeMap<String, Usage> = BTreeMap::new();
        let get = |labels: &[(&str, &str)], name: &str| {
            labels.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| *v).to_owned()
        };
        for (labels, v) in s.counter_series(Counter::Tokens) {
            let (model, project) = (get(&labels, "model"), get(&labels, "project"));
            for u in [models.entry(model).or_default(), projects.entry(project).or_default()] {
                let n = v as u64;
                match get(&labels, "type").as_str() {
                    "input" => u.input += n,
                    "output" => u.output += n,
                    "cache_read" => u.cache_read += n,
                    "cache_creation" => u.cache_creation += n,
                    _ => {}
                }
            }
        }
        for (labels, v) in s.counter_series(Counter::ApiRequests) {
            models.entry(get(&labels, "model")).or_default().requests += v as u64;
            projects.entry(get(&labels, "project")).or_default().requests += v as u64;
        }
        for (labels, v) in s.counter_series(Counter::Cost) {
            models.entry(get(&labels, "model")).or_default().cost_usd += v;
            projects.entry(get(&labels, "project")).or_default().cost_usd += v;
        }
        let mut tools: BTreeMap<String, ToolCounts> = BTreeMap::new();
        for (labels, v) in s.counter_series(Counter::ToolCalls) {
            tools.entry(get(&labels, "tool")).or_default().calls += v as u64;
        }
        for (labels, v) in s.counter_series(Counter::ToolErrors) {
            tools.entry(get(&labels, "tool")).or_default().errors += v as u64;
        }
        let line = |r: &str| s.counter(Counter::Lines, &[r]) as u64;
        Report {
            version: crate::VERSION,
            files,
            bytes: s.counter(Counter::BytesRead, &[]) as u64,
            lines: Lines {
                ok: line("ok"),
                malformed: line("malformed"),
                unknown_type: line("unknown_type"),
                oversized: line("oversized"),
            },
            sessions: s.counter_sum(Counter::SessionsStarted, &[]) as u64,
            prompts: s.counter_sum(Counter::Prompts, &[]) as u64,
            models,
            tools,
            projects,
            unpriced_models: agg.unpriced_models().iter().cloned().collect(),
        }
    }

    /// A readable summary for a terminal.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{} files, {:.1} MB, {} lines ({} malformed, {} unknown type, {} oversized), {} sessions, {} prompts\n",
            self.files,
            self.bytes as f64 / 1e6,
            self.lines.ok + self.lines.malformed + self.lines.unknown_type + self.lines.oversized,
            self.lines.malformed,
            self.lines.unknown_type,
            self.lines.oversized,
            self.sessions,
            self.prompts
        );
        for (title, rows) in [("model", &self.models), ("project", &self.projects)] {
            let _ = writeln!(
                o,
                "{title:<34} {:>9} {:>12} {:>12} {:>14} {:>14} {:>10}",
                "requests", "input", "output", "cache write", "cache read", "cost $"
            );
            let mut total = Usage::default();
            for (name, u) in rows {
                let _ = writeln!(
                    o,
                    "{:<34} {:>9} {:>12} {:>12} {:>14} {:>14} {:>10.2}",
                    truncate(name, 34),
                    u.requests,
                    u.input,
                    u.output,
                    u.cache_creation,
                    u.cache_read,
                    u.cost_usd
                );
                total.requests += u.requests;
                total.input += u.input;
                total.output += u.output;
                total.cache_creation += u.cache_creation;
                total.cache_read += u.cache_read;
                total.cost_usd += u.cost_usd;
            }
            let _ = writeln!(
                o,
                "{:<34} {:>9} {:>12} {:>12} {:>14} {:>14} {:>10.2}\n",
                "total",
                total.requests,
                total.input,
                total.output,
                total.cache_creation,
                total.cache_read,
                total.cost_usd
            );
        }
        let _ = writeln!(o, "{:<34} {:>9} {:>9}", "tool", "calls", "errors");
        for (name, t) in &self.tools {
            let _ = writeln!(o, "{:<34} {:>9} {:>9}", truncate(name, 34), t.calls, t.errors);
        }
        if !self.unpriced_models.is_empty() {
            let _ = writeln!(o, "\nunpriced models (cost counted as 0): {}", self.unpriced_models.join(", "));
        }
        o
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n - 1).chain(['…']).collect() }
}
