//! What the context holds, by source, call by call: the estimate the report draws.
//!
//! In: a session's [`Snapshot`]s (each with the composition of its growth). Out: for each
//! call, the tokens of its context by source ([`by_source`]), and a way to fold many
//! sources into a few for a chart ([`fold_small`]).
//!
//! **Rule.** The context starts empty. A call's positive parts are added to their
//! sources; a `dropped` part (a growth that is not positive: a compaction, a cache that
//! shrank) takes tokens from every source in proportion to its share, since the
//! transcript does not say what was let go. So the sources always sum to the call's
//! context tokens (up to rounding of the proportional cut), and a source's band after a
//! compaction is an estimate, not a measurement.

use std::collections::BTreeMap;

use super::tracker::Snapshot;

/// The name of the part that is not a source (a growth that is not positive).
const DROPPED: &str = "dropped";

/// The context of each call by source (tokens, as `f64` because a drop is shared out in
/// proportion); one map per snapshot, in order.
pub fn by_source(calls: &[Snapshot]) -> Vec<BTreeMap<String, f64>> {
    let mut now: BTreeMap<String, f64> = BTreeMap::new();
    let mut out = Vec::with_capacity(calls.len());
    for c in calls {
        for p in &c.composition {
            if p.source == DROPPED || p.tokens < 0 {
                let total: f64 = now.values().sum();
                let keep = if total > 0.0 { ((total + p.tokens as f64) / total).max(0.0) } else { 0.0 };
                now.values_mut().for_each(|v| *v *= keep);
            } else if p.tokens > 0 {
                *now.entry(p.source.clone()).or_default() += p.tokens as f64;
            }
        }
        out.push(now.clone());
    }
    out
}

/// The name given to the sources [`fold_small`] folds together (`other` is taken: it is
/// the part of a growth the transcript does not show).
pub const SMALLER: &str = "smaller sources";

/// The largest `keep` sources of `totals` by value, largest first, and the rest summed
/// under [`SMALLER`] (last; only when there is a rest). A source below `min_share` of the
/// sum is folded even when there is room for it.
pub fn fold_small(totals: &BTreeMap<String, f64>, keep: usize, min_share: f64) -> Vec<(String, f64)> {
    let sum: f64 = totals.values().filter(|v| v.is_finite() && **v > 0.0).sum();
    let mut all: Vec<(String, f64)> =
        totals.iter().filter(|(_, v)| v.is_finite() && **v > 0.0).map(|(k, v)| (k.clone(), *v)).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = Vec::new();
    let mut rest = 0.0;
    for (k, v) in all {
        if out.len() < keep && v >= min_share * sum {
            out.push((k, v));
        } else {
            rest += v;
        }
    }
    if rest > 0.0 {
        out.push((SMALLER.to_owned(), rest));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::research::tracker::Part;

    fn snap(context: u64, growth: i64, parts: &[(&str, i64)]) -> Snapshot {
        Snapshot {
            index: 0,
            ts_ms: None,
            model: "m".into(),
            context_tokens: context,
            input_tokens: 0,
            cache_read_tokens: 0,
            cache_creation_tokens: 0,
            cache_creation_1h_tokens: 0,
            output_tokens: 0,
            fast: false,
            input_total: 0,
            output_total: 0,
            window: 200_000,
            utilization: 0.0,
            pending_tool_calls: 0,
            active_subagents: 0,
            growth,
            composition: parts.iter().map(|(s, t)| Part { source: (*s).into(), bytes: 0, tokens: *t }).collect(),
            after_compaction: false,
        }
    }

    #[test]
    fn sources_sum_to_the_context_and_a_drop_is_shared_in_proportion() {
        let calls = [
            snap(1000, 1000, &[("other", 600), ("user_text", 400)]),
            snap(3000, 2000, &[("tool_result:Read", 2000)]),
            snap(1500, -1500, &[("dropped", -1500)]),
            snap(1700, 200, &[("user_text", 200)]),
        ];
        let by = by_source(&calls);
        for (c, m) in calls.iter().zip(&by) {
            let sum: f64 = m.values().sum();
            assert!((sum - c.context_tokens as f64).abs() < 1e-6, "{sum} vs {}", c.context_tokens);
        }
        // Half the context was let go: each source keeps half.
        assert_eq!(by[2]["tool_result:Read"], 1000.0);
        assert_eq!(by[2]["other"], 300.0);
        assert_eq!(by[3]["user_text"], 400.0);
    }

    #[test]
    fn small_sources_fold_into_one_named_row() {
        let m: BTreeMap<String, f64> =
            [("a", 50.0), ("b", 30.0), ("c", 15.0), ("d", 4.0), ("e", 1.0)].map(|(k, v)| (k.to_owned(), v)).into();
        let f = fold_small(&m, 3, 0.05);
        assert_eq!(f, [("a".into(), 50.0), ("b".into(), 30.0), ("c".into(), 15.0), (SMALLER.into(), 5.0)]);
        let all = fold_small(&m, 10, 0.0);
        assert_eq!(all.len(), 5, "nothing to fold");
        assert!(fold_small(&BTreeMap::new(), 3, 0.0).is_empty());
    }
}
