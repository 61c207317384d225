//! Context-engineering research: consumers of the facts for `analyze`.
//!
//! In: a session's lines, as the same facts the metrics count ([`Entry`](crate::transcript::entry::Entry))
//! plus the research features of each line ([`LineFeatures`]: sizes, hashes, salient
//! tokens; never text). Out: per session, the context after each main-chain call and
//! what filled it ([`ContextTracker`], [`Snapshot`]), its compactions, and the steps
//! the analyses read ([`SessionRecord`]); statistics for comparing groups of sessions
//! ([`stats`]), what a context holds by source call by call ([`composition`]), and inline
//! SVG charts for the static HTML report ([`charts`]). The rules
//! are documented in `docs/research.md`.

pub mod charts;
pub mod composition;
pub mod features;
pub mod stats;
pub mod summary;
pub mod tokens;
pub mod tracker;

pub use features::{LineFeatures, PromptFeatures, Source};
pub use summary::SessionSummary;
pub use tokens::{TokenKind, TokenSet};
pub use tracker::{Compaction, ContextTracker, Part, SessionRecord, Snapshot, Step};
