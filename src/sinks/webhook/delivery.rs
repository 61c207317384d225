//! A running hook: its bounded queue, fed from a bus subscription, and the task that
//! sends it in batches through [`crate::sinks::http`], retrying.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hyper::body::Bytes;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;
use tracing::Instrument;

use super::{MAX_BACKOFF, SHUTDOWN_FLUSH, WebhookConfig, slack};
use crate::events::Event;
use crate::sinks::http::{self, Client, Retry, Shutdown, Statuses};
use crate::state::live::Aggregator;
use crate::state::metrics::{Counter, Gauge};

/// Reasons an event is dropped (`claude_sessions_exporter_webhook_dropped_total{reason}`).
pub(super) const DROP_REASONS: [&str; 4] = ["queue_full", "lagged", "failed", "shutdown"];

/// The retry policy of `cfg`.
fn policy(cfg: &WebhookConfig) -> Retry {
    Retry { attempts: cfg.max_attempts, initial: cfg.backoff, max: MAX_BACKOFF, statuses: Statuses::Transient }
}

/// An event waiting, with when it arrived (for `flush_interval`).
pub(super) struct Queued {
    at: Instant,
    event: Arc<Event>,
}

/// Outcomes not yet added to the store (the queue side cannot lock the aggregator
/// for every event).
#[derive(Default)]
pub(super) struct Counts {
    ok: AtomicU64,
    error: AtomicU64,
    /// Indexed like [`DROP_REASONS`].
    dropped: [AtomicU64; 4],
}

const QUEUE_FULL: usize = 0;
const LAGGED: usize = 1;
const FAILED: usize = 2;
const SHUTDOWN: usize = 3;

/// One running hook.
pub(super) struct Hook {
    index: usize,
    cfg: WebhookConfig,
    shown: String,
    queue: Mutex<VecDeque<Queued>>,
    ready: tokio::sync::Notify,
    /// The receiving side has stopped: what is queued is all there will be.
    closed: AtomicBool,
    /// A "queue full" warning was logged since the last delivery.
    warned_full: AtomicBool,
    counts: Counts,
}

impl Hook {
    /// The `index`th hook (it tells apart the batch ids of hooks started together). Logs its
    /// settings, the URL redacted.
    pub(super) fn new(index: usize, cfg: WebhookConfig) -> Hook {
        let shown = super::config::redact_url(&cfg.url);
        tracing::info!(
            webhook = %shown, format = cfg.format.as_str(), max_batch = cfg.max_batch,
            max_queue = cfg.max_queue, "Sending events to a webhook."
        );
        Hook {
            index,
            shown,
            cfg,
            queue: Mutex::new(VecDeque::new()),
            ready: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            warned_full: AtomicBool::new(false),
            counts: Counts::default(),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events queued, the batch in flight included.
    pub(super) fn len(&self) -> usize {
        self.queue().len()
    }

    fn drop_events(&self, reason: usize, n: u64) {
        self.counts.dropped[reason].fetch_add(n, Ordering::Relaxed);
    }

    /// Queue `e` if the filter takes it and there is room. Never waits.
    fn offer(&self, e: Arc<Event>) {
        if !self.cfg.filter.matches(&e) {
            return;
        }
        {
            let mut q = self.queue();
            if q.len() >= self.cfg.max_queue {
                drop(q);
                self.drop_events(QUEUE_FULL, 1);
                if !self.warned_full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        webhook = %self.shown,
                        max_queue = self.cfg.max_queue,
                        "Webhook queue full; dropping new events until it drains."
                    );
                }
                return;
            }
            q.push_back(Queued { at: Instant::now(), event: e });
        }
        self.ready.notify_one();
    }

    fn lagged(&self, n: u64) {
        self.drop_events(LAGGED, n);
        tracing::warn!(webhook = %self.shown, events = n, "Webhook fell behind the event bus; events dropped.");
    }
}

pub(super) fn lock(agg: &Mutex<Aggregator>) -> std::sync::MutexGuard<'_, Aggregator> {
    agg.lock().unwrap_or_else(|p| p.into_inner())
}

/// Add the hooks' outcomes to the store and set the queue gauge.
pub(super) fn flush_stats(agg: &Mutex<Aggregator>, hooks: &[Arc<Hook>]) {
    let queued: usize = hooks.iter().map(|h| h.len()).sum();
    let mut a = lock(agg);
    for h in hooks {
        let c = &h.counts;
        a.store.inc(Counter::WebhookDeliveries, &["ok"], c.ok.swap(0, Ordering::Relaxed) as f64);
        a.store.inc(Counter::WebhookDeliveries, &["error"], c.error.swap(0, Ordering::Relaxed) as f64);
        for (reason, n) in DROP_REASONS.iter().zip(&c.dropped) {
            a.store.inc(Counter::WebhookDropped, &[reason], n.swap(0, Ordering::Relaxed) as f64);
        }
    }
    a.store.set_gauges(Gauge::WebhookQueue, [(vec![], queued as f64)]);
}

