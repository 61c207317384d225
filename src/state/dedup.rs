//! One API response → one usage record.
//!
//! Claude Code writes one line per content block of a response; every line
//! repeats the response's `usage`, and `output_tokens` may grow from line to
//! line (`docs/transcript-format.md` §5). The [`Window`] remembers, per response key
//! (`message.id` + `requestId`), the largest usage seen so far, so that each
//! new line yields only the *increase*: summing the increases gives the
//! maximum, whatever order lines arrive in, across polls, files and restarts
//! (the window is part of the checkpoint). The same window remembers tool-call
//! and tool-result ids, so that a resumed session that copies earlier messages
//! into a new file counts nothing twice.
//!
//! The window is bounded: past `capacity` keys the oldest are forgotten (FIFO).
//! Lines of one response are written within seconds of each other, so only a
//! copy of a response older than the whole window could be counted again.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::transcript::entry::Tokens;

pub(crate) use crate::transcript::identity::KeyBuild;
pub use crate::transcript::identity::{
    FastMap, Fnv, KeyHasher, fnv1a, line_key, response_key, session_key, tool_result_key, tool_use_key,
};

/// What a new line adds for its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// First line of this response: count one API request.
    pub first: bool,
    /// Usage before this line (zero when first).
    pub before: Tokens,
    /// Usage after this line: the field-wise maximum so far.
    pub after: Tokens,
}

impl Seen {
    pub fn delta(&self) -> Tokens {
        self.after.saturating_sub(self.before)
    }
}

/// Bounded memory of responses and ids already counted.
///
/// About 40 bytes per response key and 16 per id key; with the default
/// capacity of 2 million keys that is at most ~70 MB, reached only after
/// months of heavy use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    capacity: usize,
    #[serde(with = "entries")]
    responses: HashMap<u64, Packed, KeyBuild>,
    ids: HashSet<u64, KeyBuild>,
    order: VecDeque<u64>,
    evicted: u64,
}

/// `Tokens` in 4-byte fields: one response never has 4 billion tokens of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed([u32; 5]);

impl Packed {
    fn pack(t: Tokens) -> Packed {
        let c = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Packed([c(t.input), c(t.output), c(t.cache_creation), c(t.cache_creation_1h), c(t.cache_read)])
    }

    fn unpack(self) -> Tokens {
        let [input, output, cache_creation, cache_creation_1h, cache_read] = self.0.map(u64::from);
        Tokens { input, output, cache_creation, cache_creation_1h, cache_read }
    }
}

impl Window {
    pub fn new(capacity: usize) -> Self {
        Window {
            capacity: capacity.max(1),
            responses: HashMap::default(),
            ids: HashSet::default(),
            order: VecDeque::new(),
            evicted: 0,
        }
    }

    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.evict();
    }

    pub fn len(&self) -> usize {
        self.responses.len() + self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys forgotten because the window was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Record a line's usage for `key`; returns what it adds.
    pub fn observe(&mut self, key: u64, tokens: Tokens) -> Seen {
        let tokens = Packed::pack(tokens).unpack();
        match self.responses.get_mut(&key) {
            Some(prev) => {
                let before = prev.unpack();
                let after = before.max(tokens);
                *prev = Packed::pack(after);
                Seen { first: false, before, after }
            }
            None => {
                self.responses.insert(key, Packed::pack(tokens));
                self.order.push_back(key);
                self.evict();
                Seen { first: true, before: Tokens::default(), after: tokens }
            }
        }
    }

    /// Remember an id; `true` if it was not known yet.
    pub fn first_time(&mut self, key: u64) -> bool {
        if !self.ids.insert(key) {
            return false;
        }
        self.order.push_back(key);
        self.evict();
        true
    }

    fn evict(&mut self) {
        while self.len() > self.capacity {
            let Some(old) = self.order.pop_front() else { break };
            if self.responses.remove(&old).is_some() | self.ids.remove(&old) {
                self.evicted += 1;
            }
        }
    }
}

/// Serialize the map as a list (JSON object keys must be strings).
mod entries {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &HashMap<u64, Packed, KeyBuild>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter().map(|(k, p)| (k, p.0)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<u64, Packed, KeyBuild>, D::Error> {
        let v: Vec<(u64, [u32; 5])> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(|(k, p)| (k, Packed(p))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(input: u64, output: u64) -> Tokens {
        Tokens { input, output, cache_creation: 10, cache_creation_1h: 0, cache_read: 100 }
    }

    #[test]
    fn split_response_counts_its_maximum_once() {
        let mut w = Window::new(100);
        let k = response_key("msg_1", Some("req_1"));
        let a = w.observe(k, t(5, 1));
        assert!(a.first);
        assert_eq!(a.delta(), t(5, 1));
        let b = w.observe(k, t(5, 1));
        assert!(!b.first);
        assert!(b.delta().is_zero());
        let c = w.observe(k, t(5, 40));
        assert_eq!(c.delta(), Tokens { output: 39, ..Tokens::default() });
        // An older, smaller line arriving late adds nothing.
        assert!(w.observe(k, t(5, 3)).delta().is_zero());
    }

    #[test]
    fn keys_differ_by_request_and_by_kind() {
        assert_ne!(response_key("m", Some("r")), response_key("m", None));
        assert_ne!(response_key("ab", Some("c")), response_key("a", Some("bc")));
        assert_ne!(tool_use_key("x"), tool_result_key("x"));
    }

    #[test]
    fn window_is_bounded_and_survives_serialization() {
        let mut w = Window::new(2);
        assert!(w.first_time(1));
        assert!(!w.first_time(1));
        w.first_time(2);
        w.observe(3, Tokens { input: 1, ..Tokens::default() });
        assert_eq!(w.len(), 2);
        assert_eq!(w.evicted(), 1);
        assert!(w.first_time(1), "evicted keys are forgotten");
        let json = serde_json::to_string(&w).unwrap();
        let mut back: Window = serde_json::from_str(&json).unwrap();
        assert!(!back.observe(3, Tokens::default()).first);
        assert!(!back.first_time(1));
        assert_eq!(back.len(), 2);
    }
}
