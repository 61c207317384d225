use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use super::*;
use crate::research::testing::{fixture, real_files, records as track};
use crate::transcript::parse_line;

/// The main chain's calls, counted here from the JSON: the first line of each
/// (message.id, requestId), not a sidechain, not synthetic, with usage; its prompt tokens.
fn independent_series(path: &Path, session: &str) -> Vec<u64> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for l in std::fs::read_to_string(path).unwrap().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else { continue };
        if v["type"] != "assistant" || v["isSidechain"] == true || v["sessionId"] != session {
            continue;
        }
        let m = &v["message"];
        if m["model"] == "<synthetic>" || !m["usage"].is_object() || !m["id"].is_string() {
            continue;
        }
        if !seen.insert((m["id"].to_string(), v["requestId"].to_string())) {
            continue;
        }
        let u = &m["usage"];
        let n = |k: &str| u[k].as_u64().unwrap_or(0);
        out.push(n("input_tokens") + n("cache_creation_input_tokens") + n("cache_read_input_tokens"));
    }
    out
}

#[test]
fn the_compacted_session_matches_its_boundary_and_its_usage() {
    let path = fixture("real/spotter/transcripts/4d5611e5-241a-462a-8d15-5122611a9569.jsonl");
    let id = "4d5611e5-241a-462a-8d15-5122611a9569";
    let records = track(&path);
    let r = &records[id];
    // The per-call series is the transcript's usage, call for call.
    let series: Vec<u64> = r.calls.iter().map(|c| c.context_tokens).collect();
    let expected = independent_series(&path, id);
    assert_eq!(series.len(), 139, "main-chain calls (counted with a script over the file)");
    assert_eq!(series, expected);
    // One compaction: before = the boundary's preTokens, after = the next call's prompt.
    assert_eq!(r.compactions.len(), 1);
    let c = &r.compactions[0];
    assert_eq!((c.trigger, c.tokens_before), ("auto", Some(170_251)));
    let next = c.next_call.expect("a call after the compaction");
    assert_eq!(c.tokens_after, Some(expected[next]));
    assert!(r.calls[next].after_compaction);
    assert!(expected[next] < 170_251 / 2, "the context shrank: {}", expected[next]);
    assert_eq!(c.version.as_deref(), Some("2.1.39"));
    assert!(r.calls[next].growth < 0);
    assert_eq!(
        r.calls[next].composition,
        vec![Part { source: "dropped".into(), bytes: 0, tokens: r.calls[next].growth }]
    );
}

#[test]
fn every_calls_composition_sums_to_its_growth_over_all_fixtures() {
    let files = real_files();
    assert!(files.len() >= 20, "{} fixture files", files.len());
    let (mut calls, mut with_tool_results) = (0, 0);
    for f in &files {
        for (id, r) in track(f) {
            let mut prev = 0i64;
            for c in &r.calls {
                let sum: i64 = c.composition.iter().map(|p| p.tokens).sum();
                assert_eq!(sum, c.growth, "{} {id} call {}", f.display(), c.index);
                assert_eq!(c.growth, c.context_tokens as i64 - prev);
                assert!(c.composition.iter().all(|p| p.source == "dropped" || p.tokens >= 0));
                prev = c.context_tokens as i64;
                calls += 1;
                with_tool_results += usize::from(c.composition.iter().any(|p| p.source.starts_with("tool_result:")));
            }
        }
    }
    assert!(calls > 400, "{calls} calls");
    assert!(with_tool_results > 100, "tool results named by their tool in {with_tool_results} calls");
}

