//! One API response → one usage record.
//!
//! Claude Code writes one line per content block of a response; every line
//! repeats the response's `usage`, and `output_tokens` may grow from line to
//! line (`transcript-format.md` §5). The [`Window`] remembers, per response key
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

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::event::Tokens;

/// 64-bit FNV-1a: stable across versions and platforms (keys are persisted).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            // A separator byte that cannot appear in ids keeps ("ab","c") ≠ ("a","bc").
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Key of an API response: `message.id` + `requestId`, or `message.id` alone.
pub fn response_key(message_id: &str, request_id: Option<&str>) -> u64 {
    match request_id {
        Some(r) => fnv1a(&[b"r", message_id.as_bytes(), r.as_bytes()]),
        None => fnv1a(&[b"r", message_id.as_bytes()]),
    }
}

/// Key of a tool call (`tool_use.id`).
pub fn tool_use_key(id: &str) -> u64 {
    fnv1a(&[b"u", id.as_bytes()])
}

/// Key of a tool result (`tool_result.tool_use_id`).
pub fn tool_result_key(id: &str) -> u64 {
    fnv1a(&[b"t", id.as_bytes()])
}

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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    capacity: usize,
    #[serde(with = "entries")]
    map: HashMap<u64, Tokens>,
    order: VecDeque<u64>,
    evicted: u64,
}

impl Window {
    pub fn new(capacity: usize) -> Self {
        Window { capacity: capacity.max(1), map: HashMap::new(), order: VecDeque::new(), evicted: 0 }
    }

    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.evict();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Keys forgotten because the window was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Record a line's usage for `key`; returns what it adds.
    pub fn observe(&mut self, key: u64, tokens: Tokens) -> Seen {
        match self.map.get_mut(&key) {
            Some(prev) => {
                let before = *prev;
                *prev = before.max(tokens);
                Seen { first: false, before, after: *prev }
            }
            None => {
                self.insert(key, tokens);
                Seen { first: true, before: Tokens::default(), after: tokens }
            }
        }
    }

    /// Remember an id; `true` if it was not known yet.
    pub fn first_time(&mut self, key: u64) -> bool {
        if self.map.contains_key(&key) {
            return false;
        }
        self.insert(key, Tokens::default());
        true
    }

    fn insert(&mut self, key: u64, tokens: Tokens) {
        self.map.insert(key, tokens);
        self.order.push_back(key);
        self.evict();
    }

    fn evict(&mut self) {
        while self.map.len() > self.capacity {
            let Some(old) = self.order.pop_front() else { break };
            if self.map.remove(&old).is_some() {
                self.evicted += 1;
            }
        }
    }
}

/// Serialize the map as a list (JSON object keys must be strings).
mod entries {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &HashMap<u64, Tokens>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            m.iter().map(|(k, t)| (k, [t.input, t.output, t.cache_creation, t.cache_creation_1h, t.cache_read])),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<u64, Tokens>, D::Error> {
        let v: Vec<(u64, [u64; 5])> = Vec::deserialize(d)?;
        Ok(v.into_iter()
            .map(|(k, [input, output, cache_creation, cache_creation_1h, cache_read])| {
                (k, Tokens { input, output, cache_creation, cache_creation_1h, cache_read })
            })
            .collect())
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
        w.first_time(3);
        assert_eq!(w.len(), 2);
        assert_eq!(w.evicted(), 1);
        assert!(w.first_time(1), "evicted keys are forgotten");
        let json = serde_json::to_string(&w).unwrap();
        let mut back: Window = serde_json::from_str(&json).unwrap();
        assert!(!back.first_time(3));
        assert_eq!(back.len(), 2);
    }
}
