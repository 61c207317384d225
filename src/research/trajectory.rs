//! Trajectories: how a session went, as one class, its pivots and its progress.
//!
//! In: a [`SessionRecord`] (its main chain's tool calls, their results, its
//! compactions). Out: a [`Trajectory`] ([`classify`]): a [`TrajectoryClass`] chosen by
//! documented rules with the numbers that decided it, the points where the work changed
//! direction ([`Pivot`]), and progress signals (edits, test runs, failures, recoveries).
//! A pure function: the same record gives the same trajectory.
//!
//! The rules (documented in `docs/research.md`, "Trajectories"), checked in this order,
//! the first that fires giving the class (every rule that fires gives a reason):
//! 1. **stuck**: one identical call (same `input_hash`) fails [`STUCK_REPEATS`] times
//!    with no edit between; or [`STUCK_LONG_WAITS`] tool results each take
//!    [`LONG_WAIT_MS`] or more (not [`WAITING_TOOLS`]); or the session has
//!    [`STUCK_COMPACTIONS`] compactions;
//! 2. **iterative_fix_loop**: [`FIX_LOOP_CYCLES`] edit → failing test cycles in a row;
//! 3. **exploratory**: at least [`EXPLORE_MIN_CALLS`] tool calls, of which a share of
//!    [`EXPLORE_SHARE`] or more read or search ([`READ_SEARCH_TOOLS`]) and a share of
//!    [`EXPLORE_MAX_EDIT_SHARE`] or less edit ([`EDIT_TOOLS`]);
//! 4. **linear**: none of the above.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::features::{ResultFeatures, UseFeatures};
use super::tracker::{SessionRecord, Step};
use crate::transcript::entry::Millis;

/// Tools that change files.
pub const EDIT_TOOLS: [&str; 4] = ["Edit", "MultiEdit", "Write", "NotebookEdit"];
/// Tools that read or search (files or the web) without changing anything.
pub const READ_SEARCH_TOOLS: [&str; 7] = ["Read", "NotebookRead", "Grep", "Glob", "LS", "WebFetch", "WebSearch"];
/// Failures of one identical call, with no edit between, that make a session stuck.
pub const STUCK_REPEATS: usize = 3;
/// A tool result that comes this long (ms) after its call is a long wait (unless the
/// tool is one of [`WAITING_TOOLS`]).
pub const LONG_WAIT_MS: Millis = 5 * 60 * 1000;
/// Tools whose job is to wait: for a sub-agent's work (`Task`, `Agent`), a background
/// task (`TaskOutput`) or the person's answer (`AskUserQuestion`). Their waits do not count.
pub const WAITING_TOOLS: [&str; 4] = ["Task", "Agent", "TaskOutput", "AskUserQuestion"];
/// Long waits that make a session stuck.
pub const STUCK_LONG_WAITS: usize = 2;
/// Compactions that make a session stuck.
pub const STUCK_COMPACTIONS: usize = 3;
/// Edit → failing test cycles in a row that make an iterative fix loop.
pub const FIX_LOOP_CYCLES: usize = 2;
/// Tool calls a session needs before it can be exploratory.
pub const EXPLORE_MIN_CALLS: usize = 5;
/// Share of read/search calls from which a session is exploratory.
pub const EXPLORE_SHARE: f64 = 0.6;
/// Share of edit calls up to which a session can be exploratory.
pub const EXPLORE_MAX_EDIT_SHARE: f64 = 0.1;
/// Path-bearing calls on each side of a [`PivotKind::NewFiles`] pivot.
pub const PIVOT_WINDOW: usize = 4;
/// Read/search calls since the last edit that make the next edit a
/// [`PivotKind::ExploreToEdit`] pivot.
pub const EXPLORE_RUN: usize = 4;

/// A session's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrajectoryClass {
    /// Work that progresses without loops (no other rule fired).
    Linear,
    /// Mostly reading and searching, few edits.
    Exploratory,
    /// Edit → test → failure, repeated.
    IterativeFixLoop,
    /// The same failing call repeated, long waits, or many compactions.
    Stuck,
}

impl TrajectoryClass {
    /// Its name in reports and reasons (`iterative_fix_loop`, …).
    pub fn name(self) -> &'static str {
        match self {
            TrajectoryClass::Linear => "linear",
            TrajectoryClass::Exploratory => "exploratory",
            TrajectoryClass::IterativeFixLoop => "iterative_fix_loop",
            TrajectoryClass::Stuck => "stuck",
        }
    }
}

