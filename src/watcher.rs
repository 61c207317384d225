//! The library API: follow sessions live and get their events.
//!
//! A [`SessionWatcher`] runs the same engine as `serve` (discovery, tailing,
//! deduplication, session lifecycles) on its own thread and publishes
//! [`Event`]s on a bounded bus. Consume them as an async [`EventStream`], or
//! register callbacks and call the blocking [`SessionWatcher::run`]. A
//! subscriber that falls behind misses the oldest events (counted in
//! [`Stats::lagged`]); it never makes memory grow or slows the watcher. A
//! callback that panics is caught and counted ([`Stats::handler_panics`]).
//!
//! ```no_run
//! use claude_sessions::events::{EventKind, Selector};
//! use claude_sessions::watcher::SessionWatcher;
//!
//! let mut w = SessionWatcher::builder().start()?;   // ~/.claude/projects and friends
//! w.on(EventKind::ToolUse, |e| println!("{} ran {:?}", e.session_id, e.kind.tool()));
//! let id = w.on_any(|e| eprintln!("{}", e.kind.name()));
//! w.off(id);                                         // handlers can be removed
//! w.pipe(Selector::project("app")).pipe(Selector::main()).on(EventKind::ToolResult, |e| {
//!     println!("{:?}", e.kind);
//! });
//! w.run()?;                                          // until stopped (Ctrl-C ends the process)
//! # Ok::<(), claude_sessions::watcher::WatcherError>(())
//! ```
//!
//! A complete run on a folder of its own (this one runs as a test):
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use claude_sessions::events::{EventKind, Selector};
//! use claude_sessions::watcher::SessionWatcher;
//!
//! let dir = std::env::temp_dir().join(format!("cs-doc-{}", std::process::id()));
//! std::fs::create_dir_all(dir.join("-w-app")).unwrap();
//! let mut w = SessionWatcher::builder().projects_dir(&dir).process_check(None).start()?;
//! assert!(w.wait_ready(Duration::from_secs(10)));
//! let calls = Arc::new(AtomicUsize::new(0));
//! let c = Arc::clone(&calls);
//! w.pipe(Selector::main()).on(EventKind::ToolUse, move |_| { c.fetch_add(1, Ordering::Relaxed); });
//! let now = chrono_free_now();
//! let line = format!(r#"{{"type":"assistant","sessionId":"s1","cwd":"/w/app","timestamp":"{now}","requestId":"r1","message":{{"id":"m1","model":"claude-opus-4-6","usage":{{"input_tokens":3,"output_tokens":5}},"content":[{{"type":"tool_use","id":"toolu_1","name":"Bash","input":{{"command":"ls"}}}}]}}}}"#);
//! std::fs::write(dir.join("-w-app/s1.jsonl"), format!("{line}\n")).unwrap();
//! let stop = w.stop_handle();
//! let c = Arc::clone(&calls);
//! std::thread::spawn(move || {
//!     for _ in 0..500 {
//!         if c.load(Ordering::Relaxed) > 0 { break }
//!         std::thread::sleep(Duration::from_millis(10));
//!     }
//!     stop.stop();
//! });
//! w.run()?;
//! assert_eq!(calls.load(Ordering::Relaxed), 1);
//! assert_eq!(w.metrics().tool_calls, 1);
//! w.stop();
//! # std::fs::remove_dir_all(&dir).ok();
//! # fn chrono_free_now() -> String {
//! #     let ms = claude_sessions::transcript::entry::now_ms();
//! #     let (s, ms) = (ms / 1000, ms % 1000);
//! #     let (days, rem) = (s / 86_400, s % 86_400);
//! #     // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
//! #     let z = days + 719_468;
//! #     let era = z.div_euclid(146_097);
//! #     let doe = z - era * 146_097;
//! #     let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
//! #     let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
//! #     let mp = (5 * doy + 2) / 153;
//! #     let d = doy - (153 * mp + 2) / 5 + 1;
//! #     let m = if mp < 10 { mp + 3 } else { mp - 9 };
//! #     let y = yoe + era * 400 + i64::from(m <= 2);
//! #     format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
//! # }
//! # Ok::<(), claude_sessions::watcher::WatcherError>(())
//! ```

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::watch::{self, Msg};
use crate::engine::{Engine, Settings};
use crate::events::{Bus, BusStats, Detail, Event, EventKind, Filter, Selector};
use crate::state::live::{Aggregator, Emitter};

