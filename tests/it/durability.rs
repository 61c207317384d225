//! Nothing served is ever lost: lines counted, then removed from their file, then
//! `kill -9` before any checkpoint — the next process serves no less than the last
//! one did (the journal made them durable before they counted).

use std::time::Duration;

use super::daemon::{self, Daemon, Metrics};
use super::support;

/// A real session, appended whole to a fresh project once the daemon follows the folder.
const SESSION: &str = "real/claude-code-log/projects/-src-deep-manifest/a7da6a22-facc-4fcd-8bab-f83c87862004.jsonl";

fn tokens(m: &Metrics) -> f64 {
    m.sum("claude_sessions_tokens_total", &[])
}

#[test]
fn lines_removed_then_kill_9_before_a_checkpoint_lose_nothing() {
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(projects.join("-w-app")).unwrap();
    let state = tempfile::tempdir().unwrap();
    // No periodic checkpoint within the test: only the journal can keep what is counted.
    let args = ["--checkpoint-interval", "1h"];
    let d = Daemon::start(root.path(), state.path(), &args);
    d.wait_ready(Duration::from_secs(30));

    let src = support::fixtures_dir().join(SESSION);
    // What `scan` counts in the same file alone.
    let alone = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(alone.path().join("-w-app")).unwrap();
    std::fs::copy(&src, alone.path().join("-w-app/s.jsonl")).unwrap();
    let report = daemon::scan_projects(alone.path());
    let want = daemon::scan_tokens(&report, "input") + daemon::scan_tokens(&report, "output");
    let file = projects.join("-w-app").join("a7da6a22-facc-4fcd-8bab-f83c87862004.jsonl");
    daemon::append(&file, &std::fs::read(&src).unwrap());
    let counted = |m: &Metrics| {
        m.sum("claude_sessions_tokens_total", &[("type", "input")])
            + m.sum("claude_sessions_tokens_total", &[("type", "output")])
    };
    d.wait_for(Duration::from_secs(30), |m| counted(m) == want).expect("the session counted");
    let served = d.metrics();
    assert!(tokens(&served) > 1_000_000.0, "a session worth losing: {}", tokens(&served));

    // The lines go away, and the daemon dies before it could write a checkpoint.
    std::fs::remove_file(&file).unwrap();
    d.kill9();

    let d = Daemon::start(root.path(), state.path(), &args);
    d.wait_ready(Duration::from_secs(30));
    let after = d.metrics();
    let after_counters = after.counters();
    let lower: Vec<String> = served
        .counters()
        .into_iter()
        .filter(|(k, v)| after_counters.get(k).copied().unwrap_or(0.0) < *v)
        .map(|(k, v)| format!("{k}: served {v}, then {:?}", after_counters.get(&k)))
        .collect();
    assert!(lower.is_empty(), "served lower after kill -9:\n{}", lower.join("\n"));
    assert_eq!(tokens(&after), tokens(&served));
    let journal = std::fs::metadata(state.path().join("journal.jsonl")).map(|m| m.len()).unwrap_or(0);
    eprintln!("journal after the replay: {journal} bytes; tokens kept: {}", tokens(&after));
    d.stop();
}
