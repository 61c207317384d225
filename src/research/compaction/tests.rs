use super::*;
use crate::research::testing::{fixture, real_files, record_of, records};

const MS_BASE: Millis = 1_772_445_600_000; // 2026-03-02T10:00:00Z, the hand-made sessions' zero

/// Bytes of the tool results' content (JSON text) before the `n`-th boundary of a file,
/// counted here from the JSON (sub-agents' lines left out, as the tracker does).
fn result_bytes_before_boundary(path: &std::path::Path, n: usize) -> u64 {
    let mut bytes = 0;
    let mut boundaries = 0;
    for l in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["isSidechain"] == true {
            continue;
        }
        if v["subtype"] == "compact_boundary" {
            boundaries += 1;
            if boundaries > n {
                break;
            }
            bytes = 0;
            continue;
        }
        for b in v["message"]["content"].as_array().into_iter().flatten() {
            if b["type"] == "tool_result" {
                bytes += serde_json::to_string(&b["content"]).unwrap().len() as u64;
            }
        }
    }
    bytes
}

#[test]
fn each_compaction_reports_its_span_and_the_files_read_again() {
    let path = fixture("handmade/research/compaction_reread.jsonl");
    let r = analyze(&record_of(&path));
    assert_eq!(r.len(), 2);
    let tools = |v: &[(&str, usize)]| v.iter().map(|(k, n)| (k.to_string(), *n)).collect::<BTreeMap<_, _>>();

    // The first: auto at 75% of the window; a.rs and b.rs read before (missing.rs failed,
    // the Grep is a search); a.rs read again by the first call after it, b.rs only after
    // the second compaction, which is not this one's to answer for.
    let first = CompactionReport {
        index: 0,
        ts_ms: Some(MS_BASE + 45_000),
        trigger: "auto",
        tokens_before: Some(150_000),
        tokens_after: Some(30_000),
        ratio: Some(0.2),
        utilization_at_auto: Some(0.75),
        model: Some("claude-opus-4-6".into()),
        version: Some("2.1.39".into()),
        summarised: Span {
            ms: Some(40_000),
            turns: 1,
            calls: 5,
            tool_results: tools(&[("Bash", 1), ("Grep", 1), ("Read", 3)]),
            tool_results_total: 5,
            tool_result_bytes: result_bytes_before_boundary(&path, 0),
            tokens: Some(150_000),
        },
        rereads: Rereads { files_read: 2, reread: 1, share: Some(0.5), first_within_calls: Some(0) },
    };
    assert_eq!(r[0], first);

    // The second: manual, so no utilization at auto; since the first, one prompt, three
    // calls, a.rs (the re-read) and c.rs read, neither read again after it.
    assert_eq!((r[1].trigger, r[1].tokens_before, r[1].tokens_after), ("manual", Some(60_000), Some(20_000)));
    assert!((r[1].ratio.unwrap() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!((r[1].utilization_at_auto, r[1].version.as_deref()), (None, Some("2.1.40")));
    let s = &r[1].summarised;
    assert_eq!((s.ms, s.turns, s.calls, s.tool_results_total), (Some(31_000), 1, 3, 2));
    assert_eq!(s.tool_results, tools(&[("Read", 2)]));
    assert_eq!(s.tool_result_bytes, result_bytes_before_boundary(&path, 1));
    assert_eq!(r[1].rereads, Rereads { files_read: 2, reread: 0, share: Some(0.0), first_within_calls: None });
}

#[test]
fn stats_group_by_model_and_by_version() {
    let r = analyze(&record_of(&fixture("handmade/research/compaction_reread.jsonl")));
    let s = stats(&r);
    assert_eq!((s.all.count, s.all.auto, s.all.files_read, s.all.reread), (2, 1, 4, 1));
    assert!((s.all.mean_ratio.unwrap() - (0.2 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
    assert_eq!((s.all.mean_utilization_at_auto, s.all.reread_share), (Some(0.75), Some(0.25)));
    assert_eq!(s.by_model.keys().collect::<Vec<_>>(), ["claude-opus-4-6"]);
    assert_eq!(s.by_model["claude-opus-4-6"], s.all);
    let v = &s.by_version;
    assert_eq!(v.keys().collect::<Vec<_>>(), ["2.1.39", "2.1.40"]);
    assert_eq!(
        v["2.1.39"],
        CompactionGroup {
            count: 1,
            auto: 1,
            mean_ratio: Some(0.2),
            mean_utilization_at_auto: Some(0.75),
            files_read: 2,
            reread: 1,
            reread_share: Some(0.5)
        }
    );
    assert_eq!(
        (v["2.1.40"].auto, v["2.1.40"].mean_utilization_at_auto, v["2.1.40"].reread_share),
        (0, None, Some(0.0))
    );
    // Nothing in, nothing out; a missing version is `unknown`.
    assert_eq!(stats([]), CompactionStats::default());
    let mut no_version = r[0].clone();
    no_version.version = None;
    assert_eq!(stats([&no_version]).by_version.keys().collect::<Vec<_>>(), ["unknown"]);
}

#[test]
fn every_real_fixture_gives_consistent_reports() {
    let (mut compactions, mut compacted_sessions) = (0, 0);
    let mut all = Vec::new();
    for f in real_files() {
        for (id, rec) in records(&f) {
            let reports = analyze(&rec);
            assert_eq!(reports.len(), rec.compactions.len(), "{id}");
            let results = rec.steps.iter().filter(|s| matches!(s, Step::ToolResult { .. })).count();
            let prompts = rec.steps.iter().filter(|s| matches!(s, Step::Prompt { .. })).count();
            let summarised = |f: fn(&Span) -> usize| reports.iter().map(|r| f(&r.summarised)).sum::<usize>();
            assert!(summarised(|s| s.tool_results_total) <= results, "{id}");
            assert!(summarised(|s| s.turns) <= prompts, "{id}");
            assert!(summarised(|s| s.calls) <= rec.calls.len(), "{id}");
            for r in &reports {
                assert_eq!(r.summarised.tool_results_total, r.summarised.tool_results.values().sum::<usize>());
                if let Some(x) = r.ratio {
                    assert!(x > 0.0 && x <= 1.0, "{id} ratio {x}");
                }
                assert!(r.rereads.reread <= r.rereads.files_read, "{id}");
                assert!(r.summarised.ms.is_none_or(|ms| ms >= 0), "{id}");
            }
            compactions += reports.len();
            compacted_sessions += usize::from(!reports.is_empty());
            all.extend(reports);
        }
    }
    assert_eq!(stats(&all).all.count, compactions);
    assert!(compacted_sessions >= 1, "the fixtures hold a compacted session");

    // The real compacted session: its one compaction summarised the whole session so far.
    let path = fixture("real/spotter/transcripts/4d5611e5-241a-462a-8d15-5122611a9569.jsonl");
    let rec = &records(&path)["4d5611e5-241a-462a-8d15-5122611a9569"];
    let r = analyze(rec);
    assert_eq!(r.len(), 1);
    let s = &r[0].summarised;
    assert!(s.tool_results_total > 0 && s.turns > 0, "{s:?}");
    assert_eq!((s.calls, s.tokens), (rec.compactions[0].calls_before, Some(170_251)));
    assert_eq!(s.tool_result_bytes, result_bytes_before_boundary(&path, 0));
    assert_eq!((r[0].trigger, r[0].version.as_deref()), ("auto", Some("2.1.39")));
    assert!(r[0].ratio.is_some_and(|x| x > 0.0 && x < 0.5), "{:?}", r[0].ratio);
}
