//! One session in a few numbers.
//!
//! In: a [`SessionRecord`], the session's project label, and a price function. Out: a
//! [`SessionSummary`]: what `analyze` lists per session and groups for its A/B mode.

use std::collections::BTreeMap;

use serde::Serialize;

use super::tracker::{SessionRecord, Snapshot, Step};
use crate::transcript::entry::Millis;

/// The price of one call in USD, or `None` when its model has no price.
pub type PriceFn<'a> = &'a (dyn Fn(&Snapshot) -> Option<f64> + Sync);

/// A session's numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    /// The session id.
    pub id: String,
    /// Its project label (as on the metrics: the basename of its working directory).
    pub project: String,
    /// Its git branch (`None` outside git).
    pub branch: Option<String>,
    /// First and last line's time (ms since the epoch).
    pub first_ts: Option<Millis>,
    /// Last line's time.
    pub last_ts: Option<Millis>,
    /// Models of its main-chain calls, sorted.
    pub models: Vec<String>,
    /// Main-chain API calls.
    pub calls: usize,
    /// Prompts typed.
    pub prompts: usize,
    /// Tool calls of the main chain.
    pub tool_calls: usize,
    /// Tool results that were errors.
    pub tool_errors: usize,
    /// Compactions.
    pub compactions: usize,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache reads.
    pub cache_read_tokens: u64,
    /// Cache writes.
    pub cache_creation_tokens: u64,
    /// Estimated cost of its main-chain calls (USD); `None` when a model has no price.
    pub cost_usd: Option<f64>,
    /// The largest context of a call.
    pub peak_context: u64,
    /// The largest utilization of a call.
    pub peak_utilization: f64,
    /// Tokens added to the context over the session, by source (the positive parts of
    /// every call's composition; `dropped` not included).
    pub composition: BTreeMap<String, i64>,
    /// Share of the added tokens that came from tool results (0 when nothing was added).
    pub tool_result_share: f64,
}

impl SessionSummary {
    /// The summary of `r`, in project `project`, priced by `price`.
    pub fn of(r: &SessionRecord, project: String, price: PriceFn<'_>) -> SessionSummary {
        let mut models: Vec<String> = r.calls.iter().map(|c| c.model.clone()).collect();
        models.sort();
        models.dedup();
        let mut composition: BTreeMap<String, i64> = BTreeMap::new();
        for c in &r.calls {
            for p in c.composition.iter().filter(|p| p.tokens > 0) {
                *composition.entry(p.source.clone()).or_default() += p.tokens;
            }
        }
        let added: i64 = composition.values().sum();
        let from_tools: i64 = composition.iter().filter(|(k, _)| k.starts_with("tool_result:")).map(|(_, v)| v).sum();
        let count = |f: &dyn Fn(&Step) -> bool| r.steps.iter().filter(|s| f(s)).count();
        let cost = r.calls.iter().map(price).try_fold(0.0, |sum, c| c.map(|c| sum + c));
        SessionSummary {
            id: r.session_id.clone(),
            project,
            branch: r.git_branch.clone(),
            first_ts: r.first_ts,
            last_ts: r.last_ts,
            models,
            calls: r.calls.len(),
            prompts: count(&|s| matches!(s, Step::Prompt { .. })),
            tool_calls: count(&|s| matches!(s, Step::ToolUse { .. })),
            tool_errors: count(&|s| matches!(s, Step::ToolResult { features, .. } if features.is_error)),
            compactions: r.compactions.len(),
            input_tokens: r.input_total,
            output_tokens: r.output_total,
            cache_read_tokens: r.calls.iter().map(|c| c.cache_read_tokens).sum(),
            cache_creation_tokens: r.calls.iter().map(|c| c.cache_creation_tokens).sum(),
            cost_usd: cost,
            peak_context: r.calls.iter().map(|c| c.context_tokens).max().unwrap_or(0),
            peak_utilization: r.calls.iter().map(|c| c.utilization).fold(0.0, f64::max),
            composition,
            tool_result_share: if added > 0 { from_tools as f64 / added as f64 } else { 0.0 },
        }
    }

    /// Length in ms from the first line to the last (0 when unknown).
    pub fn duration_ms(&self) -> Millis {
        match (self.first_ts, self.last_ts) {
            (Some(a), Some(b)) => (b - a).max(0),
            _ => 0,
        }
    }
}
