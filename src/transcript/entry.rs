//! Our own vocabulary: what one transcript line means, without its content.
//!
//! In: a parsed [`crate::transcript::Line`]. Out: an owned, compact [`Entry`] holding
//! only ids, timestamps, usage and counts — never prompt text, tool input or
//! output. The conversion [`Entry::from_line`] is a pure function, so it is
//! easy to test and can run on a worker thread while the aggregator applies
//! entries in file order.

use crate::transcript::{Content, Head, Line};

/// Milliseconds since the Unix epoch (UTC).
pub type Millis = i64;

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// What kind of record a line is, as far as metrics care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// `user` lines: prompts, tool results, injected text.
    User,
    /// `assistant` lines: (part of) an API response.
    Assistant,
    /// `system` lines: compaction boundaries, API errors, hook and local-command notes.
    System,
    /// `progress` lines: their embedded sub-agent copies never count.
    Progress,
    /// Any other known type (titles, snapshots, queue operations…).
    Other,
}

/// Token usage of one API response.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tokens {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens (thinking included).
    pub output: u64,
    /// All cache writes (`cache_creation_input_tokens`).
    pub cache_creation: u64,
    /// Of `cache_creation`, the writes with a one-hour TTL (priced higher).
    pub cache_creation_1h: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
}

impl Tokens {
    /// Prompt size of the call: what occupied the context window.
    pub fn prompt(&self) -> u64 {
        self.input.saturating_add(self.cache_creation).saturating_add(self.cache_read)
    }

    /// Field-wise maximum: the usage of a response split over several lines.
    pub fn max(self, o: Tokens) -> Tokens {
        Tokens {
            input: self.input.max(o.input),
            output: self.output.max(o.output),
            cache_creation: self.cache_creation.max(o.cache_creation),
            cache_creation_1h: self.cache_creation_1h.max(o.cache_creation_1h),
            cache_read: self.cache_read.max(o.cache_read),
        }
    }

    /// Field-wise `self - o`, never below zero.
    pub fn saturating_sub(self, o: Tokens) -> Tokens {
        Tokens {
            input: self.input.saturating_sub(o.input),
            output: self.output.saturating_sub(o.output),
            cache_creation: self.cache_creation.saturating_sub(o.cache_creation),
            cache_creation_1h: self.cache_creation_1h.saturating_sub(o.cache_creation_1h),
            cache_read: self.cache_read.saturating_sub(o.cache_read),
        }
    }

    /// Whether every field is 0 (a response that used nothing, such as a synthetic reply).
    pub fn is_zero(&self) -> bool {
        *self == Tokens::default()
    }
}

/// Saturating: totals restored from a damaged checkpoint may sit near
/// `u64::MAX` (found by fuzzing), and a total must never wrap or panic. From
/// transcripts it never saturates: each response's fields are bounded when the
/// line is parsed (`transcript::MAX_PROMPT_TOKENS`, `MAX_OUTPUT_TOKENS`), so a
/// total would need over 10^12 responses to reach `u64::MAX`.
impl std::ops::AddAssign for Tokens {
    fn add_assign(&mut self, o: Tokens) {
        self.input = self.input.saturating_add(o.input);
        self.output = self.output.saturating_add(o.output);
        self.cache_creation = self.cache_creation.saturating_add(o.cache_creation);
        self.cache_creation_1h = self.cache_creation_1h.saturating_add(o.cache_creation_1h);
        self.cache_read = self.cache_read.saturating_add(o.cache_read);
    }
}

/// One API response as seen on one line (a response spans several lines).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Response {
    /// Dedup key: hash of `message.id` and `requestId` (see `dedup`).
    pub key: u64,
    /// `message.id` (the API's response id).
    pub id: Box<str>,
    /// `message.model` (`<synthetic>` for replies the harness made), `""` if absent.
    pub model: Box<str>,
    /// `message.stop_reason` when written (`end_turn`, `tool_use`, …).
    pub stop_reason: Option<Box<str>>,
    /// The usage this line reports (a later line of the same response may report more).
    pub tokens: Tokens,
    /// `usage.speed == "fast"` (priced with a multiplier).
    pub fast: bool,
}

