//! The counters and histograms in the checkpoint, by name.
//!
//! In: a [`Store`](super::Store)'s families. Out: a JSON object keyed by each
//! family's name, with its label names once and its series keyed by their label
//! values. Adding, removing or reordering families or labels in the code then
//! moves nothing: a family is found by name, a label value by its label's name
//! (a label added since gets `""`, one removed is dropped, series that then
//! coincide are merged by adding). A family no longer declared is dropped.
//!
//! Format 1 (release 0.1.0) stored families as a list in declaration order;
//! [`V1_COUNTERS`] and [`V1_HISTOGRAMS`] are that order, frozen, so a format 1
//! checkpoint is read by name too.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Def, FastMap, HistData, SEP};

/// Counter families in the order format 1 stored them.
pub const V1_COUNTERS: &[&str] = &[
    "claude_sessions_sessions_started",
    "claude_sessions_prompts",
    "claude_sessions_api_requests",
    "claude_sessions_tokens",
    "claude_sessions_cost",
    "claude_sessions_tool_calls",
    "claude_sessions_tool_errors",
    "claude_sessions_api_errors",
    "claude_sessions_subagents_started",
    "claude_sessions_compactions",
    "claude_sessions_lines_of_code",
    "claude_sessions_unpriced_requests",
    "claude_sessions_exporter_bytes_read",
    "claude_sessions_exporter_lines",
    "claude_sessions_exporter_truncations",
    "claude_sessions_exporter_rotations",
    "claude_sessions_exporter_read_errors",
    "claude_sessions_exporter_series_overflow",
    "claude_sessions_exporter_checkpoint_writes",
    "claude_sessions_exporter_dedup_evictions",
    "claude_sessions_exporter_otlp_exports",
    "claude_sessions_rule_matches",
    "claude_sessions_exporter_otlp_dropped",
    "claude_sessions_exporter_events_published",
    "claude_sessions_exporter_events_lagged",
    "claude_sessions_exporter_webhook_deliveries",
    "claude_sessions_exporter_webhook_dropped",
];

/// Histogram families in the order format 1 stored them.
pub const V1_HISTOGRAMS: &[&str] = &[
    "claude_sessions_session_duration",
    "claude_sessions_tool_duration",
    "claude_sessions_context",
    "claude_sessions_turn_duration",
    "claude_sessions_exporter_event_lag",
];

/// Label names of a format 1 family: the ones declared at that release.
fn v1_labels(name: &str) -> &'static [&'static str] {
    match name {
        "claude_sessions_sessions_started" | "claude_sessions_prompts" => &["project"],
        "claude_sessions_api_requests" | "claude_sessions_cost" => &["project", "model", "query_source"],
        "claude_sessions_tokens" => &["project", "model", "query_source", "type"],
        "claude_sessions_tool_calls" | "claude_sessions_tool_errors" => &["project", "tool"],
        "claude_sessions_api_errors" => &["project", "model", "kind"],
        "claude_sessions_subagents_started" => &["project", "agent_type"],
        "claude_sessions_compactions" => &["project", "trigger"],
        "claude_sessions_lines_of_code" => &["project", "type"],
        "claude_sessions_unpriced_requests" => &["model"],
        "claude_sessions_exporter_lines" | "claude_sessions_exporter_checkpoint_writes" => &["result"],
        "claude_sessions_exporter_read_errors" => &["kind"],
        "claude_sessions_exporter_series_overflow" => &["metric"],
        "claude_sessions_exporter_otlp_exports" => &["signal", "result"],
        "claude_sessions_rule_matches" => &["rule", "severity"],
        "claude_sessions_exporter_otlp_dropped" => &["signal"],
        "claude_sessions_exporter_webhook_deliveries" => &["result"],
        "claude_sessions_exporter_webhook_dropped" => &["reason"],
        "claude_sessions_session_duration" | "claude_sessions_turn_duration" => &["project"],
        "claude_sessions_tool_duration" => &["tool"],
        "claude_sessions_context" => &["model"],
        _ => &[],
    }
}

/// Values that add up when two stored series land on one key.
pub trait Merge {
    fn merge(&mut self, other: Self);
}

impl Merge for f64 {
    fn merge(&mut self, other: f64) {
        *self += other;
    }
}

impl Merge for HistData {
    fn merge(&mut self, other: HistData) {
        if self.counts.len() == other.counts.len() {
            for (a, b) in self.counts.iter_mut().zip(other.counts) {
                *a = a.saturating_add(b);
            }
            self.sum += other.sum;
            self.count = self.count.saturating_add(other.count);
        }
    }
}

#[derive(Serialize)]
struct FamilyRef<'a, V> {
    labels: &'static [&'static str],
    series: &'a FastMap<Box<str>, V>,
}

#[derive(Deserialize)]
struct Family<V> {
    labels: Vec<String>,
    series: BTreeMap<String, V>,
}

/// Format 2 (by name) or format 1 (a list in declaration order).
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored<V> {
    ByName(BTreeMap<String, Family<V>>),
    Positional(Vec<BTreeMap<String, V>>),
}

/// Write the families of `table` by name (empty ones left out).
pub fn serialize<S: Serializer, V: Serialize>(
    table: &'static [Def],
    families: &[FastMap<Box<str>, V>],
    s: S,
) -> Result<S::Ok, S::Error> {
    let named: BTreeMap<&str, FamilyRef<'_, V>> = table
        .iter()
        .zip(families)
        .filter(|(_, f)| !f.is_empty())
        .map(|(def, series)| (def.base, FamilyRef { labels: def.labels, series }))
        .collect();
    named.serialize(s)
}

/// Read families stored by name (or format 1's list) into `table`'s order.
pub fn deserialize<'de, D: Deserializer<'de>, V: DeserializeOwned + Merge>(
    table: &'static [Def],
    v1_names: &'static [&'static str],
    d: D,
) -> Result<Vec<FastMap<Box<str>, V>>, D::Error> {
    let named: Vec<(String, Family<V>)> = match Stored::<V>::deserialize(d)? {
        Stored::ByName(m) => m.into_iter().collect(),
        Stored::Positional(list) => list
            .into_iter()
            .zip(v1_names)
            .map(|(series, name)| {
                let labels = v1_labels(name).iter().map(|l| (*l).to_owned()).collect();
                ((*name).to_owned(), Family { labels, series })
            })
            .collect(),
    };
    let mut out: Vec<FastMap<Box<str>, V>> = table.iter().map(|_| FastMap::default()).collect();
    for (name, family) in named {
        let Some(i) = table.iter().position(|d| d.base == name) else { continue };
        let def = &table[i];
        for (key, value) in family.series {
            let key = rekey(def, &family.labels, &key);
            match out[i].get_mut(key.as_str()) {
                Some(v) => v.merge(value),
                None => {
                    out[i].insert(key.into_boxed_str(), value);
                }
            }
        }
    }
    Ok(out)
}

/// A series key stored under `stored` label names, as `def` orders its labels.
fn rekey(def: &Def, stored: &[String], key: &str) -> String {
    if stored.iter().map(String::as_str).eq(def.labels.iter().copied()) {
        return key.to_owned();
    }
    let values: Vec<&str> = if stored.is_empty() { Vec::new() } else { key.split(SEP).collect() };
    let mut out = String::new();
    for (i, label) in def.labels.iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        if let Some(j) = stored.iter().position(|s| s == label) {
            out.push_str(values.get(j).copied().unwrap_or(""));
        }
    }
    out
}
