//! OTLP settings: the standard `OTEL_*` variables overridden by flags, the
//! endpoints, and the resource every request carries. Headers are secrets:
//! never logged, never shown in errors.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;

use std::time::Duration;

use crate::sinks::http::percent_decode;

/// Wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// OTLP/gRPC (default port 4317); the URL names the server only.
    #[value(name = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318); the URL ends in `/v1/<signal>`.
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

/// Cumulative (what Prometheus-compatible backends want) or delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Temporality {
    /// Totals since the counters started (they survive restarts), every export.
    Cumulative,
    /// What changed since the last delivered export (a durable baseline, `otlp_delta`).
    Delta,
}

/// Where and how one signal is sent.
#[derive(Clone)]
pub struct Endpoint {
    /// gRPC: the server (`http://host:4317`). HTTP: the full URL (`…/v1/traces`).
    pub url: String,
    /// How the requests are sent.
    pub protocol: Protocol,
    /// Sent with every request, set last (they win over the exporter's). Secret: never
    /// printed (see the `Debug` impl).
    pub headers: Vec<(String, String)>,
    /// Bound of one request, and of its retries together.
    pub timeout: Duration,
    /// Gzip the request bodies (`OTEL_EXPORTER_OTLP_COMPRESSION=gzip`).
    pub gzip: bool,
    /// PEM file of extra CA certificates to trust for `https://` (besides the system's).
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("protocol", &self.protocol)
            .field("headers", &format_args!("[{} hidden]", self.headers.len()))
            .field("timeout", &self.timeout)
            .field("gzip", &self.gzip)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Claude Code's own metric names, emitted besides ours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compat {
    /// Also send `claude_code.token.usage`, `claude_code.cost.usage`,
    /// `claude_code.session.count` and `claude_code.lines_of_code.count`.
    pub claude_code: bool,
    /// Per-session series (`session.id`), as Claude Code does by default.
    pub session_id: bool,
}

/// What realtime events become log records (`--otlp-logs`), besides the endpoint.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    /// Only the events this filter takes (as `/api/events`: type, project, tool, session, agent).
    pub filter: crate::events::Filter,
    /// Also a record under Claude Code's own event name and attributes, for the events
    /// it has one for (`otlp_logs::compat`).
    pub claude_code: bool,
    /// Text on records (prompts, tool inputs and outputs, summaries), each cut to this
    /// many bytes; `None`: none (the events' own opt-in must be on too).
    pub content: Option<usize>,
}

/// Everything the OTLP worker needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where metrics go; `None`: no metrics are pushed.
    pub metrics: Option<Endpoint>,
    /// Where spans go; `None`: no traces are pushed.
    pub traces: Option<Endpoint>,
    /// Where realtime events go as log records; `None`: no logs are pushed.
    pub logs: Option<Endpoint>,
    /// What events become records.
    pub logs_options: Logs,
    /// Time between metric exports (at least 100 ms).
    pub interval: Duration,
    /// Of the metric sums and histograms.
    pub temporality: Temporality,
    /// Claude Code's metric names besides ours.
    pub compat: Compat,
    /// Send the traces of history (before the first start) once.
    pub backfill: bool,
    /// Attributes of the resource every request carries (`service.name` first).
    pub resource: Vec<(String, String)>,
    /// Spans held while the collector is slow or down.
    pub max_queue_spans: usize,
    /// Spans per request.
    pub max_batch_spans: usize,
    /// Log records held while the collector is slow or down.
    pub max_queue_logs: usize,
    /// Attempts per request (1 = no retry).
    pub max_attempts: u32,
    /// First retry delay; doubles each time.
    pub backoff: Duration,
}

/// Flags that override the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--otlp-endpoint`: the base URL of both signals (HTTP appends `/v1/<signal>`).
    pub endpoint: Option<String>,
    /// `--otlp-protocol`.
    pub protocol: Option<Protocol>,
    /// `--otlp-header` values, `k=v[,k=v]` with percent-encoded values.
    pub headers: Vec<String>,
    /// `--otlp-metrics`: push metrics.
    pub metrics: bool,
    /// `--otlp-traces`: push traces.
    pub traces: bool,
    /// `--otlp-logs`: push realtime events as log records.
    pub logs: bool,
    /// `--otlp-interval`.
    pub interval: Option<Duration>,
    /// `--otlp-temporality`.
    pub temporality: Option<Temporality>,
    /// `--otlp-claude-code-metrics`, `--otlp-claude-code-session-id`.
    pub compat: Compat,
    /// `--otlp-backfill`.
    pub backfill: bool,
}

