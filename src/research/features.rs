//! What research needs from one line beyond the metric facts ([`Entry`]): the sizes of
//! what it adds to the context, by source; per tool call and result, sizes, hashes and
//! salient tokens; the features of a typed prompt.
//!
//! In: one transcript line (valid UTF-8 JSON) and its [`Entry`]. Out: [`LineFeatures`].
//! No text is kept: sizes are bytes of the line's JSON text (escapes included), and what
//! could identify content is hashed ([`TokenSet`], input and path hashes). Prompt
//! features are counts and flags.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::tokens::TokenSet;

mod text;
use crate::transcript::entry::{Entry, Kind};
use crate::transcript::identity::fnv1a;
use crate::transcript::{Text, unescape};
use text::prompt_features;
pub use text::{is_correction, is_test_command, says_fail, says_pass, test_marks};

/// Where context comes from (the parts of a composition, see [`super::tracker`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A tool's result (`tool_result` blocks), attributed to its tool.
    ToolResult,
    /// What the person typed (user text that is not meta and not a summary).
    UserText,
    /// The model's own output: text, thinking and tool calls, read back at the next call.
    AssistantOutput,
    /// `attachment` lines: hook output, reminders, skill and tool listings.
    Attachment,
    /// Harness-injected user text (`isMeta`: command output, caveats, skill bodies) and
    /// a compaction's summary.
    Meta,
}

/// A tool call's features.
#[derive(Debug, Clone, PartialEq)]
pub struct UseFeatures {
    /// The call's id (`toolu_…`).
    pub id: Box<str>,
    /// The tool's name.
    pub name: Box<str>,
    /// Size of its input's JSON.
    pub input_bytes: u64,
    /// Hash of its input's JSON: equal calls have equal hashes.
    pub input_hash: u64,
    /// Hash of the file it reads or writes (`file_path`, `notebook_path`, `path`).
    pub path_hash: Option<u64>,
    /// A `Bash` command that runs tests (see [`is_test_command`]).
    pub test_command: bool,
    /// Salient tokens of its input.
    pub tokens: TokenSet,
}

/// A tool result's features.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultFeatures {
    /// The call it answers.
    pub tool_use_id: Box<str>,
    /// Size of its content's JSON.
    pub bytes: u64,
    /// `is_error: true`.
    pub is_error: bool,
    /// Salient tokens of its content.
    pub tokens: TokenSet,
    /// Its text reports tests passing (see [`says_pass`]; read only for a test call,
    /// see [`LineFeatures::read_for`]).
    pub says_pass: bool,
    /// Its text reports tests failing (see [`says_fail`]; likewise).
    pub says_fail: bool,
}

/// Features of a prompt's text (the rules are in `docs/research.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PromptFeatures {
    /// Characters.
    pub chars: u64,
    /// Lines.
    pub lines: u64,
    /// Words (runs of non-whitespace).
    pub words: u64,
    /// A slash command (`/review …`, or Claude Code's `<command-name>` echo).
    pub slash_command: bool,
    /// File mentions: `@path` words and paths (as [`super::tokens`] finds them).
    pub file_mentions: u64,
    /// A question: ends with `?`, or starts with a question word.
    pub question: bool,
    /// Pasted error output: an error line ([`super::tokens`]'s rule) or a stack frame.
    pub pasted_error: bool,
    /// A fenced code block (```).
    pub code_block: bool,
    /// It corrects the turn before (see [`is_correction`]).
    pub correction: bool,
}

/// What research reads from one line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineFeatures {
    /// Bytes the line adds to the context, by source (tool results are in `tool_results`).
    pub added: Vec<(Source, u64)>,
    /// Its tool calls.
    pub tool_uses: Vec<UseFeatures>,
    /// Its tool results.
    pub tool_results: Vec<ResultFeatures>,
    /// Salient tokens of its assistant text (not thinking: the reply the person sees).
    pub reply: TokenSet,
    /// Its text as a prompt (user lines with text; a consumer checks [`Entry::prompt`]).
    pub prompt: Option<PromptFeatures>,
    /// The Claude Code version written on a compaction boundary.
    pub version: Option<Box<str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(default)]
    is_meta: bool,
    #[serde(default)]
    is_compact_summary: bool,
    #[serde(borrow)]
    message: Option<Message<'a>>,
    #[serde(borrow)]
    attachment: Option<&'a RawValue>,
    #[serde(borrow)]
    version: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    content: Content<'a>,
}

/// `message.content`, read in one pass: a string, or blocks.
#[derive(Default)]
enum Content<'a> {
    #[default]
    None,
    Text(Str<'a>),
    Blocks(Vec<Block<'a>>),
}

/// A JSON string as text, and its length as JSON text.
struct Str<'a> {
    text: std::borrow::Cow<'a, str>,
    json_len: u64,
}

