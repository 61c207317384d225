//! The wire format: a serde mirror of one transcript line.
//!
//! In: the bytes of one complete JSONL line. Out: a [`Line`] that borrows ids and
//! timestamps from those bytes and parses no large field (message text, tool inputs
//! and outputs, images, thinking): each is passed over and, where research reads it,
//! borrowed as its raw JSON ([`Raw`], [`Bulk`], [`TextField`]), never copied. Unknown line types
//! and unknown fields are tolerated: they are what newer Claude Code versions add.
//! Nothing here interprets the data; [`entry`] turns a `Line` into our own vocabulary.
//!
//! Submodules: [`entry`] (a line's facts), [`identity`] (the keys facts count
//! by), and `patch` (what an edit's `toolUseResult` says: [`PatchStats`]). Whole
//! tool inputs are read later, by the engine ([`crate::engine::capture`]).

pub mod entry;
pub mod identity;
mod patch;

pub use patch::PatchStats;

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Why a line could not be read as a transcript record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// The bytes are not one JSON object of the expected shape (or a field we
    /// read is not valid UTF-8).
    #[error("line is not a transcript JSON object (column {column})")]
    Json {
        /// Where serde_json gave up: the 1-based column it reports.
        column: usize,
    },
}

/// Line types Claude Code is known to write (`docs/transcript-format.md` §2).
const KNOWN_TYPES: &[&str] = &[
    "user",
    "assistant",
    "system",
    "summary",
    "file-history-snapshot",
    "queue-operation",
    "progress",
    "attachment",
    "permission-mode",
    "last-prompt",
    "ai-title",
    "custom-title",
    "tag",
    "agent-name",
    "agent-color",
    "agent-setting",
    "mode",
    "pr-link",
    "worktree-state",
];

/// Parse one line (without its trailing newline).
///
/// Invalid UTF-8 in a field we read fails the line; in content we skip it is
/// not looked at. A line is first checked whole with a SIMD validator: a valid
/// one (all real lines) is parsed as `str`, so the parser need not validate each
/// field and key again, which cost more than the whole-line check (about 6% of
/// `scan`'s instructions); an invalid one is parsed as bytes, as before.
pub fn parse_line(bytes: &[u8]) -> Result<Line<'_>, ParseError> {
    let valid = simdutf8::basic::from_utf8(bytes);
    if bytes.len() <= LONG_LINE
        && let Ok(s) = valid
    {
        return serde_json::from_str(s).map_err(|e| ParseError::Json { column: e.column() });
    }
    let valid = valid.is_ok();
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            RAW_STRINGS.set(false);
            NOT_UTF8.set(false);
        }
    }
    RAW_STRINGS.set(bytes.len() > LONG_LINE);
    NOT_UTF8.set(!valid);
    let _reset = Reset;
    serde_json::from_slice(bytes).map_err(|e| ParseError::Json { column: e.column() })
}

/// Lines longer than this read a string `message.content` raw (see [`RAW_STRINGS`]).
const LONG_LINE: usize = 1 << 20;

thread_local! {
    /// Set while a long line is parsed. `serde_json` unescapes a string into a
    /// copy before handing it on, so a long pasted prompt would cost its size
    /// twice; read raw, only its head is unescaped. That scans the content
    /// twice, which short lines (nearly all) are spared.
    static RAW_STRINGS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set while a line that is not valid UTF-8 is parsed: its [`Raw`] fields are
    /// skipped unread, so invalid bytes in content we do not interpret do not fail it.
    static NOT_UTF8: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The raw JSON text of a value, as written (escapes and all), borrowed from the line
/// (the parser passes over it either way). Empty when the line is not valid UTF-8 (so
/// such a line's tool inputs are not read, a sub-agent type included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Raw<'a>(pub &'a str);

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if NOT_UTF8.get() {
            de::IgnoredAny::deserialize(d)?;
            return Ok(Raw(""));
        }
        Ok(Raw(<&'de RawValue>::deserialize(d)?.get()))
    }
}

/// [`Raw`] for the bulk whose size is all the facts take (thinking, tool results,
/// images, attachments: [`entry::ContextBytes`]); research reads its text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bulk<'a>(pub &'a str);

impl<'de: 'a, 'a> Deserialize<'de> for Bulk<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Bulk(Raw::deserialize(d)?.0))
    }
}

