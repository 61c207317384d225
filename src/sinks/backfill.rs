//! History as timestamped OpenMetrics, for `promtool tsdb create-blocks-from openmetrics`.
//!
//! In: every transcript below the projects folders. Out: the counters and
//! histograms of `/metrics` (same names and labels) as they stood at each
//! minute of the transcripts' time range, so that dashboards show months of
//! past usage on the day the exporter is installed.
//!
//! Entries are collected from all files, put in transcript-time order (file
//! order breaks ties, so a tool call still precedes its result), and applied to
//! a fresh aggregator; at each step boundary the series that changed get a
//! sample. A series gets a 0 sample one step before its first change (so
//! `increase()` counts the first burst) and a last sample at the end of the
//! range (so every series answers an instant query there). Quiet stretches get
//! no samples: rates and increases over them are right, instant queries in the
//! middle of a long pause return nothing (Prometheus's 5-minute staleness).
//! The exporter's own metrics (bytes read, lag…) describe a process, not
//! history, and are left out.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::engine::{self, LineCounts, Settings};
use crate::source::discover::{self, FileInfo, Role};
use crate::source::tail::Tail;
use crate::state::live::{Aggregator, Source};
use crate::state::metrics::{self, HistData, text};
use crate::transcript::entry::{Entry, Millis};

/// Backfill options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sample spacing.
    pub step_ms: Millis,
    /// Extra labels on every series (e.g. `job`, `instance`, to match a scrape config).
    pub labels: Vec<(String, String)>,
    /// Only history up to this time (defaults to now).
    pub until_ms: Millis,
}

/// What was written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Transcript files read.
    pub files: usize,
    /// Entries applied (those stamped up to `until_ms`).
    pub entries: usize,
    /// Series written (counter and histogram series, each with its own labels).
    pub series: usize,
    /// Samples written (a histogram sample counts once, whatever its buckets).
    pub samples: usize,
    /// Transcript time of the first entry applied.
    pub first_ms: Option<Millis>,
    /// Transcript time of the last entry applied.
    pub last_ms: Option<Millis>,
}

/// One series' samples: (time, value) for counters, (time, histogram) for histograms.
#[derive(Debug, Default)]
struct Series {
    counter: Vec<(Millis, f64)>,
    histogram: Vec<(Millis, HistData)>,
}

/// Samples by family (histogram or counter, family index), then by series key.
type Families = BTreeMap<(bool, usize), BTreeMap<Box<str>, Series>>;

/// Read all history and write the OpenMetrics exposition to `out`.
pub fn run(settings: &Settings, opts: &Options, out: &mut dyn Write) -> std::io::Result<Summary> {
    let (infos, mut entries) = collect(settings);
    entries.retain(|(ts, ..)| *ts <= opts.until_ms);
    // Transcript time first; within one millisecond, file order then line order.
    entries.sort_by_key(|(ts, file, seq, _)| (*ts, *file, *seq));
    let mut summary = Summary {
        files: infos.len(),
        entries: entries.len(),
        first_ms: entries.first().map(|e| e.0),
        last_ms: entries.last().map(|e| e.0),
        ..Summary::default()
    };
    let mut agg = Aggregator::new(settings.aggregator.clone());
    let mut warmup = vec![false; infos.len()];
    let mut series = Families::new();
    let step = opts.step_ms.max(1000);
    // Session lifecycles (idle/ended observations) advance every 10 steps of transcript time.
    let tick_every = step * 10;
    let mut bucket: Option<Millis> = None;
    let mut next_tick = Millis::MIN;
    for (ts, file, _, e) in &entries {
        let b = ts.div_euclid(step);
        if bucket.is_some_and(|prev| prev != b) {
            let at = (bucket.expect("checked") + 1) * step;
            snapshot(&agg, at, step, &mut series, false);
        }
        bucket = Some(b);
        if *ts >= next_tick {
            agg.tick(*ts);
            next_tick = ts + tick_every;
        }
        let info = &infos[*file];
        if e.warmup_prompt && info.role == Role::Subagent {
            warmup[*file] = true;
        }
        agg.apply(e, &Source { info, warmup: warmup[*file] });
    }
    if let Some(b) = bucket {
        // Close the sessions still open at the end of history, then one last sample for every series.
        let end = ((b + 1) * step).max(summary.last_ms.unwrap_or(0));
        agg.tick(end + settings.aggregator.end_after_ms);
        snapshot(&agg, end, step, &mut series, true);
    }
    let all = || series.values().flat_map(BTreeMap::values);
    summary.series = all().count();
    summary.samples = all().map(|s| s.counter.len() + s.histogram.len()).sum();
    write(out, &series, &opts.labels)?;
    Ok(summary)
}

/// Replay the history stamped before `until_ms` through a tracer: every past
/// turn becomes a trace, handed to `sink`. Returns the number of spans.
pub fn traces(settings: &Settings, until_ms: Millis, sink: crate::state::trace::SpanSink) -> usize {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let spans = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&spans);
    let mut agg = Aggregator::new(settings.aggregator.clone());
    agg.enable_traces(
        Millis::MIN,
        Arc::new(move |s: Vec<crate::state::trace::Span>| {
            counted.fetch_add(s.len(), Ordering::Relaxed);
            sink(s);
        }),
    );
    replay(settings, until_ms, &mut agg);
    agg.finish_traces();
    spans.load(Ordering::Relaxed)
}

