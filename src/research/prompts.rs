//! Prompt patterns: what the typed prompts look like and how their turns went.
//!
//! In: a [`SessionRecord`] and a price function ([`PriceFn`]: prices live with the
//! caller). Out: per typed prompt, its [`PromptFeatures`] and its turn's [`Outcome`]
//! ([`PromptRecord`]); over any set of prompts, each binary feature's outcomes with and
//! without it and the rank correlation of prompt length with each outcome
//! ([`Patterns`]). Pure and deterministic; no text, only the features' counts and flags.
//!
//! **The turn** of a prompt is everything after it up to the next prompt of the session
//! (or the end): the steps between the two [`Step::Prompt`]s, and the calls from its
//! `calls_before` up to the next prompt's. **Duration**: from the prompt's timestamp to
//! the latest timestamp of those steps and calls (`None` without a timestamp or when
//! nothing followed). **Tool calls** and **tool errors**: the turn's [`Step::ToolUse`]s
//! and its [`Step::ToolResult`]s with `is_error`. **Tokens**, per model: the turn's
//! calls' input, cache reads, cache writes and output ([`Snapshot::output_tokens`], the
//! response's largest count). **Cost**: the sum of the price function over the turn's
//! calls, one call at a time (long-context rates are per request), `None` when a call
//! is not priced. **Corrected**: the session's next prompt is a correction
//! ([`PromptFeatures::correction`]); `None` for its last prompt.

use std::collections::BTreeMap;

use serde::Serialize;

use super::features::PromptFeatures;
use super::stats;
use super::summary::PriceFn;
use super::tracker::{SessionRecord, Snapshot, Step};
use crate::transcript::entry::Millis;

/// Characters from which a prompt is `long`.
pub const LONG_PROMPT_CHARS: u64 = 500;

/// The binary features compared, in order: `slash_command`, `question`, `pasted_error`,
/// `code_block`, `file_mentions` (at least one), `long` (at least
/// [`LONG_PROMPT_CHARS`] characters), `correction`.
pub const FEATURES: [&str; 7] =
    ["slash_command", "question", "pasted_error", "code_block", "file_mentions", "long", "correction"];

/// The outcomes compared, in order (fields of [`Outcome`]; `prompt_tokens` and
/// `output_tokens` are summed over models, `corrected` counts as 0 or 1).
pub const OUTCOMES: [&str; 7] =
    ["duration_ms", "calls", "tool_calls", "tool_errors", "prompt_tokens", "output_tokens", "cost_usd"];

/// The outcome `corrected`, compared like [`OUTCOMES`] (its mean is the share corrected).
pub const CORRECTED: &str = "corrected";

/// One model's tokens in a turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelTokens {
    /// The model.
    pub model: String,
    /// Its calls in the turn.
    pub calls: usize,
    /// Uncached input tokens.
    pub input: u64,
    /// Cache reads.
    pub cache_read: u64,
    /// Cache writes.
    pub cache_write: u64,
    /// Output tokens.
    pub output: u64,
}

/// How a prompt's turn went (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// From the prompt to the turn's last timestamp (ms).
    pub duration_ms: Option<u64>,
    /// Main-chain calls in the turn.
    pub calls: usize,
    /// Tool calls in the turn.
    pub tool_calls: usize,
    /// Tool results in the turn that were errors.
    pub tool_errors: usize,
    /// Tokens per model, by model name.
    pub tokens: Vec<ModelTokens>,
    /// Input + cache reads + cache writes of the turn's calls.
    pub prompt_tokens: u64,
    /// Output of the turn's calls.
    pub output_tokens: u64,
    /// The turn's cost (`None` when a call has no price).
    pub cost_usd: Option<f64>,
    /// The next prompt is a correction (`None`: no next prompt).
    pub corrected: Option<bool>,
}

/// One typed prompt: its features and its turn's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptRecord {
    /// The session's id.
    pub session_id: String,
    /// Its index among the session's prompts.
    pub index: usize,
    /// Its index in [`SessionRecord::steps`].
    pub step: usize,
    /// When it was written.
    pub ts_ms: Option<Millis>,
    /// Its features.
    pub features: PromptFeatures,
    /// Its turn's outcome.
    pub outcome: Outcome,
    /// Its text (at most [`PROMPT_TEXT_MAX`](super::features::PROMPT_TEXT_MAX) bytes),
    /// only with `analyze --include-content`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Box<str>>,
}

