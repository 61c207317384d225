//! Reading one file into the aggregator: its lines parsed into entries (with
//! captured content where it is wanted), the entries applied in order, and what
//! the read did counted. [`FileReader`] holds what reading needs, so any thread
//! can read; the engine decides when and keeps the files' state.

use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{BATCH, LineCounts, Tracked};
use crate::source::discover::{FileInfo, Role};
use crate::source::tail::Report;
use crate::state::live::{Aggregator, Source};
use crate::state::metrics::{Counter, Histogram};
use crate::transcript;
use crate::transcript::entry::{Entry, Millis};

/// Count what one read did; observe the lag of live lines.
pub(super) fn record(agg: &Mutex<Aggregator>, r: &Report, c: LineCounts, now: Millis, caught_up: bool) {
    let mut agg = agg.lock().unwrap_or_else(|p| p.into_inner());
    let s = &mut agg.store;
    s.inc(Counter::BytesRead, &[], r.bytes as f64);
    s.inc(Counter::Lines, &["ok"], c.ok as f64);
    s.inc(Counter::Lines, &["malformed"], c.malformed as f64);
    s.inc(Counter::Lines, &["unknown_type"], c.unknown_type as f64);
    s.inc(Counter::Lines, &["oversized"], r.oversized as f64);
    s.inc(Counter::Truncations, &[], f64::from(u8::from(r.truncated)));
    s.inc(Counter::Rotations, &[], f64::from(u8::from(r.replaced)));
    if caught_up
        && r.lines > 0
        && let Some(mtime) = r.mtime
    {
        let written = mtime.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis);
        s.observe(Histogram::EventLag, &[], (now - written).max(0) as f64);
    }
}

/// Parse one line into an entry, counting the result; `None` if it has no meaning for us.
///
/// `capture`: also keep the line's content for events and traces, each item cut to this size.
pub fn parse(line: &[u8], counts: &mut LineCounts, path: &Path, capture: Option<usize>) -> Option<Entry> {
    parse_inspecting(line, counts, path, capture, &crate::engine::capture::Inspect::default())
}

/// [`parse`], reading each whole tool input of captured content for what `inspect` asks.
fn parse_inspecting(
    line: &[u8],
    counts: &mut LineCounts,
    path: &Path,
    capture: Option<usize>,
    inspect: &crate::engine::capture::Inspect,
) -> Option<Entry> {
    let (mut e, _) = parse_with_line(line, counts, path)?;
    if let Some(cap) = capture {
        e.content = crate::engine::capture::read(line, cap, inspect);
    }
    Some(e)
}

/// [`parse`] without capture, handing on the parsed [`transcript::Line`] too (`None`
/// for a `progress` line, which is read by its head only): what research reads its
/// features from, with no second parse.
pub fn parse_with_line<'a>(
    line: &'a [u8],
    counts: &mut LineCounts,
    path: &Path,
) -> Option<(Entry, Option<transcript::Line<'a>>)> {
    if let Some(head) = transcript::progress_head(line) {
        counts.ok += 1;
        return Some((Entry::progress(&head), None));
    }
    let parsed = transcript::parse_line(line);
    match parsed {
        Ok(l) if l.is_known_type() => {
            counts.ok += 1;
            Some((Entry::from_line(&l), Some(l)))
        }
        Ok(_) => {
            counts.unknown_type += 1;
            None
        }
        Err(e) => {
            counts.malformed += 1;
            // The error says where, never what: no transcript content in logs.
            tracing::debug!(path = %path.display(), error = %e, "Skipped malformed line.");
            None
        }
    }
}

/// How files are read (the engine's settings for it), on any thread.
pub(super) struct FileReader {
    pub(super) max_line: usize,
    pub(super) capture: Option<usize>,
    pub(super) keep_open: bool,
    pub(super) inspect: crate::engine::capture::Inspect,
}

/// One read of one file: its entries (those not applied yet), counts and report.
pub(super) struct FileRead {
    pub(super) counts: LineCounts,
    pub(super) batch: Vec<Entry>,
    pub(super) report: Report,
    pub(super) result: std::io::Result<()>,
}

impl FileReader {
    /// Read what was appended to `path` since `t`'s position. With `agg`, entries are
    /// applied every [`BATCH`] lines as they come; without, all are handed back.
    pub(super) fn read(
        &self,
        path: &Path,
        t: &mut Tracked,
        buf: &mut Vec<u8>,
        agg: Option<&Mutex<Aggregator>>,
    ) -> FileRead {
        let (mut counts, mut batch, mut report) = (LineCounts::default(), Vec::new(), Report::default());
        let mut tail = std::mem::take(&mut t.tail);
        let result = {
            let (info, warmup) = (&t.info, &mut t.warmup);
            let mut on_line = |line: &[u8]| {
                if let Some(e) = parse_inspecting(line, &mut counts, path, self.capture, &self.inspect) {
                    batch.push(e);
                }
                if let Some(agg) = agg
                    && batch.len() >= BATCH
                {
                    apply_batch(agg, info, warmup, &mut batch);
                }
            };
            tail.read_into(path, self.max_line, self.keep_open, buf, &mut on_line, &mut report)
        };
        t.tail = tail;
        FileRead { counts, batch, report, result }
    }
}

pub(super) fn apply_batch(agg: &Mutex<Aggregator>, info: &FileInfo, warmup: &mut bool, batch: &mut Vec<Entry>) {
    if batch.is_empty() {
        return;
    }
    let mut agg = agg.lock().unwrap_or_else(|p| p.into_inner());
    for e in batch.drain(..) {
        if e.warmup_prompt && info.role == Role::Subagent {
            *warmup = true;
        }
        agg.apply(&e, &Source { info, warmup: *warmup });
    }
}
