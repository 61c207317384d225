//! Destinations besides `/metrics`: one file per destination.

pub mod backfill;
pub mod http;
pub mod otlp;
pub mod otlp_config;
pub mod otlp_metrics;
pub mod otlp_traces;
pub mod trace;
pub mod webhook;