/// The prompts of one session with their outcomes (see the module doc).
pub fn prompts(record: &SessionRecord, price: PriceFn<'_>) -> Vec<PromptRecord> {
    let starts: Vec<(usize, usize)> = record
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Step::Prompt { calls_before, .. } => Some((i, *calls_before)),
            _ => None,
        })
        .collect();
    let mut out = Vec::with_capacity(starts.len());
    for (k, &(step, first_call)) in starts.iter().enumerate() {
        let Step::Prompt { ts_ms, features, text, .. } = &record.steps[step] else { continue };
        let (end_step, end_call) = starts.get(k + 1).copied().unwrap_or((record.steps.len(), record.calls.len()));
        let steps = &record.steps[step + 1..end_step];
        let calls = record.calls.get(first_call..end_call.max(first_call)).unwrap_or(&[]);
        let corrected = starts.get(k + 1).map(|&(next, _)| match &record.steps[next] {
            Step::Prompt { features, .. } => features.correction,
            _ => false,
        });
        out.push(PromptRecord {
            session_id: record.session_id.clone(),
            index: k,
            step,
            ts_ms: *ts_ms,
            features: *features,
            outcome: outcome(record, *ts_ms, steps, calls, price, corrected),
            text: text.clone(),
        });
    }
    out
}

fn outcome(
    record: &SessionRecord,
    start: Option<Millis>,
    steps: &[Step],
    calls: &[Snapshot],
    price: PriceFn<'_>,
    corrected: Option<bool>,
) -> Outcome {
    let mut last: Option<Millis> = None;
    let mut seen = |t: Option<Millis>| {
        if let Some(t) = t {
            last = Some(last.map_or(t, |l| l.max(t)));
        }
    };
    let (mut tool_calls, mut tool_errors) = (0, 0);
    for s in steps {
        match s {
            Step::Prompt { ts_ms, .. } | Step::Reply { ts_ms, .. } => seen(*ts_ms),
            Step::ToolUse { ts_ms, .. } => {
                tool_calls += 1;
                seen(*ts_ms);
            }
            Step::ToolResult { ts_ms, features, .. } => {
                tool_errors += usize::from(features.is_error);
                seen(*ts_ms);
            }
            Step::Compaction(c) => seen(record.compactions.get(*c).and_then(|c| c.ts_ms)),
        }
    }
    let mut models: BTreeMap<&str, ModelTokens> = BTreeMap::new();
    let mut usd = Some(0.0);
    for c in calls {
        seen(c.ts_ms);
        let m = models.entry(&c.model).or_insert_with(|| ModelTokens {
            model: c.model.clone(),
            calls: 0,
            input: 0,
            cache_read: 0,
            cache_write: 0,
            output: 0,
        });
        m.calls += 1;
        m.input += c.input_tokens;
        m.cache_read += c.cache_read_tokens;
        m.cache_write += c.cache_creation_tokens;
        m.output += c.output_tokens;
        usd = usd.zip(price(c)).map(|(a, b)| a + b);
    }
    let tokens: Vec<ModelTokens> = models.into_values().collect();
    Outcome {
        duration_ms: start.zip(last).and_then(|(s, e)| u64::try_from(e - s).ok()),
        calls: calls.len(),
        tool_calls,
        tool_errors,
        prompt_tokens: tokens.iter().map(|m| m.input + m.cache_read + m.cache_write).sum(),
        output_tokens: tokens.iter().map(|m| m.output).sum(),
        tokens,
        cost_usd: usd,
        corrected,
    }
}

/// Whether a prompt has the binary feature `name` (one of [`FEATURES`]).
pub fn has_feature(f: &PromptFeatures, name: &str) -> Option<bool> {
    Some(match name {
        "slash_command" => f.slash_command,
        "question" => f.question,
        "pasted_error" => f.pasted_error,
        "code_block" => f.code_block,
        "file_mentions" => f.file_mentions > 0,
        "long" => f.chars >= LONG_PROMPT_CHARS,
        "correction" => f.correction,
        _ => return None,
    })
}

