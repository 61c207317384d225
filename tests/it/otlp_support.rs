//! OTLP test helpers: an in-process OTLP/HTTP receiver that decodes what it is
//! sent (exact assertions), a neutral view of received spans and metric points
//! (filled from that receiver or from the real collector's dump), and an
//! independent count, from the transcripts themselves, of what the traces must
//! contain.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message;
use serde_json::Value;

use super::oracle;

/// A span as received, ids in hex, attribute values as text.
#[derive(Debug, Clone, Default)]
pub struct SpanView {
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub name: String,
    pub kind: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attrs: BTreeMap<String, String>,
    pub error: bool,
    pub events: Vec<String>,
}

/// One metric data point as received.
#[derive(Debug, Clone, Default)]
pub struct PointView {
    pub name: String,
    pub unit: String,
    /// `sum`, `gauge` or `histogram`.
    pub kind: String,
    pub cumulative: bool,
    pub monotonic: bool,
    pub attrs: BTreeMap<String, String>,
    pub value: f64,
    pub count: u64,
    pub bucket_counts: Vec<u64>,
    pub start_ns: u64,
    pub time_ns: u64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(|v| text(&Some(v.clone()))).collect();
            format!("[{}]", items.join(","))
        }
        other => format!("{other:?}"),
    }
}

fn attrs(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> BTreeMap<String, String> {
    kvs.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect()
}

/// What the in-process receiver got.
#[derive(Debug, Default)]
pub struct Got {
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub traces: Vec<ExportTraceServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    pub requests: usize,
    pub refused: usize,
    pub headers: Vec<Vec<(String, String)>>,
}

/// A log record as received: event name, trace and span ids in hex, attributes as text.
#[derive(Debug, Clone, Default)]
pub struct LogView {
    pub event_name: String,
    pub trace_id: String,
    pub span_id: String,
    pub attrs: BTreeMap<String, String>,
}

impl Got {
    pub fn log_records(&self) -> Vec<LogView> {
        let mut out = Vec::new();
        for req in &self.logs {
            for rl in &req.resource_logs {
                for sl in &rl.scope_logs {
                    for r in &sl.log_records {
                        out.push(LogView {
                            event_name: r.event_name.clone(),
                            trace_id: hex(&r.trace_id),
                            span_id: hex(&r.span_id),
                            attrs: attrs(&r.attributes),
                        });
                    }
                }
            }
        }
        out
    }

    pub fn spans(&self) -> Vec<SpanView> {
        let mut out = Vec::new();
        for req in &self.traces {
            for rs in &req.resource_spans {
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        out.push(SpanView {
                            trace_id: hex(&s.trace_id),
                            span_id: hex(&s.span_id),
                            parent: hex(&s.parent_span_id),
                            name: s.name.clone(),
                            kind: match s.kind {
                                1 => "internal",
                                3 => "client",
                                _ => "other",
                            }
                            .into(),
                            start_ns: s.start_time_unix_nano,
                            end_ns: s.end_time_unix_nano,
                            attrs: attrs(&s.attributes),
                            error: s.status.as_ref().is_some_and(|st| st.code == 2),
                            events: s.events.iter().map(|e| e.name.clone()).collect(),
                        });
                    }
                }
            }
        }
        out
    }

    /// The latest points of every metric: each metric's points from the latest request
    /// that holds it (an export interval may send several requests: the official
    /// exporter's sums and gauges, and our own for histograms).
    pub fn last_points(&self) -> Vec<PointView> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for req in self.metrics.iter().rev() {
            let pts = points(req);
            let names: std::collections::BTreeSet<String> = pts.iter().map(|p| p.name.clone()).collect();
            out.extend(pts.into_iter().filter(|p| !seen.contains(&p.name)));
            seen.extend(names);
        }
        out
    }

    /// The points of every metrics request, in order.
    pub fn all_points(&self) -> Vec<PointView> {
        self.metrics.iter().flat_map(points).collect()
    }

    pub fn resource(&self) -> BTreeMap<String, String> {
        self.metrics
            .iter()
            .flat_map(|m| &m.resource_metrics)
            .chain(std::iter::empty())
            .find_map(|rm| rm.resource.as_ref().map(|r| attrs(&r.attributes)))
            .or_else(|| {
                self.traces
                    .iter()
                    .flat_map(|t| &t.resource_spans)
                    .find_map(|rs| rs.resource.as_ref().map(|r| attrs(&r.attributes)))
            })
            .unwrap_or_default()
    }
}

