//! OTLP logs: realtime [`Event`]s as the SDK's log records, for the official
//! `opentelemetry_otlp::LogExporter`.
//!
//! In: events from the bus (the same ones `/api/events` shows), each with the
//! trace and span it belongs to when traces are on. Out: one record per event,
//! named `claude_sessions.<type>`, its body the event's JSON (as an SSE `data`
//! line), its attributes the event's fields flattened (`usage.input`,
//! `parts.user_text`), plus `event.id`, an id derived from the event and its sequence
//! number (a record sent again, by a retry, from the spool after a restart, or by a
//! backfill run again, has the same id: a backend can drop duplicates by it). With the
//! compatibility mode, events Claude Code
//! has an event for get a second record under its name and attributes
//! ([`compat`]).
//!
//! Text (prompts, tool inputs and outputs, summaries, notes) is left off the
//! records unless the logs' own opt-in is on, and then cut to its cap.
//!
//! Records are built with an SDK logger that has no processor (it only makes
//! records: `SdkLogRecord` has no public constructor); nothing is emitted
//! through it. Times are the transcript's.

use std::time::{Duration, SystemTime};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::{InstrumentationScope, Key};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::otlp_config::Logs;
use crate::events::{Event, Kind};

pub mod compat;

/// Which record of an event a queued item stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// Ours: `claude_sessions.<type>`, the event's fields.
    Ours,
    /// Claude Code's name and attributes ([`compat`]).
    ClaudeCode,
}

/// One record waiting to be sent: the event (shared by its two forms) and the form.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// The form of the record.
    pub form: Form,
    /// The event, as published (content already cut to the logs' settings).
    pub event: std::sync::Arc<Event>,
}

/// The records `e` becomes under `opts`: none if the filter refuses it, else ours,
/// and Claude Code's when asked for and Claude Code has an event for it.
pub fn items(e: &std::sync::Arc<Event>, opts: &Logs) -> Vec<Item> {
    if !opts.filter.matches(e) {
        return Vec::new();
    }
    let event = match opts.content {
        Some(cap) => std::sync::Arc::new(cut(e, cap)),
        None if has_text(e) => std::sync::Arc::new(without_text(e)),
        None => std::sync::Arc::clone(e),
    };
    let mut out = vec![Item { form: Form::Ours, event: std::sync::Arc::clone(&event) }];
    if opts.claude_code && compat::name(&event).is_some() {
        out.push(Item { form: Form::ClaudeCode, event });
    }
    out
}

/// `claude_sessions.<type>` for every kind, in [`Kind::NAMES`] order (event names are `'static`).
const NAMES: [&str; 19] = [
    "claude_sessions.message",
    "claude_sessions.tool_use",
    "claude_sessions.tool_result",
    "claude_sessions.session_start",
    "claude_sessions.session_idle",
    "claude_sessions.session_resume",
    "claude_sessions.session_end",
    "claude_sessions.agent_spawn",
    "claude_sessions.compaction",
    "claude_sessions.api_error",
    "claude_sessions.context_growth",
    "claude_sessions.rule_match",
    "claude_sessions.approval_pending",
    "claude_sessions.approval_decided",
    "claude_sessions.session_paused",
    "claude_sessions.session_resumed",
    "claude_sessions.note_queued",
    "claude_sessions.note_delivered",
    "claude_sessions.error",
];

/// The record's event name for `kind`.
pub fn event_name(kind: &Kind) -> &'static str {
    let i = Kind::NAMES.iter().position(|n| *n == kind.name()).unwrap_or(NAMES.len() - 1);
    NAMES[i]
}

