use super::*;
use crate::research::testing::{fixture, real_files, record_of, records};

/// The one session of a hand-made research fixture.
fn handmade(name: &str) -> SessionRecord {
    record_of(&fixture(&format!("handmade/research/{name}")))
}

/// Every session of every real fixture.
fn real_records() -> Vec<SessionRecord> {
    let files = real_files();
    assert!(files.len() >= 20, "{} fixture files", files.len());
    files.iter().flat_map(|f| records(f).into_values()).collect()
}

fn m(path: u32, identifier: u32, number: u32, error_line: u32) -> Matched {
    Matched { path, identifier, number, error_line }
}

#[test]
fn each_result_of_the_handmade_session_is_scored_as_documented() {
    let s = influence(&handmade("influence.jsonl"));
    assert_eq!(s.session_id, "influence-session");
    type Row<'a> = (&'a str, u64, Option<usize>, Matched, u32, f64, bool);
    let rows: Vec<Row<'_>> =
        s.results.iter().map(|r| (&*r.tool, r.bytes, r.next_call, r.matched, r.weighted, r.score, r.used)).collect();
    assert_eq!(
        rows,
        vec![
            // t1, the failing test: its path, identifier, two numbers and an error line in the reply.
            ("Bash", 122, Some(1), m(1, 1, 2, 1), 8, 1.0, true),
            // t2, src/parser.rs read: the reply names the file, but the Read asked for it.
            ("Read", 61, Some(2), m(0, 0, 0, 0), 0, 0.0, false),
            // t3, the grep's files: the Edit acts on one of them.
            ("Grep", 41, Some(3), m(1, 0, 0, 0), 2, 0.5, true),
            // t4, the edit's echo: all its tokens are its own input's.
            ("Edit", 109, Some(4), m(0, 0, 0, 0), 0, 0.0, false),
            // t5, tests pass: one identifier in the last reply, below the threshold.
            ("Bash", 104, Some(5), m(0, 1, 0, 0), 1, 0.25, false),
            // t6, a file whose tokens never reappear.
            ("Read", 56, Some(5), m(0, 0, 0, 0), 0, 0.0, false),
        ]
    );
    let own: Vec<(usize, usize)> = s.results.iter().map(|r| (r.tokens, r.own_input_tokens)).collect();
    assert_eq!(own, [(7, 0), (1, 1), (2, 0), (0, 3), (2, 0), (2, 0)]);
    assert!(s.results[0].is_error && s.results[1..].iter().all(|r| !r.is_error));
    assert!(s.results.iter().all(|r| !r.capped));
    // Within three calls, t3's second file is read one call later.
    let later: Vec<(Matched, u32, bool)> =
        s.results.iter().map(|r| (r.later, r.later_weighted, r.later_used)).collect();
    assert_eq!(later[2], (m(2, 0, 0, 0), 4, true));
    assert_eq!(later[0], (m(1, 1, 2, 1), 8, true));
    assert!(later.iter().zip(&s.results).all(|(l, r)| l.1 >= r.weighted));
}

#[test]
fn the_own_input_rule_is_what_makes_a_read_file_unused() {
    let mut record = handmade("influence.jsonl");
    // Without the Read's input, its path matches the next reply's and the read counts as used.
    for s in &mut record.steps {
        if let Step::ToolUse { features, .. } = s
            && &*features.id == "t2"
        {
            features.tokens = TokenSet::default();
        }
    }
    let r = &influence(&record).results[1];
    assert_eq!((r.matched, r.weighted, r.used, r.own_input_tokens), (m(1, 0, 0, 0), 2, true, 0));
}

#[test]
fn the_handmade_session_sums_per_tool_and_in_total() {
    let s = influence(&handmade("influence.jsonl"));
    let t = |name: &str| s.tools.iter().find(|t| t.tool == name).unwrap().clone();
    let names: Vec<&str> = s.tools.iter().map(|t| t.tool.as_str()).collect();
    assert_eq!(names, ["Bash", "Edit", "Grep", "Read"]);
    let bash = t("Bash");
    assert_eq!((bash.results, bash.answered, bash.used, bash.unused, bash.unanswered), (2, 2, 1, 1, 0));
    assert_eq!((bash.share_used, bash.mean_score), (Some(0.5), Some(0.625)));
    assert_eq!((bash.bytes, bash.unused_bytes, bash.later_used), (226, 104, 1));
    assert_eq!(bash.matched, m(1, 2, 2, 1));
    let read = t("Read");
    assert_eq!((read.results, read.used, read.share_used, read.mean_score), (2, 0, Some(0.0), Some(0.0)));
    assert_eq!((read.bytes, read.unused_bytes), (117, 117), "results nobody used");
    assert_eq!((t("Grep").used, t("Grep").unused_bytes, t("Edit").unused_bytes), (1, 0, 109));
    let total = &s.total;
    assert_eq!(total.tool, "*");
    assert_eq!((total.results, total.answered, total.used, total.unused), (6, 6, 2, 4));
    assert_eq!((total.bytes, total.unused_bytes, total.later_used), (493, 330, 2));
    assert!((total.mean_score.unwrap() - 1.75 / 6.0).abs() < 1e-12);
    assert_eq!(total.share_used, Some(2.0 / 6.0));
}

