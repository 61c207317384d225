//! Traces: one trace per user turn, rebuilt from transcript facts.
//!
//! In: what the aggregator accepted from each line (a prompt, a new or grown
//! API response, a first-seen tool call or result, a compaction, an API error),
//! with the line's transcript timestamp, the file it came from and when its turn
//! started; and the end of each turn. Out: [`Span`]s, handed to a sink as each
//! one ends, so that a collector sees work while its turn is still open:
//!
//! - a tool call's span at its result;
//! - a model call's span once its response is complete: Claude Code writes one
//!   line per content block and a later line may carry more output tokens, so a
//!   response is complete at a line with a `stop_reason`, or when the next
//!   response of the same chain starts (a chain sends one request at a time), or
//!   at the end of the turn. A tool result does not complete it: Claude Code runs
//!   tools while the response is still streaming. Usage that grows after the span
//!   left still counts in the turn's totals; the span is never sent twice;
//! - a sub-agent's span when the `Task` result naming it arrives (else at the end
//!   of the turn);
//! - the turn's root span, and whatever is still open, when the turn ends.
//!
//! When a turn starts and ends is not decided here: the aggregator's turn model
//! (`live`) decides, for the turn-duration histogram and the traces alike, and
//! hands both ends over ([`At::turn_ms`], [`Tracer::end_turn`]). The root's span
//! id is derived from the transcript, so children name it before it is sent.
//!
//! The span tree of a turn:
//!
//! ```text
//! invoke_agent claude-code                 (root: the turn, prompt → last activity)
//! ├── chat claude-opus-4-6                 (one per API response, kind client)
//! ├── execute_tool Bash                    (tool_use → tool_result; error status on is_error)
//! ├── execute_tool Task
//! │   └── invoke_agent Explore             (the sub-agent the Task call ran)
//! │       ├── chat claude-haiku-4-5
//! │       └── execute_tool Read
//! └── chat claude-sonnet-4-5               (auxiliary: compaction, warm-up calls)
//! ```
//!
//! Ids are derived from the transcript (session id and prompt number for the
//! trace; response, tool and agent ids for spans), so the same turn always
//! gets the same ids. Times are the transcript's, never the time of reading.
//! No content is kept: names, ids, models, counts and timestamps only.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::state::dedup::FastMap;
use crate::transcript::entry::{Compaction, Millis, Response, Tokens, ToolResult, ToolUse};

/// Attribute names of the OpenTelemetry GenAI semantic conventions (the
/// `opentelemetry-semantic-conventions` crate deprecated its copies when they
/// moved to their own repository, so they are spelled out here).
pub mod semconv {
    pub const ERROR_TYPE: &str = "error.type";
    pub const GEN_AI_AGENT_ID: &str = "gen_ai.agent.id";
    pub const GEN_AI_AGENT_NAME: &str = "gen_ai.agent.name";
    pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
    pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
    pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
    pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
    pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
    pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
    pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
    pub const GEN_AI_TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
    pub const GEN_AI_TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
    pub const GEN_AI_TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";
    pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
    pub const GEN_AI_TOOL_TYPE: &str = "gen_ai.tool.type";
    pub const GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: &str = "gen_ai.usage.cache_creation.input_tokens";
    pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
    /// Includes cached tokens (reads and writes), per the conventions.
    pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
}

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    F64(f64),
    Strs(Vec<String>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::F64(f)
    }
}

pub type Attrs = Vec<(String, Value)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpanKind {
    Internal,
    Client,
}

/// Something that happened at an instant inside a span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    pub name: String,
    pub at_ms: Millis,
    pub attrs: Attrs,
}

/// A finished span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub start_ms: Millis,
    pub end_ms: Millis,
    pub attrs: Attrs,
    pub events: Vec<SpanEvent>,
    /// Error status with this description.
    pub error: Option<String>,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Where finished spans go (an exporter's bounded queue). Must not block.
pub type SpanSink = std::sync::Arc<dyn Fn(Vec<Span>) + Send + Sync>;

/// Which chain of a session a line belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Owner {
    /// The main conversation.
    Main,
    /// A sub-agent: its id (agent file), or `sidechain` for 1.0.x inline sidechains.
    Agent(String),
    /// Compaction and warm-up calls: children of the turn, no agent span.
    Auxiliary,
}

