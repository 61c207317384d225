//! Turns and session lifecycles: when a turn starts and ends (the one model the
//! turn histogram and the traces share), and how sessions go idle, end, resume
//! and are forgotten, with the gauges that follow from them.

use std::collections::{HashMap, HashSet};

use super::{Aggregator, Pending, State};
use crate::state::metrics::{Counter, Exemplar, Gauge, Histogram};
use crate::transcript::entry::{Entry, Kind, Millis};

/// Calls without a result kept after their session ended (see `Aggregator::orphans`).
const MAX_ORPHANS: usize = 10_000;

impl Aggregator {
    /// A line other than a new prompt, in the turn model: inside a turn it is the
    /// turn's latest activity; outside one, a line that does something (a model call,
    /// a tool call or result, an API error, a compaction) starts an unprompted turn
    /// (work with no prompt typed: warm-up calls, a background task's completion,
    /// activity after the previous turn ended idle).
    pub(super) fn turn_activity(&mut self, id: &str, e: &Entry) {
        let Some(ts) = e.timestamp.filter(|_| matches!(e.kind, Kind::User | Kind::Assistant | Kind::System)) else {
            return;
        };
        let s = self.sessions.get_mut(id).expect("session exists");
        if s.turn_start_ms.is_some() {
            s.turn_last_ms = s.turn_last_ms.max(ts);
        } else if e.response.is_some()
            || e.api_error.is_some()
            || !e.tool_uses.is_empty()
            || !e.tool_results.is_empty()
            || e.compaction.is_some()
        {
            s.turn_start_ms = Some(ts);
            s.turn_last_ms = ts;
        }
    }

    /// End the session's turn, if one is open: at the next prompt, when the session goes
    /// idle with no tool call running, when it ends. The one place a turn ends: its
    /// duration (start to last activity) goes to the histogram, with its trace's root as
    /// exemplar, and the same start and end to the tracer for that root.
    pub(super) fn end_turn(&mut self, id: &str) {
        let Some(s) = self.sessions.get_mut(id) else { return };
        let Some(start) = s.turn_start_ms.take() else { return };
        let end = s.turn_last_ms.max(start);
        let exemplar = self.tracer.as_ref().and_then(|t| t.current(id)).map(|(trace_id, span_id)| Exemplar {
            trace_id,
            span_id,
            at_ms: end,
            value: 0.0,
        });
        self.store.observe_with(Histogram::TurnDuration, &[&s.project], (end - start) as f64, exemplar);
        if let Some(t) = &mut self.tracer {
            t.end_turn(id, start, end);
        }
    }

    /// Advance session lifecycles to `now` (idle, ended) and refresh gauges.
    /// Returns whether any session changed state.
    pub fn tick(&mut self, now: Millis) -> bool {
        let (idle, end) = (self.config.idle_after_ms, self.config.end_after_ms);
        let mut ended = Vec::new();
        // (session, project, last activity, event): sent at `now` for sessions active since events began.
        let mut lifecycle: Vec<(String, String, Millis, crate::events::Kind)> = Vec::new();
        let mut changed = false;
        let mut turns_ended = Vec::new();
        for s in self.sessions.values_mut() {
            if s.state == State::Ended {
                continue;
            }
            let quiet = now - s.last_ms;
            if quiet >= end {
                ended.push(s.id.clone());
            } else if quiet >= idle && s.state == State::Active {
                s.state = State::Idle;
                changed = true;
                lifecycle.push((s.id.clone(), s.project.to_string(), s.last_ms, crate::events::Kind::SessionIdle {}));
                // A tool call of this turn still running (a long build, a sub-agent) keeps
                // it open. (A call left without a result by an earlier turn does not.)
                let start = s.turn_start_ms.unwrap_or(Millis::MAX);
                if !self.pending.values().any(|p| p.session == s.id && p.at.is_some_and(|at| at >= start)) {
                    turns_ended.push(s.id.clone());
                }
            }
        }
        for id in &turns_ended {
            self.end_turn(id);
        }
        lifecycle.extend(self.end_sessions(&ended, crate::events::EndReason::IdleTimeout));
        self.emit_lifecycle(lifecycle, now);
        if let Some(stats) = self.events.as_ref().and_then(|em| em.stats.clone()) {
            use std::sync::atomic::Ordering::Relaxed;
            let (p, l) = (stats.published.load(Relaxed), stats.lagged.load(Relaxed));
            self.store.inc(Counter::EventsPublished, &[], p.saturating_sub(self.bus_reported.0) as f64);
            self.store.inc(Counter::EventsLagged, &[], l.saturating_sub(self.bus_reported.1) as f64);
            self.bus_reported = (p, l);
        }
        let evicted = self.dedup.evicted();
        self.store.inc(Counter::DedupEvictions, &[], (evicted - self.evictions_reported.min(evicted)) as f64);
        self.evictions_reported = evicted;
        self.refresh_gauges(now);
        changed || !ended.is_empty()
    }

