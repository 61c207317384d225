//! `analyze` end to end: the binary over the real fixtures, its JSON checked against
//! counts made here from the JSONL (not by the daemon's code).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::support;

fn main_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            if name != "subagents" {
                main_files(&p, out);
            }
        } else if name.ends_with(".jsonl") && !name.starts_with("agent-") {
            out.push(p);
        }
    }
}

/// Main-chain calls of a file: first line of each (message.id, requestId) per session,
/// not a sidechain, not synthetic, with usage.
fn calls_in(path: &Path) -> usize {
    let mut seen = HashSet::new();
    for l in std::fs::read_to_string(path).unwrap().lines() {
        let Ok(v) = serde_json::from_str::<Value>(l) else { continue };
        let m = &v["message"];
        if v["type"] == "assistant"
            && v["isSidechain"] != true
            && m["model"] != "<synthetic>"
            && m["usage"].is_object()
            && m["id"].is_string()
        {
            seen.insert((v["sessionId"].to_string(), m["id"].to_string(), v["requestId"].to_string()));
        }
    }
    seen.len()
}

fn analyze(root: &Path, out: &Path, extra: &[&str]) -> Value {
    let o = Command::new(support::bin())
        .arg("analyze")
        .arg("--projects-dir")
        .arg(root.join("projects"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join("analyze.json")).unwrap()).unwrap()
}

#[test]
fn analyze_counts_every_main_chain_call_and_the_compaction() {
    let root = support::real_config_root();
    let out = tempfile::tempdir().unwrap();
    let a = analyze(root.path(), out.path(), &[]);
    assert_eq!(a["schema"], "claude-sessions/analyze/1");
    let mut files = Vec::new();
    main_files(&root.path().join("projects"), &mut files);
    assert_eq!(a["read"]["files"], files.len());
    let calls: usize = files.iter().map(|f| calls_in(f)).sum();
    assert_eq!(a["totals"]["calls"], calls, "main-chain calls, counted from the JSONL");
    assert_eq!(a["totals"]["compactions"], 1);
    let sessions = a["sessions"].as_array().unwrap();
    let compacted = sessions.iter().find(|s| s["id"] == "4d5611e5-241a-462a-8d15-5122611a9569").unwrap();
    assert_eq!(compacted["compaction_list"][0]["tokens_before"], 170_251);
    // Each session's trajectory file: a snapshot per call whose parts sum to its growth.
    for s in sessions {
        let id = s["id"].as_str().unwrap();
        let t: Value =
            serde_json::from_slice(&std::fs::read(out.path().join("sessions").join(format!("{id}.json"))).unwrap())
                .unwrap();
        let calls = t["calls"].as_array().unwrap();
        assert_eq!(calls.len(), s["calls"].as_u64().unwrap() as usize, "{id}");
        for c in calls {
            let sum: i64 = c["composition"].as_array().unwrap().iter().map(|p| p["tokens"].as_i64().unwrap()).sum();
            assert_eq!(sum, c["growth"].as_i64().unwrap(), "{id} call {}", c["index"]);
        }
    }
    // Nothing of the transcripts' text: a prompt of the compacted session is not in the output.
    let text = std::fs::read_to_string(out.path().join("analyze.json")).unwrap();
    assert!(!text.contains("This session is being continued"), "transcript text in analyze.json");
}

#[test]
fn analyze_keeps_the_sessions_a_filter_names() {
    let root = support::real_config_root();
    let out = tempfile::tempdir().unwrap();
    let a = analyze(root.path(), out.path(), &["--session", "4d5611e5"]);
    let ids: Vec<&str> = a["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["4d5611e5-241a-462a-8d15-5122611a9569"]);
    let all = analyze(root.path(), out.path(), &[]);
    let project = all["sessions"][0]["project"].as_str().unwrap().to_owned();
    let want = all["sessions"].as_array().unwrap().iter().filter(|s| s["project"] == project.as_str()).count();
    let some = analyze(root.path(), out.path(), &["--only", &format!("project={project}")]);
    assert_eq!(some["sessions"].as_array().unwrap().len(), want);
    let o = Command::new(support::bin()).args(["analyze", "--only", "colour=red", "--stdout"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("colour"));
}
