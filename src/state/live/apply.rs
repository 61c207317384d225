//! Applying one entry: each fact it holds is decided once (new or seen, through the
//! dedup window) and that one decision updates the counters, the session, the
//! tracer and the realtime events (built in `emit`).

use std::sync::Arc;

use super::session::{DEFAULT_WINDOW, LONG_WINDOW, Pending};
use super::{Aggregator, Session, Source, State, owner_of, query_source, tool_label};
use crate::state::dedup;
use crate::state::metrics::{self, Counter, Exemplar, Histogram};
use crate::state::trace::{At, Owner};
use crate::transcript::entry::{Entry, Kind, Millis, Response, Tokens};

/// What the facts of one line share: its session and labels, and whether it is
/// traced and gets events.
pub(super) struct Line<'a> {
    /// The session the line belongs to (its `sessionId`, else its file's).
    pub(super) id: &'a str,
    /// The session's project label (fixed when the session started).
    pub(super) project: Arc<str>,
    /// `main`, `subagent` or `auxiliary`.
    pub(super) source: &'static str,
    /// Transcript time of the line.
    pub(super) ts: Option<Millis>,
    /// Transcript time, when the tracer wants this line.
    traced: Option<Millis>,
    /// The chain the line belongs to, for traced lines only.
    owner: Option<Owner>,
    /// Transcript time, when the line gets events (stamped at or after the emitter's start).
    pub(super) ev_ts: Option<Millis>,
    /// The sub-agent the line is from, for lines that get events.
    pub(super) agent: Option<String>,
}

impl Line<'_> {
    /// The tracing context at turn `prompts` started at `turn`: `None` for a line not
    /// traced or outside a turn (the turn model: `turn_activity`, `end_turn`).
    fn at(&self, prompts: u64, turn: Option<Millis>) -> Option<At<'_>> {
        let ((ts, owner), turn_ms) = self.traced.zip(self.owner.as_ref()).zip(turn)?;
        let (session, project, query_source) = (self.id, &*self.project, self.source);
        Some(At { session, project, prompts, ts, owner, query_source, turn_ms })
    }

    fn main_chain(&self) -> bool {
        self.source == "main"
    }
}

impl Aggregator {
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
        let traced = e.timestamp.filter(|ts| self.tracer.as_ref().is_some_and(|t| t.wants(*ts)));
        let ev_ts = e.timestamp.filter(|ts| self.events.as_ref().is_some_and(|em| *ts >= em.since_ms));
        if ev_ts.is_none() && e.timestamp.is_some() && self.events.is_some() {
            self.lines_before_events += 1;
        }
        let line = Line {
            id,
            project: self.sessions[id].project.clone(),
            source: query_source(e, src),
            ts: e.timestamp,
            traced,
            // Tracing context, only for traced lines (no allocation otherwise).
            owner: traced.map(|_| owner_of(e, src)),
            ev_ts,
            agent: match ev_ts.map(|_| owner_of(e, src)) {
                Some(Owner::Agent(a)) => Some(a),
                _ => None,
            },
        };
        if let Some(ts) = e.timestamp {
            self.activity(&line, ts);
        }
        if e.prompt && line.main_chain() && self.first_fact(b'p', e.uuid) {
            self.prompt(&line, e);
        } else {
            self.turn_activity(id, e);
        }
        let at = line.at(self.sessions[id].prompts, self.sessions[id].turn_start_ms);
        if let Some(r) = &e.response {
            self.response(&line, r, at.as_ref());
        }
        if let Some(kind) = e.api_error.filter(|_| self.first_fact(b'e', e.uuid)) {
            let s = self.sessions.get_mut(id).expect("session exists");
            s.api_errors += 1;
            let model = s.last_model.clone().unwrap_or_else(|| "unknown".into());
            self.store.inc(Counter::ApiErrors, &[&line.project, &model, kind.as_str()], 1.0);
            if let (Some(tr), Some(a)) = (&mut self.tracer, &at) {
                tr.api_error(a, kind.as_str());
            }
            if let Some(ts) = line.ev_ts {
                self.emit_at(&line, ts, crate::events::Kind::ApiError { kind: kind.as_str().into() });
            }
        }
        self.tool_uses(&line, e, at.as_ref());
        self.tool_results(&line, e, at.as_ref());
        if let Some(c) = e.compaction.as_ref().filter(|_| self.first_fact(b'c', e.uuid)) {
            if let (Some(tr), Some(a)) = (&mut self.tracer, &at) {
                tr.compaction(a, c);
            }
            if let Some(ts) = line.ev_ts {
                self.emit_compaction(&line, ts, c);
            }
            self.store.inc(Counter::Compactions, &[&line.project, if c.manual { "manual" } else { "auto" }], 1.0);
            let s = self.sessions.get_mut(id).expect("session exists");
            s.compactions += 1;
            // The context before the boundary no longer exists.
            s.context_tokens = c.post_tokens.unwrap_or(0);
        }
        if line.main_chain() {
            let c = &e.context_bytes;
            let s = self.sessions.get_mut(id).expect("session exists");
            s.main_chain = true;
            for (source, n) in [
                ("user_text", c.user_text),
                ("assistant_output", c.assistant_output),
                ("attachment", c.attachment),
                ("meta", c.meta),
            ] {
                if n > 0 {
                    // Saturating: a restored checkpoint can hold any number.
                    match s.context_added.get_mut(source) {
                        Some(v) => *v = v.saturating_add(n),
                        None => {
                            s.context_added.insert(source.to_owned(), n);
                        }
                    }
                }
            }
        }
        // One lookup for the session's working folder (kept from its first line) and branch.
        if line.main_chain() && (e.cwd.is_some() || e.git_branch.is_some()) {
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
            && let (Some(tr), Some(a)) = (&mut self.tracer, &at)
        {
            tr.touch(a);
        }
    }

