//! Persisted state: file positions plus the whole aggregator.
//!
//! Written atomically (temporary file, fsync, rename, fsync of the folder)
//! with mode 0600, since it holds project paths. Positions and counters are
//! taken at the same instant, so after a crash the lines after a saved
//! position are read again exactly once. A checkpoint that cannot be parsed,
//! or whose counters could not be used (see `metrics::Store::check`), is moved
//! aside and the daemon rebuilds from the transcript files.
//!
//! One daemon per state folder: [`lock`] takes an exclusive lock on
//! `<dir>/lock` (flock semantics: the kernel releases it when the process dies,
//! so a crash never blocks a restart) and writes the holder's pid into it, so a
//! second daemon can say who holds the folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::source::tail::Position;
use crate::state::live::Aggregator;

/// The layout written. 2: counters and histograms by name (see
/// `metrics::persist`); 1 (release 0.1.0) is still read, by the frozen order
/// of its families. An older or newer file is rebuilt from the transcripts.
pub const FORMAT: u32 = 2;
/// The oldest layout still read.
pub const OLDEST_FORMAT: u32 = 1;
/// The checkpoint's file name in the state folder (written through `<name>.tmp`).
pub const FILE_NAME: &str = "checkpoint.json";
/// The lock file in the state folder.
pub const LOCK_NAME: &str = "lock";

/// One followed file in the checkpoint.
#[derive(Debug, Serialize, Deserialize)]
pub struct FileState {
    /// The path it is followed under (below a projects folder).
    pub path: PathBuf,
    /// How far it was read, and what it looked like there.
    pub pos: Position,
    /// The file is a 2.0.x cache-warming sub-agent (its first prompt was `Warmup`):
    /// its calls count as auxiliary, not as a sub-agent's.
    #[serde(default)]
    pub warmup: bool,
}

/// The saved state: file positions and everything counted from them, together.
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The layout ([`FORMAT`]; [`OLDEST_FORMAT`] and later are read).
    pub format: u32,
    /// When it was written, in ms since the Unix epoch.
    pub written_ms: i64,
    /// Every followed file's position.
    pub files: Vec<FileState>,
    /// The last journal record this checkpoint holds (see `journal`).
    #[serde(default)]
    pub journal_seq: u64,
    /// Sessions, the dedup window, counters and histograms, open traces.
    pub aggregator: Aggregator,
}

/// What is written: the same layout as [`Checkpoint`], borrowing the aggregator.
#[derive(Debug, Serialize)]
pub(crate) struct CheckpointRef<'a> {
    pub format: u32,
    pub written_ms: i64,
    pub files: Vec<FileState>,
    pub journal_seq: u64,
    pub aggregator: &'a Aggregator,
}

/// Why a checkpoint could not be written or read. Paths are the state folder's own
/// files; no transcript content is in any message.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Writing, syncing or renaming into place failed; the previous checkpoint stays.
    #[error("cannot write checkpoint {path}: {source}")]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file exists but cannot be read.
    #[error("cannot read checkpoint {path}: {source}")]
    Read {
        /// The checkpoint file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a checkpoint we can read: it was set aside and the state is
    /// rebuilt from the transcripts.
    #[error("checkpoint {path} is corrupt ({reason}); moved to {moved_to}")]
    Corrupt {
        /// Where it was.
        path: PathBuf,
        /// What is wrong with it: a parse error, an unknown format, a value out of range.
        reason: String,
        /// Where it was moved, kept for inspection.
        moved_to: PathBuf,
    },
}

