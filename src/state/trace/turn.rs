//! A turn being traced: its spans under construction (or stubs of those already
//! sent), the chains and sub-agents it holds, and what leaves when it ends.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{At, Owner, Span, SpanEvent, SpanId, SpanKind, TraceId, attrs, semconv, span_id, trace_id};
use crate::state::dedup::FastMap;
use crate::transcript::entry::{Millis, Tokens};

/// Bound on spans per turn; more are dropped and counted.
pub(super) const MAX_SPANS_PER_TURN: usize = 10_000;

/// A span under construction, or a stub of one already sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Building {
    pub(super) span: Span,
    pub(super) owner: Owner,
    /// Tool calls: waiting for their result.
    pub(super) open: bool,
    /// `Task`/`Agent` calls: the sub-agent type asked for.
    pub(super) agent_type: Option<String>,
    /// Chat spans: the response's usage so far (what its attributes say).
    #[serde(default)]
    pub(super) usage: Tokens,
    /// Handed to the sink: never sent again (only its ids and times are kept).
    #[serde(default)]
    pub(super) sent: bool,
}

/// A turn in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Turn {
    pub(super) trace_id: TraceId,
    pub(super) index: u64,
    pub(super) prompted: bool,
    pub(super) project: String,
    /// Fixed when the turn starts: an unprompted turn's root id derives from it.
    pub(super) start_ms: Millis,
    /// Latest traced activity (the end used only if the aggregator never ends the turn).
    pub(super) end_ms: Millis,
    pub(super) spans: Vec<Building>,
    /// Response key → index in `spans`.
    pub(super) calls: FastMap<u64, usize>,
    /// tool_use id → index in `spans`.
    pub(super) tools: FastMap<String, usize>,
    /// Sub-agent id → the `Task` tool_use id that ran it (`toolUseResult.agentId`).
    pub(super) agent_of: HashMap<String, String>,
    /// Sub-agents whose span has been sent.
    #[serde(default)]
    pub(super) agents_sent: Vec<String>,
    /// Per chain, the response still waiting to be complete (index in `spans`).
    #[serde(default)]
    pub(super) open_chat: Vec<(Owner, usize)>,
    /// Latest timestamp of each chain: when its next API request was sent. (A list, not
    /// a map: JSON map keys must be strings, and a turn has few chains.)
    pub(super) last_by_owner: Vec<(Owner, Millis)>,
    pub(super) events: Vec<SpanEvent>,
    /// The prompt's text (content capture only).
    #[serde(default)]
    pub(super) prompt: Option<String>,
    pub(super) tokens: Tokens,
    pub(super) cost_usd: f64,
    pub(super) api_requests: u64,
    pub(super) tool_calls: u64,
    pub(super) tool_errors: u64,
    pub(super) api_errors: u64,
}

impl Turn {
    pub(super) fn root(&self) -> SpanId {
        root_id(self)
    }

    /// The parent of a span of chain `owner`: the root, or the sub-agent's span.
    fn parent_of(&self, owner: &Owner) -> SpanId {
        match owner {
            Owner::Agent(a) => span_id(&self.trace_id, "agent", a.as_bytes()),
            Owner::Main | Owner::Auxiliary => self.root(),
        }
    }

    /// Take span `i` out to be sent (parent resolved), leaving a stub; `None` if sent already.
    pub(super) fn take(&mut self, i: usize) -> Option<Span> {
        let parent = self.parent_of(&self.spans[i].owner);
        let b = &mut self.spans[i];
        if b.sent {
            return None;
        }
        b.sent = true;
        let mut span = b.span.clone();
        span.parent = Some(parent);
        b.span.attrs = Vec::new();
        b.span.events = Vec::new();
        self.open_chat.retain(|(_, j)| *j != i);
        Some(span)
    }

    /// The response of chain `owner` still waiting to be complete, taken out to be sent.
    pub(super) fn take_open_chat(&mut self, owner: &Owner) -> Option<Span> {
        let i = self.open_chat.iter().find(|(o, _)| o == owner).map(|(_, i)| *i)?;
        self.take(i)
    }

    /// The span of sub-agent `agent` over its spans so far, under the `Task` call that ran it
    /// (named in that call's result, else the latest one running when the agent started).
    fn agent_span(&self, session: &str, agent: &str) -> Option<Span> {
        let (mut start, mut stop) = (Millis::MAX, Millis::MIN);
        for b in self.spans.iter().filter(|b| matches!(&b.owner, Owner::Agent(a) if a == agent)) {
            start = start.min(b.span.start_ms);
            stop = stop.max(b.span.end_ms);
        }
        if start == Millis::MAX {
            return None;
        }
        let task =
            self.agent_of.get(agent).and_then(|tool| self.tools.get(tool)).map(|&i| &self.spans[i]).or_else(|| {
                self.spans
                    .iter()
                    .filter(|b| b.agent_type.is_some())
                    .filter(|b| b.span.start_ms <= start && (b.open || b.span.end_ms >= start))
                    .max_by_key(|b| b.span.start_ms)
            });
        let kind = task.and_then(|b| b.agent_type.clone()).unwrap_or_else(|| "agent".into());
        Some(Span {
            trace_id: self.trace_id,
            span_id: span_id(&self.trace_id, "agent", agent.as_bytes()),
            parent: Some(task.map_or_else(|| self.root(), |b| b.span.span_id)),
            name: format!("invoke_agent {kind}"),
            kind: SpanKind::Internal,
            start_ms: start,
            end_ms: stop.max(start),
            attrs: attrs([
                (semconv::GEN_AI_OPERATION_NAME, "invoke_agent".into()),
                (semconv::GEN_AI_PROVIDER_NAME, "anthropic".into()),
                (semconv::GEN_AI_AGENT_ID, agent.into()),
                (semconv::GEN_AI_AGENT_NAME, kind.into()),
                (semconv::GEN_AI_CONVERSATION_ID, session.into()),
            ]),
            events: Vec::new(),
            error: None,
        })
    }