mod read;
mod view;
pub use read::{EventStream, LiveSessions};
pub use view::{MetricsView, ToolUsage};

/// Settings of a [`SessionWatcher`].
#[derive(Debug, Clone)]
pub struct Builder {
    settings: Settings,
    explicit_dirs: bool,
    detail: Detail,
    since: Option<Duration>,
    rules: Option<Arc<crate::rules::Rules>>,
    poll: bool,
    process_check: Option<Duration>,
    capacity: usize,
    ring: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            settings: Settings::default(),
            explicit_dirs: false,
            detail: Detail { summaries: false, content: false, max_bytes: 4096 },
            since: None,
            rules: None,
            poll: false,
            process_check: Some(Duration::from_secs(5)),
            capacity: 4096,
            ring: 10_000,
        }
    }
}

impl Builder {
    /// Follow this `projects` folder (repeatable). Default: the standard config roots.
    pub fn projects_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        if !self.explicit_dirs {
            self.settings.projects_dirs.clear();
            self.explicit_dirs = true;
        }
        self.settings.projects_dirs.push(dir.into());
        self
    }

    /// Engine settings (idle and end timeouts, pricing, …), e.g. from the CLI's `SourceArgs`.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.explicit_dirs = !settings.projects_dirs.is_empty();
        self.settings = settings;
        self
    }

    /// Tool summaries on events: the command, file path, URL or pattern of each call.
    pub fn summaries(mut self, on: bool) -> Self {
        self.detail.summaries = on;
        self
    }

    /// Message content on events (prompt text, tool input and output), each cut to `max_bytes`.
    pub fn include_content(mut self, on: bool, max_bytes: usize) -> Self {
        self.detail.content = on;
        self.detail.max_bytes = max_bytes.max(16);
        self
    }

    /// Also send the events of history from this long ago, first (default: new activity only).
    pub fn since(mut self, ago: Duration) -> Self {
        self.since = Some(ago);
        self
    }

    /// A session quiet this long goes idle (`session_idle` event; default 5 minutes).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.settings.aggregator.idle_after_ms = d.as_millis() as i64;
        self
    }

    /// A session quiet this long ends (`session_end`, reason `idle_timeout`; default 30 minutes).
    pub fn end_timeout(mut self, d: Duration) -> Self {
        self.settings.aggregator.end_after_ms = d.as_millis() as i64;
        self
    }

    /// Look for exited Claude Code processes this often (`None`: end sessions by idle timeout only).
    pub fn process_check(mut self, every: Option<Duration>) -> Self {
        self.process_check = every;
        self
    }

    /// Check new tool calls against these rules (`rule_match` events).
    pub fn rules(mut self, rules: crate::rules::Rules) -> Self {
        self.rules = Some(Arc::new(rules));
        self
    }

    /// Poll the folders instead of using file events.
    pub fn poll(mut self, on: bool) -> Self {
        self.poll = on;
        self
    }

    /// Events a subscriber may fall behind before it misses some; events kept for `since_id`.
    pub fn buffers(mut self, capacity: usize, ring: usize) -> Self {
        self.capacity = capacity.max(1);
        self.ring = ring.max(1);
        self
    }

    /// Start following (history is read first, on the watcher's thread).
    pub fn start(mut self) -> Result<SessionWatcher, WatcherError> {
        if self.settings.projects_dirs.is_empty() {
            let env = std::env::var("CLAUDE_CONFIG_DIR").ok();
            let home = std::env::var_os("HOME").map(PathBuf::from);
            let roots = crate::source::discover::config_roots(env.as_deref(), home.as_deref());
            if roots.is_empty() {
                return Err(WatcherError::NoTranscriptFolder);
            }
            self.settings.projects_dirs = crate::source::discover::projects_dirs(&roots);
        }
        if self.detail.summaries || self.detail.content || self.rules.is_some() {
            let cap = self.detail.max_bytes.max(crate::engine::capture::CAPTURE_BYTES);
            self.settings.capture_content = Some(self.settings.capture_content.unwrap_or(0).max(cap));
        }
        let bus = Bus::new(self.capacity, self.ring);
        let mut engine = Engine::new(self.settings);
        let emitter = Emitter {
            sink: bus.sink(),
            detail: self.detail,
            since_ms: 0,
            rules: self.rules,
            stats: Some(Arc::clone(&bus.stats)),
        };
        let since = self.since.map(|d| crate::transcript::entry::now_ms() - d.as_millis() as i64);
        engine.set_events(emitter, since);
        if self.process_check.is_some() {
            engine.enable_process_check();
        }
        let agg = engine.aggregator();
        let ready = Arc::new(AtomicBool::new(false));
        let opts = watch::Options {
            poll: self.poll,
            reconcile_every: if self.poll { Duration::from_secs(1) } else { Duration::from_secs(10) },
            tick_every: Duration::from_secs(1),
            checkpoint_every: Duration::from_secs(3600),
            state_dir: None,
            session_retention: Duration::from_secs(40 * 86_400),
            process_check_every: self.process_check,
        };
        // Before the thread starts: the first subscriber misses nothing (`since` replays included).
        let first_rx = Mutex::new(Some(bus.subscribe()));
        let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(4096);
        let (engine_tx, r) = (tx.clone(), Arc::clone(&ready));
        let thread = std::thread::Builder::new()
            .name("session-watcher".into())
            .spawn(move || watch::run(engine, opts, engine_tx, rx, r))
            .map_err(WatcherError::Thread)?;
        Ok(SessionWatcher {
            bus,
            agg,
            tx,
            thread: Some(thread),
            ready,
            handlers: Vec::new(),
            next_handler: 0,
            handler_rx: None,
            rates: Mutex::new(view::Rates::default()),
            first_rx,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }
}

type Handler = Box<dyn FnMut(&Event) + Send>;

/// Why a watcher could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum WatcherError {
    /// Neither `HOME` nor `CLAUDE_CONFIG_DIR` is set and no projects folder was given.
    #[error("no transcript folder: set HOME or CLAUDE_CONFIG_DIR, or add projects_dir")]
    NoTranscriptFolder,
    /// The watcher's thread could not be started.
    #[error("cannot start the watcher's thread: {0}")]
    Thread(std::io::Error),
    /// The callbacks' runtime could not be made.
    #[error("cannot make the callbacks' runtime: {0}")]
    Runtime(std::io::Error),
}

