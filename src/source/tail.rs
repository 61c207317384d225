//! Per-file reader: only complete lines, exactly once.
//!
//! In: a path and its saved [`Position`]. Out: each complete (`\n`-terminated)
//! line appended since the last read, handed to a callback, and the new
//! position. A half-written last line is left for the next read. A file that
//! shrank was truncated and is read again from the start; so is one whose
//! bytes just before the position changed (truncated and written again, as
//! long or longer, while we were not looking: same inode, same first line).
//! A file whose device/inode or first-line fingerprint changed was replaced
//! and is read from the start too. The file handle is kept only while the caller says the
//! file is active, so idle files cost no descriptor; a held handle lets a
//! deleted or replaced file be drained to its end.
//!
//! Memory is bounded whatever the line length. Lines are read through a window
//! of [`CHUNK`] bytes. A line that does not fit is first measured by reading on
//! to its newline; it is then read whole into a buffer of exactly its size if it
//! is within the limit, or skipped as it streams past if it is over (counted,
//! never buffered). So a reader holds at most about `max(CHUNK, limit)` bytes,
//! and an oversized line of any length costs one window.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// How many bytes of the first line make the fingerprint.
const FINGERPRINT_BYTES: usize = 1024;
/// How many bytes before the position make the tail fingerprint.
pub const TAIL_FINGERPRINT_BYTES: u64 = 4096;
/// Read granularity: the window lines are read through. A quarter of a MiB: what
/// the kernel copies in is still in the core's cache when it is parsed (1 MiB was
/// 2-9% slower for `scan` in two runs of 10 pairs), and no line of the fixtures is
/// longer (a longer one is measured, then read whole).
pub const CHUNK: usize = 1 << 18;

/// Where a file has been read up to; persisted in the checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Device of the file read (0 with `ino` 0: not read yet).
    pub dev: u64,
    /// Inode of the file read: another inode at the path is another file.
    pub ino: u64,
    /// Byte offset of the first unread byte (always at a line start, unless skipping).
    pub offset: u64,
    /// Hash of the first line's first bytes, once that line is complete.
    pub fingerprint: Option<u64>,
    /// In the middle of an oversized line: discard up to the next newline.
    pub skipping: bool,
    /// Hash of the (up to) [`TAIL_FINGERPRINT_BYTES`] bytes before `offset`, as
    /// they were read. Appending never changes them; if they differ, the file
    /// was rewritten in place and is read again. `None` in checkpoints written
    /// before it existed (they resume at `offset` as they always did).
    #[serde(default)]
    pub tail_fingerprint: Option<u64>,
}

/// What one read did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Bytes consumed: complete lines only, each counted once.
    pub bytes: u64,
    /// Non-blank lines handed on.
    pub lines: u64,
    /// Lines over the limit, skipped (each counted once, however many reads it spans).
    pub oversized: u64,
    /// The file shrank, or the bytes before the position changed: read from the start.
    pub truncated: bool,
    /// Another file is at the path (new device/inode, or another first line): read
    /// from the start, after draining the old one through a held handle.
    pub replaced: bool,
    /// The path no longer exists (anything a held handle still had was drained).
    pub gone: bool,
    /// The file's modification time when looked at, if it exists.
    pub mtime: Option<SystemTime>,
}

/// A followed file.
#[derive(Debug)]
pub struct Tail {
    /// How far it has been read; save it to resume there.
    pub pos: Position,
    file: Option<File>,
    /// The read window ([`CHUNK`]; tests and fuzzing use tiny ones to reach the long-line paths).
    window: usize,
}

impl Default for Tail {
    fn default() -> Self {
        Tail::new(Position::default())
    }
}

/// Where the line that fills the window ends, found without holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extent {
    /// Its newline is this many bytes after the line start.
    Ends(usize),
    /// The file ends after this many bytes without a newline: still being written.
    Open(usize),
    /// More than the limit without a newline; this many bytes were read.
    Over(usize),
}

/// Identity of a file on disk.
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    let id = crate::source::discover::FileId::of(m);
    (id.dev, id.ino)
}

impl Tail {
    /// A reader resuming at `pos` (checked against the file at the first read), holding no handle.
    pub fn new(pos: Position) -> Tail {
        Tail { pos, file: None, window: CHUNK }
    }

    /// Read through a window of `bytes` (at least 1) instead of [`CHUNK`].
    pub fn with_window(mut self, bytes: usize) -> Tail {
        self.window = bytes.max(1);
        self
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
        self.read_into(path, max_line, keep_open, buf, on_line, &mut report)?;
        Ok(report)
    }

