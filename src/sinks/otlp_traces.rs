//! OTLP traces: finished [`Span`]s as the SDK's `SpanData`, for the official
//! `opentelemetry_otlp::SpanExporter`.
//!
//! In: spans from the tracer, with ids, parents and times taken from the
//! transcript (history backfill keeps its original timestamps). Out: hand-built
//! `SpanData` under our instrumentation scope; the resource is set once on the
//! exporter (`set_resource`). No SDK tracer or span processor is involved: they
//! would mint their own ids and times.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanContext, SpanId, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::state::trace::{Attrs, Span, SpanKind, Value};

fn value(v: &Value) -> opentelemetry::Value {
    match v {
        Value::Str(s) => s.clone().into(),
        Value::Int(i) => (*i).into(),
        Value::Bool(b) => (*b).into(),
        Value::F64(f) => (*f).into(),
        Value::Strs(list) => {
            opentelemetry::Value::Array(Array::String(list.iter().cloned().map(StringValue::from).collect()))
        }
    }
}

fn attributes(a: &Attrs) -> Vec<KeyValue> {
    a.iter().map(|(k, v)| KeyValue::new(k.clone(), value(v))).collect()
}

/// A transcript time (ms since the epoch) as a `SystemTime`; before 1970 is the epoch.
fn time(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn events(s: &Span) -> SpanEvents {
    let mut out = SpanEvents::default();
    out.events = s
        .events
        .iter()
        .map(|e| opentelemetry::trace::Event::new(e.name.clone(), time(e.at_ms), attributes(&e.attrs), 0))
        .collect();
    out
}

/// The scope every span is sent under: this program and its version.
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("claude-sessions").with_version(crate::VERSION).build()
}

/// One span as the exporter takes it: our ids, parent, kind, times, attributes,
/// events and error status, unchanged. Sampled, so that backends keep it.
pub fn span_data(s: &Span, scope: &InstrumentationScope) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(s.trace_id),
            SpanId::from_bytes(s.span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: s.parent.map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: false,
        span_kind: match s.kind {
            SpanKind::Internal => opentelemetry::trace::SpanKind::Internal,
            SpanKind::Client => opentelemetry::trace::SpanKind::Client,
        },
        name: Cow::Owned(s.name.clone()),
        start_time: time(s.start_ms),
        end_time: time(s.end_ms),
        attributes: attributes(&s.attrs),
        dropped_attributes_count: 0,
        events: events(s),
        links: SpanLinks::default(),
        status: match &s.error {
            Some(m) => Status::error(m.clone()),
            None => Status::Unset,
        },
        instrumentation_scope: scope.clone(),
    }
}
