//! claude-sessions: Claude Code session transcripts → metrics, live.
//!
//! ```text
//!  config roots ─► discover ─► watch ─► engine::Engine ────────────────► live::Aggregator ─► metrics::Store → /metrics, OTLP
//!                  (files,      (wake-   tail → transcript → entry       (the one owner:      events::Bus → /api/events, webhooks
//!                   identity)    ups,     → journal (synced, then         sessions, turns,     trace::Tracer → OTLP traces
//!                                reconcile) applied)                      dedup, counters)     SessionSnapshot → /api/sessions
//!                                             ▲                                │
//!                                             └── checkpoint + journal replay ◄┘
//! ```
//!
//! The data flows as drawn (stages are folders: `source`, `transcript`, `engine`, `state`, `sinks`). `engine::Engine` owns file
//! positions and the journal, and is the only writer of the `state::live::Aggregator`,
//! which owns sessions and counters; every output is a projection of the facts
//! it applies. See `docs/architecture.md` for owners and readers.

#![deny(missing_docs)]

pub mod cli;
pub mod control;
pub mod engine;
pub mod events;
pub mod report;
pub mod research;
pub mod rules;
pub mod server;
pub mod sinks;
pub mod source;
pub mod state;
pub mod transcript;
pub mod watcher;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision the binary was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("CLAUDE_SESSIONS_REVISION");
/// `--version` text.
pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CLAUDE_SESSIONS_REVISION"), ")");
