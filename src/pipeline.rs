//! The engine: discovered files → tails → parsed entries → the aggregator.
//!
//! One [`Engine`] owns every file position and is the only writer of the
//! shared [`Aggregator`]. `scan` runs it once over the history (reading files
//! on two threads and applying their entries in a fixed order); `serve` runs
//! it forever, woken by the watcher and by a periodic reconcile. Both go
//! through [`Engine::poll`], so what `scan` reports is what `/metrics` shows.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::checkpoint::{self, Checkpoint, CheckpointRef, FileState};
use crate::discover::{self, FileInfo, Role};
use crate::event::{Entry, Millis};
use crate::live::{self, Aggregator, Source};
use crate::metrics::{Counter, Gauge, Histogram};
use crate::tail::{Report, Tail};
use crate::transcript;

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> Millis {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

/// What the engine needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `projects/` folders to follow (they may not exist yet).
    pub projects_dirs: Vec<PathBuf>,
    pub max_line_bytes: usize,
    pub aggregator: live::Config,
    /// Keep a file's handle while it changed within this long (lets a deleted
    /// file be drained); idle files hold no descriptor.
    pub keep_open: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            projects_dirs: Vec::new(),
            max_line_bytes: 64 << 20,
            aggregator: live::Config::default(),
            keep_open: Duration::from_secs(300),
        }
    }
}

/// A followed file.
#[derive(Debug)]
struct Tracked {
    info: FileInfo,
    tail: Tail,
    warmup: bool,
    last_change_ms: Millis,
}

/// Lines read, by result.
#[derive(Debug, Default, Clone, Copy)]
struct LineCounts {
    ok: u64,
    malformed: u64,
    unknown_type: u64,
}

/// Flush parsed entries to the aggregator this often (bounded memory per file).
const BATCH: usize = 4096;

pub struct Engine {
    settings: Settings,
    files: BTreeMap<PathBuf, Tracked>,
    agg: Arc<Mutex<Aggregator>>,
    buf: Vec<u8>,
    caught_up: bool,
    warned: HashSet<PathBuf>,
}

impl Engine {
    pub fn new(settings: Settings) -> Engine {
        let agg = Aggregator::new(settings.aggregator.clone());
        Engine {
            settings,
            files: BTreeMap::new(),
            agg: Arc::new(Mutex::new(agg)),
            buf: Vec::new(),
            caught_up: false,
            warned: HashSet::new(),
        }
    }

