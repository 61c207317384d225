//! `scan` reports: totals by model, tool and project, as JSON or a table.
//!
//! In: an aggregator after a full pass. Out: a [`Report`] built only from the
//! counters that `/metrics` exposes, so the two can never disagree.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::state::live::Aggregator;
use crate::state::metrics::Counter;

pub mod by;

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
    /// Estimated cost in USD from the price table (unpriced models count 0), rounded
    /// to 6 decimals in JSON.
    #[serde(serialize_with = "ser_money")]
    pub cost_usd: f64,
}

impl Usage {
    /// All four token types together.
    pub fn total_tokens(&self) -> u64 {
        self.input + self.output + self.cache_creation + self.cache_read
    }

    /// Requests, the four token types, all tokens and dollars, as a table shows them.
    pub fn cells(&self) -> [String; 7] {
        [
            num(self.requests),
            num(self.input),
            num(self.output),
            num(self.cache_creation),
            num(self.cache_read),
            num(self.total_tokens()),
            money(self.cost_usd),
        ]
    }

    /// Add `o` to these.
    pub fn add(&mut self, o: &Usage) {
        self.requests += o.requests;
        self.input += o.input;
        self.output += o.output;
        self.cache_creation += o.cache_creation;
        self.cache_read += o.cache_read;
        self.cost_usd += o.cost_usd;
    }
}

fn ser_money<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round6(*v))
}

/// Money in JSON: whole micro-dollars (`1.9525576999999998` → `1.952558`).
pub fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// `1234567` → `1,234,567`.
pub fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut o = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            o.push(',');
        }
        o.push(c);
    }
    o
}

/// Dollars with cents and separators: `1234.567` → `1,234.57`.
pub fn money(v: f64) -> String {
    let cents = (v * 100.0).round().max(0.0) as u64;
    format!("{}.{:02}", num(cents / 100), cents % 100)
}

/// Columns padded to their widest cell: the first `first_num` left-aligned, the rest
/// (numbers) right-aligned; a rule and `total` last when given.
pub fn render_table(head: &[String], rows: &[Vec<String>], total: Option<&Vec<String>>, first_num: usize) -> String {
    let width = |i: usize| {
        let cells = std::iter::once(&head[i]).chain(rows.iter().map(|r| &r[i])).chain(total.map(|t| &t[i]));
        cells.map(|c| c.chars().count()).max().unwrap_or(0)
    };
    let widths: Vec<usize> = (0..head.len()).map(width).collect();
    let line = |o: &mut String, cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(
                |(i, c)| {
                    if i < first_num { format!("{c:<w$}", w = widths[i]) } else { format!("{c:>w$}", w = widths[i]) }
                },
            )
            .collect();
        let _ = writeln!(o, "{}", parts.join("  ").trim_end());
    };
    let mut o = String::new();
    line(&mut o, head);
    for r in rows {
        line(&mut o, r);
    }
    if let Some(t) = total {
        let rule: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        let _ = writeln!(o, "{}", "-".repeat(rule));
        line(&mut o, t);
    }
    o
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
    /// All usage together (the sum of `models`, and of `projects`).
    pub totals: Usage,
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
        let mut totals = Usage::default();
        models.values().for_each(|u| totals.add(u));
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
            totals,
        }
    }

    /// A readable summary for a terminal: aligned columns with thousands separators,
    /// a total tokens column and a totals row.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{} files, {:.1} MB, {} lines ({} malformed, {} unknown type, {} oversized), {} sessions, {} prompts\n",
            num(self.files as u64),
            self.bytes as f64 / 1e6,
            num(self.lines.ok + self.lines.malformed + self.lines.unknown_type + self.lines.oversized),
            num(self.lines.malformed),
            num(self.lines.unknown_type),
            num(self.lines.oversized),
            num(self.sessions),
            num(self.prompts)
        );
        let usage = |name: &str, u: &Usage| std::iter::once(name.to_owned()).chain(u.cells()).collect::<Vec<_>>();
        for (title, rows) in [("model", &self.models), ("project", &self.projects)] {
            let head: Vec<String> =
                [title, "requests", "input", "output", "cache write", "cache read", "total tokens", "cost $"]
                    .map(String::from)
                    .into();
            let rows: Vec<Vec<String>> = rows.iter().map(|(name, u)| usage(name, u)).collect();
            o += &render_table(&head, &rows, Some(&usage("total", &self.totals)), 1);
            o.push('\n');
        }
        let head: Vec<String> = ["tool", "calls", "errors"].map(String::from).into();
        let rows: Vec<Vec<String>> =
            self.tools.iter().map(|(name, t)| vec![truncate(name, 48), num(t.calls), num(t.errors)]).collect();
        o += &render_table(&head, &rows, None, 1);
        if !self.unpriced_models.is_empty() {
            let _ = writeln!(o, "\nunpriced models (cost counted as 0): {}", self.unpriced_models.join(", "));
        }
        o
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n - 1).chain(['…']).collect() }
}
