//! HTTP: `/metrics`, the console at `/` (`server/console.rs`), `/healthz`, `/readyz`, and the API under
//! `/api/` ([`crate::server::api`]).
//!
//! In: the shared aggregator and a readiness flag. Out: the metrics in the
//! Prometheus text format, or OpenMetrics when the scraper's `Accept` asks for
//! it, gzip-compressed when `Accept-Encoding` allows. Listens where it is told;
//! the CLI's default is 127.0.0.1.
//!
//! Every connection goes through the limits of `server/conn.rs` (a cap, header and idle
//! timeouts, descriptors kept for the rest of the daemon) and, with
//! `--web.config.file`, through TLS and basic auth ([`crate::server::web_config`], [`auth`])
//! before any route, `/api/events` included. An `/api/ws` WebSocket (`ws.rs`) runs on its
//! connection's own task after the upgrade, so it stays under the same limits.

pub mod api;
pub mod auth;
pub(crate) mod conn;
mod console;
pub mod control;
mod exposition;
pub mod history;
pub mod web_config;
mod ws;

pub use exposition::Exposition;

use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{
    ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, RETRY_AFTER, VARY,
    WWW_AUTHENTICATE,
};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::server::api::HttpBody;
use crate::server::web_config::Watched;
use conn::{Close, Episode, Slot, Table, Tracked};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers share.
pub struct App {
    /// What `/metrics` renders.
    pub exposition: Exposition,
    /// Set once the history is read (`/readyz` answers 200 from then on).
    pub ready: Arc<AtomicBool>,
    /// Serve `/metrics` before `ready`: safe when nothing was restored from a
    /// checkpoint (counters only grow from 0 while history is read).
    pub serve_while_reading: bool,
    /// Where the metrics are served (`--web.telemetry-path`, `/metrics` by default).
    pub telemetry_path: String,
    /// Realtime events (for `/api/events`).
    pub bus: Arc<crate::events::Bus>,
    /// Live session state (for `/api/sessions`).
    pub sessions: crate::watcher::LiveSessions,
    /// Recent events of recent sessions (for `/api/sessions/{id}/events`); started with the server.
    pub history: Arc<history::History>,
    /// Approvals, pauses and notes, and the token their actions need.
    pub control: control::Access,
}

/// What every connection goes through before the routes: limits, TLS, auth.
#[derive(Debug)]
pub struct Endpoint {
    /// The open connections, their limits and counts.
    pub table: Arc<Table>,
    /// `--web.config.file`, followed for changes.
    pub config: Option<Arc<Watched>>,
    /// Basic-auth checks (one bcrypt at a time, right answers remembered), used when the config has users.
    pub auth: auth::Auth,
}

impl Endpoint {
    /// An endpoint with no connection yet, held to `limits`, with TLS and auth from `config`.
    pub fn new(limits: conn::Limits, config: Option<Arc<Watched>>) -> Endpoint {
        Endpoint { table: Arc::new(Table::new(limits)), config, auth: auth::Auth::new() }
    }

    /// The endpoint's metrics, for [`Exposition::register`].
    pub fn collector(&self) -> Box<dyn Collector> {
        Box::new(conn::Collector { table: Arc::clone(&self.table), config: self.config.clone() })
    }
}

/// First wait after `accept` ran out of descriptors; doubled up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// An episode at the connection cap ends after this long without reaching it.
const CAP_QUIET: Duration = Duration::from_secs(10);
/// How long the accept loop waits for a victim to close (it runs on this same thread).
const EVICT_WAIT: Duration = Duration::from_secs(1);

