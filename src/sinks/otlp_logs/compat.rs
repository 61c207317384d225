//! Claude Code's own event names and attributes (`--otlp-logs-claude-code`), so that
//! queries and dashboards written for its native telemetry (`OTEL_LOGS_EXPORTER`) work
//! on ours, history included.
//!
//! | our event | Claude Code's | attributes derived from the transcript |
//! | --- | --- | --- |
//! | `message` (user) | `claude_code.user_prompt` | `prompt_length`, `prompt` (content opt-in only) |
//! | `message` (assistant) | `claude_code.api_request` | `model`, `cost_usd`, `input_tokens`, `output_tokens`, `cache_read_tokens`, `cache_creation_tokens` |
//! | `tool_result` | `claude_code.tool_result` | `tool_name`, `success`, `duration_ms`, `error` (failed calls), `decision` |
//! | `api_error` | `claude_code.api_error` | `error` |
//! | `approval_decided` | `claude_code.tool_decision` | `tool_name`, `decision`, `source` |
//!
//! Every record has `event.name` (the name without `claude_code.`), `event.timestamp`
//! (ISO 8601, the transcript's time) and `session.id`. What transcripts do not hold is
//! left off rather than made up: `app.version`, `user.account_uuid`, `organization.id`,
//! `terminal.type`; an API request's `duration_ms`; an API error's `model`,
//! `status_code`, `duration_ms` and `attempt`; a tool result's `source` and
//! `tool_parameters`. A response written over several lines whose usage grows gets one
//! record per line that adds tokens (`claude_sessions.continued` on the later ones), so
//! sums of tokens and cost equal the counters.

use opentelemetry::Key;
use opentelemetry::logs::AnyValue;

use crate::events::{Event, Kind};

/// Claude Code's event name for `e`, if it has one.
pub fn name(e: &Event) -> Option<&'static str> {
    Some(match &e.kind {
        Kind::Message { role, .. } if role == "user" => "claude_code.user_prompt",
        Kind::Message { .. } => "claude_code.api_request",
        Kind::ToolResult { .. } => "claude_code.tool_result",
        Kind::ApiError { .. } => "claude_code.api_error",
        Kind::ApprovalDecided { .. } => "claude_code.tool_decision",
        _ => return None,
    })
}

/// Claude Code's attributes for `e` (see the module's table), values typed as it types them:
/// counts and costs as numbers, `success` as the text `true`/`false`.
pub fn attributes(e: &Event) -> Vec<(Key, AnyValue)> {
    let mut out: Vec<(Key, AnyValue)> = Vec::new();
    let mut put = |k: &'static str, v: AnyValue| out.push((Key::from_static_str(k), v));
    let short = name(e).map_or("", |n| n.trim_start_matches("claude_code."));
    put("event.name", short.to_owned().into());
    let at = jiff::Timestamp::from_millisecond(e.ts_ms).map(|t| t.to_string()).unwrap_or_default();
    put("event.timestamp", at.into());
    put("session.id", e.session_id.clone().into());
    // Ours, for the same filters as our records (Claude Code has no project or sub-agent).
    put("project", e.project.clone().into());
    if let Some(a) = &e.agent_id {
        put("claude_sessions.agent_id", a.clone().into());
    }
    let int = |n: u64| AnyValue::from(i64::try_from(n).unwrap_or(i64::MAX));
    match &e.kind {
        Kind::Message { role, text: Some(t), .. } if role == "user" => {
            put("prompt_length", int(t.chars().count() as u64));
            put("prompt", t.clone().into());
        }
        Kind::Message { role, .. } if role == "user" => {}
        Kind::Message { model, usage, cost_usd, continued, .. } => {
            put("model", model.clone().unwrap_or_default().into());
            put("cost_usd", cost_usd.unwrap_or(0.0).into());
            let u = usage.unwrap_or_default();
            put("input_tokens", int(u.input));
            put("output_tokens", int(u.output));
            put("cache_read_tokens", int(u.cache_read));
            put("cache_creation_tokens", int(u.cache_creation));
            if *continued {
                put("claude_sessions.continued", true.into());
            }
        }
        Kind::ToolResult { name, is_error, duration_ms, output, .. } => {
            put("tool_name", name.clone().into());
            put("success", if *is_error { "false" } else { "true" }.into());
            if let Some(d) = duration_ms {
                put("duration_ms", (*d).into());
            }
            if *is_error {
                put("error", output.clone().unwrap_or_else(|| "tool_error".into()).into());
            }
            // A call that ran was let through (a denied call's result is an error too,
            // but only its text tells: the decision of record is `tool_decision`).
            put("decision", "accept".into());
        }
        Kind::ApiError { kind } => put("error", kind.clone().into()),
        Kind::ApprovalDecided { tool, state, decided_by, .. } => {
            put("tool_name", tool.clone().into());
            put("decision", if state == "allowed" { "accept" } else { "reject" }.into());
            put("source", decided_by.clone().unwrap_or_else(|| "unknown".into()).into());
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_claude_code_has_get_a_record() {
        let e = |kind| Event {
            id: 1,
            ts_ms: 1_700_000_000_000,
            session_id: "s".into(),
            project: "p".into(),
            agent_id: None,
            trace_id: None,
            span_id: None,
            kind,
        };
        assert_eq!(name(&e(Kind::SessionIdle {})), None);
        let r = e(Kind::ToolResult {
            tool_use_id: "t".into(),
            name: "Bash".into(),
            is_error: false,
            content_bytes: None,
            duration_ms: Some(12),
            output: None,
        });
        assert_eq!(name(&r), Some("claude_code.tool_result"));
        let a: std::collections::BTreeMap<String, String> =
            attributes(&r).into_iter().map(|(k, v)| (k.to_string(), super::super::tests::show(&v))).collect();
        assert_eq!(a["event.name"], "tool_result");
        assert_eq!(a["event.timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(a["success"], "true");
        assert_eq!(a["duration_ms"], "12");
        assert!(!a.contains_key("error"), "no error on success: {a:?}");
    }
}