    /// The aggregator, shared with the HTTP server.
    pub fn aggregator(&self) -> Arc<Mutex<Aggregator>> {
        Arc::clone(&self.agg)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn files_tracked(&self) -> usize {
        self.files.len()
    }

    /// Files whose descriptor is held right now.
    pub fn open_files(&self) -> usize {
        self.files.values().filter(|t| t.tail.is_open()).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Aggregator> {
        // A panic while holding the lock leaves counters as they were; keep serving.
        self.agg.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Restore positions and counters from a checkpoint.
    pub fn restore(&mut self, cp: Checkpoint) {
        let mut agg = cp.aggregator;
        agg.configure(self.settings.aggregator.clone());
        *self.lock() = agg;
        for f in cp.files {
            if let Some(info) = self.classify(&f.path) {
                self.files
                    .insert(f.path, Tracked { info, tail: Tail::new(f.pos), warmup: f.warmup, last_change_ms: 0 });
            }
        }
    }

    /// Serialized checkpoint of the current positions and counters.
    pub fn checkpoint_bytes(&self) -> Vec<u8> {
        let files = self
            .files
            .iter()
            .map(|(p, t)| FileState { path: p.clone(), pos: t.tail.pos.clone(), warmup: t.warmup })
            .collect();
        let agg = self.lock();
        let cp = CheckpointRef { format: checkpoint::FORMAT, written_ms: now_ms(), files, aggregator: &agg };
        serde_json::to_vec(&cp).expect("checkpoint serializes")
    }

    /// Write the checkpoint to `dir`, counting the result.
    pub fn save(&self, dir: &Path) -> Result<(), checkpoint::CheckpointError> {
        let bytes = self.checkpoint_bytes();
        let res = checkpoint::write(dir, &bytes);
        let result = if res.is_ok() { "ok" } else { "error" };
        self.lock().store.inc(Counter::CheckpointWrites, &[result], 1.0);
        res
    }

    fn classify(&self, path: &Path) -> Option<FileInfo> {
        self.settings.projects_dirs.iter().find_map(|d| discover::classify(d, path))
    }

    /// Start following `path` if it is a transcript below a projects folder.
    pub fn track(&mut self, path: &Path) -> bool {
        if self.files.contains_key(path) {
            return true;
        }
        match self.classify(path) {
            Some(info) => {
                self.files
                    .insert(path.to_owned(), Tracked { info, tail: Tail::default(), warmup: false, last_change_ms: 0 });
                true
            }
            None => false,
        }
    }

    /// Walk every projects folder: track new files, drain and forget vanished
    /// ones, then read whatever changed. Returns the number of files with new data.
    pub fn reconcile(&mut self) -> usize {
        let mut seen = HashSet::new();
        let mut errors = Vec::new();
        for dir in self.settings.projects_dirs.clone() {
            for p in discover::walk(&dir, &mut errors) {
                seen.insert(p.clone());
                self.track(&p);
            }
        }
        for (dir, e) in errors {
            self.lock().store.inc(Counter::ReadErrors, &["folder"], 1.0);
            if self.warned.insert(dir.clone()) {
                tracing::warn!(path = %dir.display(), error = %e, "Cannot read folder; skipping it.");
            }
        }
        let paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        let mut changed = 0;
        for p in paths {
            if self.poll(&p) {
                changed += 1;
            }
            // A file no longer listed is gone (poll drained and dropped it) or moved out.
            if !seen.contains(&p) && self.files.contains_key(&p) && !p.exists() {
                self.files.remove(&p);
            }
        }
        changed
    }

    /// Read what is new in one tracked file and apply it. Returns whether it had new data.
    pub fn poll(&mut self, path: &Path) -> bool {
        let Some(mut t) = self.files.remove(path) else { return false };
        let now = now_ms();
        let keep_open = self.caught_up;
        let mut counts = LineCounts::default();
        let mut batch: Vec<Entry> = Vec::new();
        let mut buf = std::mem::take(&mut self.buf);
        let max_line = self.settings.max_line_bytes;
        let agg = Arc::clone(&self.agg);
        let mut tail = std::mem::take(&mut t.tail);
        let result = {
            let (info, warmup) = (&t.info, &mut t.warmup);
            let mut on_line = |line: &[u8]| {
                if let Some(e) = parse(line, &mut counts, path) {
                    batch.push(e);
                }
                if batch.len() >= BATCH {
                    apply_batch(&agg, info, warmup, &mut batch);
                }
            };
            tail.read(path, max_line, keep_open, &mut buf, &mut on_line)
        };
        t.tail = tail;
        apply_batch(&self.agg, &t.info, &mut t.warmup, &mut batch);
        self.buf = buf;
        if self.buf.capacity() > 4 << 20 {
            self.buf = Vec::new();
        }
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                self.lock().store.inc(Counter::ReadErrors, &["file"], 1.0);
                if self.warned.insert(path.to_owned()) {
                    tracing::warn!(path = %path.display(), error = %e, "Cannot read transcript; will retry.");
                }
                self.files.insert(path.to_owned(), t);
                return false;
            }
        };
        self.record(&report, counts, now);
        let changed = report.bytes > 0 || report.truncated || report.replaced;
        if changed {
            t.last_change_ms = now;
        } else if now - t.last_change_ms > self.settings.keep_open.as_millis() as Millis {
            t.tail.close();
        }
        if !report.gone {
            self.files.insert(path.to_owned(), t);
        }
        changed
    }

    fn record(&self, r: &Report, c: LineCounts, now: Millis) {
        let mut agg = self.lock();
        let s = &mut agg.store;
        s.inc(Counter::BytesRead, &[], r.bytes as f64);
        s.inc(Counter::Lines, &["ok"], c.ok as f64);
        s.inc(Counter::Lines, &["malformed"], c.malformed as f64);
        s.inc(Counter::Lines, &["unknown_type"], c.unknown_type as f64);
        s.inc(Counter::Lines, &["oversized"], r.oversized as f64);
        s.inc(Counter::Truncations, &[], f64::from(u8::from(r.truncated)));
        s.inc(Counter::Rotations, &[], f64::from(u8::from(r.replaced)));
        if self.caught_up
            && r.lines > 0
            && let Some(mtime) = r.mtime
        {
            let written = mtime.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis);
            s.observe(Histogram::EventLag, &[], (now - written).max(0) as f64 / 1000.0);
        }
    }

    /// Advance lifecycles and refresh gauges. Returns whether a session changed state.
    pub fn tick(&mut self) -> bool {
        let now = now_ms();
        let changed = self.lock().tick(now);
        self.refresh_gauges();
        changed
    }

    /// The engine's own gauges (files tracked, caught up, build info).
    pub fn refresh_gauges(&self) {
        let (files, caught_up) = (self.files.len(), self.caught_up);
        let mut agg = self.lock();
        agg.store.set_gauges(Gauge::FilesTracked, [(vec![], files as f64)]);
        agg.store.set_gauges(Gauge::CaughtUp, [(vec![], f64::from(u8::from(caught_up)))]);
        agg.store.set_gauges(Gauge::BuildInfo, [(vec![crate::VERSION, crate::REVISION], 1.0)]);
    }

    pub fn set_caught_up(&mut self) {
        self.caught_up = true;
        self.tick();
    }

    pub fn is_caught_up(&self) -> bool {
        self.caught_up
    }

