//! Webhooks against a real HTTP receiver on 127.0.0.1 (a small server in this file):
//! retries under the same idempotency key until every event arrived exactly once and
//! in order, non-retryable refusals, filters, the Slack format, a full queue counted
//! as drops with memory bounded (a lagging subscriber: unit test), a bounded shutdown in
//! front of an endpoint that never answers, `Retry-After` honoured; the hooks' metrics
//! on `/metrics`; the `--webhook` flag and TOML parsers; and the shared HTTP client
//! (`sinks::http`) over TLS with a private CA.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use claude_sessions::events::{Bus, EndReason, Event, Filter, Kind, ToolCategory};
use claude_sessions::server::Exposition;
use claude_sessions::sinks::webhook::{self, DropReason, Format, Stats, WebhookConfig, Webhooks};
use claude_sessions::state::live::Aggregator;
use serde_json::Value;

use super::daemon::Metrics;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    /// Lower-case names.
    headers: BTreeMap<String, String>,
    body: Value,
    /// What was answered (0: nothing, the connection hung).
    status: u16,
    /// When it was read.
    at: Instant,
}

impl Request {
    fn key(&self) -> &str {
        self.headers.get("idempotency-key").map(String::as_str).unwrap_or_default()
    }

    fn event_ids(&self) -> Vec<u64> {
        self.body["events"].as_array().into_iter().flatten().map(|e| e["id"].as_u64().unwrap()).collect()
    }
}

#[derive(Clone)]
enum Behaviour {
    /// These statuses for the first requests, then 200.
    Script(Vec<u16>),
    /// Always this status.
    Always(u16),
    /// Read the request, never answer (until released).
    Hang,
    /// This status with this `Retry-After` value for the first request, then 200.
    Throttle(u16, String),
}

/// A local HTTP/1.1 server that records every request.
struct Receiver {
    base: String,
    got: Arc<Mutex<Vec<Request>>>,
    release: Arc<AtomicBool>,
}

impl Receiver {
    fn start(behaviour: Behaviour) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Request>>> = Arc::default();
        let release = Arc::new(AtomicBool::new(false));
        let (g, r) = (Arc::clone(&got), Arc::clone(&release));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (g, r, b) = (Arc::clone(&g), Arc::clone(&r), behaviour.clone());
                std::thread::spawn(move || serve(stream, &g, &r, &b));
            }
        });
        Receiver { base, got, release }
    }

    fn requests(&self) -> Vec<Request> {
        self.got.lock().unwrap().clone()
    }

    /// Wait until `done` holds for the requests so far.
    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests();
            if done(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; got {got:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.release.store(true, Ordering::Relaxed);
    }
}

/// Answer one request per connection (`Connection: close`).
fn serve(stream: TcpStream, got: &Mutex<Vec<Request>>, release: &AtomicBool, behaviour: &Behaviour) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
    assert!(line.starts_with("POST "), "not a POST: {line:?}");
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').expect("header line");
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers.get("content-length").expect("content-length").parse().unwrap();
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let body: Value = serde_json::from_slice(&body).expect("JSON body");
    let status = {
        let mut got = got.lock().unwrap();
        let status = match behaviour {
            Behaviour::Script(s) => s.get(got.len()).copied().unwrap_or(200),
            Behaviour::Always(s) => *s,
            Behaviour::Hang => 0,
            Behaviour::Throttle(s, _) => {
                if got.is_empty() {
                    *s
                } else {
                    200
                }
            }
        };
        got.push(Request { path, headers, body, status, at: Instant::now() });
        status
    };
    if status == 0 {
        while !release.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    let retry_after = match behaviour {
        Behaviour::Throttle(_, after) if status != 200 => format!("Retry-After: {after}\r\n"),
        _ => String::new(),
    };
    let mut stream = stream;
    let _ = write!(stream, "HTTP/1.1 {status} X\r\n{retry_after}Content-Length: 2\r\nConnection: close\r\n\r\nok");
    let _ = stream.flush();
}

