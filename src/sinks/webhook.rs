//! Webhooks: realtime events POSTed to HTTP endpoints, as JSON or as Slack messages.
//!
//! In: events from the [`Bus`] (each hook subscribes on its own) and the hooks'
//! settings (`--webhook URL,key=value…` flags, `[[webhook]]` tables of a TOML
//! file). Out: `POST`s of batches, `{"batch_id": …, "events": [...]}` or
//! Slack's `{"text": …}`, with an `Idempotency-Key` header that is the batch id,
//! the same on every retry of the batch.
//!
//! Each hook keeps its own bounded queue of the events its filter accepts and
//! sends them in order, one batch at a time, up to `max_batch` events or after
//! `flush_interval`. Retryable failures (connection errors, timeouts, 408, 429,
//! 5xx) are retried with exponential backoff and jitter, `max_attempts` times
//! in all; then the batch is dropped and counted. Delivery is at least once: a
//! batch whose response was lost is sent again under the same key.
//!
//! Nothing here blocks the bus or the engine: the bus never waits for a
//! subscriber (one that falls behind loses events, counted as `lagged`), and a
//! full queue refuses new events (counted as `queue_full`). Memory is bounded
//! by `max_queue` events per hook, the batch in flight included.
//!
//! URLs (Slack's carry a token in their path) and headers are secrets: logs and
//! errors show only the scheme and host.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Bytes;
use serde::Deserialize;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;

use tracing::Instrument;

use super::http::{self, Client, Retry, Shutdown, Statuses, Stopper, TlsOptions};
use crate::events::{Bus, Event, Filter, Kind};
use crate::state::live::Aggregator;
use crate::state::metrics::{Counter, Gauge};

/// Events per POST, by default.
pub const DEFAULT_MAX_BATCH: usize = 100;
/// Events a hook holds while its endpoint is slow or down, by default.
pub const DEFAULT_MAX_QUEUE: usize = 10_000;
/// How long the first event of a batch waits for more, by default.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Attempts per batch (1 = no retry), by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// First retry delay, doubling each time, by default.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);
/// Time allowed for one request (connect to response headers), by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a shutdown waits for queued events to be sent (one attempt per batch).
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
/// How often the counters and the queue gauge are brought up to date in the store.
const STATS_EVERY: Duration = Duration::from_millis(500);
/// A tool summary or description is cut to this many bytes in Slack lines.
const SLACK_SUMMARY_BYTES: usize = 300;

/// Reasons an event is dropped (`claude_sessions_exporter_webhook_dropped_total{reason}`).
const DROP_REASONS: [&str; 4] = ["queue_full", "lagged", "failed", "shutdown"];

/// The body of a POST.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// `{"batch_id": "…", "events": [<event>, …]}`, events as on `/api/events`.
    #[default]
    Json,
    /// `{"text": "…"}`, one readable line per event (Slack incoming webhooks,
    /// Mattermost, Rocket.Chat, Discord's `/slack` endpoints).
    Slack,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
        }
    }

    fn parse(s: &str) -> Result<Format, String> {
        match s.trim() {
            "json" => Ok(Format::Json),
            "slack" => Ok(Format::Slack),
            other => Err(format!("webhook format {other:?}: use json or slack")),
        }
    }
}

