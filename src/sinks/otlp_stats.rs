//! The OTLP sink's own metrics: counted by the sink in atomics, exposed on
//! `/metrics` by a [`Collector`] registered beside the store's (not in the
//! store: nothing but the aggregator writes the store). Per process: they start
//! at zero with the daemon, as the endpoint's own metrics do.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::state::live::Aggregator;
use crate::state::metrics::{Def, Type};

/// A signal the sink sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Metric exports (official exporter and hand-built requests alike).
    Metrics,
    /// Span exports.
    Traces,
    /// Log record exports (realtime events).
    Logs,
}

impl Signal {
    /// The `signal` label's value.
    pub fn label(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        }
    }
}

/// What the sink counts. Written by the sink's threads only.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests by signal (metrics, traces, logs) and result (ok, error).
    exports: [[AtomicU64; 2]; 3],
    /// Spans, log records, or cumulative data points, not delivered, by signal.
    dropped: [AtomicU64; 3],
    /// Spans and log records waiting in their queues, by signal (metrics: unused).
    pub(crate) queue: [AtomicU64; 3],
}

impl Stats {
    /// One request's outcome, and what was given up with it.
    pub fn count(&self, signal: Signal, ok: bool, dropped: u64) {
        self.exports[signal as usize][usize::from(!ok)].fetch_add(1, Relaxed);
        self.drop(signal, dropped);
    }

    /// Items given up without a request (a full queue, a shutdown).
    pub fn drop(&self, signal: Signal, n: u64) {
        self.dropped[signal as usize].fetch_add(n, Relaxed);
    }

    /// Requests of `signal` that ended `ok` (or not), so far.
    pub fn exports(&self, signal: Signal, ok: bool) -> u64 {
        self.exports[signal as usize][usize::from(!ok)].load(Relaxed)
    }

    /// Items of `signal` dropped so far by the sink itself.
    pub fn dropped(&self, signal: Signal) -> u64 {
        self.dropped[signal as usize].load(Relaxed)
    }
}

/// The families the collector writes, declared as the store declares its own (for the
/// checks that dashboards, alerts and the README name only declared metrics).
pub static FAMILIES: [Def; 3] = [
    Def {
        base: "claude_sessions_exporter_otlp_exports",
        unit: None,
        help: "OTLP export requests by signal (metrics, traces, logs) and result (ok, error: failed after retries).",
        labels: &["signal", "result"],
        kind: Type::Counter,
        buckets: &[],
    },
    Def {
        base: "claude_sessions_exporter_otlp_dropped",
        unit: None,
        help: "Spans, log records (or cumulative data points) not delivered: the queue was full or the collector \
               failed after retries.",
        labels: &["signal"],
        kind: Type::Counter,
        buckets: &[],
    },
    Def {
        base: "claude_sessions_exporter_otlp_queue",
        unit: None,
        help: "Spans and log records waiting to be sent to the OTLP collector (bounded).",
        labels: &["signal"],
        kind: Type::Gauge,
        buckets: &[],
    },
];

/// Every name the collector writes, as exposed (counters with `_total`).
pub const NAMES: [&str; 3] = [
    "claude_sessions_exporter_otlp_exports_total",
    "claude_sessions_exporter_otlp_dropped_total",
    "claude_sessions_exporter_otlp_queue",
];

/// `/metrics` view of [`Stats`], for `server::Exposition::register`. Only the
/// signals switched on have series. Spans over a turn's cap (dropped by the
/// tracer inside the aggregator, a count it keeps in the checkpoint) are added
/// to the dropped spans, read under one short lock of the aggregator.
#[derive(Debug)]
pub struct Collector {
    pub(crate) stats: Arc<Stats>,
    pub(crate) signals: Vec<Signal>,
    pub(crate) agg: Arc<Mutex<Aggregator>>,
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let capped = {
            let a = self.agg.lock().unwrap_or_else(|p| p.into_inner());
            a.tracer().map_or(0, |t| t.dropped)
        };
        let [exports, dropped, queue] = &FAMILIES;
        let mut m = encoder.encode_descriptor(exports.base, exports.help, None, MetricType::Counter)?;
        for s in &self.signals {
            for (result, ok) in [("ok", true), ("error", false)] {
                let labels = [("signal", s.label()), ("result", result)];
                m.encode_family(&labels)?.encode_counter::<NoLabelSet, u64, u64>(&self.stats.exports(*s, ok), None)?;
            }
        }
        let mut m = encoder.encode_descriptor(dropped.base, dropped.help, None, MetricType::Counter)?;
        for s in &self.signals {
            let n = self.stats.dropped(*s) + if *s == Signal::Traces { capped } else { 0 };
            m.encode_family(&[("signal", s.label())])?.encode_counter::<NoLabelSet, u64, u64>(&n, None)?;
        }
        let queued: Vec<Signal> = self.signals.iter().copied().filter(|s| *s != Signal::Metrics).collect();
        if !queued.is_empty() {
            let mut m = encoder.encode_descriptor(queue.base, queue.help, None, MetricType::Gauge)?;
            for s in queued {
                let g = prometheus_client::metrics::gauge::ConstGauge::new(
                    self.stats.queue[s as usize].load(Relaxed) as i64
                );
                g.encode(m.encode_family(&[("signal", s.label())])?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exposed_per_signal_with_capped_spans_as_dropped() {
        let agg = Arc::new(Mutex::new(Aggregator::new(crate::state::live::Config::default())));
        {
            let mut a = agg.lock().unwrap();
            a.enable_traces(0, Arc::new(|_| {}));
        }
        let stats = Arc::new(Stats::default());
        stats.count(Signal::Traces, true, 0);
        stats.count(Signal::Traces, false, 7);
        stats.queue[Signal::Traces as usize].store(4, Relaxed);
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register_collector(Box::new(Collector { stats, signals: vec![Signal::Traces], agg: Arc::clone(&agg) }));
        let text = |reg: &prometheus_client::registry::Registry| {
            let mut s = String::new();
            prometheus_client::encoding::text::encode(&mut s, reg).unwrap();
            s
        };
        let s = text(&reg);
        assert!(s.contains(r#"claude_sessions_exporter_otlp_exports_total{signal="traces",result="error"} 1"#), "{s}");
        assert!(s.contains(r#"claude_sessions_exporter_otlp_dropped_total{signal="traces"} 7"#), "{s}");
        assert!(s.contains(r#"claude_sessions_exporter_otlp_queue{signal="traces"} 4"#), "{s}");
        assert!(!s.contains(r#"signal="metrics""#), "only the signals switched on: {s}");
        for name in NAMES {
            assert!(s.contains(&format!("\n{name}")), "{name} in {s}");
        }
        let exposed: Vec<String> = FAMILIES.iter().map(Def::exposed_name).collect();
        assert_eq!(exposed, NAMES);
        // The tracer's spans over a turn's cap count as dropped too.
        agg.lock().unwrap().tracer_mut().unwrap().dropped = 3;
        assert!(text(&reg).contains(r#"claude_sessions_exporter_otlp_dropped_total{signal="traces"} 10"#));
    }
}
