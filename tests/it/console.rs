//! The browser console at `/`, in a real browser: headless Chromium (Debian's `chromium`)
//! driven over the DevTools protocol by `tests/browser/console.mjs` (playwright-core,
//! installed by scripts/test.sh), against `serve` on loopback.
//!
//! A real session with a sub-agent (its main file and its `subagents/` file) is replayed
//! live, its lines written with current timestamps: the session must appear in the
//! sessions view within a second of its first line, and its timeline must show exactly
//! its tool calls (names and count equal to a count made here from the JSONL, not by the
//! daemon), its errors and its sub-agents, both live and when opened later (from
//! `/api/sessions/{id}/events`). Its context composition chart must sum, by source, to
//! the context growth counted here and to the `context_added_tokens_total` counter.
//! Any message in the browser console fails the test. The screenshots in
//! docs/screenshots/ are the ones this test takes: it writes them under the target
//! folder, and over docs/screenshots/ with `CS_UPDATE_SCREENSHOTS=1` (so that a test run
//! does not leave the checkout changed).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::daemon::{self, Daemon};
use super::support;

const SESSION: &str = "ef958aa1-0e93-49f0-bb71-150f63befcd1";
const SLUG: &str = "-experiments-worktrees";

/// node, the driver script `tests/browser/<script>`, and Chromium; `None` (after a loud
/// notice) when one is missing outside CI. On CI (`$CI` set) a missing one fails the test.
pub fn browser_tools(script: &str) -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/browser").join(script);
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let node = Command::new("node").arg("--version").output().ok().filter(|o| o.status.success());
    let mut missing = Vec::new();
    if node.is_none() {
        missing.push("node (Node.js)".to_owned());
    }
    if !chromium.is_file() {
        missing.push(format!("chromium at {}", chromium.display()));
    }
    // Every package tests/browser/package.json names (playwright-core, ajv, ...).
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("tests/browser/package.json")).unwrap()).unwrap();
    for name in manifest["dependencies"].as_object().unwrap().keys() {
        if !root.join("tests/browser/node_modules").join(name).join("package.json").is_file() {
            missing.push(format!("{name} in tests/browser/node_modules"));
        }
    }
    if missing.is_empty() {
        return Some((PathBuf::from("node"), script));
    }
    let what = missing.join(", ");
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("the browser tests need {what}: run scripts/test.sh (installs chromium and playwright-core)");
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED the browser console test: {what} missing. Run scripts/test.sh to install. !!!!!!!!\n"
    );
    None
}

/// What the transcript files say, counted here: tool calls by id (name), error results,
/// `Task`/`Agent` calls, and the sub-agents' ids.
struct Expected {
    tools: Vec<String>,
    errors: usize,
    spawns: usize,
    agents: BTreeSet<String>,
}

fn count(files: &[PathBuf]) -> Expected {
    let mut calls = BTreeMap::new();
    let mut failed = BTreeSet::new();
    let mut agents = BTreeSet::new();
    for f in files {
        for raw in std::fs::read_to_string(f).unwrap().lines() {
            let Ok(v) = serde_json::from_str::<Value>(raw) else { continue };
            if let Some(a) = v.get("agentId").and_then(Value::as_str) {
                agents.insert(a.to_owned());
            }
            let Some(blocks) = v.pointer("/message/content").and_then(Value::as_array) else { continue };
            for b in blocks {
                let id = b.get("id").or(b.get("tool_use_id")).and_then(Value::as_str).unwrap_or_default().to_owned();
                match b.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        calls.insert(id, b["name"].as_str().unwrap_or_default().to_owned());
                    }
                    Some("tool_result") if b.get("is_error").and_then(Value::as_bool) == Some(true) => {
                        failed.insert(id);
                    }
                    _ => {}
                }
            }
        }
    }
    let mut tools: Vec<String> = calls.values().cloned().collect();
    tools.sort();
    let spawns = calls.values().filter(|n| *n == "Task" || *n == "Agent").count();
    Expected { tools, errors: failed.len(), spawns, agents }
}

