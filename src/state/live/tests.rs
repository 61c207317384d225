//! The aggregator's unit tests: counting, lifecycles, turns and traces, labels.

use super::*;
use crate::state::metrics::Gauge;
use crate::transcript::parse_line;

fn info(role: Role) -> FileInfo {
    FileInfo { role, slug: "-w-app".into(), session: Some("s1".into()), agent: None }
}

fn feed(a: &mut Aggregator, role: Role, lines: &[&str]) {
    let i = info(role);
    for l in lines {
        let e = Entry::from_line(&parse_line(l.as_bytes()).unwrap());
        a.apply(&e, &Source { info: &i, warmup: false });
    }
}

const PROMPT: &str =
    r#"{"type":"user","sessionId":"s1","cwd":"/w/app","timestamp":"2025-01-01T00:00:00Z","message":{"content":"go"}}"#;
const A1: &str = r#"{"type":"assistant","sessionId":"s1","cwd":"/w/app","timestamp":"2025-01-01T00:00:01Z","requestId":"r1","message":{"id":"m1","model":"claude-opus-4-6","usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":1000},"content":[{"type":"text","text":"x"}]}}"#;
const A2: &str = r#"{"type":"assistant","sessionId":"s1","cwd":"/w/app","timestamp":"2025-01-01T00:00:02Z","requestId":"r1","message":{"id":"m1","model":"claude-opus-4-6","usage":{"input_tokens":10,"output_tokens":50,"cache_read_input_tokens":1000},"content":[{"type":"tool_use","id":"t1","name":"Bash","input":{}}]}}"#;
const R1: &str = r#"{"type":"user","sessionId":"s1","cwd":"/w/app","timestamp":"2025-01-01T00:00:05Z","message":{"content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":"x"}]}}"#;

#[test]
fn a_split_response_counts_once_with_its_largest_usage() {
    let mut a = Aggregator::new(Config::default());
    feed(&mut a, Role::Main, &[PROMPT, A1, A2, A2, R1, R1]);
    let s = &a.store;
    let tok = |t| s.counter(Counter::Tokens, &["app", "claude-opus-4-6", "main", t]);
    assert_eq!((tok("input"), tok("output"), tok("cache_read")), (10.0, 50.0, 1000.0));
    assert_eq!(s.counter(Counter::ApiRequests, &["app", "claude-opus-4-6", "main"]), 1.0);
    assert_eq!(s.counter(Counter::ToolCalls, &["app", "Bash"]), 1.0);
    assert_eq!(s.counter(Counter::ToolErrors, &["app", "Bash"]), 1.0);
    assert_eq!(s.counter(Counter::Prompts, &["app"]), 1.0);
    assert_eq!(s.counter(Counter::SessionsStarted, &["app"]), 1.0);
    let d = s.histogram(Histogram::ToolDuration, &["Bash"]).unwrap();
    assert_eq!((d.count, d.sum), (1, 3.0));
    let cost = s.counter(Counter::Cost, &["app", "claude-opus-4-6", "main"]);
    assert!((cost - (10.0 * 5.0 + 50.0 * 25.0 + 1000.0 * 0.5) / 1e6).abs() < 1e-9);
    let sess = a.session("s1").unwrap();
    assert_eq!(sess.context_tokens, 1010);
}

#[test]
fn pending_tool_calls_are_gauged_until_their_result() {
    let mut a = Aggregator::new(Config::default());
    feed(&mut a, Role::Main, &[PROMPT, A2]);
    let t2 = crate::transcript::entry::parse_timestamp("2025-01-01T00:00:02Z").unwrap();
    a.tick(t2 + 90_000);
    assert_eq!(a.store.gauge(Gauge::ToolCallsPending, &["app", "Bash"]), Some(1.0));
    assert_eq!(a.store.gauge(Gauge::ToolCallOldestPending, &["app", "Bash"]), Some(90.0));
    feed(&mut a, Role::Main, &[R1]);
    a.tick(t2 + 91_000);
    assert_eq!(a.store.gauge(Gauge::ToolCallsPending, &["app", "Bash"]), None);
}