/// Invalid OTLP settings; the message names the setting, never a header value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub(crate) String);

pub(crate) fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

impl Config {
    /// Read the `OTEL_*` variables through `env`, then apply `flags`. `Ok(None)`:
    /// no signal is switched on (by `--otlp-metrics`/`--otlp-traces`/`--otlp-logs` or
    /// `OTEL_METRICS_EXPORTER`/`OTEL_TRACES_EXPORTER`/`OTEL_LOGS_EXPORTER=otlp`).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>, flags: &Overrides) -> Result<Option<Config>, ConfigError> {
        let var = |k: &str| env(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let exporter_on = |k: &str| var(k).is_some_and(|v| v.split(',').any(|e| e.trim() == "otlp"));
        let want_metrics = flags.metrics || exporter_on("OTEL_METRICS_EXPORTER");
        let want_traces = flags.traces || exporter_on("OTEL_TRACES_EXPORTER");
        let want_logs = flags.logs || exporter_on("OTEL_LOGS_EXPORTER");
        if !want_metrics && !want_traces && !want_logs {
            return Ok(None);
        }
        let endpoint = |signal: &str, path: &str| -> Result<Endpoint, ConfigError> {
            let upper = signal.to_ascii_uppercase();
            let pick = |name: &str| {
                var(&format!("OTEL_EXPORTER_OTLP_{upper}_{name}"))
                    .or_else(|| var(&format!("OTEL_EXPORTER_OTLP_{name}")))
            };
            let protocol = match (flags.protocol, pick("PROTOCOL").as_deref()) {
                (Some(p), _) => p,
                (None, None | Some("http/protobuf")) => Protocol::HttpProtobuf,
                (None, Some("grpc")) => Protocol::Grpc,
                (None, Some(other)) => {
                    return err(format!("OTLP protocol {other:?} is not supported: use grpc or http/protobuf"));
                }
            };
            let default_base = match protocol {
                Protocol::Grpc => "http://localhost:4317",
                Protocol::HttpProtobuf => "http://localhost:4318",
            };
            // A signal-specific endpoint is used as is; the general one gets `/v1/<signal>` (HTTP).
            let url = match (&flags.endpoint, var(&format!("OTEL_EXPORTER_OTLP_{upper}_ENDPOINT"))) {
                (Some(base), _) => join_path(base, protocol, path),
                (None, Some(full)) => full,
                (None, None) => {
                    join_path(&var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or(default_base.into()), protocol, path)
                }
            };
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return err(format!("OTLP endpoint {url:?} must be an http:// or https:// URL"));
            }
            let ca_file = pick("CERTIFICATE").map(std::path::PathBuf::from);
            if let Some(f) = &ca_file
                && !f.is_file()
            {
                return err(format!("OTLP CA certificate file {} does not exist", f.display()));
            }
            let mut headers = Vec::new();
            if let Some(h) = var("OTEL_EXPORTER_OTLP_HEADERS") {
                headers.extend(parse_pairs(&h, "OTEL_EXPORTER_OTLP_HEADERS")?);
            }
            if let Some(h) = var(&format!("OTEL_EXPORTER_OTLP_{upper}_HEADERS")) {
                for (k, v) in parse_pairs(&h, "OTEL_EXPORTER_OTLP_*_HEADERS")? {
                    headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(&k));
                    headers.push((k, v));
                }
            }
            for h in &flags.headers {
                for (k, v) in parse_pairs(h, "--otlp-header")? {
                    headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(&k));
                    headers.push((k, v));
                }
            }
            let timeout = match pick("TIMEOUT") {
                Some(ms) => Duration::from_millis(
                    ms.parse()
                        .map_err(|_| ConfigError(format!("OTLP timeout {ms:?} is not a number of milliseconds")))?,
                ),
                None => Duration::from_secs(10),
            };
            let gzip = match pick("COMPRESSION").as_deref() {
                None | Some("none") => false,
                Some("gzip") => true,
                Some(other) => return err(format!("OTLP compression {other:?} is not supported: use gzip or none")),
            };
            Ok(Endpoint { url, protocol, headers, timeout, gzip, ca_file })
        };
        let interval = match (flags.interval, var("OTEL_METRIC_EXPORT_INTERVAL")) {
            (Some(d), _) => d,
            (None, Some(ms)) => Duration::from_millis(ms.parse().map_err(|_| {
                ConfigError(format!("OTEL_METRIC_EXPORT_INTERVAL {ms:?} is not a number of milliseconds"))
            })?),
            (None, None) => Duration::from_secs(60),
        };
        if interval < Duration::from_millis(100) {
            return err("the OTLP metric export interval must be at least 100 ms");
        }
        let temporality = match (flags.temporality, var("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")) {
            (Some(t), _) => t,
            (None, None) => Temporality::Cumulative,
            (None, Some(t)) => match t.to_ascii_lowercase().as_str() {
                "cumulative" => Temporality::Cumulative,
                // Our instruments are all counters and histograms: lowmemory means delta for them.
                "delta" | "lowmemory" => Temporality::Delta,
                _ => {
                    return err(format!(
                        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE {t:?}: use cumulative or delta"
                    ));
                }
            },
        };
        Ok(Some(Config {
            metrics: if want_metrics { Some(endpoint("metrics", "v1/metrics")?) } else { None },
            traces: if want_traces { Some(endpoint("traces", "v1/traces")?) } else { None },
            logs: if want_logs { Some(endpoint("logs", "v1/logs")?) } else { None },
            logs_options: Logs::default(),
            interval,
            temporality,
            compat: flags.compat,
            backfill: flags.backfill,
            resource: resource_attributes(env)?,
            max_queue_spans: 20_000,
            max_batch_spans: 512,
            max_queue_logs: 20_000,
            max_attempts: 4,
            backoff: Duration::from_millis(500),
        }))
    }
}

