//! What research needs from one line beyond the metric facts ([`Entry`]): the sizes of
//! what it adds to the context, by source; per tool call and result, sizes, hashes and
//! salient tokens; the features of a typed prompt.
//!
//! In: one transcript line (valid UTF-8 JSON) and its [`Entry`]. Out: [`LineFeatures`].
//! No text is kept: sizes are bytes of the line's JSON text (escapes included), and what
//! could identify content is hashed ([`TokenSet`], input and path hashes). Prompt
//! features are counts and flags.

use std::borrow::Cow;

use serde::Deserialize;

use super::tokens::TokenSet;

mod text;
use crate::transcript::entry::{Entry, Kind};
use crate::transcript::identity::fnv1a;
use crate::transcript::{Block, Content, Line, StrContent, unescape};
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
    /// A typed prompt's text, at most [`PROMPT_TEXT_MAX`] bytes: only when asked for
    /// ([`LineFeatures::keep_prompt_text`], `analyze --include-content`), never by default.
    pub prompt_text: Option<Box<str>>,
}

/// The most bytes of a prompt's text kept with `--include-content` (cut at a character
/// boundary).
pub const PROMPT_TEXT_MAX: usize = 2000;

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
        match crate::transcript::parse_line(line.as_bytes()) {
            Ok(l) => LineFeatures::from_line(&l, line.as_bytes(), entry, test_call),
            Err(_) => LineFeatures::default(),
        }
    }

    /// [`LineFeatures::read_for`] from the line as the facts were parsed from it (one
    /// parse for both: the [`Line`] borrows the raw JSON of what research reads).
    /// `bytes` is the line itself: a string content with escapes is read from it again
    /// when its text is needed (a typed prompt, a reply), since the parse hands on only
    /// its head.
    pub fn from_line(l: &Line<'_>, bytes: &[u8], entry: &Entry, test_call: &dyn Fn(&str) -> bool) -> LineFeatures {
        let mut f = LineFeatures::default();
        if entry.kind == Kind::Progress || (entry.kind == Kind::System && entry.compaction.is_none()) {
            return f;
        }
        if entry.compaction.is_some() {
            f.version = l.version.as_deref().map(Into::into);
            return f;
        }
        // The sizes are the facts' own (one definition for `analyze` and the live state).
        let c = &entry.context_bytes;
        for (source, n) in [
            (Source::UserText, c.user_text),
            (Source::AssistantOutput, c.assistant_output),
            (Source::Attachment, c.attachment),
            (Source::Meta, c.meta),
        ] {
            f.add(source, n);
        }
        match l.kind.as_deref() {
            Some("user") => f.read_user(l, bytes, test_call),
            Some("assistant") => f.read_assistant(l, bytes),
            _ => {}
        }
        f
    }

    /// Keep the text of this line's prompt, if it has one (see [`LineFeatures::prompt_text`]);
    /// `l` and `bytes` as for [`LineFeatures::from_line`].
    pub fn keep_prompt_text(&mut self, l: &Line<'_>, bytes: &[u8]) {
        if self.prompt.is_none() {
            return;
        }
        let Some(m) = l.message.as_ref() else { return };
        let mut text = match &m.content {
            Content::Text(t) => string_content(t, bytes).into_owned(),
            Content::Blocks(blocks) => {
                let mut s = String::new();
                for t in blocks.iter().filter(|b| b.kind.as_deref() == Some("text")).filter_map(|b| b.text) {
                    if !s.is_empty() {
                        s.push('\n');
                    }
                    unescape(t.raw, &mut |piece| s.push_str(piece));
                }
                s
            }
            Content::None => return,
        };
        let mut end = text.len().min(PROMPT_TEXT_MAX);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        self.prompt_text = Some(text.into());
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

    fn read_user(&mut self, l: &Line<'_>, bytes: &[u8], test_call: &dyn Fn(&str) -> bool) {
        let Some(m) = l.message.as_ref() else { return };
        let text_source = if l.is_meta || l.is_compact_summary { Source::Meta } else { Source::UserText };
        let blocks = match &m.content {
            Content::None => return,
            Content::Text(t) => {
                if text_source == Source::UserText {
                    self.prompt = prompt_features(&[&string_content(t, bytes)]);
                }
                return;
            }
            Content::Blocks(b) => b,
        };
        let mut texts: Vec<String> = Vec::new();
        let mut text = String::new();
        for b in blocks {
            match b.kind.as_deref() {
                Some("tool_result") => {
                    let Some(id) = &b.tool_use_id else { continue };
                    let content = b.content.map_or("", |c| c.0);
                    text.clear();
                    each_text(content, &mut |piece| text.push_str(piece));
                    let (says_pass, says_fail) = if test_call(id) { test_marks(&text) } else { (false, false) };
                    self.tool_results.push(ResultFeatures {
                        tool_use_id: (**id).into(),
                        bytes: content.len() as u64, // as the facts' `ToolResult::bytes`
                        is_error: b.is_error.unwrap_or(false),
                        tokens: TokenSet::of_ends(&text),
                        says_pass,
                        says_fail,
                    });
                }
                Some("text") => {
                    if let Some(t) = &b.text
                        && text_source == Source::UserText
                    {
                        let mut s = String::new();
                        unescape(t.raw, &mut |piece| s.push_str(piece));
                        texts.push(s);
                    }
                }
                _ => {}
            }
        }
        if text_source == Source::UserText && self.tool_results.is_empty() && !texts.is_empty() {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            self.prompt = prompt_features(&texts);
        }
    }

    fn read_assistant(&mut self, l: &Line<'_>, bytes: &[u8]) {
        let Some(m) = l.message.as_ref() else { return };
        let blocks = match &m.content {
            Content::None => return,
            Content::Text(t) => {
                self.reply = TokenSet::of(&string_content(t, bytes));
                return;
            }
            Content::Blocks(b) => b,
        };
        let mut reply = String::new();
        for b in blocks {
            match b.kind.as_deref() {
                Some("text") => {
                    if let Some(t) = &b.text {
                        if !reply.is_empty() {
                            reply.push('\n');
                        }
                        unescape(t.raw, &mut |piece| reply.push_str(piece));
                    }
                }
                Some("tool_use") => {
                    let (Some(id), Some(name)) = (&b.id, &b.name) else { continue };
                    let input = b.input.map_or("{}", |i| i.0);
                    self.tool_uses.push(use_features(id, name, input));
                }
                _ => {}
            }
        }
        self.reply = TokenSet::of(&reply);
    }
}