#[test]
fn sidechains_and_agent_files_are_subagent_usage() {
    let mut a = Aggregator::new(Config::default());
    let side = A1.replace("\"sessionId\"", "\"isSidechain\":true,\"sessionId\"");
    feed(&mut a, Role::Main, &[&side]);
    assert_eq!(a.store.counter(Counter::ApiRequests, &["app", "claude-opus-4-6", "subagent"]), 1.0);
    feed(&mut a, Role::Compaction, &[&A1.replace("m1", "m2")]);
    assert_eq!(a.store.counter(Counter::ApiRequests, &["app", "claude-opus-4-6", "auxiliary"]), 1.0);
}

#[test]
fn lifecycle_goes_idle_then_ended_and_resumes() {
    let mut a = Aggregator::new(Config::default());
    feed(&mut a, Role::Main, &[PROMPT, A1]);
    let t0 = crate::transcript::entry::parse_timestamp("2025-01-01T00:00:01Z").unwrap();
    a.tick(t0 + 60_000);
    assert_eq!(a.session("s1").unwrap().state, State::Active);
    assert_eq!(a.store.gauge(Gauge::Sessions, &["app", "active"]), Some(1.0));
    a.tick(t0 + 6 * 60_000);
    assert_eq!(a.session("s1").unwrap().state, State::Idle);
    assert_eq!(a.store.gauge(Gauge::ToolCallsPending, &["app", "Bash"]), None, "no call pending");
    assert_eq!(a.store.histogram(Histogram::TurnDuration, &["app"]).unwrap().sum, 1.0);
    a.tick(t0 + 31 * 60_000);
    assert_eq!(a.session("s1").unwrap().state, State::Ended);
    assert_eq!(a.store.gauge(Gauge::Sessions, &["app", "active"]), None);
    assert_eq!(a.store.histogram(Histogram::SessionDuration, &["app"]).unwrap().sum, 1.0);
    // New activity resumes the session without starting a new one.
    feed(&mut a, Role::Main, &[&A1.replace("m1", "m3").replace("00:00:01", "01:00:00")]);
    assert_eq!(a.session("s1").unwrap().state, State::Active);
    assert_eq!(a.store.counter(Counter::SessionsStarted, &["app"]), 1.0);
}

/// An aggregator tracing into a list, and the (count, summed ms) of the root spans sent.
fn traced() -> (Aggregator, Arc<std::sync::Mutex<Vec<crate::state::trace::Span>>>) {
    let mut a = Aggregator::new(Config::default());
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = Arc::clone(&got);
    a.enable_traces(0, Arc::new(move |s| g.lock().unwrap().extend(s)));
    (a, got)
}

fn roots(got: &std::sync::Mutex<Vec<crate::state::trace::Span>>) -> (u64, f64) {
    let got = got.lock().unwrap();
    let roots = got.iter().filter(|s| s.parent.is_none());
    roots.fold((0, 0.0), |(n, ms), s| (n + 1, ms + (s.end_ms - s.start_ms) as f64))
}

fn turns(a: &Aggregator) -> (u64, f64) {
    a.store.histogram(Histogram::TurnDuration, &["app"]).map_or((0, 0.0), |h| (h.count, h.sum * 1000.0))
}

#[test]
fn a_turn_ends_at_its_last_activity_not_at_the_next_prompt() {
    let (mut a, got) = traced();
    let next = PROMPT.replace("00:00:00", "00:00:09").replace("\"go\"", "\"more\"");
    feed(&mut a, Role::Main, &[PROMPT, A1, &next]);
    assert_eq!(turns(&a), (1, 1000.0), "prompt at 0 s, last activity at 1 s");
    assert_eq!(roots(&got), turns(&a), "the trace's root agrees");
}

#[test]
fn a_running_tool_call_keeps_its_turn_open_through_idleness() {
    let (mut a, got) = traced();
    feed(&mut a, Role::Main, &[PROMPT, A2]);
    let t2 = crate::transcript::entry::parse_timestamp("2025-01-01T00:00:02Z").unwrap();
    a.tick(t2 + 6 * 60_000);
    assert_eq!(a.session("s1").unwrap().state, State::Idle);
    assert_eq!(turns(&a), (0, 0.0), "the Bash call is still running");
    assert_eq!(roots(&got), (0, 0.0));
    feed(&mut a, Role::Main, &[R1]);
    a.tick(t2 + 13 * 60_000);
    assert_eq!(turns(&a), (1, 5000.0), "idle with nothing running: the turn ends at the result");
    assert_eq!(roots(&got), turns(&a));
    // Work with no prompt (here a late response) is a turn of its own, in both.
    feed(&mut a, Role::Main, &[&A1.replace("m1", "m9")]);
    a.tick(t2 + 60 * 60_000);
    assert_eq!(turns(&a).0, 2);
    assert_eq!(roots(&got), turns(&a));
}

