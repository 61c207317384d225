//! The engine: discovered files → tails → parsed entries → the aggregator.
//!
//! One [`Engine`] owns every file position and is the only writer of the
//! shared [`Aggregator`]. `scan` runs it once over the history (reading files
//! on two threads and applying their entries in a fixed order); `serve` runs
//! it forever, woken by the watcher and by a periodic reconcile. Both go
//! through [`Engine::poll`], so what `scan` reports is what `/metrics` shows.
//!
//! A file or folder that cannot be read is tried again on every reconcile until
//! it can. Each failure episode (from the first failure to the next success)
//! counts once in `read_errors_total` and is logged once, however long it lasts.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::source::checkpoint::{self, Checkpoint, CheckpointRef, FileState};
use crate::source::discover::{self, FileId, FileInfo, Role};
use crate::source::tail::{Report, Tail};
use crate::state::live::{self, Aggregator, Source};
use crate::state::metrics::{Counter, Gauge, Histogram};
use crate::transcript;
use crate::transcript::entry::{Entry, Millis};

mod journaled;
mod scan;

pub use crate::transcript::entry::now_ms;

/// Sends the traces of the history before `since` (ms) once, read with these
/// settings; returns how many spans. `serve` passes `backfill::traces` with its
/// exporter's blocking sink (the engine does not know the backfill).
pub type TraceBackfill = Box<dyn FnOnce(&Settings, Millis) -> usize + Send>;

/// What the engine needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `projects/` folders to follow (they may not exist yet).
    pub projects_dirs: Vec<PathBuf>,
    /// Longer lines are skipped and counted; a reader holds at most about this much.
    pub max_line_bytes: usize,
    pub aggregator: live::Config,
    /// Keep a file's handle while it changed within this long (lets a deleted
    /// file be drained); idle files hold no descriptor.
    pub keep_open: Duration,
    /// Keep message content for traces, each item cut to this many bytes (opt-in).
    pub capture_content: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            projects_dirs: Vec::new(),
            max_line_bytes: MAX_LINE_BYTES,
            aggregator: live::Config::default(),
            keep_open: Duration::from_secs(300),
            capture_content: None,
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
    /// What the file looked like when last read; `None` until then.
    stat: Option<Stat>,
    /// Which file on disk this is, as last seen: a second path to it is not followed.
    id: Option<FileId>,
}

impl Tracked {
    fn new(info: FileInfo, tail: Tail, warmup: bool, id: Option<FileId>) -> Tracked {
        Tracked { info, tail, warmup, last_change_ms: 0, stat: None, id }
    }
}

/// Size, identity and mtime: enough to tell that a file needs reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    len: u64,
    id: FileId,
    mtime_ns: i128,
}

impl Stat {
    fn of(path: &Path) -> Option<Stat> {
        let m = std::fs::metadata(path).ok()?;
        let f = discover::Found::new(path.to_owned(), &m);
        Some(Stat { len: f.len, id: f.id, mtime_ns: f.mtime_ns })
    }
}

/// Lines read, by result.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LineCounts {
    pub ok: u64,
    pub malformed: u64,
    pub unknown_type: u64,
}

/// Flush parsed entries to the aggregator this often (bounded memory per file).
const BATCH: usize = 4096;

/// The default line limit (`--max-line-bytes`).
///
/// The largest line in ~100 real transcripts is 115 KB. What we count (usage,
/// tool calls) is on assistant lines, which hold one content block of a
/// model's output: well under 1 MiB. Big lines are user lines carrying tool
/// results: file contents, and images as base64, which the API caps at 5 MB
/// per image (6.7 MB as base64, and Claude Code may store it twice: in the
/// message and in `toolUseResult`). 16 MiB holds that; a line over it is
/// counted as `oversized` and costs us only its tool result's pairing. A line
/// within the limit is held whole while parsed, so the limit is also what one
/// reader may hold: 16 MiB keeps even that case within 32 MiB of idle.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// A buffer grown past this for a long line is freed after the read.
const KEEP_BUF: usize = 4 << 20;

