use super::*;
use crate::research::testing::{fixture, real_files, record_of, records};
use crate::research::tracker::Compaction;

fn handmade(name: &str) -> SessionRecord {
    record_of(&fixture(&format!("handmade/research/{name}")))
}

/// The numbers of a trajectory, in the order of its fields: tool calls, read calls,
/// edits, test runs, test failures, recoveries, first pass, fix cycles, repeated
/// failures, long waits, compactions.
type Counts = (usize, usize, usize, usize, usize, usize, Option<Millis>, usize, usize, usize, usize);

fn counts(t: &Trajectory) -> Counts {
    (
        t.tool_calls,
        t.read_calls,
        t.edits,
        t.test_runs,
        t.test_failures,
        t.recoveries,
        t.first_pass_ms,
        t.fix_cycles,
        t.repeated_failures,
        t.long_waits,
        t.compactions,
    )
}

#[test]
fn a_linear_session_edits_fails_once_and_recovers() {
    let t = classify(&handmade("linear.jsonl"));
    assert_eq!(t.class, TrajectoryClass::Linear);
    assert_eq!(t.reasons, ["linear: no other rule fired (6 tool calls, 3 edits, 2 test runs, longest fix loop 1)"]);
    assert_eq!(t.pivots, []);
    // Read, Edit, test (fails), Edit, test (passes 30 s after the prompt), Edit.
    assert_eq!(counts(&t), (6, 1, 3, 2, 1, 1, Some(30_000), 1, 1, 0, 0));
}

#[test]
fn an_exploratory_session_reads_and_searches_and_moves_to_other_files() {
    let rec = handmade("exploratory.jsonl");
    let t = classify(&rec);
    assert_eq!(t.class, TrajectoryClass::Exploratory);
    assert_eq!(
        t.reasons,
        ["exploratory: 10 of 10 tool calls read or search (100%, threshold 60%), 0 edits (0%, at most 10%)"]
    );
    // Path-bearing calls: the Grep's src, cache.rs, store.rs, lib.rs | three pages under
    // docs and README.md: the second four share no path with the first four, so the read
    // of the first page (6th call, step 11) is a pivot.
    assert_eq!(
        t.pivots,
        [Pivot { step: 11, call: 5, ts_ms: rec.first_ts.map(|t| t + 32_000), kind: PivotKind::NewFiles }]
    );
    assert!(matches!(&rec.steps[11], Step::ToolUse { features, .. } if &*features.name == "Read"));
    assert_eq!(counts(&t), (10, 10, 0, 0, 0, 0, None, 0, 0, 0, 0));
}

#[test]
fn a_fix_loop_is_edit_then_failing_test_in_a_row() {
    let t = classify(&handmade("fix_loop.jsonl"));
    assert_eq!(t.class, TrajectoryClass::IterativeFixLoop);
    assert_eq!(t.reasons, ["iterative_fix_loop: 3 edit → failing test cycles in a row (threshold 2)"]);
    assert_eq!(t.pivots, []);
    // The same test command failed three times, but an edit came between each: not
    // stuck. Two failures are `is_error`, one only says `1 failed`.
    assert_eq!(counts(&t), (9, 1, 4, 4, 3, 1, Some(54_000), 3, 1, 0, 0));
}

#[test]
fn a_stuck_session_repeats_its_failing_call_and_waits() {
    let t = classify(&handmade("stuck.jsonl"));
    assert_eq!(t.class, TrajectoryClass::Stuck);
    assert_eq!(
        t.reasons,
        [
            "stuck: the same call failed 3 times with no edit between (threshold 3)",
            "stuck: 2 tool results took 5 minutes or more (threshold 2)",
            "iterative_fix_loop: 2 edit → failing test cycles in a row (threshold 2)",
        ]
    );
    // The sub-agent took ten minutes: its wait is not counted.
    assert_eq!(counts(&t), (8, 1, 2, 4, 4, 0, None, 2, 3, 2, 0));
}

