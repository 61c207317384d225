//! OTLP push: the export worker (settings in `otlp_config`, connections in
//! `otlp_transport`).
//!
//! In: the shared aggregator (metrics are copied from its store at each export
//! interval, under one short lock) and finished spans (queued by the tracer's
//! sink). Out, through the official `opentelemetry-otlp` exporters: spans as
//! hand-built SDK `SpanData` (our ids and transcript times, see
//! `otlp_traces`), and cumulative sums and gauges as observable instruments of
//! an SDK meter provider (`otlp_instruments`). Hand-built requests remain for
//! what those cannot carry: histograms, and everything with delta temporality
//! (`otlp_metrics` says why; the delta baseline is durable, `otlp_delta`).
//!
//! Settings come from the standard `OTEL_*` variables, overridden by flags.
//! Headers are secrets: never logged, never shown in errors.
//!
//! Failure handling: each request is retried with exponential backoff (a
//! bounded number of times, within the endpoint's timeout) on retryable errors;
//! then its data is dropped and counted. Spans wait in our bounded queue: the
//! SDK's batch span processor could carry our `SpanData`, but when full it drops
//! with no count we can expose, and it cannot make the history backfill wait for
//! room. When our queue is full, new spans are dropped and counted. Nothing
//! here blocks the engine or the HTTP server. The sink's own metrics are its
//! own ([`Stats`], exposed by [`Collector`]): it never writes the aggregator's
//! store.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_sdk::trace::SpanExporter as _;

use crate::state::live::Aggregator;
use crate::state::trace::{Span, SpanSink};

use super::http as h;
pub use super::otlp_config::{Compat, Config, ConfigError, Endpoint, Overrides, Protocol, Temporality};
pub use super::otlp_stats::{Collector, FAMILIES, NAMES, Signal, Stats};
use super::otlp_transport::{Transport, retry_policy, send_raw};
use super::{otlp_delta, otlp_instruments, otlp_metrics, otlp_traces};

/// Spans waiting to be sent, bounded.
#[derive(Default)]
struct Queue {
    spans: Mutex<VecDeque<Span>>,
    ready: tokio::sync::Notify,
    /// Spans refused because the queue was full, not yet counted (the sink runs
    /// while the aggregator is locked: it only adds here).
    refused: std::sync::atomic::AtomicU64,
}

