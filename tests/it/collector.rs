//! A real OpenTelemetry collector for the tests: [`Rotel`] runs `rotel-agent` (rotel, from
//! PyPI, installed into `.tools/rotel-venv` by `scripts/install-rotel.sh`) on two free
//! loopback ports, OTLP/gRPC and OTLP/HTTP, with the blackhole exporter and its detailed
//! debug dump of every metric and span it receives; [`Rotel::received`] parses that dump
//! into [`Received`]. Tests skip when rotel is missing, except on CI where they fail
//! ([`Rotel::start_or_skip`], `support::require_tool`).
//!
//! # The dump, as rotel 0.0.1a15 prints it (`tests/fixtures/otlp/rotel-dump-sample.txt`)
//!
//! One block per export request (not per batch), written in one piece to stdout; rotel's own
//! log lines (`2026-…Z  INFO …`, in ANSI colours, which are stripped) may come between
//! blocks. Every block restarts its numbering at `ResourceMetrics #0` / `ResourceSpans #0`,
//! and leaves out what is empty (no `Resource attributes:` without a resource, no status
//! lines for a span without a status, no `Events:` without events).
//! * Metrics: `Resource attributes:`, `InstrumentationScope NAME VERSION`, then per
//!   metric a `Descriptor:` (`-> Name:`, `-> Unit:`, `-> DataType: Sum|Gauge|Histogram|…`,
//!   `-> IsMonotonic: true`, `-> AggregationTemporality: AGGREGATION_TEMPORALITY_DELTA`)
//!   and its data points: `Data point attributes:` (left out when there are none),
//!   `StartTimestamp: NS` (`0` for a gauge), `Timestamp: NS`, `Value: V`; histograms give
//!   `Count:`, `Sum:`, `Min:`, `Max:`, `ExplicitBounds #i: B` and `Buckets #i, Count: C`.
//!   Exemplars follow their point (`Exemplars:` … `-> FilteredAttributes:` with deeper
//!   indented attributes); they are skipped here.
//! * Spans: one `Span #k` with `    Trace ID       : HEX`, `Parent ID` (empty for a root),
//!   `ID`, `Name`, `Kind: SPAN_KIND_CLIENT`, `Start time: NS`, `End time: NS`,
//!   `Status code: STATUS_CODE_ERROR`, `Status message`, `Attributes:`, `Events:`
//!   (`SpanEvent #i`, `-> Name: N`, `-> Attributes::` with a double colon) and `Links:`.
//! * Logs (`--debug-log logs`): `ResourceLog #0`, `ScopeLogs #0`, then per record
//!   `LogRecord #k` with `ObservedTimestamp: NS`, `Timestamp: NS`, `SeverityText: INFO`,
//!   `SeverityNumber: SEVERITY_NUMBER_INFO(9)`, `EventName: N`, `Body: Str(…)`,
//!   `Attributes:`, then `    Trace ID       : HEX` and `    Span ID        : HEX` (empty
//!   without a trace) and `Flags: 1`.
//! * Times are plain integer nanoseconds since the epoch; ids are lowercase hex; numbers use
//!   Rust's `Display`, so a double `20.0` prints as `20` and an int as `7`.
//! * Attribute values are typed: `Str(text)` (not quoted, not escaped), `Int(7)`,
//!   `Bool(true)`, `Double(0.25)`, `Slice(Str(a), Str(b))`, `Map(k:Str(v), …)`,
//!   `Bytes([1, 2])`, `Empty`.
//!
//! # What is parsed
//!
//! Attribute values are rendered as text the way `otlp_support::text` renders a decoded
//! `AnyValue`: strings bare, ints in decimal, bools `true`/`false`, doubles as printed,
//! arrays as `[a,b]` (items rendered the same way, joined by `,` with no space), maps as
//! `{k:v,k2:v2}`, bytes as rotel prints them (`[1, 2]`), `Empty` as the empty string.
//! Strings are printed raw, so two cases cannot be told apart from the dump's own
//! punctuation: a string with a line break (only its first line is kept, and the rest of it
//! is ignored unless it looks like a line of the dump) and, inside an array or a map, a
//! string containing `), Str(` or the like. Avoid those in tests, or check such values with
//! the in-process receiver of `otlp_support`.
//!
//! Kinds and codes are shortened: temporality `Cumulative`/`Delta`/`Unspecified` (empty
//! for gauges and summaries), span kind `internal`/`server`/`client`/`producer`/`consumer`/
//! `unspecified`, status `unset`/`ok`/`error` (`unset` when the span has no status).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::support;

/// Where `scripts/install-rotel.sh` puts rotel's venv, relative to the crate.
const VENV: &str = ".tools/rotel-venv";
/// How long rotel may take to bind and listen.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `restart` keeps retrying while the old ports are not yet free.
const RESTART_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `stop` waits after SIGTERM (rotel itself gives its tasks up to 10 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// What rotel logs once both ports are bound.
const STARTED: &str = "Starting Rotel.";

/// The `rotel-agent` binary: `$ROTEL_AGENT` if set, else the one inside the python package
/// in `.tools/rotel-venv` (not in its `bin/`), else `None`.
pub fn rotel_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ROTEL_AGENT").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    static IN_VENV: OnceLock<Option<PathBuf>> = OnceLock::new();
    IN_VENV
        .get_or_init(|| {
            let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(VENV).join("bin/python");
            if !python.exists() {
                return None;
            }
            let out = Command::new(&python)
                .args(["-c", "import rotel,os;print(os.path.dirname(rotel.__file__))"])
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let dir = String::from_utf8(out.stdout).ok().filter(|_| out.status.success())?;
            let bin = Path::new(dir.trim()).join("rotel-agent");
            bin.is_file().then_some(bin)
        })
        .clone()
}

/// `rotel_bin()` under the suite's rule for external tools: `None` (and a SKIPPED notice)
/// when missing locally, a panic when missing on CI.
pub fn require_rotel() -> Option<PathBuf> {
    support::require_tool("rotel-agent", rotel_bin())
}

/// What a running `rotel-agent` has received: every metric data point and every span in
/// its dump so far, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Received {
    pub metrics: Vec<MetricPoint>,
    pub spans: Vec<SpanRec>,
    pub logs: Vec<LogRec>,
}

/// One log record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogRec {
    pub event_name: String,
    /// The body rendered as text (see [`render_value`]).
    pub body: String,
    pub severity_text: String,
    pub time_ns: u64,
    pub observed_ns: u64,
    pub attrs: BTreeMap<String, String>,
    /// 32 hex digits, empty without a trace context.
    pub trace_id: String,
    /// 16 hex digits, empty without a trace context.
    pub span_id: String,
    /// The resource attributes of the batch the record came in.
    pub resource: BTreeMap<String, String>,
    pub scope: String,
}

