//! Realtime events: what each fact the aggregator accepted publishes on the bus.
//!
//! Only lines stamped at or after the emitter's start get events (`Line::ev_ts`);
//! each fact's event is built from the same decision that counted it, so summed
//! over `message` events, usage equals the token counters. Content appears only as
//! the emitter's [`Detail`](crate::events::Detail) allows, cut to its size.

use super::Aggregator;
use super::apply::Line;
use super::session::Pending;
use crate::events::{Detail, Kind as K, ToolCategory};
use crate::state::dedup::{Origin, Seen};
use crate::state::trace::{SpanId, TraceId};
use crate::transcript::entry::{Compaction, InputFacts, Millis, ToolResult, ToolUse, cap_text};

impl Aggregator {
    /// Publish `kind` for a session (no-op without an emitter).
    pub(super) fn emit(&self, session: &str, project: &str, agent: Option<&str>, ts: Millis, kind: K) {
        if let Some(em) = &self.events {
            let (trace_id, span_id) = self.trace_of(session, &kind).map_or((None, None), |(t, s)| {
                (Some(crate::state::trace::hex(&t)), Some(crate::state::trace::hex(&s)))
            });
            (em.sink)(crate::events::Event {
                id: 0,
                ts_ms: ts,
                session_id: session.to_owned(),
                project: project.to_owned(),
                agent_id: agent.map(str::to_owned),
                trace_id,
                span_id,
                kind,
            });
        }
    }

    /// The trace and span an event of `session` belongs to: the tool call's span for
    /// events that name a call the current turn holds, else the turn's root; `None`
    /// when traces are off or the session has no turn being traced.
    fn trace_of(&self, session: &str, kind: &K) -> Option<(TraceId, SpanId)> {
        let tracer = self.tracer.as_ref()?;
        let call = match kind {
            K::ToolUse { tool_use_id, .. }
            | K::ToolResult { tool_use_id, .. }
            | K::AgentSpawn { tool_use_id, .. }
            | K::RuleMatch { tool_use_id, .. } => Some(tool_use_id.as_str()),
            K::ApprovalPending { tool_use_id, .. } => tool_use_id.as_deref(),
            _ => None,
        };
        call.and_then(|id| tracer.tool_span(session, id)).or_else(|| tracer.current(session))
    }

    /// Publish `kind` for the line's session, project and sub-agent.
    pub(super) fn emit_at(&self, line: &Line<'_>, ts: Millis, kind: K) {
        self.emit(line.id, &line.project, line.agent.as_deref(), ts, kind);
    }

    /// An `error` event about the watcher itself (unreadable file or folder,
    /// malformed lines), when events are on. `message` names files, never content.
    pub fn report_error(&self, message: String, now: Millis) {
        self.emit("", "", None, now, K::Error { message });
    }

    fn detail(&self) -> Detail {
        self.events.as_ref().map(|em| em.detail).unwrap_or_default()
    }

    /// A new prompt: a user `message`, with its text when content is asked for.
    pub(super) fn emit_prompt(&self, line: &Line<'_>, ts: Millis, text: Option<&str>) {
        let detail = self.detail();
        let text = detail.content.then(|| text.map(|t| cap(detail, t))).flatten();
        let kind = K::Message { role: "user".into(), model: None, usage: None, cost_usd: None, text, continued: false };
        self.emit_at(line, ts, kind);
    }

    /// `tool_use`, and `agent_spawn` for `Task`/`Agent` calls, and `rule_match` for rules it trips.
    ///
    /// Summaries and rule matches were read from the whole input when its line was
    /// parsed (`facts`, see `capture::Inspect`); `input_text` is the input cut to the
    /// capture size, only exported. A call without facts (content not captured) is
    /// checked by its tool name alone.
    pub(super) fn emit_tool_use(
        &self,
        line: &Line<'_>,
        ts: Millis,
        t: &ToolUse,
        input_text: Option<&str>,
        facts: Option<&InputFacts>,
        matches: Vec<crate::rules::Match>,
    ) {
        let detail = self.detail();
        let facts_shown = facts.filter(|_| detail.summaries || detail.content);
        let kind = K::ToolUse {
            tool_use_id: t.id.to_string(),
            name: t.name.to_string(),
            category: ToolCategory::of(&t.name),
            summary: facts_shown.and_then(|f| f.summary.clone()),
            input: detail.content.then(|| input_text.map(|x| cap(detail, x))).flatten(),
        };
        self.emit_at(line, ts, kind);
        if matches!(&*t.name, "Task" | "Agent") {
            let kind = K::AgentSpawn {
                tool_use_id: t.id.to_string(),
                agent_type: t.subagent_type.as_deref().unwrap_or("general-purpose").to_owned(),
                description: facts_shown.and_then(|f| f.description.clone()),
            };
            self.emit_at(line, ts, kind);
        }
        for m in matches {
            let kind = K::RuleMatch {
                rule: m.rule,
                severity: m.severity.as_str().into(),
                tool_use_id: t.id.to_string(),
                tool: t.name.to_string(),
            };
            self.emit_at(line, ts, kind);
        }
    }

