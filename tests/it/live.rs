//! `serve` follows files as they are written: each scenario appends real
//! transcript lines in pieces and checks `/metrics` against `scan` of the same
//! bytes (`scan` itself is checked against an independent count and ccusage in
//! `accuracy`).

use std::path::Path;
use std::time::Duration;

use super::daemon::{Daemon, Metrics, append, empty_root, lines_of, real, scan_projects, scan_tokens};

const TYPES: [&str; 4] = ["input", "output", "cache_read", "cache_creation"];
/// The acceptance bound for a complete line's effect to show.
const VISIBLE_WITHIN: Duration = Duration::from_secs(1);

fn tokens(m: &Metrics, ty: &str) -> f64 {
    m.sum("claude_sessions_tokens_total", &[("type", ty)])
}

/// Write `bytes` to `rel` in the shadow tree, compute what scan says of the
/// shadow, then write the same bytes to the live tree and wait for `/metrics`
/// to agree. Returns how long that took.
fn step(d: &Daemon, shadow: &Path, live: &Path, rel: &str, bytes: &[u8]) -> Duration {
    append(&shadow.join(rel), bytes);
    let expect = scan_projects(shadow);
    let want: Vec<f64> = TYPES.iter().map(|t| scan_tokens(&expect, t)).collect();
    let calls: f64 = expect["tools"].as_object().unwrap().values().map(|t| t["calls"].as_f64().unwrap()).sum();
    // Lines too: a last line with no tokens must have landed before the next step.
    let lines: f64 = expect["lines"].as_object().unwrap().values().map(|n| n.as_f64().unwrap()).sum();
    append(&live.join(rel), bytes);
    d.wait_for(VISIBLE_WITHIN * 5, |m| {
        TYPES.iter().zip(&want).all(|(t, w)| tokens(m, t) == *w)
            && m.sum("claude_sessions_tool_calls_total", &[]) == calls
            && m.sum("claude_sessions_exporter_lines_total", &[]) == lines
    })
    .unwrap_or_else(|| {
        let m = d.metrics();
        let got: Vec<f64> = TYPES.iter().map(|t| tokens(&m, t)).collect();
        panic!("{rel}: /metrics never matched scan: want {want:?} got {got:?}\n{}", d.log_text())
    })
}

#[test]
fn appends_in_pieces_show_within_a_second() {
    let root = empty_root();
    let shadow = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    // The projects folder does not exist yet: the daemon waits for it.
    let d = Daemon::start(root.path(), state.path(), &[]);
    d.wait_ready(Duration::from_secs(20));
    let live = root.path().join("projects");
    let main_rel = "-w-review/cb2e607c-c758-415a-8b45-c49e4631906a.jsonl";
    let main = lines_of(&real(
        "claude-code-log/projects/-Users-dain-workspace-coderabbit-review-helper/cb2e607c-c758-415a-8b45-c49e4631906a.jsonl",
    ));
    let mut took = Vec::new();

    // Several lines at once, into a folder created after start.
    took.push(step(&d, shadow.path(), &live, main_rel, &main[..60].concat()));
    // One line at a time.
    for l in &main[60..70] {
        took.push(step(&d, shadow.path(), &live, main_rel, l));
    }

    // Half a line has no effect until it is completed.
    let line = &main[70];
    let half = line.len() / 2;
    let before = d.metrics();
    append(&live.join(main_rel), &line[..half]);
    append(&shadow.path().join(main_rel), &line[..half]);
    std::thread::sleep(Duration::from_millis(1500));
    let during = d.metrics();
    for t in TYPES {
        assert_eq!(tokens(&during, t), tokens(&before, t), "half line changed {t}");
    }
    assert_eq!(
        during.sum("claude_sessions_exporter_lines_total", &[]),
        before.sum("claude_sessions_exporter_lines_total", &[]),
        "half line was counted as a line"
    );
    took.push(step(&d, shadow.path(), &live, main_rel, &line[half..]));

    // The rest in one write, then a new project folder with a 2.0.x flat sub-agent.
    took.push(step(&d, shadow.path(), &live, main_rel, &main[71..].concat()));
    let deep = "claude-code-log/projects/-src-deep-manifest";
    took.push(step(
        &d,
        shadow.path(),
        &live,
        "-src-deep/a7da6a22-facc-4fcd-8bab-f83c87862004.jsonl",
        &std::fs::read(real(&format!("{deep}/a7da6a22-facc-4fcd-8bab-f83c87862004.jsonl"))).unwrap(),
    ));
    took.push(step(
        &d,
        shadow.path(),
        &live,
        "-src-deep/agent-c8d9b115.jsonl",
        &std::fs::read(real(&format!("{deep}/agent-c8d9b115.jsonl"))).unwrap(),
    ));
    // A 2.1.x sub-agent in a nested folder that appears after the watch started.
    let p = "claude-code-log/projects/-src-experiments-claude_p/29ccd257-68b1-427f-ae5f-6524b7cb6f20";
    took.push(step(
        &d,
        shadow.path(),
        &live,
        "-x/29ccd257-68b1-427f-ae5f-6524b7cb6f20.jsonl",
        &std::fs::read(real(&format!("{p}.jsonl"))).unwrap(),
    ));
    took.push(step(
        &d,
        shadow.path(),
        &live,
        "-x/29ccd257-68b1-427f-ae5f-6524b7cb6f20/subagents/agent-a2271d1.jsonl",
        &std::fs::read(real(&format!("{p}/subagents/agent-a2271d1.jsonl"))).unwrap(),
    ));

    let worst = took.iter().max().unwrap();
    eprintln!("append→visible over {} steps: worst {:?}", took.len(), worst);
    assert!(*worst < VISIBLE_WITHIN, "slowest step took {worst:?}: {took:?}");
    // Sub-agent usage is labelled as such.
    let m = d.metrics();
    assert!(m.sum("claude_sessions_tokens_total", &[("query_source", "subagent")]) > 0.0);
    assert_eq!(m.sum("claude_sessions_exporter_files_tracked", &[]), 5.0);
}