/// A registered callback, for [`SessionWatcher::off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandlerId(u64);

/// Follows Claude Code sessions and publishes their events.
pub struct SessionWatcher {
    bus: Arc<Bus>,
    agg: Arc<Mutex<Aggregator>>,
    tx: std::sync::mpsc::SyncSender<Msg>,
    thread: Option<std::thread::JoinHandle<()>>,
    ready: Arc<AtomicBool>,
    handlers: Vec<(HandlerId, Selector, Handler)>,
    next_handler: u64,
    /// Earlier totals, for the per-minute rates of [`SessionWatcher::metrics`].
    rates: Mutex<view::Rates>,
    /// Subscribed at the first callback registration: callbacks see events from then on.
    handler_rx: Option<tokio::sync::broadcast::Receiver<Arc<Event>>>,
    /// Subscribed in `start`, before the watcher's thread: handed to the first subscriber.
    first_rx: Mutex<Option<tokio::sync::broadcast::Receiver<Arc<Event>>>>,
    stop: Arc<AtomicBool>,
}

/// What [`SessionWatcher::pipe`] narrows: callbacks registered through it get
/// only the events its selectors select.
pub struct Pipe<'w> {
    watcher: &'w mut SessionWatcher,
    selector: Selector,
}

impl Pipe<'_> {
    /// Narrow further: both this pipe's selection and `selector` must hold.
    pub fn pipe(self, selector: impl Into<Selector>) -> Self {
        Pipe { watcher: self.watcher, selector: self.selector.and(selector.into()) }
    }

    /// Call `handler` for the selected events of kind `kind`.
    pub fn on(self, kind: EventKind, handler: impl FnMut(&Event) + Send + 'static) -> HandlerId {
        let selector = self.selector.and(Selector::kind(kind));
        self.watcher.on_selected(selector, handler)
    }

    /// Call `handler` for every selected event.
    pub fn on_any(self, handler: impl FnMut(&Event) + Send + 'static) -> HandlerId {
        self.watcher.on_selected(self.selector, handler)
    }

    /// The selected events as an async stream.
    pub fn subscribe(self) -> EventStream {
        self.watcher.subscribe(self.selector)
    }
}

