//! The daemon's loop: wake-ups from inotify, a periodic reconcile, ticks and checkpoints.
//!
//! In: an [`Engine`] and a channel of messages. notify's callback sends the
//! paths it saw change; when its queue is full (or notify reports an inotify
//! overflow) a flag asks for a full reconcile instead, so nothing is missed.
//! Between wake-ups the thread sleeps: no busy loop.
//!
//! The reconcile walks every projects folder and looks at every file (one
//! `stat` each): it costs in proportion to the history, not to what changed,
//! so it runs only as often as needed. While file events can be trusted to
//! report every change (every projects folder watched, no event lost to a
//! notify error, no file or folder failing to read) they do the work, and the
//! walk is a safety net every [`TRUSTED_RECONCILE_EVERY`]. Otherwise (`--poll`,
//! no inotify, a folder that could not be watched, a notify error such as the
//! watch limit, something to retry) it runs every `reconcile_every`, and it also
//! finds what events never report (network filesystems). A new folder, an
//! overflow or a full queue start one at once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode, Watcher};

use crate::engine::Engine;
use crate::source::discover::FileId;

const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// With a journal, the whole state is rewritten at least this often when it changed.
const FULL_CHECKPOINT_EVERY: Duration = Duration::from_secs(15 * 60);

/// A second look at the folders this soon after a new folder appeared.
const FOLLOW_UP: Duration = Duration::from_millis(250);

/// While file events are trusted, the folders are still walked this often (or every
/// `reconcile_every`, if that is longer): a safety net, not the way changes are found.
pub const TRUSTED_RECONCILE_EVERY: Duration = Duration::from_secs(5 * 60);

/// Messages to the engine thread.
#[derive(Debug)]
pub enum Msg {
    /// Paths that file events reported as created, changed, moved or removed.
    Paths(Vec<PathBuf>),
    /// Stop: commit what was read, write a last checkpoint and return from [`run`].
    Shutdown,
}

/// How the loop paces its work.
#[derive(Debug, Clone)]
pub struct Options {
    /// No inotify; only the periodic scan.
    pub poll: bool,
    /// How often to walk the folders while file events cannot be trusted to report
    /// every change: with `poll` (then it is how every change is found), without
    /// inotify, with a folder unwatched or an event lost, or while a file or folder
    /// waits to be read again. While they can, the walk runs every
    /// [`TRUSTED_RECONCILE_EVERY`] or this, whichever is longer.
    pub reconcile_every: Duration,
    /// Lifecycle and gauge refresh.
    pub tick_every: Duration,
    /// How often to see whether the whole state should be rewritten (with a journal,
    /// it is only when the journal has grown, or every 15 minutes when something changed).
    pub checkpoint_every: Duration,
    /// Where to write the checkpoint; `None` disables it.
    pub state_dir: Option<PathBuf>,
    /// Ended sessions are forgotten this long after their last activity (their counts stay).
    pub session_retention: Duration,
    /// How often to look for exited Claude Code processes (`None`: never).
    pub process_check_every: Option<Duration>,
}

/// What notify's callback tells the loop besides paths.
#[derive(Debug, Default)]
struct Flags {
    /// Events were dropped (inotify overflow, our queue full): walk once.
    overflow: AtomicBool,
    /// notify reported an error (such as the watch limit on a new folder): some
    /// folder may be unwatched, so events are not trusted from now on.
    lost: AtomicBool,
}

