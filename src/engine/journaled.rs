//! The engine with a journal: new lines are made durable before they count.
//!
//! Once history is read, each read of a file is appended to the
//! [`Journal`](crate::source::journal::Journal) and staged; [`Engine::commit`] syncs
//! the journal once for everything staged, then applies it. Clock-driven steps
//! (ticks, prunes, exited processes) that changed something are journaled
//! after they ran: they depend only on the time they ran at, so a step lost in
//! a crash is taken again, to the same effect, by the next process. After a
//! restart, [`Engine::replay`] applies the records after the checkpoint through
//! the same code, so the state served before the crash comes back whole.

use std::path::{Path, PathBuf};

use super::{Engine, LineCounts, Tracked, apply_batch, record};
use crate::source::journal::{Journal, ReadCounts, Record};
use crate::source::tail::{Position, Report, Tail};
use crate::state::metrics::Counter;
use crate::transcript::entry::{Captured, Entry, InputFacts, Millis};

/// A read journaled but not yet applied.
pub(super) struct Staged {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
    pub report: Report,
    pub counts: LineCounts,
    pub now: Millis,
}

impl Engine {
    /// Journal what is read from now on (`serve` with a state folder).
    pub fn set_journal(&mut self, journal: Journal) {
        self.journal = Some(journal);
    }

    /// Whether reads are journaled once history is read.
    pub fn has_journal(&self) -> bool {
        self.journal.is_some()
    }

    /// Reads go through the journal (it is set and history has been read).
    pub(super) fn journaling(&self) -> bool {
        self.journal.is_some() && self.caught_up
    }

    /// Journal one read of `path` and stage it for [`Engine::commit`].
    pub(super) fn stage(
        &mut self,
        path: &Path,
        pos: Position,
        entries: Vec<Entry>,
        report: Report,
        counts: LineCounts,
    ) {
        let now = super::now_ms();
        // Rule matches come with the content, which is not journaled; keep those of
        // the lines that get events (the only ones whose matches count).
        let since = self.agg.lock().unwrap_or_else(|p| p.into_inner()).events_since();
        let matches = entries
            .iter()
            .filter(|e| since.is_some_and(|s| e.timestamp.is_some_and(|ts| ts >= s)))
            .filter_map(|e| e.content.as_ref())
            .flat_map(|c| c.tool_facts.iter())
            .filter(|(_, f)| !f.matches.is_empty())
            .map(|(id, f)| (id.clone(), f.matches.clone()))
            .collect();
        let rec = Record::Read { path: path.to_owned(), pos, entries, counts: read_counts(&report, counts), matches };
        let Some(j) = self.journal.as_mut() else { return };
        j.append(&rec);
        let Record::Read { entries, .. } = rec else { unreachable!() };
        self.staged.push(Staged { path: path.to_owned(), entries, report, counts, now });
    }

    /// Make the staged reads durable, then apply them (no-op without a journal).
    pub fn commit(&mut self) {
        let Some(j) = self.journal.as_mut() else { return };
        if let Err(e) = j.commit() {
            // Counting goes on: a full checkpoint is the fallback, as before the journal.
            self.lock().store.inc(Counter::CheckpointWrites, &["error"], 1.0);
            tracing::warn!(error = %e, "Journal not written; these lines are durable at the next checkpoint.");
        }
        for s in std::mem::take(&mut self.staged) {
            self.apply_staged(s);
        }
    }

    fn apply_staged(&mut self, mut s: Staged) {
        if let Some(t) = self.files.get_mut(&s.path) {
            apply_batch(&self.agg, &t.info, &mut t.warmup, &mut s.entries);
        } else if let Some(info) = self.classify(&s.path) {
            // The file went away after its read: its lines still count.
            apply_batch(&self.agg, &info, &mut false, &mut s.entries);
        }
        record(&self.agg, &s.report, s.counts, s.now, true);
    }

    /// Journal a clock-driven step that changed something.
    pub(super) fn log(&mut self, rec: Record) {
        if let Some(j) = self.journal.as_mut().filter(|_| self.caught_up) {
            j.append(&rec);
            self.commit();
        }
    }

    /// Apply the journal's records after the restored checkpoint, as they were
    /// applied before (no events, no spans: those were sent). Returns how many.
    pub fn replay(&mut self, records: Vec<Record>) -> usize {
        let n = records.len();
        self.lock().set_replaying(true);
        for rec in records {
            match rec {
                Record::Read { path, pos, mut entries, counts, matches } => {
                    reattach(&mut entries, matches);
                    if !self.files.contains_key(&path)
                        && let Some(info) = self.classify(&path)
                    {
                        let t = Tracked::new(info, Tail::new(pos.clone()), false, None);
                        self.files.insert(path.clone(), t);
                    }
                    match self.files.get_mut(&path) {
                        Some(t) => {
                            apply_batch(&self.agg, &t.info, &mut t.warmup, &mut entries);
                            t.tail = Tail::new(pos);
                        }
                        None => tracing::debug!(path = %path.display(), "Journaled file outside the projects folders."),
                    }
                    record(&self.agg, &report_of(&counts), lines_of(&counts), 0, false);
                }
                Record::Tick { now } => {
                    self.lock().tick(now);
                }
                Record::Prune { now, max_age_ms } => {
                    self.lock().prune(now, max_age_ms);
                }
                Record::Processes { cwds, now } => {
                    self.lock().process_check(&cwds.into_iter().collect(), now);
                }
                Record::Gone { path } => {
                    self.files.remove(&path);
                }
                Record::ReadError { kind } => self.lock().store.inc(Counter::ReadErrors, &[&kind], 1.0),
            }
        }
        self.lock().set_replaying(false);
        n
    }

    /// Sequence number a checkpoint taken now holds.
    pub(super) fn journal_seq(&self) -> u64 {
        self.journal.as_ref().map_or(0, Journal::seq)
    }

    /// The journal has grown to the last checkpoint's size: time to compact.
    pub fn wants_compaction(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.wants_compaction(self.checkpoint_size))
    }

    /// After a checkpoint holding everything journaled was written: empty the journal.
    pub(super) fn compacted(&mut self, checkpoint_bytes: u64) {
        self.checkpoint_size = checkpoint_bytes;
        if let Some(j) = self.journal.as_mut()
            && let Err(e) = j.reset()
        {
            tracing::warn!(error = %e, "Journal not emptied; its records are skipped by sequence number.");
        }
    }
}

/// The rule matches a read recorded, back on their entries' tool calls.
fn reattach(entries: &mut [Entry], matches: Vec<(String, Vec<crate::rules::Match>)>) {
    for (id, m) in matches {
        if let Some(e) = entries.iter_mut().find(|e| e.tool_uses.iter().any(|t| *t.id == *id)) {
            let c = e.content.get_or_insert_with(|| Box::new(Captured::default()));
            c.tool_facts.push((id, InputFacts { matches: m, ..InputFacts::default() }));
        }
    }
}

fn read_counts(r: &Report, c: LineCounts) -> ReadCounts {
    ReadCounts {
        bytes: r.bytes,
        ok: c.ok,
        malformed: c.malformed,
        unknown_type: c.unknown_type,
        oversized: r.oversized,
        truncated: r.truncated,
        replaced: r.replaced,
    }
}

fn report_of(c: &ReadCounts) -> Report {
    Report { bytes: c.bytes, oversized: c.oversized, truncated: c.truncated, replaced: c.replaced, ..Report::default() }
}

fn lines_of(c: &ReadCounts) -> LineCounts {
    LineCounts { ok: c.ok, malformed: c.malformed, unknown_type: c.unknown_type }
}
