//! One API response → one usage record, counted under one set of labels.
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
//! A fact's labels are fixed the first time it is seen and kept: each response
//! also remembers its [`Origin`] (session, project, model, query source of the
//! line that first counted it), and every later increase is counted there, not
//! under the line being read. A session resumed or copied into another project's
//! folder then moves no usage between projects, whatever order the files are read
//! in, and the origin is in the checkpoint with the usage, so a restart keeps it.
//! (Other facts count once, at their first line, so their labels are fixed anyway;
//! a tool result's error counts with its call, see `live::apply`.)
//!
//! The window is bounded: past `capacity` keys the oldest are forgotten (FIFO).
//! Lines of one response are written within seconds of each other, so only a
//! copy of a response older than the whole window could be counted again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::transcript::entry::Tokens;

pub(crate) use crate::transcript::identity::KeyBuild;
pub use crate::transcript::identity::{
    FastHasher, FastMap, KeyHasher, fnv1a, line_key, response_key, session_key, tool_result_key, tool_use_key,
};

mod origins;
use origins::{NONE, Origins};
pub use origins::{Origin, OriginRef};

/// What a new line adds for its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// First line of this response: count one API request.
    pub first: bool,
    /// Usage before this line (zero when first).
    pub before: Tokens,
    /// Usage after this line: the field-wise maximum so far.
    pub after: Tokens,
    /// Where the whole response counts: the labels of the line that first counted
    /// it. Always set by [`Window::observe_from`]; `None` only in unit tests that count without labels.
    pub origin: Option<Arc<Origin>>,
}

impl Seen {
    /// What this line adds: `after - before`, field-wise (zero for a copy or an older line).
    pub fn delta(&self) -> Tokens {
        self.after.saturating_sub(self.before)
    }
}

/// Bounded memory of responses and ids already counted.
///
/// About 40 bytes per response key and 16 per id key; with the default
/// capacity of 2 million keys that is at most ~70 MB, reached only after
/// months of heavy use. Origins are shared: one per session, model and query
/// source, held while a response of theirs is in the window.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "stored::Window")]
pub struct Window {
    capacity: usize,
    #[serde(serialize_with = "stored::responses")]
    responses: HashMap<u64, Packed, KeyBuild>,
    origins: Origins,
    ids: HashSet<u64, KeyBuild>,
    order: VecDeque<u64>,
    evicted: u64,
}

/// `Tokens` in 4-byte fields (one response never has 4 billion tokens of a kind),
/// and the response's origin (an index into [`Origins`], or [`NONE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed {
    tokens: [u32; 5],
    origin: u32,
}

fn pack(t: Tokens) -> [u32; 5] {
    let c = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    [c(t.input), c(t.output), c(t.cache_creation), c(t.cache_creation_1h), c(t.cache_read)]
}

fn unpack(p: [u32; 5]) -> Tokens {
    let [input, output, cache_creation, cache_creation_1h, cache_read] = p.map(u64::from);
    Tokens { input, output, cache_creation, cache_creation_1h, cache_read }
}

impl Window {
    /// An empty window holding at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        Window {
            capacity: capacity.max(1),
            responses: HashMap::default(),
            origins: Origins::default(),
            ids: HashSet::default(),
            order: VecDeque::new(),
            evicted: 0,
        }
    }

    /// Change the bound (`--dedup-window`); a smaller one forgets the oldest keys now.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.evict();
    }

    /// Keys held: responses plus ids.
    pub fn len(&self) -> usize {
        self.responses.len() + self.ids.len()
    }

    /// No key held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys forgotten because the window was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Record a line's usage for `key`, without labels; returns what it adds
    /// (the tests' view of the token arithmetic; every caller counts with an origin).
    #[cfg(test)]
    pub(crate) fn observe(&mut self, key: u64, tokens: Tokens) -> Seen {
        self.record(key, tokens, None)
    }

    /// Record a line's usage for `key`, read under the labels `here`; returns what
    /// it adds and the origin it counts under: `here` for the response's first line
    /// (or the first line with labels), else the labels that line had.
    pub fn observe_from(&mut self, key: u64, tokens: Tokens, here: OriginRef<'_>) -> Seen {
        self.record(key, tokens, Some(here))
    }

    fn record(&mut self, key: u64, tokens: Tokens, here: Option<OriginRef<'_>>) -> Seen {
        let tokens = unpack(pack(tokens));
        match self.responses.get_mut(&key) {
            Some(prev) => {
                let before = unpack(prev.tokens);
                let after = before.max(tokens);
                prev.tokens = pack(after);
                if prev.origin == NONE
                    && let Some(h) = here
                {
                    // Known from a checkpoint without origins: kept from this line on.
                    prev.origin = self.origins.intern(h);
                }
                let origin = self.origins.get(prev.origin).cloned();
                Seen { first: false, before, after, origin }
            }
            None => {
                let origin = here.map_or(NONE, |h| self.origins.intern(h));
                self.responses.insert(key, Packed { tokens: pack(tokens), origin });
                self.order.push_back(key);
                let seen = Seen {
                    first: true,
                    before: Tokens::default(),
                    after: tokens,
                    origin: self.origins.get(origin).cloned(),
                };
                self.evict();
                seen
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
            let response = self.responses.remove(&old);
            if let Some(p) = response {
                self.origins.release(p.origin);
            }
            if response.is_some() | self.ids.remove(&old) {
                self.evicted += 1;
            }
        }
    }
}