/// The text fields of events: prompts, tool inputs, outputs and summaries, people's notes.
fn has_text(e: &Event) -> bool {
    match &e.kind {
        Kind::Message { text, .. } => text.is_some(),
        Kind::ToolUse { summary, input, .. } => summary.is_some() || input.is_some(),
        Kind::ToolResult { output, .. } => output.is_some(),
        Kind::AgentSpawn { description, .. } => description.is_some(),
        Kind::ApprovalPending { .. } | Kind::NoteQueued { .. } => true,
        Kind::ApprovalDecided { reason, .. } => reason.is_some(),
        Kind::SessionPaused { message } => message.is_some(),
        _ => false,
    }
}

/// `e` with every text field cleared (those that must have a value are left empty).
fn without_text(e: &Event) -> Event {
    let mut e = e.clone();
    match &mut e.kind {
        Kind::Message { text, .. } => *text = None,
        Kind::ToolUse { summary, input, .. } => (*summary, *input) = (None, None),
        Kind::ToolResult { output, content_bytes, .. } => (*output, *content_bytes) = (None, None),
        Kind::AgentSpawn { description, .. } => *description = None,
        Kind::ApprovalPending { summary, .. } => summary.clear(),
        Kind::NoteQueued { text, .. } => text.clear(),
        Kind::ApprovalDecided { reason, .. } => *reason = None,
        Kind::SessionPaused { message } => *message = None,
        _ => {}
    }
    e
}

/// `e` with every text field cut to `cap` bytes.
fn cut(e: &Event, cap: usize) -> Event {
    let mut e = e.clone();
    let c = |s: &mut String| *s = crate::transcript::entry::cap_text(s, cap.max(16));
    let o = |s: &mut Option<String>| {
        if let Some(s) = s {
            *s = crate::transcript::entry::cap_text(s, cap.max(16));
        }
    };
    match &mut e.kind {
        Kind::Message { text, .. } => o(text),
        Kind::ToolUse { summary, input, .. } => {
            o(summary);
            o(input);
        }
        Kind::ToolResult { output, .. } => o(output),
        Kind::AgentSpawn { description, .. } => o(description),
        Kind::ApprovalPending { summary, .. } => c(summary),
        Kind::NoteQueued { text, .. } => c(text),
        Kind::ApprovalDecided { reason, .. } => o(reason),
        Kind::SessionPaused { message } => o(message),
        _ => {}
    }
    e
}

/// A record's id for backends: 32 hex digits derived from the event's JSON, its
/// sequence number included (two events alike in every field, in the same millisecond,
/// still differ by it), and from the record's form (an event's two forms get two ids).
/// The sequence number travels with the event (the spool keeps it) and the backfill
/// numbers history the same way every time, so a record sent again has the same id.
pub fn event_id(e: &Event, form: Form) -> String {
    let v = serde_json::to_value(e).unwrap_or(Json::Null);
    let seed = match form {
        Form::Ours => 0x10_65,
        Form::ClaudeCode => 0xcc_10_65,
    };
    crate::state::trace::hex(&crate::state::trace::trace_id(&v.to_string(), seed))
}

/// `v` as attributes under `prefix`: objects flattened with dotted keys, arrays of
/// scalars as arrays, nulls left out.
fn flatten(prefix: &str, v: &Json, out: &mut Vec<(Key, AnyValue)>) {
    let scalar = |v: &Json| -> Option<AnyValue> {
        Some(match v {
            Json::String(s) => AnyValue::from(s.clone()),
            Json::Bool(b) => AnyValue::from(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => AnyValue::from(i),
                None => AnyValue::from(n.as_f64().unwrap_or(f64::NAN)),
            },
            _ => return None,
        })
    };
    match v {
        Json::Null => {}
        Json::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        Json::Array(items) => out.push((
            Key::from(prefix.to_owned()),
            AnyValue::ListAny(Box::new(items.iter().filter_map(scalar).collect())),
        )),
        other => {
            if let Some(a) = scalar(other) {
                out.push((Key::from(prefix.to_owned()), a));
            }
        }
    }
}