/// The context of one line, as the aggregator knows it.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub session: &'a str,
    pub project: &'a str,
    /// Prompts of the session so far (the turn number).
    pub prompts: u64,
    pub ts: Millis,
    pub owner: &'a Owner,
    pub query_source: &'static str,
    /// When the line's turn started (the aggregator's turn model): the root's start.
    pub turn_ms: Millis,
}

/// Bound on spans per turn; more are dropped and counted.
const MAX_SPANS_PER_TURN: usize = 10_000;

/// A span under construction, or a stub of one already sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Building {
    span: Span,
    owner: Owner,
    /// Tool calls: waiting for their result.
    open: bool,
    /// `Task`/`Agent` calls: the sub-agent type asked for.
    agent_type: Option<String>,
    /// Chat spans: the response's usage so far (what its attributes say).
    #[serde(default)]
    usage: Tokens,
    /// Handed to the sink: never sent again (only its ids and times are kept).
    #[serde(default)]
    sent: bool,
}

/// A turn in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Turn {
    trace_id: TraceId,
    index: u64,
    prompted: bool,
    project: String,
    /// Fixed when the turn starts: an unprompted turn's root id derives from it.
    start_ms: Millis,
    /// Latest traced activity (the end used only if the aggregator never ends the turn).
    end_ms: Millis,
    spans: Vec<Building>,
    /// Response key → index in `spans`.
    calls: FastMap<u64, usize>,
    /// tool_use id → index in `spans`.
    tools: FastMap<String, usize>,
    /// Sub-agent id → the `Task` tool_use id that ran it (`toolUseResult.agentId`).
    agent_of: HashMap<String, String>,
    /// Sub-agents whose span has been sent.
    #[serde(default)]
    agents_sent: Vec<String>,
    /// Per chain, the response still waiting to be complete (index in `spans`).
    #[serde(default)]
    open_chat: Vec<(Owner, usize)>,
    /// Latest timestamp of each chain: when its next API request was sent. (A list, not
    /// a map: JSON map keys must be strings, and a turn has few chains.)
    last_by_owner: Vec<(Owner, Millis)>,
    events: Vec<SpanEvent>,
    /// The prompt's text (content capture only).
    #[serde(default)]
    prompt: Option<String>,
    tokens: Tokens,
    cost_usd: f64,
    api_requests: u64,
    tool_calls: u64,
    tool_errors: u64,
    api_errors: u64,
}

