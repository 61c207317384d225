//! Destinations besides `/metrics`: one file per destination.

pub mod backfill;
pub mod http;
pub mod otlp;
pub mod otlp_config;
pub mod otlp_delta;
mod otlp_instruments;
pub mod otlp_logs;
pub mod otlp_metrics;
pub mod otlp_stats;
pub mod otlp_traces;
mod otlp_transport;
pub mod webhook;