/// The value of the outcome `name` (one of [`OUTCOMES`] or [`CORRECTED`]), `None`
/// when the turn does not have it.
pub fn outcome_value(o: &Outcome, name: &str) -> Option<f64> {
    match name {
        "duration_ms" => o.duration_ms.map(|d| d as f64),
        "calls" => Some(o.calls as f64),
        "tool_calls" => Some(o.tool_calls as f64),
        "tool_errors" => Some(o.tool_errors as f64),
        "prompt_tokens" => Some(o.prompt_tokens as f64),
        "output_tokens" => Some(o.output_tokens as f64),
        "cost_usd" => o.cost_usd,
        "corrected" => o.corrected.map(|c| if c { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// Count, mean and median of one group's values (those that are finite).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// Values.
    pub n: usize,
    /// Their mean (`None` when there are none).
    pub mean: Option<f64>,
    /// Their median: the middle value, or the mean of the two middle ones (`None` when
    /// there are none).
    pub median: Option<f64>,
}

impl Group {
    /// The figures of `values`.
    pub fn of(values: &[f64]) -> Group {
        Group {
            n: values.iter().filter(|v| v.is_finite()).count(),
            mean: stats::mean(values),
            median: stats::median(values),
        }
    }
}

/// One outcome of the prompts with a feature against those without it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The feature (one of [`FEATURES`]).
    pub feature: &'static str,
    /// The outcome (one of [`OUTCOMES`] or [`CORRECTED`]).
    pub outcome: &'static str,
    /// The outcome over the prompts with the feature (those where it has a value).
    pub with: Group,
    /// The outcome over the prompts without it.
    pub without: Group,
}

/// Spearman's rank correlation of prompt length (characters) with one outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Correlation {
    /// The outcome.
    pub outcome: &'static str,
    /// Prompts where the outcome has a value.
    pub n: usize,
    /// Spearman's ρ (`None` with fewer than 3 prompts or when either side is constant).
    pub rho: Option<f64>,
}

/// How many prompts have a feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeatureCount {
    /// The feature (one of [`FEATURES`]).
    pub feature: &'static str,
    /// Prompts with it.
    pub with: usize,
    /// Prompts without it.
    pub without: usize,
}

/// Features related to outcomes over a set of prompts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Patterns {
    /// Prompts.
    pub prompts: usize,
    /// Per feature, prompts with and without it.
    pub features: Vec<FeatureCount>,
    /// Per feature and outcome ([`OUTCOMES`] then [`CORRECTED`]), in that order.
    pub comparisons: Vec<Comparison>,
    /// Length against each outcome, in the same order.
    pub length: Vec<Correlation>,
}

/// Relate features to outcomes over `prompts` (any number of sessions).
pub fn patterns(prompts: &[PromptRecord]) -> Patterns {
    let outcomes: Vec<&'static str> = OUTCOMES.iter().copied().chain([CORRECTED]).collect();
    let mut features = Vec::new();
    let mut comparisons = Vec::new();
    for feature in FEATURES {
        let has = |p: &PromptRecord| has_feature(&p.features, feature) == Some(true);
        let with = prompts.iter().filter(|p| has(p)).count();
        features.push(FeatureCount { feature, with, without: prompts.len() - with });
        for &outcome in &outcomes {
            let values = |want: bool| -> Vec<f64> {
                prompts.iter().filter(|p| has(p) == want).filter_map(|p| outcome_value(&p.outcome, outcome)).collect()
            };
            comparisons.push(Comparison {
                feature,
                outcome,
                with: Group::of(&values(true)),
                without: Group::of(&values(false)),
            });
        }
    }
    let length = outcomes
        .iter()
        .map(|&outcome| {
            let (xs, ys): (Vec<f64>, Vec<f64>) = prompts
                .iter()
                .filter_map(|p| Some((p.features.chars as f64, outcome_value(&p.outcome, outcome)?)))
                .unzip();
            Correlation { outcome, n: xs.len(), rho: spearman(&xs, &ys) }
        })
        .collect();
    Patterns { prompts: prompts.len(), features, comparisons, length }
}

/// Spearman's ρ: Pearson's correlation of the ranks (ties get their mean rank).
/// `None` with fewer than 3 pairs or when either side is constant.
pub fn spearman(xs: &[f64], ys: &[f64]) -> Option<f64> {
    if xs.len() != ys.len() || xs.len() < 3 {
        return None;
    }
    let (rx, ry) = (ranks(xs), ranks(ys));
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in rx.iter().zip(&ry) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// 1-based ranks, ties at their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in &order[i..=j] {
            out[*k] = rank;
        }
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests;
