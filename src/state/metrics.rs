//! Every metric name, declared once, and the values behind them.
//!
//! In: increments and observations from the aggregator, gauge values computed
//! from live state. Out: the families through the one text writer (`metrics/text.rs`:
//! OpenMetrics or the Prometheus text format, exemplars on histogram buckets
//! straight from the store), and a serializable snapshot of all counters and
//! histograms for the checkpoint — that is what keeps counters monotonic
//! across restarts. The declarations are in `metrics/families.rs` (re-exported here).
//!
//! Label values come only from capped sets: once a family holds
//! `max_series` series, new label sets fold their open labels (project,
//! model, tool, agent type) into `other`, and the fold is counted.

use crate::state::dedup::FastMap;

use serde::{Deserialize, Serialize};

mod families;
mod persist;
pub(crate) mod text;

pub use families::{COUNTERS, Counter, Def, GAUGES, Gauge, HISTOGRAMS, Histogram, Type, all_defs};

/// Separator of label values inside a series key (never in a value: `label_value` strips it).
const SEP: char = '\u{1f}';

/// Labels whose values come from transcripts and are therefore capped.
const OPEN_LABELS: &[&str] = &["project", "model", "tool", "agent_type", "rule"];

/// No real count gets past this (2^53, where an f64, the exposition's number,
/// stops counting by ones); a checkpoint holding a larger one is damaged, and
/// adding to it could overflow.
pub const MAX_COUNT: u64 = 1 << 53;

/// One histogram series.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HistData {
    /// Per-bucket (not cumulative) counts; the last is +Inf.
    pub counts: Vec<u64>,
    /// Sum of the observed values, in stored units (see [`Def::scale`]) unless a
    /// reader says otherwise ([`Store::histogram`] returns exposed units).
    pub sum: f64,
    /// Number of observations (the sum of `counts`).
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
    /// The trace of the turn the observation belongs to.
    pub trace_id: [u8; 16],
    /// The span of the observed operation (a tool call's span for tool durations).
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
    /// An empty store; each family holds at most `max_series` series (at least 1)
    /// before new label sets fold into `other`.
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

    /// A counter series' value in exposed units (0 if it does not exist).
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

    /// A gauge series' value as last set, if the series exists.
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

    /// Write every family that has series, in declaration order, each family's
    /// series sorted by label values (stable output); histogram buckets carry
    /// their latest exemplar (written in OpenMetrics only).
    pub(crate) fn write_text(&self, w: &mut text::Writer) {
        for (def, family) in COUNTERS.iter().zip(&self.counters) {
            let scale = def.scale();
            write_family(w, def, family, |w, _, v| w.counter(v * scale, None, None));
        }
        let om = w.flavour() == text::Flavour::OpenMetrics;
        for ((def, family), exemplars) in HISTOGRAMS.iter().zip(&self.histograms).zip(&self.exemplars) {
            let scale = def.scale();
            // Divide by the integer inverse: 2400 ms → 2.4 exactly, not 2.4000000000000004.
            let inverse = (1.0 / scale).round();
            write_family(w, def, family, |w, key, h| {
                let found = if om { exemplars.get(key) } else { None };
                let ids: Vec<Option<(String, String)>> = found.map_or_else(Vec::new, |per_bucket| {
                    let hex = crate::state::trace::hex;
                    per_bucket.iter().map(|e| e.map(|e| (hex(&e.trace_id), hex(&e.span_id)))).collect()
                });
                let labels: Vec<Option<[(&str, &str); 2]>> = ids
                    .iter()
                    .map(|ids| ids.as_ref().map(|(t, s)| [("trace_id", t.as_str()), ("span_id", s.as_str())]))
                    .collect();
                let mut cumulative = 0;
                let buckets = def.buckets.iter().copied().chain([f64::INFINITY]).zip(&h.counts).enumerate().map(
                    |(i, (le, n))| {
                        cumulative += n;
                        let exemplar =
                            found.and_then(|e| e[i]).zip(labels.get(i).and_then(Option::as_ref)).map(|(e, labels)| {
                                text::Exemplar {
                                    labels: labels.as_slice(),
                                    value: e.value / inverse,
                                    at_ms: Some(e.at_ms),
                                }
                            });
                        (le, cumulative, exemplar)
                    },
                );
                w.histogram(buckets, h.count, h.sum * scale, None);
            });
        }
        for (def, family) in GAUGES.iter().zip(&self.gauges) {
            write_family(w, def, family, |w, _, v| w.gauge(*v, None));
        }
    }
}

/// A family's header and its series, sorted by key; `sample` writes a series' samples.
fn write_family<V>(
    w: &mut text::Writer,
    def: &'static Def,
    series: &FastMap<Box<str>, V>,
    mut sample: impl FnMut(&mut text::Writer, &str, &V),
) {
    if series.is_empty() {
        return;
    }
    def.write_header(w, &def.family_name());
    let mut sorted: Vec<(&str, &V)> = series.iter().map(|(k, v)| (k.as_ref(), v)).collect();
    sorted.sort_unstable_by_key(|(k, _)| *k);
    for (key, v) in sorted {
        w.series(def.labels.iter().copied().zip(key.split(SEP)));
        sample(w, key, v);
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

#[cfg(test)]
mod tests;
