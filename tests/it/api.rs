//! The HTTP API of `serve`, from outside, with a raw HTTP/1.1 client: `/api/events`
//! delivers an appended line's events within a second, resumes with `Last-Event-ID`
//! without gap or duplicate (and says `reset` when it cannot), filters like the CLI; a
//! client that never reads does not slow anyone or make memory grow, and is told it
//! lagged; `/api/sessions` and `/api/sessions/{id}` give live state (also through
//! `claude-sessions sessions --url`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use claude_sessions::events::{Event, Kind};
use serde_json::Value;

use super::daemon::{self, Daemon};
use super::support;

/// The acceptance bound: an appended line's events reach a client within this.
const WITHIN: Duration = Duration::from_secs(1);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

// ---- transcript lines, as Claude Code writes them ----

fn head(sid: &str, project: &str, ts: i64) -> String {
    format!(r#""sessionId":"{sid}","cwd":"/w/{project}","gitBranch":"main","timestamp":"{}","#, support::rfc3339(ts))
}

/// A prompt typed by the user.
pub fn user(sid: &str, project: &str, ts: i64, text: &str) -> String {
    let text = serde_json::to_string(text).unwrap();
    format!(r#"{{"type":"user",{}"message":{{"role":"user","content":{text}}}}}"#, head(sid, project, ts))
}

/// An API response calling `tools` (id, name, input), with this usage (input, output, cache read).
pub fn assistant(
    sid: &str,
    project: &str,
    ts: i64,
    msg: &str,
    tools: &[(&str, &str, Value)],
    usage: (u64, u64, u64),
) -> String {
    let content: Vec<Value> = tools
        .iter()
        .map(|(id, name, input)| serde_json::json!({"type": "tool_use", "id": id, "name": name, "input": input}))
        .collect();
    let message = serde_json::json!({
        "id": msg, "type": "message", "role": "assistant", "model": "claude-opus-4-6",
        "usage": {"input_tokens": usage.0, "output_tokens": usage.1, "cache_read_input_tokens": usage.2},
        "content": content,
    });
    format!(r#"{{"type":"assistant",{}"requestId":"req_{msg}","message":{message}}}"#, head(sid, project, ts))
}

/// Results of tool calls: (tool_use id, is_error).
pub fn results(sid: &str, project: &str, ts: i64, res: &[(&str, bool)]) -> String {
    let content: Vec<Value> = res
        .iter()
        .map(|(id, err)| serde_json::json!({"type": "tool_result", "tool_use_id": id, "content": "done", "is_error": err}))
        .collect();
    let message = serde_json::json!({"role": "user", "content": content});
    format!(r#"{{"type":"user",{}"message":{message}}}"#, head(sid, project, ts))
}

/// A turn: prompt, a response calling Bash `command`, its result. `n` makes ids unique.
pub fn turn(sid: &str, project: &str, n: u32, command: &str) -> String {
    let t = now_ms();
    let tool = format!("toolu_{sid}_{n}");
    [
        user(sid, project, t, &format!("step {n}")),
        assistant(
            sid,
            project,
            t + 1,
            &format!("msg_{sid}_{n}"),
            &[(&tool, "Bash", serde_json::json!({"command": command}))],
            (10, 20, 100),
        ),
        results(sid, project, t + 2, &[(&tool, false)]),
    ]
    .join("\n")
        + "\n"
}

// ---- a Server-Sent Events client ----

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    pub id: Option<u64>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn parsed(&self) -> Event {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("not an Event ({e}): {}", self.data))
    }
}

/// Send `GET path` and return the connection, unread.
fn request(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send request");
    s
}

/// An open `/api/events` stream, read by a thread into a channel.
pub struct Sse {
    stream: TcpStream,
    rx: mpsc::Receiver<SseEvent>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Sse {
    pub fn connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
        Sse::read(request(addr, path, headers))
    }

    /// Start reading a connection whose request was sent.
    fn read(stream: TcpStream) -> Sse {
        let mut r = BufReader::new(stream.try_clone().unwrap());
        let mut status_line = String::new();
        r.read_line(&mut status_line).expect("status line");
        let status: u16 = status_line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status");
        let mut headers = Vec::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).expect("header line");
            let l = l.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || read_events(r, chunked, tx));
        Sse { stream, rx, status, headers }
    }

    pub fn next(&self, timeout: Duration) -> Option<SseEvent> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Events up to and including the first that satisfies `done`; panics after `timeout`.
    pub fn until(&self, timeout: Duration, what: &str, done: impl Fn(&SseEvent) -> bool) -> Vec<SseEvent> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(e) => {
                    let stop = done(&e);
                    got.push(e);
                    if stop {
                        return got;
                    }
                }
                Err(_) => panic!("{what}: not within {timeout:?}; got {} events: {:?}", got.len(), got.last()),
            }
        }
    }

    /// Whatever arrives within `quiet`.
    pub fn drain(&self, quiet: Duration) -> Vec<SseEvent> {
        let mut got = Vec::new();
        while let Some(e) = self.next(quiet) {
            got.push(e);
        }
        got
    }
}