    /// Close sessions just marked ended: their turn, their trace, their pending calls.
    /// Returns their `session_end` events, to send with [`Aggregator::emit_lifecycle`].
    fn end_sessions(
        &mut self,
        ended: &[String],
        reason: crate::events::EndReason,
    ) -> Vec<(String, String, Millis, crate::events::Kind)> {
        let mut out = Vec::new();
        for id in ended {
            self.end_turn(id);
            let Some(s) = self.sessions.get_mut(id) else { continue };
            s.state = State::Ended;
            out.push((s.id.clone(), s.project.to_string(), s.last_ms, crate::events::Kind::SessionEnd { reason }));
            if s.first_ms <= s.last_ms {
                let ms = (s.last_ms - s.first_ms) as f64;
                self.store.observe(Histogram::SessionDuration, &[&s.project], ms);
            }
        }
        if !ended.is_empty() {
            let ended: HashSet<&String> = ended.iter().collect();
            let orphans = &mut self.orphans;
            self.pending.retain(|id, p| {
                if !ended.contains(&p.session) {
                    return true;
                }
                orphans.insert(id.clone(), Pending { at: None, ..std::mem::take(p) });
                false
            });
        }
        out
    }

    /// Send lifecycle events of sessions active since events began (not for old history),
    /// stamped when they happened: going idle and ending by the timeouts, when the quiet
    /// time ran out after the last activity (not when a tick noticed it: a replay of
    /// history would stamp them all now); an exit, when it was seen.
    fn emit_lifecycle(&self, items: Vec<(String, String, Millis, crate::events::Kind)>, now: Millis) {
        use crate::events::{EndReason, Kind};
        let Some(since) = self.events.as_ref().map(|em| em.since_ms) else { return };
        for (sid, project, last, kind) in items {
            if last >= since {
                let at = match kind {
                    Kind::SessionIdle {} => now.min(last.saturating_add(self.config.idle_after_ms)),
                    Kind::SessionEnd { reason: EndReason::IdleTimeout } => {
                        now.min(last.saturating_add(self.config.end_after_ms))
                    }
                    _ => now,
                };
                self.emit(&sid, &project, None, at, kind);
            }
        }
    }

    /// The working directories of running Claude Code processes, seen now: a
    /// session whose process was seen before and is gone ends (`process_exit`).
    /// Returns whether any session ended.
    pub fn process_check(&mut self, cwds: &HashSet<String>, now: Millis) -> bool {
        let mut gone = Vec::new();
        for s in self.sessions.values_mut() {
            let Some(cwd) = s.cwd.as_deref() else { continue };
            if cwds.contains(cwd) {
                s.attached = true;
            } else if s.attached && s.state != State::Ended {
                gone.push(s.id.clone());
            }
        }
        for id in &gone {
            if let Some(s) = self.sessions.get_mut(id) {
                s.attached = false;
            }
        }
        let items = self.end_sessions(&gone, crate::events::EndReason::ProcessExit);
        self.emit_lifecycle(items, now);
        !gone.is_empty()
    }

    /// Forget ended sessions quiet for longer than `max_age_ms` (their counts
    /// stay in the counters). Claude Code deletes transcripts after 30 days by
    /// default, so a session older than that cannot be resumed from its file.
    pub fn prune(&mut self, now: Millis, max_age_ms: Millis) -> usize {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| s.state != State::Ended || now - s.last_ms <= max_age_ms);
        // Kept past their session (its file may grow again, as a copied transcript does),
        // within a bound: past it, those of forgotten sessions go.
        if self.orphans.len() > MAX_ORPHANS {
            let sessions = &self.sessions;
            self.orphans.retain(|_, p| sessions.contains_key(&p.session));
        }
        before - self.sessions.len()
    }

    fn refresh_gauges(&mut self, now: Millis) {
        let mut live: HashMap<(&str, &str), f64> = HashMap::new();
        let mut util: HashMap<&str, f64> = HashMap::new();
        for s in self.sessions.values() {
            let state = match s.state {
                State::Active => "active",
                State::Idle => "idle",
                State::Ended => continue,
            };
            *live.entry((&s.project, state)).or_default() += 1.0;
            let u = util.entry(&s.project).or_default();
            *u = u.max(s.context_utilization());
        }
        let live: Vec<(Vec<&str>, f64)> = live.into_iter().map(|((p, st), n)| (vec![p, st], n)).collect();
        let util: Vec<(Vec<&str>, f64)> = util.into_iter().map(|(p, u)| (vec![p], u)).collect();
        let last: Vec<(Vec<&str>, f64)> =
            self.last_activity.iter().map(|(p, ms)| (vec![p.as_str()], *ms as f64 / 1000.0)).collect();
        // Tool calls still waiting for their result, and the oldest one's age.
        let mut pending: HashMap<(&str, &str), (f64, f64)> = HashMap::new();
        for p in self.pending.values() {
            let Some(s) = self.sessions.get(&p.session).filter(|s| s.state != State::Ended) else { continue };
            let e = pending.entry((&s.project, &p.tool)).or_default();
            e.0 += 1.0;
            e.1 = e.1.max(p.at.map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0));
        }
        let pending_count: Vec<(Vec<&str>, f64)> = pending.iter().map(|((p, t), (n, _))| (vec![*p, *t], *n)).collect();
        let pending_age: Vec<(Vec<&str>, f64)> = pending.iter().map(|((p, t), (_, a))| (vec![*p, *t], *a)).collect();
        let mut store = std::mem::take(&mut self.store);
        store.set_gauges(Gauge::Sessions, live);
        store.set_gauges(Gauge::ContextUtilization, util);
        store.set_gauges(Gauge::LastActivity, last);
        store.set_gauges(Gauge::ToolCallsPending, pending_count);
        store.set_gauges(Gauge::ToolCallOldestPending, pending_age);
        store.set_gauges(Gauge::DedupWindow, [(vec![], self.dedup.len() as f64)]);
        self.store = store;
    }
}
