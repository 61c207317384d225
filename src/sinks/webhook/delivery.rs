//! A running hook: its bounded queue, fed from a bus subscription, and the task that
//! sends it in batches through [`crate::sinks::http`], retrying.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hyper::body::Bytes;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;
use tracing::Instrument;

use super::stats::{DropReason, Stats};
use super::{MAX_BACKOFF, SHUTDOWN_FLUSH, WebhookConfig, slack};
use crate::events::Event;
use crate::sinks::http::{self, Client, Retry, Shutdown, Statuses};

/// The retry policy of `cfg`.
fn policy(cfg: &WebhookConfig) -> Retry {
    Retry { attempts: cfg.max_attempts, initial: cfg.backoff, max: MAX_BACKOFF, statuses: Statuses::Transient }
}

/// An event waiting, with when it arrived (for `flush_interval`).
pub(super) struct Queued {
    at: Instant,
    event: Arc<Event>,
}

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
    stats: Arc<Stats>,
}

impl Hook {
    /// The `index`th hook (it tells apart the batch ids of hooks started together). Logs its
    /// settings, the URL redacted.
    pub(super) fn new(index: usize, cfg: WebhookConfig, stats: Arc<Stats>) -> Hook {
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
            stats,
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events queued, the batch in flight included.
    pub(super) fn len(&self) -> usize {
        self.queue().len()
    }

    fn drop_events(&self, reason: DropReason, n: u64) {
        self.stats.drop_events(reason, n);
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
                self.drop_events(DropReason::QueueFull, 1);
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
        self.drop_events(DropReason::Lagged, n);
        tracing::warn!(webhook = %self.shown, events = n, "Webhook fell behind the event bus; events dropped.");
    }
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
async fn send(hook: Arc<Hook>, client: Client, run: u64, stop: Shutdown) {
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
        let body = Bytes::from(slack::render(hook.cfg.format, &key, &batch, hook.cfg.console_url.as_deref()));
        let ok = deliver(&hook, &client, &key, body, batch.len(), &stop).await;
        {
            let mut q = hook.queue();
            let n = batch.len().min(q.len());
            q.drain(..n);
        }
        hook.stats.delivered(ok);
        if ok {
            hook.warned_full.store(false, Ordering::Relaxed);
        } else {
            hook.drop_events(DropReason::Failed, batch.len() as u64);
        }
    }
}

/// One hook: receive and send; at shutdown, at most [`SHUTDOWN_FLUSH`] more.
pub(super) async fn run_hook(
    hook: Arc<Hook>,
    rx: tokio::sync::broadcast::Receiver<Arc<Event>>,
    client: Client,
    run: u64,
    stop: Shutdown,
) {
    let receiving = receive(Arc::clone(&hook), rx, stop.clone());
    let sending = send(Arc::clone(&hook), client, run, stop.clone());
    if stop.bounded(SHUTDOWN_FLUSH, async { tokio::join!(receiving, sending) }).await.is_none() {
        let left = std::mem::take(&mut *hook.queue()).len();
        if left > 0 {
            tracing::warn!(webhook = %hook.shown, events = left, "Webhook: events not sent before shutdown; dropped.");
            hook.drop_events(DropReason::Shutdown, left as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Bus, Kind};

    fn idle() -> crate::events::Event {
        Event {
            id: 0,
            ts_ms: 1,
            session_id: "s".into(),
            project: "app".into(),
            agent_id: None,
            trace_id: None,
            span_id: None,
            kind: Kind::SessionIdle {},
        }
    }

    /// The bus never waits for a hook: one that falls behind loses the oldest events,
    /// counted as `lagged`, and goes on with the newest.
    #[tokio::test(start_paused = true)]
    async fn a_hook_that_falls_behind_the_bus_counts_what_it_missed() {
        let bus = Bus::new(4, 4);
        let stats = Arc::new(Stats::default());
        let hook = Arc::new(Hook::new(0, WebhookConfig::new("http://127.0.0.1:9/"), Arc::clone(&stats)));
        let rx = bus.subscribe();
        for _ in 0..50 {
            bus.publish(idle());
        }
        let (_stopper, stop) = http::shutdown();
        // Receives until the bus is empty, then waits for more.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), receive(Arc::clone(&hook), rx, stop)).await;
        assert_eq!(stats.dropped(DropReason::Lagged), 46);
        let ids: Vec<u64> = hook.queue().iter().map(|q| q.event.id).collect();
        assert_eq!(ids, [47, 48, 49, 50]);
        assert!(!hook.closed.load(Ordering::Acquire), "still receiving");
    }
}