impl Drop for Sse {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn read_events(mut r: BufReader<TcpStream>, chunked: bool, tx: mpsc::Sender<SseEvent>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if chunked {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                return;
            }
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else { return };
            if n == 0 {
                return;
            }
            let mut chunk = vec![0; n + 2];
            if r.read_exact(&mut chunk).is_err() {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        } else {
            let mut chunk = [0u8; 8192];
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let mut e = SseEvent::default();
            for line in String::from_utf8_lossy(&block).lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    e.id = Some(v.parse().expect("numeric id"));
                } else if let Some(v) = line.strip_prefix("event: ") {
                    e.event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    assert!(e.data.is_empty(), "one data line per event");
                    e.data = v.to_owned();
                }
            }
            // `retry:` and `: keep-alive` blocks carry no event.
            if !e.event.is_empty() && tx.send(e).is_err() {
                return;
            }
        }
    }
}

pub fn start(root: &Path, state: &Path) -> Daemon {
    std::fs::create_dir_all(root.join("projects")).unwrap();
    let d = Daemon::start(root, state, &[]);
    d.wait_ready(Duration::from_secs(30));
    d
}

/// Connect and check the stream's head and its first event, the live sessions.
pub fn events(d: &Daemon, query: &str, headers: &[(&str, &str)]) -> (Sse, Vec<Value>) {
    let sse = Sse::connect(d.addr, &format!("/api/events{query}"), headers);
    assert_eq!(sse.status, 200);
    assert!(sse.headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream")));
    let first = sse.next(Duration::from_secs(5)).expect("a first event");
    assert_eq!(first.event, "snapshot", "{first:?}");
    assert_eq!(first.id, None);
    let live: Vec<Value> = serde_json::from_str(&first.data).expect("snapshot JSON");
    (sse, live)
}

fn ids(events: &[SseEvent]) -> Vec<u64> {
    events.iter().filter_map(|e| e.id).collect()
}

fn is_result_of(e: &SseEvent, tool_use_id: &str) -> bool {
    e.event == "tool_result"
        && matches!(e.parsed().kind, Kind::ToolResult { tool_use_id: ref t, .. } if t == tool_use_id)
}

#[test]
fn events_arrive_within_a_second_and_resume_without_gap_or_duplicate() {
    let root = daemon::empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = start(root.path(), state.path());
    let file = root.path().join("projects/-w-app/s-live.jsonl");

    // A reference client that stays connected throughout.
    let (reference, live) = events(&d, "", &[]);
    assert!(live.is_empty(), "no session yet: {live:?}");
    let (a, _) = events(&d, "", &[]);

    // ---- latency: an appended turn's events, first and last ----
    let mut first_lat = Vec::new();
    let mut last_lat = Vec::new();
    let mut seen = Vec::new();
    for n in 1..=5 {
        let t0 = Instant::now();
        daemon::append(&file, turn("s-live", "app", n, &format!("echo {n}")).as_bytes());
        let first = a.next(Duration::from_secs(5)).expect("an event");
        first_lat.push(t0.elapsed());
        let tool = format!("toolu_s-live_{n}");
        let mut got = vec![first.clone()];
        if !is_result_of(&first, &tool) {
            got.extend(a.until(Duration::from_secs(5), "the turn's tool_result", |e| is_result_of(e, &tool)));
        }
        last_lat.push(t0.elapsed());
        let kinds: Vec<&str> = got.iter().map(|e| e.event.as_str()).collect();
        let mut want = vec!["message", "message", "context_growth", "tool_use", "tool_result"];
        if n == 1 {
            want.insert(0, "session_start");
        }
        assert_eq!(kinds, want);
        for e in &got {
            let ev = e.parsed();
            assert_eq!(e.id, Some(ev.id));
            assert_eq!(e.event, ev.kind.name());
            assert_eq!((ev.session_id.as_str(), ev.project.as_str()), ("s-live", "app"));
            // A call's growth comes with its parts, which sum to it (these turns' usage
            // does not grow after the first: their growth is 0, all `dropped`).
            if let claude_sessions::events::Kind::ContextGrowth { tokens_added, parts, source, .. } = &ev.kind {
                assert_eq!(source, "response");
                assert!(!parts.is_empty(), "turn {n}: no parts");
                assert_eq!(parts.values().sum::<i64>(), *tokens_added, "{parts:?}");
            }
        }
        seen.extend(got);
    }
    eprintln!("/api/events latency after append: first event {first_lat:?}, last event {last_lat:?}");
    for l in first_lat.iter().chain(&last_lat) {
        assert!(*l < WITHIN, "events took {l:?}");
    }
    let ids_a = ids(&seen);
    assert!(ids_a.windows(2).all(|w| w[1] == w[0] + 1), "consecutive ids: {ids_a:?}");
    let last = *ids_a.last().unwrap();

    // ---- resume: disconnect, more activity, reconnect with Last-Event-ID ----
    drop(a);
    for n in 6..=8 {
        daemon::append(&file, turn("s-live", "app", n, "make").as_bytes());
    }
    let all = reference.until(Duration::from_secs(5), "reference: turn 8", |e| is_result_of(e, "toolu_s-live_8"));
    let all: Vec<SseEvent> = seen.iter().cloned().chain(all.into_iter().filter(|e| e.id > Some(last))).collect();
    let missed: Vec<SseEvent> = all.iter().filter(|e| e.id > Some(last)).cloned().collect();
    assert_eq!(missed.len(), 15, "three turns of five events");

    let last_s = last.to_string();
    let (b, live) = events(&d, "", &[("Last-Event-ID", &last_s)]);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["id"], "s-live");
    assert_eq!(live[0]["state"], "active");
    let replayed = b.until(Duration::from_secs(5), "replay", |e| is_result_of(e, "toolu_s-live_8"));
    assert_eq!(replayed, missed, "exactly the missed events, once, in order");
    // Then live, continuing without a gap or a duplicate.
    daemon::append(&file, turn("s-live", "app", 9, "make check").as_bytes());
    let next_ref = reference.until(Duration::from_secs(5), "reference: turn 9", |e| is_result_of(e, "toolu_s-live_9"));
    let next_b = b.until(Duration::from_secs(5), "resumed: turn 9", |e| is_result_of(e, "toolu_s-live_9"));
    assert_eq!(next_b, next_ref);
    assert_eq!(next_b[0].id, Some(missed.last().unwrap().id.unwrap() + 1));
    assert!(b.drain(Duration::from_millis(300)).is_empty(), "nothing more");

    // The same with the query parameter (for clients that cannot set headers).
    let (c, _) = events(&d, &format!("?last_event_id={last}"), &[]);
    let c_got = c.until(Duration::from_secs(5), "query resume", |e| is_result_of(e, "toolu_s-live_9"));
    assert_eq!(c_got, missed.iter().chain(&next_ref).cloned().collect::<Vec<_>>());

    // An id from an earlier run of the daemon: `reset`, then everything this run has.
    let (r, _) = events(&d, "", &[("Last-Event-ID", "999999")]);
    let reset = r.next(Duration::from_secs(5)).unwrap();
    assert_eq!(reset.event, "reset");
    let note: Value = serde_json::from_str(&reset.data).unwrap();
    assert_eq!(note["reason"], "unknown_id");
    let everything = r.until(Duration::from_secs(5), "full replay", |e| is_result_of(e, "toolu_s-live_9"));
    assert_eq!(ids(&everything), (1..=everything.len() as u64).collect::<Vec<_>>());

    // Bad ids and filters are refused.
    assert_eq!(d.get("/api/events", &[("Last-Event-ID", "abc")]).0, 400);
    let (status, _, body) = d.get("/api/events?type=nope", &[]);
    assert_eq!(status, 400);
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert!(err["error"].as_str().unwrap().contains("unknown event type"), "{err}");
    d.stop();
}

