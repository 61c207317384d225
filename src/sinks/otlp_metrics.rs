//! OTLP metrics: the store's families under OpenTelemetry names, plus
//! (optionally) Claude Code's own metric names, and the hand-built request for
//! what the official exporter cannot carry.
//!
//! In: the aggregator (its store, and its sessions for per-session series),
//! copied into `Points` under one short lock. Out: the points, which
//! `otlp_instruments` observes through the SDK (cumulative sums and gauges),
//! and [`build`]: one `ExportMetricsServiceRequest` for the rest.
//!
//! Why some is hand-built: the OpenTelemetry metrics API has no observable
//! histogram, and the SDK's histograms aggregate values recorded in this
//! process, so they cannot carry our bucketed histograms restored from the
//! checkpoint; and the SDK's delta temporality moves its baseline when it
//! collects, in memory, so a failed export would lose an increase and a
//! restart would send the whole history again. So histograms (both
//! temporalities) and, with delta temporality, the sums and gauges too are
//! built here: cumulative histograms start at the time the counters started
//! (they survive restarts through the checkpoint); delta points are the change
//! since the last delivered export, whose baseline ([`Sent`]) the sink keeps
//! durable in the state folder (`otlp_delta`).

use std::collections::{BTreeMap, HashMap};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge as PGauge, Histogram as PHistogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};

use super::otlp_config::{self as otlp, Config, Temporality};
use crate::state::live::Aggregator;
use crate::state::metrics::{self, Def, Type};
use crate::transcript::entry::Millis;

pub use super::otlp_delta::Sent;

/// The OpenTelemetry name of a family: `claude_sessions_tool_calls` →
/// `claude_sessions.tool_calls`, `claude_sessions_exporter_lines` → `claude_sessions.exporter.lines`.
pub fn otel_name(def: &Def) -> String {
    let rest = def.base.strip_prefix("claude_sessions_").unwrap_or(def.base);
    match rest.strip_prefix("exporter_") {
        Some(r) => format!("claude_sessions.exporter.{r}"),
        None => format!("claude_sessions.{rest}"),
    }
}

/// The UCUM unit of a family (`{token}`, `s`, `USD`, `By`, annotations for counts).
pub fn otel_unit(def: &Def) -> &'static str {
    match def.unit {
        Some("usd") => return "USD",
        Some("seconds") => return "s",
        Some("tokens") => return "{token}",
        Some("ratio") => return "1",
        Some("keys") => return "{key}",
        _ => {}
    }
    let rest = def.base.strip_prefix("claude_sessions_").unwrap_or(def.base);
    match rest {
        "tokens" => "{token}",
        "sessions_started" | "sessions" => "{session}",
        "prompts" => "{prompt}",
        "api_requests" | "unpriced_requests" => "{request}",
        "tool_calls" | "tool_calls_pending" | "rule_matches" => "{call}",
        "tool_errors" | "api_errors" | "exporter_read_errors" => "{error}",
        "subagents_started" => "{agent}",
        "compactions" => "{compaction}",
        "lines_of_code" | "exporter_lines" => "{line}",
        "exporter_bytes_read" => "By",
        "exporter_truncations" | "exporter_rotations" | "exporter_files_tracked" => "{file}",
        "exporter_series_overflow" => "{series}",
        "exporter_checkpoint_writes" => "{write}",
        "exporter_dedup_evictions" | "exporter_dedup_window_keys" => "{key}",
        "exporter_webhook_deliveries" => "{request}",
        "exporter_webhook_dropped"
        | "exporter_webhook_queue"
        | "exporter_events_published"
        | "exporter_events_lagged" => "{event}",
        _ => "1",
    }
}

/// One instrument: OpenTelemetry name, UCUM unit, description, type, bucket bounds.
#[derive(Debug, Clone)]
pub(crate) struct Descriptor {
    pub(crate) name: String,
    pub(crate) unit: &'static str,
    pub(crate) description: String,
    pub(crate) kind: Type,
    pub(crate) bounds: Vec<f64>,
}

/// A point's value.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    /// A sum or a gauge.
    Number(f64),
    /// Per-bucket counts, sum (exposed units), count.
    Hist(Vec<u64>, f64, u64),
}

/// One series' value, under the instrument `metric` (an index in `descriptors`).
#[derive(Debug, Clone)]
pub(crate) struct Point {
    pub(crate) metric: usize,
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) val: Val,
}

