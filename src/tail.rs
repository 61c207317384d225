//! Per-file reader: only complete lines, exactly once.
//!
//! In: a path and its saved [`Position`]. Out: each complete (`\n`-terminated)
//! line appended since the last read, handed to a callback, and the new
//! position. A half-written last line is left for the next read. A file that
//! shrank was truncated and is read again from the start; a file whose
//! device/inode or first-line fingerprint changed was replaced and is read
//! from the start too. A line longer than the limit is skipped as it streams
//! past, without being buffered whole. The file handle is kept only while the
//! caller says the file is active, so idle files cost no descriptor; a held
//! handle lets a deleted or replaced file be drained to its end.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// How many bytes of the first line make the fingerprint.
const FINGERPRINT_BYTES: usize = 1024;
/// Read granularity.
const CHUNK: usize = 1 << 20;

/// Where a file has been read up to; persisted in the checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub dev: u64,
    pub ino: u64,
    /// Byte offset of the first unread byte (always at a line start, unless skipping).
    pub offset: u64,
    /// Hash of the first line's first bytes, once that line is complete.
    pub fingerprint: Option<u64>,
    /// In the middle of an oversized line: discard up to the next newline.
    pub skipping: bool,
}

/// What one read did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub bytes: u64,
    pub lines: u64,
    pub oversized: u64,
    pub truncated: bool,
    pub replaced: bool,
    /// The path no longer exists (anything a held handle still had was drained).
    pub gone: bool,
    pub mtime: Option<SystemTime>,
}

/// A followed file.
#[derive(Debug, Default)]
pub struct Tail {
    pub pos: Position,
    file: Option<File>,
}

/// Identity of a file on disk.
#[cfg(unix)]
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

impl Tail {
    pub fn new(pos: Position) -> Tail {
        Tail { pos, file: None }
    }

    /// Whether a handle is held.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Drop the handle (the position is kept).
    pub fn close(&mut self) {
        self.file = None;
    }

