//! What a tool result says about an edit: lines added and removed.
//!
//! In: the `toolUseResult` value of a user line, whatever its shape (a string
//! for errors, an object whose fields depend on the tool). Out: [`PatchStats`],
//! read from `structuredPatch` line signs, the line count of a file created by
//! `Write`, and the `agentId` of a sub-agent's result. Nothing else of the value
//! is copied: patch lines and file contents are skipped on their raw JSON text.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::Text;

/// Lines added and removed by an edit, read from `toolUseResult`.
///
/// `toolUseResult` is a string for errors and an object whose shape depends on
/// the tool otherwise. We keep only `structuredPatch` line signs and, for a
/// file created by `Write`, the number of lines of its content.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PatchStats {
    /// Lines added: `+` lines of the patch, or the lines of a created file.
    pub added: u64,
    /// Lines removed: `-` lines of the patch.
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
        // The content of a created file: its lines are counted once we know it was one.
        let mut content: Option<&'de RawValue> = None;
        let mut is_create = false;
        // Keys are borrowed (`Cow` would copy each one).
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key {
                "structuredPatch" => {
                    let hunks: Option<Vec<Hunk>> = map.next_value()?;
                    for h in hunks.unwrap_or_default() {
                        stats.added += h.added;
                        stats.removed += h.removed;
                    }
                }
                "type" => is_create = map.next_value::<&RawValue>()?.get() == "\"create\"",
                "content" => content = Some(map.next_value()?),
                "agentId" => stats.agent_id = map.next_value::<Option<Text<'de>>>()?.map(|t| t.0.into()),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // A new file has an empty patch; its whole content is added lines.
        if is_create && stats.added == 0 {
            stats.added = content.map_or(0, |raw| line_count(raw.get()));
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
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if &*key == "lines" {
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
/// counted on its raw JSON text: each `\n` escape is one line break. 0 for a
/// value that is not a string.
fn line_count(raw: &str) -> u64 {
    let Some(body) = raw.strip_prefix('"').and_then(|b| b.strip_suffix('"')) else { return 0 };
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
    n + u64::from(!body.is_empty() && !ends_with_newline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::parse_line;

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
}
