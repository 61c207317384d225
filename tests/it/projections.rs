//! Metrics and realtime events are projections of the same facts: replayed live,
//! the fixtures give events whose usage adds up to the token counters exactly (per
//! model and type), one `tool_use` event per counted tool call and one error
//! `tool_result` per counted tool error.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use claude_sessions::events::Kind;

use super::api;
use super::daemon::{self, Metrics};
use super::support;
use super::watcher;

#[test]
fn summed_event_usage_equals_the_token_counters() {
    let src = support::real_config_root();
    let root = daemon::empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = api::start(root.path(), state.path());
    let (sse, _) = api::events(&d, "", &[]);
    let lines = watcher::replay_lines(&src.path().join("projects"));
    watcher::replay(&root.path().join("projects"), &lines);

    // Every line read (the counters settle), then the stream has gone quiet.
    let lines_ok = |m: &Metrics| m.sum("claude_sessions_exporter_lines_total", &[]);
    let want = lines.len() as f64;
    d.wait_for(Duration::from_secs(60), |m| lines_ok(m) >= want).expect("every replayed line read");
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let more = sse.drain(Duration::from_millis(700));
        if more.is_empty() || Instant::now() > deadline {
            break;
        }
        events.extend(more);
    }
    let m = d.metrics();
    assert_eq!(m.sum("claude_sessions_exporter_events_lagged_total", &[]), 0.0, "the test read too slowly");

    let mut usage: BTreeMap<(String, &str), f64> = BTreeMap::new();
    let (mut tool_uses, mut tool_errors, mut continued) = (0.0, 0.0, 0);
    for e in events.iter().map(api::SseEvent::parsed) {
        match e.kind {
            Kind::Message { model: Some(model), usage: Some(u), continued: c, .. } => {
                continued += usize::from(c);
                for (ty, n) in [
                    ("input", u.input),
                    ("output", u.output),
                    ("cache_read", u.cache_read),
                    ("cache_creation", u.cache_creation),
                ] {
                    *usage.entry((model.clone(), ty)).or_default() += n as f64;
                }
            }
            Kind::ToolUse { .. } => tool_uses += 1.0,
            Kind::ToolResult { is_error: true, .. } => tool_errors += 1.0,
            _ => {}
        }
    }
    let mut counters: BTreeMap<(String, &str), f64> = BTreeMap::new();
    for (name, labels, v) in &m.samples {
        if name != "claude_sessions_tokens_total" {
            continue;
        }
        let get = |k: &str| labels.iter().find(|(lk, _)| lk == k).map(|(_, v)| v.clone()).unwrap_or_default();
        let ty = ["input", "output", "cache_read", "cache_creation"].into_iter().find(|t| *t == get("type")).unwrap();
        *counters.entry((get("model"), ty)).or_default() += v;
    }
    counters.retain(|_, v| *v > 0.0);
    usage.retain(|_, v| *v > 0.0);
    // The corpus has split responses whose later lines add tokens (else this could not fail).
    assert!(continued > 0, "no continued message in the replay");
    assert_eq!(usage, counters, "event usage vs token counters, per model and type");
    assert_eq!(tool_uses, m.sum("claude_sessions_tool_calls_total", &[]), "tool_use events vs tool_calls_total");
    assert!(tool_errors > 0.0);
    assert_eq!(tool_errors, m.sum("claude_sessions_tool_errors_total", &[]), "error results vs tool_errors_total");
    d.stop();
}