impl Turn {
    fn root(&self) -> SpanId {
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
    fn take(&mut self, i: usize) -> Option<Span> {
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
    fn take_open_chat(&mut self, owner: &Owner) -> Option<Span> {
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
    fn take_agent(&mut self, session: &str, agent: &str) -> Vec<Span> {
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

/// Builds traces for the sessions it is fed.
#[derive(Serialize, Deserialize, Default)]
pub struct Tracer {
    turns: FastMap<String, Turn>,
    /// Lines stamped before this are history: not traced (0 = trace everything).
    pub since_ms: Millis,
    /// Spans over the per-turn cap, not kept.
    pub dropped: u64,
    /// Whether `--otlp-backfill` has sent the history before `since_ms`.
    pub backfilled: bool,
    #[serde(skip)]
    sink: Option<SpanSink>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer").field("turns", &self.turns.len()).field("since_ms", &self.since_ms).finish()
    }
}

/// FNV-1a over the parts, then a SplitMix64 finaliser (ids must look random).
fn hash(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).max(1)
}

/// The trace id of a session's turn `index` (stable across restarts and re-reads).
pub fn trace_id(session: &str, index: u64) -> TraceId {
    let idx = index.to_le_bytes();
    let parts: [&[u8]; 2] = [session.as_bytes(), &idx];
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&hash(1, &parts).to_be_bytes());
    id[8..].copy_from_slice(&hash(2, &parts).to_be_bytes());
    id
}

/// A span id inside `trace`, from what the span stands for.
pub fn span_id(trace: &TraceId, what: &str, key: &[u8]) -> SpanId {
    hash(3, &[trace, what.as_bytes(), key]).to_be_bytes()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attrs(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Attrs {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Hand spans to the sink, if any.
fn send(sink: &Option<SpanSink>, spans: Vec<Span>) {
    if let (Some(sink), false) = (sink, spans.is_empty()) {
        sink(spans);
    }
}

impl Tracer {
    pub fn new(since_ms: Millis) -> Tracer {
        Tracer { since_ms, ..Tracer::default() }
    }

    pub fn set_sink(&mut self, sink: Option<SpanSink>) {
        self.sink = sink;
    }

    /// Turns in progress.
    pub fn open_turns(&self) -> usize {
        self.turns.len()
    }

    /// Whether a line stamped `ts` is traced.
    pub fn wants(&self, ts: Millis) -> bool {
        ts >= self.since_ms
    }

    /// The current turn's trace id and root span id for a session.
    pub fn current(&self, session: &str) -> Option<(TraceId, SpanId)> {
        self.turns.get(session).map(|t| (t.trace_id, t.root()))
    }

    /// The span id a tool call has (or will have) in the session's current turn.
    pub fn tool_span(&self, session: &str, tool_use_id: &str) -> Option<(TraceId, SpanId)> {
        let t = self.turns.get(session)?;
        t.tools.contains_key(tool_use_id).then(|| (t.trace_id, span_id(&t.trace_id, "tool", tool_use_id.as_bytes())))
    }

    fn turn(&mut self, at: &At<'_>) -> &mut Turn {
        self.turns.entry(at.session.to_owned()).or_insert_with(|| new_turn(at, false))
    }

    /// A typed prompt: a new turn starts (the aggregator has ended the previous one).
    /// `text` only when content capture is on.
    pub fn prompt(&mut self, at: &At<'_>, text: Option<&str>) {
        if let Some(t) = self.turns.get(at.session) {
            let (start, end) = (t.start_ms, t.end_ms);
            self.end_turn(at.session, start, end);
        }
        let mut t = new_turn(at, true);
        t.last_by_owner.push((Owner::Main, at.ts));
        t.prompt = text.map(str::to_owned);
        self.turns.insert(at.session.to_owned(), t);
    }

    /// Captured content of a tool call (opt-in): its input, or its output (before its result).
    pub fn tool_content(&mut self, session: &str, tool_use_id: &str, key: &'static str, text: &str) {
        if let Some(t) = self.turns.get_mut(session)
            && let Some(&i) = t.tools.get(tool_use_id)
        {
            set(&mut t.spans[i].span, key, text.into());
        }
    }

    /// A response seen for the first time, or a later line of it with larger usage.
    /// `total` is its usage so far; `cost_usd` what this line added.
    pub fn response(&mut self, at: &At<'_>, r: &Response, total: Tokens, cost_usd: f64) {
        let (dropped, sink) = (&mut self.dropped, &self.sink);
        let t = self.turns.entry(at.session.to_owned()).or_insert_with(|| new_turn(at, false));
        let i = match t.calls.get(&r.key) {
            Some(&i) => {
                let b = &mut t.spans[i];
                t.tokens += total.saturating_sub(b.usage);
                t.cost_usd += cost_usd;
                b.usage = total;
                if b.sent {
                    // Grew after its span left: the turn's totals have it, the span stays as sent.
                    return;
                }
                b.span.end_ms = b.span.end_ms.max(at.ts);
                set_usage(&mut b.span, total, r.stop_reason.as_deref());
                add_cost(&mut b.span, cost_usd);
                i
            }
            None => {
                if t.spans.len() >= MAX_SPANS_PER_TURN {
                    *dropped += 1;
                    return;
                }
                // A chain sends its next request only once the previous response is complete.
                // (1.0.x inline sidechains share one chain name across parallel agents.)
                if !matches!(at.owner, Owner::Agent(a) if a == "sidechain") {
                    send(sink, t.take_open_chat(at.owner).into_iter().collect());
                }
                let last = t.last_by_owner.iter().find(|(o, _)| o == at.owner).map(|(_, ms)| *ms);
                let start = last.unwrap_or(at.ts).min(at.ts);
                let mut span = Span {
                    trace_id: t.trace_id,
                    span_id: span_id(&t.trace_id, "chat", &r.key.to_le_bytes()),
                    parent: None,
                    name: format!("chat {}", r.model),
                    kind: SpanKind::Client,
                    start_ms: start,
                    end_ms: at.ts,
                    attrs: attrs([
                        (semconv::GEN_AI_OPERATION_NAME, "chat".into()),
                        (semconv::GEN_AI_PROVIDER_NAME, "anthropic".into()),
                        (semconv::GEN_AI_REQUEST_MODEL, (*r.model).into()),
                        (semconv::GEN_AI_RESPONSE_MODEL, (*r.model).into()),
                        (semconv::GEN_AI_RESPONSE_ID, (*r.id).into()),
                        (semconv::GEN_AI_CONVERSATION_ID, at.session.into()),
                        ("claude_sessions.query_source", at.query_source.into()),
                    ]),
                    events: Vec::new(),
                    error: None,
                };
                set_usage(&mut span, total, r.stop_reason.as_deref());
                add_cost(&mut span, cost_usd);
                t.tokens += total;
                t.cost_usd += cost_usd;
                t.api_requests += 1;
                let i = t.spans.len();
                t.calls.insert(r.key, i);
                t.spans.push(Building {
                    span,
                    owner: at.owner.clone(),
                    open: false,
                    agent_type: None,
                    usage: total,
                    sent: false,
                });
                if !matches!(at.owner, Owner::Agent(a) if a == "sidechain") {
                    t.open_chat.retain(|(o, _)| o != at.owner);
                    t.open_chat.push((at.owner.clone(), i));
                }
                i
            }
        };
        // The response says it stopped: complete.
        if r.stop_reason.is_some() {
            send(sink, t.take(i).into_iter().collect());
        }
    }

    /// A tool call seen for the first time.
    pub fn tool_use(&mut self, at: &At<'_>, u: &ToolUse) {
        let dropped = &mut self.dropped;
        let t = self.turns.entry(at.session.to_owned()).or_insert_with(|| new_turn(at, false));
        if t.spans.len() >= MAX_SPANS_PER_TURN {
            *dropped += 1;
            return;
        }
        let tool_type = if u.name.starts_with("mcp__") { "extension" } else { "function" };
        let span = Span {
            trace_id: t.trace_id,
            span_id: span_id(&t.trace_id, "tool", u.id.as_bytes()),
            parent: None,
            name: format!("execute_tool {}", u.name),
            kind: SpanKind::Internal,
            start_ms: at.ts,
            end_ms: at.ts,
            attrs: attrs([
                (semconv::GEN_AI_OPERATION_NAME, "execute_tool".into()),
                (semconv::GEN_AI_TOOL_NAME, (*u.name).into()),
                (semconv::GEN_AI_TOOL_CALL_ID, (*u.id).into()),
                (semconv::GEN_AI_TOOL_TYPE, tool_type.into()),
            ]),
            events: Vec::new(),
            error: None,
        };
        t.tool_calls += 1;
        t.tools.insert(u.id.to_string(), t.spans.len());
        let agent_type = matches!(&*u.name, "Task" | "Agent")
            .then(|| u.subagent_type.as_deref().unwrap_or("general-purpose").to_owned());
        t.spans.push(Building {
            span,
            owner: at.owner.clone(),
            open: true,
            agent_type,
            usage: Tokens::default(),
            sent: false,
        });
    }

    /// A tool result seen for the first time; `agent_id` from `toolUseResult.agentId`.
    /// The call's span leaves now, and the span of the sub-agent it ran.
    pub fn tool_result(&mut self, at: &At<'_>, r: &ToolResult, agent_id: Option<&str>) {
        let sink = &self.sink;
        let t = self.turns.entry(at.session.to_owned()).or_insert_with(|| new_turn(at, false));
        let Some(&i) = t.tools.get(&*r.tool_use_id) else { return };
        let b = &mut t.spans[i];
        b.open = false;
        b.span.end_ms = at.ts.max(b.span.start_ms);
        if r.is_error {
            b.span.error = Some("tool_error".into());
            b.span.attrs.push((semconv::ERROR_TYPE.into(), "tool_error".into()));
            t.tool_errors += 1;
        }
        let mut out: Vec<Span> = t.take(i).into_iter().collect();
        if let Some(a) = agent_id {
            t.agent_of.insert(a.to_owned(), r.tool_use_id.to_string());
            out.extend(t.take_agent(at.session, a));
        }
        send(sink, out);
    }

    pub fn compaction(&mut self, at: &At<'_>, c: &Compaction) {
        let t = self.turn(at);
        let mut a = attrs([("trigger", if c.manual { "manual" } else { "auto" }.into())]);
        if let Some(n) = c.pre_tokens {
            a.push(("claude_sessions.tokens_before".into(), n.into()));
        }
        if let Some(n) = c.post_tokens {
            a.push(("claude_sessions.tokens_after".into(), n.into()));
        }
        t.events.push(SpanEvent { name: "compaction".into(), at_ms: at.ts, attrs: a });
    }

    pub fn api_error(&mut self, at: &At<'_>, kind: &str) {
        let t = self.turn(at);
        t.api_errors += 1;
        t.events.push(SpanEvent {
            name: "api_error".into(),
            at_ms: at.ts,
            attrs: attrs([(semconv::ERROR_TYPE, kind.into())]),
        });
    }

    /// Any traced line: the turn's and the chain's latest activity.
    pub fn touch(&mut self, at: &At<'_>) {
        let t = self.turn(at);
        t.end_ms = t.end_ms.max(at.ts);
        match t.last_by_owner.iter_mut().find(|(o, _)| o == at.owner) {
            Some((_, last)) => *last = (*last).max(at.ts),
            None => t.last_by_owner.push((at.owner.clone(), at.ts)),
        }
    }

    /// The session's turn (if traced) ended: it ran from `start_ms` to `end_ms`, as the
    /// aggregator measured it. Its root leaves, with whatever had not left yet; a tool
    /// call still running is cut at the end and marked not completed.
    pub fn end_turn(&mut self, session: &str, start_ms: Millis, end_ms: Millis) {
        let Some(t) = self.turns.remove(session) else { return };
        send(&self.sink, build(session, t, start_ms, end_ms));
    }
}

fn new_turn(at: &At<'_>, prompted: bool) -> Turn {
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

fn set(span: &mut Span, key: &str, v: Value) {
    match span.attrs.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = v,
        None => span.attrs.push((key.to_owned(), v)),
    }
}

/// Usage per the GenAI conventions: input tokens include cache reads and writes.
fn set_usage(span: &mut Span, t: Tokens, stop_reason: Option<&str>) {
    set(span, semconv::GEN_AI_USAGE_INPUT_TOKENS, t.prompt().into());
    set(span, semconv::GEN_AI_USAGE_OUTPUT_TOKENS, t.output.into());
    set(span, semconv::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, t.cache_read.into());
    set(span, semconv::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, t.cache_creation.into());
    if let Some(r) = stop_reason {
        set(span, semconv::GEN_AI_RESPONSE_FINISH_REASONS, Value::Strs(vec![r.to_owned()]));
    }
}

fn add_cost(span: &mut Span, usd: f64) {
    let before = match span.attr("claude_sessions.cost_usd") {
        Some(Value::F64(f)) => *f,
        _ => 0.0,
    };
    set(span, "claude_sessions.cost_usd", (before + usd).into());
}

/// The end of a turn: what has not left yet (sub-agents, pending responses, running
/// tool calls) and the root, timed `start`..`end`.
fn build(session: &str, mut t: Turn, start: Millis, end: Millis) -> Vec<Span> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn at<'a>(owner: &'a Owner, ts: Millis, prompts: u64) -> At<'a> {
        At { session: "s1", project: "app", prompts, ts, owner, query_source: "main", turn_ms: ts }
    }

    fn response(key: u64, output: u64) -> Response {
        Response {
            key,
            id: format!("msg_{key}").into(),
            model: "claude-opus-4-6".into(),
            tokens: Tokens { input: 10, output, cache_read: 100, cache_creation: 5, cache_creation_1h: 0 },
            fast: false,
            stop_reason: Some("tool_use".into()),
        }
    }

    /// A line of a response still streaming (no `stop_reason` yet).
    fn streaming(key: u64, output: u64) -> Response {
        Response { stop_reason: None, ..response(key, output) }
    }

    fn collecting() -> (Tracer, Arc<Mutex<Vec<Span>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut t = Tracer::new(0);
        let g = Arc::clone(&got);
        t.set_sink(Some(Arc::new(move |s: Vec<Span>| g.lock().unwrap().extend(s))));
        (t, got)
    }

    fn names(got: &Mutex<Vec<Span>>) -> Vec<String> {
        got.lock().unwrap().iter().map(|s| s.name.clone()).collect()
    }

    #[test]
    fn a_turn_becomes_a_tree_with_transcript_times() {
        let (mut tr, got) = collecting();
        let (main, agent) = (Owner::Main, Owner::Agent("a1".into()));
        tr.prompt(&at(&main, 1000, 1), None);
        tr.touch(&at(&main, 1000, 1));
        let r = streaming(7, 1);
        tr.response(&at(&main, 3000, 1), &r, r.tokens, 0.5);
        tr.touch(&at(&main, 3000, 1));
        // A later line of the same response with more output tokens.
        let r2 = response(7, 40);
        tr.response(&at(&main, 3500, 1), &r2, r2.tokens, 0.25);
        let task = ToolUse { id: "toolu_1".into(), name: "Task".into(), subagent_type: Some("Explore".into()) };
        tr.tool_use(&at(&main, 3500, 1), &task);
        tr.touch(&at(&main, 3500, 1));
        let ar = streaming(8, 2);
        tr.touch(&at(&agent, 4000, 1));
        tr.response(&at(&agent, 6000, 1), &ar, ar.tokens, 0.0);
        tr.tool_result(&at(&main, 9000, 1), &ToolResult { tool_use_id: "toolu_1".into(), is_error: true }, Some("a1"));
        tr.touch(&at(&main, 9000, 1));
        let (trace, root_id) = tr.current("s1").unwrap();
        assert_eq!(got.lock().unwrap().len(), 4, "all but the root left as they ended: {:?}", names(&got));
        tr.end_turn("s1", 1000, 9000);
        let spans = got.lock().unwrap().clone();
        assert_eq!(spans.len(), 5, "{spans:#?}");
        let by = |name: &str| spans.iter().find(|s| s.name == name).unwrap();
        let root = by("invoke_agent claude-code");
        assert_eq!((root.parent, root.start_ms, root.end_ms), (None, 1000, 9000));
        assert_eq!((root.trace_id, root.span_id), (trace_id("s1", 1), root_id));
        assert_eq!(trace, root.trace_id);
        let chat = spans.iter().find(|s| s.name == "chat claude-opus-4-6" && s.parent == Some(root.span_id)).unwrap();
        assert_eq!((chat.start_ms, chat.end_ms), (1000, 3500));
        assert_eq!(chat.attr(semconv::GEN_AI_USAGE_INPUT_TOKENS), Some(&Value::Int(115)));
        assert_eq!(chat.attr(semconv::GEN_AI_USAGE_OUTPUT_TOKENS), Some(&Value::Int(40)));
        assert_eq!(chat.attr("claude_sessions.cost_usd"), Some(&Value::F64(0.75)));
        let tool = by("execute_tool Task");
        assert_eq!((tool.parent, tool.start_ms, tool.end_ms), (Some(root.span_id), 3500, 9000));
        assert_eq!(tool.error.as_deref(), Some("tool_error"));
        let agent_span = by("invoke_agent Explore");
        assert_eq!(agent_span.parent, Some(tool.span_id));
        let agent_chat = spans.iter().find(|s| s.parent == Some(agent_span.span_id)).unwrap();
        assert_eq!((agent_chat.start_ms, agent_chat.end_ms), (4000, 6000));
        assert_eq!(root.attr(semconv::GEN_AI_USAGE_OUTPUT_TOKENS), Some(&Value::Int(42)));
        assert!(spans.iter().all(|s| s.trace_id == root.trace_id));
    }

    #[test]
    fn spans_leave_as_they_end_and_never_twice() {
        let (mut tr, got) = collecting();
        let main = Owner::Main;
        tr.prompt(&at(&main, 1000, 1), None);
        let r = streaming(7, 1);
        tr.response(&at(&main, 2000, 1), &r, r.tokens, 0.0);
        tr.tool_use(&at(&main, 2000, 1), &ToolUse { id: "t1".into(), name: "Bash".into(), subagent_type: None });
        assert!(got.lock().unwrap().is_empty(), "a call running, a response streaming");
        tr.tool_result(&at(&main, 2500, 1), &ToolResult { tool_use_id: "t1".into(), is_error: false }, None);
        assert_eq!(names(&got), ["execute_tool Bash"], "the tool call left at its result");
        // Claude Code runs tools while a response streams: its later line grows.
        let r = streaming(7, 30);
        tr.response(&at(&main, 2600, 1), &r, r.tokens, 0.0);
        assert_eq!(got.lock().unwrap().len(), 1, "a tool result does not complete the response");
        // The chain's next request: the previous response is complete.
        let r2 = streaming(8, 5);
        tr.response(&at(&main, 4000, 1), &r2, r2.tokens, 0.0);
        let chat = got.lock().unwrap()[1].clone();
        assert_eq!((chat.name.as_str(), chat.end_ms), ("chat claude-opus-4-6", 2600));
        assert_eq!(chat.attr(semconv::GEN_AI_USAGE_OUTPUT_TOKENS), Some(&Value::Int(30)));
        // A line with a stop reason completes its response at once.
        let r2 = response(8, 9);
        tr.response(&at(&main, 4100, 1), &r2, r2.tokens, 0.0);
        assert_eq!(got.lock().unwrap().len(), 3);
        // Growth after the span left: the turn's totals only.
        let r2 = response(8, 20);
        tr.response(&at(&main, 4200, 1), &r2, r2.tokens, 0.0);
        assert_eq!(got.lock().unwrap().len(), 3);
        let (_, root_id) = tr.current("s1").unwrap();
        tr.end_turn("s1", 1000, 4200);
        let spans = got.lock().unwrap().clone();
        assert_eq!(spans.len(), 4, "the root, and nothing sent twice: {spans:#?}");
        let mut ids: Vec<SpanId> = spans.iter().map(|s| s.span_id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 4);
        let root = spans.iter().find(|s| s.parent.is_none()).unwrap();
        assert_eq!(root.span_id, root_id, "children named the root before it was sent");
        assert!(spans.iter().filter(|s| s.parent.is_some()).all(|s| s.parent == Some(root_id)));
        assert_eq!(root.attr(semconv::GEN_AI_USAGE_OUTPUT_TOKENS), Some(&Value::Int(50)));
    }

    #[test]
    fn a_sub_agent_leaves_with_its_task_result() {
        let (mut tr, got) = collecting();
        let (main, agent) = (Owner::Main, Owner::Agent("a1".into()));
        tr.prompt(&at(&main, 0, 1), None);
        let task = ToolUse { id: "task".into(), name: "Task".into(), subagent_type: Some("Explore".into()) };
        tr.tool_use(&at(&main, 10, 1), &task);
        tr.touch(&at(&agent, 20, 1));
        let r = streaming(8, 2);
        tr.response(&at(&agent, 30, 1), &r, r.tokens, 0.0);
        tr.tool_use(&at(&agent, 30, 1), &ToolUse { id: "read".into(), name: "Read".into(), subagent_type: None });
        tr.tool_result(&at(&agent, 40, 1), &ToolResult { tool_use_id: "read".into(), is_error: false }, None);
        tr.tool_result(&at(&main, 50, 1), &ToolResult { tool_use_id: "task".into(), is_error: false }, Some("a1"));
        let spans = got.lock().unwrap().clone();
        let by = |name: &str| spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name}: {spans:#?}"));
        let (task, agent_span) = (by("execute_tool Task"), by("invoke_agent Explore"));
        assert_eq!(agent_span.parent, Some(task.span_id));
        assert_eq!((agent_span.start_ms, agent_span.end_ms), (20, 40));
        assert_eq!(by("chat claude-opus-4-6").parent, Some(agent_span.span_id), "the agent's last response too");
        assert_eq!(by("execute_tool Read").parent, Some(agent_span.span_id));
        tr.end_turn("s1", 0, 50);
        let spans = got.lock().unwrap().clone();
        assert_eq!(spans.len(), 5, "the agent span is not sent again: {:?}", names(&got));
    }

    #[test]
    fn the_per_turn_cap_drops_and_counts_what_is_over() {
        let (mut tr, got) = collecting();
        let main = Owner::Main;
        tr.prompt(&at(&main, 0, 1), None);
        for i in 0..MAX_SPANS_PER_TURN + 3 {
            let id: Box<str> = format!("t{i}").into();
            tr.tool_use(&at(&main, 1, 1), &ToolUse { id: id.clone(), name: "Bash".into(), subagent_type: None });
            tr.tool_result(&at(&main, 2, 1), &ToolResult { tool_use_id: id, is_error: false }, None);
        }
        assert_eq!(tr.dropped, 3);
        tr.end_turn("s1", 0, 2);
        assert_eq!(got.lock().unwrap().len(), MAX_SPANS_PER_TURN + 1);
    }

    #[test]
    fn open_turns_survive_the_checkpoint() {
        let (mut tr, got) = collecting();
        let (main, agent) = (Owner::Main, Owner::Agent("a1".into()));
        tr.prompt(&at(&main, 1000, 1), None);
        tr.touch(&at(&agent, 1500, 1));
        let r = streaming(8, 2);
        tr.response(&at(&agent, 2000, 1), &r, r.tokens, 0.0);
        let json = serde_json::to_string(&tr).expect("a tracer with sub-agent chains serializes");
        let mut back: Tracer = serde_json::from_str(&json).unwrap();
        let g = Arc::clone(&got);
        back.set_sink(Some(Arc::new(move |s: Vec<Span>| g.lock().unwrap().extend(s))));
        back.end_turn("s1", 1000, 2000);
        let spans = got.lock().unwrap().clone();
        let chat = spans.iter().find(|s| s.name.starts_with("chat ")).unwrap();
        assert_eq!(chat.start_ms, 1500, "the chain's last time came through");
        assert!(spans.iter().any(|s| s.name == "invoke_agent agent" && Some(s.span_id) == chat.parent));
    }

    #[test]
    fn a_tool_call_running_at_the_end_of_its_turn_is_cut_there() {
        let (mut tr, got) = collecting();
        let main = Owner::Main;
        tr.prompt(&at(&main, 0, 1), None);
        tr.tool_use(&at(&main, 10, 1), &ToolUse { id: "t".into(), name: "Bash".into(), subagent_type: None });
        assert!(got.lock().unwrap().is_empty());
        tr.end_turn("s1", 0, 10);
        let spans = got.lock().unwrap().clone();
        let tool = spans.iter().find(|s| s.name == "execute_tool Bash").unwrap();
        assert_eq!(tool.attr("claude_sessions.tool.completed"), Some(&Value::Bool(false)));
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(trace_id("s", 1), trace_id("s", 1));
        assert_ne!(trace_id("s", 1), trace_id("s", 2));
        assert_ne!(trace_id("s", 1), trace_id("t", 1));
        let t = trace_id("s", 1);
        assert_ne!(span_id(&t, "tool", b"x"), span_id(&t, "chat", b"x"));
        assert_eq!(hex(&[0, 255]), "00ff");
    }
}
