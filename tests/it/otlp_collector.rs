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
pub(super) fn live_lines(src: &Path, start_ms: i64) -> Vec<(std::path::PathBuf, String)> {
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

/// `serve` over an empty config root (its `projects/` folder returned), sending OTLP
/// traces over gRPC to `rotel`, with `extra` flags; ready.
fn grpc_daemon(rotel: &Rotel, extra: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, tempfile::TempDir, Daemon) {
    let endpoint = rotel.grpc_endpoint();
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut args = vec!["--otlp-traces", "--otlp-protocol", "grpc", "--otlp-endpoint", &endpoint];
    args.extend_from_slice(extra);
    let d = Daemon::start(root.path(), state.path(), &args);
    d.wait_ready(Duration::from_secs(30));
    (root, projects, state, d)
}

/// Append `lines` to their files under `projects`, one write per file.
pub(super) fn append_lines<'a>(projects: &Path, lines: impl IntoIterator<Item = (&'a Path, &'a str)>) {
    let mut by_file: BTreeMap<&Path, String> = BTreeMap::new();
    for (rel, l) in lines {
        let s = by_file.entry(rel).or_default();
        s.push_str(l);
        s.push('\n');
    }
    for (rel, text) in by_file {
        daemon::append(&projects.join(rel), text.as_bytes());
    }
}