/// The text of a string `message.content`: borrowed when it has no escapes, else
/// unescaped from its raw JSON (long lines) or read again from the line.
fn string_content<'a>(t: &StrContent<'a>, bytes: &'a [u8]) -> Cow<'a, str> {
    if let Some(text) = t.text {
        return Cow::Borrowed(text);
    }
    if let Some(raw) = t.raw {
        let mut s = String::new();
        unescape(raw, &mut |piece| s.push_str(piece));
        return Cow::Owned(s);
    }
    #[derive(Deserialize)]
    struct Only {
        message: Option<OnlyMessage>,
    }
    #[derive(Deserialize)]
    struct OnlyMessage {
        content: Option<String>,
    }
    let again = serde_json::from_slice::<Only>(bytes).ok().and_then(|l| l.message?.content);
    Cow::Owned(again.unwrap_or_default())
}

fn use_features(id: &str, name: &str, input: &str) -> UseFeatures {
    // The input's strings, unescaped (the command, the path, the pattern, the new
    // text), and its top-level `command` and path, in one pass.
    let mut text = String::new();
    let mut fields = InputFields::default();
    each_string(input, &mut fields, &mut |s| {
        text.push_str(s);
        text.push('\n');
    });
    let path = fields.file_path.or(fields.notebook_path).or(fields.path);
    UseFeatures {
        id: id.into(),
        name: name.into(),
        input_bytes: input.len() as u64,
        input_hash: fnv1a(&[name.as_bytes(), b"\0", input.as_bytes()]),
        path_hash: path.map(|p| fnv1a(&[p.as_bytes()])),
        test_command: name == "Bash" && fields.command.as_deref().is_some_and(is_test_command),
        tokens: TokenSet::of_ends(&text),
    }
}

/// The top-level fields of a tool input that research reads.
#[derive(Default)]
struct InputFields {
    command: Option<String>,
    file_path: Option<String>,
    notebook_path: Option<String>,
    path: Option<String>,
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
                unescape(t.raw, out);
                out("\n");
            }
        }
    }
}

/// Hand on every string value in a raw JSON value, unescaped (keys are skipped), as the
/// parser reads them: no tree is built. The top-level string fields of [`InputFields`]
/// are kept as they pass.
fn each_string(raw: &str, fields: &mut InputFields, out: &mut dyn FnMut(&str)) {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    /// `keep`: where the value's string goes too (a top-level field of interest).
    struct Strings<'f, 'k> {
        out: &'f mut dyn FnMut(&str),
        fields: Option<&'k mut InputFields>,
        keep: Option<&'k mut Option<String>>,
    }
    impl<'de> DeserializeSeed<'de> for Strings<'_, '_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Strings<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E>(self, s: &str) -> Result<(), E> {
            (self.out)(s);
            if let Some(k) = self.keep {
                *k = Some(s.to_owned());
            }
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
            while seq.next_element_seed(Strings { out: &mut *self.out, fields: None, keep: None })?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut fields = self.fields;
            while let Some(key) = map.next_key::<crate::transcript::Text<'de>>()? {
                let keep = match (fields.as_deref_mut(), &*key) {
                    (Some(f), "command") => Some(&mut f.command),
                    (Some(f), "file_path") => Some(&mut f.file_path),
                    (Some(f), "notebook_path") => Some(&mut f.notebook_path),
                    (Some(f), "path") => Some(&mut f.path),
                    _ => None,
                };
                map.next_value_seed(Strings { out: &mut *self.out, fields: None, keep })?;
            }
            Ok(())
        }
    }
    let mut d = serde_json::Deserializer::from_str(raw);
    let _ = Strings { out, fields: Some(fields), keep: None }.deserialize(&mut d);
}

#[cfg(test)]
mod tests;
