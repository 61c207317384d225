//! Human decisions about live sessions: approvals of tool calls, paused sessions, notes.
//!
//! In: what the hook registers (a tool call waiting for a person) and what a person
//! decides (allow or deny, pause or resume, a note), through the HTTP API. Out: the
//! state the hook reads back (a decision, whether a session is paused, the notes to
//! deliver), a way to wait for a decision ([`Control::wait`], for the long-poll), and one
//! event on the bus for each change (`approval_pending`, `approval_decided`,
//! `session_paused`, `session_resumed`, `note_queued`, `note_delivered`).
//!
//! Promises: one owner ([`Control`]) holds all of it behind one lock; memory is bounded
//! (at most [`MAX_APPROVALS`] approvals, decided ones forgotten an hour after their
//! decision, a pending one expired after an hour; at most [`MAX_NOTES`] queued notes per
//! session and [`MAX_SESSIONS`] sessions with a pause or notes); a decision is made once
//! (a second one is refused); a note is handed out once, ever. Pauses and undelivered
//! notes survive a restart (`control.json` in the state folder, rewritten whole on each
//! change); approvals do not: the hook waiting for one loses its connection with the old
//! daemon and answers `ask`.
//!
//! The control token that guards these actions is [`token`].

mod metrics;
pub mod token;

pub use metrics::FAMILIES;
use metrics::{Collector, SETTLED};

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::events::{Bus, Event, Kind};
use crate::transcript::entry::cap_text;

/// Approvals kept at most (pending and decided); past it, the oldest decided go first.
pub const MAX_APPROVALS: usize = 1000;
/// A decided approval stays listed this long after its decision.
pub const DECIDED_KEPT: Duration = Duration::from_secs(3600);
/// A pending approval nobody decided nor expired is expired after this long (its hook is gone).
pub const PENDING_MAX: Duration = Duration::from_secs(3600);
/// Notes queued per session at most.
pub const MAX_NOTES: usize = 100;
/// Sessions with a pause or queued notes at most.
pub const MAX_SESSIONS: usize = 10_000;
/// A note's text at most, in bytes.
pub const MAX_NOTE_BYTES: usize = 16 << 10;
/// Summaries, rules, reasons and messages are cut to this many bytes when stored.
const MAX_TEXT_BYTES: usize = 4096;
/// Summaries and note text are cut to this many bytes on events.
pub const EVENT_TEXT_BYTES: usize = 200;
/// The file of pauses and undelivered notes in the state folder.
pub const FILE_NAME: &str = "control.json";

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for a person.
    Pending,
    /// A person allowed the call.
    Allowed,
    /// A person denied the call.
    Denied,
    /// Nobody decided in time (the hook gave up and answered `ask`).
    Expired,
}

impl ApprovalState {
    /// `pending`, `allowed`, `denied` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Allowed => "allowed",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
        }
    }
}

/// A person's decision on a pending approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Let the call run.
    Allow,
    /// Refuse it (the reason goes back to Claude).
    Deny,
}

/// What the hook registers: a tool call waiting for a person.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewApproval {
    /// The session the call is in.
    pub session_id: String,
    /// The tool (`Bash`, `Write`, …).
    pub tool_name: String,
    /// The command, path or pattern, for the person deciding.
    pub summary: String,
    /// The rule whose `approve` action asked for this.
    pub rule: String,
    /// The rule's reason.
    pub reason: String,
    /// Claude Code's id of the call, when the hook knows it.
    pub tool_use_id: Option<String>,
}

/// A tool call waiting for, or given, a person's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Its id (random, 16 hex digits).
    pub id: String,
    /// The call, as the hook registered it (serialized flat).
    #[serde(flatten)]
    pub call: NewApproval,
    /// When it was registered (ms since the epoch).
    pub created_ms: i64,
    /// Where it stands.
    pub state: ApprovalState,
    /// The reason given with the decision.
    pub decided_reason: Option<String>,
    /// Who decided: `console`, `cli`, `api`, or `hook` / `daemon` for an expiry.
    pub decided_by: Option<String>,
    /// When it was decided (ms since the epoch).
    pub decided_ms: Option<i64>,
}

/// A note for Claude, queued until a hook takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Its id (random, 16 hex digits).
    pub id: String,
    /// What the person wrote.
    pub text: String,
    /// When it was queued (ms since the epoch).
    #[serde(default)]
    pub created_ms: i64,
}

/// A paused session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// The person's message (the reason its tool calls are denied with).
    pub message: Option<String>,
    /// Since when (ms since the epoch).
    pub since_ms: i64,
}