#[test]
fn killing_the_collector_mid_replay_loses_no_metrics_and_counts_dropped_spans() {
    let Some(mut rotel) = Rotel::start_or_skip() else { return };
    let flags = ["--otlp-metrics", "--otlp-interval", "300ms", "--otlp-max-queue-spans", "200"];
    let (_root, projects, _state, d) = grpc_daemon(&rotel, &flags);
    let pid = d.pid().expect("running");
    let src = support::real_config_root();
    let lines = live_lines(&src.path().join("projects"), otlp_now_ms());
    let total = total_tokens(&oracle::count(&src.path().join("projects")));
    let write = |part: &[(std::path::PathBuf, String)]| {
        append_lines(&projects, part.iter().map(|(r, l)| (r.as_path(), l.as_str())))
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

pub(super) fn otlp_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// One transcript line of session `sid` stamped `ms`: `body` is the rest of its JSON object.
fn line_at(sid: &str, ms: i64, body: &str) -> String {
    format!(r#"{{"sessionId":"{sid}","cwd":"/w/app","timestamp":"{}",{body}}}"#, support::rfc3339(ms)) + "\n"
}

#[test]
fn a_finished_tool_calls_span_reaches_the_collector_while_its_turn_is_still_open() {
    let Some(rotel) = Rotel::start_or_skip() else { return };
    // The default idle timeout (5 min): only the tool result can make its span leave.
    let (_root, projects, _state, d) = grpc_daemon(&rotel, &[]);
    let file = projects.join("-w-app/open-turn.jsonl");
    let now = otlp_now_ms();
    daemon::append(
        &file,
        (line_at("open-turn", now, r#""type":"user","message":{"role":"user","content":"run the tests"}"#)
            + &line_at(
                "open-turn",
                now + 100,
                r#""type":"assistant","requestId":"req_1","message":{"id":"msg_1","model":"claude-opus-4-6","stop_reason":"tool_use","usage":{"input_tokens":7,"output_tokens":9},"content":[{"type":"tool_use","id":"toolu_open","name":"Bash","input":{}}]}"#,
            ))
            .as_bytes(),
    );
    // The response's only line says it stopped: its span leaves at once (and the file is read).
    collector::wait_for(&rotel, Duration::from_secs(20), |r| r.spans_named("chat claude-opus-4-6").count() == 1);
    let result = r#""type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_open","content":"ok"}]}"#;
    daemon::append(&file, line_at("open-turn", otlp_now_ms(), result).as_bytes());
    let written = Instant::now();
    let got = collector::wait_for(&rotel, Duration::from_secs(5), |r| {
        r.spans_named("execute_tool Bash")
            .any(|s| s.attrs.get("gen_ai.tool.call.id").map(String::as_str) == Some("toolu_open"))
    });
    let latency = written.elapsed();
    let tool = got.spans_named("execute_tool Bash").next().unwrap();
    let chat = got.spans_named("chat claude-opus-4-6").next().expect("the finished chat span");
    assert_eq!(chat.parent_span_id, tool.parent_span_id, "both name the turn's root as parent");
    assert!(!tool.parent_span_id.is_empty());
    assert_eq!(tool.attrs.get("claude_sessions.tool.completed"), None, "the call finished");
    assert_eq!(
        got.spans.iter().filter(|s| s.parent_span_id.is_empty()).count(),
        0,
        "the turn is still open: its root has not left"
    );
    eprintln!("tool result written → its span at the collector: {latency:?}");
    // Nothing is sent twice.
    std::thread::sleep(Duration::from_secs(2));
    let later = rotel.received();
    assert_eq!(later.spans_named("execute_tool Bash").count(), 1);
    assert_eq!(later.spans_named("chat claude-opus-4-6").count(), 1);
    d.stop();
}

/// The fixture lines as a live replay paced in real time: each session starts at
/// `start_ms`, its gaps shrunk 100× and capped at `max_gap_ms` (long enough for an idle
/// timeout to fire, short enough for the test). Returns (when to write, file, line) in
/// writing order; each file's lines stay in their order.
fn paced_lines(src: &Path, start_ms: i64, max_gap_ms: i64) -> Vec<(i64, std::path::PathBuf, String)> {
    let files = oracle::jsonl_files(src);
    let mut parsed = Vec::new();
    let mut times: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for f in &files {
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        let mut lines = Vec::new();
        for raw in std::fs::read_to_string(f).unwrap().lines() {
            let Ok(v) = serde_json::from_str::<Value>(raw) else { continue };
            let session = v.get("sessionId").and_then(Value::as_str).map_or(stem.clone(), str::to_owned);
            let ts = v.get("timestamp").and_then(Value::as_str).and_then(support::parse_rfc3339);
            if let Some(ts) = ts {
                times.entry(session.clone()).or_default().push(ts);
            }
            lines.push((session, ts, v));
        }
        parsed.push((f.strip_prefix(src).unwrap().to_path_buf(), lines));
    }
    // Per session: original time → replay time.
    let mut map: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    for (session, mut ts) in times {
        ts.sort_unstable();
        ts.dedup();
        let m = map.entry(session).or_default();
        let mut at = start_ms;
        for (i, t) in ts.iter().enumerate() {
            if i > 0 {
                at += ((t - ts[i - 1]) / 100).min(max_gap_ms);
            }
            m.insert(*t, at);
        }
    }
    let mut out = Vec::new();
    for (fi, (rel, lines)) in parsed.into_iter().enumerate() {
        let mut release = start_ms;
        for (li, (session, ts, mut v)) in lines.into_iter().enumerate() {
            if let Some(ts) = ts {
                let new = map[&session][&ts];
                v["timestamp"] = Value::String(support::rfc3339(new));
                release = release.max(new);
            }
            out.push((release, fi, li, rel.clone(), v.to_string()));
        }
    }
    out.sort_by_key(|(release, fi, li, ..)| (*release, *fi, *li));
    out.into_iter().map(|(release, _, _, rel, line)| (release, rel, line)).collect()
}

#[test]
fn turn_histogram_and_trace_roots_agree_on_every_turn() {
    let Some(rotel) = Rotel::start_or_skip() else { return };
    let (_root, projects, _state, d) = grpc_daemon(&rotel, &["--idle-timeout", "2s", "--end-timeout", "6s"]);
    let src = support::real_config_root();
    let lines = paced_lines(&src.path().join("projects"), otlp_now_ms() + 500, 4000);
    let mut i = 0;
    while i < lines.len() {
        let due = lines[i..].iter().take_while(|(at, ..)| *at <= otlp_now_ms()).count();
        append_lines(&projects, lines[i..i + due].iter().map(|(_, r, l)| (r.as_path(), l.as_str())));
        i += due;
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every session ends (6 s quiet), so every turn has ended in both models.
    let ended = d.wait_for(Duration::from_secs(30), |m| {
        m.has("claude_sessions_turn_duration_seconds_count") && m.sum("claude_sessions_sessions", &[]) == 0.0
    });
    assert!(ended.is_some(), "all sessions end");
    let histogram = |m: &daemon::Metrics| {
        let mut per: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        for (name, labels, v) in &m.samples {
            let project = labels.iter().find(|(k, _)| k == "project").map(|(_, v)| v.clone()).unwrap_or_default();
            match name.as_str() {
                "claude_sessions_turn_duration_seconds_count" => per.entry(project).or_default().0 += *v as u64,
                "claude_sessions_turn_duration_seconds_sum" => {
                    per.entry(project).or_default().1 += (v * 1000.0).round() as i64
                }
                _ => {}
            }
        }
        per
    };
    let roots = |r: &Received| {
        let mut per: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        for s in r.spans_named("invoke_agent claude-code").filter(|s| s.parent_span_id.is_empty()) {
            let e = per.entry(s.attrs.get("claude_sessions.project").cloned().unwrap_or_default()).or_default();
            e.0 += 1;
            e.1 += ((s.end_ns - s.start_ns) / 1_000_000) as i64;
        }
        per
    };
    let want = histogram(&d.metrics());
    let turns: u64 = want.values().map(|(n, _)| n).sum();
    assert!(turns > 20, "the replay has turns: {want:?}");
    // The roots of the last turns leave at the session's end: wait for them to arrive.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got = roots(&rotel.received());
    while got != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        got = roots(&rotel.received());
    }
    eprintln!("{turns} turns: histogram (count, ms) per project {want:?}");
    assert_eq!(got, want, "trace roots (count, summed ms) per project equal the turn histogram's");
    d.stop();
}
