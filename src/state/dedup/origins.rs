//! The labels each response was first counted under, shared between responses.
//!
//! A session's responses mostly share one origin (session, project, model, query
//! source), so the window holds a 4-byte index per response into this table, and
//! each origin once, with the number of responses in the window that name it: an
//! origin is dropped with its last response. Their strings are shared too: a
//! session's origins (one per model and query source) hold one copy of its id,
//! and every origin shares the few model and source labels.

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{FastHasher, KeyBuild};

/// No origin (a response from a checkpoint written before origins were kept).
pub(super) const NONE: u32 = u32::MAX;

/// Where a response was first counted: the labels all of its usage goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The session (`sessionId`) whose totals hold the response.
    pub session: Arc<str>,
    /// The `project` label of that session (see `live::ProjectLabel`).
    pub project: Arc<str>,
    /// The `model` label (the response's model as a label value).
    pub model: Arc<str>,
    /// The `query_source` label: `main`, `subagent` or `auxiliary`.
    pub source: Arc<str>,
}

/// An [`Origin`] borrowed from the line being read: interned only when new.
#[derive(Debug, Clone, Copy)]
pub struct OriginRef<'a> {
    /// See [`Origin::session`].
    pub session: &'a str,
    /// See [`Origin::project`].
    pub project: &'a Arc<str>,
    /// The response's model as written: its label ([`Origin::model`]) is made only
    /// when the origin is new, not for every line.
    pub model: &'a str,
    /// See [`Origin::source`].
    pub source: &'a str,
}

impl OriginRef<'_> {
    fn hash(&self) -> u64 {
        let mut h = FastHasher::default();
        for part in [self.session, self.project, self.model, self.source] {
            h.write(part.as_bytes());
            h.write_u8(0xff);
        }
        h.finish()
    }

    fn is(&self, o: &Origin) -> bool {
        *o.session == *self.session
            && *o.project == **self.project
            && *o.model == *self.model
            && *o.source == *self.source
    }
}

/// One shared copy of each string the origins name.
#[derive(Debug, Clone, Default)]
struct Strings(HashMap<Arc<str>, u32, std::hash::BuildHasherDefault<FastHasher>>);

impl Strings {
    /// The shared copy of `s`, taken once more.
    fn take(&mut self, s: &str) -> Arc<str> {
        if let Some((k, n)) = self.0.get_key_value(s).map(|(k, n)| (Arc::clone(k), *n)) {
            self.0.insert(Arc::clone(&k), n + 1);
            return k;
        }
        let k: Arc<str> = Arc::from(s);
        self.0.insert(Arc::clone(&k), 1);
        k
    }

    /// One holder of `s` is gone: the last one drops it.
    fn release(&mut self, s: &Arc<str>) {
        if let Some(n) = self.0.get_mut(s) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(s);
            }
        }
    }
}

/// Interned origins with reference counts; free slots are reused.
#[derive(Debug, Clone, Default)]
pub(super) struct Origins {
    /// (origin, responses naming it); `None`: a free slot.
    slots: Vec<Option<(Arc<Origin>, u32)>>,
    /// Hash of an origin's labels → its slot (a colliding origin gets a slot
    /// of its own, unindexed: it is only not shared).
    index: HashMap<u64, u32, KeyBuild>,
    free: Vec<u32>,
    strings: Strings,
}

impl Origins {
    /// The slot of `o`, taken once more (created if new).
    /// `o.model` is the model as written; its label is made here, so only a
    /// response's first line pays for it.
    pub(super) fn intern(&mut self, o: OriginRef<'_>) -> u32 {
        let model = crate::state::metrics::label_value(o.model);
        let o = OriginRef { model: &model, ..o };
        let h = o.hash();
        if let Some(&i) = self.index.get(&h)
            && let Some(Some((known, refs))) = self.slots.get_mut(i as usize)
            && o.is(known)
        {
            *refs += 1;
            return i;
        }
        let owned = self.own(o.session, o.project, o.model, o.source);
        let entry = Some((Arc::new(owned), 1));
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = entry;
                i
            }
            None => {
                self.slots.push(entry);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(h, i);
        i
    }

    /// An origin of shared strings (each taken once more).
    fn own(&mut self, session: &str, project: &Arc<str>, model: &str, source: &str) -> Origin {
        let s = &mut self.strings;
        Origin { session: s.take(session), project: Arc::clone(project), model: s.take(model), source: s.take(source) }
    }

    /// The origin in slot `i` (`None` for [`NONE`] or a free slot).
    pub(super) fn get(&self, i: u32) -> Option<&Arc<Origin>> {
        self.slots.get(i as usize)?.as_ref().map(|(o, _)| o)
    }

    /// One response naming slot `i` is gone: the last one frees it.
    pub(super) fn release(&mut self, i: u32) {
        let Some(slot) = self.slots.get_mut(i as usize) else { return };
        let Some((o, refs)) = slot else { return };
        *refs -= 1;
        if *refs > 0 {
            return;
        }
        let h = OriginRef { session: &o.session, project: &o.project, model: &o.model, source: &o.source }.hash();
        if self.index.get(&h) == Some(&i) {
            self.index.remove(&h);
        }
        for s in [&o.session, &o.model, &o.source] {
            self.strings.release(s);
        }
        *slot = None;
        self.free.push(i);
    }

    /// Rebuilt from stored slots and the slot each response names (out of range or
    /// free: [`NONE`], rewritten in `refs`); reference counts are counted again.
    pub(super) fn rebuild(stored: Vec<Option<Origin>>, refs: &mut [&mut u32]) -> Origins {
        let mut slots: Vec<Option<(Arc<Origin>, u32)>> =
            stored.into_iter().map(|o| o.map(|o| (Arc::new(o), 0))).collect();
        for r in refs.iter_mut() {
            match slots.get_mut(**r as usize) {
                Some(Some((_, n))) => *n += 1,
                _ => **r = NONE,
            }
        }
        let mut t = Origins::default();
        for (i, slot) in slots.iter_mut().enumerate() {
            match slot {
                Some((o, n)) if *n > 0 => {
                    let h = OriginRef { session: &o.session, project: &o.project, model: &o.model, source: &o.source }
                        .hash();
                    t.index.entry(h).or_insert(i as u32);
                    // Each string was read as a copy of its own: share them again.
                    *o = Arc::new(t.own(&o.session, &o.project, &o.model, &o.source));
                }
                _ => {
                    *slot = None;
                    t.free.push(i as u32);
                }
            }
        }
        t.slots = slots;
        t
    }

    /// Origins held (for tests).
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.slots.iter().flatten().count()
    }
}

/// Stored as the list of slots (`null` for a free one): responses name them by position.
impl Serialize for Origins {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.slots.iter().map(|slot| slot.as_ref().map(|(o, _)| &**o)))
    }
}