/// A main file's main-chain calls (first-seen responses with usage), how many of them
/// grew the context, and the sum of their positive growth: prompt tokens less the
/// context before, which a compaction sets to its `postTokens`. Counted here from the
/// JSON, not by the daemon.
fn main_chain_growth(file: &Path) -> (usize, usize, i64) {
    let (mut calls, mut grew, mut growth, mut before) = (0, 0, 0, 0);
    let mut seen = BTreeSet::new();
    for raw in std::fs::read_to_string(file).unwrap().lines() {
        let Ok(v) = serde_json::from_str::<Value>(raw) else { continue };
        if v["isSidechain"] == true {
            continue;
        }
        if v["subtype"] == "compact_boundary" {
            before = v["compactMetadata"]["postTokens"].as_i64().unwrap_or(0);
        }
        let (m, u) = (&v["message"], &v["message"]["usage"]);
        if v["type"] != "assistant" || !u.is_object() || m["model"] == "<synthetic>" || v["isApiErrorMessage"] == true {
            continue;
        }
        if !seen.insert((m["id"].to_string(), v["requestId"].to_string())) {
            continue;
        }
        let n = |k: &str| u[k].as_i64().unwrap_or(0);
        let prompt = n("input_tokens") + n("cache_creation_input_tokens") + n("cache_read_input_tokens");
        calls += 1;
        grew += usize::from(prompt > before);
        growth += (prompt - before).max(0);
        before = prompt;
    }
    (calls, grew, growth)
}

/// The lines of `files` (paths relative to `dir`), each `timestamp` replaced by
/// `at(first, last, ts)` (first and last: the files' earliest and latest times).
fn restamped(dir: &Path, files: &[PathBuf], at: impl Fn(i64, i64, i64) -> i64) -> Vec<(PathBuf, String)> {
    let mut parsed = Vec::new();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for f in files {
        for raw in std::fs::read_to_string(f).unwrap().lines() {
            let Ok(v) = serde_json::from_str::<Value>(raw) else { continue };
            let ts = v.get("timestamp").and_then(Value::as_str).and_then(support::parse_rfc3339);
            if let Some(ts) = ts {
                (first, last) = (first.min(ts), last.max(ts));
            }
            parsed.push((f.strip_prefix(dir).unwrap().to_path_buf(), v, ts));
        }
    }
    parsed
        .into_iter()
        .map(|(rel, mut v, ts)| {
            if let Some(ts) = ts {
                v["timestamp"] = Value::String(support::rfc3339(at(first, last, ts)));
            }
            (rel, v.to_string() + "\n")
        })
        .collect()
}

/// The node driver, killed if the test fails before it ends.
pub struct Driver(Child);

