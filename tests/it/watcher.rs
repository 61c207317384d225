//! The library API (`SessionWatcher`): real fixture sessions replayed line by line into a
//! watched folder give the events an independent count of the same files predicts; tool
//! calls pair with their results; sub-agent events belong to their parent session; a
//! panicking callback and a slow subscriber do not stop anything; sessions end when their
//! Claude Code process exits, or go idle and end, and resume.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use claude_sessions::events::{EndReason, Event, EventKind, Filter, Kind};
use claude_sessions::watcher::SessionWatcher;
use serde_json::Value;

use super::daemon;
use super::oracle;
use super::support;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The fixtures' lines in transcript-time order (file order breaks ties), with
/// timestamps moved to start now and their gaps shrunk 1000× (so no session goes idle
/// during the test), each with the file it belongs to.
pub fn replay_lines(src: &Path) -> Vec<(PathBuf, String)> {
    let start = now_ms();
    let mut all = Vec::new();
    for (fi, f) in oracle::jsonl_files(src).into_iter().enumerate() {
        let rel = f.strip_prefix(src).unwrap().to_path_buf();
        for (li, raw) in std::fs::read_to_string(&f).unwrap().lines().enumerate() {
            let Ok(v) = serde_json::from_str::<Value>(raw) else { continue };
            let ts = v.get("timestamp").and_then(Value::as_str).and_then(support::parse_rfc3339);
            all.push((ts, fi, li, rel.clone(), v));
        }
    }
    all.sort_by_key(|(ts, fi, li, ..)| (ts.unwrap_or(i64::MAX), *fi, *li));
    let first = all.iter().find_map(|x| x.0).unwrap_or(0);
    all.into_iter()
        .map(|(ts, _, _, rel, mut v)| {
            if let Some(ts) = ts {
                v["timestamp"] = Value::String(support::rfc3339(start + (ts - first) / 1000));
            }
            (rel, v.to_string())
        })
        .collect()
}

/// What the replayed lines must produce, counted from `serde_json::Value`s with the
/// rules of docs/transcript-format.md (not with the crate).
#[derive(Debug, Default)]
struct Expect {
    kinds: BTreeMap<&'static str, u64>,
    /// Per session: tool_use id → its time (ms).
    tool_uses: HashMap<String, i64>,
    /// tool_use_id → (result time, is_error), first result only.
    results: HashMap<String, (i64, bool)>,
    /// Sessions that have sub-agent (sidechain or agent-file) lines.
    sessions_with_agents: HashSet<String>,
}

