//! Criterion benchmarks of the pipeline's stages on the real fixtures.
//!
//! Each group has a baseline measured in the same run, so the ratio means
//! something on a shared, noisy machine:
//! - `parse`: our borrowing, skipping parser vs `serde_json::Value` (a full
//!   DOM parse) vs only splitting lines (`memchr`), in bytes per second;
//! - `apply`: parsed entries into the aggregator (dedup, pricing, counters);
//! - `apply`: also with per-turn tracing on (spans built and handed to a sink);
//! - `render`: `/metrics` text for the whole fixture corpus, and the same store
//!   as an OTLP metrics request (built and protobuf-encoded);
//! - `scan`: the end-to-end one-shot scan over a copy of the fixtures, with one
//!   and two threads, next to reading the same files (`read`);
//! - `research`: a line's facts and its research features (`analyze`'s one parse,
//!   salient tokens included) vs the facts alone (what `scan` parses), in bytes per
//!   second.

use std::path::{Path, PathBuf};

use claude_sessions::engine::{Engine, Settings};
use claude_sessions::source::discover::{FileInfo, Role};
use claude_sessions::state::live::{Aggregator, Config, Source};
use claude_sessions::transcript;
use claude_sessions::transcript::entry::Entry;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real")
}

fn jsonl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            jsonl_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "jsonl") {
            out.push(p);
        }
    }
}

