//! The endpoint's own counts (closed connections by reason, failed accepts,
//! refused logins) and their collector for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::{Close, Table};

/// Counts for `/metrics`; plain atomics, as the writers are connection tasks.
#[derive(Debug, Default)]
pub struct Stats {
    closed: [AtomicU64; Close::ALL.len()],
    accept_fd_limit: AtomicU64,
    accept_other: AtomicU64,
    auth_failures: AtomicU64,
}

impl Stats {
    /// Count a connection the server closed, by reason.
    pub fn closed(&self, why: Close) {
        self.closed[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections closed for `why` since start.
    pub fn closed_count(&self, why: Close) -> u64 {
        self.closed[why as usize].load(Ordering::Relaxed)
    }

    /// `accept` failed; `fd_limit`: for lack of descriptors (or kernel memory).
    pub fn accept_error(&self, fd_limit: bool) {
        let c = if fd_limit { &self.accept_fd_limit } else { &self.accept_other };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a request refused by basic auth (401, or 503 with too many logins waiting).
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// The endpoint's own metrics, registered beside the store's. Declared here, not in
/// [`crate::state::metrics`], because they describe this server and not transcripts: they
/// are not checkpointed and `scan` has none.
#[derive(Debug)]
pub struct Collector {
    /// The open connections and their counts.
    pub(crate) table: Arc<Table>,
    /// `--web.config.file`, for its reload status (the gauge is left out without one).
    pub(crate) config: Option<Arc<crate::server::web_config::Watched>>,
}

/// Name (without `_total`), type, help.
const CONNECTIONS: (&str, &str) =
    ("claude_sessions_exporter_http_connections", "Open connections to the HTTP endpoint.");
const CONNECTIONS_MAX: (&str, &str) = (
    "claude_sessions_exporter_http_connections_max",
    "Most connections the HTTP endpoint holds at once (--web.max-connections, lowered to fit the descriptor limit).",
);
const CLOSED: (&str, &str) = (
    "claude_sessions_exporter_http_connections_closed",
    "Connections the server closed, by reason: header_timeout, idle_timeout, stalled, evicted (idle, at the cap), evicted_stream (oldest event stream, at the cap), rejected (at the cap, all busy), tls_handshake.",
);
const ACCEPT_ERRORS: (&str, &str) = (
    "claude_sessions_exporter_http_accept_errors",
    "Failed accepts, by reason: fd_limit (out of descriptors or kernel memory; accept backs off), other.",
);
const AUTH_FAILURES: (&str, &str) = (
    "claude_sessions_exporter_http_auth_failures",
    "Requests refused by basic auth: 401 (missing or wrong), or 503 (too many logins waiting for their bcrypt check).",
);
const CONFIG_OK: (&str, &str) = (
    "claude_sessions_exporter_web_config_last_reload_successful",
    "1 if the web config file was read successfully the last time it changed (only with --web.config.file).",
);

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = |e: &mut DescriptorEncoder, (name, help): (&str, &str), v: i64| {
            e.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&v)
        };
        let counters = |e: &mut DescriptorEncoder, (name, help): (&str, &str), series: &[(&str, u64)]| {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (label, v) in series {
                let labels = vec![("reason", *label)];
                let mut fm = m.encode_family(&labels)?;
                fm.encode_counter::<NoLabelSet, u64, u64>(v, None)?;
            }
            Ok::<(), std::fmt::Error>(())
        };
        let stats = &self.table.stats;
        gauge(&mut encoder, CONNECTIONS, i64::try_from(self.table.len()).unwrap_or(i64::MAX))?;
        gauge(&mut encoder, CONNECTIONS_MAX, i64::try_from(self.table.limits.max_connections).unwrap_or(i64::MAX))?;
        let closed: Vec<(&str, u64)> = Close::ALL.iter().map(|c| (c.label(), stats.closed_count(*c))).collect();
        counters(&mut encoder, CLOSED, &closed)?;
        counters(
            &mut encoder,
            ACCEPT_ERRORS,
            &[
                ("fd_limit", stats.accept_fd_limit.load(Ordering::Relaxed)),
                ("other", stats.accept_other.load(Ordering::Relaxed)),
            ],
        )?;
        encoder
            .encode_descriptor(AUTH_FAILURES.0, AUTH_FAILURES.1, None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, u64, u64>(&stats.auth_failures.load(Ordering::Relaxed), None)?;
        if let Some(w) = &self.config {
            gauge(&mut encoder, CONFIG_OK, i64::from(w.last_reload_ok()))?;
        }
        Ok(())
    }
}