/// What the hook asks before a tool call: `GET /api/control/{session_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Tool calls are to be denied.
    pub paused: bool,
    /// The person's message, when paused.
    pub message: Option<String>,
    /// Notes waiting for delivery.
    pub notes_pending: usize,
}

/// Why a decision was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideError {
    /// No approval with this id (never, or forgotten).
    Unknown,
    /// Already decided or expired; here it is.
    Decided(Box<Approval>),
}

/// A bound was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full(pub &'static str);

/// What survives a restart.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    #[serde(default)]
    paused: BTreeMap<String, Pause>,
    #[serde(default)]
    notes: BTreeMap<String, VecDeque<Note>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By registration, oldest first.
    approvals: VecDeque<Approval>,
    saved: Saved,
}

/// Looks up the `project` label of a session, for the events.
pub type ProjectOf = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The one owner of approvals, pauses and notes.
pub struct Control {
    inner: Mutex<Inner>,
    /// Bumped on every change of an approval: long-polls wait on it.
    changed: tokio::sync::watch::Sender<u64>,
    file: Option<PathBuf>,
    bus: Arc<Bus>,
    project_of: ProjectOf,
    /// Approvals settled, indexed like [`SETTLED`].
    settled: [AtomicU64; 3],
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").field("file", &self.file).finish()
    }
}

impl Control {
    /// A store publishing to `bus`, keeping pauses and notes in `state_dir` (when given)
    /// and reading back what an earlier run kept there. An unreadable file is logged and
    /// left for a fresh start.
    pub fn new(bus: Arc<Bus>, state_dir: Option<PathBuf>, project_of: ProjectOf) -> Control {
        let file = state_dir.map(|d| d.join(FILE_NAME));
        let saved = match &file {
            Some(p) => match std::fs::read(p) {
                Ok(bytes) => serde_json::from_slice::<Saved>(&bytes).unwrap_or_else(|e| {
                    tracing::warn!(path = %p.display(), error = %e, "Unreadable control file; starting with no pauses or notes.");
                    Saved::default()
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "Cannot read the control file; starting with no pauses or notes.");
                    Saved::default()
                }
            },
            None => Saved::default(),
        };
        if !saved.paused.is_empty() || !saved.notes.is_empty() {
            tracing::info!(
                paused = saved.paused.len(),
                notes = saved.notes.values().map(VecDeque::len).sum::<usize>(),
                "Restored paused sessions and undelivered notes."
            );
        }
        let (changed, _) = tokio::sync::watch::channel(0);
        Control {
            inner: Mutex::new(Inner { approvals: VecDeque::new(), saved }),
            changed,
            file,
            bus,
            project_of,
            settled: Default::default(),
        }
    }

    /// The approvals' metrics ([`FAMILIES`]), for [`crate::server::Exposition::register`].
    pub fn collector(self: &Arc<Control>) -> Box<dyn prometheus_client::collector::Collector> {
        Box::new(Collector(Arc::clone(self)))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, session_id: &str, kind: Kind) {
        let project = (self.project_of)(session_id).unwrap_or_default();
        self.bus.publish(Event {
            id: 0,
            ts_ms: now_ms(),
            session_id: session_id.to_owned(),
            project,
            agent_id: None,
            trace_id: None,
            span_id: None,
            kind,
        });
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Register a pending approval; publishes `approval_pending`. Errors: [`MAX_APPROVALS`]
    /// are all pending.
    pub fn register(&self, new: NewApproval) -> Result<Approval, Full> {
        let now = now_ms();
        let (approval, expired) = {
            let mut inner = self.lock();
            let expired = prune(&mut inner.approvals, now);
            if inner.approvals.len() >= MAX_APPROVALS {
                // The oldest decided one makes room; pending ones are somebody's wait.
                match inner.approvals.iter().position(|a| a.state != ApprovalState::Pending) {
                    Some(i) => {
                        inner.approvals.remove(i);
                    }
                    None => return Err(Full("too many pending approvals")),
                }
            }
            let a = Approval {
                id: random_id(),
                call: NewApproval {
                    session_id: cap_text(&new.session_id, 256),
                    tool_name: cap_text(&new.tool_name, 256),
                    summary: cap_text(&new.summary, MAX_TEXT_BYTES),
                    rule: cap_text(&new.rule, 256),
                    reason: cap_text(&new.reason, MAX_TEXT_BYTES),
                    tool_use_id: new.tool_use_id.map(|t| cap_text(&t, 256)),
                },
                created_ms: now,
                state: ApprovalState::Pending,
                decided_reason: None,
                decided_by: None,
                decided_ms: None,
            };
            inner.approvals.push_back(a.clone());
            (a, expired)
        };
        self.decided_events(&expired);
        let call = &approval.call;
        self.publish(
            &call.session_id,
            Kind::ApprovalPending {
                approval_id: approval.id.clone(),
                tool: call.tool_name.clone(),
                summary: cap_text(&call.summary, EVENT_TEXT_BYTES),
                rule: call.rule.clone(),
                reason: cap_text(&call.reason, EVENT_TEXT_BYTES),
                tool_use_id: call.tool_use_id.clone(),
            },
        );
        Ok(approval)
    }

    /// Pending approvals (oldest first), then decided ones (latest decision first).
    pub fn list(&self) -> Vec<Approval> {
        let expired = {
            let mut inner = self.lock();
            prune(&mut inner.approvals, now_ms())
        };
        self.decided_events(&expired);
        let inner = self.lock();
        let mut out: Vec<Approval> =
            inner.approvals.iter().filter(|a| a.state == ApprovalState::Pending).cloned().collect();
        let mut decided: Vec<Approval> =
            inner.approvals.iter().filter(|a| a.state != ApprovalState::Pending).cloned().collect();
        decided.sort_by_key(|a| std::cmp::Reverse(a.decided_ms));
        out.extend(decided);
        out
    }

    /// One approval.
    pub fn get(&self, id: &str) -> Option<Approval> {
        self.lock().approvals.iter().find(|a| a.id == id).cloned()
    }

    /// The approval once it is no longer pending, or as it is when `wait` has passed.
    /// `None`: unknown (or forgotten meanwhile).
    pub async fn wait(&self, id: &str, wait: Duration) -> Option<Approval> {
        // Subscribed before the first look: a decision in between is not missed.
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let a = self.get(id)?;
            if a.state != ApprovalState::Pending {
                return Some(a);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // Timed out (or the store is going away): as it is now.
                _ => return self.get(id),
            }
        }
    }

