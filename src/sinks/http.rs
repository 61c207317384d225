//! The one HTTP client of the sinks (webhooks, OTLP over HTTP): TLS, a POST with a
//! deadline, a retry policy, and a stop signal that bounds shutdown.
//!
//! In: TLS settings once ([`TlsOptions`]); then a URL, headers and a body per
//! request. Out: the status and (bounded) body of a 2xx response, or an
//! [`HttpError`] that tells whether trying again may help and how long the
//! server asked to wait (`Retry-After`).
//!
//! [`retry`] runs an attempt again with exponential backoff and jitter until it
//! succeeds, fails for good, runs out of attempts or the [`Shutdown`] signal is
//! given (then at most one more attempt). [`Shutdown::bounded`] gives work in
//! flight a deadline once the signal is given.
//!
//! Nothing here logs or formats a URL or a header: they may be secrets (a Slack
//! webhook URL holds a token, OTLP headers hold API keys). Errors name neither.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full, Limited};
use hyper::StatusCode;
use hyper::body::Bytes;

/// At most this much of a response body is read (the rest is discarded).
pub const MAX_RESPONSE_BODY: usize = 1 << 20;
/// The longest `Retry-After` honoured: a server asking for more waits this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Sent with every request.
const USER_AGENT: &str = concat!("claude-sessions/", env!("CARGO_PKG_VERSION"));

/// Which certificates a [`Client`] trusts for `https://` URLs (plain `http://` needs none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Trust the operating system's root certificates, read once by [`Client::new`].
    /// Off: only `ca_file`'s (a client that will only ever see `http://` URLs
    /// saves reading the system store).
    pub system_roots: bool,
    /// A PEM file of more CA certificates to trust (a private CA); it must hold at least one.
    pub ca_file: Option<PathBuf>,
}

impl Default for TlsOptions {
    /// The system's roots, no CA file.
    fn default() -> TlsOptions {
        TlsOptions { system_roots: true, ca_file: None }
    }
}

/// Why a client could not be built or a request failed. Messages hold no URL
/// and no header value.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The CA file could not be read.
    #[error("cannot read CA file {}: {error}", path.display())]
    CaFile {
        /// The file named in [`TlsOptions::ca_file`].
        path: PathBuf,
        /// What reading it said.
        error: std::io::Error,
    },
    /// The CA file was read but holds no usable PEM certificate.
    #[error("CA file {}: {reason}", path.display())]
    BadCa {
        /// The file named in [`TlsOptions::ca_file`].
        path: PathBuf,
        /// What is wrong with its contents.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Tls(String),
    /// The URL, a header name or a header value is not valid HTTP. Permanent.
    #[error("the URL or a header is invalid")]
    InvalidRequest,
    /// No response headers within the request's timeout (connecting included).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Connecting, the TLS handshake, or the exchange failed: the error and its causes.
    #[error("{0}")]
    Transport(String),
    /// The server answered with a status other than 2xx.
    #[error("HTTP status {status}")]
    Status {
        /// What it answered.
        status: StatusCode,
        /// Its `Retry-After` (seconds or an HTTP date), read on 429 and 503 only.
        retry_after: Option<Duration>,
    },
}

/// A 2xx response.
#[derive(Debug, Clone)]
pub struct Response {
    /// 200 to 299.
    pub status: StatusCode,
    /// The first [`MAX_RESPONSE_BODY`] bytes of the body; empty when it could not be read
    /// before the request's deadline (the status alone decides success).
    pub body: Bytes,
}

type Inner = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// An HTTP/1.1 client for `http://` and `https://` URLs, with a connection pool.
/// Cheap to clone (clones share the pool). Requests need a tokio runtime.
#[derive(Clone)]
pub struct Client {
    inner: Inner,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// The certificates `tls` names as trusted.
fn roots(tls: &TlsOptions) -> Result<rustls::RootCertStore, HttpError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if tls.system_roots {
        for cert in rustls_native_certs::load_native_certs().certs {
            // A system certificate rustls cannot parse is skipped, as browsers do.
            let _ = roots.add(cert);
        }
    }
    if let Some(path) = &tls.ca_file {
        let pem = std::fs::read(path).map_err(|error| HttpError::CaFile { path: path.clone(), error })?;
        let bad = |reason: String| HttpError::BadCa { path: path.clone(), reason };
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad("holds no PEM certificate".into()));
        }
    }
    Ok(roots)
}

