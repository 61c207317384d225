//! Where transcripts live and what each file is.
//!
//! In: config roots (`CLAUDE_CONFIG_DIR`, else `~/.config/claude` and
//! `~/.claude`) or explicit projects folders. Out: every `*.jsonl` below each
//! `projects/` folder, classified as a main session, a sub-agent, or a
//! compaction call, with the project folder (slug) and the session it belongs
//! to (`docs/transcript-format.md` §1, §6). Folders that do not exist yet are not an
//! error: the watcher waits for them.
//!
//! Files are known by device and inode, and every real file is read once,
//! under one path. Symlinks in `projects/`: one to a regular file inside the
//! projects folders stands for that file, which is read under its own path
//! (once, whichever way it is reached); symlinks to folders are not followed,
//! nor symlinks that lead outside the projects folders. A folder symlink can
//! only lead to files that are either read already by their own path or not
//! ours to read, and following them is how `<slug>/loop -> ..` once made a
//! 20 MB history cost 9.2 GB of reads. Of two hard links to one file, the
//! first path in walk order (main files first, then by path) is the one read.

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
    /// Main session, sub-agent or compaction call, from the file's place and name.
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

/// A file's identity on disk: device and inode. Two paths with the same
/// identity are one file (a hard link, or a symlink and its target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// The device (filesystem) the file is on.
    pub dev: u64,
    /// The inode number on that device.
    pub ino: u64,
}

impl FileId {
    /// The identity in `m` (of the file itself, or of a symlink's target, as `m` was taken).
    #[cfg(unix)]
    pub fn of(m: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId { dev: m.dev(), ino: m.ino() }
    }

    /// Always 0/0 where there are no inodes: files are then known by path only.
    #[cfg(not(unix))]
    pub fn of(_: &std::fs::Metadata) -> FileId {
        FileId { dev: 0, ino: 0 }
    }

    /// The identity of what `path` names now (through symlinks); `None` if it cannot be looked at.
    pub fn of_path(path: &Path) -> Option<FileId> {
        std::fs::metadata(path).ok().map(|m| FileId::of(&m))
    }
}

/// A transcript file found by [`find`]: its path below a projects folder and its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub path: PathBuf,
    pub id: FileId,
    /// Size and modification time (ns since the epoch) when found: the reconcile
    /// compares them with the last read's, so the walk's one `stat` is all it needs.
    pub len: u64,
    pub mtime_ns: i128,
}

impl Found {
    pub(crate) fn new(path: PathBuf, m: &std::fs::Metadata) -> Found {
        let mtime_ns = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        Found { path, id: FileId::of(m), len: m.len(), mtime_ns }
    }
}

/// Every `*.jsonl` file below `dirs`, each real file once, sorted so that
/// main session files come before sub-agent files (a session's project is
/// known before its agents'). Of several paths to one file (hard links), the
/// first in that order is kept. Unreadable folders are reported in `errors`
/// and skipped.
pub fn walk(dirs: &[PathBuf], errors: &mut Vec<(PathBuf, std::io::Error)>) -> Vec<PathBuf> {
    let mut found = find(dirs, errors);
    found.sort_by_cached_key(|f| (order(dirs, &f.path), f.path.clone()));
    found.dedup_by(|a, b| a.path == b.path);
    let mut ids = std::collections::HashSet::with_capacity(found.len());
    found.into_iter().filter(|f| ids.insert(f.id)).map(|f| f.path).collect()
}

/// Main files first: `false` sorts before `true`, unclassified files last.
pub(crate) fn order(dirs: &[PathBuf], path: &Path) -> Option<bool> {
    dirs.iter().find_map(|d| classify(d, path)).map(|i| i.role != Role::Main)
}

/// Every path to a `*.jsonl` regular file below `dirs`, in no order, for the
/// periodic reconcile: a file with two names (a hard link) is listed under
/// both, with one identity.
///
/// Symlinks: one to a regular file inside `dirs` is listed under the file's
/// own path below `dirs` (so it is the same path as when the file is found
/// directly, and read once); one that leads outside `dirs`, or to a folder, is
/// not followed. Folders are known by identity and entered once, so even a
/// bind mount cannot make a loop.
pub(crate) fn find(dirs: &[PathBuf], errors: &mut Vec<(PathBuf, std::io::Error)>) -> Vec<Found> {
    let mut walker = Walker {
        roots: dirs.iter().filter_map(|d| Some((std::fs::canonicalize(d).ok()?, d.clone()))).collect(),
        folders: std::collections::HashSet::new(),
        out: Vec::new(),
        errors,
    };
    for dir in dirs {
        // Two roots that are one folder (one linked to the other) are walked once.
        match FileId::of_path(dir) {
            Some(id) if !walker.folders.insert(id) => {}
            _ => walker.walk_into(dir, 0),
        }
    }
    // Unsorted: a path that a symlink also leads to may come twice (callers key by path).
    walker.out
}

const MAX_DEPTH: usize = 8;