/// Kinds of API error, a closed set usable as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ApiError {
    /// A usage or rate limit was hit (HTTP 429, "usage limit").
    RateLimit,
    /// The API was overloaded (HTTP 529).
    Overloaded,
    /// The request was aborted.
    Aborted,
    /// Any other failure.
    Other,
}

impl ApiError {
    /// The label value: `rate_limit`, `overloaded`, `aborted`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiError::RateLimit => "rate_limit",
            ApiError::Overloaded => "overloaded",
            ApiError::Aborted => "aborted",
            ApiError::Other => "other",
        }
    }

    /// Classify from the first characters of the synthetic reply's text.
    fn classify(head: &str) -> ApiError {
        let h = head.to_ascii_lowercase();
        if h.contains("usage limit") || h.contains("rate limit") || h.contains("429") {
            ApiError::RateLimit
        } else if h.contains("overloaded") || h.contains("529") {
            ApiError::Overloaded
        } else if h.contains("aborted") {
            ApiError::Aborted
        } else {
            ApiError::Other
        }
    }
}

/// A tool call (`tool_use` block) of an assistant line.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolUse {
    /// The call's id (`toolu_…`): its identity, and what its result names.
    pub id: Box<str>,
    /// The tool's name (`Bash`, `Edit`, `mcp__server__tool`, …).
    pub name: Box<str>,
    /// `Task`/`Agent` calls: the sub-agent type asked for.
    pub subagent_type: Option<Box<str>>,
}

/// A tool's result (`tool_result` block) on a user line.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolResult {
    /// The id of the call it answers.
    pub tool_use_id: Box<str>,
    /// The tool reported a failure (`is_error: true`).
    pub is_error: bool,
    /// Size of its content's JSON text: what it adds to the context.
    #[serde(default)]
    pub bytes: u64,
}

/// What a line adds to a conversation's context, in bytes of JSON text, by source
/// (tool results: [`ToolResult::bytes`]). The rules are in `docs/research.md`
/// (Context tracker): the sizes a context's growth is split by, live and in `analyze`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContextBytes {
    /// What the person typed (user text that is not meta and not a summary).
    pub user_text: u64,
    /// The model's output: text, thinking and tool calls.
    pub assistant_output: u64,
    /// `attachment` lines.
    pub attachment: u64,
    /// Harness-injected user text (`isMeta`) and a compaction's summary.
    pub meta: u64,
}

impl ContextBytes {
    /// The sizes of `line` (of `kind`).
    fn of(line: &Line<'_>, kind: Kind) -> ContextBytes {
        let mut c = ContextBytes::default();
        let raw_len = |r: Option<&str>| r.map_or(0, |r| r.len() as u64);
        match kind {
            Kind::User => {
                let Some(m) = &line.message else { return c };
                let n: u64 = match &m.content {
                    Content::None => 0,
                    Content::Text(t) => t.json_len,
                    Content::Blocks(blocks) => blocks
                        .iter()
                        .map(|b| match b.kind.as_deref() {
                            Some("tool_result") => 0,
                            Some("text") => raw_len(b.text.map(|t| t.raw)),
                            // Images and documents: their JSON (base64) stands for their size.
                            _ => {
                                raw_len(b.content.map(|r| r.0))
                                    + raw_len(b.input.map(|r| r.0))
                                    + raw_len(b.source.map(|r| r.0))
                                    + raw_len(b.text.map(|t| t.raw))
                            }
                        })
                        .sum(),
                };
                if line.is_meta || line.is_compact_summary {
                    c.meta = n;
                } else {
                    c.user_text = n;
                }
            }
            Kind::Assistant => {
                let Some(m) = &line.message else { return c };
                c.assistant_output = match &m.content {
                    Content::None => 0,
                    Content::Text(t) => t.json_len,
                    Content::Blocks(blocks) => blocks
                        .iter()
                        .map(|b| {
                            raw_len(b.thinking.map(|r| r.0))
                                + raw_len(b.input.map(|r| r.0))
                                + raw_len(b.text.map(|t| t.raw))
                        })
                        .sum(),
                };
            }
            Kind::Other if line.kind.as_deref() == Some("attachment") => {
                c.attachment = raw_len(line.attachment.map(|a| a.0));
            }
            _ => {}
        }
        c
    }
}

