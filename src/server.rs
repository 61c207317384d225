//! HTTP: `/metrics`, `/`, `/healthz`, `/readyz`, and the API under `/api/` ([`crate::api`]).
//!
//! In: the shared aggregator and a readiness flag. Out: the metrics in the
//! Prometheus text format, or OpenMetrics when the scraper's `Accept` asks for
//! it, gzip-compressed when `Accept-Encoding` allows. Listens where it is told;
//! the CLI's default is 127.0.0.1.

use std::convert::Infallible;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, VARY};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::live::Aggregator;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Exposes the aggregator's store through prometheus-client.
#[derive(Debug)]
struct StoreCollector(Arc<Mutex<Aggregator>>);

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let agg = self.0.lock().unwrap_or_else(|p| p.into_inner());
        agg.store.encode(&mut encoder)
    }
}

/// Renders the exposition of one aggregator.
#[derive(Debug)]
pub struct Exposition {
    registry: Registry,
    agg: Arc<Mutex<Aggregator>>,
}

impl Exposition {
    pub fn new(agg: Arc<Mutex<Aggregator>>) -> Exposition {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(StoreCollector(Arc::clone(&agg))));
        Exposition { registry, agg }
    }

    /// OpenMetrics text (with `# EOF` and trace exemplars), or the classic Prometheus text format.
    pub fn render(&self, openmetrics: bool) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry).expect("writing to a String cannot fail");
        if !openmetrics {
            return crate::metrics::openmetrics_to_prometheus(&s);
        }
        let agg = self.agg.lock().unwrap_or_else(|p| p.into_inner());
        agg.store.add_exemplars(s)
    }
}

/// What the handlers share.
pub struct App {
    pub exposition: Exposition,
    pub ready: Arc<AtomicBool>,
    /// Serve `/metrics` before `ready`: safe when nothing was restored from a
    /// checkpoint (counters only grow from 0 while history is read).
    pub serve_while_reading: bool,
    pub telemetry_path: String,
    /// Realtime events (for `/api/events`).
    pub bus: Arc<crate::events::Bus>,
    /// Live session state (for `/api/sessions`).
    pub sessions: crate::watcher::LiveSessions,
}

/// Accept connections until `shutdown` resolves.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "Accept failed.");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(route(&app, req)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await
            {
                tracing::debug!(error = %e, "Connection ended with an error.");
            }
        });
    }
}

/// `/api/…` to the API (served at once, also while history is read), the rest to [`handle`].
fn route(app: &App, req: Request<Incoming>) -> Response<crate::api::HttpBody> {
    let path = req.uri().path();
    if path != app.telemetry_path && crate::api::is_api_path(path) {
        let api = crate::api::Api { bus: Arc::clone(&app.bus), sessions: app.sessions.clone() };
        return crate::api::handle(&api, &req);
    }
    handle(app, req).map(BodyExt::boxed_unsync)
}

fn handle(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    let path = req.uri().path();
    if path == app.telemetry_path {
        // Until the history is read, counters restored from a checkpoint can be
        // below what the previous process already served: never show that dip.
        if !app.serve_while_reading && !app.ready.load(Ordering::Acquire) {
            return text(StatusCode::SERVICE_UNAVAILABLE, "reading history; metrics are served once caught up\n");
        }
        return metrics(app, &req);
    }
    match path {
        "/" => {
            let body = format!(
                "<!doctype html><html><head><title>claude-sessions</title></head><body>\
                 <h1>claude-sessions {}</h1><p>Claude Code session metrics.</p><ul>\
                 <li><a href=\"{p}\">{p}</a></li><li><a href=\"/healthz\">/healthz</a></li>\
                 <li><a href=\"/readyz\">/readyz</a></li>\
                 <li><a href=\"/api/sessions\">/api/sessions</a>: live and recent sessions (JSON)</li>\
                 <li><a href=\"/api/events\">/api/events</a>: events as they happen (Server-Sent Events)</li>\
                 </ul></body></html>\n",
                crate::VERSION,
                p = app.telemetry_path
            );
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            r
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if app.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "reading history\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn metrics(app: &App, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let header =
        |name| req.headers().get_all(name).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    let openmetrics = accepts(&header(ACCEPT), "application/openmetrics-text");
    let gzip = accepts(&header(ACCEPT_ENCODING), "gzip");
    let body = app.exposition.render(openmetrics);
    let (bytes, encoded) = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        match enc.write_all(body.as_bytes()).and_then(|_| enc.finish()) {
            Ok(z) => (Bytes::from(z), true),
            Err(_) => (Bytes::from(body), false),
        }
    } else {
        (Bytes::from(body), false)
    };
    let mut r = Response::new(Full::new(bytes));
    let ct = if openmetrics { OPENMETRICS } else { PROMETHEUS_TEXT };
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    if encoded {
        r.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r.headers_mut().insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    r
}

/// Whether a comma-separated `Accept`-style header lists `wanted` with a q-value above 0.
fn accepts(header: &str, wanted: &str) -> bool {
    header.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let q = parts.find_map(|p| p.strip_prefix("q=")).and_then(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
        name.eq_ignore_ascii_case(wanted) && q > 0.0
    })
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests {
    use super::accepts;

    #[test]
    fn accept_headers_honour_q_values() {
        assert!(accepts("application/openmetrics-text; version=1.0.0; charset=utf-8", "application/openmetrics-text"));
        assert!(accepts(
            "text/plain;q=0.5, application/openmetrics-text;version=1.0.0;q=0.9",
            "application/openmetrics-text"
        ));
        assert!(!accepts("application/openmetrics-text;q=0, text/plain", "application/openmetrics-text"));
        assert!(accepts("br, GZIP;q=0.8", "gzip"));
        assert!(!accepts("gzip;q=0", "gzip"));
        assert!(!accepts("identity", "gzip"));
    }
}