impl Client {
    /// A client trusting what `tls` says. Errors: the CA file cannot be read or holds
    /// no certificate. Connects lazily; needs no runtime to be built.
    pub fn new(tls: &TlsOptions) -> Result<Client, HttpError> {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::Tls(e.to_string()))?
            .with_root_certificates(roots(tls)?)
            .with_no_client_auth();
        let https =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_or_http().enable_http1().build();
        Ok(Client {
            inner: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https),
        })
    }

    /// POST `body` to `url` with `headers` (and `User-Agent: claude-sessions/<version>`).
    ///
    /// `timeout` bounds the exchange up to the response headers, connecting and TLS
    /// included; reading the body gets what is left of it. A 2xx is `Ok`; any other
    /// status is [`HttpError::Status`] (its body read and discarded, so that the
    /// connection can be reused).
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let mut b = hyper::Request::post(url).header(hyper::header::USER_AGENT, USER_AGENT);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body)).map_err(|_| HttpError::InvalidRequest)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let resp = match tokio::time::timeout_at(deadline, self.inner.request(req)).await {
            Err(_) => return Err(HttpError::Timeout(timeout)),
            Ok(Err(e)) => return Err(HttpError::Transport(chain(&e))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        let retry_after = matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
            .then(|| resp.headers().get(hyper::header::RETRY_AFTER))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = match tokio::time::timeout_at(deadline, Limited::new(resp.into_body(), MAX_RESPONSE_BODY).collect())
            .await
        {
            Ok(Ok(collected)) => collected.to_bytes(),
            _ => Bytes::new(),
        };
        if status.is_success() { Ok(Response { status, body }) } else { Err(HttpError::Status { status, retry_after }) }
    }
}

/// An error and its causes, `a: b: c` (hyper's errors name no URL).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// A `Retry-After` value as a wait from `now`: whole seconds, or an HTTP date (any of
/// the three formats of RFC 9110; a date already past is no wait). Capped at
/// [`MAX_RETRY_AFTER`]. `None` when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still "a long time".
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        httpdate::parse_http_date(value).ok()?.duration_since(now).unwrap_or_default()
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Which HTTP statuses are worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statuses {
    /// 408, 429 and every 5xx: the common reading (webhooks).
    Transient,
    /// 429, 502, 503 and 504 only, as the OTLP/HTTP specification requires (a 500
    /// there means the data itself was refused).
    Otlp,
}

impl Statuses {
    /// Whether `status` is worth another attempt.
    pub fn retryable(self, status: StatusCode) -> bool {
        match self {
            Statuses::Transient => matches!(status.as_u16(), 408 | 429 | 500..=599),
            Statuses::Otlp => matches!(status.as_u16(), 429 | 502..=504),
        }
    }
}

/// How hard to try: attempts in all, and the waits between them.
///
/// The wait before retry `n` (1 for the first retry) is `initial × 2^(n-1)`, plus
/// up to half of that as jitter, at most `max`; or the server's `Retry-After` if
/// that is longer (at most [`MAX_RETRY_AFTER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included (0 counts as 1: no retry).
    pub attempts: u32,
    /// The first wait.
    pub initial: Duration,
    /// The longest wait computed by backoff.
    pub max: Duration,
    /// Which statuses are retried (connection errors and timeouts always are).
    pub statuses: Statuses,
}

impl Retry {
    /// The wait before retry `n` (1-based), `jitter` in `[0, 1)` choosing where in
    /// `[backoff, 1.5 × backoff]` it falls; `retry_after` (already capped) wins when longer.
    pub fn wait(&self, n: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
        let base = self.initial.saturating_mul(2u32.saturating_pow(n.saturating_sub(1))).min(self.max);
        let jittered = base.saturating_add(base.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)).min(self.max);
        jittered.max(retry_after.unwrap_or_default())
    }
}