#[test]
fn old_ended_sessions_are_pruned_but_counted() {
    let mut a = Aggregator::new(Config::default());
    feed(&mut a, Role::Main, &[PROMPT, A1]);
    let t0 = crate::transcript::entry::parse_timestamp("2025-01-01T00:00:01Z").unwrap();
    assert_eq!(a.prune(t0 + 60_000, 1000), 0, "live sessions are kept");
    a.tick(t0 + 31 * 60_000);
    assert_eq!(a.prune(t0 + 31 * 60_000, 40 * 86_400_000), 0);
    assert_eq!(a.prune(t0 + 41 * 86_400_000, 40 * 86_400_000), 1);
    assert!(a.session("s1").is_none());
    assert_eq!(a.store.counter(Counter::SessionsStarted, &["app"]), 1.0);
}

#[test]
fn projects_sharing_a_basename_get_distinct_labels() {
    let mut p = Projects::default();
    assert_eq!(p.label(ProjectLabel::Basename, Some("/a/app"), "s"), "app");
    assert_eq!(p.label(ProjectLabel::Basename, Some("/b/app"), "s"), "b/app");
    assert_eq!(p.label(ProjectLabel::Basename, Some("/a/app/"), "s"), "app");
    assert_eq!(p.label(ProjectLabel::Basename, Some("/a/app/.claude/worktrees/agent-1"), "s"), "app");
    assert_eq!(p.label(ProjectLabel::Slug, Some("/a/app"), "-a-app"), "-a-app");
    assert_eq!(p.label(ProjectLabel::None, Some("/a/app"), "-a-app"), "");
    assert_eq!(tool_label("mcp__github__create_issue"), "mcp:github");
    assert_eq!(tool_label("Read"), "Read");
}

#[test]
fn a_later_line_in_another_project_counts_and_publishes_under_the_first() {
    let mut a = Aggregator::new(Config::default());
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = Arc::clone(&got);
    let sink: crate::events::EventSink = Arc::new(move |e| g.lock().unwrap().push(e));
    let detail = crate::events::Detail::default();
    a.set_events(Some(Emitter { sink, detail, since_ms: 0, rules: None, stats: None }));
    feed(&mut a, Role::Main, &[PROMPT, A1]);
    // The session resumed in another project: its copy of the response grows there.
    let moved = A2.replace("\"s1\"", "\"s2\"").replace("/w/app", "/w/other");
    feed(&mut a, Role::Main, &[&moved]);
    let tok = |p, t| a.store.counter(Counter::Tokens, &[p, "claude-opus-4-6", "main", t]);
    assert_eq!((tok("app", "output"), tok("other", "output")), (50.0, 0.0));
    assert_eq!((a.session("s1").unwrap().tokens.output, a.session("s2").unwrap().tokens.output), (50, 0));
    let got = got.lock().unwrap();
    let messages: Vec<(&str, &str, u64)> = got
        .iter()
        .filter_map(|e| match &e.kind {
            crate::events::Kind::Message { usage: Some(u), .. } => Some((&*e.session_id, &*e.project, u.output)),
            _ => None,
        })
        .collect();
    assert_eq!(messages, [("s1", "app", 1), ("s1", "app", 49)], "events follow the counters");
}

#[test]
fn a_tool_error_counts_with_its_call_wherever_its_result_is_read() {
    let mut a = Aggregator::new(Config::default());
    feed(&mut a, Role::Main, &[PROMPT, A2]);
    // The result first seen in the session resumed in another project.
    let moved = R1.replace("\"s1\"", "\"s2\"").replace("/w/app", "/w/other");
    feed(&mut a, Role::Main, &[&moved]);
    let errors = |p| a.store.counter(Counter::ToolErrors, &[p, "Bash"]);
    assert_eq!((errors("app"), errors("other")), (1.0, 0.0));
    assert_eq!((a.session("s1").unwrap().tool_errors, a.session("s2").unwrap().tool_errors), (1, 0));
}

