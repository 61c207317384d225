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

use serde::{Deserialize, Serialize};

use crate::state::dedup::FastMap;
use crate::transcript::entry::{Compaction, Millis, Response, Tokens, ToolResult, ToolUse};

mod turn;
use turn::{Building, MAX_SPANS_PER_TURN, Turn, build, new_turn};

/// Attribute names of the OpenTelemetry GenAI semantic conventions (the
/// `opentelemetry-semantic-conventions` crate deprecated its copies when they
/// moved to their own repository, so they are spelled out here).
pub mod semconv {
    /// The error class of a failed operation (`tool_error`, an API error kind).
    pub const ERROR_TYPE: &str = "error.type";
    /// A sub-agent's id (its agent file).
    pub const GEN_AI_AGENT_ID: &str = "gen_ai.agent.id";
    /// An agent's name: `claude-code` for the root, the sub-agent type below it.
    pub const GEN_AI_AGENT_NAME: &str = "gen_ai.agent.name";
    /// The session id.
    pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
    /// `invoke_agent`, `chat` or `execute_tool`.
    pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
    /// Always `anthropic`.
    pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
    /// The model asked for (the response's model: the transcript has no other).
    pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
    /// The response's `stop_reason`, as a one-item list.
    pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
    /// The response's `message.id`.
    pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
    /// The model that answered.
    pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
    /// A tool call's input as JSON text (content capture only).
    pub const GEN_AI_TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
    /// A tool call's `tool_use.id`.
    pub const GEN_AI_TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
    /// A tool call's result text (content capture only).
    pub const GEN_AI_TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";
    /// The tool's name.
    pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
    /// `extension` for MCP tools, else `function`.
    pub const GEN_AI_TOOL_TYPE: &str = "gen_ai.tool.type";
    /// Input tokens written to the prompt cache.
    pub const GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: &str = "gen_ai.usage.cache_creation.input_tokens";
    /// Input tokens read from the prompt cache.
    pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
    /// Includes cached tokens (reads and writes), per the conventions.
    pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    /// Output tokens.
    pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
}

/// A W3C trace id (16 bytes), derived from the session and turn ([`trace_id`]).
pub type TraceId = [u8; 16];
/// A W3C span id (8 bytes), derived from what the span stands for ([`span_id`]).
pub type SpanId = [u8; 8];

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// Text.
    Str(String),
    /// A whole number (counts above `i64::MAX` are clamped).
    Int(i64),
    /// A flag.
    Bool(bool),
    /// A real number (costs in USD).
    F64(f64),
    /// A list of texts (finish reasons).
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

/// A span's attributes, in the order they were set.
pub type Attrs = Vec<(String, Value)>;

/// The OTLP span kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpanKind {
    /// Work inside Claude Code: the turn, tool calls, sub-agents.
    Internal,
    /// A call to the model's API (`chat`).
    Client,
}

/// Something that happened at an instant inside a span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    /// `compaction` or `api_error`.
    pub name: String,
    /// Transcript time, ms since the epoch.
    pub at_ms: Millis,
    /// What it says (trigger and sizes, error kind).
    pub attrs: Attrs,
}

/// A finished span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// The turn's trace.
    pub trace_id: TraceId,
    /// This span's id (stable: the same turn read again gives the same ids).
    pub span_id: SpanId,
    /// The parent span (`None`: the turn's root).
    pub parent: Option<SpanId>,
    /// `invoke_agent claude-code`, `chat <model>`, `execute_tool <tool>`, `invoke_agent <type>`.
    pub name: String,
    /// Client for model calls, internal otherwise.
    pub kind: SpanKind,
    /// Start, transcript time in ms since the epoch.
    pub start_ms: Millis,
    /// End, transcript time in ms since the epoch (never before the start).
    pub end_ms: Millis,
    /// GenAI semantic-convention attributes ([`semconv`]) and `claude_sessions.*` ones.
    pub attrs: Attrs,
    /// Compactions and API errors inside the span (the root's).
    pub events: Vec<SpanEvent>,
    /// Error status with this description.
    pub error: Option<String>,
}

impl Span {
    /// The value of attribute `key`, if set.
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
    /// The line's session id.
    pub session: &'a str,
    /// The session's `project` label (on the root span).
    pub project: &'a str,
    /// Prompts of the session so far (the turn number).
    pub prompts: u64,
    /// The line's transcript time, ms since the epoch.
    pub ts: Millis,
    /// The chain the line belongs to.
    pub owner: &'a Owner,
    /// `main`, `subagent` or `auxiliary` (on chat spans).
    pub query_source: &'static str,
    /// When the line's turn started (the aggregator's turn model): the root's start.
    pub turn_ms: Millis,
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

/// Lower-case hex of an id, as trace viewers show it.
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
    /// A tracer of lines stamped from `since_ms` on (ms since the epoch; 0: all), with no sink yet.
    pub fn new(since_ms: Millis) -> Tracer {
        Tracer { since_ms, ..Tracer::default() }
    }

    /// Where finished spans go from now on (`None`: built and dropped).
    pub fn set_sink(&mut self, sink: Option<SpanSink>) {
        self.sink = sink;
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

    /// A compaction: an event on the turn's root span.
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

    /// An API error of kind `kind`: an event on the turn's root span, counted on it.
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

#[cfg(test)]
mod tests;