/// One webhook: where, what, and how hard to try.
#[derive(Clone, PartialEq)]
pub struct WebhookConfig {
    /// `http://` or `https://`. Secret (Slack's carries a token): logs show scheme and host only.
    pub url: String,
    pub format: Format,
    /// Which events go to this hook.
    pub filter: Filter,
    /// Extra request headers (`Authorization`…). Secret: never logged, never in errors.
    pub headers: Vec<(String, String)>,
    /// Events per POST (at most).
    pub max_batch: usize,
    /// Events held while the endpoint is slow or down, the batch in flight included;
    /// more are dropped and counted.
    pub max_queue: usize,
    /// How long the first event of a batch waits for more before the batch is sent.
    pub flush_interval: Duration,
    /// Attempts per batch, the first included (1 = no retry).
    pub max_attempts: u32,
    /// First retry delay; doubles each time (at most 30 s), plus up to half of it as jitter.
    pub backoff: Duration,
    /// Time allowed for one request, connect to response headers.
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redact_url(&self.url))
            .field("format", &self.format)
            .field("filter", &self.filter)
            .field("headers", &format_args!("[{} hidden]", self.headers.len()))
            .field("max_batch", &self.max_batch)
            .field("max_queue", &self.max_queue)
            .field("flush_interval", &self.flush_interval)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl WebhookConfig {
    /// A JSON hook for every event, with the default limits. Not validated (see [`WebhookConfig::validate`]).
    pub fn new(url: impl Into<String>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            format: Format::Json,
            filter: Filter::default(),
            headers: Vec::new(),
            max_batch: DEFAULT_MAX_BATCH,
            max_queue: DEFAULT_MAX_QUEUE,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Parse a `--webhook` value: `URL` or `URL,key=value,…`.
    ///
    /// The URL ends at the first comma (write a comma inside it as `%2C`). Keys:
    /// `format` (`json`, `slack`); the filters `type` (or `kind`), `project`,
    /// `session`, `tool` (names or categories), whose alternatives are separated
    /// by `|`, and `agent` (`main`, `subagent`, `any`); the limits `max_batch`,
    /// `max_queue`, `flush_interval`, `max_attempts`, `backoff`, `timeout`
    /// (durations as `250ms`, `2s`, `1m`). Headers are not accepted here (a
    /// command line is visible to other users): put them in the config file.
    /// Errors never repeat the URL's path or query.
    ///
    /// Call it on the flag's strings rather than as a clap `value_parser`: clap repeats
    /// the whole value in its errors, and a Slack webhook URL is a secret.
    pub fn parse_flag(value: &str) -> Result<WebhookConfig, String> {
        let mut parts = value.split(',');
        let url = parts.next().unwrap_or_default().trim();
        let mut cfg = WebhookConfig::new(url);
        let mut filter = Vec::new();
        for part in parts.map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, v)) = part.split_once('=') else {
                // Not echoed: it may be the rest of a URL that held a comma.
                return Err("--webhook: after the URL's first comma, the value must be key=value pairs (write a \
                            comma inside the URL as %2C)"
                    .into());
            };
            let (key, v) = (key.trim(), v.trim());
            match key {
                "format" => cfg.format = Format::parse(v)?,
                "type" | "kind" | "project" | "session" | "tool" | "agent" => filter.push((key, v.replace('|', ","))),
                "max_batch" | "batch" => cfg.max_batch = number(key, v)?,
                "max_queue" | "queue" => cfg.max_queue = number(key, v)?,
                "max_attempts" | "attempts" => cfg.max_attempts = number(key, v)?,
                "flush_interval" | "flush" => cfg.flush_interval = duration(key, v)?,
                "backoff" => cfg.backoff = duration(key, v)?,
                "timeout" => cfg.timeout = duration(key, v)?,
                "header" | "headers" => {
                    return Err("--webhook: headers go in the webhook config file (command lines are visible to \
                                other users)"
                        .into());
                }
                other => {
                    let shown = if other.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                        format!(" {other:?}")
                    } else {
                        String::new()
                    };
                    return Err(format!(
                        "--webhook: unknown key{shown}; use format, type, project, session, tool, agent, \
                         max_batch, max_queue, flush_interval, max_attempts, backoff or timeout"
                    ));
                }
            }
        }
        cfg.filter =
            Filter::from_pairs(filter.iter().map(|(k, v)| (*k, v.as_str()))).map_err(|e| format!("--webhook: {e}"))?;
        cfg.validate().map_err(|e| format!("--webhook: {e}"))?;
        Ok(cfg)
    }

    /// Check the URL, the limits and the headers. Errors show no secret.
    pub fn validate(&self) -> Result<(), String> {
        let shown = redact_url(&self.url);
        let uri: hyper::Uri = self.url.parse().map_err(|_| format!("webhook URL {shown} is not a valid URL"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none_or(str::is_empty) {
            return Err(format!("webhook URL {shown} must be an http:// or https:// URL with a host"));
        }
        if self.max_batch == 0 || self.max_queue == 0 || self.max_attempts == 0 {
            return Err(format!("webhook {shown}: max_batch, max_queue and max_attempts must be at least 1"));
        }
        if self.timeout.is_zero() {
            return Err(format!("webhook {shown}: timeout must be more than 0"));
        }
        for (k, v) in &self.headers {
            if hyper::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                return Err(format!("webhook {shown}: {k:?} is not a valid header name"));
            }
            if hyper::header::HeaderValue::from_str(v).is_err() {
                // Not the value: it may hold a token.
                return Err(format!("webhook {shown}: the value of header {k:?} is not a valid header value"));
            }
        }
        Ok(())
    }

    /// The URL as logs may show it: scheme and host (and port), the path hidden.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }
}

