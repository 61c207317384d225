//! claude-sessions: Claude Code session transcripts → metrics, live.
//!
//! ```text
//!  config roots ─► discover ─► watch ─► pipeline::Engine ──────────────► live::Aggregator ─► metrics::Store → /metrics, OTLP
//!                  (files,      (wake-   tail → transcript → event       (the one owner:      events::Bus → /api/events, webhooks
//!                   identity)    ups,     → journal (synced, then         sessions, turns,     trace::Tracer → OTLP traces
//!                                reconcile) applied)                      dedup, counters)     SessionSnapshot → /api/sessions
//!                                             ▲                                │
//!                                             └── checkpoint + journal replay ◄┘
//! ```
//!
//! The data flows as drawn (modules are declared alphabetically). `pipeline::Engine` owns file
//! positions and the journal, and is the only writer of the `live::Aggregator`,
//! which owns sessions and counters; every output is a projection of the facts
//! it applies. See `docs/architecture.md` for owners and readers.

pub mod api;
pub mod backfill;
pub mod capture;
pub mod checkpoint;
pub mod cli;
pub mod dedup;
pub mod discover;
pub mod duration;
pub mod event;
pub mod events;
pub mod identity;
pub mod journal;
pub mod live;
pub mod metrics;
pub mod pipeline;
pub mod pricing;
pub mod process;
pub mod report;
pub mod rules;
pub mod server;
pub mod shell;
pub mod sinks;
pub mod tail;
pub mod tool;
pub mod trace;
pub mod transcript;
pub mod watch;
pub mod watcher;
pub mod web_config;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision the binary was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("CLAUDE_SESSIONS_REVISION");
/// `--version` text.
pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CLAUDE_SESSIONS_REVISION"), ")");
