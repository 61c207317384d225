//! Message content for events and traces, read from a line without copying it.
//!
//! In: one transcript line and a size cap. Out: a [`Captured`]: the typed
//! prompt, tool inputs (as JSON) and tool outputs (as text), each cut to the
//! cap with [`cap_text`]. The result is what parsing the line into a
//! `serde_json::Value` and cutting its pieces gives, but nothing is held whole:
//! the structure is borrowed from the line (`RawValue`), strings are unescaped
//! as they stream by, and JSON is re-serialized (keys sorted, as `Value` does)
//! into a writer that keeps the first `cap` bytes and only counts the rest. So
//! a line near `--max-line-bytes` costs its own size, not two or three times it
//! (a `Value` copies every string, and `to_string` copies it all again).
//!
//! Where the line is not one `serde_json::Value` can hold (a number out of range
//! or nesting deeper than its limit, outside the pieces read), a `Value` parse
//! gives nothing and this still reads the pieces.
//!
//! Rules and summaries need a tool input whole, not cut: with an [`Inspect`] that
//! asks for them, each tool input is parsed once into a `Value`, whatever its size,
//! read for [`InputFacts`] and written out cut, and dropped before the next block. So
//! a huge input costs its size again only while its line is read, and what is kept
//! (the facts and the cut copy) is small.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::value::RawValue;

use crate::transcript::entry::{Captured, InputFacts, cap_text};
use crate::transcript::unescape;

/// Content is captured up to this size per item; consumers cut it to their own cap.
pub const CAPTURE_BYTES: usize = 64 << 10;

/// Values at most this long are re-serialized through a `Value` (fast, and as
/// small as the cap allows); longer ones stream.
const SMALL: usize = 64 << 10;

/// `serde_json`'s nesting limit: deeper JSON is not one it would parse.
const MAX_DEPTH: usize = 128;

/// What to read from each whole tool input besides its cut copy (the events' settings).
#[derive(Debug, Clone, Default)]
pub struct Inspect {
    /// Check each call against these rules.
    pub rules: Option<std::sync::Arc<crate::rules::Rules>>,
    /// Summaries and `Task` descriptions, summaries cut to this many bytes (`None`: neither).
    pub summary_bytes: Option<usize>,
}

impl Inspect {
    /// What the realtime events of `detail`, checked against `rules`, need.
    pub fn new(rules: Option<std::sync::Arc<crate::rules::Rules>>, detail: crate::events::Detail) -> Inspect {
        let summary_bytes = (detail.summaries || detail.content).then(|| detail.max_bytes.clamp(16, 200));
        Inspect { rules, summary_bytes }
    }

    fn wants_anything(&self) -> bool {
        self.rules.is_some() || self.summary_bytes.is_some()
    }

    /// The facts of a call to `tool` with this (whole) input.
    pub fn facts(&self, tool: &str, input: &serde_json::Value) -> InputFacts {
        let summaries = self.summary_bytes.map(|max| {
            let summary = crate::events::summarize(tool, input, max);
            let description = matches!(tool, "Task" | "Agent")
                .then(|| input.get("description").and_then(|d| d.as_str()).map(|d| cap_text(d, 200)))
                .flatten();
            (summary, description)
        });
        let (summary, description) = summaries.unwrap_or_default();
        let matches = self.rules.as_ref().map(|r| r.check(tool, input)).unwrap_or_default();
        InputFacts { summary, description, matches }
    }
}

/// Read the content of a user or assistant line, each item cut to `cap` bytes, and
/// what `inspect` asks of each whole tool input.
pub fn read(line: &[u8], cap: usize, inspect: &Inspect) -> Option<Box<Captured>> {
    read_with(line, cap, SMALL, inspect)
}

/// [`read`] taking the streaming path for values of every size (tests and
/// fuzzing compare it with a `Value` parse on small inputs).
#[doc(hidden)]
pub fn read_streaming(line: &[u8], cap: usize) -> Option<Box<Captured>> {
    read_with(line, cap, 0, &Inspect::default())
}

