//! Live session state and the counters: the single owner of both.
//!
//! In: [`Entry`]s in file order, each with the [`Source`] file it came from.
//! Out: updated counters and histograms in a [`Store`], and per-session state
//! (project, models, counts, pending tool calls, context size, lifecycle
//! active → idle → ended). No message body is ever kept.
//!
//! Everything here is serializable: the checkpoint stores it whole, so that
//! after a restart nothing is counted twice and counters never go down.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::source::discover::{FileInfo, Role};
use crate::state::dedup::{self, FastMap, Window};
use crate::state::metrics::{self, Counter, Histogram, Store};
use crate::state::pricing;
use crate::state::trace::{Owner, SpanSink, Tracer};
use crate::transcript::entry::{Entry, Millis, Tokens};

mod apply;
mod emit;
mod lifecycle;
mod session;
use session::Pending;
pub use session::{Projects, Session, SessionSnapshot, State, tool_label};

/// How sessions become projects on the `project` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
pub enum ProjectLabel {
    /// The project folder name under `projects/` (lossy: `/a/b.c` → `-a-b-c`).
    Slug,
    /// The last component of the session's working directory, made unique.
    #[default]
    Basename,
    /// No project label (empty value).
    None,
}

/// Settings the aggregator needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// A session quiet this long (ms of transcript time) goes idle (`--idle-timeout`).
    pub idle_after_ms: Millis,
    /// A session quiet this long (ms) ends (`--end-timeout`).
    pub end_after_ms: Millis,
    /// How sessions get their `project` label.
    pub project_label: ProjectLabel,
    /// Series per metric family before new label sets are dropped and counted.
    pub max_series: usize,
    /// Keys the dedup window holds (`--dedup-window`).
    pub dedup_capacity: usize,
    /// Prices per model, for the cost counter.
    pub pricing: pricing::Table,
    /// Put message content on spans, each item cut to this many bytes (opt-in; `None`: never).
    pub trace_content: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            idle_after_ms: 5 * 60_000,
            end_after_ms: 30 * 60_000,
            project_label: ProjectLabel::Basename,
            max_series: 2000,
            dedup_capacity: 2_000_000,
            pricing: pricing::Table::default(),
            trace_content: None,
        }
    }
}

/// The file an entry was read from.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// Its role, project folder, session and agent, from its place in the tree.
    pub info: &'a FileInfo,
    /// The agent file's first prompt was `Warmup` (a 2.0.x cache-warming call).
    pub warmup: bool,
}

/// Realtime event settings of an aggregator.
#[derive(Clone)]
pub struct Emitter {
    /// Where events go (usually a bus's `publish`).
    pub sink: crate::events::EventSink,
    /// How much text events carry.
    pub detail: crate::events::Detail,
    /// Lines stamped before this are history: no events for them.
    pub since_ms: Millis,
    /// Rules checked against every new tool call.
    pub rules: Option<Arc<crate::rules::Rules>>,
    /// The bus's counters, copied into the store's self-metrics at each tick.
    pub stats: Option<Arc<crate::events::BusStats>>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter").field("detail", &self.detail).field("since_ms", &self.since_ms).finish()
    }
}

/// Session state and counters.
#[derive(Debug, Serialize, Deserialize)]
pub struct Aggregator {
    /// Every counter, gauge and histogram; readers take the aggregator's lock.
    pub store: Store,
    dedup: Window,
    /// Boxed: the table then holds a pointer per slot, not a whole session (a third
    /// of its slots are empty at any size).
    sessions: FastMap<String, Box<Session>>,
    projects: Projects,
    pending: FastMap<String, Pending>,
    /// Calls still without a result when their session ended: their result may come
    /// when the session resumes, and is then named by its call (with no duration).
    /// Past 10,000, those of sessions forgotten at `--session-retention` are dropped.
    #[serde(default)]
    orphans: FastMap<String, Pending>,
    last_activity: HashMap<String, Millis>,
    /// When the counters started (the first run): the start of cumulative OTLP sums.
    #[serde(default)]
    pub since_ms: Millis,
    /// Turns being traced; `None` unless OTLP traces are on.
    #[serde(default)]
    tracer: Option<Tracer>,
    #[serde(skip)]
    config: Config,
    /// Where realtime events go; `None`: no events.
    #[serde(skip)]
    events: Option<Emitter>,