fn number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("--webhook: {key}={v:?} is not a whole number"))
}

fn duration(key: &str, v: &str) -> Result<Duration, String> {
    crate::state::duration::parse(v).map_err(|e| format!("--webhook: {key}: {e}"))
}

/// `https://hooks.slack.com/services/T/B/x?y` → `https://hooks.slack.com/…`.
fn redact_url(url: &str) -> String {
    match url.parse::<hyper::Uri>() {
        Ok(uri) if uri.scheme_str().is_some() && uri.host().is_some() => {
            let mut s = format!("{}://{}", uri.scheme_str().unwrap_or_default(), uri.host().unwrap_or_default());
            if let Some(port) = uri.port_u16() {
                s.push_str(&format!(":{port}"));
            }
            if uri.path_and_query().is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty()) {
                s.push_str("/…");
            }
            s
        }
        _ => "<invalid URL>".into(),
    }
}

/// `[[webhook]]` tables; other top-level keys are left to whoever shares the file.
#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default, alias = "webhooks")]
    webhook: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    url: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    filter: FilterEntry,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    max_batch: Option<usize>,
    max_queue: Option<usize>,
    flush_interval: Option<DurationValue>,
    max_attempts: Option<u32>,
    backoff: Option<DurationValue>,
    timeout: Option<DurationValue>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FilterEntry {
    #[serde(default, rename = "type", alias = "kind")]
    kind: OneOrMany,
    #[serde(default)]
    project: OneOrMany,
    #[serde(default)]
    session: OneOrMany,
    #[serde(default)]
    tool: OneOrMany,
    #[serde(default)]
    agent: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn values(&self) -> &[String] {
        match self {
            OneOrMany::None => &[],
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// `"2s"` / `"250ms"`, or a number of seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Text(String),
    Seconds(f64),
}

impl DurationValue {
    fn get(&self, key: &str) -> Result<Duration, String> {
        match self {
            DurationValue::Text(s) => crate::state::duration::parse(s).map_err(|e| format!("{key}: {e}")),
            DurationValue::Seconds(n) if n.is_finite() && *n >= 0.0 => Ok(Duration::from_secs_f64(*n)),
            DurationValue::Seconds(_) => Err(format!("{key}: not a valid duration")),
        }
    }
}

impl Entry {
    fn into_config(self) -> Result<WebhookConfig, String> {
        let mut cfg = WebhookConfig::new(self.url);
        if let Some(f) = &self.format {
            cfg.format = Format::parse(f)?;
        }
        let f = &self.filter;
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (key, list) in [("type", &f.kind), ("project", &f.project), ("session", &f.session), ("tool", &f.tool)] {
            pairs.extend(list.values().iter().map(|v| (key, v.as_str())));
        }
        if let Some(a) = &f.agent {
            pairs.push(("agent", a.as_str()));
        }
        cfg.filter = Filter::from_pairs(pairs)?;
        cfg.headers = self.headers.into_iter().collect();
        cfg.max_batch = self.max_batch.unwrap_or(cfg.max_batch);
        cfg.max_queue = self.max_queue.unwrap_or(cfg.max_queue);
        cfg.max_attempts = self.max_attempts.unwrap_or(cfg.max_attempts);
        for (key, value, slot) in [
            ("flush_interval", &self.flush_interval, &mut cfg.flush_interval),
            ("backoff", &self.backoff, &mut cfg.backoff),
            ("timeout", &self.timeout, &mut cfg.timeout),
        ] {
            if let Some(v) = value {
                *slot = v.get(key)?;
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The `[[webhook]]` tables of a TOML text (see [`load_config`]). Errors name the
/// line and the entry, never a header value or a URL's path.
pub fn parse_config(text: &str) -> Result<Vec<WebhookConfig>, String> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        // The message may quote a value (`invalid type: string "Bearer …"`): hide quoted text.
        let message = hide_quoted(e.message());
        match line {
            Some(l) => format!("line {l}: {message}"),
            None => message,
        }
    })?;
    file.webhook
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let shown = redact_url(&entry.url);
            entry.into_config().map_err(|e| format!("[[webhook]] #{} ({shown}): {e}", i + 1))
        })
        .collect()
}

/// Read the webhooks of a TOML file:
///
/// ```toml
/// [[webhook]]
/// url = "https://hooks.slack.com/services/…"
/// format = "slack"                                  # or "json" (default)
/// filter = { type = ["rule_match"], project = ["app"], tool = ["shell"], agent = "main" }
/// headers = { Authorization = "Bearer …" }          # secret: never logged
/// max_batch = 20                                    # and max_queue, flush_interval = "1s",
///                                                   # max_attempts, backoff = "500ms", timeout = "10s"
/// ```
///
/// Other top-level tables are ignored (the file may hold other settings); an
/// unknown key inside a `[[webhook]]` table is an error. No table: an empty list.
pub fn load_config(path: &std::path::Path) -> anyhow::Result<Vec<WebhookConfig>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read webhook config {}: {e}", path.display()))?;
    parse_config(&text).map_err(|e| anyhow::anyhow!("webhook config {}: {e}", path.display()))
}