/// Run until `Msg::Shutdown` (or all senders are gone); writes a last checkpoint.
pub fn run(mut engine: Engine, opts: Options, tx: SyncSender<Msg>, rx: Receiver<Msg>, ready: Arc<AtomicBool>) {
    let flags = Arc::new(Flags::default());
    let mut watcher = if opts.poll { None } else { make_watcher(tx, Arc::clone(&flags)) };
    let mut watched = Watches::default();
    let mut complete = ensure_watches(watcher.as_mut(), &engine, &mut watched);

    let started = Instant::now();
    engine.reconcile();
    engine.set_caught_up();
    // Saved before /metrics opens, so nothing served is ahead of the checkpoint's counters.
    save(&mut engine, &opts);
    ready.store(true, Ordering::Release);
    tracing::info!(
        files = engine.files_tracked(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Read existing history; following new lines."
    );

    let now = Instant::now();
    let (mut last_reconcile, mut next_tick, mut next_save) = (now, now + opts.tick_every, now + opts.checkpoint_every);
    let mut follow_up: Option<Instant> = None;
    let mut retrying = engine.retrying();
    let mut trusted = None;
    let mut dirty = false;
    let mut next_prune = now;
    let mut next_full = now + FULL_CHECKPOINT_EVERY;
    let mut next_process_check = opts.process_check_every.map(|d| now + d);
    loop {
        let trust = watcher.is_some() && complete && !flags.lost.load(Ordering::Acquire) && !engine.retrying();
        if trusted != Some(trust) {
            tracing::debug!(events_trusted = trust, "Folder walks paced.");
            trusted = Some(trust);
        }
        let every = if trust { opts.reconcile_every.max(TRUSTED_RECONCILE_EVERY) } else { opts.reconcile_every };
        let next_reconcile = follow_up.map_or(last_reconcile + every, |f| f.min(last_reconcile + every));
        let deadline = next_reconcile.min(next_tick).min(next_save).min(next_process_check.unwrap_or(next_save));
        let timeout = deadline.saturating_duration_since(Instant::now());
        let mut paths = BTreeSet::new();
        let mut stop = false;
        match rx.recv_timeout(timeout) {
            Ok(Msg::Paths(p)) => paths.extend(p),
            Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => stop = true,
            Err(RecvTimeoutError::Timeout) => {}
        }
        // Coalesce whatever else is already queued.
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Paths(p) => paths.extend(p),
                Msg::Shutdown => stop = true,
            }
        }
        let mut rescan = flags.overflow.swap(false, Ordering::AcqRel);
        let mut new_folder = false;
        for p in &paths {
            if p.extension().is_some_and(|e| e == "jsonl") {
                if engine.track(p) {
                    dirty |= engine.poll(p);
                }
            } else if p.is_dir() {
                // A new folder: its files may predate the watch on it.
                rescan = true;
                new_folder = true;
            } else if engine.settings().projects_dirs.iter().any(|d| d.starts_with(p)) {
                // A projects folder (or one above it) went or moved: watch for its return.
                rescan = true;
            }
        }
        // One journal sync for everything this wake-up read, then it counts.
        engine.commit();
        if stop {
            break;
        }
        if !paths.is_empty() {
            engine.refresh_gauges();
        }
        let now = Instant::now();
        if rescan || now >= next_reconcile {
            complete = ensure_watches(watcher.as_mut(), &engine, &mut watched);
            dirty |= engine.reconcile() > 0;
            engine.refresh_gauges();
            // A folder that could not be listed could not be watched either (notify
            // skips it): once everything reads again, watch the whole tree afresh.
            let was_retrying = std::mem::replace(&mut retrying, engine.retrying());
            if was_retrying && !retrying {
                watched.recursive.clear();
                complete = ensure_watches(watcher.as_mut(), &engine, &mut watched);
            }
            last_reconcile = now;
            // After a new folder, look once more shortly: a file created in it after
            // this walk but before the watcher added the folder sends no event.
            follow_up = new_folder.then(|| now + FOLLOW_UP.min(opts.reconcile_every));
        }
        if now >= next_tick {
            dirty |= engine.tick();
            next_tick = now + opts.tick_every;
        }
        if let (Some(at), Some(every)) = (next_process_check, opts.process_check_every)
            && now >= at
        {
            dirty |= engine.process_check();
            next_process_check = Some(now + every);
        }
        if now >= next_prune {
            dirty |= engine.prune(opts.session_retention) > 0;
            next_prune = now + PRUNE_EVERY;
        }
        if now >= next_save {
            // With a journal, new lines are durable already: the whole state is
            // rewritten only to fold a grown journal in, and now and then for what
            // the sinks keep in it (delivery baselines, open turns).
            let full = !engine.has_journal() || engine.wants_compaction() || now >= next_full;
            if dirty && full {
                save(&mut engine, &opts);
                dirty = false;
                next_full = now + FULL_CHECKPOINT_EVERY;
            }
            next_save = now + opts.checkpoint_every;
        }
    }
    engine.tick();
    save(&mut engine, &opts);
    drop(watcher);
}

