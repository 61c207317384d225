//! Tool influence: which tool results the model went on to use.
//!
//! In: a [`SessionRecord`] (its steps and calls). Out: per tool result, its size and
//! how much of it reappears in the **next action** ([`ResultInfluence`]), and sums per
//! tool and per session ([`ToolInfluence`], [`SessionInfluence`]). Pure and
//! deterministic; only counts leave this module, never tokens.
//!
//! **The next action** of a result is the main-chain call that read it: the first call
//! made after the result line. Walking the steps in order, the calls known to exist are
//! the largest `call + 1` of any reply or tool call so far, a prompt's `calls_before`, a
//! compaction's `calls_before`; the result's next call `n` is that count at the result.
//! The action is every [`Step::Reply`] and [`Step::ToolUse`] of call `n` (its text and
//! its tool inputs, whichever line of the response they are on). A result after the last
//! call has no next action: it is *unanswered*.
//!
//! **The score.** The result's salient tokens, less those of its own call's input (a
//! path it was asked to read, a pattern it was asked to find: they reappear trivially),
//! that are also in the action's tokens are its *matches*, counted by [`TokenKind`]. Each
//! kind has a weight ([`weight`]): an error line 3 (a whole line repeated is hardly by
//! chance), a path 2 (naming a file the result showed is acting on it), an identifier 1
//! and a number 1 (common ones recur by chance). `weighted` is the sum; `score` is
//! `min(1, weighted / FULL_SCORE)`; the result is **used** when `weighted ≥ USED_AT`
//! (a path or an error line, or two identifiers or numbers: one common name alone is
//! not enough). The same is measured against the union of calls `n .. n + LATER_CALLS`
//! (`later`): a result read now and acted on two calls later.
//!
//! Token sets hold at most [`MAX_TOKENS`] tokens, the same
//! hash sample for every text, paths first and error lines last: a result with more
//! salient tokens than that is `capped`, its matches are a lower bound, and its numbers
//! and error lines are the first to be missing.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::features::UseFeatures;
use super::tokens::{MAX_TOKENS, TokenKind, TokenSet};
use super::tracker::{SessionRecord, Step};
use crate::transcript::entry::Millis;

/// `weighted` at which `score` is 1.
pub const FULL_SCORE: u32 = 4;
/// `weighted` from which a result counts as used.
pub const USED_AT: u32 = 2;
/// Calls looked at for the `later` measure, the next one included.
pub const LATER_CALLS: usize = 3;

/// The weight of a match of `kind` (see the module doc).
pub fn weight(kind: TokenKind) -> u32 {
    match kind {
        TokenKind::ErrorLine => 3,
        TokenKind::Path => 2,
        TokenKind::Identifier | TokenKind::Number => 1,
    }
}

/// Matched tokens by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Matched {
    /// Paths.
    pub path: u32,
    /// Identifiers.
    pub identifier: u32,
    /// Numbers.
    pub number: u32,
    /// Error lines.
    pub error_line: u32,
}

impl Matched {
    fn count(&mut self, token: u64) {
        match TokenKind::of(token) {
            TokenKind::Path => self.path += 1,
            TokenKind::Identifier => self.identifier += 1,
            TokenKind::Number => self.number += 1,
            TokenKind::ErrorLine => self.error_line += 1,
        }
    }

    /// The weighted sum ([`weight`]).
    pub fn weighted(&self) -> u32 {
        self.path * weight(TokenKind::Path)
            + self.identifier * weight(TokenKind::Identifier)
            + self.number * weight(TokenKind::Number)
            + self.error_line * weight(TokenKind::ErrorLine)
    }

    fn add(&mut self, o: &Matched) {
        self.path += o.path;
        self.identifier += o.identifier;
        self.number += o.number;
        self.error_line += o.error_line;
    }
}

/// `min(1, weighted / FULL_SCORE)`.
pub fn score(weighted: u32) -> f64 {
    (f64::from(weighted) / f64::from(FULL_SCORE)).min(1.0)
}

/// One tool result and what the next action did with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultInfluence {
    /// Its index in [`SessionRecord::steps`].
    pub step: usize,
    /// The tool (`?` when its call was not seen).
    pub tool: String,
    /// When it was written.
    pub ts_ms: Option<Millis>,
    /// Size of its content's JSON.
    pub bytes: u64,
    /// The tool reported an error.
    pub is_error: bool,
    /// Its salient tokens, those of its own call's input taken out.
    pub tokens: usize,
    /// Salient tokens taken out because its own call's input has them.
    pub own_input_tokens: usize,
    /// It had [`MAX_TOKENS`] tokens: a sample, so its matches are a lower bound.
    pub capped: bool,
    /// The call that read it (`None`: no call followed, it is unanswered).
    pub next_call: Option<usize>,
    /// Its tokens in the next action, by kind.
    pub matched: Matched,
    /// `matched`, weighted.
    pub weighted: u32,
    /// `min(1, weighted / FULL_SCORE)`.
    pub score: f64,
    /// `weighted ≥ USED_AT`.
    pub used: bool,
    /// Its tokens in any action of the next [`LATER_CALLS`] calls, by kind.
    pub later: Matched,
    /// `later`, weighted.
    pub later_weighted: u32,
    /// `later_weighted ≥ USED_AT`.
    pub later_used: bool,
}

