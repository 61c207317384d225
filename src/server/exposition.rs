//! What `/metrics` (and `scan --format prometheus|openmetrics`) shows: the
//! store's families, then those of the registered collectors, written by the
//! one text writer (`state/metrics/text.rs`) in the flavour the scraper
//! asked for.
//!
//! The store's families go to the writer directly, exemplars included. The
//! endpoint's own metrics (`server::conn::Collector`) and the sinks'
//! are `prometheus_client` collectors, registered with [`Exposition::register`]:
//! a `Collector` can only be run through one of prometheus-client's encoders.
//! Its text encoder writes OpenMetrics only (turning that into the 0.0.4 format
//! would mean parsing it), so they are run through its encoder of the Prometheus
//! data model (`prometheus_protobuf`) instead: that yields plain values (family
//! name, type, help, unit, label pairs, numbers, exemplars), which go to the same
//! writer as the store's. No text is parsed, and every family, wherever it comes
//! from, follows the same rules in both flavours.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::prometheus_protobuf::{self, prometheus_data_model as pb};
use prometheus_client::registry::Registry;

use crate::state::live::Aggregator;
use crate::state::metrics::text::{self, Flavour, Kind};

/// Renders the exposition of one aggregator and the collectors registered beside it.
#[derive(Debug)]
pub struct Exposition {
    /// The registered collectors only; the store is written directly.
    registry: Registry,
    agg: Arc<Mutex<Aggregator>>,
}

impl Exposition {
    /// An exposition of `agg`'s store, with no other collector yet.
    pub fn new(agg: Arc<Mutex<Aggregator>>) -> Exposition {
        Exposition { registry: Registry::default(), agg }
    }

    /// Add a collector of other metrics (the endpoint's own, see
    /// `server::conn::Collector`; the sinks'). Its families follow the
    /// store's, in the order of registration; their names must not clash with the store's.
    pub fn register(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    /// OpenMetrics text (with trace exemplars and `# EOF`), or the classic
    /// Prometheus text format (0.0.4).
    pub fn render(&self, openmetrics: bool) -> String {
        let mut w = text::Writer::new(if openmetrics { Flavour::OpenMetrics } else { Flavour::Prometheus });
        {
            let agg = self.agg.lock().unwrap_or_else(|p| p.into_inner());
            agg.store.write_text(&mut w);
        }
        match prometheus_protobuf::encode(&self.registry) {
            Ok(families) => families.iter().for_each(|f| write_family(&mut w, f)),
            // Only a collector's own encoding can fail; the store's metrics are still worth serving.
            Err(_) => tracing::warn!("A registered collector failed to encode; its metrics are left out."),
        }
        w.finish()
    }
}

/// One family of a registered collector. prometheus-client names a counter
/// family `<name>_total` in this model; the writer adds `_total` itself.
fn write_family(w: &mut text::Writer, f: &pb::MetricFamily) {
    let kind = match f.r#type() {
        pb::MetricType::Counter => Kind::Counter,
        pb::MetricType::Gauge => Kind::Gauge,
        pb::MetricType::Histogram => Kind::Histogram,
        pb::MetricType::Untyped => Kind::Unknown,
        // prometheus-client has no summaries; gauge histograms are not in its API either.
        pb::MetricType::Summary | pb::MetricType::GaugeHistogram => return,
    };
    if f.metric.is_empty() {
        return;
    }
    let name = if kind == Kind::Counter { f.name.strip_suffix("_total").unwrap_or(&f.name) } else { &f.name };
    let unit = Some(f.unit.as_str()).filter(|u| !u.is_empty());
    w.family(&text::Family { name, kind, help: &f.help, unit });
    for m in &f.metric {
        w.series(m.label.iter().map(|l| (l.name.as_str(), l.value.as_str())));
        let at_ms = Some(m.timestamp_ms).filter(|t| *t != 0);
        match kind {
            Kind::Counter => {
                let c = m.counter.as_ref();
                let ex = c.and_then(|c| c.exemplar.as_ref());
                let labels = ex.map(pairs);
                let ex = ex.zip(labels.as_deref()).map(|(e, l)| exemplar(e, l));
                w.counter(c.map_or(0.0, |c| c.value), ex.as_ref(), at_ms);
            }
            Kind::Gauge => w.gauge(m.gauge.as_ref().map_or(0.0, |g| g.value), at_ms),
            Kind::Unknown => w.gauge(m.untyped.as_ref().map_or(0.0, |u| u.value), at_ms),
            Kind::Histogram => {
                let Some(h) = &m.histogram else { continue };
                let labels: Vec<Option<Vec<(&str, &str)>>> =
                    h.bucket.iter().map(|b| b.exemplar.as_ref().map(pairs)).collect();
                let buckets = h.bucket.iter().zip(&labels).map(|(b, l)| {
                    let ex = b.exemplar.as_ref().zip(l.as_deref()).map(|(e, l)| exemplar(e, l));
                    (b.upper_bound, b.cumulative_count, ex)
                });
                w.histogram(buckets, h.sample_count, h.sample_sum, at_ms);
            }
        }
    }
}