#[test]
fn filters_pick_tool_calls_by_type_and_category() {
    let root = daemon::empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = start(root.path(), state.path());
    let (shell, _) = events(&d, "?type=tool_use&tool=shell", &[]);
    let (other, _) = events(&d, "?project=other&agent=main", &[]);
    let file = root.path().join("projects/-w-web/s-filter.jsonl");
    let t = now_ms();
    let lines = [
        user("s-filter", "web", t, "look around"),
        assistant(
            "s-filter",
            "web",
            t + 1,
            "msg_f1",
            &[
                ("toolu_f_read", "Read", serde_json::json!({"file_path": "/w/web/src/main.rs"})),
                ("toolu_f_grep", "Grep", serde_json::json!({"pattern": "TODO"})),
            ],
            (5, 5, 0),
        ),
        results("s-filter", "web", t + 2, &[("toolu_f_read", false), ("toolu_f_grep", false)]),
        assistant(
            "s-filter",
            "web",
            t + 3,
            "msg_f2",
            &[("toolu_f_bash", "Bash", serde_json::json!({"command": "npm test"}))],
            (5, 5, 0),
        ),
        results("s-filter", "web", t + 4, &[("toolu_f_bash", true)]),
    ];
    daemon::append(&file, (lines.join("\n") + "\n").as_bytes());
    let got = shell.next(Duration::from_secs(5)).expect("the Bash call");
    let e = got.parsed();
    assert_eq!(got.event, "tool_use");
    match e.kind {
        Kind::ToolUse { name, category, summary, .. } => {
            assert_eq!(name, "Bash");
            assert_eq!(category.as_str(), "shell");
            assert_eq!(summary, None, "the daemon sends no summaries without --include-content");
        }
        k => panic!("{k:?}"),
    }
    assert!(shell.drain(Duration::from_millis(500)).is_empty(), "no Read, Grep, result or message");
    assert!(other.drain(Duration::from_millis(200)).is_empty(), "another project's stream stays quiet");
    d.stop();
}

