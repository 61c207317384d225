//! Compaction analysis: each compaction of a session, what it summarised, and which
//! files the model read again after it.
//!
//! In: a [`SessionRecord`] (its [`Compaction`]s, calls and steps). Out: a
//! [`CompactionReport`] per compaction ([`analyze`]), and per model and per Claude Code
//! version, over any number of reports, [`CompactionStats`] ([`stats`]). Pure functions:
//! no I/O, the same record gives the same reports.
//!
//! The rules (documented in `docs/research.md`, "Compactions"):
//! - a compaction's **span** is what happened from the previous compaction (or the
//!   session's start) to its boundary: the turns (prompts), the main-chain calls, the
//!   tool results by tool, the time; the new material the summary had to hold;
//! - a **file read** is a [`READ_TOOLS`] call with a path whose result is not an error;
//! - a file read in the span is **re-read** when a read of the same path follows the
//!   boundary before the next compaction (or the session's end): a sign the summary
//!   lost it.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::tracker::{Compaction, SessionRecord, Step};
use crate::transcript::entry::Millis;

/// The tools whose call puts a file's content in the context: their re-reads count.
/// `Grep`, `Glob` and `LS` are left out: their path is a directory to search, and
/// searching again is not reading the same content again.
pub const READ_TOOLS: [&str; 2] = ["Read", "NotebookRead"];

/// One compaction, with what it summarised and what was read again after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompactionReport {
    /// Its position among the session's compactions, from 0.
    pub index: usize,
    /// When the boundary was written (ms since the epoch).
    pub ts_ms: Option<Millis>,
    /// `auto` or `manual`.
    pub trigger: &'static str,
    /// The boundary's own `preTokens`.
    pub tokens_before: Option<u64>,
    /// The next main-chain call's prompt tokens (`None` when no call followed).
    pub tokens_after: Option<u64>,
    /// `tokens_after / tokens_before`, when both are known and `tokens_before > 0`.
    pub ratio: Option<f64>,
    /// Utilization of the window when an `auto` compaction fired (`None` for `manual`).
    pub utilization_at_auto: Option<f64>,
    /// The model of the last call before it.
    pub model: Option<String>,
    /// The Claude Code version written on the boundary.
    pub version: Option<String>,
    /// What happened since the previous compaction (or the start): what it summarised.
    pub summarised: Span,
    /// Files read in the span and read again after the boundary.
    pub rereads: Rereads,
}

/// What happened between the previous compaction (or the session's start) and a boundary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Span {
    /// Milliseconds from the previous boundary (or the session's first line) to this one.
    pub ms: Option<Millis>,
    /// Prompts the person typed.
    pub turns: usize,
    /// Main-chain API calls.
    pub calls: usize,
    /// Tool results, by tool (`?` when the call was not seen).
    pub tool_results: BTreeMap<String, usize>,
    /// All tool results (the sum of `tool_results`).
    pub tool_results_total: usize,
    /// Bytes of those results' content (JSON text).
    pub tool_result_bytes: u64,
    /// The context summarised: the boundary's `preTokens`, else the last call's context.
    pub tokens: Option<u64>,
}

/// Files read before a compaction and read again after it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rereads {
    /// Distinct files read in the span (see the module doc for what a read is).
    pub files_read: usize,
    /// Of those, the files read again after the boundary, before the next compaction.
    pub reread: usize,
    /// `reread / files_read` (`None` when no file was read).
    pub share: Option<f64>,
    /// Calls from the first call after the boundary to the first re-read's call (0: the
    /// first call after it read a file again).
    pub first_within_calls: Option<usize>,
}

/// Compactions of one group (a model, a version, or all).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompactionGroup {
    /// Compactions.
    pub count: usize,
    /// Of those, `auto` ones.
    pub auto: usize,
    /// Mean of the known ratios (`None` when none is known).
    pub mean_ratio: Option<f64>,
    /// Mean utilization when `auto` compactions fired (`None` when none is known).
    pub mean_utilization_at_auto: Option<f64>,
    /// Files read before the compactions (summed over them).
    pub files_read: usize,
    /// Of those, re-read after.
    pub reread: usize,
    /// `reread / files_read`, pooled over the group (`None` when no file was read).
    pub reread_share: Option<f64>,
}

/// Compaction reports aggregated; `unknown` is the key of a missing model or version.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompactionStats {
    /// All reports.
    pub all: CompactionGroup,
    /// By the model of the last call before the compaction.
    pub by_model: BTreeMap<String, CompactionGroup>,
    /// By the Claude Code version on the boundary.
    pub by_version: BTreeMap<String, CompactionGroup>,
}