fn dropped(stats: &Stats) -> BTreeMap<&'static str, u64> {
    DropReason::ALL.into_iter().map(|r| (r.label(), stats.dropped(r))).collect()
}

/// `/metrics` as `serve` renders it: the store's families and the hooks' collector.
fn exposition(hooks: &Webhooks) -> Exposition {
    let mut e = Exposition::new(Arc::new(Mutex::new(Aggregator::new(Default::default()))));
    e.register(hooks.collector());
    e
}

fn scrape(e: &Exposition) -> Metrics {
    Metrics::parse(&e.render(true))
}

fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(super) fn event(session: &str, project: &str, agent: Option<&str>, kind: Kind) -> Event {
    Event {
        id: 0,
        ts_ms: 1_763_000_000_000,
        session_id: session.into(),
        project: project.into(),
        agent_id: agent.map(Into::into),
        trace_id: None,
        span_id: None,
        kind,
    }
}

fn tool_use(name: &str, summary: Option<&str>, input: Option<&str>) -> Kind {
    Kind::ToolUse {
        tool_use_id: format!("toolu_{name}"),
        name: name.into(),
        category: ToolCategory::of(name),
        summary: summary.map(Into::into),
        input: input.map(Into::into),
    }
}

/// A mix of kinds, so that every shape goes through the JSON body.
fn mixed(i: u64) -> Event {
    let kind = match i % 5 {
        0 => tool_use("Bash", Some("cargo test"), None),
        1 => Kind::ToolResult {
            tool_use_id: "toolu_Bash".into(),
            name: "Bash".into(),
            is_error: i.is_multiple_of(2),
            content_bytes: None,
            duration_ms: Some(1200),
            output: None,
        },
        2 => Kind::SessionIdle {},
        3 => Kind::SessionEnd { reason: EndReason::IdleTimeout },
        _ => Kind::ContextGrowth {
            tokens_added: 1500,
            source: "response".into(),
            cumulative: 42_000,
            parts: Default::default(),
        },
    };
    event(&format!("session-{}", i % 3), "app", None, kind)
}

fn fast(url: &str) -> WebhookConfig {
    WebhookConfig {
        max_batch: 5,
        flush_interval: Duration::from_millis(30),
        max_attempts: 10,
        backoff: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
        ..WebhookConfig::new(url)
    }
}