/// Receive from the bus until stopped, then take what was already published.
async fn receive(hook: Arc<Hook>, mut rx: tokio::sync::broadcast::Receiver<Arc<Event>>, stop: Shutdown) {
    loop {
        tokio::select! {
            biased;
            _ = stop.stopped() => break,
            r = rx.recv() => match r {
                Ok(e) => hook.offer(e),
                Err(RecvError::Lagged(n)) => hook.lagged(n),
                Err(RecvError::Closed) => break,
            },
        }
    }
    loop {
        match rx.try_recv() {
            Ok(e) => hook.offer(e),
            Err(TryRecvError::Lagged(n)) => hook.lagged(n),
            Err(_) => break,
        }
    }
    hook.closed.store(true, Ordering::Release);
    hook.ready.notify_one();
}

/// Send one batch, retrying. Returns whether it was delivered.
async fn deliver(hook: &Hook, client: &Client, key: &str, body: Bytes, events: usize, stop: &Shutdown) -> bool {
    let mut headers = vec![("content-type", "application/json"), ("idempotency-key", key)];
    headers.extend(hook.cfg.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let sent =
        http::retry(&policy(&hook.cfg), stop, || client.post(&hook.cfg.url, &headers, body.clone(), hook.cfg.timeout))
            .instrument(tracing::debug_span!("webhook", webhook = %hook.shown))
            .await;
    match sent {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(
                webhook = %hook.shown, attempts = e.attempts, events, error = %e.error,
                "Webhook delivery failed; events dropped."
            );
            false
        }
    }
}

/// Batch and send until the receiving side has closed and the queue is empty.
async fn send(
    hook: Arc<Hook>,
    hooks: Arc<[Arc<Hook>]>,
    client: Client,
    agg: Arc<Mutex<Aggregator>>,
    run: u64,
    stop: Shutdown,
) {
    let max_batch = hook.cfg.max_batch.clamp(1, hook.cfg.max_queue.max(1));
    loop {
        // Wait for an event (a permit left by `notify_one` is never lost).
        loop {
            let notified = hook.ready.notified();
            if hook.len() > 0 {
                break;
            }
            if hook.closed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
        // Wait for a full batch, or until the oldest event has waited flush_interval.
        loop {
            let notified = hook.ready.notified();
            let (n, oldest) = {
                let q = hook.queue();
                (q.len(), q.front().map(|x| x.at))
            };
            let due = oldest.map_or_else(Instant::now, |t| t + hook.cfg.flush_interval);
            if n >= max_batch || stop.is_stopping() || hook.closed.load(Ordering::Acquire) || Instant::now() >= due {
                break;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.stopped() => {}
            }
        }
        // The batch stays in the queue (and counts against max_queue) until it is done.
        let batch: Vec<Arc<Event>> = hook.queue().iter().take(max_batch).map(|x| Arc::clone(&x.event)).collect();
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else { continue };
        let key = format!("{run:016x}-{}-{}-{}", hook.index, first.id, last.id);
        let body = Bytes::from(slack::render(hook.cfg.format, &key, &batch));
        let ok = deliver(&hook, &client, &key, body, batch.len(), &stop).await;
        {
            let mut q = hook.queue();
            let n = batch.len().min(q.len());
            q.drain(..n);
        }
        if ok {
            hook.counts.ok.fetch_add(1, Ordering::Relaxed);
            hook.warned_full.store(false, Ordering::Relaxed);
        } else {
            hook.counts.error.fetch_add(1, Ordering::Relaxed);
            hook.drop_events(FAILED, batch.len() as u64);
        }
        flush_stats(&agg, &hooks);
    }
}

/// One hook: receive and send; at shutdown, at most [`SHUTDOWN_FLUSH`] more.
pub(super) async fn run_hook(
    hook: Arc<Hook>,
    hooks: Arc<[Arc<Hook>]>,
    rx: tokio::sync::broadcast::Receiver<Arc<Event>>,
    client: Client,
    agg: Arc<Mutex<Aggregator>>,
    run: u64,
    stop: Shutdown,
) {
    let receiving = receive(Arc::clone(&hook), rx, stop.clone());
    let sending = send(Arc::clone(&hook), hooks, client, agg, run, stop.clone());
    if stop.bounded(SHUTDOWN_FLUSH, async { tokio::join!(receiving, sending) }).await.is_none() {
        let left = std::mem::take(&mut *hook.queue()).len();
        if left > 0 {
            tracing::warn!(webhook = %hook.shown, events = left, "Webhook: events not sent before shutdown; dropped.");
            hook.drop_events(SHUTDOWN, left as u64);
        }
    }
}