/// The report of each compaction of `record`, in order.
pub fn analyze(record: &SessionRecord) -> Vec<CompactionReport> {
    // Where each compaction sits among the steps.
    let mut at = vec![record.steps.len(); record.compactions.len()];
    for (i, s) in record.steps.iter().enumerate() {
        if let Step::Compaction(c) = s
            && let Some(slot) = at.get_mut(*c)
        {
            *slot = i;
        }
    }
    let failed: HashSet<&str> = record
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::ToolResult { features, .. } if features.is_error => Some(&*features.tool_use_id),
            _ => None,
        })
        .collect();
    let mut out = Vec::with_capacity(record.compactions.len());
    for (i, c) in record.compactions.iter().enumerate() {
        let start = if i == 0 { 0 } else { at[i - 1] + 1 };
        let end = at[i].min(record.steps.len());
        let after_end = at.get(i + 1).copied().unwrap_or(record.steps.len()).min(record.steps.len());
        let prev = i.checked_sub(1).map(|p| &record.compactions[p]);
        let summarised = span(record, c, prev, &record.steps[start..end]);
        let before = reads(&record.steps[start..end], &failed);
        let after = reads(&record.steps[(end + 1).min(after_end)..after_end], &failed);
        let reread: Vec<usize> = before.keys().filter_map(|p| after.get(p).copied()).collect();
        let rereads = Rereads {
            files_read: before.len(),
            reread: reread.len(),
            share: share(reread.len(), before.len()),
            first_within_calls: reread
                .iter()
                .min()
                .map(|call| call.saturating_sub(c.next_call.unwrap_or(c.calls_before))),
        };
        out.push(CompactionReport {
            index: i,
            ts_ms: c.ts_ms,
            trigger: c.trigger,
            tokens_before: c.tokens_before,
            tokens_after: c.tokens_after,
            ratio: match (c.tokens_before, c.tokens_after) {
                (Some(b), Some(a)) if b > 0 => Some(a as f64 / b as f64),
                _ => None,
            },
            utilization_at_auto: if c.trigger == "auto" { c.utilization } else { None },
            model: c.model.clone(),
            version: c.version.clone(),
            summarised,
            rereads,
        });
    }
    out
}

/// The span of `c`, whose steps since the previous compaction (`prev`) are `steps`.
fn span(record: &SessionRecord, c: &Compaction, prev: Option<&Compaction>, steps: &[Step]) -> Span {
    let mut s = Span {
        ms: c.ts_ms.zip(prev.map_or(record.first_ts, |p| p.ts_ms)).map(|(now, then)| now - then),
        calls: c.calls_before - prev.map_or(0, |p| p.calls_before),
        tokens: c
            .tokens_before
            .or_else(|| c.calls_before.checked_sub(1).and_then(|i| record.calls.get(i)).map(|x| x.context_tokens)),
        ..Span::default()
    };
    for step in steps {
        match step {
            Step::Prompt { .. } => s.turns += 1,
            Step::ToolResult { tool, features, .. } => {
                *s.tool_results.entry(tool.clone()).or_default() += 1;
                s.tool_results_total += 1;
                s.tool_result_bytes += features.bytes;
            }
            _ => {}
        }
    }
    s
}

/// Files read in `steps` (not failed): path hash → the call of the first read.
fn reads(steps: &[Step], failed: &HashSet<&str>) -> HashMap<u64, usize> {
    let mut out = HashMap::new();
    for s in steps {
        if let Step::ToolUse { call, features: u, .. } = s
            && READ_TOOLS.contains(&&*u.name)
            && !failed.contains(&*u.id)
            && let Some(p) = u.path_hash
        {
            out.entry(p).or_insert(*call);
        }
    }
    out
}

fn share(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Aggregate `reports` (of any number of sessions) over all, by model and by version.
pub fn stats<'a>(reports: impl IntoIterator<Item = &'a CompactionReport>) -> CompactionStats {
    #[derive(Default)]
    struct Acc {
        count: usize,
        auto: usize,
        ratios: Vec<f64>,
        utilizations: Vec<f64>,
        files_read: usize,
        reread: usize,
    }
    impl Acc {
        fn add(&mut self, r: &CompactionReport) {
            self.count += 1;
            self.auto += usize::from(r.trigger == "auto");
            self.ratios.extend(r.ratio);
            self.utilizations.extend(r.utilization_at_auto);
            self.files_read += r.rereads.files_read;
            self.reread += r.rereads.reread;
        }
        fn group(&self) -> CompactionGroup {
            let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
            CompactionGroup {
                count: self.count,
                auto: self.auto,
                mean_ratio: mean(&self.ratios),
                mean_utilization_at_auto: mean(&self.utilizations),
                files_read: self.files_read,
                reread: self.reread,
                reread_share: share(self.reread, self.files_read),
            }
        }
    }
    let (mut all, mut models, mut versions) = (Acc::default(), BTreeMap::<String, Acc>::new(), BTreeMap::new());
    let key = |k: &Option<String>| k.clone().unwrap_or_else(|| "unknown".to_owned());
    for r in reports {
        all.add(r);
        models.entry(key(&r.model)).or_default().add(r);
        versions.entry(key(&r.version)).or_insert_with(Acc::default).add(r);
    }
    CompactionStats {
        all: all.group(),
        by_model: models.iter().map(|(k, a)| (k.clone(), a.group())).collect(),
        by_version: versions.iter().map(|(k, a)| (k.clone(), a.group())).collect(),
    }
}

#[cfg(test)]
mod tests;