#[test]
fn every_event_arrives_once_and_in_order_although_the_first_attempts_fail() {
    let r = Receiver::start(Behaviour::Script(vec![503, 503, 429]));
    let bus = Bus::new(1024, 16);
    let hooks = Webhooks::start(vec![fast(&format!("{}/events", r.base))], &bus).unwrap();
    let (stats, metrics) = (hooks.stats(), exposition(&hooks));
    let mut published = Vec::new();
    for i in 0..23 {
        let mut e = mixed(i);
        e.id = bus.publish(e.clone());
        published.push(e);
        if i == 9 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let all = r.wait_for("23 events accepted", Duration::from_secs(20), |got| {
        got.iter().filter(|q| q.status == 200).map(|q| q.event_ids().len()).sum::<usize>() >= 23
    });

    for q in &all {
        assert_eq!(q.path, "/events");
        assert_eq!(q.headers.get("content-type").map(String::as_str), Some("application/json"));
        assert_eq!(q.key(), q.body["batch_id"].as_str().unwrap(), "the header is the batch id");
        assert!(!q.key().is_empty());
    }
    // The first batch: refused three times, then accepted, always the same key and body.
    let first = &all[..4];
    assert_eq!(first.iter().map(|q| q.status).collect::<Vec<_>>(), [503, 503, 429, 200]);
    assert!(first.iter().all(|q| q.key() == first[0].key() && q.body == first[0].body), "{first:#?}");
    // Accepted batches: distinct keys; their events are the published ones, once, in order.
    let accepted: Vec<&Request> = all.iter().filter(|q| q.status == 200).collect();
    let keys: BTreeSet<&str> = accepted.iter().map(|q| q.key()).collect();
    assert_eq!(keys.len(), accepted.len(), "a batch accepted twice");
    let received: Vec<Event> = accepted
        .iter()
        .flat_map(|q| q.body["events"].as_array().unwrap().iter().map(|e| serde_json::from_value(e.clone()).unwrap()))
        .collect();
    assert_eq!(received, published, "every event once, in order, as published");
    // Deduplicated by key, the receiver counts each event once; retries carry nothing new.
    let mut by_key: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for q in &all {
        let ids = q.event_ids();
        let seen = by_key.entry(q.key()).or_insert_with(|| ids.clone());
        assert_eq!(*seen, ids, "a retry with the same key must carry the same events");
    }
    let distinct: BTreeSet<u64> = by_key.values().flatten().copied().collect();
    assert_eq!(distinct.len(), 23);
    assert!(accepted.iter().all(|q| q.event_ids().len() <= 5), "max_batch");

    hooks.shutdown();
    assert_eq!(stats.deliveries(true), accepted.len() as u64);
    assert_eq!(stats.deliveries(false), 0);
    assert!(dropped(&stats).values().all(|v| *v == 0), "{:?}", dropped(&stats));
    let m = scrape(&metrics);
    let ok = m.sum("claude_sessions_exporter_webhook_deliveries_total", &[("result", "ok")]);
    assert_eq!(ok, accepted.len() as f64, "served on /metrics as counted");
    assert_eq!(m.sum("claude_sessions_exporter_webhook_queue", &[]), 0.0);
}

#[test]
fn refused_batches_are_dropped_and_counted_without_retries() {
    let r = Receiver::start(Behaviour::Always(400));
    let bus = Bus::new(64, 16);
    let hooks = Webhooks::start(vec![fast(&r.base)], &bus).unwrap();
    let stats = hooks.stats();
    for i in 0..3 {
        bus.publish(mixed(i));
    }
    wait_until("the refused batch to be counted", Duration::from_secs(10), || stats.dropped(DropReason::Failed) == 3);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(r.requests().len(), 1, "400 is not retried");
    assert_eq!((stats.deliveries(false), stats.deliveries(true)), (1, 0));
    hooks.shutdown();
}

#[test]
fn filters_choose_the_events_and_slack_gets_one_readable_line_each() {
    let r = Receiver::start(Behaviour::Always(200));
    let bus = Bus::new(64, 16);
    let json = WebhookConfig::parse_flag(&format!(
        "{}/json,type=tool_use|rule_match,tool=shell,agent=main,flush_interval=20ms",
        r.base
    ))
    .unwrap();
    let slack = WebhookConfig::parse_flag(&format!(
        "{}/slack,format=slack,type=rule_match|tool_use,project=app,flush_interval=20ms",
        r.base
    ))
    .unwrap();
    assert_eq!(slack.format, Format::Slack);
    let hooks = Webhooks::start(vec![json, slack], &bus).unwrap();
    let stats = hooks.stats();
    let rule = Kind::RuleMatch {
        rule: "no-force-push".into(),
        severity: "critical".into(),
        tool_use_id: "t4".into(),
        tool: "Bash".into(),
    };
    let events = [
        event("aaaaaaaa-1111", "app", None, tool_use("Bash", Some("cargo test"), Some("SECRET-INPUT"))), // json, slack
        event("aaaaaaaa-1111", "app", None, tool_use("Read", Some("src/main.rs"), None)),                // slack
        event("aaaaaaaa-1111", "app", Some("agent-7"), tool_use("Bash", None, None)),                    // slack
        event("aaaaaaaa-1111", "app", None, rule),                                                       // json, slack
        event("aaaaaaaa-1111", "app", None, Kind::SessionStart { cwd: None, git_branch: Some("main".into()) }), // neither
        event("bbbbbbbb-2222", "other", None, tool_use("Bash", None, None)),                                    // json
        event(
            "aaaaaaaa-1111",
            "app",
            None,
            Kind::Message {
                role: "user".into(),
                model: None,
                usage: None,
                cost_usd: None,
                text: Some("PROMPT".into()),
                continued: false,
            },
        ), // neither
    ];
    for e in events {
        bus.publish(e);
    }
    let got = r.wait_for("both hooks", Duration::from_secs(10), |got| {
        let ids = |p: &str| got.iter().filter(|q| q.path == p).flat_map(Request::event_ids).count();
        let lines = got
            .iter()
            .filter(|q| q.path == "/slack")
            .map(|q| q.body["text"].as_str().unwrap().lines().count())
            .sum::<usize>();
        ids("/json") >= 3 && lines >= 4
    });
    std::thread::sleep(Duration::from_millis(150));
    let got = if r.requests().len() > got.len() { r.requests() } else { got };

    let json_ids: Vec<u64> = got.iter().filter(|q| q.path == "/json").flat_map(Request::event_ids).collect();
    assert_eq!(json_ids, [1, 4, 6], "type, tool category and agent filters");
    let json_events: Vec<&Value> =
        got.iter().filter(|q| q.path == "/json").flat_map(|q| q.body["events"].as_array().unwrap()).collect();
    assert_eq!(json_events[0]["type"], "tool_use");
    assert_eq!(json_events[0]["input"], "SECRET-INPUT", "JSON carries the event as the bus has it");
    assert_eq!(json_events[1]["type"], "rule_match");

    let slack: Vec<&Request> = got.iter().filter(|q| q.path == "/slack").collect();
    for q in &slack {
        let obj = q.body.as_object().unwrap();
        assert_eq!(obj.keys().collect::<Vec<_>>(), ["text"], "Slack body: {}", q.body);
        assert!(!q.key().is_empty(), "the idempotency key is sent in Slack format too");
    }
    let text: Vec<&str> = slack.iter().flat_map(|q| q.body["text"].as_str().unwrap().lines()).collect();
    assert_eq!(text.len(), 4, "{text:#?}");
    assert!(text.iter().all(|l| l.contains("`app`") && l.contains("session `aaaaaaaa`")), "{text:#?}");
    assert!(text[0].contains("*tool_use* `Bash` — `cargo test`"), "{}", text[0]);
    assert!(text[1].contains("`Read` — `src/main.rs`"), "{}", text[1]);
    assert!(text[2].contains("agent `agent-7`"), "{}", text[2]);
    assert!(
        text[3].starts_with(":rotating_light: *Rule match: no-force-push* (critical) · tool `Bash`"),
        "{}",
        text[3]
    );
    let all_text = text.join("\n");
    assert!(!all_text.contains("SECRET-INPUT") && !all_text.contains("PROMPT"), "no input, output or prompt text");
    hooks.shutdown();
    assert_eq!(stats.deliveries(true), got.len() as u64);
}

#[test]
fn a_full_queue_drops_and_counts_new_events_and_shutdown_is_bounded() {
    let r = Receiver::start(Behaviour::Hang);
    let bus = Bus::new(1024, 16);
    let cfg = WebhookConfig {
        max_queue: 10,
        max_batch: 4,
        max_attempts: 1,
        flush_interval: Duration::from_millis(10),
        timeout: Duration::from_secs(60),
        ..WebhookConfig::new(&r.base)
    };
    let hooks = Webhooks::start(vec![cfg], &bus).unwrap();
    let (stats, metrics) = (hooks.stats(), exposition(&hooks));
    bus.publish(mixed(0));
    r.wait_for("the first POST", Duration::from_secs(10), |got| got.len() == 1);
    let mut most = 0;
    for i in 1..100 {
        bus.publish(mixed(i));
        most = most.max(hooks.queued());
    }
    wait_until("90 events refused", Duration::from_secs(10), || stats.dropped(DropReason::QueueFull) == 90);
    most = most.max(hooks.queued());
    assert!(most <= 10, "queue grew to {most}");
    assert_eq!(hooks.queued(), 10, "the hanging batch of 1 and 9 more");
    let m = scrape(&metrics);
    assert_eq!(m.sum("claude_sessions_exporter_webhook_queue", &[]), 10.0, "the queue gauge, read at the scrape");
    let full = m.sum("claude_sessions_exporter_webhook_dropped_total", &[("reason", "queue_full")]);
    assert_eq!(full, 90.0);
    assert_eq!(r.requests().len(), 1, "one batch at a time");
    assert_eq!(r.requests()[0].event_ids(), [1]);

    let t = Instant::now();
    hooks.shutdown();
    let took = t.elapsed();
    assert!(took < webhook::SHUTDOWN_FLUSH + Duration::from_secs(3), "shutdown took {took:?}");
    let d = dropped(&stats);
    assert_eq!(d["queue_full"], 90, "{d:?}");
    assert_eq!(d["shutdown"], 10, "{d:?}");
    assert_eq!(d.values().sum::<u64>(), 100, "every published event delivered or counted: {d:?}");
    assert_eq!(stats.deliveries(true), 0);
    assert_eq!(scrape(&metrics).sum("claude_sessions_exporter_webhook_queue", &[]), 0.0);
}

#[test]
fn the_webhook_flag_parses_url_format_filters_and_limits() {
    let plain = WebhookConfig::parse_flag("http://127.0.0.1:9000/hook").unwrap();
    assert_eq!(plain.url, "http://127.0.0.1:9000/hook");
    assert_eq!(plain.format, Format::Json);
    assert_eq!(plain.filter, Filter::default());
    assert_eq!(plain.max_batch, webhook::DEFAULT_MAX_BATCH);
    assert_eq!(plain.max_queue, webhook::DEFAULT_MAX_QUEUE);
    assert!(plain.headers.is_empty());

    let c = WebhookConfig::parse_flag(
        "https://hooks.slack.com/services/T0/B0/XYZ,format=slack,type=tool_use|rule_match,project=x,tool=shell,\
         agent=main,max_batch=20,max_queue=500,flush_interval=250ms,max_attempts=3,backoff=1s,timeout=2s",
    )
    .unwrap();
    assert_eq!(c.url, "https://hooks.slack.com/services/T0/B0/XYZ");
    assert_eq!(c.format, Format::Slack);
    let want =
        Filter::from_pairs([("type", "tool_use,rule_match"), ("project", "x"), ("tool", "shell"), ("agent", "main")])
            .unwrap();
    assert_eq!(c.filter, want);
    assert_eq!((c.max_batch, c.max_queue, c.max_attempts), (20, 500, 3));
    assert_eq!(c.flush_interval, Duration::from_millis(250));
    assert_eq!((c.backoff, c.timeout), (Duration::from_secs(1), Duration::from_secs(2)));
    assert_eq!(c.display_url(), "https://hooks.slack.com/…");
    assert!(!format!("{c:?}").contains("XYZ"), "Debug hides the URL's path");

    for bad in [
        "ftp://h/x",
        "h/x",
        "http://h,format=xml",
        "http://h,type=nope",
        "http://h,colour=red",
        "http://h,header=Authorization:abc",
        "http://h,max_batch=0",
        "http://h,max_queue=many",
        "http://h,timeout=soon",
        "http://h,agent=robot",
        "http://h,format",
    ] {
        assert!(WebhookConfig::parse_flag(bad).is_err(), "{bad} should be refused");
    }
    let e = WebhookConfig::parse_flag("https://hooks.slack.com/services/T/B/SECRET,format=xml").unwrap_err();
    assert!(!e.contains("SECRET") && e.contains("xml"), "{e}");
    for bad in ["https://hooks.slack.com/services/T/B/SECRET,bogus=1", "https://h/a,b/SECRET", "https://h/a,b/SECRET=1"]
    {
        let e = WebhookConfig::parse_flag(bad).unwrap_err();
        assert!(!e.contains("SECRET"), "{e}");
    }
}

#[test]
fn the_config_file_holds_hooks_with_filters_and_secret_headers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.toml");
    std::fs::write(
        &path,
        r#"
[other_settings]
ignored = true

[[webhook]]
url = "https://hooks.slack.com/services/T0/B0/XYZ"
format = "slack"
filter = { type = ["rule_match"], project = ["app", "api"], agent = "main" }

[[webhook]]
url = "http://127.0.0.1:8080/events"
filter = { type = "tool_use", tool = ["shell", "mcp"] }
headers = { Authorization = "Bearer s3cr3t", X-Team = "dev" }
max_batch = 50
max_queue = 1000
flush_interval = "2s"
max_attempts = 8
backoff = 0.25
timeout = "5s"
"#,
    )
    .unwrap();
    let hooks = webhook::load_config(&path).unwrap();
    assert_eq!(hooks.len(), 2);
    let (slack, json) = (&hooks[0], &hooks[1]);
    assert_eq!(slack.format, Format::Slack);
    assert_eq!(
        slack.filter,
        Filter::from_pairs([("type", "rule_match"), ("project", "app"), ("project", "api"), ("agent", "main")])
            .unwrap()
    );
    assert_eq!(slack.max_batch, webhook::DEFAULT_MAX_BATCH);
    assert_eq!(json.format, Format::Json);
    assert_eq!(json.filter, Filter::from_pairs([("type", "tool_use"), ("tool", "shell,mcp")]).unwrap());
    assert_eq!(
        json.headers,
        [("Authorization".to_owned(), "Bearer s3cr3t".to_owned()), ("X-Team".to_owned(), "dev".to_owned())]
    );
    assert_eq!((json.max_batch, json.max_queue, json.max_attempts), (50, 1000, 8));
    assert_eq!(json.flush_interval, Duration::from_secs(2));
    assert_eq!((json.backoff, json.timeout), (Duration::from_millis(250), Duration::from_secs(5)));
    let debug = format!("{hooks:?}");
    assert!(!debug.contains("s3cr3t") && !debug.contains("XYZ"), "{debug}");

    // No [[webhook]] table: nothing to start.
    std::fs::write(&path, "[something_else]\nx = 1\n").unwrap();
    assert!(webhook::load_config(&path).unwrap().is_empty());
    let none = Webhooks::start(Vec::new(), &Bus::new(4, 4)).unwrap();
    let text = exposition(&none).render(true);
    assert!(!text.contains("webhook"), "no hook, no webhook metric:\n{text}");

    for (bad, expect) in [
        ("[[webhook]]\nurl = \"http://h\"\ncolour = \"red\"\n", "colour"),
        ("[[webhook]]\nformat = \"slack\"\n", "url"),
        ("[[webhook]]\nurl = \"http://h\"\nfilter = { type = [\"nope\"] }\n", "nope"),
        ("[[webhook]]\nurl = \"http://h\"\nfilter = { typo = [\"x\"] }\n", "typo"),
        ("[[webhook]]\nurl = \"http://h\"\nformat = \"xml\"\n", "xml"),
        ("[[webhook]]\nurl = \"ftp://h/SECRET\"\n", "http"),
        ("[[webhook]]\nurl = \"http://h\"\nheaders = { \"Bad Name\" = \"s3cr3t\" }\n", "header"),
        ("[[webhook]]\nurl = \"http://h\"\nheaders = \"Bearer s3cr3t\"\n", "line 3"),
        ("[[webhook]]\nurl = \"http://h\"\ntimeout = \"soon\"\n", "timeout"),
    ] {
        std::fs::write(&path, bad).unwrap();
        let e = format!("{:#}", webhook::load_config(&path).unwrap_err());
        assert!(e.contains(expect) && e.contains("webhooks.toml"), "{bad:?}: {e}");
        assert!(!e.contains("s3cr3t") && !e.contains("SECRET"), "{bad:?}: secret in {e}");
    }
    assert!(webhook::load_config(&dir.path().join("missing.toml")).is_err());
}

