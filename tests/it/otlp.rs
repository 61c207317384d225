//! OTLP push, checked exactly with the in-process receiver (tests/it/otlp_support.rs):
//! metric names, units, attributes and totals (against the independent count of
//! tests/it/oracle.rs), Claude Code's names, the resource, secret headers, per-turn
//! traces against the transcripts, exemplars on /metrics, delta temporality across a
//! restart. The real collector (rotel) is exercised in tests/it/otlp_collector.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::daemon::{self, Daemon};
use super::oracle;
use super::otlp_support::{self, Receiver, SpanView, sum_points};
use super::support;

const TYPES: [(&str, &str); 4] =
    [("input", "input"), ("output", "output"), ("cache_read", "cacheRead"), ("cache_creation", "cacheCreation")];

fn oracle_tokens(o: &oracle::Oracle, model: &str, ty: &str) -> f64 {
    let t = o.tokens.get(model).copied().unwrap_or_default();
    (match ty {
        "input" => t.input,
        "output" => t.output,
        "cache_read" => t.cache_read,
        _ => t.cache_creation,
    }) as f64
}

/// Wait until the count of received spans stops changing for `quiet`.
fn settled_spans(r: &Receiver, quiet: Duration, timeout: Duration) -> Vec<SpanView> {
    let deadline = Instant::now() + timeout;
    let (mut last, mut since) = (usize::MAX, Instant::now());
    while Instant::now() < deadline {
        let n = r.got.lock().unwrap().spans().len();
        if n != last {
            (last, since) = (n, Instant::now());
        } else if n > 0 && since.elapsed() >= quiet {
            return r.got.lock().unwrap().spans();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("spans did not settle (last count {last})");
}

#[test]
fn otlp_http_metrics_and_traces_match_the_transcripts_exactly() {
    let root = support::real_config_root();
    let state = tempfile::tempdir().unwrap();
    let r = Receiver::start();
    let d = r.daemon(
        root.path(),
        state.path(),
        &[
            "--otlp-metrics",
            "--otlp-traces",
            "--otlp-backfill",
            "--otlp-claude-code-metrics",
            "--otlp-protocol",
            "http/protobuf",
            "--otlp-interval",
            "300ms",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20SECRET-CANARY-7f3a"),
            ("OTEL_RESOURCE_ATTRIBUTES", "team=dev,deployment.environment=test"),
        ],
    );
    d.wait_ready(Duration::from_secs(60));
    let oracle = oracle::count(&root.path().join("projects"));
    let total: f64 =
        oracle.tokens.values().map(|t| (t.input + t.output + t.cache_read + t.cache_creation) as f64).sum();
    assert!(total > 1e6, "the fixtures hold real usage");

    // ---- metrics: the latest request's cumulative totals equal the independent count ----
    r.wait_for(Duration::from_secs(30), "token totals", |g| {
        (sum_points(&g.last_points(), "claude_sessions.tokens", &[]) - total).abs() < 0.5
    });
    let points = r.got.lock().unwrap().last_points();
    for model in oracle.tokens.keys() {
        for (ty, cc) in TYPES {
            let want = oracle_tokens(&oracle, model, ty);
            let ours = sum_points(&points, "claude_sessions.tokens", &[("model", model), ("type", ty)]);
            assert_eq!(ours, want, "claude_sessions.tokens {model} {ty}");
            let theirs = sum_points(&points, "claude_code.token.usage", &[("model", model), ("type", cc)]);
            assert_eq!(theirs, want, "claude_code.token.usage {model} {cc}");
        }
    }
    // /metrics says the same.
    let m = d.metrics();
    assert_eq!(m.sum("claude_sessions_tokens_total", &[]), total);
    let unit = |name: &str| points.iter().find(|p| p.name == name).map(|p| p.unit.clone());
    assert_eq!(unit("claude_sessions.tokens").as_deref(), Some("{token}"));
    assert_eq!(unit("claude_sessions.cost").as_deref(), Some("USD"));
    assert_eq!(unit("claude_sessions.tool_duration").as_deref(), Some("s"));
    assert_eq!(unit("claude_sessions.context").as_deref(), Some("{token}"));
    assert_eq!(unit("claude_sessions.exporter.bytes_read").as_deref(), Some("By"));
    assert_eq!(unit("claude_code.token.usage").as_deref(), Some("tokens"));
    assert_eq!(unit("claude_code.cost.usage").as_deref(), Some("USD"));
    for p in points.iter().filter(|p| p.name == "claude_sessions.tokens") {
        let keys: BTreeSet<&str> = p.attrs.keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["model", "project", "query_source", "type"]));
        assert!(p.kind == "sum" && p.cumulative && p.monotonic, "{p:?}");
        assert!(p.start_ns > 0 && p.start_ns < p.time_ns, "{p:?}");
    }
    for p in points.iter().filter(|p| p.name == "claude_code.token.usage") {
        let keys: BTreeSet<&str> = p.attrs.keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["model", "query_source", "type"]), "Claude Code's attributes");
        assert!(["main", "subagent", "auxiliary"].contains(&p.attrs["query_source"].as_str()));
    }
    let cost = sum_points(&points, "claude_sessions.cost", &[]);
    assert!((sum_points(&points, "claude_code.cost.usage", &[]) - cost).abs() < 1e-9);
    assert!((cost - m.sum("claude_sessions_cost_usd_total", &[])).abs() < 1e-6);
    assert_eq!(
        sum_points(&points, "claude_code.session.count", &[]),
        m.sum("claude_sessions_sessions_started_total", &[])
    );
    assert_eq!(
        sum_points(&points, "claude_code.lines_of_code.count", &[("type", "added")]),
        m.sum("claude_sessions_lines_of_code_total", &[("type", "added")])
    );
    let tool_hist: Vec<_> = points.iter().filter(|p| p.name == "claude_sessions.tool_duration").collect();
    assert!(!tool_hist.is_empty());
    let calls: u64 = tool_hist.iter().map(|p| p.count).sum();
    for p in &tool_hist {
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count, "bucket counts add up: {p:?}");
    }
    assert!(calls > 0 && calls as f64 <= m.sum("claude_sessions_tool_calls_total", &[]));

    // ---- resource and headers ----
    let res = r.got.lock().unwrap().resource();
    assert_eq!(res.get("service.name").map(String::as_str), Some("claude-sessions"));
    assert_eq!(res.get("service.version").map(String::as_str), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(res.get("team").map(String::as_str), Some("dev"));
    assert!(res.get("host.name").is_some_and(|h| !h.is_empty()));
    assert!(res.get("service.instance.id").is_some_and(|h| h.len() == 32));
    let sent_auth = r
        .got
        .lock()
        .unwrap()
        .headers
        .iter()
        .flatten()
        .any(|(k, v)| k == "authorization" && v == "Bearer SECRET-CANARY-7f3a");
    assert!(sent_auth, "OTEL_EXPORTER_OTLP_HEADERS is sent");

    // ---- traces: the history, once, shaped as the transcripts say ----
    assert!(
        d.wait_for(Duration::from_secs(30), |_| d.log_text().contains("Sent the traces of history")).is_some(),
        "backfill finished"
    );
    let spans = settled_spans(&r, Duration::from_millis(1500), Duration::from_secs(60));
    for s in &spans {
        for k in ["claude_sessions.prompt", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result"] {
            assert!(!s.attrs.contains_key(k), "no content without --otlp-include-content: {k} on {}", s.name);
        }
    }
    let expect = otlp_support::expected_traces(&root.path().join("projects"));
    otlp_support::check_spans(&spans, &expect);
    let turns: u64 = expect.values().map(|e| e.prompts).sum();
    let calls: usize = expect.values().map(|e| e.responses.len()).sum();
    let tools: usize = expect.values().map(|e| e.tools.len()).sum();
    assert!(turns > 20 && calls > 400 && tools > 500, "a real corpus: {turns} turns, {calls} calls, {tools} tools");
    eprintln!(
        "traces: {} spans; {turns} turns, {calls} model calls, {tools} tool calls in {} sessions",
        spans.len(),
        expect.len()
    );
    // Sub-agents: every invoke_agent span below the root hangs under a Task/Agent call.
    let by_id: BTreeMap<&str, &SpanView> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let agents: Vec<&SpanView> =
        spans.iter().filter(|s| s.name.starts_with("invoke_agent ") && !s.parent.is_empty()).collect();
    assert!(!agents.is_empty(), "the fixtures hold sub-agents");
    for a in &agents {
        let parent = by_id[a.parent.as_str()];
        let tool = parent.attrs.get("gen_ai.tool.name").map(String::as_str);
        assert!(
            matches!(tool, Some("Task" | "Agent")) || parent.parent.is_empty(),
            "{} hangs under {}",
            a.name,
            parent.name
        );
        assert!(spans.iter().any(|s| s.parent == a.span_id), "{} has children", a.name);
    }
    let under_task = agents.iter().filter(|a| !by_id[a.parent.as_str()].parent.is_empty()).count();
    assert!(under_task * 2 >= agents.len(), "most agents link to their Task call ({under_task} of {})", agents.len());
    eprintln!("sub-agent spans: {} ({under_task} under their Task call)", agents.len());

    // ---- live: a new turn is traced, and /metrics links its tool call to the trace ----
    let now = std::time::SystemTime::now();
    let iso = |dt: Duration| {
        let t = (now + dt).duration_since(std::time::UNIX_EPOCH).unwrap();
        support::rfc3339(t.as_millis() as i64)
    };
    let file = root.path().join("projects/-live-app/live-1.jsonl");
    let head = r#""sessionId":"live-1","cwd":"/w/live-app","#;
    let lines = [
        format!(
            r#"{{"type":"user",{head}"timestamp":"{}","message":{{"role":"user","content":"run the tests"}}}}"#,
            iso(Duration::ZERO)
        ),
        format!(
            r#"{{"type":"assistant",{head}"timestamp":"{}","requestId":"req_live","message":{{"id":"msg_live","model":"claude-opus-4-6","stop_reason":"tool_use","usage":{{"input_tokens":7,"output_tokens":9,"cache_read_input_tokens":100}},"content":[{{"type":"tool_use","id":"toolu_live","name":"Bash","input":{{}}}}]}}}}"#,
            iso(Duration::from_millis(1000))
        ),
        format!(
            r#"{{"type":"user",{head}"timestamp":"{}","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"toolu_live","content":"ok"}}]}}}}"#,
            iso(Duration::from_millis(3400))
        ),
        format!(
            r#"{{"type":"user",{head}"timestamp":"{}","message":{{"role":"user","content":"thanks"}}}}"#,
            iso(Duration::from_millis(5000))
        ),
    ];
    daemon::append(&file, (lines.join("\n") + "\n").as_bytes());
    r.wait_for(Duration::from_secs(20), "the live turn", |g| {
        g.spans().iter().any(|s| s.attrs.get("gen_ai.tool.call.id").map(String::as_str) == Some("toolu_live"))
    });
    let spans = r.got.lock().unwrap().spans();
    let tool =
        spans.iter().find(|s| s.attrs.get("gen_ai.tool.call.id").map(String::as_str) == Some("toolu_live")).unwrap();
    assert_eq!((tool.end_ns - tool.start_ns) / 1_000_000, 2400, "tool span lasts tool_use → tool_result");
    let chat =
        spans.iter().find(|s| s.attrs.get("gen_ai.response.id").map(String::as_str) == Some("msg_live")).unwrap();
    assert_eq!(chat.attrs["gen_ai.usage.input_tokens"], "107", "input includes cached tokens");
    assert_eq!(chat.attrs["gen_ai.response.finish_reasons"], "[tool_use]");
    assert_eq!(chat.parent, tool.parent, "model call and tool call are siblings under the turn");
    let (_, _, body) = d.get("/metrics", &[("Accept", "application/openmetrics-text; version=1.0.0")]);
    let om = String::from_utf8(body).unwrap();
    let exemplar = format!(r#"# {{trace_id="{}",span_id="{}"}} 2.4"#, tool.trace_id, tool.span_id);
    assert!(
        om.lines().any(|l| l.starts_with("claude_sessions_tool_duration_seconds_bucket{tool=\"Bash\",le=\"2.5\"}")
            && l.contains(&exemplar)),
        "the 2.5 s bucket of Bash carries the trace exemplar {exemplar}"
    );
    let (_, _, plain) = d.get("/metrics", &[]);
    assert!(!String::from_utf8(plain).unwrap().contains("trace_id"), "no exemplars in the Prometheus text format");

    // Secrets never reach the logs.
    assert!(!d.log_text().contains("SECRET-CANARY"), "header values are never logged");
    d.stop();
}

/// A daemon on the fixtures pushing delta metrics every 200 ms to an in-process receiver,
/// started again as often as a test asks, on the same state folder.
struct DeltaRun {
    root: tempfile::TempDir,
    state: tempfile::TempDir,
    r: Receiver,
    /// The fixtures' token total (the independent count).
    total: f64,
}

impl DeltaRun {
    fn new() -> DeltaRun {
        let root = support::real_config_root();
        let oracle = oracle::count(&root.path().join("projects"));
        let total = oracle.tokens.values().map(|t| (t.input + t.output + t.cache_read + t.cache_creation) as f64).sum();
        DeltaRun { root, state: tempfile::tempdir().unwrap(), r: Receiver::start(), total }
    }

    /// Start (ready) and, on the first start, wait until the history's delta has arrived.
    fn start(&self) -> Daemon {
        let endpoint = self.r.endpoint();
        let args = ["--otlp-metrics", "--otlp-endpoint", &endpoint, "--otlp-interval", "200ms"];
        let env = [("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")];
        let d = Daemon::start_env(self.root.path(), self.state.path(), &args, &env);
        d.wait_ready(Duration::from_secs(60));
        self.r.wait_for(Duration::from_secs(30), "the history's delta", |g| {
            (sum_points(&g.all_points(), "claude_sessions.tokens", &[]) - self.total).abs() < 0.5
        });
        d
    }

    /// Tokens received, summed over every request.
    fn sent(&self) -> f64 {
        sum_points(&self.r.got.lock().unwrap().all_points(), "claude_sessions.tokens", &[])
    }

    /// Wait for three more exports than `requests`, then a little longer.
    fn settle_after(&self, requests: usize) {
        self.r.wait_for(Duration::from_secs(10), "exports after the restart", |g| g.metrics.len() >= requests + 3);
        std::thread::sleep(Duration::from_millis(600));
    }
}

#[test]
fn delta_temporality_sends_history_once_across_a_restart() {
    let run = DeltaRun::new();
    let d = run.start();
    d.stop();
    let requests = run.r.got.lock().unwrap().metrics.len();
    assert!(run.r.got.lock().unwrap().all_points().iter().filter(|p| p.kind == "sum").all(|p| !p.cumulative));

    // A restart resumes from the saved baseline: nothing is sent twice.
    let d = run.start();
    run.settle_after(requests);
    assert_eq!(run.sent(), run.total, "the sum of all deltas is the total, once");
    // New usage arrives as a delta of exactly its size.
    let line = r#"{"type":"assistant","sessionId":"s-delta","cwd":"/w/d","timestamp":"2026-01-01T00:00:00Z","requestId":"req_d","message":{"id":"msg_d","model":"claude-opus-4-6","usage":{"input_tokens":5,"output_tokens":6}}}"#;
    daemon::append(&run.root.path().join("projects/-w-d/s-delta.jsonl"), format!("{line}\n").as_bytes());
    run.r.wait_for(Duration::from_secs(10), "the new delta", |g| {
        sum_points(&g.all_points(), "claude_sessions.tokens", &[]) >= run.total + 11.0
    });
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(run.sent(), run.total + 11.0);
    d.stop();
}

#[test]
fn delta_temporality_after_kill_9_sends_no_increase_twice() {
    // The baseline is the sink's own file, written after each delivered export: a kill -9
    // (no checkpoint at exit, the one at catch-up predates the exports) must not make the
    // restarted daemon send the history's increase again.
    let run = DeltaRun::new();
    let d = run.start();
    // A few intervals more: the last delivered export's baseline is on disk.
    std::thread::sleep(Duration::from_millis(800));
    assert!(run.state.path().join("otlp-delta.json").is_file(), "the baseline is saved by the sink");
    d.kill9();
    let requests = run.r.got.lock().unwrap().metrics.len();
    let d = run.start();
    run.settle_after(requests);
    assert_eq!(run.sent(), run.total, "after kill -9 the history's increase is not sent again");
    d.stop();
}

/// Lines of one live turn in session `sid`: a prompt, a Bash call and its result, then
/// the next prompt (which ends the turn), stamped from now on.
fn live_turn(sid: &str, prompt: &str, output: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let at = |ms: i64| support::rfc3339(now + ms);
    let head = format!(r#""sessionId":"{sid}","cwd":"/w/{sid}","#);
    let prompt = serde_json::to_string(prompt).unwrap();
    let output = serde_json::to_string(output).unwrap();
    [
        format!(r#"{{"type":"user",{head}"timestamp":"{}","message":{{"role":"user","content":{prompt}}}}}"#, at(0)),
        format!(
            r#"{{"type":"assistant",{head}"timestamp":"{}","requestId":"req_{sid}","message":{{"id":"msg_{sid}","model":"claude-opus-4-6","usage":{{"input_tokens":1,"output_tokens":2}},"content":[{{"type":"tool_use","id":"toolu_{sid}","name":"Bash","input":{{"command":"cat .env"}}}}]}}}}"#,
            at(100)
        ),
        format!(
            r#"{{"type":"user",{head}"timestamp":"{}","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"toolu_{sid}","content":{output}}}]}}}}"#,
            at(200)
        ),
        format!(r#"{{"type":"user",{head}"timestamp":"{}","message":{{"role":"user","content":"next"}}}}"#, at(300)),
    ]
    .join("\n")
        + "\n"
}

/// `serve` over an empty projects folder, pushing to a new receiver with `args` and `env`;
/// ready. Returns the config root and state folder (to keep), the receiver and the daemon.
fn empty_daemon(args: &[&str], env: &[(&str, &str)]) -> (tempfile::TempDir, tempfile::TempDir, Receiver, Daemon) {
    let root = daemon::empty_root();
    std::fs::create_dir_all(root.path().join("projects")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let r = Receiver::start();
    let d = r.daemon(root.path(), state.path(), args, env);
    d.wait_ready(Duration::from_secs(30));
    (root, state, r, d)
}

#[test]
fn content_goes_into_spans_only_when_asked_and_capped() {
    let (root, _state, r, d) =
        empty_daemon(&["--otlp-traces", "--otlp-include-content", "--otlp-content-max-bytes", "20"], &[]);
    let long = "please refactor the whole module and keep the tests green";
    daemon::append(&root.path().join("projects/-w-c/c1.jsonl"), live_turn("c1", long, "SECRET=hunter2").as_bytes());
    r.wait_for(Duration::from_secs(20), "the turn", |g| g.spans().len() >= 3);
    let spans = r.got.lock().unwrap().spans();
    let root_span = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    assert_eq!(root_span.attrs["claude_sessions.prompt"], format!("{}…[{} bytes cut]", &long[..20], long.len() - 20));
    let tool = spans.iter().find(|s| s.name == "execute_tool Bash").unwrap();
    assert_eq!(tool.attrs["gen_ai.tool.call.arguments"], "{\"command\":\"cat .env…[2 bytes cut]");
    assert_eq!(tool.attrs["gen_ai.tool.call.result"], "SECRET=hunter2");
    // Logs never carry content, even when spans do.
    assert!(!d.log_text().contains("hunter2") && !d.log_text().contains("refactor"));
    d.stop();
}

#[test]
fn gzip_and_headers_apply_to_every_request_and_flags_win_over_the_environment() {
    // The official exporters read OTEL_EXPORTER_OTLP_HEADERS themselves too: ours are set last.
    let (root, _state, r, d) = empty_daemon(
        &["--otlp-traces", "--otlp-metrics", "--otlp-interval", "200ms", "--otlp-header", "x-team=ops"],
        &[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"), ("OTEL_EXPORTER_OTLP_HEADERS", "x-team=dev,x-env=test")],
    );
    daemon::append(&root.path().join("projects/-w-g/g1.jsonl"), live_turn("g1", "go", "ok").as_bytes());
    // Spans and sums (official exporters) and histograms (our own requests) all arrive.
    r.wait_for(Duration::from_secs(20), "spans, sums and histograms", |g| {
        let points = g.all_points();
        g.spans().len() >= 3
            && points.iter().any(|p| p.kind == "histogram")
            && points.iter().any(|p| p.name == "claude_sessions.tokens")
    });
    let g = r.got.lock().unwrap();
    for h in &g.headers {
        assert!(h.iter().any(|(k, v)| k == "content-encoding" && v == "gzip"), "not gzipped: {h:?}");
        let values = |name: &str| h.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        assert_eq!((values("x-team"), values("x-env")), (vec!["ops"], vec!["test"]), "headers: {h:?}");
    }
    drop(g);
    d.stop();
}

#[test]
fn history_traces_are_sent_once_not_again_after_a_restart() {
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    daemon::append(&projects.join("-w-h/h1.jsonl"), live_turn("h1", "old work", "ok").as_bytes());
    let state = tempfile::tempdir().unwrap();
    let r = Receiver::start();
    let endpoint = r.endpoint();
    let args = ["--otlp-traces", "--otlp-endpoint", &endpoint, "--otlp-backfill"];

    // Without --otlp-backfill, history is not traced: only new activity.
    let quiet_state = tempfile::tempdir().unwrap();
    let d = Daemon::start(root.path(), quiet_state.path(), &["--otlp-traces", "--otlp-endpoint", &endpoint]);
    d.wait_ready(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(r.got.lock().unwrap().spans().len(), 0, "history is not traced by default");
    d.stop();

    let d = Daemon::start(root.path(), state.path(), &args);
    d.wait_ready(Duration::from_secs(30));
    r.wait_for(Duration::from_secs(20), "the history's turn", |g| {
        g.spans().iter().any(|s| s.attrs.get("gen_ai.tool.call.id").map(String::as_str) == Some("toolu_h1"))
    });
    assert!(d.wait_for(Duration::from_secs(10), |_| d.log_text().contains("Sent the traces of history")).is_some());
    std::thread::sleep(Duration::from_millis(500));
    let sent = r.got.lock().unwrap().spans().len();
    d.stop();

    // Restarted with the same flag: the history is not sent again, new turns are.
    let d = Daemon::start(root.path(), state.path(), &args);
    d.wait_ready(Duration::from_secs(30));
    daemon::append(&projects.join("-w-h/h2.jsonl"), live_turn("h2", "new work", "ok").as_bytes());
    r.wait_for(Duration::from_secs(20), "the new turn", |g| {
        g.spans().iter().any(|s| s.attrs.get("gen_ai.tool.call.id").map(String::as_str) == Some("toolu_h2"))
    });
    std::thread::sleep(Duration::from_millis(1000));
    let spans = r.got.lock().unwrap().spans();
    let h1 =
        spans.iter().filter(|s| s.attrs.get("gen_ai.tool.call.id").map(String::as_str) == Some("toolu_h1")).count();
    assert_eq!(h1, 1, "the history's tool span was sent once");
    assert!(!d.log_text().contains("Sent the traces of history"), "no second backfill");
    assert!(spans.len() > sent);
    d.stop();
}

#[test]
fn claude_code_names_per_session_match_the_transcripts() {
    let root = support::real_config_root();
    let state = tempfile::tempdir().unwrap();
    let r = Receiver::start();
    let d = r.daemon(
        root.path(),
        state.path(),
        &[
            "--otlp-metrics",
            "--otlp-claude-code-metrics",
            "--otlp-claude-code-session-id",
            // The fixtures are from 2025: keep their sessions (and per-session series).
            "--session-retention",
            "3650d",
            "--otlp-interval",
            "300ms",
        ],
        &[],
    );
    d.wait_ready(Duration::from_secs(60));
    let expect = otlp_support::expected_traces(&root.path().join("projects"));
    let total_output: u64 = expect.values().flat_map(|e| e.responses.values()).map(|r| r.1).sum();
    r.wait_for(Duration::from_secs(30), "per-session usage", |g| {
        sum_points(&g.last_points(), "claude_code.token.usage", &[("type", "output")]) as u64 == total_output
    });
    let points = r.got.lock().unwrap().last_points();
    for p in points.iter().filter(|p| p.name.starts_with("claude_code.")) {
        assert!(p.attrs.contains_key("session.id"), "{p:?}");
        assert!(p.kind == "sum" && p.monotonic && p.cumulative);
    }
    // Per session, against the transcripts: output tokens, and input as Claude Code counts it
    // (without cache), which is the conventions' input minus cache reads and writes.
    for (session, e) in &expect {
        let out: u64 = e.responses.values().map(|r| r.1).sum();
        let input: u64 = e.responses.values().map(|r| r.0 - r.2 - r.3).sum();
        let cache_read: u64 = e.responses.values().map(|r| r.2).sum();
        let got = |ty: &str| {
            sum_points(&points, "claude_code.token.usage", &[("session.id", session.as_str()), ("type", ty)]) as u64
        };
        assert_eq!((got("output"), got("input"), got("cacheRead")), (out, input, cache_read), "session {session}");
        if !e.responses.is_empty() {
            let n = sum_points(&points, "claude_code.session.count", &[("session.id", session.as_str())]);
            assert_eq!(n, 1.0, "session {session} counted once");
        }
    }
    let units: BTreeMap<&str, &str> = points.iter().map(|p| (p.name.as_str(), p.unit.as_str())).collect();
    assert_eq!(units["claude_code.token.usage"], "tokens");
    assert_eq!(units["claude_code.cost.usage"], "USD");
    assert_eq!(units["claude_code.session.count"], "");
    assert_eq!(units["claude_code.lines_of_code.count"], "");
    d.stop();
}

/// An OTLP/HTTP receiver behind TLS (Python's `ssl` with a server certificate signed by
/// the tests' private CA, [`super::web_tls::Pki`]): it logs `path bytes` per request to `log`.
struct TlsReceiver {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
    ca: std::path::PathBuf,
    /// Holds the certificates' folder.
    _pki: super::web_tls::Pki,
}

impl TlsReceiver {
    fn start(dir: &std::path::Path) -> Option<TlsReceiver> {
        use std::process::{Command, Stdio};
        // The same private CA and server certificate (for 127.0.0.1) as the endpoint's TLS tests.
        let pki = super::web_tls::Pki::new();
        let script = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        self.rfile.read(n)
        with open(sys.argv[3], "a") as f:
            f.write(f"{self.path} {n}\n")
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;
        let log = dir.join("requests.log");
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(pki.path("server.pem"))
            .arg(pki.path("server.key"))
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3");
        let mut first = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first).unwrap();
        let port = first.trim().parse().expect("port from the TLS receiver");
        Some(TlsReceiver { child, port, log, ca: pki.path("ca.pem").into(), _pki: pki })
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_endpoints_verify_the_collector_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(tls) = TlsReceiver::start(tmp.path()) else { return };
    let root = daemon::empty_root();
    std::fs::create_dir_all(root.path().join("projects")).unwrap();
    let endpoint = format!("https://127.0.0.1:{}", tls.port);
    let args = ["--otlp-metrics", "--otlp-endpoint", endpoint.as_str(), "--otlp-interval", "200ms"];

    // Without the private CA the certificate is refused: errors are counted, nothing arrives.
    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start(root.path(), state.path(), &args);
    d.wait_ready(Duration::from_secs(30));
    let refused = d.wait_for(Duration::from_secs(20), |m| {
        m.sum("claude_sessions_exporter_otlp_exports_total", &[("result", "error")]) > 0.0
    });
    assert!(refused.is_some(), "an untrusted certificate fails the export:\n{}", d.log_text());
    assert_eq!(tls.requests(), "", "no request got through");
    d.stop();

    // With OTEL_EXPORTER_OTLP_CERTIFICATE naming the CA, exports arrive over TLS.
    let state = tempfile::tempdir().unwrap();
    let ca = tls.ca.to_string_lossy().into_owned();
    let d = Daemon::start_env(root.path(), state.path(), &args, &[("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca)]);
    d.wait_ready(Duration::from_secs(30));
    let ok = d.wait_for(Duration::from_secs(20), |m| {
        m.sum("claude_sessions_exporter_otlp_exports_total", &[("result", "ok")]) > 0.0
    });
    assert!(ok.is_some(), "exports succeed with the CA:\n{}", d.log_text());
    assert!(tls.requests().lines().any(|l| l.starts_with("/v1/metrics ")), "{}", tls.requests());
    d.stop();
}

#[test]
fn shutdown_with_the_collector_down_is_bounded_and_logs_what_it_drops() {
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let state = tempfile::tempdir().unwrap();
    let r = Receiver::start();
    r.down.store(true, std::sync::atomic::Ordering::Relaxed);
    let d = r.daemon(root.path(), state.path(), &["--otlp-traces", "--otlp-metrics", "--otlp-interval", "200ms"], &[]);
    d.wait_ready(Duration::from_secs(30));
    for i in 0..40 {
        let sid = format!("down-{i}");
        daemon::append(&projects.join(format!("-w-down/{sid}.jsonl")), live_turn(&sid, "go", "ok").as_bytes());
    }
    // The turns are finished and queued; the collector answers 503 to everything.
    assert!(d.wait_for(Duration::from_secs(20), |m| m.sum("claude_sessions_prompts_total", &[]) == 80.0).is_some());
    std::thread::sleep(Duration::from_millis(500));
    let logs = std::sync::Arc::clone(&d.logs);
    let started = Instant::now();
    d.stop();
    let took = started.elapsed();
    let text = logs.lock().unwrap().join("\n");
    assert!(text.contains("OTLP: spans dropped") || text.contains("not sent before shutdown"), "{text}");
    eprintln!("stop with the collector down took {took:?}");
    assert!(took < Duration::from_secs(15), "shutdown is bounded: {took:?}");
    assert!(r.got.lock().unwrap().refused > 0);
    assert!(r.got.lock().unwrap().traces.is_empty(), "nothing was accepted");
}
