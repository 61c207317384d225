//! Every metric name, declared once, and the values behind them.
//!
//! In: increments and observations from the aggregator, gauge values computed
//! from live state. Out: OpenMetrics text (encoded by `prometheus-client`
//! through a custom collector) or the classic Prometheus text format, and a
//! serializable snapshot of all counters and histograms for the checkpoint —
//! that is what keeps counters monotonic across restarts.
//!
//! Label values come only from capped sets: once a family holds
//! `max_series` series, new label sets fold their open labels (project,
//! model, tool, agent type) into `other`, and the fold is counted.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::state::dedup::FastMap;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use serde::{Deserialize, Serialize};

mod persist;

/// Separator of label values inside a series key (never in a value: `label_value` strips it).
const SEP: char = '\u{1f}';

/// Labels whose values come from transcripts and are therefore capped.
const OPEN_LABELS: &[&str] = &["project", "model", "tool", "agent_type", "rule"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Counter,
    Gauge,
    Histogram,
}

/// A metric family's declaration.
#[derive(Debug)]
pub struct Def {
    /// Full name without `_total` (counters) and without the unit suffix.
    pub base: &'static str,
    pub unit: Option<&'static str>,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    pub kind: Type,
    /// Histogram upper bounds.
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
        let mut n = self.base.to_owned();
        if let Some(u) = self.unit {
            n.push('_');
            n.push_str(u);
        }
        if self.kind == Type::Counter {
            n.push_str("_total");
        }
        n
    }
}

macro_rules! families {
    ($enum:ident, $table:ident, $kind:expr, { $($var:ident => ($base:expr, $unit:expr, $labels:expr, $buckets:expr, $help:expr)),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $enum { $($var),* }
        pub static $table: &[Def] = &[$(Def { base: $base, unit: $unit, help: $help, labels: $labels, kind: $kind, buckets: $buckets }),*];
        impl $enum {
            pub fn def(self) -> &'static Def { &$table[self as usize] }
        }
    };
}

const SECONDS_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];
const SESSION_BUCKETS: &[f64] = &[60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0];
const TURN_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0];
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