    #[serde(skip)]
    unpriced: BTreeSet<String>,
    #[serde(skip)]
    evictions_reported: u64,
    /// Bus counters already added to the store (published, lagged).
    #[serde(skip)]
    bus_reported: (u64, u64),
    /// The journal is being applied again after a restart (see [`Aggregator::set_replaying`]).
    #[serde(skip)]
    replaying: bool,
    /// Told of every usage counted, with its time (`scan --by`); `None`: nobody asks.
    #[serde(skip)]
    ledger: Option<Ledger>,
    /// Lines applied while events are on but stamped before they began (history: no events).
    #[serde(skip)]
    lines_before_events: u64,
}

/// What one response line adds to the token and cost counters, with the line's time:
/// what `scan --by day|session|…` groups. The deltas of one response's lines sum to
/// what the counters hold for it.
#[derive(Debug, Clone, Copy)]
pub struct UsageFact<'a> {
    /// The line's transcript time, if it has one.
    pub ts_ms: Option<Millis>,
    /// The session the usage is counted under (the response's first line's).
    pub session: &'a str,
    /// Its `project` label.
    pub project: &'a str,
    /// The response's model.
    pub model: &'a str,
    /// `main`, `subagent` or `auxiliary`.
    pub source: &'a str,
    /// Tokens this line adds.
    pub tokens: Tokens,
    /// Cost this line adds, in USD (0 for a model without a price).
    pub cost_usd: f64,
    /// The response's first line (a request counted).
    pub first: bool,
}

/// What receives every [`UsageFact`] (see [`Aggregator::set_ledger`]).
pub type LedgerFn = Box<dyn FnMut(&UsageFact<'_>) + Send>;

struct Ledger(LedgerFn);

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ledger")
    }
}

impl Aggregator {
    /// Empty state with `config`; counters start now ([`Aggregator::since_ms`]).
    pub fn new(config: Config) -> Aggregator {
        let mut store = Store::new(config.max_series);
        store.touch_self_metrics();
        Aggregator {
            store,
            dedup: Window::new(config.dedup_capacity),
            sessions: FastMap::default(),
            projects: Projects::default(),
            pending: FastMap::default(),
            orphans: FastMap::default(),
            last_activity: HashMap::new(),
            since_ms: crate::transcript::entry::now_ms(),
            tracer: None,
            config,
            events: None,
            unpriced: BTreeSet::new(),
            evictions_reported: 0,
            bus_reported: (0, 0),
            replaying: false,
            ledger: None,
            lines_before_events: 0,
        }
    }

    /// While the journal is applied again: no events (they were sent), and the
    /// rule matches it recorded with its entries are counted.
    pub fn set_replaying(&mut self, on: bool) {
        self.replaying = on;
    }

    /// Lines stamped from this time on get events (and rule checks); `None`: no events.
    pub fn events_since(&self) -> Option<Millis> {
        self.events.as_ref().map(|em| em.since_ms)
    }

    /// Re-attach settings after loading from a checkpoint.
    pub fn configure(&mut self, config: Config) {
        self.store.set_max_series(config.max_series);
        self.store.touch_self_metrics();
        // Lag is measured by this process; re-reads after a crash would skew it.
        self.store.clear_histogram(Histogram::EventLag);
        self.dedup.set_capacity(config.dedup_capacity);
        self.evictions_reported = self.dedup.evicted();
        self.config = config;
    }

    /// Mark every session held as started (a format 1 checkpoint kept no
    /// session keys): one forgotten later and seen again is not new.
    pub fn remember_sessions(&mut self) {
        for id in self.sessions.keys() {
            self.dedup.first_time(dedup::session_key(id));
        }
    }

