//! The wire format: a serde mirror of one transcript line.
//!
//! In: the bytes of one complete JSONL line. Out: a [`Line`] that borrows ids and
//! timestamps from those bytes and skips every large field (message text, tool
//! inputs and outputs, images, thinking) without copying it. Unknown line types
//! and unknown fields are tolerated: they are what newer Claude Code versions add.
//! Nothing here interprets the data; [`entry`] turns a `Line` into our own vocabulary.
//!
//! Submodules: [`entry`] (a line's facts), [`capture`] (bounded tool-input
//! views), [`tool`] (tool categories), [`identity`] (the keys facts count by).

pub mod capture;
pub mod entry;
pub mod identity;
pub mod tool;

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Why a line could not be read as a transcript record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// The bytes are not one JSON object of the expected shape (or a field we
    /// read is not valid UTF-8).
    #[error("line is not a transcript JSON object (column {column})")]
    Json { column: usize },
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
/// not looked at (validating every byte of tool output would cost a tenth of
/// the parse time for nothing we use).
pub fn parse_line(bytes: &[u8]) -> Result<Line<'_>, ParseError> {
    if bytes.len() <= LONG_LINE {
        return serde_json::from_slice(bytes).map_err(|e| ParseError::Json { column: e.column() });
    }
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            RAW_STRINGS.set(false);
        }
    }
    RAW_STRINGS.set(true);
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
}

/// What `progress` lines need from us: the session and the time, for activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressHead<'a> {
    pub session_id: Option<&'a str>,
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
    #[serde(rename = "type", borrow)]
    pub kind: Option<Text<'a>>,
    #[serde(borrow)]
    pub subtype: Option<Text<'a>>,
    #[serde(borrow)]
    pub session_id: Option<Text<'a>>,
    /// The line's own id: the identity of a prompt, a compaction or an API error.
    #[serde(borrow)]
    pub uuid: Option<Text<'a>>,
    #[serde(borrow)]
    pub timestamp: Option<Text<'a>>,
    #[serde(borrow)]
    pub cwd: Option<Text<'a>>,
    #[serde(borrow)]
    pub git_branch: Option<Text<'a>>,
    #[serde(default)]
    pub is_sidechain: bool,
    #[serde(default)]
    pub is_meta: bool,
    #[serde(default)]
    pub is_compact_summary: bool,
    #[serde(default)]
    pub is_api_error_message: bool,
    #[serde(borrow)]
    pub request_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub message: Option<Message<'a>>,
    /// Tool output as Claude Code saw it; only the edit statistics are kept.
    pub tool_use_result: Option<PatchStats>,
    pub compact_metadata: Option<CompactMetadata<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Message<'a> {
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    #[serde(borrow)]
    pub model: Option<Text<'a>>,
    pub usage: Option<Usage<'a>>,
    #[serde(borrow)]
    pub stop_reason: Option<Text<'a>>,
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
    #[serde(default, deserialize_with = "prompt_count")]
    pub input_tokens: u64,
    #[serde(default, deserialize_with = "output_count")]
    pub output_tokens: u64,
    #[serde(default, deserialize_with = "prompt_count")]
    pub cache_creation_input_tokens: u64,
    #[serde(default, deserialize_with = "prompt_count")]
    pub cache_read_input_tokens: u64,
    pub cache_creation: Option<CacheCreation>,
    #[serde(borrow)]
    pub speed: Option<Text<'a>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct CacheCreation {
    #[serde(default, deserialize_with = "prompt_count")]
    pub ephemeral_5m_input_tokens: u64,
    #[serde(default, deserialize_with = "prompt_count")]
    pub ephemeral_1h_input_tokens: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactMetadata<'a> {
    #[serde(borrow)]
    pub trigger: Option<Text<'a>>,
    /// Context sizes, bounded like a prompt ([`MAX_PROMPT_TOKENS`]).
    #[serde(default, deserialize_with = "optional_prompt_count")]
    pub pre_tokens: Option<u64>,
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
    #[default]
    None,
    /// The first characters of a string content, enough to classify it.
    Text(Head),
    Blocks(Vec<Block<'a>>),
}