struct Walker<'a> {
    /// Each projects folder: its real path, and the path we were given (what files are named by).
    roots: Vec<(PathBuf, PathBuf)>,
    /// Folders entered.
    folders: std::collections::HashSet<FileId>,
    out: Vec<Found>,
    errors: &'a mut Vec<(PathBuf, std::io::Error)>,
}

impl Walker<'_> {
    fn walk_into(&mut self, dir: &Path, depth: usize) {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.errors.push((dir.to_owned(), e));
                return;
            }
        };
        for entry in rd.flatten() {
            let path = entry.path();
            // `file_type` and `metadata` of an entry do not follow symlinks.
            let Ok(ft) = entry.file_type() else { continue };
            let jsonl = path.extension().is_some_and(|e| e == "jsonl");
            if ft.is_dir() {
                if depth < MAX_DEPTH
                    && let Ok(m) = entry.metadata()
                    && self.folders.insert(FileId::of(&m))
                {
                    self.walk_into(&path, depth + 1);
                }
            } else if jsonl && ft.is_file() {
                if let Ok(m) = entry.metadata() {
                    self.out.push(Found::new(path, &m));
                }
            } else if jsonl
                && ft.is_symlink()
                && let Some(found) = self.inside(&path)
            {
                self.out.push(found);
            }
        }
    }

    /// Where the symlink at `link` leads, if to a `*.jsonl` regular file inside the roots.
    fn inside(&self, link: &Path) -> Option<Found> {
        let target = std::fs::canonicalize(link).ok()?;
        let m = std::fs::metadata(&target).ok()?;
        if !m.is_file() || target.extension().is_none_or(|e| e != "jsonl") {
            return None;
        }
        let path = self.roots.iter().find_map(|(real, given)| Some(given.join(target.strip_prefix(real).ok()?)))?;
        Some(Found::new(path, &m))
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
        assert!(walk(&[PathBuf::from("/nonexistent/projects")], &mut errs).is_empty());
        assert!(errs.is_empty(), "a folder that does not exist yet is not an error");
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("p/s1/subagents")).unwrap();
        for f in ["p/agent-x.jsonl", "p/s1/subagents/agent-y.jsonl", "p/s1.jsonl", "p/notes.txt"] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let files = walk(&[d.path().to_owned()], &mut errs);
        assert_eq!(names(d.path(), &files), ["p/s1.jsonl", "p/agent-x.jsonl", "p/s1/subagents/agent-y.jsonl"]);
    }

    fn names(root: &Path, files: &[PathBuf]) -> Vec<String> {
        files.iter().map(|f| f.strip_prefix(root).unwrap().to_str().unwrap().to_owned()).collect()
    }

    #[cfg(unix)]
    #[test]
    fn walk_reads_each_real_file_once_and_follows_no_folder_symlink() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("projects");
        let outside = d.path().join("elsewhere");
        for dir in [root.join("p/s1/subagents"), root.join("q"), outside.clone()] {
            std::fs::create_dir_all(dir).unwrap();
        }
        for f in ["p/s1.jsonl", "p/s1/subagents/agent-y.jsonl", "q/s2.jsonl"] {
            std::fs::write(root.join(f), "{}\n").unwrap();
        }
        std::fs::write(outside.join("o.jsonl"), "{}\n").unwrap();
        symlink("..", root.join("p/loop")).unwrap();
        symlink(root.join("p"), root.join("q/p-again")).unwrap();
        symlink("../p/s1.jsonl", root.join("q/alias.jsonl")).unwrap();
        symlink("s2.jsonl", root.join("q/self.jsonl")).unwrap();
        std::fs::hard_link(root.join("p/s1.jsonl"), root.join("q/zz-hard.jsonl")).unwrap();
        symlink(outside.join("o.jsonl"), root.join("q/outside.jsonl")).unwrap();
        symlink(&outside, root.join("ext")).unwrap();
        symlink(root.join("nowhere.jsonl"), root.join("q/dangling.jsonl")).unwrap();
        let want = ["p/s1.jsonl", "q/s2.jsonl", "p/s1/subagents/agent-y.jsonl"];
        let mut errs = Vec::new();
        assert_eq!(names(&root, &walk(std::slice::from_ref(&root), &mut errs)), want);
        // The same folder given twice, once through a link: still once.
        let alias = d.path().join("alias");
        symlink(&root, &alias).unwrap();
        assert_eq!(names(&root, &walk(&[root.clone(), alias], &mut errs)), want);
        assert!(errs.is_empty(), "{errs:?}");
        // The reconcile's listing names the hard link too, with the same identity.
        let found = find(std::slice::from_ref(&root), &mut errs);
        let id = |p: &str| found.iter().find(|f| f.path == root.join(p)).map(|f| f.id);
        // Unsorted, a path a symlink leads to possibly twice: 4 distinct paths.
        let paths: std::collections::BTreeSet<&Path> = found.iter().map(|f| f.path.as_path()).collect();
        assert_eq!(paths.len(), 4, "{found:?}");
        assert_eq!(id("q/zz-hard.jsonl"), id("p/s1.jsonl"));
    }
}
