//! What is borrowed raw from a line, and `message.content`: the types that pass over
//! large values without parsing them ([`Raw`], [`Bulk`], [`TextField`]), a content
//! ([`Content`], [`StrContent`], [`Block`], [`Head`]), and the JSON string helpers
//! ([`unescape`], [`json_len`]).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{NOT_UTF8, RAW_STRINGS, Text};

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
/// images, attachments: [`super::entry::ContextBytes`]); research reads its text.
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