fn join_path(base: &str, protocol: Protocol, path: &str) -> String {
    match protocol {
        Protocol::Grpc => base.to_owned(),
        Protocol::HttpProtobuf => format!("{}/{path}", base.trim_end_matches('/')),
    }
}

/// `k1=v1,k2=v2` with percent-encoded values (the W3C Baggage form the spec uses).
fn parse_pairs(s: &str, what: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            // Do not echo the value: it may hold a token.
            return err(format!("{what}: an entry is not of the form key=value"));
        };
        out.push((percent_decode(k.trim()), percent_decode(v.trim())));
    }
    Ok(out)
}

/// The resource: `service.name` (`OTEL_SERVICE_NAME`, else `claude-sessions`),
/// `service.version`, `service.instance.id`, `host.name`, then `OTEL_RESOURCE_ATTRIBUTES`.
fn resource_attributes(env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<(String, String)>, ConfigError> {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let mut attrs: Vec<(String, String)> = vec![
        ("service.name".into(), "claude-sessions".into()),
        ("service.version".into(), crate::VERSION.into()),
        ("host.name".into(), host.clone()),
    ];
    if let Some(extra) = env("OTEL_RESOURCE_ATTRIBUTES").filter(|s| !s.trim().is_empty()) {
        for (k, v) in parse_pairs(&extra, "OTEL_RESOURCE_ATTRIBUTES")? {
            attrs.retain(|(ak, _)| *ak != k);
            attrs.push((k, v));
        }
    }
    if let Some(name) = env("OTEL_SERVICE_NAME").filter(|s| !s.trim().is_empty()) {
        attrs.retain(|(k, _)| k != "service.name");
        attrs.insert(0, ("service.name".into(), name.trim().to_owned()));
    }
    if !attrs.iter().any(|(k, _)| k == "service.instance.id") {
        // Stable for a user on a host: series continue across restarts.
        let user = env("USER").unwrap_or_default();
        let id = crate::state::trace::trace_id(&host, crate::state::dedup::fnv1a(&[user.as_bytes()]));
        attrs.push(("service.instance.id".into(), crate::state::trace::hex(&id)));
    }
    Ok(attrs)
}

pub(crate) fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

pub(crate) fn kv_str(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_owned()))
}