/// What Go's servers answer to plain HTTP on a TLS port: a readable error instead of a reset.
const PLAIN_TO_TLS: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Accept connections until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    endpoint: Arc<Endpoint>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    app.history.start();
    let table = Arc::clone(&endpoint.table);
    let cap = table.limits.max_connections;
    // Logged when they start and end, never per connection: a flood must not become a log flood.
    let mut out_of_fds = Episode::default();
    let mut at_cap = Episode::default();
    let mut backoff = BACKOFF_MIN;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {
                if let Some(n) = at_cap.end_if_quiet(CAP_QUIET) {
                    tracing::info!(closed_or_refused = n, open = table.len(), "Back under the connection limit.");
                }
                continue;
            }
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if conn::out_of_descriptors(&e) => {
                table.stats.accept_error(true);
                if out_of_fds.hit() {
                    tracing::warn!(
                        error = %e,
                        open = table.len(),
                        "Out of file descriptors; pausing accept (connections are capped below the limit, so something else holds them)."
                    );
                }
                // The pending connection stays in the kernel's queue: retrying at once would spin.
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            Err(e) => {
                // One connection's trouble (reset before accept, …): the next accept is fine.
                table.stats.accept_error(false);
                tracing::debug!(error = %e, "Accept failed.");
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        if let Some(n) = out_of_fds.end() {
            tracing::info!(failed_accepts = n, "Accepting connections again.");
        }
        if table.is_full() {
            let victim = table.evict_one();
            table.stats.closed(victim.unwrap_or(Close::Rejected));
            if at_cap.hit() {
                tracing::warn!(
                    max_connections = cap,
                    "Connection limit reached; closing the connections idle longest to admit new ones."
                );
            }
            if victim.is_none() {
                // Every connection is answering a request: this one waits for nothing.
                drop(stream);
                continue;
            }
            table.wait_room(EVICT_WAIT).await;
        }
        // Responses are written whole; waiting for an ACK before a TLS record's second
        // segment (Nagle against the client's delayed ACK) would add 40 ms to each.
        let _ = stream.set_nodelay(true);
        let (slot, registration) = table.register();
        tokio::spawn(connection(stream, Arc::clone(&app), Arc::clone(&endpoint), slot, registration));
    }
}

/// One connection, from accept to close: TLS if configured, then HTTP/1.1, under its watchdog.
async fn connection(
    stream: TcpStream,
    app: Arc<App>,
    endpoint: Arc<Endpoint>,
    slot: Arc<Slot>,
    registration: conn::Registration,
) {
    let limits = endpoint.table.limits;
    let work = async {
        let tls = match &endpoint.config {
            None => None,
            Some(w) if w.changed() => {
                let w = Arc::clone(w);
                // Reading the files and hashing the dummy password block: not on this thread.
                match tokio::task::spawn_blocking(move || w.current()).await {
                    Ok(cfg) => cfg.tls.clone(),
                    Err(_) => return,
                }
            }
            Some(w) => w.snapshot().tls.clone(),
        };
        match tls {
            None => serve_http(Tracked::new(stream, Arc::clone(&slot)), &app, &endpoint, &slot).await,
            Some(tls) => {
                let mut stream = stream;
                let mut first = [0u8; 1];
                match stream.peek(&mut first).await {
                    // A TLS record starts with 0x16 (handshake); anything else is not TLS.
                    Ok(1) if first[0] != 0x16 => {
                        endpoint.table.stats.closed(Close::TlsHandshake);
                        let _ = stream.write_all(PLAIN_TO_TLS).await;
                        let _ = stream.shutdown().await;
                        return;
                    }
                    Ok(1) => {}
                    _ => return,
                }
                match tls.acceptor.accept(Tracked::new(stream, Arc::clone(&slot))).await {
                    Ok(s) => serve_http(s, &app, &endpoint, &slot).await,
                    Err(e) => {
                        endpoint.table.stats.closed(Close::TlsHandshake);
                        tracing::debug!(error = %e, "TLS handshake failed.");
                    }
                }
            }
        }
    };
    tokio::select! {
        () = work => {}
        why = conn::watchdog(&slot, &limits) => endpoint.table.stats.closed(why),
        // Counted by the accept loop that chose it.
        () = slot.killed() => {}
    }
    // The socket is closed (dropped with `work`) before the place is given back.
    drop(registration);
}