/// Every point, cumulative, before temporality is applied.
#[derive(Debug, Default)]
pub(crate) struct Points {
    pub(crate) descriptors: Vec<Descriptor>,
    index: HashMap<String, usize>,
    pub(crate) points: Vec<Point>,
    /// When the counters started (ms), as the aggregator says: the start of cumulative points.
    pub(crate) since_ms: Millis,
}

impl Points {
    fn metric(&mut self, name: &str, unit: &'static str, description: &str, kind: Type, bounds: &[f64]) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.descriptors.push(Descriptor {
            name: name.to_owned(),
            unit,
            description: description.to_owned(),
            kind,
            bounds: bounds.to_vec(),
        });
        self.index.insert(name.to_owned(), self.descriptors.len() - 1);
        self.descriptors.len() - 1
    }

    /// Add `v` to the point with these attributes (compat metrics sum over our labels).
    fn add(&mut self, metric: usize, attrs: Vec<(String, String)>, v: f64) {
        match self.points.iter_mut().rev().find(|p| p.metric == metric && p.attrs == attrs) {
            Some(Point { val: Val::Number(x), .. }) => *x += v,
            _ => self.points.push(Point { metric, attrs, val: Val::Number(v) }),
        }
    }
}

fn key(name: &str, attrs: &[(String, String)]) -> String {
    let mut k = name.to_owned();
    for (n, v) in attrs {
        k.push('\u{1f}');
        k.push_str(n);
        k.push('=');
        k.push_str(v);
    }
    k
}