/// A compaction boundary: the conversation was summarised to free the context.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Compaction {
    /// Asked for (`/compact`) rather than triggered by a full context.
    pub manual: bool,
    /// Context size before, in tokens, where written.
    pub pre_tokens: Option<u64>,
    /// Context size after, in tokens, where written.
    pub post_tokens: Option<u64>,
}

/// The meaning of one transcript line.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// What kind of line it is.
    pub kind: Kind,
    /// `sessionId` as written (a sub-agent's lines carry their parent's).
    pub session_id: Option<Box<str>>,
    /// Hash of the line's `uuid`: what makes a prompt, a compaction or an API
    /// error the same fact in a copy of the file (see [`crate::transcript::identity::line_key`]).
    pub uuid: Option<u64>,
    /// When the line was written, in ms since the Unix epoch; `None` if absent or unreadable.
    pub timestamp: Option<Millis>,
    /// The Claude Code process's working directory (the project's real path).
    pub cwd: Option<Box<str>>,
    /// The git branch checked out there (`""` outside git).
    pub git_branch: Option<Box<str>>,
    /// Part of a sub-agent's conversation (`isSidechain`).
    pub sidechain: bool,
    /// A human prompt typed into the main chain (not tool results, not meta).
    pub prompt: bool,
    /// The API response an assistant line belongs to, with its usage (boxed:
    /// most lines have none, and parsed entries wait in memory while files ahead
    /// of them are applied).
    pub response: Option<Box<Response>>,
    /// A synthetic reply standing for a failed API call, by kind.
    pub api_error: Option<ApiError>,
    /// Tool calls the line makes, in order.
    pub tool_uses: Vec<ToolUse>,
    /// Tool results the line carries, in order.
    pub tool_results: Vec<ToolResult>,
    /// A compaction boundary (boxed, as `response`).
    pub compaction: Option<Box<Compaction>>,
    /// Lines added by an edit tool (from `toolUseResult`).
    pub lines_added: u64,
    /// Of the same edit, lines removed.
    pub lines_removed: u64,
    /// `toolUseResult.agentId`: links a `Task`/`Agent` result to its sub-agent file.
    pub result_agent_id: Option<Box<str>>,
    /// Message content, only when the user opted in (`--otlp-include-content`).
    /// Never journaled: it serves events and spans, which a replay does not send.
    #[serde(skip)]
    pub content: Option<Box<Captured>>,
    /// The prompt is exactly `Warmup` (2.0.x cache-warming sub-agents).
    pub warmup_prompt: bool,
    /// What the line adds to a context ([`ContextBytes`]).
    pub context_bytes: ContextBytes,
}

/// Content kept for traces when the user opts in, each item cut to a size cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The typed prompt (first text of a user line).
    pub prompt: Option<String>,
    /// Tool inputs as JSON, by tool_use id.
    pub tool_inputs: Vec<(String, String)>,
    /// What rules and summaries read from each whole tool input, by tool_use id
    /// (only when asked for: [`crate::engine::capture::Inspect`]).
    pub tool_facts: Vec<(String, InputFacts)>,
    /// Tool outputs as text (JSON for structured ones), by tool_use id.
    pub tool_outputs: Vec<(String, String)>,
}

