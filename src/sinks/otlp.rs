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
pub use super::otlp_config::{Compat, Config, ConfigError, Endpoint, Logs, Overrides, Protocol, Temporality};
pub use super::otlp_stats::{Collector, FAMILIES, NAMES, Signal, Stats};
use super::otlp_transport::{Transport, retry_policy, send_raw};
use super::{otlp_delta, otlp_instruments, otlp_logs, otlp_metrics, otlp_traces};

/// Items (spans, log records) waiting to be sent, bounded.
struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    ready: tokio::sync::Notify,
    /// Items refused because the queue was full, not yet counted (the span sink runs
    /// while the aggregator is locked: it only adds here).
    refused: std::sync::atomic::AtomicU64,
    /// A task still feeds the queue: at shutdown, the sender waits for it to finish.
    feeding: std::sync::atomic::AtomicBool,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            items: Mutex::new(VecDeque::new()),
            ready: tokio::sync::Notify::new(),
            refused: Default::default(),
            feeding: Default::default(),
        }
    }
}

impl<T> Queue<T> {
    /// Queue what fits of `items` under `max`; the rest is refused (counted later). Never waits.
    fn offer(&self, items: Vec<T>, max: usize) {
        let n = items.len();
        let refused = {
            let mut q = lock(&self.items);
            let room = max.saturating_sub(q.len());
            q.extend(items.into_iter().take(room));
            n.saturating_sub(room)
        };
        self.refused.fetch_add(refused as u64, Relaxed);
        self.ready.notify_one();
    }