#[test]
fn serve_posts_the_events_of_a_live_turn_to_its_webhooks() {
    let r = Receiver::start(Behaviour::Script(vec![503]));
    let root = super::daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let state = tempfile::tempdir().unwrap();
    let hook = format!("{}/hook,type=tool_use|tool_result|session_start", r.base);
    let d = super::daemon::Daemon::start(root.path(), state.path(), &["--webhook", &hook]);
    d.wait_ready(Duration::from_secs(30));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let at = |ms: i64| super::support::rfc3339(now + ms);
    let head = r#""sessionId":"wh1","cwd":"/w/wh","#;
    let lines = [
        format!(r#"{{"type":"user",{head}"timestamp":"{}","message":{{"role":"user","content":"go"}}}}"#, at(0)),
        format!(
            r#"{{"type":"assistant",{head}"timestamp":"{}","requestId":"r1","message":{{"id":"m1","model":"claude-opus-4-6","usage":{{"input_tokens":1,"output_tokens":1}},"content":[{{"type":"tool_use","id":"toolu_wh","name":"Bash","input":{{"command":"ls"}}}}]}}}}"#,
            at(100)
        ),
        format!(
            r#"{{"type":"user",{head}"timestamp":"{}","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"toolu_wh","content":"ok"}}]}}}}"#,
            at(300)
        ),
    ];
    super::daemon::append(&projects.join("-w-wh/wh1.jsonl"), (lines.join("\n") + "\n").as_bytes());
    let got = r.wait_for("the turn's events", Duration::from_secs(20), |reqs| {
        reqs.iter().filter(|q| q.status == 200).flat_map(|q| q.event_ids()).count() >= 3
    });
    let ok: Vec<&Request> = got.iter().filter(|q| q.status == 200).collect();
    let events: Vec<serde_json::Value> =
        ok.iter().flat_map(|q| q.body["events"].as_array().cloned().unwrap_or_default()).collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["session_start", "tool_use", "tool_result"], "filtered, in order, once");
    assert_eq!(events[2]["duration_ms"], 200);
    assert!(events.iter().all(|e| e.get("summary").is_none()), "no summaries without --include-content");
    assert!(got.iter().any(|q| q.status == 503), "the first attempt failed and was retried");
    assert!(!d.log_text().contains("/hook"), "the URL's path (a secret for Slack) is not logged");
    let served = d.wait_for(Duration::from_secs(10), |m| {
        m.sum("claude_sessions_exporter_webhook_deliveries_total", &[("result", "ok")]) >= ok.len() as f64
    });
    assert!(served.is_some(), "serve registers the hooks' collector: {:?}", d.metrics().counters());
    d.stop();
}