/// What [`retry`] needs to know of a failed attempt.
pub trait Failure: std::fmt::Display {
    /// Whether another attempt may succeed, under `policy`.
    fn retryable(&self, policy: &Retry) -> bool;
    /// The wait the server asked for, if any.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Failure for HttpError {
    /// Timeouts, transport errors and the policy's statuses; never a bad request or TLS settings.
    fn retryable(&self, policy: &Retry) -> bool {
        match self {
            HttpError::Timeout(_) | HttpError::Transport(_) => true,
            HttpError::Status { status, .. } => policy.statuses.retryable(*status),
            HttpError::CaFile { .. } | HttpError::BadCa { .. } | HttpError::Tls(_) | HttpError::InvalidRequest => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The last failure of an attempt that [`retry`] gave up on.
#[derive(Debug, thiserror::Error)]
#[error("{error} (attempt {attempts})")]
pub struct GaveUp<E: std::fmt::Display + std::fmt::Debug> {
    /// The last attempt's error.
    pub error: E,
    /// Attempts made, the last included.
    pub attempts: u32,
}

/// Run `attempt` until it succeeds, fails with an error that is not retryable, has run
/// `policy.attempts` times, or `shutdown` is given: a wait is then cut short for one
/// last attempt, and an attempt that fails after it is not retried. Each retry is
/// logged at debug level (the error only).
pub async fn retry<T, E, F, Fut>(policy: &Retry, shutdown: &Shutdown, mut attempt: F) -> Result<T, GaveUp<E>>
where
    E: Failure + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let attempts = policy.attempts.max(1);
    let mut last = false;
    for n in 1.. {
        let error = match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if n >= attempts || last || shutdown.is_stopping() || !error.retryable(policy) {
            return Err(GaveUp { error, attempts: n });
        }
        let wait = policy.wait(n, jitter(), error.retry_after());
        tracing::debug!(attempt = n, %error, ?wait, "HTTP attempt failed; retrying.");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.stopped() => last = true,
        }
    }
    unreachable!("the loop returns")
}

/// A number in `[0, 1)`, different on each call and in each process (spreads the
/// retries of many daemons; not for secrets).
fn jitter() -> f64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        crate::state::dedup::fnv1a(&[&now.as_nanos().to_le_bytes(), &std::process::id().to_le_bytes()])
    });
    // splitmix64
    let mut z = seed.wrapping_add(NEXT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The stop signal of a sink's tasks: [`Stopper::stop`] gives it, [`Shutdown`]s watch it.
pub fn shutdown() -> (Stopper, Shutdown) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    (Stopper(tx), Shutdown(rx))
}

/// Gives the stop signal (see [`shutdown`]). Dropping it gives it too.
#[derive(Debug)]
pub struct Stopper(tokio::sync::watch::Sender<bool>);