pub(crate) fn resource(cfg: &Config) -> Resource {
    Resource { attributes: cfg.resource.iter().map(|(k, v)| kv_str(k, v)).collect(), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn cfg(vars: &[(&str, &str)], flags: &Overrides) -> Result<Option<Config>, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_env(&move |k| map.get(k).cloned(), flags)
    }

    #[test]
    fn nothing_is_sent_unless_switched_on() {
        assert!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")], &Overrides::default()).unwrap().is_none());
        let c = cfg(&[("OTEL_METRICS_EXPORTER", "otlp")], &Overrides::default()).unwrap().unwrap();
        assert!(c.metrics.is_some() && c.traces.is_none() && c.logs.is_none());
        let c = cfg(
            &[("OTEL_LOGS_EXPORTER", "console,otlp"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")],
            &Overrides::default(),
        )
        .unwrap()
        .unwrap();
        assert!(c.metrics.is_none() && c.traces.is_none());
        assert_eq!(c.logs.unwrap().url, "http://c:4318/v1/logs");
        let c = cfg(
            &[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://loki:3100/otlp/v1/logs")],
            &Overrides { logs: true, ..Overrides::default() },
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.logs.unwrap().url, "http://loki:3100/otlp/v1/logs", "a signal's own endpoint is used as is");
    }

    #[test]
    fn standard_variables_are_honoured() {
        let c = cfg(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://tempo:4318/custom/traces"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20abc,x-team=dev"),
                ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-team=ops"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
                ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
                ("OTEL_SERVICE_NAME", "my-laptop"),
                ("OTEL_RESOURCE_ATTRIBUTES", "team=dev,service.name=ignored"),
            ],
            &Overrides { metrics: true, traces: true, ..Overrides::default() },
        )
        .unwrap()
        .unwrap();
        let m = c.metrics.as_ref().unwrap();
        assert_eq!(m.url, "http://collector:4318/v1/metrics");
        assert_eq!(m.protocol, Protocol::HttpProtobuf);
        assert_eq!(m.headers, vec![("Authorization".into(), "Bearer abc".into()), ("x-team".into(), "ops".into())]);
        assert_eq!(m.timeout, Duration::from_millis(2500));
        assert_eq!(c.traces.as_ref().unwrap().url, "http://tempo:4318/custom/traces");
        assert_eq!((c.interval, c.temporality), (Duration::from_secs(15), Temporality::Delta));
        let res: HashMap<_, _> = c.resource.iter().cloned().collect();
        assert_eq!(res["service.name"], "my-laptop");
        assert_eq!(res["team"], "dev");
        assert!(res.contains_key("host.name") && res.contains_key("service.instance.id"));
        assert_eq!(res["service.version"], crate::VERSION);
        // Secrets stay out of debug output.
        assert!(!format!("{c:?}").contains("abc"));
    }

    #[test]
    fn flags_override_and_grpc_keeps_the_base_url() {
        let c = cfg(
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4318")],
            &Overrides {
                traces: true,
                endpoint: Some("http://127.0.0.1:4317".into()),
                protocol: Some(Protocol::Grpc),
                ..Overrides::default()
            },
        )
        .unwrap()
        .unwrap();
        let t = c.traces.unwrap();
        assert_eq!((t.url.as_str(), t.protocol), ("http://127.0.0.1:4317", Protocol::Grpc));
        assert_eq!(c.temporality, Temporality::Cumulative);
        assert_eq!(c.interval, Duration::from_secs(60));
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let on = Overrides { metrics: true, ..Overrides::default() };
        let e = cfg(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")], &on).err().unwrap();
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = cfg(&[("OTEL_EXPORTER_OTLP_HEADERS", "secret-token-no-equals")], &on).err().unwrap();
        assert!(!e.to_string().contains("secret-token"), "{e}");
        assert!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x")], &on).is_err());
        assert!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://x")], &on).unwrap().is_some());
        let e = cfg(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/no/such/ca.pem")], &on).err().unwrap();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