    /// A stamped line: the session's span of activity, its state (a quiet session
    /// resumes) and the project's last activity.
    fn activity(&mut self, line: &Line<'_>, ts: Millis) {
        let s = self.sessions.get_mut(line.id).expect("session exists");
        s.first_ms = s.first_ms.min(ts);
        if ts > s.last_ms {
            s.last_ms = ts;
        }
        let resumed = s.state != State::Active;
        s.state = State::Active;
        if let (true, Some(ts)) = (resumed, line.ev_ts) {
            self.emit_at(line, ts, crate::events::Kind::SessionResume {});
        }
        match self.last_activity.get_mut(&*line.project) {
            Some(last) => *last = (*last).max(ts),
            None => {
                self.last_activity.insert(line.project.to_string(), ts);
            }
        }
    }

    /// A new prompt: it ends the previous turn (where that turn's last activity was)
    /// and starts the next.
    fn prompt(&mut self, line: &Line<'_>, e: &Entry) {
        self.store.inc(Counter::Prompts, &[&line.project], 1.0);
        self.end_turn(line.id);
        let s = self.sessions.get_mut(line.id).expect("session exists");
        s.prompts += 1;
        s.turn_start_ms = e.timestamp;
        if let Some(ts) = e.timestamp {
            s.turn_last_ms = ts;
        }
        let (prompts, turn) = (s.prompts, s.turn_start_ms);
        let text = e.content.as_ref().and_then(|c| c.prompt.as_deref());
        if let (Some(tr), Some(a)) = (&mut self.tracer, line.at(prompts, turn)) {
            let capped = self.config.trace_content.zip(text).map(|(cap, t)| crate::transcript::entry::cap_text(t, cap));
            tr.prompt(&a, capped.as_deref());
        }
        if let Some(ts) = line.ev_ts {
            self.emit_prompt(line, ts, text);
        }
    }