impl Stopper {
    /// Give the signal: every [`Shutdown`] sees it from now on.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// One more watcher of this signal.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

/// Watches the stop signal (see [`shutdown`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// Whether the signal was given (or its [`Stopper`] dropped).
    pub fn is_stopping(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves once the signal is given (or its [`Stopper`] dropped).
    pub async fn stopped(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Run `work` to its end, unless the signal is given and `grace` passes after it
    /// first: then `None`, and `work` is dropped (a request in flight is abandoned).
    pub async fn bounded<F: Future>(&self, grace: Duration, work: F) -> Option<F::Output> {
        let deadline = async {
            self.stopped().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            biased;
            out = work => Some(out),
            _ = deadline => None,
        }
    }
}

/// `%XX` escapes decoded (URL paths and query values, `OTEL_EXPORTER_OTLP_HEADERS`);
/// a malformed escape is kept as it is, and bytes that are not UTF-8 become U+FFFD.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())
            && let Ok(v) = u8::from_str_radix(v, 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_all_three_http_date_formats() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:00 GMT").unwrap();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        for date in ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            assert_eq!(parse_retry_after(date, now), Some(Duration::from_secs(37)), "{date}");
        }
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO), "past: no wait");
        assert_eq!(parse_retry_after("99999999999999999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Mon, 07 Nov 1994 08:49:00 GMT", now), Some(MAX_RETRY_AFTER));
        for bad in ["", "-1", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn backoff_doubles_within_its_bounds_and_yields_to_retry_after() {
        let p = Retry {
            attempts: 10,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            statuses: Statuses::Transient,
        };
        for n in 1..=12 {
            let base = Duration::from_millis(500 * (1 << (n - 1).min(20))).min(p.max);
            assert_eq!(p.wait(n, 0.0, None), base, "retry {n}, no jitter");
            let most = p.wait(n, 0.999_999, None);
            assert!(most >= base && most <= (base * 3 / 2).min(p.max), "retry {n}: {most:?}");
        }
        assert_eq!(p.wait(1, 0.5, None), Duration::from_millis(625));
        assert_eq!(p.wait(u32::MAX, 1.0, None), p.max, "no overflow");
        assert_eq!(p.wait(1, 0.0, Some(Duration::from_secs(90))), Duration::from_secs(90), "Retry-After wins");
        assert_eq!(p.wait(3, 0.0, Some(Duration::from_millis(1))), Duration::from_secs(2), "backoff wins");
        let draws: Vec<f64> = (0..1000).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.4..0.6).contains(&mean), "jitter spreads: mean {mean}");
    }

    #[test]
    fn statuses_split_transient_from_permanent() {
        let s = |n| StatusCode::from_u16(n).unwrap();
        for n in [408, 429, 500, 502, 503, 504] {
            assert!(Statuses::Transient.retryable(s(n)), "{n}");
        }
        for n in [400, 401, 403, 404, 413] {
            assert!(!Statuses::Transient.retryable(s(n)) && !Statuses::Otlp.retryable(s(n)), "{n}");
        }
        assert!(!Statuses::Otlp.retryable(s(500)) && !Statuses::Otlp.retryable(s(408)));
        assert!(Statuses::Otlp.retryable(s(429)) && Statuses::Otlp.retryable(s(503)));
    }

    #[derive(Debug)]
    struct Flaky(bool);

    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "flaky")
        }
    }

    impl Failure for Flaky {
        fn retryable(&self, _: &Retry) -> bool {
            self.0
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_at_the_attempts_a_permanent_error_or_shutdown() {
        let p = Retry {
            attempts: 4,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            statuses: Statuses::Otlp,
        };
        let (stopper, stop) = shutdown();
        let mut calls = 0;
        let r = retry(&p, &stop, || {
            calls += 1;
            async { Err::<(), _>(Flaky(true)) }
        })
        .await;
        assert_eq!((r.unwrap_err().attempts, calls), (4, 4));
        let t = tokio::time::Instant::now();
        let r = retry(&p, &stop, || async { Err::<(), _>(Flaky(false)) }).await;
        assert_eq!(r.unwrap_err().attempts, 1, "a permanent error is not retried");
        assert_eq!(t.elapsed(), Duration::ZERO);

        // Stopping during a wait: one more attempt, at once.
        let mut calls = 0;
        let t = tokio::time::Instant::now();
        let (r, ()) = tokio::join!(
            retry(&p, &stop, || {
                calls += 1;
                async { Err::<(), _>(Flaky(true)) }
            }),
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                stopper.stop();
            }
        );
        assert_eq!((r.unwrap_err().attempts, calls), (2, 2));
        assert_eq!(t.elapsed(), Duration::from_millis(100));
        // Already stopped: one attempt, no wait.
        assert_eq!(retry(&p, &stop, || async { Err::<(), _>(Flaky(true)) }).await.unwrap_err().attempts, 1);
        assert_eq!(retry(&p, &stop, || async { Ok::<_, Flaky>(7) }).await.unwrap(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_gives_work_a_deadline_only_after_the_signal() {
        let (stopper, stop) = shutdown();
        let slow = tokio::time::sleep(Duration::from_secs(3600));
        let t = tokio::time::Instant::now();
        let (out, ()) = tokio::join!(stop.bounded(Duration::from_secs(5), slow), async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            stopper.stop();
        });
        assert_eq!((out, t.elapsed()), (None, Duration::from_secs(65)));
        assert_eq!(stop.bounded(Duration::from_secs(5), async { 1 }).await, Some(1), "work that ends is kept");
        let (dropped, watcher) = shutdown();
        drop(dropped);
        assert!(watcher.is_stopping(), "a dropped stopper stops");
    }

    #[test]
    fn a_ca_file_must_exist_and_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = Client::new(&TlsOptions { system_roots: false, ca_file: Some(missing) }).unwrap_err();
        assert!(matches!(e, HttpError::CaFile { .. }) && e.to_string().contains("missing.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = Client::new(&TlsOptions { system_roots: false, ca_file: Some(empty) }).unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        assert!(Client::new(&TlsOptions { system_roots: false, ca_file: None }).is_ok());
    }
}