fn expect(lines: &[(PathBuf, String)]) -> Expect {
    let mut x = Expect::default();
    // Response key → field-wise largest usage so far (input, output, cache read, cache write).
    let mut responses: HashMap<String, [u64; 4]> = HashMap::new();
    let mut sessions = HashSet::new();
    for (rel, raw) in lines {
        let v: Value = serde_json::from_str(raw).unwrap();
        let Some(ts) = v.get("timestamp").and_then(Value::as_str).and_then(support::parse_rfc3339) else { continue };
        let stem = rel.file_stem().unwrap().to_string_lossy().into_owned();
        let agent_file = stem.starts_with("agent-");
        let session = v.get("sessionId").and_then(Value::as_str).map_or(stem.clone(), str::to_owned);
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        if !matches!(ty, "user" | "assistant" | "system") {
            continue;
        }
        let sidechain = v.get("isSidechain") == Some(&Value::Bool(true));
        if agent_file || sidechain {
            x.sessions_with_agents.insert(session.clone());
        }
        if v.get("cwd").is_some() && sessions.insert(session.clone()) {
            *x.kinds.entry("session_start").or_default() += 1;
        }
        if ty == "system" && v.get("subtype").and_then(Value::as_str) == Some("compact_boundary") {
            *x.kinds.entry("compaction").or_default() += 1;
            if !agent_file && !sidechain {
                *x.kinds.entry("context_growth").or_default() += 1;
            }
        }
        let blocks = match v.get("message").and_then(|m| m.get("content")) {
            Some(Value::Array(b)) => b.clone(),
            _ => Vec::new(),
        };
        if ty == "assistant" {
            let msg = &v["message"];
            let synthetic = msg.get("model").and_then(Value::as_str) == Some("<synthetic>")
                || v.get("isApiErrorMessage") == Some(&Value::Bool(true));
            if synthetic {
                continue;
            }
            if let (Some(id), Some(u)) =
                (msg.get("id").and_then(Value::as_str), msg.get("usage").filter(|u| u.is_object()))
            {
                let key = format!("{id}\u{0}{}", v.get("requestId").and_then(Value::as_str).unwrap_or(""));
                let f = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
                let now = [
                    f("input_tokens"),
                    f("output_tokens"),
                    f("cache_read_input_tokens"),
                    f("cache_creation_input_tokens"),
                ];
                match responses.get_mut(&key) {
                    None => {
                        responses.insert(key, now);
                        *x.kinds.entry("message").or_default() += 1;
                        if !agent_file && !sidechain {
                            *x.kinds.entry("context_growth").or_default() += 1;
                        }
                    }
                    // A later line of the response that adds tokens: a `continued` message.
                    Some(max) => {
                        if now.iter().zip(max.iter()).any(|(n, m)| n > m) {
                            *x.kinds.entry("message").or_default() += 1;
                        }
                        for (m, n) in max.iter_mut().zip(now) {
                            *m = (*m).max(n);
                        }
                    }
                }
            }
            for b in &blocks {
                if b.get("type").and_then(Value::as_str) == Some("tool_use")
                    && let (Some(id), Some(name)) =
                        (b.get("id").and_then(Value::as_str), b.get("name").and_then(Value::as_str))
                    && !x.tool_uses.contains_key(id)
                {
                    x.tool_uses.insert(id.to_owned(), ts);
                    *x.kinds.entry("tool_use").or_default() += 1;
                    if matches!(name, "Task" | "Agent") {
                        *x.kinds.entry("agent_spawn").or_default() += 1;
                    }
                }
            }
        }
        if ty == "user" {
            let mut has_result = false;
            for b in &blocks {
                if b.get("type").and_then(Value::as_str) == Some("tool_result")
                    && let Some(id) = b.get("tool_use_id").and_then(Value::as_str)
                {
                    has_result = true;
                    if !x.results.contains_key(id) {
                        x.results.insert(id.to_owned(), (ts, b.get("is_error") == Some(&Value::Bool(true))));
                        *x.kinds.entry("tool_result").or_default() += 1;
                    }
                }
            }
            let flag = |k: &str| v.get(k) == Some(&Value::Bool(true));
            let text = match v.get("message").and_then(|m| m.get("content")) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Array(b)) => b.iter().find_map(|b| match b.get("type").and_then(Value::as_str) {
                    Some("text") => Some(b.get("text").and_then(Value::as_str).unwrap_or("").to_owned()),
                    Some("image") => Some(String::new()),
                    _ => None,
                }),
                _ => None,
            };
            let prompt = text.is_some_and(|t| oracle::typed_by_the_user(&t))
                && !has_result
                && !sidechain
                && !agent_file
                && !flag("isMeta")
                && !flag("isCompactSummary");
            if prompt {
                *x.kinds.entry("message").or_default() += 1;
            }
        }
    }
    x
}

/// Write `lines` one at a time, as Claude Code appends them.
pub fn replay(projects: &Path, lines: &[(PathBuf, String)]) {
    for (rel, l) in lines {
        daemon::append(&projects.join(rel), format!("{l}\n").as_bytes());
    }
}

fn collect(
    w: &SessionWatcher,
) -> (Arc<Mutex<Vec<Event>>>, std::thread::JoinHandle<()>, tokio::sync::oneshot::Sender<()>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut stream = w.events();
    let sink = Arc::clone(&got);
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            use tokio_stream::StreamExt;
            loop {
                tokio::select! {
                    e = stream.next() => match e {
                        Some(e) => sink.lock().unwrap().push((*e).clone()),
                        None => break,
                    },
                    _ = &mut stop_rx => break,
                }
            }
        });
    });
    (got, t, stop_tx)
}