    /// Sub-agent `agent` has finished: its pending response and its span, once.
    pub(super) fn take_agent(&mut self, session: &str, agent: &str) -> Vec<Span> {
        if self.agents_sent.iter().any(|a| a == agent) {
            return Vec::new();
        }
        let Some(span) = self.agent_span(session, agent) else { return Vec::new() };
        self.agents_sent.push(agent.to_owned());
        let mut out = vec![span];
        out.extend(self.take_open_chat(&Owner::Agent(agent.to_owned())));
        out
    }
}

pub(super) fn new_turn(at: &At<'_>, prompted: bool) -> Turn {
    Turn {
        trace_id: trace_id(at.session, at.prompts),
        index: at.prompts,
        prompted,
        project: at.project.to_owned(),
        start_ms: at.turn_ms,
        end_ms: at.ts.max(at.turn_ms),
        spans: Vec::new(),
        calls: FastMap::default(),
        tools: FastMap::default(),
        agent_of: HashMap::new(),
        agents_sent: Vec::new(),
        open_chat: Vec::new(),
        last_by_owner: Vec::new(),
        events: Vec::new(),
        prompt: None,
        tokens: Tokens::default(),
        cost_usd: 0.0,
        api_requests: 0,
        tool_calls: 0,
        tool_errors: 0,
        api_errors: 0,
    }
}

/// The root span's id: a turn continued after idleness (same trace) gets another root.
fn root_id(t: &Turn) -> SpanId {
    let key = if t.prompted { Vec::new() } else { t.start_ms.to_le_bytes().to_vec() };
    span_id(&t.trace_id, "turn", &key)
}

/// The end of a turn: what has not left yet (sub-agents, pending responses, running
/// tool calls) and the root, timed `start`..`end`.
pub(super) fn build(session: &str, mut t: Turn, start: Millis, end: Millis) -> Vec<Span> {
    let end = end.max(start);
    let root = t.root();
    let mut out = Vec::with_capacity(t.spans.len() + 2);
    // Sub-agents whose Task result did not say their id (or came before their lines).
    let mut agents: Vec<String> = Vec::new();
    for b in &t.spans {
        if let Owner::Agent(a) = &b.owner
            && !agents.contains(a)
            && !t.agents_sent.contains(a)
        {
            agents.push(a.clone());
        }
    }
    out.extend(agents.iter().filter_map(|a| t.agent_span(session, a)));
    for i in 0..t.spans.len() {
        let running = t.spans[i].open;
        let Some(mut span) = t.take(i) else { continue };
        if running {
            // Still running when the turn ended (the session ended or the user typed on).
            span.end_ms = end.max(span.start_ms);
            span.attrs.push(("claude_sessions.tool.completed".into(), false.into()));
        }
        out.push(span);
    }
    let mut root_attrs = attrs([
        (semconv::GEN_AI_OPERATION_NAME, "invoke_agent".into()),
        (semconv::GEN_AI_PROVIDER_NAME, "anthropic".into()),
        (semconv::GEN_AI_AGENT_NAME, "claude-code".into()),
        (semconv::GEN_AI_CONVERSATION_ID, session.into()),
        ("session.id", session.into()),
        ("claude_sessions.project", t.project.into()),
        ("claude_sessions.turn.index", t.index.into()),
        ("claude_sessions.turn.prompted", t.prompted.into()),
        ("claude_sessions.api_requests", t.api_requests.into()),
        ("claude_sessions.tool_calls", t.tool_calls.into()),
        ("claude_sessions.tool_errors", t.tool_errors.into()),
        ("claude_sessions.api_errors", t.api_errors.into()),
        (semconv::GEN_AI_USAGE_INPUT_TOKENS, t.tokens.prompt().into()),
        (semconv::GEN_AI_USAGE_OUTPUT_TOKENS, t.tokens.output.into()),
        (semconv::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, t.tokens.cache_read.into()),
        (semconv::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, t.tokens.cache_creation.into()),
    ]);
    root_attrs.push(("claude_sessions.cost_usd".into(), t.cost_usd.into()));
    if let Some(p) = t.prompt {
        root_attrs.push(("claude_sessions.prompt".into(), p.into()));
    }
    out.insert(
        0,
        Span {
            trace_id: t.trace_id,
            span_id: root,
            parent: None,
            name: "invoke_agent claude-code".into(),
            kind: SpanKind::Internal,
            start_ms: start,
            end_ms: end,
            attrs: root_attrs,
            events: t.events,
            error: None,
        },
    );
    out
}
