//! The tracer's unit tests: span trees, when spans leave, caps, checkpoints, ids.

use super::*;
use std::sync::{Arc, Mutex};

fn at<'a>(owner: &'a Owner, ts: Millis, prompts: u64) -> At<'a> {
    At { session: "s1", project: "app", prompts, ts, owner, query_source: "main", turn_ms: ts }
}

fn response(key: u64, output: u64) -> Response {
    Response {
        key,
        id: format!("msg_{key}").into(),
        model: "claude-opus-4-6".into(),
        tokens: Tokens { input: 10, output, cache_read: 100, cache_creation: 5, cache_creation_1h: 0 },
        fast: false,
        stop_reason: Some("tool_use".into()),
    }
}

/// A line of a response still streaming (no `stop_reason` yet).
fn streaming(key: u64, output: u64) -> Response {
    Response { stop_reason: None, ..response(key, output) }
}

fn collecting() -> (Tracer, Arc<Mutex<Vec<Span>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut t = Tracer::new(0);
    let g = Arc::clone(&got);
    t.set_sink(Some(Arc::new(move |s: Vec<Span>| g.lock().unwrap().extend(s))));
    (t, got)
}

fn names(got: &Mutex<Vec<Span>>) -> Vec<String> {
    got.lock().unwrap().iter().map(|s| s.name.clone()).collect()
}

#[test]
fn a_turn_becomes_a_tree_with_transcript_times() {
    let (mut tr, got) = collecting();
    let (main, agent) = (Owner::Main, Owner::Agent("a1".into()));
    tr.prompt(&at(&main, 1000, 1), None);
    tr.touch(&at(&main, 1000, 1));
    let r = streaming(7, 1);
    tr.response(&at(&main, 3000, 1), &r, r.tokens, 0.5);
    tr.touch(&at(&main, 3000, 1));
    // A later line of the same response with more output tokens.
    let r2 = response(7, 40);
    tr.response(&at(&main, 3500, 1), &r2, r2.tokens, 0.25);
    let task = ToolUse { id: "toolu_1".into(), name: "Task".into(), subagent_type: Some("Explore".into()) };
    tr.tool_use(&at(&main, 3500, 1), &task);
    tr.touch(&at(&main, 3500, 1));
    let ar = streaming(8, 2);
    tr.touch(&at(&agent, 4000, 1));
    tr.response(&at(&agent, 6000, 1), &ar, ar.tokens, 0.0);
    tr.tool_result(
        &at(&main, 9000, 1),
        &ToolResult { tool_use_id: "toolu_1".into(), is_error: true, bytes: 0 },
        Some("a1"),
    );
    tr.touch(&at(&main, 9000, 1));
    let (trace, root_id) = tr.current("s1").unwrap();
    assert_eq!(got.lock().unwrap().len(), 4, "all but the root left as they ended: {:?}", names(&got));
    tr.end_turn("s1", 1000, 9000);
    let spans = got.lock().unwrap().clone();
    assert_eq!(spans.len(), 5, "{spans:#?}");
    let by = |name: &str| spans.iter().find(|s| s.name == name).unwrap();
    let root = by("invoke_agent claude-code");
    assert_eq!((root.parent, root.start_ms, root.end_ms), (None, 1000, 9000));
    assert_eq!((root.trace_id, root.span_id), (trace_id("s1", 1), root_id));
    assert_eq!(trace, root.trace_id);
    let chat = spans.iter().find(|s| s.name == "chat claude-opus-4-6" && s.parent == Some(root.span_id)).unwrap();
    assert_eq!((chat.start_ms, chat.end_ms), (1000, 3500));
    assert_eq!(chat.attr(semconv::GEN_AI_USAGE_INPUT_TOKENS), Some(&Value::Int(115)));
    assert_eq!(chat.attr(semconv::GEN_AI_USAGE_OUTPUT_TOKENS), Some(&Value::Int(40)));
    assert_eq!(chat.attr("claude_sessions.cost_usd"), Some(&Value::F64(0.75)));
    let tool = by("execute_tool Task");
    assert_eq!((tool.parent, tool.start_ms, tool.end_ms), (Some(root.span_id), 3500, 9000));
    assert_eq!(tool.error.as_deref(), Some("tool_error"));
    let agent_span = by("invoke_agent Explore");
    assert_eq!(agent_span.parent, Some(tool.span_id));
    let agent_chat = spans.iter().find(|s| s.parent == Some(agent_span.span_id)).unwrap();
    assert_eq!((agent_chat.start_ms, agent_chat.end_ms), (4000, 6000));
    assert_eq!(root.attr(semconv::GEN_AI_USAGE_OUTPUT_TOKENS), Some(&Value::Int(42)));
    assert!(spans.iter().all(|s| s.trace_id == root.trace_id));
}

