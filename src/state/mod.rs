//! State: the one owner of counted facts. The live aggregator (sessions,
//! turns, deduplication, counters), the metric store it writes, the spans of a
//! turn it builds as facts are applied (`trace`, shipped by `sinks::otlp`),
//! prices and duration parsing.

pub mod dedup;
pub mod duration;
pub mod live;
pub mod metrics;
pub mod pricing;
pub mod trace;
