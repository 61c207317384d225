//! A checkpoint written by release 0.1.0 (format 1, counters stored by position) is
//! read by name: after the upgrade nothing decreases, nothing is counted again, and
//! the next lines count once — also for transcripts deleted since it was written.

use std::time::Duration;

use super::daemon::{self, Daemon, Metrics};
use super::support;

const PROJECTS: [&str; 2] = ["-src-deep-manifest", "-experiments-worktrees"];

#[test]
fn a_format_1_checkpoint_is_upgraded_without_loss_or_double_count() {
    let fixture = support::fixtures_dir().join("checkpoint-v1");
    let root = tempfile::tempdir().unwrap();
    for p in PROJECTS {
        let src = support::fixtures_dir().join("real/claude-code-log/projects").join(p);
        support::copy_tree(&src, &root.path().join("projects").join(p));
    }
    let state = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture.join("checkpoint.json")).unwrap();
    assert!(text.contains("\"format\":1"), "the fixture is a format 1 checkpoint");
    let root_path = root.path().to_str().unwrap();
    std::fs::write(state.path().join("checkpoint.json"), text.replace("@ROOT@", root_path)).unwrap();
    let old = Metrics::parse(&std::fs::read_to_string(fixture.join("metrics.txt")).unwrap());

    // One project's transcripts were cleaned up meanwhile: its counts can only come
    // from the old checkpoint (a checkpoint not understood would lose them).
    std::fs::remove_dir_all(root.path().join("projects").join(PROJECTS[1])).unwrap();
    assert!(old.sum("claude_sessions_prompts_total", &[("project", "worktrees")]) > 0.0);

    let d = Daemon::start(root.path(), state.path(), &[]);
    d.wait_ready(Duration::from_secs(30));
    let new = d.metrics();
    let new_counters = new.counters();
    let mut problems = Vec::new();
    for (k, v) in old.counters() {
        let now = new_counters.get(&k).copied().unwrap_or(0.0);
        // The exporter's own counters go on counting (checkpoint writes, …); what the
        // transcripts say stays exactly as it was.
        let ok = if k.contains("_exporter_") { now >= v } else { now == v };
        if !ok {
            problems.push(format!("{k}: served {v} by 0.1.0, now {now}"));
        }
    }
    for (name, labels, v) in &old.samples {
        if name.ends_with("_count") || name.ends_with("_sum") {
            let filter: Vec<(&str, &str)> = labels.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let now = new.sum(name, &filter);
            if now < *v {
                problems.push(format!("{name}{labels:?}: served {v} by 0.1.0, now {now}"));
            }
        }
    }
    assert!(problems.is_empty(), "after the upgrade:\n{}", problems.join("\n"));
    let prompts = old.sum("claude_sessions_prompts_total", &[]);
    assert!(prompts >= 10.0, "the fixture has prompts to lose ({prompts})");

    // A new prompt in one of the sessions: counted once; the session is not new.
    let file = root.path().join("projects/-src-deep-manifest/a7da6a22-facc-4fcd-8bab-f83c87862004.jsonl");
    let line = format!(
        "{{\"type\":\"user\",\"uuid\":\"0e8c7b1a-0000-4000-8000-00000000000a\",\"sessionId\":\"a7da6a22-facc-4fcd-8bab-f83c87862004\",\"timestamp\":\"{}\",\"message\":{{\"role\":\"user\",\"content\":\"one more\"}}}}\n",
        support::rfc3339(super::api::now_ms())
    );
    daemon::append(&file, line.as_bytes());
    d.wait_for(Duration::from_secs(20), |m| m.sum("claude_sessions_prompts_total", &[]) == prompts + 1.0)
        .expect("the new prompt counted once");
    let m = d.metrics();
    let started = |m: &Metrics| m.sum("claude_sessions_sessions_started_total", &[]);
    assert_eq!(started(&m), started(&old));
    d.stop();
    // The checkpoint is written in the current format.
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.path().join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(written["format"], 2);
    assert!(written["aggregator"]["store"]["counters"]["claude_sessions_prompts"]["series"].is_object());
}
