//! Where transcripts live and what each file is.
//!
//! In: config roots (`CLAUDE_CONFIG_DIR`, else `~/.config/claude` and
//! `~/.claude`) or explicit projects folders. Out: every `*.jsonl` below each
//! `projects/` folder, classified as a main session, a sub-agent, or a
//! compaction call, with the project folder (slug) and the session it belongs
//! to (`transcript-format.md` §1, §6). Folders that do not exist yet are not an
//! error: the watcher waits for them.

use std::path::{Path, PathBuf};

/// What a transcript file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `<slug>/<session>.jsonl`.
    Main,
    /// 2.0.x `<slug>/agent-<id>.jsonl`, 2.1.x `<slug>/<session>/subagents/agent-<id>.jsonl`.
    Subagent,
    /// `<slug>/<session>/subagents/agent-acompact-<id>.jsonl`: the summarisation call.
    Compaction,
}

/// A transcript file's place in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub role: Role,
    /// The project folder name under `projects/` (lossy; see `cwd` for the real path).
    pub slug: String,
    /// Session id from the layout: the file stem of a main file, the parent
    /// folder of a 2.1.x sub-agent; `None` for 2.0.x flat agent files (their
    /// lines carry the parent's `sessionId`).
    pub session: Option<String>,
    /// Agent id from the file name (`agent-<id>.jsonl`).
    pub agent: Option<String>,
}

/// Config roots: `CLAUDE_CONFIG_DIR` (comma-separated) if set, else the two defaults.
pub fn config_roots(env_value: Option<&str>, home: Option<&Path>) -> Vec<PathBuf> {
    if let Some(v) = env_value {
        let roots: Vec<PathBuf> = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect();
        if !roots.is_empty() {
            return roots;
        }
    }
    match home {
        Some(h) => vec![h.join(".config").join("claude"), h.join(".claude")],
        None => Vec::new(),
    }
}

/// The projects folders of the given roots.
pub fn projects_dirs(roots: &[PathBuf]) -> Vec<PathBuf> {
    roots.iter().map(|r| r.join("projects")).collect()
}

/// Classify `path` found below `projects_dir`; `None` if it is not a `.jsonl` file there.
pub fn classify(projects_dir: &Path, path: &Path) -> Option<FileInfo> {
    if path.extension()? != "jsonl" {
        return None;
    }
    let rel = path.strip_prefix(projects_dir).ok()?;
    let parts: Vec<&str> = rel.iter().map(|c| c.to_str().unwrap_or("")).collect();
    let stem = path.file_stem()?.to_str()?;
    let agent = stem.strip_prefix("agent-").map(str::to_owned);
    let role = match &agent {
        Some(id) if id.starts_with("acompact") => Role::Compaction,
        Some(_) => Role::Subagent,
        None if parts.len() <= 2 => Role::Main,
        // Files deeper than `<slug>/<file>` that are not agent files (workflow
        // journals and the like) belong to their session but are not its main file.
        None => Role::Subagent,
    };
    let (slug, session) = match parts.len() {
        0 | 1 => (String::new(), (role == Role::Main).then(|| stem.to_owned())),
        2 => (parts[0].to_owned(), (role == Role::Main).then(|| stem.to_owned())),
        _ => (parts[0].to_owned(), Some(parts[1].to_owned())),
    };
    Some(FileInfo { role, slug, session, agent })
}

/// Every `*.jsonl` file below `dir`, sorted so that main session files come
/// before sub-agent files (a session's project is known before its agents').
/// Unreadable folders are reported in `errors` and skipped.
pub fn walk(dir: &Path, errors: &mut Vec<(PathBuf, std::io::Error)>) -> Vec<PathBuf> {
    let mut out = walk_unordered(dir, errors);
    out.sort_by_cached_key(|p| (classify(dir, p).map(|i| i.role != Role::Main), p.clone()));
    out
}

/// [`walk`] without the ordering, for the periodic reconcile.
pub fn walk_unordered(dir: &Path, errors: &mut Vec<(PathBuf, std::io::Error)>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk_into(dir, 0, &mut out, errors);
    out
}

const MAX_DEPTH: usize = 8;

fn walk_into(dir: &Path, depth: usize, out: &mut Vec<PathBuf>, errors: &mut Vec<(PathBuf, std::io::Error)>) {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            errors.push((dir.to_owned(), e));
            return;
        }
    };
    for entry in rd.flatten() {
        let path = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        // Follow symlinks (people link project folders), but not forever.
        let is_dir = ft.is_dir() || (ft.is_symlink() && path.is_dir());
        if is_dir {
            if depth < MAX_DEPTH {
                walk_into(&path, depth + 1, out, errors);
            }
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_come_from_the_env_or_the_defaults() {
        let home = Path::new("/home/u");
        assert_eq!(
            config_roots(None, Some(home)),
            vec![PathBuf::from("/home/u/.config/claude"), PathBuf::from("/home/u/.claude")]
        );
        assert_eq!(config_roots(Some(" /a , /b,"), Some(home)), vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(config_roots(Some(""), Some(home)).len(), 2);
    }

    #[test]
    fn files_are_classified_by_layout() {
        let p = Path::new("/c/projects");
        let main = classify(p, Path::new("/c/projects/-a-b/1234.jsonl")).unwrap();
        assert_eq!(main, FileInfo { role: Role::Main, slug: "-a-b".into(), session: Some("1234".into()), agent: None });
        let flat = classify(p, Path::new("/c/projects/-a-b/agent-ea02459f.jsonl")).unwrap();
        assert_eq!((flat.role, flat.session, flat.agent.as_deref()), (Role::Subagent, None, Some("ea02459f")));
        let nested = classify(p, Path::new("/c/projects/-a-b/1234/subagents/agent-a2271d1.jsonl")).unwrap();
        assert_eq!((nested.role, nested.session.as_deref()), (Role::Subagent, Some("1234")));
        let compact = classify(p, Path::new("/c/projects/-a-b/1234/subagents/agent-acompact-e1f845.jsonl")).unwrap();
        assert_eq!(compact.role, Role::Compaction);
        assert!(classify(p, Path::new("/c/projects/-a-b/1234/subagents/agent-a.meta.json")).is_none());
    }

    #[test]
    fn walk_skips_missing_and_orders_main_files_first() {
        let mut errs = Vec::new();
        assert!(walk(Path::new("/nonexistent/projects"), &mut errs).is_empty());
        assert!(errs.is_empty(), "a folder that does not exist yet is not an error");
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("p/s1/subagents")).unwrap();
        for f in ["p/agent-x.jsonl", "p/s1/subagents/agent-y.jsonl", "p/s1.jsonl", "p/notes.txt"] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let files = walk(d.path(), &mut errs);
        let names: Vec<_> =
            files.iter().map(|f| f.strip_prefix(d.path()).unwrap().to_str().unwrap().to_owned()).collect();
        assert_eq!(names, ["p/s1.jsonl", "p/agent-x.jsonl", "p/s1/subagents/agent-y.jsonl"]);
    }
}