/// Why the state folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "state folder {} is in use by another claude-sessions (pid {}); stop it, or give this one another --state-dir",
        dir.display(),
        pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
    )]
    /// Another process holds the lock.
    Held {
        /// The state folder.
        dir: PathBuf,
        /// The holder's pid, as it wrote it in the lock file (`None` if unreadable).
        pid: Option<u32>,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cannot lock state folder {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The exclusive lock on a state folder; released when dropped or when the process ends.
#[derive(Debug)]
pub struct Lock {
    // Held for its lock; the pid written in it is for the next daemon's message.
    _file: std::fs::File,
}

/// Lock `dir` for this process, or say which process holds it.
pub fn lock(dir: &Path) -> Result<Lock, LockError> {
    use std::io::{Read, Seek};
    let path = dir.join(LOCK_NAME);
    let err = |source| LockError::Io { path: path.clone(), source };
    let mut opts = std::fs::OpenOptions::new();
    // Not truncated on open: until we hold the lock, the pid in it is the holder's.
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(&path).map_err(err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let pid = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse().ok());
            return Err(LockError::Held { dir: dir.to_owned(), pid });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
    }
    file.set_len(0).map_err(err)?;
    file.rewind().map_err(err)?;
    writeln!(file, "{}", std::process::id()).map_err(err)?;
    file.flush().map_err(err)?;
    Ok(Lock { _file: file })
}

/// Write `bytes` atomically to `dir/checkpoint.json`.
pub fn write(dir: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    write_streamed(dir, |w| w.write_all(bytes)).map(|_| ())
}

/// Write atomically to `dir/checkpoint.json` what `body` writes, streamed to the
/// file (no copy of the whole state in memory: a state of 15 MB left that much
/// in the allocator's hands after every save). Returns the bytes written.
pub fn write_streamed(
    dir: &Path,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<u64, CheckpointError> {
    let path = dir.join(FILE_NAME);
    let err = |source| CheckpointError::Write { path: path.clone(), source };
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts.open(&tmp).map_err(err)?;
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, f);
    body(&mut w).map_err(err)?;
    let f = w.into_inner().map_err(|e| err(e.into_error()))?;
    f.sync_all().map_err(err)?;
    let len = f.metadata().map_err(err)?.len();
    drop(f);
    std::fs::rename(&tmp, &path).map_err(err)?;
    // The rename is durable only once the folder entry is on disk.
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
    Ok(len)
}

/// Load `dir/checkpoint.json`. `Ok(None)` if there is none; a corrupt file is
/// moved aside and reported as an error (the caller warns and starts fresh).
pub fn load(dir: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointError::Read { path, source }),
    };
    let reason = match serde_json::from_slice::<Checkpoint>(&bytes) {
        Ok(c) if (OLDEST_FORMAT..=FORMAT).contains(&c.format) => match check(&c) {
            Ok(()) => return Ok(Some(c)),
            Err(why) => why,
        },
        Ok(c) => format!("format {} is not one of {OLDEST_FORMAT}..={FORMAT}", c.format),
        Err(e) => e.to_string(),
    };
    let moved_to = dir.join(format!("{FILE_NAME}.corrupt"));
    let _ = std::fs::rename(&path, &moved_to);
    Err(CheckpointError::Corrupt { path, reason, moved_to })
}