    /// [`Tail::read`], adding to `report` as it goes: on an error, `report` still
    /// says what was read (and handed to `on_line`) before it.
    pub fn read_into(
        &mut self,
        path: &Path,
        max_line: usize,
        keep_open: bool,
        buf: &mut Vec<u8>,
        on_line: &mut dyn FnMut(&[u8]),
        report: &mut Report,
    ) -> io::Result<()> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.drain(max_line, buf, on_line, report)?;
                report.gone = true;
                self.file = None;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        report.mtime = meta.modified().ok();
        let id = identity(&meta);
        let known = self.pos.dev != 0 || self.pos.ino != 0;
        if known && id != (self.pos.dev, self.pos.ino) {
            // Rotated: finish the old file through the handle we may hold.
            self.drain(max_line, buf, on_line, report)?;
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
        if size == 0 && self.pos.offset == 0 {
            if !keep_open {
                self.file = None;
            }
            return Ok(());
        }
        let mut file = match self.file.take() {
            Some(f) => f,
            None => File::open(path)?,
        };
        if self.pos.offset > 0 {
            if let Some(fp) = self.pos.fingerprint
                && first_line_fingerprint(&mut file)? != Some(fp)
            {
                // Same inode, different beginning: rewritten in place.
                self.restart();
                (self.pos.dev, self.pos.ino) = id;
                report.replaced = true;
            } else if let Some(fp) = self.pos.tail_fingerprint {
                if self.tail_fingerprint(&mut file)? != fp {
                    // Same inode and beginning, but what was read is no longer there:
                    // truncated and written again, as long as before or longer.
                    self.restart();
                    (self.pos.dev, self.pos.ino) = id;
                    report.truncated = true;
                }
            } else {
                // A position from an older checkpoint: trusted as before, checkable from now on.
                self.pos.tail_fingerprint = Some(self.tail_fingerprint(&mut file)?);
            }
        }
        if size == self.pos.offset {
            if keep_open {
                self.file = Some(file);
            }
            return Ok(());
        }
        self.consume(&mut file, max_line, buf, on_line, report)?;
        if keep_open {
            self.file = Some(file);
        }
        Ok(())
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
        // Bytes count once, when consumed: a partial line re-read on every
        // wake-up, or again after a restart, adds nothing until it completes.
        // Counted on an error too: the lines before it were handed on.
        let start_offset = self.pos.offset;
        let res = self.consume_lines(file, max_line, buf, on_line, report);
        report.bytes += self.pos.offset - start_offset;
        if self.pos.offset != start_offset {
            // Not known after an error: trusted at the next read, as an old position is.
            self.pos.tail_fingerprint = self.tail_fingerprint(file).ok();
        }
        res
    }

    /// Hash of the (up to) [`TAIL_FINGERPRINT_BYTES`] bytes of `file` before the position.
    fn tail_fingerprint(&self, file: &mut File) -> io::Result<u64> {
        let len = self.pos.offset.min(TAIL_FINGERPRINT_BYTES);
        let mut bytes = [0u8; TAIL_FINGERPRINT_BYTES as usize];
        // Fewer bytes than asked (the file shrank meanwhile) hash differently, as they should.
        let n = read_at(file, self.pos.offset - len, &mut bytes[..len as usize])?;
        Ok(crate::transcript::identity::fnv1a(&[&bytes[..n]]))
    }

    fn consume_lines(
        &mut self,
        file: &mut File,
        max_line: usize,
        buf: &mut Vec<u8>,
        on_line: &mut dyn FnMut(&[u8]),
        report: &mut Report,
    ) -> io::Result<()> {
        file.seek(SeekFrom::Start(self.pos.offset))?;
        if buf.len() != self.window {
            // Shrinking keeps the allocation; the caller decides when to free a big one.
            buf.resize(self.window, 0);
        }
        // Unconsumed bytes are buf[start..end]; bytes before `start` are done.
        // buf[start] is the byte at `self.pos.offset`.
        let (mut start, mut end) = (0usize, 0usize);
        loop {
            if end == buf.len() {
                if start > 0 {
                    buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                } else {
                    // One partial line (within `max_line`) fills the buffer: find
                    // where it ends before holding it whole.
                    match measure(file, end, max_line, buf)? {
                        Extent::Open(_) => break,
                        Extent::Over(read) => {
                            // Skip the rest as it streams by; the cursor is past `read`.
                            report.oversized += 1;
                            self.pos.skipping = true;
                            self.pos.offset += read as u64;
                        }
                        Extent::Ends(len) if len > max_line => {
                            report.oversized += 1;
                            self.pos.offset += len as u64 + 1;
                            file.seek(SeekFrom::Start(self.pos.offset))?;
                        }
                        Extent::Ends(len) => {
                            // Read it again into exactly its size (newline included):
                            // never doubled past what the line needs.
                            file.seek(SeekFrom::Start(self.pos.offset))?;
                            if buf.len() <= len {
                                buf.reserve_exact(len + 1 - buf.len());
                                buf.resize(len + 1, 0);
                            }
                        }
                    }
                    (start, end) = (0, 0);
                    continue;
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
        Ok(())
    }
}

/// The line at `file`'s cursor began `have` bytes before it (they fill the
/// buffer, without a newline): read on through `buf` to its newline, the end
/// of the file, or past `max_line`, holding no more than `buf`.
fn measure(file: &mut File, have: usize, max_line: usize, buf: &mut [u8]) -> io::Result<Extent> {
    let mut read = have;
    loop {
        if read > max_line {
            return Ok(Extent::Over(read));
        }
        let n = match file.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(Extent::Open(read));
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(Extent::Ends(read + i));
        }
        read += n;
    }
}

fn fingerprint(first_line: &[u8]) -> u64 {
    crate::transcript::identity::fnv1a(&[&first_line[..first_line.len().min(FINGERPRINT_BYTES)]])
}

/// Fill `buf` from `file` at `offset`, or as much as there is; returns how much was read.
fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    file.seek(SeekFrom::Start(offset))?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Fingerprint of the file's current first line, if it is complete or long enough.
fn first_line_fingerprint(file: &mut File) -> io::Result<Option<u64>> {
    let mut head = [0u8; FINGERPRINT_BYTES];
    let n = read_at(file, 0, &mut head)?;
    let head = &head[..n];
    Ok(match memchr::memchr(b'\n', head) {
        Some(nl) => Some(fingerprint(&head[..nl])),
        None if n == FINGERPRINT_BYTES => Some(fingerprint(head)),
        None => None,
    })
}

#[cfg(test)]
mod tests;