/// A `Write` of 100 KiB to `.env`: rules see the whole input, not a cut (and so invalid)
/// copy of it. Before, inputs over 64 KiB were cut in capture and matched no rule.
#[test]
fn a_100_kib_write_to_env_is_a_rule_match() {
    let input = serde_json::json!({"file_path": "/w/big/.env", "content": "K=v\n".repeat(100 << 10 >> 2)});
    let (root, state) = (daemon::empty_root(), tempfile::tempdir().unwrap());
    let d = start(root.path(), state.path());
    let (matches, _) = events(&d, "?type=rule_match", &[]);
    let rule = [("rule", "env-file-write"), ("severity", "warning")];
    assert_eq!(d.metrics().sum("claude_sessions_rule_matches_total", &rule), 0.0);
    let call = assistant("s-big", "big", now_ms(), "msg_big", &[("toolu_big", "Write", input)], (5, 5, 0)) + "\n";
    assert!(call.len() > 100 << 10);
    daemon::append(&root.path().join("projects/-w-big/s-big.jsonl"), call.as_bytes());
    let got = matches.next(Duration::from_secs(5)).expect("a rule_match event for the 100 KiB write");
    match got.parsed().kind {
        Kind::RuleMatch { rule, severity, tool_use_id, tool } => {
            assert_eq!((rule.as_str(), severity.as_str()), ("env-file-write", "warning"));
            assert_eq!((tool_use_id.as_str(), tool.as_str()), ("toolu_big", "Write"));
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(d.metrics().sum("claude_sessions_rule_matches_total", &rule), 1.0);
    d.stop();
}

#[test]
fn sessions_endpoints_give_live_state_as_json() {
    let root = daemon::empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = start(root.path(), state.path());
    let (status, headers, body) = d.get("/api/sessions", &[]);
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(k, v)| k == "content-type" && v == "application/json"));
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), serde_json::json!([]));

    let (sse, _) = events(&d, "", &[]);
    let t = now_ms();
    let lines = [
        user("s-json", "shop", t, "fix the build"),
        assistant(
            "s-json",
            "shop",
            t + 1000,
            "msg_j1",
            &[
                ("toolu_j1", "Bash", serde_json::json!({"command": "cargo build"})),
                ("toolu_j2", "Edit", serde_json::json!({"file_path": "/w/shop/src/lib.rs"})),
            ],
            (100, 50, 1000),
        ),
        results("s-json", "shop", t + 2000, &[("toolu_j1", true), ("toolu_j2", false)]),
    ];
    daemon::append(&root.path().join("projects/-w-shop/s-json.jsonl"), (lines.join("\n") + "\n").as_bytes());
    sse.until(Duration::from_secs(5), "the results", |e| is_result_of(e, "toolu_j2"));

    let (status, _, body) = d.get("/api/sessions", &[]);
    assert_eq!(status, 200);
    let list: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(list.len(), 1);
    let s = &list[0];
    assert_eq!(s["id"], "s-json");
    assert_eq!(s["project"], "shop");
    assert_eq!(s["git_branch"], "main");
    assert_eq!(s["cwd"], "/w/shop");
    assert_eq!(s["state"], "active");
    assert_eq!(s["models"], serde_json::json!(["claude-opus-4-6"]));
    assert_eq!(s["tokens"], serde_json::json!({"input": 100, "output": 50, "cache_read": 1000, "cache_creation": 0}));
    assert_eq!((s["prompts"].as_u64(), s["api_requests"].as_u64()), (Some(1), Some(1)));
    assert_eq!((s["tool_calls"].as_u64(), s["tool_errors"].as_u64()), (Some(2), Some(1)));
    assert_eq!(s["duration_ms"].as_i64(), Some(2000));
    let cost = s["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0 && cost < 0.01, "{cost}");
    let util = s["context_utilization"].as_f64().unwrap();
    assert!(util > 0.0 && util < 1.0, "{util}");

    let (status, _, one) = d.get("/api/sessions/s-json", &[]);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&one).unwrap(), *s);
    let (status, _, body) = d.get("/api/sessions/nope", &[]);
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"], "unknown session");

    // Filters.
    let count = |q: &str| {
        let (status, _, body) = d.get(&format!("/api/sessions{q}"), &[]);
        assert_eq!(status, 200, "{q}");
        serde_json::from_slice::<Vec<Value>>(&body).unwrap().len()
    };
    assert_eq!(count("?state=active"), 1);
    assert_eq!(count("?state=idle,ended"), 0);
    assert_eq!(count("?project=shop"), 1);
    assert_eq!(count("?project=other"), 0);
    assert_eq!(d.get("/api/sessions?state=sleeping", &[]).0, 400);
    assert_eq!(d.get("/api/nothing", &[]).0, 404);

    // `claude-sessions sessions --url` asks the daemon.
    let out = Command::new(support::bin())
        .args(["sessions", "--json", "--url", &format!("http://{}", d.addr)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let via_cli: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(via_cli.len(), 1);
    assert_eq!(via_cli[0]["tokens"], s["tokens"]);
    assert_eq!(via_cli[0]["tool_errors"], 1);
    let out = Command::new(support::bin())
        .args(["sessions", "--url", &format!("http://{}", d.addr), "--state", "active"])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("SESSION") && table.contains("s-json") && table.contains("shop"), "{table}");

    // The index page lists the API.
    let (_, _, index) = d.get("/", &[]);
    let index = String::from_utf8(index).unwrap();
    assert!(index.contains("/api/sessions") && index.contains("/api/events"));
    d.stop();
}

