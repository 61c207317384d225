//! The file source under faults a real home folder can hold: symlink loops and
//! links in `projects/`, and a transcript rewritten in place (same inode, same
//! first line, longer than what was read), while the daemon was stopped or
//! between two polls. Expected numbers come from the un-faulted files: the
//! independent count of `oracle.rs` and a fresh `scan`, never from the daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::daemon::{Daemon, Metrics, append, empty_root, real};
use super::restart::content_diff;
use super::{oracle, support};

const READY_WITHIN: Duration = Duration::from_secs(60);
const TYPES: [&str; 4] = ["input", "output", "cache_read", "cache_creation"];

/// `scan --format prometheus` over one projects folder.
fn scan_metrics(projects: &Path) -> Metrics {
    let out = std::process::Command::new(support::bin())
        .args(["scan", "--format", "prometheus", "--projects-dir"])
        .arg(projects)
        .output()
        .expect("run scan");
    assert!(out.status.success(), "scan failed: {}", String::from_utf8_lossy(&out.stderr));
    Metrics::parse(&String::from_utf8(out.stdout).expect("utf-8"))
}

fn symlink(target: impl AsRef<Path>, link: &Path) {
    std::os::unix::fs::symlink(target.as_ref(), link)
        .unwrap_or_else(|e| panic!("symlink {} -> {}: {e}", link.display(), target.as_ref().display()));
}