/// The context-added counter, over every real main file: its sources sum to the
/// positive growth of main-chain calls, counted here from the JSONL (prompt tokens of
/// each first-seen response less the context before it, which a compaction resets to
/// its `postTokens`); the same file read twice adds nothing.
#[test]
fn context_added_sums_to_the_positive_growth_of_main_chain_calls() {
    use serde_json::Value;
    let mut a = Aggregator::new(Config::default());
    let mut want = 0i64;
    let files: Vec<_> = crate::research::testing::real_files()
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "subagents"))
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("agent-"))
        .collect();
    assert!(files.len() >= 5);
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let i = FileInfo { role: Role::Main, slug: "-w-app".into(), session: Some(stem), agent: None };
        let (mut prev, mut seen, mut compactions) =
            (HashMap::new(), std::collections::HashSet::new(), std::collections::HashSet::new());
        for l in text.lines() {
            if let Ok(line) = parse_line(l.as_bytes()) {
                a.apply(&Entry::from_line(&line), &Source { info: &i, warmup: false });
            }
            let Ok(v) = serde_json::from_str::<Value>(l) else { continue };
            let session = v["sessionId"].as_str().unwrap_or("").to_owned();
            if v["isSidechain"] == true {
                continue;
            }
            if v["subtype"] == "compact_boundary" && compactions.insert(v["uuid"].to_string()) {
                prev.insert(session.clone(), v["compactMetadata"]["postTokens"].as_i64().unwrap_or(0));
            }
            let m = &v["message"];
            let u = &m["usage"];
            if v["type"] != "assistant"
                || !u.is_object()
                || m["model"] == "<synthetic>"
                || v["isApiErrorMessage"] == true
            {
                continue;
            }
            if !seen.insert((m["id"].to_string(), v["requestId"].to_string())) {
                continue;
            }
            let n = |k: &str| u[k].as_i64().unwrap_or(0);
            let prompt = n("input_tokens") + n("cache_creation_input_tokens") + n("cache_read_input_tokens");
            let before = prev.insert(session, prompt).unwrap_or(0);
            want += (prompt - before).max(0);
        }
    }
    let total = |a: &Aggregator| a.store.counter_series(Counter::ContextAdded).iter().map(|(_, v)| v).sum::<f64>();
    let got = total(&a);
    assert!(want > 100_000, "{want}");
    assert_eq!(got, want as f64, "context_added_tokens_total against the JSONL");
    let series = a.store.counter_series(Counter::ContextAdded);
    assert!(series.iter().any(|(l, _)| l.iter().any(|(_, v)| v.starts_with("tool_result:"))), "{series:?}");
    // Read again: every response is known, so nothing is added.
    for path in &files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let i = FileInfo { role: Role::Main, slug: "-w-app".into(), session: Some(stem), agent: None };
        for l in std::fs::read_to_string(path).unwrap().lines() {
            if let Ok(line) = parse_line(l.as_bytes()) {
                a.apply(&Entry::from_line(&line), &Source { info: &i, warmup: false });
            }
        }
    }
    assert_eq!(total(&a), got, "a second read adds nothing");
}

#[test]
fn context_added_gives_a_tool_result_its_share_of_the_next_call() {
    let big = "y".repeat(3998); // 4,000 bytes of JSON: about 1,000 tokens
    let result = format!(
        r#"{{"type":"user","sessionId":"s1","cwd":"/w/app","timestamp":"2025-01-01T00:00:05Z","message":{{"content":[{{"type":"tool_result","tool_use_id":"t1","content":"{big}"}}]}}}}"#
    );
    let next = r#"{"type":"assistant","sessionId":"s1","cwd":"/w/app","timestamp":"2025-01-01T00:00:06Z","requestId":"r2","message":{"id":"m2","model":"claude-opus-4-6","usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":2500},"content":[{"type":"text","text":"done"}]}}"#;
    let mut a = Aggregator::new(Config::default());
    feed(&mut a, Role::Main, &[PROMPT, A1, A2, &result, next]);
    let added = |source: &str| a.store.counter(Counter::ContextAdded, &["app", source]);
    // The first call's whole context (1,010) is its growth; the second grew by 1,500.
    let total: f64 = a.store.counter_series(Counter::ContextAdded).iter().map(|(_, v)| v).sum();
    assert_eq!(total, 2510.0);
    assert!((990.0..=1010.0).contains(&added("tool_result:Bash")), "{}", added("tool_result:Bash"));
    assert!(added("other") > 0.0 && added("user_text") > 0.0);
}