#[test]
fn clients_that_never_read_slow_no_one_and_memory_stays_bounded() {
    let root = daemon::empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = start(root.path(), state.path());
    let pid = d.pid().unwrap();
    // Ten clients that send their request and never read a byte.
    let stuck: Vec<TcpStream> = (0..10).map(|_| request(d.addr, "/api/events", &[])).collect();
    let (good, _) = events(&d, "", &[]);
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = support::rss_kib(pid);

    // ~41,000 events: 400 responses calling 50 tools each, and their results, in 40 batches.
    let file = root.path().join("projects/-w-flood/s-flood.jsonl");
    let t = now_ms();
    let started = Instant::now();
    for batch in 0..40 {
        let mut text = String::new();
        for i in 0..10 {
            let n = batch * 10 + i;
            let ids: Vec<String> = (0..50).map(|k| format!("toolu_fl_{n}_{k}")).collect();
            let tools: Vec<(&str, &str, Value)> = ids
                .iter()
                .enumerate()
                .map(|(k, id)| {
                    if k % 2 == 0 {
                        (id.as_str(), "Bash", serde_json::json!({"command": format!("echo {n} {k}")}))
                    } else {
                        (id.as_str(), "Read", serde_json::json!({"file_path": format!("/w/flood/{n}/{k}.rs")}))
                    }
                })
                .collect();
            let res: Vec<(&str, bool)> = ids.iter().map(|id| (id.as_str(), false)).collect();
            let ts = t + i64::from(n) * 10;
            text.push_str(&assistant("s-flood", "flood", ts, &format!("msg_fl_{n}"), &tools, (1, 1, 0)));
            text.push('\n');
            text.push_str(&results("s-flood", "flood", ts + 5, &res));
            text.push('\n');
        }
        daemon::append(&file, text.as_bytes());
        std::thread::sleep(Duration::from_millis(50));
        // /metrics keeps answering while this flows.
        if batch % 10 == 0 {
            let t0 = Instant::now();
            let (status, _, _) = d.get("/metrics", &[]);
            assert_eq!(status, 200);
            assert!(t0.elapsed() < Duration::from_secs(2), "/metrics took {:?}", t0.elapsed());
        }
    }
    // A last, recognisable line.
    let marker = assistant(
        "s-flood",
        "flood",
        t + 10_000,
        "msg_fl_marker",
        &[("toolu_marker", "Bash", serde_json::json!({"command": "true"}))],
        (1, 1, 0),
    );
    daemon::append(&file, (marker + "\n").as_bytes());
    let is_marker = |e: &SseEvent| {
        e.event == "tool_use"
            && matches!(e.parsed().kind, Kind::ToolUse { ref tool_use_id, .. } if tool_use_id == "toolu_marker")
    };

    // The reading client got everything, or was told what it missed; in order.
    let got = good.until(Duration::from_secs(60), "good client: the marker", is_marker);
    eprintln!("flood: {} events to the reading client in {:?}", got.len(), started.elapsed());
    let account = |got: &[SseEvent], who: &str| {
        let delivered = ids(got);
        assert!(delivered.windows(2).all(|w| w[0] < w[1]), "{who}: ids increase");
        let missed: u64 = got
            .iter()
            .filter(|e| e.event == "lagged")
            .map(|e| serde_json::from_str::<Value>(&e.data).unwrap()["missed"].as_u64().unwrap())
            .sum();
        let marker_id = *delivered.last().unwrap();
        assert_eq!(delivered.len() as u64 + missed, marker_id, "{who}: every event delivered or counted as missed");
        (marker_id, missed)
    };
    let (marker_id, good_missed) = account(&got, "reading client");
    assert!(marker_id > 40_000, "{marker_id} events");
    eprintln!("reading client missed {good_missed} of {marker_id}");

    let m = d.metrics();
    assert_eq!(m.sum("claude_sessions_tool_calls_total", &[]), 20_001.0);
    let rss_after = support::rss_kib(pid);
    eprintln!(
        "daemon RSS: {rss_before} KiB before, {rss_after} KiB after ({marker_id} events, 10 clients not reading)"
    );
    // Each stuck client holding its events would be ~10 MB each: 100 MB more.
    assert!(rss_after < rss_before + 48 * 1024, "RSS grew from {rss_before} to {rss_after} KiB");

    // Another client still connects and follows at once.
    let (late, _) = events(&d, "", &[]);
    daemon::append(&file, turn("s-flood", "flood", 1, "after").as_bytes());
    let t0 = Instant::now();
    late.until(WITHIN * 3, "late client", |e| is_result_of(e, "toolu_s-flood_1"));
    eprintln!("after the flood, a new client's events arrived in {:?}", t0.elapsed());

    // A stuck client that starts reading learns that it lagged, then gets the newest events.
    let mut stuck = stuck.into_iter();
    let woken = Sse::read(stuck.next().unwrap());
    assert_eq!(woken.status, 200);
    let woke = woken.until(Duration::from_secs(30), "woken client: the marker", is_marker);
    let (woken_marker, woken_missed) = account(&woke[1..], "woken client");
    assert_eq!(woke[0].event, "snapshot");
    assert_eq!(woken_marker, marker_id);
    assert!(woken_missed > 10_000, "a client that did not read missed most events: {woken_missed}");
    assert!(woke.iter().any(|e| e.event == "lagged"));
    drop(stuck);

    // Resuming from an id the ring no longer holds says so.
    let (r, _) = events(&d, "?type=session_start", &[("Last-Event-ID", "1")]);
    let reset = r.next(Duration::from_secs(5)).unwrap();
    assert_eq!(reset.event, "reset");
    let note: Value = serde_json::from_str(&reset.data).unwrap();
    assert_eq!(note["reason"], "buffer_exceeded");
    assert!(note["missed"].as_u64().unwrap() > 20_000, "{note}");
    assert!(r.drain(Duration::from_millis(300)).is_empty(), "session_start was not in the ring any more");
    d.stop();
}