fn read_with(line: &[u8], cap: usize, small: usize, inspect: &Inspect) -> Option<Box<Captured>> {
    let top: Object = serde_json::from_slice(line).ok()?;
    let kind = as_str(top.get("type")?)?;
    if kind != "user" && kind != "assistant" {
        return None;
    }
    let message: Object = serde_json::from_str(top.get("message")?.get()).ok()?;
    let content = *message.get("content")?;
    let mut c = Captured::default();
    match first_byte(content) {
        b'"' if kind == "user" => c.prompt = Some(text(content, cap)?),
        b'[' => {
            let blocks: Vec<&RawValue> = serde_json::from_str(content.get()).ok()?;
            for b in blocks {
                // Like `Value::get`: a block that is not an object has no fields.
                let Ok(b) = serde_json::from_str::<Object>(b.get()) else { continue };
                match b.get("type").and_then(|t| as_str(t)).as_deref() {
                    Some("text") if kind == "user" && c.prompt.is_none() => {
                        c.prompt = match b.get("text").filter(|t| first_byte(t) == b'"') {
                            Some(t) => Some(text(t, cap)?),
                            None => None,
                        };
                    }
                    Some("tool_use") => {
                        if let (Some(id), Some(input)) = (b.get("id").and_then(|i| as_str(i)), b.get("input")) {
                            let id = id.into_owned();
                            if inspect.wants_anything() {
                                let tool = b.get("name").and_then(|n| as_str(n)).unwrap_or_default();
                                let (text, facts) = inspected(input, &tool, cap, small, inspect)?;
                                c.tool_facts.push((id.clone(), facts));
                                c.tool_inputs.push((id, text));
                            } else {
                                c.tool_inputs.push((id, json(input, cap, small)?));
                            }
                        }
                    }
                    Some("tool_result") => {
                        if let Some(id) = b.get("tool_use_id").and_then(|i| as_str(i)) {
                            let out = match b.get("content") {
                                Some(x) => text_of(x, cap, small)?,
                                None => String::new(),
                            };
                            c.tool_outputs.push((id.into_owned(), out));
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    (c != Captured::default()).then(|| Box::new(c))
}

/// A tool input parsed once, whole: its facts, and its JSON cut to `cap` (as [`json`]
/// writes it). An input no `Value` holds (nested past `serde_json`'s limit) has no
/// fields for rules to read: its facts are those of `null`, as before any parse.
fn inspected(raw: &RawValue, tool: &str, cap: usize, small: usize, inspect: &Inspect) -> Option<(String, InputFacts)> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(raw.get()) else {
        return Some((json(raw, cap, small)?, inspect.facts(tool, &serde_json::Value::Null)));
    };
    let facts = inspect.facts(tool, &value);
    let mut out = Capped::new(cap);
    serde_json::to_writer(&mut out, &value).ok()?;
    Some((out.finish(), facts))
}

/// A tool result's content as text: a string as is, the `text` of its parts
/// joined by newlines, or else its JSON.
fn text_of(x: &RawValue, cap: usize, small: usize) -> Option<String> {
    match first_byte(x) {
        b'"' => text(x, cap),
        b'[' => {
            let parts: Vec<&RawValue> = serde_json::from_str(x.get()).ok()?;
            let mut out = Capped::new(cap);
            let mut any = false;
            for p in parts {
                let Ok(p) = serde_json::from_str::<Object>(p.get()) else { continue };
                let Some(t) = p.get("text").filter(|t| first_byte(t) == b'"') else { continue };
                if any {
                    out.push("\n");
                }
                any = true;
                unescape(t.get(), &mut |s| out.push(s))?;
            }
            if any { Some(out.finish()) } else { json(x, cap, small) }
        }
        _ => json(x, cap, small),
    }
}

/// A JSON string value, unescaped and cut.
fn text(raw: &RawValue, cap: usize) -> Option<String> {
    let mut out = Capped::new(cap);
    unescape(raw.get(), &mut |s| out.push(s))?;
    Some(out.finish())
}

/// A value as `Value::to_string` writes it (compact, keys sorted), cut.
fn json(raw: &RawValue, cap: usize, small: usize) -> Option<String> {
    if raw.get().len() <= small {
        let v: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
        return Some(cap_text(&v.to_string(), cap));
    }
    let mut out = Capped::new(cap);
    write_json(raw, &mut out, 0)?;
    Some(out.finish())
}

fn write_json(raw: &RawValue, out: &mut Capped, depth: usize) -> Option<()> {
    if depth >= MAX_DEPTH {
        return None;
    }
    match first_byte(raw) {
        b'{' => {
            let map: Object = serde_json::from_str(raw.get()).ok()?;
            out.push("{");
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(",");
                }
                out.push("\"");
                escape(&k.0, out);
                out.push("\":");
                write_json(v, out, depth + 1)?;
            }
            out.push("}");
        }
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
            out.push("[");
            for (i, v) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(",");
                }
                write_json(v, out, depth + 1)?;
            }
            out.push("]");
        }
        b'"' => {
            out.push("\"");
            unescape(raw.get(), &mut |s| escape(s, out))?;
            out.push("\"");
        }
        // Numbers, booleans, null: small, and written the way `Value` writes them.
        _ => out.push(&serde_json::from_str::<serde_json::Value>(raw.get()).ok()?.to_string()),
    }
    Some(())
}

