//! OTLP traces: finished [`Span`]s as an `ExportTraceServiceRequest`.
//!
//! In: spans from the tracer (ids and times from the transcript). Out: one
//! request holding them under our resource and instrumentation scope.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as PSpan, Status, span, status};

use crate::sinks::trace::{Attrs, Span, SpanKind, Value};

fn value(v: &Value) -> any_value::Value {
    match v {
        Value::Str(s) => any_value::Value::StringValue(s.clone()),
        Value::Int(i) => any_value::Value::IntValue(*i),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::F64(f) => any_value::Value::DoubleValue(*f),
        Value::Strs(list) => any_value::Value::ArrayValue(ArrayValue {
            values: list.iter().map(|s| AnyValue { value: Some(any_value::Value::StringValue(s.clone())) }).collect(),
        }),
    }
}

fn attributes(a: &Attrs) -> Vec<KeyValue> {
    a.iter().map(|(k, v)| super::otlp_config::kv(k, value(v))).collect()
}

fn ns(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

/// One span on the wire.
pub fn span(s: &Span) -> PSpan {
    PSpan {
        trace_id: s.trace_id.to_vec(),
        span_id: s.span_id.to_vec(),
        parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: s.name.clone(),
        kind: match s.kind {
            SpanKind::Internal => span::SpanKind::Internal as i32,
            SpanKind::Client => span::SpanKind::Client as i32,
        },
        start_time_unix_nano: ns(s.start_ms),
        end_time_unix_nano: ns(s.end_ms),
        attributes: attributes(&s.attrs),
        events: s
            .events
            .iter()
            .map(|e| span::Event {
                time_unix_nano: ns(e.at_ms),
                name: e.name.clone(),
                attributes: attributes(&e.attrs),
                ..Default::default()
            })
            .collect(),
        status: s.error.as_ref().map(|m| Status { message: m.clone(), code: status::StatusCode::Error as i32 }),
        ..Default::default()
    }
}

/// A request with `spans` under `resource`.
pub fn build(resource: &Resource, spans: &[Span]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "claude-sessions".into(),
                    version: crate::VERSION.into(),
                    ..Default::default()
                }),
                spans: spans.iter().map(span).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
