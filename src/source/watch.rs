//! The daemon's loop: wake-ups from inotify, a periodic reconcile, ticks and checkpoints.
//!
//! In: an [`Engine`] and a channel of messages. notify's callback sends the
//! paths it saw change; when its queue is full (or notify reports an error
//! such as an inotify overflow) a flag asks for a full reconcile instead, so
//! nothing is missed. The reconcile scan also finds what events never report
//! (folders that appear later, network filesystems) and is all there is in
//! `--poll` mode. Between wake-ups the thread sleeps: no busy loop.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode, Watcher};

use crate::engine::Engine;

const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// With a journal, the whole state is rewritten at least this often when it changed.
const FULL_CHECKPOINT_EVERY: Duration = Duration::from_secs(15 * 60);

/// A second look at the folders this soon after a new folder appeared.
const FOLLOW_UP: Duration = Duration::from_millis(250);

/// Messages to the engine thread.
#[derive(Debug)]
pub enum Msg {
    Paths(Vec<PathBuf>),
    Shutdown,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// No inotify; only the periodic scan.
    pub poll: bool,
    /// How often to scan the folders for what events missed (or, with `poll`, for everything).
    pub reconcile_every: Duration,
    /// Lifecycle and gauge refresh.
    pub tick_every: Duration,
    pub checkpoint_every: Duration,
    /// Where to write the checkpoint; `None` disables it.
    pub state_dir: Option<PathBuf>,
    /// Ended sessions are forgotten this long after their last activity (their counts stay).
    pub session_retention: Duration,
    /// How often to look for exited Claude Code processes (`None`: never).
    pub process_check_every: Option<Duration>,
}

/// Run until `Msg::Shutdown` (or all senders are gone); writes a last checkpoint.
pub fn run(mut engine: Engine, opts: Options, tx: SyncSender<Msg>, rx: Receiver<Msg>, ready: Arc<AtomicBool>) {
    let overflow = Arc::new(AtomicBool::new(false));
    let mut watcher = if opts.poll { None } else { make_watcher(tx, Arc::clone(&overflow)) };
    let mut watched = Watches::default();
    ensure_watches(watcher.as_mut(), &engine, &mut watched);

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
    let (mut next_reconcile, mut next_tick, mut next_save) =
        (now + opts.reconcile_every, now + opts.tick_every, now + opts.checkpoint_every);
    let mut dirty = false;
    let mut next_prune = now;
    let mut next_full = now + FULL_CHECKPOINT_EVERY;
    let mut next_process_check = opts.process_check_every.map(|d| now + d);
    loop {
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
        let mut rescan = overflow.swap(false, Ordering::AcqRel);
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
            ensure_watches(watcher.as_mut(), &engine, &mut watched);
            dirty |= engine.reconcile() > 0;
            engine.refresh_gauges();
            // After a new folder, look once more shortly: a file created in it after
            // this walk but before the watcher added the folder sends no event.
            next_reconcile = now + if new_folder { FOLLOW_UP.min(opts.reconcile_every) } else { opts.reconcile_every };
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

fn make_watcher(tx: SyncSender<Msg>, overflow: Arc<AtomicBool>) -> Option<notify::RecommendedWatcher> {
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            // Reads (ours included) and metadata changes (atime) carry no new lines;
            // reacting to them would make every reconcile wake us again.
            if matches!(ev.kind, EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)))
                || ev.paths.is_empty()
            {
                return;
            }
            if ev.need_rescan() {
                overflow.store(true, Ordering::Release);
            }
            match tx.try_send(Msg::Paths(ev.paths)) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => overflow.store(true, Ordering::Release),
            }
        }
        Err(_) => overflow.store(true, Ordering::Release),
    };
    match notify::recommended_watcher(handler) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "File events unavailable; relying on the periodic scan.");
            None
        }
    }
}

/// What is being watched: projects folders (recursively) and, for a projects
/// folder that does not exist yet, its nearest existing ancestor (only its
/// direct entries), so that the folder's creation wakes us at once.
#[derive(Debug, Default)]
struct Watches {
    recursive: HashSet<PathBuf>,
    ancestors: HashSet<PathBuf>,
}

/// Bring the watches in line with which projects folders exist now.
fn ensure_watches(watcher: Option<&mut notify::RecommendedWatcher>, engine: &Engine, watched: &mut Watches) {
    let Some(w) = watcher else { return };
    watched.recursive.retain(|d| d.is_dir());
    let mut wanted_ancestors = HashSet::new();
    for dir in &engine.settings().projects_dirs {
        if !Path::new(dir).is_dir() {
            if let Some(a) = dir.ancestors().skip(1).find(|a| a.is_dir()) {
                wanted_ancestors.insert(a.to_path_buf());
            }
            continue;
        }
        if watched.recursive.contains(dir) {
            continue;
        }
        match w.watch(dir, RecursiveMode::Recursive) {
            Ok(()) => {
                watched.recursive.insert(dir.clone());
                tracing::debug!(path = %dir.display(), "Watching folder.");
            }
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "Cannot watch folder; relying on the periodic scan.")
            }
        }
    }
    for gone in watched.ancestors.difference(&wanted_ancestors).cloned().collect::<Vec<_>>() {
        let _ = w.unwatch(&gone);
        watched.ancestors.remove(&gone);
    }
    for a in wanted_ancestors {
        if !watched.ancestors.contains(&a) && w.watch(&a, RecursiveMode::NonRecursive).is_ok() {
            tracing::debug!(path = %a.display(), "Watching for the projects folder to appear.");
            watched.ancestors.insert(a);
        }
    }
}