/// A text block's `text`, raw (the raw JSON string, quotes included).
#[derive(Debug, Clone, Copy)]
pub struct TextField<'a> {
    /// The raw JSON string, quotes included.
    pub raw: &'a str,
}

impl TextField<'_> {
    /// The first bytes, escapes still escaped (see [`Head`]): enough to classify it.
    pub fn head(&self) -> Head {
        Head::from_raw(self.raw)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for TextField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(TextField { raw: <&'de RawValue>::deserialize(d)?.get() })
    }
}

/// What `progress` lines need from us: the session and the time, for activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressHead<'a> {
    /// The top-level `sessionId`, as written (`None` if it holds an escape).
    pub session_id: Option<&'a str>,
    /// The top-level `timestamp` (RFC 3339), as written (`None` if it holds an escape).
    pub timestamp: Option<&'a str>,
}

/// Recognise a `progress` line without parsing its (often large) `data`.
///
/// Claude Code writes the top-level `"type":"progress"` before `data`, after
/// only scalar fields. The pattern cannot occur inside a JSON string (its
/// quotes would be escaped), and we accept it only if no `{` precedes it, so a
/// match is the top-level field. Anything else goes through the full parser.
/// Progress lines are up to a sixth of real transcripts' bytes and never carry
/// usage we count (`docs/transcript-format.md` §6).
pub fn progress_head(line: &[u8]) -> Option<ProgressHead<'_>> {
    const PAT: &[u8] = b"\"type\":\"progress\"";
    let window = &line[..line.len().min(1024)];
    let at = memchr::memmem::find(window, PAT)?;
    if line.first() != Some(&b'{') || memchr::memchr(b'{', &line[1..at]).is_some() || line.last() != Some(&b'}') {
        return None;
    }
    let head = &line[..at];
    // The top-level timestamp follows `data`: the last one in the line's tail.
    let tail = &line[line.len().saturating_sub(512)..];
    Some(ProgressHead {
        session_id: string_after(head, memchr::memmem::find(head, b"\"sessionId\":\"")?, 13),
        timestamp: memchr::memmem::rfind(tail, b"\"timestamp\":\"").and_then(|i| string_after(tail, i, 13)),
    })
}

/// The plain (escape-free) string value starting `skip` bytes after `at`.
fn string_after(b: &[u8], at: usize, skip: usize) -> Option<&str> {
    let start = at + skip;
    let len = memchr::memchr2(b'"', b'\\', b.get(start..)?)?;
    if b[start + len] != b'"' {
        return None;
    }
    std::str::from_utf8(&b[start..start + len]).ok()
}

impl Line<'_> {
    /// Whether the `type` field names a record type we know.
    pub fn is_known_type(&self) -> bool {
        self.kind.as_deref().is_some_and(|k| KNOWN_TYPES.contains(&k))
    }
}

