//! OTLP logs against a real collector (rotel-agent, tests/it/collector.rs): the realtime
//! events of a live replay of the fixtures arrive as log records, one per event that
//! `/api/events` shows, linked to the turns' traces; Claude Code's own event names and
//! attributes with `--otlp-logs-claude-code`, history included with `--otlp-backfill`
//! (once); a collector down for the middle third of a replay costs counted drops only; and
//! what a stopped daemon could not send is sent by its next start, once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::api::{self, Sse, SseEvent};
use super::collector::{self, LogRec, Received, Rotel};
use super::daemon::{self, Daemon};
use super::otlp_collector::{append_lines, live_lines, otlp_now_ms};
use super::{oracle, otlp_support, support};

/// `serve` over an empty config root sending OTLP over gRPC to `rotel` with `flags`;
/// ready, with an `/api/events` stream open before anything is written.
fn logs_daemon(rotel: &Rotel, flags: &[&str]) -> (tempfile::TempDir, PathBuf, tempfile::TempDir, Daemon, Sse) {
    let endpoint = rotel.grpc_endpoint();
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut args = vec!["--otlp-logs", "--otlp-protocol", "grpc", "--otlp-endpoint", &endpoint];
    args.extend_from_slice(flags);
    let d = Daemon::start(root.path(), state.path(), &args);
    d.wait_ready(Duration::from_secs(30));
    let sse = Sse::connect(d.addr, "/api/events", &[]);
    assert_eq!(sse.status, 200);
    (root, projects, state, d, sse)
}

/// The events of an SSE stream (comments and gaps left out).
fn events(got: Vec<SseEvent>) -> Vec<SseEvent> {
    got.into_iter().filter(|e| e.id.is_some()).collect()
}

/// Our records (not Claude Code's) by the bus sequence number they carry; panics on a
/// sequence number that comes twice.
fn ours_by_seq(r: &Received) -> BTreeMap<u64, &LogRec> {
    let mut out = BTreeMap::new();
    for l in r.logs.iter().filter(|l| l.event_name.starts_with("claude_sessions.")) {
        let seq: u64 = l.attrs["claude_sessions.event.seq"].parse().unwrap();
        assert!(out.insert(seq, l).is_none(), "event {seq} arrived twice: {l:?}");
    }
    out
}

/// [`live_lines`], each session moved to start at `start_ms`, its gaps shrunk 1000× (at least 1 ms) and
/// capped at a second: no session's lines lie in the future, so every session and turn
/// ends soon after the last line is written.
fn sessions_from_now(src: &std::path::Path, start_ms: i64) -> Vec<(PathBuf, String)> {
    let parsed: Vec<(PathBuf, serde_json::Value)> = live_lines(src, 0)
        .into_iter()
        .filter_map(|(rel, l)| Some((rel, serde_json::from_str::<serde_json::Value>(&l).ok()?)))
        .collect();
    let session = |rel: &PathBuf, v: &serde_json::Value| {
        v["sessionId"].as_str().map_or_else(|| rel.to_string_lossy().into_owned(), str::to_owned)
    };
    let ts = |v: &serde_json::Value| v["timestamp"].as_str().and_then(support::parse_rfc3339);
    let mut times: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for (rel, v) in &parsed {
        if let Some(t) = ts(v) {
            times.entry(session(rel, v)).or_default().insert(t);
        }
    }
    let mut map: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    for (s, set) in times {
        let (mut at, mut prev): (i64, Option<i64>) = (start_ms, None);
        for t in set {
            if let Some(p) = prev {
                // Distinct times stay distinct, as in the transcripts.
                at += ((t - p) / 1000).clamp(1, 1000);
            }
            prev = Some(t);
            map.entry(s.clone()).or_default().insert(t, at);
        }
    }
    parsed
        .into_iter()
        .map(|(rel, mut v)| {
            if let Some(t) = ts(&v) {
                v["timestamp"] = serde_json::Value::String(support::rfc3339(map[&session(&rel, &v)][&t]));
            }
            (rel, v.to_string())
        })
        .collect()
}

