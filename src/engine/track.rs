//! Which files are followed: classifying paths under the projects folders, one
//! path per file on disk (no symlinks, no second names), and the periodic
//! reconcile that finds new files, drains and forgets vanished ones and reads
//! what changed. Folders that cannot be listed count once per failure episode.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{Engine, Stat, Tracked, now_ms};
use crate::source::discover::{self, FileId, FileInfo, Role};
use crate::source::tail::Tail;
use crate::state::metrics::Counter;

impl Engine {
    pub(super) fn classify(&self, path: &Path) -> Option<FileInfo> {
        self.settings.projects_dirs.iter().find_map(|d| discover::classify(d, path))
    }

    /// Start following `path` if it is a transcript below a projects folder,
    /// and not a symlink nor a second path to a file already followed (see
    /// `discover`: a symlink's target inside the projects folders is followed
    /// under its own path). Returns whether `path` is followed.
    pub fn track(&mut self, path: &Path) -> bool {
        if self.files.contains_key(path) {
            return true;
        }
        let mut known = self.known_ids();
        self.track_new(path, &mut known)
    }

    /// Which path follows each file, as last seen.
    pub(super) fn known_ids(&self) -> HashMap<FileId, PathBuf> {
        self.files.iter().filter_map(|(p, t)| Some((t.id?, p.clone()))).collect()
    }

    pub(super) fn track_new(&mut self, path: &Path, known: &mut HashMap<FileId, PathBuf>) -> bool {
        if self.files.contains_key(path) {
            return true;
        }
        let Some(info) = self.classify(path) else { return false };
        // A path that cannot be looked at (gone already) is tracked as before: polling drops it.
        let id = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => return false,
            Ok(m) => Some(FileId::of(&m)),
            Err(_) => None,
        };
        if let Some(id) = id {
            // The other path may since have been deleted and its inode reused: look again.
            if let Some(other) = known.get(&id)
                && other != path
                && FileId::of_path(other) == Some(id)
            {
                tracing::debug!(path = %path.display(), other = %other.display(), "Same file as one followed; not read twice.");
                return false;
            }
            known.insert(id, path.to_owned());
        }
        self.files.insert(path.to_owned(), Tracked::new(info, Tail::default(), false, id));
        true
    }

    /// Walk every projects folder: track new files, drain and forget vanished
    /// ones, then read whatever changed. Returns the number of files with new data.
    pub fn reconcile(&mut self) -> usize {
        let mut errors = Vec::new();
        let found = discover::find(&self.settings.projects_dirs, &mut errors);
        // Every name of a file counts as seen, so a file followed under one name
        // is not taken for gone because the walk also met another.
        let seen: HashMap<PathBuf, Stat> =
            found.into_iter().map(|f| (f.path, Stat { len: f.len, id: f.id, mtime_ns: f.mtime_ns })).collect();
        // New files in path order, main files first (their sessions name the project).
        let dirs = &self.settings.projects_dirs;
        let mut new: Vec<&PathBuf> = seen.keys().filter(|p| !self.files.contains_key(*p)).collect();
        new.sort_by_cached_key(|p| (discover::order(dirs, p), *p));
        let new: Vec<PathBuf> = new.into_iter().cloned().collect();
        if !new.is_empty() {
            let mut known = self.known_ids();
            for p in new {
                self.track_new(&p, &mut known);
            }
        }
        self.folder_errors(errors);
        // Only files whose size, identity or mtime moved (or that vanished), and
        // those that failed last time, are read.
        let mut stale: Vec<(bool, PathBuf)> = self
            .files
            .iter()
            .filter(|(p, t)| self.failing_files.contains(*p) || seen.get(*p).is_none_or(|s| t.stat != Some(*s)))
            .map(|(p, t)| (t.info.role != Role::Main, p.clone()))
            .collect();
        stale.sort();
        let mut stale: Vec<PathBuf> = stale.into_iter().map(|(_, p)| p).collect();
        let mut changed = 0;
        // Before catching up (serve's first walk: all of history), the files that
        // are there are read on several threads, as `scan` reads them.
        if !self.caught_up && self.settings.read_threads > 1 {
            let (here, rest): (Vec<PathBuf>, Vec<PathBuf>) = stale.into_iter().partition(|p| seen.contains_key(p));
            changed += self.poll_parallel(&here, self.settings.read_threads, &|_, _| {});
            stale = rest;
        }
        for p in stale {
            // Turned into a symlink: what it leads to, if ours, is followed under its own path.
            if !seen.contains_key(&p) && std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
                self.files.remove(&p);
                self.failing_files.remove(&p);
                self.log(crate::source::journal::Record::Gone { path: p.clone() });
                continue;
            }
            if self.poll(&p) {
                changed += 1;
            }
            // A file no longer listed is gone (poll drained and dropped it) or moved out.
            // Not one we merely cannot see (a folder without permission): its position stays.
            if !seen.contains_key(&p) && self.files.contains_key(&p) && is_gone(&p) {
                self.files.remove(&p);
                self.failing_files.remove(&p);
                self.log(crate::source::journal::Record::Gone { path: p.clone() });
            }
        }
        self.commit();
        changed
    }

    /// Count and log folders that cannot be listed, once per failure episode.
    pub(super) fn folder_errors(&mut self, errors: Vec<(PathBuf, std::io::Error)>) {
        let now: HashSet<&PathBuf> = errors.iter().map(|(d, _)| d).collect();
        let recovered: Vec<PathBuf> = self.failing_folders.iter().filter(|d| !now.contains(d)).cloned().collect();
        for d in recovered {
            self.failing_folders.remove(&d);
            if d.is_dir() {
                tracing::info!(path = %d.display(), "Folder can be read again.");
            }
        }
        for (dir, e) in errors {
            if self.failing_folders.insert(dir.clone()) {
                let message = format!("cannot read folder {}: {}", dir.display(), e.kind());
                self.lock().report_error(message, now_ms());
                self.lock().store.inc(Counter::ReadErrors, &["folder"], 1.0);
                self.log(crate::source::journal::Record::ReadError { kind: "folder".into() });
                tracing::warn!(path = %dir.display(), error = %e, "Cannot read folder; will retry on each reconcile.");
            }
        }
    }
}

/// Whether `path` no longer exists (not merely cannot be looked at).
fn is_gone(path: &Path) -> bool {
    matches!(std::fs::metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}
