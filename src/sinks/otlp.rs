//! OTLP push: transport and the export worker (settings in `otlp_config`).
//!
//! In: the shared aggregator (metrics are read from its store at each export
//! interval) and finished spans (queued by the tracer's sink). Out: OTLP
//! requests over gRPC or HTTP/protobuf, built directly from our own data with
//! the `opentelemetry-proto` types, so that cumulative sums and histograms
//! restored from the checkpoint, and span ids and times taken from the
//! transcript, go out exactly as they are.
//!
//! Settings come from the standard `OTEL_*` variables, overridden by flags.
//! Headers are secrets: never logged, never shown in errors.
//!
//! Failure handling: each request is retried with exponential backoff (a
//! bounded number of times) on retryable errors; then its data is dropped and
//! counted. Spans wait in a bounded queue; when it is full new spans are
//! dropped and counted. Nothing here blocks the engine or the HTTP server.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

use crate::sinks::trace::{Span, SpanSink};
use crate::state::live::Aggregator;
use crate::state::metrics::{Counter, Gauge};

pub use super::otlp_config::{Compat, Config, ConfigError, Endpoint, Overrides, Protocol, Temporality};
use super::otlp_config::{err, resource};
use super::{otlp_metrics, otlp_traces};

/// Why an export failed.
#[derive(Debug)]
pub struct ExportError {
    pub retryable: bool,
    pub message: String,
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A connection to one endpoint.
enum Client {
    Grpc { channel: tonic::transport::Channel, ep: Endpoint },
    Http { client: HttpClient, ep: Endpoint },
}

/// The CA certificates of `ep.ca_file`, PEM.
fn read_ca(ep: &Endpoint) -> Result<Option<Vec<u8>>, ConfigError> {
    ep.ca_file
        .as_ref()
        .map(|f| std::fs::read(f).map_err(|e| ConfigError(format!("cannot read OTLP CA file {}: {e}", f.display()))))
        .transpose()
}

/// TLS for the HTTP client: the system's roots plus `ca_file`'s.
fn rustls_config(ep: &Endpoint) -> Result<rustls::ClientConfig, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(pem) = read_ca(ep)? {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| ConfigError(format!("OTLP CA file: {e}")))?;
            roots.add(cert).map_err(|e| ConfigError(format!("OTLP CA file: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return err("OTLP CA file holds no PEM certificate");
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(format!("TLS: {e}")))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

impl Client {
    /// Must be called inside a tokio runtime. Connects lazily.
    fn new(ep: &Endpoint) -> Result<Client, ConfigError> {
        match ep.protocol {
            Protocol::Grpc => {
                let mut endpoint = tonic::transport::Endpoint::from_shared(ep.url.clone())
                    .map_err(|e| ConfigError(format!("OTLP endpoint {}: {e}", ep.url)))?
                    .connect_timeout(ep.timeout)
                    .timeout(ep.timeout);
                if ep.url.starts_with("https://") {
                    let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
                    if let Some(pem) = read_ca(ep)? {
                        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
                    }
                    endpoint = endpoint.tls_config(tls).map_err(|e| ConfigError(format!("OTLP TLS: {e}")))?;
                }
                Ok(Client::Grpc { channel: endpoint.connect_lazy(), ep: ep.clone() })
            }
            Protocol::HttpProtobuf => {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(rustls_config(ep)?)
                    .https_or_http()
                    .enable_http1()
                    .build();
                let client =
                    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
                Ok(Client::Http { client, ep: ep.clone() })
            }
        }
    }

    async fn send_metrics(&self, req: ExportMetricsServiceRequest) -> Result<(), ExportError> {
        match self {
            Client::Grpc { channel, ep } => {
                let mut c = MetricsServiceClient::new(channel.clone());
                if ep.gzip {
                    c = c.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                c.export(grpc_request(req, ep)?).await.map(|_| ()).map_err(grpc_error)
            }
            Client::Http { client, ep } => http_post(client, ep, prost::Message::encode_to_vec(&req)).await,
        }
    }

    async fn send_traces(&self, req: ExportTraceServiceRequest) -> Result<(), ExportError> {
        match self {
            Client::Grpc { channel, ep } => {
                let mut c = TraceServiceClient::new(channel.clone());
                if ep.gzip {
                    c = c.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                c.export(grpc_request(req, ep)?).await.map(|_| ()).map_err(grpc_error)
            }
            Client::Http { client, ep } => http_post(client, ep, prost::Message::encode_to_vec(&req)).await,
        }
    }
}

fn grpc_request<T>(msg: T, ep: &Endpoint) -> Result<tonic::Request<T>, ExportError> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(ep.timeout);
    for (k, v) in &ep.headers {
        let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes());
        let val = tonic::metadata::MetadataValue::try_from(v.as_str());
        match (key, val) {
            (Ok(key), Ok(val)) => {
                req.metadata_mut().insert(key, val);
            }
            _ => {
                return Err(ExportError {
                    retryable: false,
                    message: format!("header {k:?} is not valid gRPC metadata"),
                });
            }
        }
    }
    Ok(req)
}

fn grpc_error(s: tonic::Status) -> ExportError {
    use tonic::Code;
    let retryable = matches!(
        s.code(),
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Cancelled
            | Code::Unknown
    );
    ExportError { retryable, message: format!("gRPC {:?}: {}", s.code(), s.message()) }
}

async fn http_post(client: &HttpClient, ep: &Endpoint, body: Vec<u8>) -> Result<(), ExportError> {
    let mut b = hyper::Request::post(&ep.url).header("content-type", "application/x-protobuf");
    let body = if ep.gzip {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = gz.write_all(&body);
        b = b.header("content-encoding", "gzip");
        gz.finish().unwrap_or_default()
    } else {
        body
    };
    for (k, v) in &ep.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let req = b
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| ExportError { retryable: false, message: "a header name or value is invalid".into() })?;
    let resp = match tokio::time::timeout(ep.timeout, client.request(req)).await {
        Err(_) => return Err(ExportError { retryable: true, message: "timed out".into() }),
        Ok(Err(e)) => return Err(ExportError { retryable: true, message: format!("HTTP: {e}") }),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    // Drain the body so the connection can be reused.
    let _ = tokio::time::timeout(ep.timeout, resp.into_body().collect()).await;
    if status.is_success() {
        return Ok(());
    }
    let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
    Err(ExportError { retryable, message: format!("HTTP status {status}") })
}

/// Spans waiting to be sent, bounded.
#[derive(Default)]
struct Queue {
    spans: Mutex<VecDeque<Span>>,
    ready: tokio::sync::Notify,
    /// Spans refused because the queue was full, not yet counted in the store
    /// (the sink runs while the aggregator is locked, so it cannot count there).
    refused: std::sync::atomic::AtomicU64,
}

/// Handles to the running exporter.
pub struct Exporter {
    queue: Arc<Queue>,
    max_queue: usize,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock(agg: &Mutex<Aggregator>) -> std::sync::MutexGuard<'_, Aggregator> {
    agg.lock().unwrap_or_else(|p| p.into_inner())
}

impl Exporter {
    /// Start the export thread. Returns the sink the tracer hands spans to.
    pub fn start(cfg: Config, agg: Arc<Mutex<Aggregator>>) -> anyhow::Result<Exporter> {
        {
            let mut a = lock(&agg);
            for (signal, on) in [("metrics", cfg.metrics.is_some()), ("traces", cfg.traces.is_some())] {
                if on {
                    for result in ["ok", "error"] {
                        a.store.touch(Counter::OtlpExports, &[signal, result]);
                    }
                    a.store.touch(Counter::OtlpDropped, &[signal]);
                }
            }
        }
        let queue = Arc::new(Queue::default());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        // Clients are built inside the runtime (tonic needs it); errors surface here.
        let clients = rt.block_on(async {
            let m = cfg.metrics.as_ref().map(Client::new).transpose()?;
            let t = cfg.traces.as_ref().map(Client::new).transpose()?;
            Ok::<_, ConfigError>((m, t))
        })?;
        let (q, a, c) = (Arc::clone(&queue), Arc::clone(&agg), cfg.clone());
        let thread = std::thread::Builder::new().name("otlp".into()).spawn(move || {
            rt.block_on(async move {
                let (mc, tc) = clients;
                let metrics = async {
                    if let Some(client) = mc {
                        metrics_loop(&c, &client, &a, stopped.clone()).await;
                    }
                };
                let traces = async {
                    if let Some(client) = tc {
                        traces_loop(&c, &client, &a, &q, stopped.clone()).await;
                    }
                };
                tokio::join!(metrics, traces);
            });
        })?;
        Ok(Exporter { queue, max_queue: cfg.max_queue_spans, stop, thread: Some(thread) })
    }

    /// The tracer's sink: queues spans, dropping (and counting) what does not fit.
    pub fn sink(&self) -> SpanSink {
        let (queue, max) = (Arc::clone(&self.queue), self.max_queue);
        Arc::new(move |spans: Vec<Span>| {
            let n = spans.len();
            let refused = {
                let mut q = queue.spans.lock().unwrap_or_else(|p| p.into_inner());
                let room = max.saturating_sub(q.len());
                q.extend(spans.into_iter().take(room));
                n.saturating_sub(room)
            };
            queue.refused.fetch_add(refused as u64, std::sync::atomic::Ordering::Relaxed);
            queue.ready.notify_one();
        })
    }

    /// A sink that waits for room instead of dropping (for the history backfill,
    /// which runs on its own thread and may wait for a collector to come back).
    pub fn blocking_sink(&self) -> SpanSink {
        let (queue, max, stop) = (Arc::clone(&self.queue), self.max_queue, self.stop.subscribe());
        Arc::new(move |mut spans: Vec<Span>| {
            while !spans.is_empty() && !*stop.borrow() {
                let room = {
                    let mut q = queue.spans.lock().unwrap_or_else(|p| p.into_inner());
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

    /// Send what is queued, a last metrics export, and stop (bounded by the retry policy).
    pub fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Count one request's outcome, and the spans given up with it.
fn count(agg: &Mutex<Aggregator>, signal: &str, ok: bool, dropped: usize) {
    let mut a = lock(agg);
    a.store.inc(Counter::OtlpExports, &[signal, if ok { "ok" } else { "error" }], 1.0);
    a.store.inc(Counter::OtlpDropped, &[signal], dropped as f64);
}

/// Send, retrying up to `attempts` times in all. Returns whether it was delivered.
async fn with_retries<F, Fut>(cfg: &Config, signal: &str, attempts: u32, mut send: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), ExportError>>,
{
    let mut delay = cfg.backoff;
    let attempts = attempts.max(1);
    for attempt in 1..=attempts {
        match send().await {
            Ok(()) => return true,
            Err(e) => {
                if attempt == attempts || !e.retryable {
                    tracing::warn!(signal, attempts = attempt, error = %e.message, "OTLP export failed.");
                    return false;
                }
                tracing::debug!(signal, attempt, error = %e.message, "OTLP export failed; retrying.");
                // Jitter from the clock's low bits: retries of several daemons spread out.
                let jitter = Duration::from_millis(
                    u64::from(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.subsec_millis()),
                    ) % (delay.as_millis() as u64 / 4 + 1),
                );
                tokio::time::sleep(delay + jitter).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
    false
}

async fn metrics_loop(
    cfg: &Config,
    client: &Client,
    agg: &Mutex<Aggregator>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(cfg.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        let stopping = *stop.borrow()
            || tokio::select! {
                _ = ticker.tick() => false,
                _ = stop.changed() => true,
            };
        let now = crate::transcript::entry::now_ms();
        let (req, points, next) = {
            let a = lock(agg);
            otlp_metrics::build(&a, cfg, now)
        };
        if points > 0 {
            let ok = with_retries(cfg, "metrics", cfg.max_attempts, || client.send_metrics(req.clone())).await;
            let mut a = lock(agg);
            // Cumulative data is sent in full each time; a delta baseline moves only once delivered.
            if ok {
                a.otlp_sent = next;
            }
            a.store.inc(Counter::OtlpExports, &["metrics", if ok { "ok" } else { "error" }], 1.0);
            if !ok && cfg.temporality == Temporality::Cumulative {
                a.store.inc(Counter::OtlpDropped, &["metrics"], points as f64);
            }
        }
        if stopping {
            return;
        }
    }
}

async fn traces_loop(
    cfg: &Config,
    client: &Client,
    agg: &Mutex<Aggregator>,
    queue: &Queue,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let resource = resource(cfg);
    let mut stopping = false;
    // At shutdown, what is queued gets one attempt per request and this long in all.
    let mut flush_until: Option<tokio::time::Instant> = None;
    loop {
        let refused = queue.refused.swap(0, std::sync::atomic::Ordering::Relaxed);
        if refused > 0 {
            lock(agg).store.inc(Counter::OtlpDropped, &["traces"], refused as f64);
        }
        let batch: Vec<Span> = {
            let mut q = queue.spans.lock().unwrap_or_else(|p| p.into_inner());
            let n = q.len().min(cfg.max_batch_spans);
            q.drain(..n).collect()
        };
        set_queue_gauge(agg, queue);
        if batch.is_empty() {
            if stopping {
                return;
            }
            if *stop.borrow() {
                stopping = true;
                continue;
            }
            tokio::select! {
                _ = queue.ready.notified() => {}
                _ = stop.changed() => stopping = true,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        if stopping || *stop.borrow() {
            stopping = true;
            let until = *flush_until.get_or_insert_with(|| tokio::time::Instant::now() + SHUTDOWN_FLUSH);
            if tokio::time::Instant::now() >= until {
                let left =
                    batch.len() + std::mem::take(&mut *queue.spans.lock().unwrap_or_else(|p| p.into_inner())).len();
                tracing::warn!(spans = left, "OTLP: spans not sent before shutdown; dropped.");
                count(agg, "traces", false, left);
                return;
            }
        }
        let req = otlp_traces::build(&resource, &batch);
        let attempts = if stopping { 1 } else { cfg.max_attempts };
        let ok = with_retries(cfg, "traces", attempts, || client.send_traces(req.clone())).await;
        if !ok {
            tracing::warn!(spans = batch.len(), "OTLP: spans dropped.");
        }
        count(agg, "traces", ok, if ok { 0 } else { batch.len() });
    }
}

/// How long a shutdown waits for queued spans to be sent.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

fn set_queue_gauge(agg: &Mutex<Aggregator>, queue: &Queue) {
    let n = queue.spans.lock().unwrap_or_else(|p| p.into_inner()).len();
    lock(agg).store.set_gauges(Gauge::OtlpQueue, [(vec!["traces"], n as f64)]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)], flags: &Overrides) -> Result<Option<Config>, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_env(&move |k| map.get(k).cloned(), flags)
    }

    #[test]
    fn nothing_is_sent_unless_switched_on() {
        assert!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")], &Overrides::default()).unwrap().is_none());
        let c = cfg(&[("OTEL_METRICS_EXPORTER", "otlp")], &Overrides::default()).unwrap().unwrap();
        assert!(c.metrics.is_some() && c.traces.is_none());
    }

    #[test]
    fn standard_variables_are_honoured() {
        let c = cfg(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://tempo:4318/custom/traces"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20abc,x-team=dev"),
                ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-team=ops"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
                ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
                ("OTEL_SERVICE_NAME", "my-laptop"),
                ("OTEL_RESOURCE_ATTRIBUTES", "team=dev,service.name=ignored"),
            ],
            &Overrides { metrics: true, traces: true, ..Overrides::default() },
        )
        .unwrap()
        .unwrap();
        let m = c.metrics.as_ref().unwrap();
        assert_eq!(m.url, "http://collector:4318/v1/metrics");
        assert_eq!(m.protocol, Protocol::HttpProtobuf);
        assert_eq!(m.headers, vec![("Authorization".into(), "Bearer abc".into()), ("x-team".into(), "ops".into())]);
        assert_eq!(m.timeout, Duration::from_millis(2500));
        assert_eq!(c.traces.as_ref().unwrap().url, "http://tempo:4318/custom/traces");
        assert_eq!((c.interval, c.temporality), (Duration::from_secs(15), Temporality::Delta));
        let res: HashMap<_, _> = c.resource.iter().cloned().collect();
        assert_eq!(res["service.name"], "my-laptop");
        assert_eq!(res["team"], "dev");
        assert!(res.contains_key("host.name") && res.contains_key("service.instance.id"));
        assert_eq!(res["service.version"], crate::VERSION);
        // Secrets stay out of debug output.
        assert!(!format!("{c:?}").contains("abc"));
    }

    #[test]
    fn flags_override_and_grpc_keeps_the_base_url() {
        let c = cfg(
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4318")],
            &Overrides {
                traces: true,
                endpoint: Some("http://127.0.0.1:4317".into()),
                protocol: Some(Protocol::Grpc),
                ..Overrides::default()
            },
        )
        .unwrap()
        .unwrap();
        let t = c.traces.unwrap();
        assert_eq!((t.url.as_str(), t.protocol), ("http://127.0.0.1:4317", Protocol::Grpc));
        assert_eq!(c.temporality, Temporality::Cumulative);
        assert_eq!(c.interval, Duration::from_secs(60));
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let on = Overrides { metrics: true, ..Overrides::default() };
        let e = cfg(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")], &on).err().unwrap();
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = cfg(&[("OTEL_EXPORTER_OTLP_HEADERS", "secret-token-no-equals")], &on).err().unwrap();
        assert!(!e.to_string().contains("secret-token"), "{e}");
        assert!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x")], &on).is_err());
        assert!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://x")], &on).unwrap().is_some());
        let e = cfg(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/no/such/ca.pem")], &on).err().unwrap();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