/// What changed at a pivot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PivotKind {
    /// The [`PIVOT_WINDOW`] path-bearing calls from here touch none of the paths of the
    /// [`PIVOT_WINDOW`] before.
    NewFiles,
    /// The first edit after [`EXPLORE_RUN`] or more read/search calls.
    ExploreToEdit,
}

/// A point where the work changed direction: the tool call that starts the new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pivot {
    /// Index of the tool call's step in [`SessionRecord::steps`].
    pub step: usize,
    /// The main-chain call that made it.
    pub call: usize,
    /// When (ms since the epoch).
    pub ts_ms: Option<Millis>,
    /// What changed.
    pub kind: PivotKind,
}

/// How a session went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trajectory {
    /// The session's id.
    pub session_id: String,
    /// Its class.
    pub class: TrajectoryClass,
    /// Every rule that fired, with its numbers, the class's first; for `linear`, one
    /// line saying so with the session's numbers.
    pub reasons: Vec<String>,
    /// Where the work changed direction, in order.
    pub pivots: Vec<Pivot>,
    /// Main-chain tool calls.
    pub tool_calls: usize,
    /// Of those, read/search calls ([`READ_SEARCH_TOOLS`]).
    pub read_calls: usize,
    /// Of those, edit calls ([`EDIT_TOOLS`]).
    pub edits: usize,
    /// Test runs (Bash test commands) with a result.
    pub test_runs: usize,
    /// Of those, failing: `is_error`, or the output says tests failed.
    pub test_failures: usize,
    /// Passing test runs that follow a failing one.
    pub recoveries: usize,
    /// Milliseconds from the session's first line to the first passing test result.
    pub first_pass_ms: Option<Millis>,
    /// The longest run of edit → failing test cycles.
    pub fix_cycles: usize,
    /// The most failures of one identical call with no edit between.
    pub repeated_failures: usize,
    /// Tool results that came [`LONG_WAIT_MS`] or more after their call (not
    /// [`WAITING_TOOLS`]).
    pub long_waits: usize,
    /// Compactions.
    pub compactions: usize,
}

/// One tool call and its result.
struct Call<'a> {
    step: usize,
    call: usize,
    ts_ms: Option<Millis>,
    features: &'a UseFeatures,
    result: Option<(Option<Millis>, &'a ResultFeatures)>,
}

impl Call<'_> {
    fn is(&self, tools: &[&str]) -> bool {
        tools.contains(&&*self.features.name)
    }

    /// Whether its result failed: `is_error`, or a test run whose output says tests failed.
    fn failed(&self) -> Option<bool> {
        self.result.map(|(_, r)| r.is_error || (self.features.test_command && r.says_fail))
    }
}

