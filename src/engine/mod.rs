//! The engine: discovered files → tails → parsed entries → the aggregator.
//!
//! One [`Engine`] owns every file position and is the only writer of the
//! shared [`Aggregator`]. `scan` runs it once over the history; `serve` reads
//! the history the same way, then runs it forever, woken by the watcher and by a
//! periodic reconcile. History is read on several threads and applied in a fixed
//! order (`scan.rs`), each file as [`Engine::poll`] reads one, so what `scan`
//! reports is what `/metrics` shows, and `serve` reads its history as `scan` does.
//!
//! A file or folder that cannot be read is tried again on every reconcile until
//! it can. Each failure episode (from the first failure to the next success)
//! counts once in `read_errors_total` and is logged once, however long it lasts.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::source::discover::{self, FileId, FileInfo};
use crate::source::tail::{Report, Tail};
use crate::state::live::{self, Aggregator};
use crate::state::metrics::{Counter, Gauge};
use crate::transcript::entry::Millis;
use checkpoint::{Checkpoint, CheckpointRef, FileState};

pub mod analyze;
pub mod capture;
pub mod checkpoint;
mod journaled;
mod read;
mod scan;
mod track;
pub mod watch;

pub use crate::transcript::entry::now_ms;
use read::{FileRead, FileReader, apply_batch, record};
pub use read::{parse, parse_with_line};

/// Sends the traces of the history before `since` (ms) once, read with these
/// settings; returns how many spans. `serve` passes `backfill::traces` with its
/// exporter's blocking sink (the engine does not know the backfill).
pub type TraceBackfill = Box<dyn FnOnce(&Settings, Millis) -> usize + Send>;

/// `--otlp-backfill` with `--otlp-logs`: sends the events of history before the given
/// time (when events started); returns how many. It decides itself whether it has
/// run before (serve keeps that in the state folder).
pub type EventBackfill = Box<dyn FnOnce(&Settings, Millis) -> usize + Send>;