families!(Counter, COUNTERS, Type::Counter, {
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

families!(Histogram, HISTOGRAMS, Type::Histogram, {
    SessionDuration => ("claude_sessions_session_duration", Some("seconds"), &["project"], SESSION_BUCKETS, "Duration of ended sessions, first to last record."),
    ToolDuration => ("claude_sessions_tool_duration", Some("seconds"), &["tool"], SECONDS_BUCKETS, "Time from a tool call to its result (transcript timestamps)."),
    ContextTokens => ("claude_sessions_context", Some("tokens"), &["model"], CONTEXT_BUCKETS, "Prompt size (input + cache writes + cache reads) of each main-chain API call."),
    TurnDuration => ("claude_sessions_turn_duration", Some("seconds"), &["project"], TURN_BUCKETS, "Time from a turn's start (a prompt, or activity with no turn open) to its last activity; a turn ends at the next prompt, at idleness with no tool call of it running, or at session end."),
    EventLag => ("claude_sessions_exporter_event_lag", Some("seconds"), &[], LAG_BUCKETS, "Time from a transcript write (file mtime) to its effect being visible in metrics (this process only)."),
});

families!(Gauge, GAUGES, Type::Gauge, {
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

/// No real count gets past this (2^53, where an f64, the exposition's number,
/// stops counting by ones); a checkpoint holding a larger one is damaged, and
/// adding to it could overflow.
pub const MAX_COUNT: u64 = 1 << 53;

/// One histogram series.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HistData {
    /// Per-bucket (not cumulative) counts; the last is +Inf.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

/// Make a transcript string safe and bounded as a label value.
pub fn label_value(s: &str) -> String {
    let mut v: String = s.chars().filter(|c| *c != SEP && !c.is_control()).take(120).collect();
    if v.is_empty() {
        v.push_str("unknown");
    }
    v
}

/// The values of all metric families.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Store {
    #[serde(skip, default = "default_cap")]
    max_series: usize,
    /// By family name (see [`persist`]).
    #[serde(serialize_with = "ser_counters", deserialize_with = "de_counters")]
    counters: Vec<FastMap<Box<str>, f64>>,
    #[serde(serialize_with = "ser_histograms", deserialize_with = "de_histograms")]
    histograms: Vec<FastMap<Box<str>, HistData>>,
    #[serde(skip, default = "empty_gauges")]
    gauges: Vec<FastMap<Box<str>, f64>>,
    /// Latest exemplar per histogram series and bucket (this process only).
    #[serde(skip, default = "empty_exemplars")]
    exemplars: Vec<FastMap<Box<str>, Vec<Option<Exemplar>>>>,
    #[serde(skip)]
    key: String,
}

/// A trace that an observation came from, shown next to its histogram bucket
/// (OpenMetrics exemplars), so a slow bucket leads to its trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// Transcript time of the observation, ms since the epoch.
    pub at_ms: i64,
    /// Observed value in stored units.
    pub value: f64,
}

fn ser_counters<S: serde::Serializer>(v: &[FastMap<Box<str>, f64>], s: S) -> Result<S::Ok, S::Error> {
    persist::serialize(COUNTERS, v, s)
}

fn de_counters<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<FastMap<Box<str>, f64>>, D::Error> {
    persist::deserialize(COUNTERS, persist::V1_COUNTERS, d)
}

fn ser_histograms<S: serde::Serializer>(v: &[FastMap<Box<str>, HistData>], s: S) -> Result<S::Ok, S::Error> {
    persist::serialize(HISTOGRAMS, v, s)
}

fn de_histograms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<FastMap<Box<str>, HistData>>, D::Error> {
    persist::deserialize(HISTOGRAMS, persist::V1_HISTOGRAMS, d)
}

fn default_cap() -> usize {
    2000
}

fn empty_exemplars() -> Vec<FastMap<Box<str>, Vec<Option<Exemplar>>>> {
    vec![FastMap::default(); HISTOGRAMS.len()]
}

fn empty_gauges() -> Vec<FastMap<Box<str>, f64>> {
    vec![FastMap::default(); GAUGES.len()]
}

impl Default for Store {
    fn default() -> Self {
        Store::new(default_cap())
    }
}

impl Store {
    pub fn new(max_series: usize) -> Store {
        Store {
            max_series: max_series.max(1),
            counters: vec![FastMap::default(); COUNTERS.len()],
            histograms: vec![FastMap::default(); HISTOGRAMS.len()],
            gauges: empty_gauges(),
            exemplars: empty_exemplars(),
            key: String::new(),
        }
    }

    /// Whether a store read from a checkpoint can be used: each histogram series
    /// has one count per bucket plus +Inf, and no count past [`MAX_COUNT`]. A
    /// damaged checkpoint failed these (found by fuzzing): an index out of
    /// bounds on the next observation, overflows when observing or rendering.
    pub fn check(&self) -> Result<(), String> {
        for (family, def) in self.histograms.iter().zip(HISTOGRAMS.iter()) {
            for h in family.values() {
                if h.counts.len() != def.buckets.len() + 1 {
                    let (n, want) = (h.counts.len(), def.buckets.len() + 1);
                    return Err(format!("histogram {} has {n} buckets instead of {want}", def.base));
                }
                if h.count > MAX_COUNT || h.counts.iter().any(|c| *c > MAX_COUNT) {
                    return Err(format!("histogram {} holds a count out of range", def.base));
                }
            }
        }
        Ok(())
    }

    /// After loading a checkpoint: apply the configured cap and fix up families added since.
    pub fn set_max_series(&mut self, max_series: usize) {
        self.max_series = max_series.max(1);
        self.counters.resize(COUNTERS.len(), FastMap::default());
        self.histograms.resize(HISTOGRAMS.len(), FastMap::default());
        self.exemplars.resize(HISTOGRAMS.len(), FastMap::default());
        self.gauges = empty_gauges();
    }

    /// Key of `values` in `key`; folded (open labels → `other`) if the family is full
    /// and the series is new. Returns whether it folded.
    fn key_for<V>(key: &mut String, def: &Def, values: &[&str], family: &FastMap<Box<str>, V>, cap: usize) -> bool {
        debug_assert_eq!(def.labels.len(), values.len(), "{}", def.base);
        key.clear();
        join(key, values, |_| false, def);
        if family.len() < cap || family.contains_key(key.as_str()) {
            return false;
        }
        key.clear();
        join(key, values, |name| OPEN_LABELS.contains(&name), def);
        true
    }

    /// Add `by`, in stored units (see [`Def::scale`]: nano-USD for cost).
    pub fn inc(&mut self, c: Counter, values: &[&str], by: f64) {
        if by <= 0.0 || by.is_nan() {
            return;
        }
        let mut key = std::mem::take(&mut self.key);
        let family = &mut self.counters[c as usize];
        let folded = Self::key_for(&mut key, c.def(), values, family, self.max_series);
        match family.get_mut(key.as_str()) {
            Some(v) => *v += by,
            None => {
                family.insert(key.as_str().into(), by);
            }
        }
        self.key = key;
        if folded && c != Counter::SeriesOverflow {
            self.inc(Counter::SeriesOverflow, &[c.def().base], 1.0);
        }
    }

    /// Make a counter series exist at 0, so that `rate()` and alerts see it
    /// before anything happens (for the exporter's own closed-label counters).
    pub fn touch(&mut self, c: Counter, values: &[&str]) {
        let mut key = String::new();
        join(&mut key, values, |_| false, c.def());
        self.counters[c as usize].entry(key.into_boxed_str()).or_insert(0.0);
    }

    /// The exporter's own counters, present from the start.
    pub fn touch_self_metrics(&mut self) {
        self.touch(Counter::BytesRead, &[]);
        for r in ["ok", "malformed", "unknown_type", "oversized"] {
            self.touch(Counter::Lines, &[r]);
        }
        self.touch(Counter::Truncations, &[]);
        self.touch(Counter::Rotations, &[]);
        for k in ["file", "folder"] {
            self.touch(Counter::ReadErrors, &[k]);
        }
        for r in ["ok", "error"] {
            self.touch(Counter::CheckpointWrites, &[r]);
        }
        self.touch(Counter::DedupEvictions, &[]);
    }

    /// Observe `v`, in stored units (see [`Def::scale`]: milliseconds for seconds).
    pub fn observe(&mut self, h: Histogram, values: &[&str], v: f64) {
        self.observe_with(h, values, v, None);
    }

    /// Observe `v` and remember `exemplar` as its bucket's latest.
    pub fn observe_with(&mut self, h: Histogram, values: &[&str], v: f64, exemplar: Option<Exemplar>) {
        if v.is_nan() {
            return;
        }
        let def = h.def();
        let mut key = std::mem::take(&mut self.key);
        let family = &mut self.histograms[h as usize];
        let folded = Self::key_for(&mut key, def, values, family, self.max_series);
        if !family.contains_key(key.as_str()) {
            family.insert(
                key.as_str().into(),
                HistData { counts: vec![0; def.buckets.len() + 1], ..HistData::default() },
            );
        }
        let data = family.get_mut(key.as_str()).expect("inserted above");
        let scale = def.scale();
        let i = def.buckets.iter().position(|b| v <= (b / scale).round()).unwrap_or(def.buckets.len());
        data.counts[i] += 1;
        data.sum += v;
        data.count += 1;
        if let Some(ex) = exemplar {
            let per_bucket = self.exemplars[h as usize]
                .entry(key.as_str().into())
                .or_insert_with(|| vec![None; def.buckets.len() + 1]);
            per_bucket[i] = Some(Exemplar { value: v, ..ex });
        }
        self.key = key;
        if folded {
            self.inc(Counter::SeriesOverflow, &[def.base], 1.0);
        }
    }

    /// Replace all series of a gauge family.
    pub fn set_gauges<'a>(&mut self, g: Gauge, series: impl IntoIterator<Item = (Vec<&'a str>, f64)>) {
        let def = g.def();
        let mut map = FastMap::default();
        for (values, v) in series {
            let mut key = String::new();
            join(&mut key, &values, |_| false, def);
            if map.len() >= self.max_series && !map.contains_key(key.as_str()) {
                key.clear();
                join(&mut key, &values, |name| OPEN_LABELS.contains(&name), def);
                let e = map.entry(key.into_boxed_str()).or_insert(v);
                *e = f64::max(*e, v);
                continue;
            }
            map.insert(key.into_boxed_str(), v);
        }
        self.gauges[g as usize] = map;
    }

    pub fn counter(&self, c: Counter, values: &[&str]) -> f64 {
        let mut key = String::new();
        join(&mut key, values, |_| false, c.def());
        self.counters[c as usize].get(key.as_str()).copied().unwrap_or(0.0) * c.def().scale()
    }

    /// Sum of a counter over all series whose labels match `filter` (name, value) pairs.
    pub fn counter_sum(&self, c: Counter, filter: &[(&str, &str)]) -> f64 {
        self.series(c.def(), &self.counters[c as usize])
            .filter(|(labels, _)| filter.iter().all(|(n, v)| labels.iter().any(|(ln, lv)| ln == n && lv == v)))
            .map(|(_, v)| v)
            .sum::<f64>()
            * c.def().scale()
    }

    /// Label pairs and value of each series of a counter.
    /// Label pairs and value (exposed units) of each series of a counter, sorted.
    pub fn counter_series(&self, c: Counter) -> Vec<(Vec<(&'static str, &str)>, f64)> {
        let scale = c.def().scale();
        let mut v: Vec<_> = self.series(c.def(), &self.counters[c as usize]).map(|(l, v)| (l, v * scale)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// A histogram series with its sum in exposed units.
    pub fn histogram(&self, h: Histogram, values: &[&str]) -> Option<HistData> {
        let mut key = String::new();
        join(&mut key, values, |_| false, h.def());
        let mut d = self.histograms[h as usize].get(key.as_str())?.clone();
        d.sum *= h.def().scale();
        Some(d)
    }

    /// Drop a histogram's series: for process-local ones, not carried over a restart.
    pub fn clear_histogram(&mut self, h: Histogram) {
        self.histograms[h as usize].clear();
    }

    pub fn gauge(&self, g: Gauge, values: &[&str]) -> Option<f64> {
        let mut key = String::new();
        join(&mut key, values, |_| false, g.def());
        self.gauges[g as usize].get(key.as_str()).copied()
    }

    /// Every counter family with its series (stored units; keys as [`labels_of`] reads them).
    pub(crate) fn counter_families(&self) -> impl Iterator<Item = (&'static Def, &FastMap<Box<str>, f64>)> {
        COUNTERS.iter().zip(&self.counters)
    }

    /// Every gauge family with its series.
    pub(crate) fn gauge_families(&self) -> impl Iterator<Item = (&'static Def, &FastMap<Box<str>, f64>)> {
        GAUGES.iter().zip(&self.gauges)
    }

    /// Every histogram family with its series (sums in stored units).
    pub(crate) fn histogram_families(&self) -> impl Iterator<Item = (&'static Def, &FastMap<Box<str>, HistData>)> {
        HISTOGRAMS.iter().zip(&self.histograms)
    }

    fn series<'s, V: Copy>(
        &'s self,
        def: &'static Def,
        map: &'s FastMap<Box<str>, V>,
    ) -> impl Iterator<Item = (Vec<(&'static str, &'s str)>, V)> + 's {
        map.iter().map(move |(k, v)| (split(def, k), *v))
    }

    /// Encode every family through prometheus-client's OpenMetrics encoder.
    pub fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (i, def) in COUNTERS.iter().enumerate() {
            let scale = def.scale();
            encode_family(encoder, def, &self.counters[i], |m, v| {
                m.encode_counter::<NoLabelSet, f64, f64>(&(v * scale), None)
            })?;
        }
        for (i, def) in HISTOGRAMS.iter().enumerate() {
            encode_family(encoder, def, &self.histograms[i], |m, h| {
                let buckets: Vec<(f64, u64)> =
                    def.buckets.iter().copied().chain([f64::INFINITY]).zip(h.counts.iter().copied()).collect();
                m.encode_histogram::<NoLabelSet>(h.sum * def.scale(), h.count, &buckets, None)
            })?;
        }
        for (i, def) in GAUGES.iter().enumerate() {
            encode_family(encoder, def, &self.gauges[i], |m, v| m.encode_gauge(v))?;
        }
        Ok(())
    }
}

