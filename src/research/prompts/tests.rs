use super::*;
use crate::research::testing::{fixture, real_files, record_of, records};

/// A made-up price: Sonnet only, in units that are easy to add up by hand.
fn price(c: &Snapshot) -> Option<f64> {
    c.model.starts_with("claude-sonnet").then(|| {
        (c.input_tokens + 2 * c.output_tokens + c.cache_creation_tokens) as f64 + c.cache_read_tokens as f64 / 10.0
    })
}

fn session() -> Vec<PromptRecord> {
    prompts(&record_of(&fixture("handmade/research/prompts.jsonl")), &price)
}

fn sonnet(calls: usize, input: u64, cache_read: u64, cache_write: u64, output: u64) -> ModelTokens {
    ModelTokens { model: "claude-sonnet-4-5".into(), calls, input, cache_read, cache_write, output }
}

#[test]
fn each_prompt_has_its_features() {
    let p = session();
    assert_eq!(p.len(), 4);
    assert!(p.iter().all(|r| r.session_id == "prompts-session"));
    assert_eq!(p.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2, 3]);
    let f: Vec<PromptFeatures> = p.iter().map(|r| r.features).collect();
    let base = PromptFeatures::default();
    assert_eq!(f[0], PromptFeatures { chars: 24, lines: 1, words: 5, question: true, ..base });
    assert_eq!(f[1], PromptFeatures { chars: 19, lines: 1, words: 2, slash_command: true, file_mentions: 1, ..base });
    assert_eq!(
        f[2],
        PromptFeatures {
            chars: 89,
            lines: 5,
            words: 14,
            file_mentions: 1,
            pasted_error: true,
            code_block: true,
            ..base
        }
    );
    assert_eq!(f[3], PromptFeatures { chars: 33, lines: 1, words: 7, correction: true, ..base });
    assert_eq!(p[0].ts_ms, Some(1_768_125_600_000), "2026-01-11T10:00:00Z");
}

#[test]
fn each_turn_has_its_outcome_from_the_timestamps_and_calls() {
    let p = session();
    let o: Vec<&Outcome> = p.iter().map(|r| &r.outcome).collect();
    // Why does the build fail? 10:00:00 → the answer at 10:00:12; a failing build.
    assert_eq!(
        *o[0],
        Outcome {
            duration_ms: Some(12_000),
            calls: 2,
            tool_calls: 1,
            tool_errors: 1,
            // The first response's output is its largest count (50), not its first line's (1).
            tokens: vec![sonnet(2, 15, 2000, 2100, 80)],
            prompt_tokens: 4115,
            output_tokens: 80,
            cost_usd: Some(15.0 + 160.0 + 2100.0 + 200.0),
            corrected: Some(false),
        }
    );
    // /review: one call of an unpriced model, no steps at all; 10:01:00 → 10:01:05.
    assert_eq!(o[1].duration_ms, Some(5_000));
    assert_eq!((o[1].calls, o[1].tool_calls, o[1].cost_usd, o[1].corrected), (1, 0, None, Some(false)));
    assert_eq!(
        o[1].tokens,
        [ModelTokens {
            model: "claude-haiku-4-5".into(),
            calls: 1,
            input: 100,
            cache_read: 0,
            cache_write: 0,
            output: 20
        }]
    );
    // The pasted error: an edit, then a reply at 10:02:30; the next prompt corrects it.
    assert_eq!((o[2].duration_ms, o[2].calls, o[2].tool_calls, o[2].tool_errors), (Some(30_000), 2, 1, 0));
    assert_eq!(o[2].tokens, [sonnet(2, 10, 4250, 80, 55)]);
    assert_eq!((o[2].cost_usd, o[2].corrected), (Some(10.0 + 110.0 + 80.0 + 425.0), Some(true)));
    // The correction: its turn ends with a failed edit's result at 10:03:11; no prompt after it.
    assert_eq!((o[3].duration_ms, o[3].calls, o[3].tool_calls, o[3].tool_errors), (Some(11_000), 1, 1, 1));
    assert_eq!((o[3].cost_usd, o[3].corrected), (Some(5.0 + 50.0 + 20.0 + 220.0), None));
}