/// What the engine needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `projects/` folders to follow (they may not exist yet).
    pub projects_dirs: Vec<PathBuf>,
    /// Longer lines are skipped and counted; a reader holds at most about this much.
    pub max_line_bytes: usize,
    /// The aggregator's settings (timeouts, labels, limits, prices).
    pub aggregator: live::Config,
    /// Keep a file's handle while it changed within this long (lets a deleted
    /// file be drained); idle files hold no descriptor.
    pub keep_open: Duration,
    /// Keep message content for traces, each item cut to this many bytes (opt-in).
    pub capture_content: Option<usize>,
    /// Threads that read and parse history before the engine has caught up (the
    /// first reconcile of `serve`); entries are applied in the same order either way.
    pub read_threads: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            projects_dirs: Vec::new(),
            max_line_bytes: MAX_LINE_BYTES,
            aggregator: live::Config::default(),
            keep_open: Duration::from_secs(300),
            capture_content: None,
            read_threads: 2,
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
    fn new(info: FileInfo, tail: Tail, warmup: bool, id: Option<FileId>) -> Box<Tracked> {
        Box::new(Tracked { info, tail, warmup, last_change_ms: 0, stat: None, id })
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
    /// Lines parsed into an entry (known types; progress records).
    pub ok: u64,
    /// Lines that are not JSON, or not a transcript line's shape (skipped).
    pub malformed: u64,
    /// JSON lines of a type we do not read (skipped, counted apart).
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

/// Follows the transcripts: file positions, the journal, and the one writer of the
/// shared [`Aggregator`] (see the module docs).
pub struct Engine {
    settings: Settings,
    /// Boxed: the table holds a pointer per slot, not a whole file's state.
    files: HashMap<PathBuf, Box<Tracked>>,
    agg: Arc<Mutex<Aggregator>>,
    buf: Vec<u8>,
    caught_up: bool,
    /// Files that failed to open or read, until they can be read again.
    failing_files: HashSet<PathBuf>,
    /// Folders that failed to list, until they can be listed again.
    failing_folders: HashSet<PathBuf>,
    /// Where finished trace spans go (OTLP traces on).
    span_sink: Option<crate::state::trace::SpanSink>,
    /// Send the traces of history once (see [`TraceBackfill`]).
    trace_backfill: Option<TraceBackfill>,
    /// Send the events of history once (see [`EventBackfill`]).
    event_backfill: Option<EventBackfill>,
    /// Realtime events to switch on once history is read (`since_ms` is set then).
    events_when_caught_up: Option<live::Emitter>,
    /// The process table, for ending sessions whose Claude Code exited.
    processes: Option<crate::source::process::Processes>,
    /// Capture content while reading history too (events for history were asked for).
    capture_history: bool,
    /// What events read from whole tool inputs as lines are parsed (rules, summaries).
    inspect: crate::engine::capture::Inspect,
    /// Where new lines are made durable before they count (`serve`); see [`journaled`].
    journal: Option<crate::source::journal::Journal>,
    /// Reads journaled, waiting for [`Engine::commit`].
    staged: Vec<journaled::Staged>,
    /// Size of the last checkpoint written (the journal is compacted at that size).
    checkpoint_size: u64,
}

impl Engine {
    /// An engine following nothing yet, with an empty aggregator (see [`Engine::restore`]).
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
            event_backfill: None,
            events_when_caught_up: None,
            processes: None,
            capture_history: false,
            inspect: crate::engine::capture::Inspect::default(),
            journal: None,
            staged: Vec::new(),
            checkpoint_size: 0,
        }
    }

    /// Send realtime events. With `emitter.since_ms` set (`Some`), lines stamped from
    /// then on get events while history is read too (`watch --since`); with `None`,
    /// events start once history is read (only new activity).
    pub fn set_events(&mut self, emitter: live::Emitter, since_ms: Option<Millis>) {
        self.inspect = crate::engine::capture::Inspect::new(emitter.rules.clone(), emitter.detail);
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
    pub fn set_span_sink(&mut self, sink: Option<crate::state::trace::SpanSink>, backfill: Option<TraceBackfill>) {
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

    /// The settings it was made with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Transcript files followed.
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
        let mut out = Vec::new();
        self.write_checkpoint(&mut out).expect("checkpoint serializes");
        out
    }

    /// The checkpoint of the current positions and counters, serialized into `out`
    /// (under the aggregator's lock).
    fn write_checkpoint(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let files = self
            .files
            .iter()
            .map(|(p, t)| FileState { path: p.clone(), pos: t.tail.pos.clone(), warmup: t.warmup })
            .collect();
        let journal_seq = self.journal_seq();
        let agg = self.lock();
        let cp =
            CheckpointRef { format: checkpoint::FORMAT, written_ms: now_ms(), files, journal_seq, aggregator: &agg };
        serde_json::to_writer(out, &cp).map_err(std::io::Error::from)
    }

    /// Write the checkpoint to `dir`, counting the result.
    pub fn save(&mut self, dir: &Path) -> Result<(), checkpoint::CheckpointError> {
        self.commit();
        let res = checkpoint::write_streamed(dir, |w| self.write_checkpoint(w));
        let result = if res.is_ok() { "ok" } else { "error" };
        self.lock().store.inc(Counter::CheckpointWrites, &[result], 1.0);
        let len = res?;
        self.compacted(len);
        Ok(())
    }

    /// Read what is new in one tracked file and apply it. Returns whether it had new data.
    pub fn poll(&mut self, path: &Path) -> bool {
        let Some(mut t) = self.take_for_read(path) else { return false };
        let mut buf = std::mem::take(&mut self.buf);
        let journaling = self.journaling();
        // Without a journal, entries are applied as they come (bounded memory for a huge file).
        let read = self.reader().read(path, &mut t, &mut buf, (!journaling).then_some(&*self.agg));
        self.buf = buf;
        if self.buf.capacity() > KEEP_BUF {
            self.buf = Vec::new();
        }
        self.finish_read(path, t, read)
    }

    /// Take `path`'s state out to read it, with its size and identity as they are now.
    fn take_for_read(&mut self, path: &Path) -> Option<Box<Tracked>> {
        let mut t = self.files.remove(path)?;
        // Taken before reading: a change racing with the read shows up next time.
        t.stat = Stat::of(path);
        if let Some(s) = t.stat {
            t.id = Some(s.id);
        }
        Some(t)
    }

    /// What reading a file needs, owned, so other threads can read with it.
    fn reader(&self) -> FileReader {
        // Content (for rules, summaries, opt-in content) is only needed for lines that get
        // events or spans: new ones, unless history was asked for. A second parse saved.
        let wanted = self.caught_up || self.capture_history || self.settings.aggregator.trace_content.is_some();
        FileReader {
            max_line: self.settings.max_line_bytes,
            capture: self.settings.capture_content.filter(|_| wanted),
            keep_open: self.caught_up,
            inspect: self.inspect.clone(),
        }
    }

    /// What [`Engine::poll`] does once a file was read: apply (or journal) its entries,
    /// count what was read, and keep the file's state, errors and all.
    fn finish_read(&mut self, path: &Path, mut t: Box<Tracked>, read: FileRead) -> bool {
        let now = now_ms();
        let FileRead { counts, mut batch, report, result } = read;
        if self.caught_up && counts.malformed + report.oversized > 0 {
            let (bad, big) = (counts.malformed, report.oversized);
            let message = format!("{} skipped: {bad} malformed and {big} oversized lines", path.display());
            self.lock().report_error(message, now);
        }
        // What was read before an error counts too.
        if self.journaling() {
            self.stage(path, t.tail.pos.clone(), batch, report.clone(), counts);
        } else {
            apply_batch(&self.agg, &t.info, &mut t.warmup, &mut batch);
            self.record(&report, counts, now);
        }
        self.keep_read(path, t, &report, result, now)
    }

    /// The engine's side of a finished read: the file's state kept (or dropped if
    /// gone), a read error remembered and counted once, handles closed when idle.
    /// Whether the file changed.
    fn keep_read(
        &mut self,
        path: &Path,
        mut t: Box<Tracked>,
        report: &Report,
        result: std::io::Result<()>,
        now: Millis,
    ) -> bool {
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

    /// History has been read: from now on reads are journaled, events and traces
    /// start (stamped from now), the `caught_up` gauge is 1, and the trace backfill
    /// (if asked for) starts.
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
        if let Some(send) = self.event_backfill.take() {
            self.start_event_backfill(send);
        }
    }

    /// Send the events of history before events started, once, on a thread of its own
    /// (see [`EventBackfill`]).
    pub fn set_event_backfill(&mut self, send: EventBackfill) {
        self.event_backfill = Some(send);
    }

    fn start_event_backfill(&self, send: EventBackfill) {
        let Some(since) = self.lock().events_since() else { return };
        let settings = self.settings.clone();
        let spawned = std::thread::Builder::new().name("event-backfill".into()).spawn(move || {
            let started = std::time::Instant::now();
            let events = send(&settings, since);
            tracing::info!(events, elapsed_ms = started.elapsed().as_millis() as u64, "Sent the events of history.");
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "Cannot start the event backfill.");
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

#[cfg(test)]
mod tests;