/// The severity of an event: errors for failed tools, API errors and the watcher's own;
/// warnings for rule matches above `info` and calls waiting for a person.
pub fn severity(e: &Event) -> Severity {
    match &e.kind {
        Kind::ToolResult { is_error: true, .. } | Kind::ApiError { .. } | Kind::Error { .. } => Severity::Error,
        Kind::RuleMatch { severity, .. } if severity != "info" => Severity::Warn,
        Kind::ApprovalPending { .. } => Severity::Warn,
        _ => Severity::Info,
    }
}

fn time(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A logger that only makes records (no processor: nothing is emitted through it).
pub fn record_maker(scope: InstrumentationScope) -> SdkLogger {
    use opentelemetry::logs::LoggerProvider as _;
    opentelemetry_sdk::logs::SdkLoggerProvider::builder().build().logger_with_scope(scope)
}

/// The SDK record of `item`: name, times, severity, body, attributes and trace context.
pub fn record(item: &Item, maker: &SdkLogger) -> SdkLogRecord {
    let e = &*item.event;
    let mut r = maker.create_log_record();
    r.set_timestamp(time(e.ts_ms));
    r.set_observed_timestamp(SystemTime::now());
    let sev = severity(e);
    r.set_severity_number(sev);
    r.set_severity_text(sev.name());
    let mut attrs = Vec::new();
    match item.form {
        Form::Ours => {
            r.set_event_name(event_name(&e.kind));
            let json = serde_json::to_value(e).unwrap_or(Json::Null);
            r.set_body(AnyValue::from(json.to_string()));
            flatten("", &json, &mut attrs);
            // The bus's sequence number (the SSE id) is `claude_sessions.event.seq`; the time
            // and the trace are the record's own fields.
            attrs.retain(|(k, _)| !matches!(k.as_str(), "id" | "ts_ms" | "trace_id" | "span_id"));
            attrs.push((Key::from_static_str("claude_sessions.event.seq"), AnyValue::from(e.id as i64)));
        }
        Form::ClaudeCode => {
            let name = compat::name(e).unwrap_or("claude_code.unknown");
            r.set_event_name(name);
            r.set_body(AnyValue::from(name));
            attrs.extend(compat::attributes(e));
        }
    }
    attrs.push((Key::from_static_str("event.id"), AnyValue::from(event_id(e, item.form))));
    r.add_attributes(attrs);
    if let (Some(t), Some(s)) = (&e.trace_id, &e.span_id)
        && let (Ok(t), Ok(s)) = (TraceId::from_hex(t), SpanId::from_hex(s))
    {
        r.set_trace_context(t, s, Some(TraceFlags::SAMPLED));
    }
    r
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::events::{Filter, ToolCategory};

    pub(super) fn ev(kind: Kind) -> Arc<Event> {
        Arc::new(Event {
            id: 7,
            ts_ms: 1_700_000_000_123,
            session_id: "s1".into(),
            project: "app".into(),
            agent_id: None,
            trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
            span_id: Some("b7ad6b7169203331".into()),
            kind,
        })
    }

    /// An attribute value as text (strings bare).
    pub(super) fn show(v: &AnyValue) -> String {
        match v {
            AnyValue::String(s) => s.as_str().to_owned(),
            AnyValue::Int(i) => i.to_string(),
            AnyValue::Boolean(b) => b.to_string(),
            AnyValue::Double(d) => d.to_string(),
            other => format!("{other:?}"),
        }
    }

    fn attrs(r: &SdkLogRecord) -> std::collections::BTreeMap<String, String> {
        r.attributes_iter().map(|(k, v)| (k.to_string(), show(v))).collect()
    }

    #[test]
    fn names_follow_the_kinds() {
        assert_eq!(NAMES.len(), Kind::NAMES.len());
        for (ours, kind) in NAMES.iter().zip(Kind::NAMES) {
            assert_eq!(*ours, format!("claude_sessions.{kind}"));
        }
    }

    #[test]
    fn a_record_carries_the_events_fields_ids_and_trace() {
        let e = ev(Kind::ToolResult {
            tool_use_id: "toolu_1".into(),
            name: "Bash".into(),
            is_error: true,
            content_bytes: None,
            duration_ms: Some(1500),
            output: None,
        });
        let maker = record_maker(InstrumentationScope::builder("t").build());
        let items = items(&e, &Logs::default());
        assert_eq!(items.len(), 1, "no compat record unless asked for");
        let r = record(&items[0], &maker);
        assert_eq!(r.event_name(), Some("claude_sessions.tool_result"));
        assert_eq!(r.severity_number(), Some(Severity::Error));
        let tc = r.trace_context().expect("trace context");
        assert_eq!(tc.trace_id.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(tc.span_id.to_string(), "b7ad6b7169203331");
        let a = attrs(&r);
        for k in ["type", "session_id", "project", "tool_use_id", "name", "is_error", "duration_ms", "event.id"] {
            assert!(a.contains_key(k), "{k} in {a:?}");
        }
        assert!(!a.contains_key("id"), "the per-process sequence is not the id: {a:?}");
        assert_eq!(a["event.id"], event_id(&e, Form::Ours));
        // The same event (kept in the spool, sent again): the same id; one alike in every
        // field but its sequence number: another.
        let again: Event = serde_json::from_str(&serde_json::to_string(&*e).unwrap()).unwrap();
        assert_eq!(event_id(&e, Form::Ours), event_id(&again, Form::Ours));
        let twin = Arc::new(Event { id: 8, ..(*e).clone() });
        assert_ne!(event_id(&e, Form::Ours), event_id(&twin, Form::Ours));
        assert_ne!(event_id(&e, Form::Ours), event_id(&ev(Kind::SessionIdle {}), Form::Ours));
        assert_ne!(event_id(&e, Form::Ours), event_id(&e, Form::ClaudeCode), "each record its own id");
    }

    #[test]
    fn text_needs_the_logs_own_opt_in_and_is_cut() {
        let e = ev(Kind::ToolUse {
            tool_use_id: "t".into(),
            name: "Bash".into(),
            category: ToolCategory::Shell,
            summary: Some("rm -rf /tmp/secret".into()),
            input: Some("{\"command\":\"rm -rf /tmp/secret and a long tail of text\"}".into()),
        });
        let maker = record_maker(InstrumentationScope::builder("t").build());
        let off = record(&items(&e, &Logs::default())[0], &maker);
        let body = format!("{:?}", off.body());
        assert!(!body.contains("secret") && !format!("{:?}", attrs(&off)).contains("secret"), "{body}");
        let on = Logs { content: Some(20), ..Logs::default() };
        let r = record(&items(&e, &on)[0], &maker);
        let a = attrs(&r);
        assert!(a["summary"].contains("rm -rf"), "{a:?}");
        assert!(a["input"].contains("bytes cut") && !a["input"].contains("long tail"), "cut to the cap: {a:?}");
    }

    #[test]
    fn the_filter_is_the_events_filter() {
        let opts = Logs { filter: Filter::from_pairs([("type", "tool_result")]).unwrap(), ..Logs::default() };
        assert!(items(&ev(Kind::SessionIdle {}), &opts).is_empty());
        let usage = ev(Kind::Message {
            role: "assistant".into(),
            model: Some("claude-opus-4-6".into()),
            usage: Some(crate::events::Usage { input: 3, output: 4, cache_read: 5, cache_creation: 6 }),
            cost_usd: Some(0.25),
            text: None,
            continued: false,
        });
        let r = record(&items(&usage, &Logs::default())[0], &record_maker(InstrumentationScope::builder("t").build()));
        let a = attrs(&r);
        assert_eq!(a["usage.cache_read"], "5", "nested fields flattened: {a:?}");
        assert_eq!(a["cost_usd"], "0.25");
    }
}