/// Handles to the running exporter.
pub struct Exporter {
    queue: Arc<Queue>,
    max_queue: usize,
    stop: h::Stopper,
    stats: Arc<Stats>,
    signals: Vec<Signal>,
    agg: Arc<Mutex<Aggregator>>,
    /// The worker tasks: spans, hand-built metrics.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    meter: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
    rt: Option<tokio::runtime::Runtime>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Exporter {
    /// Start exporting: a runtime of one thread (`otlp`) for the transport and
    /// our loops, and the SDK's reader thread for cumulative sums. `state_dir`
    /// keeps the delta baseline (`None`: in memory only). Returns the handles;
    /// [`Exporter::sink`] is what the tracer hands spans to.
    pub fn start(cfg: Config, agg: Arc<Mutex<Aggregator>>, state_dir: Option<&Path>) -> anyhow::Result<Exporter> {
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("otlp").enable_all().build()?;
        let queue = Arc::new(Queue::default());
        let stats = Arc::new(Stats::default());
        let (stop, stopped) = h::shutdown();
        let policy = h::Retry {
            attempts: cfg.max_attempts,
            initial: cfg.backoff,
            max: Duration::from_secs(30),
            statuses: h::Statuses::Otlp,
        };
        let retry = retry_policy(&policy);
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_attributes(cfg.resource.iter().map(|(k, v)| opentelemetry::KeyValue::new(k.clone(), v.clone())))
            .build();
        let (mut tasks, mut meter, mut signals) = (Vec::new(), None, Vec::new());
        // Connections are made inside the runtime (tonic spawns there); errors surface here.
        let _guard = rt.enter();
        if let Some(ep) = &cfg.metrics {
            signals.push(Signal::Metrics);
            let transport = Transport::new(ep)?;
            let delta = cfg.temporality == Temporality::Delta;
            if !delta {
                let exporter =
                    transport.metric_exporter(retry.clone(), opentelemetry_sdk::metrics::Temporality::Cumulative)?;
                meter = Some(otlp_instruments::start(
                    &cfg,
                    exporter,
                    resource.clone(),
                    Arc::clone(&stats),
                    Arc::clone(&agg),
                    rt.handle().clone(),
                ));
            }
            let raw = RawMetrics {
                cfg: cfg.clone(),
                transport,
                agg: Arc::clone(&agg),
                stats: Arc::clone(&stats),
                baseline: otlp_delta::Store::new(state_dir),
                policy,
            };
            tasks.push(rt.spawn(raw.run(stopped.clone())));
        }
        if let Some(ep) = &cfg.traces {
            signals.push(Signal::Traces);
            let mut exporter = Transport::new(ep)?.span_exporter(retry)?;
            exporter.set_resource(&resource);
            let (c, q, s) = (cfg.clone(), Arc::clone(&queue), Arc::clone(&stats));
            tasks.push(rt.spawn(async move { traces_loop(&c, exporter, &q, &s, stopped).await }));
        }
        drop(_guard);
        Ok(Exporter { queue, max_queue: cfg.max_queue_spans, stop, stats, signals, agg, tasks, meter, rt: Some(rt) })
    }

    /// The sink's own metrics, for `server::Exposition::register`.
    pub fn collector(&self) -> Box<Collector> {
        Box::new(Collector {
            stats: Arc::clone(&self.stats),
            signals: self.signals.clone(),
            agg: Arc::clone(&self.agg),
        })
    }

    /// The tracer's sink: queues spans, dropping (and counting) what does not fit.
    pub fn sink(&self) -> SpanSink {
        let (queue, max) = (Arc::clone(&self.queue), self.max_queue);
        Arc::new(move |spans: Vec<Span>| {
            let n = spans.len();
            let refused = {
                let mut q = lock(&queue.spans);
                let room = max.saturating_sub(q.len());
                q.extend(spans.into_iter().take(room));
                n.saturating_sub(room)
            };
            queue.refused.fetch_add(refused as u64, Relaxed);
            queue.ready.notify_one();
        })
    }

    /// A sink that waits for room instead of dropping (for the history backfill,
    /// which runs on its own thread and may wait for a collector to come back).
    pub fn blocking_sink(&self) -> SpanSink {
        let (queue, max, stop) = (Arc::clone(&self.queue), self.max_queue, self.stop.subscribe());
        Arc::new(move |mut spans: Vec<Span>| {
            while !spans.is_empty() && !stop.is_stopping() {
                let room = {
                    let mut q = lock(&queue.spans);
                    let room = max.saturating_sub(q.len()).min(spans.len());
                    q.extend(spans.drain(..room));
                    room
                };
                queue.ready.notify_one();
                if room == 0 {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
    }

    /// Send what is queued and a last metrics export, then stop; bounded (the
    /// spans get [`SHUTDOWN_FLUSH`], the SDK's last export as long). Call it
    /// outside any tokio runtime.
    pub fn shutdown(mut self) {
        self.stop.stop();
        let meter = self.meter.take().map(|m| {
            std::thread::spawn(move || {
                if let Err(e) = m.shutdown_with_timeout(SHUTDOWN_FLUSH) {
                    tracing::warn!(error = %e, "OTLP: the last metrics export did not finish.");
                }
            })
        });
        if let Some(rt) = self.rt.take() {
            let tasks = std::mem::take(&mut self.tasks);
            rt.block_on(async {
                for t in tasks {
                    let _ = t.await;
                }
            });
            if let Some(m) = meter {
                let _ = m.join();
            }
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.stop();
        // Not shut down (an error path): the SDK's last export needs the runtime, so it goes first.
        if let Some(m) = self.meter.take() {
            let _ = m.shutdown();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The hand-built metrics export (see `otlp_metrics` for what and why).
struct RawMetrics {
    cfg: Config,
    transport: Transport,
    agg: Arc<Mutex<Aggregator>>,
    stats: Arc<Stats>,
    baseline: otlp_delta::Store,
    /// Attempts and waits (the official exporters get the same).
    policy: h::Retry,
}

impl RawMetrics {
    async fn run(self, stop: h::Shutdown) {
        let cfg = &self.cfg;
        let delta = cfg.temporality == Temporality::Delta;
        let mut base = if delta { self.baseline.load() } else { otlp_delta::Sent::default() };
        let mut ticker = tokio::time::interval(cfg.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            let stopping = stop.is_stopping()
                || tokio::select! {
                    _ = ticker.tick() => false,
                    _ = stop.stopped() => true,
                };
            let now = crate::transcript::entry::now_ms();
            let points = otlp_metrics::snapshot(&lock(&self.agg), cfg);
            let (req, n, next) = otlp_metrics::build_from(points, cfg, &base, now, !delta);
            if n > 0 {
                let ok = send_raw(&self.transport, &req, &self.policy, &stop).await;
                // A delta baseline moves only once delivered, and is on disk before the next export.
                if ok && delta {
                    base = next;
                    if let Err(e) = self.baseline.save(&base) {
                        tracing::warn!(error = %e, "OTLP: cannot save the delta baseline.");
                    }
                }
                self.stats.count(Signal::Metrics, ok, if ok || delta { 0 } else { n as u64 });
            }
            if stopping {
                return;
            }
        }
    }
}

async fn traces_loop(
    cfg: &Config,
    exporter: opentelemetry_otlp::SpanExporter,
    queue: &Queue,
    stats: &Stats,
    stop: h::Shutdown,
) {
    let scope = otlp_traces::scope();
    let mut stopping = false;
    // At shutdown, what is queued gets this long in all.
    let mut flush_until: Option<tokio::time::Instant> = None;
    loop {
        stats.drop(Signal::Traces, queue.refused.swap(0, Relaxed));
        let batch: Vec<Span> = {
            let mut q = lock(&queue.spans);
            let n = q.len().min(cfg.max_batch_spans);
            q.drain(..n).collect()
        };
        stats.queue.store(lock(&queue.spans).len() as u64, Relaxed);
        if batch.is_empty() {
            if stopping {
                return;
            }
            if stop.is_stopping() {
                stopping = true;
                continue;
            }
            tokio::select! {
                _ = queue.ready.notified() => {}
                _ = stop.stopped() => stopping = true,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        if stopping || stop.is_stopping() {
            stopping = true;
        }
        let until = stopping.then(|| *flush_until.get_or_insert_with(|| tokio::time::Instant::now() + SHUTDOWN_FLUSH));
        let data = batch.iter().map(|s| otlp_traces::span_data(s, &scope)).collect();
        let result = match until {
            None => exporter.export(data).await.map_err(|e| e.to_string()),
            Some(until) => tokio::time::timeout_at(until, exporter.export(data))
                .await
                .map_err(|_| "not sent before shutdown".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string())),
        };
        let ok = result.is_ok();
        if let Err(e) = &result {
            tracing::warn!(signal = "traces", error = %e, "OTLP export failed.");
            tracing::warn!(spans = batch.len(), "OTLP: spans dropped.");
        }
        stats.count(Signal::Traces, ok, if ok { 0 } else { batch.len() as u64 });
        if let Some(until) = until
            && tokio::time::Instant::now() >= until
        {
            let left = std::mem::take(&mut *lock(&queue.spans)).len();
            if left > 0 {
                tracing::warn!(spans = left, "OTLP: spans not sent before shutdown; dropped.");
                stats.drop(Signal::Traces, left as u64);
            }
            stats.queue.store(0, Relaxed);
            return;
        }
    }
}

/// How long a shutdown waits for queued spans (and the SDK's last metrics export).
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