/// A string that borrows from the line when it has no escapes, and owns a
/// copy otherwise (serde's `Cow` support only borrows outside `Option`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// One transcript line. Every field is optional: versions differ.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line<'a> {
    /// `type`: `user`, `assistant`, `system`, `summary`, `progress`, … (see [`Line::is_known_type`]).
    #[serde(rename = "type", borrow)]
    pub kind: Option<Text<'a>>,
    /// `subtype` of a `system` line (`compact_boundary`, `api_error`, …).
    #[serde(borrow)]
    pub subtype: Option<Text<'a>>,
    /// `sessionId`: the session the line belongs to (a sub-agent's lines carry their parent's).
    #[serde(borrow)]
    pub session_id: Option<Text<'a>>,
    /// The line's own id: the identity of a prompt, a compaction or an API error.
    #[serde(borrow)]
    pub uuid: Option<Text<'a>>,
    /// When the line was written (RFC 3339, UTC, milliseconds).
    #[serde(borrow)]
    pub timestamp: Option<Text<'a>>,
    /// The working directory of the Claude Code process (the project's real path).
    #[serde(borrow)]
    pub cwd: Option<Text<'a>>,
    /// `gitBranch`: the branch checked out in `cwd`; `""` outside git, absent before 1.0.55.
    #[serde(borrow)]
    pub git_branch: Option<Text<'a>>,
    /// `isSidechain`: part of a sub-agent's conversation.
    #[serde(default)]
    pub is_sidechain: bool,
    /// `isMeta`: text the harness injected (command output, caveats), not a human prompt.
    #[serde(default)]
    pub is_meta: bool,
    /// `isCompactSummary`: the user line carrying a compaction's summary.
    #[serde(default)]
    pub is_compact_summary: bool,
    /// `isApiErrorMessage`: a synthetic assistant reply standing for a failed API call.
    #[serde(default)]
    pub is_api_error_message: bool,
    /// `requestId` of the API call an assistant line came from; with `message.id`,
    /// the identity of a response's usage.
    #[serde(borrow)]
    pub request_id: Option<Text<'a>>,
    /// `message`: the API message (user or assistant) the line holds.
    #[serde(borrow)]
    pub message: Option<Message<'a>>,
    /// Tool output as Claude Code saw it; only the edit statistics are kept.
    pub tool_use_result: Option<PatchStats>,
    /// `compactMetadata` of a `compact_boundary` line.
    pub compact_metadata: Option<CompactMetadata<'a>>,
    /// An `attachment` line's attachment (hook output, reminders, listings), raw.
    #[serde(borrow)]
    pub attachment: Option<Bulk<'a>>,
    /// The Claude Code version that wrote the line.
    #[serde(borrow)]
    pub version: Option<Text<'a>>,
}

/// `message`: what was sent to or came from the API.
#[derive(Debug, Default, Deserialize)]
pub struct Message<'a> {
    /// The API's message id (`msg_…`); one response written over several lines repeats it.
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    /// The model that answered (`claude-…`, or `<synthetic>` for harness-made replies).
    #[serde(borrow)]
    pub model: Option<Text<'a>>,
    /// Token usage of an assistant message.
    pub usage: Option<Usage<'a>>,
    /// `end_turn`, `tool_use`, `stop_sequence`, `max_tokens`, or absent/null mid-response.
    #[serde(borrow)]
    pub stop_reason: Option<Text<'a>>,
    /// The message's content, with its large parts skipped.
    #[serde(default)]
    pub content: Content<'a>,
}

/// `message.usage`; missing numbers mean 0.
///
/// Every count must be a whole number from 0 to its bound ([`MAX_PROMPT_TOKENS`],
/// [`MAX_OUTPUT_TOKENS`]); anything else fails the line (counted as malformed), so
/// that one hostile or corrupt line cannot add billions of tokens.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Usage<'a> {
    /// Uncached input tokens (at most [`MAX_PROMPT_TOKENS`]).
    #[serde(default, deserialize_with = "prompt_count")]
    pub input_tokens: u64,
    /// Output tokens, thinking included (at most [`MAX_OUTPUT_TOKENS`]); a response
    /// split over several lines may report a growing count.
    #[serde(default, deserialize_with = "output_count")]
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache, all lifetimes together.
    #[serde(default, deserialize_with = "prompt_count")]
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(default, deserialize_with = "prompt_count")]
    pub cache_read_input_tokens: u64,
    /// The cache writes by lifetime (5 minutes, 1 hour), where reported.
    pub cache_creation: Option<CacheCreation>,
    /// `standard` or `fast` (fast mode is priced higher).
    #[serde(borrow)]
    pub speed: Option<Text<'a>>,
}

/// `usage.cache_creation`: cache writes split by how long they are kept.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct CacheCreation {
    /// Tokens written with the 5-minute lifetime.
    #[serde(default, deserialize_with = "prompt_count")]
    pub ephemeral_5m_input_tokens: u64,
    /// Tokens written with the 1-hour lifetime (priced higher).
    #[serde(default, deserialize_with = "prompt_count")]
    pub ephemeral_1h_input_tokens: u64,
}