pub fn points(req: &ExportMetricsServiceRequest) -> Vec<PointView> {
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
    let mut out = Vec::new();
    for rm in &req.resource_metrics {
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let base = PointView { name: m.name.clone(), unit: m.unit.clone(), ..PointView::default() };
                let num = |v: &Option<number_data_point::Value>| match v {
                    Some(number_data_point::Value::AsDouble(d)) => *d,
                    Some(number_data_point::Value::AsInt(i)) => *i as f64,
                    None => f64::NAN,
                };
                match &m.data {
                    Some(Data::Sum(s)) => {
                        for p in &s.data_points {
                            out.push(PointView {
                                kind: "sum".into(),
                                cumulative: s.aggregation_temporality == 2,
                                monotonic: s.is_monotonic,
                                attrs: attrs(&p.attributes),
                                value: num(&p.value),
                                start_ns: p.start_time_unix_nano,
                                time_ns: p.time_unix_nano,
                                ..base.clone()
                            });
                        }
                    }
                    Some(Data::Gauge(g)) => {
                        for p in &g.data_points {
                            out.push(PointView {
                                kind: "gauge".into(),
                                attrs: attrs(&p.attributes),
                                value: num(&p.value),
                                time_ns: p.time_unix_nano,
                                ..base.clone()
                            });
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        for p in &h.data_points {
                            out.push(PointView {
                                kind: "histogram".into(),
                                cumulative: h.aggregation_temporality == 2,
                                attrs: attrs(&p.attributes),
                                value: p.sum.unwrap_or(f64::NAN),
                                count: p.count,
                                bucket_counts: p.bucket_counts.clone(),
                                start_ns: p.start_time_unix_nano,
                                time_ns: p.time_unix_nano,
                                ..base.clone()
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// Sum of `name`'s points whose attributes include `filter`.
pub fn sum_points(points: &[PointView], name: &str, filter: &[(&str, &str)]) -> f64 {
    points
        .iter()
        .filter(|p| p.name == name && filter.iter().all(|(k, v)| p.attrs.get(*k).map(String::as_str) == Some(*v)))
        .map(|p| p.value)
        .sum()
}

/// A minimal OTLP/HTTP (protobuf) receiver on 127.0.0.1: keep-alive HTTP/1.1,
/// `POST /v1/metrics`, `POST /v1/traces` and `POST /v1/logs`, decoded with the proto types.
/// While `down` is set it answers 503 (a failing collector).
pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Got>>,
    pub down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let got = Arc::new(Mutex::new(Got::default()));
        let (down, stop, connections) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (g, d, s, c) = (Arc::clone(&got), Arc::clone(&down), Arc::clone(&stop), Arc::clone(&connections));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        let (g, d) = (Arc::clone(&g), Arc::clone(&d));
                        std::thread::spawn(move || serve_connection(stream, &g, &d));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Receiver { addr, got, down, stop, connections }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `serve` on `config_root` pushing to this receiver (OTLP/HTTP), plus `args` and `env`.
    pub fn daemon(
        &self,
        config_root: &Path,
        state: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> super::daemon::Daemon {
        let endpoint = self.endpoint();
        let mut all = vec!["--otlp-endpoint", endpoint.as_str()];
        all.extend_from_slice(args);
        super::daemon::Daemon::start_env(config_root, state, &all, env)
    }

    /// Poll until `pred` holds on what was received (panics at the timeout).
    pub fn wait_for(&self, timeout: Duration, what: &str, pred: impl Fn(&Got) -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.got.lock().unwrap()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let g = self.got.lock().unwrap();
        panic!(
            "timed out waiting for {what}: {} metrics requests, {} trace requests, {} refused",
            g.metrics.len(),
            g.traces.len(),
            g.refused
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_connection(stream: TcpStream, got: &Mutex<Got>, down: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
                if k == "content-length" {
                    len = v.parse().unwrap_or(0);
                }
                headers.push((k, v));
            }
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if headers.iter().any(|(k, v)| k == "content-encoding" && v == "gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out).expect("gunzip");
            body = out;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let status = {
            let mut g = got.lock().unwrap();
            g.requests += 1;
            if down.load(Ordering::Relaxed) {
                g.refused += 1;
                "503 Service Unavailable"
            } else {
                g.headers.push(headers);
                match path.as_str() {
                    "/v1/metrics" => {
                        g.metrics.push(ExportMetricsServiceRequest::decode(&body[..]).expect("decode metrics"));
                        "200 OK"
                    }
                    "/v1/traces" => {
                        g.traces.push(ExportTraceServiceRequest::decode(&body[..]).expect("decode traces"));
                        "200 OK"
                    }
                    "/v1/logs" => {
                        g.logs.push(ExportLogsServiceRequest::decode(&body[..]).expect("decode logs"));
                        "200 OK"
                    }
                    _ => "404 Not Found",
                }
            }
        };
        let resp = format!("HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n");
        if writer.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// What the transcripts say the traces must hold, per session: counted here from
/// `serde_json::Value`s with the rules of docs/transcript-format.md, not with the crate.
#[derive(Debug, Default, Clone)]
pub struct SessionExpect {
    /// Prompts typed by the user (one trace each).
    pub prompts: u64,
    /// API responses by `message.id` NUL `requestId`: (input incl. cache, output, cache read,
    /// cache write), each the largest over the response's lines.
    pub responses: BTreeMap<String, (u64, u64, u64, u64)>,
    /// Tool calls by id: (tool_use time ms, first tool_result time ms, is_error).
    pub tools: BTreeMap<String, (i64, Option<i64>, bool)>,
}

fn ts_ms(line: &Value) -> Option<i64> {
    let s = line.get("timestamp")?.as_str()?;
    super::support::parse_rfc3339(s)
}

fn key_of(k: &str) -> String {
    k.to_owned()
}

pub fn expected_traces(projects: &Path) -> BTreeMap<String, SessionExpect> {
    struct L {
        ts: i64,
        session: String,
        v: Value,
    }
    let mut lines = Vec::new();
    for path in oracle::jsonl_files(projects) {
        let bytes = std::fs::read(&path).expect("read transcript");
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_owned();
        for raw in bytes.split(|b| *b == b'\n') {
            let Ok(v) = serde_json::from_slice::<Value>(raw) else { continue };
            // Lines without a time are not traced.
            let Some(ts) = ts_ms(&v) else { continue };
            let session = v.get("sessionId").and_then(Value::as_str).map_or(stem.clone(), str::to_owned);
            lines.push(L { ts, session, v });
        }
    }
    // Transcript time order, as a history replay applies them.
    lines.sort_by_key(|l| l.ts);
    let mut out: BTreeMap<String, SessionExpect> = BTreeMap::new();
    let mut key_session: HashMap<String, String> = HashMap::new();
    let mut tool_session: HashMap<String, String> = HashMap::new();
    for l in &lines {
        let v = &l.v;
        let blocks = match v.get("message").and_then(|m| m.get("content")) {
            Some(Value::Array(b)) => b.as_slice(),
            _ => &[],
        };
        match v.get("type").and_then(Value::as_str) {
            Some("assistant") => {
                let msg = &v["message"];
                let model = msg.get("model").and_then(Value::as_str).unwrap_or("");
                let synthetic = model == "<synthetic>" || v.get("isApiErrorMessage") == Some(&Value::Bool(true));
                if let (false, Some(id), Some(u)) =
                    (synthetic, msg.get("id").and_then(Value::as_str), msg.get("usage").filter(|u| u.is_object()))
                {
                    let key = format!("{id}\u{0}{}", v.get("requestId").and_then(Value::as_str).unwrap_or(""));
                    let f = |n: &str| u.get(n).and_then(Value::as_u64).unwrap_or(0);
                    let (i, o, cr, cw) = (
                        f("input_tokens"),
                        f("output_tokens"),
                        f("cache_read_input_tokens"),
                        f("cache_creation_input_tokens"),
                    );
                    let owner = key_session.entry(key.clone()).or_insert_with(|| l.session.clone()).clone();
                    let e = out.entry(owner).or_default().responses.entry(key_of(&key)).or_insert((0, 0, 0, 0));
                    // Field-wise largest (a response's lines only grow).
                    *e = (e.0.max(i + cr + cw), e.1.max(o), e.2.max(cr), e.3.max(cw));
                }
                if synthetic {
                    continue;
                }
                for b in blocks {
                    if b.get("type").and_then(Value::as_str) == Some("tool_use")
                        && let Some(id) = b.get("id").and_then(Value::as_str)
                        && b.get("name").and_then(Value::as_str).is_some()
                        && !tool_session.contains_key(id)
                    {
                        tool_session.insert(id.to_owned(), l.session.clone());
                        out.entry(l.session.clone()).or_default().tools.insert(id.to_owned(), (l.ts, None, false));
                    }
                }
            }
            Some("user") => {
                let mut has_result = false;
                for b in blocks {
                    if b.get("type").and_then(Value::as_str) == Some("tool_result")
                        && let Some(id) = b.get("tool_use_id").and_then(Value::as_str)
                    {
                        has_result = true;
                        if let Some(sess) = tool_session.get(id)
                            && let Some(t) = out.get_mut(sess).and_then(|s| s.tools.get_mut(id))
                            && t.1.is_none()
                        {
                            *t = (t.0, Some(l.ts), b.get("is_error") == Some(&Value::Bool(true)));
                        }
                    }
                }
                let flag = |k: &str| v.get(k) == Some(&Value::Bool(true));
                let text = match v.get("message").and_then(|m| m.get("content")) {
                    Some(Value::String(s)) => Some(s.as_str()),
                    Some(Value::Array(b)) => b.iter().find_map(|b| match b.get("type").and_then(Value::as_str) {
                        Some("text") => Some(b.get("text").and_then(Value::as_str).unwrap_or("")),
                        Some("image") => Some(""),
                        _ => None,
                    }),
                    _ => None,
                };
                let prompt = text.is_some_and(oracle::typed_by_the_user)
                    && !has_result
                    && !flag("isSidechain")
                    && !flag("isMeta")
                    && !flag("isCompactSummary");
                if prompt {
                    out.entry(l.session.clone()).or_default().prompts += 1;
                }
            }
            _ => {}
        }
    }
    out
}

/// Check received spans against the transcripts: the tree's shape, per-session
/// counts, times from the transcript and the usage of every model call.
pub fn check_spans(spans: &[SpanView], expect: &BTreeMap<String, SessionExpect>) {
    let by_id: HashMap<&str, &SpanView> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    assert_eq!(by_id.len(), spans.len(), "span ids are unique");
    // Parents exist, in the same trace; roots have none.
    for s in spans {
        if s.parent.is_empty() {
            assert_eq!(s.name, "invoke_agent claude-code", "only turns are roots: {s:?}");
            continue;
        }
        let p = by_id.get(s.parent.as_str()).unwrap_or_else(|| panic!("parent of {} missing", s.name));
        assert_eq!(p.trace_id, s.trace_id, "{} is in its parent's trace", s.name);
        assert!(p.start_ns <= s.start_ns, "{} starts within its parent {}", s.name, p.name);
    }
    let root_of = |s: &SpanView| -> String {
        let mut cur = s;
        while !cur.parent.is_empty() {
            cur = by_id[cur.parent.as_str()];
        }
        cur.attrs.get("session.id").cloned().unwrap_or_default()
    };
    let mut got: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for s in spans {
        let session = root_of(s);
        let e = got.entry(session.clone()).or_default();
        let op = s.attrs.get("gen_ai.operation.name").map(String::as_str);
        if s.parent.is_empty() && s.attrs.get("claude_sessions.turn.prompted").map(String::as_str) == Some("true") {
            e.0 += 1;
        }
        if op == Some("chat") {
            e.1 += 1;
            assert_eq!(s.kind, "client");
            let id = &s.attrs["gen_ai.response.id"];
            // One message id may have been answered to several requests: any of them.
            let candidates: Vec<&(u64, u64, u64, u64)> = expect
                .get(&session)
                .map(|x| x.responses.iter().filter(|(k, _)| k.split('\0').next() == Some(id)).map(|(_, v)| v).collect())
                .unwrap_or_default();
            assert!(!candidates.is_empty(), "chat span {id} in session {session} is not a response of that session");
            let n = |k: &str| s.attrs.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(u64::MAX);
            let have = (
                n("gen_ai.usage.input_tokens"),
                n("gen_ai.usage.output_tokens"),
                n("gen_ai.usage.cache_read.input_tokens"),
                n("gen_ai.usage.cache_creation.input_tokens"),
            );
            assert!(candidates.contains(&&have), "usage of response {id}: {have:?} not in {candidates:?}");
            assert_eq!(s.attrs.get("gen_ai.provider.name").map(String::as_str), Some("anthropic"));
            assert_eq!(s.name, format!("chat {}", s.attrs["gen_ai.request.model"]));
        }
        if op == Some("execute_tool") {
            e.2 += 1;
            let id = &s.attrs["gen_ai.tool.call.id"];
            let (start, end, is_error) = expect
                .get(&session)
                .and_then(|x| x.tools.get(id))
                .unwrap_or_else(|| panic!("tool span {id} is not a tool call of session {session}"));
            assert_eq!(s.start_ns, *start as u64 * 1_000_000, "tool {id} starts at its tool_use line");
            // A call still running when its turn ended (the user typed on) has no result in its span.
            let completed = s.attrs.get("claude_sessions.tool.completed").map(String::as_str) != Some("false");
            if let (Some(end), true) = (end, completed) {
                assert_eq!(s.end_ns, *end as u64 * 1_000_000, "tool {id} ends at its tool_result line");
                assert_eq!(s.error, *is_error, "tool {id} error status");
            }
            assert_eq!(s.name, format!("execute_tool {}", s.attrs["gen_ai.tool.name"]));
        }
    }
    for (session, e) in expect {
        let want = (e.prompts, e.responses.len() as u64, e.tools.len() as u64);
        let have = got.get(session).copied().unwrap_or_default();
        assert_eq!(have, want, "session {session}: (turns, model calls, tool calls)");
    }
    for session in got.keys() {
        assert!(expect.contains_key(session), "spans for unknown session {session}");
    }
}