pub struct Engine {
    settings: Settings,
    files: HashMap<PathBuf, Tracked>,
    agg: Arc<Mutex<Aggregator>>,
    buf: Vec<u8>,
    caught_up: bool,
    /// Files that failed to open or read, until they can be read again.
    failing_files: HashSet<PathBuf>,
    /// Folders that failed to list, until they can be listed again.
    failing_folders: HashSet<PathBuf>,
    /// Where finished trace spans go (OTLP traces on).
    span_sink: Option<crate::sinks::trace::SpanSink>,
    /// Send the traces of history once (see [`TraceBackfill`]).
    trace_backfill: Option<TraceBackfill>,
    /// Realtime events to switch on once history is read (`since_ms` is set then).
    events_when_caught_up: Option<live::Emitter>,
    /// The process table, for ending sessions whose Claude Code exited.
    processes: Option<crate::source::process::Processes>,
    /// Capture content while reading history too (events for history were asked for).
    capture_history: bool,
    /// What events read from whole tool inputs as lines are parsed (rules, summaries).
    inspect: crate::transcript::capture::Inspect,
    /// Where new lines are made durable before they count (`serve`); see [`journaled`].
    journal: Option<crate::source::journal::Journal>,
    /// Reads journaled, waiting for [`Engine::commit`].
    staged: Vec<journaled::Staged>,
    /// Size of the last checkpoint written (the journal is compacted at that size).
    checkpoint_size: u64,
}

impl Engine {
    pub fn new(settings: Settings) -> Engine {
        let agg = Aggregator::new(settings.aggregator.clone());
        Engine {
            settings,
            files: HashMap::new(),
            agg: Arc::new(Mutex::new(agg)),
            buf: Vec::new(),
            caught_up: false,
            failing_files: HashSet::new(),
            failing_folders: HashSet::new(),
            span_sink: None,
            trace_backfill: None,
            events_when_caught_up: None,
            processes: None,
            capture_history: false,
            inspect: crate::transcript::capture::Inspect::default(),
            journal: None,
            staged: Vec::new(),
            checkpoint_size: 0,
        }
    }

    /// Send realtime events. With `emitter.since_ms` set (`Some`), lines stamped from
    /// then on get events while history is read too (`watch --since`); with `None`,
    /// events start once history is read (only new activity).
    pub fn set_events(&mut self, emitter: live::Emitter, since_ms: Option<Millis>) {
        self.inspect = crate::transcript::capture::Inspect::new(emitter.rules.clone(), emitter.detail);
        match since_ms {
            Some(since) => {
                self.capture_history = true;
                self.lock().set_events(Some(live::Emitter { since_ms: since, ..emitter }))
            }
            None if self.caught_up => self.lock().set_events(Some(live::Emitter { since_ms: now_ms(), ..emitter })),
            None => self.events_when_caught_up = Some(emitter),
        }
    }

    /// End sessions whose Claude Code process exited (checked when called).
    pub fn enable_process_check(&mut self) {
        self.processes = crate::source::process::Processes::new();
        if self.processes.is_none() {
            tracing::info!("The process table cannot be read here; sessions end by idle timeout only.");
        }
    }

    /// Look at the process table now; returns whether a session ended.
    pub fn process_check(&mut self) -> bool {
        let Some(p) = &mut self.processes else { return false };
        let cwds = p.claude_cwds();
        self.commit();
        let now = now_ms();
        let ended = self.lock().process_check(&cwds, now);
        if ended {
            let mut cwds: Vec<String> = cwds.into_iter().collect();
            cwds.sort();
            self.log(crate::source::journal::Record::Processes { cwds, now });
            self.refresh_gauges();
        }
        ended
    }

