//! Reading many files at once: the one-shot pass over all history (`scan`) and the
//! files `serve` reads before it has caught up. Files are read and parsed on several
//! threads and finished (applied, kept) in path order on this one
//! ([`Engine::poll_parallel`]), as [`Engine::poll`] would one after another.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{Engine, FileRead, KEEP_BUF, Tracked};
use crate::source::discover::{self, Role};
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

    /// [`Engine::poll`] for each of `paths` (tracked files, in this order), the
    /// reading and parsing on `threads` threads: each file's entries are applied,
    /// and its state kept, here, in order, as `poll` would one after another. At
    /// most `AHEAD` files are read ahead of the one being finished. Returns how
    /// many files changed.
    pub(super) fn poll_parallel(
        &mut self,
        paths: &[PathBuf],
        threads: usize,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const AHEAD: usize = 32;
        let reader = self.reader();
        let jobs: Vec<Mutex<Option<Box<Tracked>>>> = paths.iter().map(|p| Mutex::new(self.take_for_read(p))).collect();
        let tracked: Vec<bool> = jobs.iter().map(|j| j.lock().unwrap_or_else(|p| p.into_inner()).is_some()).collect();
        // How many are finished, and the files read but not finished yet, by index.
        type Done = (usize, BTreeMap<usize, (Box<Tracked>, FileRead)>);
        let done: Mutex<Done> = Mutex::new((0, BTreeMap::new()));
        let (ready, next) = (std::sync::Condvar::new(), AtomicUsize::new(0));
        let mut changed = 0;
        // Read file `i` (claimed, tracked or not) and hand it to the finisher.
        let read_one = |i: usize, buf: &mut Vec<u8>| {
            // Not tracked: nothing to read (the finisher skips it).
            let Some(mut t) = jobs[i].lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
            let read = reader.read(&paths[i], &mut t, buf, None);
            if buf.capacity() > KEEP_BUF {
                *buf = Vec::new();
            }
            done.lock().unwrap_or_else(|p| p.into_inner()).1.insert(i, (t, read));
            ready.notify_all();
        };
        std::thread::scope(|scope| {
            // This thread is one of the readers: it reads whenever the next file to
            // finish is not ready yet, so `threads` threads are busy, not one more.
            for _ in 1..threads.max(1) {
                let (read_one, done, ready, next) = (&read_one, &done, &ready, &next);
                scope.spawn(move || {
                    let mut buf = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= paths.len() {
                            break;
                        }
                        let mut d = done.lock().unwrap_or_else(|p| p.into_inner());
                        while i >= d.0 + AHEAD {
                            d = ready.wait(d).unwrap_or_else(|p| p.into_inner());
                        }
                        drop(d);
                        read_one(i, &mut buf);
                    }
                });
            }
            let mut buf = Vec::new();
            for (k, path) in paths.iter().enumerate() {
                if tracked[k] {
                    let (t, read) = loop {
                        let mut d = done.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(item) = d.1.remove(&k) {
                            break item;
                        }
                        drop(d);
                        // Claim the next file to read, if it is within reach.
                        let i = next.load(Ordering::SeqCst);
                        if i < paths.len()
                            && i < k + AHEAD
                            && next.compare_exchange(i, i + 1, Ordering::SeqCst, Ordering::SeqCst).is_ok()
                        {
                            read_one(i, &mut buf);
                            continue;
                        }
                        // Nothing to claim: file `k` was claimed by a reader, which
                        // hands it in (it never waits for this one). `next` only
                        // grows, so nothing becomes claimable while waiting.
                        let mut d = done.lock().unwrap_or_else(|p| p.into_inner());
                        while !d.1.contains_key(&k) {
                            d = ready.wait(d).unwrap_or_else(|p| p.into_inner());
                        }
                    };
                    if self.finish_read(path, t, read) {
                        changed += 1;
                    }
                }
                done.lock().unwrap_or_else(|p| p.into_inner()).0 = k + 1;
                ready.notify_all();
                progress(k + 1, paths.len());
            }
        });
        changed
    }
}