/// Replay the history stamped before `until_ms` as realtime events, handed to
/// `emitter`'s sink (its `since_ms` is ignored: all of it). Turns are traced (and the
/// spans thrown away) so that events carry the trace ids the backfilled traces have.
/// Returns the number of events.
pub fn events(settings: &Settings, until_ms: Millis, emitter: crate::state::live::Emitter) -> usize {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let n = Arc::new(AtomicUsize::new(0));
    let (counted, sink) = (Arc::clone(&n), emitter.sink.clone());
    let mut agg = Aggregator::new(settings.aggregator.clone());
    agg.enable_traces(Millis::MIN, Arc::new(|_| {}));
    // Numbered in transcript-time order, as a bus would: the same history gets the same
    // numbers (and so the same `event.id`) if it is sent again.
    let sink: crate::events::EventSink = Arc::new(move |mut e: crate::events::Event| {
        e.id = counted.fetch_add(1, Ordering::Relaxed) as u64 + 1;
        sink(e);
    });
    agg.set_events(Some(crate::state::live::Emitter { since_ms: Millis::MIN, sink, stats: None, ..emitter }));
    replay(settings, until_ms, &mut agg);
    n.load(Ordering::Relaxed)
}

/// Apply every entry stamped before `until_ms`, in transcript-time order, to `agg`,
/// with lifecycles advancing each minute of transcript time (idle turns end as they did live).
fn replay(settings: &Settings, until_ms: Millis, agg: &mut Aggregator) {
    let (infos, mut entries) = collect(settings);
    entries.retain(|(ts, ..)| *ts < until_ms);
    entries.sort_by_key(|(ts, file, seq, _)| (*ts, *file, *seq));
    let mut warmup = vec![false; infos.len()];
    let mut next_tick = Millis::MIN;
    for (ts, file, _, e) in &entries {
        if *ts >= next_tick {
            agg.tick(*ts);
            next_tick = ts + 60_000;
        }
        let info = &infos[*file];
        if e.warmup_prompt && info.role == Role::Subagent {
            warmup[*file] = true;
        }
        agg.apply(e, &Source { info, warmup: warmup[*file] });
    }
}

/// Entries of every file with their transcript time: (time, file index, line index, entry).
pub(crate) type Timed = (Millis, usize, usize, Entry);

pub(crate) fn collect(settings: &Settings) -> (Vec<FileInfo>, Vec<Timed>) {
    let mut infos = Vec::new();
    let mut entries = Vec::new();
    let mut buf = Vec::new();
    // Every projects folder in one walk: a file reachable from two of them is read once.
    let mut errors = Vec::new();
    let dirs = &settings.projects_dirs;
    for path in discover::walk(dirs, &mut errors) {
        let Some(info) = dirs.iter().find_map(|d| discover::classify(d, &path)) else { continue };
        let file = infos.len();
        infos.push(info);
        let mut counts = LineCounts::default();
        let mut last_ts = None;
        let mut seq = 0;
        let read = Tail::default().read(&path, settings.max_line_bytes, false, &mut buf, &mut |line| {
            if let Some(e) = engine::parse(line, &mut counts, &path, settings.capture_content) {
                // A line without a time happened when the line before it did.
                last_ts = e.timestamp.or(last_ts);
                if let Some(ts) = last_ts {
                    entries.push((ts, file, seq, e));
                }
                seq += 1;
            }
        });
        if let Err(e) = read {
            tracing::warn!(path = %path.display(), error = %e, "Cannot read transcript; skipped.");
        }
    }
    for (dir, e) in errors {
        tracing::warn!(path = %dir.display(), error = %e, "Cannot read folder; skipped.");
    }
    (infos, entries)
}

/// Record a sample for every series whose value changed since its last sample
/// (with `at_end`, for every series, so that all answer at the end of history).
fn snapshot(agg: &Aggregator, at: Millis, step: Millis, series: &mut Families, at_end: bool) {
    for (fam, (_, map)) in agg.store.counter_families().enumerate() {
        let family = series.entry((false, fam)).or_default();
        for (key, v) in map {
            match family.get_mut(key.as_ref()).and_then(|s| s.counter.last().copied().map(|last| (s, last))) {
                Some((s, (t, last))) => {
                    if last != *v || (at_end && t != at) {
                        s.counter.push((at, *v));
                    }
                }
                // Series that never moved (the exporter's own, created at 0) get no samples.
                None if *v == 0.0 => {}
                None => family.entry(key.clone()).or_default().counter.extend([(at - step, 0.0), (at, *v)]),
            }
        }
    }
    for (fam, (def, map)) in agg.store.histogram_families().enumerate() {
        let family = series.entry((true, fam)).or_default();
        for (key, h) in map {
            match family
                .get_mut(key.as_ref())
                .and_then(|s| s.histogram.last().map(|(t, l)| (*t, l.count)).map(|last| (s, last)))
            {
                Some((s, (t, count))) => {
                    if count != h.count || (at_end && t != at) {
                        s.histogram.push((at, h.clone()));
                    }
                }
                None => {
                    let zero = HistData { counts: vec![0; def.buckets.len() + 1], sum: 0.0, count: 0 };
                    family.entry(key.clone()).or_default().histogram.extend([(at - step, zero), (at, h.clone())]);
                }
            }
        }
    }
}