/// What events need from a tool call's input, read from the whole input while its
/// line is at hand: the input itself, however large, is parsed once and dropped with
/// the line (only these, and the input cut to the capture size, are kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputFacts {
    /// The command, path, URL or pattern of the call (`events::summarize`).
    pub summary: Option<String>,
    /// A `Task`/`Agent` call's description, cut to 200 bytes.
    pub description: Option<String>,
    /// The risky rules the call matches (`rules::Rules::check`).
    pub matches: Vec<crate::rules::Match>,
}

/// `s` cut to at most `cap` bytes on a character boundary, marked when cut.
pub fn cap_text(s: &str, cap: usize) -> String {
    if s.len() <= cap {
        return s.to_owned();
    }
    let mut end = cap;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes cut]", &s[..end], s.len() - end)
}

/// User text that Claude Code writes itself rather than the person typing.
const NOT_PROMPTS: &[&str] = &[
    "<local-command-stdout>",
    "<local-command-stderr>",
    "<local-command-caveat>",
    "[Request interrupted",
    "<bash-stdout>",
    "<bash-stderr>",
];

impl Entry {
    /// A `progress` line: activity in a session, nothing else.
    pub fn progress(head: &crate::transcript::ProgressHead<'_>) -> Entry {
        Entry {
            kind: Kind::Progress,
            session_id: head.session_id.map(Into::into),
            timestamp: head.timestamp.and_then(parse_timestamp),
            ..Entry::empty(Kind::Progress)
        }
    }

    fn empty(kind: Kind) -> Entry {
        Entry {
            kind,
            session_id: None,
            uuid: None,
            timestamp: None,
            cwd: None,
            git_branch: None,
            sidechain: false,
            prompt: false,
            response: None,
            api_error: None,
            tool_uses: Vec::new(),
            tool_results: Vec::new(),
            compaction: None,
            lines_added: 0,
            lines_removed: 0,
            result_agent_id: None,
            content: None,
            warmup_prompt: false,
            context_bytes: ContextBytes::default(),
        }
    }

    /// Interpret a parsed line. Pure: no state, no I/O.
    pub fn from_line(line: &Line<'_>) -> Entry {
        let kind = match line.kind.as_deref() {
            Some("user") => Kind::User,
            Some("assistant") => Kind::Assistant,
            Some("system") => Kind::System,
            Some("progress") => Kind::Progress,
            _ => Kind::Other,
        };
        let mut e = Entry {
            session_id: line.session_id.as_deref().map(Into::into),
            uuid: line.uuid.as_deref().map(|u| crate::transcript::identity::fnv1a(&[u.as_bytes()])),
            timestamp: line.timestamp.as_deref().and_then(parse_timestamp),
            cwd: line.cwd.as_deref().map(Into::into),
            git_branch: line.git_branch.as_deref().map(Into::into),
            sidechain: line.is_sidechain,
            ..Entry::empty(kind)
        };
        match kind {
            Kind::Assistant => e.read_assistant(line),
            Kind::User => e.read_user(line),
            Kind::System => e.read_system(line),
            Kind::Progress | Kind::Other => {}
        }
        e.context_bytes = ContextBytes::of(line, kind);
        e
    }

