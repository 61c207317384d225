//! The webhooks' self-metrics: kept by the sink in atomics, exposed on `/metrics` by a
//! collector registered beside the store's ([`crate::server::Exposition::register`]).
//!
//! They describe this process's deliveries, not transcripts: the aggregator's store
//! (the one owner of counted facts) does not hold them, the checkpoint does not keep
//! them (they start at 0 with each process, as counters may), and `scan` has none.
//! Names, labels, help and types are those the store declared before, so that
//! dashboards and alerts keep working.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::delivery::Hook;
use crate::state::metrics::{Def, Type};

/// Why an event was not delivered (the `reason` label of `…_webhook_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The hook's queue held `max_queue` events: new ones were refused.
    QueueFull,
    /// The hook fell behind the event bus, which went on without it.
    Lagged,
    /// Its batch failed after retries, or was refused with a status not retried.
    Failed,
    /// Still queued when the shutdown's grace ran out.
    Shutdown,
}

impl DropReason {
    /// Every reason, in label order.
    pub const ALL: [DropReason; 4] =
        [DropReason::QueueFull, DropReason::Lagged, DropReason::Failed, DropReason::Shutdown];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Lagged => "lagged",
            DropReason::Failed => "failed",
            DropReason::Shutdown => "shutdown",
        }
    }
}

/// Outcomes of all the hooks started together, since they started.
#[derive(Debug, Default)]
pub struct Stats {
    ok: AtomicU64,
    error: AtomicU64,
    /// Indexed like [`DropReason::ALL`].
    dropped: [AtomicU64; 4],
}

impl Stats {
    /// Batches delivered (`ok`), or given up on (`!ok`: failed after retries, or refused).
    pub fn deliveries(&self, ok: bool) -> u64 {
        if ok { &self.ok } else { &self.error }.load(Ordering::Relaxed)
    }

    /// Events dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    /// Count one batch's outcome.
    pub(super) fn delivered(&self, ok: bool) {
        if ok { &self.ok } else { &self.error }.fetch_add(1, Ordering::Relaxed);
    }

    /// Count `n` events dropped for `reason`.
    pub(super) fn drop_events(&self, reason: DropReason, n: u64) {
        self.dropped[reason as usize].fetch_add(n, Ordering::Relaxed);
    }
}

/// The families the collector writes, declared as the store declares its own (for the
/// checks that dashboards and the README name only declared metrics).
pub static FAMILIES: [Def; 3] = [
    Def {
        base: "claude_sessions_exporter_webhook_deliveries",
        unit: None,
        help: "Webhook POSTs (batches of events) by result: ok, or error (failed after retries, or refused).",
        labels: &["result"],
        kind: Type::Counter,
        buckets: &[],
    },
    Def {
        base: "claude_sessions_exporter_webhook_dropped",
        unit: None,
        help: "Events not delivered to a webhook, by reason: queue_full, lagged (fell behind the event bus), failed \
               (after retries), shutdown (not sent before exit).",
        labels: &["reason"],
        kind: Type::Counter,
        buckets: &[],
    },
    Def {
        base: "claude_sessions_exporter_webhook_queue",
        unit: None,
        help: "Events waiting to be sent to webhooks, in flight included (at most max_queue per hook).",
        labels: &[],
        kind: Type::Gauge,
        buckets: &[],
    },
];

/// Every name the collector writes, as exposed (counters with `_total`).
pub const NAMES: [&str; 3] = [
    "claude_sessions_exporter_webhook_deliveries_total",
    "claude_sessions_exporter_webhook_dropped_total",
    "claude_sessions_exporter_webhook_queue",
];

/// Writes [`FAMILIES`] from the hooks' [`Stats`] and queues; nothing when no hook runs.
pub(super) struct Collector {
    pub(super) stats: Arc<Stats>,
    pub(super) hooks: Arc<[Arc<Hook>]>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").field("stats", &self.stats).field("hooks", &self.hooks.len()).finish()
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.hooks.is_empty() {
            return Ok(());
        }
        let [deliveries, dropped, queue] = &FAMILIES;
        let counter = |e: &mut DescriptorEncoder, def: &Def, series: &[(&str, u64)]| {
            let mut m = e.encode_descriptor(def.base, def.help, None, MetricType::Counter)?;
            for (value, n) in series {
                let labels = [(def.labels[0], *value)];
                m.encode_family(&labels)?.encode_counter::<NoLabelSet, u64, u64>(n, None)?;
            }
            Ok::<(), std::fmt::Error>(())
        };
        let s = &self.stats;
        counter(&mut encoder, deliveries, &[("ok", s.deliveries(true)), ("error", s.deliveries(false))])?;
        let drops: Vec<(&str, u64)> = DropReason::ALL.iter().map(|r| (r.label(), s.dropped(*r))).collect();
        counter(&mut encoder, dropped, &drops)?;
        let queued: usize = self.hooks.iter().map(|h| h.len()).sum();
        encoder
            .encode_descriptor(queue.base, queue.help, None, MetricType::Gauge)?
            .encode_gauge(&i64::try_from(queued).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_families_as_exposed() {
        let exposed: Vec<String> = FAMILIES.iter().map(Def::exposed_name).collect();
        assert_eq!(exposed, NAMES);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
