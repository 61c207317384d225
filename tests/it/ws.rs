//! `/api/ws` from outside, with a real WebSocket client (tokio-tungstenite) beside the
//! SSE client of `api.rs`: for the same live replay of a real transcript the two carry
//! the same events (id, type, data) after the same snapshot; filters pick the same;
//! a reconnect with `last_event_id` gets exactly what was missed; pings are answered and
//! a close is closed; a GET without the upgrade is refused.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::api::{SseEvent, assistant, events, now_ms, results, start, turn};
use super::daemon::{self, Daemon};
use super::support;

/// One message, as `(id, event, data)`; SSE events are put in the same shape.
type Msg = (Option<u64>, String, Value);

fn from_sse(e: &SseEvent) -> Msg {
    (e.id, e.event.clone(), serde_json::from_str(&e.data).expect("SSE data is JSON"))
}

/// What the client thread saw.
#[derive(Debug)]
enum Got {
    Text(Msg),
    Pong(Vec<u8>),
    Close,
}

/// An open `/api/ws` connection, read by a thread (with its own runtime) into a channel.
struct Ws {
    rx: mpsc::Receiver<Got>,
    send: tokio::sync::mpsc::UnboundedSender<Message>,
}

impl Ws {
    /// Connect to `/api/ws{query}` and check that the first message is the snapshot; returns it too.
    fn connect(d: &Daemon, query: &str) -> (Ws, Value) {
        let ws = Ws::open(d, query, None);
        let (id, event, data) = ws.text(Duration::from_secs(5)).expect("a first message");
        assert_eq!((id, event.as_str()), (None, "snapshot"));
        (ws, data)
    }