    /// Read what was appended to `path` since the last call.
    ///
    /// `buf` is scratch space reused across calls. `keep_open` says whether to
    /// hold the handle afterwards. Each complete line (without `\n`) goes to
    /// `on_line`; lines over `max_line` bytes are counted in the report instead.
    pub fn read(
        &mut self,
        path: &Path,
        max_line: usize,
        keep_open: bool,
        buf: &mut Vec<u8>,
        on_line: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Report> {
        let mut report = Report::default();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.drain(max_line, buf, on_line, &mut report)?;
                report.gone = true;
                self.file = None;
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        report.mtime = meta.modified().ok();
        let id = identity(&meta);
        let known = self.pos.dev != 0 || self.pos.ino != 0;
        if known && id != (self.pos.dev, self.pos.ino) {
            // Rotated: finish the old file through the handle we may hold.
            self.drain(max_line, buf, on_line, &mut report)?;
            self.restart();
            report.replaced = true;
        }
        (self.pos.dev, self.pos.ino) = id;
        let size = meta.len();
        if size < self.pos.offset {
            self.restart();
            (self.pos.dev, self.pos.ino) = id;
            report.truncated = true;
        }
        if size == self.pos.offset && !report.truncated {
            if !keep_open {
                self.file = None;
            }
            return Ok(report);
        }
        let mut file = match self.file.take() {
            Some(f) => f,
            None => File::open(path)?,
        };
        if let Some(fp) = self.pos.fingerprint
            && self.pos.offset > 0
            && first_line_fingerprint(&mut file)? != Some(fp)
        {
            // Same inode, different beginning: rewritten in place.
            self.restart();
            (self.pos.dev, self.pos.ino) = id;
            report.replaced = true;
        }
        self.consume(&mut file, max_line, buf, on_line, &mut report)?;
        if keep_open {
            self.file = Some(file);
        }
        Ok(report)
    }

    fn restart(&mut self) {
        self.pos = Position::default();
        self.file = None;
    }

    /// Read a held handle to its end (the path may be gone or replaced).
    fn drain(
        &mut self,
        max_line: usize,
        buf: &mut Vec<u8>,
        on_line: &mut dyn FnMut(&[u8]),
        report: &mut Report,
    ) -> io::Result<()> {
        if let Some(mut f) = self.file.take() {
            self.consume(&mut f, max_line, buf, on_line, report)?;
        }
        Ok(())
    }

    fn consume(
        &mut self,
        file: &mut File,
        max_line: usize,
        buf: &mut Vec<u8>,
        on_line: &mut dyn FnMut(&[u8]),
        report: &mut Report,
    ) -> io::Result<()> {
        file.seek(SeekFrom::Start(self.pos.offset))?;
        // Bytes count once, when consumed: a partial line re-read on every
        // wake-up, or again after a restart, adds nothing until it completes.
        let start_offset = self.pos.offset;
        if buf.len() < CHUNK {
            buf.resize(CHUNK, 0);
        }
        // Unconsumed bytes are buf[start..end]; bytes before `start` are done.
        let (mut start, mut end) = (0usize, 0usize);
        loop {
            if end == buf.len() {
                if start > 0 {
                    buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                } else {
                    // One partial line fills the buffer (it is under `max_line`).
                    buf.resize(buf.len() * 2, 0);
                }
            }
            let n = match file.read(&mut buf[end..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let scan_from = end;
            end += n;
            for nl in memchr::memchr_iter(b'\n', &buf[scan_from..end]).map(|i| i + scan_from) {
                let line = &buf[start..nl];
                if self.pos.skipping {
                    self.pos.skipping = false;
                } else if line.len() > max_line {
                    report.oversized += 1;
                } else {
                    if self.pos.offset == 0 && self.pos.fingerprint.is_none() {
                        self.pos.fingerprint = Some(fingerprint(line));
                    }
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        report.lines += 1;
                        on_line(line);
                    }
                }
                self.pos.offset += (nl + 1 - start) as u64;
                start = nl + 1;
            }
            let pending = end - start;
            if self.pos.offset == 0 && self.pos.fingerprint.is_none() && pending >= FINGERPRINT_BYTES {
                self.pos.fingerprint = Some(fingerprint(&buf[start..end]));
            }
            // A partial line already over the limit: skip it as it streams by.
            if self.pos.skipping || pending > max_line {
                if !self.pos.skipping {
                    report.oversized += 1;
                    self.pos.skipping = true;
                }
                self.pos.offset += pending as u64;
                start = end;
            }
            if start == end {
                (start, end) = (0, 0);
            }
        }
        report.bytes += self.pos.offset - start_offset;
        Ok(())
    }
}

fn fingerprint(first_line: &[u8]) -> u64 {
    crate::dedup::fnv1a(&[&first_line[..first_line.len().min(FINGERPRINT_BYTES)]])
}

/// Fingerprint of the file's current first line, if it is complete or long enough.
fn first_line_fingerprint(file: &mut File) -> io::Result<Option<u64>> {
    let mut head = [0u8; FINGERPRINT_BYTES];
    file.seek(SeekFrom::Start(0))?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let head = &head[..n];
    Ok(match memchr::memchr(b'\n', head) {
        Some(nl) => Some(fingerprint(&head[..nl])),
        None if n == FINGERPRINT_BYTES => Some(fingerprint(head)),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(t: &mut Tail, p: &Path, max: usize) -> (Vec<String>, Report) {
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        let r = t.read(p, max, false, &mut buf, &mut |l| lines.push(String::from_utf8_lossy(l).into_owned())).unwrap();
        (lines, r)
    }

    fn append(p: &Path, s: &str) {
        std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap().write_all(s.as_bytes()).unwrap();
    }

    #[test]
    fn half_lines_wait_until_completed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.jsonl");
        append(&p, "{\"a\":1}\n{\"b\":");
        let mut t = Tail::default();
        assert_eq!(read_all(&mut t, &p, 100).0, ["{\"a\":1}"]);
        assert_eq!(read_all(&mut t, &p, 100).0, Vec::<String>::new());
        append(&p, "2}\n\n{\"c\":3}\n");
        assert_eq!(read_all(&mut t, &p, 100).0, ["{\"b\":2}", "{\"c\":3}"]);
        assert_eq!(t.pos.offset, std::fs::metadata(&p).unwrap().len());
    }

    #[test]
    fn truncation_and_replacement_restart_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.jsonl");
        append(&p, "one\ntwo\n");
        let mut t = Tail::default();
        read_all(&mut t, &p, 100);
        std::fs::write(&p, "x\n").unwrap();
        let (lines, r) = read_all(&mut t, &p, 100);
        assert!(r.truncated);
        assert_eq!(lines, ["x"]);
        // Replaced by a new file (new inode) with more content than before.
        let tmp = d.path().join("b");
        std::fs::write(&tmp, "new1\nnew2\nnew3\n").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        let (lines, r) = read_all(&mut t, &p, 100);
        assert!(r.replaced);
        assert_eq!(lines, ["new1", "new2", "new3"]);
        // Rewritten in place with a different first line, longer than before.
        std::fs::write(&p, "other1\nnew2\nnew3\nnew4\n").unwrap();
        let (lines, r) = read_all(&mut t, &p, 100);
        assert!(r.replaced, "{r:?}");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn oversized_lines_are_skipped_while_streaming() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.jsonl");
        append(&p, "ok1\n");
        append(&p, &"x".repeat(CHUNK * 3));
        let mut t = Tail::default();
        let (lines, r) = read_all(&mut t, &p, 1000);
        assert_eq!((lines.len(), r.oversized), (1, 1));
        append(&p, &"x".repeat(500));
        append(&p, "\nok2\n");
        let (lines, r) = read_all(&mut t, &p, 1000);
        assert_eq!(lines, ["ok2"]);
        assert_eq!(r.oversized, 0, "the same long line is counted once");
        append(&p, &format!("{}\n", "y".repeat(1001)));
        assert_eq!(read_all(&mut t, &p, 1000).1.oversized, 1);
    }

    #[test]
    fn deleted_file_is_drained_through_a_held_handle() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.jsonl");
        append(&p, "a\n");
        let mut t = Tail::default();
        let mut buf = Vec::new();
        t.read(&p, 100, true, &mut buf, &mut |_| {}).unwrap();
        assert!(t.is_open());
        append(&p, "b\n");
        std::fs::remove_file(&p).unwrap();
        let mut got = Vec::new();
        let r = t.read(&p, 100, true, &mut buf, &mut |l| got.push(l.to_vec())).unwrap();
        assert!(r.gone);
        assert_eq!(got, [b"b".to_vec()]);
        assert!(!t.is_open());
    }
}