#[test]
fn retry_after_is_honoured_in_seconds_and_as_an_http_date() {
    // An HTTP date 3 s ahead, whole seconds: 2 to 3 s from when it is written.
    let in_3s = || httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3));
    for (status, least) in [(429, Duration::from_secs(1)), (503, Duration::from_millis(1500))] {
        let after = if status == 429 { "1".to_owned() } else { in_3s() };
        let r = Receiver::start(Behaviour::Throttle(status, after.clone()));
        let bus = Bus::new(64, 16);
        let hooks = Webhooks::start(vec![fast(&r.base)], &bus).unwrap();
        bus.publish(mixed(0));
        let got = r.wait_for("the retry", Duration::from_secs(10), |got| got.len() >= 2);
        let waited = got[1].at - got[0].at;
        // The policy alone would wait 20-30 ms.
        assert!(waited >= least && waited < least + Duration::from_secs(2), "{status} {after}: waited {waited:?}");
        assert_eq!(got[0].key(), got[1].key());
        hooks.shutdown();
    }
}

#[test]
fn a_checkpoint_holding_the_former_webhook_families_still_loads() {
    // The webhook families were in the store (and so in checkpoints) before they moved to
    // the sink's collector; format 2 finds families by name and skips the unknown ones.
    let stored = serde_json::json!({
        "counters": {
            "claude_sessions_exporter_webhook_deliveries": {"labels": ["result"], "series": {"ok": 12.0, "error": 1.0}},
            "claude_sessions_exporter_webhook_dropped": {"labels": ["reason"], "series": {"failed": 3.0}},
            "claude_sessions_prompts": {"labels": ["project"], "series": {"app": 2.0}},
        },
        "histograms": {},
    });
    let store: claude_sessions::state::metrics::Store = serde_json::from_value(stored).expect("loads");
    assert_eq!(store.counter(claude_sessions::state::metrics::Counter::Prompts, &["app"]), 2.0);
    let again = serde_json::to_string(&store).unwrap();
    assert!(!again.contains("webhook"), "written without them: {again}");
}

