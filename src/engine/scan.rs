//! Reading many files at once: the one-shot pass over all history (`scan`) and the
//! files `serve` reads before it has caught up. Files are read and parsed on several
//! threads and finished (applied, kept) in path order on this one
//! ([`Engine::poll_parallel`]), as [`Engine::poll`] would one after another.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{Engine, FileRead, KEEP_BUF, Tracked, apply_batch, now_ms, record};
use crate::source::discover::{self, Role};
use crate::source::tail::Report;
use crate::state::metrics::Counter;

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
            self.poll_parallel(&paths, threads, progress);
        }
        self.tick();
    }

    /// Main files first, then sub-agent files (so a session's project is set by its main file).
    fn order_for_scan(&self) -> Vec<PathBuf> {
        let mut v: Vec<(&PathBuf, &Tracked)> = self.files.iter().map(|(p, t)| (p, &**t)).collect();
        v.sort_by_key(|(p, t)| (t.info.role != Role::Main, *p));
        v.into_iter().map(|(p, _)| p.clone()).collect()
    }

    /// [`Engine::poll`] for each of `paths` (tracked files, in this order), before
    /// the engine has caught up (nothing is journaled then). Each thread takes the
    /// next file, reads and parses it, and then applies every parsed file that is
    /// next in order (its own or ones left by another thread), outside the order
    /// lock, so no thread only waits to apply; a file is never more than `AHEAD`
    /// ahead of the one being applied, so memory stays bounded. The files' states
    /// are then kept here, in order, as `poll` keeps them. Returns how many changed.
    pub(super) fn poll_parallel(
        &mut self,
        paths: &[PathBuf],
        threads: usize,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const AHEAD: usize = 32;
        debug_assert!(!self.journaling(), "journaled reads are staged one by one");
        struct Order {
            /// Files applied so far (all before this index).
            applied: usize,
            /// A thread is applying (outside the lock) the files from `applied` on.
            applying: bool,
            /// Read, waiting for their turn to be applied.
            waiting: BTreeMap<usize, (Box<Tracked>, FileRead)>,
        }
        // What is left to keep of an applied file: its state, report and result.
        type Applied = Option<(Box<Tracked>, Report, std::io::Result<()>)>;
        let (reader, caught_up, now) = (self.reader(), self.caught_up, now_ms());
        let agg = std::sync::Arc::clone(&self.agg);
        // Each file's state, taken out until it is read (untracked paths are dropped).
        type Job = Mutex<Option<Box<Tracked>>>;
        let (paths, jobs): (Vec<&PathBuf>, Vec<Job>) =
            paths.iter().filter_map(|p| self.take_for_read(p).map(|t| (p, Mutex::new(Some(t))))).unzip();
        let applied: Vec<Mutex<Applied>> = paths.iter().map(|_| Mutex::new(None)).collect();
        let order = Mutex::new(Order { applied: 0, applying: false, waiting: BTreeMap::new() });
        let (ready, next) = (std::sync::Condvar::new(), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..threads.max(1) {
                let (reader, paths, jobs, applied, agg) = (&reader, &paths, &jobs, &applied, &*agg);
                let (order, ready, next) = (&order, &ready, &next);
                scope.spawn(move || {
                    let mut buf = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= paths.len() {
                            break;
                        }
                        let mut o = order.lock().unwrap_or_else(|p| p.into_inner());
                        while i >= o.applied + AHEAD {
                            o = ready.wait(o).unwrap_or_else(|p| p.into_inner());
                        }
                        drop(o);
                        let mut t =
                            jobs[i].lock().unwrap_or_else(|p| p.into_inner()).take().expect("each file is read once");
                        let read = reader.read(paths[i], &mut t, &mut buf, None);
                        if buf.capacity() > KEEP_BUF {
                            buf = Vec::new();
                        }
                        let mut o = order.lock().unwrap_or_else(|p| p.into_inner());
                        o.waiting.insert(i, (t, read));
                        while !o.applying && o.waiting.contains_key(&o.applied) {
                            o.applying = true;
                            let first = o.applied;
                            let mut run = Vec::new();
                            while let Some(item) = o.waiting.remove(&(first + run.len())) {
                                run.push(item);
                            }
                            drop(o);
                            let n = run.len();
                            for (k, (mut t, read)) in run.into_iter().enumerate() {
                                let FileRead { counts, mut batch, report, result } = read;
                                apply_batch(agg, &t.info, &mut t.warmup, &mut batch);
                                record(agg, &report, counts, now, caught_up);
                                *applied[first + k].lock().unwrap_or_else(|p| p.into_inner()) =
                                    Some((t, report, result));
                            }
                            o = order.lock().unwrap_or_else(|p| p.into_inner());
                            o.applied = first + n;
                            o.applying = false;
                            progress(o.applied, paths.len());
                            ready.notify_all();
                        }
                    }
                });
            }
        });
        let mut changed = 0;
        for (path, a) in paths.into_iter().zip(applied) {
            if let Some((t, report, result)) = a.into_inner().unwrap_or_else(|p| p.into_inner())
                && self.keep_read(path, t, &report, result, now)
            {
                changed += 1;
            }
        }
        changed
    }
}