    /// `tool_result`: named after its call (`tool`, the label, when the call is
    /// unknown), timed from it; the output's size and text when content is asked for.
    pub(super) fn emit_tool_result(
        &self,
        line: &Line<'_>,
        ts: Millis,
        r: &ToolResult,
        call: Option<&Pending>,
        tool: &str,
        out: Option<&str>,
    ) {
        let detail = self.detail();
        let kind = K::ToolResult {
            tool_use_id: r.tool_use_id.to_string(),
            name: call.filter(|c| !c.name.is_empty()).map_or_else(|| tool.to_owned(), |c| c.name.clone()),
            is_error: r.is_error,
            content_bytes: detail.content.then(|| out.map(|o| o.len() as u64)).flatten(),
            duration_ms: call.and_then(|c| c.at).map(|at| (ts - at).max(0)),
            output: detail.content.then(|| out.map(|o| cap(detail, o))).flatten(),
        };
        self.emit_at(line, ts, kind);
    }

    /// `compaction`, and the `context_growth` it makes (negative: the context shrinks
    /// to what the boundary says is left). Sent before the session's context is reset.
    pub(super) fn emit_compaction(&self, line: &Line<'_>, ts: Millis, c: &Compaction) {
        let kind = K::Compaction {
            trigger: if c.manual { "manual" } else { "auto" }.into(),
            tokens_before: c.pre_tokens,
            tokens_after: c.post_tokens,
        };
        self.emit_at(line, ts, kind);
        let before = self.sessions.get(line.id).map_or(0, |s| s.context_tokens);
        let after = c.post_tokens.unwrap_or(0);
        let kind = K::ContextGrowth {
            tokens_added: after as i64 - before as i64,
            source: "compaction".into(),
            cumulative: after,
            parts: Default::default(),
        };
        self.emit_at(line, ts, kind);
    }

    /// An assistant `message` with what this line adds, exactly as the counters got
    /// it, under the response's origin (summed over the events, usage equals the token
    /// counters per project, model and type); and, for a main-chain response's first
    /// line, the `context_growth` it makes. Sent before the session's context is updated.
    pub(super) fn emit_response(
        &self,
        origin: &Origin,
        agent: Option<&str>,
        ts: Millis,
        seen: &Seen,
        cost_usd: Option<f64>,
        parts: &[crate::research::tracker::Part],
    ) {
        let delta = seen.delta();
        let usage = crate::events::Usage {
            input: delta.input,
            output: delta.output,
            cache_read: delta.cache_read,
            cache_creation: delta.cache_creation,
        };
        let kind = K::Message {
            role: "assistant".into(),
            model: Some(origin.model.to_string()),
            usage: Some(usage),
            cost_usd,
            text: None,
            continued: !seen.first,
        };
        self.emit(&origin.session, &origin.project, agent, ts, kind);
        if seen.first && &*origin.source == "main" {
            let before = self.sessions.get(&*origin.session).map_or(0, |s| s.context_tokens);
            let now = seen.after.prompt();
            let kind = K::ContextGrowth {
                tokens_added: now as i64 - before as i64,
                source: "response".into(),
                cumulative: now,
                parts: parts.iter().map(|p| (p.source.clone(), p.tokens)).collect(),
            };
            self.emit(&origin.session, &origin.project, agent, ts, kind);
        }
    }
}

/// Content cut to the emitter's size (at least 16 bytes).
fn cap(detail: Detail, text: &str) -> String {
    cap_text(text, detail.max_bytes.max(16))
}
