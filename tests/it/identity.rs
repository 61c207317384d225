//! Every counted fact has an identity taken from the transcript and counts once,
//! whatever file or copy it is read from: prompts, compactions and API errors by
//! the line's `uuid`, sessions by `sessionId` (also after they were forgotten).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::daemon::{Daemon, Metrics};
use super::support;

/// `scan --format prometheus` of a config root: its counters, exporter self-metrics left out.
fn scan_counters(config_root: &Path) -> BTreeMap<String, f64> {
    let state = tempfile::tempdir().expect("state dir");
    let out = Command::new(support::bin())
        .args(["scan", "--format", "prometheus", "--state-dir"])
        .arg(state.path())
        .env("CLAUDE_CONFIG_DIR", config_root)
        .output()
        .expect("run scan");
    assert!(out.status.success(), "scan failed: {}", String::from_utf8_lossy(&out.stderr));
    let m = Metrics::parse(&String::from_utf8(out.stdout).expect("utf-8"));
    m.counters().into_iter().filter(|(k, _)| !k.contains("_exporter_")).collect()
}

/// The transcripts directly in a project folder (`projects/<slug>/*.jsonl`).
fn main_files(config_root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for slug in std::fs::read_dir(config_root.join("projects")).unwrap() {
        let slug = slug.unwrap().path();
        for f in std::fs::read_dir(&slug).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "jsonl") && f.metadata().unwrap().len() > 0 {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_byte_identical_copy_counts_nothing_again() {
    let root = support::real_config_root();
    let before = scan_counters(root.path());
    let prompts: f64 =
        before.iter().filter(|(k, _)| k.starts_with("claude_sessions_prompts_total")).map(|(_, v)| v).sum();
    let compactions: f64 =
        before.iter().filter(|(k, _)| k.starts_with("claude_sessions_compactions_total")).map(|(_, v)| v).sum();
    // The corpus has what this test is about (else it could not fail).
    assert!(prompts >= 10.0 && compactions >= 1.0, "prompts {prompts}, compactions {compactions}");
    let files = main_files(root.path());
    for f in &files {
        // Named so that the copy has the same role (old layouts keep `agent-*.jsonl`
        // sub-agent files beside the main ones).
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let copy = match name.strip_prefix("agent-") {
            Some(rest) => f.with_file_name(format!("agent-copy{rest}")),
            None => f.with_file_name(format!("copy-{name}")),
        };
        std::fs::copy(f, copy).unwrap();
    }
    let after = scan_counters(root.path());
    let diff: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| format!("{k}: {:?} -> {:?}", before.get(k), after.get(k)))
        .collect();
    assert!(diff.is_empty(), "{} copies changed counters:\n{}", files.len(), diff.join("\n"));
}

/// A line of `session` typed by the user now, with a fresh `uuid`.
fn prompt_line(session: &str, uuid: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    format!(
        "{{\"type\":\"user\",\"uuid\":\"{uuid}\",\"sessionId\":\"{session}\",\"timestamp\":\"{}\",\"message\":{{\"role\":\"user\",\"content\":\"again\"}}}}\n",
        support::rfc3339(now)
    )
}

fn session_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["sessionId"].as_str().map(str::to_owned))
        .expect("a line with a sessionId")
}

#[test]
fn a_session_forgotten_after_retention_is_not_started_again() {
    let root = support::real_config_root();
    let state = tempfile::tempdir().unwrap();
    let started = |m: &Metrics| m.sum("claude_sessions_sessions_started_total", &[]);
    let live = |m: &Metrics| m.sum("claude_sessions_sessions", &[]);
    let args = ["--session-retention", "1ms"];
    let d = Daemon::start(root.path(), state.path(), &args);
    d.wait_ready(Duration::from_secs(30));
    // The fixtures are months old: every session ends at the first tick.
    d.wait_for(Duration::from_secs(30), |m| started(m) > 0.0 && live(m) == 0.0).expect("sessions ended");
    let first = d.metrics();
    d.stop();

    // The restart forgets the ended sessions (retention 1 ms) before reading on.
    let d = Daemon::start(root.path(), state.path(), &args);
    d.wait_ready(Duration::from_secs(30));
    let file = main_files(root.path()).into_iter().next().unwrap();
    let session = session_of(&file);
    // Wait for the prune (the loop's first wake-up), else the new line could come first.
    let forgotten = || d.get(&format!("/api/sessions/{session}"), &[]).0 == 404;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !forgotten() {
        assert!(std::time::Instant::now() < deadline, "session {session} not forgotten");
        std::thread::sleep(Duration::from_millis(50));
    }
    let prompts = first.sum("claude_sessions_prompts_total", &[]);
    support_append(&file, &prompt_line(&session, "9a0c1e52-0000-4000-8000-000000000001"));
    d.wait_for(Duration::from_secs(20), |m| m.sum("claude_sessions_prompts_total", &[]) == prompts + 1.0)
        .expect("the new prompt is counted");
    let m = d.metrics();
    assert_eq!(started(&m), started(&first), "a forgotten session was counted as started again");
    d.stop();
}

fn support_append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}