/// An object's fields, sorted, the last of a repeated key winning (as in a `Value`).
type Object<'a> = BTreeMap<Key<'a>, &'a RawValue>;

/// An object key: borrowed from the line unless it has escapes.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a>(Cow<'a, str>);

impl std::borrow::Borrow<str> for Key<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// A short string value (a type or an id), unescaped; `None` if not a string.
fn as_str<'a>(raw: &'a RawValue) -> Option<Cow<'a, str>> {
    if first_byte(raw) != b'"' {
        return None;
    }
    serde_json::from_str::<Key<'a>>(raw.get()).ok().map(|k| k.0)
}

fn first_byte(raw: &RawValue) -> u8 {
    raw.get().trim_start().as_bytes().first().copied().unwrap_or(0)
}

/// Write `s` escaped as `serde_json` escapes string contents.
fn escape(s: &str, out: &mut Capped) {
    let mut run = 0;
    for (i, byte) in s.bytes().enumerate() {
        let short = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0C => "\\f",
            0x00..=0x1F => "",
            _ => continue,
        };
        out.push(&s[run..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let code = [b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xF)]];
            out.push(std::str::from_utf8(&code).expect("ASCII"));
        } else {
            out.push(short);
        }
        run = i + 1;
    }
    out.push(&s[run..]);
}

/// The first `cap` bytes of a text written in pieces, and its whole length:
/// [`cap_text`] of the whole, without holding it.
struct Capped {
    cap: usize,
    kept: String,
    len: usize,
}

impl Capped {
    fn new(cap: usize) -> Capped {
        Capped { cap, kept: String::new(), len: 0 }
    }

    fn push(&mut self, s: &str) {
        self.len += s.len();
        // Keep whole characters until past `cap`, so the cut can find its boundary.
        if self.kept.len() <= self.cap {
            let mut end = (self.cap + 1 - self.kept.len()).min(s.len());
            while !s.is_char_boundary(end) {
                end += 1;
            }
            self.kept.push_str(&s[..end]);
        }
    }

    fn finish(self) -> String {
        if self.len <= self.cap {
            return self.kept;
        }
        let mut end = self.cap;
        while end > 0 && !self.kept.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…[{} bytes cut]", &self.kept[..end], self.len - end)
    }
}