    /// Trace turns from now on (lines stamped before `since_ms` are history and
    /// are not traced), handing finished spans to `sink`. A tracer restored from
    /// a checkpoint keeps its state and start.
    pub fn enable_traces(&mut self, since_ms: Millis, sink: SpanSink) {
        self.tracer.get_or_insert_with(|| Tracer::new(since_ms)).set_sink(Some(sink));
    }

    /// Call `f` with every usage counted from now on (`None`: stop).
    pub fn set_ledger(&mut self, f: Option<LedgerFn>) {
        self.ledger = f.map(Ledger);
    }

    /// Send realtime events for lines stamped from `emitter.since_ms` on (`None`: stop).
    pub fn set_events(&mut self, emitter: Option<Emitter>) {
        if emitter.as_ref().is_some_and(|e| e.stats.is_some()) {
            self.store.touch(Counter::EventsPublished, &[]);
            self.store.touch(Counter::EventsLagged, &[]);
        }
        // Every risky rule's series exists from the start: its first match is an increase.
        if let Some(rules) = emitter.as_ref().and_then(|e| e.rules.as_ref()) {
            for r in rules.iter().filter(|r| r.action != crate::rules::Action::Allow) {
                self.store.touch(Counter::RuleMatches, &[&metrics::label_value(&r.name), r.severity.as_str()]);
            }
        }
        self.events = emitter;
    }

    /// Stop tracing and forget open turns.
    pub fn disable_traces(&mut self) {
        self.tracer = None;
    }

    /// The tracer, while OTLP traces are on.
    pub fn tracer(&self) -> Option<&Tracer> {
        self.tracer.as_ref()
    }

    /// The tracer, while OTLP traces are on (to attach a sink, or mark the backfill done).
    pub fn tracer_mut(&mut self) -> Option<&mut Tracer> {
        self.tracer.as_mut()
    }

    /// End every open turn now, at its last activity (a one-off run such as a trace
    /// backfill ends).
    pub fn finish_traces(&mut self) {
        let mut ids: Vec<String> =
            self.sessions.values().filter(|s| s.turn_start_ms.is_some()).map(|s| s.id.clone()).collect();
        ids.sort();
        for id in ids {
            self.end_turn(&id);
        }
    }

    /// Every session held (live ones, and ended ones until `--session-retention` prunes them).
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values().map(|s| &**s)
    }

    /// Lines applied while events were on but stamped before they began: history,
    /// so no events (what `watch` explains when lines come and nothing shows).
    pub fn lines_before_events(&self) -> u64 {
        self.lines_before_events
    }

    /// Sessions counted (`sessions_started_total`) but no longer held: forgotten after
    /// `--session-retention`. Their usage stays in the counters.
    pub fn forgotten_sessions(&self) -> u64 {
        let started = self.store.counter_sum(Counter::SessionsStarted, &[]) as u64;
        started.saturating_sub(self.sessions.len() as u64)
    }

    /// The session `id`, if held.
    pub fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id).map(|s| &**s)
    }

    /// Models seen without a price.
    pub fn unpriced_models(&self) -> &BTreeSet<String> {
        &self.unpriced
    }
}

/// Which chain of its session a line belongs to (for traces).
fn owner_of(e: &Entry, src: &Source<'_>) -> Owner {
    match src.info.role {
        Role::Compaction => Owner::Auxiliary,
        Role::Subagent if src.warmup => Owner::Auxiliary,
        Role::Subagent => Owner::Agent(src.info.agent.clone().unwrap_or_else(|| "agent".into())),
        Role::Main if e.sidechain => Owner::Agent("sidechain".into()),
        Role::Main => Owner::Main,
    }
}

/// `main`, `subagent` or `auxiliary` (compaction and warm-up calls).
fn query_source(e: &Entry, src: &Source<'_>) -> &'static str {
    match src.info.role {
        Role::Compaction => "auxiliary",
        Role::Subagent if src.warmup => "auxiliary",
        Role::Subagent => "subagent",
        Role::Main if e.sidechain => "subagent",
        Role::Main => "main",
    }
}

#[cfg(test)]
mod tests;