/// Start `node script args…`: the driver, its stdin, and the JSON lines it prints.
pub fn driver(node: &Path, script: &Path, args: &[&str]) -> (Driver, ChildStdin, mpsc::Receiver<Value>) {
    let mut child = Command::new(node)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node");
    let stdout = child.stdout.take().unwrap();
    let stdin = child.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    (Driver(child), stdin, rx)
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where browser tests write screenshots (created): docs/screenshots/ with
/// `CS_UPDATE_SCREENSHOTS=1`, else under the target folder (so that a test run does not
/// leave the checkout changed).
pub fn screenshots_dir() -> PathBuf {
    let shots = if std::env::var_os("CS_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    };
    std::fs::create_dir_all(&shots).unwrap();
    shots
}

/// `(width, height)` of a PNG file.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

#[test]
fn console_shows_a_live_session_with_its_tool_calls_errors_and_subagents() {
    let Some((node, script)) = browser_tools("console.mjs") else { return };
    let src = support::fixtures_dir().join("real/claude-code-log/projects").join(SLUG);
    let main_file = src.join(format!("{SESSION}.jsonl"));
    let agent_dir = src.join(SESSION).join("subagents");
    let mut agent_files: Vec<PathBuf> =
        std::fs::read_dir(&agent_dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    agent_files.sort();
    let files: Vec<PathBuf> = std::iter::once(main_file.clone()).chain(agent_files.iter().cloned()).collect();
    let expected = count(&files);
    assert!(expected.tools.len() > 50 && expected.errors > 0 && expected.spawns > 0 && !expected.agents.is_empty());

    let now = super::api::now_ms();
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(projects.join(SLUG)).unwrap();
    let state = tempfile::tempdir().unwrap();
    // Two neighbours for the sessions view: one that went quiet 10 minutes ago (idle), one still going.
    let real = support::fixtures_dir().join("real/claude-code-log/projects");
    for (slug, file, end) in [
        ("-src-deep-manifest", "a7da6a22-facc-4fcd-8bab-f83c87862004.jsonl", now - 600_000),
        ("-Users-dain-workspace-coderabbit-review-helper", "cb2e607c-c758-415a-8b45-c49e4631906a.jsonl", now - 20_000),
    ] {
        let dir = real.join(slug);
        for (rel, line) in restamped(&dir, &[dir.join(file)], |_, last, ts| end - (last - ts) / 20) {
            daemon::append(&projects.join(slug).join(rel), line.as_bytes());
        }
    }
    let d = Daemon::start(root.path(), state.path(), &["--include-content"]);
    d.wait_ready(Duration::from_secs(30));
    let url = format!("http://{}/", d.addr);
    // The page itself: its type and its policy.
    let (status, headers, _) = d.get("/", &[]);
    assert_eq!(status, 200);
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or_default();
    assert!(header("content-type").starts_with("text/html"));
    assert!(header("content-security-policy").contains("default-src 'self'"));

    let shots = screenshots_dir();
    for view in ["sessions", "session"] {
        for scheme in ["light", "dark"] {
            let _ = std::fs::remove_file(shots.join(format!("{view}-{scheme}.png")));
        }
    }
    let expect_tools = expected.tools.len().to_string();
    let args =
        [url.as_str(), "--session", SESSION, "--expect-tools", &expect_tools, "--screenshots", shots.to_str().unwrap()];
    let (_driver, mut stdin, rx) = driver(&node, &script, &args);
    let ready = rx.recv_timeout(Duration::from_secs(60)).expect("the driver's page never connected");
    assert_eq!(ready["ready"], true, "{ready}");

    // Lines restamped to now (the daemon only sends events for lines stamped after its
    // start), their gaps shrunk 1000×, in the order a session writes them.
    let start = super::api::now_ms();
    let lines = restamped(&src, &files, |first, _, ts| start + (ts - first) / 1000);
    // The first line, then "go": the driver times the session's appearance from here.
    let write = |(rel, line): &(PathBuf, String)| daemon::append(&projects.join(SLUG).join(rel), line.as_bytes());
    write(&lines[0]);
    stdin.write_all(b"go\n").unwrap();
    for chunk in lines[1..].chunks(16) {
        for l in chunk {
            write(l);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    stdin.write_all(b"done\n").unwrap();
    let out = rx.recv_timeout(Duration::from_secs(120)).expect("the driver gave no result");
    let r = &out["result"];
    assert!(r.get("failure").is_none(), "driver failed: {}\nlogs:\n{}", r["failure"], d.log_text());

    eprintln!(
        "console: appeared in {} ms; sessions row {}; live timeline {} rows, {} errors, {} spawns, lanes {}",
        r["appeared_ms"],
        r["row"],
        r["live"]["rows"],
        r["live"]["tool_errors"],
        r["live"]["spawns"],
        r["live"]["lanes"]
    );
    eprintln!("server history: {}; stream: {}; fresh page: {}", r["server_history"], r["stream"], r["history"]);
    let appeared = r["appeared_ms"].as_u64().unwrap();
    assert!(appeared <= 1000, "the session appeared after {appeared} ms");
    assert_eq!(r["row"]["tools"], expected.tools.len(), "tool calls in the sessions view: {}", r["row"]);
    assert_eq!(r["search_hides"], true);
    assert_eq!(r["search_restores"], true);
    assert_eq!(r["hash"], format!("#/session/{SESSION}"), "Enter opens the selected session");
    assert_eq!(r["back_to_list"], true, "Esc goes back");
    assert_eq!((&r["toggle_changes_theme"], &r["toggle_restores_theme"]), (&Value::Bool(true), &Value::Bool(true)));
    let bg = &r["backgrounds"];
    for view in ["sessions", "session"] {
        assert_ne!(bg[format!("{view}-light")], bg[format!("{view}-dark")], "{view}: dark looks like light");
    }
    for (name, t) in [("live", &r["live"]), ("from history", &r["history"])] {
        let mut tools: Vec<String> =
            t["tools"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        tools.sort();
        assert_eq!(tools, expected.tools, "tool calls in the {name} timeline");
        assert_eq!(t["tool_errors"], expected.errors, "errors in the {name} timeline");
        assert_eq!(t["spawns"], expected.spawns, "sub-agents spawned in the {name} timeline");
        let lanes: BTreeSet<String> =
            t["lanes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        assert_eq!(lanes, expected.agents, "sub-agent lanes in the {name} timeline");
    }
    assert!(r["table_overflow"].as_i64().unwrap() <= 0, "the table is wider than 1280: {}", r["table_overflow"]);
    assert!(r["phone_overflow"].as_i64().unwrap() <= 0, "wider than a phone: {}", r["phone_overflow"]);

    // The context composition chart: one column per main-chain call, its totals by source
    // summing to the positive growth counted from the JSONL, and equal to the
    // `context_added_tokens_total` counter of the session's project.
    let (calls, grew, growth) = main_chain_growth(&main_file);
    assert!(calls > 10 && growth > 10_000, "{calls} calls, {growth} tokens");
    let (status, _, body) = d.get(&format!("/api/sessions/{SESSION}"), &[]);
    assert_eq!(status, 200);
    let project = serde_json::from_slice::<Value>(&body).unwrap()["project"].as_str().unwrap().to_owned();
    let metrics = d.metrics();
    for (name, c) in [("live", &r["live_composition"]), ("from history", &r["history_composition"])] {
        eprintln!(
            "composition ({name}): {} calls, {} columns, {}; legend {}",
            c["calls"], c["rects"], c["label"], c["legend"]
        );
        assert_eq!(c["calls"], calls, "main-chain calls in the {name} composition chart");
        let sources = c["sources"].as_object().unwrap();
        let sum: i64 = sources.values().map(|v| v.as_i64().unwrap()).sum();
        assert_eq!(sum, growth, "the {name} composition against the JSONL's growth");
        assert!(sources.keys().any(|k| k.starts_with("tool_result:")), "{sources:?}");
        for (source, tokens) in sources {
            let counted =
                metrics.sum("claude_sessions_context_added_tokens_total", &[("project", &project), ("source", source)]);
            assert_eq!(tokens.as_f64().unwrap(), counted, "{name}: {source} against /metrics");
        }
        let legend: i64 = c["legend"].as_array().unwrap().iter().map(|g| g[1].as_i64().unwrap()).sum();
        assert_eq!(legend, growth, "the {name} legend's groups cover every source once");
        // Every call that grew the context has a column (of one box or more); one each when
        // the session has fewer calls than the chart has columns.
        assert!(calls <= 300 && c["rects"].as_u64().unwrap() >= grew as u64, "{grew} calls grew: {}", c["rects"]);
    }

    let messages = r["console"].as_array().unwrap();
    assert!(messages.is_empty(), "browser console: {messages:#?}");
    for name in ["sessions-light", "sessions-dark", "session-light", "session-dark"] {
        assert_eq!(png_size(&shots.join(format!("{name}.png"))), (1280, 800), "{name}.png");
    }
    d.stop();
}
