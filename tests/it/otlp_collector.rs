//! OTLP against a real collector (rotel-agent, tests/it/collector.rs), over gRPC and over
//! HTTP/protobuf: after the fixtures are read, the collector's metrics carry the token
//! totals of the independent count, and its spans form the tree the transcripts imply.
//! Then the collector is killed in the middle of a live replay and started again.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::collector::{self, Received, Rotel, SpanRec};
use super::daemon::{self, Daemon};
use super::oracle;
use super::otlp_support::{self, SpanView};
use super::support;

fn view(s: &SpanRec) -> SpanView {
    SpanView {
        trace_id: s.trace_id.clone(),
        span_id: s.span_id.clone(),
        parent: s.parent_span_id.clone(),
        name: s.name.clone(),
        kind: s.kind.clone(),
        start_ns: s.start_ns,
        end_ns: s.end_ns,
        attrs: s.attrs.clone(),
        error: s.status_code == "error",
        events: s.events.clone(),
    }
}

/// Token totals of the collector's latest export of `claude_sessions.tokens`.
fn latest_tokens(r: &Received) -> f64 {
    let latest = r.points("claude_sessions.tokens").map(|p| p.time_ns).max().unwrap_or(0);
    r.points("claude_sessions.tokens").filter(|p| p.time_ns == latest).map(|p| p.value).sum()
}

fn total_tokens(o: &oracle::Oracle) -> f64 {
    o.tokens.values().map(|t| (t.input + t.output + t.cache_read + t.cache_creation) as f64).sum()
}

fn replays_fixtures_to_a_real_collector(protocol: &str) {
    let Some(rotel) = Rotel::start_or_skip() else { return };
    let endpoint = if protocol == "grpc" { rotel.grpc_endpoint() } else { rotel.http_endpoint() };
    let root = support::real_config_root();
    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        root.path(),
        state.path(),
        &[
            "--otlp-metrics",
            "--otlp-traces",
            "--otlp-backfill",
            "--otlp-protocol",
            protocol,
            "--otlp-endpoint",
            &endpoint,
            "--otlp-interval",
            "500ms",
        ],
    );
    d.wait_ready(Duration::from_secs(60));
    let projects = root.path().join("projects");
    let total = total_tokens(&oracle::count(&projects));
    let expect = otlp_support::expected_traces(&projects);
    let spans_wanted: usize = expect.values().map(|e| e.responses.len() + e.tools.len()).sum();
    let got = collector::wait_for(&rotel, Duration::from_secs(60), |r| {
        latest_tokens(r) == total
            && r.spans.iter().filter(|s| s.attrs.contains_key("gen_ai.operation.name")).count() > spans_wanted
    });
    // Settle: the backfill's last spans.
    std::thread::sleep(Duration::from_secs(2));
    let got = Received { spans: rotel.received().spans, ..got };
    assert_eq!(latest_tokens(&got), total, "{protocol}: token totals equal the independent count");
    assert_eq!(d.metrics().sum("claude_sessions_tokens_total", &[]), total, "and /metrics");
    let cost = got.points("claude_sessions.cost").max_by_key(|p| p.time_ns).expect("cost points");
    assert_eq!((cost.unit.as_str(), cost.temporality.as_str(), cost.monotonic), ("USD", "Cumulative", Some(true)));
    assert_eq!(cost.resource.get("service.name").map(String::as_str), Some("claude-sessions"));
    let spans: Vec<SpanView> = got.spans.iter().map(view).collect();
    otlp_support::check_spans(&spans, &expect);
    let turns: u64 = expect.values().map(|e| e.prompts).sum();
    eprintln!("{protocol}: {} spans for {turns} turns, {spans_wanted} calls and tools; {total} tokens", spans.len());
    d.stop();
}

#[test]
fn a_real_collector_receives_totals_and_turn_traces_over_grpc() {
    replays_fixtures_to_a_real_collector("grpc");
}

#[test]
fn a_real_collector_receives_totals_and_turn_traces_over_http() {
    replays_fixtures_to_a_real_collector("http/protobuf");
}

/// The fixture lines of `src` (main files first), timestamps moved so that the first is
/// `start_ms` and the others keep their spacing compressed 1000×: history replayed as live.
fn live_lines(src: &Path, start_ms: i64) -> Vec<(std::path::PathBuf, String)> {
    let mut files = oracle::jsonl_files(src);
    files.sort_by_key(|p| (p.to_string_lossy().contains("agent-"), p.clone()));
    let mut out = Vec::new();
    let mut first = None;
    for f in files {
        let rel = f.strip_prefix(src).unwrap().to_path_buf();
        for raw in std::fs::read_to_string(&f).unwrap().lines() {
            let Ok(mut v) = serde_json::from_str::<Value>(raw) else { continue };
            if let Some(ts) = v.get("timestamp").and_then(Value::as_str).and_then(support::parse_rfc3339) {
                let base = *first.get_or_insert(ts);
                v["timestamp"] = Value::String(support::rfc3339(start_ms + (ts - base) / 1000));
            }
            out.push((rel.clone(), v.to_string()));
        }
    }
    out
}