/// One metric data point, with its metric's descriptor, resource and scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricPoint {
    pub name: String,
    pub description: String,
    pub unit: String,
    /// `sum`, `gauge`, `histogram`, `exponential_histogram` or `summary`.
    pub kind: String,
    /// `Cumulative`, `Delta`, `Unspecified`, or empty (gauges, summaries).
    pub temporality: String,
    /// For sums only.
    pub monotonic: Option<bool>,
    pub attrs: BTreeMap<String, String>,
    /// Sums and gauges (ints are converted).
    pub value: f64,
    /// Histograms and summaries.
    pub count: u64,
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Explicit-bucket histograms: one more count than bounds.
    pub bucket_counts: Vec<u64>,
    pub bounds: Vec<f64>,
    /// 0 when unset (gauges).
    pub start_time_ns: u64,
    pub time_ns: u64,
    /// The resource attributes of the batch the point came in.
    pub resource: BTreeMap<String, String>,
    /// The instrumentation scope: name and version.
    pub scope: String,
    pub scope_version: String,
}

/// One span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanRec {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// `internal`, `server`, `client`, `producer`, `consumer` or `unspecified`.
    pub kind: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attrs: BTreeMap<String, String>,
    /// `unset`, `ok` or `error`.
    pub status_code: String,
    pub status_message: String,
    /// Event names, in order.
    pub events: Vec<String>,
    /// `(trace_id, span_id)` of each link.
    pub links: Vec<(String, String)>,
    /// The resource attributes of the batch the span came in.
    pub resource: BTreeMap<String, String>,
    pub scope: String,
    pub scope_version: String,
}

impl Received {
    /// The points of metric `name`, in order.
    pub fn points<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a MetricPoint> + 'a {
        self.metrics.iter().filter(move |p| p.name == name)
    }

    /// The spans named `name`, in order.
    pub fn spans_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a SpanRec> + 'a {
        self.spans.iter().filter(move |s| s.name == name)
    }

    /// The log records named `name`, in order.
    pub fn logs_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a LogRec> + 'a {
        self.logs.iter().filter(move |l| l.event_name == name)
    }

    /// One line per point and span, for failure messages.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} metric points, {} spans, {} log records\n",
            self.metrics.len(),
            self.spans.len(),
            self.logs.len()
        );
        for p in &self.metrics {
            out += &format!("  point {} {} {:?} value={} count={}\n", p.name, p.kind, p.attrs, p.value, p.count);
        }
        for s in &self.spans {
            out += &format!("  span {:?} {} parent={:?} {}\n", s.name, s.span_id, s.parent_span_id, s.status_code);
        }
        out
    }
}

/// A running `rotel-agent`, killed when dropped (also on panic, when the tail of its log is
/// printed). Its stdout and stderr go to one log file that lives as long as the value, across
/// restarts.
pub struct Rotel {
    bin: PathBuf,
    dir: tempfile::TempDir,
    log: PathBuf,
    grpc_port: u16,
    http_port: u16,
    child: Option<Child>,
    starts: usize,
}

/// Why one launch did not come up.
enum LaunchError {
    /// A port was taken (by another process, or not yet released): worth another try.
    PortInUse(String),
    Other(String),
}

impl Rotel {
    /// Starts rotel on two free loopback ports and waits until both accept connections.
    /// Panics if rotel is not installed: call [`Rotel::start_or_skip`] in tests.
    pub fn start() -> Rotel {
        let bin = rotel_bin().expect("rotel-agent not found: run scripts/install-rotel.sh or set ROTEL_AGENT");
        Self::start_with(bin)
    }

    /// [`Rotel::start`], or `None` when rotel is missing and the test should skip (locally;
    /// on CI a missing rotel panics).
    pub fn start_or_skip() -> Option<Rotel> {
        require_rotel().map(Self::start_with)
    }

    fn start_with(bin: PathBuf) -> Rotel {
        let dir = tempfile::tempdir().expect("temp dir for rotel");
        let log = dir.path().join("rotel.log");
        let mut rotel = Rotel { bin, dir, log, grpc_port: 0, http_port: 0, child: None, starts: 0 };
        // Free ports can be taken between the check and rotel's bind: try others then.
        let mut last = String::new();
        for _ in 0..20 {
            (rotel.grpc_port, rotel.http_port) = free_port_pair();
            match rotel.launch() {
                Ok(()) => return rotel,
                Err(LaunchError::PortInUse(why)) => last = why,
                Err(LaunchError::Other(why)) => panic!("rotel did not start: {why}"),
            }
        }
        panic!("rotel did not start: ports kept being taken; last attempt: {last}");
    }

