//! Live figures for programs ([`SessionWatcher::metrics`](super::SessionWatcher::metrics)),
//! read from the same counters `/metrics` exposes, so the two never disagree.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::state::live::{Aggregator, State};
use crate::state::metrics::Counter;

/// Calls and errors of one tool (MCP tools fold to `mcp:<server>`, as on `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToolUsage {
    /// Tool calls (`claude_sessions_tool_calls_total`).
    pub calls: u64,
    /// Results marked as errors (`claude_sessions_tool_errors_total`).
    pub errors: u64,
}

/// Live figures of the sessions a watcher follows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsView {
    /// Sessions with activity within the idle timeout.
    pub active_sessions: usize,
    /// Sessions idle but not ended.
    pub idle_sessions: usize,
    /// Prompts plus API responses counted so far.
    pub messages: u64,
    /// Tool calls counted so far.
    pub tool_calls: u64,
    /// Tool results marked as errors so far.
    pub tool_errors: u64,
    /// Messages per minute since the previous call (`None` on the first call, or
    /// when it was less than 0.1 s ago).
    pub messages_per_minute: Option<f64>,
    /// Tool calls per minute, likewise.
    pub tool_calls_per_minute: Option<f64>,
    /// Tool errors over tool calls (`None` before the first call).
    pub error_rate: Option<f64>,
    /// Per tool label.
    pub tools: BTreeMap<String, ToolUsage>,
}

/// The totals of the previous call.
#[derive(Debug, Default)]
pub(super) struct Rates {
    last: Option<(Instant, u64, u64)>,
}

pub(super) fn of(agg: &Aggregator, rates: &mut Rates) -> MetricsView {
    let store = &agg.store;
    let count = |c: Counter| store.counter_sum(c, &[]).round() as u64;
    let mut v = MetricsView {
        messages: count(Counter::Prompts) + count(Counter::ApiRequests),
        tool_calls: count(Counter::ToolCalls),
        tool_errors: count(Counter::ToolErrors),
        ..MetricsView::default()
    };
    for s in agg.sessions() {
        match s.state {
            State::Active => v.active_sessions += 1,
            State::Idle => v.idle_sessions += 1,
            State::Ended => {}
        }
    }
    for (counter, errors) in [(Counter::ToolCalls, false), (Counter::ToolErrors, true)] {
        for (labels, n) in store.counter_series(counter) {
            let Some((_, tool)) = labels.iter().find(|(k, _)| *k == "tool") else { continue };
            let t = v.tools.entry((*tool).to_owned()).or_default();
            if errors {
                t.errors += n.round() as u64;
            } else {
                t.calls += n.round() as u64;
            }
        }
    }
    v.error_rate = (v.tool_calls > 0).then(|| v.tool_errors as f64 / v.tool_calls as f64);
    let now = Instant::now();
    match rates.last {
        Some((at, messages, tools)) => {
            let secs = now.duration_since(at).as_secs_f64();
            if secs >= 0.1 {
                v.messages_per_minute = Some(v.messages.saturating_sub(messages) as f64 * 60.0 / secs);
                v.tool_calls_per_minute = Some(v.tool_calls.saturating_sub(tools) as f64 * 60.0 / secs);
                rates.last = Some((now, v.messages, v.tool_calls));
            }
        }
        None => rates.last = Some((now, v.messages, v.tool_calls)),
    }
    v
}