fn pairs(e: &pb::Exemplar) -> Vec<(&str, &str)> {
    e.label.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect()
}

fn exemplar<'a>(e: &pb::Exemplar, labels: &'a [(&'a str, &'a str)]) -> text::Exemplar<'a> {
    let at_ms = e.timestamp.as_ref().map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
    text::Exemplar { labels, value: e.value, at_ms }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::exemplar::{CounterWithExemplar, HistogramWithExemplars};
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Unit;

    /// A sink's self-metrics as they would register them.
    #[derive(Debug, Default)]
    struct Own {
        requests: Family<Vec<(String, String)>, Counter>,
        open: Gauge,
        sent: CounterWithExemplar<Vec<(String, String)>>,
        latency: Option<HistogramWithExemplars<Vec<(String, String)>>>,
    }

    impl Collector for Own {
        fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let r = &self.requests;
            r.encode(e.encode_descriptor("x_requests", "Requests.", None, r.metric_type())?)?;
            self.open.encode(e.encode_descriptor("x_open", "Open.", None, self.open.metric_type())?)?;
            self.sent.encode(e.encode_descriptor("x_sent", "Sent.", None, self.sent.metric_type())?)?;
            let l = self.latency.as_ref().expect("set");
            l.encode(e.encode_descriptor("x_latency", "Latency.", Some(&Unit::Seconds), l.metric_type())?)
        }
    }

    /// Registered prometheus-client metrics come out right in both flavours,
    /// counter naming, units and exemplars included.
    #[test]
    fn registered_collectors_follow_each_flavour() {
        let own = Own { latency: Some(HistogramWithExemplars::new([0.5, 1.0].into_iter())), ..Own::default() };
        own.requests.get_or_create(&vec![("route".into(), "a\"b".into())]).inc_by(3);
        own.open.set(2);
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_250);
        own.sent.inc_by(5, Some(vec![("span_id".to_owned(), "cd".to_owned())]), Some(at));
        own.latency.as_ref().unwrap().observe(0.7, Some(vec![("trace_id".to_owned(), "ab".to_owned())]), None);
        let mut agg = Aggregator::new(crate::state::live::Config::default());
        agg.store.touch(crate::state::metrics::Counter::Truncations, &[]);
        let mut e = Exposition::new(Arc::new(Mutex::new(agg)));
        e.register(Box::new(own));

        let om = e.render(true);
        for want in [
            "# TYPE claude_sessions_exporter_truncations counter\nclaude_sessions_exporter_truncations_total 0.0\n",
            "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total{route=\"a\\\"b\"} 3.0\n",
            "# TYPE x_open gauge\nx_open 2.0\n",
            "# TYPE x_sent counter\nx_sent_total 5.0 # {span_id=\"cd\"} 5.0 1700000000.250\n",
            "# TYPE x_latency_seconds histogram\n# UNIT x_latency_seconds seconds\n",
            "x_latency_seconds_bucket{le=\"1.0\"} 1 # {trace_id=\"ab\"} 0.7\n",
            "x_latency_seconds_bucket{le=\"+Inf\"} 1\nx_latency_seconds_count 1\nx_latency_seconds_sum 0.7\n# EOF\n",
        ] {
            assert!(om.contains(want), "{want:?} not in\n{om}");
        }
        let prom = e.render(false);
        for want in [
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total{route=\"a\\\"b\"} 3.0\n",
            "x_latency_seconds_bucket{le=\"1.0\"} 1\n",
            "# TYPE x_sent_total counter\nx_sent_total 5.0\n",
        ] {
            assert!(prom.contains(want), "{want:?} not in\n{prom}");
        }
        assert!(!prom.contains("# UNIT") && !prom.contains("# EOF") && !prom.contains("trace_id"), "{prom}");
    }
}
