//! The one-shot pass over all history (`scan`, and `serve`'s reports): files are
//! read and parsed on several threads and applied in path order on one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{Engine, KEEP_BUF, LineCounts, Tracked, apply_batch, now_ms, parse, record};
use crate::source::discover::{self, FileInfo, Role};
use crate::source::tail::{Report, Tail};
use crate::state::metrics::Counter;
use crate::transcript::entry::Entry;

impl Engine {
    /// One pass over all history, as `scan` does: files are read and parsed on
    /// `threads` threads, their entries applied in path order on this one.
    pub fn scan(&mut self, threads: usize, progress: &(dyn Fn(usize, usize) + Sync)) {
        let mut errors = Vec::new();
        let mut known = self.known_ids();
        for p in discover::walk(&self.settings.projects_dirs, &mut errors) {
            self.track_new(&p, &mut known);
        }
        for (dir, e) in errors {
            self.lock().store.inc(Counter::ReadErrors, &["folder"], 1.0);
            tracing::warn!(path = %dir.display(), error = %e, "Cannot read folder; skipping it.");
        }
        let paths: Vec<PathBuf> = self.order_for_scan();
        if threads <= 1 || paths.len() < 2 {
            for (i, p) in paths.iter().enumerate() {
                self.poll(p);
                progress(i + 1, paths.len());
            }
        } else {
            self.scan_parallel(&paths, threads, progress);
        }
        self.tick();
    }

    /// Main files first, then sub-agent files (so a session's project is set by its main file).
    fn order_for_scan(&self) -> Vec<PathBuf> {
        let mut v: Vec<(&PathBuf, &Tracked)> = self.files.iter().map(|(p, t)| (p, &**t)).collect();
        v.sort_by_key(|(p, t)| (t.info.role != Role::Main, *p));
        v.into_iter().map(|(p, _)| p.clone()).collect()
    }

    /// Each thread takes the next file, reads and parses it, and then applies
    /// every parsed file that is next in order (its own or ones left by the
    /// other thread). No thread only waits to apply, and a file is never more
    /// than `AHEAD` ahead of the one being applied, so memory stays bounded.
    fn scan_parallel(&mut self, paths: &[PathBuf], threads: usize, progress: &(dyn Fn(usize, usize) + Sync)) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const AHEAD: usize = 32;
        struct Parsed {
            tail: Tail,
            entries: Vec<Entry>,
            counts: LineCounts,
            result: std::io::Result<Report>,
        }
        struct Order {
            applied: usize,
            waiting: BTreeMap<usize, Parsed>,
            /// A thread is applying (outside the lock) the files from `applied` on.
            applying: bool,
            files: Vec<(FileInfo, bool)>,
            tails: Vec<Option<Tail>>,
        }
        let files = paths
            .iter()
            .map(|p| self.files.get(p).map(|t| (t.info.clone(), t.warmup)).expect("scan paths are tracked"))
            .collect();
        let tails = paths.iter().map(|p| self.files.get_mut(p).map(|t| std::mem::take(&mut t.tail))).collect();
        let order = Mutex::new(Order { applied: 0, waiting: BTreeMap::new(), applying: false, files, tails });
        let ready = std::sync::Condvar::new();
        let next = AtomicUsize::new(0);
        let (max_line, agg, now) = (self.settings.max_line_bytes, &self.agg, now_ms());
        let capture = self.settings.capture_content;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let (order, ready, next) = (&order, &ready, &next);
                scope.spawn(move || {
                    let mut buf = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= paths.len() {
                            break;
                        }
                        let mut tail = {
                            let mut o = order.lock().unwrap_or_else(|p| p.into_inner());
                            while i >= o.applied + AHEAD {
                                o = ready.wait(o).unwrap_or_else(|p| p.into_inner());
                            }
                            o.tails[i].take().unwrap_or_default()
                        };
                        let mut counts = LineCounts::default();
                        let mut entries = Vec::new();
                        let result = tail.read(&paths[i], max_line, false, &mut buf, &mut |line| {
                            if let Some(e) = parse(line, &mut counts, &paths[i], capture) {
                                entries.push(e);
                            }
                        });
                        if buf.capacity() > KEEP_BUF {
                            buf = Vec::new();
                        }
                        let mut o = order.lock().unwrap_or_else(|p| p.into_inner());
                        o.waiting.insert(i, Parsed { tail, entries, counts, result });
                        // One thread applies at a time, outside the order lock, so
                        // the other can hand in its file and go on parsing meanwhile.
                        while !o.applying && o.waiting.contains_key(&o.applied) {
                            o.applying = true;
                            let first = o.applied;
                            let mut run = Vec::new();
                            while let Some(done) = o.waiting.remove(&(first + run.len())) {
                                run.push(done);
                            }
                            let mut files: Vec<(FileInfo, bool)> =
                                (first..first + run.len()).map(|k| o.files[k].clone()).collect();
                            drop(o);
                            for (k, (done, (info, warmup))) in run.iter_mut().zip(&mut files).enumerate() {
                                apply_batch(agg, info, warmup, &mut done.entries);
                                let report = std::mem::replace(&mut done.result, Ok(Report::default()));
                                match report {
                                    Ok(report) => record(agg, &report, done.counts, now, false),
                                    Err(e) => {
                                        agg.lock().unwrap_or_else(|p| p.into_inner()).store.inc(
                                            Counter::ReadErrors,
                                            &["file"],
                                            1.0,
                                        );
                                        let path = &paths[first + k];
                                        tracing::warn!(path = %path.display(), error = %e, "Cannot read transcript.");
                                    }
                                }
                            }
                            o = order.lock().unwrap_or_else(|p| p.into_inner());
                            let n = run.len();
                            for (k, (done, file)) in run.into_iter().zip(files).enumerate() {
                                o.files[first + k] = file;
                                o.tails[first + k] = Some(done.tail);
                            }
                            o.applied = first + n;
                            o.applying = false;
                            progress(o.applied, paths.len());
                            ready.notify_all();
                        }
                    }
                });
            }
        });
        let o = order.into_inner().unwrap_or_else(|p| p.into_inner());
        for ((p, (_, warmup)), tail) in paths.iter().zip(o.files).zip(o.tails) {
            if let (Some(t), Some(tail)) = (self.files.get_mut(p), tail) {
                t.tail = tail;
                t.warmup = warmup;
            }
        }
    }
}