    /// Queue all of `items`, waiting for room (a backfill), until `stop`.
    fn offer_waiting(&self, mut items: Vec<T>, max: usize, stop: &h::Shutdown) {
        while !items.is_empty() && !stop.is_stopping() {
            let room = {
                let mut q = lock(&self.items);
                let room = max.saturating_sub(q.len()).min(items.len());
                q.extend(items.drain(..room));
                room
            };
            self.ready.notify_one();
            if room == 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Handles to the running exporter.
pub struct Exporter {
    queue: Arc<Queue<Span>>,
    max_queue: usize,
    /// Realtime events as log records: their queue and settings (`--otlp-logs`).
    logs: Option<(Arc<Queue<otlp_logs::Item>>, super::otlp_config::Logs, usize)>,
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
            let mut exporter = Transport::new(ep)?.span_exporter(retry.clone())?;
            exporter.set_resource(&resource);
            let spans = SpanBatches { exporter, scope: otlp_traces::scope() };
            let (n, q, s, st) = (cfg.max_batch_spans, Arc::clone(&queue), Arc::clone(&stats), stopped.clone());
            tasks.push(rt.spawn(async move { export_loop(&spans, n, &q, &s, st).await }));
        }
        let mut logs = None;
        if let Some(ep) = &cfg.logs {
            signals.push(Signal::Logs);
            let mut exporter = Transport::new(ep)?.log_exporter(retry)?;
            opentelemetry_sdk::logs::LogExporter::set_resource(&mut exporter, &resource);
            let scope = otlp_traces::scope();
            let spool = state_dir.map(|d| d.join(LOGS_SPOOL));
            let q: Arc<Queue<otlp_logs::Item>> = Arc::new(Queue::default());
            // What a previous run could not send goes first.
            if let Some(p) = &spool {
                let items = read_spool(p);
                if !items.is_empty() {
                    tracing::info!(records = items.len(), "OTLP: sending the log records a previous run kept.");
                    q.offer(items, cfg.max_queue_logs);
                }
            }
            let records = LogBatches { exporter, maker: otlp_logs::record_maker(scope.clone()), scope, spool };
            let (n, q2, s) = (cfg.max_batch_spans, Arc::clone(&q), Arc::clone(&stats));
            tasks.push(rt.spawn(async move { export_loop(&records, n, &q2, &s, stopped).await }));
            logs = Some((q, cfg.logs_options.clone(), cfg.max_queue_logs));
        }
        drop(_guard);
        Ok(Exporter {
            queue,
            max_queue: cfg.max_queue_spans,
            logs,
            stop,
            stats,
            signals,
            agg,
            tasks,
            meter,
            rt: Some(rt),
        })
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
        Arc::new(move |spans: Vec<Span>| queue.offer(spans, max))
    }

    /// A sink that waits for room instead of dropping (for the history backfill,
    /// which runs on its own thread and may wait for a collector to come back).
    pub fn blocking_sink(&self) -> SpanSink {
        let (queue, max, stop) = (Arc::clone(&self.queue), self.max_queue, self.stop.subscribe());
        Arc::new(move |spans: Vec<Span>| queue.offer_waiting(spans, max, &stop))
    }

    /// Send the events published on `bus` from now on as log records (with `--otlp-logs`;
    /// else nothing). The bus never waits: a subscription that falls behind loses the
    /// oldest events, and a full queue refuses new records; both are counted as dropped.
    pub fn follow_events(&mut self, bus: &Arc<crate::events::Bus>) {
        let (Some((queue, opts, max)), Some(rt)) = (&self.logs, &self.rt) else { return };
        let mut rx = bus.subscribe();
        let (queue, opts, max, stats) = (Arc::clone(queue), opts.clone(), *max, Arc::clone(&self.stats));
        let stop = self.stop.subscribe();
        queue.feeding.store(true, Relaxed);
        self.tasks.push(rt.spawn(async move {
            use tokio::sync::broadcast::error::{RecvError, TryRecvError};
            loop {
                let got = tokio::select! {
                    got = rx.recv() => got,
                    _ = stop.stopped() => break,
                };
                match got {
                    Ok(e) => queue.offer(otlp_logs::items(&e, &opts), max),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(events = n, "OTLP: the log export fell behind the events; dropped.");
                        Stats::drop(&stats, Signal::Logs, n);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
            // What was published before the stop still goes.
            loop {
                match rx.try_recv() {
                    Ok(e) => queue.offer(otlp_logs::items(&e, &opts), max),
                    Err(TryRecvError::Lagged(n)) => Stats::drop(&stats, Signal::Logs, n),
                    Err(_) => break,
                }
            }
            queue.feeding.store(false, Relaxed);
            queue.ready.notify_one();
        }));
    }

    /// Where the history's events go as log records (`--otlp-backfill`): the same
    /// filter, waiting for room instead of dropping. `None` without `--otlp-logs`.
    pub fn blocking_event_sink(&self) -> Option<crate::events::EventSink> {
        let (queue, opts, max) = self.logs.as_ref()?;
        let (queue, opts, max, stop) = (Arc::clone(queue), opts.clone(), *max, self.stop.subscribe());
        Some(Arc::new(move |e: crate::events::Event| {
            queue.offer_waiting(otlp_logs::items(&Arc::new(e), &opts), max, &stop)
        }))
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

/// One signal's way of sending a batch, and of what is left at shutdown.
trait Batches<T>: Sync {
    const SIGNAL: Signal;
    /// What the items are called in the log (`spans`, `log records`).
    const ITEMS: &'static str;
    /// Send `batch` (the official exporter retries); the error says why not.
    fn export(&self, batch: &[T]) -> impl std::future::Future<Output = Result<(), String>> + Send;
    /// What could not be sent before shutdown: kept or given up; returns how many were given up.
    fn leftover(&self, items: Vec<T>) -> u64;
}

/// Spans, through the official span exporter.
struct SpanBatches {
    exporter: opentelemetry_otlp::SpanExporter,
    scope: opentelemetry::InstrumentationScope,
}

impl Batches<Span> for SpanBatches {
    const SIGNAL: Signal = Signal::Traces;
    const ITEMS: &'static str = "spans";

    async fn export(&self, batch: &[Span]) -> Result<(), String> {
        let data = batch.iter().map(|s| otlp_traces::span_data(s, &self.scope)).collect();
        self.exporter.export(data).await.map_err(|e| e.to_string())
    }

    fn leftover(&self, items: Vec<Span>) -> u64 {
        if !items.is_empty() {
            tracing::warn!(spans = items.len(), "OTLP: spans not sent before shutdown; dropped.");
        }
        items.len() as u64
    }
}

/// Log records, through the official log exporter; what is left at shutdown is kept
/// in the spool file for the next run (given up only if it cannot be written).
struct LogBatches {
    exporter: opentelemetry_otlp::LogExporter,
    maker: opentelemetry_sdk::logs::SdkLogger,
    scope: opentelemetry::InstrumentationScope,
    spool: Option<std::path::PathBuf>,
}

impl Batches<otlp_logs::Item> for LogBatches {
    const SIGNAL: Signal = Signal::Logs;
    const ITEMS: &'static str = "log records";

    async fn export(&self, batch: &[otlp_logs::Item]) -> Result<(), String> {
        use opentelemetry_sdk::logs::LogExporter as _;
        let records: Vec<_> = batch.iter().map(|i| otlp_logs::record(i, &self.maker)).collect();
        let refs: Vec<_> = records.iter().map(|r| (r, &self.scope)).collect();
        self.exporter.export(opentelemetry_sdk::logs::LogBatch::new(&refs)).await.map_err(|e| e.to_string())
    }

    fn leftover(&self, items: Vec<otlp_logs::Item>) -> u64 {
        if items.is_empty() {
            return 0;
        }
        let n = items.len();
        match self.spool.as_ref().map(|p| write_spool(p, &items)) {
            Some(Ok(())) => {
                tracing::info!(records = n, "OTLP: log records not sent before shutdown; kept for the next run.");
                0
            }
            Some(Err(e)) => {
                tracing::warn!(records = n, error = %e, "OTLP: log records not sent before shutdown; dropped.");
                n as u64
            }
            None => {
                tracing::warn!(records = n, "OTLP: log records not sent before shutdown; dropped.");
                n as u64
            }
        }
    }
}

/// The spool of log records a run could not send, in the state folder.
const LOGS_SPOOL: &str = "otlp-logs-spool.jsonl";

/// Append `items` to the spool, one JSON line each, made durable.
fn write_spool(path: &Path, items: &[otlp_logs::Item]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut buf = Vec::new();
    for i in items {
        serde_json::to_writer(&mut buf, i)?;
        buf.push(b'\n');
    }
    f.write_all(&buf)?;
    f.sync_all()
}

/// Take the spool's records (the file is removed: they are queued now). Unreadable
/// lines are skipped.
fn read_spool(path: &Path) -> Vec<otlp_logs::Item> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let items: Vec<otlp_logs::Item> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(error = %e, "OTLP: cannot remove the log spool; its records may be sent again.");
    }
    items
}

/// Send what `queue` holds in batches of `max_batch` until `stop`; then, for
/// [`SHUTDOWN_FLUSH`] in all, what is left (and what a feeding task still adds).
async fn export_loop<T, B: Batches<T>>(b: &B, max_batch: usize, queue: &Queue<T>, stats: &Stats, stop: h::Shutdown) {
    let signal = B::SIGNAL;
    let mut stopping = false;
    // At shutdown, what is queued gets this long in all.
    let mut flush_until: Option<tokio::time::Instant> = None;
    loop {
        stats.drop(signal, queue.refused.swap(0, Relaxed));
        let batch: Vec<T> = {
            let mut q = lock(&queue.items);
            let n = q.len().min(max_batch);
            q.drain(..n).collect()
        };
        stats.queue[signal as usize].store(lock(&queue.items).len() as u64, Relaxed);
        if batch.is_empty() {
            if stopping && !queue.feeding.load(Relaxed) {
                return;
            }
            if stop.is_stopping() {
                stopping = true;
            }
            tokio::select! {
                _ = queue.ready.notified() => {}
                _ = stop.stopped(), if !stopping => stopping = true,
                _ = tokio::time::sleep(Duration::from_millis(if stopping { 10 } else { 1000 })) => {}
            }
            continue;
        }
        if stopping || stop.is_stopping() {
            stopping = true;
        }
        let until = stopping.then(|| *flush_until.get_or_insert_with(|| tokio::time::Instant::now() + SHUTDOWN_FLUSH));
        let result = match until {
            // A stop while the export is under way (its retries may take the request
            // timeout) gives it what is left of the shutdown's time.
            None => {
                let export = b.export(&batch);
                tokio::pin!(export);
                tokio::select! {
                    r = &mut export => r,
                    _ = stop.stopped() => {
                        stopping = true;
                        let until = *flush_until.get_or_insert_with(|| tokio::time::Instant::now() + SHUTDOWN_FLUSH);
                        tokio::time::timeout_at(until, &mut export)
                            .await
                            .map_err(|_| CUT_SHORT.to_owned())
                            .and_then(|r| r)
                    }
                }
            }
            Some(until) => {
                tokio::time::timeout_at(until, b.export(&batch)).await.map_err(|_| CUT_SHORT.to_owned()).and_then(|r| r)
            }
        };
        let ok = result.is_ok();
        if let Err(e) = &result {
            tracing::warn!(signal = signal.label(), error = %e, "OTLP export failed.");
        }
        if !ok && (stopping || stop.is_stopping()) {
            // Stopping, and the collector did not take this batch: what is left is
            // kept for the next run (logs) or given up (spans), with this batch, at once.
            stats.count(signal, false, 0);
            let mut left = batch;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            while queue.feeding.load(Relaxed) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            left.extend(std::mem::take(&mut *lock(&queue.items)));
            stats.drop(signal, queue.refused.swap(0, Relaxed) + b.leftover(left));
            stats.queue[signal as usize].store(0, Relaxed);
            return;
        }
        let mut dropped = 0;
        if !ok {
            tracing::warn!(signal = signal.label(), items = batch.len(), "OTLP: {} dropped.", B::ITEMS);
            dropped = batch.len() as u64;
        }
        stats.count(signal, ok, dropped);
        if let Some(until) = until
            && tokio::time::Instant::now() >= until
        {
            let left: Vec<T> = std::mem::take(&mut *lock(&queue.items)).into();
            stats.drop(signal, b.leftover(left));
            stats.queue[signal as usize].store(0, Relaxed);
            return;
        }
    }
}

/// Why an export was given up at shutdown.
const CUT_SHORT: &str = "not sent before shutdown";

/// How long a shutdown waits for queued spans (and the SDK's last metrics export).
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
