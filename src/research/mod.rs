//! Context-engineering research: consumers of the facts for `analyze`.
//!
//! In: a session's lines, as the same facts the metrics count ([`Entry`](crate::transcript::entry::Entry))
//! plus the research features of each line ([`LineFeatures`]: sizes, hashes, salient
//! tokens; never text). Out: per session, the context after each main-chain call and
//! what filled it ([`ContextTracker`], [`Snapshot`]), its compactions, and the steps
//! the analyses read ([`SessionRecord`]); from a record, each compaction and what it
//! summarised ([`CompactionReport`]), the session's trajectory ([`Trajectory`]), which
//! tool results the model used ([`SessionInfluence`]) and its prompts against their
//! turns ([`PromptRecord`]); what a context holds by source call by call
//! ([`composition`]); statistics for comparing groups of sessions ([`stats`]) and inline
//! SVG charts for the static HTML report ([`charts`]). The rules are documented in
//! `docs/research.md`.

pub mod charts;
pub mod compaction;
pub mod composition;
pub mod features;
pub mod influence;
pub mod prompts;
pub mod stats;
pub mod summary;
pub mod tokens;
pub mod tracker;
pub mod trajectory;

pub use compaction::{CompactionReport, CompactionStats};
pub use features::{LineFeatures, PromptFeatures, Source};
pub use influence::{Matched, ResultInfluence, SessionInfluence, ToolInfluence};
pub use prompts::{Outcome, Patterns, PromptRecord};
pub use summary::SessionSummary;
pub use tokens::{TokenKind, TokenSet};
pub use tracker::{Compaction, ContextTracker, Part, SessionRecord, Snapshot, Step};
pub use trajectory::{Trajectory, TrajectoryClass};

/// Test helpers: files through the real parse and a tracker per session.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::{ContextTracker, LineFeatures, SessionRecord};
    use crate::transcript::entry::Entry;
    use crate::transcript::parse_line;

    /// A path under `tests/fixtures/`.
    pub(crate) fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
    }

    /// Every `.jsonl` file under `tests/fixtures/real`, sorted.
    pub(crate) fn real_files() -> Vec<PathBuf> {
        jsonl_files("real")
    }

    /// Every `.jsonl` file under `tests/fixtures/<rel>`, sorted.
    pub(crate) fn jsonl_files(rel: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "jsonl") {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&fixture(rel), &mut out);
        out.sort();
        out
    }

    /// Every session of one file through its own tracker: session id → record.
    pub(crate) fn records(path: &Path) -> BTreeMap<String, SessionRecord> {
        let text = std::fs::read_to_string(path).unwrap();
        let mut trackers: BTreeMap<String, ContextTracker> = BTreeMap::new();
        for l in text.lines() {
            let Ok(line) = parse_line(l.as_bytes()) else { continue };
            let e = Entry::from_line(&line);
            let Some(s) = e.session_id.as_deref() else { continue };
            let tracker = trackers.get(s);
            let f = LineFeatures::read_for(l, &e, &|id| tracker.is_some_and(|t| t.is_test_call(id)));
            trackers.entry(s.to_owned()).or_insert_with(|| ContextTracker::new(s)).push(&e, &f);
        }
        trackers.into_iter().map(|(k, t)| (k, t.finish())).collect()
    }

    /// The record of a file that holds one session (panics otherwise).
    pub(crate) fn record_of(path: &Path) -> SessionRecord {
        let mut all = records(path);
        assert_eq!(all.len(), 1, "{} holds {} sessions", path.display(), all.len());
        all.pop_first().unwrap().1
    }
}