#[test]
fn features_are_related_to_outcomes_over_the_prompts() {
    let pat = patterns(&session());
    assert_eq!(pat.prompts, 4);
    let with: Vec<(&str, usize, usize)> = pat.features.iter().map(|f| (f.feature, f.with, f.without)).collect();
    assert_eq!(
        with,
        [
            ("slash_command", 1, 3),
            ("question", 1, 3),
            ("pasted_error", 1, 3),
            ("code_block", 1, 3),
            ("file_mentions", 2, 2),
            ("long", 0, 4),
            ("correction", 1, 3)
        ]
    );
    assert_eq!(pat.comparisons.len(), FEATURES.len() * (OUTCOMES.len() + 1));
    let c = |feature: &str, outcome: &str| {
        pat.comparisons.iter().find(|c| c.feature == feature && c.outcome == outcome).unwrap().clone()
    };
    let q = c("question", "duration_ms");
    assert_eq!(q.with, Group { n: 1, mean: Some(12_000.0), median: Some(12_000.0) });
    assert_eq!(q.without, Group { n: 3, mean: Some(46_000.0 / 3.0), median: Some(11_000.0) });
    // The unpriced turn has no cost: it is left out, not counted as 0.
    let cost = c("question", "cost_usd");
    assert_eq!(cost.without, Group { n: 2, mean: Some(460.0), median: Some(460.0) });
    let e = c("pasted_error", "tool_errors");
    assert_eq!((e.with.mean, e.without.mean, e.without.median), (Some(0.0), Some(2.0 / 3.0), Some(1.0)));
    // The pasted error was followed by a correction; the last prompt has no follow-up.
    let k = c("pasted_error", CORRECTED);
    assert_eq!((k.with.n, k.with.mean, k.without.n, k.without.mean), (1, Some(1.0), 2, Some(0.0)));
    assert_eq!(c("long", "calls").with, Group { n: 0, mean: None, median: None });
    // Length against duration: ranks (2,1,4,3) and (3,1,4,2), Σd² = 2, ρ = 1 − 12/60.
    let d = pat.length.iter().find(|x| x.outcome == "duration_ms").unwrap();
    assert_eq!(d.n, 4);
    assert!((d.rho.unwrap() - 0.8).abs() < 1e-12, "{:?}", d.rho);
    assert_eq!(pat.length.iter().find(|x| x.outcome == CORRECTED).unwrap().n, 3);
}

#[test]
fn spearman_ranks_ties_and_refuses_what_it_cannot_say() {
    assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0]), [2.0, 3.5, 3.5, 1.0]);
    assert_eq!(spearman(&[1.0, 2.0, 3.0], &[10.0, 40.0, 90.0]), Some(1.0));
    assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
    assert_eq!(spearman(&[1.0, 2.0], &[1.0, 2.0]), None, "too few");
    assert_eq!(spearman(&[1.0, 2.0, 3.0], &[7.0, 7.0, 7.0]), None, "constant");
    assert_eq!(Group::of(&[3.0, 1.0, 2.0, 10.0]), Group { n: 4, mean: Some(4.0), median: Some(2.5) });
}

#[test]
fn every_real_session_gives_sane_prompts_and_patterns() {
    let mut all = Vec::new();
    for record in real_files().iter().flat_map(|f| records(f).into_values()) {
        let p = prompts(&record, &price);
        let typed = record.steps.iter().filter(|s| matches!(s, Step::Prompt { .. })).count();
        assert_eq!(p.len(), typed, "{}", record.session_id);
        // The turns split the session's calls: none is counted twice or lost.
        let calls: usize = p.iter().map(|r| r.outcome.calls).sum();
        let first = p.first().map_or(record.calls.len(), |r| match &record.steps[r.step] {
            Step::Prompt { calls_before, .. } => *calls_before,
            _ => unreachable!(),
        });
        assert_eq!(calls + first, record.calls.len(), "{}", record.session_id);
        for r in &p {
            let o = &r.outcome;
            assert_eq!(o.tokens.iter().map(|m| m.calls).sum::<usize>(), o.calls);
            assert_eq!(o.corrected.is_none(), r.index + 1 == p.len());
            assert!(o.cost_usd.is_none_or(|c| c >= 0.0));
        }
        all.extend(p);
    }
    assert!(all.len() > 30, "{} prompts", all.len());
    assert!(all.iter().any(|p| p.outcome.duration_ms.is_some_and(|d| d > 0)));
    let pat = patterns(&all);
    for f in &pat.features {
        assert_eq!(f.with + f.without, all.len());
    }
    for c in &pat.comparisons {
        for s in [&c.with, &c.without] {
            assert_eq!(s.mean.is_some(), s.n > 0);
            if let (Some(mean), Some(median)) = (s.mean, s.median) {
                assert!(mean.is_finite() && median.is_finite());
            }
        }
        let f = pat.features.iter().find(|f| f.feature == c.feature).unwrap();
        assert!(c.with.n <= f.with && c.without.n <= f.without);
    }
    assert!(pat.length.iter().all(|c| c.rho.is_none_or(|r| (-1.0..=1.0).contains(&r))));
}