#[test]
fn spans_leave_as_they_end_and_never_twice() {
    let (mut tr, got) = collecting();
    let main = Owner::Main;
    tr.prompt(&at(&main, 1000, 1), None);
    let r = streaming(7, 1);
    tr.response(&at(&main, 2000, 1), &r, r.tokens, 0.0);
    tr.tool_use(&at(&main, 2000, 1), &ToolUse { id: "t1".into(), name: "Bash".into(), subagent_type: None });
    assert!(got.lock().unwrap().is_empty(), "a call running, a response streaming");
    tr.tool_result(&at(&main, 2500, 1), &ToolResult { tool_use_id: "t1".into(), is_error: false, bytes: 0 }, None);
    assert_eq!(names(&got), ["execute_tool Bash"], "the tool call left at its result");
    // Claude Code runs tools while a response streams: its later line grows.
    let r = streaming(7, 30);
    tr.response(&at(&main, 2600, 1), &r, r.tokens, 0.0);
    assert_eq!(got.lock().unwrap().len(), 1, "a tool result does not complete the response");
    // The chain's next request: the previous response is complete.
    let r2 = streaming(8, 5);
    tr.response(&at(&main, 4000, 1), &r2, r2.tokens, 0.0);
    let chat = got.lock().unwrap()[1].clone();
    assert_eq!((chat.name.as_str(), chat.end_ms), ("chat claude-opus-4-6", 2600));
    assert_eq!(chat.attr(semconv::GEN_AI_USAGE_OUTPUT_TOKENS), Some(&Value::Int(30)));
    // A line with a stop reason completes its response at once.
    let r2 = response(8, 9);
    tr.response(&at(&main, 4100, 1), &r2, r2.tokens, 0.0);
    assert_eq!(got.lock().unwrap().len(), 3);
    // Growth after the span left: the turn's totals only.
    let r2 = response(8, 20);
    tr.response(&at(&main, 4200, 1), &r2, r2.tokens, 0.0);
    assert_eq!(got.lock().unwrap().len(), 3);
    let (_, root_id) = tr.current("s1").unwrap();
    tr.end_turn("s1", 1000, 4200);
    let spans = got.lock().unwrap().clone();
    assert_eq!(spans.len(), 4, "the root, and nothing sent twice: {spans:#?}");
    let mut ids: Vec<SpanId> = spans.iter().map(|s| s.span_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    let root = spans.iter().find(|s| s.parent.is_none()).unwrap();
    assert_eq!(root.span_id, root_id, "children named the root before it was sent");
    assert!(spans.iter().filter(|s| s.parent.is_some()).all(|s| s.parent == Some(root_id)));
    assert_eq!(root.attr(semconv::GEN_AI_USAGE_OUTPUT_TOKENS), Some(&Value::Int(50)));
}

#[test]
fn a_sub_agent_leaves_with_its_task_result() {
    let (mut tr, got) = collecting();
    let (main, agent) = (Owner::Main, Owner::Agent("a1".into()));
    tr.prompt(&at(&main, 0, 1), None);
    let task = ToolUse { id: "task".into(), name: "Task".into(), subagent_type: Some("Explore".into()) };
    tr.tool_use(&at(&main, 10, 1), &task);
    tr.touch(&at(&agent, 20, 1));
    let r = streaming(8, 2);
    tr.response(&at(&agent, 30, 1), &r, r.tokens, 0.0);
    tr.tool_use(&at(&agent, 30, 1), &ToolUse { id: "read".into(), name: "Read".into(), subagent_type: None });
    tr.tool_result(&at(&agent, 40, 1), &ToolResult { tool_use_id: "read".into(), is_error: false, bytes: 0 }, None);
    tr.tool_result(
        &at(&main, 50, 1),
        &ToolResult { tool_use_id: "task".into(), is_error: false, bytes: 0 },
        Some("a1"),
    );
    let spans = got.lock().unwrap().clone();
    let by = |name: &str| spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name}: {spans:#?}"));
    let (task, agent_span) = (by("execute_tool Task"), by("invoke_agent Explore"));
    assert_eq!(agent_span.parent, Some(task.span_id));
    assert_eq!((agent_span.start_ms, agent_span.end_ms), (20, 40));
    assert_eq!(by("chat claude-opus-4-6").parent, Some(agent_span.span_id), "the agent's last response too");
    assert_eq!(by("execute_tool Read").parent, Some(agent_span.span_id));
    tr.end_turn("s1", 0, 50);
    let spans = got.lock().unwrap().clone();
    assert_eq!(spans.len(), 5, "the agent span is not sent again: {:?}", names(&got));
}

#[test]
fn the_per_turn_cap_drops_and_counts_what_is_over() {
    let (mut tr, got) = collecting();
    let main = Owner::Main;
    tr.prompt(&at(&main, 0, 1), None);
    for i in 0..MAX_SPANS_PER_TURN + 3 {
        let id: Box<str> = format!("t{i}").into();
        tr.tool_use(&at(&main, 1, 1), &ToolUse { id: id.clone(), name: "Bash".into(), subagent_type: None });
        tr.tool_result(&at(&main, 2, 1), &ToolResult { tool_use_id: id, is_error: false, bytes: 0 }, None);
    }
    assert_eq!(tr.dropped, 3);
    tr.end_turn("s1", 0, 2);
    assert_eq!(got.lock().unwrap().len(), MAX_SPANS_PER_TURN + 1);
}

#[test]
fn open_turns_survive_the_checkpoint() {
    let (mut tr, got) = collecting();
    let (main, agent) = (Owner::Main, Owner::Agent("a1".into()));
    tr.prompt(&at(&main, 1000, 1), None);
    tr.touch(&at(&agent, 1500, 1));
    let r = streaming(8, 2);
    tr.response(&at(&agent, 2000, 1), &r, r.tokens, 0.0);
    let json = serde_json::to_string(&tr).expect("a tracer with sub-agent chains serializes");
    let mut back: Tracer = serde_json::from_str(&json).unwrap();
    let g = Arc::clone(&got);
    back.set_sink(Some(Arc::new(move |s: Vec<Span>| g.lock().unwrap().extend(s))));
    back.end_turn("s1", 1000, 2000);
    let spans = got.lock().unwrap().clone();
    let chat = spans.iter().find(|s| s.name.starts_with("chat ")).unwrap();
    assert_eq!(chat.start_ms, 1500, "the chain's last time came through");
    assert!(spans.iter().any(|s| s.name == "invoke_agent agent" && Some(s.span_id) == chat.parent));
}

#[test]
fn a_tool_call_running_at_the_end_of_its_turn_is_cut_there() {
    let (mut tr, got) = collecting();
    let main = Owner::Main;
    tr.prompt(&at(&main, 0, 1), None);
    tr.tool_use(&at(&main, 10, 1), &ToolUse { id: "t".into(), name: "Bash".into(), subagent_type: None });
    assert!(got.lock().unwrap().is_empty());
    tr.end_turn("s1", 0, 10);
    let spans = got.lock().unwrap().clone();
    let tool = spans.iter().find(|s| s.name == "execute_tool Bash").unwrap();
    assert_eq!(tool.attr("claude_sessions.tool.completed"), Some(&Value::Bool(false)));
}

#[test]
fn ids_are_stable_and_distinct() {
    assert_eq!(trace_id("s", 1), trace_id("s", 1));
    assert_ne!(trace_id("s", 1), trace_id("s", 2));
    assert_ne!(trace_id("s", 1), trace_id("t", 1));
    let t = trace_id("s", 1);
    assert_ne!(span_id(&t, "tool", b"x"), span_id(&t, "chat", b"x"));
    assert_eq!(hex(&[0, 255]), "00ff");
}