fn wait_until(timeout: Duration, what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if pred() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn replayed_sessions_give_the_events_the_transcripts_imply() {
    let src = support::real_config_root();
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let w = SessionWatcher::builder().projects_dir(&projects).process_check(None).start().unwrap();
    assert!(w.wait_ready(Duration::from_secs(10)));
    // Stamped from now: after the watcher started, so all of it is new activity.
    let lines = replay_lines(&src.path().join("projects"));
    let want = expect(&lines);
    let (got, reader, stop) = collect(&w);
    replay(&projects, &lines);
    let total: u64 = want.kinds.values().sum();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (got.lock().unwrap().len() as u64) < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = stop.send(());
    reader.join().unwrap();
    let events = got.lock().unwrap().clone();

    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    for e in &events {
        *kinds.entry(e.kind.name()).or_default() += 1;
    }
    assert_eq!(kinds, want.kinds, "events per kind");
    // Ids increase: one sequence.
    assert!(events.windows(2).all(|p| p[0].id < p[1].id));
    // Per session, the main conversation's events come in transcript order: its tool calls
    // and results appear in the order of their lines.
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (rel, raw) in &lines {
        let v: Value = serde_json::from_str(raw).unwrap();
        let agent_file = rel.file_stem().unwrap().to_string_lossy().starts_with("agent-");
        if agent_file || v.get("isSidechain") == Some(&Value::Bool(true)) || v.get("timestamp").is_none() {
            continue;
        }
        let Some(session) = v.get("sessionId").and_then(Value::as_str) else { continue };
        for b in v.pointer("/message/content").and_then(Value::as_array).into_iter().flatten() {
            let id = match b.get("type").and_then(Value::as_str) {
                Some("tool_use") => b.get("id"),
                Some("tool_result") => b.get("tool_use_id"),
                _ => None,
            };
            if let Some(id) = id.and_then(Value::as_str) {
                let key = format!("{}:{id}", b["type"].as_str().unwrap());
                let list = order.entry(session.to_owned()).or_default();
                if !list.contains(&key) {
                    list.push(key);
                }
            }
        }
    }
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.agent_id.is_none()) {
        let key = match &e.kind {
            Kind::ToolUse { tool_use_id, .. } => format!("tool_use:{tool_use_id}"),
            Kind::ToolResult { tool_use_id, .. } => format!("tool_result:{tool_use_id}"),
            _ => continue,
        };
        seen.entry(e.session_id.clone()).or_default().push(key);
    }
    for (session, want_order) in &order {
        let got_order: Vec<&String> =
            seen.get(session).map(|v| v.iter().filter(|k| want_order.contains(k)).collect()).unwrap_or_default();
        let want_present: Vec<&String> =
            want_order.iter().filter(|k| seen.get(session).is_some_and(|v| v.contains(k))).collect();
        assert_eq!(got_order, want_present, "order of tool events in session {session}");
    }

    // Tool calls pair 1:1 with their results, with transcript durations.
    let mut uses: HashMap<&str, &Event> = HashMap::new();
    for e in &events {
        if let Kind::ToolUse { tool_use_id, .. } = &e.kind {
            assert!(uses.insert(tool_use_id, e).is_none(), "one tool_use per id");
        }
    }
    let mut paired = 0;
    for e in &events {
        if let Kind::ToolResult { tool_use_id, duration_ms, is_error, name, .. } = &e.kind {
            let (at, err) = want.results[tool_use_id.as_str()];
            assert_eq!(*is_error, err, "{tool_use_id}");
            if let Some(u) = uses.get(tool_use_id.as_str()) {
                paired += 1;
                let started = want.tool_uses[tool_use_id.as_str()];
                assert_eq!(*duration_ms, Some(at - started), "duration of {tool_use_id}");
                assert_eq!(Some(name.as_str()), u.kind.tool(), "the result names its call's tool");
                assert_eq!(u.session_id, e.session_id);
            }
        }
    }
    let both = want.results.keys().filter(|k| want.tool_uses.contains_key(*k)).count();
    assert_eq!(paired, both, "every result with a call is paired");
    assert!(paired > 500, "a real corpus: {paired} pairs");

    // Sub-agent events carry their parent's session id and their agent id.
    let agent_events: Vec<&Event> = events.iter().filter(|e| e.agent_id.is_some()).collect();
    assert!(!agent_events.is_empty());
    let sessions: HashSet<&str> =
        events.iter().filter(|e| matches!(e.kind, Kind::SessionStart { .. })).map(|e| e.session_id.as_str()).collect();
    for e in &agent_events {
        assert!(sessions.contains(e.session_id.as_str()), "agent event in a known session: {e:?}");
        assert!(want.sessions_with_agents.contains(&e.session_id), "{} has sub-agents", e.session_id);
    }
    // No content by default.
    for e in &events {
        let json = serde_json::to_value(e).unwrap();
        for k in ["text", "input", "output", "summary"] {
            assert!(json.get(k).is_none(), "no {k} without opt-in: {json}");
        }
    }
    eprintln!("events: {} ({kinds:?}); {paired} tool pairs; {} sub-agent events", events.len(), agent_events.len());
    w.stop();
}