#[test]
fn every_event_of_a_live_replay_is_one_log_record_in_its_turns_trace() {
    let Some(rotel) = Rotel::start_or_skip() else { return };
    let flags = ["--otlp-traces", "--idle-timeout", "2s", "--end-timeout", "5s"];
    let (_root, projects, _state, d, sse) = logs_daemon(&rotel, &flags);
    let src = support::real_config_root();
    let lines = sessions_from_now(&src.path().join("projects"), otlp_now_ms());
    for chunk in lines.chunks(100) {
        append_lines(&projects, chunk.iter().map(|(r, l)| (r.as_path(), l.as_str())));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every session ends (5 s quiet): every turn's root span has left.
    let ended = d.wait_for(Duration::from_secs(60), |m| {
        m.sum("claude_sessions_sessions", &[]) == 0.0 && m.sum("claude_sessions_tokens_total", &[]) > 0.0
    });
    assert!(ended.is_some(), "all sessions end");
    let mut shown = events(sse.drain(Duration::from_secs(3)));
    assert!(shown.len() > 100, "the replay has events: {}", shown.len());
    // The roots of the last turns leave at their session's end: wait for every span the events name.
    let named: BTreeSet<(String, String)> = shown
        .iter()
        .filter_map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.data).ok()?;
            Some((v["trace_id"].as_str()?.to_owned(), v["span_id"].as_str()?.to_owned()))
        })
        .collect();
    collector::wait_for(&rotel, Duration::from_secs(60), |r| {
        let have: BTreeSet<(&str, &str)> = r.spans.iter().map(|s| (s.trace_id.as_str(), s.span_id.as_str())).collect();
        ours_by_seq(r).len() >= shown.len() && named.iter().all(|(t, s)| have.contains(&(t.as_str(), s.as_str())))
    });
    // Settle: the last sessions' ends, on the stream and at the collector.
    shown.extend(events(sse.drain(Duration::from_secs(3))));
    let got = collector::wait_for(&rotel, Duration::from_secs(90), |r| ours_by_seq(r).len() >= shown.len());
    std::thread::sleep(Duration::from_secs(2));
    let got = Received { logs: rotel.received().logs, spans: rotel.received().spans, ..got };
    let records = ours_by_seq(&got);

    let shown_ids: BTreeSet<u64> = shown.iter().map(|e| e.id.unwrap()).collect();
    let record_ids: BTreeSet<u64> = records.keys().copied().collect();
    let (extra, missing): (Vec<_>, Vec<_>) =
        (record_ids.difference(&shown_ids).collect(), shown_ids.difference(&record_ids).collect());
    assert!(
        extra.is_empty() && missing.is_empty(),
        "exactly one record per event /api/events showed: records for {extra:?} not shown, none for {missing:?}"
    );
    let spans: BTreeSet<(&str, &str)> = got.spans.iter().map(|s| (s.trace_id.as_str(), s.span_id.as_str())).collect();
    let (mut traced, mut by_type) = (0, BTreeMap::<String, usize>::new());
    for e in &shown {
        let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        let r = records[&e.id.unwrap()];
        let ty = v["type"].as_str().unwrap();
        *by_type.entry(ty.to_owned()).or_default() += 1;
        assert_eq!(r.event_name, format!("claude_sessions.{ty}"));
        assert_eq!(r.attrs["type"], ty);
        assert_eq!(r.attrs["session_id"], v["session_id"].as_str().unwrap());
        assert_eq!(r.attrs["project"], v["project"].as_str().unwrap());
        assert_eq!(r.time_ns, v["ts_ms"].as_u64().unwrap() * 1_000_000, "the transcript's time");
        assert_eq!(r.attrs["event.id"].len(), 32);
        let (t, s) = (v["trace_id"].as_str().unwrap_or(""), v["span_id"].as_str().unwrap_or(""));
        assert_eq!((r.trace_id.as_str(), r.span_id.as_str()), (t, s), "the record's trace is the event's: {e:?}");
        if !t.is_empty() {
            traced += 1;
            assert!(spans.contains(&(t, s)), "event {} names span {s} of trace {t}, which the collector has", e.data);
        }
    }
    let mut ids: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in records.values() {
        ids.entry(r.attrs["event.id"].as_str()).or_default().push(r.body.as_str());
    }
    let same: Vec<_> = ids.values().filter(|b| b.len() > 1).collect();
    assert!(same.is_empty(), "event.id tells every record apart: {same:?}");
    assert!(traced * 2 > shown.len(), "most events are in a turn's trace: {traced} of {}", shown.len());
    for ty in ["message", "tool_use", "tool_result", "session_start", "session_end"] {
        assert!(by_type.get(ty).copied().unwrap_or(0) > 0, "{ty} events in the replay: {by_type:?}");
    }
    eprintln!("{} events ({traced} in a trace) → {} records: {by_type:?}", shown.len(), records.len());
    d.stop();
}