    /// The line's first-seen tool calls: counted, pending until their result, traced,
    /// checked against the rules, published.
    fn tool_uses(&mut self, line: &Line<'_>, e: &Entry, at: Option<&At<'_>>) {
        for t in &e.tool_uses {
            if !self.dedup.first_time(dedup::tool_use_key(&t.id)) {
                continue;
            }
            let input_text =
                e.content.as_ref().and_then(|c| c.tool_inputs.iter().find(|(i, _)| *i == *t.id)).map(|(_, x)| x);
            let facts = e.content.as_ref().and_then(|c| c.tool_facts.iter().find(|(i, _)| *i == *t.id)).map(|(_, f)| f);
            if let (Some(tr), Some(a)) = (&mut self.tracer, at) {
                tr.tool_use(a, t);
                if let (Some(cap), Some(input)) = (self.config.trace_content, input_text) {
                    let input = crate::transcript::entry::cap_text(input, cap);
                    tr.tool_content(line.id, &t.id, crate::state::trace::semconv::GEN_AI_TOOL_CALL_ARGUMENTS, &input);
                }
            }
            // Rules are checked on new activity (lines that get events) and, when the
            // journal is replayed, on the calls it recorded as such.
            let matches = if line.ev_ts.is_some() || self.replaying {
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
            if let Some(ts) = line.ev_ts {
                self.emit_tool_use(line, ts, t, input_text.map(String::as_str), facts, matches);
            }
            let label = tool_label(&t.name);
            self.store.inc(Counter::ToolCalls, &[&line.project, &label], 1.0);
            let s = self.sessions.get_mut(line.id).expect("session exists");
            s.tool_calls += 1;
            if matches!(&*t.name, "Task" | "Agent") {
                s.subagents += 1;
                let agent_type = metrics::label_value(t.subagent_type.as_deref().unwrap_or("general-purpose"));
                self.store.inc(Counter::SubagentsStarted, &[&line.project, &agent_type], 1.0);
            }
            self.pending.insert(
                t.id.to_string(),
                Pending { tool: label, at: e.timestamp, session: line.id.to_owned(), name: t.name.to_string() },
            );
        }
    }

    /// The line's first-seen tool results: errors (counted with their call), durations
    /// (with the call's span as exemplar), the call's span, events; and the line's lines
    /// of code, counted with its first new result.
    fn tool_results(&mut self, line: &Line<'_>, e: &Entry, at: Option<&At<'_>>) {
        let mut new_results = e.tool_results.is_empty();
        for r in &e.tool_results {
            if !self.dedup.first_time(dedup::tool_result_key(&r.tool_use_id)) {
                continue;
            }
            new_results = true;
            let call = self.pending.remove(&*r.tool_use_id).or_else(|| self.orphans.remove(&*r.tool_use_id));
            let tool = call.as_ref().map_or("unknown", |c| c.tool.as_str());
            if r.is_error {
                // An error counts with its call (its session and project), when the call is known.
                let session = call.as_ref().map_or(line.id, |c| c.session.as_str());
                let s = self.sessions.get_mut(session);
                let project = s.as_ref().map_or_else(|| line.project.clone(), |s| s.project.clone());
                if let Some(s) = s {
                    s.tool_errors += 1;
                }
                self.store.inc(Counter::ToolErrors, &[&project, tool], 1.0);
            }
            if let (Some(end), Some(start)) = (e.timestamp, call.as_ref().and_then(|c| c.at)) {
                let exemplar = self
                    .tracer
                    .as_ref()
                    .and_then(|t| t.tool_span(line.id, &r.tool_use_id))
                    .map(|(trace_id, span_id)| Exemplar { trace_id, span_id, at_ms: end, value: 0.0 });
                self.store.observe_with(Histogram::ToolDuration, &[tool], (end - start).max(0) as f64, exemplar);
            }
            if line.main_chain()
                && r.bytes > 0
                && let Some(s) = self.sessions.get_mut(line.id)
            {
                // As research names it: `?` for a call not seen.
                let key = format!("tool_result:{}", call.as_ref().map_or("?", |c| c.tool.as_str()));
                match s.context_added.get_mut(&key) {
                    Some(v) => *v = v.saturating_add(r.bytes),
                    None => {
                        s.context_added.insert(key, r.bytes);
                    }
                }
            }
            let out = e.content.as_ref().and_then(|c| c.tool_outputs.iter().find(|(i, _)| *i == *r.tool_use_id));
            let out = out.map(|(_, o)| o.as_str());
            if let (Some(tr), Some(a)) = (&mut self.tracer, at) {
                // Content first: the call's span leaves at its result.
                if let (Some(cap), Some(out)) = (self.config.trace_content, out) {
                    let out = crate::transcript::entry::cap_text(out, cap);
                    tr.tool_content(
                        line.id,
                        &r.tool_use_id,
                        crate::state::trace::semconv::GEN_AI_TOOL_CALL_RESULT,
                        &out,
                    );
                }
                tr.tool_result(a, r, e.result_agent_id.as_deref());
            }
            if let Some(ts) = line.ev_ts {
                self.emit_tool_result(line, ts, r, call.as_ref(), tool, out);
            }
        }
        if new_results {
            self.store.inc(Counter::LinesOfCode, &[&line.project, "added"], e.lines_added as f64);
            self.store.inc(Counter::LinesOfCode, &[&line.project, "removed"], e.lines_removed as f64);
            let s = self.sessions.get_mut(line.id).expect("session exists");
            s.lines_added += e.lines_added;
            s.lines_removed += e.lines_removed;
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
            Box::new(Session {
                id: id.to_owned(),
                project: project.into(),
                slug: src.info.slug.clone(),
                git_branch: None,
                first_ms: e.timestamp.unwrap_or(Millis::MAX),
                last_ms: ts,
                state: State::Active,
                models: Vec::new(),
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
                context_added: Default::default(),
                main_chain: false,
            }),
        );
    }

    /// A response line: what it adds counts under the response's origin (the labels
    /// of its first line, see [`dedup::Origin`]), whatever file this line is read from.
    fn response(&mut self, line: &Line<'_>, r: &Response, at: Option<&At<'_>>) {
        let here = dedup::OriginRef { session: line.id, project: &line.project, model: &r.model, source: line.source };
        let seen = self.dedup.observe_from(r.key, r.tokens, here);
        let delta = seen.delta();
        if !seen.first && delta.is_zero() {
            return;
        }
        let origin = seen.origin.clone().expect("observed with an origin");
        let (id, project, model, source) = (&*origin.session, &*origin.project, &origin.model, &*origin.source);
        let main_chain = source == "main";
        let labels = [project, &**model, source];
        let price = &self.config.pricing;
        let cost_after = price.cost(&r.model, &seen.after, r.fast);
        if seen.first {
            self.store.inc(Counter::ApiRequests, &labels, 1.0);
            if cost_after.is_none() {
                self.store.inc(Counter::UnpricedRequests, &[model], 1.0);
                self.unpriced.insert(model.to_string());
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
            self.store.inc(Counter::Tokens, &[project, model, source, ty], n as f64);
        }
        self.store.inc(Counter::Cost, &labels, cost);
        if let Some(ledger) = &mut self.ledger {
            let fact = super::UsageFact {
                ts_ms: line.ts,
                session: id,
                project,
                model,
                source,
                tokens: delta,
                cost_usd: cost / 1e9,
                first: seen.first,
            };
            (ledger.0)(&fact);
        }
        // A span belongs to the trace of the line's turn: none for usage counted in another session.
        if let (Some(tr), Some(a)) = (&mut self.tracer, at.filter(|a| a.session == id)) {
            tr.response(a, r, seen.after, cost / 1e9);
        }
        // A main-chain call's growth, split by what was added since the previous call:
        // the counter and the `context_growth` event get the same parts.
        let parts = match self.sessions.get_mut(id) {
            Some(s) if main_chain && seen.first => {
                let growth = (seen.after.prompt() as i64).saturating_sub(s.context_tokens.min(i64::MAX as u64) as i64);
                let parts = crate::research::tracker::split(growth, &s.context_added);
                // Zeroed, not cleared: a session's sources recur, and `split` skips zeros.
                s.context_added.values_mut().for_each(|v| *v = 0);
                for p in parts.iter().filter(|p| growth > 0 && p.tokens > 0) {
                    self.store.inc(Counter::ContextAdded, &[project, &p.source], p.tokens as f64);
                }
                parts
            }
            _ => Vec::new(),
        };
        if let Some(ts) = line.ev_ts {
            let cost_usd = cost_after.map(|_| cost / 1e9);
            self.emit_response(&origin, line.agent.as_deref(), ts, &seen, cost_usd, &parts);
        }
        // The origin's session may have been forgotten (`--session-retention`): counters only.
        let Some(s) = self.sessions.get_mut(id) else { return };
        s.tokens += delta;
        s.cost_usd += cost / 1e9;
        let i = match s.by_model.iter().position(|(m, ..)| m == model) {
            Some(i) => i,
            None => {
                // Most sessions use one or two models: no room for four.
                s.by_model.reserve_exact(1);
                s.by_model.push((model.clone(), Tokens::default(), 0.0));
                s.by_model.len() - 1
            }
        };
        let m = &mut s.by_model[i];
        m.1 += delta;
        m.2 += cost / 1e9;
        if seen.first {
            s.api_requests += 1;
            if let Err(at) = s.models.binary_search(model) {
                s.models.reserve_exact(1);
                s.models.insert(at, model.clone());
            }
        }
        if main_chain {
            let prompt = seen.after.prompt();
            if prompt > DEFAULT_WINDOW {
                s.context_window = LONG_WINDOW;
            }
            s.context_tokens = prompt;
            if s.last_model.as_deref() != Some(model) {
                s.last_model = Some(model.clone());
            }
            if seen.first {
                self.store.observe(Histogram::ContextTokens, &[model], prompt as f64);
            }
        }
    }
}
