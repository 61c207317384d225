//! What the sequences write: lines of a few small real transcripts (and the
//! hand-made `features.jsonl` for an API error and a compaction), with their ids
//! made unique per generated script by a tag, so that each new script brings
//! new facts while a copy of a file repeats its lines byte for byte.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::facts::Role;

/// A transcript to take lines from.
pub struct Source {
    pub name: &'static str,
    pub role: Role,
    lines: Vec<String>,
    /// Every id value in the lines (sessions, messages, requests, tool calls, uuids).
    ids: Vec<String>,
}

/// Keys whose string values are ids, wherever they are in a line.
const ID_KEYS: &[&str] = &[
    "uuid",
    "parentUuid",
    "logicalParentUuid",
    "leafUuid",
    "sessionId",
    "requestId",
    "id",
    "tool_use_id",
    "agentId",
    "messageId",
    "toolUseID",
    "parentToolUseID",
    "sourceToolUseID",
    "promptId",
];

fn collect_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if let Value::String(s) = v
                    && ID_KEYS.contains(&k.as_str())
                    && s.len() >= 6
                    && !out.contains(s)
                {
                    out.push(s.clone());
                }
                collect_ids(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_ids(v, out)),
        _ => {}
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A prompt and a reply in multi-byte text (2-, 3- and 4-byte characters), so that
/// chunks cut inside characters are common.
const UNICODE: &[&str] = &[
    r#"{"parentUuid":null,"isSidechain":false,"userType":"external","cwd":"/work/ünï","sessionId":"uni-session-0001","version":"2.1.114","gitBranch":"main","type":"user","message":{"role":"user","content":"Grüße aus Köln — 日本語のテキスト 🎉🚀 ça marche? Ελληνικά, русский, עברית"},"uuid":"uni-user-0001","timestamp":"2026-03-02T10:00:00.000Z"}"#,
    r#"{"parentUuid":"uni-user-0001","isSidechain":false,"userType":"external","cwd":"/work/ünï","sessionId":"uni-session-0001","version":"2.1.114","gitBranch":"main","type":"assistant","requestId":"req_uni_0001","message":{"id":"msg_uni_0001","model":"claude-opus-4-6","role":"assistant","content":[{"type":"text","text":"Hallo! 你好 🌍 — naïve café, Zürich ✓"}],"usage":{"input_tokens":17,"output_tokens":9,"cache_read_input_tokens":1234,"cache_creation_input_tokens":56}},"uuid":"uni-asst-0001","timestamp":"2026-03-02T10:00:03.000Z"}"#,
    r#"{"parentUuid":"uni-user-0001","isSidechain":false,"userType":"external","cwd":"/work/ünï","sessionId":"uni-session-0001","version":"2.1.114","gitBranch":"main","type":"assistant","requestId":"req_uni_0001","message":{"id":"msg_uni_0001","model":"claude-opus-4-6","role":"assistant","content":[{"type":"tool_use","id":"toolu_uni_0001","name":"Bash","input":{"command":"echo 'ünïcødé ✓'"}}],"usage":{"input_tokens":17,"output_tokens":42,"cache_read_input_tokens":1234,"cache_creation_input_tokens":56}},"uuid":"uni-asst-0002","timestamp":"2026-03-02T10:00:04.000Z"}"#,
    r#"{"parentUuid":"uni-asst-0002","isSidechain":false,"userType":"external","cwd":"/work/ünï","sessionId":"uni-session-0001","version":"2.1.114","gitBranch":"main","type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_uni_0001","content":"ünïcødé ✗ — échec","is_error":true}]},"uuid":"uni-user-0002","timestamp":"2026-03-02T10:00:05.000Z"}"#,
];

impl Source {
    fn load(name: &'static str, role: Role, rel: &str, max_lines: usize) -> Source {
        let path = fixtures().join(rel);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Source::of(
            name,
            role,
            text.lines().filter(|l| !l.trim().is_empty()).take(max_lines).map(str::to_owned).collect(),
        )
    }

    fn of(name: &'static str, role: Role, lines: Vec<String>) -> Source {
        let mut ids = Vec::new();
        for l in &lines {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}"));
            collect_ids(&v, &mut ids);
        }
        // Longest first: an id that is part of another is replaced after it.
        ids.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Source { name, role, lines, ids }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Line `i` with every id made unique to `tag` (`\n` included).
    pub fn line(&self, i: usize, tag: &str) -> Vec<u8> {
        let mut l = self.lines[i].clone();
        for id in &self.ids {
            let quoted = format!("\"{id}\"");
            if l.contains(&quoted) {
                l = l.replace(&quoted, &format!("\"{id}-{tag}\""));
            }
        }
        debug_assert!(serde_json::from_str::<Value>(&l).is_ok(), "{}: tagged line parses", self.name);
        l.push('\n');
        l.into_bytes()
    }
}

/// A line of an unknown type that starts every new script, so that a file
/// rewritten with a new script never has its old first line (nor the old bytes
/// before any position the daemon may hold).
pub fn marker(tag: &str) -> Vec<u8> {
    format!("{{\"type\":\"model-marker\",\"script\":\"{tag}\",\"pad\":\"{}\"}}\n", "·".repeat(7)).into_bytes()
}

/// All sources, by role.
pub struct Material {
    pub main: Vec<Source>,
    pub subagent: Vec<Source>,
    pub compaction: Vec<Source>,
}

impl Material {
    pub fn load() -> Material {
        let log = "real/claude-code-log/projects";
        Material {
            main: vec![
                Source::load("short", Role::Main, "real/spotter/transcripts/short.jsonl", 40),
                Source::load(
                    "claude_p",
                    Role::Main,
                    &format!("{log}/-src-experiments-claude_p/29ccd257-68b1-427f-ae5f-6524b7cb6f20.jsonl"),
                    40,
                ),
                Source::load(
                    "danieldemmel",
                    Role::Main,
                    &format!(
                        "{log}/-Users-dain-workspace-danieldemmel-me-next/b25638d7-b104-4f06-a797-70ac33d069ed.jsonl"
                    ),
                    24,
                ),
                Source::load("features", Role::Main, "handmade/features.jsonl", 40),
                Source::load(
                    "viewer",
                    Role::Main,
                    "real/claude-code-viewer/projects/sample-project/5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl",
                    20,
                ),
                Source::of("unicode", Role::Main, UNICODE.iter().map(|s| (*s).to_owned()).collect()),
            ],
            subagent: vec![
                Source::load(
                    "worktree-agent",
                    Role::Subagent,
                    &format!(
                        "{log}/-experiments-worktrees/ef958aa1-0e93-49f0-bb71-150f63befcd1/subagents/agent-a4ca7529859c158c2.jsonl"
                    ),
                    16,
                ),
                Source::load(
                    "claude_p-agent",
                    Role::Subagent,
                    &format!(
                        "{log}/-src-experiments-claude_p/29ccd257-68b1-427f-ae5f-6524b7cb6f20/subagents/agent-a2271d1.jsonl"
                    ),
                    16,
                ),
            ],
            compaction: vec![Source::load(
                "acompact",
                Role::Compaction,
                "real/spotter/transcripts/4d5611e5-241a-462a-8d15-5122611a9569/subagents/agent-acompact-e1f845.jsonl",
                10,
            )],
        }
    }

    pub fn of(&self, role: Role) -> &[Source] {
        match role {
            Role::Main => &self.main,
            Role::Subagent => &self.subagent,
            Role::Compaction => &self.compaction,
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Source> {
        self.main.iter().chain(&self.subagent).chain(&self.compaction)
    }
}