    /// `http://127.0.0.1:P` of the OTLP/gRPC receiver.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// `http://127.0.0.1:P` of the OTLP/HTTP receiver (append `/v1/metrics` or `/v1/traces`).
    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The log file (rotel's stdout and stderr, all starts).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far, ANSI colours stripped.
    pub fn log(&self) -> String {
        self.log_since(0)
    }

    /// Is the agent process running?
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Everything received so far (all starts), parsed from the log. A line still being
    /// written is left for the next call.
    pub fn received(&self) -> Received {
        let text = self.log();
        let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
        parse_dump(complete)
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 15 s). Returns the exit status, or
    /// `None` if it was not running.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("wait for rotel: {e}"),
            }
        }
        eprintln!("rotel ignored SIGTERM for {STOP_TIMEOUT:?}: killing it");
        let _ = child.kill();
        Some(child.wait().expect("wait for killed rotel"))
    }

    /// Stops rotel if running, then starts it again on the same ports, retrying for 10 s
    /// while they are still taken. The log is kept: `received()` still shows what came before.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + RESTART_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(LaunchError::PortInUse(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(LaunchError::PortInUse(why) | LaunchError::Other(why)) => {
                    panic!("rotel did not restart on ports {} and {}: {why}", self.grpc_port, self.http_port)
                }
            }
        }
    }

    /// One attempt: spawn on the current ports and wait until it listens on both.
    fn launch(&mut self) -> Result<(), LaunchError> {
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log.display()));
        self.starts += 1;
        let offset = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        // Our own marker, so a reader of the log can tell the starts apart (not parsed).
        writeln!(log, "=== claude-sessions test: rotel start #{} ===", self.starts).expect("write rotel log");
        let grpc = format!("127.0.0.1:{}", self.grpc_port);
        let http = format!("127.0.0.1:{}", self.http_port);
        let mut cmd = Command::new(&self.bin);
        cmd.args(["start", "--otlp-grpc-endpoint", &grpc, "--otlp-http-endpoint", &http])
            .args(["--exporter", "blackhole", "--debug-log", "traces", "--debug-log", "metrics", "--debug-log", "logs"])
            .args(["--debug-log-verbosity", "detailed"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone rotel log handle")))
            .stderr(Stdio::from(log));
        // Each ROTEL_* variable sets an option: keep the caller's out of it.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ROTEL_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let since = self.log_since(offset);
            if let Ok(Some(status)) = child.try_wait() {
                let why = format!("rotel exited ({status}) on {grpc} / {http}:\n{since}");
                return Err(if since.contains("Address already in use") {
                    LaunchError::PortInUse(why)
                } else {
                    LaunchError::Other(why)
                });
            }
            // rotel binds both ports before it logs this, so the listeners are its own.
            if since.contains(STARTED) && accepts(self.grpc_port) && accepts(self.http_port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LaunchError::Other(format!("not listening after {READY_TIMEOUT:?}:\n{since}")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The log from byte `offset` on, ANSI colours stripped; empty if unreadable.
    fn log_since(&self, offset: u64) -> String {
        let raw = fs::read(&self.log).unwrap_or_default();
        let from = usize::try_from(offset).unwrap_or(usize::MAX).min(raw.len());
        strip_ansi(&String::from_utf8_lossy(&raw[from..]))
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log_since(0); // (does not panic: a second panic would abort)
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(60)..].join("\n");
            eprintln!("---- rotel log (last 60 lines of {}) ----\n{tail}\n----", lines.len());
        }
    }
}

/// Polls `rotel.received()` every 100 ms until `pred` holds and returns what satisfied it;
/// panics after `timeout` with a summary of what was received (and dropping the `Rotel`
/// then prints the end of its log).
pub fn wait_for(rotel: &Rotel, timeout: Duration, pred: impl Fn(&Received) -> bool) -> Received {
    let deadline = Instant::now() + timeout;
    loop {
        let got = rotel.received();
        if pred(&got) {
            return got;
        }
        if Instant::now() >= deadline {
            panic!("rotel did not receive what was expected within {timeout:?}; it has {}", got.summary());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two distinct ports free on 127.0.0.1 right now.
fn free_port_pair() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind a second free port");
    let port = |l: &TcpListener| l.local_addr().expect("local address").port();
    (port(&a), port(&b))
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Removes ANSI escape sequences (`ESC [ … final-byte`, and any other `ESC x` pair).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            // parameters and intermediates, up to the final byte @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The dump parser
// ---------------------------------------------------------------------------------------

/// Where a `     -> key: value` line belongs.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Section {
    None,
    ResourceAttrs,
    /// Scope attributes, exemplars, logs: skipped.
    Skip,
    Descriptor,
    PointAttrs,
    SpanAttrs,
    LogAttrs,
    Events,
    Links,
}

/// Parses rotel's detailed debug dump (ANSI codes are stripped first; lines that are not
/// part of it, such as rotel's own log lines, are ignored). Panics, naming the line, on a
/// number that does not parse: that means the format changed.
pub fn parse_dump(text: &str) -> Received {
    const ATTR: &str = "     -> ";
    const NESTED: &str = "          -> ";
    let text = strip_ansi(text);
    let mut got = Received::default();
    let mut resource = BTreeMap::new();
    let (mut scope, mut scope_version) = (String::new(), String::new());
    let mut metric = MetricPoint::default(); // the descriptor of the current metric
    let mut section = Section::None;
    let mut in_spans = false;
    let mut in_logs = false;

    for (n, line) in text.lines().enumerate() {
        let num = |s: &str| -> f64 {
            s.trim().parse().unwrap_or_else(|e| panic!("rotel dump line {}: bad number {s:?} ({e}): {line}", n + 1))
        };
        let int = |s: &str| -> u64 {
            s.trim().parse().unwrap_or_else(|e| panic!("rotel dump line {}: bad integer {s:?} ({e}): {line}", n + 1))
        };

        if line.starts_with(NESTED) {
            continue; // attributes of an event, link or exemplar
        }
        if let Some(kv) = line.strip_prefix(ATTR) {
            let (key, value) = kv.split_once(": ").unwrap_or((kv.trim_end_matches(':'), ""));
            match section {
                Section::ResourceAttrs => {
                    resource.insert(key.to_string(), render_value(value));
                }
                Section::Descriptor => match key {
                    "Name" => metric.name = value.to_string(),
                    "Description" => metric.description = value.to_string(),
                    "Unit" => metric.unit = value.to_string(),
                    "DataType" => metric.kind = data_kind(value),
                    "IsMonotonic" => metric.monotonic = Some(value == "true"),
                    "AggregationTemporality" => metric.temporality = temporality(value),
                    _ => {}
                },
                Section::PointAttrs => {
                    if let Some(p) = got.metrics.last_mut() {
                        p.attrs.insert(key.to_string(), render_value(value));
                    }
                }
                Section::SpanAttrs => {
                    if let Some(s) = got.spans.last_mut() {
                        s.attrs.insert(key.to_string(), render_value(value));
                    }
                }
                Section::LogAttrs => {
                    if let Some(l) = got.logs.last_mut() {
                        l.attrs.insert(key.to_string(), render_value(value));
                    }
                }
                Section::Events => {
                    if key == "Name"
                        && let Some(s) = got.spans.last_mut()
                    {
                        s.events.push(value.to_string());
                    }
                }
                Section::Links => {
                    if let Some(link) = got.spans.last_mut().and_then(|s| s.links.last_mut()) {
                        match key {
                            "Trace ID" => link.0 = value.to_string(),
                            "ID" => link.1 = value.to_string(),
                            _ => {}
                        }
                    }
                }
                Section::None | Section::Skip => {}
            }
            continue;
        }
        // A log record's trace context, the name padded as a span's.
        if in_logs && line.starts_with("    ") {
            let (Some(rec), Some((key, value))) = (got.logs.last_mut(), line.split_once(':')) else { continue };
            let value = value.strip_prefix(' ').unwrap_or(value);
            match key.trim() {
                "Trace ID" => rec.trace_id = value.to_string(),
                "Span ID" => rec.span_id = value.to_string(),
                _ => {}
            }
            continue;
        }
        // `    Trace ID       : …`: a span's fields, the name padded to 15 characters.
        if in_spans && line.starts_with("    ") {
            let Some(span) = got.spans.last_mut() else { continue };
            let Some((key, value)) = line.split_once(':') else { continue };
            let value = value.strip_prefix(' ').unwrap_or(value);
            match key.trim() {
                "Trace ID" => span.trace_id = value.to_string(),
                "Parent ID" => span.parent_span_id = value.to_string(),
                "ID" => span.span_id = value.to_string(),
                "Name" => span.name = value.to_string(),
                "Kind" => span.kind = value.trim_start_matches("SPAN_KIND_").to_ascii_lowercase(),
                "Status code" => span.status_code = value.trim_start_matches("STATUS_CODE_").to_ascii_lowercase(),
                "Status message" => span.status_message = value.to_string(),
                _ => {}
            }
            continue;
        }

        let header = |prefix: &str| line.starts_with(prefix);
        if header("ResourceMetrics #") || header("ResourceSpans #") || header("ResourceLog") {
            in_spans = header("ResourceSpans #");
            in_logs = header("ResourceLog");
            resource.clear();
            (scope, scope_version) = (String::new(), String::new());
            section = Section::None;
        } else if header("Resource attributes:") {
            section = Section::ResourceAttrs;
        } else if header("InstrumentationScope attributes") {
            section = Section::Skip;
        } else if let Some(rest) = line.strip_prefix("InstrumentationScope ") {
            let (name, version) = rest.split_once(' ').unwrap_or((rest, ""));
            (scope, scope_version) = (name.to_string(), version.to_string());
        } else if header("ScopeMetrics #") || header("ScopeSpans #") || header("ScopeLogs #") {
            (scope, scope_version) = (String::new(), String::new());
            section = Section::None;
        } else if header("LogRecord #") {
            got.logs.push(LogRec { resource: resource.clone(), scope: scope.clone(), ..LogRec::default() });
            section = Section::None;
        } else if let Some(rec) = got.logs.last_mut().filter(|_| in_logs) {
            if let Some(v) = line.strip_prefix("Timestamp: ") {
                rec.time_ns = int(v);
            } else if let Some(v) = line.strip_prefix("ObservedTimestamp: ") {
                rec.observed_ns = int(v);
            } else if let Some(v) = line.strip_prefix("SeverityText: ") {
                rec.severity_text = v.to_string();
            } else if let Some(v) = line.strip_prefix("EventName: ") {
                rec.event_name = v.to_string();
            } else if let Some(v) = line.strip_prefix("Body: ") {
                rec.body = render_value(v);
            } else if header("Attributes:") {
                section = Section::LogAttrs;
            }
        } else if header("Metric #") {
            metric = MetricPoint::default();
            section = Section::Descriptor;
        } else if header("NumberDataPoints #")
            || header("HistogramDataPoints #")
            || header("ExponentialHistogramDataPoints #")
            || header("SummaryDataPoints #")
        {
            got.metrics.push(MetricPoint {
                resource: resource.clone(),
                scope: scope.clone(),
                scope_version: scope_version.clone(),
                ..metric.clone()
            });
            section = Section::None;
        } else if header("Data point attributes:") {
            section = Section::PointAttrs;
        } else if header("Exemplars:") {
            section = Section::Skip;
        } else if let Some(p) = got.metrics.last_mut().filter(|_| !in_spans && section != Section::Skip) {
            if let Some(v) = line.strip_prefix("StartTimestamp: ") {
                p.start_time_ns = int(v);
            } else if let Some(v) = line.strip_prefix("Timestamp: ") {
                p.time_ns = int(v);
            } else if let Some(v) = line.strip_prefix("Value: ") {
                p.value = num(v);
            } else if let Some(v) = line.strip_prefix("Count: ") {
                p.count = int(v);
            } else if let Some(v) = line.strip_prefix("Sum: ") {
                p.sum = num(v);
            } else if let Some(v) = line.strip_prefix("Min: ") {
                p.min = Some(num(v));
            } else if let Some(v) = line.strip_prefix("Max: ") {
                p.max = Some(num(v));
            } else if let Some(rest) = line.strip_prefix("ExplicitBounds #") {
                let (_, v) = rest.split_once(": ").unwrap_or_else(|| panic!("rotel dump line {}: {line}", n + 1));
                p.bounds.push(num(v));
            } else if let Some(rest) = line.strip_prefix("Buckets #") {
                let (_, v) = rest.split_once("Count: ").unwrap_or_else(|| panic!("rotel dump line {}: {line}", n + 1));
                p.bucket_counts.push(int(v));
            }
        } else if header("Span #") {
            got.spans.push(SpanRec {
                status_code: "unset".into(),
                resource: resource.clone(),
                scope: scope.clone(),
                scope_version: scope_version.clone(),
                ..SpanRec::default()
            });
            section = Section::None;
        } else if let Some(span) = got.spans.last_mut().filter(|_| in_spans) {
            if let Some(v) = line.strip_prefix("Start time: ") {
                span.start_ns = int(v);
            } else if let Some(v) = line.strip_prefix("End time: ") {
                span.end_ns = int(v);
            } else if header("Attributes:") {
                section = Section::SpanAttrs;
            } else if header("Events:") {
                section = Section::Events;
            } else if header("Links:") {
                section = Section::Links;
            } else if header("SpanLink #") {
                span.links.push((String::new(), String::new()));
            }
        }
    }
    got
}

fn data_kind(printed: &str) -> String {
    match printed {
        "Sum" => "sum",
        "Gauge" => "gauge",
        "Histogram" => "histogram",
        "ExponentialHistogram" => "exponential_histogram",
        "Summary" => "summary",
        other => return other.to_ascii_lowercase(),
    }
    .to_string()
}

fn temporality(printed: &str) -> String {
    match printed {
        "AGGREGATION_TEMPORALITY_CUMULATIVE" => "Cumulative",
        "AGGREGATION_TEMPORALITY_DELTA" => "Delta",
        "AGGREGATION_TEMPORALITY_UNSPECIFIED" => "Unspecified",
        other => other,
    }
    .to_string()
}

/// Renders one printed attribute value (`Str(x)`, `Slice(Int(1), Int(2))`, …) as text; see
/// the module documentation. Anything unrecognised is returned as printed.
pub fn render_value(printed: &str) -> String {
    match parse_value(printed, 0) {
        Some((text, "")) => text,
        _ => printed.to_string(),
    }
}

const TAGS: [&str; 8] = ["Str(", "Int(", "Bool(", "Double(", "Slice(", "Map(", "Bytes(", "Empty"];

/// Reads one value from the front of `s`, inside `depth` open `Slice(`/`Map(`, and returns
/// its rendering and the rest. At the top level a string runs to the last `)`. Inside a
/// container it ends at the first `)` after which the text can only be the dump's own: a
/// next item (`, <tag>` or `, key:<tag>`), or closing parentheses that close containers (at most `depth`),
/// then a next item or, once all are closed, the end.
fn parse_value(s: &str, depth: usize) -> Option<(String, &str)> {
    if let Some(rest) = s.strip_prefix("Empty") {
        return Some((String::new(), rest));
    }
    if let Some(body) = s.strip_prefix("Str(") {
        let is_value = |t: &str| TAGS.iter().any(|tag| t.starts_with(tag));
        // `, Str(…` in a slice, `, key:Str(…` in a map
        let next_item = |t: &str| {
            t.strip_prefix(", ").is_some_and(|t| is_value(t) || t.split_once(':').is_some_and(|(_, v)| is_value(v)))
        };
        let end = if depth == 0 {
            // no `)`: the first line of a string with line breaks
            body.rfind(')').unwrap_or(body.len())
        } else {
            body.match_indices(')').map(|(i, _)| i).find(|&i| {
                let after = &body[i + 1..];
                let rest = after.trim_start_matches(')');
                let closed = after.len() - rest.len();
                (closed < depth && next_item(rest)) || (closed == depth && rest.is_empty())
            })?
        };
        return Some((body[..end].to_string(), body.get(end + 1..).unwrap_or("")));
    }
    for tag in ["Int(", "Bool(", "Double("] {
        if let Some(body) = s.strip_prefix(tag) {
            let end = body.find(')')?;
            return Some((body[..end].to_string(), &body[end + 1..]));
        }
    }
    if let Some(body) = s.strip_prefix("Bytes(") {
        let end = body.find("])").map(|i| i + 1).or_else(|| body.find(')'))?;
        return Some((body[..end].to_string(), &body[end + 1..]));
    }
    let (open, close, body, is_map) = if let Some(body) = s.strip_prefix("Slice(") {
        ("[", "]", body, false)
    } else if let Some(body) = s.strip_prefix("Map(") {
        ("{", "}", body, true)
    } else {
        return None;
    };
    let mut items = Vec::new();
    let mut rest = body;
    loop {
        if let Some(after) = rest.strip_prefix(')') {
            return Some((format!("{open}{}{close}", items.join(",")), after));
        }
        let (key, value_text) = if is_map {
            let (k, v) = rest.split_once(':')?;
            (Some(k), v)
        } else {
            (None, rest)
        };
        let (item, after) = parse_value(value_text, depth + 1)?;
        items.push(match key {
            Some(k) => format!("{k}:{item}"),
            None => item,
        });
        rest = after.strip_prefix(", ").unwrap_or(after);
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, Sum, metric::Data, number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
    use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The single point or span matching, with a readable failure.
    fn only<'a, T: std::fmt::Debug>(what: &str, mut found: impl Iterator<Item = &'a T>) -> &'a T {
        let first = found.next().unwrap_or_else(|| panic!("no {what}"));
        assert!(found.next().is_none(), "more than one {what}");
        first
    }

    // ---- (a) the parser, on a real dump (no rotel needed) ----

    /// `tests/fixtures/otlp/rotel-dump-sample.txt`: what `rotel-dump-sample.py` sent with the
    /// Python SDK, metrics and traces over gRPC then over HTTP/protobuf, as rotel printed it.
    #[test]
    fn parses_the_sample_dump_exactly() {
        let path = support::fixtures_dir().join("otlp").join("rotel-dump-sample.txt");
        let raw = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        assert!(raw.contains('\u{1b}'), "the sample keeps rotel's ANSI colours, to test their removal");
        let got = parse_dump(&raw);
        assert_eq!(got.metrics.len(), 12, "{}", got.summary());
        assert_eq!(got.spans.len(), 6, "{}", got.summary());

        for (proto, counter_temporality, t) in [
            ("grpc", "Cumulative", [1795472873065920837, 1795472873066568403, 1795472873066958505]),
            ("http", "Delta", [1795472873100709615, 1795472873101181548, 1795472873101504860]),
        ] {
            let service = format!("rotel-sample-{proto}");
            let ours: Vec<&MetricPoint> =
                got.metrics.iter().filter(|p| p.resource.get("service.name") == Some(&service)).collect();
            assert_eq!(ours.len(), 6, "{proto}: {}", got.summary());
            for p in &ours {
                assert_eq!((p.scope.as_str(), p.scope_version.as_str()), ("sample-meter", "1.2.3"));
                assert_eq!(p.resource.get("host.name").map(String::as_str), Some("sample-host"));
                assert_eq!(p.resource.get("sample.int").map(String::as_str), Some("7"), "an Int resource attribute");
                assert_eq!(p.resource.get("sample.list").map(String::as_str), Some("[a,b]"), "a string array");
                assert_eq!(p.time_ns, t[2], "{proto} {}: one collection time for all", p.name);
            }
            let pick = |name: &str, attrs: &[(&str, &str)]| {
                let want = map(attrs);
                only(
                    &format!("{proto} {name} {attrs:?}"),
                    ours.iter().copied().filter(|p| p.name == name && p.attrs == want),
                )
            };

            let a = pick("sample.requests", &[("route", "/a"), ("code", "200")]);
            assert_eq!(
                (a.kind.as_str(), a.unit.as_str(), a.description.as_str()),
                ("sum", "{request}", "requests served")
            );
            assert_eq!((a.temporality.as_str(), a.monotonic), (counter_temporality, Some(true)));
            assert_eq!((a.value, a.start_time_ns), (7.0, t[0]));
            // The exemplar's FilteredAttributes (`user`) stay out of the point's attributes.
            let b = pick("sample.requests", &[("route", "/b"), ("code", "500")]);
            assert_eq!((b.value, b.start_time_ns), (3.0, t[1]));

            let kitchen = pick("sample.temperature", &[("room", "kitchen")]);
            assert_eq!((kitchen.kind.as_str(), kitchen.unit.as_str()), ("gauge", "Cel"));
            assert_eq!((kitchen.temporality.as_str(), kitchen.monotonic), ("", None));
            assert_eq!((kitchen.value, kitchen.start_time_ns), (21.5, 0));
            assert_eq!(pick("sample.temperature", &[]).value, 20.0, "a point without attributes; 20.0 prints as 20");

            let queue = pick("sample.queue", &[("ok", "true")]);
            assert_eq!(
                (queue.kind.as_str(), queue.temporality.as_str(), queue.monotonic),
                ("sum", "Cumulative", Some(false))
            );
            assert_eq!((queue.unit.as_str(), queue.value), ("1", 3.0));

            let h = pick("sample.latency", &[("op", "read"), ("ratio", "0.25")]);
            assert_eq!(
                (h.kind.as_str(), h.unit.as_str(), h.temporality.as_str()),
                ("histogram", "s", counter_temporality)
            );
            assert_eq!((h.count, h.sum, h.min, h.max), (5, 16.8, Some(0.2), Some(12.0)));
            assert_eq!(h.bounds, [0.5, 1.0, 2.5, 10.0]);
            assert_eq!(h.bucket_counts, [1, 2, 0, 1, 1]);
            assert!(h.start_time_ns > 0 && h.start_time_ns < h.time_ns);
        }

        for (proto, trace, parent_id, child_id, bare_id) in [
            ("grpc", "0102030405060708090a0b0c0d0e0f10", "1111111111111111", "2222222222222222", "2222222222222223"),
            ("http", "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", "3333333333333333", "4444444444444444", "4444444444444445"),
        ] {
            let in_trace = |name: &'static str| got.spans.iter().filter(move |s| s.trace_id == trace && s.name == name);
            let t0 = 1_700_000_000_000_000_000u64;
            let parent = only("parent op", in_trace("parent op"));
            assert_eq!((parent.span_id.as_str(), parent.parent_span_id.as_str()), (parent_id, ""));
            assert_eq!((parent.kind.as_str(), parent.status_code.as_str()), ("server", "ok"));
            assert_eq!((parent.start_ns, parent.end_ns), (t0, t0 + 9_000_000));
            assert_eq!(
                parent.attrs,
                map(&[
                    ("s", "text value"),
                    ("i", "42"),
                    ("b", "true"),
                    ("d", "1.5"),
                    ("arr", "[x,y z]"),
                    ("iarr", "[1,2]"),
                    ("paren", "f(x), g"),
                ])
            );
            assert!(parent.events.is_empty() && parent.links.is_empty());
            assert_eq!(parent.resource.get("service.name"), Some(&format!("rotel-sample-{proto}")));
            assert_eq!((parent.scope.as_str(), parent.scope_version.as_str()), ("sample-tracer", "0.1"));

            let child = only("child op", in_trace("child op"));
            assert_eq!((child.span_id.as_str(), child.parent_span_id.as_str()), (child_id, parent_id));
            assert_eq!(
                (child.kind.as_str(), child.status_code.as_str(), child.status_message.as_str()),
                ("client", "error", "boom")
            );
            assert_eq!((child.start_ns, child.end_ns), (t0 + 1_000_000, t0 + 5_000_000));
            assert_eq!(child.attrs, map(&[("gen_ai.request.model", "claude-x"), ("n", "-3")]));
            assert_eq!(child.events, ["retry"], "event attributes stay out of the span's");

            let bare = only("bare op", in_trace("bare op"));
            assert_eq!((bare.span_id.as_str(), bare.parent_span_id.as_str()), (bare_id, parent_id));
            assert_eq!((bare.kind.as_str(), bare.status_code.as_str()), ("internal", "unset"));
            assert!(bare.attrs.is_empty() && bare.events.is_empty(), "{bare:?}");
            assert_eq!(bare.links, [(trace.to_string(), parent_id.to_string())]);
        }
    }

    #[test]
    fn attribute_values_render_as_documented() {
        for (printed, text) in [
            ("Str(plain)", "plain"),
            ("Str()", ""),
            ("Str(f(x), g)", "f(x), g"),
            ("Str(first line", "first line"),
            ("Int(-3)", "-3"),
            ("Bool(false)", "false"),
            ("Double(0.1)", "0.1"),
            ("Slice(Str(x), Str(y z))", "[x,y z]"),
            ("Slice(Str(a(1)), Str(b), Int(2))", "[a(1),b,2]"),
            ("Slice()", "[]"),
            ("Slice(Slice(Int(1), Int(2)), Str(c))", "[[1,2],c]"),
            ("Map(k:Str(v), n:Int(1))", "{k:v,n:1}"),
            ("Bytes([1, 2])", "[1, 2]"),
            ("Empty", ""),
            ("Something(new)", "Something(new)"),
        ] {
            assert_eq!(render_value(printed), text, "{printed}");
        }
        assert_eq!(strip_ansi("\u{1b}[2mtime\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"), "time  INFO x");
    }

    /// As rotel printed an OTLP/HTTP request holding a map, bytes, a two-line string and an
    /// empty value, in a span without resource, scope or status.
    #[test]
    fn parses_rarer_values_and_a_bare_span() {
        let lines = [
            "ResourceSpans #0",
            "Resource SchemaURL: ",
            "ScopeSpans #0",
            "ScopeSpans SchemaURL: ",
            "Span #0",
            "    Trace ID       : 000102030405060708090a0b0c0d0e0f",
            "    Parent ID      : ",
            "    ID             : 0001020304050607",
            "    Name           : odd",
            "    Kind           : SPAN_KIND_UNSPECIFIED",
            "Start time: 1",
            "End time: 2",
            "Attributes:",
            "     -> map: Map(k:Str(v), n:Int(1))",
            "     -> bytes: Bytes([1, 2])",
            "     -> multi: Str(line one",
            "line two))",
            "     -> empty: Empty",
            "     -> after: Str(x)",
        ];
        let text = lines.join("\n") + "\n";
        let got = parse_dump(&text);
        assert_eq!(got.spans.len(), 1, "{}", got.summary());
        let span = &got.spans[0];
        assert_eq!(
            (span.name.as_str(), span.kind.as_str(), span.status_code.as_str()),
            ("odd", "unspecified", "unset")
        );
        assert_eq!((span.start_ns, span.end_ns, span.parent_span_id.as_str()), (1, 2, ""));
        assert!(span.resource.is_empty() && span.scope.is_empty());
        assert_eq!(
            span.attrs,
            map(&[("map", "{k:v,n:1}"), ("bytes", "[1, 2]"), ("multi", "line one"), ("empty", ""), ("after", "x")])
        );
    }

    #[test]
    fn an_unfinished_dump_parses_what_is_there() {
        // cut off in the middle of a span (the caller also drops an unfinished last line)
        let text = [
            "ResourceSpans #0",
            "Resource attributes:",
            "     -> service.name: Str(s)",
            "ScopeSpans #0",
            "Span #0",
            "    Trace ID       : 01",
            "    Parent ID      : ",
            "    ID             : 02",
        ]
        .join("\n");
        let got = parse_dump(&text);
        assert_eq!(got.spans.len(), 1);
        assert_eq!((got.spans[0].trace_id.as_str(), got.spans[0].span_id.as_str()), ("01", "02"));
        assert_eq!(got.spans[0].resource, map(&[("service.name", "s")]));
        assert_eq!(parse_dump(""), Received::default());
    }

    // ---- OTLP built in Rust ----

    const T0: u64 = 1_800_000_000_000_000_000;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    fn resource() -> Option<Resource> {
        let list = ArrayValue { values: ["p", "q"].map(|v| AnyValue { value: Some(s(v)) }).to_vec() };
        Some(Resource {
            attributes: vec![
                kv("service.name", s("collector-test")),
                kv("test.list", any_value::Value::ArrayValue(list)),
            ],
            ..Default::default()
        })
    }

    fn scope() -> Option<InstrumentationScope> {
        Some(InstrumentationScope { name: "collector-test".into(), version: "0.1".into(), ..Default::default() })
    }

    /// A cumulative monotonic int sum named `name` (typed attributes), a double gauge and
    /// an explicit-bucket histogram.
    fn metrics_request(name: &str, value: i64) -> ExportMetricsServiceRequest {
        let cumulative = AggregationTemporality::Cumulative as i32;
        let sum = Metric {
            name: name.into(),
            unit: "{token}".into(),
            description: "tokens".into(),
            data: Some(Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    attributes: vec![
                        kv("type", s("input")),
                        kv("n", any_value::Value::IntValue(3)),
                        kv("ok", any_value::Value::BoolValue(true)),
                        kv("ratio", any_value::Value::DoubleValue(0.5)),
                    ],
                    start_time_unix_nano: T0,
                    time_unix_nano: T0 + 1_000,
                    value: Some(number_data_point::Value::AsInt(value)),
                    ..Default::default()
                }],
                aggregation_temporality: cumulative,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let gauge = Metric {
            name: "ct.gauge".into(),
            unit: "1".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: T0 + 1_000,
                    value: Some(number_data_point::Value::AsDouble(2.5)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        };
        let histogram = Metric {
            name: "ct.latency".into(),
            unit: "s".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: vec![kv("op", s("turn"))],
                    start_time_unix_nano: T0,
                    time_unix_nano: T0 + 1_000,
                    count: 3,
                    sum: Some(13.5),
                    bucket_counts: vec![1, 0, 2],
                    explicit_bounds: vec![1.0, 5.0],
                    ..Default::default()
                }],
                aggregation_temporality: cumulative,
            })),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(),
                scope_metrics: vec![ScopeMetrics {
                    scope: scope(),
                    metrics: vec![sum, gauge, histogram],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// A root span `name` (server) and its child (client, error status, one event), trace
    /// id `trace_byte` repeated.
    fn trace_request(name: &str, trace_byte: u8) -> ExportTraceServiceRequest {
        let trace_id = vec![trace_byte; 16];
        let root = Span {
            trace_id: trace_id.clone(),
            span_id: vec![0xa1; 8],
            name: name.into(),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: T0,
            end_time_unix_nano: T0 + 5_000_000,
            attributes: vec![kv("gen_ai.operation.name", s("chat")), kv("turns", any_value::Value::IntValue(2))],
            status: Some(Status { code: StatusCode::Ok as i32, ..Default::default() }),
            ..Default::default()
        };
        let child = Span {
            trace_id,
            span_id: vec![0xb2; 8],
            parent_span_id: vec![0xa1; 8],
            name: format!("{name} child"),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: T0 + 1_000_000,
            end_time_unix_nano: T0 + 2_000_000,
            events: vec![Event { name: "tool_use".into(), time_unix_nano: T0 + 1_500_000, ..Default::default() }],
            status: Some(Status { code: StatusCode::Error as i32, message: "api error".into() }),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource(),
                scope_spans: vec![ScopeSpans { scope: scope(), spans: vec![root, child], ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    /// POSTs a protobuf body to `endpoint` + `path` (HTTP/1.1, no client library) and
    /// returns the response's status code.
    fn post_protobuf(endpoint: &str, path: &str, body: &[u8]) -> std::io::Result<u16> {
        let authority = endpoint.strip_prefix("http://").expect("an http:// endpoint");
        let mut stream = TcpStream::connect(authority)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-protobuf\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response);
        let status = text.split_whitespace().nth(1).and_then(|code| code.parse().ok());
        Ok(status.unwrap_or_else(|| panic!("not an HTTP response: {text:?}")))
    }

    fn post_ok(rotel: &Rotel, path: &str, body: &[u8]) {
        let status = post_protobuf(&rotel.http_endpoint(), path, body)
            .unwrap_or_else(|e| panic!("POST {path} to {}: {e}", rotel.http_endpoint()));
        assert_eq!(status, 200, "POST {path}");
    }

    /// Exports over OTLP/gRPC with the generated tonic clients.
    fn export_grpc(
        rotel: &Rotel,
        metrics: Option<ExportMetricsServiceRequest>,
        traces: Option<ExportTraceServiceRequest>,
    ) {
        let endpoint = rotel.grpc_endpoint();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        runtime.block_on(async {
            if let Some(request) = metrics {
                let mut client = MetricsServiceClient::connect(endpoint.clone())
                    .await
                    .unwrap_or_else(|e| panic!("gRPC connect {endpoint}: {e}"));
                client.export(request).await.unwrap_or_else(|e| panic!("gRPC metrics export: {e}"));
            }
            if let Some(request) = traces {
                let mut client = TraceServiceClient::connect(endpoint.clone())
                    .await
                    .unwrap_or_else(|e| panic!("gRPC connect {endpoint}: {e}"));
                client.export(request).await.unwrap_or_else(|e| panic!("gRPC trace export: {e}"));
            }
        });
    }

    /// What `metrics_request(name, value)` and `trace_request(root, byte)` must parse to.
    fn check_received(got: &Received, name: &str, value: i64, root: &str, trace_byte: u8) {
        let resource = map(&[("service.name", "collector-test"), ("test.list", "[p,q]")]);
        let sum = only(name, got.points(name));
        assert_eq!((sum.kind.as_str(), sum.unit.as_str(), sum.description.as_str()), ("sum", "{token}", "tokens"));
        assert_eq!((sum.temporality.as_str(), sum.monotonic), ("Cumulative", Some(true)));
        assert_eq!(sum.attrs, map(&[("type", "input"), ("n", "3"), ("ok", "true"), ("ratio", "0.5")]));
        assert_eq!((sum.value, sum.start_time_ns, sum.time_ns), (value as f64, T0, T0 + 1_000));
        assert_eq!(sum.resource, resource);
        assert_eq!((sum.scope.as_str(), sum.scope_version.as_str()), ("collector-test", "0.1"));
        let gauge = got.points("ct.gauge").last().expect("ct.gauge");
        assert_eq!((gauge.kind.as_str(), gauge.value, gauge.start_time_ns), ("gauge", 2.5, 0));
        let h = got.points("ct.latency").last().expect("ct.latency");
        assert_eq!((h.count, h.sum, h.min, h.max), (3, 13.5, None, None));
        assert_eq!((h.bounds.as_slice(), h.bucket_counts.as_slice()), (&[1.0, 5.0][..], &[1, 0, 2][..]));

        let trace_id = format!("{trace_byte:02x}").repeat(16);
        let parent = only(root, got.spans_named(root));
        assert_eq!(
            (parent.trace_id.as_str(), parent.span_id.as_str(), parent.parent_span_id.as_str()),
            (trace_id.as_str(), "a1a1a1a1a1a1a1a1", "")
        );
        assert_eq!((parent.kind.as_str(), parent.status_code.as_str()), ("server", "ok"));
        assert_eq!((parent.start_ns, parent.end_ns), (T0, T0 + 5_000_000));
        assert_eq!(parent.attrs, map(&[("gen_ai.operation.name", "chat"), ("turns", "2")]));
        assert_eq!(parent.resource, resource);
        let child_name = format!("{root} child");
        let child = only(&child_name, got.spans_named(&child_name));
        assert_eq!(
            (child.trace_id.as_str(), child.span_id.as_str(), child.parent_span_id.as_str()),
            (trace_id.as_str(), "b2b2b2b2b2b2b2b2", "a1a1a1a1a1a1a1a1")
        );
        assert_eq!(
            (child.kind.as_str(), child.status_code.as_str(), child.status_message.as_str()),
            ("client", "error", "api error")
        );
        assert_eq!(
            (child.start_ns, child.end_ns, child.events.as_slice()),
            (T0 + 1_000_000, T0 + 2_000_000, &["tool_use".to_string()][..])
        );
    }

    // ---- (b) a real rotel ----

    #[test]
    fn real_rotel_receives_otlp_http_protobuf_built_in_rust() {
        let Some(rotel) = Rotel::start_or_skip() else { return };
        post_ok(&rotel, "/v1/metrics", &metrics_request("ct.tokens", 1234).encode_to_vec());
        post_ok(&rotel, "/v1/traces", &trace_request("turn", 0x5a).encode_to_vec());
        let got = wait_for(&rotel, Duration::from_secs(10), |g| {
            g.points("ct.latency").next().is_some() && g.spans_named("turn child").next().is_some()
        });
        check_received(&got, "ct.tokens", 1234, "turn", 0x5a);
        assert_eq!(got.metrics.len(), 3, "{}", got.summary());
        assert_eq!(got.spans.len(), 2, "{}", got.summary());
    }

    #[test]
    fn real_rotel_receives_otlp_grpc_built_in_rust() {
        let Some(rotel) = Rotel::start_or_skip() else { return };
        export_grpc(&rotel, Some(metrics_request("ct.grpc", 7)), Some(trace_request("grpc turn", 0x6b)));
        let got = wait_for(&rotel, Duration::from_secs(10), |g| {
            g.points("ct.latency").next().is_some() && g.spans_named("grpc turn child").next().is_some()
        });
        check_received(&got, "ct.grpc", 7, "grpc turn", 0x6b);
    }

    // ---- (c) restart on the same ports ----

    #[test]
    fn real_rotel_restarts_on_the_same_ports_and_receives_again() {
        let Some(mut rotel) = Rotel::start_or_skip() else { return };
        let (grpc, http) = (rotel.grpc_endpoint(), rotel.http_endpoint());
        post_ok(&rotel, "/v1/metrics", &metrics_request("ct.before", 1).encode_to_vec());
        wait_for(&rotel, Duration::from_secs(10), |g| g.points("ct.before").next().is_some());

        let status = rotel.stop().expect("rotel was running");
        assert!(status.success(), "SIGTERM: rotel exits 0, got {status}");
        assert!(!rotel.is_running());
        let down = post_protobuf(&http, "/v1/metrics", &metrics_request("ct.lost", 1).encode_to_vec());
        assert!(down.is_err(), "nothing listens while rotel is stopped: {down:?}");

        rotel.restart();
        assert!(rotel.is_running());
        assert_eq!(
            (rotel.grpc_endpoint(), rotel.http_endpoint()),
            (grpc.clone(), http.clone()),
            "same ports after restart"
        );
        post_ok(&rotel, "/v1/metrics", &metrics_request("ct.after", 2).encode_to_vec());
        export_grpc(&rotel, None, Some(trace_request("after restart", 0x7c)));
        let got = wait_for(&rotel, Duration::from_secs(10), |g| {
            g.points("ct.after").next().is_some() && g.spans_named("after restart child").next().is_some()
        });
        assert_eq!(only("ct.after", got.points("ct.after")).value, 2.0);
        assert_eq!(only("ct.before", got.points("ct.before")).value, 1.0, "the log is kept across restarts");
        assert!(got.points("ct.lost").next().is_none());
        assert_eq!(got.spans_named("after restart").count(), 1);

        // A second restart straight away, without an explicit stop.
        rotel.restart();
        post_ok(&rotel, "/v1/traces", &trace_request("third start", 0x8d).encode_to_vec());
        wait_for(&rotel, Duration::from_secs(10), |g| g.spans_named("third start child").next().is_some());

        // A port still taken when restarting: rotel exits at once ("Address already in
        // use") and restart() tries again until the port is free.
        rotel.stop();
        let port: u16 = http.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port of the HTTP endpoint");
        let squatter = TcpListener::bind(("127.0.0.1", port)).expect("take rotel's HTTP port while it is down");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(800));
            drop(squatter);
        });
        rotel.restart();
        release.join().expect("port holder thread");
        assert!(rotel.log().contains("Address already in use"), "the first attempts must have failed");
        assert_eq!(rotel.http_endpoint(), http);
        post_ok(&rotel, "/v1/metrics", &metrics_request("ct.fourth", 4).encode_to_vec());
        let got = wait_for(&rotel, Duration::from_secs(10), |g| g.points("ct.fourth").next().is_some());
        assert_eq!(got.spans_named("third start").count(), 1, "each start's data is there once");
    }
}
