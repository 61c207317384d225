//! OTLP transport: the official `opentelemetry-otlp` exporters, set up from our
//! resolved [`Endpoint`]s, and the one hand-written send that remains.
//!
//! * gRPC: one tonic channel per endpoint (TLS with the system's roots plus
//!   `OTEL_EXPORTER_OTLP_CERTIFICATE`, which the Rust exporter does not read),
//!   handed to the official exporters with `with_channel`; headers are set by an
//!   interceptor that runs after the exporter's own, so that `--otlp-header` wins
//!   over the `OTEL_EXPORTER_OTLP_*HEADERS` the exporter re-reads from the process.
//! * HTTP/protobuf: the official exporters over [`HyperClient`], an
//!   `opentelemetry_http::HttpClient` on our hyper + rustls client (same CA file,
//!   same header rule).
//! * Retries, gzip, timeouts and `Retry-After`/`RetryInfo` throttling are the
//!   official exporters' ([`retry_policy`]).
//!
//! Hand-written, and why: [`send_raw`] posts an `ExportMetricsServiceRequest`
//! we built ourselves (our bucketed histograms restored from the checkpoint,
//! and delta sums measured against a durable baseline), which no official
//! exporter accepts: they only export what an SDK `MeterProvider` aggregated.
//! It reuses the same channel or HTTP client, with a small retry loop.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;

use super::otlp_config::{ConfigError, Endpoint, Protocol, err};

type Hyper = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// An `opentelemetry_http::HttpClient` over our hyper + rustls client. It sets the
/// endpoint's headers on every request (last, so they win) and bounds each request
/// by the endpoint's timeout. Must be called inside a tokio runtime.
#[derive(Clone)]
pub(crate) struct HyperClient {
    client: Hyper,
    headers: Arc<Vec<(String, String)>>,
    timeout: Duration,
}

impl std::fmt::Debug for HyperClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperClient").field("headers", &format_args!("[{} hidden]", self.headers.len())).finish()
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for HyperClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (mut parts, body) = request.into_parts();
        for (k, v) in self.headers.iter() {
            let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| "a header name is invalid")?;
            let value = http::HeaderValue::from_str(v).map_err(|_| "a header value is invalid")?;
            parts.headers.insert(name, value);
        }
        let req = http::Request::from_parts(parts, Full::new(body));
        let resp = tokio::time::timeout(self.timeout, self.client.request(req)).await.map_err(|_| "timed out")??;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(self.timeout, body.collect()).await.map_err(|_| "timed out")??.to_bytes();
        Ok(http::Response::from_parts(parts, body))
    }
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
    Http { client: HyperClient, ep: Endpoint },
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
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(rustls_config(ep)?)
                    .https_or_http()
                    .enable_http1()
                    .build();
                let client =
                    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
                let client = HyperClient { client, headers: Arc::new(ep.headers.clone()), timeout: ep.timeout };
                Ok(Transport::Http { client, ep: ep.clone() })
            }
        }
    }

    /// The official span exporter on this connection.
    pub(crate) fn span_exporter(
        &self,
        retry: opentelemetry_otlp::RetryPolicy,
    ) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
        let b = opentelemetry_otlp::SpanExporter::builder();
        Ok(match self {
            Transport::Grpc { channel, headers, ep } => b
                .with_tonic()
                .with_channel(channel.clone())
                .with_interceptor(headers.clone())
                .with_timeout(ep.timeout)
                .with_retry_policy(retry)
                .tonic_gzip(ep.gzip)
                .build()?,
            Transport::Http { client, ep } => b
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_http_client(client.clone())
                .with_endpoint(ep.url.clone())
                .with_timeout(ep.timeout)
                .with_retry_policy(retry)
                .http_gzip(ep.gzip)
                .build()?,
        })
    }

    /// The official metric exporter on this connection, with `temporality`.
    pub(crate) fn metric_exporter(
        &self,
        retry: opentelemetry_otlp::RetryPolicy,
        temporality: opentelemetry_sdk::metrics::Temporality,
    ) -> anyhow::Result<opentelemetry_otlp::MetricExporter> {
        let b = opentelemetry_otlp::MetricExporter::builder().with_temporality(temporality);
        Ok(match self {
            Transport::Grpc { channel, headers, ep } => b
                .with_tonic()
                .with_channel(channel.clone())
                .with_interceptor(headers.clone())
                .with_timeout(ep.timeout)
                .with_retry_policy(retry)
                .tonic_gzip(ep.gzip)
                .build()?,
            Transport::Http { client, ep } => b
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_http_client(client.clone())
                .with_endpoint(ep.url.clone())
                .with_timeout(ep.timeout)
                .with_retry_policy(retry)
                .http_gzip(ep.gzip)
                .build()?,
        })
    }

    /// One attempt at sending a request we built (see the module doc for why).
    async fn send_once(&self, req: &ExportMetricsServiceRequest) -> Result<(), (bool, String)> {
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
                    (retry, format!("gRPC {:?}: {}", s.code(), s.message()))
                })
            }
            Transport::Http { client, ep } => {
                let mut body = prost::Message::encode_to_vec(req);
                let mut b = http::Request::post(&ep.url).header("content-type", "application/x-protobuf");
                if ep.gzip {
                    use std::io::Write;
                    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    let _ = gz.write_all(&body);
                    body = gz.finish().unwrap_or_default();
                    b = b.header("content-encoding", "gzip");
                }
                let req = b.body(Bytes::from(body)).map_err(|e| (false, format!("HTTP request: {e}")))?;
                let resp = opentelemetry_http::HttpClient::send_bytes(client, req)
                    .await
                    .map_err(|e| (true, format!("HTTP: {e}")))?;
                let status = resp.status();
                if status.is_success() {
                    return Ok(());
                }
                Err((matches!(status.as_u16(), 429 | 502 | 503 | 504), format!("HTTP status {status}")))
            }
        }
    }
}

/// The official exporters' retry policy for `attempts` in all, first delay `backoff`.
pub(crate) fn retry_policy(attempts: u32, backoff: Duration) -> opentelemetry_otlp::RetryPolicy {
    opentelemetry_otlp::RetryPolicy::recommended()
        .with_max_retries(attempts.saturating_sub(1) as usize)
        .with_initial_delay(backoff)
        .with_max_delay(Duration::from_secs(30))
        .with_max_jitter(backoff / 4)
}

/// Send a request we built, retrying (up to `attempts` in all, doubling from
/// `backoff`) on retryable errors. Returns whether it was delivered.
pub(crate) async fn send_raw(
    t: &Transport,
    req: &ExportMetricsServiceRequest,
    attempts: u32,
    backoff: Duration,
) -> bool {
    let mut delay = backoff;
    for attempt in 1..=attempts.max(1) {
        match t.send_once(req).await {
            Ok(()) => return true,
            Err((retry, message)) => {
                if attempt >= attempts || !retry {
                    tracing::warn!(signal = "metrics", attempts = attempt, error = %message, "OTLP export failed.");
                    return false;
                }
                tracing::debug!(signal = "metrics", attempt, error = %message, "OTLP export failed; retrying.");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
    false
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