/// One content block; the big fields (text, input, content) are skipped.
#[derive(Debug, Default, Deserialize)]
pub struct Block<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Option<Text<'a>>,
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    #[serde(borrow)]
    pub input: Option<ToolInput<'a>>,
    #[serde(borrow)]
    pub tool_use_id: Option<Text<'a>>,
    #[serde(default)]
    pub is_error: Option<bool>,
    pub text: Option<Head>,
}

/// The few tool-input fields that become labels or links (`Task`/`Agent`).
#[derive(Debug, Default, Deserialize)]
pub struct ToolInput<'a> {
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

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }

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
            unescape(raw, &mut |piece| {
                if head.len() < Head::LEN {
                    let mut end = (Head::LEN - head.len()).min(piece.len());
                    while !piece.is_char_boundary(end) {
                        end += 1;
                    }
                    head.push_str(&piece[..end]);
                }
            })
            .ok_or_else(|| de::Error::custom("invalid escape in string"))?;
            return Ok(Content::Text(Head::from_str(&head)));
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
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Content<'a>, E> {
        Ok(Content::Text(Head::from_str(s)))
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

/// Lines added and removed by an edit, read from `toolUseResult`.
///
/// `toolUseResult` is a string for errors and an object whose shape depends on
/// the tool otherwise. We keep only `structuredPatch` line signs and, for a
/// file created by `Write`, the number of lines of its content.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PatchStats {
    pub added: u64,
    pub removed: u64,
    /// `agentId` of a `Task`/`Agent` result: the sub-agent that ran (2.0.x+).
    pub agent_id: Option<Box<str>>,
}

impl<'de> Deserialize<'de> for PatchStats {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ResultVisitor)
    }
}

struct ResultVisitor;