fn hide_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut inside = false;
    for c in s.chars() {
        if c == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------- payloads

#[derive(serde::Serialize)]
struct JsonBody<'a> {
    batch_id: &'a str,
    events: &'a [Arc<Event>],
}

/// The body of one POST.
fn render(format: Format, batch_id: &str, events: &[Arc<Event>]) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(&JsonBody { batch_id, events }).unwrap_or_default(),
        Format::Slack => {
            let text: Vec<String> = events.iter().map(|e| slack_line(e)).collect();
            serde_json::to_vec(&serde_json::json!({ "text": text.join("\n") })).unwrap_or_default()
        }
    }
}

/// Slack's three escapes (`&`, `<`, `>`), so that text never turns into links or mentions.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Escaped, on one line, capped.
fn slack_text(s: &str) -> String {
    slack_escape(&crate::transcript::entry::cap_text(s.lines().next().unwrap_or_default(), SLACK_SUMMARY_BYTES))
}

/// Inline code, or plain escaped text if it holds a backtick.
fn slack_code(s: &str) -> String {
    let s = slack_text(s);
    if s.contains('`') || s.is_empty() { s } else { format!("`{s}`") }
}

fn short(id: &str) -> &str {
    match id.char_indices().nth(8) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// One readable line: what happened, where. Only fields the event carries; never
/// prompt text, tool input or output (a summary or description only when present).
fn slack_line(e: &Event) -> String {
    let mut where_ = if e.project.is_empty() { String::new() } else { format!("{} · ", slack_code(&e.project)) };
    where_.push_str(&format!("session {}", slack_code(short(&e.session_id))));
    if let Some(a) = &e.agent_id {
        where_.push_str(&format!(" · agent {}", slack_code(short(a))));
    }
    let what = match &e.kind {
        Kind::RuleMatch { rule, severity, tool, .. } => {
            let icon = match severity.as_str() {
                "critical" => ":rotating_light:",
                "warning" => ":warning:",
                _ => ":information_source:",
            };
            return format!(
                "{icon} *Rule match: {}* ({}) · tool {} · {where_}",
                slack_text(rule),
                slack_text(severity),
                slack_code(tool)
            );
        }
        Kind::ToolUse { name, summary, .. } => {
            let mut s = format!("*tool_use* {}", slack_code(name));
            if let Some(sum) = summary {
                s.push_str(&format!(" — {}", slack_code(sum)));
            }
            s
        }
        Kind::ToolResult { name, is_error, duration_ms, .. } => {
            let mut s = format!("*tool_result* {}", slack_code(name));
            if *is_error {
                s.push_str(" *error*");
            }
            if let Some(ms) = duration_ms {
                s.push_str(&format!(" after {:.1} s", *ms as f64 / 1000.0));
            }
            s
        }
        Kind::Message { role, model, cost_usd, .. } => {
            let mut s = format!("*message* {}", slack_text(role));
            if let Some(m) = model {
                s.push_str(&format!(" {}", slack_code(m)));
            }
            if let Some(c) = cost_usd {
                s.push_str(&format!(" ${c:.4}"));
            }
            s
        }
        Kind::SessionStart { git_branch, .. } => match git_branch {
            Some(b) => format!("*session_start* on branch {}", slack_code(b)),
            None => "*session_start*".into(),
        },
        Kind::SessionEnd { reason } => {
            format!(
                "*session_end* ({})",
                serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
            )
        }
        Kind::AgentSpawn { agent_type, description, .. } => {
            let mut s = format!("*agent_spawn* {}", slack_code(agent_type));
            if let Some(d) = description {
                s.push_str(&format!(" — {}", slack_code(d)));
            }
            s
        }
        Kind::Compaction { trigger, tokens_before, tokens_after } => {
            let mut s = format!("*compaction* ({})", slack_text(trigger));
            if let (Some(b), Some(a)) = (tokens_before, tokens_after) {
                s.push_str(&format!(" {b} → {a} tokens"));
            }
            s
        }
        Kind::ApiError { kind } => format!("*api_error* {}", slack_code(kind)),
        Kind::ContextGrowth { tokens_added, cumulative, .. } => {
            format!("*context_growth* {tokens_added:+} tokens (now {cumulative})")
        }
        Kind::Error { message } => format!("*error* {}", slack_text(message)),
        other => format!("*{}*", other.name()),
    };
    format!("{what} · {where_}")
}

// ---------------------------------------------------------------- delivery

/// The retry policy of `cfg`.
fn policy(cfg: &WebhookConfig) -> Retry {
    Retry { attempts: cfg.max_attempts, initial: cfg.backoff, max: MAX_BACKOFF, statuses: Statuses::Transient }
}

/// An event waiting, with when it arrived (for `flush_interval`).
struct Queued {
    at: Instant,
    event: Arc<Event>,
}

/// Outcomes not yet added to the store (the queue side cannot lock the aggregator
/// for every event).
#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    error: AtomicU64,
    /// Indexed like [`DROP_REASONS`].
    dropped: [AtomicU64; 4],
}

