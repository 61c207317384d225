//! The wire format: a serde mirror of one transcript line.
//!
//! In: the bytes of one complete JSONL line. Out: a [`Line`] that borrows ids and
//! timestamps from those bytes and parses no large field (message text, tool inputs
//! and outputs, images, thinking): each is passed over and borrowed as its raw JSON
//! ([`Raw`], [`Bulk`], [`TextField`]), never copied. Unknown line types and unknown
//! fields are tolerated: they are what newer Claude Code versions add. Nothing here
//! interprets the data; [`entry`] turns a `Line` into our own vocabulary.
//!
//! Submodules: `content` (what is borrowed raw, and `message.content`), [`entry`] (a
//! line's facts), [`identity`] (the keys facts count by), and `patch` (what an edit's
//! `toolUseResult` says: [`PatchStats`]). Whole tool inputs are read later, by the
//! engine ([`crate::engine::capture`]).

mod content;
pub mod entry;
pub mod identity;
pub mod json;
mod patch;

pub use content::{Block, Bulk, Content, Head, Raw, StrContent, TextField, json_len, unescape};
pub use patch::PatchStats;

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

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
/// one (all real lines) is parsed as `str` by [`json`], which accepts what
/// `serde_json` accepts but passes over string bodies 16 bytes at a time (with
/// it, `scan` of 23 MB went from 277 M to 229 M instructions); an invalid one,
/// or one over `LONG_LINE`, is parsed as bytes by `serde_json`.
pub fn parse_line(bytes: &[u8]) -> Result<Line<'_>, ParseError> {
    let valid = simdutf8::basic::from_utf8(bytes);
    if bytes.len() <= LONG_LINE
        && let Ok(s) = valid
    {
        return json::from_str(s).map_err(|e| ParseError::Json { column: e.column() });
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
    pub(super) static RAW_STRINGS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set while a line that is not valid UTF-8 is parsed: its [`Raw`] fields are
    /// skipped unread, so invalid bytes in content we do not interpret do not fail it.
    pub(super) static NOT_UTF8: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
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
    use memchr::memmem::{Finder, FinderRev};
    use std::sync::LazyLock;
    // Built once: building a searcher cost more than the search (every line comes here).
    static PAT: LazyLock<Finder> = LazyLock::new(|| Finder::new(b"\"type\":\"progress\""));
    static SESSION: LazyLock<Finder> = LazyLock::new(|| Finder::new(b"\"sessionId\":\""));
    static TIMESTAMP: LazyLock<FinderRev> = LazyLock::new(|| FinderRev::new(b"\"timestamp\":\""));
    if line.first() != Some(&b'{') || line.last() != Some(&b'}') {
        return None;
    }
    // Only the bytes before the second `{` (the first value that is an object)
    // can hold the top-level field; a match there has no `{` before it.
    let window = &line[..line.len().min(1024)];
    let window = &window[..memchr::memchr(b'{', &window[1..]).map_or(window.len(), |k| k + 1)];
    let at = PAT.find(window)?;
    let head = &line[..at];
    // The top-level timestamp follows `data`: the last one in the line's tail.
    let tail = &line[line.len().saturating_sub(512)..];
    Some(ProgressHead {
        session_id: string_after(head, SESSION.find(head)?, 13),
        timestamp: TIMESTAMP.rfind(tail).and_then(|i| string_after(tail, i, 13)),
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

#[cfg(test)]
mod tests;
