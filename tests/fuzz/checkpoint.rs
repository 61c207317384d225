//! Target `checkpoint_reader`: `checkpoint::load` on whatever bytes a
//! checkpoint file may hold after a disk error, a bad copy or an older build,
//! then an engine restored from what loaded, reading transcripts from there.
//!
//! Seeds are real checkpoints, made here by scanning real transcripts (not
//! committed): one after a full read, one with positions mid-file.
//!
//! Properties: no panic, no hang; a file that does not parse is an error and
//! is moved aside, never half-applied; one that parses restores an engine that
//! reads, ticks, renders `/metrics` and writes a checkpoint that loads again.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use claude_sessions::engine::checkpoint::{self, CheckpointError};
use claude_sessions::engine::{Engine, Settings};
use claude_sessions::server::Exposition;

use super::harness;

/// A small projects folder of real transcripts, for the whole run.
fn projects() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, projects) = DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("temp dir");
        let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real");
        let spotter = real.join("spotter/transcripts");
        for (from, to) in [
            (spotter.join("short.jsonl"), "-w-a/short.jsonl"),
            (spotter.join("tool_heavy.jsonl"), "-w-a/tool_heavy.jsonl"),
            (
                spotter.join("ae4a77f8-aedd-4bc1-888f-c94edc91af04/subagents/agent-acompact-946d2b.jsonl"),
                "-w-a/ae4a77f8-aedd-4bc1-888f-c94edc91af04/subagents/agent-acompact-946d2b.jsonl",
            ),
            (
                real.join(
                    "claude-code-log/projects/-Users-dain-workspace-coderabbit-review-helper/agent-1509e86b.jsonl",
                ),
                "-w-b/agent-1509e86b.jsonl",
            ),
        ] {
            let to = d.path().join("projects").join(to);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        }
        let projects = d.path().join("projects");
        (d, projects)
    });
    projects
}

fn engine() -> Engine {
    Engine::new(Settings { projects_dirs: vec![projects().to_owned()], ..Settings::default() })
}

pub fn run() {
    let mut full = engine();
    full.scan(1, &|_, _| {});
    let mut seeds = vec![full.checkpoint_bytes()];
    // Mid-file positions: a checkpoint of the same files cut short.
    let half = tempfile::tempdir().unwrap();
    let cut = half.path().join("projects");
    for f in files(projects()) {
        let to = cut.join(f.strip_prefix(projects()).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let data = std::fs::read(&f).unwrap();
        std::fs::write(&to, &data[..data.len() / 2]).unwrap();
    }
    let mut partial = Engine::new(Settings { projects_dirs: vec![cut.clone()], ..Settings::default() });
    partial.scan(1, &|_, _| {});
    let text = String::from_utf8(partial.checkpoint_bytes()).unwrap();
    seeds.push(text.replace(cut.to_str().unwrap(), projects().to_str().unwrap()).into_bytes());
    seeds.push(engine().checkpoint_bytes());
    for s in &seeds {
        assert!(serde_json::from_slice::<checkpoint::Checkpoint>(s).is_ok(), "seed is a checkpoint");
    }
    harness::run("checkpoint_reader", seeds, target);
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(files(&p)) } else { out.push(p) }
    }
    out
}

thread_local! {
    static STATE: tempfile::TempDir = tempfile::tempdir().expect("temp dir");
}

fn target(data: &[u8]) {
    STATE.with(|state| {
        let dir = state.path();
        let file = dir.join(checkpoint::FILE_NAME);
        std::fs::write(&file, data).unwrap();
        match checkpoint::load(dir) {
            Ok(Some(cp)) => exercise(cp),
            Ok(None) => panic!("a checkpoint file that exists was not found"),
            Err(CheckpointError::Corrupt { moved_to, .. }) => {
                assert!(!file.exists(), "a corrupt checkpoint stayed in place");
                assert_eq!(std::fs::read(&moved_to).expect("moved aside"), data, "moved aside unchanged");
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    });
}

fn exercise(cp: checkpoint::Checkpoint) {
    let mut e = engine();
    e.restore(cp);
    e.refresh_gauges();
    e.reconcile();
    e.set_caught_up();
    e.tick();
    e.prune(std::time::Duration::from_secs(3600));
    let exposition = Exposition::new(e.aggregator());
    assert!(!exposition.render(false).is_empty());
    assert!(!exposition.render(true).is_empty());
    let again = e.checkpoint_bytes();
    serde_json::from_slice::<checkpoint::Checkpoint>(&again).expect("the checkpoint written after restoring loads");
}