impl Store {
    /// Whether any histogram bucket has an exemplar.
    pub fn has_exemplars(&self) -> bool {
        self.exemplars.iter().any(|m| !m.is_empty())
    }

    /// Add exemplars to the `_bucket` lines of OpenMetrics text rendered from this store
    /// (prometheus-client cannot be handed exemplars of a custom collector's histograms).
    pub fn add_exemplars(&self, om: String) -> String {
        if !self.has_exemplars() {
            return om;
        }
        let names: Vec<(String, usize)> = HISTOGRAMS
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.exemplars[*i].is_empty())
            .map(|(i, d)| (format!("{}_bucket{{", d.exposed_name()), i))
            .collect();
        let mut out = String::with_capacity(om.len() + 1024);
        for line in om.lines() {
            out.push_str(line);
            if let Some((prefix, i)) = names.iter().find(|(n, _)| line.starts_with(n.as_str()))
                && let Some(ex) = self.exemplar_for(*i, &line[prefix.len() - 1..])
            {
                let def = &HISTOGRAMS[*i];
                // Divide by the integer inverse: 2400 ms → 2.4 exactly, not 2.4000000000000004.
                let inverse = (1.0 / def.scale()).round();
                let _ = write!(
                    out,
                    " # {{trace_id=\"{}\",span_id=\"{}\"}} {} {:.3}",
                    crate::sinks::trace::hex(&ex.trace_id),
                    crate::sinks::trace::hex(&ex.span_id),
                    ex.value / inverse,
                    ex.at_ms as f64 / 1000.0
                );
            }
            out.push('\n');
        }
        out
    }

    /// The exemplar of the bucket a sample line (from its `{`) stands for.
    fn exemplar_for(&self, family: usize, rest: &str) -> Option<Exemplar> {
        let def = &HISTOGRAMS[family];
        let labels = parse_labels(rest)?;
        let mut key = String::new();
        for (n, name) in def.labels.iter().enumerate() {
            if n > 0 {
                key.push(SEP);
            }
            key.push_str(&labels.iter().find(|(k, _)| k == name)?.1);
        }
        let le = &labels.iter().find(|(k, _)| k == "le")?.1;
        let bucket = if le == "+Inf" {
            def.buckets.len()
        } else {
            let le: f64 = le.parse().ok()?;
            def.buckets.iter().position(|b| (b - le).abs() < 1e-9)?
        };
        *self.exemplars[family].get(key.as_str())?.get(bucket)?
    }
}

