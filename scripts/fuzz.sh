#!/usr/bin/env bash
# Long fuzz runs on the stable toolchain: scripts/fuzz.sh [SECONDS] [TARGET…]
#   SECONDS  how long each target runs (default 600)
#   TARGET   test names in tests/fuzz/main.rs (default: all), e.g. transcript_line checkpoint_reader
# Targets run one at a time, in release mode. Crashes and hangs are saved under
# target/fuzz-crashes/ (replay one: FUZZ_REPLAY=<file> cargo test --test fuzz <target>).
# FUZZ_SEED=<n> repeats a run. Release mode keeps overflow checks and debug
# assertions on: an arithmetic overflow is a crash to find, not a wrap to miss.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true

seconds="${1:-600}"
shift || true
cargo test --release --test fuzz --no-run --quiet
if [ "$#" -eq 0 ]; then
  # Top-level tests only (the harness's own unit tests have a path).
  mapfile -t targets < <(cargo test --release --quiet --test fuzz -- --list --format terse 2>/dev/null \
    | sed -n 's/^\([a-z_]*\): test$/\1/p')
else
  targets=("$@")
fi
status=0
for t in "${targets[@]}"; do
  echo "==> fuzz $t for ${seconds}s"
  FUZZ_SECONDS="$seconds" cargo test --release --quiet --test fuzz -- --exact "$t" --nocapture --test-threads=1 || status=1
done
exit "$status"
