//! `claude-sessions watch` and `claude-sessions sessions` as a user runs them: JSON
//! events within a second of an append, `--since` replays recent history only, filters,
//! the readable format (tool summary, errors, the session's running totals), Ctrl-C;
//! `sessions --json` on the real fixtures agrees with `scan` and the independent count.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use claude_sessions::events::{Event, Kind};
use serde_json::Value;

use super::api::{assistant, now_ms, results, turn, user};
use super::daemon;
use super::oracle;
use super::support;

const WITHIN: Duration = Duration::from_secs(1);

/// A running `watch`, its stdout lines in a channel.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    /// Start `watch` on `projects` and wait until it follows new lines.
    fn start(projects: &Path, args: &[&str]) -> Watch {
        let mut child = Command::new(support::bin())
            .arg("watch")
            .arg("--projects-dir")
            .arg(projects)
            .args(args)
            .env("CLAUDE_SESSIONS_LOG", "debug")
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn claude-sessions watch");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines() {
                let Ok(l) = l else { break };
                // Ready: history read (new lines are events from then on) and events subscribed.
                if l.contains("following new lines") || l.contains("Subscribed to events") {
                    let _ = ready_tx.send(());
                }
                sink.lock().unwrap().push(l);
            }
        });
        let w = Watch { child, lines, logs };
        for _ in 0..2 {
            if ready.recv_timeout(Duration::from_secs(30)).is_err() {
                panic!("watch did not start; stderr:\n{}", w.logs.lock().unwrap().join("\n"));
            }
        }
        w
    }

    /// Lines up to and including the first that satisfies `done`.
    fn until(&self, timeout: Duration, what: &str, done: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => {
                    let stop = done(&l);
                    got.push(l);
                    if stop {
                        return got;
                    }
                }
                Err(_) => panic!(
                    "{what}: not within {timeout:?}; got {got:#?}\nstderr:\n{}",
                    self.logs.lock().unwrap().join("\n")
                ),
            }
        }
    }

    fn drain(&self, quiet: Duration) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(quiet) {
            got.push(l);
        }
        got
    }

    /// Ctrl-C: exits 0, promptly.
    fn interrupt(mut self) {
        let ok = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "watch exited with {status} after Ctrl-C");
                return;
            }
            assert!(Instant::now() < deadline, "watch did not exit after Ctrl-C");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn event(line: &str) -> Event {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON event per line ({e}): {line}"))
}

fn is_result_of(line: &str, id: &str) -> bool {
    matches!(event(line).kind, Kind::ToolResult { ref tool_use_id, .. } if tool_use_id == id)
}

#[test]
fn watch_json_prints_an_appended_lines_events_within_a_second() {
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let w = Watch::start(&projects, &["--json"]);
    let file = projects.join("-w-api/s-watch.jsonl");
    let mut first_lat = Vec::new();
    let mut last_lat = Vec::new();
    for n in 1..=5 {
        let t0 = Instant::now();
        daemon::append(&file, turn("s-watch", "api", n, "cargo test --workspace").as_bytes());
        let first = w.until(Duration::from_secs(5), "an event", |_| true);
        first_lat.push(t0.elapsed());
        let tool = format!("toolu_s-watch_{n}");
        let mut got = first.clone();
        if !is_result_of(&first[0], &tool) {
            got.extend(w.until(Duration::from_secs(5), "the result", |l| is_result_of(l, &tool)));
        }
        last_lat.push(t0.elapsed());
        let events: Vec<Event> = got.iter().map(|l| event(l)).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
        let mut want = vec!["message", "message", "context_growth", "tool_use", "tool_result"];
        if n == 1 {
            want.insert(0, "session_start");
        }
        assert_eq!(kinds, want);
        assert!(events.iter().all(|e| e.session_id == "s-watch" && e.project == "api"));
        // The user's own terminal: tool summaries are on by default.
        let summary = events.iter().find_map(|e| match &e.kind {
            Kind::ToolUse { summary, .. } => summary.clone(),
            _ => None,
        });
        assert_eq!(summary.as_deref(), Some("cargo test --workspace"));
    }
    eprintln!("watch --json latency after append: first event {first_lat:?}, last event {last_lat:?}");
    for l in first_lat.iter().chain(&last_lat) {
        assert!(*l < WITHIN, "events took {l:?}");
    }
    w.interrupt();
}

