//! JSON as an ordered tree: objects keep their keys in the file's order (and duplicates),
//! so a settings file we edit keeps everything we did not touch where it was.
//! `serde_json::Value` sorts object keys unless the crate-wide `preserve_order` feature is
//! on, which would change the key order of every JSON the crate writes.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON value whose objects keep their order.
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number, as serde_json reads it.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Tree>),
    /// An object, its members in order.
    Object(Vec<(String, Tree)>),
}

impl Tree {
    /// Parse JSON text.
    pub fn parse(text: &str) -> Result<Tree, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// An object of `members`.
    pub fn object(members: Vec<(&str, Tree)>) -> Tree {
        Tree::Object(members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// A string.
    pub fn string(s: &str) -> Tree {
        Tree::String(s.to_owned())
    }

    /// A whole number.
    pub fn number(n: u64) -> Tree {
        Tree::Number(n.into())
    }

    /// The first member named `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Tree> {
        match self {
            Tree::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The first member named `key` of an object, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Tree> {
        match self {
            Tree::Object(m) => m.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Tree::String(s) => Some(s),
            _ => None,
        }
    }

    /// JSON text in the style of `original`: the indentation of its first indented line
    /// (none: one line), and the whitespace it ended with.
    pub fn write_like(&self, original: &str) -> String {
        let body = original.trim_end();
        let trailer = &original[body.len()..];
        let indent: Option<&str> = body.find('\n').map(|i| {
            let rest = &body[i + 1..];
            &rest[..rest.len() - rest.trim_start_matches([' ', '\t']).len()]
        });
        let mut out = Vec::new();
        match indent {
            Some(ind) if !ind.is_empty() => {
                let fmt = serde_json::ser::PrettyFormatter::with_indent(ind.as_bytes());
                let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
                self.serialize(&mut ser).expect("a tree always serializes");
            }
            _ => serde_json::to_writer(&mut out, self).expect("a tree always serializes"),
        }
        String::from_utf8(out).expect("serde_json writes UTF-8") + trailer
    }
}

impl Serialize for Tree {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tree::Null => s.serialize_unit(),
            Tree::Bool(b) => s.serialize_bool(*b),
            Tree::Number(n) => n.serialize(s),
            Tree::String(x) => s.serialize_str(x),
            Tree::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Tree::Object(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tree, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Tree, E> {
        Ok(Tree::Number(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Tree, E> {
        Ok(Tree::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Tree, E> {
        serde_json::Number::from_f64(n).map(Tree::Number).ok_or_else(|| E::custom("a number JSON cannot hold"))
    }
    fn visit_str<E>(self, s: &str) -> Result<Tree, E> {
        Ok(Tree::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Tree, E> {
        Ok(Tree::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(i) = seq.next_element()? {
            items.push(i);
        }
        Ok(Tree::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut members = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Tree>()? {
            members.push((k, v));
        }
        Ok(Tree::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_indentation_and_the_end_are_kept() {
        for text in [
            "{\n  \"z\": 1,\n  \"a\": [\n    true,\n    null,\n    -2.5\n  ],\n  \"m\": {}\n}",
            "{\n    \"z\": \"é\\n\",\n    \"a\": []\n}\n",
            "{\n\t\"b\": 1,\n\t\"a\": {\n\t\t\"y\": 2,\n\t\t\"x\": 3\n\t}\n}\n",
            "{\"b\":1,\"a\":[1,2]}",
        ] {
            assert_eq!(Tree::parse(text).unwrap().write_like(text), text);
        }
        let t = Tree::parse(r#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
        assert_eq!(t.get("b"), Some(&Tree::number(1)), "the first of duplicates");
        assert!(Tree::parse("{").is_err());
    }
}
