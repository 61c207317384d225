//! Source: where lines come from. Discovery of transcript files (identity by
//! device + inode), tailing with positions and fingerprints, wake-ups and
//! reconciliation, the journal and the checkpoint that make counted facts
//! durable, and the running Claude Code processes.

pub mod discover;
pub mod journal;
pub mod process;
pub mod tail;