fn all_lines() -> (Vec<Vec<u8>>, u64) {
    let mut files = Vec::new();
    jsonl_files(&fixtures(), &mut files);
    files.sort();
    let mut lines = Vec::new();
    let mut bytes = 0;
    for f in files {
        let data = std::fs::read(f).unwrap();
        bytes += data.len() as u64;
        lines.extend(data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
    }
    (lines, bytes)
}

/// The facts of every line, as `scan` reads them.
fn facts(lines: &[Vec<u8>]) -> usize {
    lines
        .iter()
        .filter_map(|l| match transcript::progress_head(l) {
            Some(h) => Some(Entry::progress(&h)),
            None => transcript::parse_line(l).ok().map(|line| Entry::from_line(&line)),
        })
        .count()
}

fn parse(c: &mut Criterion) {
    let (lines, bytes) = all_lines();
    let joined: Vec<u8> = lines.join(&b'\n');
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("split_lines_baseline", |b| b.iter(|| memchr::memchr_iter(b'\n', &joined).count()));
    g.bench_function("serde_json_value_baseline", |b| {
        b.iter(|| lines.iter().filter(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok()).count())
    });
    g.bench_function("transcript_entry", |b| b.iter(|| facts(&lines)));
    // Before the line reader (src/transcript/json.rs): the same facts with the
    // lines parsed by `serde_json`, which accepts and refuses the same lines.
    g.bench_function("transcript_entry_serde_json_before", |b| {
        b.iter(|| {
            lines
                .iter()
                .filter_map(|l| match transcript::progress_head(l) {
                    Some(h) => Some(Entry::progress(&h)),
                    None => std::str::from_utf8(l)
                        .ok()
                        .and_then(|s| serde_json::from_str::<transcript::Line>(s).ok())
                        .map(|line| Entry::from_line(&line)),
                })
                .count()
        })
    });
    g.finish();
}

fn research(c: &mut Criterion) {
    use claude_sessions::research::LineFeatures;
    let (lines, bytes) = all_lines();
    let mut g = c.benchmark_group("research");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("facts_baseline", |b| b.iter(|| facts(&lines)));
    g.bench_function("facts_and_features", |b| {
        b.iter(|| {
            let mut tokens = 0;
            for l in &lines {
                if transcript::progress_head(l).is_some() {
                    continue;
                }
                let Ok(line) = transcript::parse_line(l) else { continue };
                let e = Entry::from_line(&line);
                let f = LineFeatures::from_line(&line, l, &e, &|_| false);
                tokens += f.reply.len() + f.tool_results.iter().map(|r| r.tokens.len()).sum::<usize>();
            }
            tokens
        })
    });
    g.finish();
}

fn apply(c: &mut Criterion) {
    let (lines, _) = all_lines();
    let entries: Vec<Entry> =
        lines.iter().filter_map(|l| transcript::parse_line(l).ok()).map(|l| Entry::from_line(&l)).collect();
    let info = FileInfo { role: Role::Main, slug: "-bench".into(), session: None, agent: None };
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function("aggregator", |b| {
        b.iter(|| {
            let mut agg = Aggregator::new(Config::default());
            for e in &entries {
                agg.apply(e, &Source { info: &info, warmup: false });
            }
            agg
        })
    });
    g.bench_function("aggregator_with_traces", |b| {
        b.iter(|| {
            let spans = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counted = std::sync::Arc::clone(&spans);
            let mut agg = Aggregator::new(Config::default());
            agg.enable_traces(
                i64::MIN,
                std::sync::Arc::new(move |s: Vec<claude_sessions::state::trace::Span>| {
                    counted.fetch_add(s.len(), std::sync::atomic::Ordering::Relaxed);
                }),
            );
            for e in &entries {
                agg.apply(e, &Source { info: &info, warmup: false });
            }
            agg.finish_traces();
            spans.load(std::sync::atomic::Ordering::Relaxed)
        })
    });
    g.finish();
}

fn scan_engine(projects: &Path, threads: usize) -> Engine {
    let mut engine = Engine::new(Settings { projects_dirs: vec![projects.to_owned()], ..Settings::default() });
    engine.scan(threads, &|_, _| {});
    engine
}

fn render(c: &mut Criterion) {
    let engine = scan_engine(&fixtures().join("claude-code-log/projects"), 1);
    let exposition = claude_sessions::server::Exposition::new(engine.aggregator());
    let mut g = c.benchmark_group("render");
    g.bench_function("prometheus_text", |b| b.iter(|| exposition.render(false).len()));
    g.bench_function("openmetrics_text", |b| b.iter(|| exposition.render(true).len()));
    let big = claude_sessions::server::Exposition::new(std::sync::Arc::new(std::sync::Mutex::new(big_store())));
    g.bench_function("prometheus_text_10k_series", |b| b.iter(|| big.render(false).len()));
    g.bench_function("openmetrics_text_10k_series", |b| b.iter(|| big.render(true).len()));
    let cfg = claude_sessions::sinks::otlp::Config::from_env(
        &|_| None,
        &claude_sessions::sinks::otlp::Overrides { metrics: true, ..Default::default() },
    )
    .unwrap()
    .unwrap();
    let agg = engine.aggregator();
    g.bench_function("otlp_metrics_request", |b| {
        b.iter(|| {
            let a = agg.lock().unwrap();
            let (req, _, _) = claude_sessions::sinks::otlp_metrics::build(&a, &cfg, 1_800_000_000_000);
            prost::Message::encoded_len(&req)
        })
    });
    g.finish();
}

/// An aggregator whose store holds about 9,000 series: 2,400 token series, 2,000
/// each of tool calls, tool errors and rule matches, 200 cost series, 50 gauge
/// series and 300 histogram series (200 with an exemplar on one bucket).
fn big_store() -> Aggregator {
    use claude_sessions::state::metrics::{Counter, Exemplar, Gauge, Histogram, Store};
    let mut agg = Aggregator::new(Config::default());
    agg.store = Store::new(100_000);
    let s = &mut agg.store;
    for p in 0..50 {
        let project = format!("project-{p}");
        for m in 0..4 {
            let model = format!("claude-model-{m}");
            for t in ["input", "output", "cache_read", "cache_creation"] {
                for q in ["main", "subagent", "compact"] {
                    s.inc(Counter::Tokens, &[&project, &model, q, t], 1234.0);
                }
            }
            s.inc(Counter::Cost, &[&project, &model, "main"], 123_456_789.0);
        }
        for t in 0..40 {
            let tool = format!("tool-{t}");
            s.inc(Counter::ToolCalls, &[&project, &tool], 17.0);
            s.inc(Counter::ToolErrors, &[&project, &tool], 2.0);
            s.inc(Counter::RuleMatches, &[&tool, &project], 1.0);
        }
        s.observe(Histogram::TurnDuration, &[&project], 42_000.0);
        s.observe(Histogram::SessionDuration, &[&project], 900_000.0);
    }
    for t in 0..200 {
        let ex = Exemplar { trace_id: [7; 16], span_id: [9; 8], at_ms: 1_800_000_000_000, value: 0.0 };
        s.observe_with(Histogram::ToolDuration, &[&format!("tool-{t}")], 2400.0, Some(ex));
    }
    let projects: Vec<String> = (0..50).map(|p| format!("project-{p}")).collect();
    s.set_gauges(Gauge::LastActivity, projects.iter().map(|p| (vec![p.as_str()], 1.8e9)));
    agg
}

fn scan(c: &mut Criterion) {
    // A projects folder holding several copies of every fixture (ids repeat, so
    // dedup work is lighter than on real history; bench/run.sh uses fresh ids).
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    jsonl_files(&fixtures(), &mut files);
    let mut bytes = 0u64;
    for copy in 0..8 {
        for (i, f) in files.iter().enumerate() {
            let dst = tmp.path().join(format!("p{copy}-{i}")).join(f.file_name().unwrap());
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            bytes += std::fs::copy(f, &dst).unwrap();
        }
    }
    let mut all = Vec::new();
    jsonl_files(tmp.path(), &mut all);
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.bench_function("read_files_baseline", |b| {
        b.iter(|| all.iter().map(|p| std::fs::read(p).unwrap().len()).sum::<usize>())
    });
    for threads in [1, 2] {
        g.bench_with_input(BenchmarkId::new("engine", threads), &threads, |b, &t| {
            b.iter(|| scan_engine(tmp.path(), t))
        });
    }
    g.finish();
}

criterion_group!(benches, parse, research, apply, render, scan);
criterion_main!(benches);