/// Path and body of each request a [`tls_server`] read.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A TLS server on 127.0.0.1 with the tests' private CA's certificate: answers each
/// request `200 hello` and records its path and body.
fn tls_server(pki: &super::web_tls::Pki) -> (u16, Seen) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(pki.path("server.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Seen = Arc::default();
    let g = Arc::clone(&got);
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
            let mut line = String::new();
            // A refused handshake ends here.
            if tls.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let mut len = 0;
            loop {
                let mut h = String::new();
                tls.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            tls.read_exact(&mut body).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
            g.lock().unwrap().push((path, String::from_utf8(body).unwrap()));
            let stream = tls.get_mut();
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
            stream.conn.send_close_notify();
            let _ = stream.flush();
        }
    });
    (port, got)
}

#[test]
fn the_shared_http_client_verifies_tls_with_a_private_ca_and_names_no_url() {
    use claude_sessions::sinks::http::{Client, HttpError, TlsOptions};
    let pki = super::web_tls::Pki::new();
    let (port, got) = tls_server(&pki);
    let url = format!("https://127.0.0.1:{port}/secret-path");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let post = |client: &Client| {
        rt.block_on(client.post(&url, &[("content-type", "text/plain")], "ping".into(), Duration::from_secs(10)))
    };

    // The system's roots do not know the private CA: the handshake is refused.
    let e = post(&Client::new(&TlsOptions::default()).unwrap()).unwrap_err();
    assert!(matches!(e, HttpError::Transport(_)) && e.to_string().contains("certificate"), "{e}");
    assert!(!e.to_string().contains("secret-path"), "{e}");
    assert!(got.lock().unwrap().is_empty());

    let with_ca = TlsOptions { system_roots: false, ca_file: Some(pki.path("ca.pem").into()) };
    let r = post(&Client::new(&with_ca).unwrap()).unwrap();
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"hello"[..]));
    assert_eq!(*got.lock().unwrap(), [("/secret-path".to_owned(), "ping".to_owned())]);

    // A request with no answer ends at its timeout.
    let hang = Receiver::start(Behaviour::Hang);
    let client = Client::new(&TlsOptions { system_roots: false, ca_file: None }).unwrap();
    let t = Instant::now();
    let e = rt.block_on(client.post(&hang.base, &[], "{}".into(), Duration::from_millis(300))).unwrap_err();
    assert!(matches!(e, HttpError::Timeout(_)), "{e}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}