const QUEUE_FULL: usize = 0;
const LAGGED: usize = 1;
const FAILED: usize = 2;
const SHUTDOWN: usize = 3;

/// One running hook.
struct Hook {
    index: usize,
    cfg: WebhookConfig,
    shown: String,
    queue: Mutex<VecDeque<Queued>>,
    ready: tokio::sync::Notify,
    /// The receiving side has stopped: what is queued is all there will be.
    closed: AtomicBool,
    /// A "queue full" warning was logged since the last delivery.
    warned_full: AtomicBool,
    counts: Counts,
}

impl Hook {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn len(&self) -> usize {
        self.queue().len()
    }

    fn drop_events(&self, reason: usize, n: u64) {
        self.counts.dropped[reason].fetch_add(n, Ordering::Relaxed);
    }

    /// Queue `e` if the filter takes it and there is room. Never waits.
    fn offer(&self, e: Arc<Event>) {
        if !self.cfg.filter.matches(&e) {
            return;
        }
        {
            let mut q = self.queue();
            if q.len() >= self.cfg.max_queue {
                drop(q);
                self.drop_events(QUEUE_FULL, 1);
                if !self.warned_full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        webhook = %self.shown,
                        max_queue = self.cfg.max_queue,
                        "Webhook queue full; dropping new events until it drains."
                    );
                }
                return;
            }
            q.push_back(Queued { at: Instant::now(), event: e });
        }
        self.ready.notify_one();
    }

    fn lagged(&self, n: u64) {
        self.drop_events(LAGGED, n);
        tracing::warn!(webhook = %self.shown, events = n, "Webhook fell behind the event bus; events dropped.");
    }
}