    /// Trace turns into `sink` (OTLP traces). Call after [`Engine::restore`]: a
    /// restored tracer continues at once (lines written while the daemon was down
    /// are traced); otherwise tracing starts once history has been read.
    /// `backfill`: also send the history's traces once, on a background thread.
    pub fn set_span_sink(&mut self, sink: Option<crate::sinks::trace::SpanSink>, backfill: Option<TraceBackfill>) {
        let mut agg = self.lock();
        match &sink {
            Some(s) => {
                if let Some(t) = agg.tracer_mut() {
                    t.set_sink(Some(Arc::clone(s)));
                }
            }
            None => agg.disable_traces(),
        }
        drop(agg);
        self.span_sink = sink;
        self.trace_backfill = backfill;
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

    /// Whether a file or folder failed to read and is tried again on each reconcile.
    pub fn retrying(&self) -> bool {
        !self.failing_files.is_empty() || !self.failing_folders.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Aggregator> {
        // A panic while holding the lock leaves counters as they were; keep serving.
        self.agg.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Restore positions and counters from a checkpoint.
    pub fn restore(&mut self, cp: Checkpoint) {
        let mut agg = cp.aggregator;
        agg.configure(self.settings.aggregator.clone());
        if cp.format < 2 {
            agg.remember_sessions();
        }
        *self.lock() = agg;
        for f in cp.files {
            if let Some(info) = self.classify(&f.path) {
                let known = f.pos.dev != 0 || f.pos.ino != 0;
                let id = known.then_some(FileId { dev: f.pos.dev, ino: f.pos.ino });
                self.files.insert(f.path, Tracked::new(info, Tail::new(f.pos), f.warmup, id));
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
        let journal_seq = self.journal_seq();
        let agg = self.lock();
        let cp =
            CheckpointRef { format: checkpoint::FORMAT, written_ms: now_ms(), files, journal_seq, aggregator: &agg };
        serde_json::to_vec(&cp).expect("checkpoint serializes")
    }

    /// Write the checkpoint to `dir`, counting the result.
    pub fn save(&mut self, dir: &Path) -> Result<(), checkpoint::CheckpointError> {
        self.commit();
        let bytes = self.checkpoint_bytes();
        let res = checkpoint::write(dir, &bytes);
        let result = if res.is_ok() { "ok" } else { "error" };
        self.lock().store.inc(Counter::CheckpointWrites, &[result], 1.0);
        if res.is_ok() {
            self.compacted(bytes.len() as u64);
        }
        res
    }

    fn classify(&self, path: &Path) -> Option<FileInfo> {
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
    fn known_ids(&self) -> HashMap<FileId, PathBuf> {
        self.files.iter().filter_map(|(p, t)| Some((t.id?, p.clone()))).collect()
    }

    fn track_new(&mut self, path: &Path, known: &mut HashMap<FileId, PathBuf>) -> bool {
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
        let stale = stale.into_iter().map(|(_, p)| p);
        let mut changed = 0;
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
    fn folder_errors(&mut self, errors: Vec<(PathBuf, std::io::Error)>) {
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

    /// Read what is new in one tracked file and apply it. Returns whether it had new data.
    pub fn poll(&mut self, path: &Path) -> bool {
        let Some(mut t) = self.files.remove(path) else { return false };
        let now = now_ms();
        // Taken before reading: a change racing with the read shows up next time.
        t.stat = Stat::of(path);
        if let Some(s) = t.stat {
            t.id = Some(s.id);
        }
        let keep_open = self.caught_up;
        let mut counts = LineCounts::default();
        let mut batch: Vec<Entry> = Vec::new();
        let mut buf = std::mem::take(&mut self.buf);
        // Content (for rules, summaries, opt-in content) is only needed for lines that get
        // events or spans: new ones, unless history was asked for. A second parse saved.
        let wanted = self.caught_up || self.capture_history || self.settings.aggregator.trace_content.is_some();
        let (max_line, capture) = (self.settings.max_line_bytes, self.settings.capture_content.filter(|_| wanted));
        let agg = Arc::clone(&self.agg);
        let mut tail = std::mem::take(&mut t.tail);
        let mut report = Report::default();
        let inspect = &self.inspect;
        let journaling = self.journaling();
        let result = {
            let (info, warmup) = (&t.info, &mut t.warmup);
            let mut on_line = |line: &[u8]| {
                if let Some(e) = parse_inspecting(line, &mut counts, path, capture, inspect) {
                    batch.push(e);
                }
                // Journaled reads are applied whole after the journal is synced (their
                // entries, without content, are far smaller than the lines).
                if batch.len() >= BATCH && !journaling {
                    apply_batch(&agg, info, warmup, &mut batch);
                }
            };
            tail.read_into(path, max_line, keep_open, &mut buf, &mut on_line, &mut report)
        };
        t.tail = tail;
        self.buf = buf;
        if self.buf.capacity() > KEEP_BUF {
            self.buf = Vec::new();
        }
        if self.caught_up && counts.malformed + report.oversized > 0 {
            let (bad, big) = (counts.malformed, report.oversized);
            let message = format!("{} skipped: {bad} malformed and {big} oversized lines", path.display());
            self.lock().report_error(message, now);
        }
        // What was read before an error counts too.
        if journaling {
            self.stage(path, t.tail.pos.clone(), batch, report.clone(), counts);
        } else {
            apply_batch(&self.agg, &t.info, &mut t.warmup, &mut batch);
            self.record(&report, counts, now);
        }
        if let Err(e) = result {
            // Read again on the next reconcile whatever its stat says.
            t.stat = None;
            if self.failing_files.insert(path.to_owned()) {
                let message = format!("cannot read transcript {}: {}", path.display(), e.kind());
                self.lock().report_error(message, now);
                self.lock().store.inc(Counter::ReadErrors, &["file"], 1.0);
                self.log(crate::source::journal::Record::ReadError { kind: "file".into() });
                tracing::warn!(path = %path.display(), error = %e, "Cannot read transcript; will retry on each reconcile.");
            }
            self.files.insert(path.to_owned(), t);
            return report.bytes > 0;
        }
        if self.failing_files.remove(path) {
            tracing::info!(path = %path.display(), "Transcript can be read again.");
        }
        let changed = report.bytes > 0 || report.truncated || report.replaced;
        if changed {
            t.last_change_ms = now;
        } else if now - t.last_change_ms > self.settings.keep_open.as_millis() as Millis {
            t.tail.close();
        }
        if report.gone {
            self.failing_files.remove(path);
        } else {
            self.files.insert(path.to_owned(), t);
        }
        changed
    }

    fn record(&self, r: &Report, c: LineCounts, now: Millis) {
        record(&self.agg, r, c, now, self.caught_up);
    }

    /// Advance lifecycles and refresh gauges. Returns whether a session changed state.
    pub fn tick(&mut self) -> bool {
        self.commit();
        let now = now_ms();
        let changed = self.lock().tick(now);
        if changed {
            self.log(crate::source::journal::Record::Tick { now });
        }
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

    /// Forget sessions that ended more than `max_age` ago.
    pub fn prune(&mut self, max_age: Duration) -> usize {
        self.commit();
        let (now, max_age_ms) = (now_ms(), max_age.as_millis() as Millis);
        let n = self.lock().prune(now, max_age_ms);
        if n > 0 {
            self.log(crate::source::journal::Record::Prune { now, max_age_ms });
        }
        n
    }

    pub fn set_caught_up(&mut self) {
        self.caught_up = true;
        if let Some(em) = self.events_when_caught_up.take() {
            self.lock().set_events(Some(live::Emitter { since_ms: now_ms(), ..em }));
        }
        if let Some(sink) = &self.span_sink {
            self.lock().enable_traces(now_ms(), Arc::clone(sink));
        }
        self.tick();
        if let Some(sink) = self.trace_backfill.take() {
            self.start_trace_backfill(sink);
        }
    }

    /// `--otlp-backfill`: replay the history before tracing began, once.
    fn start_trace_backfill(&self, backfill: TraceBackfill) {
        let Some(since) = self.lock().tracer().filter(|t| !t.backfilled).map(|t| t.since_ms) else { return };
        let (settings, agg) = (self.settings.clone(), Arc::clone(&self.agg));
        let spawned = std::thread::Builder::new().name("trace-backfill".into()).spawn(move || {
            let started = std::time::Instant::now();
            let spans = backfill(&settings, since);
            if let Some(t) = agg.lock().unwrap_or_else(|p| p.into_inner()).tracer_mut() {
                t.backfilled = true;
            }
            tracing::info!(spans, elapsed_ms = started.elapsed().as_millis() as u64, "Sent the traces of history.");
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "Cannot start the trace backfill.");
        }
    }
}

/// Whether `path` no longer exists (not merely cannot be looked at).
fn is_gone(path: &Path) -> bool {
    matches!(std::fs::metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// Count what one read did; observe the lag of live lines.
fn record(agg: &Mutex<Aggregator>, r: &Report, c: LineCounts, now: Millis, caught_up: bool) {
    let mut agg = agg.lock().unwrap_or_else(|p| p.into_inner());
    let s = &mut agg.store;
    s.inc(Counter::BytesRead, &[], r.bytes as f64);
    s.inc(Counter::Lines, &["ok"], c.ok as f64);
    s.inc(Counter::Lines, &["malformed"], c.malformed as f64);
    s.inc(Counter::Lines, &["unknown_type"], c.unknown_type as f64);
    s.inc(Counter::Lines, &["oversized"], r.oversized as f64);
    s.inc(Counter::Truncations, &[], f64::from(u8::from(r.truncated)));
    s.inc(Counter::Rotations, &[], f64::from(u8::from(r.replaced)));
    if caught_up
        && r.lines > 0
        && let Some(mtime) = r.mtime
    {
        let written = mtime.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis);
        s.observe(Histogram::EventLag, &[], (now - written).max(0) as f64);
    }
}

/// Parse one line into an entry, counting the result; `None` if it has no meaning for us.
///
/// `capture`: also keep the line's content for events and traces, each item cut to this size.
pub fn parse(line: &[u8], counts: &mut LineCounts, path: &Path, capture: Option<usize>) -> Option<Entry> {
    parse_inspecting(line, counts, path, capture, &crate::transcript::capture::Inspect::default())
}

/// [`parse`], reading each whole tool input of captured content for what `inspect` asks.
pub fn parse_inspecting(
    line: &[u8],
    counts: &mut LineCounts,
    path: &Path,
    capture: Option<usize>,
    inspect: &crate::transcript::capture::Inspect,
) -> Option<Entry> {
    if let Some(head) = transcript::progress_head(line) {
        counts.ok += 1;
        return Some(Entry::progress(&head));
    }
    match transcript::parse_line(line) {
        Ok(l) if l.is_known_type() => {
            counts.ok += 1;
            let mut e = Entry::from_line(&l);
            if let Some(cap) = capture {
                e.content = crate::transcript::capture::read(line, cap, inspect);
            }
            Some(e)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read_errors(e: &Engine) -> f64 {
        e.lock().store.counter(Counter::ReadErrors, &["file"])
    }

    fn ok_lines(e: &Engine) -> f64 {
        e.lock().store.counter(Counter::Lines, &["ok"])
    }

    /// A folder named like a transcript opens but fails to read (EISDIR), even as root.
    #[test]
    fn a_failing_file_is_retried_each_reconcile_and_counted_once_per_episode() {
        let d = tempfile::tempdir().unwrap();
        let projects = d.path().join("projects");
        let p = projects.join("-w").join("s1.jsonl");
        std::fs::create_dir_all(&p).unwrap();
        let mut e = Engine::new(Settings { projects_dirs: vec![projects.clone()], ..Settings::default() });
        assert!(e.track(&p));
        assert!(!e.poll(&p));
        for _ in 0..5 {
            e.reconcile();
        }
        assert_eq!(read_errors(&e), 1.0, "one episode, however many retries");
        assert_eq!(e.files_tracked(), 1, "kept, with its position, while it fails");

        std::fs::remove_dir(&p).unwrap();
        std::fs::write(&p, "{\"type\":\"user\",\"sessionId\":\"s1\",\"message\":{\"content\":\"hi\"}}\n").unwrap();
        e.reconcile();
        assert_eq!((ok_lines(&e), read_errors(&e)), (1.0, 1.0), "read on the next reconcile");

        // A new failure after a success is a new episode.
        std::fs::remove_file(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
        e.poll(&p);
        e.reconcile();
        e.reconcile();
        assert_eq!(read_errors(&e), 2.0);
    }

    /// A hard link or a symlink to a followed file, reported by the watcher, is
    /// not followed again; a symlink leading outside the projects folders never.
    #[cfg(unix)]
    #[test]
    fn a_second_path_to_a_followed_file_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let projects = d.path().join("projects");
        let dir = projects.join("-w");
        std::fs::create_dir_all(&dir).unwrap();
        let line = "{\"type\":\"user\",\"sessionId\":\"s1\",\"message\":{\"content\":\"hi\"}}\n";
        std::fs::write(dir.join("s1.jsonl"), line).unwrap();
        std::fs::write(d.path().join("out.jsonl"), line).unwrap();
        std::fs::hard_link(dir.join("s1.jsonl"), dir.join("s2.jsonl")).unwrap();
        std::os::unix::fs::symlink("s1.jsonl", dir.join("s3.jsonl")).unwrap();
        std::os::unix::fs::symlink(d.path().join("out.jsonl"), dir.join("s4.jsonl")).unwrap();
        let mut e = Engine::new(Settings { projects_dirs: vec![projects.clone()], ..Settings::default() });
        assert!(e.track(&dir.join("s1.jsonl")));
        e.poll(&dir.join("s1.jsonl"));
        for other in ["s2.jsonl", "s3.jsonl", "s4.jsonl"] {
            assert!(!e.track(&dir.join(other)), "{other}");
        }
        e.reconcile();
        assert_eq!((e.files_tracked(), ok_lines(&e)), (1, 1.0));
        // Once the first name is gone, the file is followed under the other
        // (read again: its identity is not carried over from a vanished path).
        std::fs::remove_file(dir.join("s1.jsonl")).unwrap();
        e.reconcile();
        e.reconcile();
        assert_eq!(e.files_tracked(), 1);
        assert!(e.files.contains_key(&dir.join("s2.jsonl")));
    }

    #[test]
    fn a_failing_folder_counts_once_per_episode() {
        let mut e = Engine::new(Settings::default());
        let err = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let dir = PathBuf::from("/nowhere/projects/-w");
        let count = |e: &Engine| e.lock().store.counter(Counter::ReadErrors, &["folder"]);
        for _ in 0..3 {
            e.folder_errors(vec![(dir.clone(), err())]);
        }
        assert_eq!(count(&e), 1.0);
        e.folder_errors(Vec::new());
        e.folder_errors(vec![(dir.clone(), err())]);
        assert_eq!(count(&e), 2.0, "listed fine once, then failing again: a second episode");
    }
}

#[cfg(test)]
mod huge_numbers {
    use super::*;

    fn assistant(id: &str, tokens: u64) -> String {
        format!(
            r#"{{"type":"assistant","sessionId":"s1","timestamp":"2026-01-01T00:00:00.000Z","requestId":"r{id}","message":{{"id":"m{id}","model":"claude-sonnet-4-5-20250929","usage":{{"input_tokens":{tokens},"output_tokens":{tokens},"cache_creation_input_tokens":{tokens},"cache_read_input_tokens":{tokens},"cache_creation":{{"ephemeral_5m_input_tokens":{tokens},"ephemeral_1h_input_tokens":{tokens}}}}},"content":[{{"type":"text","text":"x"}}]}}}}"#
        ) + "\n"
    }

    fn engine_over(projects: &Path) -> Engine {
        Engine::new(Settings { projects_dirs: vec![projects.to_owned()], ..Settings::default() })
    }

    /// Usage numbers up to u64::MAX in a transcript are counted without a panic.
    #[test]
    fn usage_near_u64_max_in_a_transcript_is_counted() {
        let d = tempfile::tempdir().unwrap();
        let projects = d.path().join("projects");
        let p = projects.join("-w").join("s1.jsonl");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, assistant("1", u64::MAX) + &assistant("2", u64::MAX) + &assistant("3", u64::MAX)).unwrap();
        let mut e = engine_over(&projects);
        e.scan(1, &|_, _| {});
        e.tick();
        let report = crate::report::Report::from_aggregator(&e.lock(), 1);
        assert!(report.table().contains("3 lines"), "{}", report.table());
        assert!(serde_json::from_slice::<Checkpoint>(&e.checkpoint_bytes()).is_ok());
    }

    /// Found by fuzzing (`checkpoint_reader`): a checkpoint whose session holds
    /// a token total near u64::MAX, then one more response read, overflowed
    /// `Tokens += ` (a panic in debug builds, a wrapped total in release). Totals saturate.
    #[test]
    fn a_restored_session_total_near_u64_max_saturates() {
        let d = tempfile::tempdir().unwrap();
        let projects = d.path().join("projects");
        let p = projects.join("-w").join("s1.jsonl");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, assistant("1", 10)).unwrap();
        let mut e = engine_over(&projects);
        e.scan(1, &|_, _| {});
        let mut cp: serde_json::Value = serde_json::from_slice(&e.checkpoint_bytes()).unwrap();
        let sessions = cp["aggregator"]["sessions"].as_object_mut().expect("sessions in the checkpoint");
        let tokens = &mut sessions.values_mut().next().expect("one session")["tokens"];
        for k in ["input", "output", "cache_creation", "cache_creation_1h", "cache_read"] {
            tokens[k] = serde_json::Value::from(u64::MAX);
        }
        let cp: Checkpoint = serde_json::from_value(cp).unwrap();

        let mut restored = engine_over(&projects);
        restored.restore(cp);
        std::fs::write(&p, assistant("1", 10) + &assistant("2", 10)).unwrap();
        restored.reconcile();
        let back: serde_json::Value = serde_json::from_slice(&restored.checkpoint_bytes()).unwrap();
        let session = back["aggregator"]["sessions"].as_object().unwrap().values().next().unwrap();
        assert_eq!(session["tokens"]["cache_creation_1h"], serde_json::Value::from(u64::MAX));
        assert_eq!(
            restored.lock().store.counter(Counter::Lines, &["ok"]),
            2.0,
            "the first line, restored, and the new one"
        );
    }
}