/// The window as the checkpoint stores it: each response as `[key, tokens, origin]`
/// (`[key, tokens]` in checkpoints written before origins were kept), the origins
/// as a list they name by position.
mod stored {
    use super::*;
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::ser::Serializer;

    #[derive(Deserialize)]
    pub(super) struct Window {
        capacity: usize,
        responses: Vec<Row>,
        #[serde(default)]
        origins: Vec<Option<Origin>>,
        ids: HashSet<u64, KeyBuild>,
        order: VecDeque<u64>,
        evicted: u64,
    }

    /// One stored response.
    struct Row(u64, [u32; 5], u32);

    impl<'de> Deserialize<'de> for Row {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Row, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Row;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("[key, tokens] or [key, tokens, origin]")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Row, A::Error> {
                    let missing = |n| serde::de::Error::invalid_length(n, &self);
                    let key = seq.next_element()?.ok_or_else(|| missing(0))?;
                    let tokens = seq.next_element()?.ok_or_else(|| missing(1))?;
                    let origin = seq.next_element()?.unwrap_or(NONE);
                    Ok(Row(key, tokens, origin))
                }
            }
            d.deserialize_seq(V)
        }
    }

    pub(super) fn responses<S: Serializer>(m: &HashMap<u64, Packed, KeyBuild>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter().map(|(k, p)| (k, p.tokens, p.origin)))
    }

    impl From<Window> for super::Window {
        fn from(w: Window) -> super::Window {
            let mut responses: HashMap<u64, Packed, KeyBuild> =
                w.responses.into_iter().map(|Row(k, tokens, origin)| (k, Packed { tokens, origin })).collect();
            let mut refs: Vec<&mut u32> = responses.values_mut().map(|p| &mut p.origin).collect();
            let origins = Origins::rebuild(w.origins, &mut refs);
            super::Window {
                capacity: w.capacity.max(1),
                responses,
                origins,
                ids: w.ids,
                order: w.order,
                evicted: w.evicted,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_plausible_usage_fits_the_window_unclamped() {
        // The window stores 32-bit fields; the transcript's plausibility bounds fit them.
        use crate::transcript::{MAX_OUTPUT_TOKENS, MAX_PROMPT_TOKENS};
        let p = MAX_PROMPT_TOKENS;
        let t = Tokens { input: p, output: MAX_OUTPUT_TOKENS, cache_creation: p, cache_creation_1h: p, cache_read: p };
        let mut w = Window::new(4);
        assert_eq!(w.observe(1, t).after, t);
        assert!(u32::try_from(p.max(MAX_OUTPUT_TOKENS)).is_ok());
    }

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

    fn at<'a>(session: &'a str, project: &'a Arc<str>) -> OriginRef<'a> {
        OriginRef { session, project, model: "claude-opus-4-6", source: "main" }
    }

    #[test]
    fn a_response_keeps_the_origin_it_was_first_seen_under() {
        let (alpha, beta): (Arc<str>, Arc<str>) = ("alpha".into(), "beta".into());
        let mut w = Window::new(100);
        let first = w.observe_from(1, t(5, 1), at("sa", &alpha));
        assert_eq!(first.origin.as_deref().map(|o| (&*o.session, &*o.project)), Some(("sa", "alpha")));
        let later = w.observe_from(1, t(5, 50), at("sb", &beta));
        assert_eq!(later.delta().output, 49);
        assert_eq!(later.origin, first.origin, "a later line of another project counts where the first did");
        // Responses share origins; the last one gone frees it.
        w.observe_from(2, t(1, 1), at("sa", &alpha));
        w.observe_from(3, t(1, 1), at("sb", &beta));
        assert_eq!(w.origins.held(), 2);
        w.set_capacity(1);
        assert_eq!(w.origins.held(), 1, "only response 3's origin is left");
        assert_eq!(w.observe_from(3, t(1, 2), at("sa", &alpha)).origin.unwrap().project, beta);
    }

    #[test]
    fn origins_survive_the_checkpoint_and_old_windows_adopt_the_next_line() {
        let (alpha, beta): (Arc<str>, Arc<str>) = ("alpha".into(), "beta".into());
        let mut w = Window::new(100);
        w.observe_from(1, t(5, 1), at("sa", &alpha));
        w.observe_from(2, t(5, 1), at("sb", &beta));
        let mut back: Window = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back.observe_from(1, t(5, 9), at("sb", &beta)).origin.unwrap().project, alpha);
        assert_eq!(back.origins.held(), 2);
        // A window stored before origins were kept: `[key, tokens]`; an origin out of range is none.
        let old =
            r#"{"capacity":9,"responses":[[1,[5,1,0,0,0]],[2,[5,1,0,0,0],7]],"ids":[],"order":[1,2],"evicted":0}"#;
        let mut old: Window = serde_json::from_str(old).unwrap();
        let seen = old.observe_from(1, t(5, 3), at("sb", &beta));
        assert_eq!((seen.delta().output, seen.origin.unwrap().project.clone()), (2, beta.clone()));
        assert_eq!(old.observe_from(1, t(5, 4), at("sa", &alpha)).origin.unwrap().project, beta, "then kept");
        assert_eq!(old.observe_from(2, t(5, 4), at("sa", &alpha)).origin.unwrap().project, alpha);
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