/// The trajectory of `record`; see the module doc.
pub fn classify(record: &SessionRecord) -> Trajectory {
    let results: HashMap<&str, (Option<Millis>, &ResultFeatures)> = record
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::ToolResult { ts_ms, features, .. } => Some((&*features.tool_use_id, (*ts_ms, features))),
            _ => None,
        })
        .collect();
    let calls: Vec<Call<'_>> = record
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Step::ToolUse { ts_ms, call, features } => Some(Call {
                step: i,
                call: *call,
                ts_ms: *ts_ms,
                features,
                result: results.get(&*features.id).copied(),
            }),
            _ => None,
        })
        .collect();

    let mut t = Trajectory {
        session_id: record.session_id.clone(),
        class: TrajectoryClass::Linear,
        reasons: Vec::new(),
        pivots: pivots(&calls),
        tool_calls: calls.len(),
        read_calls: calls.iter().filter(|c| c.is(&READ_SEARCH_TOOLS)).count(),
        edits: calls.iter().filter(|c| c.is(&EDIT_TOOLS)).count(),
        test_runs: 0,
        test_failures: 0,
        recoveries: 0,
        first_pass_ms: None,
        fix_cycles: 0,
        repeated_failures: 0,
        long_waits: 0,
        compactions: record.compactions.len(),
    };
    // Tests, fix cycles and repeated failures, in the order of the calls.
    let (mut edited, mut cycles, mut last_failed) = (false, 0, None);
    let mut failures: HashMap<u64, usize> = HashMap::new();
    for c in &calls {
        if c.is(&EDIT_TOOLS) {
            edited = true;
            failures.clear();
        }
        if let (Some((done, _)), Some(start)) = (c.result, c.ts_ms)
            && done.is_some_and(|d| d - start >= LONG_WAIT_MS)
            && !c.is(&WAITING_TOOLS)
        {
            t.long_waits += 1;
        }
        let Some(failed) = c.failed() else { continue };
        if failed {
            let n = failures.entry(c.features.input_hash).or_default();
            *n += 1;
            t.repeated_failures = t.repeated_failures.max(*n);
        } else {
            failures.remove(&c.features.input_hash);
        }
        if !c.features.test_command {
            continue;
        }
        t.test_runs += 1;
        if failed {
            t.test_failures += 1;
            if edited {
                cycles += 1;
                t.fix_cycles = t.fix_cycles.max(cycles);
            }
        } else {
            cycles = 0;
            t.recoveries += usize::from(last_failed == Some(true));
            if t.first_pass_ms.is_none() {
                let done = c.result.and_then(|(ts, _)| ts);
                t.first_pass_ms = done.zip(record.first_ts).map(|(d, f)| d - f);
            }
        }
        edited = false;
        last_failed = Some(failed);
    }

    let mut fired = Vec::new();
    if t.repeated_failures >= STUCK_REPEATS {
        fired.push((
            TrajectoryClass::Stuck,
            format!(
                "stuck: the same call failed {} times with no edit between (threshold {STUCK_REPEATS})",
                t.repeated_failures
            ),
        ));
    }
    if t.long_waits >= STUCK_LONG_WAITS {
        fired.push((
            TrajectoryClass::Stuck,
            format!(
                "stuck: {} tool results took {} minutes or more (threshold {STUCK_LONG_WAITS})",
                t.long_waits,
                LONG_WAIT_MS / 60_000
            ),
        ));
    }
    if t.compactions >= STUCK_COMPACTIONS {
        fired.push((
            TrajectoryClass::Stuck,
            format!("stuck: {} compactions (threshold {STUCK_COMPACTIONS})", t.compactions),
        ));
    }
    if t.fix_cycles >= FIX_LOOP_CYCLES {
        fired.push((
            TrajectoryClass::IterativeFixLoop,
            format!(
                "iterative_fix_loop: {} edit → failing test cycles in a row (threshold {FIX_LOOP_CYCLES})",
                t.fix_cycles
            ),
        ));
    }
    let share = |n: usize| if t.tool_calls == 0 { 0.0 } else { n as f64 / t.tool_calls as f64 };
    let (reading, editing) = (share(t.read_calls), share(t.edits));
    if t.tool_calls >= EXPLORE_MIN_CALLS && reading >= EXPLORE_SHARE && editing <= EXPLORE_MAX_EDIT_SHARE {
        fired.push((
            TrajectoryClass::Exploratory,
            format!(
                "exploratory: {} of {} tool calls read or search ({:.0}%, threshold {:.0}%), {} edits ({:.0}%, at most {:.0}%)",
                t.read_calls,
                t.tool_calls,
                reading * 100.0,
                EXPLORE_SHARE * 100.0,
                t.edits,
                editing * 100.0,
                EXPLORE_MAX_EDIT_SHARE * 100.0
            ),
        ));
    }
    match fired.first() {
        Some((class, _)) => t.class = *class,
        None => fired.push((
            TrajectoryClass::Linear,
            format!(
                "linear: no other rule fired ({} tool calls, {} edits, {} test runs, longest fix loop {})",
                t.tool_calls, t.edits, t.test_runs, t.fix_cycles
            ),
        )),
    }
    t.reasons = fired.into_iter().map(|(_, r)| r).collect();
    t
}

/// The pivots of `calls`, in order; see [`PivotKind`].
fn pivots(calls: &[Call<'_>]) -> Vec<Pivot> {
    let pivot = |c: &Call<'_>, kind| Pivot { step: c.step, call: c.call, ts_ms: c.ts_ms, kind };
    let mut out = Vec::new();
    // New files: a window of path-bearing calls sharing no path with the window before.
    let paths: Vec<(&Call<'_>, u64)> = calls.iter().filter_map(|c| c.features.path_hash.map(|p| (c, p))).collect();
    let k = PIVOT_WINDOW;
    let mut i = k;
    while i + k <= paths.len() {
        let before: HashSet<u64> = paths[i - k..i].iter().map(|(_, p)| *p).collect();
        if paths[i..i + k].iter().all(|(_, p)| !before.contains(p)) {
            out.push(pivot(paths[i].0, PivotKind::NewFiles));
            i += k;
        } else {
            i += 1;
        }
    }
    // Explore to edit: an edit after a run of reads and searches.
    let mut reads = 0;
    for c in calls {
        if c.is(&READ_SEARCH_TOOLS) {
            reads += 1;
        } else if c.is(&EDIT_TOOLS) {
            if reads >= EXPLORE_RUN {
                out.push(pivot(c, PivotKind::ExploreToEdit));
            }
            reads = 0;
        }
    }
    out.sort_by_key(|p| (p.step, p.kind));
    out
}

#[cfg(test)]
mod tests;