/// A panic payload our quiet hook recognises (the test's deliberate panics stay out of the output).
struct Deliberate;

#[test]
fn a_panicking_callback_and_a_slow_subscriber_stop_nothing() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Deliberate>().is_none() {
                previous(info);
            }
        }));
    });
    let src = support::real_config_root();
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let mut w =
        SessionWatcher::builder().projects_dir(&projects).process_check(None).buffers(512, 1000).start().unwrap();
    assert!(w.wait_ready(Duration::from_secs(10)));
    let lines = replay_lines(&src.path().join("projects"));
    let want = expect(&lines);
    // A subscriber that never reads, one that reads slowly, one that keeps up.
    let _never = w.events();
    let mut slow = w.subscribe(Filter::default());
    let slow_seen = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&slow_seen);
    let slow_reader = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            use tokio_stream::StreamExt;
            while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(3), slow.next()).await {
                seen.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    });
    let tools = Arc::new(AtomicU64::new(0));
    let t = Arc::clone(&tools);
    w.on(EventKind::ToolUse, move |_| {
        t.fetch_add(1, Ordering::Relaxed);
    });
    w.on_any(|_| std::panic::panic_any(Deliberate));
    let stop = w.stop_handle();
    let rss_before = support::rss_kib(std::process::id());
    let writer = std::thread::spawn(move || {
        // Paced so that the callbacks (fast) keep up while the slow subscriber cannot.
        for chunk in lines.chunks(50) {
            replay(&projects, chunk);
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let want_tools = want.kinds["tool_use"];
    let t = Arc::clone(&tools);
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while t.load(Ordering::Relaxed) < want_tools && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.stop();
    });
    w.run().unwrap();
    writer.join().unwrap();
    watchdog.join().unwrap();
    slow_reader.join().unwrap();
    let stats = w.stats();
    let total: u64 = want.kinds.values().sum();
    assert_eq!(tools.load(Ordering::Relaxed), want_tools, "the well-behaved callback saw every tool call");
    assert!(stats.handler_panics >= total - 512, "panics are caught and counted: {stats:?} of {total}");
    assert!(stats.lagged > 0, "the slow subscriber fell behind and it was counted: {stats:?}");
    assert!(slow_seen.load(Ordering::Relaxed) < total, "it skipped events rather than buffering them");
    let rss_after = support::rss_kib(std::process::id());
    eprintln!(
        "stats {stats:?}; slow subscriber saw {}; RSS {rss_before} → {rss_after} KiB",
        slow_seen.load(Ordering::Relaxed)
    );
    assert!(rss_after < rss_before + 64 * 1024, "memory stays bounded: {rss_before} → {rss_after} KiB");
    w.stop();
}

fn line(session: &str, cwd: &Path, at_ms: i64, n: usize) -> String {
    format!(
        r#"{{"type":"assistant","sessionId":"{session}","cwd":"{}","timestamp":"{}","requestId":"req_{session}_{n}","message":{{"id":"msg_{session}_{n}","model":"claude-opus-4-6","usage":{{"input_tokens":1,"output_tokens":1}},"content":[{{"type":"text","text":"x"}}]}}}}"#,
        cwd.display(),
        support::rfc3339(at_ms)
    ) + "\n"
}

fn kinds_of(got: &Mutex<Vec<Event>>, session: &str) -> Vec<String> {
    got.lock().unwrap().iter().filter(|e| e.session_id == session).map(|e| e.kind.name().to_owned()).collect()
}