/// Counters of a watcher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events published on the watcher's bus.
    pub published: u64,
    /// Events subscribers missed because they fell behind.
    pub lagged: u64,
    /// Callbacks that panicked (caught).
    pub handler_panics: u64,
}

/// Ends [`SessionWatcher::run`] from another thread.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Make [`SessionWatcher::run`] return after the event it is dispatching (if any).
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }
}

impl SessionWatcher {
    /// Settings for a watcher, with defaults: Claude Code's projects folders
    /// (`~/.claude/projects`, `~/.config/claude/projects`, `CLAUDE_CONFIG_DIR`), new
    /// activity only, no content in events.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use claude_sessions::watcher::SessionWatcher;
    ///
    /// let w = SessionWatcher::builder()
    ///     .projects_dir("/home/me/.claude/projects")
    ///     .since(Duration::from_secs(3600)) // replay the last hour first
    ///     .idle_timeout(Duration::from_secs(120))
    ///     .start()?;
    /// for s in w.sessions().list() {
    ///     println!("{} {} {:?}", s.id, s.project, s.state);
    /// }
    /// # Ok::<(), claude_sessions::watcher::WatcherError>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Every event from now on (the first subscriber, of any kind: from `start` on).
    pub fn events(&self) -> EventStream {
        self.subscribe(Selector::All)
    }

    /// The events that match `filter`, from now on. The first subscriber (stream or
    /// callbacks) gets every event from [`Builder::start`] on, `since` replays included.
    pub fn subscribe(&self, selector: impl Into<Selector>) -> EventStream {
        EventStream::from_receiver(self.receiver(), selector.into(), Arc::clone(&self.bus.stats))
    }

    /// The receiver made before the thread started, once; then new ones.
    fn receiver(&self) -> tokio::sync::broadcast::Receiver<Arc<Event>> {
        let first = self.first_rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        first.unwrap_or_else(|| self.bus.subscribe())
    }

    /// Call `handler` for events of this kind in [`SessionWatcher::run`], from
    /// the first registration on.
    pub fn on(&mut self, kind: EventKind, handler: impl FnMut(&Event) + Send + 'static) -> HandlerId {
        self.on_selected(kind, handler)
    }

    /// Call `handler` for every event `selector` selects (a [`Selector`], an
    /// [`EventKind`] or a [`Filter`]).
    pub fn on_selected(
        &mut self,
        selector: impl Into<Selector>,
        handler: impl FnMut(&Event) + Send + 'static,
    ) -> HandlerId {
        if self.handler_rx.is_none() {
            self.handler_rx = Some(self.receiver());
        }
        let id = HandlerId(self.next_handler);
        self.next_handler += 1;
        self.handlers.push((id, selector.into(), Box::new(handler)));
        id
    }

