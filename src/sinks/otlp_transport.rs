//! OTLP transport: the official `opentelemetry-otlp` exporters, set up from our
//! resolved [`Endpoint`]s, and the one hand-written send that remains.
//!
//! * gRPC: one tonic channel per endpoint (TLS with the system's roots plus
//!   `OTEL_EXPORTER_OTLP_CERTIFICATE`, which the Rust exporter does not read),
//!   handed to the official exporters with `with_channel`; headers are set by an
//!   interceptor that runs after the exporter's own, so that `--otlp-header` wins
//!   over the `OTEL_EXPORTER_OTLP_*HEADERS` the exporter re-reads from the process.
//! * HTTP/protobuf: the official exporters over [`SinkHttpClient`], an
//!   `opentelemetry_http::HttpClient` on the sinks' one HTTP client
//!   (`sinks::http`: same CA file, same header rule).
//! * Retries, gzip, timeouts and `Retry-After`/`RetryInfo` throttling are the
//!   official exporters' ([`retry_policy`]).
//!
//! Hand-written, and why: [`send_raw`] posts an `ExportMetricsServiceRequest`
//! we built ourselves (our bucketed histograms restored from the checkpoint,
//! and delta sums measured against a durable baseline), which no official
//! exporter accepts: they only export what an SDK `MeterProvider` aggregated.
//! It reuses the same channel or HTTP client, and the sinks' retry (`http::retry`).

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;

use super::http as h;
use super::otlp_config::{ConfigError, Endpoint, Protocol, err};

/// An `opentelemetry_http::HttpClient` over the sinks' one HTTP client
/// ([`h::Client`]). The endpoint's headers are set last on every request (they
/// win over the exporter's); a non-2xx answer is handed back as a response, with
/// its `Retry-After` in seconds, for the exporter's retry policy to read. Must be
/// called inside a tokio runtime.
#[derive(Clone)]
pub(crate) struct SinkHttpClient {
    client: h::Client,
    headers: Arc<Vec<(String, String)>>,
    timeout: Duration,
}

impl std::fmt::Debug for SinkHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkHttpClient").field("headers", &format_args!("[{} hidden]", self.headers.len())).finish()
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for SinkHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let ours = |k: &str| self.headers.iter().any(|(o, _)| o.eq_ignore_ascii_case(k));
        let mut headers: Vec<(&str, &str)> = parts
            .headers
            .iter()
            .filter(|(k, _)| !ours(k.as_str()))
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        match self.client.post(&parts.uri.to_string(), &headers, body, self.timeout).await {
            Ok(r) => Ok(http::Response::builder().status(r.status).body(r.body)?),
            Err(h::HttpError::Status { status, retry_after }) => {
                let mut b = http::Response::builder().status(status);
                if let Some(wait) = retry_after {
                    b = b.header(http::header::RETRY_AFTER, wait.as_secs().to_string());
                }
                Ok(b.body(Bytes::new())?)
            }
            Err(e) => Err(Box::new(e)),
        }
    }
}

/// The CA certificates of `ep.ca_file`, PEM (for tonic; the HTTP client reads its own).
fn read_ca(ep: &Endpoint) -> Result<Option<Vec<u8>>, ConfigError> {
    ep.ca_file
        .as_ref()
        .map(|f| std::fs::read(f).map_err(|e| ConfigError(format!("cannot read OTLP CA file {}: {e}", f.display()))))
        .transpose()
}
/// The endpoint's headers as gRPC metadata, set over whatever the exporter put there.
#[derive(Clone)]
pub(crate) struct Headers(Arc<tonic::metadata::MetadataMap>);

impl tonic::service::Interceptor for Headers {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        for kv in self.0.iter() {
            if let tonic::metadata::KeyAndValueRef::Ascii(k, v) = kv {
                req.metadata_mut().insert(k.clone(), v.clone());
            }
        }
        Ok(req)
    }
}

/// One endpoint's connection, shared by its official exporters and [`send_raw`].
#[derive(Clone)]
pub(crate) enum Transport {
    /// gRPC: a lazily connected channel, and the headers as metadata.
    Grpc { channel: tonic::transport::Channel, headers: Headers, ep: Endpoint },
    /// HTTP/protobuf: the client, posting to `ep.url`.
    Http { client: SinkHttpClient, ep: Endpoint },
}

/// An official exporter builder `b` set up on transport `t`: the channel or the
/// client, headers, timeout, retry policy and gzip. Programmatic settings win
/// over the `OTEL_*` variables the exporter would read itself.
macro_rules! on_transport {
    ($t:expr, $b:expr, $retry:expr) => {
        match $t {
            Transport::Grpc { channel, headers, ep } => $b
                .with_tonic()
                .with_channel(channel.clone())
                .with_interceptor(headers.clone())
                .with_timeout(ep.timeout)
                .with_retry_policy($retry)
                .tonic_gzip(ep.gzip)
                .build()?,
            Transport::Http { client, ep } => $b
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_http_client(client.clone())
                .with_endpoint(ep.url.clone())
                .with_timeout(ep.timeout)
                .with_retry_policy($retry)
                .http_gzip(ep.gzip)
                .build()?,
        }
    };
}

