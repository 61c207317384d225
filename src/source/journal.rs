//! The journal: what the engine took in since the last checkpoint, made durable
//! before its effect can be seen.
//!
//! In: [`Record`]s — the entries one read of a file produced with the file's new
//! position and line counts, and the clock-driven steps (ticks, prunes, exited
//! processes) that changed state. Out: `<state>/journal.jsonl`, one JSON record
//! per line, each with a sequence number; [`Journal::commit`] writes what was
//! appended and syncs it (one `fdatasync` for a group of records), and only then
//! does the engine apply them. After a crash, the checkpoint plus the records
//! after its sequence number, applied again in order through the same code,
//! give the very state that was served: nothing served is lost, even when the
//! lines were removed from their file meanwhile.
//!
//! Bytes written per counted line are those of its record (a few hundred; no
//! message content), whatever the history's size; the whole state is rewritten
//! only when the journal has grown to the checkpoint's size (see
//! [`Journal::wants_compaction`]), which then truncates it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::source::tail::Position;
use crate::transcript::entry::{Entry, Millis};

/// The journal's file name in the state folder.
pub const FILE_NAME: &str = "journal.jsonl";

/// The journal is compacted into a checkpoint once it is this large, or as large
/// as the last checkpoint, whichever is more.
pub const MIN_COMPACTION_BYTES: u64 = 4 << 20;

/// What one read of a file counted besides its entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadCounts {
    /// Bytes consumed (complete lines only).
    pub bytes: u64,
    /// Lines parsed as a known line type.
    pub ok: u64,
    /// Lines that are not a transcript JSON object, or hold out-of-range usage.
    pub malformed: u64,
    /// Lines of a type this version does not know.
    pub unknown_type: u64,
    /// Lines over the line limit, skipped unread.
    pub oversized: u64,
    /// The file shrank or was rewritten in place, and was read again from the start.
    pub truncated: bool,
    /// Another file took the path (new inode or first line), read from the start.
    pub replaced: bool,
}

/// One step of the engine, as it is applied again after a crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Record {
    /// New lines of a file: their entries (in file order), the position after
    /// them, and what was counted reading them.
    /// `matches`: the rules each new tool call matched (by `tool_use_id`), read
    /// with the line's content, which is not journaled.
    Read {
        /// The file read.
        path: PathBuf,
        /// Its position after the read.
        pos: Position,
        /// The facts of the lines read, without content.
        entries: Vec<Entry>,
        /// What the read counted besides its entries.
        counts: ReadCounts,
        /// Each new tool call's rule matches, by `tool_use_id`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        matches: Vec<(String, Vec<crate::rules::Match>)>,
    },
    /// Session lifecycles advanced to `now` (ms since the epoch) and something changed.
    Tick {
        /// The time the tick ran at, in ms since the epoch.
        now: Millis,
    },
    /// Ended sessions older than `max_age_ms` forgotten.
    Prune {
        /// The time of the prune, in ms since the epoch.
        now: Millis,
        /// Sessions ended longer ago than this (ms) were forgotten.
        max_age_ms: Millis,
    },
    /// The process check saw these working folders; some session ended.
    Processes {
        /// Working folders of the running Claude Code processes, sorted.
        cwds: Vec<String>,
        /// The time of the check, in ms since the epoch.
        now: Millis,
    },
    /// A file vanished and is no longer followed.
    Gone {
        /// The path it was followed under.
        path: PathBuf,
    },
    /// A read error counted (`file` or `folder`).
    ReadError {
        /// `file` or `folder`: the `kind` label of `read_errors_total`.
        kind: String,
    },
}

#[derive(Serialize)]
struct LineRef<'a> {
    seq: u64,
    #[serde(flatten)]
    rec: &'a Record,
}