/// `compactMetadata` of a compaction boundary.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactMetadata<'a> {
    /// `auto` (the context filled up) or `manual` (`/compact`).
    #[serde(borrow)]
    pub trigger: Option<Text<'a>>,
    /// Context size before the compaction, in tokens, bounded like a prompt ([`MAX_PROMPT_TOKENS`]).
    #[serde(default, deserialize_with = "optional_prompt_count")]
    pub pre_tokens: Option<u64>,
    /// Context size after it (newer versions), bounded the same way.
    #[serde(default, deserialize_with = "optional_prompt_count")]
    pub post_tokens: Option<u64>,
}

/// The most tokens of one input-side kind (`input_tokens`, a cache field, a context
/// size) one API response can report: 10 × the largest context window (1M tokens,
/// Sonnet 4/4.5 and Opus 4.6 with the long-context option). A prompt cannot exceed its
/// window, so a larger value is not a count but damage or a hostile line; the margin
/// leaves room for a larger window without dropping real lines, while one line can
/// add no more than 31 M tokens in all (one claiming 2^63 of each kind was clamped to
/// 2^32 − 1 by the dedup window and added 4.29 G tokens of each, about $21,000).
pub const MAX_PROMPT_TOKENS: u64 = 10_000_000;

/// The most output tokens one API response can report: about 8 × the largest
/// `max_tokens` any Claude model accepts (128k, Sonnet 3.7 with extended output;
/// current models take 32k–64k).
pub const MAX_OUTPUT_TOKENS: u64 = 1_000_000;

/// A token count: a whole number from 0 to `max` (serde refuses negative and
/// fractional numbers for a `u64` already).
fn within<E: de::Error>(n: u64, max: u64) -> Result<u64, E> {
    if n > max {
        return Err(E::invalid_value(de::Unexpected::Unsigned(n), &"a token count one response can hold"));
    }
    Ok(n)
}

fn prompt_count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    within(u64::deserialize(d)?, MAX_PROMPT_TOKENS)
}

fn output_count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    within(u64::deserialize(d)?, MAX_OUTPUT_TOKENS)
}

fn optional_prompt_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(d)?.map(|n| within(n, MAX_PROMPT_TOKENS)).transpose()
}

/// `message.content`: a plain string (a typed prompt) or a list of blocks.
#[derive(Debug, Default)]
pub enum Content<'a> {
    /// Absent or `null`.
    #[default]
    None,
    /// A string content (a typed prompt, harness text): its head, enough to classify
    /// it, and what research needs of it.
    Text(Box<StrContent<'a>>),
    /// A list of blocks (text, thinking, tool calls and results), in order.
    Blocks(Vec<Block<'a>>),
}

/// A string `message.content`.
#[derive(Debug, Clone, Copy)]
pub struct StrContent<'a> {
    /// Its first characters (unescaped; see [`Head`]).
    pub head: Head,
    /// Its length as JSON text, quotes included.
    pub json_len: u64,
    /// The text itself when it could be borrowed: it has no escapes.
    pub text: Option<&'a str>,
    /// Its raw JSON (lines over 1 MiB only, which are read raw).
    pub raw: Option<&'a str>,
}

impl<'a> StrContent<'a> {
    /// A string without escapes, borrowed: its JSON is the text and two quotes.
    fn borrowed(s: &'a str) -> Self {
        StrContent { head: Head::from_str(s), json_len: s.len() as u64 + 2, text: Some(s), raw: None }
    }

    /// A string unescaped into a copy.
    fn unescaped(s: &str) -> Self {
        StrContent { head: Head::from_str(s), json_len: json_len(s), text: None, raw: None }
    }
}