#[test]
fn watch_since_replays_recent_history_then_follows() {
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    let now = now_ms();
    // Three hours ago, and five minutes ago.
    let old = now - 3 * 3_600_000;
    let recent = now - 5 * 60_000;
    let history = |sid: &str, t: i64| {
        [
            user(sid, "hist", t, "earlier"),
            assistant(
                sid,
                "hist",
                t + 1,
                &format!("msg_{sid}"),
                &[(&format!("toolu_{sid}"), "Grep", serde_json::json!({"pattern": "fn main"}))],
                (1, 2, 0),
            ),
            results(sid, "hist", t + 2, &[(&format!("toolu_{sid}"), false)]),
        ]
        .join("\n")
            + "\n"
    };
    daemon::append(&projects.join("-w-hist/s-old.jsonl"), history("s-old", old).as_bytes());
    daemon::append(&projects.join("-w-hist/s-recent.jsonl"), history("s-recent", recent).as_bytes());

    let w = Watch::start(&projects, &["--json", "--since", "1h"]);
    let replayed = w.until(Duration::from_secs(10), "replay", |l| is_result_of(l, "toolu_s-recent"));
    let events: Vec<Event> = replayed.iter().map(|l| event(l)).collect();
    assert!(events.iter().all(|e| e.session_id == "s-recent"), "only the last hour: {events:?}");
    assert_eq!(events[0].kind.name(), "session_start");
    assert_eq!(events[0].ts_ms, recent, "transcript times");
    // Then live.
    daemon::append(&projects.join("-w-hist/s-recent.jsonl"), turn("s-recent", "hist", 2, "ls").as_bytes());
    let live = w.until(Duration::from_secs(5), "live", |l| is_result_of(l, "toolu_s-recent_2"));
    assert!(live.iter().map(|l| event(l)).all(|e| e.session_id == "s-recent" && e.ts_ms > recent));
    drop(w);

    // Without --since: history is not replayed.
    let w = Watch::start(&projects, &["--json"]);
    daemon::append(&projects.join("-w-hist/s-recent.jsonl"), turn("s-recent", "hist", 3, "ls").as_bytes());
    let got = w.until(Duration::from_secs(5), "live only", |l| is_result_of(l, "toolu_s-recent_3"));
    assert_eq!(got.len(), 5, "just the new turn: {got:#?}");
}

#[test]
fn watch_filters_by_type_tool_and_project() {
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let w =
        Watch::start(&projects, &["--json", "--type", "tool_use,tool_result", "--tool", "shell", "--project", "app"]);
    let t = now_ms();
    let lines = [
        user("s-f", "app", t, "go"),
        assistant(
            "s-f",
            "app",
            t + 1,
            "msg_f1",
            &[
                ("toolu_read", "Read", serde_json::json!({"file_path": "/w/app/a.rs"})),
                ("toolu_bash", "Bash", serde_json::json!({"command": "make"})),
            ],
            (1, 1, 0),
        ),
        results("s-f", "app", t + 2, &[("toolu_read", false), ("toolu_bash", true)]),
    ];
    // Another project's Bash call first: filtered out.
    daemon::append(&projects.join("-w-other/s-o.jsonl"), turn("s-o", "other", 1, "make").as_bytes());
    daemon::append(&projects.join("-w-app/s-f.jsonl"), (lines.join("\n") + "\n").as_bytes());
    let got = w.until(Duration::from_secs(5), "the Bash result", |l| is_result_of(l, "toolu_bash"));
    let got: Vec<Event> = got.iter().map(|l| event(l)).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(matches!(&got[0].kind, Kind::ToolUse { name, .. } if name == "Bash"));
    assert!(matches!(&got[1].kind, Kind::ToolResult { name, is_error: true, .. } if name == "Bash"));
    assert!(got.iter().all(|e| e.project == "app"));
    assert!(w.drain(Duration::from_millis(300)).is_empty());

    // A bad type is refused with the list of types.
    let out = Command::new(support::bin())
        .args(["watch", "--type", "tool_call", "--projects-dir"])
        .arg(&projects)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tool_use"));
}

#[test]
fn watch_shows_the_command_errors_and_session_totals_readably() {
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    // stdout is a pipe: no colour unless asked.
    let w = Watch::start(&projects, &[]);
    let file = projects.join("-w-shop/3f2a91c0-0000-4000-8000-000000000001.jsonl");
    let sid = "3f2a91c0-0000-4000-8000-000000000001";
    let t = now_ms();
    let lines = [
        user(sid, "shop", t, "run the tests"),
        assistant(
            sid,
            "shop",
            t + 1,
            "msg_h1",
            &[("toolu_h1", "Bash", serde_json::json!({"command": "cargo test --workspace\necho done"}))],
            (100, 20, 1000),
        ),
    ];
    daemon::append(&file, (lines.join("\n") + "\n").as_bytes());
    let got = w.until(Duration::from_secs(5), "the tool_use line", |l| l.contains("tool_use"));
    let tool_line = got.last().unwrap();
    assert!(!got.concat().contains('\u{1b}'), "no colour on a pipe: {got:?}");
    assert!(tool_line.contains("3f2a91c0 ") && tool_line.contains("shop"), "{tool_line}");
    assert!(tool_line.contains("Bash cargo test --workspace"), "the command, first line only: {tool_line}");
    assert!(!tool_line.contains("echo done"));
    // The session's totals: 100 + 20 + 1000 tokens, one tool call.
    assert!(tool_line.contains("│ 1.1k tok  $0.") && tool_line.ends_with("1 tools"), "{tool_line}");

    daemon::append(&file, (results(sid, "shop", t + 2500, &[("toolu_h1", true)]) + "\n").as_bytes());
    let got = w.until(Duration::from_secs(5), "the result line", |l| l.contains("tool_result"));
    let result_line = got.last().unwrap();
    assert!(result_line.contains("Bash ✗ error 2.5s"), "{result_line}");
    assert!(result_line.ends_with("1 tools  1 err"), "{result_line}");
    w.interrupt();

    // --no-summaries leaves the command out; --color always colours.
    let w = Watch::start(&projects, &["--no-summaries", "--color", "always"]);
    daemon::append(&file, turn(sid, "shop", 2, "rm -rf target").as_bytes());
    let got = w.until(Duration::from_secs(5), "the tool_use line", |l| l.contains("tool_use"));
    let text = got.concat();
    assert!(!text.contains("rm -rf"), "{text}");
    assert!(text.contains("\u{1b}["), "colour when asked");
}

