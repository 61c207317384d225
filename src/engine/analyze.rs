//! The research pass over history (`analyze`): each main session file is read, parsed
//! once into the same facts as the metrics ([`parse_with_line`]) and its research
//! features ([`LineFeatures::from_line`]), and followed by a [`ContextTracker`] per session, on several
//! threads; what the caller makes of each finished [`SessionRecord`] comes back in
//! path order.
//!
//! In: the projects folders and limits of [`Settings`], a thread count, and a function
//! from a session's record to the caller's summary. Out: the summaries in path order,
//! and what was read ([`Read`]). Sub-agent and compaction files are not read: the
//! tracker follows the main chain, which is in the main file. Each record is handed over
//! when its file is done, so memory holds one file's records per thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{KEEP_BUF, LineCounts, Settings, parse_with_line};
use crate::research::{ContextTracker, LineFeatures, SessionRecord};
use crate::source::discover::{self, FileInfo, Role};
use crate::source::tail::Tail;

/// What transcript content the records keep: none by default; typed prompts' text
/// with `analyze --include-content`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Counts, sizes and hashes only.
    #[default]
    None,
    /// Also each typed prompt's text (see [`LineFeatures::keep_prompt_text`]).
    Prompts,
}

/// What the pass read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Read {
    /// Main files read.
    pub files: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Complete lines read within the size limit (parsed, malformed or of a type not read).
    pub lines: u64,
    /// Malformed lines (skipped).
    pub malformed: u64,
    /// Lines over `--max-line-bytes` (skipped).
    pub oversized: u64,
    /// Files or folders that could not be read.
    pub errors: u64,
}

/// A session's record and where it came from.
#[derive(Debug)]
pub struct Found<'a> {
    /// The file.
    pub path: &'a Path,
    /// Its place in the projects folder.
    pub info: &'a FileInfo,
    /// The session's record.
    pub record: SessionRecord,
}

/// Read every main session file under `settings.projects_dirs` on `threads` threads and
/// give each session's record to `summarize`; the summaries in path order (within a
/// file, by session id). Unreadable files and folders are counted and logged (path and
/// error kind only), and the pass goes on.
pub fn analyze<T: Send>(
    settings: &Settings,
    threads: usize,
    content: Content,
    summarize: &(dyn Fn(Found<'_>) -> Option<T> + Sync),
) -> (Vec<T>, Read) {
    let mut errors = Vec::new();
    let paths = discover::walk(&settings.projects_dirs, &mut errors);
    let mut read = Read { errors: errors.len() as u64, ..Read::default() };
    for (dir, e) in &errors {
        tracing::warn!(path = %dir.display(), error = %e.kind(), "Cannot read folder; skipping it.");
    }
    let files: Vec<(PathBuf, FileInfo)> = paths
        .into_iter()
        .filter_map(|p| {
            let info = settings.projects_dirs.iter().find_map(|d| discover::classify(d, &p))?;
            (info.role == Role::Main).then_some((p, info))
        })
        .collect();
    let next = AtomicUsize::new(0);
    let done: Mutex<BTreeMap<usize, (Vec<T>, Read)>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut buf = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((path, info)) = files.get(i) else { break };
                    let (records, r) = read_file(path, settings.max_line_bytes, content, &mut buf);
                    if buf.capacity() > KEEP_BUF {
                        buf = Vec::new();
                    }
                    let out =
                        records.into_values().filter_map(|record| summarize(Found { path, info, record })).collect();
                    done.lock().unwrap_or_else(|p| p.into_inner()).insert(i, (out, r));
                }
            });
        }
    });
    let mut all = Vec::new();
    for (_, (out, r)) in done.into_inner().unwrap_or_else(|p| p.into_inner()) {
        all.extend(out);
        read.files += r.files;
        read.bytes += r.bytes;
        read.lines += r.lines;
        read.malformed += r.malformed;
        read.oversized += r.oversized;
        read.errors += r.errors;
    }
    (all, read)
}

/// One file's sessions (usually one), each followed from its first line to its last.
pub fn read_file(
    path: &Path,
    max_line: usize,
    content: Content,
    buf: &mut Vec<u8>,
) -> (BTreeMap<String, SessionRecord>, Read) {
    let mut trackers: BTreeMap<String, ContextTracker> = BTreeMap::new();
    let mut counts = LineCounts::default();
    let mut tail = Tail::default();
    let result = tail.read(path, max_line, false, buf, &mut |line| {
        let Some((e, l)) = parse_with_line(line, &mut counts, path) else { return };
        if e.sidechain {
            return;
        }
        let Some(session) = e.session_id.as_deref() else { return };
        let tracker = trackers.get(session);
        let f = match &l {
            Some(l) => {
                let mut f = LineFeatures::from_line(l, line, &e, &|id| tracker.is_some_and(|t| t.is_test_call(id)));
                if content == Content::Prompts {
                    f.keep_prompt_text(l, line);
                }
                f
            }
            None => LineFeatures::default(),
        };
        match trackers.get_mut(session) {
            Some(t) => {
                t.push(&e, &f);
            }
            None => {
                let mut t = ContextTracker::new(session);
                t.push(&e, &f);
                trackers.insert(session.to_owned(), t);
            }
        }
    });
    let mut r = Read {
        files: 1,
        lines: counts.ok + counts.malformed + counts.unknown_type,
        malformed: counts.malformed,
        ..Read::default()
    };
    match result {
        Ok(report) => {
            r.bytes = report.bytes;
            r.oversized = report.oversized;
        }
        Err(e) => {
            r.errors = 1;
            tracing::warn!(path = %path.display(), error = %e.kind(), "Cannot read transcript.");
        }
    }
    (trackers.into_iter().map(|(k, t)| (k, t.finish())).collect(), r)
}