#[test]
fn a_result_after_the_last_call_is_unanswered() {
    let mut record = handmade("influence.jsonl");
    // Cut the session after t6's result: no call reads t5 and t6.
    record.calls.truncate(5);
    record.steps.retain(|s| !matches!(s, Step::Reply { call: 5, .. }));
    let s = influence(&record);
    let next: Vec<Option<usize>> = s.results.iter().map(|r| r.next_call).collect();
    assert_eq!(next, [Some(1), Some(2), Some(3), Some(4), None, None]);
    assert!(s.results[4..].iter().all(|r| !r.used && r.score == 0.0 && r.later == Matched::default()));
    assert_eq!((s.total.answered, s.total.unanswered, s.total.used, s.total.unused), (4, 2, 2, 2));
    assert_eq!(s.total.unused_bytes, 61 + 109, "unanswered results are not counted as unused");
}

#[test]
fn every_real_session_keeps_the_invariants() {
    let records = real_records();
    let (mut results, mut used, mut later_only) = (0, 0, 0);
    for record in &records {
        let s = influence(record);
        let tool_results = record.steps.iter().filter(|x| matches!(x, Step::ToolResult { .. })).count();
        assert_eq!(s.results.len(), tool_results, "{}", s.session_id);
        for r in &s.results {
            assert!((0.0..=1.0).contains(&r.score), "{} {r:?}", s.session_id);
            assert_eq!(r.score, score(r.weighted));
            assert_eq!(r.weighted, r.matched.weighted());
            assert_eq!(r.used, r.weighted >= USED_AT);
            assert!(r.later_weighted >= r.weighted && (r.used <= r.later_used));
            assert!(r.next_call.is_none_or(|n| n < record.calls.len()));
            assert!(r.matched.weighted() as usize <= 3 * r.tokens, "matches come from the result's tokens");
            later_only += usize::from(r.later_used && !r.used);
        }
        let t = &s.total;
        assert_eq!(t.results, s.results.len());
        assert!(t.used <= t.answered && t.answered <= t.results);
        assert_eq!(t.used + t.unused + t.unanswered, t.results);
        assert!(t.unused_bytes <= t.bytes);
        let sum = |f: fn(&ToolInfluence) -> u64| s.tools.iter().map(f).sum::<u64>();
        assert_eq!(sum(|x| x.results as u64), t.results as u64);
        assert_eq!(sum(|x| x.used as u64), t.used as u64);
        assert_eq!(sum(|x| x.answered as u64), t.answered as u64);
        assert_eq!(sum(|x| x.bytes), t.bytes);
        assert_eq!(sum(|x| x.unused_bytes), t.unused_bytes);
        assert_eq!(sum(|x| u64::from(x.matched.weighted())), u64::from(t.matched.weighted()));
        results += t.results;
        used += t.used;
    }
    // The measure finds something on real sessions, and not everything.
    assert!(results > 300, "{results} results");
    assert!(used * 10 > results && used < results, "{used} of {results} used");
    assert!(later_only > 0, "some results are used only later");
    // Over sessions, per tool sums equal the sessions' totals.
    let all: Vec<SessionInfluence> = records.iter().map(influence).collect();
    let tools = by_tool(all.iter().flat_map(|s| &s.results));
    assert_eq!(tools.iter().map(|t| t.used).sum::<usize>(), used);
    assert_eq!(tools.iter().map(|t| t.results).sum::<usize>(), results);
}

#[test]
fn weights_and_scores_follow_the_documented_table() {
    assert_eq!(m(1, 1, 1, 1).weighted(), 2 + 1 + 1 + 3);
    assert_eq!([score(0), score(1), score(2), score(4), score(9)], [0.0, 0.25, 0.5, 1.0, 1.0]);
    assert_eq!(weight(TokenKind::ErrorLine), 3);
}