    /// Decide a pending approval; publishes `approval_decided`.
    pub fn decide(&self, id: &str, decision: Decision, reason: &str, by: &str) -> Result<Approval, DecideError> {
        let state = match decision {
            Decision::Allow => ApprovalState::Allowed,
            Decision::Deny => ApprovalState::Denied,
        };
        self.settle(id, state, Some(reason), by)
    }

    /// Mark a pending approval expired (its hook stopped waiting); publishes `approval_decided`.
    pub fn expire(&self, id: &str, by: &str) -> Result<Approval, DecideError> {
        self.settle(id, ApprovalState::Expired, None, by)
    }

    fn settle(&self, id: &str, state: ApprovalState, reason: Option<&str>, by: &str) -> Result<Approval, DecideError> {
        let a = {
            let mut inner = self.lock();
            let Some(a) = inner.approvals.iter_mut().find(|a| a.id == id) else {
                return Err(DecideError::Unknown);
            };
            if a.state != ApprovalState::Pending {
                return Err(DecideError::Decided(Box::new(a.clone())));
            }
            a.state = state;
            a.decided_reason = reason.filter(|r| !r.is_empty()).map(|r| cap_text(r, MAX_TEXT_BYTES));
            a.decided_by = Some(cap_text(by, 64));
            a.decided_ms = Some(now_ms());
            a.clone()
        };
        self.decided_events(std::slice::from_ref(&a));
        Ok(a)
    }

    fn decided_events(&self, list: &[Approval]) {
        if !list.is_empty() {
            self.bump();
        }
        for a in list {
            if let Some(i) = SETTLED.iter().position(|s| *s == a.state) {
                self.settled[i].fetch_add(1, Ordering::Relaxed);
            }
            self.publish(
                &a.call.session_id,
                Kind::ApprovalDecided {
                    approval_id: a.id.clone(),
                    tool: a.call.tool_name.clone(),
                    state: a.state.as_str().to_owned(),
                    reason: a.decided_reason.as_ref().map(|r| cap_text(r, EVENT_TEXT_BYTES)),
                    decided_by: a.decided_by.clone(),
                },
            );
        }
    }

    /// Pause a session (again: the message is replaced); publishes `session_paused`.
    pub fn pause(&self, session_id: &str, message: Option<&str>) -> Result<Status, Full> {
        let message = message.map(str::trim).filter(|m| !m.is_empty()).map(|m| cap_text(m, MAX_TEXT_BYTES));
        {
            let mut inner = self.lock();
            if !inner.saved.paused.contains_key(session_id) && sessions(&inner.saved) >= MAX_SESSIONS {
                return Err(Full("too many sessions with pauses or notes"));
            }
            inner.saved.paused.insert(session_id.to_owned(), Pause { message: message.clone(), since_ms: now_ms() });
            self.save(&inner.saved);
        }
        self.publish(session_id, Kind::SessionPaused { message: message.map(|m| cap_text(&m, EVENT_TEXT_BYTES)) });
        Ok(self.status(session_id))
    }