fn pairs(labels: Vec<(&'static str, &str)>) -> Vec<(String, String)> {
    labels.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// Our families, as the store holds them.
fn ours(agg: &Aggregator, out: &mut Points) {
    for (def, series) in agg.store.counter_families() {
        if series.is_empty() {
            continue;
        }
        let m = out.metric(&otel_name(def), otel_unit(def), def.help, Type::Counter, &[]);
        let mut sorted: Vec<_> = series.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in sorted {
            out.points.push(Point {
                metric: m,
                attrs: pairs(metrics::labels_of(def, k)),
                val: Val::Number(v * def.scale()),
            });
        }
    }
    for (def, series) in agg.store.histogram_families() {
        if series.is_empty() {
            continue;
        }
        let m = out.metric(&otel_name(def), otel_unit(def), def.help, Type::Histogram, def.buckets);
        let mut sorted: Vec<_> = series.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (k, h) in sorted {
            out.points.push(Point {
                metric: m,
                attrs: pairs(metrics::labels_of(def, k)),
                val: Val::Hist(h.counts.clone(), h.sum * def.scale(), h.count),
            });
        }
    }
    for (def, series) in agg.store.gauge_families() {
        if series.is_empty() {
            continue;
        }
        let m = out.metric(&otel_name(def), otel_unit(def), def.help, Type::Gauge, &[]);
        let mut sorted: Vec<_> = series.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in sorted {
            out.points.push(Point { metric: m, attrs: pairs(metrics::labels_of(def, k)), val: Val::Number(*v) });
        }
    }
}

/// Claude Code's token `type` values for ours.
fn claude_code_token_type(t: &str) -> &str {
    match t {
        "cache_read" => "cacheRead",
        "cache_creation" => "cacheCreation",
        other => other,
    }
}

pub(crate) const CC_TOKENS: (&str, &str, &str) = ("claude_code.token.usage", "tokens", "Number of tokens used");
pub(crate) const CC_COST: (&str, &str, &str) = ("claude_code.cost.usage", "USD", "Cost of the Claude Code session");
pub(crate) const CC_SESSIONS: (&str, &str, &str) = ("claude_code.session.count", "", "Count of CLI sessions started");
pub(crate) const CC_LINES: (&str, &str, &str) =
    ("claude_code.lines_of_code.count", "", "Count of lines of code modified");

/// Claude Code's names, reconstructed: summed over projects, or per session with `session.id`.
fn claude_code(agg: &Aggregator, per_session: bool, out: &mut Points) {
    use crate::state::metrics::Counter;
    let tokens = out.metric(CC_TOKENS.0, CC_TOKENS.1, CC_TOKENS.2, Type::Counter, &[]);
    let cost = out.metric(CC_COST.0, CC_COST.1, CC_COST.2, Type::Counter, &[]);
    let sessions = out.metric(CC_SESSIONS.0, CC_SESSIONS.1, CC_SESSIONS.2, Type::Counter, &[]);
    let lines = out.metric(CC_LINES.0, CC_LINES.1, CC_LINES.2, Type::Counter, &[]);
    let s = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    if per_session {
        let mut list: Vec<_> = agg.sessions().collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        for sess in list {
            let sid = s("session.id", &sess.id);
            out.add(sessions, vec![sid.clone()], 1.0);
            for (model, t, usd) in &sess.by_model {
                for (ty, n) in [
                    ("input", t.input),
                    ("output", t.output),
                    ("cacheRead", t.cache_read),
                    ("cacheCreation", t.cache_creation),
                ] {
                    out.add(tokens, vec![sid.clone(), s("model", model), s("type", ty)], n as f64);
                }
                out.add(cost, vec![sid.clone(), s("model", model)], *usd);
            }
            for (ty, n) in [("added", sess.lines_added), ("removed", sess.lines_removed)] {
                out.add(lines, vec![sid.clone(), s("type", ty)], n as f64);
            }
        }
        return;
    }
    let store = &agg.store;
    for (labels, v) in store.counter_series(Counter::Tokens) {
        let get = |n: &str| labels.iter().find(|(k, _)| *k == n).map_or("", |(_, v)| *v);
        let attrs = vec![
            s("model", get("model")),
            s("query_source", get("query_source")),
            s("type", claude_code_token_type(get("type"))),
        ];
        out.add(tokens, attrs, v);
    }
    for (labels, v) in store.counter_series(Counter::Cost) {
        let get = |n: &str| labels.iter().find(|(k, _)| *k == n).map_or("", |(_, v)| *v);
        out.add(cost, vec![s("model", get("model")), s("query_source", get("query_source"))], v);
    }
    let started = store.counter_sum(Counter::SessionsStarted, &[]);
    out.add(sessions, Vec::new(), started);
    for ty in ["added", "removed"] {
        out.add(lines, vec![s("type", ty)], store.counter_sum(Counter::LinesOfCode, &[("type", ty)]));
    }
}

/// Every point of the aggregator (ours, and Claude Code's names if `cfg` asks), copied.
pub(crate) fn snapshot(agg: &Aggregator, cfg: &Config) -> Points {
    let mut all = Points { since_ms: agg.since_ms, ..Points::default() };
    ours(agg, &mut all);
    if cfg.compat.claude_code {
        claude_code(agg, cfg.compat.session_id, &mut all);
    }
    all
}

/// Every point of `agg` as one request for `now` (delta from nothing with delta
/// temporality), how many points it holds, and the baseline it would leave.
pub fn build(agg: &Aggregator, cfg: &Config, now: Millis) -> (ExportMetricsServiceRequest, usize, Sent) {
    build_from(snapshot(agg, cfg), cfg, &Sent::default(), now, false)
}

/// The hand-built request for `now` (with `histograms_only`, just the
/// histograms), how many points it holds, and the delta baseline to keep once
/// it is delivered (`base`: the last delivered one).
pub(crate) fn build_from(
    all: Points,
    cfg: &Config,
    base: &Sent,
    now: Millis,
    histograms_only: bool,
) -> (ExportMetricsServiceRequest, usize, Sent) {
    let delta = cfg.temporality == Temporality::Delta;
    let ns = |ms: Millis| u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000);
    let cumulative_start = if all.since_ms > 0 { all.since_ms } else { now };
    let start = if delta && base.at_ms > 0 { base.at_ms } else { cumulative_start };
    let mut next = Sent { at_ms: now, ..Sent::default() };
    let mut by_metric: BTreeMap<usize, Vec<Point>> = BTreeMap::new();
    let mut count = 0;
    for p in all.points {
        let d = &all.descriptors[p.metric];
        if histograms_only && d.kind != Type::Histogram {
            continue;
        }
        let k = key(&d.name, &p.attrs);
        let val = match (d.kind, p.val) {
            (Type::Counter, Val::Number(v)) if delta => {
                next.sums.insert(k.clone(), v);
                let dv = v - base.sums.get(&k).copied().unwrap_or(0.0);
                if dv <= 0.0 {
                    continue;
                }
                Val::Number(dv)
            }
            (Type::Histogram, Val::Hist(counts, sum, n)) if delta => {
                next.histograms.insert(k.clone(), (counts.clone(), sum, n));
                let (bc, bs, bn) = base.histograms.get(&k).cloned().unwrap_or_default();
                if n <= bn {
                    continue;
                }
                let diff =
                    counts.iter().enumerate().map(|(i, c)| c.saturating_sub(bc.get(i).copied().unwrap_or(0))).collect();
                Val::Hist(diff, sum - bs, n - bn)
            }
            (_, v) => v,
        };
        count += 1;
        by_metric.entry(p.metric).or_default().push(Point { val, ..p });
    }
    let temporality =
        if delta { AggregationTemporality::Delta as i32 } else { AggregationTemporality::Cumulative as i32 };
    let attrs = |a: &[(String, String)]| a.iter().map(|(k, v)| otlp::kv_str(k, v)).collect::<Vec<_>>();
    let mut metrics_out = Vec::new();
    for (i, points) in by_metric {
        let d = &all.descriptors[i];
        let data = match d.kind {
            Type::Counter => metric::Data::Sum(Sum {
                data_points: points
                    .iter()
                    .map(|p| NumberDataPoint {
                        attributes: attrs(&p.attrs),
                        start_time_unix_nano: ns(start),
                        time_unix_nano: ns(now),
                        value: Some(number_data_point::Value::AsDouble(number(&p.val))),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: temporality,
                is_monotonic: true,
            }),
            Type::Gauge => metric::Data::Gauge(PGauge {
                data_points: points
                    .iter()
                    .map(|p| NumberDataPoint {
                        attributes: attrs(&p.attrs),
                        time_unix_nano: ns(now),
                        value: Some(number_data_point::Value::AsDouble(number(&p.val))),
                        ..Default::default()
                    })
                    .collect(),
            }),
            Type::Histogram => metric::Data::Histogram(PHistogram {
                data_points: points
                    .iter()
                    .filter_map(|p| match &p.val {
                        Val::Hist(counts, sum, n) => Some(HistogramDataPoint {
                            attributes: attrs(&p.attrs),
                            start_time_unix_nano: ns(start),
                            time_unix_nano: ns(now),
                            count: *n,
                            sum: Some(*sum),
                            bucket_counts: counts.clone(),
                            explicit_bounds: d.bounds.clone(),
                            ..Default::default()
                        }),
                        Val::Number(_) => None,
                    })
                    .collect(),
                aggregation_temporality: temporality,
            }),
        };
        metrics_out.push(Metric {
            name: d.name.clone(),
            description: d.description.clone(),
            unit: d.unit.to_owned(),
            data: Some(data),
            ..Default::default()
        });
    }
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(otlp::resource(cfg)),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "claude-sessions".into(),
                    version: crate::VERSION.into(),
                    ..Default::default()
                }),
                metrics: metrics_out,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (req, count, next)
}

fn number(v: &Val) -> f64 {
    match v {
        Val::Number(x) => *x,
        Val::Hist(_, s, _) => *s,
    }
}

/// Attribute value as text (for tests and logs).
pub fn any_value_text(v: &any_value::Value) -> String {
    match v {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        any_value::Value::BoolValue(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::metrics::{COUNTERS, GAUGES, HISTOGRAMS};

    #[test]
    fn every_family_has_a_dotted_name_and_a_unit() {
        for def in COUNTERS.iter().chain(HISTOGRAMS).chain(GAUGES) {
            let n = otel_name(def);
            assert!(n.starts_with("claude_sessions.") && !n.contains("claude_sessions_"), "{n}");
            let u = otel_unit(def);
            // "1" only for true ratios and flags.
            if u == "1" {
                assert!(
                    matches!(def.unit, Some("ratio")) || n.ends_with("build_info") || n.ends_with("caught_up"),
                    "{n} has no unit"
                );
            }
        }
        assert_eq!(otel_name(crate::state::metrics::Counter::Tokens.def()), "claude_sessions.tokens");
        assert_eq!(otel_unit(crate::state::metrics::Counter::Cost.def()), "USD");
        assert_eq!(otel_unit(crate::state::metrics::Histogram::ToolDuration.def()), "s");
        assert_eq!(otel_name(crate::state::metrics::Counter::BytesRead.def()), "claude_sessions.exporter.bytes_read");
    }
}