/// The length of `s` written as a JSON string the way Claude Code writes it
/// (JavaScript's `JSON.stringify`: `\"`, `\\`, the short escapes of control characters,
/// `\u00XX` for the others; everything else as it is), quotes included.
fn json_len(s: &str) -> u64 {
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

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Str<'a>, E> {
                Ok(Str { json_len: s.len() as u64 + 2, text: std::borrow::Cow::Borrowed(s) })
            }
            fn visit_str<E>(self, s: &str) -> Result<Str<'a>, E> {
                Ok(Str { json_len: json_len(s), text: std::borrow::Cow::Owned(s.to_owned()) })
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess};
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Content<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of blocks")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Content<'a>, E> {
                Ok(Content::Text(Str { json_len: s.len() as u64 + 2, text: std::borrow::Cow::Borrowed(s) }))
            }
            fn visit_str<E>(self, s: &str) -> Result<Content<'a>, E> {
                Ok(Content::Text(Str { json_len: json_len(s), text: std::borrow::Cow::Owned(s.to_owned()) }))
            }
            fn visit_unit<E>(self) -> Result<Content<'a>, E> {
                Ok(Content::None)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content<'a>, A::Error> {
                let mut blocks = Vec::new();
                while let Some(b) = seq.next_element::<Block<'a>>()? {
                    blocks.push(b);
                }
                Ok(Content::Blocks(blocks))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Content<'a>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Content::None)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    thinking: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    name: Option<Text<'a>>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    #[serde(borrow)]
    tool_use_id: Option<Text<'a>>,
    #[serde(default)]
    is_error: Option<bool>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Input<'a> {
    #[serde(borrow)]
    command: Option<Text<'a>>,
    #[serde(borrow)]
    file_path: Option<Text<'a>>,
    #[serde(borrow)]
    notebook_path: Option<Text<'a>>,
    #[serde(borrow)]
    path: Option<Text<'a>>,
}

impl LineFeatures {
    /// The features of `line`, whose facts are `entry`. Lines that add nothing to a
    /// context (progress, system, summaries, unreadable ones) give the empty value.
    pub fn read(line: &str, entry: &Entry) -> LineFeatures {
        LineFeatures::read_for(line, entry, &|_| true)
    }

    /// [`LineFeatures::read`], reading a tool result for test markers ([`test_marks`])
    /// only when `test_call` says its call ran tests (the others get `false`, `false`):
    /// what a [`ContextTracker`](super::ContextTracker) knows with
    /// [`is_test_call`](super::ContextTracker::is_test_call).
    pub fn read_for(line: &str, entry: &Entry, test_call: &dyn Fn(&str) -> bool) -> LineFeatures {
        let mut f = LineFeatures::default();
        if entry.kind == Kind::Progress || (entry.kind == Kind::System && entry.compaction.is_none()) {
            return f;
        }
        let Ok(l) = serde_json::from_str::<Line<'_>>(line) else { return f };
        if entry.compaction.is_some() {
            f.version = l.version.as_deref().map(Into::into);
            return f;
        }
        match l.kind.as_deref() {
            Some("attachment") => {
                if let Some(a) = l.attachment {
                    f.added.push((Source::Attachment, a.get().len() as u64));
                }
            }
            Some("user") => f.read_user(&l, test_call),
            Some("assistant") => f.read_assistant(&l),
            _ => {}
        }
        f
    }

    /// Bytes added by `source` (tool results not included).
    pub fn added(&self, source: Source) -> u64 {
        self.added.iter().filter(|(s, _)| *s == source).map(|(_, n)| n).sum()
    }

    fn add(&mut self, source: Source, bytes: u64) {
        if bytes == 0 {
            return;
        }
        match self.added.iter_mut().find(|(s, _)| *s == source) {
            Some((_, n)) => *n += bytes,
            None => self.added.push((source, bytes)),
        }
    }