/// Write all families as OpenMetrics text (the one writer of `/metrics`, with
/// timestamps), each family's series together, flushed to `out` series by series.
fn write(out: &mut dyn Write, series: &Families, extra: &[(String, String)]) -> std::io::Result<()> {
    let mut w = text::Writer::new(text::Flavour::OpenMetrics);
    for (&(hist, fam), family) in series.iter().filter(|(_, f)| !f.is_empty()) {
        let def = if hist { &metrics::HISTOGRAMS[fam] } else { &metrics::COUNTERS[fam] };
        def.write_header(&mut w, &def.family_name());
        let scale = def.scale();
        for (key, s) in family {
            w.series(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(metrics::labels_of(def, key)));
            for (at, v) in &s.counter {
                w.counter(v * scale, None, Some(*at));
            }
            for (at, h) in &s.histogram {
                let mut cumulative = 0;
                let buckets = def.buckets.iter().copied().chain([f64::INFINITY]).zip(&h.counts).map(|(le, n)| {
                    cumulative += n;
                    (le, cumulative, None)
                });
                w.histogram(buckets, h.count, h.sum * scale, Some(*at));
            }
            w.flush_to(out)?;
        }
    }
    out.write_all(w.finish().as_bytes())
}

/// Parse `job=x` style label arguments.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    let valid = !k.is_empty()
        && k.chars().enumerate().all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if !valid || k.starts_with("__") {
        return Err(format!("invalid label name {k:?}"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Where `backfill` writes: a file, or standard output for `-`.
pub fn open_out(path: &PathBuf) -> std::io::Result<Box<dyn Write>> {
    if path.as_os_str() == "-" {
        Ok(Box::new(std::io::BufWriter::new(std::io::stdout().lock())))
    } else {
        Ok(Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(dir: &std::path::Path, rel: &str, lines: &[String]) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, lines.join("\n") + "\n").unwrap();
    }

    fn assistant(id: &str, ts: &str, input: u64) -> String {
        format!(
            r#"{{"type":"assistant","sessionId":"s1","cwd":"/w/app","timestamp":"{ts}","requestId":"r{id}","message":{{"id":"{id}","model":"claude-opus-4-6","usage":{{"input_tokens":{input},"output_tokens":1}},"content":[]}}}}"#
        )
    }

    #[test]
    fn samples_follow_transcript_time_across_files() {
        let d = tempfile::tempdir().unwrap();
        // Two files whose lines interleave in time.
        write_file(
            d.path(),
            "p/a.jsonl",
            &[assistant("m1", "2025-01-01T00:00:10Z", 10), assistant("m3", "2025-01-01T00:05:10Z", 1000)],
        );
        write_file(d.path(), "p/b.jsonl", &[assistant("m2", "2025-01-01T00:02:10Z", 100)]);
        let settings = Settings { projects_dirs: vec![d.path().to_owned()], ..Settings::default() };
        let opts = Options { step_ms: 60_000, labels: vec![("job".into(), "cs".into())], until_ms: Millis::MAX };
        let mut out = Vec::new();
        let sum = run(&settings, &opts, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let input: Vec<&str> = text.lines().filter(|l| l.contains(r#"type="input""#)).collect();
        let t0 = crate::transcript::entry::parse_timestamp("2025-01-01T00:00:00Z").unwrap() / 1000;
        let expect = [
            format!(
                r#"claude_sessions_tokens_total{{job="cs",project="app",model="claude-opus-4-6",query_source="main",type="input"}} 0.0 {t0}.000"#
            ),
            format!(
                r#"claude_sessions_tokens_total{{job="cs",project="app",model="claude-opus-4-6",query_source="main",type="input"}} 10.0 {}.000"#,
                t0 + 60
            ),
            format!(
                r#"claude_sessions_tokens_total{{job="cs",project="app",model="claude-opus-4-6",query_source="main",type="input"}} 110.0 {}.000"#,
                t0 + 180
            ),
            format!(
                r#"claude_sessions_tokens_total{{job="cs",project="app",model="claude-opus-4-6",query_source="main",type="input"}} 1110.0 {}.000"#,
                t0 + 360
            ),
        ];
        assert_eq!(input, expect);
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("# TYPE claude_sessions_tokens counter\n"));
        assert_eq!(sum.entries, 3);
        assert!(sum.samples >= 4);
    }

    #[test]
    fn label_arguments_are_validated() {
        assert_eq!(parse_label("job=x").unwrap(), ("job".into(), "x".into()));
        assert!(parse_label("nolabel").is_err());
        assert!(parse_label("1a=x").is_err());
        assert!(parse_label("__name__=x").is_err());
    }
}