impl Transport {
    /// Must be called inside a tokio runtime (tonic spawns the channel's worker). Connects lazily.
    pub(crate) fn new(ep: &Endpoint) -> Result<Transport, ConfigError> {
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
                let mut md = tonic::metadata::MetadataMap::new();
                for (k, v) in &ep.headers {
                    let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes());
                    match (key, tonic::metadata::MetadataValue::try_from(v.as_str())) {
                        (Ok(key), Ok(val)) => {
                            md.insert(key, val);
                        }
                        // Do not echo the value: it may hold a token.
                        _ => return err(format!("OTLP header {k:?} is not valid gRPC metadata")),
                    }
                }
                let channel = endpoint.connect_lazy();
                Ok(Transport::Grpc { channel, headers: Headers(Arc::new(md)), ep: ep.clone() })
            }
            Protocol::HttpProtobuf => {
                let tls = h::TlsOptions { system_roots: true, ca_file: ep.ca_file.clone() };
                let client = h::Client::new(&tls).map_err(|e| ConfigError(format!("OTLP: {e}")))?;
                let client = SinkHttpClient { client, headers: Arc::new(ep.headers.clone()), timeout: ep.timeout };
                Ok(Transport::Http { client, ep: ep.clone() })
            }
        }
    }

    /// The official span exporter on this connection.
    pub(crate) fn span_exporter(
        &self,
        retry: opentelemetry_otlp::RetryPolicy,
    ) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
        Ok(on_transport!(self, opentelemetry_otlp::SpanExporter::builder(), retry))
    }

    /// The official log exporter on this connection.
    pub(crate) fn log_exporter(
        &self,
        retry: opentelemetry_otlp::RetryPolicy,
    ) -> anyhow::Result<opentelemetry_otlp::LogExporter> {
        Ok(on_transport!(self, opentelemetry_otlp::LogExporter::builder(), retry))
    }

    /// The official metric exporter on this connection, with `temporality`.
    pub(crate) fn metric_exporter(
        &self,
        retry: opentelemetry_otlp::RetryPolicy,
        temporality: opentelemetry_sdk::metrics::Temporality,
    ) -> anyhow::Result<opentelemetry_otlp::MetricExporter> {
        Ok(on_transport!(self, opentelemetry_otlp::MetricExporter::builder().with_temporality(temporality), retry))
    }

    /// One attempt at sending a request we built (see the module doc for why).
    async fn send_once(&self, req: &ExportMetricsServiceRequest, policy: &h::Retry) -> Result<(), RawError> {
        match self {
            Transport::Grpc { channel, headers, ep } => {
                let mut c = MetricsServiceClient::with_interceptor(channel.clone(), headers.clone());
                if ep.gzip {
                    c = c.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                let mut r = tonic::Request::new(req.clone());
                r.set_timeout(ep.timeout);
                c.export(r).await.map(|_| ()).map_err(|s| {
                    use tonic::Code;
                    let retry = matches!(
                        s.code(),
                        Code::Unavailable
                            | Code::ResourceExhausted
                            | Code::DeadlineExceeded
                            | Code::Aborted
                            | Code::Cancelled
                    );
                    RawError { retry, retry_after: None, message: format!("gRPC {:?}: {}", s.code(), s.message()) }
                })
            }
            Transport::Http { client, ep } => {
                let mut body = prost::Message::encode_to_vec(req);
                let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/x-protobuf")];
                if ep.gzip {
                    use std::io::Write;
                    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    let _ = gz.write_all(&body);
                    body = gz.finish().unwrap_or_default();
                    headers.push(("content-encoding", "gzip"));
                }
                headers.extend(ep.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                client.client.post(&ep.url, &headers, Bytes::from(body), ep.timeout).await.map(|_| ()).map_err(|e| {
                    use h::Failure;
                    RawError { retry: e.retryable(policy), retry_after: e.retry_after(), message: e.to_string() }
                })
            }
        }
    }
}

/// A failed attempt of [`send_raw`]: whether to try again, and what happened
/// (no URL, no header).
#[derive(Debug)]
struct RawError {
    retry: bool,
    retry_after: Option<Duration>,
    message: String,
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl h::Failure for RawError {
    fn retryable(&self, _: &h::Retry) -> bool {
        self.retry
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// The official exporters' retry policy, the same as `policy`.
pub(crate) fn retry_policy(policy: &h::Retry) -> opentelemetry_otlp::RetryPolicy {
    opentelemetry_otlp::RetryPolicy::recommended()
        .with_max_retries(policy.attempts.saturating_sub(1) as usize)
        .with_initial_delay(policy.initial)
        .with_max_delay(policy.max)
        .with_max_jitter(policy.initial / 2)
}

/// Send a request we built with the sinks' retry (`policy`; after `shutdown`,
/// one attempt). Returns whether it was delivered; a failure is logged.
pub(crate) async fn send_raw(
    t: &Transport,
    req: &ExportMetricsServiceRequest,
    policy: &h::Retry,
    shutdown: &h::Shutdown,
) -> bool {
    match h::retry(policy, shutdown, || t.send_once(req, policy)).await {
        Ok(()) => true,
        Err(gave_up) => {
            tracing::warn!(signal = "metrics", attempts = gave_up.attempts, error = %gave_up.error, "OTLP export failed.");
            false
        }
    }
}

/// Gzip when asked. Otherwise nothing is set: the exporter then reads
/// `OTEL_EXPORTER_OTLP_*COMPRESSION` itself, which our settings read the same way.
trait TonicGzip: Sized {
    fn tonic_gzip(self, on: bool) -> Self;
}

impl<T: WithTonicConfig> TonicGzip for T {
    fn tonic_gzip(self, on: bool) -> Self {
        if on { self.with_compression(opentelemetry_otlp::Compression::Gzip) } else { self }
    }
}

/// [`TonicGzip`] for the HTTP builders.
trait HttpGzip: Sized {
    fn http_gzip(self, on: bool) -> Self;
}

impl<T: WithHttpConfig> HttpGzip for T {
    fn http_gzip(self, on: bool) -> Self {
        if on { self.with_compression(opentelemetry_otlp::Compression::Gzip) } else { self }
    }
}