    /// One pass over all history, as `scan` does: files are read and parsed on
    /// `threads` threads, their entries applied in path order on this one.
    pub fn scan(&mut self, threads: usize, progress: &dyn Fn(usize, usize)) {
        let mut errors = Vec::new();
        for dir in self.settings.projects_dirs.clone() {
            for p in discover::walk(&dir, &mut errors) {
                self.track(&p);
            }
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
        let mut v: Vec<(&PathBuf, &Tracked)> = self.files.iter().collect();
        v.sort_by_key(|(p, t)| (t.info.role != Role::Main, *p));
        v.into_iter().map(|(p, _)| p.clone()).collect()
    }

    fn scan_parallel(&mut self, paths: &[PathBuf], threads: usize, progress: &dyn Fn(usize, usize)) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::mpsc;
        // Parsed files wait in a window of at most `AHEAD` beyond the next one to apply.
        const AHEAD: usize = 8;
        let next = AtomicUsize::new(0);
        let applied = (Mutex::new(0usize), std::sync::Condvar::new());
        let max_line = self.settings.max_line_bytes;
        let mut tails: Vec<Option<Tail>> =
            paths.iter().map(|p| self.files.get_mut(p).map(|t| std::mem::take(&mut t.tail))).collect();
        let tails_ref: Vec<Mutex<Option<Tail>>> = tails.drain(..).map(Mutex::new).collect();
        let (tx, rx) = mpsc::sync_channel::<(usize, Vec<Entry>, LineCounts, std::io::Result<Report>)>(AHEAD);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let tx = tx.clone();
                let (next, applied, tails_ref) = (&next, &applied, &tails_ref);
                scope.spawn(move || {
                    let mut buf = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= paths.len() {
                            break;
                        }
                        {
                            let (lock, cv) = applied;
                            let mut done = lock.lock().unwrap_or_else(|p| p.into_inner());
                            while i >= *done + AHEAD {
                                done = cv.wait(done).unwrap_or_else(|p| p.into_inner());
                            }
                        }
                        let mut tail =
                            tails_ref[i].lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
                        let mut counts = LineCounts::default();
                        let mut entries = Vec::new();
                        let r = tail.read(&paths[i], max_line, false, &mut buf, &mut |line| {
                            if let Some(e) = parse(line, &mut counts, &paths[i]) {
                                entries.push(e);
                            }
                        });
                        *tails_ref[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(tail);
                        if buf.capacity() > 4 << 20 {
                            buf = Vec::new();
                        }
                        if tx.send((i, entries, counts, r)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut waiting: BTreeMap<usize, (Vec<Entry>, LineCounts, std::io::Result<Report>)> = BTreeMap::new();
            let mut want = 0;
            let now = now_ms();
            for (i, entries, counts, r) in rx {
                waiting.insert(i, (entries, counts, r));
                while let Some((mut entries, counts, r)) = waiting.remove(&want) {
                    let path = &paths[want];
                    if let Some(t) = self.files.get_mut(path) {
                        apply_batch(&self.agg, &t.info, &mut t.warmup, &mut entries);
                    }
                    match r {
                        Ok(report) => self.record(&report, counts, now),
                        Err(e) => {
                            self.lock().store.inc(Counter::ReadErrors, &["file"], 1.0);
                            tracing::warn!(path = %path.display(), error = %e, "Cannot read transcript.");
                        }
                    }
                    want += 1;
                    let (lock, cv) = &applied;
                    *lock.lock().unwrap_or_else(|p| p.into_inner()) = want;
                    cv.notify_all();
                    progress(want, paths.len());
                }
            }
        });
        for (p, slot) in paths.iter().zip(tails_ref) {
            if let (Some(t), Some(tail)) = (self.files.get_mut(p), slot.into_inner().unwrap_or_else(|p| p.into_inner()))
            {
                t.tail = tail;
            }
        }
    }
}

/// Parse one line into an entry, counting the result; `None` if it has no meaning for us.
fn parse(line: &[u8], counts: &mut LineCounts, path: &Path) -> Option<Entry> {
    match transcript::parse_line(line) {
        Ok(l) if l.is_known_type() => {
            counts.ok += 1;
            Some(Entry::from_line(&l))
        }
        Ok(_) => {
            counts.unknown_type += 1;
            None
        }
        Err(e) => {
            counts.malformed += 1;
            // The error says where, never what: no transcript content in logs.
            tracing::debug!(path = %path.display(), error = %e, "Skipped malformed line.");
            None
        }
    }
}

fn apply_batch(agg: &Mutex<Aggregator>, info: &FileInfo, warmup: &mut bool, batch: &mut Vec<Entry>) {
    if batch.is_empty() {
        return;
    }
    let mut agg = agg.lock().unwrap_or_else(|p| p.into_inner());
    for e in batch.drain(..) {
        if e.warmup_prompt && info.role == Role::Subagent {
            *warmup = true;
        }
        agg.apply(&e, &Source { info, warmup: *warmup });
    }
}