/// The length of `s` written as a JSON string the way Claude Code writes it
/// (JavaScript's `JSON.stringify`: `\"`, `\\`, the short escapes of control characters,
/// `\u00XX` for the others; everything else as it is), quotes included.
pub fn json_len(s: &str) -> u64 {
    let escapes: u64 = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 8 | 9 | 10 | 12 | 13 => 1,
            0..=31 => 5,
            _ => 0,
        })
        .sum();
    s.len() as u64 + escapes + 2
}

/// One content block; the big fields (text, input, content) are not parsed, only
/// borrowed raw ([`Raw`]).
#[derive(Debug, Default, Deserialize)]
pub struct Block<'a> {
    /// `text`, `thinking`, `tool_use`, `tool_result`, `image`, …
    #[serde(rename = "type", borrow)]
    pub kind: Option<Text<'a>>,
    /// A `tool_use` block's id (`toolu_…`): the identity of the call.
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    /// A `tool_use` block's tool name (`Bash`, `Edit`, `mcp__server__tool`, …).
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    /// A `tool_use` block's input, raw (see [`Block::subagent_type`]).
    #[serde(borrow)]
    pub input: Option<Raw<'a>>,
    /// A `tool_result` block's `tool_use_id`: the call it answers.
    #[serde(borrow)]
    pub tool_use_id: Option<Text<'a>>,
    /// A `tool_result` block's `is_error`.
    #[serde(default)]
    pub is_error: Option<bool>,
    /// A `text` block's text.
    #[serde(borrow)]
    pub text: Option<TextField<'a>>,
    /// A `thinking` block's thinking, raw.
    #[serde(borrow)]
    pub thinking: Option<Bulk<'a>>,
    /// A `tool_result` block's content (a string or blocks), raw.
    #[serde(borrow)]
    pub content: Option<Bulk<'a>>,
    /// An image's or document's `source` (base64 data), raw.
    #[serde(borrow)]
    pub source: Option<Bulk<'a>>,
}

impl<'a> Block<'a> {
    /// The sub-agent a `Task`/`Agent` call starts (`general-purpose`, `Explore`, …),
    /// read from the raw input.
    pub fn subagent_type(&self) -> Option<Text<'a>> {
        let raw = self.input?.0;
        // Only `Task`/`Agent` inputs have one: the others are not parsed again.
        memchr::memmem::find(raw.as_bytes(), b"\"subagent_type\"")?;
        serde_json::from_str::<ToolInput<'a>>(raw).ok()?.subagent_type
    }
}

/// The few tool-input fields that become labels or links (`Task`/`Agent`).
#[derive(Debug, Default, Deserialize)]
struct ToolInput<'a> {
    /// The sub-agent a `Task`/`Agent` call starts (`general-purpose`, `Explore`, …).
    #[serde(borrow)]
    pub subagent_type: Option<Text<'a>>,
}

/// The first [`Head::LEN`] bytes of a string, inline: enough to classify a
/// text (`[Request interrupted`, `API Error: 529`, `Warmup`) without copying it.
///
/// Read from a block's raw JSON, so escapes stay escaped (`\n` is two bytes);
/// the prefixes we test for contain none.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Head {
    buf: [u8; Head::LEN],
    len: u8,
}

impl Default for Head {
    fn default() -> Self {
        Head { buf: [0; Head::LEN], len: 0 }
    }
}

impl Head {
    /// How many bytes are kept (cut back to a character boundary).
    pub const LEN: usize = 48;

    fn from_str(s: &str) -> Self {
        let mut end = s.len().min(Self::LEN);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut h = Head::default();
        h.buf[..end].copy_from_slice(&s.as_bytes()[..end]);
        h.len = end as u8;
        h
    }

    /// From the raw JSON of a string value (`"..."`), without unescaping.
    fn from_raw(raw: &str) -> Self {
        let Some(body) = raw.strip_prefix('"') else { return Head::default() };
        let body = if body.len() <= Self::LEN { body.strip_suffix('"').unwrap_or(body) } else { body };
        Head::from_str(body)
    }

    /// The bytes kept, as text (escapes still escaped).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }

    /// Whether the text begins with `prefix` (which must fit in [`Head::LEN`] bytes to match).
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.as_str().starts_with(prefix)
    }
}

