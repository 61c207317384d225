//! `serve`'s OTLP flags, and the record of which history's events were sent as logs.

use std::time::Duration;

use clap::Args;

use crate::cli::parse_duration;

/// OTLP push. Settings default to the standard `OTEL_*` variables; flags win.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "OTLP")]
pub struct OtlpArgs {
    /// Push metrics over OTLP (or set OTEL_METRICS_EXPORTER=otlp).
    #[arg(long)]
    pub otlp_metrics: bool,

    /// Push traces, one per user turn (or set OTEL_TRACES_EXPORTER=otlp).
    #[arg(long)]
    pub otlp_traces: bool,

    /// Collector URL. Default: OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318
    /// (http/protobuf) or http://localhost:4317 (grpc).
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// Wire protocol. Default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<crate::sinks::otlp::Protocol>,

    /// Extra request header KEY=VALUE (repeatable). Prefer OTEL_EXPORTER_OTLP_HEADERS:
    /// command lines are visible to other users. Never logged.
    #[arg(long, value_name = "KEY=VALUE")]
    pub otlp_header: Vec<String>,

    /// Metric export interval. Default: OTEL_METRIC_EXPORT_INTERVAL (ms), else 60s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub otlp_interval: Option<Duration>,

    /// Sum temporality. Default: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, else cumulative.
    #[arg(long, value_enum)]
    pub otlp_temporality: Option<crate::sinks::otlp::Temporality>,

    /// Push realtime events as log records, with trace ids (or set OTEL_LOGS_EXPORTER=otlp).
    #[arg(long)]
    pub otlp_logs: bool,

    /// Only these events as log records, as /api/events filters them: type=…, project=…,
    /// tool=…, session=…, agent=main|subagent (repeatable; values may be comma-separated).
    #[arg(long, value_name = "KEY=VALUE")]
    pub otlp_logs_filter: Vec<String>,

    /// Also a log record under Claude Code's own event name and attributes
    /// (claude_code.tool_result, claude_code.api_request, …) for the events it has one for.
    #[arg(long)]
    pub otlp_logs_claude_code: bool,

    /// Put text on log records: prompts, tool inputs, outputs and summaries. Needs
    /// --include-content (events carry it); each item is cut to --otlp-logs-content-max-bytes.
    #[arg(long, requires = "otlp_logs")]
    pub otlp_logs_include_content: bool,

    /// With --otlp-logs-include-content: the size cap of each text.
    #[arg(long, value_name = "BYTES", default_value = "4096", value_parser = crate::cli::units::size_at_least(16))]
    pub otlp_logs_content_max_bytes: u64,

    /// Log records held while the collector is slow or down; more are dropped and counted.
    #[arg(long, value_name = "N", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub otlp_max_queue_logs: u64,

    /// Also send the traces (and, with --otlp-logs, the events) of the history read on
    /// the first start, once.
    #[arg(long)]
    pub otlp_backfill: bool,

    /// Also emit Claude Code's own metric names (claude_code.token.usage, …).
    #[arg(long)]
    pub otlp_claude_code_metrics: bool,

    /// With --otlp-claude-code-metrics: one series per session (a session.id attribute).
    #[arg(long, requires = "otlp_claude_code_metrics")]
    pub otlp_claude_code_session_id: bool,

    /// Put message content on spans: the prompt, tool inputs and outputs. Off by
    /// default: transcripts hold code and secrets. Each item is cut to --otlp-content-max-bytes.
    #[arg(long)]
    pub otlp_include_content: bool,

    /// With --otlp-include-content: the size cap of each prompt, tool input or output.
    #[arg(long, value_name = "BYTES", default_value = "4096", value_parser = crate::cli::units::size_at_least(16))]
    pub otlp_content_max_bytes: u64,

    /// Spans held while the collector is slow or down; more are dropped and counted.
    #[arg(long, value_name = "N", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub otlp_max_queue_spans: u64,
}

impl OtlpArgs {
    /// The OTLP configuration from the environment and these flags; `None` when off.
    pub(crate) fn config(&self) -> anyhow::Result<Option<crate::sinks::otlp::Config>> {
        let flags = crate::sinks::otlp::Overrides {
            endpoint: self.otlp_endpoint.clone(),
            protocol: self.otlp_protocol,
            headers: self.otlp_header.clone(),
            metrics: self.otlp_metrics,
            traces: self.otlp_traces,
            logs: self.otlp_logs,
            interval: self.otlp_interval,
            temporality: self.otlp_temporality,
            compat: crate::sinks::otlp::Compat {
                claude_code: self.otlp_claude_code_metrics,
                session_id: self.otlp_claude_code_session_id,
            },
            backfill: self.otlp_backfill,
        };
        let cfg = crate::sinks::otlp::Config::from_env(&|k| std::env::var(k).ok(), &flags)?;
        let filter = crate::events::Filter::from_pairs(self.otlp_logs_filter.iter().map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p.as_str(), ""));
            (k.trim(), v.trim())
        }))
        .map_err(|e| anyhow::anyhow!("--otlp-logs-filter: {e}"))?;
        let logs_options = crate::sinks::otlp::Logs {
            filter,
            claude_code: self.otlp_logs_claude_code,
            content: self.otlp_logs_include_content.then_some(self.otlp_logs_content_max_bytes as usize),
        };
        Ok(cfg.map(|c| crate::sinks::otlp::Config {
            max_queue_spans: self.otlp_max_queue_spans as usize,
            max_queue_logs: self.otlp_max_queue_logs as usize,
            logs_options,
            ..c
        }))
    }
}

/// In the state folder: up to when the events of history were (or are being) sent as log records.
pub(super) const EVENT_BACKFILL_MARKER: &str = "otlp-logs-backfill.json";

/// The end of the history whose events `--otlp-backfill` sends: `None` when that was
/// done by an earlier run; the end an interrupted run chose; else `since` (events
/// started), written down first so that a run cut short and started again sends the
/// same history, not the live events in between.
pub(super) fn event_backfill_until(marker: &std::path::Path, since: crate::transcript::entry::Millis) -> Option<i64> {
    let before: Option<serde_json::Value> =
        std::fs::read_to_string(marker).ok().and_then(|t| serde_json::from_str(&t).ok());
    match before {
        Some(v) if v["done"] == serde_json::Value::Bool(true) => None,
        Some(v) if v["until_ms"].is_i64() => v["until_ms"].as_i64(),
        _ => {
            if let Err(e) = std::fs::write(marker, format!("{{\"until_ms\":{since},\"done\":false}}\n")) {
                tracing::warn!(error = %e, "Cannot record the event backfill's range; not sending it.");
                return None;
            }
            Some(since)
        }
    }
}