#[test]
fn sessions_json_lists_the_fixture_sessions_with_their_totals() {
    let root = support::real_config_root();
    let run = |args: &[&str]| {
        let out = Command::new(support::bin())
            .arg("sessions")
            .args(args)
            .env("CLAUDE_CONFIG_DIR", root.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let list: Vec<Value> = serde_json::from_str(&run(&["--json", "--limit", "0"])).unwrap();
    let scan = support::run_scan_json(root.path());
    let oracle = oracle::count(&root.path().join("projects"));

    assert_eq!(list.len() as u64, scan["sessions"].as_u64().unwrap());
    let ids: BTreeSet<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), list.len(), "each session once");
    let last: Vec<i64> = list.iter().map(|s| s["last_ms"].as_i64().unwrap()).collect();
    assert!(last.windows(2).all(|w| w[0] >= w[1]), "latest activity first");
    assert!(list.iter().all(|s| s["state"] == "ended"), "old transcripts have ended");

    let sum = |f: &dyn Fn(&Value) -> u64| list.iter().map(f).sum::<u64>();
    let tok = |ty: &'static str| move |s: &Value| s["tokens"][ty].as_u64().unwrap();
    let o = oracle.tokens.values().fold(oracle::Tokens::default(), |mut a, t| {
        a.input += t.input;
        a.output += t.output;
        a.cache_read += t.cache_read;
        a.cache_creation += t.cache_creation;
        a
    });
    assert_eq!(sum(&tok("input")), o.input);
    assert_eq!(sum(&tok("output")), o.output);
    assert_eq!(sum(&tok("cache_read")), o.cache_read);
    assert_eq!(sum(&tok("cache_creation")), o.cache_creation);
    assert_eq!(sum(&|s| s["tool_calls"].as_u64().unwrap()), oracle.tools.values().map(|t| t.0).sum::<u64>());
    assert_eq!(sum(&|s| s["tool_errors"].as_u64().unwrap()), oracle.tools.values().map(|t| t.1).sum::<u64>());
    assert_eq!(sum(&|s| s["prompts"].as_u64().unwrap()), scan["prompts"].as_u64().unwrap());
    let cost: f64 = list.iter().map(|s| s["cost_usd"].as_f64().unwrap()).sum();
    let scan_cost: f64 = scan["models"].as_object().unwrap().values().map(|m| m["cost_usd"].as_f64().unwrap()).sum();
    assert!((cost - scan_cost).abs() < 1e-6, "{cost} vs {scan_cost}");
    // Per project too.
    for (project, usage) in scan["projects"].as_object().unwrap() {
        let ours: u64 = list.iter().filter(|s| s["project"] == project.as_str()).map(tok("output")).sum();
        assert_eq!(ours, usage["output"].as_u64().unwrap(), "{project}");
    }

    // The table: a header and the 20 latest by default; filters.
    let table = run(&[]);
    // Without the footnote on sessions read only from sub-agent files.
    let rows: Vec<&str> = table.lines().filter(|l| !l.starts_with("* ")).collect();
    assert!(rows[0].starts_with("SESSION") && rows[0].contains("CONTEXT"), "{table}");
    assert_eq!(rows.len() - 1, list.len().min(20));
    let first_id = list[0]["id"].as_str().unwrap();
    assert!(rows[1].starts_with(&first_id[..8]), "{table}");
    let limited: Vec<Value> = serde_json::from_str(&run(&["--json", "--limit", "3"])).unwrap();
    assert_eq!(limited, list[..3]);
    let project = list[0]["project"].as_str().unwrap();
    let by_project: Vec<Value> = serde_json::from_str(&run(&["--json", "--project", project, "--limit", "0"])).unwrap();
    assert!(!by_project.is_empty() && by_project.iter().all(|s| s["project"] == project));
    // Old sessions are all ended: the filter is named as why the list is empty.
    assert_eq!(run(&["--state", "active"]), "no sessions match --state / --project\n");
}
