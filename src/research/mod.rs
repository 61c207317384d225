//! Context-engineering research: consumers of the facts for `analyze`.
//!
//! In: per-session facts and the figures drawn from them. Out: statistics for comparing
//! groups of sessions ([`stats`]) and inline SVG charts for the static HTML report
//! ([`charts`]). Both leaf modules use only std and serde.

pub mod charts;
pub mod stats;
