//! Webhooks: realtime events POSTed to HTTP endpoints, as JSON or as Slack messages.
//!
//! In: events from the [`Bus`] (each hook subscribes on its own) and the hooks'
//! settings (`--webhook URL,key=value…` flags, `[[webhook]]` tables of a TOML
//! file). Out: `POST`s of batches, `{"batch_id": …, "events": [...]}` or
//! Slack's `{"text": …}`, with an `Idempotency-Key` header that is the batch id,
//! the same on every retry of the batch.
//!
//! Each hook keeps its own bounded queue of the events its filter accepts and
//! sends them in order, one batch at a time, up to `max_batch` events or after
//! `flush_interval`, through the shared client ([`crate::sinks::http`]).
//! Retryable failures (connection errors, timeouts, 408, 429, 5xx) are retried
//! with exponential backoff and jitter (a 429's or 503's `Retry-After` waited
//! out), `max_attempts` times in all; then the batch is dropped and counted.
//! Delivery is at least once: a batch whose response was lost is sent again
//! under the same key.
//!
//! Nothing here blocks the bus or the engine: the bus never waits for a
//! subscriber (one that falls behind loses events, counted as `lagged`), and a
//! full queue refuses new events (counted as `queue_full`). Memory is bounded
//! by `max_queue` events per hook, the batch in flight included.
//!
//! Outcomes are counted by the hooks themselves ([`Stats`]) and served on
//! `/metrics` by their collector ([`Webhooks::collector`]); the aggregator's
//! store does not hold them.
//!
//! URLs (Slack's carry a token in their path) and headers are secrets: logs and
//! errors show only the scheme and host.

mod config;
mod delivery;
mod slack;
mod stats;

use std::sync::Arc;
use std::time::Duration;

pub use config::{Format, WebhookConfig, load_config, parse_config};
use delivery::{Hook, run_hook};
use stats::Collector;
pub use stats::{DropReason, FAMILIES, NAMES, Stats};

use super::http::{self, Client, Stopper, TlsOptions};
use crate::events::Bus;

/// Events per POST, by default.
pub const DEFAULT_MAX_BATCH: usize = 100;
/// Events a hook holds while its endpoint is slow or down, by default.
pub const DEFAULT_MAX_QUEUE: usize = 10_000;
/// How long the first event of a batch waits for more, by default.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Attempts per batch (1 = no retry), by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// First retry delay, doubling each time, by default.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);
/// Time allowed for one request (connect to response headers), by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a shutdown waits for queued events to be sent (one attempt per batch).
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// The running webhooks: one delivery thread for all hooks. Stop it with
/// [`Webhooks::shutdown`] (dropping it stops the thread too, without waiting).
pub struct Webhooks {
    hooks: Arc<[Arc<Hook>]>,
    stats: Arc<Stats>,
    stop: Stopper,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Webhooks {
    /// Validate `configs`, subscribe each hook to `bus` (events published from now
    /// on are theirs) and start the delivery thread. Outcomes are counted in the
    /// hooks' own [`Stats`], exposed by [`Webhooks::collector`]. With no configs
    /// nothing runs and the collector writes nothing. Errors: an invalid config, or
    /// no thread or runtime to run on.
    pub fn start(configs: Vec<WebhookConfig>, bus: &Arc<Bus>) -> anyhow::Result<Webhooks> {
        let (stop, stopped) = http::shutdown();
        let stats = Arc::new(Stats::default());
        if configs.is_empty() {
            return Ok(Webhooks { hooks: Arc::from(Vec::new()), stats, stop, thread: None });
        }
        for cfg in &configs {
            cfg.validate().map_err(anyhow::Error::msg)?;
        }
        // The system's roots are read only when some hook uses https.
        let tls = TlsOptions { system_roots: configs.iter().any(|c| c.url.starts_with("https://")), ca_file: None };
        let client = Client::new(&tls)?;
        let hooks: Arc<[Arc<Hook>]> = configs
            .into_iter()
            .enumerate()
            .map(|(index, cfg)| Arc::new(Hook::new(index, cfg, Arc::clone(&stats))))
            .collect();
        // Subscribed here, before returning: nothing published after `start` is missed.
        let receivers: Vec<_> = hooks.iter().map(|_| bus.subscribe()).collect();
        let run = {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            crate::state::dedup::fnv1a(&[&now.as_nanos().to_le_bytes(), &std::process::id().to_le_bytes()])
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let tasks: Vec<_> = hooks
            .iter()
            .zip(receivers)
            .map(|(hook, rx)| run_hook(Arc::clone(hook), rx, client.clone(), run, stopped.clone()))
            .collect();
        let thread = std::thread::Builder::new().name("webhooks".into()).spawn(move || {
            rt.block_on(async move {
                let tasks: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
                for t in tasks {
                    let _ = t.await;
                }
            });
        })?;
        Ok(Webhooks { hooks, stats, stop, thread: Some(thread) })
    }

    /// The outcomes counted so far (they go on changing until [`Webhooks::shutdown`] returns).
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// The hooks' self-metrics ([`NAMES`]), for [`crate::server::Exposition::register`]:
    /// read at each scrape, nothing when no hook runs.
    pub fn collector(&self) -> Box<dyn prometheus_client::collector::Collector> {
        Box::new(Collector { stats: Arc::clone(&self.stats), hooks: Arc::clone(&self.hooks) })
    }

    /// Events waiting in all hooks' queues, batches in flight included.
    pub fn queued(&self) -> usize {
        self.hooks.iter().map(|h| h.len()).sum()
    }

    /// Stop: what was published before gets one attempt per batch, within
    /// [`SHUTDOWN_FLUSH`] in all; the rest is dropped and counted.
    pub fn shutdown(mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        self.stop.stop();
    }
}