/// Tokens per type, API requests and tool calls, as the oracle counts them.
fn oracle_totals(projects: &Path) -> (Vec<(&'static str, f64)>, f64, f64) {
    let o = oracle::count(projects);
    let tokens = TYPES
        .iter()
        .map(|ty| {
            let n: u64 = o
                .tokens
                .values()
                .map(|t| match *ty {
                    "input" => t.input,
                    "output" => t.output,
                    "cache_read" => t.cache_read,
                    _ => t.cache_creation,
                })
                .sum();
            (*ty, n as f64)
        })
        .collect();
    let requests = o.tokens.values().map(|t| t.requests).sum::<u64>() as f64;
    let tools = o.tools.values().map(|(calls, _)| calls).sum::<u64>() as f64;
    (tokens, requests, tools)
}

fn daemon_totals(m: &Metrics) -> (Vec<(&'static str, f64)>, f64, f64) {
    let tokens = TYPES.iter().map(|ty| (*ty, m.sum("claude_sessions_tokens_total", &[("type", ty)]))).collect();
    (tokens, m.sum("claude_sessions_api_requests_total", &[]), m.sum("claude_sessions_tool_calls_total", &[]))
}

/// `projects/<slug>/loop -> ..`, a file symlink and a hard link inside the
/// roots, and a file and a folder symlinked from outside them: every real file
/// below `projects/` is read once, nothing outside is read, no loop is followed.
#[test]
fn symlink_loops_and_links_in_projects_read_each_real_file_once() {
    let clean = support::real_config_root();
    let faulted = support::real_config_root();
    let outside = tempfile::tempdir().unwrap();
    let projects = faulted.path().join("projects");
    let spotter_main = "-spotter-transcripts/4d5611e5-241a-462a-8d15-5122611a9569.jsonl";
    symlink("..", &projects.join("-src-deep-manifest").join("loop"));
    symlink(projects.join("-src-deep-manifest"), &projects.join("-src-deep-manifest").join("self"));
    symlink(format!("../{spotter_main}"), &projects.join("-src-deep-manifest").join("zz-also.jsonl"));
    // Sorts after the original, so the original's path (and project) is the one kept.
    std::fs::hard_link(projects.join(spotter_main), projects.join("-spotter-transcripts").join("zz-hard.jsonl"))
        .unwrap();
    let foreign = real("claude-code-log/projects/-src-deep-manifest/a7da6a22-facc-4fcd-8bab-f83c87862004.jsonl");
    std::fs::copy(&foreign, outside.path().join("s.jsonl")).unwrap();
    symlink(outside.path().join("s.jsonl"), &projects.join("-experiments-ideas").join("zz-outside.jsonl"));
    std::fs::create_dir(outside.path().join("-linked")).unwrap();
    std::fs::copy(&foreign, outside.path().join("-linked").join("s2.jsonl")).unwrap();
    symlink(outside.path().join("-linked"), &projects.join("-linked"));

    let clean_projects = clean.path().join("projects");
    let real_files = oracle::jsonl_files(&clean_projects);
    let real_bytes: u64 = real_files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    let expected = scan_metrics(&clean_projects);
    assert!(expected.sum("claude_sessions_compactions_total", &[]) > 0.0, "the corpus has compactions");

    let scanned = scan_metrics(&projects);
    assert_eq!(content_diff("faulted", &scanned, "clean", &expected), Vec::<String>::new(), "scan");
    assert_eq!(scanned.sum("claude_sessions_exporter_bytes_read_total", &[]), real_bytes as f64);

    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start(faulted.path(), state.path(), &[]);
    d.wait_ready(READY_WITHIN);
    let m = d.metrics();
    assert_eq!(m.sum("claude_sessions_exporter_files_tracked", &[]), real_files.len() as f64, "files tracked");
    assert_eq!(m.sum("claude_sessions_exporter_bytes_read_total", &[]), real_bytes as f64, "bytes read");
    assert_eq!(content_diff("serve, faulted", &m, "scan, clean", &expected), Vec::<String>::new());
    assert_eq!(daemon_totals(&m), oracle_totals(&clean_projects), "tokens, requests and tools as the oracle counts");
    d.stop();
}

const SESSION: &str = "4d5611e5-241a-462a-8d15-5122611a9569";

/// A transcript as first seen (its first line, then its second half) and as
/// rewritten in place later (the whole file: same first line, longer).
fn first_and_rewritten() -> (Vec<u8>, Vec<u8>) {
    let full = std::fs::read(real(&format!("spotter/transcripts/{SESSION}.jsonl"))).unwrap();
    let lines: Vec<&[u8]> = full.split_inclusive(|b| *b == b'\n').collect();
    let mut first = lines[0].to_vec();
    for l in &lines[lines.len() / 2..] {
        first.extend_from_slice(l);
    }
    assert!(full.len() > first.len());
    (first, full)
}

fn transcript(root: &Path) -> PathBuf {
    root.join("projects").join("-spotter-transcripts").join(format!("{SESSION}.jsonl"))
}

/// Rewrite in place: truncated and written again through the same inode.
fn rewrite_in_place(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(path).unwrap().ino();
    std::fs::write(path, bytes).unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().ino(), ino, "same inode");
}

/// A daemon that has read the first version of the transcript (with `extra`
/// flags), its folders, and the rewritten version to write.
struct FirstRead {
    root: tempfile::TempDir,
    state: tempfile::TempDir,
    full: Vec<u8>,
    daemon: Daemon,
}

fn first_read(extra: &[&str]) -> FirstRead {
    let root = empty_root();
    let (first, full) = first_and_rewritten();
    append(&transcript(root.path()), &first);
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(root.path(), state.path(), extra);
    daemon.wait_ready(READY_WITHIN);
    assert_eq!(daemon_totals(&daemon.metrics()), oracle_totals(&root.path().join("projects")), "first version");
    FirstRead { root, state, full, daemon }
}

/// Stopped after reading a file; the file is truncated and rewritten longer,
/// with the same first line. The restarted daemon must notice that the bytes
/// before its saved offset changed, and read the file again from the start.
#[test]
fn a_transcript_rewritten_while_stopped_is_read_again_from_the_start() {
    let FirstRead { root, state, full, daemon } = first_read(&[]);
    daemon.stop();

    rewrite_in_place(&transcript(root.path()), &full);
    let expected = oracle_totals(&root.path().join("projects"));
    let d = Daemon::start(root.path(), state.path(), &[]);
    d.wait_ready(READY_WITHIN);
    let m = d.metrics();
    assert_eq!(daemon_totals(&m), expected, "after the restart, everything in the rewritten file");
    assert_eq!(m.sum("claude_sessions_exporter_truncations_total", &[]), 1.0, "one file truncated and rewritten");
    assert_eq!(m.sum("claude_sessions_exporter_rotations_total", &[]), 0.0);
    d.stop();
}

/// The same rewrite while the daemon runs, between two polls (`--poll`: no
/// event can report the truncation on its own before the new bytes are there).
#[test]
fn a_transcript_rewritten_between_two_polls_is_read_again_from_the_start() {
    let FirstRead { root, state: _state, full, daemon: d } = first_read(&["--poll", "--reconcile-interval", "300ms"]);
    rewrite_in_place(&transcript(root.path()), &full);
    let expected = oracle_totals(&root.path().join("projects"));
    let settled = d.wait_for(Duration::from_secs(20), |m| {
        daemon_totals(m) == expected && m.sum("claude_sessions_exporter_truncations_total", &[]) == 1.0
    });
    let m = d.metrics();
    assert!(
        settled.is_some(),
        "not every token of the rewritten file was counted: {:?} (expected {expected:?}), truncations {}",
        daemon_totals(&m),
        m.sum("claude_sessions_exporter_truncations_total", &[])
    );
    assert_eq!(m.sum("claude_sessions_exporter_rotations_total", &[]), 0.0);
    d.stop();
}

/// The projects folder deleted and made again while the daemon runs with file
/// events and the folder walk far off (as it is while events are trusted): its
/// deletion and return are seen by events alone, the new folder is watched, and a
/// session written there is counted within seconds, not at the next walk.
#[test]
fn a_projects_folder_deleted_and_made_again_is_followed_by_events() {
    let root = empty_root();
    let (first, _) = first_and_rewritten();
    append(&transcript(root.path()), &first);
    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start(root.path(), state.path(), &["--reconcile-interval", "600s"]);
    d.wait_ready(READY_WITHIN);
    let projects = root.path().join("projects");
    assert_eq!(daemon_totals(&d.metrics()), oracle_totals(&projects), "first version");

    // What should be counted in the end: the first file (its counts stay) and the new one.
    let expect = tempfile::tempdir().unwrap();
    let later = std::fs::read(real("spotter/transcripts/tool_heavy.jsonl")).unwrap();
    append(&transcript(expect.path()), &first);
    append(&expect.path().join("projects/-later/s2.jsonl"), &later);
    let expected = oracle_totals(&expect.path().join("projects"));
    assert_ne!(expected, oracle_totals(&projects), "the new file adds something");

    std::fs::remove_dir_all(&projects).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    append(&projects.join("-later/s2.jsonl"), &later);
    let settled = d.wait_for(Duration::from_secs(10), |m| daemon_totals(m) == expected);
    assert!(
        settled.is_some(),
        "the file in the new projects folder was not counted: {:?} (expected {expected:?})\n{}",
        daemon_totals(&d.metrics()),
        d.log_text()
    );
    d.stop();
}