#[test]
fn killing_the_collector_mid_replay_loses_no_metrics_and_counts_dropped_spans() {
    let Some(mut rotel) = Rotel::start_or_skip() else { return };
    let endpoint = rotel.grpc_endpoint();
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        root.path(),
        state.path(),
        &[
            "--otlp-metrics",
            "--otlp-traces",
            "--otlp-protocol",
            "grpc",
            "--otlp-endpoint",
            &endpoint,
            "--otlp-interval",
            "300ms",
            "--otlp-max-queue-spans",
            "200",
        ],
    );
    d.wait_ready(Duration::from_secs(30));
    let pid = d.pid().expect("running");
    let src = support::real_config_root();
    let lines = live_lines(&src.path().join("projects"), otlp_now_ms());
    let total = total_tokens(&oracle::count(&src.path().join("projects")));
    let write = |part: &[(std::path::PathBuf, String)]| {
        let mut by_file: BTreeMap<&Path, String> = BTreeMap::new();
        for (rel, l) in part {
            let s = by_file.entry(rel.as_path()).or_default();
            s.push_str(l);
            s.push('\n');
        }
        for (rel, text) in by_file {
            daemon::append(&projects.join(rel), text.as_bytes());
        }
    };
    // A third of the history arrives while the collector is up.
    let third = lines.len() / 3;
    write(&lines[..third]);
    collector::wait_for(&rotel, Duration::from_secs(30), |r| latest_tokens(r) > 0.0 && !r.spans.is_empty());
    let rss_before = support::rss_kib(pid);

    // The collector dies; the rest arrives, in bursts.
    assert_eq!(rotel.stop().map(|s| s.success()), Some(true));
    let metrics_before = rotel.received().metrics.len();
    let mut worst_scrape = Duration::ZERO;
    let mut rss_max = rss_before;
    for chunk in lines[third..].chunks(200) {
        write(chunk);
        let t = Instant::now();
        let m = d.metrics();
        worst_scrape = worst_scrape.max(t.elapsed());
        assert!(m.sum("claude_sessions_exporter_lines_total", &[("result", "ok")]) > 0.0);
        rss_max = rss_max.max(support::rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    // /metrics has everything while the collector is down.
    let caught = d.wait_for(Duration::from_secs(20), |m| m.sum("claude_sessions_tokens_total", &[]) == total);
    assert!(
        caught.is_some(),
        "{} of {total}; {}",
        d.metrics().sum("claude_sessions_tokens_total", &[]),
        d.log_text()
            .lines()
            .filter(|l| l.contains("panic") || l.contains("WARN") || l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let failed = d.wait_for(Duration::from_secs(30), |m| {
        m.sum("claude_sessions_exporter_otlp_exports_total", &[("signal", "metrics"), ("result", "error")]) > 0.0
            && m.sum("claude_sessions_exporter_otlp_dropped_total", &[("signal", "traces")]) > 0.0
    });
    assert!(failed.is_some(), "export errors and dropped spans are counted:\n{}", d.log_text());
    let m = d.metrics();
    let dropped = m.sum("claude_sessions_exporter_otlp_dropped_total", &[("signal", "traces")]);
    let queued = m.sum("claude_sessions_exporter_otlp_queue", &[("signal", "traces")]);
    assert!(queued <= 200.0, "the span queue stays within its bound: {queued}");
    assert!(d.log_text().contains("OTLP export failed"), "failures are logged");
    rss_max = rss_max.max(support::rss_kib(pid));
    eprintln!(
        "collector down: worst scrape {worst_scrape:?}, RSS {rss_before} → max {rss_max} KiB, {dropped} spans dropped, queue {queued}"
    );
    assert!(worst_scrape < Duration::from_secs(2), "/metrics stays responsive: {worst_scrape:?}");
    assert!(rss_max < rss_before + 64 * 1024, "memory stays bounded: {rss_before} → {rss_max} KiB");

    // The collector comes back: export resumes with the full totals.
    rotel.restart();
    let got = collector::wait_for(&rotel, Duration::from_secs(30), |r| {
        r.metrics.len() > metrics_before && latest_tokens(r) == total
    });
    assert_eq!(latest_tokens(&got), total);
    assert!(
        d.wait_for(Duration::from_secs(10), |m| {
            m.sum("claude_sessions_exporter_otlp_exports_total", &[("signal", "metrics"), ("result", "ok")]) > 0.0
        })
        .is_some()
    );
    d.stop();
}

fn otlp_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