#[test]
fn sessions_end_when_their_process_exits_or_after_idling_and_resume() {
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let w = SessionWatcher::builder()
        .projects_dir(&projects)
        .idle_timeout(Duration::from_secs(1))
        .end_timeout(Duration::from_secs(3))
        .process_check(Some(Duration::from_millis(200)))
        .start()
        .unwrap();
    assert!(w.wait_ready(Duration::from_secs(10)));
    let (got, reader, stop) = collect(&w);

    // A "Claude Code" process (a copy of sleep named claude) working in the session's folder.
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(super::prom::which("sleep").expect("sleep"), bin.join("claude")).unwrap();
    let cwd = std::fs::canonicalize(work.path()).unwrap().join("repo");
    std::fs::create_dir_all(&cwd).unwrap();
    let mut claude = std::process::Command::new(bin.join("claude")).arg("300").current_dir(&cwd).spawn().unwrap();
    let file = projects.join("-repo/p1.jsonl");
    // Activity keeps it from going idle while the process is seen.
    daemon::append(&file, line("p1", &cwd, now_ms(), 0).as_bytes());
    std::thread::sleep(Duration::from_millis(600));
    daemon::append(&file, line("p1", &cwd, now_ms(), 1).as_bytes());
    std::thread::sleep(Duration::from_millis(300));
    claude.kill().unwrap();
    let killed = Instant::now();
    claude.wait().unwrap();
    wait_until(Duration::from_secs(5), "process_exit", || {
        got.lock()
            .unwrap()
            .iter()
            .any(|e| e.session_id == "p1" && matches!(e.kind, Kind::SessionEnd { reason: EndReason::ProcessExit }))
    });
    let took = killed.elapsed();
    eprintln!("session ended {took:?} after its process exited");
    assert!(took < Duration::from_secs(2), "ends promptly: {took:?}");
    assert_eq!(kinds_of(&got, "p1").iter().filter(|k| *k == "session_end").count(), 1, "session_end once");

    // A session left alone goes idle, then ends; new activity resumes it.
    let other = projects.join("-quiet/q1.jsonl");
    daemon::append(&other, line("q1", Path::new("/nowhere/q"), now_ms(), 0).as_bytes());
    wait_until(Duration::from_secs(10), "idle then end", || kinds_of(&got, "q1").contains(&"session_end".to_owned()));
    daemon::append(&other, line("q1", Path::new("/nowhere/q"), now_ms(), 1).as_bytes());
    wait_until(Duration::from_secs(5), "resume", || kinds_of(&got, "q1").contains(&"session_resume".to_owned()));
    let q1 = kinds_of(&got, "q1");
    let pos = |k: &str| q1.iter().position(|x| x == k).unwrap_or_else(|| panic!("{k} in {q1:?}"));
    assert!(pos("session_start") < pos("session_idle") && pos("session_idle") < pos("session_end"));
    assert!(pos("session_end") < pos("session_resume"), "{q1:?}");
    assert_eq!(q1.iter().filter(|k| *k == "session_end").count(), 1, "{q1:?}");
    let end =
        got.lock().unwrap().iter().find(|e| e.session_id == "q1" && e.kind.name() == "session_end").cloned().unwrap();
    assert!(matches!(end.kind, Kind::SessionEnd { reason: EndReason::IdleTimeout }));
    // The live view agrees.
    let snap = w.sessions().get("q1").unwrap();
    assert_eq!(snap.state, claude_sessions::state::live::State::Active);
    assert_eq!(snap.api_requests, 2);
    let _ = stop.send(());
    reader.join().unwrap();
    w.stop();
}