    fn read_user(&mut self, l: &Line<'_>, test_call: &dyn Fn(&str) -> bool) {
        let Some(m) = l.message.as_ref() else { return };
        let text_source = if l.is_meta || l.is_compact_summary { Source::Meta } else { Source::UserText };
        let blocks = match &m.content {
            Content::None => return,
            Content::Text(t) => {
                self.add(text_source, t.json_len);
                if text_source == Source::UserText {
                    self.prompt = prompt_features(&[&t.text]);
                }
                return;
            }
            Content::Blocks(b) => b,
        };
        let mut texts: Vec<&str> = Vec::new();
        for b in blocks {
            match b.kind.as_deref() {
                Some("tool_result") => {
                    let Some(id) = &b.tool_use_id else { continue };
                    let content = b.content.map_or("", |c| c.get());
                    let mut text = String::new();
                    each_text(content, &mut |piece| text.push_str(piece));
                    let (says_pass, says_fail) = if test_call(id) { test_marks(&text) } else { (false, false) };
                    self.tool_results.push(ResultFeatures {
                        tool_use_id: (**id).into(),
                        bytes: content.len() as u64,
                        is_error: b.is_error.unwrap_or(false),
                        tokens: TokenSet::of_ends(&text),
                        says_pass,
                        says_fail,
                    });
                }
                Some("text") => {
                    if let Some(t) = &b.text {
                        self.add(text_source, t.json_len);
                        texts.push(&t.text);
                    }
                }
                _ => {
                    // Images and documents: their JSON (base64) stands for their size.
                    let n = [b.content, b.input, b.source].iter().flatten().map(|r| r.get().len() as u64).sum::<u64>();
                    self.add(text_source, n + b.text.as_ref().map_or(0, |t| t.json_len));
                }
            }
        }
        if text_source == Source::UserText && self.tool_results.is_empty() && !texts.is_empty() {
            self.prompt = prompt_features(&texts);
        }
    }

    fn read_assistant(&mut self, l: &Line<'_>) {
        let Some(m) = l.message.as_ref() else { return };
        let blocks = match &m.content {
            Content::None => return,
            Content::Text(t) => {
                self.add(Source::AssistantOutput, t.json_len);
                self.reply = TokenSet::of(&t.text);
                return;
            }
            Content::Blocks(b) => b,
        };
        let mut reply = String::new();
        for b in blocks {
            let n = [b.thinking, b.input].iter().flatten().map(|r| r.get().len() as u64).sum::<u64>();
            self.add(Source::AssistantOutput, n + b.text.as_ref().map_or(0, |t| t.json_len));
            match b.kind.as_deref() {
                Some("text") => {
                    if let Some(t) = &b.text {
                        if !reply.is_empty() {
                            reply.push('\n');
                        }
                        reply.push_str(&t.text);
                    }
                }
                Some("tool_use") => {
                    let (Some(id), Some(name)) = (&b.id, &b.name) else { continue };
                    let input = b.input.map_or("{}", |i| i.get());
                    self.tool_uses.push(use_features(id, name, input));
                }
                _ => {}
            }
        }
        self.reply = TokenSet::of(&reply);
    }
}

fn use_features(id: &str, name: &str, input: &str) -> UseFeatures {
    let fields = serde_json::from_str::<Input<'_>>(input).ok();
    let path = fields.as_ref().and_then(|f| f.file_path.as_ref().or(f.notebook_path.as_ref()).or(f.path.as_ref()));
    let command = fields.as_ref().and_then(|f| f.command.as_deref());
    // The input's strings, unescaped: the command, the path, the pattern, the new text.
    let mut text = String::new();
    each_string(input, &mut |s| {
        text.push_str(s);
        text.push('\n');
    });
    UseFeatures {
        id: id.into(),
        name: name.into(),
        input_bytes: input.len() as u64,
        input_hash: fnv1a(&[name.as_bytes(), b"\0", input.as_bytes()]),
        path_hash: path.map(|p| fnv1a(&[p.as_bytes()])),
        test_command: name == "Bash" && command.is_some_and(is_test_command),
        tokens: TokenSet::of_ends(&text),
    }
}

/// Hand on the text of a tool result's raw `content`: a string, or the `text` of its
/// blocks (one per line).
fn each_text(raw: &str, out: &mut dyn FnMut(&str)) {
    if raw.starts_with('"') {
        unescape(raw, out);
        return;
    }
    if let Ok(blocks) = serde_json::from_str::<Vec<Block<'_>>>(raw) {
        for b in blocks {
            if let Some(t) = b.text {
                out(&t.text);
                out("\n");
            }
        }
    }
}

/// Hand on every string value in a raw JSON value, unescaped (keys are skipped), as the
/// parser reads them: no tree is built.
fn each_string(raw: &str, out: &mut dyn FnMut(&str)) {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    struct Strings<'f>(&'f mut dyn FnMut(&str));
    impl<'de> DeserializeSeed<'de> for Strings<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Strings<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E>(self, s: &str) -> Result<(), E> {
            (self.0)(s);
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Strings(&mut *self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_key::<IgnoredAny>()?.is_some() {
                map.next_value_seed(Strings(&mut *self.0))?;
            }
            Ok(())
        }
    }
    let mut d = serde_json::Deserializer::from_str(raw);
    let _ = Strings(out).deserialize(&mut d);
}

#[cfg(test)]
mod tests;
