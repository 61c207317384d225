//! The approvals' own metrics: how many were settled, by state, and how many wait now.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::{ApprovalState, Control};
use crate::state::metrics::{Def, Type};

/// The settled states, in the order of [`Control`]'s counts.
pub(super) const SETTLED: [ApprovalState; 3] = [ApprovalState::Allowed, ApprovalState::Denied, ApprovalState::Expired];

/// The families [`Control::collector`] writes, declared as the store declares its own
/// (for the checks that dashboards and the README name only declared metrics).
pub static FAMILIES: [Def; 2] = [
    Def {
        base: "claude_sessions_approvals",
        unit: None,
        help: "Approvals (tool calls a rule held for a person) settled since the daemon started, by state: allowed, denied, expired.",
        labels: &["state"],
        kind: Type::Counter,
        buckets: &[],
    },
    Def {
        base: "claude_sessions_approvals_pending",
        unit: None,
        help: "Tool calls waiting for a person's decision now.",
        labels: &[],
        kind: Type::Gauge,
        buckets: &[],
    },
];

/// Writes [`FAMILIES`] from a [`Control`].
pub(super) struct Collector(pub(super) Arc<Control>);

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("control::Collector")
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let [settled, pending] = &FAMILIES;
        let mut m = encoder.encode_descriptor(settled.base, settled.help, None, MetricType::Counter)?;
        for (state, n) in SETTLED.iter().zip(&self.0.settled) {
            let labels = [(settled.labels[0], state.as_str())];
            m.encode_family(&labels)?.encode_counter::<NoLabelSet, u64, u64>(&n.load(Ordering::Relaxed), None)?;
        }
        let waiting = self.0.lock().approvals.iter().filter(|a| a.state == ApprovalState::Pending).count();
        encoder
            .encode_descriptor(pending.base, pending.help, None, MetricType::Gauge)?
            .encode_gauge(&i64::try_from(waiting).unwrap_or(i64::MAX))
    }
}