/// A file that shrinks is read again from the start; lines seen before add nothing.
#[test]
fn truncation_restarts_the_file_without_double_counting() {
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let f = root.path().join("projects/-t/s.jsonl");
    let lines = lines_of(&real("spotter/transcripts/tool_heavy.jsonl"));
    append(&f, &lines.concat());
    let d = Daemon::start(root.path(), state.path(), &[]);
    d.wait_ready(Duration::from_secs(20));
    let full = d.metrics();
    assert!(tokens(&full, "cache_read") > 0.0);

    // Truncate and write the first lines again: the file restarts, the dedup
    // window knows these responses, totals stay.
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.set_len(0).unwrap();
    drop(file);
    append(&f, &lines[..5].concat());
    assert!(
        d.wait_for(Duration::from_secs(5), |m| m.sum("claude_sessions_exporter_truncations_total", &[]) == 1.0)
            .is_some(),
        "truncation not counted"
    );
    let after = d.metrics();
    for t in TYPES {
        assert_eq!(tokens(&after, t), tokens(&full, t), "{t} changed after rewriting seen lines");
    }
    // New lines after the truncation are counted.
    let other = std::fs::read(real("spotter/transcripts/short.jsonl")).unwrap();
    let shadow = tempfile::tempdir().unwrap();
    append(&shadow.path().join("-t/other.jsonl"), &other);
    let extra = scan_tokens(&scan_projects(shadow.path()), "cache_read");
    assert!(extra > 0.0);
    append(&f, &other);
    let want = tokens(&full, "cache_read") + extra;
    assert!(
        d.wait_for(Duration::from_secs(5), |m| tokens(m, "cache_read") == want).is_some(),
        "new lines after truncation missing"
    );
}

/// A file replaced by another (rename over it: new inode) is read from its start.
#[test]
fn replacement_restarts_the_file() {
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let f = root.path().join("projects/-r/s.jsonl");
    append(&f, &std::fs::read(real("spotter/transcripts/short.jsonl")).unwrap());
    let d = Daemon::start(root.path(), state.path(), &[]);
    d.wait_ready(Duration::from_secs(20));
    let first = tokens(&d.metrics(), "cache_read");

    let replacement = std::fs::read(real("spotter/transcripts/tool_heavy.jsonl")).unwrap();
    let shadow = tempfile::tempdir().unwrap();
    append(&shadow.path().join("-r/x.jsonl"), &replacement);
    let second = scan_tokens(&scan_projects(shadow.path()), "cache_read");
    let tmp = root.path().join("projects/-r/s.jsonl.tmp");
    std::fs::write(&tmp, &replacement).unwrap();
    std::fs::rename(&tmp, &f).unwrap();
    let seen = d.wait_for(Duration::from_secs(5), |m| {
        m.sum("claude_sessions_exporter_rotations_total", &[]) == 1.0 && tokens(m, "cache_read") == first + second
    });
    assert!(seen.is_some(), "replacement not read from the start: {:?}", tokens(&d.metrics(), "cache_read"));
}

/// A deleted file is drained through the handle held while it was active, then forgotten.
#[test]
fn deletion_drains_the_file_and_forgets_it() {
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let f = root.path().join("projects/-d/s.jsonl");
    let lines = lines_of(&real("spotter/transcripts/tool_heavy.jsonl"));
    append(&f, &lines[0]);
    let d = Daemon::start(root.path(), state.path(), &[]);
    d.wait_ready(Duration::from_secs(20));
    // Activity after start: the daemon now holds the file open.
    let shadow = tempfile::tempdir().unwrap();
    append(&shadow.path().join("-d/s.jsonl"), &lines[0]);
    let half = lines.len() / 2;
    step(&d, shadow.path(), &root.path().join("projects"), "-d/s.jsonl", &lines[..half].concat()[lines[0].len()..]);
    append(&shadow.path().join("-d/s.jsonl"), &lines[half..].concat());
    let want = scan_tokens(&scan_projects(shadow.path()), "cache_read");
    // The rest lands and the file is deleted at once.
    append(&f, &lines[half..].concat());
    std::fs::remove_file(&f).unwrap();
    let seen = d.wait_for(Duration::from_secs(10), |m| {
        tokens(m, "cache_read") == want && m.sum("claude_sessions_exporter_files_tracked", &[]) == 0.0
    });
    assert!(seen.is_some(), "want {want}, got {}", tokens(&d.metrics(), "cache_read"));
}

/// `--poll`: no file events at all, only the periodic scan; appends still show.
#[test]
fn poll_mode_follows_appends_without_file_events() {
    let root = empty_root();
    let shadow = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start(root.path(), state.path(), &["--poll", "--reconcile-interval", "100ms"]);
    d.wait_ready(Duration::from_secs(20));
    let lines = lines_of(&real("spotter/transcripts/short.jsonl"));
    let live = root.path().join("projects");
    let mut took = vec![step(&d, shadow.path(), &live, "-p/s.jsonl", &lines[..5].concat())];
    took.push(step(&d, shadow.path(), &live, "-p/s.jsonl", &lines[5..].concat()));
    assert!(took.iter().all(|t| *t < VISIBLE_WITHIN), "{took:?}");
    assert!(!d.log_text().contains("Watching folder"), "--poll must not set up file watches");
}