/// For `serde_json::to_writer`, which writes whole characters (it cuts only before
/// the ASCII bytes it escapes).
impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let s = std::str::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.push(s);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_content(line: &[u8], cap: usize) -> Option<Box<Captured>> {
        read(line, cap, &Inspect::default())
    }

    #[test]
    fn content_is_captured_only_on_request_and_capped() {
        let line = r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls -la /very/long/path"}}]}}"#;
        assert_eq!(
            crate::transcript::entry::Entry::from_line(&crate::transcript::parse_line(line.as_bytes()).unwrap())
                .content,
            None,
            "never without opt-in"
        );
        let c = read_content(line.as_bytes(), 12).unwrap();
        assert_eq!(c.tool_inputs[0].0, "t1");
        assert!(c.tool_inputs[0].1.starts_with("{\"command\":\"") && c.tool_inputs[0].1.contains("bytes cut]"));
        let user = r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"total 0"}]}]}}"#;
        assert_eq!(read_content(user.as_bytes(), 100).unwrap().tool_outputs, vec![("t1".into(), "total 0".into())]);
        let prompt = r#"{"type":"user","message":{"content":"héllo wörld"}}"#;
        assert_eq!(read_content(prompt.as_bytes(), 2).unwrap().prompt.as_deref(), Some("h…[12 bytes cut]"));
        assert_eq!(cap_text("abc", 3), "abc");
    }

    /// What `Captured::read` did before this module: parse into a `Value`, cut its pieces.
    pub(crate) fn reference(line: &[u8], cap: usize) -> Option<Box<Captured>> {
        let v: serde_json::Value = serde_json::from_slice(line).ok()?;
        let kind = v.get("type")?.as_str()?;
        if kind != "user" && kind != "assistant" {
            return None;
        }
        let content = v.get("message")?.get("content")?;
        let mut c = Captured::default();
        let text_of = |x: &serde_json::Value| match x {
            serde_json::Value::String(s) => cap_text(s, cap),
            serde_json::Value::Array(parts) => {
                let texts: Vec<&str> = parts.iter().filter_map(|p| p.get("text").and_then(|t| t.as_str())).collect();
                if texts.is_empty() { cap_text(&x.to_string(), cap) } else { cap_text(&texts.join("\n"), cap) }
            }
            other => cap_text(&other.to_string(), cap),
        };
        match content {
            serde_json::Value::String(s) if kind == "user" => c.prompt = Some(cap_text(s, cap)),
            serde_json::Value::Array(blocks) => {
                for b in blocks {
                    match b.get("type").and_then(|t| t.as_str()) {
                        Some("text") if kind == "user" && c.prompt.is_none() => {
                            c.prompt = b.get("text").and_then(|t| t.as_str()).map(|t| cap_text(t, cap));
                        }
                        Some("tool_use") => {
                            if let (Some(id), Some(input)) = (b.get("id").and_then(|i| i.as_str()), b.get("input")) {
                                c.tool_inputs.push((id.to_owned(), cap_text(&input.to_string(), cap)));
                            }
                        }
                        Some("tool_result") => {
                            if let Some(id) = b.get("tool_use_id").and_then(|i| i.as_str()) {
                                let out = b.get("content").map(text_of).unwrap_or_default();
                                c.tool_outputs.push((id.to_owned(), out));
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        (c != Captured::default()).then(|| Box::new(c))
    }

    fn everything() -> Inspect {
        Inspect { rules: Some(std::sync::Arc::new(crate::rules::Rules::builtin())), summary_bytes: Some(200) }
    }

    /// Agrees with the `Value` reference, on both paths, wherever that gives
    /// something (`strict`: everywhere, for lines a `Value` can hold).
    fn agrees(line: &[u8], caps: &[usize], strict: bool) {
        for &cap in caps {
            let want = reference(line, cap);
            if want.is_none() && !strict {
                continue;
            }
            for small in [0, SMALL] {
                let shown = String::from_utf8_lossy(&line[..line.len().min(300)]);
                assert_eq!(read_with(line, cap, small, &Inspect::default()), want, "cap {cap} small {small}: {shown}");
                // Inspecting inputs whole changes nothing in what is captured.
                let inspected = read_with(line, cap, small, &everything()).map(|mut c| {
                    c.tool_facts.clear();
                    c
                });
                assert_eq!(inspected, want, "inspected, cap {cap} small {small}: {shown}");
            }
        }
    }

    #[test]
    fn same_as_a_value_parse_on_every_real_line() {
        let real = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real");
        let mut stack = vec![real];
        let mut lines = 0;
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "jsonl") {
                    for line in std::fs::read(&p).unwrap().split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        if reference(line, 64).is_some() {
                            lines += 1;
                        }
                        agrees(line, &[3, 4096], true);
                    }
                }
            }
        }
        assert!(lines > 1000, "only {lines} lines with content in the fixtures");
    }

    #[test]
    fn same_as_a_value_parse_on_escapes_nesting_and_odd_shapes() {
        let cases: &[&str] = &[
            r#"{"type":"user","message":{"content":"h\u00e9llo \"w\u00f6rld\"\n\t\ud83d\ude00 \/ \\ end"}}"#,
            r#"{"type":"user","message":{"content":[{"type":"text","text":"a\u0001b\u001fc\u007f"},{"type":"text","text":"second"}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"text","text":7},{"type":"text","text":"later"}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t\u0031","content":[{"type":"image","source":{"type":"base64","data":"QUJD","media_type":"image/png"}}]}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t2","content":[{"type":"text","text":"x"},"str",{"text":"y\n"},{"text":null}]}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t3","content":{"b":1,"a":[true,null,-0.5,1e3,12345678901234567890]}}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t4"},{"type":"tool_result","tool_use_id":"t5","content":null}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"u1","name":"Bash","input":{"z":"\"q\"","a":{"y":[1,2,{"k":"v\b\f"}],"x":"é"},"a":"dup wins"}}]}}"#,
            r#"{"type":"assistant","message":{"content":"assistant strings are not prompts"}}"#,
            r#"{"type":"assistant","type":"user","message":{"content":"last type wins"}}"#,
            r#" { "type" : "user" , "message" : { "content" : [ { "type" : "tool_use" , "id" : "s" , "input" : [ 1 , { "b" : 2 , "a" : 1 } ] } ] } } "#,
            r#"{"type":"user","message":{"content":[[1],"x",{"type":"text"},{"type":"text","text":"after missing"}]}}"#,
        ];
        for c in cases {
            agrees(c.as_bytes(), &[0, 1, 2, 3, 5, 12, 100, 4096], true);
        }
        let deep = format!(
            r#"{{"type":"assistant","message":{{"content":[{{"type":"tool_use","id":"d","input":{}1{}}}]}}}}"#,
            "[".repeat(120),
            "]".repeat(120)
        );
        assert!(reference(deep.as_bytes(), 10).is_some());
        agrees(deep.as_bytes(), &[0, 10, 4096], true);
    }

    #[test]
    fn bad_or_too_deep_json_gives_nothing_rather_than_a_crash() {
        let too_deep = format!(
            r#"{{"type":"assistant","message":{{"content":[{{"type":"tool_use","id":"d","input":{}1{}}}]}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(read_with(too_deep.as_bytes(), 10, 0, &Inspect::default()), None);
        assert_eq!(read_with(too_deep.as_bytes(), 10, 0, &everything()), None);
        for bad in [
            r#"{"type":"user","message":{"content":"lone \ud800 surrogate"}}"#,
            r#"{"type":"user","message":{"content":"lone \udc00 low"}}"#,
            r#"{"type":"user","message":{"content":"bad \x escape"}}"#,
            r#"{"type":"user","message":{"content":"#,
        ] {
            assert_eq!(read(bad.as_bytes(), 10, &Inspect::default()), None, "{bad}");
        }
    }

    #[test]
    fn a_big_string_is_cut_without_being_copied_whole() {
        let data = "A".repeat(1 << 20);
        let line = format!(
            r#"{{"type":"user","message":{{"content":[{{"type":"tool_result","tool_use_id":"t","content":[{{"type":"image","source":{{"type":"base64","data":"{data}"}}}}]}}]}}}}"#
        );
        let c = read(line.as_bytes(), 40, &Inspect::default()).unwrap();
        let want = reference(line.as_bytes(), 40).unwrap();
        assert_eq!(c, want);
        assert!(c.tool_outputs[0].1.starts_with("[{\"source\":{\"data\":\"AAAA"), "{:?}", c.tool_outputs);
    }

    #[test]
    fn a_huge_tool_input_is_read_whole_for_rules_and_summaries_and_cut_for_content() {
        let content = "K=v\\n".repeat(40_000);
        let line = format!(
            r#"{{"type":"assistant","message":{{"content":[{{"type":"tool_use","id":"t1","name":"Write","input":{{"file_path":"/w/app/.env","content":"{content}"}}}},{{"type":"tool_use","id":"t2","name":"Task","input":{{"description":"look\nclosely","subagent_type":"Plan"}}}}]}}}}"#
        );
        assert!(line.len() > SMALL * 2);
        let c = read(line.as_bytes(), 100, &everything()).unwrap();
        let want = reference(line.as_bytes(), 100).unwrap();
        assert_eq!(c.tool_inputs, want.tool_inputs, "the copy is cut as before");
        assert!(c.tool_inputs[0].1.len() < 200);
        let (id, write) = &c.tool_facts[0];
        assert_eq!(id, "t1");
        assert_eq!(write.summary.as_deref(), Some("/w/app/.env"));
        let rules: Vec<&str> = write.matches.iter().map(|m| m.rule.as_str()).collect();
        assert_eq!(rules, ["env-file-write"], "the rules saw the whole input");
        let task = &c.tool_facts[1].1;
        assert_eq!((task.summary.as_deref(), task.description.as_deref()), (Some("look"), Some("look\nclosely")));
        assert!(task.matches.is_empty());
        // Not asked for, nothing is inspected.
        assert!(read(line.as_bytes(), 100, &Inspect::default()).unwrap().tool_facts.is_empty());
        let summaries_only = Inspect { rules: None, summary_bytes: Some(16) };
        let f = &read(line.as_bytes(), 100, &summaries_only).unwrap().tool_facts[0].1;
        assert_eq!((f.summary.as_deref(), f.matches.len()), (Some("/w/app/.env"), 0));
    }
}