    fn read_assistant(&mut self, line: &Line<'_>) {
        let Some(msg) = &line.message else { return };
        let model = msg.model.as_deref().unwrap_or("unknown");
        if line.is_api_error_message || model == "<synthetic>" {
            let head = match &msg.content {
                Content::Blocks(b) => b.iter().find_map(|b| b.text.as_ref()).map(|t| t.head()),
                Content::Text(t) => Some(t.head),
                Content::None => None,
            };
            let head = head.as_ref().map(Head::as_str);
            // "No response requested." is a fabricated reply, not a failure.
            if line.is_api_error_message || head.is_some_and(|h| h.starts_with("API Error")) {
                self.api_error = Some(ApiError::classify(head.unwrap_or("")));
            }
            return;
        }
        if let (Some(id), Some(u)) = (&msg.id, &msg.usage) {
            let one_hour = u.cache_creation.as_ref().map_or(0, |c| c.ephemeral_1h_input_tokens);
            self.response = Some(Box::new(Response {
                key: crate::transcript::identity::response_key(id, line.request_id.as_deref()),
                id: (**id).into(),
                model: model.into(),
                stop_reason: msg.stop_reason.as_deref().map(Into::into),
                tokens: Tokens {
                    input: u.input_tokens,
                    output: u.output_tokens,
                    cache_creation: u.cache_creation_input_tokens,
                    cache_creation_1h: one_hour.min(u.cache_creation_input_tokens),
                    cache_read: u.cache_read_input_tokens,
                },
                fast: u.speed.as_deref() == Some("fast"),
            }));
        }
        if let Content::Blocks(blocks) = &msg.content {
            for b in blocks {
                if b.kind.as_deref() == Some("tool_use")
                    && let (Some(id), Some(name)) = (&b.id, &b.name)
                {
                    self.tool_uses.push(ToolUse {
                        id: (**id).into(),
                        name: (**name).into(),
                        subagent_type: b.subagent_type().as_deref().map(Into::into),
                    });
                }
            }
        }
    }

    fn read_user(&mut self, line: &Line<'_>) {
        if let Some(stats) = &line.tool_use_result {
            self.lines_added = stats.added;
            self.lines_removed = stats.removed;
            self.result_agent_id = stats.agent_id.clone();
        }
        let Some(msg) = &line.message else { return };
        let mut has_text = false;
        let mut text_head: Option<Head> = None;
        match &msg.content {
            Content::Text(t) => {
                has_text = true;
                text_head = Some(t.head);
            }
            Content::Blocks(blocks) => {
                for b in blocks {
                    match b.kind.as_deref() {
                        Some("tool_result") => {
                            if let Some(id) = &b.tool_use_id {
                                self.tool_results.push(ToolResult {
                                    tool_use_id: (**id).into(),
                                    is_error: b.is_error == Some(true),
                                    bytes: b.content.map_or(0, |c| c.0.len() as u64),
                                });
                            }
                        }
                        Some("text") if !has_text => {
                            has_text = true;
                            text_head = b.text.as_ref().map(|t| t.head());
                        }
                        Some("image") => has_text = true,
                        _ => {}
                    }
                }
            }
            Content::None => {}
        }
        self.warmup_prompt = text_head.as_ref().map(Head::as_str) == Some("Warmup");
        self.prompt = has_text
            && self.tool_results.is_empty()
            && !line.is_sidechain
            && !line.is_meta
            && !line.is_compact_summary
            && !text_head.is_some_and(|h| NOT_PROMPTS.iter().any(|p| h.starts_with(p)));
    }

    fn read_system(&mut self, line: &Line<'_>) {
        match line.subtype.as_deref() {
            Some("compact_boundary") => {
                let meta = line.compact_metadata.as_ref();
                self.compaction = Some(Box::new(Compaction {
                    manual: meta.and_then(|m| m.trigger.as_deref()) == Some("manual"),
                    pre_tokens: meta.and_then(|m| m.pre_tokens),
                    post_tokens: meta.and_then(|m| m.post_tokens),
                }));
            }
            Some("api_error") => self.api_error = Some(ApiError::Other),
            _ => {}
        }
    }
}

/// Parse `2025-11-13T11:21:46.951Z` (or with a `+hh:mm` offset) to epoch millis.
pub fn parse_timestamp(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                ms = ms * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        for _ in (i - start).min(3)..3 {
            ms *= 10;
        }
    }
    let offset_min = match b.get(i) {
        Some(b'Z') | None => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() >= i + 6 => {
            let o = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some((((days * 24 + h) * 60 + mi - offset_min) * 60 + sec) * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