/// The attributes Claude Code's monitoring documentation lists for its events (all events
/// also carry `session.id`, `app.version`, `organization.id`, `user.account_uuid` and
/// `terminal.type`, and `event.name` and `event.timestamp`).
const CLAUDE_CODE_DOCUMENTED: &[(&str, &[&str])] = &[
    (
        "claude_code.tool_result",
        &["tool_name", "success", "duration_ms", "error", "decision", "source", "tool_parameters"],
    ),
    (
        "claude_code.api_request",
        &[
            "model",
            "cost_usd",
            "duration_ms",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_creation_tokens",
        ],
    ),
];
const CLAUDE_CODE_COMMON: &[&str] = &[
    "session.id",
    "app.version",
    "organization.id",
    "user.account_uuid",
    "terminal.type",
    "event.name",
    "event.timestamp",
];

/// What transcripts do not hold (src/sinks/otlp_logs/compat.rs says why). Besides, `error`
/// is only on failed calls, and a tool result's `duration_ms` only when its call was seen.
const NOT_DERIVABLE: &[&str] = &[
    "app.version",
    "organization.id",
    "user.account_uuid",
    "terminal.type",
    "source",
    "tool_parameters",
    "duration_ms@claude_code.api_request",
];

#[test]
fn claude_code_event_names_carry_its_documented_attributes_history_included_once() {
    let Some(rotel) = Rotel::start_or_skip() else { return };
    let endpoint = rotel.grpc_endpoint();
    let root = support::real_config_root();
    let state = tempfile::tempdir().unwrap();
    let args = [
        "--otlp-logs",
        "--otlp-logs-claude-code",
        "--otlp-backfill",
        "--otlp-protocol",
        "grpc",
        "--otlp-endpoint",
        &endpoint,
    ];
    // All of history was written before the exporter started: only the backfill sends it.
    let d = Daemon::start(root.path(), state.path(), &args);
    d.wait_ready(Duration::from_secs(60));
    let projects = root.path().join("projects");
    let o = oracle::count(&projects);
    let total: f64 = o.tokens.values().map(|t| (t.input + t.output + t.cache_read + t.cache_creation) as f64).sum();
    let tokens = |r: &Received| -> f64 {
        r.logs_named("claude_code.api_request")
            .map(|l| {
                ["input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"]
                    .iter()
                    .map(|k| l.attrs[*k].parse::<f64>().unwrap())
                    .sum::<f64>()
            })
            .sum()
    };
    let got = collector::wait_for(&rotel, Duration::from_secs(90), |r| tokens(r) >= total);
    std::thread::sleep(Duration::from_secs(2));
    let got = Received { logs: rotel.received().logs, ..got };
    assert_eq!(tokens(&got), total, "api_request records add up to the independent token count");
    assert_eq!(d.metrics().sum("claude_sessions_tokens_total", &[]), total);
    let results = got.logs_named("claude_code.tool_result").count();
    assert!(results > 10, "tool results: {results}");
    assert_eq!(
        results,
        got.logs_named("claude_sessions.tool_result").count(),
        "one claude_code.tool_result per tool_result event"
    );
    let (mut failed, mut no_duration) = (0, 0);
    for (name, documented) in CLAUDE_CODE_DOCUMENTED {
        let records: Vec<&LogRec> = got.logs_named(name).collect();
        assert!(!records.is_empty(), "{name} records");
        for r in records {
            assert_eq!(r.body, *name, "the body is the event name, as Claude Code sends it");
            assert_eq!(r.attrs["event.name"], name.trim_start_matches("claude_code."));
            for k in documented.iter().chain(CLAUDE_CODE_COMMON) {
                let skip = NOT_DERIVABLE.contains(k) || NOT_DERIVABLE.contains(&format!("{k}@{name}").as_str());
                let only_on_failure = *k == "error" && r.attrs.get("success").map(String::as_str) == Some("true");
                if *k == "duration_ms" && *name == "claude_code.tool_result" && !r.attrs.contains_key(*k) {
                    no_duration += 1;
                    continue;
                }
                if skip || only_on_failure {
                    assert!(!r.attrs.contains_key(*k) || *k == "error", "{k} is not made up: {r:?}");
                    continue;
                }
                assert!(r.attrs.contains_key(*k), "{name} lacks {k}: {:?}", r.attrs);
            }
            if r.attrs.get("success").map(String::as_str) == Some("false") {
                failed += 1;
            }
            assert!(r.attrs["event.timestamp"].ends_with('Z'), "ISO 8601: {:?}", r.attrs["event.timestamp"]);
        }
    }
    assert!(failed > 0, "failed tool calls carry error");
    let calls_unseen =
        got.logs_named("claude_sessions.tool_result").filter(|l| !l.attrs.contains_key("duration_ms")).count();
    assert_eq!(no_duration, calls_unseen, "duration_ms is left off only where the call was not seen");
    assert!(no_duration * 10 < results, "most results have a duration: {no_duration} of {results} lack one");
    // Numbers are numbers (Claude Code's types): dashboards sum them.
    let r = got.logs_named("claude_code.api_request").next().unwrap();
    r.attrs["cost_usd"].parse::<f64>().expect("cost_usd is a number");
    assert!(
        ["true", "false"]
            .contains(&got.logs_named("claude_code.tool_result").next().unwrap().attrs["success"].as_str())
    );
    let before = got.logs.len();
    d.stop();

    // Started again: history is not sent twice.
    let d = Daemon::start(root.path(), state.path(), &args);
    d.wait_ready(Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(rotel.received().logs.len(), before, "a restart sends no history again");
    d.stop();
}

#[test]
fn a_collector_down_for_the_middle_third_costs_counted_drops_and_the_rest_arrives() {
    let Some(mut rotel) = Rotel::start_or_skip() else { return };
    let (_root, projects, _state, d, sse) = logs_daemon(&rotel, &["--otlp-max-queue-logs", "500"]);
    let src = support::real_config_root();
    let lines = live_lines(&src.path().join("projects"), otlp_now_ms());
    let write = |part: &[(PathBuf, String)]| {
        for chunk in part.chunks(100) {
            append_lines(&projects, chunk.iter().map(|(r, l)| (r.as_path(), l.as_str())));
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let third = lines.len() / 3;
    write(&lines[..third]);
    let first = events(sse.drain(Duration::from_secs(2)));
    assert!(!first.is_empty());
    collector::wait_for(&rotel, Duration::from_secs(90), |r| ours_by_seq(r).len() >= first.len());
    let dropped_logs =
        |m: &daemon::Metrics| m.sum("claude_sessions_exporter_otlp_dropped_total", &[("signal", "logs")]);
    assert_eq!(dropped_logs(&d.metrics()), 0.0, "nothing dropped while the collector is up");

    // Down for the middle third.
    assert_eq!(rotel.stop().map(|s| s.success()), Some(true));
    let mut worst_scrape = Duration::ZERO;
    for chunk in lines[third..2 * third].chunks(100) {
        append_lines(&projects, chunk.iter().map(|(r, l)| (r.as_path(), l.as_str())));
        let t = Instant::now();
        let m = d.metrics();
        worst_scrape = worst_scrape.max(t.elapsed());
        assert!(m.sum("claude_sessions_exporter_lines_total", &[("result", "ok")]) > 0.0);
        std::thread::sleep(Duration::from_millis(20));
    }
    let middle = events(sse.drain(Duration::from_secs(2)));
    assert!(d.wait_for(Duration::from_secs(30), |m| dropped_logs(m) > 0.0).is_some(), "drops are counted");
    assert!(worst_scrape < Duration::from_secs(2), "/metrics stays responsive: {worst_scrape:?}");
    let queued = d.metrics().sum("claude_sessions_exporter_otlp_queue", &[("signal", "logs")]);
    assert!(queued <= 500.0, "the queue stays within its bound: {queued}");

    // Back for the last third: all of it arrives, and every event is either received or counted.
    rotel.restart();
    let last_before = middle.last().or(first.last()).and_then(|e| e.id).unwrap();
    write(&lines[2 * third..]);
    let last = events(sse.drain(Duration::from_secs(3)));
    assert!(!last.is_empty());
    let total = first.len() + middle.len() + last.len();
    let accounted = |r: &Received| ours_by_seq(r).len() as f64 + dropped_logs(&d.metrics());
    let got = collector::wait_for(&rotel, Duration::from_secs(120), |r| {
        accounted(r) >= total as f64 && last.iter().all(|e| ours_by_seq(r).contains_key(&e.id.unwrap()))
    });
    std::thread::sleep(Duration::from_secs(2));
    let got = Received { logs: rotel.received().logs, ..got };
    let records = ours_by_seq(&got);
    let dropped = dropped_logs(&d.metrics());
    for e in &last {
        assert!(records.contains_key(&e.id.unwrap()), "event {} after the collector came back arrives", e.id.unwrap());
    }
    assert!(records.keys().all(|id| *id <= last.last().unwrap().id.unwrap()), "no record for an event not shown");
    assert_eq!(records.len() as f64 + dropped, total as f64, "every event is received or counted as dropped");
    assert!(last_before < last[0].id.unwrap());
    assert!(d.log_text().contains("OTLP export failed"), "failures are logged");
    eprintln!("{total} events: {} received, {dropped} dropped while the collector was down", records.len());
    d.stop();
}

#[test]
fn records_the_collector_did_not_take_before_a_stop_are_sent_by_the_next_start_once() {
    let root = daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let state = tempfile::tempdir().unwrap();
    let r = otlp_support::Receiver::start();
    r.down.store(true, Ordering::Relaxed);
    let d = r.daemon(root.path(), state.path(), &["--otlp-logs"], &[]);
    d.wait_ready(Duration::from_secs(30));
    let sse = Sse::connect(d.addr, "/api/events", &[]);
    for n in 0..3 {
        daemon::append(&projects.join("-w-app/spool-1.jsonl"), api::turn("spool-1", "app", n, "ls").as_bytes());
    }
    let shown = events(sse.drain(Duration::from_secs(2)));
    assert!(shown.len() >= 10, "the turns' events: {}", shown.len());
    r.wait_for(Duration::from_secs(20), "a refused log request", |g| g.refused > 0);
    d.stop();
    let spool = state.path().join("otlp-logs-spool.jsonl");
    let kept = std::fs::read_to_string(&spool).map(|t| t.lines().count()).unwrap_or(0);
    assert_eq!(kept, shown.len(), "every record the collector did not take is kept");
    assert!(r.got.lock().unwrap().log_records().is_empty(), "nothing was accepted");

    // The collector is back: the next start sends them first, once.
    r.down.store(false, Ordering::Relaxed);
    let d = r.daemon(root.path(), state.path(), &["--otlp-logs"], &[]);
    d.wait_ready(Duration::from_secs(30));
    r.wait_for(Duration::from_secs(30), "the kept records", |g| g.log_records().len() >= shown.len());
    std::thread::sleep(Duration::from_secs(1));
    let records = r.got.lock().unwrap().log_records();
    let seqs: Vec<u64> = records.iter().map(|l| l.attrs["claude_sessions.event.seq"].parse().unwrap()).collect();
    let want: Vec<u64> = shown.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(seqs, want, "each event once, in order, as the first run published it");
    let ids: BTreeSet<&str> = records.iter().map(|l| l.attrs["event.id"].as_str()).collect();
    assert_eq!(ids.len(), records.len());
    assert!(records.iter().any(|l| l.event_name == "claude_sessions.tool_result"));
    assert!(!spool.exists(), "the spool is emptied once queued");
    let dropped = d.metrics().sum("claude_sessions_exporter_otlp_dropped_total", &[("signal", "logs")]);
    assert_eq!(dropped, 0.0);
    d.stop();
}
