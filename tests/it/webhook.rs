//! Webhooks against a real HTTP receiver on 127.0.0.1 (a small server in this file):
//! retries under the same idempotency key until every event arrived exactly once and
//! in order, non-retryable refusals, filters, the Slack format, a full queue and a
//! lagging subscriber counted as drops with memory bounded, a bounded shutdown in
//! front of an endpoint that never answers; and the `--webhook` flag and TOML parsers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use claude_sessions::events::{Bus, EndReason, Event, Filter, Kind, ToolCategory};
use claude_sessions::sinks::webhook::{self, Format, WebhookConfig, Webhooks};
use claude_sessions::state::live::Aggregator;
use claude_sessions::state::metrics::{Counter, Gauge};
use serde_json::Value;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    /// Lower-case names.
    headers: BTreeMap<String, String>,
    body: Value,
    /// What was answered (0: nothing, the connection hung).
    status: u16,
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
        };
        got.push(Request { path, headers, body, status });
        status
    };
    if status == 0 {
        while !release.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    let mut stream = stream;
    let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    let _ = stream.flush();
}

fn aggregator() -> Arc<Mutex<Aggregator>> {
    Arc::new(Mutex::new(Aggregator::new(Default::default())))
}

fn counter(agg: &Mutex<Aggregator>, c: Counter, labels: &[&str]) -> f64 {
    agg.lock().unwrap().store.counter(c, labels)
}

fn dropped(agg: &Mutex<Aggregator>) -> BTreeMap<&'static str, f64> {
    ["queue_full", "lagged", "failed", "shutdown"]
        .into_iter()
        .map(|r| (r, counter(agg, Counter::WebhookDropped, &[r])))
        .collect()
}

fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn event(session: &str, project: &str, agent: Option<&str>, kind: Kind) -> Event {
    Event {
        id: 0,
        ts_ms: 1_763_000_000_000,
        session_id: session.into(),
        project: project.into(),
        agent_id: agent.map(Into::into),
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
        _ => Kind::ContextGrowth { tokens_added: 1500, source: "response".into(), cumulative: 42_000 },
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
    let agg = aggregator();
    let hooks = Webhooks::start(vec![fast(&format!("{}/events", r.base))], &bus, Arc::clone(&agg)).unwrap();
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
    assert_eq!(counter(&agg, Counter::WebhookDeliveries, &["ok"]), accepted.len() as f64);
    assert_eq!(counter(&agg, Counter::WebhookDeliveries, &["error"]), 0.0);
    assert!(dropped(&agg).values().all(|v| *v == 0.0), "{:?}", dropped(&agg));
    assert_eq!(agg.lock().unwrap().store.gauge(Gauge::WebhookQueue, &[]), Some(0.0));
}

#[test]
fn refused_batches_are_dropped_and_counted_without_retries() {
    let r = Receiver::start(Behaviour::Always(400));
    let bus = Bus::new(64, 16);
    let agg = aggregator();
    let hooks = Webhooks::start(vec![fast(&r.base)], &bus, Arc::clone(&agg)).unwrap();
    for i in 0..3 {
        bus.publish(mixed(i));
    }
    wait_until("the refused batch to be counted", Duration::from_secs(10), || {
        counter(&agg, Counter::WebhookDropped, &["failed"]) == 3.0
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(r.requests().len(), 1, "400 is not retried");
    assert_eq!(counter(&agg, Counter::WebhookDeliveries, &["error"]), 1.0);
    assert_eq!(counter(&agg, Counter::WebhookDeliveries, &["ok"]), 0.0);
    hooks.shutdown();
}

#[test]
fn filters_choose_the_events_and_slack_gets_one_readable_line_each() {
    let r = Receiver::start(Behaviour::Always(200));
    let bus = Bus::new(64, 16);
    let agg = aggregator();
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
    let hooks = Webhooks::start(vec![json, slack], &bus, Arc::clone(&agg)).unwrap();
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
    assert_eq!(counter(&agg, Counter::WebhookDeliveries, &["ok"]), got.len() as f64);
}

#[test]
fn a_full_queue_drops_and_counts_new_events_and_shutdown_is_bounded() {
    let r = Receiver::start(Behaviour::Hang);
    let bus = Bus::new(1024, 16);
    let agg = aggregator();
    let cfg = WebhookConfig {
        max_queue: 10,
        max_batch: 4,
        max_attempts: 1,
        flush_interval: Duration::from_millis(10),
        timeout: Duration::from_secs(60),
        ..WebhookConfig::new(&r.base)
    };
    let hooks = Webhooks::start(vec![cfg], &bus, Arc::clone(&agg)).unwrap();
    bus.publish(mixed(0));
    r.wait_for("the first POST", Duration::from_secs(10), |got| got.len() == 1);
    let mut most = 0;
    for i in 1..100 {
        bus.publish(mixed(i));
        most = most.max(hooks.queued());
    }
    wait_until("90 events refused", Duration::from_secs(10), || {
        counter(&agg, Counter::WebhookDropped, &["queue_full"]) == 90.0
    });
    most = most.max(hooks.queued());
    assert!(most <= 10, "queue grew to {most}");
    assert_eq!(hooks.queued(), 10, "the hanging batch of 1 and 9 more");
    wait_until("the queue gauge", Duration::from_secs(5), || {
        agg.lock().unwrap().store.gauge(Gauge::WebhookQueue, &[]) == Some(10.0)
    });
    assert_eq!(r.requests().len(), 1, "one batch at a time");
    assert_eq!(r.requests()[0].event_ids(), [1]);

    let t = Instant::now();
    hooks.shutdown();
    let took = t.elapsed();
    assert!(took < webhook::SHUTDOWN_FLUSH + Duration::from_secs(3), "shutdown took {took:?}");
    let d = dropped(&agg);
    assert_eq!(d["queue_full"], 90.0, "{d:?}");
    assert_eq!(d["shutdown"], 10.0, "{d:?}");
    assert_eq!(d.values().sum::<f64>(), 100.0, "every published event delivered or counted: {d:?}");
    assert_eq!(counter(&agg, Counter::WebhookDeliveries, &["ok"]), 0.0);
    assert_eq!(agg.lock().unwrap().store.gauge(Gauge::WebhookQueue, &[]), Some(0.0));
}

#[test]
fn a_hook_that_falls_behind_the_bus_counts_what_it_missed() {
    let r = Receiver::start(Behaviour::Always(200));
    let bus = Bus::new(4, 4);
    let agg = aggregator();
    let cfg = WebhookConfig { flush_interval: Duration::from_millis(20), ..WebhookConfig::new(&r.base) };
    let hooks = Webhooks::start(vec![cfg], &bus, Arc::clone(&agg)).unwrap();
    {
        // The delivery thread updates its metrics every 500 ms: holding the aggregator
        // stalls it (as a busy engine might), so the bus laps its subscription.
        let _held = agg.lock().unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        for i in 0..50 {
            bus.publish(mixed(i));
        }
    }
    let got = r.wait_for("the newest four", Duration::from_secs(10), |got| {
        got.iter().flat_map(Request::event_ids).count() >= 4
    });
    assert_eq!(got.iter().flat_map(Request::event_ids).collect::<Vec<_>>(), [47, 48, 49, 50]);
    hooks.shutdown();
    assert_eq!(dropped(&agg)["lagged"], 46.0, "{:?}", dropped(&agg));
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
    assert!(Webhooks::start(Vec::new(), &Bus::new(4, 4), aggregator()).is_ok());

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
    d.stop();
}