    /// Call `handler` for every event matching `filter` (as parsed from flags or a query string).
    pub fn on_filtered(&mut self, filter: Filter, handler: impl FnMut(&Event) + Send + 'static) -> HandlerId {
        self.on_selected(filter, handler)
    }

    /// Call `handler` for every event.
    pub fn on_any(&mut self, handler: impl FnMut(&Event) + Send + 'static) -> HandlerId {
        self.on_selected(Selector::All, handler)
    }

    /// Remove a callback; returns whether it was registered.
    pub fn off(&mut self, id: HandlerId) -> bool {
        let before = self.handlers.len();
        self.handlers.retain(|(h, ..)| *h != id);
        self.handlers.len() != before
    }

    /// Narrow what the next `on…` registers to the events `selector` selects;
    /// pipes compose: `w.pipe(Selector::project("app")).pipe(Selector::main()).on(…)`.
    pub fn pipe(&mut self, selector: impl Into<Selector>) -> Pipe<'_> {
        Pipe { watcher: self, selector: selector.into() }
    }

    /// A handle that stops [`SessionWatcher::run`] from another thread (or a callback).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(Arc::clone(&self.stop))
    }

    /// Dispatch events to the callbacks until [`StopHandle::stop`]. A callback that
    /// panics is skipped for that event and counted; one that is slow makes this loop
    /// fall behind and miss events (counted), never the watcher.
    pub fn run(&mut self) -> Result<(), WatcherError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(WatcherError::Runtime)?;
        let mut rx = self.handler_rx.take().unwrap_or_else(|| self.receiver());
        let stats = Arc::clone(&self.bus.stats);
        while !self.stop.load(Ordering::Acquire) {
            let got = rt.block_on(async { tokio::time::timeout(Duration::from_millis(100), rx.recv()).await });
            let event = match got {
                Err(_) => continue,
                Ok(Ok(e)) => e,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                    stats.lagged.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(missed = n, "Event callbacks fell behind; events were skipped.");
                    continue;
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => break,
            };
            for (_, selector, handler) in &mut self.handlers {
                if !selector.matches(&event) {
                    continue;
                }
                if std::panic::catch_unwind(AssertUnwindSafe(|| handler(&event))).is_err() {
                    stats.handler_panics.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(event = event.kind.name(), "An event callback panicked; continuing.");
                }
            }
        }
        Ok(())
    }

    /// Whether the history has been read.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Wait until the history has been read; `false` at the timeout.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while !self.is_ready() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Live and recent sessions.
    pub fn sessions(&self) -> LiveSessions {
        LiveSessions::new(Arc::clone(&self.agg))
    }

    /// Lines read so far that are stamped before events began (the start, or `since`
    /// ago): history, which makes no events.
    pub fn history_lines(&self) -> u64 {
        self.agg.lock().unwrap_or_else(|p| p.into_inner()).lines_before_events()
    }

    /// The bus's counters (published, lagged, callbacks that panicked).
    pub fn stats(&self) -> Stats {
        stats_of(&self.bus.stats)
    }

    /// Live figures for programs, from the same counters as `/metrics`: active
    /// sessions, messages and tool calls per minute (since the previous call at
    /// least 0.1 s ago), tool usage, error rate.
    pub fn metrics(&self) -> MetricsView {
        let agg = self.agg.lock().unwrap_or_else(|p| p.into_inner());
        let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        view::of(&agg, &mut rates)
    }

    /// Stop following and wait for the watcher's thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SessionWatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub(crate) fn stats_of(s: &BusStats) -> Stats {
    Stats {
        published: s.published.load(Ordering::Relaxed),
        lagged: s.lagged.load(Ordering::Relaxed),
        handler_panics: s.handler_panics.load(Ordering::Relaxed),
    }
}