impl fmt::Debug for Head {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_tuple("Head").field(&self.as_str()).finish()
    }
}

impl<'de> Deserialize<'de> for Head {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        Ok(Head::from_raw(raw.get()))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !RAW_STRINGS.get() {
            return d.deserialize_any(ContentVisitor(std::marker::PhantomData));
        }
        // Raw first: a string (a typed or pasted prompt, possibly megabytes of
        // escaped text) is not unescaped into a copy; only its head is kept.
        let raw = <&'de RawValue>::deserialize(d)?.get();
        if raw.starts_with('"') {
            let mut head = String::new();
            // The length as Claude Code writes it, as for a short line ([`json_len`]).
            let mut len = 2;
            unescape(raw, &mut |piece| {
                len += json_len(piece) - 2;
                if head.len() < Head::LEN {
                    let mut end = (Head::LEN - head.len()).min(piece.len());
                    while !piece.is_char_boundary(end) {
                        end += 1;
                    }
                    head.push_str(&piece[..end]);
                }
            })
            .ok_or_else(|| de::Error::custom("invalid escape in string"))?;
            let body = &raw[1..raw.len() - 1];
            return Ok(Content::Text(Box::new(StrContent {
                head: Head::from_str(&head),
                json_len: len,
                text: memchr::memchr(b'\\', body.as_bytes()).is_none().then_some(body),
                raw: Some(raw),
            })));
        }
        let mut inner = serde_json::Deserializer::from_str(raw);
        inner.deserialize_any(ContentVisitor(std::marker::PhantomData)).map_err(de::Error::custom)
    }
}

struct ContentVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ContentVisitor<'a> {
    type Value = Content<'a>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or a list of content blocks")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Content<'a>, E> {
        Ok(Content::Text(Box::new(StrContent::borrowed(s))))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Content<'a>, E> {
        Ok(Content::Text(Box::new(StrContent::unescaped(s))))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Content<'a>, E> {
        Ok(Content::None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content<'a>, A::Error> {
        let mut blocks = Vec::new();
        while let Some(b) = seq.next_element::<Block<'a>>()? {
            blocks.push(b);
        }
        Ok(Content::Blocks(blocks))
    }
}

/// Hand on the text of the raw JSON string `raw` (quotes included),
/// unescaped, in pieces, without copying it. `None` where `serde_json` would
/// refuse it as a string: a bad escape or a lone surrogate.
pub fn unescape(raw: &str, out: &mut dyn FnMut(&str)) -> Option<()> {
    let body = raw.trim().strip_prefix('"')?.strip_suffix('"')?;
    let b = body.as_bytes();
    let (mut i, mut run) = (0, 0);
    while let Some(at) = memchr::memchr(b'\\', &b[i..]).map(|k| k + i) {
        out(&body[run..at]);
        let esc = *b.get(at + 1)?;
        i = at + 2;
        let mut utf8 = [0u8; 4];
        let piece: &str = match esc {
            b'"' => "\"",
            b'\\' => "\\",
            b'/' => "/",
            b'b' => "\u{8}",
            b'f' => "\u{c}",
            b'n' => "\n",
            b'r' => "\r",
            b't' => "\t",
            b'u' => {
                let hi = hex4(b.get(i..i + 4)?)?;
                i += 4;
                let c = match hi {
                    0xD800..=0xDBFF => {
                        if b.get(i..i + 2) != Some(b"\\u") {
                            return None;
                        }
                        let lo = hex4(b.get(i + 2..i + 6)?)?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return None;
                        }
                        i += 6;
                        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => char::from_u32(hi)?,
                };
                c.encode_utf8(&mut utf8)
            }
            _ => return None,
        };
        out(piece);
        run = i;
    }
    out(&body[run..]);
    Some(())
}

fn hex4(h: &[u8]) -> Option<u32> {
    h.iter().try_fold(0u32, |n, c| Some(n * 16 + char::from(*c).to_digit(16)?))
}

#[cfg(test)]
mod tests;