/// Results summed (per tool, per session, or over sessions).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolInfluence {
    /// The tool, or `*` for all tools.
    pub tool: String,
    /// Results.
    pub results: usize,
    /// Results with a next action.
    pub answered: usize,
    /// Answered results that were used.
    pub used: usize,
    /// Answered results that were not used: `answered - used`.
    pub unused: usize,
    /// Results without a next action: `results - answered`.
    pub unanswered: usize,
    /// `used / answered` (`None` when nothing was answered).
    pub share_used: Option<f64>,
    /// Mean score of the answered results (`None` when nothing was answered).
    pub mean_score: Option<f64>,
    /// Answered results used within [`LATER_CALLS`] calls.
    pub later_used: usize,
    /// Results whose token set was capped.
    pub capped: usize,
    /// Bytes of all results.
    pub bytes: u64,
    /// Bytes of the answered results that were not used: context nobody used.
    pub unused_bytes: u64,
    /// Matches of all results, by kind.
    pub matched: Matched,
}

impl ToolInfluence {
    /// The sums of `results` under the name `tool`.
    pub fn of<'a>(tool: &str, results: impl IntoIterator<Item = &'a ResultInfluence>) -> ToolInfluence {
        let mut t = ToolInfluence {
            tool: tool.to_owned(),
            results: 0,
            answered: 0,
            used: 0,
            unused: 0,
            unanswered: 0,
            share_used: None,
            mean_score: None,
            later_used: 0,
            capped: 0,
            bytes: 0,
            unused_bytes: 0,
            matched: Matched::default(),
        };
        let mut scores = 0.0;
        for r in results {
            t.results += 1;
            t.bytes += r.bytes;
            t.capped += usize::from(r.capped);
            t.matched.add(&r.matched);
            if r.next_call.is_none() {
                t.unanswered += 1;
                continue;
            }
            t.answered += 1;
            scores += r.score;
            t.later_used += usize::from(r.later_used);
            if r.used {
                t.used += 1;
            } else {
                t.unused += 1;
                t.unused_bytes += r.bytes;
            }
        }
        if t.answered > 0 {
            t.share_used = Some(t.used as f64 / t.answered as f64);
            t.mean_score = Some(scores / t.answered as f64);
        }
        t
    }
}

/// Sums per tool, by tool name.
pub fn by_tool<'a>(results: impl IntoIterator<Item = &'a ResultInfluence>) -> Vec<ToolInfluence> {
    let mut tools: BTreeMap<&str, Vec<&ResultInfluence>> = BTreeMap::new();
    for r in results {
        tools.entry(&r.tool).or_default().push(r);
    }
    tools.into_iter().map(|(tool, rs)| ToolInfluence::of(tool, rs)).collect()
}

/// One session's tool influence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionInfluence {
    /// The session's id.
    pub session_id: String,
    /// Every tool result of the main chain, in order.
    pub results: Vec<ResultInfluence>,
    /// Sums per tool, by tool name.
    pub tools: Vec<ToolInfluence>,
    /// Sums over all its results (tool `*`).
    pub total: ToolInfluence,
}

/// The tool influence of one session (see the module doc).
pub fn influence(record: &SessionRecord) -> SessionInfluence {
    // Each call's action: the tokens of its replies and tool inputs.
    let mut actions: Vec<TokenSet> = vec![TokenSet::default(); record.calls.len()];
    let mut uses: HashMap<&str, &UseFeatures> = HashMap::new();
    for s in &record.steps {
        let (call, tokens) = match s {
            Step::Reply { call, tokens, .. } => (*call, tokens),
            Step::ToolUse { call, features, .. } => {
                uses.insert(&features.id, features);
                (*call, &features.tokens)
            }
            _ => continue,
        };
        if let Some(a) = actions.get_mut(call) {
            *a = a.union(tokens);
        }
    }
    let mut known = 0usize;
    let mut results = Vec::new();
    for (i, s) in record.steps.iter().enumerate() {
        match s {
            Step::Reply { call, .. } | Step::ToolUse { call, .. } => known = known.max(call + 1),
            Step::Prompt { calls_before, .. } => known = known.max(*calls_before),
            Step::Compaction(c) => {
                known = known.max(record.compactions.get(*c).map_or(0, |c| c.calls_before));
            }
            Step::ToolResult { ts_ms, tool, features } => {
                let own = uses.get(&*features.tool_use_id).map(|u| &u.tokens);
                let tokens = own.map_or_else(|| features.tokens.clone(), |o| features.tokens.without(o));
                let next_call = (known < record.calls.len()).then_some(known);
                let (mut matched, mut later) = (Matched::default(), Matched::default());
                if let Some(n) = next_call {
                    let window = &actions[n..(n + LATER_CALLS).min(actions.len())];
                    for t in tokens.as_slice() {
                        if window[0].contains(*t) {
                            matched.count(*t);
                        }
                        if window.iter().any(|a| a.contains(*t)) {
                            later.count(*t);
                        }
                    }
                }
                let (weighted, later_weighted) = (matched.weighted(), later.weighted());
                results.push(ResultInfluence {
                    step: i,
                    tool: tool.clone(),
                    ts_ms: *ts_ms,
                    bytes: features.bytes,
                    is_error: features.is_error,
                    tokens: tokens.len(),
                    own_input_tokens: features.tokens.len() - tokens.len(),
                    capped: features.tokens.len() >= MAX_TOKENS,
                    next_call,
                    matched,
                    weighted,
                    score: score(weighted),
                    used: weighted >= USED_AT,
                    later,
                    later_weighted,
                    later_used: later_weighted >= USED_AT,
                });
            }
        }
    }
    SessionInfluence {
        session_id: record.session_id.clone(),
        tools: by_tool(&results),
        total: ToolInfluence::of("*", &results),
        results,
    }
}

#[cfg(test)]
mod tests;
