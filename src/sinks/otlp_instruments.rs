//! Cumulative sums and gauges through the official exporter: an SDK
//! `MeterProvider` whose `PeriodicReader` pushes to
//! `opentelemetry_otlp::MetricExporter`, with one observable instrument per
//! family (and per Claude Code name) whose callback reports our totals.
//!
//! The callbacks of one collection share one copy of the store ([`Points`]),
//! taken under one short lock of the aggregator by the first of them; the
//! export wrapper ([`Counting`]) drops it after the export, counts the result
//! in the sink's [`Stats`], and runs the exporter inside our tokio runtime
//! (the reader calls it from its own thread, which has none; tonic and hyper
//! need one).
//!
//! What the SDK changes: a cumulative point's start time is when this process
//! started exporting, not when the counters started (an SDK does not let an
//! observable instrument say when its sum began). Histograms, and everything
//! with delta temporality, are hand-built (`otlp_metrics`, which says why).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, MeterProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Stream, Temporality};

use super::otlp_config::Config;
use super::otlp_metrics::{self as om, Points, Val};
use super::otlp_stats::{Signal, Stats};
use crate::state::live::Aggregator;
use crate::state::metrics::{COUNTERS, GAUGES};

/// The copy of the store the current collection reads.
#[derive(Clone)]
struct Shared {
    agg: Arc<Mutex<Aggregator>>,
    cfg: Arc<Config>,
    current: Arc<Mutex<Option<Arc<Points>>>>,
}

impl Shared {
    fn points(&self) -> Arc<Points> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(cur.get_or_insert_with(|| {
            let a = self.agg.lock().unwrap_or_else(|p| p.into_inner());
            Arc::new(om::snapshot(&a, &self.cfg))
        }))
    }

    /// Report the points of instrument `name`.
    fn observe(&self, name: &str, obs: &dyn AsyncInstrument<f64>) {
        let points = self.points();
        let Some(i) = points.descriptors.iter().position(|d| d.name == name) else { return };
        for p in points.points.iter().filter(|p| p.metric == i) {
            if let Val::Number(v) = p.val {
                let attrs: Vec<KeyValue> = p.attrs.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect();
                obs.observe(v, &attrs);
            }
        }
    }
}

/// The official exporter, counted, run inside our runtime, and dropping the
/// collection's copy of the store once done.
struct Counting {
    inner: opentelemetry_otlp::MetricExporter,
    stats: Arc<Stats>,
    rt: tokio::runtime::Handle,
    current: Arc<Mutex<Option<Arc<Points>>>>,
}

impl std::fmt::Debug for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counting")
    }
}

/// Data points in a collection.
fn count_points(rm: &ResourceMetrics) -> u64 {
    fn n<T>(d: &MetricData<T>) -> usize {
        match d {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(h) => h.data_points().count(),
        }
    }
    let mut total = 0;
    for sm in rm.scope_metrics() {
        for m in sm.metrics() {
            total += match m.data() {
                AggregatedMetrics::F64(d) => n(d),
                AggregatedMetrics::U64(d) => n(d),
                AggregatedMetrics::I64(d) => n(d),
            };
        }
    }
    total as u64
}

impl PushMetricExporter for Counting {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).take();
        let points = count_points(metrics);
        if points == 0 {
            return Ok(());
        }
        let r = self.rt.block_on(self.inner.export(metrics));
        if let Err(e) = &r {
            tracing::warn!(signal = "metrics", error = %e, "OTLP export failed.");
        }
        // Cumulative: what failed is sent again, whole, next time; it counts as dropped here.
        self.stats.count(Signal::Metrics, r.is_ok(), if r.is_ok() { 0 } else { points });
        r
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// Series per instrument the SDK keeps apart; more fold into one
/// `otel.metric.overflow` series. Our store already caps each family
/// (`--max-series-per-metric`, 2,000 by default, plus its folded `other` series):
/// the SDK's default of 2,000 would fold some of those. The SDK sizes a table
/// for the limit up front, so it is not made larger than needed.
const SERIES_LIMIT: usize = 8192;

/// The same for Claude Code's names, which with `--otlp-claude-code-session-id`
/// have a series per session and model, uncapped by the store.
const PER_SESSION_LIMIT: usize = 65_536;

/// A running meter provider pushing our cumulative sums and gauges every
/// `cfg.interval`; shut it down for a last export.
pub(crate) fn start(
    cfg: &Config,
    exporter: opentelemetry_otlp::MetricExporter,
    resource: opentelemetry_sdk::Resource,
    stats: Arc<Stats>,
    agg: Arc<Mutex<Aggregator>>,
    rt: tokio::runtime::Handle,
) -> SdkMeterProvider {
    let current = Arc::new(Mutex::new(None));
    let shared = Shared { agg, cfg: Arc::new(cfg.clone()), current: Arc::clone(&current) };
    let reader =
        PeriodicReader::builder(Counting { inner: exporter, stats, rt, current }).with_interval(cfg.interval).build();
    let provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .with_view(|i: &opentelemetry_sdk::metrics::Instrument| {
            let limit = if i.name().starts_with("claude_code.") { PER_SESSION_LIMIT } else { SERIES_LIMIT };
            Stream::builder().with_cardinality_limit(limit).build().ok()
        })
        .build();
    let meter = provider.meter_with_scope(super::otlp_traces::scope());
    let mut sums: Vec<(String, &'static str, String)> =
        COUNTERS.iter().map(|d| (om::otel_name(d), om::otel_unit(d), d.help.to_owned())).collect();
    if cfg.compat.claude_code {
        for (name, unit, help) in [om::CC_TOKENS, om::CC_COST, om::CC_SESSIONS, om::CC_LINES] {
            sums.push((name.to_owned(), unit, help.to_owned()));
        }
    }
    for (name, unit, help) in sums {
        let s = shared.clone();
        let n = name.clone();
        let _ = meter
            .f64_observable_counter(name)
            .with_unit(unit)
            .with_description(help)
            .with_callback(move |obs| s.observe(&n, obs))
            .build();
    }
    for d in GAUGES {
        let (s, n) = (shared.clone(), om::otel_name(d));
        let _ = meter
            .f64_observable_gauge(n.clone())
            .with_unit(om::otel_unit(d))
            .with_description(d.help)
            .with_callback(move |obs| s.observe(&n, obs))
            .build();
    }
    provider
}
