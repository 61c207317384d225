//! Fuzz targets, on the stable toolchain: one `#[test]` per target, each run
//! for `FUZZ_SECONDS` (default 3, so `cargo test --all-targets` stays short).
//! Long runs: `scripts/fuzz.sh [SECONDS] [TARGET…]` (release mode). The harness
//! (`harness.rs`) is generic; a new target is a module with a `run()` and one
//! test below.

mod checkpoint;
mod harness;
mod shell;
mod transcript;

/// One transcript line → entries and content; whole inputs through a `Tail`.
#[test]
fn transcript_line() {
    transcript::run();
}

/// `checkpoint::load` on corrupt and odd checkpoints, then an engine restored from them.
#[test]
fn checkpoint_reader() {
    checkpoint::run();
}

/// A Bash command line → the static reading and the hook's decision.
#[test]
fn shell_command() {
    shell::run();
}
