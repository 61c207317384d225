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

use crate::sinks::trace::{At, Owner, SpanSink, Tracer};
use crate::source::discover::{FileInfo, Role};
use crate::state::dedup::{self, FastMap, Window};
use crate::state::metrics::{self, Counter, Exemplar, Histogram, Store};
use crate::state::pricing;
use crate::transcript::entry::{Entry, Kind, Millis, Tokens};

mod lifecycle;
mod session;
use session::{DEFAULT_WINDOW, LONG_WINDOW, Pending, Projects};
pub use session::{Session, SessionSnapshot, State, tool_label};

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
    pub idle_after_ms: Millis,
    pub end_after_ms: Millis,
    pub project_label: ProjectLabel,
    pub max_series: usize,
    pub dedup_capacity: usize,
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
    pub info: &'a FileInfo,
    /// The agent file's first prompt was `Warmup` (a 2.0.x cache-warming call).
    pub warmup: bool,
}

/// Realtime event settings of an aggregator.
#[derive(Clone)]
pub struct Emitter {
    pub sink: crate::events::EventSink,
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
    pub store: Store,
    dedup: Window,
    sessions: FastMap<String, Session>,
    projects: Projects,
    pending: FastMap<String, Pending>,
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
}

impl Aggregator {
    pub fn new(config: Config) -> Aggregator {
        let mut store = Store::new(config.max_series);
        store.touch_self_metrics();
        Aggregator {
            store,
            dedup: Window::new(config.dedup_capacity),
            sessions: FastMap::default(),
            projects: Projects::default(),
            pending: FastMap::default(),
            last_activity: HashMap::new(),
            since_ms: crate::transcript::entry::now_ms(),
            tracer: None,
            config,
            events: None,
            unpriced: BTreeSet::new(),
            evictions_reported: 0,
            bus_reported: (0, 0),
            replaying: false,
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

    fn emit(&self, session: &str, project: &str, agent: Option<&str>, ts: Millis, kind: crate::events::Kind) {
        if let Some(em) = &self.events {
            (em.sink)(crate::events::Event {
                id: 0,
                ts_ms: ts,
                session_id: session.to_owned(),
                project: project.to_owned(),
                agent_id: agent.map(str::to_owned),
                kind,
            });
        }
    }

    /// An `error` event about the watcher itself (unreadable file or folder,
    /// malformed lines), when events are on. `message` names files, never content.
    pub fn report_error(&self, message: String, now: Millis) {
        self.emit("", "", None, now, crate::events::Kind::Error { message });
    }

    /// Stop tracing and forget open turns.
    pub fn disable_traces(&mut self) {
        self.tracer = None;
    }

    pub fn tracer(&self) -> Option<&Tracer> {
        self.tracer.as_ref()
    }

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

    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    pub fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// Models seen without a price.
    pub fn unpriced_models(&self) -> &BTreeSet<String> {
        &self.unpriced
    }

    /// Apply one entry read from `src`.
    pub fn apply(&mut self, e: &Entry, src: &Source<'_>) {
        let Some(id) = e.session_id.as_deref().or(src.info.session.as_deref()) else { return };
        let has_effect = e.response.is_some()
            || e.api_error.is_some()
            || !e.tool_uses.is_empty()
            || !e.tool_results.is_empty()
            || e.prompt
            || e.compaction.is_some()
            || e.cwd.is_some();
        if !self.sessions.contains_key(id) {
            if !has_effect {
                return;
            }
            self.start_session(id, e, src);
        }
        let project = self.sessions[id].project.clone();
        let source = query_source(e, src);
        let main_chain = source == "main";
        // Tracing context, only for traced lines (no allocation otherwise).
        let traced = e.timestamp.filter(|ts| self.tracer.as_ref().is_some_and(|t| t.wants(*ts)));
        let owner = traced.map(|_| owner_of(e, src));
        // Traced only inside a turn (the turn model: `turn_activity`, `end_turn`).
        let at = |prompts: u64, turn: Option<Millis>| {
            traced.zip(owner.as_ref()).zip(turn).map(|((ts, owner), turn_ms)| At {
                session: id,
                project: &project,
                prompts,
                ts,
                owner,
                query_source: source,
                turn_ms,
            })
        };
        // Realtime events: only for lines at or after the emitter's start.
        let ev_ts = e.timestamp.filter(|ts| self.events.as_ref().is_some_and(|em| *ts >= em.since_ms));
        let agent: Option<String> = match ev_ts.map(|_| owner_of(e, src)) {
            Some(Owner::Agent(a)) => Some(a),
            _ => None,
        };
        let agent = agent.as_deref();
        let detail = self.events.as_ref().map(|em| em.detail).unwrap_or_default();
        let cap = |t: &str| crate::transcript::entry::cap_text(t, detail.max_bytes.max(16));

        if let Some(ts) = e.timestamp {
            let s = self.sessions.get_mut(id).expect("session exists");
            s.first_ms = s.first_ms.min(ts);
            if ts > s.last_ms {
                s.last_ms = ts;
            }
            let resumed = s.state != State::Active;
            s.state = State::Active;
            if let (true, Some(ts)) = (resumed, ev_ts) {
                self.emit(id, &project, agent, ts, crate::events::Kind::SessionResume {});
            }
            match self.last_activity.get_mut(&*project) {
                Some(last) => *last = (*last).max(ts),
                None => {
                    self.last_activity.insert(project.to_string(), ts);
                }
            }
        }

        if e.prompt && main_chain && self.first_fact(b'p', e.uuid) {
            self.store.inc(Counter::Prompts, &[&project], 1.0);
            // The previous turn ends where its last activity was, not at this prompt.
            self.end_turn(id);
            let s = self.sessions.get_mut(id).expect("session exists");
            s.prompts += 1;
            s.turn_start_ms = e.timestamp;
            if let Some(ts) = e.timestamp {
                s.turn_last_ms = ts;
            }
            let (prompts, turn) = (s.prompts, s.turn_start_ms);
            if let (Some(tr), Some(a)) = (&mut self.tracer, at(prompts, turn)) {
                let text = e.content.as_ref().and_then(|c| c.prompt.as_deref());
                let capped =
                    self.config.trace_content.zip(text).map(|(cap, t)| crate::transcript::entry::cap_text(t, cap));
                tr.prompt(&a, capped.as_deref());
            }
            if let Some(ts) = ev_ts {
                let text =
                    detail.content.then(|| e.content.as_ref().and_then(|c| c.prompt.as_deref()).map(cap)).flatten();
                let kind = crate::events::Kind::Message {
                    role: "user".into(),
                    model: None,
                    usage: None,
                    cost_usd: None,
                    text,
                    continued: false,
                };
                self.emit(id, &project, agent, ts, kind);
            }
        } else {
            self.turn_activity(id, e);
        }
        let at_line = at(self.sessions[id].prompts, self.sessions[id].turn_start_ms);
        if let Some(r) = &e.response {
            self.apply_response(id, &project, source, main_chain, r, at_line.as_ref(), ev_ts.map(|ts| (ts, agent)));
        }
        if let Some(kind) = e.api_error.filter(|_| self.first_fact(b'e', e.uuid)) {
            let s = self.sessions.get_mut(id).expect("session exists");
            s.api_errors += 1;
            let model = s.last_model.clone().unwrap_or_else(|| "unknown".into());
            self.store.inc(Counter::ApiErrors, &[&project, &model, kind.as_str()], 1.0);
            if let (Some(tr), Some(a)) = (&mut self.tracer, &at_line) {
                tr.api_error(a, kind.as_str());
            }
            if let Some(ts) = ev_ts {
                self.emit(id, &project, agent, ts, crate::events::Kind::ApiError { kind: kind.as_str().into() });
            }
        }
        for t in &e.tool_uses {
            if !self.dedup.first_time(dedup::tool_use_key(&t.id)) {
                continue;
            }
            let input_text =
                e.content.as_ref().and_then(|c| c.tool_inputs.iter().find(|(i, _)| *i == *t.id)).map(|(_, x)| x);
            let facts = e.content.as_ref().and_then(|c| c.tool_facts.iter().find(|(i, _)| *i == *t.id)).map(|(_, f)| f);
            if let (Some(tr), Some(a)) = (&mut self.tracer, &at_line) {
                tr.tool_use(a, t);
                if let (Some(cap), Some(input)) = (self.config.trace_content, input_text) {
                    let input = crate::transcript::entry::cap_text(input, cap);
                    tr.tool_content(id, &t.id, crate::sinks::trace::semconv::GEN_AI_TOOL_CALL_ARGUMENTS, &input);
                }
            }
            // Rules are checked on new activity (lines that get events) and, when the
            // journal is replayed, on the calls it recorded as such.
            let matches = if ev_ts.is_some() || self.replaying {
                let by_name = || {
                    let rules = self.events.as_ref().and_then(|em| em.rules.as_ref());
                    rules.map(|r| r.check(&t.name, &serde_json::Value::Null))
                };
                facts.map(|f| f.matches.clone()).or_else(by_name).unwrap_or_default()
            } else {
                Vec::new()
            };
            for m in &matches {
                let rule = metrics::label_value(&m.rule);
                self.store.inc(Counter::RuleMatches, &[&rule, m.severity.as_str()], 1.0);
            }
            if let Some(ts) = ev_ts {
                let input = input_text.map(String::as_str);
                self.emit_tool_use(id, &project, agent, ts, t, input, facts, matches, detail);
            }
            let label = tool_label(&t.name);
            self.store.inc(Counter::ToolCalls, &[&project, &label], 1.0);
            let s = self.sessions.get_mut(id).expect("session exists");
            s.tool_calls += 1;
            if matches!(&*t.name, "Task" | "Agent") {
                s.subagents += 1;
                let agent_type = metrics::label_value(t.subagent_type.as_deref().unwrap_or("general-purpose"));
                self.store.inc(Counter::SubagentsStarted, &[&project, &agent_type], 1.0);
            }
            self.pending.insert(
                t.id.to_string(),
                Pending { tool: label, at: e.timestamp, session: id.to_owned(), name: t.name.to_string() },
            );
        }
        let mut new_results = e.tool_results.is_empty();
        for r in &e.tool_results {
            if !self.dedup.first_time(dedup::tool_result_key(&r.tool_use_id)) {
                continue;
            }
            new_results = true;
            let call = self.pending.remove(&*r.tool_use_id);
            let tool = call.as_ref().map_or("unknown", |c| c.tool.as_str());
            if r.is_error {
                self.store.inc(Counter::ToolErrors, &[&project, tool], 1.0);
                self.sessions.get_mut(id).expect("session exists").tool_errors += 1;
            }
            if let (Some(end), Some(start)) = (e.timestamp, call.as_ref().and_then(|c| c.at)) {
                let exemplar = self
                    .tracer
                    .as_ref()
                    .and_then(|t| t.tool_span(id, &r.tool_use_id))
                    .map(|(trace_id, span_id)| Exemplar { trace_id, span_id, at_ms: end, value: 0.0 });
                self.store.observe_with(Histogram::ToolDuration, &[tool], (end - start).max(0) as f64, exemplar);
            }
            let out = e.content.as_ref().and_then(|c| c.tool_outputs.iter().find(|(i, _)| *i == *r.tool_use_id));
            if let (Some(tr), Some(a)) = (&mut self.tracer, &at_line) {
                // Content first: the call's span leaves at its result.
                if let (Some(cap), Some((_, out))) = (self.config.trace_content, out) {
                    let out = crate::transcript::entry::cap_text(out, cap);
                    tr.tool_content(id, &r.tool_use_id, crate::sinks::trace::semconv::GEN_AI_TOOL_CALL_RESULT, &out);
                }
                tr.tool_result(a, r, e.result_agent_id.as_deref());
            }
            if let Some(ts) = ev_ts {
                let duration_ms = call.as_ref().and_then(|c| c.at).map(|at| (ts - at).max(0));
                let kind = crate::events::Kind::ToolResult {
                    tool_use_id: r.tool_use_id.to_string(),
                    name: call
                        .as_ref()
                        .filter(|c| !c.name.is_empty())
                        .map_or_else(|| tool.to_owned(), |c| c.name.clone()),
                    is_error: r.is_error,
                    content_bytes: detail.content.then(|| out.map(|(_, o)| o.len() as u64)).flatten(),
                    duration_ms,
                    output: detail.content.then(|| out.map(|(_, o)| cap(o))).flatten(),
                };
                self.emit(id, &project, agent, ts, kind);
            }
        }
        if new_results {
            self.store.inc(Counter::LinesOfCode, &[&project, "added"], e.lines_added as f64);
            self.store.inc(Counter::LinesOfCode, &[&project, "removed"], e.lines_removed as f64);
            let s = self.sessions.get_mut(id).expect("session exists");
            s.lines_added += e.lines_added;
            s.lines_removed += e.lines_removed;
        }
        if let Some(c) = e.compaction.as_ref().filter(|_| self.first_fact(b'c', e.uuid)) {
            if let (Some(tr), Some(a)) = (&mut self.tracer, &at_line) {
                tr.compaction(a, c);
            }
            if let Some(ts) = ev_ts {
                let kind = crate::events::Kind::Compaction {
                    trigger: if c.manual { "manual" } else { "auto" }.into(),
                    tokens_before: c.pre_tokens,
                    tokens_after: c.post_tokens,
                };
                self.emit(id, &project, agent, ts, kind);
                let before = self.sessions.get(id).map_or(0, |s| s.context_tokens);
                let after = c.post_tokens.unwrap_or(0);
                let kind = crate::events::Kind::ContextGrowth {
                    tokens_added: after as i64 - before as i64,
                    source: "compaction".into(),
                    cumulative: after,
                };
                self.emit(id, &project, agent, ts, kind);
            }
            self.store.inc(Counter::Compactions, &[&project, if c.manual { "manual" } else { "auto" }], 1.0);
            let s = self.sessions.get_mut(id).expect("session exists");
            s.compactions += 1;
            // The context before the boundary no longer exists.
            s.context_tokens = c.post_tokens.unwrap_or(0);
        }
        // One lookup for the session's working folder (kept from its first line) and branch.
        if main_chain && (e.cwd.is_some() || e.git_branch.is_some()) {
            let s = self.sessions.get_mut(id).expect("session exists");
            if let Some(c) = &e.cwd
                && s.cwd.is_none()
            {
                s.cwd = Some(c.trim_end_matches('/').to_owned());
            }
            if let Some(b) = &e.git_branch
                && s.git_branch.as_deref() != Some(&**b)
            {
                s.git_branch = Some(b.to_string());
            }
        }
        if matches!(e.kind, Kind::User | Kind::Assistant | Kind::System)
            && let (Some(tr), Some(a)) = (&mut self.tracer, &at_line)
        {
            tr.touch(a);
        }
    }

    /// `tool_use`, and `agent_spawn` for `Task`/`Agent` calls, and `rule_match` for rules it trips.
    ///
    /// Summaries and rule matches were read from the whole input when its line was
    /// parsed (`facts`, see `capture::Inspect`); `input_text` is the input cut to the
    /// capture size, only exported. A call without facts (content not captured) is
    /// checked by its tool name alone.
    #[allow(clippy::too_many_arguments)]
    fn emit_tool_use(
        &mut self,
        session: &str,
        project: &str,
        agent: Option<&str>,
        ts: Millis,
        t: &crate::transcript::entry::ToolUse,
        input_text: Option<&str>,
        facts: Option<&crate::transcript::entry::InputFacts>,
        matches: Vec<crate::rules::Match>,
        detail: crate::events::Detail,
    ) {
        use crate::events::{Kind as K, ToolCategory};
        let facts_shown = facts.filter(|_| detail.summaries || detail.content);
        let kind = K::ToolUse {
            tool_use_id: t.id.to_string(),
            name: t.name.to_string(),
            category: ToolCategory::of(&t.name),
            summary: facts_shown.and_then(|f| f.summary.clone()),
            input: detail
                .content
                .then(|| input_text.map(|x| crate::transcript::entry::cap_text(x, detail.max_bytes.max(16))))
                .flatten(),
        };
        self.emit(session, project, agent, ts, kind);
        if matches!(&*t.name, "Task" | "Agent") {
            let kind = K::AgentSpawn {
                tool_use_id: t.id.to_string(),
                agent_type: t.subagent_type.as_deref().unwrap_or("general-purpose").to_owned(),
                description: facts_shown.and_then(|f| f.description.clone()),
            };
            self.emit(session, project, agent, ts, kind);
        }
        for m in matches {
            let kind = K::RuleMatch {
                rule: m.rule,
                severity: m.severity.as_str().into(),
                tool_use_id: t.id.to_string(),
                tool: t.name.to_string(),
            };
            self.emit(session, project, agent, ts, kind);
        }
    }

    /// Whether the fact a line stands for is new: a line without a `uuid` has
    /// no identity and always counts (transcripts have written one since 2025).
    fn first_fact(&mut self, what: u8, uuid: Option<u64>) -> bool {
        uuid.is_none_or(|u| self.dedup.first_time(dedup::line_key(what, u)))
    }

    fn start_session(&mut self, id: &str, e: &Entry, src: &Source<'_>) {
        let cwd = e.cwd.as_deref();
        let project = self.projects.label(self.config.project_label, cwd, &src.info.slug);
        // A session forgotten after `--session-retention` whose file grows again
        // is live state again, not a new session.
        let new = self.dedup.first_time(dedup::session_key(id));
        if new {
            self.store.inc(Counter::SessionsStarted, &[&project], 1.0);
        }
        if let Some(ts) = e.timestamp.filter(|ts| new && self.events.as_ref().is_some_and(|em| *ts >= em.since_ms)) {
            let kind = crate::events::Kind::SessionStart {
                cwd: cwd.map(str::to_owned),
                git_branch: e.git_branch.as_deref().map(str::to_owned),
            };
            self.emit(id, &project, None, ts, kind);
        }
        let ts = e.timestamp.unwrap_or(0);
        self.sessions.insert(
            id.to_owned(),
            Session {
                id: id.to_owned(),
                project: project.into(),
                slug: src.info.slug.clone(),
                git_branch: None,
                first_ms: e.timestamp.unwrap_or(Millis::MAX),
                last_ms: ts,
                state: State::Active,
                models: BTreeSet::new(),
                prompts: 0,
                api_requests: 0,
                tool_calls: 0,
                tool_errors: 0,
                api_errors: 0,
                subagents: 0,
                compactions: 0,
                tokens: Tokens::default(),
                cost_usd: 0.0,
                context_tokens: 0,
                context_window: DEFAULT_WINDOW,
                last_model: None,
                cwd: cwd.map(|c| c.trim_end_matches('/').to_owned()),
                attached: false,
                by_model: Vec::new(),
                lines_added: 0,
                lines_removed: 0,
                turn_start_ms: None,
                turn_last_ms: ts,
            },
        );
    }

    // The line's context, passed apart to keep borrows of `self` short.
    #[allow(clippy::too_many_arguments)]
    fn apply_response(
        &mut self,
        id: &str,
        project: &str,
        source: &str,
        main_chain: bool,
        r: &crate::transcript::entry::Response,
        at: Option<&At<'_>>,
        ev: Option<(Millis, Option<&str>)>,
    ) {
        let seen = self.dedup.observe(r.key, r.tokens);
        let delta = seen.delta();
        if !seen.first && delta.is_zero() {
            return;
        }
        let model = metrics::label_value(&r.model);
        let labels = [project, model.as_str(), source];
        let price = &self.config.pricing;
        let cost_after = price.cost(&r.model, &seen.after, r.fast);
        if seen.first {
            self.store.inc(Counter::ApiRequests, &labels, 1.0);
            if cost_after.is_none() {
                self.store.inc(Counter::UnpricedRequests, &[&model], 1.0);
                self.unpriced.insert(model.clone());
            }
        }
        // Whole nano-dollars (see `metrics::Def::scale`).
        let nano = |usd: f64| (usd * 1e9).round();
        let cost = match cost_after {
            Some(after) if seen.first => nano(after),
            Some(after) => (nano(after) - nano(price.cost(&r.model, &seen.before, r.fast).unwrap_or(0.0))).max(0.0),
            None => 0.0,
        };
        for (ty, n) in [
            ("input", delta.input),
            ("output", delta.output),
            ("cache_read", delta.cache_read),
            ("cache_creation", delta.cache_creation),
        ] {
            self.store.inc(Counter::Tokens, &[project, &model, source, ty], n as f64);
        }
        self.store.inc(Counter::Cost, &labels, cost);
        if let (Some(tr), Some(a)) = (&mut self.tracer, at) {
            tr.response(a, r, seen.after, cost / 1e9);
        }
        if let Some((ts, agent)) = ev {
            // What this line adds, exactly as the counters got it: summed over the
            // events, usage equals the token counters (per model and type).
            let usage = crate::events::Usage {
                input: delta.input,
                output: delta.output,
                cache_read: delta.cache_read,
                cache_creation: delta.cache_creation,
            };
            let kind = crate::events::Kind::Message {
                role: "assistant".into(),
                model: Some(model.clone()),
                usage: Some(usage),
                cost_usd: cost_after.map(|_| cost / 1e9),
                text: None,
                continued: !seen.first,
            };
            self.emit(id, project, agent, ts, kind);
        }
        if let (Some((ts, agent)), true) = (ev, seen.first) {
            let t = seen.after;
            if main_chain {
                let before = self.sessions.get(id).map_or(0, |s| s.context_tokens);
                let now = t.prompt();
                let kind = crate::events::Kind::ContextGrowth {
                    tokens_added: now as i64 - before as i64,
                    source: "response".into(),
                    cumulative: now,
                };
                self.emit(id, project, agent, ts, kind);
            }
        }
        let s = self.sessions.get_mut(id).expect("session exists");
        s.tokens += delta;
        s.cost_usd += cost / 1e9;
        let i = match s.by_model.iter().position(|(m, ..)| *m == model) {
            Some(i) => i,
            None => {
                s.by_model.push((model.clone(), Tokens::default(), 0.0));
                s.by_model.len() - 1
            }
        };
        let m = &mut s.by_model[i];
        m.1 += delta;
        m.2 += cost / 1e9;
        if seen.first {
            s.api_requests += 1;
            if !s.models.contains(&model) {
                s.models.insert(model.clone());
            }
        }
        if main_chain {
            let prompt = seen.after.prompt();
            if prompt > DEFAULT_WINDOW {
                s.context_window = LONG_WINDOW;
            }
            s.context_tokens = prompt;
            if s.last_model.as_deref() != Some(&model) {
                s.last_model = Some(model.clone());
            }
            if seen.first {
                self.store.observe(Histogram::ContextTokens, &[&model], prompt as f64);
            }
        }
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
mod tests {
    use super::*;
    use crate::state::metrics::Gauge;
    use crate::transcript::parse_line;

    fn info(role: Role) -> FileInfo {
        FileInfo { role, slug: "-w-app".into(), session: Some("s1".into()), agent: None }
    }

    fn feed(a: &mut Aggregator, role: Role, lines: &[&str]) {
        let i = info(role);
        for l in lines {
            let e = Entry::from_line(&parse_line(l.as_bytes()).unwrap());
            a.apply(&e, &Source { info: &i, warmup: false });
        }
    }

    const PROMPT: &str = r#"{"type":"user","sessionId":"s1","cwd":"/w/app","timestamp":"2025-01-01T00:00:00Z","message":{"content":"go"}}"#;
    const A1: &str = r#"{"type":"assistant","sessionId":"s1","cwd":"/w/app","timestamp":"2025-01-01T00:00:01Z","requestId":"r1","message":{"id":"m1","model":"claude-opus-4-6","usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":1000},"content":[{"type":"text","text":"x"}]}}"#;
    const A2: &str = r#"{"type":"assistant","sessionId":"s1","cwd":"/w/app","timestamp":"2025-01-01T00:00:02Z","requestId":"r1","message":{"id":"m1","model":"claude-opus-4-6","usage":{"input_tokens":10,"output_tokens":50,"cache_read_input_tokens":1000},"content":[{"type":"tool_use","id":"t1","name":"Bash","input":{}}]}}"#;
    const R1: &str = r#"{"type":"user","sessionId":"s1","cwd":"/w/app","timestamp":"2025-01-01T00:00:05Z","message":{"content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":"x"}]}}"#;

    #[test]
    fn a_split_response_counts_once_with_its_largest_usage() {
        let mut a = Aggregator::new(Config::default());
        feed(&mut a, Role::Main, &[PROMPT, A1, A2, A2, R1, R1]);
        let s = &a.store;
        let tok = |t| s.counter(Counter::Tokens, &["app", "claude-opus-4-6", "main", t]);
        assert_eq!((tok("input"), tok("output"), tok("cache_read")), (10.0, 50.0, 1000.0));
        assert_eq!(s.counter(Counter::ApiRequests, &["app", "claude-opus-4-6", "main"]), 1.0);
        assert_eq!(s.counter(Counter::ToolCalls, &["app", "Bash"]), 1.0);
        assert_eq!(s.counter(Counter::ToolErrors, &["app", "Bash"]), 1.0);
        assert_eq!(s.counter(Counter::Prompts, &["app"]), 1.0);
        assert_eq!(s.counter(Counter::SessionsStarted, &["app"]), 1.0);
        let d = s.histogram(Histogram::ToolDuration, &["Bash"]).unwrap();
        assert_eq!((d.count, d.sum), (1, 3.0));
        let cost = s.counter(Counter::Cost, &["app", "claude-opus-4-6", "main"]);
        assert!((cost - (10.0 * 5.0 + 50.0 * 25.0 + 1000.0 * 0.5) / 1e6).abs() < 1e-9);
        let sess = a.session("s1").unwrap();
        assert_eq!(sess.context_tokens, 1010);
    }

    #[test]
    fn pending_tool_calls_are_gauged_until_their_result() {
        let mut a = Aggregator::new(Config::default());
        feed(&mut a, Role::Main, &[PROMPT, A2]);
        let t2 = crate::transcript::entry::parse_timestamp("2025-01-01T00:00:02Z").unwrap();
        a.tick(t2 + 90_000);
        assert_eq!(a.store.gauge(Gauge::ToolCallsPending, &["app", "Bash"]), Some(1.0));
        assert_eq!(a.store.gauge(Gauge::ToolCallOldestPending, &["app", "Bash"]), Some(90.0));
        feed(&mut a, Role::Main, &[R1]);
        a.tick(t2 + 91_000);
        assert_eq!(a.store.gauge(Gauge::ToolCallsPending, &["app", "Bash"]), None);
    }

    #[test]
    fn sidechains_and_agent_files_are_subagent_usage() {
        let mut a = Aggregator::new(Config::default());
        let side = A1.replace("\"sessionId\"", "\"isSidechain\":true,\"sessionId\"");
        feed(&mut a, Role::Main, &[&side]);
        assert_eq!(a.store.counter(Counter::ApiRequests, &["app", "claude-opus-4-6", "subagent"]), 1.0);
        feed(&mut a, Role::Compaction, &[&A1.replace("m1", "m2")]);
        assert_eq!(a.store.counter(Counter::ApiRequests, &["app", "claude-opus-4-6", "auxiliary"]), 1.0);
    }

    #[test]
    fn lifecycle_goes_idle_then_ended_and_resumes() {
        let mut a = Aggregator::new(Config::default());
        feed(&mut a, Role::Main, &[PROMPT, A1]);
        let t0 = crate::transcript::entry::parse_timestamp("2025-01-01T00:00:01Z").unwrap();
        a.tick(t0 + 60_000);
        assert_eq!(a.session("s1").unwrap().state, State::Active);
        assert_eq!(a.store.gauge(Gauge::Sessions, &["app", "active"]), Some(1.0));
        a.tick(t0 + 6 * 60_000);
        assert_eq!(a.session("s1").unwrap().state, State::Idle);
        assert_eq!(a.store.gauge(Gauge::ToolCallsPending, &["app", "Bash"]), None, "no call pending");
        assert_eq!(a.store.histogram(Histogram::TurnDuration, &["app"]).unwrap().sum, 1.0);
        a.tick(t0 + 31 * 60_000);
        assert_eq!(a.session("s1").unwrap().state, State::Ended);
        assert_eq!(a.store.gauge(Gauge::Sessions, &["app", "active"]), None);
        assert_eq!(a.store.histogram(Histogram::SessionDuration, &["app"]).unwrap().sum, 1.0);
        // New activity resumes the session without starting a new one.
        feed(&mut a, Role::Main, &[&A1.replace("m1", "m3").replace("00:00:01", "01:00:00")]);
        assert_eq!(a.session("s1").unwrap().state, State::Active);
        assert_eq!(a.store.counter(Counter::SessionsStarted, &["app"]), 1.0);
    }

    /// An aggregator tracing into a list, and the (count, summed ms) of the root spans sent.
    fn traced() -> (Aggregator, Arc<std::sync::Mutex<Vec<crate::sinks::trace::Span>>>) {
        let mut a = Aggregator::new(Config::default());
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let g = Arc::clone(&got);
        a.enable_traces(0, Arc::new(move |s| g.lock().unwrap().extend(s)));
        (a, got)
    }

    fn roots(got: &std::sync::Mutex<Vec<crate::sinks::trace::Span>>) -> (u64, f64) {
        let got = got.lock().unwrap();
        let roots = got.iter().filter(|s| s.parent.is_none());
        roots.fold((0, 0.0), |(n, ms), s| (n + 1, ms + (s.end_ms - s.start_ms) as f64))
    }

    fn turns(a: &Aggregator) -> (u64, f64) {
        a.store.histogram(Histogram::TurnDuration, &["app"]).map_or((0, 0.0), |h| (h.count, h.sum * 1000.0))
    }

    #[test]
    fn a_turn_ends_at_its_last_activity_not_at_the_next_prompt() {
        let (mut a, got) = traced();
        let next = PROMPT.replace("00:00:00", "00:00:09").replace("\"go\"", "\"more\"");
        feed(&mut a, Role::Main, &[PROMPT, A1, &next]);
        assert_eq!(turns(&a), (1, 1000.0), "prompt at 0 s, last activity at 1 s");
        assert_eq!(roots(&got), turns(&a), "the trace's root agrees");
    }

    #[test]
    fn a_running_tool_call_keeps_its_turn_open_through_idleness() {
        let (mut a, got) = traced();
        feed(&mut a, Role::Main, &[PROMPT, A2]);
        let t2 = crate::transcript::entry::parse_timestamp("2025-01-01T00:00:02Z").unwrap();
        a.tick(t2 + 6 * 60_000);
        assert_eq!(a.session("s1").unwrap().state, State::Idle);
        assert_eq!(turns(&a), (0, 0.0), "the Bash call is still running");
        assert_eq!(roots(&got), (0, 0.0));
        feed(&mut a, Role::Main, &[R1]);
        a.tick(t2 + 13 * 60_000);
        assert_eq!(turns(&a), (1, 5000.0), "idle with nothing running: the turn ends at the result");
        assert_eq!(roots(&got), turns(&a));
        // Work with no prompt (here a late response) is a turn of its own, in both.
        feed(&mut a, Role::Main, &[&A1.replace("m1", "m9")]);
        a.tick(t2 + 60 * 60_000);
        assert_eq!(turns(&a).0, 2);
        assert_eq!(roots(&got), turns(&a));
    }

    #[test]
    fn old_ended_sessions_are_pruned_but_counted() {
        let mut a = Aggregator::new(Config::default());
        feed(&mut a, Role::Main, &[PROMPT, A1]);
        let t0 = crate::transcript::entry::parse_timestamp("2025-01-01T00:00:01Z").unwrap();
        assert_eq!(a.prune(t0 + 60_000, 1000), 0, "live sessions are kept");
        a.tick(t0 + 31 * 60_000);
        assert_eq!(a.prune(t0 + 31 * 60_000, 40 * 86_400_000), 0);
        assert_eq!(a.prune(t0 + 41 * 86_400_000, 40 * 86_400_000), 1);
        assert!(a.session("s1").is_none());
        assert_eq!(a.store.counter(Counter::SessionsStarted, &["app"]), 1.0);
    }

    #[test]
    fn projects_sharing_a_basename_get_distinct_labels() {
        let mut p = Projects::default();
        assert_eq!(p.label(ProjectLabel::Basename, Some("/a/app"), "s"), "app");
        assert_eq!(p.label(ProjectLabel::Basename, Some("/b/app"), "s"), "b/app");
        assert_eq!(p.label(ProjectLabel::Basename, Some("/a/app/"), "s"), "app");
        assert_eq!(p.label(ProjectLabel::Basename, Some("/a/app/.claude/worktrees/agent-1"), "s"), "app");
        assert_eq!(p.label(ProjectLabel::Slug, Some("/a/app"), "-a-app"), "-a-app");
        assert_eq!(p.label(ProjectLabel::None, Some("/a/app"), "-a-app"), "");
        assert_eq!(tool_label("mcp__github__create_issue"), "mcp:github");
        assert_eq!(tool_label("Read"), "Read");
    }
}