fn lock(agg: &Mutex<Aggregator>) -> std::sync::MutexGuard<'_, Aggregator> {
    agg.lock().unwrap_or_else(|p| p.into_inner())
}

/// Add the hooks' outcomes to the store and set the queue gauge.
fn flush_stats(agg: &Mutex<Aggregator>, hooks: &[Arc<Hook>]) {
    let queued: usize = hooks.iter().map(|h| h.len()).sum();
    let mut a = lock(agg);
    for h in hooks {
        let c = &h.counts;
        a.store.inc(Counter::WebhookDeliveries, &["ok"], c.ok.swap(0, Ordering::Relaxed) as f64);
        a.store.inc(Counter::WebhookDeliveries, &["error"], c.error.swap(0, Ordering::Relaxed) as f64);
        for (reason, n) in DROP_REASONS.iter().zip(&c.dropped) {
            a.store.inc(Counter::WebhookDropped, &[reason], n.swap(0, Ordering::Relaxed) as f64);
        }
    }
    a.store.set_gauges(Gauge::WebhookQueue, [(vec![], queued as f64)]);
}

/// Receive from the bus until stopped, then take what was already published.
async fn receive(hook: Arc<Hook>, mut rx: tokio::sync::broadcast::Receiver<Arc<Event>>, stop: Shutdown) {
    loop {
        tokio::select! {
            biased;
            _ = stop.stopped() => break,
            r = rx.recv() => match r {
                Ok(e) => hook.offer(e),
                Err(RecvError::Lagged(n)) => hook.lagged(n),
                Err(RecvError::Closed) => break,
            },
        }
    }
    loop {
        match rx.try_recv() {
            Ok(e) => hook.offer(e),
            Err(TryRecvError::Lagged(n)) => hook.lagged(n),
            Err(_) => break,
        }
    }
    hook.closed.store(true, Ordering::Release);
    hook.ready.notify_one();
}

/// Send one batch, retrying. Returns whether it was delivered.
async fn deliver(hook: &Hook, client: &Client, key: &str, body: Bytes, events: usize, stop: &Shutdown) -> bool {
    let mut headers = vec![("content-type", "application/json"), ("idempotency-key", key)];
    headers.extend(hook.cfg.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let sent =
        http::retry(&policy(&hook.cfg), stop, || client.post(&hook.cfg.url, &headers, body.clone(), hook.cfg.timeout))
            .instrument(tracing::debug_span!("webhook", webhook = %hook.shown))
            .await;
    match sent {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(
                webhook = %hook.shown, attempts = e.attempts, events, error = %e.error,
                "Webhook delivery failed; events dropped."
            );
            false
        }
    }
}

