//! Lines that are not what a transcript should hold (malformed JSON, binary
//! bytes, unknown record types, over-long lines, invalid UTF-8, a last line
//! without its newline) are counted by result, never stop the daemon, and
//! never put transcript content in the logs. Fixture:
//! `tests/fixtures/handmade/bad-lines.jsonl` (see the README there).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::daemon::{Daemon, Metrics, append};
use super::support::{self, fixtures_dir};

const MAX_LINE: &str = "4096";
const REL: &str = "projects/-work-demo/h1.jsonl";

/// Transcript text that must never reach a log.
const FORBIDDEN: [&str; 6] =
    ["SECRET-CANARY-0", "SECRET-CANARY-1", "SECRET-CANARY-2", "SECRET-CANARY-3", "SECRET-CANARY-4", "hello"];

/// What the fixture is expected to produce (from its README).
#[derive(Debug, PartialEq)]
struct Counts {
    ok: f64,
    malformed: f64,
    unknown_type: f64,
    oversized: f64,
    input: f64,
    output: f64,
    cache_read: f64,
    cache_creation: f64,
}

/// `bad-lines.jsonl` alone: its last line has no newline yet.
const BEFORE: Counts = Counts {
    ok: 3.0,
    malformed: 3.0,
    unknown_type: 1.0,
    oversized: 1.0,
    input: 101.0,
    output: 22.0,
    cache_read: 1000.0,
    cache_creation: 50.0,
};

/// After `bad-lines.rest` completed the last line.
const AFTER: Counts = Counts { ok: 4.0, input: 5101.0, output: 25.0, ..BEFORE };

fn handmade(name: &str) -> PathBuf {
    fixtures_dir().join("handmade").join(name)
}

fn from_metrics(m: &Metrics) -> Counts {
    let line = |r: &str| m.sum("claude_sessions_exporter_lines_total", &[("result", r)]);
    let tokens = |t: &str| m.sum("claude_sessions_tokens_total", &[("type", t)]);
    Counts {
        ok: line("ok"),
        malformed: line("malformed"),
        unknown_type: line("unknown_type"),
        oversized: line("oversized"),
        input: tokens("input"),
        output: tokens("output"),
        cache_read: tokens("cache_read"),
        cache_creation: tokens("cache_creation"),
    }
}

fn from_scan(projects: &Path) -> Counts {
    let out = Command::new(support::bin())
        .args(["scan", "--format", "json", "--max-line-bytes", MAX_LINE, "--projects-dir"])
        .arg(projects)
        .env("CLAUDE_SESSIONS_LOG", "debug")
        .output()
        .expect("run scan");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scan failed ({}): {stderr}", out.status);
    for s in FORBIDDEN {
        assert!(!stderr.contains(s), "scan logged transcript content {s:?}:\n{stderr}");
    }
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("scan json");
    let line = |k: &str| r["lines"][k].as_f64().unwrap_or_else(|| panic!("lines.{k} in {r}"));
    let tokens = |t: &str| r["models"].as_object().unwrap().values().map(|m| m[t].as_f64().unwrap()).sum();
    Counts {
        ok: line("ok"),
        malformed: line("malformed"),
        unknown_type: line("unknown_type"),
        oversized: line("oversized"),
        input: tokens("input"),
        output: tokens("output"),
        cache_read: tokens("cache_read"),
        cache_creation: tokens("cache_creation"),
    }
}

#[test]
fn malformed_oversize_binary_and_truncated_lines_are_counted_and_never_logged() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let file = root.path().join(REL);
    append(&file, &std::fs::read(handmade("bad-lines.jsonl")).unwrap());
    let mut d = Daemon::start(root.path(), state.path(), &["--max-line-bytes", MAX_LINE]);
    d.wait_ready(Duration::from_secs(20));
    assert_eq!(from_metrics(&d.metrics()), BEFORE, "after reading bad-lines.jsonl\n{}", d.log_text());

    append(&file, &std::fs::read(handmade("bad-lines.rest")).unwrap());
    let done = d.wait_for(Duration::from_secs(1), |m| {
        let c = from_metrics(m);
        c.input == AFTER.input && c.output == AFTER.output && c.ok == AFTER.ok
    });
    let now = from_metrics(&d.metrics());
    assert!(done.is_some(), "completed last line not counted within 1 s: {now:?}\n{}", d.log_text());
    assert_eq!(now, AFTER, "after appending bad-lines.rest");

    assert!(d.is_running(), "daemon exited; logs:\n{}", d.log_text());
    assert_eq!(d.get("/healthz", &[]).0, 200);

    let logs = d.log_text();
    for s in FORBIDDEN {
        let hits: Vec<&str> = logs.lines().filter(|l| l.contains(s)).collect();
        assert!(hits.is_empty(), "transcript content {s:?} in the logs:\n{}", hits.join("\n"));
    }
    assert!(
        logs.lines().any(|l| l.contains("Skipped malformed line.")),
        "no debug log line about a malformed line:\n{logs}"
    );
}

#[test]
fn scan_counts_the_same_bad_lines() {
    let root = tempfile::tempdir().unwrap();
    let projects = root.path().join("projects");
    let file = root.path().join(REL);
    append(&file, &std::fs::read(handmade("bad-lines.jsonl")).unwrap());
    assert_eq!(from_scan(&projects), BEFORE, "scan of bad-lines.jsonl");
    append(&file, &std::fs::read(handmade("bad-lines.rest")).unwrap());
    assert_eq!(from_scan(&projects), AFTER, "scan after appending bad-lines.rest");
}

/// `hostile-usage.jsonl`: one reply claims 2^63 tokens of every kind. Before the
/// bound it was clamped to 2^32 − 1 and added 4.29 G tokens and ~$21,000 each.
const HOSTILE: Counts = Counts {
    ok: 3.0,
    malformed: 1.0,
    unknown_type: 0.0,
    oversized: 0.0,
    input: 101.0,
    output: 22.0,
    cache_read: 1000.0,
    cache_creation: 50.0,
};

/// What the sane replies of `hostile-usage.jsonl` cost at Opus 4.6 prices, in USD.
const HOSTILE_COST: f64 = (101.0 * 5.0 + 22.0 * 25.0 + 1000.0 * 0.5 + 50.0 * 6.25) / 1e6;

#[test]
fn a_usage_out_of_range_makes_its_line_malformed_and_adds_nothing() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let projects = root.path().join("projects");
    append(&projects.join("-work-demo/h2.jsonl"), &std::fs::read(handmade("hostile-usage.jsonl")).unwrap());
    assert_eq!(from_scan(&projects), HOSTILE, "scan of hostile-usage.jsonl");

    let d = Daemon::start(root.path(), state.path(), &[]);
    d.wait_ready(Duration::from_secs(20));
    let m = d.metrics();
    assert_eq!(from_metrics(&m), HOSTILE, "daemon on hostile-usage.jsonl\n{}", d.log_text());
    assert_eq!(m.sum("claude_sessions_api_requests_total", &[]), 2.0);
    let cost = m.sum("claude_sessions_cost_usd_total", &[]);
    assert!((cost - HOSTILE_COST).abs() < 1e-9, "cost {cost}, want {HOSTILE_COST}");
    assert!(!d.log_text().contains("SECRET-CANARY-9"), "transcript content in the logs");
}