fn save(engine: &mut Engine, opts: &Options) {
    if let Some(dir) = &opts.state_dir
        && let Err(e) = engine.save(dir)
    {
        tracing::warn!(error = %e, "Checkpoint not written; counters will be rebuilt from files after a restart.");
    }
}

fn make_watcher(tx: SyncSender<Msg>, flags: Arc<Flags>) -> Option<notify::RecommendedWatcher> {
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            // Reads (ours included: each folder a walk opens) and metadata changes
            // (atime) carry no new lines; reacting to them would make every
            // reconcile wake us again.
            if matches!(ev.kind, EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)))
                || ev.paths.is_empty()
            {
                return;
            }
            if ev.need_rescan() {
                flags.overflow.store(true, Ordering::Release);
            }
            match tx.try_send(Msg::Paths(ev.paths)) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => flags.overflow.store(true, Ordering::Release),
            }
        }
        Err(e) => {
            if !flags.lost.swap(true, Ordering::AcqRel) {
                tracing::warn!(error = %e, "File events may be missed from now on; walking the folders at the reconcile interval.");
            }
            flags.overflow.store(true, Ordering::Release);
        }
    };
    match notify::recommended_watcher(handler) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "File events unavailable; relying on the periodic scan.");
            None
        }
    }
}

/// What is being watched: projects folders (recursively, with the identity of
/// the folder watched) and, for a projects folder that does not exist yet, its
/// nearest existing ancestor (only its direct entries), so that the folder's
/// creation wakes us at once.
#[derive(Debug, Default)]
struct Watches {
    recursive: HashMap<PathBuf, FileId>,
    ancestors: HashSet<PathBuf>,
}

/// Bring the watches in line with which projects folders exist now. Returns
/// whether every projects folder is watched (or, if missing, its ancestor).
fn ensure_watches(watcher: Option<&mut notify::RecommendedWatcher>, engine: &Engine, watched: &mut Watches) -> bool {
    let Some(w) = watcher else { return false };
    // A folder deleted (or moved away) and made again is another folder: watched afresh.
    let stale: Vec<PathBuf> =
        watched.recursive.iter().filter(|(d, id)| FileId::of_path(d) != Some(**id)).map(|(d, _)| d.clone()).collect();
    for d in stale {
        let _ = w.unwatch(&d);
        watched.recursive.remove(&d);
    }
    let mut complete = true;
    let mut wanted_ancestors = HashSet::new();
    for dir in &engine.settings().projects_dirs {
        let Some(id) = FileId::of_path(dir).filter(|_| dir.is_dir()) else {
            match dir.ancestors().skip(1).find(|a| a.is_dir()) {
                Some(a) => _ = wanted_ancestors.insert(a.to_path_buf()),
                None => complete = false,
            }
            continue;
        };
        if watched.recursive.contains_key(dir) {
            continue;
        }
        match w.watch(dir, RecursiveMode::Recursive) {
            Ok(()) => {
                watched.recursive.insert(dir.clone(), id);
                tracing::debug!(path = %dir.display(), "Watching folder.");
            }
            Err(e) => {
                complete = false;
                tracing::warn!(path = %dir.display(), error = %e, "Cannot watch folder; relying on the periodic scan.")
            }
        }
    }
    for gone in watched.ancestors.difference(&wanted_ancestors).cloned().collect::<Vec<_>>() {
        let _ = w.unwatch(&gone);
        watched.ancestors.remove(&gone);
    }
    for a in wanted_ancestors {
        if watched.ancestors.contains(&a) {
            continue;
        }
        if w.watch(&a, RecursiveMode::NonRecursive).is_ok() {
            tracing::debug!(path = %a.display(), "Watching for the projects folder to appear.");
            watched.ancestors.insert(a);
        } else {
            complete = false;
        }
    }
    complete
}