/// Batch and send until the receiving side has closed and the queue is empty.
async fn send(
    hook: Arc<Hook>,
    hooks: Arc<[Arc<Hook>]>,
    client: Client,
    agg: Arc<Mutex<Aggregator>>,
    run: u64,
    stop: Shutdown,
) {
    let max_batch = hook.cfg.max_batch.clamp(1, hook.cfg.max_queue.max(1));
    loop {
        // Wait for an event (a permit left by `notify_one` is never lost).
        loop {
            let notified = hook.ready.notified();
            if hook.len() > 0 {
                break;
            }
            if hook.closed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
        // Wait for a full batch, or until the oldest event has waited flush_interval.
        loop {
            let notified = hook.ready.notified();
            let (n, oldest) = {
                let q = hook.queue();
                (q.len(), q.front().map(|x| x.at))
            };
            let due = oldest.map_or_else(Instant::now, |t| t + hook.cfg.flush_interval);
            if n >= max_batch || stop.is_stopping() || hook.closed.load(Ordering::Acquire) || Instant::now() >= due {
                break;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.stopped() => {}
            }
        }
        // The batch stays in the queue (and counts against max_queue) until it is done.
        let batch: Vec<Arc<Event>> = hook.queue().iter().take(max_batch).map(|x| Arc::clone(&x.event)).collect();
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else { continue };
        let key = format!("{run:016x}-{}-{}-{}", hook.index, first.id, last.id);
        let body = Bytes::from(render(hook.cfg.format, &key, &batch));
        let ok = deliver(&hook, &client, &key, body, batch.len(), &stop).await;
        {
            let mut q = hook.queue();
            let n = batch.len().min(q.len());
            q.drain(..n);
        }
        if ok {
            hook.counts.ok.fetch_add(1, Ordering::Relaxed);
            hook.warned_full.store(false, Ordering::Relaxed);
        } else {
            hook.counts.error.fetch_add(1, Ordering::Relaxed);
            hook.drop_events(FAILED, batch.len() as u64);
        }
        flush_stats(&agg, &hooks);
    }
}

/// One hook: receive and send; at shutdown, at most [`SHUTDOWN_FLUSH`] more.
async fn run_hook(
    hook: Arc<Hook>,
    hooks: Arc<[Arc<Hook>]>,
    rx: tokio::sync::broadcast::Receiver<Arc<Event>>,
    client: Client,
    agg: Arc<Mutex<Aggregator>>,
    run: u64,
    stop: Shutdown,
) {
    let receiving = receive(Arc::clone(&hook), rx, stop.clone());
    let sending = send(Arc::clone(&hook), hooks, client, agg, run, stop.clone());
    if stop.bounded(SHUTDOWN_FLUSH, async { tokio::join!(receiving, sending) }).await.is_none() {
        let left = std::mem::take(&mut *hook.queue()).len();
        if left > 0 {
            tracing::warn!(webhook = %hook.shown, events = left, "Webhook: events not sent before shutdown; dropped.");
            hook.drop_events(SHUTDOWN, left as u64);
        }
    }
}

/// The running webhooks.
pub struct Webhooks {
    hooks: Arc<[Arc<Hook>]>,
    stop: Stopper,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Webhooks {
    /// Validate `configs`, subscribe each hook to `bus` (events published from now
    /// on are theirs) and start the delivery thread. Outcomes are counted in
    /// `agg`'s store. With no configs nothing runs and no metric is created.
    pub fn start(configs: Vec<WebhookConfig>, bus: &Arc<Bus>, agg: Arc<Mutex<Aggregator>>) -> anyhow::Result<Webhooks> {
        let (stop, stopped) = http::shutdown();
        if configs.is_empty() {
            return Ok(Webhooks { hooks: Arc::from(Vec::new()), stop, thread: None });
        }
        for cfg in &configs {
            cfg.validate().map_err(anyhow::Error::msg)?;
        }
        // The system's roots are read only when some hook uses https.
        let tls = TlsOptions { system_roots: configs.iter().any(|c| c.url.starts_with("https://")), ca_file: None };
        let client = Client::new(&tls)?;
        let hooks: Arc<[Arc<Hook>]> = configs
            .into_iter()
            .enumerate()
            .map(|(index, cfg)| {
                Arc::new(Hook {
                    index,
                    shown: redact_url(&cfg.url),
                    cfg,
                    queue: Mutex::new(VecDeque::new()),
                    ready: tokio::sync::Notify::new(),
                    closed: AtomicBool::new(false),
                    warned_full: AtomicBool::new(false),
                    counts: Counts::default(),
                })
            })
            .collect();
        {
            let mut a = lock(&agg);
            for result in ["ok", "error"] {
                a.store.touch(Counter::WebhookDeliveries, &[result]);
            }
            for reason in DROP_REASONS {
                a.store.touch(Counter::WebhookDropped, &[reason]);
            }
            a.store.set_gauges(Gauge::WebhookQueue, [(vec![], 0.0)]);
        }
        for h in hooks.iter() {
            tracing::info!(
                webhook = %h.shown, format = h.cfg.format.as_str(), max_batch = h.cfg.max_batch,
                max_queue = h.cfg.max_queue, "Sending events to a webhook."
            );
        }
        // Subscribed here, before returning: nothing published after `start` is missed.
        let receivers: Vec<_> = hooks.iter().map(|_| bus.subscribe()).collect();
        let run = {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            crate::state::dedup::fnv1a(&[&now.as_nanos().to_le_bytes(), &std::process::id().to_le_bytes()])
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let hs = Arc::clone(&hooks);
        let thread = std::thread::Builder::new().name("webhooks".into()).spawn(move || {
            rt.block_on(async move {
                let mut tasks = Vec::new();
                for (hook, rx) in hs.iter().zip(receivers) {
                    let (hook, all, client, agg, stop) =
                        (Arc::clone(hook), Arc::clone(&hs), client.clone(), Arc::clone(&agg), stopped.clone());
                    tasks.push(tokio::spawn(run_hook(hook, all, rx, client, agg, run, stop)));
                }
                let (stats_hooks, stats_agg) = (Arc::clone(&hs), Arc::clone(&agg));
                let stats = tokio::spawn(async move {
                    let mut every = tokio::time::interval(STATS_EVERY);
                    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        every.tick().await;
                        flush_stats(&stats_agg, &stats_hooks);
                    }
                });
                for t in tasks {
                    let _ = t.await;
                }
                stats.abort();
                flush_stats(&agg, &hs);
            });
        })?;
        Ok(Webhooks { hooks, stop, thread: Some(thread) })
    }

    /// Events waiting in all hooks' queues, batches in flight included.
    pub fn queued(&self) -> usize {
        self.hooks.iter().map(|h| h.len()).sum()
    }

    /// Stop: what was published before gets one attempt per batch, within
    /// [`SHUTDOWN_FLUSH`] in all; the rest is dropped and counted.
    pub fn shutdown(mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ToolCategory;

    fn ev(id: u64, kind: Kind) -> Arc<Event> {
        Arc::new(Event {
            id,
            ts_ms: 1,
            session_id: "0123456789abcdef".into(),
            project: "app".into(),
            agent_id: None,
            kind,
        })
    }

    #[test]
    fn urls_are_shown_without_their_path() {
        assert_eq!(redact_url("https://hooks.slack.com/services/T0/B0/secret"), "https://hooks.slack.com/…");
        assert_eq!(redact_url("http://user:pw@127.0.0.1:8080/x?token=1"), "http://127.0.0.1:8080/…");
        assert_eq!(redact_url("http://h"), "http://h");
        assert_eq!(redact_url("not a url"), "<invalid URL>");
        let cfg = WebhookConfig {
            headers: vec![("Authorization".into(), "Bearer s3cr3t".into())],
            ..WebhookConfig::new("https://h/p/secret")
        };
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("s3cr3t") && !debug.contains("secret"), "{debug}");
    }

    #[test]
    fn slack_lines_are_escaped_and_highlight_rule_matches() {
        let rule = ev(
            1,
            Kind::RuleMatch {
                rule: "rm <rf>".into(),
                severity: "critical".into(),
                tool_use_id: "t".into(),
                tool: "Bash".into(),
            },
        );
        let line = slack_line(&rule);
        assert!(line.starts_with(":rotating_light: *Rule match: rm &lt;rf&gt;* (critical)"), "{line}");
        assert!(line.contains("session `01234567`") && line.contains("`app`"), "{line}");
        let tool = ev(
            2,
            Kind::ToolUse {
                tool_use_id: "t".into(),
                name: "Bash".into(),
                category: ToolCategory::Shell,
                summary: Some("echo `x`".into()),
                input: Some("{\"command\":\"SECRET\"}".into()),
            },
        );
        let line = slack_line(&tool);
        assert!(line.contains("*tool_use* `Bash` — echo `x`") && !line.contains("SECRET"), "{line}");
        let body: serde_json::Value = serde_json::from_slice(&render(Format::Slack, "k", &[rule, tool])).unwrap();
        assert_eq!(body.as_object().unwrap().len(), 1);
        assert_eq!(body["text"].as_str().unwrap().lines().count(), 2);
    }

    #[test]
    fn toml_errors_hide_quoted_values() {
        let e = parse_config("[[webhook]]\nurl = \"http://h/x\"\nheaders = \"Bearer s3cr3t\"\n").unwrap_err();
        assert!(!e.contains("s3cr3t") && e.contains("line 3"), "{e}");
    }
}
