//! A webhook's settings: the `--webhook` flag, the `[[webhook]]` tables of a TOML
//! file, their checks, and the URL as logs may show it.
//!
//! URLs (Slack's carry a token in their path) and headers are secrets: `Debug`,
//! logs and errors show only the scheme and host, and never a header value.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{
    DEFAULT_BACKOFF, DEFAULT_FLUSH_INTERVAL, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BATCH, DEFAULT_MAX_QUEUE,
    DEFAULT_TIMEOUT,
};
use crate::events::Filter;

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
    /// The name the flag and the config file use (`json`, `slack`).
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
    /// The body of each POST: JSON events, or Slack lines.
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
    /// Where the console is (`serve --web.external-url`): Slack lines of approvals link
    /// to the session there. Set by `serve`, not by the flag or file.
    pub console_url: Option<String>,
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
            .field("console_url", &self.console_url)
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
            console_url: None,
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
pub(super) fn redact_url(url: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn toml_errors_hide_quoted_values() {
        let e = parse_config("[[webhook]]\nurl = \"http://h/x\"\nheaders = \"Bearer s3cr3t\"\n").unwrap_err();
        assert!(!e.contains("s3cr3t") && e.contains("line 3"), "{e}");
    }
}