#[test]
fn the_example_program_prints_tool_calls_as_they_happen() {
    // Built by scripts/test.sh (`cargo build --examples`); `cargo test` alone builds
    // examples only as test harnesses, under hashed names.
    let exe = support::bin().parent().unwrap().join("examples/watch_sessions");
    if !exe.exists() {
        assert!(std::env::var_os("CI").is_none(), "examples/watch_sessions was not built (cargo build --examples)");
        return;
    }
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let mut child = std::process::Command::new(&exe)
        .arg(&projects)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let l = format!(
        r#"{{"type":"assistant","sessionId":"abcdef0123","cwd":"/w/x","timestamp":"{}","requestId":"r","message":{{"id":"m","model":"claude-opus-4-6","usage":{{"input_tokens":1,"output_tokens":1}},"content":[{{"type":"tool_use","id":"toolu_ex","name":"Bash","input":{{"command":"cargo test"}}}}]}}}}"#,
        support::rfc3339(now_ms())
    );
    daemon::append(&projects.join("-w-x/abcdef0123.jsonl"), format!("{l}\n").as_bytes());
    let line = rx.recv_timeout(Duration::from_secs(10)).expect("the example prints the call");
    assert_eq!(line, "abcdef01 [main] Bash cargo test");
    let _ = child.kill();
    let _ = child.wait();
}

/// The typed API: `on(EventKind…)`, `off`, composed selectors through `pipe`, and the
/// live metrics view, which counts what `/metrics` counts.
#[test]
fn typed_handlers_pipes_and_the_metrics_view_agree_with_the_replay() {
    use claude_sessions::events::Selector;
    let src = support::real_config_root();
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let mut w = SessionWatcher::builder().projects_dir(&projects).process_check(None).start().unwrap();
    assert!(w.wait_ready(Duration::from_secs(10)));
    let lines = replay_lines(&src.path().join("projects"));
    let want = expect(&lines);

    let count = |w: &mut SessionWatcher, sel: Selector| {
        let n = Arc::new(AtomicU64::new(0));
        let m = Arc::clone(&n);
        let id = w.on_selected(sel, move |_| {
            m.fetch_add(1, Ordering::Relaxed);
        });
        (n, id)
    };
    let all_uses = Arc::new(Mutex::new(Vec::new()));
    let u = Arc::clone(&all_uses);
    w.on(EventKind::ToolUse, move |e| u.lock().unwrap().push(e.agent_id.is_some()));
    let sub_uses = Arc::new(AtomicU64::new(0));
    let s = Arc::clone(&sub_uses);
    w.pipe(Selector::subagent()).pipe(Selector::kind(EventKind::ToolUse).or(Selector::kind(EventKind::Error))).on(
        EventKind::ToolUse,
        move |_| {
            s.fetch_add(1, Ordering::Relaxed);
        },
    );
    let (removed, id) = count(&mut w, Selector::All);
    assert!(w.off(id) && !w.off(id), "off removes once");
    let (not_messages, _) = count(&mut w, Selector::kind(EventKind::Message).not());
    let stop = w.stop_handle();
    let first = w.metrics();
    replay(&projects, &lines);
    let total: u64 = want.kinds.values().sum();
    let n = Arc::clone(&not_messages);
    let want_not_messages = total - want.kinds["message"];
    let stopper = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while n.load(Ordering::Relaxed) < want_not_messages && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.stop();
    });
    w.run().unwrap();
    stopper.join().unwrap();

    let uses = all_uses.lock().unwrap().clone();
    assert_eq!(uses.len() as u64, want.kinds["tool_use"], "on(EventKind::ToolUse)");
    let subagent = uses.iter().filter(|s| **s).count() as u64;
    assert!(subagent > 0, "the corpus has sub-agent tool calls");
    assert_eq!(sub_uses.load(Ordering::Relaxed), subagent, "pipe(subagent).pipe(tool_use or error).on(tool_use)");
    assert_eq!(removed.load(Ordering::Relaxed), 0, "a removed handler was called");
    assert_eq!(not_messages.load(Ordering::Relaxed), want_not_messages, "kind(message).not()");

    // The view counts what the counters count (an independent count of the replay).
    let v = w.metrics();
    assert_eq!(first.tool_calls, 0);
    assert_eq!(v.tool_calls, want.kinds["tool_use"]);
    let errors = want.results.values().filter(|(_, e)| *e).count() as u64;
    assert_eq!(v.tool_errors, errors);
    assert_eq!(v.tools.values().map(|t| t.calls).sum::<u64>(), v.tool_calls);
    assert_eq!(v.error_rate, Some(errors as f64 / v.tool_calls as f64));
    assert!(v.tool_calls_per_minute.is_some_and(|r| r > 0.0), "{v:?}");
    assert!(v.active_sessions > 0);
    w.stop();
}