async fn serve_http<I>(io: I, app: &Arc<App>, endpoint: &Arc<Endpoint>, slot: &Arc<Slot>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (app, endpoint, slot) = (Arc::clone(app), Arc::clone(endpoint), Arc::clone(slot));
    // The WebSocket (`/api/ws`) this connection turns into, if it does, and its request's guard.
    let upgraded = Arc::new(std::sync::Mutex::new(None::<(ws::Upgrade, conn::Busy)>));
    let to_upgrade = Arc::clone(&upgraded);
    let svc = service_fn(move |req| {
        let busy = slot.begin();
        let (app, endpoint, to_upgrade) = (Arc::clone(&app), Arc::clone(&endpoint), Arc::clone(&to_upgrade));
        async move {
            let mut r = respond(&app, &endpoint, req).await;
            if let Some(ws) = r.extensions_mut().remove::<ws::Upgrade>() {
                // A stream, busy until the WebSocket closes (not when this empty 101 is written).
                busy.mark_stream();
                *to_upgrade.lock().unwrap_or_else(|p| p.into_inner()) = Some((ws, busy));
                return Ok::<_, Infallible>(r.map(|body| Guarded { body, _busy: None }));
            }
            if r.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")) {
                busy.mark_stream();
            }
            Ok::<_, Infallible>(r.map(|body| Guarded { body, _busy: Some(busy) }))
        }
    });
    // No hyper timer, so no hyper header timeout: its timer restarts after each response
    // and would close kept-alive connections at the header timeout. conn::watchdog keeps
    // the two timeouts apart.
    let http = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc).with_upgrades();
    if let Err(e) = http.await {
        tracing::debug!(error = %e, "Connection ended with an error.");
    }
    // Still on this connection's task: its watchdog, eviction and place in the table hold.
    let ws = upgraded.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((ws, _busy)) = ws {
        ws.run().await;
    }
}

/// A response body that keeps its connection counted as busy until it is done.
struct Guarded {
    body: HttpBody,
    _busy: Option<conn::Busy>,
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Auth (when configured), the route, and the config's extra headers.
async fn respond(app: &App, endpoint: &Endpoint, req: Request<Incoming>) -> Response<HttpBody> {
    let cfg = endpoint.config.as_ref().map(|w| w.snapshot());
    let verdict = match cfg.as_ref().and_then(|c| c.users.as_ref()) {
        Some(users) => endpoint.auth.check(users, req.headers().get(AUTHORIZATION)).await,
        None => auth::Verdict::Allowed,
    };
    let mut r = match verdict {
        auth::Verdict::Allowed => route(app, req).await,
        auth::Verdict::Denied => {
            endpoint.table.stats.auth_failure();
            let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n").map(BodyExt::boxed_unsync);
            r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"claude-sessions\""));
            r
        }
        auth::Verdict::Busy => {
            endpoint.table.stats.auth_failure();
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "too many logins being checked; retry\n")
                .map(BodyExt::boxed_unsync);
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    };
    for (k, v) in cfg.iter().flat_map(|c| &c.headers) {
        r.headers_mut().insert(k.clone(), v.clone());
    }
    r
}

/// Actions and approvals to [`control`], `/api/…` to the API (served at once, also while
/// history is read), the rest to [`handle`].
async fn route(app: &App, req: Request<Incoming>) -> Response<HttpBody> {
    let req = match control::route(&app.control, req).await {
        Ok(r) => return r,
        Err(req) => req,
    };
    let path = req.uri().path();
    if path != app.telemetry_path && crate::server::api::is_api_path(path) {
        let api = crate::server::api::Api {
            bus: Arc::clone(&app.bus),
            sessions: app.sessions.clone(),
            history: Arc::clone(&app.history),
        };
        if path == ws::PATH {
            return ws::handle(&api, req);
        }
        return crate::server::api::handle(&api, &req);
    }
    if console::is_console_path(path)
        && let Some(r) = console::respond(req.method(), req.uri(), req.headers(), &app.telemetry_path)
    {
        return r;
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