/// Problems of the watcher itself reach the stream as `error` events, content-free.
#[test]
fn malformed_lines_and_unreadable_files_give_error_events_without_content() {
    let root = daemon::empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = start(root.path(), state.path());
    let (sse, _) = events(&d, "?type=error", &[]);
    let file = root.path().join("projects/-w-app/s-bad.jsonl");
    daemon::append(&file, b"{\"type\":\"user\",\"message\":SECRET-CONTENT-123\n");
    let got = sse.until(Duration::from_secs(10), "an error event", |e| e.event == "error");
    let e = got.last().unwrap().parsed();
    let Kind::Error { message } = e.kind else { panic!("{e:?}") };
    assert!(message.contains("s-bad.jsonl") && message.contains("1 malformed"), "{message}");
    assert!(!message.contains("SECRET"), "content in an error event: {message}");
    d.stop();
}

/// `GET /api/sessions/{id}/events?limit=N&before=ID&type=…`: pages of the kept events, in
/// order, `more` while earlier ones match; the plain answer unchanged; bad values → 400.
#[test]
fn session_history_pages_with_limit_and_before() {
    let root = daemon::empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = start(root.path(), state.path());
    let (sse, _) = events(&d, "", &[]);
    let file = root.path().join("projects/-w-pages/s-pages.jsonl");
    for n in 0..5 {
        daemon::append(&file, turn("s-pages", "pages", n, "ls").as_bytes());
    }
    sse.until(Duration::from_secs(5), "the last result", |e| is_result_of(e, "toolu_s-pages_4"));
    let get = |query: &str| {
        let (status, _, body) = d.get(&format!("/api/sessions/s-pages/events{query}"), &[]);
        (status, serde_json::from_slice::<Value>(&body).unwrap_or_else(|e| panic!("{query}: not JSON ({e})")))
    };
    let ids = |v: &Value| v["events"].as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect::<Vec<_>>();
    // The history reads the bus on its own task: wait until it has the last result.
    let deadline = Instant::now() + Duration::from_secs(5);
    let plain = loop {
        let (status, v) = get("");
        assert_eq!(status, 200);
        if v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["tool_use_id"] == "toolu_s-pages_4" && e["type"] == "tool_result")
        {
            break v;
        }
        assert!(Instant::now() < deadline, "the history never got the last result: {v}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let all = ids(&plain);
    let n = all.len();
    assert!(n >= 15, "three events a turn at least: {n}");
    assert!(all.windows(2).all(|w| w[0] < w[1]), "oldest first: {all:?}");
    // The plain answer is as before the parameters: no `more`.
    let keys: Vec<&str> = plain.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["events", "last_event_id", "session_id", "truncated"]);
    assert_eq!(plain["truncated"], false);

    let page = |query: &str, want: &[u64], more: bool| {
        let (status, v) = get(query);
        assert_eq!(status, 200, "{query}: {v}");
        assert_eq!(ids(&v), want, "{query}");
        assert_eq!(v["more"], more, "{query}: more");
        assert_eq!(v["truncated"], false, "{query}: truncated");
        assert_eq!(v["session_id"], "s-pages");
        assert_eq!(v["last_event_id"], plain["last_event_id"], "{query}");
    };
    page("?limit=4", &all[n - 4..], true);
    page(&format!("?limit=4&before={}", all[n - 4]), &all[n - 8..n - 4], true);
    page(&format!("?before={}", all[3]), &all[..3], false);
    page(&format!("?limit=3&before={}", all[2]), &all[..2], false);
    page(&format!("?limit=2&before={}", all[2]), &all[..2], false);
    page("?limit=100000", &all, false);
    page("?before=0", &[], false);
    page(&format!("?before={}", all[n - 1] + 1000), &all, false);
    // Paging the pages back from the latest gives every event once, in order.
    let (mut got, mut before) = (Vec::new(), None::<u64>);
    loop {
        let (_, v) = get(&format!("?limit=4{}", before.map(|b| format!("&before={b}")).unwrap_or_default()));
        let mut p = ids(&v);
        before = p.first().copied();
        p.extend(got);
        got = p;
        if v["more"] == false {
            break;
        }
    }
    assert_eq!(got, all);
    // Filters as in /api/events, before the limit.
    let calls: Vec<u64> = plain["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "tool_use")
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(calls.len(), 5);
    page("?type=tool_use", &calls, false);
    page("?type=tool_use&limit=2", &calls[3..], true);
    page(&format!("?type=tool_use&tool=shell&before={}", calls[1]), &calls[..1], false);
    page("?type=tool_use&tool=Edit", &[], false);

    // A session not kept: empty, truncated, nothing more.
    let (status, _, body) = d.get("/api/sessions/nobody/events?limit=5", &[]);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (&v["events"], &v["truncated"], &v["more"]),
        (&serde_json::json!([]), &Value::Bool(true), &Value::Bool(false))
    );

    for (query, what) in [
        ("?limit=0", "limit"),
        ("?limit=-1", "limit"),
        ("?limit=abc", "limit"),
        ("?limit=", "limit"),
        ("?before=x", "before"),
        ("?before=-3", "before"),
        ("?limit=2&type=nope", "nope"),
    ] {
        let (status, headers, body) = d.get(&format!("/api/sessions/s-pages/events{query}"), &[]);
        assert_eq!(status, 400, "{query}");
        assert!(headers.iter().any(|(k, v)| k == "content-type" && v == "application/json"), "{query}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].as_str().is_some_and(|e| e.contains(what)), "{query}: {v}");
    }
}