#[derive(Deserialize)]
struct Line {
    seq: u64,
    #[serde(flatten)]
    rec: Record,
}

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Opening, reading or creating the journal failed.
    #[error("cannot open journal {path}: {source}")]
    Open {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Appending, syncing or emptying failed (a part append is cut off again).
    #[error("cannot write journal {path}: {source}")]
    Write {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// An open journal, appended to by one engine.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Records appended and not yet committed.
    pending: Vec<u8>,
    /// Sequence number of the last record appended.
    seq: u64,
    /// Bytes in the file.
    bytes: u64,
    /// Bytes written since the journal was opened (for the benchmark and logs).
    pub written: u64,
}

impl Journal {
    /// Open (or create) the journal in `dir` and read the records after
    /// `after_seq` (those a checkpoint does not hold yet). Reading stops at the
    /// first line that does not parse — a write torn by a crash — and the file is
    /// cut there, so new records follow the last whole one.
    pub fn open(dir: &Path, after_seq: u64) -> Result<(Journal, Vec<Record>), JournalError> {
        let path = dir.join(FILE_NAME);
        let err = |source| JournalError::Open { path: path.clone(), source };
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&path).map_err(err)?;
        let mut records = Vec::new();
        let (mut good, mut seq) = (0u64, after_seq);
        {
            let mut r = BufReader::new(&mut file);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = r.read_until(b'\n', &mut line).map_err(err)?;
                if n == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                let Ok(l) = serde_json::from_slice::<Line>(&line) else { break };
                good += n as u64;
                seq = seq.max(l.seq);
                if l.seq > after_seq {
                    records.push(l.rec);
                }
            }
        }
        let len = file.metadata().map_err(err)?.len();
        if len != good {
            tracing::warn!(path = %path.display(), kept = good, dropped = len - good, "Journal ends in a torn record; cut.");
            file.set_len(good).map_err(err)?;
            file.sync_data().map_err(err)?;
        }
        file.seek(SeekFrom::End(0)).map_err(err)?;
        Ok((Journal { path, file, pending: Vec::new(), seq, bytes: good, written: 0 }, records))
    }

    /// Add a record to the next commit.
    pub fn append(&mut self, rec: &Record) {
        self.seq += 1;
        serde_json::to_writer(&mut self.pending, &LineRef { seq: self.seq, rec }).expect("records serialize");
        self.pending.push(b'\n');
    }

    /// Whether records wait for [`Journal::commit`].
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Write the appended records and sync them to disk.
    pub fn commit(&mut self) -> Result<(), JournalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let err = |source| JournalError::Write { path: self.path.clone(), source };
        let res = self.file.write_all(&self.pending).and_then(|()| self.file.sync_data());
        if let Err(e) = res {
            // Whatever part reached the file is cut at the next open (or replaced below).
            let _ = self.file.set_len(self.bytes);
            let _ = self.file.seek(SeekFrom::End(0));
            self.pending.clear();
            return Err(err(e));
        }
        let n = self.pending.len() as u64;
        self.bytes += n;
        self.written += n;
        self.pending.clear();
        Ok(())
    }

    /// Sequence number of the last record appended (a checkpoint taken now holds it).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Bytes in the file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Time to fold the journal into a checkpoint of about `checkpoint_bytes`.
    pub fn wants_compaction(&self, checkpoint_bytes: u64) -> bool {
        self.bytes >= MIN_COMPACTION_BYTES.max(checkpoint_bytes)
    }

    /// Empty the file: a checkpoint holding every record up to [`Journal::seq`] was
    /// written. (Cut before that checkpoint was durable, the records would be lost;
    /// not cut after a crash, they are skipped by their sequence numbers.)
    pub fn reset(&mut self) -> Result<(), JournalError> {
        let err = |source| JournalError::Write { path: self.path.clone(), source };
        debug_assert!(self.pending.is_empty(), "commit before reset");
        self.file.set_len(0).map_err(err)?;
        self.file.seek(SeekFrom::Start(0)).map_err(err)?;
        self.file.sync_data().map_err(err)?;
        self.bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(now: Millis) -> Record {
        Record::Tick { now }
    }

    #[test]
    fn records_after_the_checkpoint_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, old) = Journal::open(dir.path(), 0).unwrap();
        assert!(old.is_empty());
        for t in 1..=5 {
            j.append(&tick(t));
        }
        j.commit().unwrap();
        assert_eq!(j.seq(), 5);
        drop(j);
        // A checkpoint holds the first 3.
        let (j, back) = Journal::open(dir.path(), 3).unwrap();
        assert_eq!(back, vec![tick(4), tick(5)]);
        assert_eq!(j.seq(), 5, "numbering goes on");
    }

    #[test]
    fn a_torn_last_record_is_cut_and_appending_goes_on_after_the_last_whole_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path(), 0).unwrap();
        j.append(&tick(1));
        j.append(&tick(2));
        j.commit().unwrap();
        let whole = j.bytes();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(dir.path().join(FILE_NAME)).unwrap();
        f.write_all(br#"{"seq":3,"t":"tick","no"#).unwrap();
        drop(f);
        let (mut j, back) = Journal::open(dir.path(), 0).unwrap();
        assert_eq!(back, vec![tick(1), tick(2)]);
        assert_eq!(std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len(), whole);
        j.append(&tick(3));
        j.commit().unwrap();
        drop(j);
        let (_, back) = Journal::open(dir.path(), 0).unwrap();
        assert_eq!(back, vec![tick(1), tick(2), tick(3)]);
    }

    #[test]
    fn reset_empties_the_file_and_keeps_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path(), 0).unwrap();
        j.append(&tick(1));
        j.commit().unwrap();
        j.reset().unwrap();
        assert_eq!(j.bytes(), 0);
        j.append(&tick(2));
        j.commit().unwrap();
        drop(j);
        let (j, back) = Journal::open(dir.path(), 1).unwrap();
        assert_eq!(back, vec![tick(2)]);
        assert_eq!(j.seq(), 2);
        assert!(!j.wants_compaction(0));
    }
}