/// The label pairs of `{a="x",b="y\"z"} …` (OpenMetrics escapes unescaped).
fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let mut chars = s.strip_prefix('{')?.chars().peekable();
    let mut out = Vec::new();
    loop {
        let mut name = String::new();
        loop {
            match chars.next()? {
                '}' if name.is_empty() => return Some(out),
                '=' => break,
                ',' if name.is_empty() => {}
                c => name.push(c),
            }
        }
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((name, value));
    }
}

fn join(out: &mut String, values: &[&str], fold: impl Fn(&str) -> bool, def: &Def) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        if fold(def.labels[i]) {
            out.push_str("other");
        } else {
            out.push_str(v);
        }
    }
}

/// The label pairs of a series key.
pub(crate) fn labels_of<'k>(def: &'static Def, key: &'k str) -> Vec<(&'static str, &'k str)> {
    split(def, key)
}

fn split<'k>(def: &'static Def, key: &'k str) -> Vec<(&'static str, &'k str)> {
    if def.labels.is_empty() {
        return Vec::new();
    }
    def.labels.iter().copied().zip(key.split(SEP)).collect()
}

fn encode_family<V>(
    encoder: &mut DescriptorEncoder,
    def: &'static Def,
    series: &FastMap<Box<str>, V>,
    mut write: impl FnMut(&mut prometheus_client::encoding::MetricEncoder, &V) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    if series.is_empty() {
        return Ok(());
    }
    // `Unit::Ratios` would print "ratios"; the declared suffix is the name's.
    let unit = def.unit.map(|u| Unit::Other(u.to_owned()));
    let kind = match def.kind {
        Type::Counter => MetricType::Counter,
        Type::Gauge => MetricType::Gauge,
        Type::Histogram => MetricType::Histogram,
    };
    let mut m = encoder.encode_descriptor(def.base, def.help, unit.as_ref(), kind)?;
    // Stable output: sorted by label values.
    let sorted: BTreeMap<&str, &V> = series.iter().map(|(k, v)| (k.as_ref(), v)).collect();
    for (key, v) in sorted {
        let labels = split(def, key);
        let mut fm = m.encode_family(&labels)?;
        write(&mut fm, v)?;
    }
    Ok(())
}