    /// Connect (the handshake done), and read nothing before `hold` says so, if given.
    fn open(d: &Daemon, query: &str, hold: Option<mpsc::Receiver<()>>) -> Ws {
        let url = format!("ws://{}/api/ws{query}", d.addr);
        let (tx, rx) = mpsc::channel();
        let (send, mut outgoing) = tokio::sync::mpsc::unbounded_channel::<Message>();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let mut ws = match tokio_tungstenite::connect_async(url.into_client_request().unwrap()).await {
                    Ok((ws, _)) => {
                        ready_tx.send(Ok(())).unwrap();
                        ws
                    }
                    Err(e) => return ready_tx.send(Err(e.to_string())).unwrap(),
                };
                if let Some(hold) = hold {
                    let _ = tokio::task::spawn_blocking(move || hold.recv()).await;
                }
                loop {
                    tokio::select! {
                        m = outgoing.recv() => match m {
                            Some(m) => {
                                if ws.send(m).await.is_err() {
                                    return;
                                }
                            }
                            // The test dropped its end: vanish without a close, like a killed client.
                            None => return,
                        },
                        got = ws.next() => {
                            let got = match got {
                                Some(Ok(Message::Text(t))) => {
                                    let v: Value = serde_json::from_str(&t).expect("a JSON text frame");
                                    let id = v.get("id").map(|id| id.as_u64().expect("numeric id"));
                                    let event = v["event"].as_str().expect("an event name").to_owned();
                                    let keys = v.as_object().unwrap().len();
                                    assert_eq!(keys, 2 + usize::from(id.is_some()), "only id, event, data: {v}");
                                    Got::Text((id, event, v["data"].clone()))
                                }
                                Some(Ok(Message::Pong(p))) => Got::Pong(p.to_vec()),
                                Some(Ok(Message::Close(_))) => Got::Close,
                                Some(Ok(_)) => continue,
                                Some(Err(_)) | None => return,
                            };
                            if tx.send(got).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).expect("handshake in time").expect("handshake");
        Ws { rx, send }
    }

    fn next(&self, timeout: Duration) -> Option<Got> {
        self.rx.recv_timeout(timeout).ok()
    }

    fn text(&self, timeout: Duration) -> Option<Msg> {
        match self.next(timeout)? {
            Got::Text(m) => Some(m),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Messages up to and including the first that satisfies `done`; panics after `timeout`.
    fn until(&self, timeout: Duration, what: &str, done: impl Fn(&Msg) -> bool) -> Vec<Msg> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            match self.text(deadline.saturating_duration_since(Instant::now())) {
                Some(m) => {
                    let stop = done(&m);
                    got.push(m);
                    if stop {
                        return got;
                    }
                }
                None => panic!("{what}: not within {timeout:?}; got {} messages: {:?}", got.len(), got.last()),
            }
        }
    }

    /// Whatever arrives within `quiet` of the last.
    fn drain(&self, quiet: Duration) -> Vec<Msg> {
        let mut got = Vec::new();
        while let Some(m) = self.text(quiet) {
            got.push(m);
        }
        got
    }
}

fn is_result_of(m: &Msg, tool_use_id: &str) -> bool {
    m.1 == "tool_result" && m.2["tool_use_id"] == tool_use_id
}

/// The real transcript (with a sub-agent) replayed live: each line's timestamp made now.
fn replay_fixture(root: &std::path::Path) -> usize {
    let dir = "claude-code-log/projects/-experiments-worktrees";
    let sid = "ef958aa1-0e93-49f0-bb71-150f63befcd1";
    let files = [format!("{sid}.jsonl"), format!("{sid}/subagents/agent-a4ca7529859c158c2.jsonl")];
    let mut lines = 0;
    for rel in &files {
        let mut out = Vec::new();
        for line in daemon::lines_of(&daemon::real(&format!("{dir}/{rel}"))) {
            let mut v: Value = serde_json::from_slice(&line).expect("a JSON line");
            if v.get("timestamp").is_some() {
                v["timestamp"] = Value::String(support::rfc3339(now_ms()));
            }
            out.extend(serde_json::to_vec(&v).unwrap());
            out.push(b'\n');
            lines += 1;
        }
        // In pieces, as a session writes.
        let dest = root.join("projects/-experiments-worktrees").join(rel);
        for chunk in out.chunks(out.len() / 4 + 1) {
            daemon::append(&dest, chunk);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    lines
}

#[test]
fn websocket_carries_what_sse_carries_for_a_live_replay() {
    let root = daemon::empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = start(root.path(), state.path());
    // A session already live, so that the snapshots have something to agree on.
    let file = root.path().join("projects/-w-app/s-ws.jsonl");
    daemon::append(&file, turn("s-ws", "app", 1, "ls").as_bytes());
    let (probe, _) = events(&d, "?type=tool_result", &[]);
    let _ = probe.until(Duration::from_secs(5), "turn 1", |e| e.event == "tool_result");

    let (sse, sse_live) = events(&d, "", &[]);
    let (ws, ws_live) = Ws::connect(&d, "");
    assert_eq!(ws_live, Value::Array(sse_live), "the same snapshot");
    assert_eq!(ws_live[0]["id"], "s-ws");
    let (sse_tools, _) = events(&d, "?type=tool_use", &[]);
    let (ws_tools, _) = Ws::connect(&d, "?type=tool_use");

    let lines = replay_fixture(root.path());
    assert!(lines > 200);
    let by_sse: Vec<Msg> = sse.drain(Duration::from_millis(1500)).iter().map(from_sse).collect();
    let by_ws = ws.drain(Duration::from_millis(500));
    assert!(by_sse.len() > 100, "the replay makes events: {}", by_sse.len());
    let types: std::collections::BTreeSet<&str> = by_sse.iter().map(|m| m.1.as_str()).collect();
    for t in ["session_start", "message", "tool_use", "tool_result", "agent_spawn"] {
        assert!(types.contains(t), "a {t} event among {types:?}");
    }
    assert_eq!(by_ws.len(), by_sse.len());
    assert_eq!(by_ws, by_sse, "the same (id, event, data), in the same order");
    let ids: Vec<u64> = by_ws.iter().map(|m| m.0.expect("bus events have ids")).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "consecutive ids");
    for m in &by_ws {
        assert_eq!(m.2["id"].as_u64(), m.0, "data is the event, its id included");
    }

    // ---- filters: the same subset over both ----
    let tools_sse: Vec<Msg> = sse_tools.drain(Duration::from_millis(300)).iter().map(from_sse).collect();
    let tools_ws = ws_tools.drain(Duration::from_millis(300));
    let want: Vec<Msg> = by_sse.iter().filter(|m| m.1 == "tool_use").cloned().collect();
    assert!(!want.is_empty());
    assert_eq!(tools_sse, want);
    assert_eq!(tools_ws, want);
    let handshake = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let (status, _, body) = d.get("/api/ws?type=nope", &handshake);
    assert_eq!(status, 400);
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert!(err["error"].as_str().unwrap().contains("unknown event type"), "{err}");
    d.stop();
}

#[test]
fn websocket_resumes_from_last_event_id_without_gap_or_duplicate() {
    let root = daemon::empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = start(root.path(), state.path());
    let file = root.path().join("projects/-w-app/s-resume.jsonl");
    let (reference, _) = Ws::connect(&d, "");
    let (a, _) = Ws::connect(&d, "");
    daemon::append(&file, turn("s-resume", "app", 1, "ls").as_bytes());
    daemon::append(&file, turn("s-resume", "app", 2, "ls -l").as_bytes());
    let seen = a.until(Duration::from_secs(5), "turn 2", |m| is_result_of(m, "toolu_s-resume_2"));
    let last = seen.last().unwrap().0.unwrap();
    drop(a);
    for n in 3..=5 {
        daemon::append(&file, turn("s-resume", "app", n, "make").as_bytes());
    }
    let all = reference.until(Duration::from_secs(5), "reference: turn 5", |m| is_result_of(m, "toolu_s-resume_5"));
    let missed: Vec<Msg> = all.into_iter().filter(|m| m.0 > Some(last)).collect();
    assert_eq!(missed.len(), 15, "three turns of five events");

    let (b, live) = Ws::connect(&d, &format!("?last_event_id={last}"));
    assert_eq!(live[0]["id"], "s-resume");
    let replayed = b.until(Duration::from_secs(5), "replay", |m| is_result_of(m, "toolu_s-resume_5"));
    assert_eq!(replayed, missed, "exactly the missed events, once, in order");
    daemon::append(&file, turn("s-resume", "app", 6, "make check").as_bytes());
    let next_ref =
        reference.until(Duration::from_secs(5), "reference: turn 6", |m| is_result_of(m, "toolu_s-resume_6"));
    let next_b = b.until(Duration::from_secs(5), "resumed: turn 6", |m| is_result_of(m, "toolu_s-resume_6"));
    assert_eq!(next_b, next_ref);
    assert_eq!(next_b[0].0, Some(missed.last().unwrap().0.unwrap() + 1));
    assert!(b.drain(Duration::from_millis(300)).is_empty(), "nothing more");

    // An id from an earlier run: `reset`, then everything this run has, as over SSE.
    let (r, _) = Ws::connect(&d, "?last_event_id=999999");
    let (id, event, note) = r.text(Duration::from_secs(5)).unwrap();
    assert_eq!((id, event.as_str(), note["reason"].as_str()), (None, "reset", Some("unknown_id")));
    let everything = r.until(Duration::from_secs(5), "full replay", |m| is_result_of(m, "toolu_s-resume_6"));
    let ids: Vec<u64> = everything.iter().filter_map(|m| m.0).collect();
    assert_eq!(ids, (1..=everything.len() as u64).collect::<Vec<_>>());
    d.stop();
}

#[test]
fn websocket_answers_pings_closes_cleanly_and_refuses_plain_gets() {
    let root = daemon::empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = start(root.path(), state.path());
    let (ws, live) = Ws::connect(&d, "");
    assert_eq!(live, Value::Array(vec![]));
    ws.send.send(Message::Ping(b"are you there".to_vec().into())).unwrap();
    match ws.next(Duration::from_secs(5)) {
        Some(Got::Pong(p)) => assert_eq!(p, b"are you there"),
        other => panic!("expected the pong, got {other:?}"),
    }
    ws.send.send(Message::Close(None)).unwrap();
    assert!(matches!(ws.next(Duration::from_secs(5)), Some(Got::Close)), "the close is answered");
    assert!(ws.next(Duration::from_secs(5)).is_none(), "then the connection ends");

    // Not a WebSocket request: 426 with the upgrade it needs; a bad handshake: 400.
    let (status, headers, body) = d.get("/api/ws", &[]);
    assert_eq!(status, 426, "{}", String::from_utf8_lossy(&body));
    assert!(headers.iter().any(|(k, v)| k == "upgrade" && v == "websocket"), "{headers:?}");
    let handshake = [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")];
    assert_eq!(d.get("/api/ws", &handshake).0, 400, "no Sec-WebSocket-Key");
    // The server still serves others.
    assert_eq!(d.get("/healthz", &[]).0, 200);
    d.stop();
}

/// A WebSocket is a stream: counted among the open connections while it lasts, not closed
/// by the idle timeout, and its place is given back when it closes.
#[test]
fn websocket_is_a_counted_stream_that_outlives_the_idle_timeout() {
    let root = daemon::empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start(root.path(), state.path(), &["--web.header-timeout", "1s", "--web.idle-timeout", "2s"]);
    d.wait_ready(Duration::from_secs(30));
    let open = |d: &Daemon| d.metrics().sum("claude_sessions_exporter_http_connections", &[]);
    let (ws, _) = Ws::connect(&d, "");
    assert_eq!(open(&d), 2.0, "the WebSocket and this scrape");
    std::thread::sleep(Duration::from_secs(4));
    let file = root.path().join("projects/-w-app/s-long.jsonl");
    daemon::append(&file, turn("s-long", "app", 1, "sleep 4").as_bytes());
    let got = ws.until(Duration::from_secs(5), "a turn after the idle timeout", |m| is_result_of(m, "toolu_s-long_1"));
    assert_eq!(got.len(), 6, "session_start and the turn's five events: {got:?}");
    assert_eq!(open(&d), 2.0);
    let m = d.metrics();
    for why in ["idle_timeout", "stalled"] {
        assert_eq!(m.sum("claude_sessions_exporter_http_connections_closed_total", &[("reason", why)]), 0.0, "{why}");
    }
    drop(ws);
    assert!(
        d.wait_for(Duration::from_secs(5), |m| m.sum("claude_sessions_exporter_http_connections", &[]) == 1.0)
            .is_some()
    );
    d.stop();
}

/// Clients that do not read make the daemon buffer nothing more: a reading client gets
/// every event or a `lagged` count of what it missed, memory stays flat, and a client
/// that starts reading late is told it lagged, then follows.
#[test]
fn websocket_clients_that_do_not_read_leave_memory_bounded() {
    let root = daemon::empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = start(root.path(), state.path());
    let pid = d.pid().unwrap();
    let (holds, stuck): (Vec<_>, Vec<_>) = (0..10)
        .map(|_| {
            let (go, hold) = mpsc::channel();
            (go, Ws::open(&d, "", Some(hold)))
        })
        .unzip();
    let (good, _) = Ws::connect(&d, "");
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = support::rss_kib(pid);

    // ~40,000 events: 400 responses calling 50 tools each, and their results.
    let file = root.path().join("projects/-w-flood/s-wsflood.jsonl");
    let t = now_ms();
    for batch in 0..40 {
        let mut text = String::new();
        for i in 0..10 {
            let n = batch * 10 + i;
            let ids: Vec<String> = (0..50).map(|k| format!("toolu_wf_{n}_{k}")).collect();
            let tools: Vec<(&str, &str, Value)> =
                ids.iter().map(|id| (id.as_str(), "Bash", serde_json::json!({"command": "true"}))).collect();
            let res: Vec<(&str, bool)> = ids.iter().map(|id| (id.as_str(), false)).collect();
            let ts = t + i64::from(n) * 10;
            text.push_str(&assistant("s-wsflood", "flood", ts, &format!("msg_wf_{n}"), &tools, (1, 1, 0)));
            text.push('\n');
            text.push_str(&results("s-wsflood", "flood", ts + 5, &res));
            text.push('\n');
        }
        daemon::append(&file, text.as_bytes());
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon::append(&file, turn("s-wsflood", "flood", 1, "marker").as_bytes());
    let is_marker = |m: &Msg| is_result_of(m, "toolu_s-wsflood_1");
    let account = |got: &[Msg], who: &str| {
        let delivered: Vec<u64> = got.iter().filter_map(|m| m.0).collect();
        assert!(delivered.windows(2).all(|w| w[0] < w[1]), "{who}: ids increase");
        let missed: u64 = got.iter().filter(|m| m.1 == "lagged").map(|m| m.2["missed"].as_u64().expect("missed")).sum();
        let last = *delivered.last().unwrap();
        assert_eq!(delivered.len() as u64 + missed, last, "{who}: every event delivered or counted as missed");
        (last, missed)
    };
    let got = good.until(Duration::from_secs(60), "reading client: the marker", is_marker);
    let (marker_id, good_missed) = account(&got, "reading client");
    assert!(marker_id > 40_000, "{marker_id} events");
    let rss_after = support::rss_kib(pid);
    eprintln!("/api/ws flood: reading client missed {good_missed} of {marker_id}; RSS {rss_before} -> {rss_after} KiB");
    assert!(rss_after < rss_before + 48 * 1024, "RSS grew from {rss_before} to {rss_after} KiB");

    // One held client starts reading: its snapshot, then a `lagged` notice among what follows.
    holds[0].send(()).unwrap();
    let woke = stuck[0].until(Duration::from_secs(30), "woken client: the marker", is_marker);
    assert_eq!(woke[0].1, "snapshot");
    let (woken_marker, woken_missed) = account(&woke[1..], "woken client");
    assert_eq!(woken_marker, marker_id);
    assert!(woken_missed > 10_000, "a client that did not read missed most events: {woken_missed}");
    drop(holds);
    d.stop();
}