#[test]
fn a_growth_is_split_by_estimate_then_by_size() {
    let added: BTreeMap<String, u64> =
        [("tool_result:Read".to_owned(), 4000), ("user_text".to_owned(), 400)].into_iter().collect();
    // Fits: 1000 + 100 tokens, the rest is `other`.
    let p = split(5000, &added);
    let t = |p: &[Part], s: &str| p.iter().find(|x| x.source == s).map(|x| x.tokens);
    assert_eq!((t(&p, "tool_result:Read"), t(&p, "user_text"), t(&p, "other")), (Some(1000), Some(100), Some(3900)));
    // Does not fit: 11 tokens in proportion 10:1.
    let p = split(11, &added);
    assert_eq!((t(&p, "tool_result:Read"), t(&p, "user_text"), t(&p, "other")), (Some(10), Some(1), None));
    // Largest remainders: 3 tokens over three equal parts.
    let three: BTreeMap<String, u64> = [("a".into(), 100), ("b".into(), 100), ("c".into(), 100)].into_iter().collect();
    assert_eq!(split(3, &three).iter().map(|p| p.tokens).collect::<Vec<_>>(), [1, 1, 1]);
    assert_eq!(split(2, &three).iter().map(|p| p.tokens).sum::<i64>(), 2);
    // Nothing added: all `other`. Shrunk: all `dropped`.
    assert_eq!(split(7, &BTreeMap::new()), vec![Part { source: "other".into(), bytes: 0, tokens: 7 }]);
    assert_eq!(split(-50, &added), vec![Part { source: "dropped".into(), bytes: 0, tokens: -50 }]);
}

#[test]
fn pending_calls_and_subagents_are_counted_at_each_call() {
    let lines = [
        r#"{"type":"assistant","sessionId":"s","requestId":"r1","message":{"id":"m1","model":"m","content":[{"type":"tool_use","id":"t1","name":"Task","input":{"prompt":"x"}},{"type":"tool_use","id":"t2","name":"Read","input":{"file_path":"/a/b.rs"}}],"usage":{"input_tokens":100}}}"#,
        r#"{"type":"user","sessionId":"s","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t2","content":"fn main() {}"}]}}"#,
        r#"{"type":"assistant","sessionId":"s","requestId":"r2","message":{"id":"m2","model":"m","content":[{"type":"text","text":"ok"}],"usage":{"input_tokens":300,"output_tokens":7}}}"#,
        r#"{"type":"assistant","sessionId":"s","requestId":"r2","message":{"id":"m2","model":"m","content":[{"type":"text","text":"more"}],"usage":{"input_tokens":300,"output_tokens":9}}}"#,
    ];
    let mut t = ContextTracker::new("s");
    let mut snaps = Vec::new();
    for l in lines {
        let e = Entry::from_line(&parse_line(l.as_bytes()).unwrap());
        snaps.extend(t.push(&e, &LineFeatures::read(l, &e)));
    }
    assert_eq!(snaps.len(), 2, "one snapshot per response, not per line");
    assert_eq!((snaps[1].pending_tool_calls, snaps[1].active_subagents), (1, 1));
    let r = t.finish();
    let s = &r.calls[1];
    assert_eq!(s.growth, 200);
    let names: Vec<&str> = s.composition.iter().map(|p| p.source.as_str()).collect();
    assert_eq!(names, ["assistant_output", "tool_result:Read", "other"]);
    assert_eq!(s.output_total, 7, "the second line's 9 comes after the snapshot");
    assert_eq!((snaps[1].output_tokens, s.output_tokens, r.output_total), (7, 9, 9), "the record has the largest");
    let tool_results = r.steps.iter().filter(|s| matches!(s, Step::ToolResult { tool, .. } if tool == "Read")).count();
    assert_eq!(tool_results, 1);
}

#[test]
fn split_takes_any_sizes_without_overflow() {
    // Sizes restored from a damaged checkpoint: the parts still sum to the growth.
    let added: BTreeMap<String, u64> = [("a".to_owned(), u64::MAX), ("b".to_owned(), u64::MAX - 1)].into();
    let parts = split(10, &added);
    assert_eq!(parts.iter().map(|p| p.tokens).sum::<i64>(), 10);
    assert!(parts.iter().all(|p| p.tokens >= 0), "{parts:?}");
}