    /// Resume a paused session; publishes `session_resumed` if it was paused.
    pub fn resume(&self, session_id: &str) -> Status {
        let was = {
            let mut inner = self.lock();
            let was = inner.saved.paused.remove(session_id).is_some();
            if was {
                self.save(&inner.saved);
            }
            was
        };
        if was {
            self.publish(session_id, Kind::SessionResumed {});
        }
        self.status(session_id)
    }

    /// Whether a session is paused, and how many notes wait for it.
    pub fn status(&self, session_id: &str) -> Status {
        let inner = self.lock();
        let pause = inner.saved.paused.get(session_id);
        Status {
            paused: pause.is_some(),
            message: pause.and_then(|p| p.message.clone()),
            notes_pending: inner.saved.notes.get(session_id).map_or(0, VecDeque::len),
        }
    }

    /// Queue a note for a session; publishes `note_queued`.
    pub fn queue_note(&self, session_id: &str, text: &str) -> Result<Note, Full> {
        let note = Note { id: random_id(), text: cap_text(text, MAX_NOTE_BYTES), created_ms: now_ms() };
        {
            let mut inner = self.lock();
            let known = inner.saved.notes.contains_key(session_id) || inner.saved.paused.contains_key(session_id);
            if !known && sessions(&inner.saved) >= MAX_SESSIONS {
                return Err(Full("too many sessions with pauses or notes"));
            }
            let queue = inner.saved.notes.entry(session_id.to_owned()).or_default();
            if queue.len() >= MAX_NOTES {
                return Err(Full("too many notes queued for this session"));
            }
            queue.push_back(note.clone());
            self.save(&inner.saved);
        }
        self.publish(
            session_id,
            Kind::NoteQueued { note_id: note.id.clone(), text: cap_text(&note.text, EVENT_TEXT_BYTES) },
        );
        Ok(note)
    }

    /// Every note queued for a session, oldest first, handed out this once; publishes
    /// `note_delivered` for each.
    pub fn take_notes(&self, session_id: &str) -> Vec<Note> {
        let notes: Vec<Note> = {
            let mut inner = self.lock();
            let notes = inner.saved.notes.remove(session_id).map(Vec::from).unwrap_or_default();
            if !notes.is_empty() {
                self.save(&inner.saved);
            }
            notes
        };
        for n in &notes {
            self.publish(session_id, Kind::NoteDelivered { note_id: n.id.clone() });
        }
        notes
    }

    /// Write pauses and notes whole (temporary file, then rename). A failure is logged:
    /// the state in memory stays right, only a restart would lose it.
    fn save(&self, saved: &Saved) {
        let Some(path) = &self.file else { return };
        let tmp = path.with_extension("json.tmp");
        // Private (0600) like the checkpoint: notes and messages are the user's words.
        let write = |bytes: Vec<u8>| {
            let _ = std::fs::remove_file(&tmp);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            std::io::Write::write_all(&mut opts.open(&tmp)?, &bytes)
        };
        let r = serde_json::to_vec(saved)
            .map_err(std::io::Error::other)
            .and_then(write)
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = r {
            tracing::warn!(path = %path.display(), error = %e, "Cannot write the control file; pauses and notes are kept in memory only.");
        }
    }
}

fn sessions(saved: &Saved) -> usize {
    saved.paused.len() + saved.notes.keys().filter(|k| !saved.paused.contains_key(*k)).count()
}

/// Forget decided approvals older than [`DECIDED_KEPT`]; expire pending ones older than
/// [`PENDING_MAX`] (returned, for their events).
fn prune(list: &mut VecDeque<Approval>, now: i64) -> Vec<Approval> {
    let kept = DECIDED_KEPT.as_millis() as i64;
    list.retain(|a| a.state == ApprovalState::Pending || a.decided_ms.is_some_and(|d| now - d < kept));
    let mut expired = Vec::new();
    for a in list.iter_mut() {
        if a.state == ApprovalState::Pending && now - a.created_ms >= PENDING_MAX.as_millis() as i64 {
            a.state = ApprovalState::Expired;
            a.decided_by = Some("daemon".into());
            a.decided_ms = Some(now);
            expired.push(a.clone());
        }
    }
    expired
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// 8 random bytes as 16 hex digits.
fn random_id() -> String {
    hex(&token::random_bytes::<8>())
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