#[test]
fn three_compactions_make_a_session_stuck() {
    let mut rec = handmade("compaction_reread.jsonl");
    let t = classify(&rec);
    assert_eq!((t.class, t.compactions), (TrajectoryClass::Exploratory, 2));
    assert_eq!(
        t.reasons,
        ["exploratory: 8 of 9 tool calls read or search (89%, threshold 60%), 0 edits (0%, at most 10%)"]
    );
    // a.rs b.rs src/ missing.rs | a.rs c.rs d.rs b.rs: the windows share a.rs and b.rs.
    assert_eq!(t.pivots, []);
    let third: Compaction = rec.compactions[1].clone();
    rec.compactions.push(third);
    rec.steps.push(Step::Compaction(2));
    let t = classify(&rec);
    assert_eq!(t.class, TrajectoryClass::Stuck);
    assert_eq!(t.reasons[0], "stuck: 3 compactions (threshold 3)");
    assert_eq!(t.reasons.len(), 2, "the exploratory rule still fired: {:?}", t.reasons);
}

#[test]
fn an_edit_after_a_run_of_reads_is_a_pivot() {
    // The fix loop's calls after four more reads of other files: the first edit after
    // them is an explore-to-edit pivot.
    let mut rec = handmade("fix_loop.jsonl");
    let read = rec.steps.iter().position(|s| matches!(s, Step::ToolUse { .. })).unwrap();
    let Step::ToolUse { ts_ms, call, features } = rec.steps[read].clone() else { unreachable!() };
    for i in 0..EXPLORE_RUN as u64 - 1 {
        let mut f = features.clone();
        f.id = format!("extra{i}").into();
        f.path_hash = Some(i);
        rec.steps.insert(read + 1, Step::ToolUse { ts_ms, call, features: f });
    }
    let t = classify(&rec);
    let edit = rec.steps.iter().position(|s| matches!(s, Step::ToolUse { features, .. } if &*features.name == "Edit"));
    let Some(Step::ToolUse { ts_ms: edit_ts, call: edit_call, .. }) = edit.map(|i| &rec.steps[i]) else { panic!() };
    assert_eq!(*edit_call, call + 1);
    assert_eq!(
        t.pivots,
        [Pivot { step: edit.unwrap(), call: *edit_call, ts_ms: *edit_ts, kind: PivotKind::ExploreToEdit }]
    );
    // Three reads are not enough.
    rec.steps.remove(read + 1);
    assert_eq!(classify(&rec).pivots, []);
}

#[test]
fn every_real_fixture_gets_a_class_with_consistent_counts() {
    let mut classes = std::collections::BTreeMap::new();
    for f in real_files() {
        for (id, rec) in records(&f) {
            let t = classify(&rec);
            assert_eq!(t.session_id, id);
            assert!(t.reasons[0].starts_with(&format!("{}: ", t.class.name())), "{id} {:?}", t.reasons);
            assert!(t.read_calls + t.edits <= t.tool_calls, "{id}");
            assert!(t.test_failures <= t.test_runs && t.recoveries <= t.test_runs - t.test_failures, "{id}");
            assert!(t.fix_cycles <= t.test_failures && t.compactions == rec.compactions.len(), "{id}");
            assert_eq!(t.first_pass_ms.is_some(), t.test_runs > t.test_failures, "{id}");
            for w in t.pivots.windows(2) {
                assert!((w[0].step, w[0].kind) < (w[1].step, w[1].kind), "{id}: pivots in order");
            }
            for p in &t.pivots {
                assert!(matches!(&rec.steps[p.step], Step::ToolUse { call, .. } if *call == p.call), "{id}");
            }
            *classes.entry(t.class).or_insert(0) += 1;
        }
    }
    assert!(classes.values().sum::<usize>() >= 20, "{classes:?}");
}