/// What parses but cannot be used: inconsistent histograms, and counts or
/// times out of any real range (the daemon adds to them: found by fuzzing).
fn check(c: &Checkpoint) -> Result<(), String> {
    use crate::state::metrics::MAX_COUNT;
    c.aggregator.store.check()?;
    // Times within ±2^53 ms (285,000 years): their differences cannot overflow.
    let time_ok = |t: i64| t.unsigned_abs() <= MAX_COUNT;
    if !time_ok(c.aggregator.since_ms) {
        return Err("the counters' start time is out of range".to_owned());
    }
    for s in c.aggregator.sessions() {
        let counts = [
            ("prompts", s.prompts),
            ("api_requests", s.api_requests),
            ("tool_calls", s.tool_calls),
            ("tool_errors", s.tool_errors),
            ("api_errors", s.api_errors),
            ("subagents", s.subagents),
            ("compactions", s.compactions),
            ("lines_added", s.lines_added),
            ("lines_removed", s.lines_removed),
            ("context_tokens", s.context_tokens),
            ("context_window", s.context_window),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, n)| *n > MAX_COUNT) {
            return Err(format!("a session's {name} is out of range"));
        }
        if !time_ok(s.first_ms) || !time_ok(s.last_ms) {
            return Err("a session's first or last time is out of range".to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::live::Config;

    #[test]
    fn a_second_lock_on_a_folder_names_the_holder_and_a_released_one_can_be_taken() {
        let d = tempfile::tempdir().unwrap();
        let held = lock(d.path()).unwrap();
        let pid = std::fs::read_to_string(d.path().join(LOCK_NAME)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        match lock(d.path()) {
            Err(e @ LockError::Held { .. }) => {
                let LockError::Held { pid, .. } = &e else { unreachable!() };
                assert_eq!(*pid, Some(std::process::id()));
                let msg = e.to_string();
                assert!(msg.contains(&d.path().display().to_string()) && msg.contains("pid"), "{msg}");
            }
            other => panic!("second lock: {other:?}"),
        }
        drop(held);
        let again = lock(d.path()).expect("lock again after release");
        drop(again);
    }

    /// Found by fuzzing (`checkpoint_reader`): histogram series that parse but
    /// cannot be used panicked later (an index out of bounds when observing, an
    /// overflow when rendering). Such a checkpoint is corrupt: moved aside.
    #[test]
    fn histograms_that_cannot_be_used_make_the_checkpoint_corrupt() {
        use crate::state::metrics::Histogram;
        let mut agg = Aggregator::new(Config::default());
        agg.store.observe(Histogram::ToolDuration, &["Bash"], 1500.0);
        let cp = CheckpointRef { format: FORMAT, written_ms: 1, files: Vec::new(), journal_seq: 0, aggregator: &agg };
        let good = serde_json::to_value(&cp).unwrap();
        let series = |v: &mut serde_json::Value| -> serde_json::Value {
            let fam = &mut v["aggregator"]["store"]["histograms"][Histogram::ToolDuration.def().base]["series"];
            fam.as_object_mut().unwrap().values_mut().next().expect("the Bash series")["counts"].take()
        };
        let buckets = series(&mut good.clone()).as_array().unwrap().len();
        let too_few = {
            let mut v = good.clone();
            let fam = &mut v["aggregator"]["store"]["histograms"][Histogram::ToolDuration.def().base]["series"];
            fam.as_object_mut().unwrap().values_mut().next().unwrap()["counts"] = serde_json::json!([0, 0, 0, 0, 1]);
            v
        };
        let overflowing = {
            let mut v = good.clone();
            let mut counts = vec![0u64; buckets];
            counts[0] = u64::MAX;
            counts[buckets - 1] = 1;
            let fam = &mut v["aggregator"]["store"]["histograms"][Histogram::ToolDuration.def().base]["series"];
            fam.as_object_mut().unwrap().values_mut().next().unwrap()["counts"] = serde_json::json!(counts);
            v
        };
        let d = tempfile::tempdir().unwrap();
        write(d.path(), &serde_json::to_vec(&good).unwrap()).unwrap();
        assert!(load(d.path()).unwrap().is_some(), "the unchanged checkpoint loads");
        for (what, bad) in [("too few buckets", too_few), ("counts past u64", overflowing)] {
            write(d.path(), &serde_json::to_vec(&bad).unwrap()).unwrap();
            match load(d.path()) {
                Err(CheckpointError::Corrupt { reason, moved_to, .. }) => {
                    assert!(reason.contains("claude_sessions_tool_duration"), "{what}: {reason}");
                    assert!(moved_to.exists(), "{what}: moved aside");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    /// Found by fuzzing (`checkpoint_reader`, second run): session counts and
    /// times, and a histogram count, at the ends of their types; the next line
    /// read overflowed adding to them (a panic in debug builds, a wrapped value
    /// in release). Such a checkpoint is corrupt.
    #[test]
    fn counts_and_times_out_of_any_real_range_make_the_checkpoint_corrupt() {
        use crate::state::metrics::Histogram;
        let d = tempfile::tempdir().unwrap();
        let projects = d.path().join("projects");
        let file = projects.join("-w").join("s1.jsonl");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(
            &file,
            concat!(
                r#"{"type":"user","sessionId":"s1","timestamp":"2026-01-01T00:00:00.000Z","message":{"content":"hi"}}"#,
                "\n",
                r#"{"type":"assistant","sessionId":"s1","timestamp":"2026-01-01T00:00:01.000Z","requestId":"r","message":{"id":"m","model":"claude-opus-4-6","usage":{"input_tokens":3},"content":[]}}"#,
                "\n"
            ),
        )
        .unwrap();
        let mut e =
            crate::engine::Engine::new(crate::engine::Settings { projects_dirs: vec![projects], ..Default::default() });
        e.scan(1, &|_, _| {});
        e.aggregator().lock().unwrap().store.observe(Histogram::TurnDuration, &["w"], 1000.0);
        let good: serde_json::Value = serde_json::from_slice(&e.checkpoint_bytes()).unwrap();
        let mut cases: Vec<(&str, serde_json::Value)> = Vec::new();
        for (field, value) in [
            ("api_requests", serde_json::json!(u64::MAX)),
            ("prompts", serde_json::json!(u64::MAX)),
            ("first_ms", serde_json::json!(i64::MIN)),
        ] {
            let mut v = good.clone();
            let session = v["aggregator"]["sessions"].as_object_mut().unwrap().values_mut().next().expect("a session");
            session[field] = value;
            cases.push((field, v));
        }
        let mut hist = good.clone();
        let fam = &mut hist["aggregator"]["store"]["histograms"][Histogram::TurnDuration.def().base]["series"];
        fam.as_object_mut().unwrap().values_mut().next().expect("a turn series")["count"] = serde_json::json!(u64::MAX);
        cases.push(("histogram count", hist));

        let state = tempfile::tempdir().unwrap();
        write(state.path(), &serde_json::to_vec(&good).unwrap()).unwrap();
        assert!(load(state.path()).unwrap().is_some(), "the unchanged checkpoint loads");
        for (what, bad) in cases {
            write(state.path(), &serde_json::to_vec(&bad).unwrap()).unwrap();
            assert!(
                matches!(load(state.path()), Err(CheckpointError::Corrupt { .. })),
                "{what} at the end of its range is not reported as corrupt"
            );
        }
    }

    #[test]
    fn round_trip_and_corruption() {
        let d = tempfile::tempdir().unwrap();
        assert!(load(d.path()).unwrap().is_none());
        let cp = Checkpoint {
            format: FORMAT,
            written_ms: 1,
            files: vec![FileState {
                path: "/x.jsonl".into(),
                pos: Position { offset: 42, ..Position::default() },
                warmup: false,
            }],
            journal_seq: 0,
            aggregator: Aggregator::new(Config::default()),
        };
        write(d.path(), &serde_json::to_vec(&cp).unwrap()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.path().join(FILE_NAME)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = load(d.path()).unwrap().unwrap();
        assert_eq!(back.files[0].pos.offset, 42);
        std::fs::write(d.path().join(FILE_NAME), b"{not json").unwrap();
        assert!(matches!(load(d.path()), Err(CheckpointError::Corrupt { .. })));
        assert!(d.path().join("checkpoint.json.corrupt").exists());
        assert!(load(d.path()).unwrap().is_none(), "after moving it aside, start fresh");
    }
}