/// Turn OpenMetrics text into the Prometheus text format (0.0.4): counter
/// families are named with `_total`, and `# UNIT`, `# EOF` and exemplars go.
pub fn openmetrics_to_prometheus(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<&str> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            // HELP precedes TYPE; write it once the TYPE line tells the name.
            help = Some(rest.split_once(' ').map_or("", |(_, h)| h));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.rsplit_once(' ').unwrap_or((rest, "untyped"));
            let suffix = if ty == "counter" { "_total" } else { "" };
            if let Some(h) = help.take() {
                out.push_str(&format!("# HELP {name}{suffix} {h}\n"));
            }
            out.push_str(&format!("# TYPE {name}{suffix} {ty}\n"));
            continue;
        }
        out.push_str(strip_exemplar(line));
        out.push('\n');
    }
    out
}

/// A sample line without its exemplar (` # {...} value` after the value).
/// Label values may contain ` # `, so the search starts after the label set.
fn strip_exemplar(line: &str) -> &str {
    if line.starts_with('#') {
        return line;
    }
    let b = line.as_bytes();
    let mut start = 0;
    if let Some(open) = line.find(['{', ' ']).filter(|&i| b[i] == b'{') {
        let (mut quoted, mut escaped) = (false, false);
        for (i, &c) in b.iter().enumerate().skip(open) {
            match (quoted, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, b'\\') => escaped = true,
                (true, false, b'"') => quoted = false,
                (false, _, b'"') => quoted = true,
                (false, _, b'}') => {
                    start = i;
                    break;
                }
                _ => {}
            }
        }
    }
    match line[start..].find(" # ") {
        Some(i) => &line[..start + i],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(store: &Store) -> String {
        #[derive(Debug)]
        struct C(Store);
        impl prometheus_client::collector::Collector for C {
            fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                self.0.encode(&mut e)
            }
        }
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register_collector(Box::new(C(store.clone())));
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &reg).unwrap();
        s
    }

    #[test]
    fn counters_encode_as_openmetrics_and_prometheus() {
        let mut s = Store::new(10);
        s.inc(Counter::Tokens, &["app", "claude-opus-4-6", "main", "input"], 5.0);
        s.inc(Counter::Tokens, &["app", "claude-opus-4-6", "main", "input"], 2.0);
        s.observe(Histogram::ToolDuration, &["Bash"], 300.0);
        s.set_gauges(Gauge::CaughtUp, [(vec![], 1.0)]);
        let om = render(&s);
        assert!(om.contains("# TYPE claude_sessions_tokens counter\n"), "{om}");
        assert!(om.contains(r#"claude_sessions_tokens_total{project="app",model="claude-opus-4-6",query_source="main",type="input"} 7.0"#), "{om}");
        assert!(om.contains(r#"claude_sessions_tool_duration_seconds_bucket{le="0.5",tool="Bash"} 1"#), "{om}");
        assert!(om.ends_with("# EOF\n"));
        let prom = openmetrics_to_prometheus(&om);
        assert!(prom.contains("# TYPE claude_sessions_tokens_total counter\n"), "{prom}");
        assert!(prom.contains("# HELP claude_sessions_tokens_total Tokens"), "{prom}");
        assert!(!prom.contains("# EOF") && !prom.contains("# UNIT"));
        assert!(prom.contains("# HELP claude_sessions_exporter_caught_up 1 once"), "{prom}");
    }

    #[test]
    fn exemplars_are_stripped_but_not_label_text() {
        assert_eq!(strip_exemplar(r#"a_bucket{le="1"} 3 # {trace_id="x"} 0.5"#), r#"a_bucket{le="1"} 3"#);
        assert_eq!(strip_exemplar(r#"a{p="x # y \"}"} 3"#), r#"a{p="x # y \"}"} 3"#);
        assert_eq!(strip_exemplar("a 3 # {t=\"1\"} 1"), "a 3");
    }

    #[test]
    fn series_over_the_cap_fold_into_other_and_are_counted() {
        let mut s = Store::new(2);
        for p in ["a", "b", "c", "d"] {
            s.inc(Counter::Prompts, &[p], 1.0);
        }
        assert_eq!(s.counter(Counter::Prompts, &["a"]), 1.0);
        assert_eq!(s.counter(Counter::Prompts, &["other"]), 2.0);
        assert_eq!(s.counter(Counter::Prompts, &["c"]), 0.0);
        assert_eq!(s.counter(Counter::SeriesOverflow, &["claude_sessions_prompts"]), 2.0);
        // Existing series keep counting.
        s.inc(Counter::Prompts, &["a"], 1.0);
        assert_eq!(s.counter(Counter::Prompts, &["a"]), 2.0);
    }

    #[test]
    fn store_round_trips_through_json() {
        let mut s = Store::new(10);
        s.inc(Counter::Cost, &["p", "m", "main"], 250_000_000.0);
        s.observe(Histogram::ContextTokens, &["m"], 150_000.0);
        s.observe(Histogram::TurnDuration, &["p"], 1500.0);
        let back: Store = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.counter(Counter::Cost, &["p", "m", "main"]), 0.25);
        assert_eq!(back.histogram(Histogram::ContextTokens, &["m"]).unwrap().count, 1);
        assert_eq!(back.histogram(Histogram::TurnDuration, &["p"]).unwrap().sum, 1.5);
    }

    #[test]
    fn the_checkpoint_finds_families_and_labels_by_name() {
        let mut s = Store::new(10);
        s.inc(Counter::Tokens, &["p", "m", "main", "output"], 7.0);
        s.observe(Histogram::TurnDuration, &["p"], 1500.0);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["counters"]["claude_sessions_tokens"]["labels"][3], "type");
        // A family's label order changed, an unknown family appeared, families moved.
        let mut moved = json.clone();
        let series = moved["counters"]["claude_sessions_tokens"].take();
        let value = series["series"].as_object().unwrap().values().next().unwrap().clone();
        moved["counters"] = serde_json::json!({
            "claude_sessions_gone": {"labels": [], "series": {"": 3.0}},
            "claude_sessions_tokens": {"labels": ["type", "project", "model", "query_source"],
                "series": {format!("output{SEP}p{SEP}m{SEP}main"): value}},
        });
        let back: Store = serde_json::from_value(moved).unwrap();
        assert_eq!(back.counter(Counter::Tokens, &["p", "m", "main", "output"]), 7.0);
        assert_eq!(back.histogram(Histogram::TurnDuration, &["p"]).unwrap().count, 1);
    }

    #[test]
    fn a_format_1_store_is_read_by_its_frozen_order() {
        // Format 1: families as a list in the declaration order of release 0.1.0.
        let mut counters = vec![serde_json::json!({}); persist::V1_COUNTERS.len()];
        counters[1] = serde_json::json!({"app": 5.0}); // prompts
        counters[3] = serde_json::json!({format!("app{SEP}m{SEP}main{SEP}input"): 11.0}); // tokens
        let mut histograms = vec![serde_json::json!({}); persist::V1_HISTOGRAMS.len()];
        histograms[3] =
            serde_json::json!({"app": {"counts": vec![1; TURN_BUCKETS.len() + 1], "sum": 962000.0, "count": 12}});
        let v1 = serde_json::json!({"counters": counters, "histograms": histograms});
        let s: Store = serde_json::from_value(v1).unwrap();
        assert_eq!(s.counter(Counter::Prompts, &["app"]), 5.0);
        assert_eq!(s.counter(Counter::Tokens, &["app", "m", "main", "input"]), 11.0);
        assert_eq!(s.histogram(Histogram::TurnDuration, &["app"]).unwrap().sum, 962.0);
        s.check().unwrap();
    }

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names: Vec<String> = all_defs().map(Def::exposed_name).collect();
        assert!(names.iter().all(|n| n.starts_with("claude_sessions_")));
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