impl<'de> Visitor<'de> for ResultVisitor {
    type Value = PatchStats;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tool result")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<PatchStats, E> {
        Ok(PatchStats::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<PatchStats, E> {
        Ok(PatchStats::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<PatchStats, E> {
        Ok(PatchStats::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<PatchStats, E> {
        Ok(PatchStats::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<PatchStats, E> {
        Ok(PatchStats::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<PatchStats, E> {
        Ok(PatchStats::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PatchStats, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(PatchStats::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PatchStats, A::Error> {
        let mut stats = PatchStats::default();
        let mut created_lines = None;
        let mut is_create = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "structuredPatch" => {
                    let hunks: Option<Vec<Hunk>> = map.next_value()?;
                    for h in hunks.unwrap_or_default() {
                        stats.added += h.added;
                        stats.removed += h.removed;
                    }
                }
                "type" => is_create = map.next_value::<&RawValue>()?.get() == "\"create\"",
                "content" => created_lines = Some(map.next_value::<LineCount>()?.0),
                "agentId" => stats.agent_id = map.next_value::<Option<Cow<'de, str>>>()?.map(Into::into),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // A new file has an empty patch; its whole content is added lines.
        if is_create && stats.added == 0 {
            stats.added = created_lines.unwrap_or(0);
        }
        Ok(stats)
    }
}

/// One `structuredPatch` hunk: counts `+` and `-` lines.
struct Hunk {
    added: u64,
    removed: u64,
}

impl<'de> Deserialize<'de> for Hunk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Hunk;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a patch hunk")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Hunk, A::Error> {
                let mut h = Hunk { added: 0, removed: 0 };
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "lines" {
                        let lines: Vec<Sign> = map.next_value()?;
                        for s in lines {
                            match s {
                                Sign::Added => h.added += 1,
                                Sign::Removed => h.removed += 1,
                                Sign::Other => {}
                            }
                        }
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

enum Sign {
    Added,
    Removed,
    Other,
}

impl<'de> Deserialize<'de> for Sign {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Raw, so the rest of the (possibly long, escaped) line is not copied.
        let raw = <&'de RawValue>::deserialize(d)?;
        Ok(match raw.get().as_bytes().get(..2) {
            Some(b"\"+") => Sign::Added,
            Some(b"\"-") => Sign::Removed,
            _ => Sign::Other,
        })
    }
}

/// Number of lines in a string value (a last line without `\n` counts),
/// counted on its raw JSON text: each `\n` escape is one line break.
struct LineCount(u64);

impl<'de> Deserialize<'de> for LineCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?.get();
        let Some(body) = raw.strip_prefix('"').and_then(|b| b.strip_suffix('"')) else { return Ok(LineCount(0)) };
        let (mut n, mut i, b) = (0u64, 0usize, body.as_bytes());
        let mut ends_with_newline = false;
        while let Some(j) = memchr::memchr(b'\\', &b[i..]) {
            let at = i + j;
            ends_with_newline = false;
            if b.get(at + 1) == Some(&b'n') {
                n += 1;
                ends_with_newline = at + 2 == b.len();
            }
            i = at + 2;
            if i >= b.len() {
                break;
            }
        }
        Ok(LineCount(n + u64::from(!body.is_empty() && !ends_with_newline)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assistant_line_borrows_ids_and_skips_content() {
        let l = br#"{"type":"assistant","sessionId":"s1","requestId":"req_1","timestamp":"2025-01-01T00:00:00.000Z","message":{"id":"msg_1","model":"claude-opus-4-6","content":[{"type":"text","text":"hello"},{"type":"tool_use","id":"toolu_1","name":"Task","input":{"subagent_type":"Plan","prompt":"x"}}],"usage":{"input_tokens":3,"output_tokens":5,"cache_creation_input_tokens":7,"cache_read_input_tokens":11,"cache_creation":{"ephemeral_5m_input_tokens":2,"ephemeral_1h_input_tokens":5}}}}"#;
        let line = parse_line(l).unwrap();
        assert!(line.is_known_type());
        let m = line.message.unwrap();
        assert!(matches!(m.id, Some(Text(Cow::Borrowed("msg_1")))));
        let u = m.usage.unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens),
            (3, 5, 7, 11)
        );
        assert_eq!(u.cache_creation.unwrap().ephemeral_1h_input_tokens, 5);
        let Content::Blocks(b) = m.content else { panic!("blocks") };
        assert_eq!(b[1].name.as_deref(), Some("Task"));
        assert_eq!(b[1].input.as_ref().unwrap().subagent_type.as_deref(), Some("Plan"));
    }

    #[test]
    fn usage_out_of_range_fails_the_line() {
        let line = |usage: &str| format!(r#"{{"type":"assistant","message":{{"id":"m","usage":{{{usage}}}}}}}"#);
        for bad in [
            r#""input_tokens":9223372036854775808"#,
            r#""input_tokens":18446744073709551615"#,
            r#""input_tokens":-1"#,
            r#""output_tokens":1.5"#,
            r#""output_tokens":1e3"#,
            r#""cache_read_input_tokens":10000001"#,
            r#""cache_creation_input_tokens":10000001"#,
            r#""output_tokens":1000001"#,
            r#""cache_creation":{"ephemeral_1h_input_tokens":10000001}"#,
            r#""input_tokens":"5""#,
        ] {
            assert!(parse_line(line(bad).as_bytes()).is_err(), "{bad}");
        }
        let at_bounds = line(
            r#""input_tokens":10000000,"output_tokens":1000000,"cache_read_input_tokens":10000000,"cache_creation_input_tokens":10000000"#,
        );
        let u = parse_line(at_bounds.as_bytes()).unwrap().message.unwrap().usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens, u.cache_read_input_tokens), (10_000_000, 1_000_000, 10_000_000));
        let compact = |n: &str| {
            format!(r#"{{"type":"system","subtype":"compact_boundary","compactMetadata":{{"preTokens":{n}}}}}"#)
        };
        assert!(parse_line(compact("9223372036854775808").as_bytes()).is_err());
        assert_eq!(
            parse_line(compact("167094").as_bytes()).unwrap().compact_metadata.unwrap().pre_tokens,
            Some(167_094)
        );
    }

    #[test]
    fn edit_result_counts_patch_lines_and_created_files() {
        let edit = br#"{"type":"user","toolUseResult":{"filePath":"a","structuredPatch":[{"oldStart":1,"lines":[" a","-b","+c","+d"]}]}}"#;
        let s = parse_line(edit).unwrap().tool_use_result.unwrap();
        assert_eq!(s, PatchStats { added: 2, removed: 1, agent_id: None });
        let create = br#"{"type":"user","toolUseResult":{"type":"create","filePath":"a","content":"x\ny\nz","structuredPatch":[]}}"#;
        assert_eq!(parse_line(create).unwrap().tool_use_result.unwrap().added, 3);
        let create = br#"{"type":"user","toolUseResult":{"type":"create","content":"a\\nb\n","structuredPatch":[]}}"#;
        assert_eq!(
            parse_line(create).unwrap().tool_use_result.unwrap().added,
            1,
            "an escaped backslash before n is not a newline"
        );
        let err = br#"{"type":"user","toolUseResult":"Error: nope"}"#;
        assert_eq!(parse_line(err).unwrap().tool_use_result.unwrap(), PatchStats::default());
    }

    #[test]
    fn bad_lines_fail_alone() {
        assert!(matches!(parse_line(b"{\"type\":\"user\""), Err(ParseError::Json { .. })));
        assert!(matches!(parse_line(b"{\"type\":\"us\xffer\"}"), Err(ParseError::Json { .. })));
        assert!(matches!(parse_line(b"\x00\x01\x02\xfe\xff"), Err(ParseError::Json { .. })));
        assert!(matches!(parse_line(b"[1,2]"), Err(ParseError::Json { .. })));
        let unknown = parse_line(br#"{"type":"brand-new","x":1}"#).unwrap();
        assert!(!unknown.is_known_type());
    }

    #[test]
    fn progress_lines_are_recognised_without_parsing_data() {
        let l = br#"{"parentUuid":"p","isSidechain":false,"cwd":"/w","sessionId":"s-1","type":"progress","data":{"type":"agent_progress","message":{"type":"assistant","timestamp":"2020-01-01T00:00:00Z","message":{"usage":{"input_tokens":5}}}},"uuid":"u","timestamp":"2026-02-12T20:30:28.504Z"}"#;
        let h = progress_head(l).unwrap();
        assert_eq!(h, ProgressHead { session_id: Some("s-1"), timestamp: Some("2026-02-12T20:30:28.504Z") });
        // A nested object before the type: not trusted, parsed fully instead.
        assert!(progress_head(br#"{"data":{"x":1},"type":"progress","sessionId":"s"}"#).is_none());
        // The pattern inside a string is escaped and does not match.
        assert!(progress_head(br#"{"type":"user","text":""type":"progress""}"#).is_none());
        assert!(progress_head(br#"{"type":"assistant"}"#).is_none());
    }

    #[test]
    fn long_lines_read_string_content_raw_with_the_same_result() {
        let pad = "p".repeat(LONG_LINE);
        for content in [
            r#""h\u00e9llo \"w\u00f6rld\"\n\t\ud83d\ude00 \/ \\ end of a long enough head, and then some more""#,
            r#""Warmup""#,
            r#""""#,
            r#""\u003clocal-command-stdout>x""#,
            r#"null"#,
            r#"[{"type":"text","text":"a"}]"#,
        ] {
            let short = format!(r#"{{"type":"user","message":{{"content":{content}}}}}"#);
            let long = format!(r#"{{"type":"user","pad":"{pad}","message":{{"content":{content}}}}}"#);
            let (a, b) = (parse_line(short.as_bytes()).unwrap(), parse_line(long.as_bytes()).unwrap());
            assert_eq!(format!("{:?}", a.message), format!("{:?}", b.message), "{content}");
        }
        for bad in [r#""lone \ud800""#, r#""bad \x""#, "7"] {
            let short = format!(r#"{{"type":"user","message":{{"content":{bad}}}}}"#);
            let long = format!(r#"{{"type":"user","pad":"{pad}","message":{{"content":{bad}}}}}"#);
            assert!(parse_line(short.as_bytes()).is_err() && parse_line(long.as_bytes()).is_err(), "{bad}");
        }
        assert!(!RAW_STRINGS.get(), "reset after a long line");
    }

    #[test]
    fn string_content_keeps_only_its_head() {
        let long = format!(r#"{{"type":"user","message":{{"role":"user","content":"{}"}}}}"#, "é".repeat(100));
        let line = parse_line(long.as_bytes()).unwrap();
        let Content::Text(h) = line.message.unwrap().content else { panic!("text") };
        assert!(h.as_str().len() <= Head::LEN && h.starts_with("é"));
        let block = parse_line(br#"{"type":"user","message":{"content":[{"type":"text","text":"Warmup"}]}}"#).unwrap();
        let Content::Blocks(b) = block.message.unwrap().content else { panic!("blocks") };
        assert_eq!(b[0].text.unwrap().as_str(), "Warmup");
    }
}
